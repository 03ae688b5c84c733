//! Epsilon-greedy on per-action ridge regressions: with probability `epsilon` a uniformly random
//! action, otherwise the action with the largest estimated mean `theta_a . z` (ties: lowest
//! index). Its logging propensities are exact: `(1 - epsilon) [a = greedy] + epsilon / K`.

use super::kernels::argmax;
use crate::rng::Rng;
use rand::Rng as _;

/// Propensity of `action` when `greedy` is the greedy action among `k` actions.
#[inline(always)]
pub fn propensity(action: usize, greedy: usize, epsilon: f64, k: usize) -> f64 {
    epsilon / k as f64 + if action == greedy { 1.0 - epsilon } else { 0.0 }
}

/// The index of every action for one decision: the estimated means, or, with probability
/// `epsilon` (drawn from `rng()`, made only when `epsilon > 0`), a uniformly drawn action given
/// the only finite top score.
#[inline(always)]
pub fn index_row(rng: impl FnOnce() -> Rng, means: &[f64], epsilon: f64, out: &mut [f64]) {
    out.copy_from_slice(means);
    if epsilon > 0.0 {
        let mut r = rng();
        if r.random::<f64>() < epsilon {
            let pick = r.random_range(0..out.len());
            for (a, o) in out.iter_mut().enumerate() {
                *o = if a == pick { f64::MAX } else { f64::MIN };
            }
        }
    }
}

/// The probability of each action (`p`): exact, from the greedy action of `means`.
pub fn probabilities(means: &[f64], epsilon: f64, p: &mut [f64]) {
    let (g, k) = (argmax(means), p.len());
    for (a, pa) in p.iter_mut().enumerate() {
        *pa = propensity(a, g, epsilon, k);
    }
}
