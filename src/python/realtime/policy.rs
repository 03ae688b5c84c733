//! The policies' binding: `RealtimePolicy`, subclassed by the public Python classes (`LinUCB`,
//! `LinTS`, ...), so their hot methods are these Rust methods with no Python layer in between.
//! The single-event methods hold the GIL and the policy's mutex and do no thread hand-off
//! (microseconds); batches of more than [`LONG_ROWS`] rows go through `run_long` (GIL released,
//! our pool), all through [`RealtimePolicy::run_locked`].

use super::{array, slice};
use crate::control::Control;
use crate::python::args::{bool_arg, int_arg, real_arg};
use crate::python::{guarded, guarded_gil, guarded_pool, run_long, to_pyerr};
use crate::realtime::{Algo, Config, Policy, Rows};
use numpy::{
    IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::{Mutex, MutexGuard};

/// Batches with at least this many rows run through `run_long`.
const LONG_ROWS: usize = 4096;

/// Batch calls name the rows `X`: the core says `x`.
fn big_x(e: crate::error::CoreError) -> crate::error::CoreError {
    match e {
        crate::error::CoreError::Invalid { arg, msg } if arg == "x" => {
            crate::error::CoreError::Invalid {
                arg: "X".into(),
                msg,
            }
        }
        e => e,
    }
}

/// The (n, n_actions) output of a batch call, allocated fallibly (`MemoryError`, never an abort).
fn out_rows(n: usize, n_actions: usize) -> PyResult<Vec<f64>> {
    let count = n
        .checked_mul(n_actions)
        .ok_or_else(|| PyValueError::new_err("X: too large: n rows x n_actions values overflow"))?;
    crate::error::try_vec("X", count, 0.0).map_err(to_pyerr)
}

struct Inner {
    policy: Policy,
    scratch: Vec<f64>,
}

/// A `MutexGuard` handed back from `py.detach` on the same OS thread (detach runs its closure on
/// the calling thread), so sending it "across" is sound.
struct SendGuard<'a>(MutexGuard<'a, Inner>);
unsafe impl Send for SendGuard<'_> {}

#[pyclass(module = "growthmachine._core", subclass, frozen)]
pub struct RealtimePolicy {
    inner: Mutex<Inner>,
}

impl RealtimePolicy {
    /// Locks the policy: without releasing the GIL when free (the fast path), else waits with the
    /// GIL released so other Python threads (and the holder) keep running.
    fn lock<'a>(&'a self, py: Python<'_>) -> MutexGuard<'a, Inner> {
        match self.inner.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                py.detach(|| SendGuard(self.inner.lock().unwrap_or_else(|e| e.into_inner())))
                    .0
            }
        }
    }

    /// Runs `f` on the policy, locked on the calling thread (GIL released while waiting), never
    /// inside the pool: a pool thread blocked on the mutex while stealing work would deadlock.
    /// `long` calls go through `run_long` (GIL released, Ctrl-C honoured); short ones run on the
    /// pool directly, with no thread hand-off for the GIL. Errors about `x` name `X`.
    fn run_locked<R: Send>(
        &self,
        py: Python<'_>,
        long: bool,
        f: impl FnOnce(&mut Policy, &Control) -> crate::error::Result<R> + Send,
    ) -> PyResult<R> {
        let mut g = self.lock(py);
        let p = &mut g.policy;
        if long {
            run_long(py, None, None, |ctl| f(p, ctl).map_err(big_x))
        } else {
            guarded_pool(py, || f(p, &Control::new()).map_err(big_x))
        }
    }

    fn dims(&self, py: Python<'_>) -> (usize, usize, usize) {
        let g = self.lock(py);
        let c = g.policy.config();
        (c.n_actions, c.n_features, c.n_action_features)
    }
}

fn parse_algo(algo: &str, alpha: f64, v: f64, epsilon: f64) -> PyResult<Algo> {
    Ok(match algo {
        "linucb" => Algo::LinUcb { alpha },
        "lints" => Algo::LinTs { v },
        "logistic_ts" => Algo::LogisticTs { v },
        "epsilon_greedy" => Algo::EpsilonGreedy { epsilon },
        _ => {
            return Err(PyValueError::new_err(format!(
            "algo: must be one of 'linucb', 'lints', 'logistic_ts', 'epsilon_greedy', got {algo:?}"
        )))
        }
    })
}

/// The slices of a decision/update call's rows: shared context `x` (named `arg`) and the optional
/// per-action features.
fn rows_view<'a>(
    x: &'a PyReadonlyArrayDyn<'_, f64>,
    xa: &'a Option<PyReadonlyArrayDyn<'_, f64>>,
    arg: &str,
) -> PyResult<Rows<'a>> {
    Ok(Rows {
        x: slice(x, arg)?,
        xa: xa
            .as_ref()
            .map(|a| slice(a, "action_features"))
            .transpose()?,
    })
}

/// Shape checks of the 2-d rows `x` (n x d) and optional 3-d `action_features` (n x K x k).
fn batch_rows<'py>(
    x: &Bound<'py, PyAny>,
    xa: Option<&Bound<'py, PyAny>>,
    dims: (usize, usize, usize),
) -> PyResult<(
    PyReadonlyArrayDyn<'py, f64>,
    Option<PyReadonlyArrayDyn<'py, f64>>,
    usize,
)> {
    let (na, d, k) = dims;
    let xr = array::<f64>(x, "X", 2, "float64")?;
    let sh = xr.shape().to_vec();
    if sh[1] != d {
        return Err(PyValueError::new_err(format!(
            "X: expected shape (n, {d}), got {sh:?}"
        )));
    }
    let n = sh[0];
    let xar = match xa {
        None => None,
        Some(o) => {
            // (n, K, k) per row, or (K, k) shared by every row.
            let shared = o
                .py()
                .import("numpy")?
                .call_method1("ndim", (o,))?
                .extract::<usize>()?
                == 2;
            let r = array::<f64>(o, "action_features", if shared { 2 } else { 3 }, "float64")?;
            let s = r.shape();
            if (shared && s != [na, k]) || (!shared && s != [n, na, k]) {
                return Err(PyValueError::new_err(format!(
                    "action_features: expected shape ({n}, {na}, {k}) or ({na}, {k}), got {s:?}"
                )));
            }
            Some(r)
        }
    };
    Ok((xr, xar, n))
}

fn single_rows<'py>(
    x: &Bound<'py, PyAny>,
    xa: Option<&Bound<'py, PyAny>>,
    dims: (usize, usize, usize),
) -> PyResult<(
    PyReadonlyArrayDyn<'py, f64>,
    Option<PyReadonlyArrayDyn<'py, f64>>,
)> {
    let (na, d, k) = dims;
    let xr = array::<f64>(x, "x", 1, "float64")?;
    if xr.shape()[0] != d {
        return Err(PyValueError::new_err(format!(
            "x: expected shape ({d},), got {:?}",
            xr.shape()
        )));
    }
    let xar = match xa {
        None => None,
        Some(o) => {
            let r = array::<f64>(o, "action_features", 2, "float64")?;
            if r.shape() != [na, k] {
                return Err(PyValueError::new_err(format!(
                    "action_features: expected shape ({na}, {k}), got {:?}",
                    r.shape()
                )));
            }
            Some(r)
        }
    };
    Ok((xr, xar))
}

#[pymethods]
impl RealtimePolicy {
    #[new]
    #[pyo3(signature = (algo, n_actions, n_features, *, n_action_features=None, alpha=None, v=None, epsilon=None, ridge=None, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        algo: &str,
        n_actions: &Bound<'_, PyAny>,
        n_features: &Bound<'_, PyAny>,
        n_action_features: Option<&Bound<'_, PyAny>>,
        alpha: Option<&Bound<'_, PyAny>>,
        v: Option<&Bound<'_, PyAny>>,
        epsilon: Option<&Bound<'_, PyAny>>,
        ridge: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let real_or = |o: Option<&Bound<'_, PyAny>>, name: &str, default: f64| {
            o.map_or(Ok(default), |o| real_arg(o, name))
        };
        let cfg = Config {
            algo: parse_algo(
                algo,
                real_or(alpha, "alpha", 1.0)?,
                real_or(v, "v", 1.0)?,
                real_or(epsilon, "epsilon", 0.1)?,
            )?,
            n_actions: int_arg(n_actions, "n_actions", 1)?,
            n_features: int_arg(n_features, "n_features", 0)?,
            n_action_features: n_action_features
                .map_or(Ok(0), |o| int_arg(o, "n_action_features", 0))?,
            ridge: real_or(ridge, "ridge", 1.0)?,
            seed: seed.map_or(Ok(0), |o| int_arg(o, "seed", 0))?,
        };
        let policy = guarded(py, || Policy::new(cfg))?;
        Ok(RealtimePolicy {
            inner: Mutex::new(Inner {
                policy,
                scratch: Vec::new(),
            }),
        })
    }

    /// Chooses one action for the context `x` (n_features,).
    #[pyo3(signature = (x, action_features=None))]
    fn choose(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        action_features: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let dims = self.dims(py);
        let (xr, xar) = single_rows(x, action_features, dims)?;
        let rows = rows_view(&xr, &xar, "x")?;
        let mut g = self.lock(py);
        let Inner { policy, scratch } = &mut *g;
        policy.choose_one(&rows, scratch).map_err(to_pyerr)
    }

    /// The decision index of every action for one context (UCB, posterior sample or greedy
    /// mean); counts as a decision (advances the random stream).
    #[pyo3(signature = (x, action_features=None))]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        action_features: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let dims = self.dims(py);
        let (xr, xar) = single_rows(x, action_features, dims)?;
        let rows = rows_view(&xr, &xar, "x")?;
        let mut out = vec![0.0; dims.0];
        let mut g = self.lock(py);
        let Inner { policy, scratch } = &mut *g;
        policy
            .scores_one(&rows, &mut out, scratch)
            .map_err(to_pyerr)?;
        drop(g);
        Ok(out.into_pyarray(py))
    }

    /// Chooses an action for every row of `X` (n, n_features). `hallucinate=True` decides the
    /// rows one after another, counting earlier rows of the batch as observed in the confidence
    /// widths (less regret from batching; sequential).
    #[pyo3(signature = (X, action_features=None, hallucinate=None))]
    #[allow(non_snake_case)]
    fn choose_batch<'py>(
        &self,
        py: Python<'py>,
        X: &Bound<'py, PyAny>,
        action_features: Option<&Bound<'py, PyAny>>,
        hallucinate: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let hallucinate = hallucinate.map_or(Ok(false), |o| bool_arg(o, "hallucinate"))?;
        let dims = self.dims(py);
        let (xr, xar, n) = batch_rows(X, action_features, dims)?;
        let rows = rows_view(&xr, &xar, "X")?;
        // X may have no columns (n_features=0): its rows cost nothing, this output does.
        let mut out = crate::error::try_vec("X", n, 0i64).map_err(to_pyerr)?;
        if hallucinate {
            self.run_locked(py, n >= LONG_ROWS / 4, |p, ctl| {
                p.choose_batch_hallucinated(&rows, n, &mut out, ctl)
            })?;
        } else {
            self.run_locked(py, n >= LONG_ROWS, |p, ctl| {
                p.choose_batch(&rows, n, &mut out, ctl)
            })?;
        }
        Ok(out.into_pyarray(py))
    }

    /// Decision indices of every action for every row (n, n_actions); counts as n decisions.
    #[pyo3(signature = (X, action_features=None))]
    #[allow(non_snake_case)]
    fn scores_batch<'py>(
        &self,
        py: Python<'py>,
        X: &Bound<'py, PyAny>,
        action_features: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let dims = self.dims(py);
        let (xr, xar, n) = batch_rows(X, action_features, dims)?;
        let rows = rows_view(&xr, &xar, "X")?;
        let mut out = out_rows(n, dims.0)?;
        self.run_locked(py, n >= LONG_ROWS, |p, ctl| {
            p.scores_batch(&rows, n, &mut out, ctl)
        })?;
        out.into_pyarray(py).reshape(vec![n, dims.0])
    }

    /// Probability of each action for each row (n, n_actions) under the current policy, for
    /// logging propensities (exact for LinUCB and epsilon-greedy; Monte Carlo with `n_samples`
    /// draws for the Thompson samplers). Does not change the policy.
    #[pyo3(signature = (X, action_features=None, n_samples=None))]
    #[allow(non_snake_case)]
    fn probabilities<'py>(
        &self,
        py: Python<'py>,
        X: &Bound<'py, PyAny>,
        action_features: Option<&Bound<'py, PyAny>>,
        n_samples: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let n_samples: usize = n_samples.map_or(Ok(1000), |o| int_arg(o, "n_samples", 1))?;
        let dims = self.dims(py);
        let (xr, xar, n) = batch_rows(X, action_features, dims)?;
        let rows = rows_view(&xr, &xar, "X")?;
        let mut out = out_rows(n, dims.0)?;
        self.run_locked(py, true, |p, ctl| {
            p.probabilities(&rows, n, n_samples, &mut out, ctl)
        })?;
        out.into_pyarray(py).reshape(vec![n, dims.0])
    }

    /// Learns from one event.
    #[pyo3(signature = (x, action, reward, action_features=None))]
    fn update(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        action: &Bound<'_, PyAny>,
        reward: &Bound<'_, PyAny>,
        action_features: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let dims = self.dims(py);
        // Out of the i64 range: the core's message for an action out of range.
        let action: i64 = int_arg(action, "action", i64::MIN as i128).map_err(|e| {
            if e.is_instance_of::<PyValueError>(py) {
                PyValueError::new_err(format!(
                    "action: must be in [0, {}), got {}",
                    dims.0,
                    action.str().map_or_else(|_| "?".into(), |s| s.to_string())
                ))
            } else {
                e
            }
        })?;
        let reward = real_arg(reward, "reward")?;
        let (xr, xar) = single_rows(x, action_features, dims)?;
        let rows = rows_view(&xr, &xar, "x")?;
        let mut g = self.lock(py);
        g.policy
            .update_batch(&rows, &[action], &[reward])
            .map_err(|e| match e {
                crate::error::CoreError::Invalid { arg, msg } => {
                    to_pyerr(crate::error::CoreError::invalid(
                        if arg == "actions" {
                            "action".into()
                        } else if arg == "rewards" {
                            "reward".into()
                        } else {
                            arg
                        },
                        msg.replace(" at position 0", ""),
                    ))
                }
                e => to_pyerr(e),
            })
    }

    /// Learns from events (X[i], actions[i], rewards[i]); same state as updating one by one.
    #[pyo3(signature = (X, actions, rewards, action_features=None))]
    #[allow(non_snake_case)]
    fn update_batch(
        &self,
        py: Python<'_>,
        X: &Bound<'_, PyAny>,
        actions: &Bound<'_, PyAny>,
        rewards: &Bound<'_, PyAny>,
        action_features: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let dims = self.dims(py);
        let (xr, xar, n) = batch_rows(X, action_features, dims)?;
        let ar = array::<i64>(actions, "actions", 1, "int64")?;
        let rr = array::<f64>(rewards, "rewards", 1, "float64")?;
        let (a, r) = (slice(&ar, "actions")?, slice(&rr, "rewards")?);
        if a.len() != n {
            return Err(PyValueError::new_err(format!(
                "actions: has length {}, expected {n} (the number of rows of X)",
                a.len()
            )));
        }
        let rows = rows_view(&xr, &xar, "X")?;
        self.run_locked(py, n >= LONG_ROWS, |p, ctl| {
            p.update_batch_ctl(&rows, a, r, ctl)
        })
    }

    /// The versioned state (bytes) of the policy.
    fn _state_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = guarded_gil(|| self.lock(py).policy.to_bytes())?;
        Ok(PyBytes::new(py, &b))
    }

    /// Replaces the state by one read from `data` (`StateError` if unreadable or of another
    /// algorithm).
    fn _set_state_bytes(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let p = guarded(py, || Policy::from_bytes(data))?;
        let mut g = self.lock(py);
        if p.config().algo.name() != g.policy.config().algo.name() {
            return Err(to_pyerr(crate::error::CoreError::State(format!(
                "expected a {} state, found a {} state",
                g.policy.config().algo.name(),
                p.config().algo.name()
            ))));
        }
        g.policy = p;
        Ok(())
    }

    /// Constructor parameters.
    fn get_params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = self.lock(py);
        let c = g.policy.config().clone();
        drop(g);
        let d = PyDict::new(py);
        d.set_item("n_actions", c.n_actions)?;
        d.set_item("n_features", c.n_features)?;
        d.set_item("n_action_features", c.n_action_features)?;
        match c.algo {
            Algo::LinUcb { alpha } => d.set_item("alpha", alpha)?,
            Algo::LinTs { v } | Algo::LogisticTs { v } => d.set_item("v", v)?,
            Algo::EpsilonGreedy { epsilon } => d.set_item("epsilon", epsilon)?,
        }
        d.set_item("ridge", c.ridge)?;
        d.set_item("seed", c.seed)?;
        Ok(d)
    }

    #[getter]
    fn algo(&self, py: Python<'_>) -> &'static str {
        self.lock(py).policy.config().algo.name()
    }
    #[getter]
    fn n_actions(&self, py: Python<'_>) -> usize {
        self.dims(py).0
    }
    #[getter]
    fn n_features(&self, py: Python<'_>) -> usize {
        self.dims(py).1
    }
    #[getter]
    fn n_action_features(&self, py: Python<'_>) -> usize {
        self.dims(py).2
    }
    /// Events learned per action.
    #[getter]
    fn counts_<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        let v = self.lock(py).policy.counts().to_vec();
        v.into_pyarray(py)
    }
    #[getter]
    fn n_updates_(&self, py: Python<'_>) -> u64 {
        self.lock(py).policy.n_updates()
    }
    #[getter]
    fn n_decisions_(&self, py: Python<'_>) -> u64 {
        self.lock(py).policy.n_decisions()
    }
    /// Per-action mean coefficients (n_actions, n_features + n_action_features).
    #[getter]
    fn theta_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let g = self.lock(py);
        let (k, dd) = (g.policy.n_actions(), g.policy.dim());
        let v = g.policy.theta().to_vec();
        drop(g);
        v.into_pyarray(py).reshape(vec![k, dd])
    }
    /// Per-action inverse precision matrices `A^{-1}` (n_actions, D, D).
    #[getter]
    fn a_inv_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let g = self.lock(py);
        let (k, dd) = (g.policy.n_actions(), g.policy.dim());
        let v = g.policy.a_inv().to_vec();
        drop(g);
        v.into_pyarray(py).reshape(vec![k, dd, dd])
    }
}
