//! The thread pool every parallel core runs on.
//!
//! `growthmachine.set_num_threads(n)` (or env `GROWTHMACHINE_NUM_THREADS`) replaces the pool; the
//! bindings run each long call inside [`install`], so rayon's parallel iterators in the cores use it.
//! Results never depend on the thread count (see the crate docs for the chunking rules).
//!
//! A thread count is valid in `1..=`[`max_threads`] (checked by [`check_threads`], the one
//! definition the Python API, the environment variable and the CLI all use).

use crate::control::Control;
use crate::error::Result;
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::{Arc, OnceLock, RwLock};

/// Rows per parallel chunk used by cores that have no better natural unit. Fixed, so that the
/// split of the work, the random streams and the order of reductions do not depend on threads.
pub const CHUNK: usize = 16_384;

/// Chunks processed between two reductions of [`ordered`] (bounds the memory of partial results).
pub const BATCH: usize = 64;

/// The chunk-ordered reduction every core uses: runs `work(chunk_index, rows)` over the chunks of
/// `ch` rows of `0..n` in parallel (`ch` a constant of the caller, never the thread count) and
/// feeds the results to `reduce` in chunk order, so that float sums do not depend on the thread
/// count. Batches of [`BATCH`] chunks bound the memory held; `ctl` is checked before each chunk.
pub fn ordered<R: Send>(
    n: usize,
    ch: usize,
    ctl: &Control,
    work: impl Fn(usize, std::ops::Range<usize>) -> R + Sync,
    mut reduce: impl FnMut(usize, R),
) -> Result<()> {
    let nc = n.div_ceil(ch);
    let mut c0 = 0;
    while c0 < nc {
        ctl.check()?;
        let c1 = (c0 + BATCH).min(nc);
        // A chunk that starts after Ctrl-C is skipped: a batch of heavy chunks (KMeans on 64
        // centers) takes a second, a chunk a few milliseconds.
        let parts: Vec<Option<R>> = (c0..c1)
            .into_par_iter()
            .map(|c| (!ctl.is_cancelled()).then(|| work(c, c * ch..((c + 1) * ch).min(n))))
            .collect();
        // Once this passes, no chunk was skipped (cancellation is never undone).
        ctl.check()?;
        for (i, r) in parts.into_iter().enumerate() {
            reduce(c0 + i, r.expect("a chunk is skipped only after Ctrl-C"));
        }
        c0 = c1;
    }
    Ok(())
}

fn slot() -> &'static RwLock<Option<Arc<ThreadPool>>> {
    static POOL: OnceLock<RwLock<Option<Arc<ThreadPool>>>> = OnceLock::new();
    POOL.get_or_init(|| RwLock::new(None))
}

fn build(n: usize) -> Arc<ThreadPool> {
    Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("growthmachine-{i}"))
            .build()
            .expect("cannot start the growthmachine thread pool"),
    )
}

/// The environment variable that sets the default thread count.
pub const ENV_THREADS: &str = "GROWTHMACHINE_NUM_THREADS";

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The most threads a pool may have: 4 per CPU, and at least 8. More threads than that only add
/// switching and memory (a pool of 10,000 threads made a small call run for minutes).
pub fn max_threads() -> usize {
    4 * cpus().max(2)
}

/// `n` if it is a valid thread count (`1..=max_threads()`), else the reason, without the name of
/// the argument or the value given (the caller adds both).
pub fn check_threads(n: u128) -> std::result::Result<usize, String> {
    let max = max_threads();
    match usize::try_from(n) {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ if n == 0 => Err("must be a positive integer".to_string()),
        _ => Err(format!(
            "must be at most {max} (4 threads per CPU, at least 8)"
        )),
    }
}

/// The thread count env `GROWTHMACHINE_NUM_THREADS` asks for: `Ok(None)` when unset or blank,
/// `Err` (naming the variable) when it is not an integer in `1..=max_threads()`.
pub fn env_threads() -> std::result::Result<Option<usize>, String> {
    let Ok(v) = std::env::var(ENV_THREADS) else {
        return Ok(None);
    };
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let n: u128 = v
        .parse()
        .map_err(|_| format!("{ENV_THREADS}: must be a positive integer, got {v:?}"))?;
    check_threads(n)
        .map(Some)
        .map_err(|m| format!("{ENV_THREADS}: {m}, got {v:?}"))
}

/// Default: env `GROWTHMACHINE_NUM_THREADS` if valid (the extension refuses to load when it is
/// set but invalid), else the number of CPUs.
fn default_threads() -> usize {
    env_threads().ok().flatten().unwrap_or_else(cpus)
}

/// Replaces the pool with one of `n` threads (`1 <= n <= max_threads()`, see [`check_threads`]).
pub fn set_num_threads(n: usize) {
    assert!(
        (1..=max_threads()).contains(&n),
        "set_num_threads needs 1 <= n <= max_threads()"
    );
    *slot().write().unwrap_or_else(|e| e.into_inner()) = Some(build(n));
}

pub fn pool() -> Arc<ThreadPool> {
    if let Some(p) = slot().read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return p.clone();
    }
    let mut w = slot().write().unwrap_or_else(|e| e.into_inner());
    w.get_or_insert_with(|| build(default_threads())).clone()
}

pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Runs `f` on the growthmachine pool.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_size_follows_setting() {
        set_num_threads(1);
        assert_eq!(install(rayon::current_num_threads), 1);
        set_num_threads(2);
        assert_eq!(install(rayon::current_num_threads), 2);
        let s: u64 = install(|| (0..1000u64).into_par_iter().sum());
        assert_eq!(s, 499_500);
    }

    #[test]
    fn thread_counts_are_capped() {
        let max = max_threads();
        assert!(max >= 8);
        assert_eq!(check_threads(1), Ok(1));
        assert_eq!(check_threads(max as u128), Ok(max));
        assert!(check_threads(0).unwrap_err().contains("positive"));
        let e = check_threads(max as u128 + 1).unwrap_err();
        assert!(e.contains(&format!("at most {max}")), "{e}");
        assert!(check_threads(1u128 << 64).is_err());
    }
}
