//! Epsilon-greedy on per-action ridge regressions: with probability `epsilon` a uniformly random
//! action, otherwise the action with the largest estimated mean `theta_a . z` (ties: lowest
//! index). Its logging propensities are exact: `(1 - epsilon) [a = greedy] + epsilon / K`.

/// Propensity of `action` when `greedy` is the greedy action among `k` actions.
#[inline(always)]
pub fn propensity(action: usize, greedy: usize, epsilon: f64, k: usize) -> f64 {
    epsilon / k as f64 + if action == greedy { 1.0 - epsilon } else { 0.0 }
}
