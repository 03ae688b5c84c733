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
    /// A size the caller asked for that is possible but too large for this machine's memory: maps
    /// to `MemoryError`. `arg` names the argument.
    #[error("{arg}: {msg}")]
    OutOfMemory { arg: String, msg: String },
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

/// The memory of this machine (RAM + swap, bytes), where the platform says (Linux).
fn machine_memory() -> Option<u64> {
    static MEM: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *MEM.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kb = |key: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.starts_with(key))?;
            line.split_whitespace().nth(1)?.parse().ok()
        };
        Some(kb("MemTotal:")?.saturating_add(kb("SwapTotal:").unwrap_or(0)) * 1024)
    })
}

/// Checks, before allocating, that `n` items of `item_bytes` bytes each (a size the caller's
/// number `arg` controls) can be held: `Invalid` when the byte count exceeds the address space
/// (impossible on any machine), `OutOfMemory` when it exceeds this machine's memory (RAM + swap).
/// Allocating such a size instead would abort the process (`handle_alloc_error`).
pub fn check_alloc(arg: &str, n: u64, item_bytes: u64) -> Result<()> {
    let bytes = n
        .checked_mul(item_bytes)
        .filter(|b| *b <= isize::MAX as u64)
        .ok_or_else(|| {
            CoreError::invalid(
                arg,
                format!("{n} is too large ({n} x {item_bytes} bytes exceeds the address space)"),
            )
        })?;
    match machine_memory() {
        Some(mem) if bytes > mem => Err(CoreError::OutOfMemory {
            arg: arg.into(),
            msg: format!(
                "{n} needs about {:.1} GB, more than this machine's memory ({:.1} GB)",
                bytes as f64 / 1e9,
                mem as f64 / 1e9
            ),
        }),
        _ => Ok(()),
    }
}

/// An empty vector with room for `n` items, or `OutOfMemory` naming `arg` if the allocator
/// refuses (never an abort). Sizes the caller controls go through [`check_alloc`] first.
pub fn try_vec<T>(arg: &str, n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|e| CoreError::OutOfMemory {
        arg: arg.into(),
        msg: format!("cannot allocate {n} items ({e})"),
    })?;
    Ok(v)
}

/// A vector of `n` copies of `x`, allocated through [`try_vec`].
pub fn try_filled<T: Clone>(arg: &str, n: usize, x: T) -> Result<Vec<T>> {
    let mut v = try_vec(arg, n)?;
    v.resize(n, x);
    Ok(v)
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

    #[test]
    fn allocation_checks_never_abort() {
        assert!(check_alloc("n", 1000, 8).is_ok());
        // More bytes than the address space: impossible, a ValueError.
        let e = check_alloc("n", 1 << 62, 8).unwrap_err();
        assert!(matches!(e, CoreError::Invalid { .. }), "{e:?}");
        assert!(e.to_string().starts_with("n: "), "{e}");
        // Possible in principle, more than any test machine holds: a MemoryError.
        let e = check_alloc("n", 1 << 50, 8).unwrap_err();
        assert!(
            matches!(e, CoreError::OutOfMemory { ref arg, .. } if arg == "n"),
            "{e:?}"
        );
        let e = try_vec::<u64>("n", usize::MAX / 4).unwrap_err();
        assert!(matches!(e, CoreError::OutOfMemory { .. }), "{e:?}");
        assert_eq!(try_filled("n", 3, 7u8).unwrap(), vec![7, 7, 7]);
    }
}
