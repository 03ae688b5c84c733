//! The fitted model: channel-level fits, the segment spread, the segments' posteriors, and the
//! curves, intervals and predictions they give.

use super::*;

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
    /// Damping of the conversion's exposures by prior fatigue (`n / (1 + rate f)`): the mode
    /// of the channels' profile likelihood times the prior [`FATIGUE_RATE_PRIOR`] on `log
    /// rate` (see [`fatigue_rate`]; 0 without fatigue in the log and in states written before
    /// it).
    #[serde(default)]
    pub fatigue_rate: f64,
    /// Posterior standard deviation of `log fatigue_rate` (the curvature of the penalised
    /// profile at its mode); 0 when the rate is not estimated (no fatigue in the log, older
    /// states).
    #[serde(default)]
    pub fatigue_rate_sd: f64,
    /// Share of the prior fatigue that acts on the opt-out over the window
    /// (`a n + d (W + carry f P)`), chosen on [`FATIGUE_CARRIES`] (1 without fatigue in the
    /// log and in states written before it).
    #[serde(default = "one")]
    pub fatigue_carry: f64,
    /// How the log's exposures were laid out over the window, which gives each level its
    /// fatigue load (`load`); `None` (the default, and states written before it): the
    /// quadratic load `a n + d n^2`.
    #[serde(default)]
    pub layout: Option<TouchLayout>,
}

fn one() -> f64 {
    1.0
}

/// Candidate shares of the prior fatigue acting on the opt-out over the window (see
/// [`fatigue_carry`]); the first is the structural value, kept on ties.
pub const FATIGUE_CARRIES: [f64; 6] = [1.0, 0.85, 0.7, 0.55, 0.4, 0.25];

/// The share of the prior fatigue that acts on the opt-out over the window, shared by every
/// channel: the prior fatigue keeps decaying while the window's exposures arrive, so a tired
/// user continues the opt-out curve from less than `f`. Chosen on [`FATIGUE_CARRIES`] by the
/// channel-level opt-out fits' summed log posterior; a log without prior fatigue says nothing
/// about it and keeps 1 (the structural extrapolation of the module docs).
fn fatigue_carry(pooled: &[CellData], prior: &Prior, ctl: &Control) -> Result<f64> {
    if pooled
        .iter()
        .all(|cd| cd.opt.iter().all(|l| l.fk <= 0.0 && l.fo <= 0.0))
    {
        return Ok(1.0);
    }
    best_on_grid(&FATIGUE_CARRIES, ctl, |c| {
        pooled
            .par_iter()
            .filter(|cd| !cd.opt.is_empty())
            .map(|cd| fit_channel_optout(&cd.at_carry(c), prior).log_post)
            .collect::<Vec<f64>>()
            .iter()
            .sum()
    })
}

/// The value of `grid` with the highest `log_post` (the first on ties, so a grid lists its
/// structural or "no effect" value first): the profile likelihood of a parameter shared by
/// every channel.
fn best_on_grid(grid: &[f64], ctl: &Control, log_post: impl Fn(f64) -> f64) -> Result<f64> {
    let mut best = (f64::NEG_INFINITY, grid[0]);
    for &v in grid {
        ctl.check()?;
        let lp = log_post(v);
        if lp > best.0 {
            best = (lp, v);
        }
    }
    Ok(best.1)
}

/// Prior of the conversion's damping rate by prior fatigue: `log r ~ N(ln centre, scale^2)`.
/// The centre, 0.18, is the geometric middle of the range the rate used to be picked from
/// (0.02 to 1.6, a grid with a flat prior), and the scale 1 lets the data move it by a factor
/// of e either way at one standard deviation: weakly informative, it decides only where the
/// profile likelihood is flat (after two rounds of the loop, rates from 0.5 to 1.6 were
/// within 0.4 log-likelihood units of each other).
pub const FATIGUE_RATE_PRIOR: (f64, f64) = (0.18, 1.0);

/// Search range of `log r` (rates `1e-3` to `20`: below, no damping to speak of; above, a
/// tired user's exposures count for nothing).
const LOG_RATE_RANGE: (f64, f64) = (-6.907_755_278_982_137, 2.995_732_273_553_991);

/// Coarse scan of `log r` before the golden-section search (the profile need not be unimodal
/// over the whole range), and the search's tolerance on `log r` (a 0.5 % change of the rate).
const LOG_RATE_SCAN: usize = 12;
const LOG_RATE_TOL: f64 = 0.005;

/// The damping rate of the conversion by prior fatigue shared by every channel, and the
/// posterior standard deviation of its log: the mode of the channel-level fits' summed log
/// posterior (weak prior; a profile likelihood) plus the log-density of
/// [`FATIGUE_RATE_PRIOR`], over `log r` (a coarse scan of [`LOG_RATE_RANGE`], then golden
/// section within the best scan point's neighbours); the standard deviation from the
/// curvature there (central differences). A log without prior fatigue says nothing about it:
/// 0 (no damping), standard deviation 0. Fatigue is the user's (every channel's touches tire
/// the same user), so the rate is shared.
fn fatigue_rate(pooled: &[CellData], prior: &Prior, ctl: &Control) -> Result<(f64, f64)> {
    if pooled
        .iter()
        .all(|cd| cd.conv_f.iter().all(|(_, f)| *f <= 0.0))
    {
        return Ok((0.0, 0.0));
    }
    let (centre, scale) = FATIGUE_RATE_PRIOR;
    let u0 = centre.ln();
    let post = |u: f64| -> Result<f64> {
        ctl.check()?;
        let r = u.exp();
        let lp: f64 = pooled
            .par_iter()
            .filter(|cd| !cd.is_empty())
            .map(|cd| fit_channel(&cd.at_rate(r), prior).conv.log_post)
            .collect::<Vec<f64>>()
            .iter()
            .sum();
        Ok(lp - 0.5 * ((u - u0) / scale).powi(2))
    };
    let (lo, hi) = LOG_RATE_RANGE;
    let step = (hi - lo) / (LOG_RATE_SCAN - 1) as f64;
    let mut best = (f64::NEG_INFINITY, 0usize);
    for k in 0..LOG_RATE_SCAN {
        let v = post(lo + step * k as f64)?;
        if v > best.0 {
            best = (v, k);
        }
    }
    let (mut a, mut b) = (
        lo + step * best.1.saturating_sub(1) as f64,
        lo + step * (best.1 + 1).min(LOG_RATE_SCAN - 1) as f64,
    );
    let g = 0.5 * (5f64.sqrt() - 1.0);
    let (mut x1, mut x2) = (b - g * (b - a), a + g * (b - a));
    let (mut f1, mut f2) = (post(x1)?, post(x2)?);
    while b - a > LOG_RATE_TOL {
        if f1 >= f2 {
            (b, x2, f2) = (x2, x1, f1);
            x1 = b - g * (b - a);
            f1 = post(x1)?;
        } else {
            (a, x1, f1) = (x1, x2, f2);
            x2 = a + g * (b - a);
            f2 = post(x2)?;
        }
    }
    let u = 0.5 * (a + b);
    let h = 0.05;
    let (fm, f0, fp) = (post(u - h)?, post(u)?, post(u + h)?);
    let curv = -(fp - 2.0 * f0 + fm) / (h * h);
    // The prior alone bounds the curvature below by 1 / scale^2 (up to the profile's noise).
    let sd = 1.0 / curv.max(1.0 / (scale * scale)).sqrt();
    Ok((u.exp(), sd))
}

/// Curves on a grid of levels, each `n_groups * n_channels * n_levels` (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Curves {
    pub incremental: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub opt_out: Vec<f64>,
}

/// Fits the model to `counts` (see the module docs); `layout`: how the log's exposures were laid
/// out (the opt-out's fatigue load per level, `load`), `None` for the quadratic load.
pub fn fit(
    counts: &Counts,
    prior: &Prior,
    layout: Option<&TouchLayout>,
    ctl: &Control,
) -> Result<ResponseFit> {
    prior.validate()?;
    if let Some(l) = layout {
        l.validate()?;
    }
    counts
        .check()
        .map_err(|_| CoreError::invalid("counts", "are malformed"))?;
    let (ng, nc) = (counts.n_groups, counts.n_channels);
    if nc == 0 {
        return Err(CoreError::invalid("counts", "have no channels"));
    }
    // Segments x channels cells, each with its levels, three fits (free, pinned, final: their
    // modes and covariances on the heap) and its outputs: checked before any of it is made
    // (`ValueError` / `MemoryError` naming `log`, never an abort).
    let values = N_PARAMS + NC * NC + NO * NO;
    let per_cell = std::mem::size_of::<CellData>()
        + 3 * (std::mem::size_of::<Option<CellPost>>() + 8 * values)
        + 8 * (values + 2)
        + 2;
    let cells = ng.checked_mul(nc);
    let bytes = checked_bytes("log", "segments x channels cells", cells, per_cell)?;
    check_fits_memory("log", bytes)?;
    let cells = ng * nc;
    ctl.set_total((nc + 2 * cells) as u64);
    // 1. channel level, then the shape pooled across channels
    let loads = layout.map(|l| l.table(counts.n_levels));
    let loads = loads.as_deref();
    let raw: Vec<CellData> = (0..nc)
        .into_par_iter()
        .map(|c| counts.pooled(c).with_loads(loads))
        .collect();
    let (rate, rate_sd) = fatigue_rate(&raw, prior, ctl)?;
    let carry = fatigue_carry(&raw, prior, ctl)?;
    let pooled: Vec<CellData> = raw
        .iter()
        .map(|cd| cd.at_rate(rate).at_carry(carry))
        .collect();
    let fit_channels = |p: &Prior| -> Result<Vec<Option<CellPost>>> {
        pooled
            .par_iter()
            .map(|lv| {
                ctl.check()?;
                Ok((!lv.is_empty()).then(|| fit_channel(lv, p)))
            })
            .collect()
    };
    let mut chan = fit_channels(prior)?;
    if let Some(shared) = shape_prior(&chan, prior) {
        chan = fit_channels(&shared)?;
    }
    ctl.advance(nc as u64);
    let mu: Vec<[f64; N_PARAMS]> = chan
        .iter()
        .map(|p| match p {
            Some(p) => join(&p.conv.mode, &p.opt.mode),
            None => prior.center,
        })
        .collect();
    let levels: Vec<CellData> = (0..cells)
        .into_par_iter()
        .map(|i| {
            counts
                .cell(i / nc, i % nc)
                .with_loads(loads)
                .at_rate(rate)
                .at_carry(carry)
        })
        .collect();
    // 2. segment spread
    let tau: Vec<[f64; N_PARAMS]> = match prior.tau {
        Some(t) => vec![t; nc],
        None => {
            // Two pre-fits per segment: every parameter free (the spread of the shape, `log k`,
            // `log h`, and of the fatigue `log d`), and with those pinned at the channel's
            // values (the spread of the heights, `logit b`, `logit m`, `log a`). Height and
            // shape trade off within the observed levels (a higher plateau reached later fits
            // as well), so a free fit's variance of `logit m` is large whatever the segments'
            // true spread and its moment estimate collapses to `TAU_MIN`: every segment got
            // its channel's effect and the planner could not target.
            let mut pinned = prior.scale;
            for j in PINNED {
                pinned[j] = TAU_MIN;
            }
            let pre = |scale: &[f64; N_PARAMS]| -> Result<Vec<Option<CellPost>>> {
                (0..cells)
                    .into_par_iter()
                    .map(|i| {
                        ctl.check()?;
                        let lv = &levels[i];
                        let m = &mu[i % nc];
                        Ok((!lv.is_empty()).then(|| fit_cell(lv, m, scale, m, prior.max_iter)))
                    })
                    .collect()
            };
            let free = pre(&prior.scale)?;
            let height = pre(&pinned)?;
            ctl.advance(cells as u64);
            (0..nc)
                .map(|c| {
                    let mut t = spread(&free, c, nc, &mu[c], &prior.scale);
                    let h = spread(&height, c, nc, &mu[c], &prior.scale);
                    for j in (0..N_PARAMS).filter(|j| !PINNED.contains(j)) {
                        t[j] = h[j];
                    }
                    t
                })
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
        trials: levels.iter().map(CellData::trials).collect(),
        converged: Vec::with_capacity(cells),
        fatigue_rate: rate,
        fatigue_rate_sd: rate_sd,
        fatigue_carry: carry,
        layout: layout.copied(),
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

/// The weak prior with the shape of the conversion curve (`log k`, `log h`) pooled across the
/// channels with data (at least two), for a second channel-level fit: the centre is the
/// precision-weighted mean of the channels' weak-prior modes and the scale their spread by the
/// DerSimonian-Laird moment estimator (centre estimated, `K - 1` degrees of freedom), within
/// `[TAU_MIN, scale]`. A channel with little data (its half-effect and slope barely identified
/// by a few thousand noisy rows) then borrows the shape of the well-measured ones instead of a
/// weak-prior mode that may put half of the effect at one exposure; a channel whose data
/// contradict the others widens the spread and keeps its own shape. Heights (`A`), baselines
/// and opt-out rates stay per channel.
fn shape_prior(chan: &[Option<CellPost>], prior: &Prior) -> Option<Prior> {
    let fitted: Vec<&CellPost> = chan.iter().flatten().collect();
    if fitted.len() < 2 {
        return None;
    }
    let mut out = prior.clone();
    for j in SHAPE {
        let t: Vec<(f64, f64)> = fitted
            .iter()
            .map(|p| (p.conv.mode[j], 1.0 / p.conv.cov[j * NC + j].max(1e-12)))
            .collect();
        let sw: f64 = t.iter().map(|x| x.1).sum();
        let sw2: f64 = t.iter().map(|x| x.1 * x.1).sum();
        let m = t.iter().map(|x| x.0 * x.1).sum::<f64>() / sw;
        let q: f64 = t.iter().map(|x| x.1 * (x.0 - m).powi(2)).sum();
        let k = t.len() as f64;
        let tau2 = ((q - (k - 1.0)) / (sw - sw2 / sw)).max(0.0);
        out.center[j] = m;
        out.scale[j] = tau2.sqrt().clamp(TAU_MIN, prior.scale[j]);
    }
    Some(out)
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

/// DerSimonian-Laird spread of channel `c` with the centre `mu` known, corrected for the weak
/// prior the pre-fits use (see the module docs). A pre-fit under the prior `N(mu, s^2)` shrinks
/// a segment's estimate by `r = 1 - v / s^2` (`v` its posterior variance), so under a spread
/// `tau` the term `w (theta - mu)^2` (`w = 1 / v`) has expectation `r + tau^2 r^2 w`, not
/// `1 + tau^2 w`: `tau^2 = (Q - sum r) / sum r^2 w`. Without the correction a segment with
/// almost no data (`r` near 0, its estimate at `mu`) counted as one degree of freedom and
/// added nothing to `Q`: the dozens of small segments of a world pushed every estimate to
/// `TAU_MIN` (with a flat prior, `r = 1`, it is the usual estimator).
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
        let mut terms: Vec<[f64; 3]> = pre
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
                let v = v.max(1e-12);
                let r = (1.0 - v / (scale[j] * scale[j])).clamp(0.0, 1.0);
                [(theta - mu[j]).powi(2) / v, r, r * r / v]
            })
            .collect();
        terms.sort_by(|a, b| {
            a[0].total_cmp(&b[0])
                .then(a[1].total_cmp(&b[1]))
                .then(a[2].total_cmp(&b[2]))
        });
        let q: f64 = terms.iter().map(|t| t[0]).sum();
        let df: f64 = terms.iter().map(|t| t[1]).sum();
        let sw: f64 = terms.iter().map(|t| t[2]).sum();
        // One segment tells nothing about the spread: keep the weak prior's scale.
        tau[j] = if terms.len() >= 2 && sw > 0.0 {
            ((q - df) / sw).max(0.0).sqrt().clamp(TAU_MIN, scale[j])
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

/// (incremental, lower, upper, opt-out) at `n` exposures of fatigue load `load` (`load`) to a
/// user with prior fatigue `f` (conversion at `n / (1 + rate f)` exposures); `z` is the normal
/// quantile of the interval (delta method on the log of the incremental conversion).
#[allow(clippy::too_many_arguments)]
fn point(
    th: &[f64],
    cov_conv: &[f64],
    n: f64,
    load: (f64, f64),
    f: f64,
    rate: f64,
    carry: f64,
    z: f64,
) -> (f64, f64, f64, f64) {
    let p = natural(th);
    let lam = p[4] * n + p[5] * (load.0 + load.1 * carry * f);
    let opt = -(-lam).exp_m1();
    if n <= 0.0 {
        return (0.0, 0.0, 0.0, opt);
    }
    let n = n / (1.0 + rate * f);
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
    pub(super) fn cell_theta(&self, g: usize, c: usize) -> (&[f64], &[f64]) {
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
    /// normal quantile `z` (e.g. 1.645 for 90 %), for users of prior fatigue `fatigue` (the
    /// opt-out; see the module docs). `incremental` is `A H(n)`, without `b`.
    /// Cells x levels points, checked and allocated fallibly (`MemoryError` naming `levels`),
    /// `ctl` checked before every cell.
    pub fn curves(&self, levels: &[f64], z: f64, fatigue: f64, ctl: &Control) -> Result<Curves> {
        check_levels("levels", levels)?;
        check_levels("fatigue", &[fatigue])?;
        if !(z.is_finite() && z >= 0.0) {
            return Err(CoreError::invalid(
                "z",
                format!("must be finite and >= 0, got {z}"),
            ));
        }
        let (nc, nl) = (self.n_channels, levels.len());
        let len = (self.n_groups * nc).checked_mul(nl);
        let what = "segments x channels x levels points (4 curves of 8 bytes)";
        check_fits_memory("levels", checked_bytes("levels", what, len, 32)?)?;
        let len = len.unwrap_or_default();
        let mut out = Curves {
            incremental: crate::error::try_zeroed("levels", len)?,
            lower: crate::error::try_zeroed("levels", len)?,
            upper: crate::error::try_zeroed("levels", len)?,
            opt_out: crate::error::try_zeroed("levels", len)?,
        };
        let lay = self.layout.as_ref();
        let loads: Vec<(f64, f64)> = levels.iter().map(|&n| loads_at(lay, &[], n)).collect();
        for i in 0..self.n_groups * nc {
            ctl.check()?;
            let (th, cov) = self.cell_theta(i / nc, i % nc);
            for (l, &n) in levels.iter().enumerate() {
                let (a, lo, hi, o) = point(
                    th,
                    cov,
                    n,
                    loads[l],
                    fatigue,
                    self.fatigue_rate,
                    self.fatigue_carry,
                    z,
                );
                let e = i * nl + l;
                out.incremental[e] = a;
                out.lower[e] = lo;
                out.upper[e] = hi;
                out.opt_out[e] = o;
            }
        }
        Ok(out)
    }

    /// (incremental conversion, opt-out probability) per row, for users of prior fatigue
    /// `fatigue` (per row; `None`: 0). A `group >= n_groups` is a segment the fit has not seen:
    /// it gets its channel's pooled curve.
    pub fn predict(
        &self,
        group: &[u32],
        channel: &[u32],
        exposures: &[f64],
        fatigue: Option<&[f64]>,
        ctl: &Control,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = group.len();
        check_len("channel", channel.len(), n, "group")?;
        check_len("exposures", exposures.len(), n, "group")?;
        check_levels("exposures", exposures)?;
        if let Some(f) = fatigue {
            check_len("fatigue", f.len(), n, "group")?;
            check_levels("fatigue", f)?;
        }
        if let Some(i) = channel.iter().position(|&c| c as usize >= self.n_channels) {
            return Err(CoreError::invalid(
                "channel",
                format!(
                    "unknown channel code {} at row {i} (must be < {})",
                    channel[i], self.n_channels
                ),
            ));
        }
        let table = self.load_table(exposures);
        let lay = self.layout.as_ref();
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
                    let f = fatigue.map_or(0.0, |f| f[i]);
                    let (x, _, _, y) = point(
                        th,
                        cov,
                        exposures[i],
                        loads_at(lay, &table, exposures[i]),
                        f,
                        self.fatigue_rate,
                        self.fatigue_carry,
                        0.0,
                    );
                    a[j] = x;
                    o[j] = y;
                }
                Ok::<(), CoreError>(())
            })?;
        Ok((inc, opt))
    }

    /// The fatigue loads of the integer levels around `exposures` (`load::loads_at`'s table;
    /// levels no row needs are NaN, levels above [`MAX_EXPOSURES`] are left to `loads_at`).
    fn load_table(&self, exposures: &[f64]) -> Vec<(f64, f64)> {
        let Some(lay) = self.layout.as_ref() else {
            return Vec::new();
        };
        let top = exposures
            .iter()
            .fold(0.0f64, |m, &x| m.max(x))
            .min(MAX_EXPOSURES as f64) as usize
            + 2;
        let mut need = vec![false; top];
        for &x in exposures {
            let l = x.floor();
            if l + 1.0 < top as f64 {
                need[l as usize] = true;
                need[l as usize + 1] = true;
            }
        }
        need.iter()
            .enumerate()
            .map(|(l, &k)| {
                if k {
                    lay.loads(l as u32)
                } else {
                    (f64::NAN, f64::NAN)
                }
            })
            .collect()
    }

    pub(super) fn check(&self) -> Result<()> {
        if let Some(l) = &self.layout {
            l.validate()
                .map_err(|_| CoreError::State("response fit's layout is malformed".into()))?;
        }
        let cells = self.n_groups * self.n_channels;
        let nc = self.n_channels;
        let ok = nc > 0
            && self.fatigue_rate.is_finite()
            && self.fatigue_rate >= 0.0
            && self.fatigue_rate_sd.is_finite()
            && self.fatigue_rate_sd >= 0.0
            && self.fatigue_carry.is_finite()
            && self.fatigue_carry > 0.0
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
