//! Checked extraction of scalar arguments, shared by every binding: an int, a real number or a
//! flag of the right Python (or numpy) type, else a `TypeError`/`ValueError` naming the argument
//! (never a bare `OverflowError`, never a bool taken for an int).

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

/// Integer types a scalar argument may be extracted to.
pub(crate) trait IntArg: Copy + TryFrom<i128> {
    const MAX: i128;
}
impl IntArg for usize {
    const MAX: i128 = usize::MAX as i128;
}
impl IntArg for u64 {
    const MAX: i128 = u64::MAX as i128;
}
impl IntArg for i64 {
    const MAX: i128 = i64::MAX as i128;
}

fn is_bool(obj: &Bound<'_, PyAny>) -> bool {
    if obj.is_exact_instance_of::<PyInt>() || obj.is_exact_instance_of::<PyFloat>() {
        return false; // the common case, decided without a type-name lookup
    }
    obj.is_instance_of::<PyBool>()
        || obj
            .get_type()
            .name()
            .is_ok_and(|n| n == "bool" || n == "bool_")
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

/// The one checked extraction of an integer argument: a Python or
/// numpy integer (not a bool, not a float) in `[min, T::MAX]`; else `TypeError`/`ValueError`
/// naming `name` (never a bare `OverflowError`).
pub(crate) fn int_arg<T: IntArg>(obj: &Bound<'_, PyAny>, name: &str, min: i128) -> PyResult<T> {
    if is_bool(obj) {
        return Err(PyTypeError::new_err(format!(
            "{name}: must be an int, got bool"
        )));
    }
    let v: Option<i128> = match obj.extract::<i64>() {
        Ok(v) => Some(v as i128),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
            obj.extract::<u64>().ok().map(|v| v as i128)
        }
        Err(_) => {
            return Err(PyTypeError::new_err(format!(
                "{name}: must be an int, got {}",
                type_name(obj)
            )))
        }
    };
    let shown = || obj.str().map_or_else(|_| "?".into(), |s| s.to_string());
    match v {
        Some(v) if v < min => Err(PyValueError::new_err(format!(
            "{name}: must be >= {min}, got {v}"
        ))),
        Some(v) if v <= T::MAX => T::try_from(v)
            .map_err(|_| PyValueError::new_err(format!("{name}: out of range, got {v}"))),
        _ => Err(PyValueError::new_err(format!(
            "{name}: must be <= {}, got {}",
            T::MAX,
            shown()
        ))),
    }
}

/// The one checked extraction of a real-number argument: an int or float (Python or numpy; not a
/// bool, not a string), any value including inf and NaN (the core checks the range and names
/// the argument); else `TypeError`/`ValueError` naming `name`.
pub(crate) fn real_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(f.value());
    }
    if is_bool(obj) || obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "{name}: must be a number, got {}",
            type_name(obj)
        )));
    }
    obj.extract::<f64>().map_err(|e| {
        if e.is_instance_of::<PyOverflowError>(obj.py()) {
            PyValueError::new_err(format!("{name}: too large for a float"))
        } else {
            PyTypeError::new_err(format!("{name}: must be a number, got {}", type_name(obj)))
        }
    })
}

/// The one checked extraction of a flag: a Python or numpy bool, else `TypeError` naming `name`.
pub(crate) fn bool_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    if is_bool(obj) {
        if let Ok(b) = obj.extract::<bool>() {
            return Ok(b);
        }
    }
    Err(PyTypeError::new_err(format!(
        "{name}: must be a bool, got {}",
        type_name(obj)
    )))
}
