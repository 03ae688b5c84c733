//! Bindings of the `sim` core. Names on `_core` are prefixed `sim_` (functions) or `Sim`
//! (classes). Columns go back to Python as numpy arrays built from the core's `Vec`s (no copy).

use super::{guarded, guarded_gil, guarded_pool, run_long, slice1, to_pyerr};
use crate::sim::config::WorldConfig;
use crate::sim::env::Env;
use crate::sim::model::Model;
use crate::sim::population::{self, PopulationData};
use crate::sim::sessions::{Sessions, VisitSampler, ACTIONS};
use ndarray::ArrayView1;
use numpy::{Element, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::Arc;

fn model(py: Python<'_>, config_json: &str) -> PyResult<Model> {
    guarded(py, || Ok(Model::new(WorldConfig::from_json(config_json)?)))
}

/// The default world configuration as JSON.
#[pyfunction]
fn sim_default_config(py: Python<'_>) -> PyResult<String> {
    guarded(py, || {
        Ok(serde_json::to_string(&WorldConfig::default()).expect("serialisable"))
    })
}

/// Validates a configuration (JSON); raises ValueError naming the field.
#[pyfunction]
fn sim_validate_config(py: Python<'_>, config_json: &str) -> PyResult<()> {
    guarded(py, || WorldConfig::from_json(config_json).map(|_| ()))
}

/// Validates one section of a configuration on its own (`kind`: its type's name, e.g.
/// "PurchaseConfig"; JSON); raises ValueError naming the field as `at.field`.
#[pyfunction]
fn sim_validate_section(py: Python<'_>, kind: &str, section_json: &str, at: &str) -> PyResult<()> {
    guarded(py, || {
        crate::sim::config::validate_section(kind, section_json, at)
    })
}

/// The channels in code order: name, whether off-site, the users column of its consent (None if
/// none is needed) and whether it needs the app. The one definition Python reads.
#[pyfunction]
fn sim_channels(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    use crate::sim::config::{CHANNELS, CONSENT, NEEDS_APP, OFFSITE};
    (0..CHANNELS.len())
        .map(|c| {
            let d = PyDict::new(py);
            d.set_item("name", CHANNELS[c])?;
            d.set_item("offsite", OFFSITE[c])?;
            d.set_item("consent", CONSENT[c])?;
            d.set_item("needs_app", NEEDS_APP[c])?;
            Ok(d)
        })
        .collect()
}

macro_rules! put {
    ($py:expr, $d:expr, $($name:literal => $v:expr),* $(,)?) => {
        $( $d.set_item($name, PyArray1::from_vec($py, $v))?; )*
    };
}

/// Checks that a population of `n_users` users fits in memory (`MemoryError`) before any work.
#[pyfunction]
fn sim_check_size(py: Python<'_>, n_users: u64) -> PyResult<()> {
    guarded(py, || population::check_size(n_users))
}

/// Every column of a population by name (the affinities apart: one per channel): the one list
/// behind both directions, the views of [`SimPopulation::columns`] and the columns read back by
/// [`SimPopulation::from_columns`].
macro_rules! each_column {
    ($f:ident) => {
        $f!("signup_day", signup_day);
        $f!("age_band", age_band);
        $f!("city_tier", city_tier);
        $f!("device", device);
        $f!("acquisition_channel", acquisition);
        $f!("push_opt_in", push_opt_in);
        $f!("email_opt_in", email_opt_in);
        $f!("sms_opt_in", sms_opt_in);
        $f!("has_app", has_app);
        $f!("archetype", archetype);
        $f!("is_prospect", is_prospect);
        $f!("sleeping_dog", sleeping_dog);
        $f!("purchase_rate", purchase_rate);
        $f!("dropout_p", dropout_p);
        $f!("spend_rate", spend_rate);
        $f!("mean_spend", mean_spend);
        $f!("price_sensitivity", price_sensitivity);
        $f!("responsiveness", responsiveness);
        $f!("alive_at_end", alive_at_end);
        $f!("death_day", death_day);
        $f!("first_order_day", first_order_day);
        $f!("last_order_day", last_order_day);
        $f!("orders_before_window", orders_before);
        $f!("n_orders", n_orders);
        $f!("gmv", gmv);
        $f!("tx_user_id", tx_user);
        $f!("tx_day", tx_day);
        $f!("tx_amount", tx_amount);
        $f!("tx_category", tx_category);
    };
}

/// A population's static truth, held once in Rust: the environment is built from it and Python
/// sees its columns as read-only views (no copy).
#[pyclass(frozen, module = "growthmachine._core")]
struct SimPopulation {
    model: Arc<Model>,
    config_json: String,
    days: u32,
    seed: u64,
    data: PopulationData,
}

impl SimPopulation {
    fn new(m: Model, config_json: &str, days: u32, seed: u64, data: PopulationData) -> Self {
        SimPopulation {
            model: Arc::new(m),
            config_json: config_json.to_string(),
            days,
            seed,
            data,
        }
    }
}

/// A read-only numpy view of `v`, kept alive by `owner`.
fn view<'py, T: Element>(v: &[T], owner: &Bound<'py, SimPopulation>) -> Bound<'py, PyArray1<T>> {
    // SAFETY: `v` is a column of `owner`'s `PopulationData`, which is never modified after the
    // object is built (the class is frozen): its buffer is neither moved nor freed while `owner`,
    // the array's base object, lives. The array is made read-only, so numpy never writes to it.
    let a = unsafe { PyArray1::borrow_from_array(&ArrayView1::from(v), owner.clone().into_any()) };
    a.readwrite().make_nonwriteable();
    a
}

/// Column `name` of `columns` as a `Vec`, or a `ValueError` naming it.
fn column<T: Element + Copy>(columns: &Bound<'_, PyDict>, name: &str) -> PyResult<Vec<T>> {
    let v = columns
        .get_item(name)?
        .ok_or_else(|| PyValueError::new_err(format!("columns: missing {name:?}")))?;
    let a: PyReadonlyArray1<'_, T> = v.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "columns[{name:?}]: must be a 1-d numpy array of {}",
            std::any::type_name::<T>()
        ))
    })?;
    Ok(slice1(name, &a)?.to_vec())
}

#[pymethods]
impl SimPopulation {
    /// A population rebuilt from its columns (the tables of a pickle or of the user), checked in
    /// the core (lengths, code ranges, finite parameters; the column and row named).
    #[staticmethod]
    fn from_columns(
        py: Python<'_>,
        config_json: &str,
        days: u32,
        seed: u64,
        columns: &Bound<'_, PyDict>,
    ) -> PyResult<Self> {
        let m = model(py, config_json)?;
        let mut p = PopulationData::default();
        macro_rules! take {
            ($name:literal, $field:ident) => {
                p.$field = column(columns, $name)?;
            };
        }
        each_column!(take);
        for c in 0..p.affinity.len() {
            p.affinity[c] = column(columns, &PopulationData::affinity_name(c))?;
        }
        let p = run_long(py, None, None, |_| p.check(&m).map(|_| p))?;
        Ok(SimPopulation::new(m, config_json, days, seed, p))
    }

    /// Every column by name, as read-only views of the core's memory.
    fn columns<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let d = PyDict::new(py);
        let data = &slf.get().data;
        macro_rules! put_view {
            ($name:literal, $field:ident) => {
                d.set_item($name, view(&data.$field, slf))?;
            };
        }
        each_column!(put_view);
        for (c, a) in data.affinity.iter().enumerate() {
            d.set_item(PopulationData::affinity_name(c), view(a, slf))?;
        }
        Ok(d)
    }

    #[getter]
    fn n_users(&self) -> usize {
        self.data.n_users()
    }

    #[getter]
    fn days(&self) -> u32 {
        self.days
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.seed
    }

    #[getter]
    fn config_json(&self) -> &str {
        &self.config_json
    }
}

/// Generates a population: its static truth, held in Rust.
#[pyfunction]
#[pyo3(signature = (config_json, n_users, days, seed, progress=None))]
fn sim_generate<'py>(
    py: Python<'py>,
    config_json: &str,
    n_users: u64,
    days: u32,
    seed: u64,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<SimPopulation> {
    let m = model(py, config_json)?;
    let p = run_long(py, progress, None, |ctl| {
        population::generate(&m, n_users, days, seed, ctl)
    })?;
    Ok(SimPopulation::new(m, config_json, days, seed, p))
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
    /// The world at the end of `population`'s history; `seed` seeds its future randomness.
    #[new]
    fn new(py: Python<'_>, population: &Bound<'_, SimPopulation>, seed: u64) -> PyResult<Self> {
        let pop = population.get();
        let data = &pop.data;
        let env = run_long(py, None, None, |_| {
            Env::from_population(data, pop.seed, pop.days, seed)
        })?;
        Ok(SimEnv {
            model: pop.model.clone(),
            config_json: pop.config_json.clone(),
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

    /// Whether each (user, channel code) pair passes the channel rules (consent, app, opt-outs).
    fn eligible<'py>(
        &self,
        py: Python<'py>,
        user: PyReadonlyArray1<'py, i64>,
        channel: PyReadonlyArray1<'py, u8>,
    ) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let (u, c) = (slice1("user_id", &user)?, u8_codes("channel", &channel)?);
        let (m, env) = (&self.model, &self.env);
        let ok = run_long(py, None, None, |_| env.eligible(m, u, c))?;
        Ok(PyArray1::from_vec(py, ok))
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
                let c = Arc::new(guarded_pool(py, || Ok(Sessions::visit_sampler(&m, env)))?);
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
        let out = guarded_pool(py, || s.step(&m, a))?;
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
        let v = guarded_pool(py, || s.expected_value(&m, a))?;
        Ok(PyArray1::from_vec(py, v))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = guarded_gil(|| self.s.to_bytes())?;
        Ok(PyBytes::new(py, &b))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, config_json: &str, data: &[u8]) -> PyResult<Self> {
        let m = model(py, config_json)?;
        let s = guarded(py, || Sessions::from_bytes(data, &m.cfg))?;
        Ok(SimSessions {
            model: Arc::new(m),
            s,
        })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sim_default_config, m)?)?;
    m.add_function(wrap_pyfunction!(sim_channels, m)?)?;
    m.add_function(wrap_pyfunction!(sim_validate_config, m)?)?;
    m.add_function(wrap_pyfunction!(sim_validate_section, m)?)?;
    m.add_function(wrap_pyfunction!(sim_check_size, m)?)?;
    m.add_function(wrap_pyfunction!(sim_generate, m)?)?;
    m.add_class::<SimPopulation>()?;
    m.add_class::<SimEnv>()?;
    m.add_class::<SimSessions>()?;
    Ok(())
}
