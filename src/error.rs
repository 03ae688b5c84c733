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
    /// A valid size that does not fit in this machine's memory (a fallible allocation failed):
    /// maps to `MemoryError`. The message names the argument that asked for it.
    #[error("{0}")]
    TooLarge(String),
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

/// A vector of `n` copies of `fill`, allocated fallibly: `TooLarge` naming `arg` (and `what` the
/// vector holds) when the memory is not available, instead of an abort.
pub fn try_vec<T: Clone>(arg: &str, what: &str, n: usize, fill: T) -> Result<Vec<T>> {
    let mut v = Vec::new();
    if v.try_reserve_exact(n).is_err() {
        let gib = n as f64 * std::mem::size_of::<T>() as f64 / (1u64 << 30) as f64;
        return Err(CoreError::TooLarge(format!(
            "{arg}: {what} ({n} values, {gib:.1} GiB) do not fit in memory"
        )));
    }
    v.resize(n, fill);
    Ok(v)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_and_nonnegative_checks_name_the_argument() {
        assert!(check_finite("x", &[1.0, 2.0]).is_ok());
        let e = check_finite("x", &[1.0, f64::NAN]).unwrap_err();
        assert!(e.to_string().starts_with("x: must be finite"), "{e}");
        let e = check_nonnegative("cost", &[1.0, -2.0]).unwrap_err();
        assert_eq!(e.to_string(), "cost: must be >= 0, found -2 at position 1");
        assert!(check_len("y", 3, 4, "x").is_err());
        assert_eq!(try_vec("n", "rows", 3, 7u8).unwrap(), vec![7u8; 3]);
        let e = try_vec("n", "rows", usize::MAX / 4, 0u64).unwrap_err();
        assert!(
            matches!(&e, CoreError::TooLarge(m) if m.starts_with("n: rows (")),
            "{e}"
        );
    }
}
