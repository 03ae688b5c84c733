//! Customer value models: BG/NBD (Fader, Hardie & Lee 2005) for the purchase process and
//! Gamma-Gamma (Fader & Hardie 2013) for spend, fitted by maximum likelihood.
//!
//! - Objective (as in the `lifetimes` package, so fits can be compared): the weighted mean negative
//!   log-likelihood plus an optional L2 penalty `penalizer * sum(s_i * p_i)^2` on the natural
//!   parameters, where `s = (1, 1/max(T), 1, 1)` for BG/NBD (lifetimes fits in time scaled by
//!   max(T) and penalises the scaled alpha) and `s = 1` for Gamma-Gamma.
//! - Optimiser: damped Newton on the log-parameters with the analytic gradient and Hessian,
//!   Levenberg-style damping when the Hessian is not positive definite, a step cap and a
//!   backtracking Armijo line search. Standard errors come from the analytic Hessian at the
//!   optimum (observed information, delta method to the natural parameters).
//! - Data are compressed before fitting: rows are mapped to tables of distinct x, t_x and T values,
//!   exactly identical rows are merged (their weights add up), terms that depend on x only are
//!   summed per distinct x, and zero-repeat customers per distinct T. Nothing is rounded.
//! - Every sum runs over fixed chunks of rows reduced in chunk order: results do not depend on the
//!   thread count.

use super::special::{digamma, hyp2f1, lgamma, trigamma};
use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::numeric::{cholesky_solve, invert_spd};
use crate::parallel::CHUNK;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FitResult {
    pub params: Vec<f64>,
    /// Full (weighted sum, not mean) log-likelihood at `params`, without the penalty.
    pub log_likelihood: f64,
    /// Covariance of the natural parameters (row-major k x k), from the penalised objective.
    pub covariance: Vec<f64>,
    pub std_errors: Vec<f64>,
    pub n_iter: usize,
    pub converged: bool,
    /// Number of distinct rows after compression, and the total weight.
    pub n_unique: usize,
    pub total_weight: f64,
}

#[derive(Clone, Copy, Debug)]
pub struct FitOptions {
    pub penalizer: f64,
    pub max_iter: usize,
    /// Convergence: max |gradient| of the mean objective in log-parameters.
    pub gtol: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            penalizer: 0.0,
            max_iter: 200,
            gtol: 1e-10,
        }
    }
}

/// Objective in log-parameters: returns (f, gradient, Hessian row-major) or None if not finite.
type Point = Option<(f64, Vec<f64>, Vec<f64>)>;
type Eval<'a> = dyn Fn(&[f64]) -> Result<Point> + Sync + 'a;
type WeightParts = (Vec<(u32, f64)>, Vec<(u32, f64)>, f64);

/// Converts (f, g_p, H_p) in natural parameters p = exp(theta) to theta.
fn to_log_space(p: &[f64], g: &[f64], h: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let k = p.len();
    let gt: Vec<f64> = (0..k).map(|i| g[i] * p[i]).collect();
    let mut ht = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            ht[i * k + j] = h[i * k + j] * p[i] * p[j];
        }
        ht[i * k + i] += gt[i];
    }
    (gt, ht)
}

struct NewtonOut {
    theta: Vec<f64>,
    n_iter: usize,
    converged: bool,
    /// objective and log-space Hessian at `theta`
    f: f64,
    h: Vec<f64>,
}

/// Damped Newton minimisation of `eval` from `theta0`.
fn newton(eval: &Eval<'_>, theta0: Vec<f64>, opt: &FitOptions, ctl: &Control) -> Result<NewtonOut> {
    let k = theta0.len();
    let mut theta = theta0;
    let (mut f, mut g, mut h) = eval(&theta)?.ok_or_else(|| {
        CoreError::Internal("the likelihood is not finite at the starting point".into())
    })?;
    let mut lambda = 0.0f64;
    for it in 0..opt.max_iter {
        ctl.check()?;
        let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if gmax < opt.gtol {
            return Ok(NewtonOut {
                theta,
                n_iter: it,
                converged: true,
                f,
                h,
            });
        }
        let mut accepted = false;
        for _attempt in 0..30 {
            let mut hd = h.clone();
            let scale = (0..k).map(|i| h[i * k + i].abs()).fold(1e-12f64, f64::max);
            for i in 0..k {
                hd[i * k + i] += lambda * scale;
            }
            let neg: Vec<f64> = g.iter().map(|v| -v).collect();
            let d = match cholesky_solve(&hd, k, &neg) {
                Some(d) if d.iter().all(|v| v.is_finite()) => d,
                _ => {
                    lambda = if lambda == 0.0 { 1e-6 } else { lambda * 10.0 };
                    continue;
                }
            };
            let mut d = d;
            let dmax = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            if dmax > 2.0 {
                for v in d.iter_mut() {
                    *v *= 2.0 / dmax;
                }
            }
            let slope: f64 = d.iter().zip(&g).map(|(a, b)| a * b).sum();
            if lambda == 0.0 && -slope < 1e-15 * f.abs().max(1.0) && slope <= 0.0 {
                // Newton decrement below rounding of the objective: at the optimum (the
                // remaining step changes the objective by less than its rounding error).
                return Ok(NewtonOut {
                    theta,
                    n_iter: it,
                    converged: true,
                    f,
                    h,
                });
            }
            if slope >= 0.0 {
                lambda = if lambda == 0.0 { 1e-6 } else { lambda * 10.0 };
                continue;
            }
            let mut step = 1.0;
            for _ in 0..40 {
                let cand: Vec<f64> = theta.iter().zip(&d).map(|(t, v)| t + step * v).collect();
                if let Some((fc, gc, hc)) = eval(&cand)? {
                    if fc <= f + 1e-4 * step * slope || (fc <= f && gmax < 1e3 * opt.gtol) {
                        theta = cand;
                        let tiny = (f - fc).abs() <= 1e-16 * f.abs().max(1.0);
                        f = fc;
                        g = gc;
                        h = hc;
                        accepted = true;
                        if tiny {
                            let gm = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                            if gm < 1e3 * opt.gtol {
                                return Ok(NewtonOut {
                                    theta,
                                    n_iter: it + 1,
                                    converged: true,
                                    f,
                                    h,
                                });
                            }
                        }
                        break;
                    }
                }
                step *= 0.5;
            }
            if accepted {
                lambda = if lambda > 0.0 { lambda * 0.1 } else { 0.0 };
                if lambda < 1e-9 {
                    lambda = 0.0;
                }
                break;
            }
            lambda = if lambda == 0.0 { 1e-6 } else { lambda * 10.0 };
        }
        if !accepted {
            // no descent possible: at the optimum up to rounding
            let gm = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            return Ok(NewtonOut {
                theta,
                n_iter: it,
                converged: gm < 1e-6,
                f,
                h,
            });
        }
    }
    let gm = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    Ok(NewtonOut {
        theta,
        n_iter: opt.max_iter,
        converged: gm < opt.gtol * 1e3,
        f,
        h,
    })
}

/// Standard errors and covariance of natural parameters from the log-space Hessian of the mean
/// objective (times the total weight): cov_p = diag(p) (W H_theta)^-1 diag(p).
fn covariance(p: &[f64], h_theta_mean: &[f64], w: f64) -> (Vec<f64>, Vec<f64>) {
    let k = p.len();
    let hw: Vec<f64> = h_theta_mean.iter().map(|v| v * w).collect();
    match invert_spd(&hw, k) {
        Some(inv) => {
            let mut cov = vec![0.0; k * k];
            for i in 0..k {
                for j in 0..k {
                    cov[i * k + j] = inv[i * k + j] * p[i] * p[j];
                }
            }
            let se = (0..k).map(|i| cov[i * k + i].max(0.0).sqrt()).collect();
            (cov, se)
        }
        None => (vec![f64::NAN; k * k], vec![f64::NAN; k]),
    }
}

// ---------------------------------------------------------------------------------------------
// compression helpers

/// Distinct values of `v` (sorted) and each row's index into them. Integral values in
/// [0, 2^21) use the identity table 0..=max (no sort).
fn value_table(v: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let integral = v
        .par_iter()
        .with_min_len(CHUNK)
        .all(|&x| x >= 0.0 && x < (1u64 << 21) as f64 && x.fract() == 0.0);
    if integral {
        let max = v
            .par_iter()
            .with_min_len(CHUNK)
            .map(|&x| x as u32)
            .max()
            .unwrap_or(0);
        let table = (0..=max).map(|i| i as f64).collect();
        let idx = v
            .par_iter()
            .with_min_len(CHUNK)
            .map(|&x| x as u32)
            .collect();
        (table, idx)
    } else {
        let mut t = v.to_vec();
        t.par_sort_unstable_by(|a, b| a.total_cmp(b));
        t.dedup();
        let idx = v
            .par_iter()
            .with_min_len(CHUNK)
            .map(|x| t.binary_search_by(|y| y.total_cmp(x)).unwrap_or(0) as u32)
            .collect();
        (t, idx)
    }
}

/// Merges rows with equal `key`; returns (distinct keys in increasing order, summed weights,
/// for each input row the index of its distinct key).
fn merge_keys(keys: &[u128], w: Option<&[f64]>) -> (Vec<u128>, Vec<f64>) {
    let mut uk = Vec::new();
    let mut uw: Vec<f64> = Vec::new();
    match w {
        None => {
            // unweighted: sort the keys alone and count runs (exact integer weights)
            let mut k = keys.to_vec();
            k.par_sort_unstable();
            for &key in &k {
                if uk.last() != Some(&key) {
                    uk.push(key);
                    uw.push(0.0);
                }
                *uw.last_mut().unwrap() += 1.0;
            }
        }
        Some(w) => {
            // weighted: sort (key, weight) so equal keys add their weights in a fixed order
            let mut order: Vec<(u128, u64)> = keys
                .par_iter()
                .zip(w.par_iter())
                .with_min_len(CHUNK)
                .map(|(&k, &wi)| (k, wi.to_bits()))
                .collect();
            order.par_sort_unstable();
            for &(key, wb) in &order {
                if uk.last() != Some(&key) {
                    uk.push(key);
                    uw.push(0.0);
                }
                *uw.last_mut().unwrap() += f64::from_bits(wb);
            }
        }
    }
    (uk, uw)
}

/// Dense counting of packed keys `< size` (unweighted rows): exact, in key order.
fn count_dense(keys: &[u64], size: usize) -> (Vec<u64>, Vec<f64>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let counts: Vec<AtomicU32> = (0..size).map(|_| AtomicU32::new(0)).collect();
    keys.par_iter().with_min_len(CHUNK).for_each(|&k| {
        counts[k as usize].fetch_add(1, Ordering::Relaxed);
    });
    let parts: Vec<(Vec<u64>, Vec<f64>)> = counts
        .par_chunks(1 << 16)
        .enumerate()
        .map(|(c, ch)| {
            let mut a = Vec::new();
            let mut b = Vec::new();
            for (i, v) in ch.iter().enumerate() {
                let v = v.load(Ordering::Relaxed);
                if v > 0 {
                    a.push((c * (1 << 16) + i) as u64);
                    b.push(v as f64);
                }
            }
            (a, b)
        })
        .collect();
    let mut uk = Vec::new();
    let mut uw = Vec::new();
    for (a, b) in parts {
        uk.extend(a);
        uw.extend(b);
    }
    (uk, uw)
}

fn check_weights(w: Option<&[f64]>, n: usize) -> Result<()> {
    if let Some(w) = w {
        crate::error::check_len("weights", w.len(), n, "frequency")?;
        crate::error::check_nonnegative("weights", w)?;
        if w.iter().all(|&v| v == 0.0) {
            return Err(CoreError::invalid("weights", "are all zero"));
        }
    }
    Ok(())
}

fn check_bg_rows(x: &[f64], t: &[f64], big_t: &[f64]) -> Result<()> {
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

// ---------------------------------------------------------------------------------------------
// BG/NBD

/// Raw pointer for disjoint parallel writes of bucket keys.
#[derive(Clone, Copy)]
struct KeyPtr(*mut u32);
unsafe impl Send for KeyPtr {}
unsafe impl Sync for KeyPtr {}
impl KeyPtr {
    /// # Safety
    /// `i` in bounds and written by no other thread.
    unsafe fn write(self, i: usize, v: u32) {
        unsafe { self.0.add(i).write(v) }
    }
}

/// Compressed BG/NBD data.
pub struct BgData {
    xs: Vec<f64>,
    ts: Vec<f64>,
    tts: Vec<f64>,
    /// total weight per distinct x (all rows)
    wx: Vec<f64>,
    /// total weight of zero-repeat rows per distinct T
    w0: Vec<f64>,
    /// repeat rows: (x index, t index, T index) and weight
    rows: Vec<(u32, u32, u32)>,
    rw: Vec<f64>,
    wsum: f64,
    max_t: f64,
}

impl BgData {
    pub fn new(x: &[f64], t: &[f64], big_t: &[f64], w: Option<&[f64]>) -> Result<BgData> {
        check_bg_rows(x, t, big_t)?;
        check_weights(w, x.len())?;
        if w.is_none() {
            if let Some(d) = Self::new_integral_unweighted(x, t, big_t)? {
                return Ok(d);
            }
        }
        let (xs, ix) = value_table(x);
        let (ts, it) = value_table(t);
        let (tts, itt) = value_table(big_t);
        let max_t = tts.last().copied().unwrap_or(0.0);
        if max_t <= 0.0 {
            return Err(CoreError::invalid("T", "must have at least one value > 0"));
        }
        let mut wx = vec![0.0; xs.len()];
        let mut w0 = vec![0.0; tts.len()];
        let mut wsum = 0.0;
        // x-only and zero-repeat sums: sequential over rows would be O(n); do it per chunk
        let parts: Vec<WeightParts> = (0..x.len().div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let lo = c * CHUNK;
                let hi = (lo + CHUNK).min(x.len());
                let mut a: Vec<(u32, f64)> = Vec::new();
                let mut b: Vec<(u32, f64)> = Vec::new();
                let mut s = 0.0;
                let mut lx = vec![0.0; xs.len().min(4096)];
                for i in lo..hi {
                    let wi = w.map(|w| w[i]).unwrap_or(1.0);
                    s += wi;
                    if (ix[i] as usize) < lx.len() {
                        lx[ix[i] as usize] += wi;
                    } else {
                        a.push((ix[i], wi));
                    }
                    if ix[i] == 0 && xs[0] == 0.0 {
                        b.push((itt[i], wi));
                    }
                }
                for (j, v) in lx.into_iter().enumerate() {
                    if v != 0.0 {
                        a.push((j as u32, v));
                    }
                }
                (a, b, s)
            })
            .collect();
        for (a, b, s) in parts {
            for (j, v) in a {
                wx[j as usize] += v;
            }
            for (j, v) in b {
                w0[j as usize] += v;
            }
            wsum += s;
        }
        if wsum <= 0.0 {
            return Err(CoreError::invalid("weights", "sum to zero"));
        }
        // repeat rows, merged
        let sel: Vec<u32> = (0..x.len() as u32)
            .into_par_iter()
            .with_min_len(CHUNK)
            .filter(|&i| x[i as usize] > 0.0)
            .collect();
        // pack (x, t_x, T) indices into one key; count identical rows
        let (nt, ntt) = (ts.len() as u64, tts.len() as u64);
        let size = (xs.len() as u128) * (nt as u128) * (ntt as u128);
        let (rows, rw): (Vec<(u32, u32, u32)>, Vec<f64>) = if w.is_none() && size <= 1 << 25 {
            let keys: Vec<u64> = sel
                .par_iter()
                .with_min_len(CHUNK)
                .map(|&i| {
                    let i = i as usize;
                    (ix[i] as u64 * nt + it[i] as u64) * ntt + itt[i] as u64
                })
                .collect();
            let (uk, uw) = count_dense(&keys, size as usize);
            let rows = uk
                .iter()
                .map(|&k| {
                    (
                        (k / ntt / nt) as u32,
                        ((k / ntt) % nt) as u32,
                        (k % ntt) as u32,
                    )
                })
                .collect();
            (rows, uw)
        } else {
            let keys: Vec<u128> = sel
                .par_iter()
                .with_min_len(CHUNK)
                .map(|&i| {
                    let i = i as usize;
                    ((ix[i] as u128) << 64) | ((it[i] as u128) << 32) | itt[i] as u128
                })
                .collect();
            let sw: Option<Vec<f64>> = w.map(|w| sel.iter().map(|&i| w[i as usize]).collect());
            let (uk, uw) = merge_keys(&keys, sw.as_deref());
            let rows = uk
                .iter()
                .map(|&k| ((k >> 64) as u32, (k >> 32) as u32, k as u32))
                .collect();
            (rows, uw)
        };
        drop(sel);
        Ok(BgData {
            xs,
            ts,
            tts,
            wx,
            w0,
            rows,
            rw,
            wsum,
            max_t,
        })
    }

    /// Fast path for unweighted whole-number data (the output of `features`): two passes, all
    /// merging done with exact integer counters (so the result does not depend on threads).
    fn new_integral_unweighted(x: &[f64], t: &[f64], big_t: &[f64]) -> Result<Option<BgData>> {
        const LIM: f64 = (1u64 << 21) as f64;
        let ok = |v: f64| (0.0..LIM).contains(&v) && v.fract() == 0.0;
        let maxes = (0..x.len())
            .into_par_iter()
            .with_min_len(CHUNK)
            .fold(
                || Some((0u32, 0u32, 0u32)),
                |acc, i| {
                    let (a, b, c) = acc?;
                    if ok(x[i]) && ok(t[i]) && ok(big_t[i]) {
                        Some((
                            a.max(x[i] as u32),
                            b.max(t[i] as u32),
                            c.max(big_t[i] as u32),
                        ))
                    } else {
                        None
                    }
                },
            )
            .reduce(
                || Some((0, 0, 0)),
                |p, q| match (p, q) {
                    (Some(p), Some(q)) => Some((p.0.max(q.0), p.1.max(q.1), p.2.max(q.2))),
                    _ => None,
                },
            );
        let Some((mx, mt, mtt)) = maxes else {
            return Ok(None);
        };
        let (nx, nt, ntt) = (mx as usize + 1, mt as usize + 1, mtt as usize + 1);
        let size = nx as u128 * nt as u128 * ntt as u128;
        if size > 1 << 25 || x.len() >= u32::MAX as usize {
            return Ok(None);
        }
        if mtt == 0 {
            return Err(CoreError::invalid("T", "must have at least one value > 0"));
        }
        if nx > 1 << 16 || ntt > 1 << 16 {
            return Ok(None);
        }
        let n = x.len();
        let n_chunks = n.div_ceil(CHUNK);
        let range = |c: usize| (c * CHUNK, ((c + 1) * CHUNK).min(n));
        // per-chunk histograms of x (all rows) and of T (zero-repeat rows): no shared counters
        let hists: Vec<(Vec<u32>, Vec<u32>)> = (0..n_chunks)
            .into_par_iter()
            .map(|c| {
                let (lo, hi) = range(c);
                let mut hx = vec![0u32; nx];
                let mut h0 = vec![0u32; ntt];
                for i in lo..hi {
                    let xi = x[i] as usize;
                    hx[xi] += 1;
                    if xi == 0 {
                        h0[big_t[i] as usize] += 1;
                    }
                }
                (hx, h0)
            })
            .collect();
        let mut wx = vec![0.0f64; nx];
        let mut w0 = vec![0.0f64; ntt];
        // bucket offsets per (chunk, x) for the repeat rows: a counting sort by x in chunk order
        let mut starts = vec![0usize; nx + 1];
        for (hx, h0) in &hists {
            for (j, &v) in hx.iter().enumerate() {
                wx[j] += v as f64;
            }
            for (j, &v) in h0.iter().enumerate() {
                w0[j] += v as f64;
            }
        }
        for j in 1..nx {
            starts[j + 1] = starts[j] + wx[j] as usize;
        }
        starts[1] = 0;
        let n_rep = starts[nx];
        let mut cursor: Vec<Vec<usize>> = Vec::with_capacity(n_chunks);
        let mut run = starts.clone();
        for (hx, _) in &hists {
            cursor.push(run[..nx].to_vec());
            for j in 1..nx {
                run[j] += hx[j] as usize;
            }
        }
        drop(hists);
        let mut keys: Vec<u32> = Vec::with_capacity(n_rep);
        {
            let pk = KeyPtr(keys.as_mut_ptr());
            cursor.par_iter_mut().enumerate().for_each(|(c, cur)| {
                let (lo, hi) = range(c);
                for i in lo..hi {
                    let xi = x[i] as usize;
                    if xi > 0 {
                        let p = cur[xi];
                        cur[xi] += 1;
                        let k = (t[i] as u32) * ntt as u32 + big_t[i] as u32;
                        // SAFETY: (chunk, x) cursor ranges are disjoint and cover 0..n_rep.
                        unsafe { pk.write(p, k) };
                    }
                }
            });
            // SAFETY: every position in 0..n_rep was written once above.
            unsafe { keys.set_len(n_rep) };
        }
        // per distinct x: dense count of (t_x, T) pairs, in key order
        type Part = (Vec<(u32, u32, u32)>, Vec<f64>);
        let per_x: Vec<Part> = (1..nx)
            .into_par_iter()
            .map(|j| {
                let bucket = &keys[starts[j]..starts[j + 1]];
                let mut rows = Vec::new();
                let mut rw = Vec::new();
                if bucket.is_empty() {
                    return (rows, rw);
                }
                if bucket.len() * 8 >= nt * ntt {
                    // dense bucket: count (t_x, T) pairs in a table
                    let mut cnt = vec![0u32; nt * ntt];
                    for &k in bucket {
                        cnt[k as usize] += 1;
                    }
                    for (k, &v) in cnt.iter().enumerate() {
                        if v > 0 {
                            rows.push((j as u32, (k / ntt) as u32, (k % ntt) as u32));
                            rw.push(v as f64);
                        }
                    }
                } else {
                    // sparse bucket: sort its keys and count runs
                    let mut b = bucket.to_vec();
                    b.sort_unstable();
                    for &k in &b {
                        let r = (j as u32, k / ntt as u32, k % ntt as u32);
                        if rows.last() == Some(&r) {
                            *rw.last_mut().unwrap() += 1.0;
                        } else {
                            rows.push(r);
                            rw.push(1.0);
                        }
                    }
                }
                (rows, rw)
            })
            .collect();
        let mut rows = Vec::new();
        let mut rw = Vec::new();
        for (a, b) in per_x {
            rows.extend(a);
            rw.extend(b);
        }
        let table = |n: usize| (0..n).map(|i| i as f64).collect::<Vec<f64>>();
        Ok(Some(BgData {
            xs: table(nx),
            ts: table(nt),
            tts: table(ntt),
            wx,
            w0,
            rows,
            rw,
            wsum: x.len() as f64,
            max_t: mtt as f64,
        }))
    }

    pub fn n_unique(&self) -> usize {
        self.rows.len() + self.w0.iter().filter(|&&v| v > 0.0).count()
    }

    /// Log-likelihood sum, gradient and Hessian (natural parameters) at p = (r, alpha, a, b).
    fn loglik(&self, p: &[f64], ctl: &Control) -> Result<(f64, [f64; 4], [f64; 16])> {
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
        Ok((ll, g, h))
    }

    fn scales(&self) -> [f64; 4] {
        [1.0, 1.0 / self.max_t, 1.0, 1.0]
    }

    fn penalty(&self, p: &[f64], pen: f64) -> f64 {
        let s = self.scales();
        pen * (0..4).map(|i| (s[i] * p[i]).powi(2)).sum::<f64>()
    }

    /// Penalised mean objective in log-parameters.
    fn objective(&self, theta: &[f64], pen: f64, ctl: &Control) -> Result<Point> {
        let p: Vec<f64> = theta.iter().map(|t| t.exp()).collect();
        if p.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return Ok(None);
        }
        let (ll, g, h) = self.loglik(&p, ctl)?;
        if !ll.is_finite() || g.iter().any(|v| !v.is_finite()) || h.iter().any(|v| !v.is_finite()) {
            return Ok(None);
        }
        let s = self.scales();
        let w = self.wsum;
        let mut f = -ll / w;
        let mut gp: Vec<f64> = g.iter().map(|v| -v / w).collect();
        let mut hp: Vec<f64> = h.iter().map(|v| -v / w).collect();
        for i in 0..4 {
            f += pen * (s[i] * p[i]).powi(2);
            gp[i] += 2.0 * pen * s[i] * s[i] * p[i];
            hp[i * 4 + i] += 2.0 * pen * s[i] * s[i];
        }
        let (gt, ht) = to_log_space(&p, &gp, &hp);
        Ok(Some((f, gt, ht)))
    }

    pub fn log_likelihood(&self, p: &[f64], ctl: &Control) -> Result<f64> {
        Ok(self.loglik(p, ctl)?.0)
    }

    pub fn fit(&self, opt: &FitOptions, ctl: &Control) -> Result<FitResult> {
        self.fit_from(opt, ctl, None)
    }

    /// Fits from natural parameters `start` (default r = 1, alpha = max(T) / 2, a = b = 1).
    pub fn fit_from(
        &self,
        opt: &FitOptions,
        ctl: &Control,
        start: Option<&[f64]>,
    ) -> Result<FitResult> {
        if !(opt.penalizer >= 0.0 && opt.penalizer.is_finite()) {
            return Err(CoreError::invalid("penalizer", "must be finite and >= 0"));
        }
        let eval = |th: &[f64]| self.objective(th, opt.penalizer, ctl);
        let theta0 = match start {
            Some(p) => p.iter().map(|v| v.ln()).collect(),
            None => vec![0.0, (self.max_t * 0.5).max(1e-3).ln(), 0.0, 0.0],
        };
        let out = newton(&eval, theta0, opt, ctl)?;
        let (n_iter, converged) = (out.n_iter, out.converged);
        let p: Vec<f64> = out.theta.iter().map(|t| t.exp()).collect();
        let (cov, se) = covariance(&p, &out.h, self.wsum);
        // the objective is -LL / W + penalty: recover the full log-likelihood without a pass
        let pen: f64 = self.penalty(&p, opt.penalizer);
        Ok(FitResult {
            log_likelihood: -(out.f - pen) * self.wsum,
            params: p,
            covariance: cov,
            std_errors: se,
            n_iter,
            converged,
            n_unique: self.n_unique(),
            total_weight: self.wsum,
        })
    }
}

/// Rows above which the fit starts from a fit on a systematic subsample (every k-th row, about
/// `SUBSAMPLE` rows): the full-data Newton iterations then start near the optimum. The answer is
/// the optimum of the full data either way; only the number of full passes changes.
const WARM_START_ROWS: usize = 200_000;
const SUBSAMPLE: usize = 50_000;

fn stride_sample(v: &[f64], stride: usize) -> Vec<f64> {
    v.iter().step_by(stride).copied().collect()
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
    let data = BgData::new(x, t, big_t, w)?;
    let mut start = None;
    if x.len() > WARM_START_ROWS {
        let k = x.len() / SUBSAMPLE;
        let ws = w.map(|w| stride_sample(w, k));
        if let Ok(sub) = BgData::new(
            &stride_sample(x, k),
            &stride_sample(t, k),
            &stride_sample(big_t, k),
            ws.as_deref(),
        ) {
            if let Ok(f) = sub.fit(opt, ctl) {
                start = Some(f.params);
            }
        }
    }
    ctl.check()?;
    data.fit_from(opt, ctl, start.as_deref())
}

/// Fits Gamma-Gamma to (frequency, monetary) rows with optional weights.
pub fn fit_gammagamma(
    x: &[f64],
    m: &[f64],
    w: Option<&[f64]>,
    opt: &FitOptions,
    ctl: &Control,
) -> Result<FitResult> {
    let data = GgData::new(x, m, w)?;
    let mut start = None;
    if x.len() > WARM_START_ROWS {
        let k = x.len() / SUBSAMPLE;
        let ws = w.map(|w| stride_sample(w, k));
        if let Ok(sub) = GgData::new(&stride_sample(x, k), &stride_sample(m, k), ws.as_deref()) {
            if let Ok(f) = sub.fit(opt, ctl) {
                start = Some(f.params);
            }
        }
    }
    ctl.check()?;
    data.fit_from(opt, ctl, start.as_deref())
}

/// BG/NBD predictions for each row. `kind`: expected purchases in (T, T + t] given the history
/// (`Expected`), or P(alive) (`Alive`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BgPredict {
    Expected(f64),
    Alive,
}

fn bg_expected_one(p: &[f64], t: f64, x: f64, tx: f64, tt: f64) -> f64 {
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

/// Evaluates `f(x, t_x, T)` once per distinct row and scatters the result back.
fn per_distinct(
    x: &[f64],
    t: &[f64],
    big_t: &[f64],
    ctl: &Control,
    f: impl Fn(f64, f64, f64) -> Vec<f64> + Sync,
    k: usize,
) -> Result<Vec<Vec<f64>>> {
    check_bg_rows(x, t, big_t)?;
    let mut order: Vec<u32> = (0..x.len() as u32).collect();
    order.par_sort_unstable_by(|&i, &j| {
        let (i, j) = (i as usize, j as usize);
        x[i].total_cmp(&x[j])
            .then(t[i].total_cmp(&t[j]))
            .then(big_t[i].total_cmp(&big_t[j]))
    });
    ctl.check()?;
    let mut reps: Vec<u32> = Vec::new();
    let mut group = vec![0u32; x.len()];
    for &i in &order {
        let iu = i as usize;
        let new = match reps.last() {
            None => true,
            Some(&r) => {
                let r = r as usize;
                x[r] != x[iu] || t[r] != t[iu] || big_t[r] != big_t[iu]
            }
        };
        if new {
            reps.push(i);
        }
        group[iu] = (reps.len() - 1) as u32;
    }
    let vals: Vec<Vec<f64>> = reps
        .par_iter()
        .with_min_len(64)
        .map(|&i| {
            let i = i as usize;
            f(x[i], t[i], big_t[i])
        })
        .collect();
    ctl.check()?;
    let mut out = vec![vec![0.0; x.len()]; k];
    for (o, col) in out.iter_mut().enumerate() {
        col.par_iter_mut()
            .with_min_len(CHUNK)
            .enumerate()
            .for_each(|(i, v)| *v = vals[group[i] as usize][o]);
    }
    Ok(out)
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
    let (r, al, a, b) = (p[0], p[1], p[2], p[3]);
    if t <= 0.0 {
        return 0.0;
    }
    let hyp = hyp2f1(r, b, a + b - 1.0, t / (al + t));
    (a + b - 1.0) / (a - 1.0) * (1.0 - (al / (al + t)).powf(r) * hyp)
}

fn check_bg_params(p: &[f64]) -> Result<()> {
    if p.len() != 4 || p.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(CoreError::invalid(
            "params",
            "BG/NBD needs 4 positive finite params r, alpha, a, b",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Gamma-Gamma

pub struct GgData {
    xs: Vec<f64>,
    wx: Vec<f64>,
    /// per distinct row: x index, s = x * m
    rows: Vec<(u32, f64)>,
    rw: Vec<f64>,
    s_lnm: f64,
    s_xlnm: f64,
    wsum: f64,
}

impl GgData {
    /// Rows with frequency 0 carry no information about spend and are skipped.
    pub fn new(x: &[f64], m: &[f64], w: Option<&[f64]>) -> Result<GgData> {
        let n = x.len();
        if n == 0 {
            return Err(CoreError::invalid("frequency", "is empty"));
        }
        crate::error::check_len("monetary", m.len(), n, "frequency")?;
        check_weights(w, n)?;
        let bad = (0..n).into_par_iter().with_min_len(CHUNK).find_first(|&i| {
            !(x[i].is_finite() && x[i] >= 0.0 && x[i].fract() == 0.0 && m[i].is_finite())
                || (x[i] > 0.0 && m[i] <= 0.0)
        });
        if let Some(i) = bad {
            return Err(
                if !(x[i].is_finite() && x[i] >= 0.0 && x[i].fract() == 0.0) {
                    CoreError::invalid(
                        "frequency",
                        format!("must be a non-negative integer, found {} at row {i}", x[i]),
                    )
                } else {
                    CoreError::invalid(
                    "monetary",
                    format!("must be finite and > 0 for customers with frequency > 0, found {} at row {i}", m[i]),
                )
                },
            );
        }
        let sel: Vec<u32> = (0..n as u32)
            .into_par_iter()
            .with_min_len(CHUNK)
            .filter(|&i| x[i as usize] > 0.0 && w.map(|w| w[i as usize] > 0.0).unwrap_or(true))
            .collect();
        if sel.is_empty() {
            return Err(CoreError::invalid(
                "frequency",
                "no customer with frequency > 0 (and positive weight): Gamma-Gamma needs repeat buyers",
            ));
        }
        let xsel: Vec<f64> = sel.iter().map(|&i| x[i as usize]).collect();
        let (xs, ix) = value_table(&xsel);
        let keys: Vec<u128> = sel
            .par_iter()
            .enumerate()
            .with_min_len(CHUNK)
            .map(|(q, &i)| ((ix[q] as u128) << 64) | m[i as usize].to_bits() as u128)
            .collect();
        let sw: Option<Vec<f64>> = w.map(|w| sel.iter().map(|&i| w[i as usize]).collect());
        // Weighted input (a compressed table) is merged exactly; unweighted rows are used as they
        // are: spend values rarely repeat exactly, so sorting them would cost more than it saves.
        let (uk, rw) = if sw.is_some() {
            merge_keys(&keys, sw.as_deref())
        } else {
            let n = keys.len();
            (keys, vec![1.0; n])
        };
        // rows and sufficient statistics, in parallel chunks reduced in chunk order
        let rows: Vec<(u32, f64)> = uk
            .par_iter()
            .with_min_len(CHUNK)
            .map(|k| {
                let jx = (k >> 64) as u32;
                (jx, xs[jx as usize] * f64::from_bits(*k as u64))
            })
            .collect();
        let parts: Vec<(Vec<f64>, f64, f64, f64)> = uk
            .par_chunks(CHUNK)
            .zip(rw.par_chunks(CHUNK))
            .map(|(ks, ws)| {
                let mut wxl = vec![0.0; xs.len()];
                let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
                for (k, &wk) in ks.iter().zip(ws) {
                    let jx = (k >> 64) as usize;
                    let l = f64::from_bits(*k as u64).ln();
                    wxl[jx] += wk;
                    a += wk * l;
                    b += wk * xs[jx] * l;
                    c += wk;
                }
                (wxl, a, b, c)
            })
            .collect();
        let mut wx = vec![0.0; xs.len()];
        let (mut s_lnm, mut s_xlnm, mut wsum) = (0.0, 0.0, 0.0);
        for (wxl, a, b, c) in parts {
            for (t, v) in wx.iter_mut().zip(wxl) {
                *t += v;
            }
            s_lnm += a;
            s_xlnm += b;
            wsum += c;
        }
        Ok(GgData {
            xs,
            wx,
            rows,
            rw,
            s_lnm,
            s_xlnm,
            wsum,
        })
    }

    pub fn n_unique(&self) -> usize {
        self.rows.len()
    }

    fn penalty(&self, p: &[f64], pen: f64) -> f64 {
        pen * p.iter().map(|v| v * v).sum::<f64>()
    }

    fn loglik(&self, p: &[f64], ctl: &Control) -> Result<(f64, [f64; 3], [f64; 9])> {
        let (pp, q, v) = (p[0], p[1], p[2]);
        let mut ll = 0.0;
        let mut g = [0.0f64; 3];
        let mut h = [0.0f64; 9];
        let (lgq, dgq, tgq) = (lgamma(q), digamma(q), trigamma(q));
        for (j, &x) in self.xs.iter().enumerate() {
            let w = self.wx[j];
            if w == 0.0 {
                continue;
            }
            let (u, z) = (pp * x + q, pp * x);
            ll += w * (lgamma(u) - lgamma(z) - lgq + z * x.ln());
            let (du, dz) = (digamma(u), digamma(z));
            let (tu, tz) = (trigamma(u), trigamma(z));
            g[0] += w * (x * du - x * dz + x * x.ln());
            g[1] += w * (du - dgq);
            h[0] += w * x * x * (tu - tz);
            h[1] += w * x * tu;
            h[4] += w * (tu - tgq);
        }
        let wsum = self.wsum;
        ll += q * v.ln() * wsum + pp * self.s_xlnm - self.s_lnm;
        g[0] += self.s_xlnm;
        g[1] += wsum * v.ln();
        g[2] += wsum * q / v;
        h[5] += wsum / v;
        h[8] += -wsum * q / (v * v);
        let n = self.rows.len();
        let parts: Vec<Result<[f64; 6]>> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                ctl.check()?;
                let mut s = [0.0f64; 6];
                let hi = (c * CHUNK + CHUNK).min(n);
                for k in c * CHUNK..hi {
                    let (jx, sv) = self.rows[k];
                    let w = self.rw[k];
                    let x = self.xs[jx as usize];
                    let l = (sv + v).ln();
                    let iv = 1.0 / (sv + v);
                    s[0] += w * x * l;
                    s[1] += w * l;
                    s[2] += w * x * iv;
                    s[3] += w * iv;
                    s[4] += w * x * iv * iv;
                    s[5] += w * iv * iv;
                }
                Ok(s)
            })
            .collect();
        let mut s = [0.0; 6];
        for part in parts {
            let t = part?;
            for i in 0..6 {
                s[i] += t[i];
            }
        }
        ll -= pp * s[0] + q * s[1];
        g[0] -= s[0];
        g[1] -= s[1];
        g[2] -= pp * s[2] + q * s[3];
        h[2] -= s[2];
        h[5] -= s[3];
        h[8] += pp * s[4] + q * s[5];
        for i in 0..3 {
            for j in 0..i {
                h[i * 3 + j] = h[j * 3 + i];
            }
        }
        Ok((ll, g, h))
    }

    fn objective(&self, theta: &[f64], pen: f64, ctl: &Control) -> Result<Point> {
        let p: Vec<f64> = theta.iter().map(|t| t.exp()).collect();
        if p.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return Ok(None);
        }
        let (ll, g, h) = self.loglik(&p, ctl)?;
        if !ll.is_finite() || g.iter().any(|v| !v.is_finite()) || h.iter().any(|v| !v.is_finite()) {
            return Ok(None);
        }
        let w = self.wsum;
        let mut f = -ll / w;
        let mut gp: Vec<f64> = g.iter().map(|v| -v / w).collect();
        let mut hp: Vec<f64> = h.iter().map(|v| -v / w).collect();
        for i in 0..3 {
            f += pen * p[i] * p[i];
            gp[i] += 2.0 * pen * p[i];
            hp[i * 3 + i] += 2.0 * pen;
        }
        let (gt, ht) = to_log_space(&p, &gp, &hp);
        Ok(Some((f, gt, ht)))
    }

    pub fn log_likelihood(&self, p: &[f64], ctl: &Control) -> Result<f64> {
        Ok(self.loglik(p, ctl)?.0)
    }

    pub fn fit(&self, opt: &FitOptions, ctl: &Control) -> Result<FitResult> {
        self.fit_from(opt, ctl, None)
    }

    /// Fits from natural parameters `start` (default p = 1, q = 2, gamma = mean spend).
    pub fn fit_from(
        &self,
        opt: &FitOptions,
        ctl: &Control,
        start: Option<&[f64]>,
    ) -> Result<FitResult> {
        if !(opt.penalizer >= 0.0 && opt.penalizer.is_finite()) {
            return Err(CoreError::invalid("penalizer", "must be finite and >= 0"));
        }
        let eval = |th: &[f64]| self.objective(th, opt.penalizer, ctl);
        let mean_m = self
            .rows
            .iter()
            .zip(&self.rw)
            .map(|(&(jx, s), &w)| w * s / self.xs[jx as usize])
            .sum::<f64>()
            / self.wsum;
        let theta0 = match start {
            Some(p) => p.iter().map(|v| v.ln()).collect(),
            None => vec![0.0, 2f64.ln(), mean_m.max(1e-12).ln()],
        };
        let out = newton(&eval, theta0, opt, ctl)?;
        let (n_iter, converged) = (out.n_iter, out.converged);
        let p: Vec<f64> = out.theta.iter().map(|t| t.exp()).collect();
        let (cov, se) = covariance(&p, &out.h, self.wsum);
        // the objective is -LL / W + penalty: recover the full log-likelihood without a pass
        let pen: f64 = self.penalty(&p, opt.penalizer);
        Ok(FitResult {
            log_likelihood: -(out.f - pen) * self.wsum,
            params: p,
            covariance: cov,
            std_errors: se,
            n_iter,
            converged,
            n_unique: self.n_unique(),
            total_weight: self.wsum,
        })
    }
}

/// Expected mean spend per transaction given the history (Gamma-Gamma posterior mean).
/// Needs q > 1; customers with frequency 0 get the population mean p * gamma / (q - 1).
pub fn gg_expected_spend(p: &[f64], x: &[f64], m: &[f64]) -> Result<Vec<f64>> {
    if p.len() != 3 || p.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(CoreError::invalid(
            "params",
            "Gamma-Gamma needs 3 positive finite params p, q, gamma",
        ));
    }
    let (pp, q, v) = (p[0], p[1], p[2]);
    if q <= 1.0 {
        return Err(CoreError::invalid(
            "params",
            format!("expected spend needs q > 1, the fitted q is {q} (add a penalizer)"),
        ));
    }
    crate::error::check_len("monetary", m.len(), x.len(), "frequency")?;
    crate::error::check_finite("monetary", m)?;
    let pop = v * pp / (q - 1.0);
    Ok(x.par_iter()
        .zip(m.par_iter())
        .with_min_len(CHUNK)
        .map(|(&xi, &mi)| {
            let wgt = pp * xi / (pp * xi + q - 1.0);
            (1.0 - wgt) * pop + wgt * mi
        })
        .collect())
}

/// Discounted customer lifetime value as in `lifetimes`' `customer_lifetime_value`: for steps
/// i = 1..=horizon of `period` days, spend x (E[purchases by i*period] - E[by (i-1)*period]) /
/// (1 + discount)^i, with spend per purchase `spend` (usually the Gamma-Gamma expectation).
#[allow(clippy::too_many_arguments)]
pub fn clv(
    bg: &[f64],
    x: &[f64],
    t: &[f64],
    big_t: &[f64],
    spend: &[f64],
    horizon: usize,
    period: f64,
    discount: f64,
    ctl: &Control,
) -> Result<Vec<f64>> {
    check_bg_params(bg)?;
    crate::error::check_len("spend", spend.len(), x.len(), "frequency")?;
    if !(period > 0.0 && period.is_finite()) {
        return Err(CoreError::invalid("period", "must be > 0"));
    }
    if !(discount >= 0.0 && discount.is_finite()) {
        return Err(CoreError::invalid(
            "discount_rate",
            format!("must be finite and >= 0, got {discount}"),
        ));
    }
    // `horizon` sizes the discount factors: checked before allocating (never an abort).
    let bytes = crate::error::checked_bytes("horizon", "the discount factors", Some(horizon), 8)?;
    crate::error::check_fits_memory("horizon", bytes)?;
    let factors: Vec<f64> = (1..=horizon)
        .map(|i| 1.0 / (1.0 + discount).powf(i as f64))
        .collect();
    // discounted sum of expected purchase increments per distinct (x, t_x, T)
    let mut units = per_distinct(
        x,
        t,
        big_t,
        ctl,
        |xi, ti, tti| {
            let mut prev = 0.0;
            let mut acc = 0.0;
            for (i, f) in factors.iter().enumerate() {
                let e = bg_expected_one(bg, (i + 1) as f64 * period, xi, ti, tti);
                acc += (e - prev) * f;
                prev = e;
            }
            vec![acc]
        },
        1,
    )?
    .pop()
    .unwrap();
    units
        .par_iter_mut()
        .zip(spend.par_iter())
        .with_min_len(CHUNK)
        .for_each(|(u, s)| *u *= s);
    Ok(units)
}

// ---------------------------------------------------------------------------------------------

/// Simulates BG/NBD customers observed for T days from first purchase (for tests).
pub fn simulate_bgnbd(p: &[f64], big_t: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
    use rand::Rng;
    use rand_distr::{Beta, Distribution, Exp, Gamma};
    let (r, al, a, b) = (p[0], p[1], p[2], p[3]);
    let mut xs = Vec::with_capacity(big_t.len());
    let mut ts = Vec::with_capacity(big_t.len());
    for (i, &tt) in big_t.iter().enumerate() {
        let mut rng = crate::rng::stream(seed, i as u64);
        let lam = Gamma::new(r, 1.0 / al).unwrap().sample(&mut rng);
        let pdrop = Beta::new(a, b).unwrap().sample(&mut rng);
        let exp = Exp::new(lam).unwrap();
        let (mut x, mut t, mut now) = (0.0, 0.0, 0.0);
        loop {
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
        xs.push(x);
        ts.push(t);
    }
    (xs, ts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::needless_range_loop)]
    use super::*;

    #[test]
    fn gradient_and_hessian_match_finite_differences() {
        let tt: Vec<f64> = (0..2000).map(|i| 30.0 + (i % 50) as f64).collect();
        let (x, t) = simulate_bgnbd(&[0.8, 10.0, 0.7, 3.0], &tt, 3);
        let d = BgData::new(&x, &t, &tt, None).unwrap();
        let ctl = Control::new();
        let th = [0.1f64, 2.0, -0.2, 1.0];
        let (f, g, h) = d.objective(&th, 0.0, &ctl).unwrap().unwrap();
        for i in 0..4 {
            let mut a = th;
            let mut b = th;
            a[i] += 1e-5;
            b[i] -= 1e-5;
            let (fa, ga, _) = d.objective(&a, 0.0, &ctl).unwrap().unwrap();
            let (fb, gb, _) = d.objective(&b, 0.0, &ctl).unwrap().unwrap();
            assert!(((fa - fb) / 2e-5 - g[i]).abs() < 1e-6, "grad {i}");
            for j in 0..4 {
                let fd = (ga[j] - gb[j]) / 2e-5;
                assert!(
                    (fd - h[i * 4 + j]).abs() < 1e-5,
                    "hess {i} {j}: {fd} vs {}",
                    h[i * 4 + j]
                );
            }
        }
        assert!(f.is_finite());
        let m: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, _)| 5.0 + (i % 17) as f64)
            .collect();
        let gd = GgData::new(&x, &m, None).unwrap();
        let th = [0.5f64, 1.0, 2.0];
        let (_, g, h) = gd.objective(&th, 0.0, &ctl).unwrap().unwrap();
        for i in 0..3 {
            let mut a = th;
            let mut b = th;
            a[i] += 1e-5;
            b[i] -= 1e-5;
            let (fa, ga, _) = gd.objective(&a, 0.0, &ctl).unwrap().unwrap();
            let (fb, gb, _) = gd.objective(&b, 0.0, &ctl).unwrap().unwrap();
            assert!(((fa - fb) / 2e-5 - g[i]).abs() < 1e-6, "gg grad {i}");
            for j in 0..3 {
                assert!(
                    ((ga[j] - gb[j]) / 2e-5 - h[i * 3 + j]).abs() < 1e-5,
                    "gg hess {i} {j}"
                );
            }
        }
    }

    #[test]
    fn recovers_generating_parameters() {
        let truth = [0.5, 8.0, 0.8, 2.5];
        let tt: Vec<f64> = (0..40_000).map(|i| 100.0 + (i % 265) as f64).collect();
        let (x, t) = simulate_bgnbd(&truth, &tt, 11);
        let d = BgData::new(&x, &t, &tt, None).unwrap();
        let fit = d.fit(&FitOptions::default(), &Control::new()).unwrap();
        assert!(fit.converged);
        for i in 0..4 {
            let z = (fit.params[i] - truth[i]) / fit.std_errors[i];
            assert!(
                z.abs() < 4.0,
                "param {i}: {} vs {} (se {})",
                fit.params[i],
                truth[i],
                fit.std_errors[i]
            );
        }
        // the same data with duplicate rows merged through weights gives the same fit
        let w: Vec<f64> = vec![2.0; x.len()];
        let f2 = BgData::new(&x, &t, &tt, Some(&w))
            .unwrap()
            .fit(&FitOptions::default(), &Control::new())
            .unwrap();
        for i in 0..4 {
            assert!((f2.params[i] / fit.params[i] - 1.0).abs() < 1e-8);
        }
        assert!((f2.log_likelihood / fit.log_likelihood - 2.0).abs() < 1e-10);
    }

    #[test]
    fn integral_fast_path_matches_general_path() {
        let tt: Vec<f64> = (0..30_000).map(|i| 1.0 + (i % 300) as f64).collect();
        let (x, t) = simulate_bgnbd(&[0.5, 8.0, 0.8, 2.5], &tt, 4);
        // whole days; a repeat purchase is at least one day after the first (recency > 0)
        let t: Vec<f64> = t
            .iter()
            .zip(&x)
            .map(|(v, xi)| if *xi > 0.0 { v.floor().max(1.0) } else { 0.0 })
            .collect();
        let fast = BgData::new(&x, &t, &tt, None).unwrap();
        let ones = vec![1.0; x.len()];
        let general = BgData::new(&x, &t, &tt, Some(&ones)).unwrap();
        assert_eq!(fast.rows, general.rows);
        assert_eq!(fast.rw, general.rw);
        assert_eq!(fast.wx, general.wx[..fast.wx.len()].to_vec());
        let ctl = Control::new();
        let p = [0.6, 9.0, 0.7, 3.0];
        let (a, b) = (
            fast.log_likelihood(&p, &ctl).unwrap(),
            general.log_likelihood(&p, &ctl).unwrap(),
        );
        assert!((a / b - 1.0).abs() < 1e-13, "{a} vs {b}");
    }
}
