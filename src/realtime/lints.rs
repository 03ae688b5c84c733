//! Linear Thompson sampling (Agrawal and Goyal 2013) on the same per-action ridge regressions as
//! LinUCB: `theta~_a ~ N(theta_a, v^2 A_a^{-1})`, choose `argmax_a theta~_a . z`.
//!
//! Only the scalar `theta~_a . z` matters for the decision and, for a given `z`, it is exactly
//! `N(theta_a . z, v^2 z^T A_a^{-1} z)`; so one standard normal per action and decision is drawn
//! instead of a `d`-dimensional one (same distribution of decisions, `d` times fewer draws).

//!
//! LogisticTS decides the same way on its logits (see [`super::logistic_ts`]).

use super::kernels::argmax;
use crate::control::Control;
use crate::error::Result;
use crate::rng::Rng;
use rand::Rng as _;
use rand_distr::StandardNormal;

/// Monte Carlo draws of [`probabilities`] between two checks for Ctrl-C (well under 10 ms).
pub const SAMPLES_PER_CHECK: usize = 4096;

/// A posterior sample of the action's mean reward given a standard normal draw `eps`.
#[inline(always)]
pub fn sample(mean: f64, quad: f64, v: f64, eps: f64) -> f64 {
    mean + v * quad.max(0.0).sqrt() * eps
}

/// A posterior sample of every action's mean reward for one decision (one standard normal per
/// action from `r`, in action order), from `theta_a . z` (`means`) and `z^T A_a^{-1} z`
/// (`quads`).
#[inline(always)]
pub fn sample_row(r: &mut Rng, means: &[f64], quads: &[f64], v: f64, out: &mut [f64]) {
    for a in 0..out.len() {
        let e: f64 = r.sample(StandardNormal);
        out[a] = sample(means[a], quads[a], v, e);
    }
}

/// The probability of each action (`p`, zeroed by the caller): the share of `n_samples`
/// decisions drawn from `r` that choose it. Checks `ctl` every [`SAMPLES_PER_CHECK`] draws.
#[allow(clippy::too_many_arguments)]
pub fn probabilities(
    r: &mut Rng,
    means: &[f64],
    quads: &[f64],
    v: f64,
    n_samples: usize,
    p: &mut [f64],
    ctl: &Control,
) -> Result<()> {
    let mut s = vec![0.0; p.len()];
    for k in 0..n_samples {
        if k % SAMPLES_PER_CHECK == 0 {
            ctl.check()?;
        }
        sample_row(r, means, quads, v, &mut s);
        p[argmax(&s)] += 1.0;
    }
    for pa in p.iter_mut() {
        *pa /= n_samples as f64;
    }
    Ok(())
}
