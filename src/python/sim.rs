//! Bindings of the `sim` core. Names on `_core` are prefixed `sim_` (functions) or `Sim`
//! (classes). Columns go back to Python as numpy arrays built from the core's `Vec`s (no copy).

use super::{run_long, slice1, to_pyerr};
use crate::sim::config::WorldConfig;
use crate::sim::env::Env;
use crate::sim::model::{Model, StaticUser};
use crate::sim::population;
use crate::sim::sessions::{Sessions, VisitSampler, ACTIONS};
use numpy::{PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::Arc;

fn model(config_json: &str) -> PyResult<Model> {
    Ok(Model::new(
        WorldConfig::from_json(config_json).map_err(to_pyerr)?,
    ))
}

/// The default world configuration as JSON.
#[pyfunction]
fn sim_default_config() -> String {
    serde_json::to_string(&WorldConfig::default()).expect("serialisable")
}

/// Validates a configuration (JSON); raises ValueError naming the field.
#[pyfunction]
fn sim_validate_config(config_json: &str) -> PyResult<()> {
    WorldConfig::from_json(config_json).map_err(to_pyerr)?;
    Ok(())
}

macro_rules! put {
    ($py:expr, $d:expr, $($name:literal => $v:expr),* $(,)?) => {
        $( $d.set_item($name, PyArray1::from_vec($py, $v))?; )*
    };
}

/// Checks that a population of `n_users` users fits in memory (`MemoryError`) before any work.
#[pyfunction]
fn sim_check_size(n_users: u64) -> PyResult<()> {
    population::check_size(n_users).map_err(to_pyerr)
}

/// Generates a population; returns a dict of column name -> numpy array.
#[pyfunction]
#[pyo3(signature = (config_json, n_users, days, seed, progress=None))]
fn sim_generate<'py>(
    py: Python<'py>,
    config_json: &str,
    n_users: u64,
    days: u32,
    seed: u64,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let m = model(config_json)?;
    let p = run_long(py, progress, None, |ctl| {
        population::generate(&m, n_users, days, seed, ctl)
    })?;
    let d = PyDict::new(py);
    let [a0, a1, a2, a3, a4] = p.affinity;
    put!(py, d,
        "signup_day" => p.signup_day,
        "age_band" => p.age_band,
        "city_tier" => p.city_tier,
        "device" => p.device,
        "acquisition_channel" => p.acquisition,
        "push_opt_in" => p.push_opt_in,
        "email_opt_in" => p.email_opt_in,
        "sms_opt_in" => p.sms_opt_in,
        "has_app" => p.has_app,
        "archetype" => p.archetype,
        "is_prospect" => p.is_prospect,
        "sleeping_dog" => p.sleeping_dog,
        "purchase_rate" => p.purchase_rate,
        "dropout_p" => p.dropout_p,
        "spend_rate" => p.spend_rate,
        "mean_spend" => p.mean_spend,
        "price_sensitivity" => p.price_sensitivity,
        "responsiveness" => p.responsiveness,
        "affinity_push" => a0,
        "affinity_sms" => a1,
        "affinity_email" => a2,
        "affinity_in_app" => a3,
        "affinity_ads" => a4,
        "alive_at_end" => p.alive_at_end,
        "death_day" => p.death_day,
        "first_order_day" => p.first_order_day,
        "last_order_day" => p.last_order_day,
        "orders_before_window" => p.orders_before,
        "n_orders" => p.n_orders,
        "gmv" => p.gmv,
        "tx_user_id" => p.tx_user,
        "tx_day" => p.tx_day,
        "tx_amount" => p.tx_amount,
        "tx_category" => p.tx_category,
    );
    Ok(d)
}

/// The environment's state (the per-user static parameters are re-drawn from the population's
/// streams, so only the dynamic state lives here).
#[pyclass(module = "growthmachine._core")]
struct SimEnv {
    model: Arc<Model>,
    config_json: String,
    env: Env,
    /// Cached visit sampler for `sessions` (static parameters only).
    visit_sampler: Option<Arc<VisitSampler>>,
}

fn u8_codes<'a>(arg: &str, a: &'a PyReadonlyArray1<'_, u8>) -> PyResult<&'a [u8]> {
    slice1(arg, a)
}

type TreatmentSlices<'a> = (&'a [i64], &'a [u8], &'a [u8], &'a [u8], &'a [i64]);

/// A treatment table's columns (user, benefit, channel, content, day) as slices, for `apply` and
/// `expected_outcome`.
fn treatment_slices<'a>(
    user: &'a PyReadonlyArray1<'_, i64>,
    benefit: &'a PyReadonlyArray1<'_, u8>,
    channel: &'a PyReadonlyArray1<'_, u8>,
    content: &'a PyReadonlyArray1<'_, u8>,
    day: &'a PyReadonlyArray1<'_, i64>,
) -> PyResult<TreatmentSlices<'a>> {
    let (u, b, c, k) = pair_slices(user, benefit, channel, content)?;
    Ok((u, b, c, k, slice1("day", day)?))
}

type PairSlices<'a> = (&'a [i64], &'a [u8], &'a [u8], &'a [u8]);

/// The (user, action code) columns of single-action pairs (true uplift, oracle candidates).
fn pair_slices<'a>(
    user: &'a PyReadonlyArray1<'_, i64>,
    benefit: &'a PyReadonlyArray1<'_, u8>,
    channel: &'a PyReadonlyArray1<'_, u8>,
    content: &'a PyReadonlyArray1<'_, u8>,
) -> PyResult<PairSlices<'a>> {
    Ok((
        slice1("user_id", user)?,
        u8_codes("benefit", benefit)?,
        u8_codes("channel", channel)?,
        u8_codes("content", content)?,
    ))
}

#[pymethods]
impl SimEnv {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        config_json: &str,
        pop_seed: u64,
        hist_days: u32,
        seed: u64,
        params: PyReadonlyArray2<'_, f32>,
        codes: PyReadonlyArray2<'_, u8>,
        alive: PyReadonlyArray1<'_, bool>,
        customer: PyReadonlyArray1<'_, bool>,
        last_order: PyReadonlyArray1<'_, f64>,
        n_orders: PyReadonlyArray1<'_, u32>,
        gmv: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<Self> {
        let m = model(config_json)?;
        let (ps, cs) = (params.as_array(), codes.as_array());
        if ps.ncols() != 11 || cs.ncols() != 6 || ps.nrows() != cs.nrows() {
            return Err(PyValueError::new_err(format!(
                "params/codes: expected shapes (n, 11) and (n, 6), got {:?} and {:?}",
                ps.shape(),
                cs.shape()
            )));
        }
        let p = params
            .as_slice()
            .map_err(|_| PyValueError::new_err("params: must be C-contiguous"))?;
        let c = codes
            .as_slice()
            .map_err(|_| PyValueError::new_err("codes: must be C-contiguous"))?;
        let o = &m.cfg.observables;
        let limits = [
            m.cfg.archetypes.len() as u8,
            o.age_bands.len() as u8,
            o.city_tiers.len() as u8,
            o.devices.len() as u8,
            o.acquisition_channels.len() as u8,
            64,
        ];
        use rayon::prelude::*;
        let statics: Vec<StaticUser> = py
            .detach(|| {
                crate::parallel::install(|| {
                    p.par_chunks_exact(11)
                        .zip(c.par_chunks_exact(6))
                        .enumerate()
                        .map(|(i, (p, c))| {
                            if let Some(j) = (0..6).find(|&j| c[j] >= limits[j]) {
                                return Err(format!(
                                    "codes: row {i}, column {j}: code {} out of range",
                                    c[j]
                                ));
                            }
                            if p.iter().any(|x| !x.is_finite()) {
                                return Err(format!("params: row {i} has a non-finite value"));
                            }
                            Ok(StaticUser {
                                lambda: p[0],
                                dropout: p[1],
                                nu: p[2],
                                price_sensitivity: p[3],
                                responsiveness: p[4],
                                affinity: [p[5], p[6], p[7], p[8], p[9]],
                                signup: p[10],
                                archetype: c[0],
                                age: c[1],
                                tier: c[2],
                                device: c[3],
                                acq: c[4],
                                flags: c[5],
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()
                })
            })
            .map_err(PyValueError::new_err)?;
        let env = Env::new(
            pop_seed,
            hist_days,
            seed,
            statics,
            slice1("alive", &alive)?,
            slice1("customer", &customer)?,
            slice1("last_order", &last_order)?,
            slice1("n_orders", &n_orders)?,
            slice1("gmv", &gmv)?,
        )
        .map_err(to_pyerr)?;
        Ok(SimEnv {
            model: Arc::new(m),
            config_json: config_json.to_string(),
            env,
            visit_sampler: None,
        })
    }

    #[getter]
    fn day(&self) -> i64 {
        self.env.day
    }

    #[getter]
    fn n_users(&self) -> usize {
        self.env.n_users()
    }

    /// Per-user channel opt-out bits (bit c = channel c).
    fn optout<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u8>> {
        PyArray1::from_vec(py, self.env.users.iter().map(|s| s.optout).collect())
    }

    /// Per-user dynamic state as numpy arrays.
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let u = &self.env.users;
        let d = PyDict::new(py);
        put!(py, d,
            "alive" => u.iter().map(|s| s.alive).collect::<Vec<_>>(),
            "customer" => u.iter().map(|s| s.customer).collect::<Vec<_>>(),
            "optout" => u.iter().map(|s| s.optout).collect::<Vec<_>>(),
            "fatigue" => u.iter().map(|s| s.fatigue).collect::<Vec<_>>(),
            "last_touch" => u.iter().map(|s| s.last_touch).collect::<Vec<_>>(),
            "n_orders" => u.iter().map(|s| s.n_orders).collect::<Vec<_>>(),
            "last_order" => u.iter().map(|s| s.last_order).collect::<Vec<_>>(),
            "gmv" => u.iter().map(|s| s.gmv).collect::<Vec<_>>(),
        );
        Ok(d)
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (user, benefit, channel, content, day, start_day, days, progress=None))]
    fn apply<'py>(
        &mut self,
        py: Python<'py>,
        user: PyReadonlyArray1<'py, i64>,
        benefit: PyReadonlyArray1<'py, u8>,
        channel: PyReadonlyArray1<'py, u8>,
        content: PyReadonlyArray1<'py, u8>,
        day: PyReadonlyArray1<'py, i64>,
        start_day: i64,
        days: i64,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (u, b, c, k, dd) = treatment_slices(&user, &benefit, &channel, &content, &day)?;
        let m = self.model.clone();
        let env = &mut self.env;
        let o = run_long(py, progress, None, |ctl| {
            env.apply(&m, u, b, c, k, dd, start_day, days, ctl)
        })?;
        let d = PyDict::new(py);
        put!(py, d,
            "converted" => o.converted,
            "orders" => o.orders,
            "gmv" => o.gmv,
            "incentive_cost" => o.incentive_cost,
            "channel_cost" => o.channel_cost,
            "exposures" => o.exposures,
            "touches" => o.touches,
            "opted_out" => o.opted_out,
            "redeemed" => o.redeemed,
            "tx_user" => o.tx_user,
            "tx_day" => o.tx_day,
            "tx_amount" => o.tx_amount,
        );
        Ok(d)
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (user, benefit, channel, content, start_day, days))]
    fn true_uplift<'py>(
        &self,
        py: Python<'py>,
        user: PyReadonlyArray1<'py, i64>,
        benefit: PyReadonlyArray1<'py, u8>,
        channel: PyReadonlyArray1<'py, u8>,
        content: PyReadonlyArray1<'py, u8>,
        start_day: i64,
        days: i64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (u, b, c, k) = pair_slices(&user, &benefit, &channel, &content)?;
        let m = self.model.clone();
        let env = &self.env;
        let e = run_long(py, None, None, |ctl| {
            env.true_uplift(&m, u, b, c, k, start_day, days, ctl)
        })?;
        let d = PyDict::new(py);
        put!(py, d,
            "eligible" => e.iter().map(|x| x.eligible).collect::<Vec<_>>(),
            "incremental_conversion" => e.iter().map(|x| x.incremental_conversion).collect::<Vec<_>>(),
            "incremental_orders" => e.iter().map(|x| x.incremental_orders).collect::<Vec<_>>(),
            "incremental_gmv" => e.iter().map(|x| x.incremental_gmv).collect::<Vec<_>>(),
            "expected_incentive_cost" => e.iter().map(|x| x.expected_incentive_cost).collect::<Vec<_>>(),
            "channel_cost" => e.iter().map(|x| x.channel_cost).collect::<Vec<_>>(),
            "baseline_conversion" => e.iter().map(|x| x.baseline_conversion).collect::<Vec<_>>(),
            "baseline_gmv" => e.iter().map(|x| x.baseline_gmv).collect::<Vec<_>>(),
        );
        Ok(d)
    }

    /// The oracle's options (hull points of every user over the actions, true effects); scoring
    /// only.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (user, benefit, channel, content, start_day, days, objective, progress=None))]
    fn oracle_candidates<'py>(
        &self,
        py: Python<'py>,
        user: PyReadonlyArray1<'py, i64>,
        benefit: PyReadonlyArray1<'py, u8>,
        channel: PyReadonlyArray1<'py, u8>,
        content: PyReadonlyArray1<'py, u8>,
        start_day: i64,
        days: i64,
        objective: &str,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        use crate::sim::oracle::Objective;
        let objective = match objective {
            "profit" => Objective::Profit,
            "gmv" => Objective::Gmv,
            o => {
                return Err(PyValueError::new_err(format!(
                    "objective: must be 'profit' or 'gmv', got {o:?}"
                )))
            }
        };
        let (u, b, c, k) = pair_slices(&user, &benefit, &channel, &content)?;
        let m = self.model.clone();
        let env = &self.env;
        let o = run_long(py, progress, None, |ctl| {
            env.oracle_candidates(&m, u, b, c, k, start_day, days, objective, ctl)
        })?;
        let d = PyDict::new(py);
        put!(py, d,
            "user_id" => o.user,
            "action" => o.action,
            "value" => o.value,
            "expected_cost" => o.cost,
            "incremental_gmv" => o.gmv,
            "incremental_profit" => o.profit,
            "incremental_conversion" => o.conversion,
        );
        Ok(d)
    }

    /// The expected outcome of a treatment table (validated like `apply`), without changing the
    /// state: one row per user with at least one touch, sorted by user id.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (user, benefit, channel, content, day, start_day, days, progress=None))]
    fn expected_outcome<'py>(
        &self,
        py: Python<'py>,
        user: PyReadonlyArray1<'py, i64>,
        benefit: PyReadonlyArray1<'py, u8>,
        channel: PyReadonlyArray1<'py, u8>,
        content: PyReadonlyArray1<'py, u8>,
        day: PyReadonlyArray1<'py, i64>,
        start_day: i64,
        days: i64,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (u, b, c, k, dd) = treatment_slices(&user, &benefit, &channel, &content, &day)?;
        let m = self.model.clone();
        let env = &self.env;
        let o = run_long(py, progress, None, |ctl| {
            env.expected_outcome(&m, u, b, c, k, dd, start_day, days, ctl)
        })?;
        let (user_id, r) = (o.user, &o.rows);
        let d = PyDict::new(py);
        put!(py, d,
            "user_id" => user_id,
            "touches" => r.iter().map(|x| x.touches).collect::<Vec<_>>(),
            "exposures" => r.iter().map(|x| x.exposures).collect::<Vec<_>>(),
            "incremental_conversion" => r.iter().map(|x| x.incremental_conversion).collect::<Vec<_>>(),
            "incremental_orders" => r.iter().map(|x| x.incremental_orders).collect::<Vec<_>>(),
            "incremental_gmv" => r.iter().map(|x| x.incremental_gmv).collect::<Vec<_>>(),
            "expected_incentive_cost" => r.iter().map(|x| x.expected_incentive_cost).collect::<Vec<_>>(),
            "channel_cost" => r.iter().map(|x| x.channel_cost).collect::<Vec<_>>(),
            "p_optout" => r.iter().map(|x| x.p_optout).collect::<Vec<_>>(),
            "expected_optouts" => r.iter().map(|x| x.expected_optouts).collect::<Vec<_>>(),
            "baseline_conversion" => r.iter().map(|x| x.baseline_conversion).collect::<Vec<_>>(),
            "baseline_gmv" => r.iter().map(|x| x.baseline_gmv).collect::<Vec<_>>(),
        );
        Ok(d)
    }

    #[pyo3(signature = (n, seed))]
    fn sessions(&mut self, py: Python<'_>, n: usize, seed: u64) -> PyResult<SimSessions> {
        let m = self.model.clone();
        let env = &self.env;
        let sampler = match &self.visit_sampler {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(
                    py.detach(|| crate::parallel::install(|| Sessions::visit_sampler(&m, env))),
                );
                self.visit_sampler = Some(c.clone());
                c
            }
        };
        let env = &self.env;
        let s = run_long(py, None, None, |ctl| {
            Sessions::new(&m, env, n, seed, Some(&sampler), ctl)
        })?;
        Ok(SimSessions {
            model: self.model.clone(),
            s,
        })
    }

    #[getter]
    fn epoch(&self) -> u64 {
        self.env.epoch
    }

    /// Restores the dynamic state saved from [`SimEnv::state`] (for pickling; arrays, not JSON,
    /// so that 10M users stay small and NaN survives).
    #[allow(clippy::too_many_arguments)]
    fn set_state(
        &mut self,
        day: i64,
        epoch: u64,
        alive: PyReadonlyArray1<'_, bool>,
        customer: PyReadonlyArray1<'_, bool>,
        optout: PyReadonlyArray1<'_, u8>,
        fatigue: PyReadonlyArray1<'_, f32>,
        last_touch: PyReadonlyArray1<'_, i32>,
        n_orders: PyReadonlyArray1<'_, u32>,
        last_order: PyReadonlyArray1<'_, f64>,
        gmv: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<()> {
        let n = self.env.n_users();
        let (al, cu, op, fa, lt, no, lo, gm) = (
            slice1("alive", &alive)?,
            slice1("customer", &customer)?,
            slice1("optout", &optout)?,
            slice1("fatigue", &fatigue)?,
            slice1("last_touch", &last_touch)?,
            slice1("n_orders", &n_orders)?,
            slice1("last_order", &last_order)?,
            slice1("gmv", &gmv)?,
        );
        for (name, len) in [
            ("alive", al.len()),
            ("customer", cu.len()),
            ("optout", op.len()),
            ("fatigue", fa.len()),
            ("last_touch", lt.len()),
            ("n_orders", no.len()),
            ("last_order", lo.len()),
            ("gmv", gm.len()),
        ] {
            crate::error::check_len(name, len, n, "the population").map_err(to_pyerr)?;
        }
        for (i, u) in self.env.users.iter_mut().enumerate() {
            u.alive = al[i];
            u.customer = cu[i];
            u.optout = op[i];
            u.fatigue = fa[i];
            u.last_touch = lt[i];
            u.n_orders = no[i];
            u.last_order = lo[i];
            u.gmv = gm[i];
        }
        self.env.day = day;
        self.env.epoch = epoch;
        Ok(())
    }

    #[getter]
    fn config_json(&self) -> String {
        self.config_json.clone()
    }
}

type RewardCost<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// A batch of site-visit sessions.
#[pyclass(module = "growthmachine._core")]
struct SimSessions {
    model: Arc<Model>,
    s: Sessions,
}

#[pymethods]
impl SimSessions {
    #[getter]
    fn n(&self) -> usize {
        self.s.n()
    }
    #[getter]
    fn n_features(&self) -> usize {
        self.s.n_features
    }
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.s.feature_names.clone()
    }
    #[getter]
    fn action_names(&self) -> Vec<String> {
        ACTIONS.iter().map(|s| s.to_string()).collect()
    }
    #[getter]
    fn steps(&self) -> u64 {
        self.s.steps
    }
    #[getter]
    fn user_id<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_slice(py, &self.s.user)
    }
    #[getter]
    fn stage<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i8>> {
        PyArray1::from_slice(py, &self.s.stage)
    }
    #[getter]
    fn held<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u8>> {
        PyArray1::from_slice(py, &self.s.held)
    }
    #[getter]
    fn context<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let a = ndarray::Array2::from_shape_vec(
            (self.s.n(), self.s.n_features),
            self.s.context.clone(),
        )
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyArray2::from_owned_array(py, a))
    }

    fn step<'py>(
        &mut self,
        py: Python<'py>,
        actions: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<RewardCost<'py>> {
        let a = slice1("actions", &actions)?;
        let m = self.model.clone();
        let s = &mut self.s;
        let out = py
            .detach(|| crate::parallel::install(|| s.step(&m, a)))
            .map_err(to_pyerr)?;
        Ok((
            PyArray1::from_vec(py, out.reward),
            PyArray1::from_vec(py, out.cost),
        ))
    }

    fn expected_value<'py>(
        &self,
        py: Python<'py>,
        actions: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let a = slice1("actions", &actions)?;
        let m = self.model.clone();
        let s = &self.s;
        let v = py
            .detach(|| crate::parallel::install(|| s.expected_value(&m, a)))
            .map_err(to_pyerr)?;
        Ok(PyArray1::from_vec(py, v))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = crate::state::to_bytes("SimSessions", 1, &self.s).map_err(to_pyerr)?;
        Ok(PyBytes::new(py, &b))
    }

    #[staticmethod]
    fn from_bytes(config_json: &str, data: &[u8]) -> PyResult<Self> {
        let m = model(config_json)?;
        let (_, s): (u32, Sessions) =
            crate::state::from_bytes("SimSessions", &[1], data).map_err(to_pyerr)?;
        Ok(SimSessions {
            model: Arc::new(m),
            s,
        })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sim_default_config, m)?)?;
    m.add_function(wrap_pyfunction!(sim_validate_config, m)?)?;
    m.add_function(wrap_pyfunction!(sim_check_size, m)?)?;
    m.add_function(wrap_pyfunction!(sim_generate, m)?)?;
    m.add_class::<SimEnv>()?;
    m.add_class::<SimSessions>()?;
    Ok(())
}
