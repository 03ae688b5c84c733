//! The offline policy evaluation binding: IPS, SNIPS, DM, DR and switch-DR estimates and their
//! bootstrap.

use super::slice;
use crate::python::args::{int_arg, real_arg};
use crate::python::run_long;
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn};
use pyo3::prelude::*;

type Est = (usize, Vec<f64>, Vec<f64>, f64, f64);

/// The logged data of an OPE call as slices (shared by evaluate and bootstrap).
#[allow(clippy::too_many_arguments)]
fn logged<'a>(
    actions: &'a PyReadonlyArrayDyn<'_, i64>,
    rewards: &'a PyReadonlyArrayDyn<'_, f64>,
    propensities: &'a PyReadonlyArrayDyn<'_, f64>,
    action_probs: &'a PyReadonlyArrayDyn<'_, f64>,
    q_hat: Option<&'a PyReadonlyArrayDyn<'_, f64>>,
    positions: Option<&'a PyReadonlyArrayDyn<'_, i64>>,
    n_actions: usize,
    n_positions: usize,
) -> PyResult<crate::realtime::ope::Logged<'a>> {
    Ok(crate::realtime::ope::Logged {
        actions: slice(actions, "actions")?,
        rewards: slice(rewards, "rewards")?,
        pscore: slice(propensities, "propensities")?,
        pi_e: slice(action_probs, "action_probs")?,
        q: q_hat.map(|q| slice(q, "q_hat")).transpose()?,
        positions: positions.map(|p| slice(p, "positions")).transpose()?,
        n_actions,
        n_positions,
    })
}

/// IPS, SNIPS, DM, DR, switch-DR in one pass: (n, values, stds, mean weight, max weight).
/// `action_probs` and `q_hat` are contiguous (n, n_actions, n_positions) float64 arrays (any
/// ndim whose size matches), `positions` int64 or None.
#[pyfunction]
#[pyo3(signature = (actions, rewards, propensities, action_probs, q_hat, positions, n_actions, n_positions, clip, switch_tau))]
#[allow(clippy::too_many_arguments)]
pub(super) fn realtime_ope_evaluate(
    py: Python<'_>,
    actions: PyReadonlyArrayDyn<'_, i64>,
    rewards: PyReadonlyArrayDyn<'_, f64>,
    propensities: PyReadonlyArrayDyn<'_, f64>,
    action_probs: PyReadonlyArrayDyn<'_, f64>,
    q_hat: Option<PyReadonlyArrayDyn<'_, f64>>,
    positions: Option<PyReadonlyArrayDyn<'_, i64>>,
    n_actions: usize,
    n_positions: usize,
    clip: &Bound<'_, PyAny>,
    switch_tau: &Bound<'_, PyAny>,
) -> PyResult<Est> {
    let (clip, switch_tau) = (
        real_arg(clip, "clip")?,
        real_arg(switch_tau, "switch_threshold")?,
    );
    let l = logged(
        &actions,
        &rewards,
        &propensities,
        &action_probs,
        q_hat.as_ref(),
        positions.as_ref(),
        n_actions,
        n_positions,
    )?;
    let p = crate::realtime::ope::Params { clip, switch_tau };
    let e = run_long(py, None, None, |ctl| {
        crate::realtime::ope::evaluate(&l, &p, ctl)
    })?;
    Ok((
        e.n,
        e.value.to_vec(),
        e.std.to_vec(),
        e.mean_weight,
        e.max_weight,
    ))
}

/// Bootstrap means (n_boot, 5) of the five estimators (resampling rounds; seeded per sample).
#[pyfunction]
#[pyo3(signature = (actions, rewards, propensities, action_probs, q_hat, positions, n_actions, n_positions, clip, switch_tau, n_boot, seed, mean_weight))]
#[allow(clippy::too_many_arguments)]
pub(super) fn realtime_ope_bootstrap<'py>(
    py: Python<'py>,
    actions: PyReadonlyArrayDyn<'_, i64>,
    rewards: PyReadonlyArrayDyn<'_, f64>,
    propensities: PyReadonlyArrayDyn<'_, f64>,
    action_probs: PyReadonlyArrayDyn<'_, f64>,
    q_hat: Option<PyReadonlyArrayDyn<'_, f64>>,
    positions: Option<PyReadonlyArrayDyn<'_, i64>>,
    n_actions: usize,
    n_positions: usize,
    clip: &Bound<'_, PyAny>,
    switch_tau: &Bound<'_, PyAny>,
    n_boot: &Bound<'_, PyAny>,
    seed: &Bound<'_, PyAny>,
    mean_weight: f64,
) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    let (clip, switch_tau) = (
        real_arg(clip, "clip")?,
        real_arg(switch_tau, "switch_threshold")?,
    );
    let (n_boot, seed): (usize, u64) = (
        int_arg(n_boot, "n_bootstrap", 1)?,
        int_arg(seed, "seed", 0)?,
    );
    let l = logged(
        &actions,
        &rewards,
        &propensities,
        &action_probs,
        q_hat.as_ref(),
        positions.as_ref(),
        n_actions,
        n_positions,
    )?;
    let p = crate::realtime::ope::Params { clip, switch_tau };
    let v = run_long(py, None, None, |ctl| {
        crate::realtime::ope::bootstrap(&l, &p, n_boot, seed, mean_weight, ctl)
    })?;
    v.into_pyarray(py).reshape(vec![n_boot, 5])
}
