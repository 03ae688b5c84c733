//! The response model: what one user does in a window, given the touches it receives.
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
//! [`simulate_window`] draws it (what [`Env::apply`](super::env::Env::apply) does per user);
//! [`expected_effect`] computes the exact expectation of the same model for one action delivered on
//! the first day of a window: the ground truth that experiments are scored against;
//! [`expected_window`](super::expected::expected_window) that of a whole schedule of touches.

use super::config::*;
use super::env::{Effect, Outcome, UserState, NEVER};
use super::model::{Model, UserParams};
use super::treatments::Touch;
use crate::rng::Rng;
use rand::Rng as _;
use rand_distr::{Distribution, Exp1};

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
        let p_oo = if OFFSITE[ch] {
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
    let expo = if OFFSITE[ch] {
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
