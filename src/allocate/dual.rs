//! The dual (Lagrangian decomposition) solver.
//!
//! The dual function `D(q) = sum_i max_{S_i} sum_{k in S_i} (v_k - q . u_k) + sum_r phi_r(q_r)`
//! with `phi_r(q) = q hi_r` for `q >= 0` and `q lo_r` for `q < 0` is convex and piecewise linear
//! in the R prices; every `D(q)` is an upper bound of the LP relaxation (and of every plan).
//! It is minimised by a level bundle method: each pass over the users (parallel, deterministic)
//! gives `D(q_k)` and a subgradient (the choices' usage `G_k`); the next prices are the projection
//! of the best prices on the level set `{model <= f_up - alpha (f_up - f_low)}` of the
//! cutting-plane model (a QP over R prices).
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
//! The integer plan: every user's choice at the best prices, then repair: while an upper bound is
//! exceeded, drop the chosen candidates with the lowest reduced value per unit of that resource;
//! while a lower bound is unmet, add unchosen candidates with the highest reduced value per unit
//! that keep every user, group and upper limit.

#![allow(clippy::needless_range_loop)] // several arrays indexed by resource

use super::kernel::{assign, pass, pass_multi, reduced, Prices, Users, USERS_PER_CHUNK};
use super::master::{Cut, Master};
use super::newton;
use super::{DualOptions, HistoryRow, Limit, Problem, Real, Solved, Status};
use crate::control::Control;
use crate::error::Result;
use crate::rng::mix64;
use rayon::prelude::*;
use std::time::Instant;

const BOX: f64 = 100.0;
const ALPHA: f64 = 0.5;
const MAX_CUTS: usize = 120;
/// Blocks of users in the cutting-plane model (1: aggregated). A disaggregated model (one epigraph
/// variable per block) is implemented but was slower in first trials at R = 50 (the master grows).
const BLOCKS: usize = 1;
const EXTRA_KELLEY: bool = false;
/// Tolerance of the level method on the sample (Newton's steps on the full problem take it
/// from there).
const SAMPLE_TOL: f64 = 5e-3;
/// Most sample passes of the Newton phase on the sample.
const SAMPLE_NEWTON_PASSES: usize = 10;
/// Most full passes of the Newton phase.
const NEWTON_PASSES: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Converged,
    Time,
    Iterations,
}

struct LevelOut {
    q_best: Vec<f64>,
    f_up: f64,
    lp_value: f64,
    stop: Stop,
    passes: usize,
    /// Prices and weights of the iterates in the last aggregated primal.
    mix: Vec<(Vec<f64>, f64)>,
    /// Largest price at the box edge for a lower-bounded resource (a sign of infeasibility).
    at_box: Vec<usize>,
}

/// Per-resource bound (scaled by `frac` for a sample) and scale.
struct Scaling {
    lo: Vec<f64>,
    hi: Vec<f64>,
    s: Vec<f64>,
    vs: f64,
}

impl Scaling {
    fn units(&self) -> newton::Units<'_> {
        newton::Units {
            lo: &self.lo,
            hi: &self.hi,
            s: &self.s,
            vs: self.vs,
            box_: BOX,
        }
    }
    fn q_of(&self, y: &[f64]) -> Vec<f64> {
        y.iter()
            .zip(&self.s)
            .map(|(y, s)| y * self.vs / s)
            .collect()
    }
    fn y_of(&self, q: &[f64]) -> Vec<f64> {
        q.iter()
            .zip(&self.s)
            .map(|(q, s)| q * s / self.vs)
            .collect()
    }
    fn phi(&self, q: &[f64]) -> f64 {
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
    fn violation(&self, usage: &[f64]) -> f64 {
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
fn level_method<T: Real>(
    p: &Problem<'_, T>,
    users: Users<'_>,
    sc: &Scaling,
    q0s: &[Vec<f64>],
    delta0: Option<f64>,
    tol: f64,
    max_iter: usize,
    phase: u8,
    blocks: usize,
    hist: &mut Vec<HistoryRow>,
    ctl: &Control,
    t0: Instant,
) -> Result<LevelOut> {
    let r_n = p.n_resources();
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
        blocks,
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
        let prs: Vec<Prices> = qs.iter().map(|q| Prices::new(p, q)).collect();
        let outs = pass_multi(p, &prs, users, blocks, ctl)?;
        passes += 1;
        let prev_up = f_up;
        let mut first = None;
        for ((y, q), bouts) in batch.iter().zip(&qs).zip(&outs) {
            let lsum: f64 = bouts.iter().map(|o| o.lsum).sum();
            let value: f64 = bouts.iter().map(|o| o.value).sum();
            let mut usage = vec![0.0; r_n];
            for o in bouts {
                for (u, x) in usage.iter_mut().zip(&o.usage) {
                    *u += x;
                }
            }
            let d = lsum + sc.phi(q);
            if d < f_up {
                f_up = d;
                y_best = y.clone();
            }
            let viol = sc.violation(&usage);
            if viol <= 1e-12 {
                // The choices themselves are a feasible (integer) plan.
                lp_value = lp_value.max(value);
            }
            if first.is_none() {
                first = Some((d, value, viol));
            }
            for (b, out) in bouts.iter().enumerate() {
                master.cuts.push(Cut {
                    a: out.lsum / sc.vs,
                    b: out.usage.iter().zip(&sc.s).map(|(g, s)| g / s).collect(),
                    y: y.clone(),
                    value: out.value,
                    usage: out.usage.clone(),
                    last_active: it,
                    block: b,
                });
            }
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
        if master.cuts.len() > MAX_CUTS * blocks {
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
        if EXTRA_KELLEY || batch.is_empty() {
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

/// A subset of the users' data, owned and contiguous.
struct SubProblem<T: Real> {
    indptr: Vec<i64>,
    action: Vec<u32>,
    value: Vec<T>,
    pair: Vec<Vec<T>>,
    limit: Option<Vec<u32>>,
}

impl<T: Real> SubProblem<T> {
    fn gather(p: &Problem<'_, T>, users: &[u32]) -> Self {
        let mut indptr = Vec::with_capacity(users.len() + 1);
        indptr.push(0i64);
        let mut len = 0i64;
        for &i in users {
            let i = i as usize;
            len += p.indptr[i + 1] - p.indptr[i];
            indptr.push(len);
        }
        let ranges = || {
            users
                .iter()
                .map(|&i| p.indptr[i as usize] as usize..p.indptr[i as usize + 1] as usize)
        };
        let copy = |src: &[T]| -> Vec<T> {
            let mut v = Vec::with_capacity(len as usize);
            for r in ranges() {
                v.extend_from_slice(&src[r]);
            }
            v
        };
        let mut action = Vec::with_capacity(len as usize);
        for r in ranges() {
            action.extend_from_slice(&p.action[r]);
        }
        let limit = match p.limit {
            Limit::All(_) => None,
            Limit::PerUser(l) => Some(users.iter().map(|&i| l[i as usize]).collect()),
        };
        SubProblem {
            indptr,
            action,
            value: copy(p.value),
            pair: p.pair_usage.iter().map(|c| copy(c)).collect(),
            limit,
        }
    }

    fn problem<'a>(&'a self, p: &Problem<'a, T>) -> Problem<'a, T> {
        Problem {
            indptr: &self.indptr,
            action: &self.action,
            value: &self.value,
            pair_usage: self.pair.iter().map(|c| c.as_slice()).collect(),
            pair_resource: p.pair_resource.clone(),
            action_usage: p.action_usage,
            n_actions: p.n_actions,
            group: p.group,
            limit: match &self.limit {
                Some(l) => Limit::PerUser(l),
                None => p.limit,
            },
            lower: p.lower.clone(),
            upper: p.upper.clone(),
            names: p.names.clone(),
        }
    }
}

fn scaling<T: Real>(p: &Problem<'_, T>, frac: f64, vs: f64) -> Scaling {
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

/// Developer timing trace of the solver's steps, on stderr when the environment variable
/// `GM_ALLOC_TRACE` is set (for profiling; off otherwise; read once, see [`crate::trace`]).
fn trace(t0: Instant, what: &str) {
    if crate::trace::alloc_trace() {
        eprintln!("[{:8.3}] {what}", t0.elapsed().as_secs_f64());
    }
}

/// Solves the problem with the dual method (see the module docs).
pub fn solve_dual<T: Real>(p: &Problem<'_, T>, opt: &DualOptions, ctl: &Control) -> Result<Solved> {
    let t0 = Instant::now();
    p.validate()?;
    trace(t0, "validated");
    let n = p.n_users();
    let r_n = p.n_resources();
    let mut hist = Vec::new();
    ctl.set_total(opt.max_iter as u64);
    // Value scale: the unconstrained optimum (the dual at zero prices).
    let zero = vec![0.0; r_n];
    let base = pass(p, &Prices::new(p, &zero), Users::All(n), ctl)?;
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
            let target = (n / 50).max(100_000);
            let stride = (n / target).max(2) as u64;
            let key = mix64(opt.seed ^ 0xA110_CA7E);
            let sample: Vec<u32> = (0..n as u32)
                .into_par_iter()
                .with_min_len(USERS_PER_CHUNK)
                .filter(|&i| mix64(i as u64 ^ key) % stride == 0)
                .collect();
            let frac = sample.len() as f64 / n as f64;
            let sc = scaling(p, frac, vs * frac);
            // The sample's data copied together: its passes then read contiguous memory
            // instead of one scattered user at a time (same choices, same sums in the same order).
            let sub = SubProblem::gather(p, &sample);
            let sp = sub.problem(p);
            trace(t0, "sample gathered");
            let s_out = level_method(
                &sp,
                Users::All(sample.len()),
                &sc,
                std::slice::from_ref(&q0),
                None,
                SAMPLE_TOL,
                opt.max_iter,
                0,
                BLOCKS,
                &mut hist,
                ctl,
                t0,
            )?;
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
                &sp,
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
            let nt = newton::newton(
                p,
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
            let pr = Prices::new(p, &full_sc.q_of(&nt.y_last));
            if nt.flags.is_none() {
                passes += 1;
            }
            let plan = Plan::build(
                p,
                nt.flags,
                std::slice::from_ref(&pr),
                &[1.0],
                &pr,
                Finish::Near(2.0 * h),
                opt.seed,
                ctl,
            )?;
            trace(t0, "plan");
            let ok = plan.unmet(p).is_empty()
                && nt.f_up - plan.objective <= opt.tol * nt.f_up.abs().max(1e-9 * vs);
            if ok {
                newton_plan = Some((plan, full_sc.q_of(&nt.y_best), nt.f_up));
            } else {
                starts.insert(0, full_sc.q_of(&nt.y_last));
                starts.insert(0, full_sc.q_of(&nt.y_best));
                starts.truncate(3);
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
        } else {
            level_method(
                p,
                Users::All(n),
                &full_sc,
                &starts,
                delta0,
                opt.tol,
                opt.max_iter,
                1,
                BLOCKS,
                &mut hist,
                ctl,
                t0,
            )?
        }
    };
    passes += out.passes;
    let plan = match newton_plan {
        Some((plan, _, _)) => plan,
        None => {
            // Integer plan: a rounding of the aggregated primal (or the choices at the best
            // prices), then repair.
            let pr = Prices::new(p, &out.q_best);
            let (mix, cum) = if out.mix.is_empty() {
                (vec![pr.clone()], vec![1.0])
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
                (out.mix.iter().map(|m| Prices::new(p, &m.0)).collect(), cum)
            };
            passes += 1;
            Plan::build(p, None, &mix, &cum, &pr, Finish::Full, opt.seed, ctl)?
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
        chosen_user: super::users_of(p.indptr, &chosen),
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

/// An integer plan: the chosen candidates (ascending), their value and resource use.
struct Plan {
    chosen: Vec<u64>,
    objective: f64,
    usage: Vec<f64>,
}

/// How a plan is finished after the users' choices.
#[derive(Clone, Copy, Debug)]
enum Finish {
    /// Prices from the Newton phase (violations at the users' granularity): repair by switching
    /// the users within this margin of changing their choice first.
    Near(f64),
    /// Prices from the level method (a rounding of its fractional primal): repair over every
    /// user, then fill the slack the rounding left.
    Full,
}

impl Plan {
    /// Each user takes its choice at one of the prices `mix` (drawn by the weights `cum`, see
    /// `kernel::assign`) unless the `choices` are given, then the plan is repaired (and filled)
    /// at the prices `pr`.
    #[allow(clippy::too_many_arguments)]
    fn build<T: Real>(
        p: &Problem<'_, T>,
        choices: Option<Vec<u8>>,
        mix: &[Prices],
        cum: &[f64],
        pr: &Prices,
        finish: Finish,
        seed: u64,
        ctl: &Control,
    ) -> Result<Plan> {
        let t0 = Instant::now();
        let mut flags = match choices {
            Some(f) => f,
            None => assign(p, mix, cum, seed, ctl)?,
        };
        trace(t0, "  assign");
        let margin = match finish {
            Finish::Near(m) => m,
            Finish::Full => f64::INFINITY,
        };
        let mut usage = repair(p, pr, &mut flags, margin, ctl)?;
        if let Finish::Full = finish {
            usage = fill(p, pr, &mut flags, usage, ctl)?;
        }
        trace(t0, "  repair");
        let chosen: Vec<u64> = flags
            .par_iter()
            .enumerate()
            .with_min_len(1 << 16)
            .filter(|(_, f)| **f != 0)
            .map(|(k, _)| k as u64)
            .collect();
        let objective: f64 = chosen
            .par_chunks(1 << 16)
            .map(|c| c.iter().map(|&k| p.value[k as usize].into()).sum::<f64>())
            .collect::<Vec<f64>>()
            .iter()
            .sum();
        trace(t0, "  chosen + objective");
        Ok(Plan {
            chosen,
            objective,
            usage,
        })
    }

    /// Messages for the lower bounds the plan does not meet.
    fn unmet<T: Real>(&self, p: &Problem<'_, T>) -> Vec<String> {
        (0..p.n_resources())
            .filter(|&r| self.usage[r] < p.lo(r) * (1.0 - 1e-12))
            .map(|r| {
                format!(
                    "resource {:?}: lower bound {} not met (plan uses {})",
                    p.names.get(r).cloned().unwrap_or_default(),
                    p.lo(r),
                    self.usage[r]
                )
            })
            .collect()
    }
}

/// Usage of the plan given by `flags` (parallel, deterministic).
fn plan_usage<T: Real>(p: &Problem<'_, T>, flags: &[u8]) -> Vec<f64> {
    let n = p.n_users();
    let n_chunks = n.div_ceil(USERS_PER_CHUNK);
    let na = p.n_actions;
    let npc = p.pair_usage.len();
    let parts: Vec<(Vec<u64>, Vec<f64>)> = (0..n_chunks)
        .into_par_iter()
        .map(|c| {
            let lo = p.indptr[c * USERS_PER_CHUNK] as usize;
            let hi = p.indptr[((c + 1) * USERS_PER_CHUNK).min(n)] as usize;
            let mut cnt = vec![0u64; na];
            let mut pair = vec![0.0; npc];
            for k in lo..hi {
                if flags[k] != 0 {
                    cnt[p.action[k] as usize] += 1;
                    for (c, col) in p.pair_usage.iter().enumerate() {
                        pair[c] += col[k].into();
                    }
                }
            }
            (cnt, pair)
        })
        .collect();
    let mut cnt = vec![0u64; na];
    let mut pair = vec![0.0; npc];
    for (c, s) in parts {
        for (a, b) in cnt.iter_mut().zip(&c) {
            *a += b;
        }
        for (a, b) in pair.iter_mut().zip(&s) {
            *a += b;
        }
    }
    super::kernel::usage_from(p, &cnt, &pair)
}

/// Uses the slack the repair left: each user's best move that raises the plan's value (adding
/// a candidate to a free slot, or replacing a chosen one), taken in order of reduced-value
/// change at the prices `pr` (the least negative first: the moves a slightly lower price would
/// make) while it keeps every upper bound, group and per-user limit. Returns the usage.
fn fill<T: Real>(
    p: &Problem<'_, T>,
    pr: &Prices,
    flags: &mut [u8],
    mut usage: Vec<f64>,
    ctl: &Control,
) -> Result<Vec<f64>> {
    ctl.check()?;
    let r_n = p.n_resources();
    let n = p.n_users();
    let has_groups = !p.group.is_empty();
    let group_of = |k: usize| {
        if has_groups {
            p.group[p.action[k] as usize]
        } else {
            -1
        }
    };
    let f: &[u8] = flags;
    // (minus the reduced-value change, user, from k or u64::MAX, to j)
    let mut items: Vec<(f64, u64, u64, u64)> = (0..n.div_ceil(USERS_PER_CHUNK))
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut out = Vec::new();
            // Chosen candidates of a user: (k, group, value, reduced value).
            let mut chosen: Vec<(usize, i32, f64, f64)> = Vec::new();
            for i in c * USERS_PER_CHUNK..((c + 1) * USERS_PER_CHUNK).min(n) {
                let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
                chosen.clear();
                chosen.extend(
                    (s..e)
                        .filter(|&k| f[k] != 0)
                        .map(|k| (k, group_of(k), p.value[k].into(), reduced(p, pr, k))),
                );
                let free_slot = chosen.len() < p.limit.get(i) as usize;
                let mut best: Option<(f64, u64, u64)> = None;
                for j in s..e {
                    if f[j] != 0 {
                        continue;
                    }
                    let (vj, gj) = (p.value[j].into(), group_of(j));
                    let mut rj = None;
                    let mut rj_of = || *rj.get_or_insert_with(|| reduced(p, pr, j));
                    // Chosen candidates in j's group (at most one: the plan keeps the groups).
                    let blocker = if gj >= 0 {
                        chosen.iter().position(|c| c.1 == gj)
                    } else {
                        None
                    };
                    if free_slot && vj > 0.0 && blocker.is_none() {
                        let dr = rj_of();
                        if best.is_none_or(|b| dr > b.0) {
                            best = Some((dr, u64::MAX, j as u64));
                        }
                    }
                    for (ci, &(k, _, vk, rk)) in chosen.iter().enumerate() {
                        if vj > vk && blocker.is_none_or(|b| b == ci) {
                            let dr = rj_of() - rk;
                            if best.is_none_or(|b| dr > b.0) {
                                best = Some((dr, k as u64, j as u64));
                            }
                        }
                    }
                }
                if let Some((dr, from, to)) = best {
                    out.push((-dr, i as u64, from, to));
                }
            }
            out.into_iter()
        })
        .collect();
    ascending_until(
        &mut items,
        |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
        |&(_, _, from, to)| {
            let j = to as usize;
            let fits = (0..r_n).all(|x| {
                let back = if from == u64::MAX {
                    0.0
                } else {
                    p.usage_of(from as usize, x)
                };
                let u = p.usage_of(j, x) - back;
                (u <= 0.0 || usage[x] + u <= p.upper[x]) && (u >= 0.0 || usage[x] + u >= p.lo(x))
            });
            if fits {
                if from != u64::MAX {
                    flags[from as usize] = 0;
                    for (x, u) in usage.iter_mut().enumerate() {
                        *u -= p.usage_of(from as usize, x);
                    }
                }
                flags[j] = 1;
                for (x, u) in usage.iter_mut().enumerate() {
                    *u += p.usage_of(j, x);
                }
            }
            true
        },
    );
    Ok(plan_usage(p, flags))
}

/// Calls `f` on `items` in ascending order of `cmp` until it returns `false`, sorting only as
/// much as is consumed (selection of a growing prefix, then a sort of that prefix).
fn ascending_until<I>(
    items: &mut [I],
    cmp: impl Fn(&I, &I) -> std::cmp::Ordering + Copy,
    mut f: impl FnMut(&I) -> bool,
) {
    let mut start = 0;
    let mut step = 1024;
    while start < items.len() {
        let rest = &mut items[start..];
        let take = step.min(rest.len());
        if take < rest.len() {
            rest.select_nth_unstable_by(take, cmp);
        }
        rest[..take].sort_unstable_by(cmp);
        for it in rest[..take].iter() {
            if !f(it) {
                return;
            }
        }
        start += take;
        step *= 4;
    }
}

fn user_of<T: Real>(p: &Problem<'_, T>, k: usize) -> usize {
    p.indptr.partition_point(|&x| x as usize <= k) - 1
}

/// Repairs the plan in `flags` (see the module docs); returns its usage.
///
/// The first round of switches considers only the users within `margin` (in reduced value) of
/// changing their choice (those a small price change moves), when the violations are small;
/// the later rounds consider every user.
fn repair<T: Real>(
    p: &Problem<'_, T>,
    pr: &Prices,
    flags: &mut [u8],
    margin: f64,
    ctl: &Control,
) -> Result<Vec<f64>> {
    let r_n = p.n_resources();
    let t0 = Instant::now();
    let mut usage = plan_usage(p, flags);
    trace(t0, "    plan_usage");
    // Upper bounds, first by switches: a user leaves a chosen candidate for its best compatible
    // alternative that uses less of the exceeded resource (what a higher price would do), in
    // order of lost reduced value per unit freed; a switch that would exceed another bound is
    // skipped. Then, whatever is left, by dropping the lowest reduced value per unit.
    // One scan per round collects the moves for every exceeded resource at once.
    let mut touched = vec![false; p.n_users()];
    for round in 0..3 {
        // Round 0: switches of the users near the margin (all users if `margin` is infinite);
        // round 1: switches of every user; round 2: drops.
        if round == 1 && !margin.is_finite() {
            continue;
        }
        let switches = round < 2;
        let filtered = round == 0 && margin.is_finite();
        let violated: Vec<usize> = (0..r_n)
            .filter(|&r| p.has_upper(r) && usage[r] > p.upper[r])
            .collect();
        if violated.is_empty() {
            break;
        }
        ctl.check()?;
        let f: &[u8] = flags;
        let n_chunks = p.n_users().div_ceil(USERS_PER_CHUNK);
        let has_groups = !p.group.is_empty();
        // Per violated resource: (loss per unit freed, chosen k, alternative j or u64::MAX for
        // none). A user's reduced values are computed once; its alternatives are scanned once
        // per chosen candidate and violated resource.
        let parts: Vec<Vec<Vec<(f64, u64, u64)>>> = (0..n_chunks)
            .into_par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(red, chosen_groups): &mut (Vec<f64>, Vec<(usize, i32)>), c| {
                    let lo = c * USERS_PER_CHUNK;
                    let hi = (lo + USERS_PER_CHUNK).min(p.n_users());
                    let mut out: Vec<Vec<(f64, u64, u64)>> = vec![Vec::new(); violated.len()];
                    for i in lo..hi {
                        let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
                        let uses = (s..e)
                            .any(|k| f[k] != 0 && violated.iter().any(|&r| p.usage_of(k, r) > 0.0));
                        if !uses {
                            continue;
                        }
                        red.clear();
                        red.extend((s..e).map(|k| reduced(p, pr, k)));
                        if filtered {
                            // Smallest margin of a chosen candidate: over dropping it and
                            // over the best unchosen one.
                            let best_off = (s..e)
                                .filter(|&j| f[j] == 0)
                                .map(|j| red[j - s])
                                .fold(0.0f64, f64::max);
                            let near = (s..e)
                                .filter(|&k| f[k] != 0)
                                .any(|k| red[k - s] - best_off < margin);
                            if !near {
                                continue;
                            }
                        }
                        chosen_groups.clear();
                        if has_groups {
                            chosen_groups.extend(
                                (s..e)
                                    .filter(|&x| f[x] != 0)
                                    .map(|x| (x, p.group[p.action[x] as usize])),
                            );
                        }
                        for k in s..e {
                            if f[k] == 0 {
                                continue;
                            }
                            for (vi, &r) in violated.iter().enumerate() {
                                let uk = p.usage_of(k, r);
                                if uk <= 0.0 {
                                    continue;
                                }
                                let rk = red[k - s];
                                let mut best = (0.0f64, u64::MAX, uk);
                                if switches {
                                    for j in s..e {
                                        if f[j] != 0 || red[j - s] <= best.0 {
                                            continue;
                                        }
                                        let uj = p.usage_of(j, r);
                                        if uj >= uk {
                                            continue;
                                        }
                                        if has_groups {
                                            let g = p.group[p.action[j] as usize];
                                            if g >= 0
                                                && chosen_groups
                                                    .iter()
                                                    .any(|&(x, gx)| x != k && gx == g)
                                            {
                                                continue;
                                            }
                                        }
                                        best = (red[j - s], j as u64, uk - uj);
                                    }
                                }
                                out[vi].push(((rk - best.0) / best.2, k as u64, best.1));
                            }
                        }
                    }
                    out
                },
            )
            .collect();
        touched.iter_mut().for_each(|t| *t = false);
        for (vi, &r) in violated.iter().enumerate() {
            let mut items: Vec<(f64, u64, u64)> =
                parts.iter().flat_map(|c| c[vi].iter().copied()).collect();
            ascending_until(
                &mut items,
                |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
                |&(_, k, j)| {
                    if usage[r] <= p.upper[r] {
                        return false;
                    }
                    let k = k as usize;
                    let i = user_of(p, k);
                    if touched[i] || flags[k] == 0 {
                        return true;
                    }
                    if j != u64::MAX {
                        let j = j as usize;
                        let fits = (0..r_n).all(|x| {
                            x == r
                                || usage[x] + p.usage_of(j, x) - p.usage_of(k, x) <= p.upper[x]
                                || p.usage_of(j, x) <= p.usage_of(k, x)
                        });
                        if !fits {
                            return true;
                        }
                        flags[j] = 1;
                        for (x, u) in usage.iter_mut().enumerate() {
                            *u += p.usage_of(j, x);
                        }
                    }
                    flags[k] = 0;
                    for (x, u) in usage.iter_mut().enumerate() {
                        *u -= p.usage_of(k, x);
                    }
                    touched[i] = true;
                    true
                },
            );
        }
        // Recompute exactly (the updates above accumulate rounding).
        usage = plan_usage(p, flags);
        trace(t0, &format!("    switch round {round}"));
    }
    // Anything still exceeded: drop the lowest reduced value per unit.
    for r in 0..r_n {
        if !p.has_upper(r) || usage[r] <= p.upper[r] {
            continue;
        }
        ctl.check()?;
        let f: &[u8] = flags;
        let mut items: Vec<(f64, u64)> = (0..p.nnz())
            .into_par_iter()
            .with_min_len(1 << 16)
            .filter(|&k| f[k] != 0)
            .filter_map(|k| {
                let u = p.usage_of(k, r);
                (u > 0.0).then(|| (reduced(p, pr, k) / u, k as u64))
            })
            .collect();
        ascending_until(
            &mut items,
            |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
            |&(_, k)| {
                let k = k as usize;
                flags[k] = 0;
                for (x, u) in usage.iter_mut().enumerate() {
                    *u -= p.usage_of(k, x);
                }
                usage[r] > p.upper[r]
            },
        );
        usage = plan_usage(p, flags);
    }
    // Lower bounds: add the best unchosen candidates that keep every limit.
    for r in 0..r_n {
        if !p.has_lower(r) || usage[r] >= p.lo(r) {
            continue;
        }
        ctl.check()?;
        let f: &[u8] = flags;
        let mut items: Vec<(f64, u64)> = (0..p.nnz())
            .into_par_iter()
            .with_min_len(1 << 16)
            .filter(|&k| f[k] == 0)
            .filter_map(|k| {
                let u = p.usage_of(k, r);
                (u > 0.0).then(|| (-reduced(p, pr, k) / u, k as u64))
            })
            .collect();
        ascending_until(
            &mut items,
            |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
            |&(_, k)| {
                let k = k as usize;
                let i = user_of(p, k);
                let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
                let count = flags[s..e].iter().filter(|f| **f != 0).count();
                if count >= p.limit.get(i) as usize {
                    return true;
                }
                if !p.group.is_empty() {
                    let g = p.group[p.action[k] as usize];
                    if g >= 0 && (s..e).any(|j| flags[j] != 0 && p.group[p.action[j] as usize] == g)
                    {
                        return true;
                    }
                }
                let fits = (0..r_n).all(|x| usage[x] + p.usage_of(k, x) <= p.upper[x]);
                if !fits {
                    return true;
                }
                flags[k] = 1;
                for (x, u) in usage.iter_mut().enumerate() {
                    *u += p.usage_of(k, x);
                }
                usage[r] < p.lo(r)
            },
        );
        usage = plan_usage(p, flags);
    }
    Ok(usage)
}
