//! Bindings of the `realtime` core. Names on `_core` are prefixed `realtime_` (functions) or
//! `Realtime` (classes): the policies in [`policy`], offline policy evaluation in [`ope`], budget
//! pacing in [`pacer`]; this file registers them and holds the array input they share.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

mod ope;
mod pacer;
mod policy;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<policy::RealtimePolicy>()?;
    m.add_class::<pacer::RealtimePacer>()?;
    m.add_function(wrap_pyfunction!(ope::realtime_ope_evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(ope::realtime_ope_bootstrap, m)?)?;
    Ok(())
}

/// A C-contiguous array of `T` from any array-like: numpy arrays of the right dtype and layout pass
/// through; anything else goes through `growthmachine._convert.as_array` (validation, messages).
pub(crate) fn array<'py, T: numpy::Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    ndim: usize,
    dtype: &str,
) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    if let Ok(a) = obj.cast::<PyArrayDyn<T>>() {
        if a.ndim() == ndim && a.is_c_contiguous() {
            if let Ok(r) = a.try_readonly() {
                return Ok(r);
            }
        }
    }
    let py = obj.py();
    let np = py.import("numpy")?;
    let conv = py.import("growthmachine._convert")?;
    let kw = PyDict::new(py);
    kw.set_item("ndim", ndim)?;
    kw.set_item("allow_empty", true)?;
    let out = conv
        .getattr("as_array")?
        .call((obj, name, np.getattr(dtype)?), Some(&kw))?;
    let a = out.cast_into::<PyArrayDyn<T>>().map_err(PyErr::from)?;
    a.try_readonly()
        .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArrayDyn<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name}: must be contiguous")))
}
