//! The `exact` method: the same model through good_lp with pure-Rust backends (clarabel for the
//! LP relaxation, microlp for small MIPs). For small and medium instances and to verify `dual`.

use super::{HistoryRow, Problem, Real, Solved, Status};
use crate::control::Control;
use crate::error::{CoreError, Result};
use good_lp::solvers::clarabel::clarabel;
use good_lp::solvers::microlp::microlp;
use good_lp::{
    variable, Constraint, DualValues, Expression, ProblemVariables, ResolutionError, Solution,
    SolutionWithDual, SolverModel, Variable, WithTimeLimit,
};
use std::collections::BTreeMap;
use std::time::Instant;

/// The model's constraints; resource rows come first (upper then lower of each resource) with
/// their resource index, so their duals can be read back as prices.
fn build<T: Real>(p: &Problem<'_, T>, x: &[Variable]) -> (Vec<Constraint>, Vec<(usize, usize)>) {
    let mut cons = Vec::new();
    let mut res_rows = Vec::new();
    let r_n = p.n_resources();
    let mut exprs: Vec<Expression> = (0..r_n).map(|_| Expression::from(0.0)).collect();
    for (k, xk) in x.iter().enumerate() {
        for (r, e) in exprs.iter_mut().enumerate() {
            let u = p.usage_of(k, r);
            if u != 0.0 {
                *e += u * *xk;
            }
        }
    }
    for (r, e) in exprs.into_iter().enumerate() {
        if p.has_upper(r) {
            res_rows.push((cons.len(), r));
            cons.push(e.clone().leq(p.upper[r]));
        }
        if p.has_lower(r) {
            res_rows.push((cons.len(), r));
            cons.push(e.geq(p.lo(r)));
        }
    }
    for i in 0..p.n_users() {
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
    (cons, res_rows)
}

fn err(e: ResolutionError, p_names: &[String]) -> CoreError {
    match e {
        ResolutionError::Infeasible => CoreError::Infeasible(format!(
            "no plan meets every bound of the resources {p_names:?} together with the per-user \
             and group limits"
        )),
        other => CoreError::Internal(format!("exact solver failed: {other}")),
    }
}

/// Solves the LP relaxation with clarabel; returns (x, objective, prices).
pub fn solve_lp<T: Real>(p: &Problem<'_, T>) -> Result<(Vec<f64>, f64, Vec<f64>)> {
    let mut vars = ProblemVariables::new();
    let x: Vec<Variable> = (0..p.nnz())
        .map(|_| vars.add(variable().min(0.0).max(1.0)))
        .collect();
    let obj: Expression = x
        .iter()
        .enumerate()
        .map(|(k, v)| p.value[k].into() * *v)
        .sum();
    let (cons, res_rows) = build(p, &x);
    let mut model = vars.maximise(obj).using(clarabel);
    let mut refs = Vec::new();
    for c in cons {
        refs.push(model.add_constraint(c));
    }
    let mut sol = model.solve().map_err(|e| err(e, &p.names))?;
    let xs: Vec<f64> = x.iter().map(|v| sol.value(*v)).collect();
    let objective = xs
        .iter()
        .enumerate()
        .map(|(k, v)| v * p.value[k].into())
        .sum();
    let duals = sol.compute_dual();
    let mut prices = vec![0.0; p.n_resources()];
    for (row, r) in res_rows {
        // good_lp's dual is d objective / d rhs: positive for a binding upper bound (a price),
        // negative for a binding lower bound.
        prices[r] += duals.dual(refs[row].clone());
    }
    Ok((xs, objective, prices))
}

/// The exact method: MIP with microlp when `integer`, else the LP with clarabel plus rounding
/// (candidates with x >= 1 - 1e-6 are kept, and the plan repaired by the dual method's rules).
pub fn solve_exact<T: Real>(
    p: &Problem<'_, T>,
    integer: bool,
    time_limit: Option<f64>,
    ctl: &Control,
) -> Result<Solved> {
    p.validate()?;
    ctl.check()?;
    let t0 = Instant::now();
    let (lp_x, lp_obj, prices) = solve_lp(p)?;
    ctl.check()?;
    let (chosen, objective, dual_bound, status, lp_value) = if integer {
        let mut vars = ProblemVariables::new();
        let x: Vec<Variable> = (0..p.nnz())
            .map(|_| vars.add(variable().binary()))
            .collect();
        let obj: Expression = x
            .iter()
            .enumerate()
            .map(|(k, v)| p.value[k].into() * *v)
            .sum();
        let (cons, _) = build(p, &x);
        let mut model = vars.maximise(obj).using(microlp);
        if let Some(t) = time_limit {
            model = model.with_time_limit(t.max(0.0));
        }
        for c in cons {
            model.add_constraint(c);
        }
        let sol = model.solve().map_err(|e| err(e, &p.names))?;
        let timed_out = matches!(sol.status(), good_lp::SolutionStatus::TimeLimit);
        let chosen: Vec<u64> = x
            .iter()
            .enumerate()
            .filter(|(_, v)| sol.value(**v) > 0.5)
            .map(|(k, _)| k as u64)
            .collect();
        let (obj, _) = super::evaluate(p, &chosen);
        let (bound, status) = if timed_out {
            (lp_obj, Status::TimeLimit)
        } else {
            (obj, Status::Optimal)
        };
        (chosen, obj, bound, status, obj)
    } else {
        let chosen: Vec<u64> = lp_x
            .iter()
            .enumerate()
            .filter(|(_, v)| **v >= 1.0 - 1e-6)
            .map(|(k, _)| k as u64)
            .collect();
        let (obj, _) = super::evaluate(p, &chosen);
        (chosen, obj, lp_obj, Status::Feasible, lp_obj)
    };
    let (_, usage) = super::evaluate(p, &chosen);
    let gap = (dual_bound - objective) / dual_bound.abs().max(1e-12);
    let status = if status == Status::Feasible && gap <= 1e-9 {
        Status::Optimal
    } else {
        status
    };
    Ok(Solved {
        chosen_user: super::users_of(p.indptr, &chosen),
        chosen,
        objective,
        dual_bound,
        lp_value,
        usage,
        prices,
        status,
        message: String::new(),
        history: vec![HistoryRow {
            phase: 2,
            iteration: 0,
            dual: dual_bound,
            bound: dual_bound,
            lp_value: lp_obj,
            value: objective,
            max_violation: 0.0,
            seconds: t0.elapsed().as_secs_f64(),
        }],
        passes: 0,
    })
}
