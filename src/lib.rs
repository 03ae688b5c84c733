//! Rust cores of growthmachine.
//!
//! Each module under `src/<module>/` is a pure Rust core with no PyO3 types, testable with plain
//! `cargo test`. The thin Python bindings live in `src/python/` and are compiled only with the
//! `python` feature, which maturin enables when it builds the extension `growthmachine._core`.
//!
//! Shared conventions every core follows:
//! - errors are [`error::CoreError`]; bad input is `CoreError::Invalid { arg, msg }` naming the argument;
//! - long work takes a [`control::Control`] and calls `check()` regularly (Ctrl-C, time limits) and
//!   `advance()` for progress;
//! - parallel work runs on the pool of [`parallel`] and is deterministic whatever the thread count:
//!   work is split into chunks of a fixed size (never by thread count), each chunk draws from its own
//!   random stream ([`rng::stream`]), and partial results are reduced in chunk order;
//! - persistent state goes through [`state`] (serde, with a kind and a format version);
//! - maths more than one core needs lives once at this level ([`numeric`], [`special`], [`simd`],
//!   and [`parallel::ordered`] for chunk-ordered reductions).

pub mod control;
pub mod error;
pub mod numeric;
pub mod parallel;
pub mod rng;
pub mod simd;
pub mod special;
pub mod state;
pub mod trace;

pub mod allocate;
pub mod insight;
pub mod planning;
pub mod realtime;
pub mod sim;
pub mod touchpoint;

#[cfg(feature = "python")]
mod python;
