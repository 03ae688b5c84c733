//! Bindings of the `allocate` core. Names on `_core` are prefixed `allocate_`.
//!
//! `allocate_run` takes the problem as contiguous arrays (CSR candidates, values and
//! per-candidate usage columns as float32 or float64, per-action usage as float64) and a method:
//! `"validate"` (checks only), `"dual"`, `"exact"` (MIP via microlp) or `"lp"` (LP via clarabel).

use super::{run_long, slice1};
use crate::allocate::{
    dual, exact, generate, DualOptions, HistoryRow, Limit, Problem, Real, Solved,
};
use crate::control::Control;
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(allocate_run, m)?)?;
    m.add_function(wrap_pyfunction!(allocate_random_instance, m)?)?;
    Ok(())
}

struct Common<'a> {
    indptr: &'a [i64],
    action: &'a [u32],
    action_usage: &'a [f64],
    n_actions: usize,
    group: &'a [i32],
    limit: Limit<'a>,
    pair_resource: Vec<usize>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    names: Vec<String>,
}

struct Opts {
    method: String,
    tol: f64,
    max_iter: usize,
    time_limit: Option<f64>,
    warm_start: Option<Vec<f64>>,
    sample: bool,
    seed: u64,
}

fn solve_typed<T: Real + numpy::Element>(
    py: Python<'_>,
    c: &Common<'_>,
    value: &Bound<'_, PyAny>,
    pair: &[Bound<'_, PyAny>],
    o: &Opts,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Solved>> {
    let value: PyReadonlyArray1<'_, T> = value.extract()?;
    let pair: Vec<PyReadonlyArray1<'_, T>> = pair
        .iter()
        .map(|a| {
            a.extract().map_err(|_| {
                PyTypeError::new_err("usage: every usage column must have the dtype of value")
            })
        })
        .collect::<PyResult<_>>()?;
    let v = slice1("value", &value)?;
    let cols: Vec<&[T]> = pair
        .iter()
        .map(|a| slice1("usage", a))
        .collect::<PyResult<_>>()?;
    let p = Problem {
        indptr: c.indptr,
        action: c.action,
        value: v,
        pair_usage: cols,
        pair_resource: c.pair_resource.clone(),
        action_usage: c.action_usage,
        n_actions: c.n_actions,
        group: c.group,
        limit: c.limit,
        lower: c.lower.clone(),
        upper: c.upper.clone(),
        names: c.names.clone(),
    };
    let method = o.method.as_str();
    let time_limit = o.time_limit;
    run_long(py, progress, time_limit, |ctl: &Control| match method {
        "validate" => p.validate().map(|_| None),
        "dual" => {
            let opt = DualOptions {
                tol: o.tol,
                max_iter: o.max_iter,
                warm_start: o.warm_start.clone(),
                sample: o.sample,
                seed: o.seed,
                ..DualOptions::default()
            };
            dual::solve_dual(&p, &opt, ctl).map(Some)
        }
        "exact" => exact::solve_exact(&p, true, time_limit, ctl).map(Some),
        "lp" => exact::solve_exact(&p, false, time_limit, ctl).map(Some),
        other => Err(crate::error::CoreError::invalid(
            "method",
            format!("unknown method {other:?}"),
        )),
    })
}

fn history_dict<'py>(py: Python<'py>, h: &[HistoryRow]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(
        "phase",
        PyArray1::from_vec(py, h.iter().map(|r| r.phase as i64).collect()),
    )?;
    d.set_item(
        "iteration",
        PyArray1::from_vec(py, h.iter().map(|r| r.iteration as i64).collect()),
    )?;
    for (name, f) in [
        ("dual", (|r: &HistoryRow| r.dual) as fn(&HistoryRow) -> f64),
        ("bound", |r| r.bound),
        ("lp_value", |r| r.lp_value),
        ("value", |r| r.value),
        ("max_violation", |r| r.max_violation),
        ("seconds", |r| r.seconds),
    ] {
        d.set_item(name, PyArray1::from_vec(py, h.iter().map(f).collect()))?;
    }
    Ok(d)
}

/// Validates or solves an allocation problem; returns `None` for `method="validate"`, else a dict
/// (chosen candidate indices, objective, dual_bound, lp_value, usage, prices, status, message,
/// passes, history).
#[pyfunction]
#[pyo3(signature = (indptr, action, value, usage, usage_resource, action_usage, n_actions,
    groups, limit, limit_per_user, lower, upper, names, method, tol=1e-4, max_iter=500,
    time_limit=None, warm_start=None, sample=true, seed=0, progress=None))]
#[allow(clippy::too_many_arguments)]
fn allocate_run<'py>(
    py: Python<'py>,
    indptr: PyReadonlyArray1<'py, i64>,
    action: PyReadonlyArray1<'py, u32>,
    value: Bound<'py, PyAny>,
    usage: Vec<Bound<'py, PyAny>>,
    usage_resource: Vec<usize>,
    action_usage: PyReadonlyArray1<'py, f64>,
    n_actions: usize,
    groups: PyReadonlyArray1<'py, i32>,
    limit: u32,
    limit_per_user: Option<PyReadonlyArray1<'py, u32>>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    names: Vec<String>,
    method: String,
    tol: f64,
    max_iter: usize,
    time_limit: Option<f64>,
    warm_start: Option<Vec<f64>>,
    sample: bool,
    seed: u64,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    if !(tol.is_finite() && tol > 0.0) {
        return Err(PyValueError::new_err(format!(
            "tol: must be a positive number, got {tol}"
        )));
    }
    let lpu = match &limit_per_user {
        Some(a) => Limit::PerUser(slice1("per_user_limit", a)?),
        None => Limit::All(limit),
    };
    let c = Common {
        indptr: slice1("indptr", &indptr)?,
        action: slice1("action", &action)?,
        action_usage: slice1("action_usage", &action_usage)?,
        n_actions,
        group: slice1("groups", &groups)?,
        limit: lpu,
        pair_resource: usage_resource,
        lower,
        upper,
        names,
    };
    let o = Opts {
        method,
        tol,
        max_iter,
        time_limit,
        warm_start,
        sample,
        seed,
    };
    let is_f32 = value
        .getattr("dtype")
        .and_then(|d| d.getattr("itemsize"))
        .and_then(|s| s.extract::<usize>())
        .map(|s| s == 4)
        .unwrap_or(false);
    let solved = if is_f32 {
        solve_typed::<f32>(py, &c, &value, &usage, &o, progress)?
    } else {
        solve_typed::<f64>(py, &c, &value, &usage, &o, progress)?
    };
    let Some(mut s) = solved else { return Ok(None) };
    let d = PyDict::new(py);
    d.set_item(
        "chosen",
        PyArray1::from_vec(py, std::mem::take(&mut s.chosen)),
    )?;
    d.set_item(
        "chosen_user",
        PyArray1::from_vec(py, std::mem::take(&mut s.chosen_user)),
    )?;
    certificate(&d, s)?;
    Ok(Some(d))
}

/// The solver's certificate and history into `d` (shared with the touchpoint planner).
pub(crate) fn certificate(d: &Bound<'_, PyDict>, s: Solved) -> PyResult<()> {
    let py = d.py();
    d.set_item("objective", s.objective)?;
    d.set_item("dual_bound", s.dual_bound)?;
    d.set_item("lp_value", s.lp_value)?;
    d.set_item("usage", s.usage)?;
    d.set_item("prices", s.prices)?;
    d.set_item("status", s.status.as_str())?;
    d.set_item("message", s.message)?;
    d.set_item("passes", s.passes)?;
    d.set_item("history", history_dict(py, &s.history)?)?;
    Ok(())
}

/// A seeded random instance (see `allocate::generate`) as a dict of arrays.
#[pyfunction]
#[pyo3(signature = (n_users, per_user=20, n_actions=60, n_pair=2, n_action_res=4, n_groups=0,
    limit=1, tight_lo=0.3, tight_hi=0.9, seed=0, progress=None))]
#[allow(clippy::too_many_arguments)]
fn allocate_random_instance<'py>(
    py: Python<'py>,
    n_users: usize,
    per_user: usize,
    n_actions: usize,
    n_pair: usize,
    n_action_res: usize,
    n_groups: usize,
    limit: u32,
    tight_lo: f64,
    tight_hi: f64,
    seed: u64,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    if n_users == 0 {
        return Err(PyValueError::new_err("n_users: must be >= 1, got 0"));
    }
    let spec = generate::Spec {
        n_users,
        per_user,
        n_actions,
        n_pair,
        n_action_res,
        n_groups,
        limit,
        tight_lo,
        tight_hi,
        seed,
    };
    let inst = run_long(py, progress, None, |ctl| generate::random(&spec, ctl))?;
    let d = PyDict::new(py);
    d.set_item("indptr", PyArray1::from_vec(py, inst.indptr))?;
    d.set_item("action", PyArray1::from_vec(py, inst.action))?;
    d.set_item("value", PyArray1::from_vec(py, inst.value))?;
    let cols: Vec<Bound<'py, PyArray1<f32>>> = inst
        .pair_usage
        .into_iter()
        .map(|c| PyArray1::from_vec(py, c))
        .collect();
    d.set_item("usage", cols)?;
    d.set_item("usage_resource", inst.pair_resource)?;
    d.set_item("action_usage", PyArray1::from_vec(py, inst.action_usage))?;
    d.set_item("n_actions", inst.n_actions)?;
    d.set_item("groups", PyArray1::from_vec(py, inst.group))?;
    d.set_item("lower", inst.lower)?;
    d.set_item("upper", inst.upper)?;
    d.set_item("names", inst.names)?;
    Ok(d)
}
