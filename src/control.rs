//! Cancellation, deadlines and progress for long computations.
//!
//! A core that runs for more than a few milliseconds takes `&Control`, calls [`Control::check`]
//! at least every ~10 ms of work (between chunks, iterations, passes) and reports progress with
//! [`Control::advance`]. The Python bindings run the core on a worker thread and, from the calling
//! thread, turn Ctrl-C into [`Control::cancel`] and read progress for tqdm.

use crate::error::{CoreError, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Control {
    cancelled: AtomicBool,
    done: AtomicU64,
    total: AtomicU64,
    deadline: Option<Instant>,
}

impl Control {
    pub fn new() -> Self {
        Self::default()
    }

    /// A control whose [`Control::deadline_passed`] turns true at `deadline`.
    pub fn with_deadline(deadline: Option<Instant>) -> Self {
        Control {
            deadline,
            ..Self::default()
        }
    }

    /// Ask the computation to stop; it returns `CoreError::Cancelled` at its next `check()`.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once [`Control::cancel`] was called.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(CoreError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// True once the deadline (if any) has passed. Solvers with a time limit stop cleanly on it
    /// and report their best answer so far; it is not an error.
    pub fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Sets the amount of work (in any unit) for progress reporting, and resets what is done.
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }

    pub fn advance(&self, amount: u64) {
        self.done.fetch_add(amount, Ordering::Relaxed);
    }

    /// (done, total) as last reported.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_and_progress() {
        let c = Control::new();
        assert!(c.check().is_ok());
        c.set_total(10);
        c.advance(3);
        c.advance(4);
        assert_eq!(c.progress(), (7, 10));
        c.cancel();
        assert_eq!(c.check(), Err(CoreError::Cancelled));
        assert!(!c.deadline_passed());
        let past = Control::with_deadline(Some(Instant::now()));
        assert!(past.deadline_passed());
    }
}
