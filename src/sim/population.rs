//! Population generation: users, their hidden parameters and a buy-till-you-die order history.
//!
//! Per user (own random streams keyed by the user id, so the output never depends on threads or
//! on chunking): draw the static parameters ([`Model::draw_user`]); non-prospects place a first
//! order after sign-up, then repeat orders arrive as a Poisson process of rate
//! `lambda * season(day)` (simulated by thinning), and after each repeat order the user drops out
//! with probability `p` (BG/NBD). Order values follow Gamma-Gamma. Only orders inside the window
//! `[0, days)` are recorded; history before it (sign-ups up to `history_days` earlier) shapes who
//! is still alive.
//!
//! The generated columns ([`PopulationData`]) are the population's static truth: the environment
//! is built from them ([`Env::from_population`](super::env::Env::from_population)), and a
//! population rebuilt from its tables (a pickle, user frames) is checked by
//! [`PopulationData::check`] before anything reads it.

use super::config::CHANNELS;
use super::model::{Model, StaticUser, UserParams, DOMAIN_HISTORY};
use crate::control::Control;
use crate::error::{check_fits_memory, checked_bytes, CoreError, Result};
use crate::parallel::CHUNK;
use crate::rng::stream2;
use rand::Rng as _;
use rand_distr::{Distribution, Exp1};
use rayon::prelude::*;

/// Chunks generated in parallel before their output is appended (bounds transient memory).
const BATCH_CHUNKS: usize = 32;

/// What the history of one user left behind.
#[derive(Clone, Copy, Debug, Default)]
pub struct HistorySummary {
    pub alive: bool,
    pub death: f64,
    pub last_order: f64,
    pub orders_before: u32,
    pub orders: u32,
    pub gmv: f64,
}

/// Simulates user `uid`'s orders up to `days`, calling `emit(day, amount, category)` for every
/// order inside the window.
pub fn simulate_history(
    m: &Model,
    pop_seed: u64,
    uid: u64,
    days: u32,
    u: &UserParams,
    mut emit: impl FnMut(i32, f64, u8),
) -> HistorySummary {
    let mut h = HistorySummary {
        alive: true,
        death: f64::NAN,
        last_order: f64::NAN,
        ..Default::default()
    };
    if u.is_prospect {
        return h;
    }
    let end = days as f64;
    let mut t = u.first_order;
    if t >= end {
        return h;
    }
    let mut rng = stream2(pop_seed, DOMAIN_HISTORY, uid);
    let cat = &m.arch[u.archetype as usize].category;
    let mut record = |t: f64, rng: &mut crate::rng::Rng, h: &mut HistorySummary| {
        let amount = m.draw_amount(u, rng);
        let c = cat.draw(rng);
        h.last_order = t;
        if t >= 0.0 {
            h.orders += 1;
            h.gmv += amount;
            emit(t.floor() as i32, amount, c);
        } else {
            h.orders_before += 1;
        }
    };
    record(t, &mut rng, &mut h);
    let smax = m.season_max;
    let rate_max = u.lambda * smax;
    loop {
        let e: f64 = Exp1.sample(&mut rng);
        t += e / rate_max;
        if t >= end {
            break;
        }
        let accept = m.season(t.floor() as i64) / smax;
        if rng.random::<f64>() >= accept {
            continue;
        }
        record(t, &mut rng, &mut h);
        if rng.random::<f64>() < u.dropout {
            h.alive = false;
            h.death = t;
            break;
        }
    }
    h
}

fn out_of_memory() -> CoreError {
    CoreError::OutOfMemory(
        "n_users: too large for this machine: the population does not fit".into(),
    )
}

/// An empty column with room for `n` users; `OutOfMemory` (never an abort) if it does not fit.
fn room<T>(n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| out_of_memory())?;
    Ok(v)
}

/// Every column of a generated population.
#[derive(Debug, Default)]
pub struct PopulationData {
    // users
    pub signup_day: Vec<i32>,
    pub age_band: Vec<u8>,
    pub city_tier: Vec<u8>,
    pub device: Vec<u8>,
    pub acquisition: Vec<u8>,
    pub push_opt_in: Vec<bool>,
    pub email_opt_in: Vec<bool>,
    pub sms_opt_in: Vec<bool>,
    pub has_app: Vec<bool>,
    // truth
    pub archetype: Vec<u8>,
    pub is_prospect: Vec<bool>,
    pub sleeping_dog: Vec<bool>,
    pub purchase_rate: Vec<f64>,
    pub dropout_p: Vec<f64>,
    pub spend_rate: Vec<f64>,
    pub mean_spend: Vec<f64>,
    pub price_sensitivity: Vec<f32>,
    pub responsiveness: Vec<f32>,
    pub affinity: [Vec<f32>; 5],
    pub alive_at_end: Vec<bool>,
    pub death_day: Vec<f64>,
    pub first_order_day: Vec<f64>,
    pub last_order_day: Vec<f64>,
    pub orders_before: Vec<u32>,
    pub n_orders: Vec<u32>,
    pub gmv: Vec<f64>,
    // transactions
    pub tx_user: Vec<i64>,
    pub tx_day: Vec<i32>,
    pub tx_amount: Vec<f64>,
    pub tx_category: Vec<u8>,
}

impl PopulationData {
    /// Bytes per user of the per-user columns (transactions come on top).
    const BYTES_PER_USER: usize = 116;

    /// Empty columns with room for `n` users; `OutOfMemory` (never an abort) if they do not fit.
    fn try_with_capacity(n: usize) -> Result<Self> {
        Ok(PopulationData {
            signup_day: room(n)?,
            age_band: room(n)?,
            city_tier: room(n)?,
            device: room(n)?,
            acquisition: room(n)?,
            push_opt_in: room(n)?,
            email_opt_in: room(n)?,
            sms_opt_in: room(n)?,
            has_app: room(n)?,
            archetype: room(n)?,
            is_prospect: room(n)?,
            sleeping_dog: room(n)?,
            purchase_rate: room(n)?,
            dropout_p: room(n)?,
            spend_rate: room(n)?,
            mean_spend: room(n)?,
            price_sensitivity: room(n)?,
            responsiveness: room(n)?,
            alive_at_end: room(n)?,
            death_day: room(n)?,
            first_order_day: room(n)?,
            last_order_day: room(n)?,
            orders_before: room(n)?,
            n_orders: room(n)?,
            gmv: room(n)?,
            affinity: [room(n)?, room(n)?, room(n)?, room(n)?, room(n)?],
            ..Default::default()
        })
    }

    /// Appends `o`'s rows; `OutOfMemory` (never an abort) if the columns cannot grow.
    fn append(&mut self, o: PopulationData) -> Result<()> {
        fn ext<T: Copy>(to: &mut Vec<T>, from: &[T]) -> Result<()> {
            to.try_reserve(from.len()).map_err(|_| out_of_memory())?;
            to.extend_from_slice(from);
            Ok(())
        }
        macro_rules! ext {
            ($($f:ident),*) => { $( ext(&mut self.$f, &o.$f)?; )* };
        }
        ext!(
            signup_day,
            age_band,
            city_tier,
            device,
            acquisition,
            push_opt_in,
            email_opt_in,
            sms_opt_in,
            has_app,
            archetype,
            is_prospect,
            sleeping_dog,
            purchase_rate,
            dropout_p,
            spend_rate,
            mean_spend,
            price_sensitivity,
            responsiveness,
            alive_at_end,
            death_day,
            first_order_day,
            last_order_day,
            orders_before,
            n_orders,
            gmv,
            tx_user,
            tx_day,
            tx_amount,
            tx_category
        );
        for c in 0..5 {
            ext(&mut self.affinity[c], &o.affinity[c])?;
        }
        Ok(())
    }

    pub fn n_users(&self) -> usize {
        self.signup_day.len()
    }

    /// The name of affinity column `c` (`affinity_push`, ...: one per channel, in channel order).
    pub fn affinity_name(c: usize) -> String {
        format!("affinity_{}", CHANNELS[c])
    }

    /// User `i`'s static parameters as the environment stores them (`f32`; the sign-up day).
    pub fn static_user(&self, i: usize) -> StaticUser {
        let mut flags = 0u8;
        for (bit, on) in [
            self.is_prospect[i],
            self.sleeping_dog[i],
            self.push_opt_in[i],
            self.email_opt_in[i],
            self.sms_opt_in[i],
            self.has_app[i],
        ]
        .into_iter()
        .enumerate()
        {
            flags |= (on as u8) << bit;
        }
        StaticUser {
            lambda: self.purchase_rate[i] as f32,
            dropout: self.dropout_p[i] as f32,
            nu: self.spend_rate[i] as f32,
            price_sensitivity: self.price_sensitivity[i],
            responsiveness: self.responsiveness[i],
            affinity: std::array::from_fn(|c| self.affinity[c][i]),
            signup: self.signup_day[i] as f32,
            archetype: self.archetype[i],
            age: self.age_band[i],
            tier: self.city_tier[i],
            device: self.device[i],
            acq: self.acquisition[i],
            flags,
        }
    }

    /// Whether user `i` had placed its first order before day `days` (the end of the history).
    pub fn is_customer(&self, i: usize, days: u32) -> bool {
        !self.is_prospect[i] && self.first_order_day[i] < days as f64
    }

    /// Checks columns that did not come from [`generate`] (a population rebuilt from its tables):
    /// one value per user in every user column, one per order in every transaction column, codes
    /// in range of the configuration's lists, and finite parameters (also as `f32`, as the
    /// environment stores them). The error names the column and its first bad row.
    pub fn check(&self, m: &Model) -> Result<()> {
        let n = self.n_users();
        let mut lens = vec![
            ("age_band", self.age_band.len()),
            ("city_tier", self.city_tier.len()),
            ("device", self.device.len()),
            ("acquisition_channel", self.acquisition.len()),
            ("push_opt_in", self.push_opt_in.len()),
            ("email_opt_in", self.email_opt_in.len()),
            ("sms_opt_in", self.sms_opt_in.len()),
            ("has_app", self.has_app.len()),
            ("archetype", self.archetype.len()),
            ("is_prospect", self.is_prospect.len()),
            ("sleeping_dog", self.sleeping_dog.len()),
            ("purchase_rate", self.purchase_rate.len()),
            ("dropout_p", self.dropout_p.len()),
            ("spend_rate", self.spend_rate.len()),
            ("mean_spend", self.mean_spend.len()),
            ("price_sensitivity", self.price_sensitivity.len()),
            ("responsiveness", self.responsiveness.len()),
            ("alive_at_end", self.alive_at_end.len()),
            ("death_day", self.death_day.len()),
            ("first_order_day", self.first_order_day.len()),
            ("last_order_day", self.last_order_day.len()),
            ("orders_before_window", self.orders_before.len()),
            ("n_orders", self.n_orders.len()),
            ("gmv", self.gmv.len()),
        ];
        let names: Vec<String> = (0..CHANNELS.len()).map(Self::affinity_name).collect();
        for (c, name) in names.iter().enumerate() {
            lens.push((name, self.affinity[c].len()));
        }
        for (name, len) in lens {
            crate::error::check_len(name, len, n, "signup_day")?;
        }
        let t = self.tx_user.len();
        for (name, len) in [
            ("tx_day", self.tx_day.len()),
            ("tx_amount", self.tx_amount.len()),
            ("tx_category", self.tx_category.len()),
        ] {
            crate::error::check_len(name, len, t, "tx_user_id")?;
        }
        let cfg = &m.cfg;
        let o = &cfg.observables;
        for (name, codes, of, len) in [
            (
                "archetype",
                &self.archetype,
                "archetypes",
                cfg.archetypes.len(),
            ),
            (
                "age_band",
                &self.age_band,
                "observables.age_bands",
                o.age_bands.len(),
            ),
            (
                "city_tier",
                &self.city_tier,
                "observables.city_tiers",
                o.city_tiers.len(),
            ),
            (
                "device",
                &self.device,
                "observables.devices",
                o.devices.len(),
            ),
            (
                "acquisition_channel",
                &self.acquisition,
                "observables.acquisition_channels",
                o.acquisition_channels.len(),
            ),
            (
                "tx_category",
                &self.tx_category,
                "categories",
                cfg.categories.len(),
            ),
        ] {
            if let Some(i) = codes.par_iter().position_first(|c| *c as usize >= len) {
                return Err(CoreError::invalid(
                    name,
                    format!(
                        "row {i}: code {} is not one of 0 to {} (config.{of})",
                        codes[i],
                        len - 1
                    ),
                ));
            }
        }
        if let Some(i) = self
            .tx_user
            .par_iter()
            .position_first(|u| *u < 0 || *u as usize >= n)
        {
            return Err(CoreError::invalid(
                "tx_user_id",
                format!(
                    "row {i}: {} is not a user id (0 to {})",
                    self.tx_user[i],
                    n as i64 - 1
                ),
            ));
        }
        let finite64 = |x: &f64| x.is_finite() && (*x as f32).is_finite();
        let finite32 = |x: &f32| x.is_finite();
        let mut bad: Vec<(&str, Option<usize>)> = vec![
            (
                "purchase_rate",
                self.purchase_rate
                    .par_iter()
                    .position_first(|x| !finite64(x)),
            ),
            (
                "dropout_p",
                self.dropout_p.par_iter().position_first(|x| !finite64(x)),
            ),
            (
                "spend_rate",
                self.spend_rate.par_iter().position_first(|x| !finite64(x)),
            ),
            (
                "price_sensitivity",
                self.price_sensitivity
                    .par_iter()
                    .position_first(|x| !finite32(x)),
            ),
            (
                "responsiveness",
                self.responsiveness
                    .par_iter()
                    .position_first(|x| !finite32(x)),
            ),
        ];
        for (c, name) in names.iter().enumerate() {
            bad.push((
                name,
                self.affinity[c].par_iter().position_first(|x| !finite32(x)),
            ));
        }
        if let Some((name, Some(i))) = bad.into_iter().find(|b| b.1.is_some()) {
            return Err(CoreError::invalid(name, format!("row {i}: must be finite")));
        }
        Ok(())
    }
}

fn generate_chunk(m: &Model, seed: u64, days: u32, lo: u64, hi: u64) -> Result<PopulationData> {
    let mut o = PopulationData::try_with_capacity((hi - lo) as usize)?;
    for uid in lo..hi {
        let u = m.draw_user(seed, uid, days);
        let h = simulate_history(m, seed, uid, days, &u, |d, a, c| {
            o.tx_user.push(uid as i64);
            o.tx_day.push(d);
            o.tx_amount.push(a);
            o.tx_category.push(c);
        });
        o.signup_day.push(u.signup.floor() as i32);
        o.age_band.push(u.age);
        o.city_tier.push(u.tier);
        o.device.push(u.device);
        o.acquisition.push(u.acq);
        o.push_opt_in.push(u.push_ok);
        o.email_opt_in.push(u.email_ok);
        o.sms_opt_in.push(u.sms_ok);
        o.has_app.push(u.app);
        o.archetype.push(u.archetype);
        o.is_prospect.push(u.is_prospect);
        o.sleeping_dog.push(u.sleeping_dog);
        o.purchase_rate.push(u.lambda);
        o.dropout_p.push(u.dropout);
        o.spend_rate.push(u.nu);
        o.mean_spend.push(m.mean_spend(&u));
        o.price_sensitivity.push(u.price_sensitivity as f32);
        o.responsiveness.push(u.responsiveness as f32);
        for c in 0..5 {
            o.affinity[c].push(u.affinity[c] as f32);
        }
        o.alive_at_end
            .push(h.alive && !u.is_prospect && u.first_order < days as f64);
        o.death_day.push(h.death);
        o.first_order_day.push(u.first_order);
        o.last_order_day.push(h.last_order);
        o.orders_before.push(h.orders_before);
        o.n_orders.push(h.orders);
        o.gmv.push(h.gmv);
    }
    Ok(o)
}

/// Fails unless a population of `n_users` users can exist (int64 ids) and its per-user columns
/// fit in this machine's memory (`OutOfMemory`); checked before anything is allocated.
pub fn check_size(n_users: u64) -> Result<()> {
    if n_users == 0 {
        return Err(CoreError::invalid("n_users", "must be >= 1, got 0"));
    }
    if n_users > i64::MAX as u64 / 2 {
        return Err(CoreError::invalid(
            "n_users",
            format!("must be <= {}, got {n_users}", i64::MAX as u64 / 2),
        ));
    }
    let bytes = checked_bytes(
        "n_users",
        "the users' columns",
        usize::try_from(n_users).ok(),
        PopulationData::BYTES_PER_USER,
    )?;
    check_fits_memory("n_users", bytes)
}

/// Generates `n_users` users over `days` days (user `i` depends only on `(seed, i, config)`).
pub fn generate(
    m: &Model,
    n_users: u64,
    days: u32,
    seed: u64,
    ctl: &Control,
) -> Result<PopulationData> {
    check_size(n_users)?;
    if days == 0 {
        return Err(CoreError::invalid("days", "must be >= 1, got 0"));
    }
    let n_chunks = n_users.div_ceil(CHUNK as u64);
    ctl.set_total(n_users);
    let mut out = PopulationData::try_with_capacity(n_users as usize)?;
    let mut c0 = 0u64;
    while c0 < n_chunks {
        ctl.check()?;
        let c1 = (c0 + BATCH_CHUNKS as u64).min(n_chunks);
        let parts: Vec<Result<PopulationData>> = (c0..c1)
            .into_par_iter()
            .map(|c| {
                ctl.check()?;
                let lo = c * CHUNK as u64;
                let hi = (lo + CHUNK as u64).min(n_users);
                let o = generate_chunk(m, seed, days, lo, hi)?;
                ctl.advance(hi - lo);
                Ok(o)
            })
            .collect();
        for p in parts {
            out.append(p?)?;
        }
        c0 = c1;
    }
    Ok(out)
}
