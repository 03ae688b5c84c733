//! Bindings of the `sim` core. Names on `_core` are prefixed by the module.

use pyo3::prelude::*;

pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
