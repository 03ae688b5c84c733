//! Bindings of the `planning` core. Classes on `_core` are prefixed `Planning`.
//!
//! `PlanningForest.fit` / `PlanningCell.fit` take contiguous arrays (X float64 row-major, groups
//! int64 row-major, treatment int64, y and weights float64) and every parameter explicitly (the
//! defaults live in the Python classes); `predict` returns (estimates, standard errors) as
//! `n x T` float64 arrays. The fitted cores pickle through `_state_bytes` / `_from_state_bytes`.

use super::args::{int_arg, real_arg};
use super::{guarded, guarded_gil, run_long, slice1, slice2, to_pyerr};
use crate::planning::cell::{self, CellData, CellModel, CellParams};
use crate::planning::features::{self, Column, How};
use crate::planning::forest::{self, Forest, ForestData, ForestParams, MaxFeatures};
use crate::planning::kept::{self, Metric};
use crate::planning::rank;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyReadwriteArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PlanningForest>()?;
    m.add_class::<PlanningCell>()?;
    m.add_function(wrap_pyfunction!(planning_ranked_counts, m)?)?;
    m.add_function(wrap_pyfunction!(planning_ranked_area, m)?)?;
    m.add_function(wrap_pyfunction!(planning_interp_columns, m)?)?;
    m.add_function(wrap_pyfunction!(planning_kept_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(planning_feature_matrix, m)?)?;
    Ok(())
}

/// The area under the `curve` (`"qini"` or `"uplift"`) of `score` ranked highest first, from
/// the origin (see `crate::planning::rank::ranked_area`).
/// Each column `c` of the scores `S` (`n x t`, float64) through the calibration map
/// `(xp[map_of[c]], fp[map_of[c]])` with `np.interp`'s arithmetic (`calmap::interp`).
#[pyfunction]
#[allow(non_snake_case)]
fn planning_interp_columns<'py>(
    py: Python<'py>,
    S: PyReadonlyArray2<'py, f64>,
    xp: Vec<PyReadonlyArray1<'py, f64>>,
    fp: Vec<PyReadonlyArray1<'py, f64>>,
    map_of: PyReadonlyArray1<'py, i64>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (s, n, t) = slice2("S", &S)?;
    let map_of = slice1("map_of", &map_of)?;
    if map_of.len() != t || xp.len() != fp.len() {
        return Err(PyValueError::new_err(format!(
            "map_of: needs one map per column of S ({t}), got {}; xp and fp: {} and {} maps",
            map_of.len(),
            xp.len(),
            fp.len()
        )));
    }
    let mut maps = Vec::with_capacity(xp.len());
    for (i, (x, f)) in xp.iter().zip(&fp).enumerate() {
        let (x, f) = (slice1("xp", x)?, slice1("fp", f)?);
        if x.is_empty() || x.len() != f.len() {
            return Err(PyValueError::new_err(format!(
                "xp, fp: map {i} has {} knots and {} values (at least one, as many)",
                x.len(),
                f.len()
            )));
        }
        maps.push((x, f));
    }
    let idx: Vec<usize> = map_of
        .iter()
        .map(|&m| {
            usize::try_from(m)
                .ok()
                .filter(|&m| m < maps.len())
                .ok_or_else(|| PyValueError::new_err(format!("map_of: {m} is not a map")))
        })
        .collect::<PyResult<_>>()?;
    let mut out = vec![0.0; n * t];
    guarded(py, || {
        crate::planning::calmap::interp_columns(s, t, &maps, &idx, &mut out);
        Ok(())
    })?;
    matrix(py, out, n, t)
}

/// The planner's feature matrix (`crate::planning::features`): `n x len(columns)` float64, column
/// `i` from `columns[i]` (a contiguous 1-d array of float64, float32, int64, int32, int16,
/// int8, uint8 or bool, `n` long) as `how[i]` says: 0 as it is, 1 non-finite values as -1, 2
/// 1 where it equals `codes[i]` else 0; written into `X` (`n x len(columns)`, C-contiguous).
#[pyfunction]
#[allow(non_snake_case)]
fn planning_feature_matrix<'py>(
    py: Python<'py>,
    columns: Vec<Bound<'py, PyAny>>,
    how: Vec<i64>,
    codes: Vec<i64>,
    mut X: PyReadwriteArray2<'py, f64>,
) -> PyResult<()> {
    if how.len() != columns.len() || codes.len() != columns.len() {
        return Err(PyValueError::new_err(format!(
            "how, codes: need one per column ({}), got {} and {}",
            columns.len(),
            how.len(),
            codes.len()
        )));
    }
    enum Held<'py> {
        F64(PyReadonlyArray1<'py, f64>),
        F32(PyReadonlyArray1<'py, f32>),
        I64(PyReadonlyArray1<'py, i64>),
        I32(PyReadonlyArray1<'py, i32>),
        I16(PyReadonlyArray1<'py, i16>),
        I8(PyReadonlyArray1<'py, i8>),
        U8(PyReadonlyArray1<'py, u8>),
        Bool(PyReadonlyArray1<'py, bool>),
    }
    let held = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(if let Ok(a) = c.extract() {
                Held::F64(a)
            } else if let Ok(a) = c.extract() {
                Held::F32(a)
            } else if let Ok(a) = c.extract() {
                Held::I64(a)
            } else if let Ok(a) = c.extract() {
                Held::I32(a)
            } else if let Ok(a) = c.extract() {
                Held::I16(a)
            } else if let Ok(a) = c.extract() {
                Held::I8(a)
            } else if let Ok(a) = c.extract() {
                Held::U8(a)
            } else if let Ok(a) = c.extract() {
                Held::Bool(a)
            } else {
                return Err(PyTypeError::new_err(format!(
                    "columns[{i}]: must be a 1-d float64, float32, int64, int32, int16, int8, \
                     uint8 or bool array"
                )));
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let arg = "columns";
    let cols = held
        .iter()
        .zip(how.iter().zip(&codes))
        .map(|(h, (&w, &code))| {
            let c = match h {
                Held::F64(a) => Column::F64(slice1(arg, a)?),
                Held::F32(a) => Column::F32(slice1(arg, a)?),
                Held::I64(a) => Column::I64(slice1(arg, a)?),
                Held::I32(a) => Column::I32(slice1(arg, a)?),
                Held::I16(a) => Column::I16(slice1(arg, a)?),
                Held::I8(a) => Column::I8(slice1(arg, a)?),
                Held::U8(a) => Column::U8(slice1(arg, a)?),
                Held::Bool(a) => Column::Bool(slice1(arg, a)?),
            };
            let w = match w {
                0 => How::AsIs,
                1 => How::Finite,
                2 => How::Equals(code),
                other => {
                    return Err(PyValueError::new_err(format!(
                        "how: must be 0, 1 or 2, got {other}"
                    )))
                }
            };
            Ok((c, w))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let n = X.shape()[0];
    if X.shape()[1] != cols.len() {
        return Err(PyValueError::new_err(format!(
            "X: must have {} columns, got {}",
            cols.len(),
            X.shape()[1]
        )));
    }
    let x = X
        .as_slice_mut()
        .map_err(|_| PyValueError::new_err("X: must be C-contiguous"))?;
    run_long(py, None, None, |ctl| features::fill(&cols, n, x, ctl))
}

/// The maps of one outcome: (knots, values) per stratum.
type MapArrays<'py> = (
    Vec<PyReadonlyArray1<'py, f64>>,
    Vec<PyReadonlyArray1<'py, f64>>,
);

fn metric(arg: &str, m: &str) -> PyResult<Metric> {
    Ok(match m {
        "gmv" => Metric::Gmv,
        "cost" => Metric::Cost,
        "profit" => Metric::Profit,
        "conversion" => Metric::Conversion,
        other => {
            return Err(PyValueError::new_err(format!(
                "{arg}: must be 'gmv', 'cost', 'profit' or 'conversion', got {other:?}"
            )))
        }
    })
}

/// The planner's kept (user, task) pairs in one pass (`crate::planning::kept`): `scores` the
/// float32 `n x t` out-of-fold scores of gmv, cost and optionally conversion, `maps` their
/// calibration maps per stratum, `stratum` each task's, `goals` (metric, weight, audience
/// mask or None). Returns (rows, tasks, goal value, the `columns` asked for).
#[pyfunction]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn planning_kept_pairs<'py>(
    py: Python<'py>,
    scores: Vec<PyReadonlyArray2<'py, f32>>,
    maps: Vec<MapArrays<'py>>,
    stratum: PyReadonlyArray1<'py, i64>,
    cost_per_touch: PyReadonlyArray1<'py, f64>,
    margin: f64,
    goals: Vec<(String, f64, Option<PyReadonlyArray1<'py, bool>>)>,
    eligible: PyReadonlyArray2<'py, bool>,
    allowed: Option<PyReadonlyArray1<'py, bool>>,
    keep_finite: bool,
    columns: Vec<String>,
) -> PyResult<(
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
    Vec<Bound<'py, PyArray1<f64>>>,
)> {
    if !(2..=3).contains(&scores.len()) || maps.len() != scores.len() {
        return Err(PyValueError::new_err(format!(
            "scores, maps: need gmv, cost and optionally conversion, got {} scores and {} maps",
            scores.len(),
            maps.len()
        )));
    }
    let (el, n, t) = slice2("eligible", &eligible)?;
    let mut outcomes = Vec::with_capacity(scores.len());
    for (s, (xp, fp)) in scores.iter().zip(&maps) {
        let (est, sn, st) = slice2("scores", s)?;
        if (sn, st) != (n, t) {
            return Err(PyValueError::new_err(format!(
                "scores: must have shape ({n}, {t}) as eligible, got ({sn}, {st})"
            )));
        }
        if xp.len() != fp.len() {
            return Err(PyValueError::new_err(format!(
                "maps: {} knot arrays and {} value arrays",
                xp.len(),
                fp.len()
            )));
        }
        let m = xp
            .iter()
            .zip(fp)
            .map(|(x, f)| Ok((slice1("maps", x)?, slice1("maps", f)?)))
            .collect::<PyResult<Vec<_>>>()?;
        outcomes.push(kept::Outcome { est, maps: m });
    }
    let stratum: Vec<usize> = slice1("stratum", &stratum)?
        .iter()
        .map(|&s| {
            usize::try_from(s)
                .map_err(|_| PyValueError::new_err(format!("stratum: {s} is negative")))
        })
        .collect::<PyResult<_>>()?;
    let goals = goals
        .iter()
        .enumerate()
        .map(|(i, (m, w, mask))| {
            Ok(kept::Goal {
                metric: metric(&format!("goals[{i}]"), m)?,
                weight: *w,
                mask: mask.as_ref().map(|a| slice1("goals", a)).transpose()?,
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let columns = columns
        .iter()
        .map(|c| metric("columns", c))
        .collect::<PyResult<Vec<_>>>()?;
    let mut it = outcomes.into_iter();
    let (gmv, cost) = (it.next().expect("2+"), it.next().expect("2+"));
    let inp = kept::Inputs {
        n,
        t,
        gmv,
        cost,
        conversion: it.next(),
        stratum: &stratum,
        cost_per_touch: slice1("cost_per_touch", &cost_per_touch)?,
        margin,
        goals,
        eligible: el,
        allowed: allowed.as_ref().map(|a| slice1("allowed", a)).transpose()?,
        keep_finite,
        columns,
    };
    let k = run_long(py, None, None, |ctl| kept::kept_pairs(&inp, ctl))?;
    Ok((
        k.rows.into_pyarray(py),
        k.tasks.into_pyarray(py),
        k.value.into_pyarray(py),
        k.columns.into_iter().map(|c| c.into_pyarray(py)).collect(),
    ))
}

#[pyfunction]
fn planning_ranked_area(
    py: Python<'_>,
    score: PyReadonlyArray1<'_, f64>,
    code: PyReadonlyArray1<'_, u8>,
    curve: &str,
) -> PyResult<f64> {
    let curve = match curve {
        "qini" => rank::Curve::Qini,
        "uplift" => rank::Curve::Uplift,
        other => {
            return Err(PyValueError::new_err(format!(
                "curve: must be 'qini' or 'uplift', got {other:?}"
            )))
        }
    };
    let (s, c) = (slice1("score", &score)?, slice1("code", &code)?);
    run_long(py, None, None, |ctl| rank::ranked_area(s, c, curve, ctl))
}

/// Rows ranked by `score` (highest first), at the end of each tie group: rows, treated rows,
/// treated responders and control responders so far (int64 arrays); `code` = 2 * treated +
/// outcome (uint8, 0..=3). See `crate::planning::rank`.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn planning_ranked_counts<'py>(
    py: Python<'py>,
    score: PyReadonlyArray1<'py, f64>,
    code: PyReadonlyArray1<'py, u8>,
) -> PyResult<(
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
)> {
    let (s, c) = (slice1("score", &score)?, slice1("code", &code)?);
    let r = run_long(py, None, None, |ctl| rank::ranked_counts(s, c, ctl))?;
    Ok((
        r.rows.into_pyarray(py),
        r.treated.into_pyarray(py),
        r.treated_resp.into_pyarray(py),
        r.control_resp.into_pyarray(py),
    ))
}

type Arr2<'py> = Bound<'py, PyArray2<f64>>;

fn matrix<'py>(py: Python<'py>, v: Vec<f64>, n: usize, t: usize) -> PyResult<Arr2<'py>> {
    v.into_pyarray(py).reshape([n, t])
}

/// `"sqrt"`, `"sqrt+20"`, a float share in (0, 1] or an int count.
fn max_features(v: &Bound<'_, PyAny>) -> PyResult<MaxFeatures> {
    if let Ok(s) = v.cast::<PyString>() {
        return match s.to_str()? {
            "sqrt" => Ok(MaxFeatures::Sqrt),
            "sqrt+20" => Ok(MaxFeatures::SqrtPlus20),
            other => Err(PyValueError::new_err(format!(
                "max_features: must be 'sqrt', 'sqrt+20', a float share in (0, 1] or an int, \
                 got {other:?}"
            ))),
        };
    }
    if v.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(
            "max_features: must be 'sqrt', 'sqrt+20', a float or an int, got bool",
        ));
    }
    if v.is_instance_of::<PyInt>() {
        // the checked extraction: 2**64 is a ValueError naming the argument, not OverflowError
        return Ok(MaxFeatures::Count(int_arg(v, "max_features", 1)?));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(MaxFeatures::Share(real_arg(v, "max_features")?));
    }
    Err(PyTypeError::new_err(format!(
        "max_features: must be 'sqrt', a float or an int, got {}",
        v.get_type().name()?
    )))
}

fn weights<'a>(w: &'a Option<PyReadonlyArray1<'_, f64>>) -> PyResult<Option<&'a [f64]>> {
    w.as_ref().map(|w| slice1("sample_weight", w)).transpose()
}

/// A fitted uplift forest (see `growthmachine.planning.uplift.UpliftForest`).
#[pyclass(module = "growthmachine._core", frozen)]
pub struct PlanningForest {
    inner: Forest,
}

/// A (user, task) pair's width: the user's `pu` features and the task's `pz` must be the
/// forest's features.
fn check_pair_width(f: &Forest, pu: usize, pz: usize) -> PyResult<()> {
    if pu + pz != f.n_features {
        return Err(PyValueError::new_err(format!(
            "X, Z: have {pu} + {pz} features, but the forest was fitted with {}",
            f.n_features
        )));
    }
    Ok(())
}

#[pymethods]
impl PlanningForest {
    #[staticmethod]
    #[pyo3(signature = (X, treatment, y, sample_weight, n_treatments, n_estimators, max_depth,
        min_samples_leaf, min_samples_treatment, max_features, max_bins, honest, subsample,
        shrinkage, seed, progress=None))]
    #[allow(clippy::too_many_arguments, non_snake_case)]
    fn fit<'py>(
        py: Python<'py>,
        X: PyReadonlyArray2<'py, f64>,
        treatment: PyReadonlyArray1<'py, i64>,
        y: PyReadonlyArray1<'py, f64>,
        sample_weight: Option<PyReadonlyArray1<'py, f64>>,
        n_treatments: usize,
        n_estimators: usize,
        max_depth: usize,
        min_samples_leaf: usize,
        min_samples_treatment: usize,
        max_features: &Bound<'py, PyAny>,
        max_bins: usize,
        honest: bool,
        subsample: f64,
        shrinkage: f64,
        seed: u64,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let (x, n, p) = slice2("X", &X)?;
        let d = ForestData {
            x,
            n,
            p,
            treatment: slice1("treatment", &treatment)?,
            n_treatments,
            y: slice1("y", &y)?,
            w: weights(&sample_weight)?,
        };
        let prm = ForestParams {
            n_estimators,
            max_depth,
            min_samples_leaf,
            min_samples_treatment,
            max_features: self::max_features(max_features)?,
            max_bins,
            honest,
            subsample,
            shrinkage,
            seed,
        };
        prm.validate().map_err(to_pyerr)?;
        let inner = run_long(py, progress, None, |ctl| forest::fit(&d, &prm, ctl))?;
        Ok(PlanningForest { inner })
    }

    /// (estimates, standard errors), each `n x T`.
    #[pyo3(signature = (X, progress=None))]
    #[allow(non_snake_case)]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        X: PyReadonlyArray2<'py, f64>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Arr2<'py>, Arr2<'py>)> {
        let (x, n, p) = slice2("X", &X)?;
        if p != self.inner.n_features {
            return Err(PyValueError::new_err(format!(
                "X: has {p} features, but the forest was fitted with {}",
                self.inner.n_features
            )));
        }
        let f = &self.inner;
        let (e, s) = run_long(py, progress, None, |ctl| f.predict(x, n, ctl))?;
        let t = f.n_treatments;
        Ok((matrix(py, e, n, t)?, matrix(py, s, n, t)?))
    }

    /// (estimates, standard errors), each `n x k`, of every pair of a row of `X` (`n x pu`)
    /// and a row of `Z` (`k x (n_features - pu)`) for a forest with one treatment.
    #[pyo3(signature = (X, Z, progress=None))]
    #[allow(non_snake_case)]
    fn predict_pairs<'py>(
        &self,
        py: Python<'py>,
        X: PyReadonlyArray2<'py, f64>,
        Z: PyReadonlyArray2<'py, f64>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Arr2<'py>, Arr2<'py>)> {
        let (x, n, pu) = slice2("X", &X)?;
        let (z, k, pz) = slice2("Z", &Z)?;
        let f = &self.inner;
        check_pair_width(f, pu, pz)?;
        let (e, s) = run_long(py, progress, None, |ctl| {
            f.predict_pairs(x, n, pu, z, k, ctl)
        })?;
        Ok((matrix(py, e, n, k)?, matrix(py, s, n, k)?))
    }

    /// Writes [`predict_pairs`] of the rows `rows` (strictly increasing) of `X` (`n x pu`)
    /// as float32 into the same rows of `est` and `se` (`n x k`, C-contiguous float32), other
    /// rows untouched; the rows of `X` are not copied.
    #[pyo3(signature = (X, rows, Z, est, se, progress=None))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn predict_pairs_into<'py>(
        &self,
        py: Python<'py>,
        X: PyReadonlyArray2<'py, f64>,
        rows: PyReadonlyArray1<'py, i64>,
        Z: PyReadonlyArray2<'py, f64>,
        mut est: PyReadwriteArray2<'py, f32>,
        mut se: PyReadwriteArray2<'py, f32>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        let (x, n, pu) = slice2("X", &X)?;
        let (z, k, pz) = slice2("Z", &Z)?;
        let f = &self.inner;
        check_pair_width(f, pu, pz)?;
        for (name, a) in [("est", &est), ("se", &se)] {
            if a.shape() != [n, k] {
                return Err(PyValueError::new_err(format!(
                    "{name}: must have shape ({n}, {k}), got {:?}",
                    a.shape()
                )));
            }
        }
        let rows: Vec<usize> = slice1("rows", &rows)?
            .iter()
            .map(|&r| {
                usize::try_from(r)
                    .map_err(|_| PyValueError::new_err(format!("rows: {r} is negative")))
            })
            .collect::<PyResult<_>>()?;
        let e = est
            .as_slice_mut()
            .map_err(|_| PyValueError::new_err("est: must be C-contiguous"))?;
        let s = se
            .as_slice_mut()
            .map_err(|_| PyValueError::new_err("se: must be C-contiguous"))?;
        run_long(py, progress, None, |ctl| {
            f.predict_pairs_rows(x, n, pu, &rows, z, k, e, s, ctl)
        })
    }

    #[getter]
    fn feature_importances<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.inner.importances)
    }

    #[getter]
    fn n_features(&self) -> usize {
        self.inner.n_features
    }

    #[getter]
    fn n_treatments(&self) -> usize {
        self.inner.n_treatments
    }

    #[getter]
    fn n_estimators(&self) -> usize {
        self.inner.trees.len()
    }

    /// Nodes per tree (splits and leaves).
    #[getter]
    fn n_nodes(&self) -> Vec<usize> {
        self.inner.trees.iter().map(|t| t.nodes.len()).collect()
    }

    fn _state_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = guarded_gil(|| self.inner.to_bytes())?;
        Ok(PyBytes::new(py, &b))
    }

    #[staticmethod]
    fn _from_state_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        Ok(PlanningForest {
            inner: guarded(py, || Forest::from_bytes(data))?,
        })
    }
}

/// A fitted cell uplift model (see `growthmachine.planning.uplift.CellUplift`).
#[pyclass(module = "growthmachine._core", frozen)]
pub struct PlanningCell {
    inner: CellModel,
}

#[pymethods]
impl PlanningCell {
    /// `prior_strength=None` estimates it (method of moments).
    #[staticmethod]
    #[pyo3(signature = (groups, treatment, y, sample_weight, n_treatments, prior_strength,
        min_count, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn fit<'py>(
        py: Python<'py>,
        groups: PyReadonlyArray2<'py, i64>,
        treatment: PyReadonlyArray1<'py, i64>,
        y: PyReadonlyArray1<'py, f64>,
        sample_weight: Option<PyReadonlyArray1<'py, f64>>,
        n_treatments: usize,
        prior_strength: Option<f64>,
        min_count: usize,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let (g, n, levels) = slice2("groups", &groups)?;
        let d = CellData {
            groups: g,
            n,
            levels,
            treatment: slice1("treatment", &treatment)?,
            n_treatments,
            y: slice1("y", &y)?,
            w: weights(&sample_weight)?,
        };
        let prm = CellParams {
            prior_strength,
            min_count,
        };
        let inner = run_long(py, progress, None, |ctl| cell::fit(&d, &prm, ctl))?;
        Ok(PlanningCell { inner })
    }

    /// (estimates, standard errors) `n x T`, and the level each row was answered at
    /// (0 = finest, n_levels = global).
    #[allow(clippy::type_complexity)]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        groups: PyReadonlyArray2<'py, i64>,
    ) -> PyResult<(Arr2<'py>, Arr2<'py>, Bound<'py, PyArray1<u8>>)> {
        let (g, n, levels) = slice2("X", &groups)?;
        if levels != self.inner.levels.len() {
            return Err(PyValueError::new_err(format!(
                "X: has {levels} levels (columns), but the model was fitted with {}",
                self.inner.levels.len()
            )));
        }
        let m = &self.inner;
        let (e, s, at) = run_long(py, None, None, |ctl| m.predict(g, n, ctl))?;
        let t = m.n_treatments;
        Ok((
            matrix(py, e, n, t)?,
            matrix(py, s, n, t)?,
            at.into_pyarray(py),
        ))
    }

    #[getter]
    fn n_treatments(&self) -> usize {
        self.inner.n_treatments
    }

    #[getter]
    fn n_levels(&self) -> usize {
        self.inner.levels.len()
    }

    /// Groups seen per level, finest first.
    #[getter]
    fn n_groups(&self) -> Vec<usize> {
        self.inner.levels.iter().map(|l| l.keys.len()).collect()
    }

    /// Prior strength `k` per level (finest first) and treatment (infinite: full pooling).
    #[getter]
    fn prior_strength<'py>(&self, py: Python<'py>) -> PyResult<Arr2<'py>> {
        let t = self.inner.n_treatments;
        let v: Vec<f64> = self
            .inner
            .levels
            .iter()
            .flat_map(|l| l.k.iter().map(|k| k.unwrap_or(f64::INFINITY)))
            .collect();
        matrix(py, v, self.inner.levels.len(), t)
    }

    /// Global (all rows) effect and standard error per treatment.
    #[getter]
    fn global_effect(&self) -> (Vec<f64>, Vec<f64>) {
        (
            self.inner.global.iter().map(|e| e.est).collect(),
            self.inner.global.iter().map(|e| e.se).collect(),
        )
    }

    fn _state_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = guarded_gil(|| self.inner.to_bytes())?;
        Ok(PyBytes::new(py, &b))
    }

    #[staticmethod]
    fn _from_state_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        Ok(PlanningCell {
            inner: guarded(py, || CellModel::from_bytes(data))?,
        })
    }
}
