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
    }
}
