//! The environment: what happens when the machine acts on the population.
//!
//! State per user ([`UserState`]): lifecycle (prospect / active / lapsed), fatigue (a decayed count
//! of past touches), channel opt-outs and order counters; static parameters ([`StaticUser`]) are
//! copied once from the population's truth.
//!
//! Response model for one user over a window `[start, start + days)` with touches `i`:
//! - strength `s_i = affinity[channel] * content_fit[archetype][content] / (1 + fatigue_rate * F_i)`
//!   where `F_i` is the decayed number of earlier touches (half-life `fatigue_halflife_days`);
//! - offer response `o_i = min(offer_cap, offer_scale * appeal[benefit] * (0.4 + 1.2 * price
//!   sensitivity) * responsiveness * lifecycle_mult * s_i)`;
//! - off-site exposures saturate: `x = exposure_max * responsiveness * lifecycle_mult *
//!   H(sum of off-site s_i)` with the Hill curve `H(E) = E^h / (E^h + ec50^h)`;
//! - incremental conversion probability `q = 1 - prod(1 - o_i) * (1 - x)`, realised as one extra
//!   order on the first touch day (value x (1 + basket_lift)); sleeping dogs have `q = 0` and their
//!   baseline rate is multiplied by `1 - penalty * min(1, sum s_i)`;
//! - baseline orders continue the buy-till-you-die process; coupons are paid only when redeemed:
//!   always by an incremental order, and with probability `redemption_rate` by the first baseline
//!   order after delivery;
//! - every off-site touch may opt the user out of that channel with probability
//!   `optout_base * (1 + optout_per_fatigue * F_i)` (x `sleeping_dog_optout_mult` for dogs).
//!
//! [`expected_effect`] computes the exact expectation of the same model for one action delivered on
//! the first day of a window: the ground truth that experiments are scored against;
//! [`expected_window`](super::expected::expected_window) that of a whole schedule of touches.

use super::config::*;
use super::model::{Model, StaticUser, UserParams, DOMAIN_APPLY};
use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::parallel::CHUNK;
use crate::rng::{mix64, stream2, Rng};
use rand::Rng as _;
use rand_distr::{Distribution, Exp1};
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

/// Treatments grouped by user: per fixed chunk of users, offsets (empty if no touches) and rows.
pub struct Grouped {
    chunks: Vec<(Vec<u32>, Vec<Touch>)>,
}

impl Grouped {
    #[inline]
    pub fn user(&self, uid: usize) -> &[Touch] {
        let (off, ts) = &self.chunks[uid / CHUNK];
        if off.is_empty() {
            return &[];
        }
        let j = uid % CHUNK;
        &ts[off[j] as usize..off[j + 1] as usize]
    }
}

/// One treatment row after name -> code conversion.
#[derive(Clone, Copy, Debug, Default)]
pub struct Touch {
    pub row: u32,
    pub day: i32,
    pub benefit: u8,
    pub channel: u8,
    pub content: u8,
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

#[inline]
fn offsite(c: usize) -> bool {
    c != CH_IN_APP
}

#[inline]
fn price_factor(ps: f64) -> f64 {
    0.4 + 1.2 * ps
}

#[inline]
pub fn hill(e: f64, ec50: f64, h: f64) -> f64 {
    if e <= 0.0 {
        0.0
    } else {
        let x = (e / ec50).powf(h);
        x / (1.0 + x)
    }
}

/// Fatigue `F` decayed from the last touch to `day`.
#[inline]
fn decayed(st: &UserState, day: i32, halflife: f64) -> f64 {
    if st.last_touch == NEVER {
        return 0.0;
    }
    let dt = (day as f64 - st.last_touch as f64).max(0.0);
    st.fatigue as f64 * 0.5f64.powf(dt / halflife)
}

fn lifecycle_mult(m: &Model, st: &UserState) -> f64 {
    let r = &m.cfg.response;
    if !st.customer {
        r.prospect_mult
    } else if st.alive {
        r.active_mult
    } else {
        r.lapsed_mult
    }
}

/// Daily first-order hazard of a user who has not ordered yet.
pub(crate) fn first_order_hazard(m: &Model, u: &UserParams) -> f64 {
    if u.is_prospect {
        m.cfg.response.prospect_daily_hazard
    } else {
        1.0 / m.cfg.purchase.first_order_delay_days
    }
}

/// `E[N]` orders of an alive BG/NBD user over a window with integrated rate `big_l`:
/// `sum_k P(Poisson(L) >= k) (1 - p)^(k-1)`.
pub fn expected_orders(big_l: f64, p: f64) -> f64 {
    if big_l <= 0.0 {
        return 0.0;
    }
    let mut pmf = (-big_l).exp();
    let mut cdf = pmf; // P(X <= k-1) for k = 1
    let mut surv = 1.0;
    let mut total = 0.0;
    for k in 1..100_000u32 {
        let tail = (1.0 - cdf).max(0.0);
        total += tail * surv;
        if tail < 1e-15 || surv < 1e-300 {
            break;
        }
        surv *= 1.0 - p;
        pmf *= big_l / k as f64;
        cdf += pmf;
    }
    total
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

    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// The seed of the current window's per-user streams (changes with every applied window).
    pub(crate) fn epoch_seed(&self) -> u64 {
        mix64(self.seed ^ mix64(self.epoch.wrapping_add(0xA5A5)))
    }

    /// Checks the treatment table against the ranges and channel rules; names the first bad row.
    #[allow(clippy::too_many_arguments)]
    pub fn check_treatments(
        &self,
        m: &Model,
        user: &[i64],
        benefit: &[u8],
        channel: &[u8],
        content: &[u8],
        day: &[i64],
        start: i64,
        days: i64,
    ) -> Result<()> {
        let t = user.len();
        for (name, len) in [
            ("benefit", benefit.len()),
            ("channel", channel.len()),
            ("content", content.len()),
            ("day", day.len()),
        ] {
            crate::error::check_len(
                &format!("treatments['{name}']"),
                len,
                t,
                "treatments['user_id']",
            )?;
        }
        if start < self.day {
            return Err(CoreError::invalid(
                "start_day",
                format!(
                    "must be >= the environment's current day {} (the past cannot be changed), got {start}",
                    self.day
                ),
            ));
        }
        if days < 1 {
            return Err(CoreError::invalid(
                "days",
                format!("must be >= 1, got {days}"),
            ));
        }
        if t > u32::MAX as usize {
            return Err(CoreError::invalid("treatments", "too many rows"));
        }
        let n = self.users.len() as i64;
        let nb = m.cfg.response.benefits.len() as u8;
        let nk = m.cfg.response.contents.len() as u8;
        // Range checks, in parallel, reporting the first bad row.
        let first_bad = (0..t)
            .into_par_iter()
            .with_min_len(CHUNK)
            .filter_map(|i| {
                let msg = if user[i] < 0 || user[i] >= n {
                    Some((
                        "user_id",
                        format!("{} is not a user id (0 to {})", user[i], n - 1),
                    ))
                } else if benefit[i] >= nb {
                    Some(("benefit", format!("code {} is not a benefit", benefit[i])))
                } else if channel[i] as usize >= CHANNELS.len() {
                    Some(("channel", format!("code {} is not a channel", channel[i])))
                } else if content[i] >= nk {
                    Some(("content", format!("code {} is not a content", content[i])))
                } else if day[i] < start || day[i] >= start + days {
                    Some((
                        "day",
                        format!(
                            "{} is outside the window [{start}, {}) (start_day, start_day + days)",
                            day[i],
                            start + days
                        ),
                    ))
                } else {
                    None
                };
                msg.map(|(c, m)| (i, c, m))
            })
            .min_by_key(|x| x.0);
        if let Some((i, col, msg)) = first_bad {
            return Err(CoreError::invalid(
                format!("treatments['{col}']"),
                format!("row {i}: {msg}"),
            ));
        }
        Ok(())
    }

    /// Groups treatments by user: rows are bucketed by fixed chunk of users (in row order, from
    /// fixed blocks of rows, in parallel), then counting-sorted by user inside each chunk; rows of
    /// one user are sorted by (day, channel, row). The result never depends on the thread count.
    pub(crate) fn group(&self, user: &[i64], mk: impl Fn(usize) -> Touch + Sync) -> Grouped {
        const ROWS: usize = 1 << 16;
        let n = self.users.len();
        let n_chunks = n.div_ceil(CHUNK);
        let blocks: Vec<Vec<Vec<u32>>> = user
            .par_chunks(ROWS)
            .enumerate()
            .map(|(bi, us)| {
                let mut b: Vec<Vec<u32>> = vec![Vec::new(); n_chunks];
                for (j, &u) in us.iter().enumerate() {
                    b[u as usize / CHUNK].push((bi * ROWS + j) as u32);
                }
                b
            })
            .collect();
        let chunks = (0..n_chunks)
            .into_par_iter()
            .map(|c| {
                let lo = c * CHUNK;
                let len = ((c + 1) * CHUNK).min(n) - lo;
                let total: usize = blocks.iter().map(|b| b[c].len()).sum();
                if total == 0 {
                    return (Vec::new(), Vec::new());
                }
                let mut off = vec![0u32; len + 1];
                for b in &blocks {
                    for &r in &b[c] {
                        off[user[r as usize] as usize - lo + 1] += 1;
                    }
                }
                for j in 0..len {
                    off[j + 1] += off[j];
                }
                let mut pos = off[..len].to_vec();
                let mut ts = vec![Touch::default(); total];
                for b in &blocks {
                    for &r in &b[c] {
                        let j = user[r as usize] as usize - lo;
                        ts[pos[j] as usize] = mk(r as usize);
                        pos[j] += 1;
                    }
                }
                for j in 0..len {
                    let s = &mut ts[off[j] as usize..off[j + 1] as usize];
                    if s.len() > 1 {
                        s.sort_by_key(|t| (t.day, t.channel, t.row));
                    }
                }
                (off, ts)
            })
            .collect();
        Grouped { chunks }
    }

    /// Channel rules (consent, device, opt-outs, daily caps): the first violating row, if any.
    pub(crate) fn check_rules(&self, m: &Model, grouped: &Grouped) -> Result<()> {
        let n = self.users.len();
        let n_chunks = n.div_ceil(CHUNK);
        let first = (0..n_chunks)
            .into_par_iter()
            .filter_map(|c| {
                let mut best: Option<(u32, String, String)> = None;
                for uid in c * CHUNK..((c + 1) * CHUNK).min(n) {
                    let ts = grouped.user(uid);
                    if ts.is_empty() {
                        continue;
                    }
                    let u = self.statics[uid].expand(m);
                    let st = &self.users[uid];
                    for (j, t) in ts.iter().enumerate() {
                        let ch = t.channel as usize;
                        let cname = CHANNELS[ch];
                        let err = if !u.reachable(ch) {
                            let why = match ch {
                                CH_PUSH => "push needs the app and push consent (users.push_opt_in)",
                                CH_SMS => "sms needs SMS consent (users.sms_opt_in)",
                                CH_EMAIL => "email needs e-mail consent (users.email_opt_in)",
                                _ => "in_app needs the app (users.has_app)",
                            };
                            Some(("channel".to_string(), format!("user {uid} cannot receive {cname}: {why}")))
                        } else if st.optout & (1 << ch) != 0 {
                            Some((
                                "channel".to_string(),
                                format!("user {uid} has opted out of {cname} (see Environment.opted_out)"),
                            ))
                        } else {
                            let cap = m.cfg.response.channels.get(ch).daily_cap as usize;
                            let same = ts[..=j]
                                .iter()
                                .rev()
                                .take_while(|o| o.day == t.day)
                                .filter(|o| o.channel == t.channel)
                                .count();
                            if same > cap {
                                Some((
                                    "day".to_string(),
                                    format!(
                                        "user {uid} gets {same} {cname} touches on day {}; the cap is {cap} per day (config.response.channels.{cname}.daily_cap)",
                                        t.day
                                    ),
                                ))
                            } else {
                                None
                            }
                        };
                        if let Some((col, msg)) = err {
                            if best.as_ref().is_none_or(|b| t.row < b.0) {
                                best = Some((t.row, col, msg));
                            }
                        }
                    }
                }
                best
            })
            .min_by_key(|x| x.0);
        if let Some((row, col, msg)) = first {
            return Err(CoreError::invalid(
                format!("treatments['{col}']"),
                format!("row {row}: {msg}"),
            ));
        }
        Ok(())
    }

    /// Validates a treatment table (ranges, window, channel rules: the first bad row named) and
    /// groups it by user: what [`Env::apply`] and [`Env::expected_outcome`] both start with.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn checked_group(
        &self,
        m: &Model,
        user: &[i64],
        benefit: &[u8],
        channel: &[u8],
        content: &[u8],
        day: &[i64],
        start: i64,
        days: i64,
        ctl: &Control,
    ) -> Result<Grouped> {
        self.check_treatments(m, user, benefit, channel, content, day, start, days)?;
        ctl.check()?;
        let grouped = self.group(user, |i| Touch {
            row: i as u32,
            day: day[i] as i32,
            benefit: benefit[i],
            channel: channel[i],
            content: content[i],
        });
        ctl.check()?;
        self.check_rules(m, &grouped)?;
        Ok(grouped)
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

/// The deterministic part of one user's response to a schedule of touches (see the module docs).
pub(crate) struct Response {
    /// Incremental conversion probability (0 for sleeping dogs).
    pub q: f64,
    /// Factor on the baseline purchase rate (sleeping dogs: `1 - penalty * min(1, sum s_i)`).
    pub pen: f64,
    /// Largest basket lift of the touches' benefits.
    pub basket: f64,
    pub first_day: Option<i32>,
    pub touches: u32,
    pub exposures: u32,
    pub channel_cost: f64,
    /// Fatigue and last touch day after the window (stored as in [`UserState`]).
    pub fatigue: f32,
    pub last_touch: i32,
}

/// The response of one user in state `st` to `touches` (sorted by day, channel, row): fatigue
/// evolves as it is stored (`f32`), whatever else happens in the window. `on_touch(touch,
/// p_optout)` is called for each touch in order, with the opt-out probability of an off-site touch
/// (`None` on site). Shared by [`simulate_window`] and its expectation
/// ([`expected_window`](super::expected::expected_window)).
pub(crate) fn response(
    m: &Model,
    u: &UserParams,
    st: UserState,
    touches: &[Touch],
    mut on_touch: impl FnMut(&Touch, Option<f64>),
) -> Response {
    let rc = &m.cfg.response;
    let arch = &m.cfg.archetypes[u.archetype as usize];
    let life = lifecycle_mult(m, &st);
    let mut cur = st;
    let mut r = Response {
        q: 0.0,
        pen: 1.0,
        basket: 0.0,
        first_day: None,
        touches: 0,
        exposures: 0,
        channel_cost: 0.0,
        fatigue: st.fatigue,
        last_touch: st.last_touch,
    };
    let mut no_offer = 1.0f64;
    let mut e_off = 0.0f64;
    let mut e_all = 0.0f64;
    for t in touches {
        let ch = t.channel as usize;
        let f = decayed(&cur, t.day, rc.fatigue_halflife_days);
        let fat = 1.0 / (1.0 + rc.fatigue_rate * f);
        let s = u.affinity[ch] * arch.content_fit[t.content as usize] * fat;
        let b = &rc.benefits[t.benefit as usize];
        if b.appeal > 0.0 {
            let oi = (rc.offer_scale
                * b.appeal
                * price_factor(u.price_sensitivity)
                * u.responsiveness
                * life
                * s)
                .min(rc.offer_cap);
            no_offer *= 1.0 - oi;
        }
        r.basket = r.basket.max(b.basket_lift);
        let p_oo = if offsite(ch) {
            e_off += s;
            r.exposures += 1;
            let mult = if u.sleeping_dog {
                rc.sleeping_dog_optout_mult
            } else {
                1.0
            };
            Some((rc.optout_base * (1.0 + rc.optout_per_fatigue * f) * mult).min(1.0))
        } else {
            None
        };
        on_touch(t, p_oo);
        e_all += s;
        cur.fatigue = (f + 1.0) as f32;
        cur.last_touch = t.day;
        r.touches += 1;
        r.channel_cost += rc.channels.get(ch).unit_cost;
        if r.first_day.is_none() {
            r.first_day = Some(t.day);
        }
    }
    let expo =
        (rc.exposure_max * u.responsiveness * life * hill(e_off, rc.hill_ec50, rc.hill_slope))
            .min(0.99);
    (r.q, r.pen) = if u.sleeping_dog {
        (0.0, 1.0 - rc.sleeping_dog_penalty * e_all.min(1.0))
    } else {
        (1.0 - no_offer * (1.0 - expo), 1.0)
    };
    r.fatigue = cur.fatigue;
    r.last_touch = cur.last_touch;
    r
}

/// Draws the baseline orders of one window into `out` (times, increasing), the purchase rate
/// scaled by `pen`: the buy-till-you-die process of an active customer (seasonality by thinning,
/// a dropout draw after each order), the first order of a prospect, nothing for a lapsed user.
/// Returns whether the user dropped out.
#[allow(clippy::too_many_arguments)]
pub(crate) fn baseline_orders(
    m: &Model,
    u: &UserParams,
    st: &UserState,
    pen: f64,
    start: i64,
    days: i64,
    rng: &mut Rng,
    out: &mut Vec<f64>,
) -> bool {
    let end = (start + days) as f64;
    if st.customer && st.alive {
        let rate_max = u.lambda * pen * m.season_max;
        let mut t = start as f64;
        if rate_max > 0.0 {
            loop {
                let e: f64 = Exp1.sample(rng);
                t += e / rate_max;
                if t >= end {
                    break;
                }
                if rng.random::<f64>() >= m.season(t.floor() as i64) / m.season_max {
                    continue;
                }
                out.push(t);
                if rng.random::<f64>() < u.dropout {
                    return true;
                }
            }
        }
    } else if !st.customer {
        let h = first_order_hazard(m, u) * pen;
        if h > 0.0 {
            let e: f64 = Exp1.sample(rng);
            let t = start as f64 + e / h;
            if t < end {
                out.push(t);
            }
        }
    }
    false
}

/// (P(at least one baseline order), E[baseline orders]) over the window, the purchase rate scaled
/// by `pen`.
pub(crate) fn baseline(
    m: &Model,
    u: &UserParams,
    st: &UserState,
    pen: f64,
    start: i64,
    days: i64,
) -> (f64, f64) {
    if st.customer && st.alive {
        let big_l = u.lambda * pen * m.season_sum(start, days);
        (1.0 - (-big_l).exp(), expected_orders(big_l, u.dropout))
    } else if !st.customer {
        let h = first_order_hazard(m, u) * pen;
        let p = 1.0 - (-h * days as f64).exp();
        (p, p)
    } else {
        (0.0, 0.0)
    }
}

/// Simulates one user's window (see the module docs); mutates its state. Each order's (time,
/// amount) is pushed to `orders` when given.
#[allow(clippy::too_many_arguments)]
pub fn simulate_window(
    m: &Model,
    u: &UserParams,
    st: &mut UserState,
    touches: &[Touch],
    start: i64,
    days: i64,
    rng: &mut Rng,
    mut orders: Option<&mut Vec<(f64, f64)>>,
) -> Outcome {
    let rc = &m.cfg.response;
    let was_active = st.customer && st.alive;
    let mut o = Outcome::default();
    // (delivery day, cost, resolved)
    let mut coupons: Vec<(i32, f64, bool)> = Vec::new();
    let r = response(m, u, *st, touches, |t, p_oo| {
        let b = &rc.benefits[t.benefit as usize];
        if b.cost > 0.0 {
            coupons.push((t.day, b.cost, false));
        }
        if let Some(p_oo) = p_oo {
            if rng.random::<f64>() < p_oo {
                st.optout |= 1 << t.channel;
                o.opted_out = true;
            }
        }
    });
    st.fatigue = r.fatigue;
    st.last_touch = r.last_touch;
    o.touches = r.touches;
    o.exposures = r.exposures;
    o.channel_cost = r.channel_cost;
    let mut last_order = f64::NAN;
    let mut order = |t: f64, amount: f64, o: &mut Outcome| {
        o.orders += 1;
        o.gmv += amount;
        if let Some(log) = orders.as_deref_mut() {
            log.push((t, amount));
        }
        last_order = if last_order.is_nan() {
            t
        } else {
            last_order.max(t)
        };
    };
    // Incremental order (first: it redeems the most valuable coupon already delivered).
    let mut became_customer = false;
    if !touches.is_empty() && rng.random::<f64>() < r.q {
        let d = r.first_day.unwrap_or(start as i32);
        let t = d as f64 + rng.random::<f64>();
        let amount = (m.draw_amount(u, rng) * (1.0 + r.basket) * 100.0).round() / 100.0;
        order(t, amount, &mut o);
        if let Some(best) = coupons
            .iter_mut()
            .filter(|c| c.0 <= d)
            .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap())
        {
            best.2 = true;
            o.incentive_cost += best.1;
            o.redeemed += 1;
        }
        became_customer = true;
    }
    // Baseline orders.
    let mut baseline: Vec<f64> = Vec::new();
    if baseline_orders(m, u, st, r.pen, start, days, rng, &mut baseline) {
        st.alive = false;
    }
    if !st.customer && !baseline.is_empty() {
        became_customer = true;
    }
    for &t in &baseline {
        let amount = m.draw_amount(u, rng);
        order(t, amount, &mut o);
        let d = t.floor() as i32;
        if let Some(c) = coupons.iter_mut().find(|c| !c.2 && c.0 <= d) {
            c.2 = true;
            if rng.random::<f64>() < rc.redemption_rate {
                o.incentive_cost += c.1;
                o.redeemed += 1;
            }
        }
    }
    if became_customer && !was_active {
        // First orders and win-backs start (or restart) the buy-till-you-die process.
        st.customer = true;
        st.alive = true;
    }
    o.converted = o.orders > 0;
    st.n_orders += o.orders;
    st.gmv += o.gmv;
    if !last_order.is_nan() {
        st.last_order = last_order;
    }
    o
}

/// Exact expected effect of one action delivered on `start` (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn expected_effect(
    m: &Model,
    u: &UserParams,
    st: &UserState,
    benefit: usize,
    ch: usize,
    content: usize,
    start: i64,
    days: i64,
) -> Effect {
    let rc = &m.cfg.response;
    let mut e = Effect {
        channel_cost: 0.0,
        ..Default::default()
    };
    let mu = m.mean_spend(u);
    let (p0, n0) = baseline(m, u, st, 1.0, start, days);
    e.baseline_conversion = p0;
    e.baseline_gmv = n0 * mu;
    if !u.reachable(ch) || st.optout & (1 << ch) != 0 {
        return e;
    }
    e.eligible = true;
    e.channel_cost = rc.channels.get(ch).unit_cost;
    let arch = &m.cfg.archetypes[u.archetype as usize];
    let life = lifecycle_mult(m, st);
    let f = decayed(st, start as i32, rc.fatigue_halflife_days);
    let s = u.affinity[ch] * arch.content_fit[content] / (1.0 + rc.fatigue_rate * f);
    let b = &rc.benefits[benefit];
    let o = if b.appeal > 0.0 {
        (rc.offer_scale
            * b.appeal
            * price_factor(u.price_sensitivity)
            * u.responsiveness
            * life
            * s)
            .min(rc.offer_cap)
    } else {
        0.0
    };
    let expo = if offsite(ch) {
        (rc.exposure_max * u.responsiveness * life * hill(s, rc.hill_ec50, rc.hill_slope)).min(0.99)
    } else {
        0.0
    };
    let (q, pen) = if u.sleeping_dog {
        (0.0, 1.0 - rc.sleeping_dog_penalty * s.min(1.0))
    } else {
        (1.0 - (1.0 - o) * (1.0 - expo), 1.0)
    };
    let (p1, n1) = baseline(m, u, st, pen, start, days);
    let conv1 = 1.0 - (1.0 - q) * (1.0 - p1);
    e.incremental_conversion = conv1 - p0;
    e.incremental_orders = q + n1 - n0;
    e.incremental_gmv = q * mu * (1.0 + b.basket_lift) + (n1 - n0) * mu;
    if b.cost > 0.0 {
        e.expected_incentive_cost = b.cost * (q + (1.0 - q) * rc.redemption_rate * p1);
    }
    e
}
