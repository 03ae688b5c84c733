//! The environment: what happens when the machine acts on the population.
//!
//! State per user ([`UserState`]): lifecycle (prospect / active / lapsed), fatigue (a decayed count
//! of past touches), channel opt-outs and order counters; static parameters ([`StaticUser`]) are
//! copied once from the population's truth.
//!
//! A window's treatments are checked and grouped by user in [`treatments`](super::treatments)
//! (ranges, channel rules); each user's response to them is the model of
//! [`response`](super::response): [`Env::apply`] draws it, [`Env::true_uplift`] gives its exact
//! expectation for one action (the ground truth that experiments are scored against) and
//! [`expected_window`](super::expected::expected_window) that of a whole schedule of touches.

use super::model::{Model, StaticUser, DOMAIN_APPLY};
use super::population::PopulationData;
use super::response::{expected_effect, simulate_window};
use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::parallel::CHUNK;
use crate::rng::{mix64, stream2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub const NEVER: i32 = i32::MIN;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserState {
    pub alive: bool,
    pub customer: bool,
    pub optout: u8,
    pub last_touch: i32,
    pub fatigue: f32,
    pub n_orders: u32,
    pub last_order: f64,
    pub gmv: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outcome {
    pub converted: bool,
    pub orders: u32,
    pub gmv: f64,
    pub incentive_cost: f64,
    pub channel_cost: f64,
    pub exposures: u32,
    pub touches: u32,
    pub opted_out: bool,
    pub redeemed: u32,
}

/// Columns of the outcome table.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub converted: Vec<bool>,
    pub orders: Vec<u32>,
    pub gmv: Vec<f64>,
    pub incentive_cost: Vec<f64>,
    pub channel_cost: Vec<f64>,
    pub exposures: Vec<u32>,
    pub touches: Vec<u32>,
    pub opted_out: Vec<bool>,
    pub redeemed: Vec<u32>,
    /// The window's orders as transactions, sorted by user then time: user, day, amount.
    pub tx_user: Vec<u32>,
    pub tx_day: Vec<i32>,
    pub tx_amount: Vec<f64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Effect {
    pub eligible: bool,
    pub incremental_conversion: f64,
    pub incremental_orders: f64,
    pub incremental_gmv: f64,
    pub expected_incentive_cost: f64,
    pub channel_cost: f64,
    pub baseline_conversion: f64,
    pub baseline_gmv: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Env {
    pub pop_seed: u64,
    pub hist_days: u32,
    pub seed: u64,
    pub day: i64,
    pub epoch: u64,
    pub users: Vec<UserState>,
    pub statics: Vec<StaticUser>,
}

impl Env {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pop_seed: u64,
        hist_days: u32,
        seed: u64,
        statics: Vec<StaticUser>,
        alive: &[bool],
        customer: &[bool],
        last_order: &[f64],
        n_orders: &[u32],
        gmv: &[f64],
    ) -> Result<Env> {
        let n = alive.len();
        crate::error::check_len("statics", statics.len(), n, "alive")?;
        crate::error::check_len("customer", customer.len(), n, "alive")?;
        crate::error::check_len("last_order", last_order.len(), n, "alive")?;
        crate::error::check_len("n_orders", n_orders.len(), n, "alive")?;
        crate::error::check_len("gmv", gmv.len(), n, "alive")?;
        let users = (0..n)
            .map(|i| UserState {
                alive: alive[i],
                customer: customer[i],
                optout: 0,
                last_touch: NEVER,
                fatigue: 0.0,
                n_orders: n_orders[i],
                last_order: last_order[i],
                gmv: gmv[i],
            })
            .collect();
        Ok(Env {
            pop_seed,
            hist_days,
            seed,
            day: hist_days as i64,
            epoch: 0,
            users,
            statics,
        })
    }

    /// The world at the end of a population's history (`days`): static parameters and the
    /// lifecycle state (alive, customer, order counters) copied from its truth, no touches yet.
    /// `p` must be generated or have passed [`PopulationData::check`].
    pub fn from_population(p: &PopulationData, pop_seed: u64, days: u32, seed: u64) -> Result<Env> {
        let n = p.n_users();
        let statics = (0..n).into_par_iter().map(|i| p.static_user(i)).collect();
        let customer: Vec<bool> = (0..n)
            .into_par_iter()
            .map(|i| p.is_customer(i, days))
            .collect();
        let n_orders: Vec<u32> = p
            .orders_before
            .par_iter()
            .zip(&p.n_orders)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect();
        Env::new(
            pop_seed,
            days,
            seed,
            statics,
            &p.alive_at_end,
            &customer,
            &p.last_order_day,
            &n_orders,
            &p.gmv,
        )
    }

    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// The seed of the current window's per-user streams (changes with every applied window).
    pub(crate) fn epoch_seed(&self) -> u64 {
        mix64(self.seed ^ mix64(self.epoch.wrapping_add(0xA5A5)))
    }

    /// Applies the treatments over `[start, start + days)`: simulates every user's window,
    /// advances the state and the current day, returns one outcome per user.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        m: &Model,
        user: &[i64],
        benefit: &[u8],
        channel: &[u8],
        content: &[u8],
        day: &[i64],
        start: i64,
        days: i64,
        ctl: &Control,
    ) -> Result<Outcomes> {
        let grouped =
            self.checked_group(m, user, benefit, channel, content, day, start, days, ctl)?;
        let n = self.users.len();
        ctl.set_total(n as u64);
        let epoch_seed = self.epoch_seed();
        let statics = &self.statics;
        let mut out = vec![Outcome::default(); n];
        // per chunk of users: its orders (user, day, amount), in user order then time
        let logs: Vec<Vec<(u32, i32, f64)>> = self
            .users
            .par_chunks_mut(CHUNK)
            .zip(out.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(c, (states, outs))| -> Result<Vec<(u32, i32, f64)>> {
                ctl.check()?;
                let mut log = Vec::new();
                let mut orders = Vec::new();
                for (j, (st, o)) in states.iter_mut().zip(outs.iter_mut()).enumerate() {
                    let uid = c * CHUNK + j;
                    let ts = grouped.user(uid);
                    let u = statics[uid].expand(m);
                    let mut rng = stream2(epoch_seed, DOMAIN_APPLY, uid as u64);
                    orders.clear();
                    *o = simulate_window(m, &u, st, ts, start, days, &mut rng, Some(&mut orders));
                    orders.sort_by(|a, b| a.0.total_cmp(&b.0));
                    log.extend(
                        orders
                            .iter()
                            .map(|&(t, a)| (uid as u32, t.floor() as i32, a)),
                    );
                }
                ctl.advance(states.len() as u64);
                Ok(log)
            })
            .collect::<Result<_>>()?;
        self.day = start + days;
        self.epoch += 1;
        let log: Vec<(u32, i32, f64)> = logs.into_iter().flatten().collect();
        Ok(Outcomes {
            tx_user: log.iter().map(|o| o.0).collect(),
            tx_day: log.iter().map(|o| o.1).collect(),
            tx_amount: log.iter().map(|o| o.2).collect(),
            converted: out.par_iter().map(|o| o.converted).collect(),
            orders: out.par_iter().map(|o| o.orders).collect(),
            gmv: out.par_iter().map(|o| o.gmv).collect(),
            incentive_cost: out.par_iter().map(|o| o.incentive_cost).collect(),
            channel_cost: out.par_iter().map(|o| o.channel_cost).collect(),
            exposures: out.par_iter().map(|o| o.exposures).collect(),
            touches: out.par_iter().map(|o| o.touches).collect(),
            opted_out: out.par_iter().map(|o| o.opted_out).collect(),
            redeemed: out.par_iter().map(|o| o.redeemed).collect(),
        })
    }

    /// True expected effects of single actions delivered on `start` for a window of `days`,
    /// given the current state (fatigue, lifecycle, opt-outs). Pairs `(user[i], action i)`.
    #[allow(clippy::too_many_arguments)]
    pub fn true_uplift(
        &self,
        m: &Model,
        user: &[i64],
        benefit: &[u8],
        channel: &[u8],
        content: &[u8],
        start: i64,
        days: i64,
        ctl: &Control,
    ) -> Result<Vec<Effect>> {
        let t = user.len();
        let day: Vec<i64> = vec![start; t];
        self.check_treatments(
            m,
            user,
            benefit,
            channel,
            content,
            &day,
            start.max(self.day),
            days,
        )
        .map_err(|e| match e {
            CoreError::Invalid { arg, msg } => CoreError::Invalid {
                arg: arg.replace("treatments", "pairs"),
                msg,
            },
            e => e,
        })?;
        let mut out = vec![Effect::default(); t];
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .try_for_each(|(c, o)| -> Result<()> {
                ctl.check()?;
                for (j, e) in o.iter_mut().enumerate() {
                    // Per row: a row's work grows with `days`.
                    ctl.check()?;
                    let i = c * CHUNK + j;
                    let uid = user[i] as usize;
                    let u = self.statics[uid].expand(m);
                    *e = expected_effect(
                        m,
                        &u,
                        &self.users[uid],
                        benefit[i] as usize,
                        channel[i] as usize,
                        content[i] as usize,
                        start,
                        days,
                    );
                }
                Ok(())
            })?;
        Ok(out)
    }
}
