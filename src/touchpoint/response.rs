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
//! - opt-out `P(o = 1 | n) = 1 - exp(-(a n + d n^2))` with `(log a, log d)`: a constant hazard per
//!   exposure plus fatigue that makes later touches riskier. Opt-outs of rows with `n = 0` carry
//!   no information on the channel's exposures (the model gives them probability 0) and are left
//!   out of the opt-out likelihood.
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
//!    `N(center, scale^2)` per unconstrained parameter ([`Prior`]): mode `mu_c`, covariance
//!    `V_c`.
//! 2. Segment spread `tau_c` (per channel and parameter), unless given: every segment with data is
//!    fitted with the weak prior re-centred at `mu_c`, giving `theta_gc` and its variance `v_gc`;
//!    then the moment estimator of DerSimonian & Laird (1986, "Meta-analysis in clinical
//!    trials") with the centre `mu_c` known: `tau^2 = max(0, (sum w (theta - mu)^2 - K) / sum w)`
//!    with `w = 1 / v` over the `K` segments with data, kept within `[TAU_MIN, scale]`.
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
use crate::error::{check_len, CoreError, Result};
use crate::numeric::sigmoid;
use crate::numeric::{cholesky_solve, invert_spd};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Largest number of exposures per row a log may hold (counts are dense in `n`).
pub const MAX_EXPOSURES: u32 = 10_000;
/// Unconstrained parameters per cell: `logit b, logit m, log k, log h` then `log a, log d`.
pub const N_PARAMS: usize = 6;
/// Names of the unconstrained parameters, in order.
pub const PARAM_NAMES: [&str; N_PARAMS] =
    ["logit_b", "logit_m", "log_k", "log_h", "log_a", "log_d"];
/// Smallest segment spread `tau` (complete pooling would make the penalty infinite).
pub const TAU_MIN: f64 = 1e-2;
/// Rows per aggregation chunk (at least the size of the table), and chunks counted at once.
const ROWS: usize = 1 << 18;
const BATCH: usize = 8;
/// Rows per chunk of [`ResponseFit::predict`].
const PREDICT_ROWS: usize = 1 << 16;
const NC: usize = 4;
const NO: usize = 2;

const STATE_KIND: &str = "growthmachine.touchpoint.Response";
const STATE_VERSION: u32 = 1;

/// One exposure log: row `i` is a user of segment `group[i]` who received `exposures[i]` exposures
/// of channel `channel[i]` (the randomised frequency arm) with outcomes `converted[i]` and
/// `opted_out[i]` in [0, 1] and an optional weight >= 0.
#[derive(Clone, Copy, Debug)]
pub struct Log<'a> {
    pub group: &'a [u32],
    pub channel: &'a [u32],
    pub exposures: &'a [u32],
    pub converted: &'a [f64],
    pub opted_out: &'a [f64],
    pub weight: Option<&'a [f64]>,
}

/// Sufficient statistics of a log, dense over (group, channel, exposures): entry
/// `(g * n_channels + c) * n_levels + n`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub n_groups: usize,
    pub n_channels: usize,
    /// `1 + ` the largest number of exposures seen (0 for an empty log).
    pub n_levels: usize,
    pub trials: Vec<f64>,
    pub conversions: Vec<f64>,
    pub opt_outs: Vec<f64>,
    /// Rows per entry (unweighted).
    pub rows: Vec<u64>,
}

impl Counts {
    /// Counts of nothing, with room for `n_groups` x `n_channels` cells.
    pub fn empty(n_groups: usize, n_channels: usize) -> Counts {
        Counts::zeros(n_groups, n_channels, 0)
    }

    fn zeros(n_groups: usize, n_channels: usize, n_levels: usize) -> Counts {
        let len = n_groups * n_channels * n_levels;
        Counts {
            n_groups,
            n_channels,
            n_levels,
            trials: vec![0.0; len],
            conversions: vec![0.0; len],
            opt_outs: vec![0.0; len],
            rows: vec![0; len],
        }
    }

    /// Rows counted.
    pub fn n_obs(&self) -> u64 {
        self.rows.iter().sum()
    }

    /// Aggregates a log into counts (groups `< n_groups`, channels `< n_channels`). Errors name
    /// the argument and the first offending row.
    pub fn aggregate(
        log: &Log<'_>,
        n_groups: usize,
        n_channels: usize,
        ctl: &Control,
    ) -> Result<Counts> {
        let n = log.group.len();
        check_len("channel", log.channel.len(), n, "group")?;
        check_len("exposures", log.exposures.len(), n, "group")?;
        check_len("converted", log.converted.len(), n, "group")?;
        check_len("opted_out", log.opted_out.len(), n, "group")?;
        if let Some(w) = log.weight {
            check_len("weight", w.len(), n, "group")?;
        }
        let n_chunks = n.div_ceil(ROWS);
        ctl.set_total(2 * n_chunks as u64);
        // Pass 1: validation and the largest level (first error in row order).
        let maxes: Vec<Result<u32>> = (0..n_chunks)
            .into_par_iter()
            .map(|i| {
                ctl.check()?;
                let r = validate(log, i * ROWS, ((i + 1) * ROWS).min(n), n_groups, n_channels);
                ctl.advance(1);
                r
            })
            .collect();
        let mut max_n = 0u32;
        for m in maxes {
            max_n = max_n.max(m?);
        }
        let levels = if n == 0 { 0 } else { max_n as usize + 1 };
        let mut out = Counts::zeros(n_groups, n_channels, levels);
        if n == 0 {
            return Ok(out);
        }
        // Pass 2: partial tables of fixed chunks, added in chunk order.
        let rows = ROWS.max(out.trials.len());
        let n_chunks = n.div_ceil(rows);
        ctl.set_total(n_chunks as u64);
        let mut first = 0;
        while first < n_chunks {
            let last = (first + BATCH).min(n_chunks);
            let parts: Vec<Result<Counts>> = (first..last)
                .into_par_iter()
                .map(|i| {
                    ctl.check()?;
                    let mut p = Counts::zeros(n_groups, n_channels, levels);
                    p.count(log, i * rows, ((i + 1) * rows).min(n));
                    ctl.advance(1);
                    Ok(p)
                })
                .collect();
            for p in parts {
                out.add_same_shape(&p?);
            }
            first = last;
        }
        Ok(out)
    }

    fn count(&mut self, log: &Log<'_>, lo: usize, hi: usize) {
        let (nc, nl) = (self.n_channels, self.n_levels);
        for i in lo..hi {
            let e = (log.group[i] as usize * nc + log.channel[i] as usize) * nl
                + log.exposures[i] as usize;
            let w = log.weight.map_or(1.0, |w| w[i]);
            self.trials[e] += w;
            self.conversions[e] += w * log.converted[i];
            self.opt_outs[e] += w * log.opted_out[i];
            self.rows[e] += 1;
        }
    }

    fn add_same_shape(&mut self, o: &Counts) {
        for (a, b) in self.trials.iter_mut().zip(&o.trials) {
            *a += b;
        }
        for (a, b) in self.conversions.iter_mut().zip(&o.conversions) {
            *a += b;
        }
        for (a, b) in self.opt_outs.iter_mut().zip(&o.opt_outs) {
            *a += b;
        }
        for (a, b) in self.rows.iter_mut().zip(&o.rows) {
            *a += b;
        }
    }

    /// The same counts in a larger table (cells and levels keep their codes).
    fn resized(&self, n_groups: usize, n_channels: usize, n_levels: usize) -> Counts {
        let mut out = Counts::zeros(n_groups, n_channels, n_levels);
        for g in 0..self.n_groups {
            for c in 0..self.n_channels {
                for l in 0..self.n_levels {
                    let s = (g * self.n_channels + c) * self.n_levels + l;
                    let d = (g * n_channels + c) * n_levels + l;
                    out.trials[d] = self.trials[s];
                    out.conversions[d] = self.conversions[s];
                    out.opt_outs[d] = self.opt_outs[s];
                    out.rows[d] = self.rows[s];
                }
            }
        }
        out
    }

    /// Adds `other` (e.g. the next window's log) to these counts; the table grows to hold the
    /// groups, channels and levels of both.
    /// Multiplies every weighted count by `f` (rows stay counted as rows).
    pub fn scale(&mut self, f: f64) {
        for v in [&mut self.trials, &mut self.conversions, &mut self.opt_outs] {
            v.iter_mut().for_each(|x| *x *= f);
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        let g = self.n_groups.max(other.n_groups);
        let c = self.n_channels.max(other.n_channels);
        let l = self.n_levels.max(other.n_levels);
        if (g, c, l) != (self.n_groups, self.n_channels, self.n_levels) {
            *self = self.resized(g, c, l);
        }
        if (g, c, l) == (other.n_groups, other.n_channels, other.n_levels) {
            self.add_same_shape(other);
        } else {
            self.add_same_shape(&other.resized(g, c, l));
        }
    }

    fn check(&self) -> Result<()> {
        let len = self.n_groups * self.n_channels * self.n_levels;
        let ok = [&self.trials, &self.conversions, &self.opt_outs]
            .iter()
            .all(|v| v.len() == len && v.iter().all(|x| x.is_finite() && *x >= 0.0))
            && self.rows.len() == len
            && self.n_levels <= MAX_EXPOSURES as usize + 1;
        if ok {
            Ok(())
        } else {
            Err(CoreError::State("response counts are malformed".into()))
        }
    }

    /// The non-empty levels of cell `(g, c)`.
    fn cell(&self, g: usize, c: usize) -> Vec<Level> {
        let base = (g * self.n_channels + c) * self.n_levels;
        (0..self.n_levels)
            .filter(|&l| self.trials[base + l] > 0.0)
            .map(|l| Level::new(l, base + l, self))
            .collect()
    }

    /// The non-empty levels of channel `c`, all groups pooled (summed in group order).
    fn pooled(&self, c: usize) -> Vec<Level> {
        let mut t = vec![0.0; self.n_levels];
        let mut y = vec![0.0; self.n_levels];
        let mut o = vec![0.0; self.n_levels];
        for g in 0..self.n_groups {
            let base = (g * self.n_channels + c) * self.n_levels;
            for l in 0..self.n_levels {
                t[l] += self.trials[base + l];
                y[l] += self.conversions[base + l];
                o[l] += self.opt_outs[base + l];
            }
        }
        (0..self.n_levels)
            .filter(|&l| t[l] > 0.0)
            .map(|l| Level {
                n: l as f64,
                ln_n: (l as f64).ln(),
                t: t[l],
                y: y[l].min(t[l]),
                o: o[l].min(t[l]),
            })
            .collect()
    }
}

fn validate(
    log: &Log<'_>,
    lo: usize,
    hi: usize,
    n_groups: usize,
    n_channels: usize,
) -> Result<u32> {
    let bad = |arg: &str, i: usize, msg: String| {
        Err(CoreError::invalid(arg, format!("{msg} at row {i}")))
    };
    let mut max_n = 0u32;
    for i in lo..hi {
        if log.group[i] as usize >= n_groups {
            return bad(
                "group",
                i,
                format!("must be < {n_groups}, found {}", log.group[i]),
            );
        }
        if log.channel[i] as usize >= n_channels {
            return bad(
                "channel",
                i,
                format!(
                    "unknown channel code {} (must be < {n_channels})",
                    log.channel[i]
                ),
            );
        }
        let e = log.exposures[i];
        if e > MAX_EXPOSURES {
            return bad(
                "exposures",
                i,
                format!("must be <= {MAX_EXPOSURES}, found {e}"),
            );
        }
        max_n = max_n.max(e);
        for (arg, v) in [
            ("converted", log.converted[i]),
            ("opted_out", log.opted_out[i]),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(arg, i, format!("must be in [0, 1], found {v}"));
            }
        }
        if let Some(w) = log.weight {
            if !(w[i].is_finite() && w[i] >= 0.0) {
                return bad(
                    "weight",
                    i,
                    format!("must be finite and >= 0, found {}", w[i]),
                );
            }
        }
    }
    Ok(max_n)
}

/// Counts at one level of one cell.
#[derive(Clone, Copy, Debug)]
struct Level {
    n: f64,
    ln_n: f64,
    t: f64,
    y: f64,
    o: f64,
}

impl Level {
    fn new(l: usize, e: usize, c: &Counts) -> Level {
        // Rounding of weighted sums may leave conversions a hair above trials.
        Level {
            n: l as f64,
            ln_n: (l as f64).ln(),
            t: c.trials[e],
            y: c.conversions[e].min(c.trials[e]),
            o: c.opt_outs[e].min(c.trials[e]),
        }
    }
}

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
    /// two sd), opt-out hazard 1 % per exposure and fatigue 0.1 %. The slope's prior is
    /// Google Meridian's default for reach-and-frequency channels, `slope_rf ~ LogNormal(0.7,
    /// 0.4)` (median 2: S-shaped, "Meridian default prior distributions"): randomised arms on
    /// noisy conversions identify the curve's height far better than its shape at low
    /// frequency, and a slope prior centred at 1 (concave) made plans spread exposures thinly
    /// below the knee. The other scales are wide enough that a few hundred rows per level
    /// override them.
    fn default() -> Self {
        Prior {
            center: [0.0, 0.0, 6f64.ln(), 0.7, 0.01f64.ln(), 0.001f64.ln()],
            scale: [5.0, 3.0, 2.0, 0.4, 5.0, 5.0],
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
}

// ---------------------------------------------------------------------------------------------
// likelihoods

/// Clamp of probabilities inside the log-likelihood.
const P_EPS: f64 = 1e-12;

/// Conversion: `p = b + (1 - b) m H`. Returns (log-lik, gradient, Hessian) in
/// `(logit b, logit m, log k, log h)`, or `None` if not finite.
fn conv_loglik(th: &[f64], lv: &[Level]) -> Option<(f64, Vec<f64>, Vec<f64>)> {
    let (b, m) = (sigmoid(th[0]), sigmoid(th[1]));
    let (u, h) = (th[2], th[3].exp());
    let (b1, m1) = (b * (1.0 - b), m * (1.0 - m));
    let (b2, m2) = (b1 * (1.0 - 2.0 * b), m1 * (1.0 - 2.0 * m));
    let mut f = 0.0;
    let mut g = vec![0.0; NC];
    let mut hs = vec![0.0; NC * NC];
    for l in lv {
        // H and its derivatives in (u, v) = (log k, log h); H = sigmoid(z), z = h (ln n - u).
        let (hh, hu, hv, huu, huv, hvv) = if l.n > 0.0 {
            let z = h * (l.ln_n - u);
            let hh = sigmoid(z);
            let s = hh * (1.0 - hh);
            let s1 = s * (1.0 - 2.0 * hh);
            (
                hh,
                -h * s,
                z * s,
                h * h * s1,
                -h * s - h * s1 * z,
                z * s + z * z * s1,
            )
        } else {
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        };
        let q = m * hh;
        let p = (b + (1.0 - b) * q).clamp(P_EPS, 1.0 - P_EPS);
        let nb = 1.0 - b;
        let dp = [b1 * (1.0 - q), nb * m1 * hh, nb * m * hu, nb * m * hv];
        let d2 = [
            [b2 * (1.0 - q), -b1 * m1 * hh, -b1 * m * hu, -b1 * m * hv],
            [0.0, nb * m2 * hh, nb * m1 * hu, nb * m1 * hv],
            [0.0, 0.0, nb * m * huu, nb * m * huv],
            [0.0, 0.0, 0.0, nb * m * hvv],
        ];
        let miss = l.t - l.y;
        f += l.y * p.ln() + miss * (-p).ln_1p();
        let lp = l.y / p - miss / (1.0 - p);
        let lpp = -l.y / (p * p) - miss / ((1.0 - p) * (1.0 - p));
        for i in 0..NC {
            g[i] += lp * dp[i];
            for j in i..NC {
                hs[i * NC + j] += lpp * dp[i] * dp[j] + lp * d2[i][j];
            }
        }
    }
    symmetrise(&mut hs, NC);
    finite(f, g, hs)
}

/// Opt-out: `P = 1 - exp(-lambda)`, `lambda = a n + d n^2`, in `(log a, log d)`.
fn opt_loglik(th: &[f64], lv: &[Level]) -> Option<(f64, Vec<f64>, Vec<f64>)> {
    let (a, d) = (th[0].exp(), th[1].exp());
    let mut f = 0.0;
    let mut g = vec![0.0; NO];
    let mut hs = vec![0.0; NO * NO];
    for l in lv.iter().filter(|l| l.n > 0.0) {
        let (la, ld) = (a * l.n, d * l.n * l.n);
        let lam = la + ld;
        let em1 = lam.exp_m1();
        // l(lambda) = o ln(1 - e^-lambda) - (t - o) lambda
        f += l.o * (-(-lam).exp_m1()).ln() - (l.t - l.o) * lam;
        let dl = l.o / em1 - (l.t - l.o);
        let ddl = -l.o * (1.0 + em1) / (em1 * em1);
        g[0] += dl * la;
        g[1] += dl * ld;
        hs[0] += ddl * la * la + dl * la;
        hs[1] += ddl * la * ld;
        hs[3] += ddl * ld * ld + dl * ld;
    }
    hs[2] = hs[1];
    finite(f, g, hs)
}

fn symmetrise(h: &mut [f64], k: usize) {
    for i in 0..k {
        for j in 0..i {
            h[i * k + j] = h[j * k + i];
        }
    }
}

fn finite(f: f64, g: Vec<f64>, h: Vec<f64>) -> Option<(f64, Vec<f64>, Vec<f64>)> {
    (f.is_finite() && g.iter().chain(&h).all(|v| v.is_finite())).then_some((f, g, h))
}

// ---------------------------------------------------------------------------------------------
// damped Newton on the log-posterior

type LogLik = fn(&[f64], &[Level]) -> Option<(f64, Vec<f64>, Vec<f64>)>;

/// A Laplace posterior: mode and covariance (row-major).
#[derive(Clone, Debug, PartialEq)]
struct Laplace {
    mode: Vec<f64>,
    cov: Vec<f64>,
    log_post: f64,
    converged: bool,
}

/// Mode of `loglik + sum log N(theta_j; center_j, scale_j^2)` from `start`, and the inverse of the
/// negative Hessian there.
fn laplace(
    loglik: LogLik,
    lv: &[Level],
    center: &[f64],
    scale: &[f64],
    start: &[f64],
    max_iter: usize,
) -> Laplace {
    let k = center.len();
    let eval = |th: &[f64]| -> Option<(f64, Vec<f64>, Vec<f64>)> {
        let (mut f, mut g, mut h) = loglik(th, lv)?;
        for j in 0..k {
            let p = 1.0 / (scale[j] * scale[j]);
            f -= 0.5 * p * (th[j] - center[j]).powi(2);
            g[j] -= p * (th[j] - center[j]);
            h[j * k + j] -= p;
        }
        Some((f, g, h))
    };
    let mut th = start.to_vec();
    let mut cur = match eval(&th) {
        Some(v) => v,
        None => {
            th = center.to_vec();
            eval(&th).expect("the log-posterior is finite at the prior centre")
        }
    };
    let mut converged = false;
    for _ in 0..max_iter {
        let (f, g, h) = &cur;
        let neg: Vec<f64> = h.iter().map(|v| -v).collect();
        let Some(step) = damped_solve(&neg, k, g) else {
            break;
        };
        let dec: f64 = g.iter().zip(&step).map(|(a, b)| a * b).sum();
        let tol = 1e-11 * (1.0 + f.abs());
        if dec.abs() <= tol {
            converged = true;
            break;
        }
        let cap = step.iter().fold(0.0f64, |a, s| a.max(s.abs()));
        let shrink = if cap > 2.0 { 2.0 / cap } else { 1.0 };
        let mut t = shrink;
        let mut next = None;
        for _ in 0..40 {
            let cand: Vec<f64> = th.iter().zip(&step).map(|(a, s)| a + t * s).collect();
            if let Some(v) = eval(&cand) {
                if v.0 >= f + 1e-4 * t * dec {
                    next = Some((cand, v));
                    break;
                }
            }
            t *= 0.5;
        }
        match next {
            Some((cand, v)) => {
                th = cand;
                cur = v;
            }
            None => {
                // No ascent left along the Newton direction: at the mode up to rounding.
                converged = dec.abs() <= 1e-6 * (1.0 + f.abs());
                break;
            }
        }
    }
    let neg: Vec<f64> = cur.2.iter().map(|v| -v).collect();
    let cov = invert_damped(&neg, k);
    Laplace {
        mode: th,
        cov,
        log_post: cur.0,
        converged,
    }
}

/// Solves `(a + lambda I) x = b` with the smallest Levenberg `lambda >= 0` that makes the matrix
/// positive definite.
fn damped_solve(a: &[f64], k: usize, b: &[f64]) -> Option<Vec<f64>> {
    if let Some(x) = cholesky_solve(a, k, b) {
        return Some(x);
    }
    let diag = (0..k).fold(0.0f64, |m, i| m.max(a[i * k + i].abs()));
    let mut lam = 1e-8 * (1.0 + diag);
    while lam < 1e12 * (1.0 + diag) {
        let mut d = a.to_vec();
        for i in 0..k {
            d[i * k + i] += lam;
        }
        if let Some(x) = cholesky_solve(&d, k, b) {
            return Some(x);
        }
        lam *= 10.0;
    }
    None
}

/// Inverse of a (nearly) positive definite matrix, damped like [`damped_solve`] if needed.
fn invert_damped(a: &[f64], k: usize) -> Vec<f64> {
    if let Some(inv) = invert_spd(a, k) {
        return inv;
    }
    let diag = (0..k).fold(0.0f64, |m, i| m.max(a[i * k + i].abs()));
    let mut lam = 1e-8 * (1.0 + diag);
    loop {
        let mut d = a.to_vec();
        for i in 0..k {
            d[i * k + i] += lam;
        }
        if let Some(inv) = invert_spd(&d, k) {
            return inv;
        }
        lam *= 10.0;
    }
}

/// A start for the channel-level conversion fit read off the empirical rates.
fn conv_start(lv: &[Level], slope: f64) -> [f64; NC] {
    let rate = |l: &Level| (l.y + 0.5) / (l.t + 1.0);
    let b0 = lv
        .iter()
        .find(|l| l.n == 0.0)
        .or(lv.first())
        .map_or(0.05, rate)
        .clamp(1e-4, 0.9);
    let top = lv.iter().map(rate).fold(b0, f64::max);
    let m0 = ((top - b0) / (1.0 - b0) * 1.2).clamp(0.01, 0.99);
    let half = b0 + 0.5 * (top - b0);
    let k0 = lv
        .iter()
        .filter(|l| l.n > 0.0)
        .find(|l| rate(l) >= half)
        .map_or(3.0, |l| l.n);
    let logit = |p: f64| (p / (1.0 - p)).ln();
    [logit(b0), logit(m0), k0.ln(), slope.ln()]
}

fn opt_start(lv: &[Level]) -> [f64; NO] {
    let (o, tn, tn2) = lv
        .iter()
        .filter(|l| l.n > 0.0)
        .fold((0.0, 0.0, 0.0), |s, l| {
            (s.0 + l.o, s.1 + l.t * l.n, s.2 + l.t * l.n * l.n)
        });
    let a0 = if tn > 0.0 { (o / tn).max(1e-6) } else { 1e-2 };
    let d0 = if tn2 > 0.0 {
        (0.1 * o / tn2).max(1e-8)
    } else {
        1e-3
    };
    [a0.ln(), d0.ln()]
}

/// Posterior of one cell (conversion and opt-out parts).
#[derive(Clone, Debug)]
struct CellPost {
    conv: Laplace,
    opt: Laplace,
}

fn fit_cell(
    lv: &[Level],
    center: &[f64; N_PARAMS],
    scale: &[f64; N_PARAMS],
    start: &[f64; N_PARAMS],
    max_iter: usize,
) -> CellPost {
    CellPost {
        conv: laplace(
            conv_loglik,
            lv,
            &center[..NC],
            &scale[..NC],
            &start[..NC],
            max_iter,
        ),
        opt: laplace(
            opt_loglik,
            lv,
            &center[NC..],
            &scale[NC..],
            &start[NC..],
            max_iter,
        ),
    }
}

fn fit_channel(lv: &[Level], prior: &Prior) -> CellPost {
    let mut best: Option<Laplace> = None;
    for slope in [1.0, 3.0] {
        let s = conv_start(lv, slope);
        let l = laplace(
            conv_loglik,
            lv,
            &prior.center[..NC],
            &prior.scale[..NC],
            &s,
            prior.max_iter,
        );
        if best.as_ref().is_none_or(|b| l.log_post > b.log_post) {
            best = Some(l);
        }
    }
    let s = opt_start(lv);
    CellPost {
        conv: best.expect("two starts were tried"),
        opt: laplace(
            opt_loglik,
            lv,
            &prior.center[NC..],
            &prior.scale[NC..],
            &s,
            prior.max_iter,
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// the fitted model

/// The fitted response model: per cell `(g, c)` (index `g * n_channels + c`) the Laplace posterior
/// of the unconstrained parameters, and per channel the pooled curve used for cells without data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseFit {
    pub n_groups: usize,
    pub n_channels: usize,
    /// Posterior modes, `N_PARAMS` per cell.
    pub theta: Vec<f64>,
    /// Covariance of the conversion parameters (4 x 4 per cell) and of the opt-out ones (2 x 2).
    pub cov_conv: Vec<f64>,
    pub cov_opt: Vec<f64>,
    /// Channel-level modes (`N_PARAMS` per channel) and the covariance of a new segment's
    /// parameters (`V_c + diag(tau_c^2)`).
    pub channel_theta: Vec<f64>,
    pub channel_cov_conv: Vec<f64>,
    pub channel_cov_opt: Vec<f64>,
    /// Segment spread per channel and parameter (estimated or given).
    pub tau: Vec<f64>,
    /// The cell had data; the channel had data in some segment.
    pub has_data: Vec<bool>,
    pub informed: Vec<bool>,
    /// Weighted trials per cell, and whether both Newton fits of the cell converged.
    pub trials: Vec<f64>,
    pub converged: Vec<bool>,
}

/// Curves on a grid of levels, each `n_groups * n_channels * n_levels` (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Curves {
    pub incremental: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub opt_out: Vec<f64>,
}

/// Fits the model to `counts` (see the module docs).
pub fn fit(counts: &Counts, prior: &Prior, ctl: &Control) -> Result<ResponseFit> {
    prior.validate()?;
    counts
        .check()
        .map_err(|_| CoreError::invalid("counts", "are malformed"))?;
    let (ng, nc) = (counts.n_groups, counts.n_channels);
    if nc == 0 {
        return Err(CoreError::invalid("counts", "have no channels"));
    }
    let cells = ng * nc;
    ctl.set_total((nc + 2 * cells) as u64);
    // 1. channel level
    let chan: Vec<Option<CellPost>> = (0..nc)
        .into_par_iter()
        .map(|c| {
            ctl.check()?;
            let lv = counts.pooled(c);
            let r = (!lv.is_empty()).then(|| fit_channel(&lv, prior));
            ctl.advance(1);
            Ok(r)
        })
        .collect::<Result<_>>()?;
    let mu: Vec<[f64; N_PARAMS]> = chan
        .iter()
        .map(|p| match p {
            Some(p) => join(&p.conv.mode, &p.opt.mode),
            None => prior.center,
        })
        .collect();
    let levels: Vec<Vec<Level>> = (0..cells)
        .into_par_iter()
        .map(|i| counts.cell(i / nc, i % nc))
        .collect();
    // 2. segment spread
    let tau: Vec<[f64; N_PARAMS]> = match prior.tau {
        Some(t) => vec![t; nc],
        None => {
            let pre: Vec<Option<CellPost>> = (0..cells)
                .into_par_iter()
                .map(|i| {
                    ctl.check()?;
                    let lv = &levels[i];
                    let m = &mu[i % nc];
                    let r =
                        (!lv.is_empty()).then(|| fit_cell(lv, m, &prior.scale, m, prior.max_iter));
                    ctl.advance(1);
                    Ok(r)
                })
                .collect::<Result<_>>()?;
            (0..nc)
                .map(|c| spread(&pre, c, nc, &mu[c], &prior.scale))
                .collect()
        }
    };
    // 3. segments
    let post: Vec<Option<CellPost>> = (0..cells)
        .into_par_iter()
        .map(|i| {
            ctl.check()?;
            let lv = &levels[i];
            let c = i % nc;
            let r = (!lv.is_empty()).then(|| fit_cell(lv, &mu[c], &tau[c], &mu[c], prior.max_iter));
            ctl.advance(1);
            Ok(r)
        })
        .collect::<Result<_>>()?;

    let mut out = ResponseFit {
        n_groups: ng,
        n_channels: nc,
        theta: Vec::with_capacity(cells * N_PARAMS),
        cov_conv: Vec::with_capacity(cells * NC * NC),
        cov_opt: Vec::with_capacity(cells * NO * NO),
        channel_theta: mu.iter().flatten().copied().collect(),
        channel_cov_conv: Vec::with_capacity(nc * NC * NC),
        channel_cov_opt: Vec::with_capacity(nc * NO * NO),
        tau: tau.iter().flatten().copied().collect(),
        has_data: Vec::with_capacity(cells),
        informed: chan.iter().map(|p| p.is_some()).collect(),
        trials: levels
            .iter()
            .map(|lv| lv.iter().map(|l| l.t).sum())
            .collect(),
        converged: Vec::with_capacity(cells),
    };
    for c in 0..nc {
        let (cc, co) = match &chan[c] {
            Some(p) => (
                add_diag(&p.conv.cov, &tau[c][..NC]),
                add_diag(&p.opt.cov, &tau[c][NC..]),
            ),
            None => (diag_sq(&prior.scale[..NC]), diag_sq(&prior.scale[NC..])),
        };
        out.channel_cov_conv.extend(cc);
        out.channel_cov_opt.extend(co);
    }
    for (i, p) in post.iter().enumerate() {
        let c = i % nc;
        match p {
            Some(p) => {
                out.theta.extend(join(&p.conv.mode, &p.opt.mode));
                let (vc, vo) = match &chan[c] {
                    Some(q) => (&q.conv.cov[..], &q.opt.cov[..]),
                    None => unreachable!("a cell with data has a channel with data"),
                };
                out.cov_conv
                    .extend(with_centre(&p.conv.cov, vc, &tau[c][..NC]));
                out.cov_opt
                    .extend(with_centre(&p.opt.cov, vo, &tau[c][NC..]));
                out.has_data.push(true);
                out.converged.push(p.conv.converged && p.opt.converged);
            }
            None => {
                out.theta.extend(mu[c]);
                out.cov_conv
                    .extend_from_slice(&out.channel_cov_conv[c * NC * NC..(c + 1) * NC * NC]);
                out.cov_opt
                    .extend_from_slice(&out.channel_cov_opt[c * NO * NO..(c + 1) * NO * NO]);
                out.has_data.push(false);
                out.converged.push(true);
            }
        }
    }
    Ok(out)
}

fn join(a: &[f64], b: &[f64]) -> [f64; N_PARAMS] {
    let mut out = [0.0; N_PARAMS];
    out[..NC].copy_from_slice(a);
    out[NC..].copy_from_slice(b);
    out
}

fn add_diag(cov: &[f64], sd: &[f64]) -> Vec<f64> {
    let k = sd.len();
    let mut out = cov.to_vec();
    for j in 0..k {
        out[j * k + j] += sd[j] * sd[j];
    }
    out
}

/// First-order correction of a segment's covariance `S` for the uncertainty `V` of its prior
/// centre (Kass & Steffey 1989, "Approximate Bayesian inference in conditionally independent
/// hierarchical models", JASA): `S + B V B^T` with `B = S diag(1 / tau^2)`, the sensitivity of
/// the segment's mode to the centre.
fn with_centre(s: &[f64], v: &[f64], tau: &[f64]) -> Vec<f64> {
    let k = tau.len();
    let b: Vec<f64> = (0..k * k)
        .map(|e| s[e] / (tau[e % k] * tau[e % k]))
        .collect();
    let mut out = s.to_vec();
    for i in 0..k {
        for j in 0..k {
            let mut x = 0.0;
            for p in 0..k {
                for q in 0..k {
                    x += b[i * k + p] * v[p * k + q] * b[j * k + q];
                }
            }
            out[i * k + j] += x;
        }
    }
    out
}

fn diag_sq(sd: &[f64]) -> Vec<f64> {
    add_diag(&vec![0.0; sd.len() * sd.len()], sd)
}

/// DerSimonian-Laird spread of channel `c` with the centre `mu` known (see the module docs).
fn spread(
    pre: &[Option<CellPost>],
    c: usize,
    nc: usize,
    mu: &[f64; N_PARAMS],
    scale: &[f64; N_PARAMS],
) -> [f64; N_PARAMS] {
    let mut tau = [0.0; N_PARAMS];
    for j in 0..N_PARAMS {
        // Terms sorted before summing: the sums do not depend on the order of the segment
        // codes (a partial_fit that appends new segments gives the fit of the whole log).
        let mut terms: Vec<(f64, f64)> = pre
            .iter()
            .skip(c)
            .step_by(nc)
            .flatten()
            .map(|p| {
                let (theta, v) = if j < NC {
                    (p.conv.mode[j], p.conv.cov[j * NC + j])
                } else {
                    (p.opt.mode[j - NC], p.opt.cov[(j - NC) * NO + j - NC])
                };
                let w = 1.0 / v.max(1e-12);
                (w * (theta - mu[j]).powi(2), w)
            })
            .collect();
        terms.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let q: f64 = terms.iter().map(|t| t.0).sum();
        let sw: f64 = terms.iter().map(|t| t.1).sum();
        let k = terms.len() as f64;
        // One segment tells nothing about the spread: keep the weak prior's scale.
        tau[j] = if k >= 2.0 {
            ((q - k) / sw).max(0.0).sqrt().clamp(TAU_MIN, scale[j])
        } else {
            scale[j]
        };
    }
    tau
}

/// Natural parameters `(b, A, k, h, a, d)` of unconstrained ones.
pub fn natural(th: &[f64]) -> [f64; N_PARAMS] {
    let b = sigmoid(th[0]);
    [
        b,
        (1.0 - b) * sigmoid(th[1]),
        th[2].exp(),
        th[3].exp(),
        th[4].exp(),
        th[5].exp(),
    ]
}

/// (incremental, lower, upper, opt-out) at `n` exposures; `z` is the normal quantile of the
/// interval (delta method on the log of the incremental conversion).
fn point(th: &[f64], cov_conv: &[f64], n: f64, z: f64) -> (f64, f64, f64, f64) {
    let p = natural(th);
    let lam = p[4] * n + p[5] * n * n;
    let opt = -(-lam).exp_m1();
    if n <= 0.0 {
        return (0.0, 0.0, 0.0, opt);
    }
    let (b, m, u, h) = (p[0], sigmoid(th[1]), th[2], p[3]);
    let zz = h * (n.ln() - u);
    let hh = sigmoid(zz);
    let inc = p[1] * hh;
    let g = [-b, 1.0 - m, -h * (1.0 - hh), zz * (1.0 - hh)];
    let mut var = 0.0;
    for i in 0..NC {
        for j in 0..NC {
            var += g[i] * cov_conv[i * NC + j] * g[j];
        }
    }
    let sd = var.max(0.0).sqrt();
    (
        inc,
        inc * (-z * sd).exp(),
        (inc * (z * sd).exp()).min(1.0),
        opt,
    )
}

impl ResponseFit {
    fn cell_theta(&self, g: usize, c: usize) -> (&[f64], &[f64]) {
        if g < self.n_groups {
            let i = g * self.n_channels + c;
            (
                &self.theta[i * N_PARAMS..(i + 1) * N_PARAMS],
                &self.cov_conv[i * NC * NC..(i + 1) * NC * NC],
            )
        } else {
            (
                &self.channel_theta[c * N_PARAMS..(c + 1) * N_PARAMS],
                &self.channel_cov_conv[c * NC * NC..(c + 1) * NC * NC],
            )
        }
    }

    /// Natural parameters `(b, A, k, h, a, d)` per cell (`n_groups * n_channels * 6`).
    pub fn params(&self) -> Vec<f64> {
        self.theta.chunks(N_PARAMS).flat_map(natural).collect()
    }

    /// Natural parameters of the channel-level curves (`n_channels * 6`).
    pub fn channel_params(&self) -> Vec<f64> {
        self.channel_theta
            .chunks(N_PARAMS)
            .flat_map(natural)
            .collect()
    }

    /// Curves of every cell at `levels` (exposures >= 0, fractional allowed) with intervals of
    /// normal quantile `z` (e.g. 1.645 for 90 %). `incremental` is `A H(n)`, without `b`.
    pub fn curves(&self, levels: &[f64], z: f64) -> Result<Curves> {
        check_levels("levels", levels)?;
        if !(z.is_finite() && z >= 0.0) {
            return Err(CoreError::invalid(
                "z",
                format!("must be finite and >= 0, got {z}"),
            ));
        }
        let (nc, nl) = (self.n_channels, levels.len());
        let len = self.n_groups * nc * nl;
        let mut out = Curves {
            incremental: vec![0.0; len],
            lower: vec![0.0; len],
            upper: vec![0.0; len],
            opt_out: vec![0.0; len],
        };
        for i in 0..self.n_groups * nc {
            let (th, cov) = self.cell_theta(i / nc, i % nc);
            for (l, &n) in levels.iter().enumerate() {
                let (a, lo, hi, o) = point(th, cov, n, z);
                let e = i * nl + l;
                out.incremental[e] = a;
                out.lower[e] = lo;
                out.upper[e] = hi;
                out.opt_out[e] = o;
            }
        }
        Ok(out)
    }

    /// (incremental conversion, opt-out probability) per row. A `group >= n_groups` is a segment
    /// the fit has not seen: it gets its channel's pooled curve.
    pub fn predict(
        &self,
        group: &[u32],
        channel: &[u32],
        exposures: &[f64],
        ctl: &Control,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = group.len();
        check_len("channel", channel.len(), n, "group")?;
        check_len("exposures", exposures.len(), n, "group")?;
        check_levels("exposures", exposures)?;
        if let Some(i) = channel.iter().position(|&c| c as usize >= self.n_channels) {
            return Err(CoreError::invalid(
                "channel",
                format!(
                    "unknown channel code {} at row {i} (must be < {})",
                    channel[i], self.n_channels
                ),
            ));
        }
        let mut inc = vec![0.0; n];
        let mut opt = vec![0.0; n];
        inc.par_chunks_mut(PREDICT_ROWS)
            .zip(opt.par_chunks_mut(PREDICT_ROWS))
            .enumerate()
            .try_for_each(|(k, (a, o))| {
                ctl.check()?;
                let lo = k * PREDICT_ROWS;
                for j in 0..a.len() {
                    let i = lo + j;
                    let (th, cov) = self.cell_theta(group[i] as usize, channel[i] as usize);
                    let (x, _, _, y) = point(th, cov, exposures[i], 0.0);
                    a[j] = x;
                    o[j] = y;
                }
                Ok::<(), CoreError>(())
            })?;
        Ok((inc, opt))
    }

    fn check(&self) -> Result<()> {
        let cells = self.n_groups * self.n_channels;
        let nc = self.n_channels;
        let ok = nc > 0
            && self.theta.len() == cells * N_PARAMS
            && self.cov_conv.len() == cells * NC * NC
            && self.cov_opt.len() == cells * NO * NO
            && self.channel_theta.len() == nc * N_PARAMS
            && self.channel_cov_conv.len() == nc * NC * NC
            && self.channel_cov_opt.len() == nc * NO * NO
            && self.tau.len() == nc * N_PARAMS
            && self.has_data.len() == cells
            && self.informed.len() == nc
            && self.trials.len() == cells
            && self.converged.len() == cells;
        if ok {
            Ok(())
        } else {
            Err(CoreError::State("response fit is malformed".into()))
        }
    }
}

fn check_levels(arg: &str, v: &[f64]) -> Result<()> {
    match v.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
        None => Ok(()),
        Some(i) => Err(CoreError::invalid(
            arg,
            format!("must be finite and >= 0, found {} at position {i}", v[i]),
        )),
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
    /// Fits `counts` (merged into `previous`'s counts if given).
    /// Fits `previous`'s counts, weighted by `forget` (1: all the past counts fully; 0.5: each
    /// update halves the weight of what came before, for a world that drifts), plus `new`.
    pub fn fit(
        previous: Option<&Response>,
        new: Counts,
        prior: Prior,
        forget: f64,
        ctl: &Control,
    ) -> Result<Response> {
        if !(forget.is_finite() && forget > 0.0 && forget <= 1.0) {
            return Err(CoreError::invalid(
                "forget",
                format!("must be in (0, 1], got {forget}"),
            ));
        }
        let counts = match previous {
            Some(p) => {
                let mut c = p.counts.clone();
                if forget < 1.0 {
                    c.scale(forget);
                }
                c.merge(&new);
                c
            }
            None => new,
        };
        let fit = fit(&counts, &prior, ctl)?;
        Ok(Response { counts, prior, fit })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::state::sealed::to_bytes(STATE_KIND, STATE_VERSION, self)
    }

    /// Reads state written by [`Response::to_bytes`], checking every table's shape.
    pub fn from_bytes(b: &[u8]) -> Result<Response> {
        let r: Response = crate::state::sealed::from_bytes(STATE_KIND, &[STATE_VERSION], b)?;
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
#[path = "response_tests.rs"]
mod tests;
