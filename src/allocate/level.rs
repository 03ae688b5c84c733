//! The level bundle method on the dual (see `dual` for the dual function): each pass over the
//! users gives `D(q_k)` and a subgradient (the choices' usage `G_k`); the next prices are the
//! projection of the best prices on the level set `{model <= f_up - alpha (f_up - f_low)}` of the
//! cutting-plane model (a QP over R prices, `master`). Kelley's LP on the model gives a lower
//! bound over the box and the weights of the aggregated primal (see `dual`'s certificate).

#![allow(clippy::needless_range_loop)] // several arrays indexed by resource

use super::master::{Cut, Master};
use super::newton;
use super::source::Source;
use super::{HistoryRow, Problem, Real};
use crate::control::Control;
use crate::error::Result;
use std::time::Instant;

const BOX: f64 = 100.0;
const ALPHA: f64 = 0.5;
const MAX_CUTS: usize = 120;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    Converged,
    Time,
    Iterations,
}

pub(super) struct LevelOut {
    pub(super) q_best: Vec<f64>,
    pub(super) f_up: f64,
    pub(super) lp_value: f64,
    pub(super) stop: Stop,
    pub(super) passes: usize,
    /// Prices and weights of the iterates in the last aggregated primal.
    pub(super) mix: Vec<(Vec<f64>, f64)>,
    /// Largest price at the box edge for a lower-bounded resource (a sign of infeasibility).
    pub(super) at_box: Vec<usize>,
}

/// Per-resource bound (scaled by `frac` for a sample) and scale.
pub(super) struct Scaling {
    pub(super) lo: Vec<f64>,
    pub(super) hi: Vec<f64>,
    pub(super) s: Vec<f64>,
    pub(super) vs: f64,
}

impl Scaling {
    pub(super) fn units(&self) -> newton::Units<'_> {
        newton::Units {
            lo: &self.lo,
            hi: &self.hi,
            s: &self.s,
            vs: self.vs,
            box_: BOX,
        }
    }
    pub(super) fn q_of(&self, y: &[f64]) -> Vec<f64> {
        y.iter()
            .zip(&self.s)
            .map(|(y, s)| y * self.vs / s)
            .collect()
    }
    pub(super) fn y_of(&self, q: &[f64]) -> Vec<f64> {
        q.iter()
            .zip(&self.s)
            .map(|(q, s)| q * s / self.vs)
            .collect()
    }
    pub(super) fn phi(&self, q: &[f64]) -> f64 {
        q.iter()
            .enumerate()
            .map(|(r, &q)| {
                if q > 0.0 {
                    q * self.hi[r]
                } else if q < 0.0 {
                    q * self.lo[r]
                } else {
                    0.0
                }
            })
            .sum()
    }
    /// Largest violation of a bound by `usage`, relative to the bound's scale.
    pub(super) fn violation(&self, usage: &[f64]) -> f64 {
        let mut v = 0.0f64;
        for r in 0..usage.len() {
            if usage[r] > self.hi[r] {
                v = v.max((usage[r] - self.hi[r]) / self.s[r]);
            }
            if usage[r] < self.lo[r] {
                v = v.max((self.lo[r] - usage[r]) / self.s[r]);
            }
        }
        v
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn level_method<T: Real>(
    src: &mut dyn Source<T>,
    sc: &Scaling,
    q0s: &[Vec<f64>],
    delta0: Option<f64>,
    tol: f64,
    max_iter: usize,
    phase: u8,
    hist: &mut Vec<HistoryRow>,
    ctl: &Control,
    t0: Instant,
) -> Result<LevelOut> {
    let r_n = sc.lo.len();
    let mut master = Master {
        r: r_n,
        hs: (0..r_n)
            .map(|r| sc.hi[r].is_finite().then(|| sc.hi[r] / sc.s[r]))
            .collect(),
        ls: (0..r_n).map(|r| sc.lo[r] / sc.s[r]).collect(),
        lb: (0..r_n)
            .map(|r| if sc.lo[r] > 0.0 { -BOX } else { 0.0 })
            .collect(),
        ub: (0..r_n)
            .map(|r| if sc.hi[r].is_finite() { BOX } else { 0.0 })
            .collect(),
        cuts: Vec::new(),
    };
    let clamp = |y: Vec<f64>, m: &Master| -> Vec<f64> {
        y.iter()
            .enumerate()
            .map(|(r, v)| v.clamp(m.lb[r], m.ub[r]))
            .collect()
    };
    let mut batch: Vec<Vec<f64>> = q0s.iter().map(|q| clamp(sc.y_of(q), &master)).collect();
    let mut y_best = batch[0].clone();
    let mut f_up = f64::INFINITY;
    let mut f_low = f64::NEG_INFINITY;
    let mut lp_value = f64::NEG_INFINITY;
    let mut delta_est = delta0.unwrap_or(f64::INFINITY);
    let mut stop = Stop::Iterations;
    let mut passes = 0usize;
    let mut mix: Vec<(Vec<f64>, f64)> = Vec::new();
    let abs_floor = 1e-9 * sc.vs;
    for it in 0..max_iter {
        ctl.check()?;
        if it > 0 && ctl.deadline_passed() {
            stop = Stop::Time;
            break;
        }
        let qs: Vec<Vec<f64>> = batch.iter().map(|y| sc.q_of(y)).collect();
        let outs = src.pass(&qs, ctl)?;
        passes += 1;
        let prev_up = f_up;
        let mut first = None;
        for ((y, q), out) in batch.iter().zip(&qs).zip(&outs) {
            let (lsum, value, usage) = (out.lsum, out.value, &out.usage);
            let d = lsum + sc.phi(q);
            if d < f_up {
                f_up = d;
                y_best = y.clone();
            }
            let viol = sc.violation(usage);
            if viol <= 1e-12 {
                // The choices themselves are a feasible (integer) plan.
                lp_value = lp_value.max(value);
            }
            if first.is_none() {
                first = Some((d, value, viol));
            }
            master.cuts.push(Cut {
                a: out.lsum / sc.vs,
                b: out.usage.iter().zip(&sc.s).map(|(g, s)| g / s).collect(),
                y: y.clone(),
                value: out.value,
                usage: out.usage.clone(),
                last_active: it,
            });
        }
        // Kelley's LP: a lower bound over the box and the multipliers of the aggregated primal.
        let kel = master.kelley();
        if let Some(k) = &kel {
            f_low = f_low.max(k.value * sc.vs);
            let mut v = 0.0;
            let mut g = vec![0.0; r_n];
            for (c, &l) in master.cuts.iter_mut().zip(&k.lambda) {
                if l > 1e-12 {
                    c.last_active = it;
                }
                v += l * c.value;
                for (gr, u) in g.iter_mut().zip(&c.usage) {
                    *gr += l * u;
                }
            }
            // Exact feasibility: scale towards the empty plan (value 0, usage 0) when only upper
            // bounds are slightly exceeded and there are no lower bounds.
            let mut theta = 1.0f64;
            let mut ok = true;
            for r in 0..r_n {
                if g[r] > sc.hi[r] {
                    if sc.lo.iter().all(|l| *l <= 0.0) && g[r] > 0.0 {
                        theta = theta.min(sc.hi[r] / g[r]);
                    } else if g[r] - sc.hi[r] > 1e-9 * sc.s[r] {
                        ok = false;
                    }
                }
                if g[r] < sc.lo[r] - 1e-9 * sc.s[r] {
                    ok = false;
                }
            }
            if ok && theta > 1.0 - 1e-6 && theta * v > lp_value {
                lp_value = theta * v;
                let mut m: Vec<(Vec<f64>, f64)> = Vec::new();
                for (c, l) in master.cuts.iter().zip(&k.lambda) {
                    if *l <= 1e-6 {
                        continue;
                    }
                    let q = sc.q_of(&c.y);
                    match m.iter_mut().find(|e| e.0 == q) {
                        Some(e) => e.1 += l,
                        None => m.push((q, *l)),
                    }
                }
                m.sort_by(|a, b| b.1.total_cmp(&a.1));
                m.truncate(8);
                mix = m;
            }
        }
        let (d, value, viol) = first.unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        hist.push(HistoryRow {
            phase,
            iteration: it,
            dual: d,
            bound: f_up,
            lp_value,
            value,
            max_violation: viol,
            seconds: t0.elapsed().as_secs_f64(),
        });
        ctl.advance(1);
        if f_up - lp_value <= tol * f_up.abs().max(abs_floor) {
            stop = Stop::Converged;
            break;
        }
        // Adapt the level's reach on a warm start: widen after a good step.
        if prev_up.is_finite() && prev_up - f_up > 0.5 * ALPHA * delta_est.min(prev_up - f_low) {
            delta_est *= 2.0;
        }
        // Drop long-inactive cuts.
        if master.cuts.len() > MAX_CUTS {
            let keep_after = it.saturating_sub(MAX_CUTS / 4);
            master.cuts.retain(|c| c.last_active >= keep_after);
        }
        let mut next = None;
        for _ in 0..8 {
            let delta = (f_up - f_low).min(delta_est);
            let level = f_up - ALPHA * delta;
            match master.project(&y_best, level / sc.vs) {
                Some(yn) => {
                    next = Some(yn);
                    break;
                }
                None => {
                    // The level set is empty: the model (hence the dual) is above `level`.
                    f_low = f_low.max(level);
                    delta_est = delta_est.min(f_up - f_low);
                }
            }
        }
        batch.clear();
        if let Some(v) = next {
            batch.push(v);
        }
        if batch.is_empty() {
            if let Some(k) = kel {
                batch.push(k.y);
            }
        }
        if batch.is_empty() {
            break;
        }
    }
    let at_box = (0..r_n)
        .filter(|&r| sc.lo[r] > 0.0 && y_best[r] <= -0.99 * BOX)
        .collect();
    Ok(LevelOut {
        q_best: sc.q_of(&y_best),
        f_up,
        lp_value,
        stop,
        passes,
        mix,
        at_box,
    })
}

pub(super) fn scaling<T: Real>(p: &Problem<'_, T>, frac: f64, vs: f64) -> Scaling {
    let r_n = p.n_resources();
    let lo: Vec<f64> = (0..r_n).map(|r| p.lo(r) * frac).collect();
    let hi: Vec<f64> = (0..r_n).map(|r| p.upper[r] * frac).collect();
    let s = (0..r_n)
        .map(|r| {
            if hi[r].is_finite() && hi[r] > 0.0 {
                hi[r]
            } else if lo[r] > 0.0 {
                lo[r]
            } else {
                frac.max(1e-12)
            }
        })
        .collect();
    Scaling { lo, hi, s, vs }
}
