//! Bindings of the `insight` core. Names on `_core` are prefixed `insight_` (functions) or
//! `Insight` (classes).

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    register_models(m)?;
    register_kmeans(m)?;
    Ok(())
}

// ===== features, value models, lifecycle, cells ==================================================

fn register_models(m: &Bound<'_, PyModule>) -> PyResult<()> {
    models::register(m)
}

/// Bindings of features, value models, lifecycle and cells (own module: own imports).
mod models {
    use pyo3::prelude::*;

    use crate::insight::{cells, features, lifecycle, value};
    use crate::python::{guarded, run_long, slice1};
    use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1};
    use pyo3::exceptions::PyValueError;
    use pyo3::types::PyDict;

    type Arr<'py, T> = Bound<'py, PyArray1<T>>;

    /// One pass over the log: (user ids, K x n feature matrix, column names, r, f, m scores).
    #[pyfunction]
    #[pyo3(signature = (user, day, amount, as_of, category=None, users=None, signup=None, trend_window=90, progress=None))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn insight_features<'py>(
        py: Python<'py>,
        user: PyReadonlyArray1<'py, i64>,
        day: PyReadonlyArray1<'py, i32>,
        amount: PyReadonlyArray1<'py, f64>,
        as_of: i32,
        category: Option<PyReadonlyArray1<'py, i32>>,
        users: Option<PyReadonlyArray1<'py, i64>>,
        signup: Option<PyReadonlyArray1<'py, i32>>,
        trend_window: i32,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(
        Arr<'py, i64>,
        Bound<'py, PyArray2<f64>>,
        Vec<&'static str>,
        Arr<'py, u8>,
        Arr<'py, u8>,
        Arr<'py, u8>,
    )> {
        let inp = features::FeatureInput {
            user: slice1("user", &user)?,
            day: slice1("day", &day)?,
            amount: slice1("amount", &amount)?,
            category: category
                .as_ref()
                .map(|c| slice1("category", c))
                .transpose()?,
            users: users.as_ref().map(|c| slice1("users", c)).transpose()?,
            signup: signup.as_ref().map(|c| slice1("signup", c)).transpose()?,
            as_of,
            trend_window,
        };
        let f = run_long(py, progress, None, |ctl| features::compute(&inp, ctl))?;
        Ok((
            f.user_id.into_pyarray(py),
            f.values.into_pyarray(py),
            features::COLUMNS.to_vec(),
            f.r_score.into_pyarray(py),
            f.f_score.into_pyarray(py),
            f.m_score.into_pyarray(py),
        ))
    }

    fn fit_dict<'py>(py: Python<'py>, r: &value::FitResult) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("params", r.params.clone())?;
        d.set_item("log_likelihood", r.log_likelihood)?;
        d.set_item("covariance", r.covariance.clone())?;
        d.set_item("std_errors", r.std_errors.clone())?;
        d.set_item("n_iter", r.n_iter)?;
        d.set_item("converged", r.converged)?;
        d.set_item("n_unique", r.n_unique)?;
        d.set_item("total_weight", r.total_weight)?;
        Ok(d)
    }

    fn opt_slice<'a>(
        name: &str,
        a: &'a Option<PyReadonlyArray1<'_, f64>>,
    ) -> PyResult<Option<&'a [f64]>> {
        a.as_ref().map(|w| slice1(name, w)).transpose()
    }

    #[pyfunction]
    #[pyo3(signature = (frequency, recency, T, weights=None, penalizer=0.0, max_iter=200, progress=None))]
    #[allow(clippy::too_many_arguments, non_snake_case)]
    fn insight_bgnbd_fit<'py>(
        py: Python<'py>,
        frequency: PyReadonlyArray1<'py, f64>,
        recency: PyReadonlyArray1<'py, f64>,
        T: PyReadonlyArray1<'py, f64>,
        weights: Option<PyReadonlyArray1<'py, f64>>,
        penalizer: f64,
        max_iter: usize,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (x, t, tt) = (
            slice1("frequency", &frequency)?,
            slice1("recency", &recency)?,
            slice1("T", &T)?,
        );
        let w = opt_slice("weights", &weights)?;
        let opt = value::FitOptions {
            penalizer,
            max_iter,
            ..Default::default()
        };
        let r = run_long(py, progress, None, |ctl| {
            value::fit_bgnbd(x, t, tt, w, &opt, ctl)
        })?;
        fit_dict(py, &r)
    }

    #[pyfunction]
    #[pyo3(signature = (params, frequency, recency, T, weights=None))]
    #[allow(non_snake_case)]
    fn insight_bgnbd_loglik<'py>(
        py: Python<'py>,
        params: Vec<f64>,
        frequency: PyReadonlyArray1<'py, f64>,
        recency: PyReadonlyArray1<'py, f64>,
        T: PyReadonlyArray1<'py, f64>,
        weights: Option<PyReadonlyArray1<'py, f64>>,
    ) -> PyResult<f64> {
        let (x, t, tt) = (
            slice1("frequency", &frequency)?,
            slice1("recency", &recency)?,
            slice1("T", &T)?,
        );
        let w = opt_slice("weights", &weights)?;
        if params.len() != 4 || params.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(PyValueError::new_err(
                "params: need 4 positive finite values r, alpha, a, b",
            ));
        }
        run_long(py, None, None, |ctl| {
            value::BgData::new(x, t, tt, w, ctl)?.log_likelihood(&params, ctl)
        })
    }

    /// kind: "expected" (purchases in the next `t` days) or "alive".
    #[pyfunction]
    #[pyo3(signature = (params, kind, t, frequency, recency, T, progress=None))]
    #[allow(clippy::too_many_arguments, non_snake_case)]
    fn insight_bgnbd_predict<'py>(
        py: Python<'py>,
        params: Vec<f64>,
        kind: &str,
        t: f64,
        frequency: PyReadonlyArray1<'py, f64>,
        recency: PyReadonlyArray1<'py, f64>,
        T: PyReadonlyArray1<'py, f64>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Arr<'py, f64>> {
        let (x, tx, tt) = (
            slice1("frequency", &frequency)?,
            slice1("recency", &recency)?,
            slice1("T", &T)?,
        );
        let what = match kind {
            "expected" => value::BgPredict::Expected(t),
            "alive" => value::BgPredict::Alive,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "kind: must be 'expected' or 'alive', got {kind:?}"
                )))
            }
        };
        let v = run_long(py, progress, None, |ctl| {
            value::bg_predict(&params, what, x, tx, tt, ctl)
        })?;
        Ok(v.into_pyarray(py))
    }

    #[pyfunction]
    fn insight_bgnbd_expected_new<'py>(
        py: Python<'py>,
        params: Vec<f64>,
        t: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Arr<'py, f64>> {
        let t = slice1("t", &t)?;
        if params.len() != 4 {
            return Err(PyValueError::new_err("params: need r, alpha, a, b"));
        }
        let v = guarded(py, || {
            Ok(t.iter()
                .map(|&ti| value::bg_expected_new(&params, ti))
                .collect::<Vec<_>>())
        })?;
        Ok(v.into_pyarray(py))
    }

    #[pyfunction]
    #[pyo3(signature = (params, T, seed))]
    #[allow(non_snake_case)]
    fn insight_bgnbd_simulate<'py>(
        py: Python<'py>,
        params: Vec<f64>,
        T: PyReadonlyArray1<'py, f64>,
        seed: u64,
    ) -> PyResult<(Arr<'py, f64>, Arr<'py, f64>)> {
        let tt = slice1("T", &T)?;
        if params.len() != 4 || params.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(PyValueError::new_err(
                "params: need 4 positive finite values r, alpha, a, b",
            ));
        }
        let (x, t) = run_long(py, None, None, |ctl| {
            value::simulate_bgnbd_ctl(&params, tt, seed, ctl)
        })?;
        Ok((x.into_pyarray(py), t.into_pyarray(py)))
    }

    #[pyfunction]
    #[pyo3(signature = (frequency, monetary, weights=None, penalizer=0.0, max_iter=200, progress=None))]
    fn insight_gammagamma_fit<'py>(
        py: Python<'py>,
        frequency: PyReadonlyArray1<'py, f64>,
        monetary: PyReadonlyArray1<'py, f64>,
        weights: Option<PyReadonlyArray1<'py, f64>>,
        penalizer: f64,
        max_iter: usize,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (x, m) = (
            slice1("frequency", &frequency)?,
            slice1("monetary", &monetary)?,
        );
        let w = opt_slice("weights", &weights)?;
        let opt = value::FitOptions {
            penalizer,
            max_iter,
            ..Default::default()
        };
        let r = run_long(py, progress, None, |ctl| {
            value::fit_gammagamma(x, m, w, &opt, ctl)
        })?;
        fit_dict(py, &r)
    }

    #[pyfunction]
    #[pyo3(signature = (params, frequency, monetary, weights=None))]
    fn insight_gammagamma_loglik<'py>(
        py: Python<'py>,
        params: Vec<f64>,
        frequency: PyReadonlyArray1<'py, f64>,
        monetary: PyReadonlyArray1<'py, f64>,
        weights: Option<PyReadonlyArray1<'py, f64>>,
    ) -> PyResult<f64> {
        let (x, m) = (
            slice1("frequency", &frequency)?,
            slice1("monetary", &monetary)?,
        );
        let w = opt_slice("weights", &weights)?;
        if params.len() != 3 || params.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(PyValueError::new_err(
                "params: need 3 positive finite values p, q, gamma",
            ));
        }
        run_long(py, None, None, |ctl| {
            value::GgData::new(x, m, w, ctl)?.log_likelihood(&params, ctl)
        })
    }

    #[pyfunction]
    fn insight_gammagamma_expected_spend<'py>(
        py: Python<'py>,
        params: Vec<f64>,
        frequency: PyReadonlyArray1<'py, f64>,
        monetary: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Arr<'py, f64>> {
        let (x, m) = (
            slice1("frequency", &frequency)?,
            slice1("monetary", &monetary)?,
        );
        let v = run_long(py, None, None, |_| value::gg_expected_spend(&params, x, m))?;
        Ok(v.into_pyarray(py))
    }

    #[pyfunction]
    #[pyo3(signature = (params, frequency, recency, T, spend, horizon, period, discount_rate, progress=None))]
    #[allow(clippy::too_many_arguments, non_snake_case)]
    fn insight_clv<'py>(
        py: Python<'py>,
        params: Vec<f64>,
        frequency: PyReadonlyArray1<'py, f64>,
        recency: PyReadonlyArray1<'py, f64>,
        T: PyReadonlyArray1<'py, f64>,
        spend: PyReadonlyArray1<'py, f64>,
        horizon: usize,
        period: f64,
        discount_rate: f64,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Arr<'py, f64>> {
        let (x, t, tt) = (
            slice1("frequency", &frequency)?,
            slice1("recency", &recency)?,
            slice1("T", &T)?,
        );
        let s = slice1("spend", &spend)?;
        let v = run_long(py, progress, None, |ctl| {
            value::clv(&params, x, t, tt, s, horizon, period, discount_rate, ctl)
        })?;
        Ok(v.into_pyarray(py))
    }

    /// The feature columns of `insight_features`, in order.
    #[pyfunction]
    fn insight_feature_columns() -> Vec<&'static str> {
        features::COLUMNS.to_vec()
    }

    /// The lifecycle stage names, in code order.
    #[pyfunction]
    fn insight_lifecycle_stages() -> Vec<&'static str> {
        lifecycle::STAGES.to_vec()
    }

    /// The default lifecycle rules as JSON (threshold name -> value).
    #[pyfunction]
    fn insight_lifecycle_default_rules(py: Python<'_>) -> PyResult<String> {
        guarded(py, || Ok(lifecycle::Rules::default().to_json()))
    }

    /// rules_json: every threshold of `lifecycle::Rules` by name.
    #[pyfunction]
    #[pyo3(signature = (n_transactions, T, days_since_last, p_alive, trend, rules_json))]
    #[allow(non_snake_case)]
    fn insight_lifecycle<'py>(
        py: Python<'py>,
        n_transactions: PyReadonlyArray1<'py, f64>,
        T: PyReadonlyArray1<'py, f64>,
        days_since_last: PyReadonlyArray1<'py, f64>,
        p_alive: PyReadonlyArray1<'py, f64>,
        trend: PyReadonlyArray1<'py, f64>,
        rules_json: &str,
    ) -> PyResult<Arr<'py, u8>> {
        let r = guarded(py, || lifecycle::Rules::from_json(rules_json))?;
        let (a, b, c, d, e) = (
            slice1("n_transactions", &n_transactions)?,
            slice1("T", &T)?,
            slice1("days_since_last", &days_since_last)?,
            slice1("p_alive", &p_alive)?,
            slice1("trend", &trend)?,
        );
        let v = run_long(py, None, None, |_| lifecycle::assign(a, b, c, d, e, &r))?;
        Ok(v.into_pyarray(py))
    }

    #[pyfunction]
    fn insight_transitions<'py>(
        py: Python<'py>,
        before: PyReadonlyArray1<'py, u8>,
        after: PyReadonlyArray1<'py, u8>,
        k: usize,
    ) -> PyResult<Arr<'py, u64>> {
        let (a, b) = (slice1("before", &before)?, slice1("after", &after)?);
        let v = run_long(py, None, None, |_| lifecycle::transitions(a, b, k))?;
        Ok(v.into_pyarray(py))
    }

    /// Returns (cell of each user, list of (stages, clusters, tier_lo, tier_hi, size)).
    #[pyfunction]
    #[pyo3(signature = (stage, cluster, tier, n_clusters, distances, min_size))]
    #[allow(clippy::type_complexity)]
    fn insight_cells_build<'py>(
        py: Python<'py>,
        stage: PyReadonlyArray1<'py, u8>,
        cluster: PyReadonlyArray1<'py, u32>,
        tier: PyReadonlyArray1<'py, u8>,
        n_clusters: usize,
        distances: Option<PyReadonlyArray1<'py, f64>>,
        min_size: u64,
    ) -> PyResult<(Arr<'py, u32>, Vec<(Vec<u8>, Vec<u32>, u8, u8, u64)>)> {
        let (s, c, t) = (
            slice1("lifecycle", &stage)?,
            slice1("clusters", &cluster)?,
            slice1("value_tier", &tier)?,
        );
        let d = opt_slice("distances", &distances)?;
        let out = run_long(py, None, None, |_| {
            cells::build(s, c, t, n_clusters, d, min_size)
        })?;
        let table = out
            .cells
            .into_iter()
            .map(|c| (c.stages, c.clusters, c.tier_lo, c.tier_hi, c.size))
            .collect();
        Ok((out.cell_of.into_pyarray(py), table))
    }

    #[pyfunction]
    fn insight_group_sums<'py>(
        py: Python<'py>,
        codes: PyReadonlyArray1<'py, u32>,
        values: PyReadonlyArray1<'py, f64>,
        n_groups: usize,
    ) -> PyResult<Arr<'py, f64>> {
        let (c, v) = (slice1("codes", &codes)?, slice1("values", &values)?);
        let s = run_long(py, None, None, |_| cells::group_sums(c, v, n_groups))?;
        Ok(s.into_pyarray(py))
    }

    pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_function(wrap_pyfunction!(insight_features, m)?)?;
        m.add_function(wrap_pyfunction!(insight_bgnbd_fit, m)?)?;
        m.add_function(wrap_pyfunction!(insight_bgnbd_loglik, m)?)?;
        m.add_function(wrap_pyfunction!(insight_bgnbd_predict, m)?)?;
        m.add_function(wrap_pyfunction!(insight_bgnbd_expected_new, m)?)?;
        m.add_function(wrap_pyfunction!(insight_bgnbd_simulate, m)?)?;
        m.add_function(wrap_pyfunction!(insight_gammagamma_fit, m)?)?;
        m.add_function(wrap_pyfunction!(insight_gammagamma_loglik, m)?)?;
        m.add_function(wrap_pyfunction!(insight_gammagamma_expected_spend, m)?)?;
        m.add_function(wrap_pyfunction!(insight_clv, m)?)?;
        m.add_function(wrap_pyfunction!(insight_feature_columns, m)?)?;
        m.add_function(wrap_pyfunction!(insight_lifecycle_stages, m)?)?;
        m.add_function(wrap_pyfunction!(insight_lifecycle_default_rules, m)?)?;
        m.add_function(wrap_pyfunction!(insight_lifecycle, m)?)?;
        m.add_function(wrap_pyfunction!(insight_transitions, m)?)?;
        m.add_function(wrap_pyfunction!(insight_cells_build, m)?)?;
        m.add_function(wrap_pyfunction!(insight_group_sums, m)?)?;
        Ok(())
    }
}

// ===== clustering (KMeans): keep at the end of this file =========================================

use crate::insight::kmeans as km;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2, PyUntypedArrayMethods};

fn km_slice2<'a, T: numpy::Element>(
    arg: &str,
    a: &'a PyReadonlyArray2<'_, T>,
) -> PyResult<(&'a [T], usize)> {
    let d = a.shape()[1];
    let s = a.as_slice().map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "{arg}: must be a C-contiguous 2-d array (got shape {:?})",
            a.shape()
        ))
    })?;
    Ok((s, d))
}

fn km_init(init: &str, centers: Option<PyReadonlyArray2<'_, f64>>) -> PyResult<km::Init> {
    Ok(match (init, centers) {
        (_, Some(c)) => km::Init::Explicit(km_slice2("init", &c)?.0.to_vec()),
        ("k-means||", None) => km::Init::KMeansParallel,
        ("k-means++", None) => km::Init::KMeansPlusPlus,
        ("random", None) => km::Init::Random,
        (other, None) => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "init: must be 'k-means||', 'k-means++', 'random' or an array, got {other:?}"
            )))
        }
    })
}

fn km_algorithm(a: &str) -> PyResult<km::Algorithm> {
    Ok(match a {
        "auto" => km::Algorithm::Auto,
        "lloyd" => km::Algorithm::Lloyd,
        "yinyang" | "elkan" => km::Algorithm::Yinyang,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "algorithm: must be 'auto', 'lloyd', 'yinyang' or 'elkan', got {other:?}"
            )))
        }
    })
}

type FitOut<'py, T> = (
    Bound<'py, PyArray1<T>>,
    Bound<'py, PyArray1<i32>>,
    f64,
    usize,
);

fn labels_i32(l: Vec<u32>) -> Vec<i32> {
    l.into_iter().map(|v| v as i32).collect()
}

/// Per-column mean, variance and standard deviation.
type Moments<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

macro_rules! km_bindings {
    ($t:ty, $fit:ident, $predict:ident, $transform:ident, $init:ident, $moments:ident) => {
        /// Fits KMeans; returns (centers flat, labels, inertia, n_iter).
        #[pyfunction]
        #[pyo3(signature = (x, n_clusters, init, init_centers, max_iter, tol, algorithm, seed, progress=None))]
        #[allow(clippy::too_many_arguments)]
        fn $fit<'py>(
            py: Python<'py>,
            x: PyReadonlyArray2<'py, $t>,
            n_clusters: usize,
            init: &str,
            init_centers: Option<PyReadonlyArray2<'py, f64>>,
            max_iter: usize,
            tol: f64,
            algorithm: &str,
            seed: u64,
            progress: Option<&Bound<'py, PyAny>>,
        ) -> PyResult<FitOut<'py, $t>> {
            let (xs, d) = km_slice2("X", &x)?;
            let params = km::Params {
                k: n_clusters,
                init: km_init(init, init_centers)?,
                max_iter,
                tol,
                algorithm: km_algorithm(algorithm)?,
                seed,
            };
            let f = super::run_long(py, progress, None, |ctl| km::fit(xs, d, &params, ctl))?;
            Ok((
                f.centers.into_pyarray(py),
                labels_i32(f.labels).into_pyarray(py),
                f.inertia,
                f.n_iter,
            ))
        }

        /// (labels, inertia) of rows against centers.
        #[pyfunction]
        fn $predict<'py>(
            py: Python<'py>,
            x: PyReadonlyArray2<'py, $t>,
            centers: PyReadonlyArray2<'py, $t>,
        ) -> PyResult<(Bound<'py, PyArray1<i32>>, f64)> {
            let (xs, d) = km_slice2("X", &x)?;
            let (cs, _) = km_slice2("centers", &centers)?;
            let k = centers.shape()[0];
            let (l, inertia) =
                super::run_long(py, None, None, |ctl| km::predict(xs, d, cs, k, ctl))?;
            Ok((labels_i32(l).into_pyarray(py), inertia))
        }

        /// Euclidean distances of rows to centers (flat n*k).
        #[pyfunction]
        fn $transform<'py>(
            py: Python<'py>,
            x: PyReadonlyArray2<'py, $t>,
            centers: PyReadonlyArray2<'py, $t>,
        ) -> PyResult<Bound<'py, PyArray1<$t>>> {
            let (xs, d) = km_slice2("X", &x)?;
            let (cs, _) = km_slice2("centers", &centers)?;
            let k = centers.shape()[0];
            let out = super::run_long(py, None, None, |ctl| km::transform(xs, d, cs, k, ctl))?;
            Ok(out.into_pyarray(py))
        }

        /// Initial centers only (flat k*d).
        #[pyfunction]
        #[pyo3(signature = (x, n_clusters, init, seed, progress=None))]
        fn $init<'py>(
            py: Python<'py>,
            x: PyReadonlyArray2<'py, $t>,
            n_clusters: usize,
            init: &str,
            seed: u64,
            progress: Option<&Bound<'py, PyAny>>,
        ) -> PyResult<Bound<'py, PyArray1<$t>>> {
            let (xs, d) = km_slice2("X", &x)?;
            let init = km_init(init, None)?;
            let out = super::run_long(py, progress, None, |ctl| {
                let n = km::check_x("X", xs, d)?;
                if n_clusters == 0 || n_clusters > n {
                    return Err(crate::error::CoreError::invalid(
                        "n_clusters",
                        format!("n_clusters={n_clusters} must be in 1..=n_samples={n}"),
                    ));
                }
                km::init::init_centers(xs, d, n_clusters, &init, seed, ctl)
            })?;
            Ok(out.into_pyarray(py))
        }

        /// Per-column (mean, population variance) in f64.
        #[pyfunction]
        fn $moments<'py>(
            py: Python<'py>,
            x: PyReadonlyArray2<'py, $t>,
        ) -> PyResult<Moments<'py>> {
            let (xs, d) = km_slice2("X", &x)?;
            let (m, v, s) = super::run_long(py, None, None, |ctl| {
                km::check_x("X", xs, d)?;
                km::column_moments(xs, d, ctl)
            })?;
            Ok((m.into_pyarray(py), v.into_pyarray(py), s.into_pyarray(py)))
        }
    };
}

km_bindings!(
    f32,
    insight_kmeans_fit_f32,
    insight_kmeans_predict_f32,
    insight_kmeans_transform_f32,
    insight_kmeans_init_f32,
    insight_column_moments_f32
);
km_bindings!(
    f64,
    insight_kmeans_fit_f64,
    insight_kmeans_predict_f64,
    insight_kmeans_transform_f64,
    insight_kmeans_init_f64,
    insight_column_moments_f64
);

fn register_kmeans(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(insight_kmeans_fit_f32, m)?)?;
    m.add_function(wrap_pyfunction!(insight_kmeans_fit_f64, m)?)?;
    m.add_function(wrap_pyfunction!(insight_kmeans_predict_f32, m)?)?;
    m.add_function(wrap_pyfunction!(insight_kmeans_predict_f64, m)?)?;
    m.add_function(wrap_pyfunction!(insight_kmeans_transform_f32, m)?)?;
    m.add_function(wrap_pyfunction!(insight_kmeans_transform_f64, m)?)?;
    m.add_function(wrap_pyfunction!(insight_kmeans_init_f32, m)?)?;
    m.add_function(wrap_pyfunction!(insight_kmeans_init_f64, m)?)?;
    m.add_function(wrap_pyfunction!(insight_column_moments_f32, m)?)?;
    m.add_function(wrap_pyfunction!(insight_column_moments_f64, m)?)?;
    Ok(())
}
