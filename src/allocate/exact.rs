//! The `exact` and `lp` methods: the same model through pure-Rust solvers (clarabel for the LP
//! relaxation, microlp for small MIPs). For small and medium instances and to verify `dual`.
//!
//! What they claim is proven here, not taken from the solvers:
//! - the dual bound is [`certified_bound`] at the LP's prices (or at zero prices, whichever is
//!   lower): an upper bound by weak duality whatever state the LP solver stopped in;
//! - both solvers stop on Ctrl-C (clarabel runs on a thread of its own that is abandoned, with its
//!   termination callback set, see [`run_clarabel`]; microlp between time slices of [`SLICE`])
//!   and on the time limit; what they found by then is reported with status
//!   `time_limit`, and an empty plan only when the empty plan meets every bound;
//! - the objective is scaled by a power of two (exact) so that the solvers' absolute tolerances
//!   and "infinite cost" thresholds see values of order 1 whatever the units.

use super::{certified_bound, HistoryRow, Problem, Real, Solved, Status};
use crate::control::Control;
use crate::error::{CoreError, Result};
use clarabel::solver::{DefaultSolution, IPSolver, SolverStatus};
use good_lp::solvers::clarabel::{clarabel, ClarabelProblem};
use good_lp::solvers::microlp::microlp;
use good_lp::{variable, Constraint, Expression, ProblemVariables, SolverModel, Variable};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The longest the MIP runs between two checks of Ctrl-C and of the deadline.
const SLICE: Duration = Duration::from_millis(200);

/// Candidates (or users) between two checks of Ctrl-C while the model is built.
const CHECK_EVERY: usize = 4096;

/// How long past the deadline clarabel may run before its result is abandoned (it checks the
/// time and the termination callback only between iterations, which take seconds on large LPs).
const GRACE: Duration = Duration::from_millis(200);

/// A resource row of the model: (constraint index, resource, true for the upper bound's row).
type ResRow = (usize, usize, bool);

/// The model's constraints; resource rows come first (upper then lower of each resource) with
/// their resource index, so their duals can be read back as prices.
fn build<T: Real>(
    p: &Problem<'_, T>,
    x: &[Variable],
    deadline: Option<Instant>,
    ctl: &Control,
) -> Result<Option<(Vec<Constraint>, Vec<ResRow>)>> {
    let mut cons = Vec::new();
    let mut res_rows = Vec::new();
    let r_n = p.n_resources();
    let mut exprs: Vec<Expression> = (0..r_n).map(|_| Expression::from(0.0)).collect();
    for (k, xk) in x.iter().enumerate() {
        if k % CHECK_EVERY == 0 && stop(deadline, ctl)? {
            return Ok(None);
        }
        for (r, e) in exprs.iter_mut().enumerate() {
            let u = p.usage_of(k, r);
            if u != 0.0 {
                *e += u * *xk;
            }
        }
    }
    for (r, e) in exprs.into_iter().enumerate() {
        if p.has_upper(r) {
            res_rows.push((cons.len(), r, true));
            cons.push(e.clone().leq(p.upper[r]));
        }
        if p.has_lower(r) {
            res_rows.push((cons.len(), r, false));
            cons.push(e.geq(p.lo(r)));
        }
    }
    for i in 0..p.n_users() {
        if i % CHECK_EVERY == 0 && stop(deadline, ctl)? {
            return Ok(None);
        }
        let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
        let l = p.limit.get(i) as usize;
        if e - s > l {
            let sum: Expression = x[s..e].iter().sum();
            cons.push(sum.leq(l as f64));
        }
        if !p.group.is_empty() {
            let mut by_group: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
            for k in s..e {
                let g = p.group[p.action[k] as usize];
                if g >= 0 {
                    by_group.entry(g).or_default().push(k);
                }
            }
            for ks in by_group.values().filter(|v| v.len() > 1) {
                let sum: Expression = ks.iter().map(|&k| x[k]).sum();
                cons.push(sum.leq(1.0));
            }
        }
    }
    Ok(Some((cons, res_rows)))
}

/// `Err(Cancelled)` on Ctrl-C, `Ok(true)` once `deadline` has passed (building a large model
/// takes seconds: the time limit counts it).
fn stop(deadline: Option<Instant>, ctl: &Control) -> Result<bool> {
    ctl.check()?;
    Ok(deadline.is_some_and(|d| Instant::now() >= d))
}

fn infeasible(names: &[String]) -> CoreError {
    CoreError::Infeasible(format!(
        "no plan meets every bound of the resources {names:?} together with the per-user and \
         group limits"
    ))
}

/// The power of two that brings the largest |value| to [1, 2) (1 for all-zero values): the
/// solvers see `value * scale`, exactly, and their prices are divided by it.
fn objective_scale<T: Real>(p: &Problem<'_, T>) -> f64 {
    let most = p.value.iter().fold(0.0f64, |m, v| m.max((*v).into().abs()));
    if most > 0.0 && most.is_finite() {
        (2.0f64).powi(-(most.log2().floor() as i32))
    } else {
        1.0
    }
}

/// Time left before `deadline` (`None`: no deadline).
fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// The LP relaxation as clarabel left it.
pub struct LpOut {
    /// The primal point, when clarabel solved the LP (status solved or almost solved).
    pub x: Option<Vec<f64>>,
    /// Its objective (unscaled; `-inf` when there is no point).
    pub objective: f64,
    /// Prices from clarabel's last dual iterate (unscaled, projected on the allowed signs).
    pub prices: Vec<f64>,
    /// True when clarabel stopped on the deadline.
    pub timed_out: bool,
    /// Clarabel's final status.
    pub status: String,
}

/// Solves the LP relaxation with clarabel, stopping on Ctrl-C (`Err(Cancelled)`) and at
/// `deadline` (`timed_out`, with the prices so far).
pub fn solve_lp<T: Real>(
    p: &Problem<'_, T>,
    deadline: Option<Instant>,
    ctl: &Control,
) -> Result<LpOut> {
    let nnz = p.nnz();
    let scale = objective_scale(p);
    let mut vars = ProblemVariables::new();
    let x: Vec<Variable> = (0..nnz)
        .map(|_| vars.add(variable().min(0.0).max(1.0)))
        .collect();
    let obj: Expression = x
        .iter()
        .enumerate()
        .map(|(k, v)| p.value[k].into() * scale * *v)
        .sum();
    let Some((cons, res_rows)) = build(p, &x, deadline, ctl)? else {
        return Ok(LpOut::abandoned(p.n_resources()));
    };
    let n_cons = cons.len();
    let mut model = vars.maximise(obj).using(clarabel);
    for (j, c) in cons.into_iter().enumerate() {
        if j % CHECK_EVERY == 0 && stop(deadline, ctl)? {
            return Ok(LpOut::abandoned(p.n_resources()));
        }
        model.add_constraint(c);
    }
    if let Some(t) = remaining(deadline) {
        model.settings().time_limit(t.as_secs_f64());
    }
    let sol = match run_clarabel(model, deadline, ctl)? {
        Some(sol) => sol,
        None => return Ok(LpOut::abandoned(p.n_resources())),
    };
    let sol = &sol;
    // good_lp puts the variables' bounds first (two rows each), then our constraints; for a
    // maximisation clarabel's dual `z` of a `<=` row is its price and of a `>=` row minus it.
    let first = sol.z.len().saturating_sub(n_cons);
    let mut prices = vec![0.0; p.n_resources()];
    for (row, r, upper) in res_rows {
        let z = sol.z.get(first + row).copied().unwrap_or(0.0);
        prices[r] += if upper { z } else { -z } / scale;
    }
    let prices = super::project_prices(p, &prices);
    let solved = matches!(
        sol.status,
        SolverStatus::Solved | SolverStatus::AlmostSolved
    );
    match sol.status {
        SolverStatus::PrimalInfeasible | SolverStatus::AlmostPrimalInfeasible => {
            return Err(infeasible(&p.names))
        }
        _ => {}
    }
    let xs = solved.then(|| sol.x[..nnz].to_vec());
    let objective = match &xs {
        Some(xs) => xs
            .iter()
            .enumerate()
            .map(|(k, v)| v * p.value[k].into())
            .sum(),
        None => f64::NEG_INFINITY,
    };
    Ok(LpOut {
        x: xs,
        objective,
        prices,
        timed_out: matches!(sol.status, SolverStatus::MaxTime),
        status: format!("{:?}", sol.status),
    })
}

impl LpOut {
    /// What is known when clarabel was abandoned at the deadline: no point, zero prices.
    fn abandoned(n_resources: usize) -> Self {
        LpOut {
            x: None,
            objective: f64::NEG_INFINITY,
            prices: vec![0.0; n_resources],
            timed_out: true,
            status: "MaxTime".to_string(),
        }
    }
}

type ClarabelResult = std::result::Result<DefaultSolution<f64>, String>;

/// Runs clarabel (its set-up, which equilibrates and factors the KKT system, and its iterations)
/// on a thread of its own that owns the model, and waits for it checking `ctl` every 10 ms.
/// On Ctrl-C (`Err(Cancelled)`) or [`GRACE`] past `deadline` (`Ok(None)`) it returns at once:
/// clarabel's termination callback is set and the thread, left to itself, stops at clarabel's
/// next check and frees the model. Clarabel checks only between iterations, and one iteration
/// (or the set-up) of a large LP takes seconds, so waiting for it would ignore Ctrl-C.
fn run_clarabel(
    model: ClarabelProblem,
    deadline: Option<Instant>,
    ctl: &Control,
) -> Result<Option<DefaultSolution<f64>>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (tx, rx) = mpsc::channel::<ClarabelResult>();
    std::thread::Builder::new()
        .name("gm-clarabel".to_string())
        .spawn(move || {
            let r = std::panic::catch_unwind(AssertUnwindSafe(move || {
                let mut solver = model.try_into_solver().map_err(|e| e.to_string())?;
                solver.set_termination_callback(move |_| flag.load(Ordering::Relaxed));
                solver.solve();
                Ok(solver.solution)
            }));
            // The receiver is gone when the caller stopped waiting: nothing to report.
            let _ = tx.send(r.unwrap_or_else(|_| Err("clarabel panicked".to_string())));
        })
        .map_err(|e| CoreError::Internal(format!("cannot start the LP solver's thread: {e}")))?;
    loop {
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(r) => {
                return r.map(Some).map_err(|e| {
                    CoreError::Internal(format!("the LP solver (clarabel) failed: {e}"))
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if ctl.is_cancelled() {
                    stop.store(true, Ordering::Relaxed);
                    return Err(CoreError::Cancelled);
                }
                if deadline.is_some_and(|d| Instant::now() >= d + GRACE) {
                    stop.store(true, Ordering::Relaxed);
                    return Ok(None);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(CoreError::Internal(
                    "the LP solver's thread stopped without an answer".to_string(),
                ))
            }
        }
    }
}

/// True when the empty plan meets every bound (no positive lower bound).
fn empty_plan_ok<T: Real>(p: &Problem<'_, T>) -> bool {
    (0..p.n_resources()).all(|r| !p.has_lower(r))
}

/// The MIP with microlp, in time slices: `Ok(Some((chosen, proven_optimal)))`, or `Ok(None)`
/// when the deadline came before any integer plan; `Err(Cancelled)` on Ctrl-C.
fn solve_mip<T: Real>(
    p: &Problem<'_, T>,
    deadline: Option<Instant>,
    ctl: &Control,
) -> Result<Option<(Vec<u64>, bool)>> {
    let scale = objective_scale(p);
    let mut vars = ProblemVariables::new();
    let x: Vec<Variable> = (0..p.nnz())
        .map(|_| vars.add(variable().binary()))
        .collect();
    let obj: Expression = x
        .iter()
        .enumerate()
        .map(|(k, v)| p.value[k].into() * scale * *v)
        .sum();
    let Some((cons, _)) = build(p, &x, deadline, ctl)? else {
        return Ok(None);
    };
    let mut model = vars.maximise(obj).using(microlp);
    for (j, c) in cons.into_iter().enumerate() {
        if j % CHECK_EVERY == 0 && stop(deadline, ctl)? {
            return Ok(None);
        }
        model.add_constraint(c);
    }
    let slice = || Some(remaining(deadline).map_or(SLICE, |t| t.min(SLICE)));
    let fail = |e: microlp::Error| match e {
        microlp::Error::Infeasible => infeasible(&p.names),
        other => CoreError::Internal(format!("the MIP solver (microlp) failed: {other}")),
    };
    let mut opts = microlp::SolveOptions::default();
    opts.time_limit = slice();
    let mut out = model.as_inner().solve_with(opts).map_err(fail)?;
    loop {
        ctl.check()?;
        if out.is_optimal() || remaining(deadline).is_some_and(|t| t.is_zero()) {
            break;
        }
        let mut opts = out.last_resume_options();
        opts.time_limit = slice();
        out = out.resume_with(opts).map_err(fail)?;
    }
    let optimal = out.is_optimal();
    Ok(out.solution().map(|sol| {
        let chosen = sol
            .iter()
            .filter(|(_, v)| *v > 0.5)
            .map(|(var, _)| var.idx() as u64)
            .collect();
        (chosen, optimal)
    }))
}

/// The exact method: the MIP with microlp when `integer`, else the LP with clarabel plus rounding
/// (candidates with x >= 1 - 1e-6 are kept). `time_limit` (seconds) bounds both solvers.
pub fn solve_exact<T: Real>(
    p: &Problem<'_, T>,
    integer: bool,
    time_limit: Option<f64>,
    ctl: &Control,
) -> Result<Solved> {
    p.validate()?;
    ctl.check()?;
    let t0 = Instant::now();
    let deadline = time_limit
        .filter(|t| t.is_finite())
        .map(|t| t0 + Duration::from_secs_f64(t.max(0.0)));
    let lp = solve_lp(p, deadline, ctl)?;
    // Certified, whatever state clarabel stopped in.
    let zero = vec![0.0; p.n_resources()];
    let dual_bound = certified_bound(p, &lp.prices, ctl)?.min(certified_bound(p, &zero, ctl)?);
    let mut timed_out = lp.timed_out;
    let mut no_plan = false;
    let (chosen, proven) = if integer {
        match solve_mip(p, deadline, ctl)? {
            Some((chosen, optimal)) => {
                timed_out |= !optimal;
                (chosen, optimal)
            }
            None => {
                timed_out = true;
                no_plan = true;
                (Vec::new(), false)
            }
        }
    } else {
        no_plan = lp.x.is_none();
        let chosen = lp.x.as_ref().map_or_else(Vec::new, |xs| {
            xs.iter()
                .enumerate()
                .filter(|(_, v)| **v >= 1.0 - 1e-6)
                .map(|(k, _)| k as u64)
                .collect()
        });
        (chosen, false)
    };
    if no_plan && !empty_plan_ok(p) && !timed_out {
        return Err(CoreError::Internal(format!(
            "the LP solver (clarabel) stopped without a solution (status {}) and the empty plan \
             misses a lower bound; method=\"dual\" solves the same model",
            lp.status
        )));
    }
    if no_plan && !empty_plan_ok(p) {
        return Err(CoreError::invalid(
            "time_limit",
            format!(
                "no plan meeting the lower bounds was found within {} s; give more time or use \
                 method=\"dual\"",
                time_limit.unwrap_or(0.0)
            ),
        ));
    }
    let (objective, usage) = super::evaluate(p, &chosen);
    // A plan microlp proved optimal is its own bound (as before); otherwise the certified one.
    let dual_bound = if proven { objective } else { dual_bound };
    let gap = (dual_bound - objective) / dual_bound.abs().max(1e-12);
    let status = if proven || gap <= 1e-9 {
        Status::Optimal
    } else if timed_out {
        Status::TimeLimit
    } else {
        Status::Feasible
    };
    let lp_value = if integer || lp.x.is_none() {
        objective
    } else {
        lp.objective.max(objective)
    };
    Ok(Solved {
        chosen_user: super::users_of(p.indptr, &chosen),
        chosen,
        objective,
        dual_bound,
        lp_value,
        usage,
        prices: lp.prices,
        status,
        message: if timed_out {
            "stopped by the time limit".to_string()
        } else if no_plan {
            format!("the LP solver (clarabel) stopped with status {}", lp.status)
        } else {
            String::new()
        },
        history: vec![HistoryRow {
            phase: 2,
            iteration: 0,
            dual: dual_bound,
            bound: dual_bound,
            lp_value: lp.objective,
            value: objective,
            max_violation: 0.0,
            seconds: t0.elapsed().as_secs_f64(),
        }],
        passes: 0,
    })
}
