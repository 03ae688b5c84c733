//! Bindings of the `touchpoint` core. Names on `_core` are prefixed by the module.
//!
//! `TouchpointResponse` holds the counts and the fit of `touchpoint::response` (see
//! `growthmachine.touchpoint.ResponseModel`); logs come as contiguous arrays (uint32 codes and
//! exposures, float64 outcomes and weights). It pickles through `_state_bytes` /
//! `_from_state_bytes`.

use super::{run_long, slice1, to_pyerr};
use crate::touchpoint::response::{Counts, Log, Prior, Response, N_PARAMS, PARAM_NAMES};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TouchpointResponse>()?;
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
    /// Aggregates the log, adds the counts of `previous` (if given) and fits.
    #[staticmethod]
    #[pyo3(signature = (group, channel, exposures, converted, opted_out, weight, n_groups,
        n_channels, tau=None, previous=None, progress=None))]
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
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let tau = match tau {
            None => None,
            Some(t) => Some(<[f64; N_PARAMS]>::try_from(t.as_slice()).map_err(|_| {
                PyValueError::new_err(format!(
                    "tau: must hold {N_PARAMS} values (one per parameter), got {}",
                    t.len()
                ))
            })?),
        };
        let prior = Prior {
            tau,
            ..Prior::default()
        };
        prior.validate().map_err(to_pyerr)?;
        let log = Log {
            group: slice1("group", &group)?,
            channel: slice1("channel", &channel)?,
            exposures: slice1("exposures", &exposures)?,
            converted: slice1("converted", &converted)?,
            opted_out: slice1("opted_out", &opted_out)?,
            weight: weight.as_ref().map(|w| slice1("weight", w)).transpose()?,
        };
        let prev = previous.as_ref().map(|p| &p.inner);
        let inner = run_long(py, progress, None, |ctl| {
            let counts = Counts::aggregate(&log, n_groups, n_channels, ctl)?;
            Response::fit(prev, counts, prior, ctl)
        })?;
        Ok(TouchpointResponse { inner })
    }

    /// (incremental, lower, upper, opt-out), each `(n_groups, n_channels, n_levels)`; `z` is the
    /// normal quantile of the interval.
    fn curves<'py>(
        &self,
        py: Python<'py>,
        levels: PyReadonlyArray1<'py, f64>,
        z: f64,
    ) -> PyResult<(Arr3<'py>, Arr3<'py>, Arr3<'py>, Arr3<'py>)> {
        let lv = slice1("levels", &levels)?;
        let f = &self.inner.fit;
        let c = f.curves(lv, z).map_err(to_pyerr)?;
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
    #[pyo3(signature = (group, channel, exposures, progress=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        group: PyReadonlyArray1<'py, u32>,
        channel: PyReadonlyArray1<'py, u32>,
        exposures: PyReadonlyArray1<'py, f64>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Arr1<'py>, Arr1<'py>)> {
        let (g, c, n) = (
            slice1("segment", &group)?,
            slice1("channel", &channel)?,
            slice1("exposures", &exposures)?,
        );
        let f = &self.inner.fit;
        let (inc, opt) = run_long(py, progress, None, |ctl| f.predict(g, c, n, ctl))?;
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
        let b = self.inner.to_bytes().map_err(to_pyerr)?;
        Ok(PyBytes::new(py, &b))
    }

    #[staticmethod]
    fn _from_state_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(TouchpointResponse {
            inner: Response::from_bytes(data).map_err(to_pyerr)?,
        })
    }
}
