//! The thread pool every parallel core runs on.
//!
//! `growthmachine.set_num_threads(n)` (or env `GROWTHMACHINE_NUM_THREADS`) replaces the pool; the
//! bindings run each long call inside [`install`], so rayon's parallel iterators in the cores use it.
//! Results never depend on the thread count (see the crate docs for the chunking rules).

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::{Arc, OnceLock, RwLock};

/// Rows per parallel chunk used by cores that have no better natural unit. Fixed, so that the
/// split of the work, the random streams and the order of reductions do not depend on threads.
pub const CHUNK: usize = 16_384;

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

/// Default: env `GROWTHMACHINE_NUM_THREADS` if set to a positive integer, else the number of CPUs.
fn default_threads() -> usize {
    std::env::var("GROWTHMACHINE_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Replaces the pool with one of `n` threads (`n >= 1`).
pub fn set_num_threads(n: usize) {
    assert!(n >= 1, "set_num_threads needs n >= 1");
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
    use rayon::prelude::*;

    #[test]
    fn pool_size_follows_setting() {
        set_num_threads(1);
        assert_eq!(install(rayon::current_num_threads), 1);
        set_num_threads(2);
        assert_eq!(install(rayon::current_num_threads), 2);
        let s: u64 = install(|| (0..1000u64).into_par_iter().sum());
        assert_eq!(s, 499_500);
    }
}
