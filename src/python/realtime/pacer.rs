//! The budget pacing binding: `RealtimePacer`, the dual pacing core behind
//! `growthmachine.realtime.BudgetPacer`.

use super::slice;
use crate::python::args::{int_arg, real_arg};
use crate::python::{guarded, guarded_gil, to_pyerr};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::{Mutex, MutexGuard};

/// The dual pacing core behind `growthmachine.realtime.BudgetPacer`.
#[pyclass(module = "growthmachine._core", frozen)]
pub struct RealtimePacer {
    inner: Mutex<crate::realtime::pacer::Pacer>,
}

impl RealtimePacer {
    fn lock(&self) -> MutexGuard<'_, crate::realtime::pacer::Pacer> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl RealtimePacer {
    #[new]
    #[pyo3(signature = (n_actions, budget, horizon, step, null_action, max_ahead=None))]
    fn new(
        py: Python<'_>,
        n_actions: &Bound<'_, PyAny>,
        budget: PyReadonlyArrayDyn<'_, f64>,
        horizon: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        null_action: &Bound<'_, PyAny>,
        max_ahead: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let args = (
            int_arg(n_actions, "n_actions", 1)?,
            slice(&budget, "budget")?,
            int_arg(horizon, "horizon", 1)?,
            real_arg(step, "step")?,
            int_arg(null_action, "null_action", 0)?,
        );
        let mut p = guarded(py, || {
            crate::realtime::pacer::Pacer::new(args.0, args.1, args.2, args.3, args.4)
        })?;
        let max_ahead = max_ahead.map_or(Ok(f64::INFINITY), |o| real_arg(o, "max_ahead"))?;
        p.set_max_ahead(max_ahead).map_err(to_pyerr)?;
        Ok(RealtimePacer {
            inner: Mutex::new(p),
        })
    }

    /// Decides n events from their values (n, K) and costs (K*m or n*K*m values).
    fn decide<'py>(
        &self,
        py: Python<'py>,
        values: PyReadonlyArrayDyn<'py, f64>,
        costs: PyReadonlyArrayDyn<'py, f64>,
        n: usize,
        charge: bool,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let v = slice(&values, "values")?;
        let c = slice(&costs, "costs")?;
        let mut out = crate::error::try_vec("n", n, 0i64).map_err(to_pyerr)?;
        guarded(py, || self.lock().decide(v, c, n, charge, &mut out))?;
        Ok(out.into_pyarray(py))
    }

    /// Charges revealed costs, one row of m values per event: for the decisions numbered `ids`
    /// if given, else for the oldest outstanding decisions.
    #[pyo3(signature = (costs, ids=None))]
    fn charge(
        &self,
        py: Python<'_>,
        costs: PyReadonlyArrayDyn<'_, f64>,
        ids: Option<PyReadonlyArrayDyn<'_, i64>>,
    ) -> PyResult<()> {
        let c = slice(&costs, "cost")?;
        let idv = match &ids {
            Some(i) => Some(slice(i, "ids")?),
            None => None,
        };
        guarded(py, || {
            use crate::error::CoreError;
            crate::error::check_nonnegative("cost", c)?;
            let mut g = self.lock();
            let m = g.n_resources();
            let rows = c.len() / m.max(1);
            if rows * m != c.len() {
                return Err(CoreError::invalid(
                    "cost",
                    format!("has {} values, expected rows of {m}", c.len()),
                ));
            }
            // Everything is checked before the first charge: a refused call changes nothing.
            match idv {
                Some(idv) => {
                    if idv.len() != rows {
                        return Err(CoreError::invalid(
                            "ids",
                            "must have one id per row of costs",
                        ));
                    }
                    let mut seen = std::collections::HashSet::new();
                    for &id in idv {
                        if id < 0 || !g.is_pending(id as u64) || !seen.insert(id) {
                            return Err(CoreError::invalid(
                                "ids",
                                format!(
                                    "decision {id} is not awaiting its cost (unknown, repeated \
                                     or charged already)"
                                ),
                            ));
                        }
                    }
                }
                None if rows > g.n_pending() => {
                    return Err(CoreError::invalid(
                        "cost",
                        format!(
                            "{rows} costs given, but only {} decisions are awaiting their cost \
                             (each decision is charged exactly once)",
                            g.n_pending()
                        ),
                    ))
                }
                None => {}
            }
            for (r, row) in c.chunks(m).enumerate() {
                match idv {
                    Some(idv) => g.charge_id(idv[r] as u64, row)?,
                    None => g.charge(row)?,
                }
            }
            Ok(())
        })
    }

    #[getter]
    fn price<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.lock().price().to_vec().into_pyarray(py)
    }
    #[getter]
    fn spend<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.lock().spend().to_vec().into_pyarray(py)
    }
    #[getter]
    fn budget<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.lock().budget().to_vec().into_pyarray(py)
    }
    #[getter]
    fn n_events(&self) -> u64 {
        self.lock().n_events()
    }
    #[getter]
    fn horizon(&self) -> u64 {
        self.lock().horizon()
    }
    #[getter]
    fn n_actions(&self) -> usize {
        self.lock().n_actions()
    }
    #[getter]
    fn null_action(&self) -> usize {
        self.lock().null_action()
    }
    fn _state_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = guarded_gil(|| self.lock().to_bytes())?;
        Ok(PyBytes::new(py, &b))
    }
    #[staticmethod]
    fn _from_state_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let p = guarded(py, || crate::realtime::pacer::Pacer::from_bytes(data))?;
        Ok(RealtimePacer {
            inner: Mutex::new(p),
        })
    }
}
