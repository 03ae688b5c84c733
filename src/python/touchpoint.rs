//! Bindings of the `touchpoint` core. Names on `_core` are prefixed by the module.
//!
//! `TouchpointResponse` holds the counts and the fit of `touchpoint::response` (see
//! `growthmachine.touchpoint.ResponseModel`); logs come as contiguous arrays (uint32 codes and
//! exposures, float64 outcomes and weights). It pickles through `_state_bytes` /
//! `_from_state_bytes`. `touchpoint_plan` runs the frequency planner (`touchpoint::plan`) and
//! returns its certificate like `allocate_run`.

use super::allocate::certificate;
use super::{guarded, guarded_gil, run_long, slice1, slice2, to_pyerr};
use crate::touchpoint::height::Height;
use crate::touchpoint::plan::{self, ChannelSpec, Curves, Layout, PlanOptions, Users};
use crate::touchpoint::response::{
    Counts, Log, Prior, Response, TouchLayout, NO, N_PARAMS, PARAM_NAMES,
};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TouchpointResponse>()?;
    m.add_class::<TouchpointHeight>()?;
    m.add_function(wrap_pyfunction!(touchpoint_plan, m)?)?;
    m.add_function(wrap_pyfunction!(touchpoint_schedule, m)?)?;
    m.add_function(wrap_pyfunction!(touchpoint_lay_out, m)?)?;
    m.add_function(wrap_pyfunction!(touchpoint_allowed_levels, m)?)?;
    Ok(())
}

type Arr<'py, D> = Bound<'py, numpy::PyArray<f64, D>>;
type Arr3<'py> = Arr<'py, numpy::Ix3>;
type Arr1<'py> = Bound<'py, PyArray1<f64>>;

/// A fitted response model: counts of every log seen and the fit made from them.
#[pyclass(module = "growthmachine._core", frozen)]
pub struct TouchpointResponse {
    inner: Response,
}

fn shaped<'py, T: numpy::Element, const N: usize>(
    py: Python<'py>,
    v: Vec<T>,
    shape: [usize; N],
) -> PyResult<Bound<'py, numpy::PyArray<T, numpy::ndarray::Dim<[usize; N]>>>>
where
    [usize; N]: numpy::ndarray::IntoDimension<Dim = numpy::ndarray::Dim<[usize; N]>>,
    numpy::ndarray::Dim<[usize; N]>: numpy::ndarray::Dimension,
{
    PyArray1::from_vec(py, v).reshape(shape)
}

#[pymethods]
impl TouchpointResponse {
    /// Aggregates the log, adds the counts of `previous` (if given) and fits. `horizon_days`:
    /// the log's exposures were laid out over that many days by the planner's layout, fatigue
    /// halving every `fatigue_halflife` days (the opt-out's fatigue load per level); `None`
    /// keeps `previous`'s layout (the quadratic load without one).
    #[staticmethod]
    #[pyo3(signature = (group, channel, exposures, converted, opted_out, weight, n_groups,
        n_channels, tau=None, previous=None, forget=1.0, progress=None, fatigue=None,
        horizon_days=None, fatigue_halflife=7.0, slope_prior=None))]
    #[allow(clippy::too_many_arguments)]
    fn fit<'py>(
        py: Python<'py>,
        group: PyReadonlyArray1<'py, u32>,
        channel: PyReadonlyArray1<'py, u32>,
        exposures: PyReadonlyArray1<'py, u32>,
        converted: PyReadonlyArray1<'py, f64>,
        opted_out: PyReadonlyArray1<'py, f64>,
        weight: Option<PyReadonlyArray1<'py, f64>>,
        n_groups: usize,
        n_channels: usize,
        tau: Option<Vec<f64>>,
        previous: Option<PyRef<'py, TouchpointResponse>>,
        forget: f64,
        progress: Option<&Bound<'py, PyAny>>,
        fatigue: Option<PyReadonlyArray1<'py, f64>>,
        horizon_days: Option<u32>,
        fatigue_halflife: f64,
        slope_prior: Option<(f64, f64)>,
    ) -> PyResult<Self> {
        let layout = horizon_days.map(|days| TouchLayout {
            days,
            halflife: fatigue_halflife,
        });
        if let Some(l) = &layout {
            l.validate().map_err(to_pyerr)?;
        }
        let tau = match tau {
            None => None,
            Some(t) => Some(<[f64; N_PARAMS]>::try_from(t.as_slice()).map_err(|_| {
                PyValueError::new_err(format!(
                    "tau: must hold {N_PARAMS} values (one per parameter), got {}",
                    t.len()
                ))
            })?),
        };
        let mut prior = Prior {
            tau,
            ..Prior::default()
        };
        if let Some((median, sd)) = slope_prior {
            prior = prior.with_slope(median, sd).map_err(to_pyerr)?;
        }
        prior.validate().map_err(to_pyerr)?;
        let log = Log {
            group: slice1("group", &group)?,
            channel: slice1("channel", &channel)?,
            exposures: slice1("exposures", &exposures)?,
            converted: slice1("converted", &converted)?,
            opted_out: slice1("opted_out", &opted_out)?,
            weight: weight.as_ref().map(|w| slice1("weight", w)).transpose()?,
            fatigue: fatigue.as_ref().map(|f| slice1("fatigue", f)).transpose()?,
        };
        let prev = previous.as_ref().map(|p| &p.inner);
        let inner = run_long(py, progress, None, |ctl| {
            let counts = Counts::aggregate(&log, n_groups, n_channels, ctl)?;
            Response::fit(prev, counts, prior, forget, layout, ctl)
        })?;
        Ok(TouchpointResponse { inner })
    }

    /// (incremental, lower, upper, opt-out), each `(n_groups, n_channels, n_levels)`; `z` is the
    /// normal quantile of the interval, `fatigue` the users' prior fatigue.
    #[pyo3(signature = (levels, z, fatigue=0.0))]
    fn curves<'py>(
        &self,
        py: Python<'py>,
        levels: PyReadonlyArray1<'py, f64>,
        z: f64,
        fatigue: f64,
    ) -> PyResult<(Arr3<'py>, Arr3<'py>, Arr3<'py>, Arr3<'py>)> {
        let lv = slice1("levels", &levels)?;
        let f = &self.inner.fit;
        let c = run_long(py, None, None, |ctl| f.curves(lv, z, fatigue, ctl))?;
        let s = [f.n_groups, f.n_channels, lv.len()];
        Ok((
            shaped(py, c.incremental, s)?,
            shaped(py, c.lower, s)?,
            shaped(py, c.upper, s)?,
            shaped(py, c.opt_out, s)?,
        ))
    }

    /// (incremental conversion, opt-out probability) per row; a group `>= n_groups` gets its
    /// channel's pooled curve.
    #[pyo3(signature = (group, channel, exposures, progress=None, fatigue=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        group: PyReadonlyArray1<'py, u32>,
        channel: PyReadonlyArray1<'py, u32>,
        exposures: PyReadonlyArray1<'py, f64>,
        progress: Option<&Bound<'py, PyAny>>,
        fatigue: Option<PyReadonlyArray1<'py, f64>>,
    ) -> PyResult<(Arr1<'py>, Arr1<'py>)> {
        let (g, c, n) = (
            slice1("segment", &group)?,
            slice1("channel", &channel)?,
            slice1("exposures", &exposures)?,
        );
        let fat = fatigue.as_ref().map(|f| slice1("fatigue", f)).transpose()?;
        let f = &self.inner.fit;
        let (inc, opt) = run_long(py, progress, None, |ctl| f.predict(g, c, n, fat, ctl))?;
        Ok((PyArray1::from_vec(py, inc), PyArray1::from_vec(py, opt)))
    }

    /// Natural parameters `(b, A, k, h, a, d)`, `(n_groups, n_channels, 6)`.
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Arr3<'py>> {
        let f = &self.inner.fit;
        shaped(py, f.params(), [f.n_groups, f.n_channels, N_PARAMS])
    }

    /// Natural parameters of the channel-level curves, `(n_channels, 6)`.
    #[getter]
    fn channel_params<'py>(&self, py: Python<'py>) -> PyResult<Arr<'py, numpy::Ix2>> {
        let f = &self.inner.fit;
        shaped(py, f.channel_params(), [f.n_channels, N_PARAMS])
    }

    /// Posterior covariance of every cell's opt-out parameters `(log a, log d)`, `(n_groups,
    /// n_channels, 4)` (row-major 2 x 2; a cell without data: a new segment's, as
    /// `channel_cov_opt`).
    #[getter]
    fn cov_opt<'py>(&self, py: Python<'py>) -> PyResult<Arr3<'py>> {
        let f = &self.inner.fit;
        shaped(py, f.cov_opt.clone(), [f.n_groups, f.n_channels, NO * NO])
    }

    /// Covariance of a new segment's opt-out parameters `(log a, log d)` per channel (the
    /// channel's posterior plus the segment spread), `(n_channels, 4)`.
    #[getter]
    fn channel_cov_opt<'py>(&self, py: Python<'py>) -> PyResult<Arr<'py, numpy::Ix2>> {
        let f = &self.inner.fit;
        shaped(py, f.channel_cov_opt.clone(), [f.n_channels, NO * NO])
    }

    /// Segment spread per channel and unconstrained parameter, `(n_channels, 6)`.
    #[getter]
    fn tau<'py>(&self, py: Python<'py>) -> PyResult<Arr<'py, numpy::Ix2>> {
        let f = &self.inner.fit;
        shaped(py, f.tau.clone(), [f.n_channels, N_PARAMS])
    }

    /// Weighted trials per cell, `(n_groups, n_channels)`.
    #[getter]
    fn trials<'py>(&self, py: Python<'py>) -> PyResult<Arr<'py, numpy::Ix2>> {
        let f = &self.inner.fit;
        shaped(py, f.trials.clone(), [f.n_groups, f.n_channels])
    }

    #[getter]
    fn has_data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, numpy::PyArray2<bool>>> {
        let f = &self.inner.fit;
        shaped(py, f.has_data.clone(), [f.n_groups, f.n_channels])
    }

    #[getter]
    fn converged<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, numpy::PyArray2<bool>>> {
        let f = &self.inner.fit;
        shaped(py, f.converged.clone(), [f.n_groups, f.n_channels])
    }

    #[getter]
    fn informed<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<bool>> {
        PyArray1::from_slice(py, &self.inner.fit.informed)
    }

    /// `(horizon_days, fatigue_halflife)` of the layout the opt-out's fatigue load is taken
    /// from, or `None` (the quadratic load).
    #[getter]
    fn layout(&self) -> Option<(u32, f64)> {
        self.inner.fit.layout.map(|l| (l.days, l.halflife))
    }

    /// Damping of the conversion's exposures by prior fatigue (`n / (1 + rate f)`).
    #[getter]
    fn fatigue_rate(&self) -> f64 {
        self.inner.fit.fatigue_rate
    }

    /// Posterior standard deviation of `log fatigue_rate` (0: not estimated).
    #[getter]
    fn fatigue_rate_sd(&self) -> f64 {
        self.inner.fit.fatigue_rate_sd
    }

    /// Share of the prior fatigue acting on the opt-out over the window.
    #[getter]
    fn fatigue_carry(&self) -> f64 {
        self.inner.fit.fatigue_carry
    }

    #[getter]
    fn n_obs(&self) -> u64 {
        self.inner.counts.n_obs()
    }

    #[getter]
    fn n_groups(&self) -> usize {
        self.inner.fit.n_groups
    }

    #[getter]
    fn n_channels(&self) -> usize {
        self.inner.fit.n_channels
    }

    #[staticmethod]
    fn param_names() -> Vec<&'static str> {
        PARAM_NAMES.to_vec()
    }

    fn _state_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = guarded_gil(|| self.inner.to_bytes())?;
        Ok(PyBytes::new(py, &b))
    }

    #[staticmethod]
    fn _from_state_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        Ok(TouchpointResponse {
            inner: guarded(py, || Response::from_bytes(data))?,
        })
    }
}

// --- the height model ---

/// A fitted height model (`touchpoint::height`): per-user multipliers of the curves' height from
/// observable features.
#[pyclass(module = "growthmachine._core", frozen)]
pub struct TouchpointHeight {
    inner: Height,
}

#[pymethods]
impl TouchpointHeight {
    /// Fits rows of `covariates` (`n x k`, C-contiguous), the curves' `incremental` conversion
    /// at each row's arm and the `residual` `y - b - incremental`, adding `previous`'s
    /// statistics scaled by `forget`.
    #[staticmethod]
    #[pyo3(signature = (covariates, incremental, residual, weight=None, previous=None,
        forget=1.0, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn fit<'py>(
        py: Python<'py>,
        covariates: PyReadonlyArray2<'py, f64>,
        incremental: PyReadonlyArray1<'py, f64>,
        residual: PyReadonlyArray1<'py, f64>,
        weight: Option<PyReadonlyArray1<'py, f64>>,
        previous: Option<PyRef<'py, TouchpointHeight>>,
        forget: f64,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let (x, _, k) = slice2("covariates", &covariates)?;
        let z = slice1("incremental", &incremental)?;
        let r = slice1("residual", &residual)?;
        let w = weight.as_ref().map(|w| slice1("weight", w)).transpose()?;
        let prev = previous.as_ref().map(|p| &p.inner);
        let inner = run_long(py, progress, None, |ctl| {
            Height::fit(prev, x, k, z, r, w, forget, ctl)
        })?;
        Ok(TouchpointHeight { inner })
    }

    /// Each row's height multiplier.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        covariates: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Arr1<'py>> {
        let (x, _, k) = slice2("covariates", &covariates)?;
        if k != self.inner.k {
            return Err(PyValueError::new_err(format!(
                "covariates: has {k} columns; the model was fitted with {}",
                self.inner.k
            )));
        }
        let h = &self.inner;
        let w = run_long(py, None, None, |ctl| h.predict(x, ctl))?;
        Ok(PyArray1::from_vec(py, w))
    }

    /// Height coefficient per standardised feature.
    #[getter]
    fn beta<'py>(&self, py: Python<'py>) -> Arr1<'py> {
        PyArray1::from_vec(py, self.inner.beta.clone())
    }

    /// Baseline coefficient per standardised feature.
    #[getter]
    fn gamma<'py>(&self, py: Python<'py>) -> Arr1<'py> {
        PyArray1::from_vec(py, self.inner.gamma.clone())
    }

    #[getter]
    fn mean<'py>(&self, py: Python<'py>) -> Arr1<'py> {
        PyArray1::from_vec(py, self.inner.mean.clone())
    }

    #[getter]
    fn sd<'py>(&self, py: Python<'py>) -> Arr1<'py> {
        PyArray1::from_vec(py, self.inner.sd.clone())
    }

    /// The prior precision chosen by the marginal likelihood.
    #[getter]
    fn precision(&self) -> f64 {
        self.inner.lambda
    }

    /// Weighted rows of the statistics.
    #[getter]
    fn n_rows(&self) -> f64 {
        self.inner.gram[0]
    }

    #[getter]
    fn k(&self) -> usize {
        self.inner.k
    }

    fn _state_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = guarded_gil(|| self.inner.to_bytes())?;
        Ok(PyBytes::new(py, &b))
    }

    #[staticmethod]
    fn _from_state_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        Ok(TouchpointHeight {
            inner: guarded(py, || Height::from_bytes(data))?,
        })
    }
}

// --- the frequency planner ---

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
    let specs = specs(channels);
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
    crate::error::check_len("offset", o.len(), c.len(), "channel").map_err(to_pyerr)?;
    crate::error::check_len("consecutive", k.len(), c.len(), "channel").map_err(to_pyerr)?;
    let layout: Vec<Layout> = o
        .iter()
        .zip(k)
        .map(|(&offset, &consecutive)| Layout {
            offset,
            consecutive,
        })
        .collect();
    let (u, ch, d) = run_long(py, None, None, |ctl| {
        plan::schedule(c, l, &layout, days, ctl)
    })?;
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
    let specs = specs(channels);
    let a = guarded(py, || {
        Ok(plan::allowed_levels(&levels, &specs, days, min_frequency))
    })?;
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
    crate::error::check_len("level", l.len(), c.len(), "channel").map_err(to_pyerr)?;
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
    let (layout, load) = run_long(py, None, None, |ctl| {
        plan::lay_out(c, l, n_channels, days, ctl)
    })?;
    Ok((
        PyArray1::from_vec(py, layout.iter().map(|x| x.offset).collect()),
        PyArray1::from_vec(py, layout.iter().map(|x| x.consecutive).collect()),
        PyArray1::from_vec(py, load),
    ))
}
