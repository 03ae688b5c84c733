//! Response curves of off-site exposures: conversion and opt-out as functions of the number of
//! exposures `n` a user receives over the horizon, per segment `g` and channel `c`, fitted from a
//! log with randomised frequency arms and pooled across segments.
//!
//! Model (per cell `(g, c)`; `b, m` in (0, 1), `k, h, a, d > 0`):
//!
//! - conversion `P(y = 1 | n) = b + A * H(n)` with `A = (1 - b) m` and the Hill curve
//!   `H(n) = n^h / (n^h + k^h)` (Hill 1910; with a free slope `h` the curve may be S-shaped, as in
//!   the media-mix response curves of Jin et al. 2017, "Bayesian methods for media mix modeling
//!   with carryover and shape effects"). `b` is the baseline at `n = 0`, `A` the maximal
//!   incremental conversion and `k` the exposures giving half of it. Writing `A = (1 - b) m` keeps
//!   every probability in (0, 1) for any value of the unconstrained parameters
//!   `theta = (logit b, logit m, log k, log h)`.
//! - opt-out `P(o = 1 | n) = 1 - exp(-(a n + d W(n)))` with `(log a, log d)`: every exposure
//!   carries the hazard `a + d F`, `F` the user's decayed number of earlier touches (a per-touch
//!   hazard growing with fatigue), and `W(n)` is the fatigue load of `n` exposures: their `F`
//!   summed over the touches as the log's exposures were laid out over the window
//!   ([`TouchLayout`]: the planner's layout over `days` days, fatigue halving every `halflife`
//!   days; `load`). Without a layout (the default, and states written before it) the load is
//!   the quadratic `W = n^2` (`a n + d n^2`). Opt-outs of rows with `n = 0` carry no
//!   information on the channel's exposures (the model gives them probability 0) and are left
//!   out of the opt-out likelihood.
//! - prior fatigue `f >= 0` (optional, per row: the user's decayed number of earlier touches when
//!   the window began) enters the opt-out through the same fatigue: it decays over the window
//!   and adds `d f P(n)` to the load, `P(n)` its decayed weight summed over the touches
//!   (quadratic load: `P = 2 n`, the increments of `a n + d n^2` continued from `f`:
//!   `Lambda(n | f) = Lambda(n + f) - Lambda(f) = a n + d (n^2 + 2 n f)`). No parameter is
//!   added: the extrapolation to users more fatigued than any in the log rests on the fatigue
//!   `d` measured within the windows, so segments never observed at that fatigue (e.g. users
//!   the previous window touched heavily, when only fresh users were randomised) get their
//!   higher opt-out rate. Per `(g, c, n)` and class of prior fatigue (doubling widths) the
//!   counts keep the fatigue summed over the users who stayed (exact) and over those who
//!   opted out (whose log-likelihood uses the class's mean fatigue: exact when they share it,
//!   a Jensen approximation otherwise).
//! - prior fatigue also damps the conversion: a tired user's `n` exposures count as
//!   `n / (1 + r f)` in the Hill curve (tired users need more exposures for the same effect).
//!   Within one window the damping is not separable from the Hill shape, so `r` is identified
//!   only by rows of different prior fatigue: one rate shared by the channels (fatigue is the
//!   user's) is the mode over `log r` of the channel-level fits' summed log posterior (a
//!   profile likelihood) plus a weakly informative prior (`fit::FATIGUE_RATE_PRIOR`: it
//!   decides only where the profile is flat), found by a coarse scan and golden section, with
//!   the posterior standard deviation of `log r` from the curvature there; a log without prior
//!   fatigue gives `r = 0` (no damping assumed). The conversion likelihood uses each class's mean
//!   fatigue. The same rows tell how much of the prior fatigue acts on the opt-out over the
//!   window (it keeps decaying as the window's exposures arrive): `c f P(n)` with a share `c`
//!   chosen on a grid (`fit::FATIGUE_CARRIES`) by the opt-out fits' profile likelihood, 1 (the
//!   structural value) on ties and without tired rows (with a layout, `P(n)` already holds the
//!   decay, so `c` near 1 is expected).
//!
//! Both likelihoods are Bernoulli and depend on the log only through the sufficient statistics
//! per `(g, c, n)`: weighted trials, conversions and opt-outs ([`Counts`]). The log is aggregated
//! once, in fixed chunks of rows whose partial tables are added in chunk order, so the counts do
//! not depend on the thread count; counts merge by addition, which is what feedback
//! (`partial_fit`) needs. With unit (or dyadic) weights every sum is exact, so merging the counts
//! of two logs gives exactly the counts of their concatenation.
//!
//! Hierarchical shrinkage and the Laplace approximation (Gelman et al. 2013, "Bayesian Data
//! Analysis", ch. 5 and 13):
//!
//! 1. Channel level: the counts of all segments are pooled and fitted with a weak prior
//!    `N(center, scale^2)` per unconstrained parameter ([`Prior`]); with two or more channels
//!    with data, the shape of the conversion curve (`log k`, `log h`) is then pooled across
//!    channels (`fit::shape_prior`: a precision-weighted centre and a DerSimonian-Laird
//!    spread) and the channels are fitted again with that prior: mode `mu_c`, covariance
//!    `V_c`.
//! 2. Segment spread `tau_c` (per channel and parameter), unless given: every segment with data is
//!    fitted with the weak prior re-centred at `mu_c`, giving `theta_gc` and its variance `v_gc`
//!    (for the heights `logit b`, `logit m`, `log a`: a second fit with the shape `log k, log h`
//!    and the fatigue `log d` pinned at `mu_c`, since heights and shapes trade off within the
//!    observed levels and a free fit's variance of a height says little about the segments);
//!    then the moment estimator of DerSimonian & Laird (1986, "Meta-analysis in clinical
//!    trials") with the centre `mu_c` known, corrected for the weak prior's shrinkage
//!    `r = 1 - v / scale^2`: `tau^2 = max(0, (sum w (theta - mu)^2 - sum r) / sum r^2 w)` with
//!    `w = 1 / v` over the segments with data (`r = 1`: the usual `(Q - K) / sum w`), kept
//!    within `[TAU_MIN, scale]`.
//! 3. Segments: the mode of the log-likelihood plus the log-density of `N(mu_c, tau_c^2)` by
//!    damped Newton (Levenberg damping when the Hessian is not negative definite, a step cap and
//!    Armijo backtracking) with the analytic gradient and Hessian; the posterior covariance is the
//!    inverse of the negative Hessian at the mode. A segment with little data stays near `mu_c`
//!    (it borrows strength); one with much data follows its own counts.
//!
//! Approximations: `mu_c` and `tau_c` are plugged in for the modes; the covariance of a segment
//! adds the first-order effect of the uncertainty of `mu_c` (Kass & Steffey 1989) but not that of
//! `tau_c`; with fewer than two segments with data the spread keeps the weak prior's scale; the
//! per-segment variances in step 2 are posterior variances under the weak prior, which for tiny
//! segments are below their sampling variances.
//!
//! A cell without data takes the channel-level curve with covariance `V_c + diag(tau_c^2)` (the
//! predictive of a new segment); a channel without any data keeps the weak prior and is flagged
//! uninformed (`informed[c] == false`), so a planner knows to explore it.
//!
//! Intervals of the incremental conversion `A H(n)` come from the delta method on its logarithm,
//! `log(1 - b) + log m + log H(n)`, which is linear-friendly, keeps the bounds positive and below
//! the estimate's natural ceiling, and needs no random draws: the fit is a deterministic function
//! of the counts.

use crate::control::Control;
use crate::error::{check_fits_memory, check_len, checked_bytes, CoreError, Result};
use crate::numeric::sigmoid;
use crate::numeric::{cholesky_solve, invert_spd};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

mod cell;
mod counts;
mod fit;
mod load;

use cell::*;
use counts::*;
pub use counts::{Counts, Log};
pub use fit::{fit, natural, Curves, ResponseFit};
use load::loads_at;
pub use load::{TouchLayout, MAX_LAYOUT_DAYS};

/// Largest number of exposures per row a log may hold (counts are dense in `n`).
pub const MAX_EXPOSURES: u32 = 10_000;
/// Unconstrained parameters per cell: `logit b, logit m, log k, log h` then `log a, log d`.
pub const N_PARAMS: usize = 6;
/// Names of the unconstrained parameters, in order.
pub const PARAM_NAMES: [&str; N_PARAMS] =
    ["logit_b", "logit_m", "log_k", "log_h", "log_a", "log_d"];
/// The parameters of the conversion curve's shape (`log k`, `log h`), pooled across channels.
const SHAPE: [usize; 2] = [2, 3];
/// The parameters pinned at the channel's values when the spread of the others is estimated
/// (`log k`, `log h`, `log d`: see `fit`).
const PINNED: [usize; 3] = [2, 3, 5];
/// Smallest segment spread `tau` (complete pooling would make the penalty infinite).
pub const TAU_MIN: f64 = 1e-2;
/// Rows per aggregation chunk (at least the size of the table), and chunks counted at once.
const ROWS: usize = 1 << 18;
const BATCH: usize = 8;
/// Rows per chunk of [`ResponseFit::predict`].
const PREDICT_ROWS: usize = 1 << 16;
const NC: usize = 4;
/// Parameters of the opt-out curve (`log a`, `log d`).
pub const NO: usize = 2;

const STATE_KIND: &str = "growthmachine.touchpoint.Response";
const STATE_VERSION: u32 = 1;

/// The priors of the fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    /// Weak prior of the channel-level parameters (unconstrained, in [`PARAM_NAMES`] order).
    pub center: [f64; N_PARAMS],
    pub scale: [f64; N_PARAMS],
    /// Spread of the segments around their channel; `None`: empirical Bayes per channel.
    pub tau: Option<[f64; N_PARAMS]>,
    /// Newton iterations per fit.
    pub max_iter: usize,
}

impl Default for Prior {
    /// Centre: baseline 0.5 and half of the non-baseline users reachable (logit 0), half of the
    /// effect at 6 exposures (the marketer's rule of thumb; scale 2 on the log: 0.1 to 330 within
    /// two sd), opt-out hazard 1 % per exposure and fatigue 0.1 %. The slope's prior is centred
    /// on 1 (no S-shape) with scale 1 on the log (0.14 to 7.4 within two sd): randomised arms
    /// on noisy conversions identify the curve's height far better than its shape, so a tight
    /// slope prior decides the shape. Google Meridian's `slope_rf ~ LogNormal(0.7, 0.4)`
    /// (median 2), used before, held the slope at 2 where the data said 0.8 and moved the
    /// half-effect instead (the fatigued world's randomised round, benchmarks/RESULTS.md). The
    /// other scales are wide enough that a few hundred rows per level override them.
    fn default() -> Self {
        Prior {
            center: [0.0, 0.0, 6f64.ln(), 0.0, 0.01f64.ln(), 0.001f64.ln()],
            scale: [5.0, 3.0, 2.0, 1.0, 5.0, 5.0],
            tau: None,
            max_iter: 200,
        }
    }
}

impl Prior {
    pub fn validate(&self) -> Result<()> {
        if self.center.iter().any(|v| !v.is_finite()) {
            return Err(CoreError::invalid("center", "must be finite"));
        }
        if self.scale.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(CoreError::invalid("scale", "must be finite and > 0"));
        }
        if let Some(t) = self.tau {
            if t.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(CoreError::invalid(
                    "tau",
                    format!("must be finite and > 0, got {t:?}"),
                ));
            }
        }
        if self.max_iter == 0 {
            return Err(CoreError::invalid("max_iter", "must be >= 1"));
        }
        Ok(())
    }

    /// The prior with the Hill slope's weak prior `log h ~ N(ln median, sd^2)` (errors name
    /// `slope_prior`).
    pub fn with_slope(mut self, median: f64, sd: f64) -> Result<Prior> {
        if !(median.is_finite() && median > 0.0 && sd.is_finite() && sd > 0.0) {
            return Err(CoreError::invalid(
                "slope_prior",
                format!("(median, sd) must be finite and > 0, got ({median}, {sd})"),
            ));
        }
        self.center[3] = median.ln();
        self.scale[3] = sd;
        Ok(self)
    }
}

/// Counts and the fit made from them: the state a model keeps between `partial_fit` calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub counts: Counts,
    pub prior: Prior,
    pub fit: ResponseFit,
}

impl Response {
    /// Fits `previous`'s counts, weighted by `forget` (1: all the past counts fully; 0.5: each
    /// update halves the weight of what came before, for a world that drifts), plus `new`.
    /// `layout`: how the new log's exposures were laid out (the opt-out's fatigue load,
    /// `load`); `None` keeps `previous`'s (the quadratic load without one). Logs of one model
    /// share one layout: a `previous` with another is an error naming `horizon_days` (or
    /// `fatigue_halflife`).
    pub fn fit(
        previous: Option<&Response>,
        new: Counts,
        prior: Prior,
        forget: f64,
        layout: Option<TouchLayout>,
        ctl: &Control,
    ) -> Result<Response> {
        if !(forget.is_finite() && forget > 0.0 && forget <= 1.0) {
            return Err(CoreError::invalid(
                "forget",
                format!("must be in (0, 1], got {forget}"),
            ));
        }
        if let Some(l) = &layout {
            l.validate()?;
        }
        let layout = match (previous.and_then(|p| p.fit.layout), layout) {
            (Some(old), Some(new)) if old != new => {
                let arg = if old.days != new.days {
                    "horizon_days"
                } else {
                    "fatigue_halflife"
                };
                return Err(CoreError::invalid(
                    arg,
                    format!(
                        "the model's logs were laid out over {} days with a fatigue half-life of \
                         {} days; this log has {} and {} (fit a new model)",
                        old.days, old.halflife, new.days, new.halflife
                    ),
                ));
            }
            (old, new) => new.or(old),
        };
        let counts = match previous {
            Some(p) => {
                let mut c = p.counts.clone();
                if forget < 1.0 {
                    c.scale(forget);
                }
                c.merge(&new)?;
                c
            }
            None => new,
        };
        let fit = fit(&counts, &prior, layout.as_ref(), ctl)?;
        Ok(Response { counts, prior, fit })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::state::sealed::to_bytes(STATE_KIND, STATE_VERSION, self)
    }

    /// Reads state written by [`Response::to_bytes`], checking every table's shape.
    pub fn from_bytes(b: &[u8]) -> Result<Response> {
        let mut r: Response = crate::state::sealed::from_bytes(STATE_KIND, &[STATE_VERSION], b)?;
        r.counts.fill_fatigue();
        r.counts.check()?;
        r.fit.check()?;
        r.prior
            .validate()
            .map_err(|e| CoreError::State(format!("response prior is malformed: {e}")))?;
        if (r.counts.n_groups, r.counts.n_channels) != (r.fit.n_groups, r.fit.n_channels) {
            return Err(CoreError::State("response counts and fit disagree".into()));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests;
