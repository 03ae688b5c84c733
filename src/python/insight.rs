//! Bindings of the `insight` core. Names on `_core` are prefixed `insight_` (functions) or
//! `Insight` (classes).

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    register_models(m)?;
    register_kmeans(m)?;
    Ok(())
}

// ===== features, value models, lifecycle, cells ==================================================

fn register_models(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
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
        ) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>)> {
            let (xs, d) = km_slice2("X", &x)?;
            let (m, v) = super::run_long(py, None, None, |ctl| {
                km::check_x("X", xs, d)?;
                km::column_moments(xs, d, ctl)
            })?;
            Ok((m.into_pyarray(py), v.into_pyarray(py)))
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
