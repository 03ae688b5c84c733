//! Cancellation, deadlines and progress for long computations.
//!
//! A core that runs for more than a few milliseconds takes `&Control`, calls [`Control::check`]
//! at least every ~10 ms of work (between chunks, iterations, passes) and reports progress with
//! [`Control::advance`]. The Python bindings run the core on a worker thread and, from the calling
//! thread, turn Ctrl-C into [`Control::cancel`] and read progress for tqdm.

use crate::error::{CoreError, Result};
use rayon::prelude::*;
use std::cmp::Ordering as Cmp;
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

/// Elements per piece of [`par_sort_checked`]: a run sorted, or a piece of a merge written,
/// between two checks (a millisecond or two).
const SORT_PIECE: usize = 1 << 15;

/// Sorts `v` by `cmp` in parallel, checking `ctl` before every piece of a millisecond or two, so
/// that Ctrl-C stops it (rayon's `par_sort_unstable_by` cannot be stopped inside: seconds at 10M
/// rows on a loaded machine). Runs of [`SORT_PIECE`] elements are sorted in parallel, then merged
/// pairwise, a round at a time, each merge split at fixed output positions (merge path) into
/// pieces written in parallel. The output is the sorted sequence, so wherever elements comparing
/// equal are identical (integer keys; `f64::total_cmp`) it is bit-identical to any other sort's,
/// whatever the thread count. Uses a scratch copy of `v` (`OutOfMemory` if it cannot be had).
pub fn par_sort_checked<T, F>(v: &mut [T], cmp: F, ctl: &Control) -> Result<()>
where
    T: Copy + Send + Sync,
    F: Fn(&T, &T) -> Cmp + Sync,
{
    let n = v.len();
    v.par_chunks_mut(SORT_PIECE).try_for_each(|run| {
        ctl.check()?;
        run.sort_unstable_by(&cmp);
        Ok(())
    })?;
    if n <= SORT_PIECE {
        return Ok(());
    }
    let mut buf: Vec<T> = Vec::new();
    buf.try_reserve_exact(n).map_err(|_| {
        CoreError::OutOfMemory(format!(
            "sorting {n} rows needs {} more bytes than this machine can provide",
            std::mem::size_of_val(v)
        ))
    })?;
    buf.extend_from_slice(v);
    let mut width = SORT_PIECE;
    let mut in_v = true;
    while width < n {
        let (src, dst): (&[T], &mut [T]) = if in_v {
            (&*v, &mut buf[..])
        } else {
            (&buf[..], &mut *v)
        };
        dst.par_chunks_mut(2 * width)
            .zip(src.par_chunks(2 * width))
            .try_for_each(|(d, s)| {
                let (a, b) = s.split_at(width.min(s.len()));
                d.par_chunks_mut(SORT_PIECE)
                    .enumerate()
                    .try_for_each(|(p, out)| {
                        ctl.check()?;
                        let k0 = p * SORT_PIECE;
                        let i0 = co_rank(k0, a, b, &cmp);
                        let i1 = co_rank(k0 + out.len(), a, b, &cmp);
                        merge_into(&a[i0..i1], &b[k0 - i0..k0 + out.len() - i1], out, &cmp);
                        Ok(())
                    })
            })?;
        in_v = !in_v;
        width *= 2;
    }
    if !in_v {
        ctl.check()?;
        v.par_chunks_mut(SORT_PIECE)
            .zip(buf.par_chunks(SORT_PIECE))
            .for_each(|(d, s)| d.copy_from_slice(s));
    }
    Ok(())
}

/// `(0..n).map(f)` in parallel, in order, in blocks of a few milliseconds between which `ctl` is
/// checked.
pub fn par_map_checked<U: Send>(
    n: usize,
    ctl: &Control,
    f: impl Fn(usize) -> U + Sync,
) -> Result<Vec<U>> {
    const BLOCK: usize = 1 << 15;
    let mut out = Vec::with_capacity(n);
    for lo in (0..n).step_by(BLOCK) {
        ctl.check()?;
        out.par_extend(
            (lo..(lo + BLOCK).min(n))
                .into_par_iter()
                .with_min_len(1 << 12)
                .map(&f),
        );
    }
    Ok(out)
}

/// How many of the first `k` elements of the merge of sorted `a` and `b` come from `a` (`a`
/// first on ties).
fn co_rank<T>(k: usize, a: &[T], b: &[T], cmp: &impl Fn(&T, &T) -> Cmp) -> usize {
    let (mut lo, mut hi) = (k.saturating_sub(b.len()), k.min(a.len()));
    while lo < hi {
        let i = (lo + hi) / 2;
        // Too few from `a` while a[i] belongs before b[k - i - 1].
        if cmp(&a[i], &b[k - i - 1]) != Cmp::Greater {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    lo
}

/// Merges sorted `a` and `b` (`a` first on ties) into `out` (`out.len() == a.len() + b.len()`).
fn merge_into<T: Copy>(a: &[T], b: &[T], out: &mut [T], cmp: &impl Fn(&T, &T) -> Cmp) {
    let (mut i, mut j) = (0, 0);
    for slot in out.iter_mut() {
        if j == b.len() || (i < a.len() && cmp(&a[i], &b[j]) != Cmp::Greater) {
            *slot = a[i];
            i += 1;
        } else {
            *slot = b[j];
            j += 1;
        }
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

    /// The checked sort gives exactly the sorted sequence (as rayon's sort), at 1 and 3 threads,
    /// on sizes around the piece boundaries, with many duplicates, and for f64 by total order.
    #[test]
    fn checked_sort_is_the_sort_whatever_the_threads() {
        let mut rng = crate::rng::stream(7, 0);
        for &n in &[
            0,
            1,
            5,
            SORT_PIECE,
            SORT_PIECE + 1,
            3 * SORT_PIECE + 17,
            300_001,
        ] {
            let keys: Vec<(u128, u64)> = (0..n)
                .map(|_| {
                    use rand::Rng;
                    (
                        rng.random_range(0..n as u128 / 3 + 1),
                        rng.random::<u64>() % 5,
                    )
                })
                .collect();
            let floats: Vec<f64> = keys
                .iter()
                .map(|k| {
                    let x = (k.0 as f64 - n as f64 / 6.0) / 7.0;
                    if k.1 == 0 {
                        -0.0
                    } else {
                        x
                    }
                })
                .collect();
            let mut want = keys.clone();
            want.par_sort_unstable();
            let mut want_f = floats.clone();
            want_f.par_sort_unstable_by(|a, b| a.total_cmp(b));
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut got = keys.clone();
                pool.install(|| par_sort_checked(&mut got, |a, b| a.cmp(b), &Control::new()))
                    .unwrap();
                assert_eq!(got, want, "n {n}, {threads} threads");
                let mut got_f = floats.clone();
                pool.install(|| {
                    par_sort_checked(&mut got_f, |a, b| a.total_cmp(b), &Control::new())
                })
                .unwrap();
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got_f), bits(&want_f), "n {n}, {threads} threads");
            }
        }
    }

    #[test]
    fn checked_sort_stops_when_cancelled() {
        let mut v: Vec<u64> = (0..1_000_000u64).rev().collect();
        let c = Control::new();
        c.cancel();
        assert_eq!(
            par_sort_checked(&mut v, |a, b| a.cmp(b), &c),
            Err(CoreError::Cancelled)
        );
    }
}
