//! One cell's posterior: the Bernoulli log-likelihoods of conversion and opt-out with their
//! analytic gradients and Hessians, damped Newton to the mode, the Laplace covariance.

use super::*;

// ---------------------------------------------------------------------------------------------
// likelihoods

/// Clamp of probabilities inside the log-likelihood.
pub(super) const P_EPS: f64 = 1e-12;

/// Conversion: `p = b + (1 - b) m H`. Returns (log-lik, gradient, Hessian) in
/// `(logit b, logit m, log k, log h)`, or `None` if not finite.
pub(super) fn conv_loglik(th: &[f64], lv: &[Level]) -> Option<(f64, Vec<f64>, Vec<f64>)> {
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

/// Opt-out: `P = 1 - exp(-lambda)`, `lambda = a n + d (W + P f)` with the level's fatigue load
/// `(W, P)` (see `load`; quadratic: `W = n^2`, `P = 2 n`) and the prior fatigue `f`, in
/// `(log a, log d)`. The users who stayed contribute `-lambda` (linear in `f`: exact from the
/// sum `fk`); those who opted out `ln(1 - exp(-lambda))` at their mean fatigue `fo`.
pub(super) fn opt_loglik(th: &[f64], lv: &[Level]) -> Option<(f64, Vec<f64>, Vec<f64>)> {
    let (a, d) = (th[0].exp(), th[1].exp());
    let mut f = 0.0;
    let mut g = vec![0.0; NO];
    let mut hs = vec![0.0; NO * NO];
    for l in lv.iter().filter(|l| l.n > 0.0) {
        let kept = l.t - l.o;
        // stayed: -(kept (a n + d W) + d P fk)
        let (ka, kd) = (kept * a * l.n, d * (kept * l.w + l.p * l.fk));
        f -= ka + kd;
        g[0] -= ka;
        g[1] -= kd;
        hs[0] -= ka;
        hs[3] -= kd;
        if l.o > 0.0 {
            // opted out: o ln(1 - e^-lambda) at the mean fatigue fo
            let (la, ld) = (a * l.n, d * (l.w + l.p * l.fo));
            let lam = la + ld;
            let em1 = lam.exp_m1();
            f += l.o * (-(-lam).exp_m1()).ln();
            let dl = l.o / em1;
            let ddl = -l.o * (1.0 + em1) / (em1 * em1);
            g[0] += dl * la;
            g[1] += dl * ld;
            hs[0] += ddl * la * la + dl * la;
            hs[1] += ddl * la * ld;
            hs[3] += ddl * ld * ld + dl * ld;
        }
    }
    hs[2] = hs[1];
    finite(f, g, hs)
}

pub(super) fn symmetrise(h: &mut [f64], k: usize) {
    for i in 0..k {
        for j in 0..i {
            h[i * k + j] = h[j * k + i];
        }
    }
}

pub(super) fn finite(f: f64, g: Vec<f64>, h: Vec<f64>) -> Option<(f64, Vec<f64>, Vec<f64>)> {
    (f.is_finite() && g.iter().chain(&h).all(|v| v.is_finite())).then_some((f, g, h))
}

// ---------------------------------------------------------------------------------------------
// damped Newton on the log-posterior

pub(super) type LogLik = fn(&[f64], &[Level]) -> Option<(f64, Vec<f64>, Vec<f64>)>;

/// A Laplace posterior: mode and covariance (row-major).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Laplace {
    pub(super) mode: Vec<f64>,
    pub(super) cov: Vec<f64>,
    pub(super) log_post: f64,
    pub(super) converged: bool,
}

/// Mode of `loglik + sum log N(theta_j; center_j, scale_j^2)` from `start`, and the inverse of the
/// negative Hessian there.
pub(super) fn laplace(
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
pub(super) fn damped_solve(a: &[f64], k: usize, b: &[f64]) -> Option<Vec<f64>> {
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
pub(super) fn invert_damped(a: &[f64], k: usize) -> Vec<f64> {
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
pub(super) fn conv_start(lv: &[Level], slope: f64) -> [f64; NC] {
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

pub(super) fn opt_start(lv: &[Level]) -> [f64; NO] {
    let (o, tn, tn2) = lv
        .iter()
        .filter(|l| l.n > 0.0)
        .fold((0.0, 0.0, 0.0), |s, l| {
            (s.0 + l.o, s.1 + l.t * l.n, s.2 + l.t * l.w)
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
pub(super) struct CellPost {
    pub(super) conv: Laplace,
    pub(super) opt: Laplace,
}

pub(super) fn fit_cell(
    cd: &CellData,
    center: &[f64; N_PARAMS],
    scale: &[f64; N_PARAMS],
    start: &[f64; N_PARAMS],
    max_iter: usize,
) -> CellPost {
    CellPost {
        conv: laplace(
            conv_loglik,
            &cd.conv,
            &center[..NC],
            &scale[..NC],
            &start[..NC],
            max_iter,
        ),
        opt: laplace(
            opt_loglik,
            &cd.opt,
            &center[NC..],
            &scale[NC..],
            &start[NC..],
            max_iter,
        ),
    }
}

pub(super) fn fit_channel(cd: &CellData, prior: &Prior) -> CellPost {
    let lv = &cd.conv;
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
    CellPost {
        conv: best.expect("two starts were tried"),
        opt: fit_channel_optout(cd, prior),
    }
}

/// The channel-level opt-out fit of [`fit_channel`] (weak prior, data-driven start).
pub(super) fn fit_channel_optout(cd: &CellData, prior: &Prior) -> Laplace {
    laplace(
        opt_loglik,
        &cd.opt,
        &prior.center[NC..],
        &prior.scale[NC..],
        &opt_start(&cd.opt),
        prior.max_iter,
    )
}
