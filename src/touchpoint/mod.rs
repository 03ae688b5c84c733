//! `touchpoint` core (pure Rust, no PyO3 types): off-site exposure frequency planning.
//!
//! - `response`: per-segment, per-channel response curves (Hill with free slope, plus opt-out
//!   rates) fitted from exposure logs with randomised frequency arms, pooled across segments.
//! - `height`: a per-user multiplier of the curves' height from observable features (ridge on
//!   the randomised arms, precision by empirical Bayes).
//! - `plan`: the frequency planner: every user is a multiple-choice item over (channel, level),
//!   priced by the allocation core's Lagrangian solver, then laid out over the days within caps.

pub mod height;
pub mod plan;
pub mod response;
