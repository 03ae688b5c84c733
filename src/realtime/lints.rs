//! Linear Thompson sampling (Agrawal and Goyal 2013) on the same per-action ridge regressions as
//! LinUCB: `theta~_a ~ N(theta_a, v^2 A_a^{-1})`, choose `argmax_a theta~_a . z`.
//!
//! Only the scalar `theta~_a . z` matters for the decision and, for a given `z`, it is exactly
//! `N(theta_a . z, v^2 z^T A_a^{-1} z)`; so one standard normal per action and decision is drawn
//! instead of a `d`-dimensional one (same distribution of decisions, `d` times fewer draws).

/// A posterior sample of the action's mean reward given a standard normal draw `eps`.
#[inline(always)]
pub fn sample(mean: f64, quad: f64, v: f64, eps: f64) -> f64 {
    mean + v * quad.max(0.0).sqrt() * eps
}
