//! LinUCB, disjoint (Li, Chu, Langford and Schapire 2010, algorithm 1).
//!
//! Each action keeps a ridge regression (`A_a = ridge * I + sum z z^T`, `b_a = sum r z`); the
//! index is `theta_a . z + alpha * sqrt(z^T A_a^{-1} z)` and the action with the largest index is
//! chosen (ties: the lowest action index, as `numpy.argmax`). `A_a^{-1}` and `theta_a` are kept
//! up to date by Sherman-Morrison rank-one updates (see [`super::arms`]), never by an inverse.

use super::kernels::argmax;

/// The upper confidence index.
#[inline(always)]
pub fn index(mean: f64, quad: f64, alpha: f64) -> f64 {
    mean + alpha * quad.max(0.0).sqrt()
}

/// The index of every action for one decision, from each action's `theta_a . z` (`means`) and
/// `z^T A_a^{-1} z` (`quads`).
#[inline(always)]
pub fn index_row(means: &[f64], quads: &[f64], alpha: f64, out: &mut [f64]) {
    for a in 0..out.len() {
        out[a] = index(means[a], quads[a], alpha);
    }
}

/// The probability of each action (`p`, zeroed by the caller): deterministic, so one-hot on the
/// largest index.
pub fn probabilities(means: &[f64], quads: &[f64], alpha: f64, p: &mut [f64]) {
    let idx: Vec<f64> = (0..p.len())
        .map(|a| index(means[a], quads[a], alpha))
        .collect();
    p[argmax(&idx)] = 1.0;
}
