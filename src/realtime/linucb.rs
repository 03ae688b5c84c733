//! LinUCB, disjoint (Li, Chu, Langford and Schapire 2010, algorithm 1).
//!
//! Each action keeps a ridge regression (`A_a = ridge * I + sum z z^T`, `b_a = sum r z`); the
//! index is `theta_a . z + alpha * sqrt(z^T A_a^{-1} z)` and the action with the largest index is
//! chosen (ties: the lowest action index, as `numpy.argmax`). `A_a^{-1}` and `theta_a` are kept
//! up to date by Sherman-Morrison rank-one updates (see [`super::arms`]), never by an inverse.

/// The upper confidence index.
#[inline(always)]
pub fn index(mean: f64, quad: f64, alpha: f64) -> f64 {
    mean + alpha * quad.max(0.0).sqrt()
}
