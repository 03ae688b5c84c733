//! Bindings of the dual solver over users held apart from it (blocks of a problem partitioned by
//! user, e.g. on Spark executors; see `allocate::source` and `allocate::block`):
//! - `AllocateBlock`: one block of users (owned arrays): passes at given prices, the Jacobian
//!   pass, the subsample, the plan's sums and margins, the gathered users, the chosen rows;
//! - `allocate_solve_source`: the dual solver, calling a Python source object for every pass
//!   (the source sums the blocks' results);
//! - `allocate_finish`: the repair of the gathered users with the others' choices held fixed.

use super::{guarded, run_long, slice1};
use crate::allocate::kernel::{JacobianPass, PassOut};
use crate::allocate::plan::{Finish, Plan};
use crate::allocate::source::{Local, PlanRequest, Source, SubProblem};
use crate::allocate::{block, dual, DualOptions, Limit, Problem};
use crate::control::Control;
use crate::error::{CoreError, Result};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Mutex;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AllocateBlock>()?;
    m.add_function(wrap_pyfunction!(allocate_solve_source, m)?)?;
    m.add_function(wrap_pyfunction!(allocate_finish, m)?)?;
    Ok(())
}

/// What every block and the solver share: resources, actions, groups, limits and bounds.
#[derive(Clone)]
struct Meta {
    pair_resource: Vec<usize>,
    action_usage: Vec<f64>,
    n_actions: usize,
    group: Vec<i32>,
    limit: u32,
    lower: Vec<f64>,
    upper: Vec<f64>,
    names: Vec<String>,
}

impl Meta {
    /// From the arrays every binding receives; `names` default to "resource r".
    #[allow(clippy::too_many_arguments)]
    fn new(
        usage_resource: Vec<usize>,
        action_usage: &PyReadonlyArray1<'_, f64>,
        n_actions: usize,
        groups: &PyReadonlyArray1<'_, i32>,
        limit: u32,
        lower: Vec<f64>,
        upper: Vec<f64>,
        names: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let n_r = lower.len();
        Ok(Meta {
            pair_resource: usage_resource,
            action_usage: slice1("action_usage", action_usage)?.to_vec(),
            n_actions,
            group: slice1("groups", groups)?.to_vec(),
            limit,
            lower,
            upper,
            names: names.unwrap_or_else(|| (0..n_r).map(|r| format!("resource {r}")).collect()),
        })
    }

    fn problem<'a>(&'a self, sub: &'a SubProblem<f64>) -> Problem<'a, f64> {
        Problem {
            indptr: &sub.indptr,
            action: &sub.action,
            value: &sub.value,
            pair_usage: sub.pair.iter().map(|c| c.as_slice()).collect(),
            pair_resource: self.pair_resource.clone(),
            action_usage: &self.action_usage,
            n_actions: self.n_actions,
            group: &self.group,
            limit: match &sub.limit {
                Some(l) => Limit::PerUser(l),
                None => Limit::All(self.limit),
            },
            lower: self.lower.clone(),
            upper: self.upper.clone(),
            names: self.names.clone(),
        }
    }
}

/// Owned copies of a block's arrays.
fn sub_from(
    indptr: &PyReadonlyArray1<'_, i64>,
    action: &PyReadonlyArray1<'_, u32>,
    value: &PyReadonlyArray1<'_, f64>,
    usage: &[PyReadonlyArray1<'_, f64>],
    limit_per_user: &Option<PyReadonlyArray1<'_, u32>>,
) -> PyResult<SubProblem<f64>> {
    Ok(SubProblem {
        indptr: slice1("indptr", indptr)?.to_vec(),
        action: slice1("action", action)?.to_vec(),
        value: slice1("value", value)?.to_vec(),
        pair: usage
            .iter()
            .map(|a| slice1("usage", a).map(|s| s.to_vec()))
            .collect::<PyResult<_>>()?,
        limit: limit_per_user
            .as_ref()
            .map(|l| slice1("per_user_limit", l).map(|s| s.to_vec()))
            .transpose()?,
    })
}

fn sub_dict<'py>(
    py: Python<'py>,
    sub: SubProblem<f64>,
    users: Vec<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("users", PyArray1::from_vec(py, users))?;
    d.set_item("indptr", PyArray1::from_vec(py, sub.indptr))?;
    d.set_item("action", PyArray1::from_vec(py, sub.action))?;
    d.set_item("value", PyArray1::from_vec(py, sub.value))?;
    let cols: Vec<Bound<'py, PyArray1<f64>>> = sub
        .pair
        .into_iter()
        .map(|c| PyArray1::from_vec(py, c))
        .collect();
    d.set_item("usage", cols)?;
    match sub.limit {
        Some(l) => d.set_item("limit_per_user", PyArray1::from_vec(py, l))?,
        None => d.set_item("limit_per_user", py.None())?,
    }
    Ok(d)
}

type PassTuple = (f64, f64, Vec<f64>, u64);
/// A pass with the Jacobian: the pass, `jac` (R x R row-major) and the number of events.
type JacTuple = (f64, f64, Vec<f64>, u64, Vec<f64>, u64);

fn pass_tuple(o: PassOut) -> PassTuple {
    (o.lsum, o.value, o.usage, o.picks)
}

/// One block of users of a larger problem (users `first .. first + n_users` in the problem's
/// user order).
#[pyclass(module = "growthmachine._core", frozen)]
pub struct AllocateBlock {
    meta: Meta,
    sub: SubProblem<f64>,
    first: u64,
}

impl AllocateBlock {
    fn p(&self) -> Problem<'_, f64> {
        self.meta.problem(&self.sub)
    }
    fn choices(&self, mix: &[Vec<f64>], cum: &[f64], seed: u64, ctl: &Control) -> Result<Vec<u8>> {
        block::choices(&self.p(), mix, cum, seed, self.first, ctl)
    }
}

#[pymethods]
impl AllocateBlock {
    #[new]
    #[pyo3(signature = (indptr, action, value, usage, usage_resource, action_usage, n_actions,
        groups, limit, limit_per_user, n_resources, first))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        indptr: PyReadonlyArray1<'_, i64>,
        action: PyReadonlyArray1<'_, u32>,
        value: PyReadonlyArray1<'_, f64>,
        usage: Vec<PyReadonlyArray1<'_, f64>>,
        usage_resource: Vec<usize>,
        action_usage: PyReadonlyArray1<'_, f64>,
        n_actions: usize,
        groups: PyReadonlyArray1<'_, i32>,
        limit: u32,
        limit_per_user: Option<PyReadonlyArray1<'_, u32>>,
        n_resources: usize,
        first: u64,
    ) -> PyResult<Self> {
        // A block alone need not meet the bounds: only the sums over the blocks do.
        let meta = Meta::new(
            usage_resource,
            &action_usage,
            n_actions,
            &groups,
            limit,
            crate::error::try_vec("n_resources", n_resources, 0.0).map_err(super::to_pyerr)?,
            crate::error::try_vec("n_resources", n_resources, f64::INFINITY)
                .map_err(super::to_pyerr)?,
            None,
        )?;
        let sub = sub_from(&indptr, &action, &value, &usage, &limit_per_user)?;
        let b = AllocateBlock { meta, sub, first };
        b.p().validate().map_err(super::to_pyerr)?;
        Ok(b)
    }

    #[getter]
    fn n_users(&self) -> usize {
        self.sub.indptr.len() - 1
    }

    /// One pass at each price vector: `(lsum, value, usage, picks)` per vector.
    fn pass_(&self, py: Python<'_>, qs: Vec<Vec<f64>>) -> PyResult<Vec<PassTuple>> {
        let p = self.p();
        let outs = run_long(py, None, None, |ctl| Local::new(&p).pass(&qs, ctl))?;
        Ok(outs.into_iter().map(pass_tuple).collect())
    }

    /// A pass at `q` with the Jacobian estimate: `(lsum, value, usage, picks, jac, events)`.
    fn jacobian(&self, py: Python<'_>, q: Vec<f64>, h: f64) -> PyResult<JacTuple> {
        let p = self.p();
        let jp = run_long(py, None, None, |ctl| {
            Local::new(&p).pass_jacobian(&q, h, ctl)
        })?;
        let (l, v, u, k) = pass_tuple(jp.out);
        Ok((l, v, u, k, jp.jac, jp.events))
    }

    /// The block's users in the solver's subsample, as arrays (with their user indices).
    fn sample<'py>(&self, py: Python<'py>, key: u64, stride: u64) -> PyResult<Bound<'py, PyDict>> {
        let (ids, sub) = guarded(py, || {
            let ids = block::sample_users(self.n_users(), self.first, key, stride);
            let sub = SubProblem::gather(&self.p(), &ids);
            Ok((ids, sub))
        })?;
        sub_dict(
            py,
            sub,
            ids.iter().map(|&i| self.first + i as u64).collect(),
        )
    }

    /// The plan's value and use over the block, and its `k` smallest user margins (ascending).
    #[allow(clippy::too_many_arguments)]
    fn plan_stats(
        &self,
        py: Python<'_>,
        mix: Vec<Vec<f64>>,
        cum: Vec<f64>,
        q: Vec<f64>,
        seed: u64,
        k: usize,
    ) -> PyResult<(f64, Vec<f64>, Vec<f64>)> {
        run_long(py, None, None, |ctl| {
            let p = self.p();
            let flags = self.choices(&mix, &cum, seed, ctl)?;
            let (value, usage) = block::value_usage(&p, &flags);
            let mut m = block::margins(&p, &q, &flags);
            let k = k.min(m.len());
            if k < m.len() {
                m.select_nth_unstable_by(k, f64::total_cmp);
                m.truncate(k);
            }
            m.sort_unstable_by(f64::total_cmp);
            Ok((value, usage, m))
        })
    }

    /// The block's users whose margin is at most `threshold`, as arrays, with their choices
    /// (`flags`), user indices (`users`), and their plan's `value_sum` and `usage_sum`.
    fn gather<'py>(
        &self,
        py: Python<'py>,
        mix: Vec<Vec<f64>>,
        cum: Vec<f64>,
        q: Vec<f64>,
        seed: u64,
        threshold: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (sub, ids, flags, value, usage) = run_long(py, None, None, |ctl| {
            let p = self.p();
            let flags = self.choices(&mix, &cum, seed, ctl)?;
            let m = block::margins(&p, &q, &flags);
            let (ids, sub, f) = block::gather(&p, &flags, &m, threshold);
            let (value, usage) = block::value_usage(&self.meta.problem(&sub), &f);
            Ok((sub, ids, f, value, usage))
        })?;
        let d = sub_dict(
            py,
            sub,
            ids.iter().map(|&i| self.first + i as u64).collect(),
        )?;
        d.set_item("flags", PyArray1::from_vec(py, flags))?;
        d.set_item("value_sum", value)?;
        d.set_item("usage_sum", usage)?;
        Ok(d)
    }

    /// Positions (in the block) of the chosen candidates: every user's choice at the rounding
    /// `mix`/`cum`, except the users `users` (ascending user indices), whose candidates take
    /// the flags `flags` (concatenated in that order).
    fn chosen<'py>(
        &self,
        py: Python<'py>,
        mix: Vec<Vec<f64>>,
        cum: Vec<f64>,
        seed: u64,
        users: PyReadonlyArray1<'py, u64>,
        flags: PyReadonlyArray1<'py, u8>,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let users = slice1("users", &users)?;
        let over = slice1("flags", &flags)?;
        let chosen = run_long(py, None, None, |ctl| {
            let flags = self.choices(&mix, &cum, seed, ctl)?;
            block::chosen_with(&self.p(), flags, self.first, users, over)
        })?;
        Ok(PyArray1::from_vec(py, chosen))
    }
}

/// A source whose passes are Python calls (`pass_`, `jacobian`, `sample`, `plan` of `obj`).
struct PySource {
    obj: Py<PyAny>,
    n: usize,
    /// The first Python exception raised by `obj`, re-raised as is once the solver stops.
    err: Mutex<Option<PyErr>>,
}

impl PySource {
    fn call<R>(&self, f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> PyResult<R>) -> Result<R> {
        Python::attach(|py| f(py, self.obj.bind(py))).map_err(|e| {
            let msg = e.to_string();
            let mut slot = self.err.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(e);
            }
            CoreError::Internal(format!("the source failed: {msg}"))
        })
    }
}

fn pass_out((lsum, value, usage, picks): PassTuple) -> PassOut {
    PassOut {
        lsum,
        value,
        usage,
        picks,
    }
}

impl Source<f64> for PySource {
    fn n_users(&self) -> usize {
        self.n
    }

    fn pass(&mut self, qs: &[Vec<f64>], _ctl: &Control) -> Result<Vec<PassOut>> {
        let outs: Vec<PassTuple> =
            self.call(|_, o| o.call_method1("pass_", (qs.to_vec(),))?.extract())?;
        if outs.len() != qs.len() {
            return Err(CoreError::Internal(format!(
                "the source returned {} passes for {} price vectors",
                outs.len(),
                qs.len()
            )));
        }
        Ok(outs.into_iter().map(pass_out).collect())
    }

    fn pass_jacobian(&mut self, q: &[f64], h: f64, _ctl: &Control) -> Result<JacobianPass> {
        let (l, v, u, k, jac, events): JacTuple =
            self.call(|_, o| o.call_method1("jacobian", (q.to_vec(), h))?.extract())?;
        Ok(JacobianPass {
            out: pass_out((l, v, u, k)),
            jac,
            events,
        })
    }

    fn sample(&mut self, key: u64, stride: u64, _ctl: &Control) -> Result<SubProblem<f64>> {
        self.call(|_, o| {
            let d = o.call_method1("sample", (key, stride))?;
            let get = |k: &str| d.get_item(k);
            let indptr: PyReadonlyArray1<'_, i64> = get("indptr")?.extract()?;
            let action: PyReadonlyArray1<'_, u32> = get("action")?.extract()?;
            let value: PyReadonlyArray1<'_, f64> = get("value")?.extract()?;
            let usage: Vec<PyReadonlyArray1<'_, f64>> = get("usage")?.extract()?;
            let lim: Option<PyReadonlyArray1<'_, u32>> = get("limit_per_user")?.extract()?;
            sub_from(&indptr, &action, &value, &usage, &lim)
        })
    }

    fn plan(&mut self, req: &PlanRequest<'_>, _ctl: &Control) -> Result<Plan> {
        let margin = match req.finish {
            Finish::Near(m) => m,
            Finish::Full => f64::INFINITY,
        };
        let (objective, usage): (f64, Vec<f64>) = self.call(|_, o| {
            o.call_method1(
                "plan",
                (
                    req.mix.to_vec(),
                    req.cum.to_vec(),
                    req.q.to_vec(),
                    margin,
                    req.seed,
                ),
            )?
            .extract()
        })?;
        Ok(Plan {
            chosen: Vec::new(),
            objective,
            usage,
        })
    }
}

/// The dual solver over the users of `source` (a Python object with `pass_(qs)`,
/// `jacobian(q, h)`, `sample(key, stride)` and `plan(mix, cum, q, margin, seed)`, see
/// `growthmachine.spark`); returns the certificate dict of `allocate_run` without `chosen`.
#[pyfunction]
#[pyo3(signature = (source, n_users, usage_resource, action_usage, n_actions, groups, limit,
    lower, upper, names, tol=1e-4, max_iter=500, time_limit=None, sample=true, seed=0,
    progress=None))]
#[allow(clippy::too_many_arguments)]
fn allocate_solve_source<'py>(
    py: Python<'py>,
    source: Py<PyAny>,
    n_users: usize,
    usage_resource: Vec<usize>,
    action_usage: PyReadonlyArray1<'py, f64>,
    n_actions: usize,
    groups: PyReadonlyArray1<'py, i32>,
    limit: u32,
    lower: Vec<f64>,
    upper: Vec<f64>,
    names: Vec<String>,
    tol: f64,
    max_iter: usize,
    time_limit: Option<f64>,
    sample: bool,
    seed: u64,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    if !(tol.is_finite() && tol > 0.0) {
        return Err(PyValueError::new_err(format!(
            "tol: must be a positive number, got {tol}"
        )));
    }
    let meta = Meta::new(
        usage_resource,
        &action_usage,
        n_actions,
        &groups,
        limit,
        lower,
        upper,
        Some(names),
    )?;
    let empty = SubProblem {
        indptr: vec![0i64],
        action: Vec::new(),
        value: Vec::new(),
        pair: vec![Vec::new(); meta.pair_resource.len()],
        limit: None,
    };
    let p = meta.problem(&empty);
    p.validate().map_err(super::to_pyerr)?;
    let mut src = PySource {
        obj: source,
        n: n_users,
        err: Mutex::new(None),
    };
    let opt = DualOptions {
        tol,
        max_iter,
        sample,
        seed,
        ..DualOptions::default()
    };
    let r = run_long(py, progress, time_limit, |ctl| {
        dual::solve_with(&p, &mut src, &opt, ctl)
    });
    if let Some(e) = src.err.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let d = PyDict::new(py);
    super::allocate::certificate(&d, r?)?;
    Ok(d)
}

/// Repairs (`margin` finite: switches near the margin first) or repairs and fills (`margin`
/// infinite) the choices `flags` of the gathered users, whose `lower`/`upper` are what the
/// other users leave; returns `flags`, `objective` and `usage` of the gathered users.
#[pyfunction]
#[pyo3(signature = (indptr, action, value, usage, limit_per_user, usage_resource,
    action_usage, n_actions, groups, limit, lower, upper, flags, q, margin, seed))]
#[allow(clippy::too_many_arguments)]
fn allocate_finish<'py>(
    py: Python<'py>,
    indptr: PyReadonlyArray1<'py, i64>,
    action: PyReadonlyArray1<'py, u32>,
    value: PyReadonlyArray1<'py, f64>,
    usage: Vec<PyReadonlyArray1<'py, f64>>,
    limit_per_user: Option<PyReadonlyArray1<'py, u32>>,
    usage_resource: Vec<usize>,
    action_usage: PyReadonlyArray1<'py, f64>,
    n_actions: usize,
    groups: PyReadonlyArray1<'py, i32>,
    limit: u32,
    lower: Vec<f64>,
    upper: Vec<f64>,
    flags: PyReadonlyArray1<'py, u8>,
    q: Vec<f64>,
    margin: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let meta = Meta::new(
        usage_resource,
        &action_usage,
        n_actions,
        &groups,
        limit,
        lower,
        upper,
        None,
    )?;
    let sub = sub_from(&indptr, &action, &value, &usage, &limit_per_user)?;
    let flags = slice1("flags", &flags)?.to_vec();
    if flags.len() != sub.action.len() {
        return Err(PyValueError::new_err(format!(
            "flags: one per candidate ({}) is needed, got {}",
            sub.action.len(),
            flags.len()
        )));
    }
    let how = if margin.is_finite() {
        Finish::Near(margin)
    } else {
        Finish::Full
    };
    let plan = run_long(py, None, None, |ctl| {
        block::finish(&meta.problem(&sub), flags, &q, how, seed, ctl)
    })?;
    let mut f = vec![0u8; sub.action.len()];
    for &k in &plan.chosen {
        f[k as usize] = 1;
    }
    let d = PyDict::new(py);
    d.set_item("flags", PyArray1::from_vec(py, f))?;
    d.set_item("objective", plan.objective)?;
    d.set_item("usage", plan.usage)?;
    Ok(d)
}
