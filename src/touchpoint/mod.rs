//! `touchpoint` core (pure Rust, no PyO3 types): off-site exposure frequency planning.
//!
//! - `response`: per-segment, per-channel response curves (Hill with free slope, plus opt-out
//!   rates) fitted from exposure logs with randomised frequency arms, pooled across segments.
//! - `plan`: the frequency planner: every user is a multiple-choice item over (channel, level),
//!   priced by the allocation core's Lagrangian solver, then laid out over the days within caps.

pub mod plan;
pub mod response;
