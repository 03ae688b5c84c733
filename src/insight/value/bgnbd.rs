//! BG/NBD (Fader, Hardie & Lee 2005): the purchase process. The log-likelihood with its analytic
//! gradient and Hessian on the compressed rows (fitted through [`Likelihood`]), the per-row
//! predictions (expected purchases, P(alive)) and a simulator for tests.
//!
//! The penalty scales are `s = (1, 1/max(T), 1, 1)`: lifetimes fits in time scaled by max(T) and
//! penalises the scaled alpha.

use super::compress::{per_distinct, stride_sample};
use super::optim::Likelihood;
use super::{fit_warm, FitOptions, FitResult};
use crate::control::Control;
use crate::error::{try_vec, CoreError, Result};
use crate::parallel::CHUNK;
use crate::special::{digamma, hyp2f1, lgamma, trigamma};
use rayon::prelude::*;

/// Compressed BG/NBD data.
pub struct BgData {
    pub(super) xs: Vec<f64>,
    pub(super) ts: Vec<f64>,
    pub(super) tts: Vec<f64>,
    /// total weight per distinct x (all rows)
    pub(super) wx: Vec<f64>,
    /// total weight of zero-repeat rows per distinct T
    pub(super) w0: Vec<f64>,
    /// repeat rows: (x index, t index, T index) and weight
    pub(super) rows: Vec<(u32, u32, u32)>,
    pub(super) rw: Vec<f64>,
    pub(super) wsum: f64,
    pub(super) max_t: f64,
}

impl Likelihood for BgData {
    /// Log-likelihood sum, gradient and Hessian (natural parameters) at p = (r, alpha, a, b).
    fn loglik(&self, p: &[f64], ctl: &Control) -> Result<(f64, Vec<f64>, Vec<f64>)> {
        let (r, al, a, b) = (p[0], p[1], p[2], p[3]);
        let mut ll = 0.0;
        let mut g = [0.0f64; 4];
        let mut h = [0.0f64; 16];
        // terms in x only
        let (lg_r, dg_r, tg_r) = (lgamma(r), digamma(r), trigamma(r));
        let (lg_ab, dg_ab, tg_ab) = (lgamma(a + b), digamma(a + b), trigamma(a + b));
        let (lg_b, dg_b, tg_b) = (lgamma(b), digamma(b), trigamma(b));
        let ln_al = al.ln();
        let mut lbx = vec![0.0; self.xs.len()];
        let mut ibx = vec![0.0; self.xs.len()];
        for (j, &x) in self.xs.iter().enumerate() {
            if x > 0.0 {
                lbx[j] = (b + x - 1.0).ln();
                ibx[j] = 1.0 / (b + x - 1.0);
            }
            let w = self.wx[j];
            if w == 0.0 {
                continue;
            }
            let a1 = lgamma(r + x) - lg_r + r * ln_al;
            let a2 = lg_ab + lgamma(b + x) - lg_b - lgamma(a + b + x);
            ll += w * (a1 + a2);
            let (dr, tr) = (digamma(r + x), trigamma(r + x));
            let (dabx, tabx) = (digamma(a + b + x), trigamma(a + b + x));
            let (dbx, tbx) = (digamma(b + x), trigamma(b + x));
            g[0] += w * (dr - dg_r + ln_al);
            g[1] += w * r / al;
            g[2] += w * (dg_ab - dabx);
            g[3] += w * (dg_ab + dbx - dg_b - dabx);
            h[0] += w * (tr - tg_r);
            h[1] += w / al;
            h[5] += -w * r / (al * al);
            h[10] += w * (tg_ab - tabx);
            h[11] += w * (tg_ab - tabx);
            h[15] += w * (tg_ab + tbx - tg_b - tabx);
        }
        // zero-repeat customers: A3 = -r ln(alpha + T)
        let lt: Vec<f64> = self.tts.iter().map(|&t| (al + t).ln()).collect();
        let it: Vec<f64> = self.tts.iter().map(|&t| 1.0 / (al + t)).collect();
        for (j, &w) in self.w0.iter().enumerate() {
            if w == 0.0 {
                continue;
            }
            ll -= w * r * lt[j];
            g[0] -= w * lt[j];
            g[1] -= w * r * it[j];
            h[1] -= w * it[j];
            h[5] += w * r * it[j] * it[j];
        }
        let ls: Vec<f64> = self.ts.iter().map(|&t| (al + t).ln()).collect();
        let is: Vec<f64> = self.ts.iter().map(|&t| 1.0 / (al + t)).collect();
        let ln_a = a.ln();
        let n = self.rows.len();
        let parts: Vec<Result<[f64; 15]>> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                ctl.check()?;
                let mut s = [0.0f64; 15];
                let hi = (c * CHUNK + CHUNK).min(n);
                let ia = 1.0 / a;
                for q in c * CHUNK..hi {
                    let (jx, jt, jtt) = self.rows[q];
                    let w = self.rw[q];
                    let x = self.xs[jx as usize];
                    let cc = r + x;
                    let (l3, i3) = (lt[jtt as usize], it[jtt as usize]);
                    let (l4, i4) = (ls[jt as usize], is[jt as usize]);
                    let ibxj = ibx[jx as usize];
                    let a3 = -cc * l3;
                    let a4 = ln_a - lbx[jx as usize] - cc * l4;
                    let (mx, mn) = if a3 > a4 { (a3, a4) } else { (a4, a3) };
                    let e = (mn - mx).exp();
                    let lse = mx + e.ln_1p();
                    let p4 = if a4 >= a3 {
                        1.0 / (1.0 + e)
                    } else {
                        e / (1.0 + e)
                    };
                    let p3 = 1.0 - p4;
                    // gradients of A3 = (-l3, -cc i3, 0, 0) and A4 = (-l4, -cc i4, 1/a, -1/(b+x-1))
                    let (d30, d31) = (-l3, -cc * i3);
                    let (d40, d41) = (-l4, -cc * i4);
                    let dd = [d40 - d30, d41 - d31, ia, -ibxj];
                    let pp = p3 * p4;
                    s[0] += w * lse;
                    s[1] += w * (p3 * d30 + p4 * d40);
                    s[2] += w * (p3 * d31 + p4 * d41);
                    s[3] += w * p4 * ia;
                    s[4] -= w * p4 * ibxj;
                    s[5] += w * (pp * dd[0] * dd[0]);
                    s[6] += w * (-p3 * i3 - p4 * i4 + pp * dd[0] * dd[1]);
                    s[7] += w * (p3 * cc * i3 * i3 + p4 * cc * i4 * i4 + pp * dd[1] * dd[1]);
                    s[8] += w * (-p4 * ia * ia + pp * dd[2] * dd[2]);
                    s[9] += w * (p4 * ibxj * ibxj + pp * dd[3] * dd[3]);
                    s[10] += w * (pp * dd[2] * dd[3]);
                    s[11] += w * pp * dd[0] * dd[2];
                    s[12] += w * pp * dd[0] * dd[3];
                    s[13] += w * pp * dd[1] * dd[2];
                    s[14] += w * pp * dd[1] * dd[3];
                }
                Ok(s)
            })
            .collect();
        for part in parts {
            let s = part?;
            ll += s[0];
            g[0] += s[1];
            g[1] += s[2];
            g[2] += s[3];
            g[3] += s[4];
            h[0] += s[5];
            h[1] += s[6];
            h[5] += s[7];
            h[10] += s[8];
            h[15] += s[9];
            h[11] += s[10];
            h[2] += s[11];
            h[3] += s[12];
            h[6] += s[13];
            h[7] += s[14];
        }
        // symmetrise
        for i in 0..4 {
            for j in 0..i {
                h[i * 4 + j] = h[j * 4 + i];
            }
        }
        Ok((ll, g.to_vec(), h.to_vec()))
    }

    fn scales(&self) -> Vec<f64> {
        vec![1.0, 1.0 / self.max_t, 1.0, 1.0]
    }

    /// r = 1, alpha = max(T) / 2, a = b = 1.
    fn start(&self) -> Vec<f64> {
        vec![0.0, (self.max_t * 0.5).max(1e-3).ln(), 0.0, 0.0]
    }

    fn total_weight(&self) -> f64 {
        self.wsum
    }

    fn n_unique(&self) -> usize {
        self.rows.len() + self.w0.iter().filter(|&&v| v > 0.0).count()
    }
}

impl BgData {
    /// The log-likelihood sum at natural parameters `p` = (r, alpha, a, b).
    pub fn log_likelihood(&self, p: &[f64], ctl: &Control) -> Result<f64> {
        Ok(self.loglik(p, ctl)?.0)
    }
}

pub(super) fn check_bg_rows(x: &[f64], t: &[f64], big_t: &[f64]) -> Result<()> {
    let n = x.len();
    if n == 0 {
        return Err(CoreError::invalid("frequency", "is empty"));
    }
    crate::error::check_len("recency", t.len(), n, "frequency")?;
    crate::error::check_len("T", big_t.len(), n, "frequency")?;
    let bad = (0..n).into_par_iter().with_min_len(CHUNK).find_first(|&i| {
        let (xi, ti, tt) = (x[i], t[i], big_t[i]);
        !(xi.is_finite() && ti.is_finite() && tt.is_finite())
            || xi < 0.0
            || xi.fract() != 0.0
            || ti < 0.0
            || ti > tt
            || (xi == 0.0) != (ti == 0.0)
    });
    if let Some(i) = bad {
        let (xi, ti, tt) = (x[i], t[i], big_t[i]);
        let msg = if !(xi.is_finite() && ti.is_finite() && tt.is_finite()) {
            (
                "frequency",
                format!("row {i} is not finite: frequency={xi}, recency={ti}, T={tt}"),
            )
        } else if xi < 0.0 || xi.fract() != 0.0 {
            (
                "frequency",
                format!("must be a non-negative integer, found {xi} at row {i}"),
            )
        } else if ti < 0.0 {
            ("recency", format!("must be >= 0, found {ti} at row {i}"))
        } else if ti > tt {
            (
                "recency",
                format!("must be <= T, found recency={ti} > T={tt} at row {i}"),
            )
        } else if xi == 0.0 {
            (
                "recency",
                format!("must be 0 when frequency is 0, found {ti} at row {i}"),
            )
        } else {
            (
                "recency",
                format!(
                    "must be > 0 when frequency is > 0 (the age at the last repeat purchase), \
                     found 0 with frequency {xi} at row {i}"
                ),
            )
        };
        return Err(CoreError::invalid(msg.0, msg.1));
    }
    Ok(())
}

/// Fits BG/NBD to (frequency, recency, T) rows with optional weights.
pub fn fit_bgnbd(
    x: &[f64],
    t: &[f64],
    big_t: &[f64],
    w: Option<&[f64]>,
    opt: &FitOptions,
    ctl: &Control,
) -> Result<FitResult> {
    let data = BgData::new(x, t, big_t, w, ctl)?;
    let subsample = |k: usize| {
        let ws = w.map(|w| stride_sample(w, k));
        BgData::new(
            &stride_sample(x, k),
            &stride_sample(t, k),
            &stride_sample(big_t, k),
            ws.as_deref(),
            ctl,
        )
    };
    fit_warm(data, x.len(), subsample, opt, ctl)
}

/// BG/NBD predictions for each row. `kind`: expected purchases in (T, T + t] given the history
/// (`Expected`), or P(alive) (`Alive`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BgPredict {
    Expected(f64),
    Alive,
}

/// Half-width around `a = 1` where the expectations' closed forms, which divide by `a - 1` and are
/// 0/0 at `a = 1` (their limit is finite: a fit on data without repeat purchases leaves `a` at
/// 1), are replaced by the mean of the two sides `a = 1 +- NEAR_ONE`: error O(NEAR_ONE^2) from
/// the smooth function, cancellation error ~1e-16 / NEAR_ONE.
const NEAR_ONE: f64 = 1e-5;

/// `f(p)` where the closed form holds, else the mean of `f` at `a = 1 +- NEAR_ONE`.
fn around_a_one(p: &[f64], f: impl Fn(&[f64]) -> f64) -> f64 {
    if (p[2] - 1.0).abs() >= NEAR_ONE {
        return f(p);
    }
    let side = |a: f64| f(&[p[0], p[1], a, p[3]]);
    0.5 * (side(1.0 - NEAR_ONE) + side(1.0 + NEAR_ONE))
}

pub(super) fn bg_expected_one(p: &[f64], t: f64, x: f64, tx: f64, tt: f64) -> f64 {
    around_a_one(p, |p| bg_expected_closed(p, t, x, tx, tt))
}

fn bg_expected_closed(p: &[f64], t: f64, x: f64, tx: f64, tt: f64) -> f64 {
    let (r, al, a, b) = (p[0], p[1], p[2], p[3]);
    if t <= 0.0 {
        return 0.0;
    }
    let hyp = hyp2f1(r + x, b + x, a + b + x - 1.0, t / (al + tt + t));
    let first = (a + b + x - 1.0) / (a - 1.0);
    let second = 1.0 - ((al + tt) / (al + tt + t)).powf(r + x) * hyp;
    let denom = if x > 0.0 {
        1.0 + (a / (b + x - 1.0)) * ((al + tt) / (al + tx)).powf(r + x)
    } else {
        1.0
    };
    first * second / denom
}

fn bg_alive_one(p: &[f64], x: f64, tx: f64, tt: f64) -> f64 {
    let (r, al, a, b) = (p[0], p[1], p[2], p[3]);
    if x == 0.0 {
        return 1.0;
    }
    let log_div = (r + x) * ((al + tt) / (al + tx)).ln() + (a / (b + x - 1.0)).ln();
    1.0 / (1.0 + log_div.exp())
}

pub fn bg_predict(
    p: &[f64],
    what: BgPredict,
    x: &[f64],
    t: &[f64],
    big_t: &[f64],
    ctl: &Control,
) -> Result<Vec<f64>> {
    check_bg_params(p)?;
    let mut out = per_distinct(
        x,
        t,
        big_t,
        ctl,
        |xi, ti, tti| {
            vec![match what {
                BgPredict::Expected(h) => bg_expected_one(p, h, xi, ti, tti),
                BgPredict::Alive => bg_alive_one(p, xi, ti, tti),
            }]
        },
        1,
    )?;
    Ok(out.pop().unwrap())
}

/// Expected purchases of a new customer in (0, t] (unconditional).
pub fn bg_expected_new(p: &[f64], t: f64) -> f64 {
    around_a_one(p, |p| bg_expected_new_closed(p, t))
}

fn bg_expected_new_closed(p: &[f64], t: f64) -> f64 {
    let (r, al, a, b) = (p[0], p[1], p[2], p[3]);
    if t <= 0.0 {
        return 0.0;
    }
    let hyp = hyp2f1(r, b, a + b - 1.0, t / (al + t));
    (a + b - 1.0) / (a - 1.0) * (1.0 - (al / (al + t)).powf(r) * hyp)
}

pub(super) fn check_bg_params(p: &[f64]) -> Result<()> {
    if p.len() != 4 || p.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(CoreError::invalid(
            "params",
            "BG/NBD needs 4 positive finite params r, alpha, a, b",
        ));
    }
    Ok(())
}

/// Simulates BG/NBD customers observed for T days from first purchase (for tests).
pub fn simulate_bgnbd(p: &[f64], big_t: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
    simulate_bgnbd_ctl(p, big_t, seed, &Control::new()).expect("never cancelled")
}

/// [`simulate_bgnbd`] that stops on `ctl` (`Err(Cancelled)`): it checks every 4,096 customers
/// and every 2^20 purchases of one customer (a high rate and a low drop-out probability make
/// one customer's history arbitrarily long).
pub fn simulate_bgnbd_ctl(
    p: &[f64],
    big_t: &[f64],
    seed: u64,
    ctl: &Control,
) -> Result<(Vec<f64>, Vec<f64>)> {
    use rand::Rng;
    use rand_distr::{Beta, Distribution, Exp, Gamma};
    check_bg_params(p)?;
    let (r, al, a, b) = (p[0], p[1], p[2], p[3]);
    let bad =
        |what: &str| CoreError::invalid("params", format!("{what} out of range for sampling"));
    let gamma = Gamma::new(r, 1.0 / al).map_err(|_| bad("r, alpha"))?;
    let beta = Beta::new(a, b).map_err(|_| bad("a, b"))?;
    let mut xs = try_vec("T", big_t.len(), 0.0)?;
    let mut ts = try_vec("T", big_t.len(), 0.0)?;
    for (i, &tt) in big_t.iter().enumerate() {
        if i % 4096 == 0 {
            ctl.check()?;
        }
        let mut rng = crate::rng::stream(seed, i as u64);
        let lam = gamma.sample(&mut rng);
        let pdrop = beta.sample(&mut rng);
        let exp = Exp::new(lam).map_err(|_| bad("r, alpha"))?;
        let (mut x, mut t, mut now) = (0.0, 0.0, 0.0);
        let mut n = 0u64;
        loop {
            n += 1;
            if n % (1 << 20) == 0 {
                ctl.check()?;
            }
            now += exp.sample(&mut rng);
            if now > tt {
                break;
            }
            x += 1.0;
            t = now;
            if rng.random::<f64>() < pdrop {
                break;
            }
        }
        xs[i] = x;
        ts[i] = t;
    }
    Ok((xs, ts))
}
