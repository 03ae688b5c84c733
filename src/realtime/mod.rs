//! `realtime` core (pure Rust, no PyO3 types): contextual bandits, budget pacing, session
//! policies and offline policy evaluation.
//!
//! One small file per algorithm (river-like): [`linucb`], [`lints`], [`logistic_ts`],
//! [`epsilon_greedy`] hold each policy's formulas (its index, its probabilities); [`policy`] is
//! the engine they share (per-action models in [`arms`], dense kernels in [`kernels`]); [`pacer`]
//! does budget pacing; [`ope`] the off-policy estimators.

#![allow(clippy::needless_range_loop)] // index loops read best in the numeric kernels

pub mod arms;
pub mod epsilon_greedy;
pub(crate) mod kernels;
pub mod lints;
pub mod linucb;
pub mod logistic_ts;
pub mod ope;
pub mod pacer;
pub mod policy;

pub use policy::{Algo, Config, Policy, Rows};
