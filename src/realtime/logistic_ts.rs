//! Bayesian logistic regression per action with Thompson sampling (Chapelle and Li 2011), kept
//! online by a Laplace approximation updated with one Newton step per event (the extended Kalman
//! filter form): with `p = sigmoid(m . z)`, `w = p (1 - p)`,
//! `S <- S - w (S z)(S z)^T / (1 + w z^T S z)` (Sherman-Morrison on the covariance) and
//! `m <- m + S_new z (y - p)`. Rewards must lie in [0, 1] (clicks, conversions, rates).
//! Decisions: `argmax_a` of a sample of the logit `N(m_a . z, v^2 z^T S_a z)` (the sigmoid is
//! monotone, so comparing logits is comparing probabilities).

/// Curvature used in the update, floored so that a confident model keeps learning.
#[inline(always)]
pub fn weight(p: f64) -> f64 {
    (p * (1.0 - p)).max(1e-6)
}
