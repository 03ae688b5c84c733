//! The dual (Lagrangian decomposition) solver.
//!
//! The dual function `D(q) = sum_i max_{S_i} sum_{k in S_i} (v_k - q . u_k) + sum_r phi_r(q_r)`
//! with `phi_r(q) = q hi_r` for `q >= 0` and `q lo_r` for `q < 0` is convex and piecewise linear
//! in the R prices; every `D(q)` is an upper bound of the LP relaxation (and of every plan).
//! It is minimised by a level bundle method: each pass over the users (parallel, deterministic)
//! gives `D(q_k)` and a subgradient (the choices' usage `G_k`); the next prices are the projection
//! of the best prices on the level set `{model <= f_up - alpha (f_up - f_low)}` of the
//! cutting-plane model (a QP over R prices; see `level` and `master`). This file orchestrates
//! the phases; the solver reaches the users only through a `source::Source`.
//!
//! Certificate, without an external solver: the multipliers `lambda` of Kelley's LP on the model
//! are weights of a convex combination of the iterates' choices. Each iterate is a feasible
//! choice for every user, so the combination is a feasible fractional plan whenever its usage
//! `sum lambda_k G_k` is within the bounds; its value `sum lambda_k V_k` is then a lower bound of
//! the LP optimum, and `(f_up - that) / |f_up|` is a certified LP gap.
//!
//! With many users, prices are first estimated on a random subsample of users (bounds scaled by
//! the sample fraction), which costs a small fraction of a pass per iteration; Newton steps on
//! the full problem then take them to the users' granularity (see `newton`), and the repaired
//! plan at those prices certifies the gap by itself. Should it not (few users, degenerate
//! prices), the level method continues on the full problem from there.
//!
//! The integer plan (`plan`): every user's choice at the best prices, then repair: while an upper
//! bound is exceeded, drop the chosen candidates with the lowest reduced value per unit of that
//! resource; while a lower bound is unmet, add unchosen candidates with the highest reduced value
//! per unit that keep every user, group and upper limit.
//!
//! Time limit (`Control`'s deadline): the level method and the Newton steps check it before each
//! pass, and the phases between them: past it, the plan is the repaired choices at the best
//! prices so far (the Newton phase's plan if it made one), the bound the lowest dual value of a
//! full pass (at worst the base pass's, at zero prices), the status `TimeLimit`.

#![allow(clippy::needless_range_loop)] // several arrays indexed by resource

use super::level::{level_method, scaling, LevelOut, Stop};
use super::newton;
use super::plan::{Finish, Plan};
use super::source::{Local, PlanRequest, Source};
use super::{trace, DualOptions, HistoryRow, Problem, Real, Solved, Status};
use crate::control::Control;
use crate::error::Result;
use crate::rng::mix64;
use std::time::Instant;

/// Tolerance of the level method on the sample (Newton's steps on the full problem take it
/// from there).
const SAMPLE_TOL: f64 = 5e-3;
/// Most sample passes of the Newton phase on the sample.
const SAMPLE_NEWTON_PASSES: usize = 10;
/// Most full passes of the Newton phase.
const NEWTON_PASSES: usize = 12;

/// Solves the problem with the dual method (see the module docs).
pub fn solve_dual<T: Real>(p: &Problem<'_, T>, opt: &DualOptions, ctl: &Control) -> Result<Solved> {
    let t0 = Instant::now();
    p.validate()?;
    trace(t0, "validated");
    let mut s = solve_with(p, &mut Local::new(p), opt, ctl)?;
    s.chosen_user = super::users_of(p.indptr, &s.chosen);
    Ok(s)
}

/// The dual method on the users of `src`; `meta` gives the resources, actions, bounds and
/// names (its users are not read: a problem with no users will do when `src` holds them
/// elsewhere). `chosen` is what the source's plan returns; `chosen_user` is left empty.
pub fn solve_with<T: Real>(
    meta: &Problem<'_, T>,
    src: &mut dyn Source<T>,
    opt: &DualOptions,
    ctl: &Control,
) -> Result<Solved> {
    let t0 = Instant::now();
    let p = meta;
    let n = src.n_users();
    let r_n = p.n_resources();
    let mut hist = Vec::new();
    ctl.set_total(opt.max_iter as u64);
    // Value scale: the unconstrained optimum (the dual at zero prices).
    let zero = vec![0.0; r_n];
    let base = src.pass(std::slice::from_ref(&zero), ctl)?.remove(0);
    let vs = base.lsum.abs().max(1e-9);
    trace(t0, "base pass");
    let mut passes = 1usize;
    let q0 = match &opt.warm_start {
        Some(w) if w.len() == r_n => w.clone(),
        _ => zero.clone(),
    };
    let mut starts = vec![q0.clone()];
    let mut delta0 = opt.warm_start.as_ref().map(|_| 1e-3 * vs);
    let full_sc = scaling(p, 1.0, vs);
    let feasible_at_zero = full_sc.violation(&base.usage) <= 1e-12;
    // A plan certified by the Newton phase: (plan, best prices, best dual value).
    let mut newton_plan: Option<(Plan, Vec<f64>, f64)> = None;
    // The deadline passed between two phases: the prices to plan at (and the plan, if one was
    // made there); the bound is then the best full dual value so far (the base pass's at zero
    // prices unless a full Newton pass did better). Every phase also checks it in its loop.
    let mut timed: Option<(Vec<f64>, Option<Plan>)> = None;
    let mut best_full = (base.lsum, zero.clone());
    let out = if r_n == 0 || (feasible_at_zero && opt.warm_start.is_none()) {
        // Zero prices are optimal: the unconstrained choices meet every bound.
        hist.push(HistoryRow {
            phase: 1,
            iteration: 0,
            dual: base.lsum,
            bound: base.lsum,
            lp_value: base.value,
            value: base.value,
            max_violation: 0.0,
            seconds: t0.elapsed().as_secs_f64(),
        });
        LevelOut {
            q_best: zero.clone(),
            f_up: base.lsum,
            lp_value: base.value,
            stop: Stop::Converged,
            passes: 0,
            mix: Vec::new(),
            at_box: Vec::new(),
        }
    } else {
        if opt.sample && opt.warm_start.is_none() && n >= opt.sample_min_users.max(2) {
            'sample: {
                if ctl.deadline_passed() {
                    timed = Some((q0.clone(), None));
                    break 'sample;
                }
                let target = (n / 50).max(100_000);
                let stride = (n / target).max(2) as u64;
                let key = mix64(opt.seed ^ 0xA110_CA7E);
                // The sample's data copied together: its passes then read contiguous memory
                // instead of one scattered user at a time (same choices, same sums in the same order).
                let sub = src.sample(key, stride, ctl)?;
                let n_sample = sub.indptr.len() - 1;
                let frac = n_sample as f64 / n as f64;
                let sc = scaling(p, frac, vs * frac);
                let sp = sub.problem(p);
                let mut local = Local::new(&sp);
                trace(t0, "sample gathered");
                let s_out = level_method(
                    &mut local,
                    &sc,
                    std::slice::from_ref(&q0),
                    None,
                    SAMPLE_TOL,
                    opt.max_iter,
                    0,
                    &mut hist,
                    ctl,
                    t0,
                )?;
                if ctl.deadline_passed() {
                    timed = Some((s_out.q_best.clone(), None));
                    break 'sample;
                }
                // Start the full problem from the sample's best prices and the prices of its
                // aggregated primal, evaluated in one pass.
                starts = vec![s_out.q_best.clone()];
                // Only the heaviest three: each extra price vector costs about a pass.
                starts.extend(s_out.mix.iter().take(3).map(|m| m.0.clone()));
                delta0 = Some(5e-4 * vs);
                // Newton steps on the full problem from the sample's prices, with the Jacobian of
                // the resource use estimated on the sample; certified by the repaired plan.
                trace(t0, "sample level method");
                // Kernel bandwidth of the Jacobian estimates: 1% of the mean value per pick.
                let h = 0.01 * vs / (base.picks.max(1) as f64);
                // Newton steps on the sample first (each costs a fiftieth of a full pass).
                let ns = newton::newton(
                    &mut local,
                    &sc.units(),
                    &sc.y_of(&s_out.q_best),
                    h,
                    0.1 * opt.tol,
                    SAMPLE_NEWTON_PASSES,
                    0,
                    &mut hist,
                    ctl,
                    t0,
                )?;
                trace(t0, "sample newton");
                let y0 = if ns.f_up <= s_out.f_up {
                    ns.y_last
                } else {
                    sc.y_of(&s_out.q_best)
                };
                if ctl.deadline_passed() {
                    timed = Some((full_sc.q_of(&y0), None));
                    break 'sample;
                }
                let nt = newton::newton(
                    src,
                    &full_sc.units(),
                    &y0,
                    h,
                    0.3 * opt.tol,
                    NEWTON_PASSES,
                    3,
                    &mut hist,
                    ctl,
                    t0,
                )?;
                passes += nt.passes;
                trace(t0, "newton");
                if nt.f_up < best_full.0 {
                    best_full = (nt.f_up, full_sc.q_of(&nt.y_best));
                }
                let q_last = full_sc.q_of(&nt.y_last);
                if !nt.at_last {
                    passes += 1;
                }
                let plan = src.plan(
                    &PlanRequest {
                        mix: std::slice::from_ref(&q_last),
                        cum: &[1.0],
                        q: &q_last,
                        finish: Finish::Near(2.0 * h),
                        last_choices: nt.at_last,
                        seed: opt.seed,
                    },
                    ctl,
                )?;
                trace(t0, "plan");
                let ok = plan.unmet(p).is_empty()
                    && nt.f_up - plan.objective <= opt.tol * nt.f_up.abs().max(1e-9 * vs);
                if ok {
                    newton_plan = Some((plan, full_sc.q_of(&nt.y_best), nt.f_up));
                } else if ctl.deadline_passed() {
                    timed = Some((q_last, Some(plan)));
                } else {
                    starts.insert(0, full_sc.q_of(&nt.y_last));
                    starts.insert(0, full_sc.q_of(&nt.y_best));
                    starts.truncate(3);
                }
            }
        }
        if let Some((plan, q_best, f_up)) = &newton_plan {
            LevelOut {
                q_best: q_best.clone(),
                f_up: *f_up,
                lp_value: plan.objective,
                stop: Stop::Converged,
                passes: 0,
                mix: Vec::new(),
                at_box: Vec::new(),
            }
        } else if timed.is_some() {
            LevelOut {
                q_best: best_full.1.clone(),
                f_up: best_full.0,
                lp_value: f64::NEG_INFINITY,
                stop: Stop::Time,
                passes: 0,
                mix: Vec::new(),
                at_box: Vec::new(),
            }
        } else {
            level_method(
                src,
                &full_sc,
                &starts,
                delta0,
                opt.tol,
                opt.max_iter,
                1,
                &mut hist,
                ctl,
                t0,
            )?
        }
    };
    passes += out.passes;
    let plan = match (newton_plan, timed) {
        (Some((plan, _, _)), _) | (None, Some((_, Some(plan)))) => plan,
        (None, Some((q, None)))
            if q == q0 && (0..r_n).all(|r| p.lo(r) <= 0.0 && p.upper[r] >= 0.0) =>
        {
            // Past the deadline before any prices were learnt: the choices at the start prices
            // can need a repair of seconds (3.4 s at 2M users, at zero prices); the empty plan
            // meets every bound here.
            empty_plan(r_n)
        }
        (None, Some((q, None))) => {
            // Past the deadline: the choices at the best prices so far, repaired (no fill).
            passes += 1;
            src.plan(
                &PlanRequest {
                    mix: std::slice::from_ref(&q),
                    cum: &[1.0],
                    q: &q,
                    finish: Finish::Near(f64::INFINITY),
                    last_choices: false,
                    seed: opt.seed,
                },
                ctl,
            )?
        }
        (None, None) => {
            // Integer plan: a rounding of the aggregated primal (or the choices at the best
            // prices), then repair.
            let (mix, cum) = if out.mix.is_empty() {
                (vec![out.q_best.clone()], vec![1.0])
            } else {
                let total: f64 = out.mix.iter().map(|m| m.1).sum();
                let mut acc = 0.0;
                let cum: Vec<f64> = out
                    .mix
                    .iter()
                    .map(|m| {
                        acc += m.1 / total;
                        acc
                    })
                    .collect();
                (out.mix.iter().map(|m| m.0.clone()).collect(), cum)
            };
            passes += 1;
            src.plan(
                &PlanRequest {
                    mix: &mix,
                    cum: &cum,
                    q: &out.q_best,
                    finish: Finish::Full,
                    last_choices: false,
                    seed: opt.seed,
                },
                ctl,
            )?
        }
    };
    let unmet = plan.unmet(p);
    let Plan {
        chosen,
        objective,
        usage,
    } = plan;
    let mut message = String::new();
    let dual_bound = out.f_up;
    let gap = (dual_bound - objective) / dual_bound.abs().max(1e-9 * vs);
    let status = if !unmet.is_empty() {
        message = unmet.join("; ");
        if !out.at_box.is_empty() && !out.lp_value.is_finite() {
            message
                .push_str(" (the prices of these bounds diverge: the LP relaxation is infeasible)");
        }
        Status::Infeasible
    } else {
        match out.stop {
            Stop::Time => Status::TimeLimit,
            Stop::Iterations => Status::IterationLimit,
            Stop::Converged => {
                if gap <= opt.tol {
                    Status::Optimal
                } else {
                    Status::Feasible
                }
            }
        }
    };
    Ok(Solved {
        chosen_user: Vec::new(),
        chosen,
        objective,
        dual_bound,
        // The integer plan, when it meets every bound, is a feasible LP point too.
        lp_value: if unmet.is_empty() {
            out.lp_value.max(objective)
        } else {
            out.lp_value
        },
        usage,
        prices: out.q_best,
        status,
        message,
        history: hist,
        passes,
    })
}

/// The plan that chooses nothing.
fn empty_plan(r_n: usize) -> Plan {
    Plan {
        chosen: Vec::new(),
        objective: 0.0,
        usage: vec![0.0; r_n],
    }
}
