//! Newton steps on the prices, for problems with many users.
//!
//! With many users the resource use `g(q)` of the users' choices at prices `q` is a step
//! function with tiny steps (one user each), close to a smooth function whose Jacobian `J` is
//! the density of the users who are indifferent between two choices. The optimal prices solve
//! the complementarity system "`g_r(q) = hi_r` where `q_r > 0`, `g_r(q) = lo_r` where `q_r < 0`,
//! the bounds hold elsewhere" (the dual's optimality conditions, since `hi - g` is its
//! gradient). Each full pass here also estimates `J` at the current prices from the marginal
//! users (`kernel::pass_jacobian`), and the next prices are a Newton step on the active
//! resources; a step that raises the dual is halved. From the sample's prices this reaches the
//! users' granularity in 3-4 passes on the benchmark instances.
//!
//! Nothing here is trusted for the certificate: every full pass gives a dual value (an upper
//! bound), and the caller repairs the choices at the last prices into a feasible integer plan,
//! whose value is the lower bound. When the two are within the tolerance, the LP gap is
//! certified by that plan alone.

#![allow(clippy::needless_range_loop)] // R x R matrices indexed by resource

use super::source::Source;
use super::{HistoryRow, Real};
use crate::control::Control;
use crate::error::Result;
use crate::numeric::solve_dense;
use std::time::Instant;

/// Bounds and scales in the units the Newton steps work in (prices `y = q s / vs`, usage
/// `g / s`); see `dual::Scaling`.
pub(super) struct Units<'a> {
    pub lo: &'a [f64],
    pub hi: &'a [f64],
    pub s: &'a [f64],
    pub vs: f64,
    pub box_: f64,
}

impl Units<'_> {
    fn q_of(&self, y: &[f64]) -> Vec<f64> {
        y.iter().zip(self.s).map(|(y, s)| y * self.vs / s).collect()
    }
    fn scaled(&self, usage: &[f64]) -> Vec<f64> {
        usage.iter().zip(self.s).map(|(g, s)| g / s).collect()
    }
    /// Lowest and highest price allowed for resource `r` (scaled).
    fn range(&self, r: usize) -> (f64, f64) {
        let lo = if self.lo[r] > 0.0 { -self.box_ } else { 0.0 };
        let hi = if self.hi[r].is_finite() {
            self.box_
        } else {
            0.0
        };
        (lo, hi)
    }
}

pub(super) struct NewtonOut {
    /// Best (lowest) dual value seen and its prices (scaled).
    pub f_up: f64,
    pub y_best: Vec<f64>,
    /// Prices of the last accepted pass (smallest residual).
    pub y_last: Vec<f64>,
    /// The source's last Jacobian pass was at `y_last` (its choices are the users' choices
    /// there).
    pub at_last: bool,
    pub passes: usize,
}

/// Newton iterations on the full problem from `y0` with the Jacobian estimate `jac`, until the
/// estimated cost of the remaining residuals (price times residual, summed) is below `gap_tol`
/// (relative to the value scale) or `max_iter` passes. A step that raises the dual is halved
/// (the dual is the merit function: Newton's direction descends on it when `-J` is positive
/// definite); `J` is corrected by symmetric (Powell) secant updates.
#[allow(clippy::too_many_arguments)]
pub(super) fn newton<T: Real>(
    src: &mut dyn Source<T>,
    u: &Units<'_>,
    y0: &[f64],
    h: f64,
    gap_tol: f64,
    max_iter: usize,
    phase: u8,
    hist: &mut Vec<HistoryRow>,
    ctl: &Control,
    t0: Instant,
) -> Result<NewtonOut> {
    let r_n = y0.len();
    let mut y = y0.to_vec();
    let mut f_up = f64::INFINITY;
    let mut y_best = y.clone();
    // The current (accepted) point: prices, dual value, scaled usage.
    let mut cur: Option<(Vec<f64>, f64, Vec<f64>)> = None;
    let mut step: Vec<f64> = Vec::new();
    let mut halvings = 0;
    let mut passes = 0;
    let mut y_last = y.clone();
    let mut flags_at_last = false;
    for it in 0..max_iter {
        ctl.check()?;
        if it > 0 && ctl.deadline_passed() {
            break;
        }
        let q = u.q_of(&y);
        let jp = src.pass_jacobian(&q, h, ctl)?;
        flags_at_last = false;
        let out = jp.out;
        passes += 1;
        let phi: f64 = (0..r_n)
            .map(|r| {
                if q[r] > 0.0 {
                    q[r] * u.hi[r]
                } else if q[r] < 0.0 {
                    q[r] * u.lo[r]
                } else {
                    0.0
                }
            })
            .sum();
        let d = out.lsum + phi;
        if d < f_up {
            f_up = d;
            y_best = y.clone();
        }
        let e = u.scaled(&out.usage);
        let mut viol = 0.0f64;
        for r in 0..r_n {
            if u.hi[r].is_finite() && e[r] > u.hi[r] / u.s[r] {
                viol = viol.max(e[r] - u.hi[r] / u.s[r]);
            }
            if e[r] < u.lo[r] / u.s[r] {
                viol = viol.max(u.lo[r] / u.s[r] - e[r]);
            }
        }
        hist.push(HistoryRow {
            phase,
            iteration: it,
            dual: d,
            bound: f_up,
            lp_value: f64::NEG_INFINITY,
            value: out.value,
            max_violation: viol,
            seconds: t0.elapsed().as_secs_f64(),
        });
        ctl.advance(1);
        // Accept the point unless it raised the dual (then halve the step, at most twice).
        let rejected = match &cur {
            Some((_, dc, _)) => d > *dc + 1e-12 * dc.abs() && halvings < 2,
            None => false,
        };
        if rejected {
            halvings += 1;
            let (yc, _, _) = cur.as_ref().expect("a current point");
            for r in 0..r_n {
                step[r] *= 0.5;
                let (lo, hi) = u.range(r);
                y[r] = (yc[r] + step[r]).clamp(lo, hi);
            }
            continue;
        }
        halvings = 0;
        cur = Some((y.clone(), d, e.clone()));
        flags_at_last = true;
        // The Jacobian at this point, in scaled units: d(g_r / s_r) / d y_c.
        let jac: Vec<f64> = (0..r_n * r_n)
            .map(|x| jp.jac[x] * u.vs / (u.s[x / r_n] * u.s[x % r_n]))
            .collect();
        y_last = y.clone();
        // Active resources, their residuals and the estimated cost of the residuals.
        let ymax = y.iter().map(|v| v.abs()).fold(0.0f64, f64::max);
        let mut act = Vec::new();
        let mut res = Vec::new();
        let mut est = 0.0;
        for r in 0..r_n {
            let hi = u.hi[r] / u.s[r];
            let lo = u.lo[r] / u.s[r];
            let rr = if u.hi[r].is_finite() && (y[r] > 0.0 || e[r] > hi) {
                hi - e[r]
            } else if u.lo[r] > 0.0 && (y[r] < 0.0 || e[r] < lo) {
                lo - e[r]
            } else {
                continue;
            };
            act.push(r);
            res.push(rr);
            est += y[r].abs().max(1e-3 * ymax) * rr.abs();
        }
        if crate::trace::alloc_trace() {
            let residual = res.iter().map(|v| v.abs()).fold(0.0, f64::max);
            eprintln!(
                "newton {it}: d {d:.9e} residual {residual:.2e} est {est:.2e} viol {viol:.2e} active {} events {}",
                act.len(), jp.events
            );
        }
        if est <= gap_tol || act.is_empty() || it + 1 == max_iter {
            break;
        }
        // Newton step on the active set: J_AA dy_A = res_A (J made negative definite by a
        // small ridge). A resource whose price would leave its range (a price that must fall
        // to 0 because the resource is slack) is fixed at the bound and the step re-solved on
        // the others: clamping after a joint solve would move the other prices by the step
        // meant for the clamped one.
        let mut step_ok = false;
        step = vec![0.0; r_n];
        while !act.is_empty() {
            let m = act.len();
            let mut a = vec![0.0; m * m];
            let mut tr = 0.0;
            for (i, &r) in act.iter().enumerate() {
                for (j, &c) in act.iter().enumerate() {
                    a[i * m + j] = jac[r * r_n + c];
                }
                tr += jac[r * r_n + r].abs();
            }
            let ridge = 1e-6 * tr / m as f64;
            for i in 0..m {
                a[i * m + i] -= ridge;
            }
            let Some(dy) = solve_dense(a, res.clone()) else {
                break;
            };
            let out_of_range: Vec<usize> = act
                .iter()
                .enumerate()
                .filter(|(i, &r)| {
                    let (lo, hi) = u.range(r);
                    let next = y[r] + dy[*i];
                    next < lo || next > hi
                })
                .map(|(i, _)| i)
                .collect();
            if out_of_range.is_empty() || out_of_range.len() == m {
                for (i, &r) in act.iter().enumerate() {
                    let (lo, hi) = u.range(r);
                    step[r] = (y[r] + dy[i]).clamp(lo, hi) - y[r];
                }
                step_ok = true;
                break;
            }
            // Fix those at their bound and re-solve for the rest, whose residuals account for
            // the fixed prices' moves.
            for &i in out_of_range.iter().rev() {
                let r = act[i];
                let (lo, hi) = u.range(r);
                step[r] = (y[r] + dy[i]).clamp(lo, hi) - y[r];
                act.remove(i);
                res.remove(i);
                for (j, &c) in act.iter().enumerate() {
                    res[j] -= jac[c * r_n + r] * step[r];
                }
            }
        }
        if !step_ok {
            break;
        }
        for r in 0..r_n {
            y[r] += step[r];
        }
    }
    Ok(NewtonOut {
        f_up,
        y_best,
        y_last,
        at_last: flags_at_last,
        passes,
    })
}
