//! The one error type of the cores. The bindings map each variant to a Python exception.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// Bad input: maps to `ValueError`. `arg` names the argument, `msg` says what is wrong.
    #[error("{arg}: {msg}")]
    Invalid { arg: String, msg: String },
    /// A problem with no feasible solution: maps to `growthmachine.InfeasibleError` (a `ValueError`).
    #[error("infeasible: {0}")]
    Infeasible(String),
    /// Stopped through [`crate::control::Control::cancel`] (Ctrl-C): maps to `KeyboardInterrupt`.
    #[error("interrupted")]
    Cancelled,
    /// Serialised state that cannot be read (unknown kind or version, corrupt or truncated bytes).
    #[error("state: {0}")]
    State(String),
    /// A valid size that this machine cannot hold (a failed fallible allocation): maps to
    /// `MemoryError`. The message names the argument that set the size.
    #[error("{0}")]
    OutOfMemory(String),
    /// Anything else that is not the caller's fault: maps to `RuntimeError`.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    pub fn invalid(arg: impl Into<String>, msg: impl Into<String>) -> Self {
        CoreError::Invalid {
            arg: arg.into(),
            msg: msg.into(),
        }
    }
}

/// Fails with `Invalid` naming `arg` if any value is NaN or infinite.
pub fn check_finite(arg: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(CoreError::invalid(
            arg,
            format!("must be finite, found {} at position {i}", values[i]),
        )),
    }
}

/// Fails with `Invalid` naming `arg` if any value is negative, NaN or infinite.
pub fn check_nonnegative(arg: &str, values: &[f64]) -> Result<()> {
    check_finite(arg, values)?;
    match values.iter().position(|v| *v < 0.0) {
        None => Ok(()),
        Some(i) => Err(CoreError::invalid(
            arg,
            format!("must be >= 0, found {} at position {i}", values[i]),
        )),
    }
}

/// Fails with `Invalid` if `len` differs from `expected`.
pub fn check_len(arg: &str, len: usize, expected: usize, of: &str) -> Result<()> {
    if len != expected {
        return Err(CoreError::invalid(
            arg,
            format!("has length {len}, expected {expected} (the length of {of})"),
        ));
    }
    Ok(())
}

/// Total bytes of `count` values of `elem` bytes each, or `Invalid` naming `arg` when the size
/// cannot exist (it overflows, or exceeds the `isize::MAX` bytes an allocation may have). `what`
/// says how the count was formed, e.g. `"n_actions x (n_features + n_action_features)^2 values"`.
pub fn checked_bytes(arg: &str, what: &str, count: Option<usize>, elem: usize) -> Result<usize> {
    count
        .and_then(|c| c.checked_mul(elem))
        .filter(|b| *b <= isize::MAX as usize)
        .ok_or_else(|| {
            CoreError::invalid(
                arg,
                format!("too large: {what} exceed the addressable memory"),
            )
        })
}

/// Physical memory of this machine in bytes, where the platform tells it (Linux).
fn physical_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// `OutOfMemory` naming `arg` unless `bytes` (the total a call is about to allocate) can be held:
/// more than the machine's physical memory is refused before anything is allocated (an
/// overcommitting OS would otherwise grant it and kill the process when the pages are touched).
pub fn check_fits_memory(arg: &str, bytes: usize) -> Result<()> {
    match physical_memory() {
        Some(total) if bytes > total => Err(CoreError::OutOfMemory(format!(
            "{arg}: too large for this machine: needs {:.1} GiB, it has {:.1} GiB of memory",
            bytes as f64 / (1u64 << 30) as f64,
            total as f64 / (1u64 << 30) as f64
        ))),
        _ => Ok(()),
    }
}

/// Number types whose all-zero bit pattern is the value 0 (what [`try_zeroed`] may hand out).
pub trait Zeroed: Copy + private::Sealed {}
mod private {
    pub trait Sealed {}
}
macro_rules! zeroed {
    ($($t:ty),*) => {$(impl private::Sealed for $t {} impl Zeroed for $t {})*};
}
zeroed!(f64, f32, u64, u32, u16, u8, i64, i32);

/// `vec![0; n]` with fallible allocation (as [`try_vec`]) from zeroed memory: the OS hands out
/// zero pages lazily, so a large buffer costs nothing until it is written, where the writer can
/// check for Ctrl-C (filling 1.6 GB with zeros took seconds that nothing could interrupt).
pub fn try_zeroed<T: Zeroed>(arg: &str, n: usize) -> Result<Vec<T>> {
    let bytes = checked_bytes(arg, "the values", Some(n), std::mem::size_of::<T>())?;
    check_fits_memory(arg, bytes)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let oom = || {
        CoreError::OutOfMemory(format!(
            "{arg}: too large for this machine: could not allocate {:.1} GiB",
            bytes as f64 / (1u64 << 30) as f64
        ))
    };
    let layout = std::alloc::Layout::array::<T>(n).map_err(|_| oom())?;
    // SAFETY: the layout has a non-zero size; all-zero bits are the value 0 of every `Zeroed`
    // type; the vector takes the allocation with the layout it was made with (the global
    // allocator's, as Vec's own).
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut T;
        if p.is_null() {
            return Err(oom());
        }
        Ok(Vec::from_raw_parts(p, n, n))
    }
}

/// [`try_zeroed`] of `rows x width` values (e.g. rows x estimates), with `Invalid` naming `arg`
/// when the product overflows.
pub fn try_zeroed_rows<T: Zeroed>(arg: &str, rows: usize, width: usize) -> Result<Vec<T>> {
    let n = rows.checked_mul(width).ok_or_else(|| {
        CoreError::invalid(
            arg,
            "too large: rows x values per row exceed the addressable memory",
        )
    })?;
    try_zeroed(arg, n)
}

/// `vec![value; n]` with fallible allocation: `Invalid` if the size cannot exist,
/// `OutOfMemory` naming `arg` if the machine cannot provide it (never an abort).
pub fn try_vec<T: Clone>(arg: &str, n: usize, value: T) -> Result<Vec<T>> {
    let bytes = checked_bytes(arg, "the values", Some(n), std::mem::size_of::<T>().max(1))?;
    check_fits_memory(arg, bytes)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        CoreError::OutOfMemory(format!(
            "{arg}: too large for this machine: could not allocate {:.1} GiB",
            bytes as f64 / (1u64 << 30) as f64
        ))
    })?;
    v.resize(n, value);
    Ok(v)
}

/// `v.try_reserve(additional)`: room for `additional` more values or `OutOfMemory` naming `arg`
/// (`what` the values are), never an abort, for vectors that grow by pushes.
pub fn try_grow<T>(v: &mut Vec<T>, additional: usize, arg: &str, what: &str) -> Result<()> {
    v.try_reserve(additional).map_err(|_| {
        CoreError::OutOfMemory(format!(
            "{arg}: too large for this machine: could not grow {what} to {} values",
            v.len().saturating_add(additional)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_grow_reserves_or_fails_cleanly() {
        let mut v = vec![1u8; 3];
        try_grow(&mut v, 10, "n", "the values").unwrap();
        assert!(v.capacity() >= 13);
        match try_grow(&mut v, usize::MAX, "users", "the candidates") {
            Err(CoreError::OutOfMemory(m)) => assert!(m.starts_with("users:"), "{m}"),
            other => panic!("expected OutOfMemory, got {other:?}"),
        }
        assert_eq!(v, vec![1u8; 3]);
    }

    #[test]
    fn try_zeroed_is_zero_or_a_memory_error() {
        let v: Vec<f64> = try_zeroed("n", 1 << 20).unwrap();
        assert_eq!(v.len(), 1 << 20);
        assert!(v.iter().all(|&x| x.to_bits() == 0));
        let w: Vec<u32> = try_zeroed("n", 1000).unwrap();
        assert!(w.iter().all(|&x| x == 0));
        let f: Vec<f32> = try_zeroed("n", 1000).unwrap();
        assert!(f.iter().all(|&x| x.to_bits() == 0));
        assert!(try_zeroed::<i64>("n", 0).unwrap().is_empty());
        assert!(matches!(
            try_zeroed::<f64>("n", usize::MAX / 2),
            Err(CoreError::Invalid { .. } | CoreError::OutOfMemory(_))
        ));
    }

    #[test]
    fn finite_and_nonnegative_checks_name_the_argument() {
        assert!(check_finite("x", &[1.0, 2.0]).is_ok());
        let e = check_finite("x", &[1.0, f64::NAN]).unwrap_err();
        assert!(e.to_string().starts_with("x: must be finite"), "{e}");
        let e = check_nonnegative("cost", &[1.0, -2.0]).unwrap_err();
        assert_eq!(e.to_string(), "cost: must be >= 0, found -2 at position 1");
        assert!(check_len("y", 3, 4, "x").is_err());
    }

    #[test]
    fn sizes_that_cannot_exist_or_fit_are_errors_not_aborts() {
        assert_eq!(try_vec("n", 3, 1.5).unwrap(), vec![1.5; 3]);
        let e = try_vec("n", usize::MAX / 2, 0.0f64).unwrap_err();
        assert!(
            matches!(&e, CoreError::Invalid { arg, .. } if arg == "n"),
            "{e}"
        );
        let e = checked_bytes("d", "d^2 values", 1usize.checked_mul(usize::MAX), 8).unwrap_err();
        assert!(e.to_string().starts_with("d: too large"), "{e}");
        // 2^60 bytes: possible in principle, but on no machine
        let e = try_vec("n", 1usize << 57, 0.0f64).unwrap_err();
        assert!(
            matches!(&e, CoreError::OutOfMemory(m) if m.starts_with("n: ")),
            "{e}"
        );
    }
}
