//! Developer traces on stderr, switched on by environment variables read once per process (the
//! first time a core asks), never on every iteration.
//!
//! - [`ENV_ALLOC_TRACE`] (`GM_ALLOC_TRACE`, any value): the allocation solver's phase timings and
//!   Newton steps (for profiling; off otherwise).

use std::sync::OnceLock;

/// Set (to any value) to print the allocation solver's trace on stderr.
pub const ENV_ALLOC_TRACE: &str = "GM_ALLOC_TRACE";

/// True if [`ENV_ALLOC_TRACE`] was set when first asked.
#[inline]
pub fn alloc_trace() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(ENV_ALLOC_TRACE).is_some())
}
