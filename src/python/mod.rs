//! Thin PyO3 bindings: the extension module `growthmachine._core`.
//!
//! One file per core module (`sim.rs`, `insight.rs`, ...), each with a `register` function. Bindings
//! only convert numpy arrays to slices/ndarray views, check input, run long work through
//! [`run_long`] (GIL released, Ctrl-C honoured, progress reported, panics turned into exceptions)
//! and map [`CoreError`] to Python exceptions. Names on `_core` are flat and prefixed by module
//! (`sim_generate`, `InsightKMeans`, ...). Array conversion (dtype, contiguity) is done once on the
//! Python side (`growthmachine._convert`), so bindings take contiguous arrays of the documented dtype.

use crate::control::Control;
use crate::error::CoreError;
use crate::parallel;
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod allocate;
mod allocate_blocks;
pub(crate) mod args;
mod insight;
mod planning;
mod realtime;
mod sim;
mod touchpoint;

create_exception!(
    growthmachine,
    InfeasibleError,
    PyValueError,
    "The problem has no feasible solution; the message names the offending constraints."
);
create_exception!(
    growthmachine,
    StateError,
    PyValueError,
    "Serialised state that cannot be read: unknown kind or format version, corrupt or truncated."
);
create_exception!(
    growthmachine,
    InternalError,
    PyRuntimeError,
    "An internal error (a Rust panic) in growthmachine's core: a bug, please report it."
);

/// Maps a core error to the Python exception the conventions name.
pub(crate) fn to_pyerr(e: CoreError) -> PyErr {
    match e {
        CoreError::Invalid { .. } => PyValueError::new_err(e.to_string()),
        CoreError::Infeasible(m) => InfeasibleError::new_err(m),
        CoreError::Cancelled => PyKeyboardInterrupt::new_err("interrupted"),
        CoreError::State(m) => StateError::new_err(m),
        CoreError::OutOfMemory(m) => PyMemoryError::new_err(m),
        CoreError::Internal(m) => InternalError::new_err(m),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs a long core computation `f` the way every binding must:
/// - on a worker thread inside the growthmachine pool, with the GIL released;
/// - the calling thread wakes every 50 ms to run Python's signal handlers: Ctrl-C cancels the
///   [`Control`] and raises `KeyboardInterrupt` once the core has stopped (cores check at least
///   every ~10 ms);
/// - `progress`, if given, is called as `progress(done, total)` from the calling thread;
/// - a Rust panic becomes `InternalError` (never an abort); errors map through [`to_pyerr`].
pub(crate) fn run_long<R, F>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    time_limit: Option<f64>,
    f: F,
) -> PyResult<R>
where
    R: Send,
    F: FnOnce(&Control) -> Result<R, CoreError> + Send,
{
    // A limit too far away for the clock (1e308 s) is no limit: never a panic.
    let deadline = time_limit
        .filter(|t| t.is_finite() && *t >= 0.0)
        .and_then(|t| Duration::try_from_secs_f64(t).ok())
        .and_then(|d| Instant::now().checked_add(d));
    let ctl = Control::with_deadline(deadline);
    let (tx, rx) = mpsc::channel::<()>();
    let (joined, py_err) = std::thread::scope(|s| {
        let ctl_ref = &ctl;
        let handle = s.spawn(move || {
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| parallel::install(|| f(ctl_ref))));
            let _ = tx.send(());
            r
        });
        let mut rx = rx;
        let mut py_err: Option<PyErr> = None;
        let mut last = (u64::MAX, u64::MAX);
        loop {
            let (finished, back) = py.detach(move || {
                let done = !matches!(
                    rx.recv_timeout(Duration::from_millis(50)),
                    Err(mpsc::RecvTimeoutError::Timeout)
                );
                (done, rx)
            });
            rx = back;
            if py_err.is_none() {
                if let Err(e) = py.check_signals() {
                    ctl.cancel();
                    py_err = Some(e);
                } else if let Some(cb) = progress {
                    let now = ctl.progress();
                    if now != last {
                        last = now;
                        if let Err(e) = cb.call1(now) {
                            ctl.cancel();
                            py_err = Some(e);
                        }
                    }
                }
            }
            if finished {
                break;
            }
        }
        (handle.join(), py_err)
    });
    if let Some(e) = py_err {
        return Err(e);
    }
    match joined {
        Ok(Ok(Ok(r))) => Ok(r),
        Ok(Ok(Err(e))) => Err(to_pyerr(e)),
        Ok(Err(p)) | Err(p) => Err(internal_error(p.as_ref())),
    }
}

/// The `InternalError` a Rust panic becomes (never `PanicException`, never an abort).
fn internal_error(p: &(dyn std::any::Any + Send)) -> PyErr {
    InternalError::new_err(format!(
        "internal error in growthmachine's core (a bug, please report it): {}",
        panic_message(p)
    ))
}

/// Runs a short core computation `f` with the GIL released, on the calling thread (no hand-off:
/// for calls of microseconds that [`run_long`] would slow down); a Rust panic becomes
/// `InternalError` (never `PanicException`), errors map through [`to_pyerr`]. Work that can run
/// long goes through [`run_long`] instead (Ctrl-C); [`guarded_pool`] runs `f` on the pool.
pub(crate) fn guarded<R, F>(py: Python<'_>, f: F) -> PyResult<R>
where
    R: Send,
    F: FnOnce() -> Result<R, CoreError> + Send,
{
    settle(py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(f))))
}

/// [`guarded`] keeping the GIL: for short work done while holding an object's lock, which
/// another Python thread may be waiting for with the GIL held (releasing the GIL there could
/// deadlock). A Rust panic becomes `InternalError`, errors map through [`to_pyerr`].
pub(crate) fn guarded_gil<R, F>(f: F) -> PyResult<R>
where
    F: FnOnce() -> Result<R, CoreError>,
{
    settle(std::panic::catch_unwind(AssertUnwindSafe(f)))
}

/// The outcome of a guarded call as a Python result.
fn settle<R>(r: std::thread::Result<Result<R, CoreError>>) -> PyResult<R> {
    match r {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(to_pyerr(e)),
        Err(p) => Err(internal_error(p.as_ref())),
    }
}

/// [`guarded`] with `f` inside the growthmachine pool (for short parallel work).
pub(crate) fn guarded_pool<R, F>(py: Python<'_>, f: F) -> PyResult<R>
where
    R: Send,
    F: FnOnce() -> Result<R, CoreError> + Send,
{
    guarded(py, || parallel::install(f))
}

/// A contiguous 1-d array as a slice, or a `ValueError` naming `arg`.
pub(crate) fn slice1<'a, T: numpy::Element>(
    arg: &str,
    a: &'a PyReadonlyArray1<'_, T>,
) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| {
        PyValueError::new_err(format!(
            "{arg}: must be a contiguous 1-d array (got shape {:?})",
            a.shape()
        ))
    })
}

/// A C-contiguous 2-d array as (slice, rows, columns), or a `ValueError` naming `arg`.
pub(crate) fn slice2<'a, T: numpy::Element>(
    arg: &str,
    a: &'a PyReadonlyArray2<'_, T>,
) -> PyResult<(&'a [T], usize, usize)> {
    let (n, d) = (a.shape()[0], a.shape()[1]);
    let s = a.as_slice().map_err(|_| {
        PyValueError::new_err(format!(
            "{arg}: must be a C-contiguous 2-d array (got shape {:?})",
            a.shape()
        ))
    })?;
    Ok((s, n, d))
}

/// Why `n` is not a valid thread count (see [`parallel::check_threads`]), or `None` if it is; the
/// one check behind `set_num_threads`, env `GROWTHMACHINE_NUM_THREADS` and the CLI's `--threads`.
#[pyfunction]
fn thread_count_error(n: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if !n.gt(0)? {
        return Ok(Some("must be a positive integer".to_string()));
    }
    // Larger than u128: far above the cap.
    let n = n.extract::<u128>().unwrap_or(u128::MAX);
    Ok(parallel::check_threads(n).err())
}

#[pyfunction]
fn set_num_threads(n: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Some(m) = thread_count_error(n)? {
        return Err(PyValueError::new_err(format!("n: {m}, got {n}")));
    }
    parallel::set_num_threads(n.extract()?);
    Ok(())
}

#[pyfunction]
fn get_num_threads() -> usize {
    parallel::num_threads()
}

/// True if every value is finite (parallel, no allocation).
#[pyfunction]
fn all_finite(py: Python<'_>, values: PyReadonlyArray1<'_, f64>) -> PyResult<bool> {
    use rayon::prelude::*;
    let v = slice1("values", &values)?;
    guarded_pool(py, || {
        Ok(v.par_chunks(1 << 16)
            .all(|c| c.iter().all(|x| x.is_finite())))
    })
}

/// Test hook: panics inside a long call (must surface as `InternalError`).
#[pyfunction]
fn _debug_panic(py: Python<'_>) -> PyResult<()> {
    run_long(py, None, None, |_| -> Result<(), CoreError> {
        panic!("deliberate panic for testing")
    })
}

/// Test hook: a long, parallel, seeded computation that checks for cancellation and reports
/// progress; returns a value that must not depend on the thread count.
#[pyfunction]
#[pyo3(signature = (seed, n_chunks, chunk_work=200_000, progress=None))]
fn _debug_long(
    py: Python<'_>,
    seed: u64,
    n_chunks: u64,
    chunk_work: u64,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<f64> {
    use rand::Rng;
    use rayon::prelude::*;
    run_long(py, progress, None, |ctl| {
        let count = usize::try_from(n_chunks).ok();
        let bytes = crate::error::checked_bytes("n_chunks", "the chunk sums", count, 8)?;
        crate::error::check_fits_memory("n_chunks", bytes)?;
        ctl.set_total(n_chunks);
        let parts: Vec<f64> = (0..n_chunks)
            .into_par_iter()
            .map(|c| {
                ctl.check()?;
                let mut rng = crate::rng::stream(seed, c);
                let mut s = 0.0f64;
                for _ in 0..chunk_work {
                    s += rng.random::<f64>();
                }
                ctl.advance(1);
                Ok(s)
            })
            .collect::<Result<_, CoreError>>()?;
        Ok(parts.iter().sum())
    })
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("InfeasibleError", py.get_type::<InfeasibleError>())?;
    m.add("StateError", py.get_type::<StateError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    // A thread count set in the environment is checked once, when the extension loads.
    parallel::env_threads().map_err(PyValueError::new_err)?;
    // rust-numpy loads NumPy's C API (and its borrow-checking capsule) on first use and panics
    // if that import fails, e.g. when Ctrl-C lands during it: the first array argument of a
    // call would then raise PanicException instead of KeyboardInterrupt. Load both now.
    {
        use numpy::{PyArray1, PyArrayMethods};
        let a = PyArray1::<f64>::zeros(py, 0, false);
        let _ = a.try_readonly()?;
    }
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(thread_count_error, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(all_finite, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_panic, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_long, m)?)?;
    sim::register(m)?;
    insight::register(m)?;
    allocate::register(m)?;
    allocate_blocks::register(m)?;
    planning::register(m)?;
    realtime::register(m)?;
    touchpoint::register(m)?;
    Ok(())
}
