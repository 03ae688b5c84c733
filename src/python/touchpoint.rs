//! Bindings of the `touchpoint` core. Names on `_core` are prefixed by the module.

use super::allocate::certificate;
use super::{run_long, slice1};
use crate::touchpoint::plan::{self, ChannelSpec, Curves, Layout, PlanOptions, Users};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(touchpoint_plan, m)?)?;
    m.add_function(wrap_pyfunction!(touchpoint_schedule, m)?)?;
    m.add_function(wrap_pyfunction!(touchpoint_lay_out, m)?)?;
    m.add_function(wrap_pyfunction!(touchpoint_allowed_levels, m)?)?;
    Ok(())
}

/// Channel rules as tuples `(name, unit_cost, daily_cap, weekly_cap, capacity, optout_cost)`
/// (`weekly_cap` `None`: no weekly cap).
type ChannelTuple = (String, f64, u32, Option<u32>, f64, f64);

/// Plans off-site exposure frequencies (see `touchpoint::plan`); returns a dict with the
/// per-user `channel` (255: none), `level`, `offset`, `consecutive`, `value`, the daily loads
/// (`n_channels x days`), the resource names and upper bounds, and the solver's certificate.
#[pyfunction]
#[pyo3(signature = (levels, incremental, optout, n_groups, group, value, reach, channels, days,
    budget, min_frequency=0, tol=1e-4, max_iter=500, seed=0, progress=None))]
#[allow(clippy::too_many_arguments)]
fn touchpoint_plan<'py>(
    py: Python<'py>,
    levels: PyReadonlyArray1<'py, u32>,
    incremental: PyReadonlyArray1<'py, f64>,
    optout: PyReadonlyArray1<'py, f64>,
    n_groups: usize,
    group: PyReadonlyArray1<'py, u32>,
    value: PyReadonlyArray1<'py, f64>,
    reach: PyReadonlyArray1<'py, u8>,
    channels: Vec<ChannelTuple>,
    days: u32,
    budget: f64,
    min_frequency: u32,
    tol: f64,
    max_iter: usize,
    seed: u64,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    if !(tol.is_finite() && tol > 0.0) {
        return Err(PyValueError::new_err(format!(
            "tol: must be a positive number, got {tol}"
        )));
    }
    let specs: Vec<ChannelSpec> = channels
        .into_iter()
        .map(
            |(name, unit_cost, daily_cap, weekly, capacity, optout_cost)| ChannelSpec {
                name,
                unit_cost,
                daily_cap,
                weekly_cap: weekly.unwrap_or(u32::MAX),
                capacity,
                optout_cost,
            },
        )
        .collect();
    let curves = Curves {
        n_groups,
        levels: slice1("levels", &levels)?,
        incremental: slice1("incremental", &incremental)?,
        optout: slice1("optout", &optout)?,
    };
    let users = Users {
        group: slice1("group", &group)?,
        value: slice1("value", &value)?,
        reach: slice1("reach", &reach)?,
    };
    let opts = PlanOptions {
        days,
        budget,
        min_frequency,
        tol,
        max_iter,
        seed,
    };
    let p = run_long(py, progress, None, |ctl| {
        plan::plan(&curves, &users, &specs, &opts, ctl)
    })?;
    let d = PyDict::new(py);
    d.set_item("channel", PyArray1::from_vec(py, p.channel))?;
    d.set_item("level", PyArray1::from_vec(py, p.level))?;
    d.set_item(
        "offset",
        PyArray1::from_vec(py, p.layout.iter().map(|l| l.offset).collect()),
    )?;
    d.set_item(
        "consecutive",
        PyArray1::from_vec(py, p.layout.iter().map(|l| l.consecutive).collect()),
    )?;
    d.set_item("value", PyArray1::from_vec(py, p.value))?;
    d.set_item("daily_load", PyArray1::from_vec(py, p.daily_load))?;
    d.set_item("names", p.names)?;
    d.set_item("upper", p.upper)?;
    d.set_item("n_candidates", p.n_candidates)?;
    certificate(&d, p.solved)?;
    Ok(d)
}

/// One row per exposure: `(user index, channel, day index)`.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn touchpoint_schedule<'py>(
    py: Python<'py>,
    channel: PyReadonlyArray1<'py, u8>,
    level: PyReadonlyArray1<'py, u32>,
    offset: PyReadonlyArray1<'py, u16>,
    consecutive: PyReadonlyArray1<'py, bool>,
    days: u32,
) -> PyResult<(
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<u8>>,
    Bound<'py, PyArray1<u32>>,
)> {
    let (c, l) = (slice1("channel", &channel)?, slice1("level", &level)?);
    let (o, k) = (
        slice1("offset", &offset)?,
        slice1("consecutive", &consecutive)?,
    );
    crate::error::check_len("offset", o.len(), c.len(), "channel").map_err(super::to_pyerr)?;
    crate::error::check_len("consecutive", k.len(), c.len(), "channel").map_err(super::to_pyerr)?;
    let layout: Vec<Layout> = o
        .iter()
        .zip(k)
        .map(|(&offset, &consecutive)| Layout {
            offset,
            consecutive,
        })
        .collect();
    let (u, ch, d) = run_long(py, None, None, |_| plan::schedule(c, l, &layout, days))?;
    Ok((
        PyArray1::from_vec(py, u),
        PyArray1::from_vec(py, ch),
        PyArray1::from_vec(py, d),
    ))
}

fn specs(channels: Vec<ChannelTuple>) -> Vec<ChannelSpec> {
    channels
        .into_iter()
        .map(
            |(name, unit_cost, daily_cap, weekly, capacity, optout_cost)| ChannelSpec {
                name,
                unit_cost,
                daily_cap,
                weekly_cap: weekly.unwrap_or(u32::MAX),
                capacity,
                optout_cost,
            },
        )
        .collect()
}

/// Which levels each channel may use within its caps: bool array `n_channels x n_levels`.
#[pyfunction]
fn touchpoint_allowed_levels<'py>(
    py: Python<'py>,
    levels: Vec<u32>,
    channels: Vec<ChannelTuple>,
    days: u32,
    min_frequency: u32,
) -> PyResult<Bound<'py, PyArray1<bool>>> {
    if days == 0 {
        return Err(PyValueError::new_err("horizon_days: must be >= 1, got 0"));
    }
    let a = plan::allowed_levels(&levels, &specs(channels), days, min_frequency);
    Ok(PyArray1::from_vec(py, a))
}

/// The layout of given per-user levels (`offset`, `consecutive`, daily loads).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn touchpoint_lay_out<'py>(
    py: Python<'py>,
    channel: PyReadonlyArray1<'py, u8>,
    level: PyReadonlyArray1<'py, u32>,
    n_channels: usize,
    days: u32,
) -> PyResult<(
    Bound<'py, PyArray1<u16>>,
    Bound<'py, PyArray1<bool>>,
    Bound<'py, PyArray1<u64>>,
)> {
    let (c, l) = (slice1("channel", &channel)?, slice1("level", &level)?);
    crate::error::check_len("level", l.len(), c.len(), "channel").map_err(super::to_pyerr)?;
    if days == 0 || days > u16::MAX as u32 {
        return Err(PyValueError::new_err(format!(
            "horizon_days: must be in 1..={}, got {days}",
            u16::MAX
        )));
    }
    if let Some(i) = c
        .iter()
        .position(|&x| x != plan::NONE && x as usize >= n_channels)
    {
        return Err(PyValueError::new_err(format!(
            "channel: code {} at position {i} is not a channel (0..{n_channels})",
            c[i]
        )));
    }
    let (layout, load) = plan::lay_out(c, l, n_channels, days);
    Ok((
        PyArray1::from_vec(py, layout.iter().map(|x| x.offset).collect()),
        PyArray1::from_vec(py, layout.iter().map(|x| x.consecutive).collect()),
        PyArray1::from_vec(py, load),
    ))
}
