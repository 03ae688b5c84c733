//! Bindings of the `insight` core. Names on `_core` are prefixed `insight_` (functions) or
//! `Insight` (classes).

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    register_models(m)?;
    register_kmeans(m)?;
    Ok(())
}

// ===== features, value models, lifecycle, cells ==================================================

fn register_models(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}

// ===== clustering (KMeans): keep at the end of this file =========================================

fn register_kmeans(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
