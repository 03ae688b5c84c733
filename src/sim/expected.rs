//! The expected outcome of a whole treatment table (several touches per user, on different days
//! and channels), without advancing the world: [`expected_window`] is
//! [`simulate_window`](super::response::simulate_window) in expectation, draw by draw.
//!
//! Why it is exact (the draws of `simulate_window`, in its order):
//! - the response (strengths, offer responses, exposures, `q`, the basket lift, the sleeping-dog
//!   penalty `pen`) comes from `response`, the same function `simulate_window` uses, and is
//!   deterministic given the schedule: fatigue decays from the last touch and grows by one per
//!   touch whatever happens, and an opt-out does not stop later touches in the same window;
//! - each off-site touch opts out with its own independent draw with probability `p_i`, so
//!   P(an opt-out) = `1 - prod(1 - p_i)` and P(opted out of channel c) = `1 - prod_{i on c}
//!   (1 - p_i)`;
//! - the incremental order is one Bernoulli(`q`) draw, independent of the baseline orders, which
//!   follow the buy-till-you-die process with the rate scaled by `pen` (`baseline`):
//!   P(convert) = `1 - (1 - q)(1 - p1)`, E(orders) = `q + n1`; order values have the
//!   Gamma-Gamma mean (x `1 + basket_lift` for the incremental order; cent rounding ignored, as in
//!   [`expected_effect`](super::response::expected_effect));
//! - one costed coupon (cost `c`, delivered on day `d`): the incremental order redeems it iff `d`
//!   is the first touch day; otherwise the first baseline order at a time `>= d` resolves it and
//!   pays with probability `redemption_rate`. For an alive customer the orders before `d` are a
//!   Poisson count `K` with mean `L1` (the integrated rate over `[start, d)`) and the user
//!   survives each with probability `1 - p`, so P(alive at `d`) = `E[(1 - p)^K] = exp(-L1 p)`,
//!   and given alive an order falls in `[d, end)` with probability `1 - exp(-L2)` (`L2` the
//!   integrated rate over `[d, end)`). For a prospect the first order time is exponential with
//!   rate `h`: P(it is in `[d, end)`) = `exp(-h (d - start)) - exp(-h days)`. Lapsed: never.
//!   So E(cost) = `c (a + (1 - a) redemption_rate P(order in [d, end)))` with `a = q` if `d` is
//!   the first touch day, else 0;
//! - several costed coupons: which coupon the baseline orders resolve depends on the whole order
//!   path (a queue of pending coupons), so the incentive cost is averaged over [`REPLICATES`]
//!   draws of the baseline order times from the user's own stream, with the incremental order
//!   (`q`) and the redemption coin (`redemption_rate`) integrated exactly in each replicate.
//!   Everything else stays exact.

use super::config::CHANNELS;
use super::env::{Env, UserState};
use super::model::{Model, UserParams, DOMAIN_EXPECTED};
use super::response::{baseline, baseline_orders, first_order_hazard, response};
use super::treatments::Touch;
use crate::control::Control;
use crate::error::Result;
use crate::parallel::CHUNK;
use crate::rng::{stream2, Rng};
use rayon::prelude::*;

/// Replicate draws of the baseline order path that average the incentive cost of a user with
/// several costed coupons in one window.
pub const REPLICATES: usize = 256;

/// The expected outcome of one user's window, and its increments over no touches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExpectedOutcome {
    pub touches: u32,
    /// Off-site touches.
    pub exposures: u32,
    /// P(convert) with the touches minus without.
    pub incremental_conversion: f64,
    pub incremental_orders: f64,
    pub incremental_gmv: f64,
    /// Expected coupons paid (exact with at most one costed coupon, else averaged).
    pub expected_incentive_cost: f64,
    pub channel_cost: f64,
    /// P(opting out of at least one channel in this window).
    pub p_optout: f64,
    /// Sum over channels of P(opting out of that channel in this window).
    pub expected_optouts: f64,
    pub baseline_conversion: f64,
    pub baseline_gmv: f64,
}

/// Expected outcomes of the users with at least one touch, sorted by user id.
#[derive(Debug, Default)]
pub struct ExpectedOutcomes {
    pub user: Vec<i64>,
    pub rows: Vec<ExpectedOutcome>,
}

/// P(a baseline order at a time in `[d, start + days)`), the rate scaled by `pen`.
fn p_order_from(
    m: &Model,
    u: &UserParams,
    st: &UserState,
    pen: f64,
    start: i64,
    days: i64,
    d: i64,
) -> f64 {
    let end = start + days;
    let d = d.clamp(start, end);
    if st.customer && st.alive {
        let rate = u.lambda * pen;
        if rate <= 0.0 {
            return 0.0;
        }
        let l1 = rate * m.season_sum(start, d - start);
        let l2 = rate * m.season_sum(d, end - d);
        (-l1 * u.dropout).exp() * -(-l2).exp_m1()
    } else if !st.customer {
        let h = first_order_hazard(m, u) * pen;
        if h <= 0.0 {
            return 0.0;
        }
        ((-h * (d - start) as f64).exp() - (-h * days as f64).exp()).max(0.0)
    } else {
        0.0
    }
}

/// The incentive cost of several coupons, averaged over [`REPLICATES`] baseline order paths;
/// `best` is the coupon an incremental order redeems (if any).
#[allow(clippy::too_many_arguments)]
fn replicated_incentive(
    m: &Model,
    u: &UserParams,
    st: &UserState,
    pen: f64,
    q: f64,
    coupons: &[(i32, f64)],
    best: Option<usize>,
    start: i64,
    days: i64,
    rng: &mut Rng,
) -> f64 {
    let rr = m.cfg.response.redemption_rate;
    let mut times: Vec<f64> = Vec::new();
    let mut resolved = vec![false; coupons.len()];
    // What the coupons cost on one path, given whether the incremental order happened
    // (`simulate_window`'s rules: the incremental order takes `best`, then each baseline order
    // resolves the earliest delivered unresolved coupon and pays with probability `rr`).
    let mut paid = |times: &[f64], inc: Option<usize>| -> f64 {
        resolved.fill(false);
        let mut cost = 0.0;
        if let Some(j) = inc {
            resolved[j] = true;
            cost += coupons[j].1;
        }
        for &t in times {
            let d = t.floor() as i32;
            if let Some(j) = (0..coupons.len()).find(|&j| !resolved[j] && coupons[j].0 <= d) {
                resolved[j] = true;
                cost += rr * coupons[j].1;
            }
        }
        cost
    };
    let mut total = 0.0;
    for _ in 0..REPLICATES {
        times.clear();
        baseline_orders(m, u, st, pen, start, days, rng, &mut times);
        let with = if q > 0.0 { paid(&times, best) } else { 0.0 };
        total += q * with + (1.0 - q) * paid(&times, None);
    }
    total / REPLICATES as f64
}

/// The expected outcome of [`simulate_window`](super::response::simulate_window) for one user with
/// `touches` (sorted by day, channel, row) over `[start, start + days)`, from the state `st`,
/// which is not changed. `rng` is used only to average the incentive cost of several costed
/// coupons (see the module docs).
pub fn expected_window(
    m: &Model,
    u: &UserParams,
    st: &UserState,
    touches: &[Touch],
    start: i64,
    days: i64,
    rng: &mut Rng,
) -> ExpectedOutcome {
    let rc = &m.cfg.response;
    let mut stay = 1.0f64;
    let mut stay_ch = [1.0f64; CHANNELS.len()];
    let mut coupons: Vec<(i32, f64)> = Vec::new();
    let r = response(m, u, *st, touches, |t, p_oo| {
        let b = &rc.benefits[t.benefit as usize];
        if b.cost > 0.0 {
            coupons.push((t.day, b.cost));
        }
        if let Some(p) = p_oo {
            stay *= 1.0 - p;
            stay_ch[t.channel as usize] *= 1.0 - p;
        }
    });
    let mu = m.mean_spend(u);
    let (p0, n0) = baseline(m, u, st, 1.0, start, days);
    let (p1, n1) = baseline(m, u, st, r.pen, start, days);
    let q = if touches.is_empty() { 0.0 } else { r.q };
    let expected_incentive_cost = match (coupons.as_slice(), r.first_day) {
        ([], _) | (_, None) => 0.0,
        ([(d, c)], Some(first)) => {
            let a = if *d <= first { q } else { 0.0 };
            let pb = p_order_from(m, u, st, r.pen, start, days, *d as i64);
            c * (a + (1.0 - a) * rc.redemption_rate * pb)
        }
        (cs, Some(first)) => {
            // The most valuable coupon delivered by the first touch day (the last of equals,
            // like `Iterator::max_by` in `simulate_window`).
            let best = cs
                .iter()
                .enumerate()
                .filter(|(_, c)| c.0 <= first)
                .max_by(|a, b| a.1 .1.partial_cmp(&b.1 .1).unwrap())
                .map(|(j, _)| j);
            replicated_incentive(m, u, st, r.pen, q, cs, best, start, days, rng)
        }
    };
    ExpectedOutcome {
        touches: r.touches,
        exposures: r.exposures,
        incremental_conversion: 1.0 - (1.0 - q) * (1.0 - p1) - p0,
        incremental_orders: q + n1 - n0,
        incremental_gmv: q * mu * (1.0 + r.basket) + (n1 - n0) * mu,
        expected_incentive_cost,
        channel_cost: r.channel_cost,
        p_optout: 1.0 - stay,
        expected_optouts: stay_ch.iter().map(|s| 1.0 - s).sum(),
        baseline_conversion: p0,
        baseline_gmv: n0 * mu,
    }
}

impl Env {
    /// The expected outcome of applying the treatments over `[start, start + days)`, for every
    /// user with at least one touch (sorted by user id), without changing the state. Validates
    /// exactly like [`Env::apply`]; deterministic whatever the thread count (per-user streams for
    /// the averaged incentive cost, see [`expected_window`]).
    #[allow(clippy::too_many_arguments)]
    pub fn expected_outcome(
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
    ) -> Result<ExpectedOutcomes> {
        let grouped =
            self.checked_group(m, user, benefit, channel, content, day, start, days, ctl)?;
        let n = self.users.len();
        ctl.set_total(n as u64);
        let seed = self.epoch_seed();
        let parts = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| -> Result<Vec<(i64, ExpectedOutcome)>> {
                ctl.check()?;
                let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
                let mut rows = Vec::new();
                for uid in lo..hi {
                    let ts = grouped.user(uid);
                    if ts.is_empty() {
                        continue;
                    }
                    // Per user: a user's work grows with `days`.
                    ctl.check()?;
                    let u = self.statics[uid].expand(m);
                    let mut rng = stream2(seed, DOMAIN_EXPECTED, uid as u64);
                    let e = expected_window(m, &u, &self.users[uid], ts, start, days, &mut rng);
                    rows.push((uid as i64, e));
                }
                ctl.advance((hi - lo) as u64);
                Ok(rows)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut out = ExpectedOutcomes::default();
        for (uid, e) in parts.into_iter().flatten() {
            out.user.push(uid);
            out.rows.push(e);
        }
        Ok(out)
    }
}
