//! A vectorised stream of site visits for the real-time engine.
//!
//! Each session is a small funnel: 0 browse -> 1 cart -> 3 purchased, with 2 exit intent on the
//! way out and 4 left. Actions: 0 none, 1 guide, 2 small coupon, 3 large coupon, 4 free shipping,
//! 5 exit coupon (fires only on exit intent; the other coupons only on browse and cart pages). A
//! coupon offered is held for the rest of the session and paid only if the session ends in a
//! purchase.
//!
//! Transition logits (all with the hidden intent `intent_weight * z(lambda) + lifecycle + hour`):
//! - browse: cart w.p. `sigmoid(cart_logit + intent + guide_u [guide] + coupon_browse_factor * A)`,
//!   else exit intent w.p. `exit_detect_share`, else left;
//! - cart: purchase w.p. `sigmoid(checkout_logit + intent + A + guide_cart_effect*sign(guide_u) [guide])`,
//!   else exit intent w.p. `cart_exit_share`, else left;
//! - exit intent: purchase w.p. `sigmoid(recover_logit + intent + A)`, else left;
//!
//! where `A` is the held coupon's appeal: `coupon_logit_per_unit * value * (0.4 + 1.2 ps) *
//! responsiveness`, or `sleeping_dog_coupon_logit` (< 0) for sleeping dogs, and `guide_u =
//! guide_effect * (archetype.guide_response + 0.5 N(0, 1))` (negative for some users).
//! A purchase's basket is a Gamma-Gamma order value x (1 + coupon_basket_lift * ps) with a coupon.

use super::config::WorldConfig;
use super::env::Env;
use super::model::{Model, DOMAIN_SESSION};
use crate::control::Control;
use crate::error::{check_fits_memory, checked_bytes, try_vec, CoreError, Result};
use crate::numeric::sigmoid;
use crate::parallel::CHUNK;
use crate::rng::{mix64, stream2};
use rand::Rng as _;
use rand_distr::{Distribution, Gamma, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub const ACTIONS: [&str; 6] = [
    "none",
    "guide",
    "coupon_5",
    "coupon_10",
    "free_shipping",
    "exit_coupon",
];
const STATE_KIND: &str = "SimSessions";
pub const BROWSE: i8 = 0;
pub const CART: i8 = 1;
pub const EXIT: i8 = 2;
pub const PURCHASED: i8 = 3;
pub const LEFT: i8 = 4;

/// Walker/Vose alias table: O(1) weighted draws of users (one or two memory reads each).
#[derive(Clone, Debug, Default)]
pub struct VisitSampler {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl VisitSampler {
    pub fn new(w: &[f64]) -> Self {
        let n = w.len();
        let total: f64 = w.iter().sum();
        if n == 0 || total.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return VisitSampler::default();
        }
        let mut prob: Vec<f64> = w.iter().map(|x| x * n as f64 / total).collect();
        let mut alias = vec![0u32; n];
        let (mut small, mut large): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        for (i, p) in prob.iter().enumerate() {
            if *p < 1.0 {
                small.push(i as u32);
            } else {
                large.push(i as u32);
            }
        }
        while let (Some(s), Some(l)) = (small.pop(), large.last().copied()) {
            alias[s as usize] = l;
            prob[l as usize] -= 1.0 - prob[s as usize];
            if prob[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        for i in large.into_iter().chain(small) {
            prob[i as usize] = 1.0;
        }
        VisitSampler { prob, alias }
    }

    pub fn len(&self) -> usize {
        self.prob.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prob.is_empty()
    }

    #[inline]
    pub fn sample(&self, rng: &mut crate::rng::Rng) -> usize {
        let i = rng.random_range(0..self.prob.len());
        if rng.random::<f64>() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sessions {
    pub seed: u64,
    pub steps: u64,
    pub n_features: usize,
    pub feature_names: Vec<String>,
    pub user: Vec<i64>,
    pub context: Vec<f64>,
    pub stage: Vec<i8>,
    /// Held coupon: action code (0 none).
    pub held: Vec<u8>,
    // hidden, per session
    intent: Vec<f64>,
    guide_u: Vec<f64>,
    ps: Vec<f64>,
    resp: Vec<f64>,
    dog: Vec<bool>,
    nu: Vec<f64>,
}

#[derive(Debug, Default)]
pub struct StepOut {
    pub reward: Vec<f64>,
    pub cost: Vec<f64>,
}

fn feature_names(cfg: &WorldConfig) -> Vec<String> {
    let mut f: Vec<String> = [
        "intercept",
        "is_customer",
        "log_orders",
        "recency_years",
        "log_avg_order_value",
        "tenure_years",
        "push_opt_in",
        "has_app",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = &cfg.observables;
    for d in &o.devices {
        f.push(format!("device={d}"));
    }
    for d in &o.city_tiers {
        f.push(format!("city_tier={d}"));
    }
    for d in &o.age_bands {
        f.push(format!("age_band={d}"));
    }
    for d in &o.acquisition_channels {
        f.push(format!("acquisition_channel={d}"));
    }
    f.extend(
        ["hour_sin", "hour_cos", "weekend"]
            .iter()
            .map(|s| s.to_string()),
    );
    f
}

impl Sessions {
    pub fn n(&self) -> usize {
        self.user.len()
    }

    /// Versioned state (format 1, read by [`Sessions::from_bytes`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::state::to_bytes(STATE_KIND, 1, self)
    }

    /// Reads state written by [`Sessions::to_bytes`] for the world `cfg`, checking every
    /// length against the number of sessions, the features against the world's and the stage
    /// and held-coupon codes: a state that passes works, anything else is `CoreError::State`.
    pub fn from_bytes(b: &[u8], cfg: &WorldConfig) -> Result<Sessions> {
        let (_, s): (u32, Sessions) = crate::state::from_bytes(STATE_KIND, &[1], b)?;
        let n = s.n();
        let per_session = [&s.intent, &s.guide_u, &s.ps, &s.resp, &s.nu];
        let ok = n >= 1
            && s.feature_names == feature_names(cfg)
            && s.n_features == s.feature_names.len()
            && n.checked_mul(s.n_features) == Some(s.context.len())
            && [s.stage.len(), s.held.len(), s.dog.len()] == [n; 3]
            && per_session.iter().all(|v| v.len() == n)
            && s.context
                .iter()
                .chain(per_session.into_iter().flatten())
                .all(|v| v.is_finite())
            && s.stage.iter().all(|&x| (BROWSE..=LEFT).contains(&x))
            && s.held.iter().all(|&h| (h as usize) < ACTIONS.len());
        if !ok {
            return Err(CoreError::State(format!(
                "{STATE_KIND} state is inconsistent (corrupt, or of another world)"
            )));
        }
        Ok(s)
    }

    /// The visit sampler of `env`'s users (weight `visit_base + visit_rate_weight * lambda`);
    /// depends only on static parameters, so callers may cache it for [`Sessions::new`].
    pub fn visit_sampler(m: &Model, env: &Env) -> VisitSampler {
        let sc = &m.cfg.sessions;
        let w: Vec<f64> = env
            .statics
            .par_iter()
            .with_min_len(CHUNK)
            .map(|u| sc.visit_base + sc.visit_rate_weight * u.lambda as f64)
            .collect();
        VisitSampler::new(&w)
    }

    /// Draws `n` visits by users of `env` (weight `visit_base + visit_rate_weight * lambda`).
    pub fn new(
        m: &Model,
        env: &Env,
        n: usize,
        seed: u64,
        sampler: Option<&VisitSampler>,
        ctl: &Control,
    ) -> Result<Sessions> {
        if n == 0 {
            return Err(CoreError::invalid("n", "must be >= 1, got 0"));
        }
        let nu_users = env.n_users();
        let sc = &m.cfg.sessions;
        let owned;
        let sampler: &VisitSampler = match sampler {
            Some(v) if v.len() == nu_users => v,
            _ => {
                owned = Self::visit_sampler(m, env);
                &owned
            }
        };
        ctl.check()?;
        if sampler.is_empty() {
            return Err(CoreError::invalid(
                "n",
                "the population has no visit weight",
            ));
        }
        let names = feature_names(&m.cfg);
        let d = names.len();
        let o = &m.cfg.observables;
        let today = env.day;
        let weekend = {
            let dow = (m.cfg.seasonality.start_weekday as i64 + today).rem_euclid(7);
            if dow >= 5 {
                1.0
            } else {
                0.0
            }
        };
        #[derive(Clone, Copy, Default)]
        struct Row {
            user: i64,
            intent: f64,
            guide_u: f64,
            ps: f64,
            resp: f64,
            dog: bool,
            nu: f64,
        }
        // Sized by the caller's `n`: checked before allocating (a failed allocation aborts).
        let per_session = d * size_of::<f64>() + size_of::<Row>() + 6 * 8 + 3;
        let bytes = checked_bytes("n", "the sessions' buffers", Some(n), per_session)?;
        check_fits_memory("n", bytes)?;
        let mut context: Vec<f64> = crate::error::try_zeroed("n", n * d)?;
        let mut rows = try_vec("n", n, Row::default())?;
        context
            .par_chunks_mut(d)
            .zip(rows.par_iter_mut())
            .enumerate()
            .with_min_len(1024)
            .for_each(|(i, (ctx, row))| {
                // One atomic load per session: the loop stops soon after Ctrl-C.
                if ctl.is_cancelled() {
                    return;
                }
                let mut rng = stream2(seed, DOMAIN_SESSION, i as u64);
                let uid = sampler.sample(&mut rng);
                let u = env.statics[uid].expand(m);
                let st = &env.users[uid];
                let hour = {
                    // Visits peak in the evening.
                    let h: f64 = StandardNormal.sample(&mut rng);
                    (20.0 + 4.0 * h).rem_euclid(24.0)
                };
                ctx[0] = 1.0;
                ctx[1] = if st.customer { 1.0 } else { 0.0 };
                ctx[2] = (st.n_orders as f64).ln_1p();
                ctx[3] = if st.last_order.is_nan() {
                    2.0
                } else {
                    ((today as f64 - st.last_order) / 365.0).clamp(0.0, 2.0)
                };
                ctx[4] = if st.n_orders > 0 {
                    (st.gmv / st.n_orders as f64).ln_1p()
                } else {
                    0.0
                };
                ctx[5] = ((today as f64 - u.signup) / 365.0).max(0.0);
                ctx[6] = if u.push_ok { 1.0 } else { 0.0 };
                ctx[7] = if u.app { 1.0 } else { 0.0 };
                let mut k = 8;
                ctx[k + u.device as usize] = 1.0;
                k += o.devices.len();
                ctx[k + u.tier as usize] = 1.0;
                k += o.city_tiers.len();
                ctx[k + u.age as usize] = 1.0;
                k += o.age_bands.len();
                ctx[k + u.acq as usize] = 1.0;
                k += o.acquisition_channels.len();
                let ang = 2.0 * std::f64::consts::PI * hour / 24.0;
                ctx[k] = ang.sin();
                ctx[k + 1] = ang.cos();
                ctx[k + 2] = weekend;
                let life = if !st.customer {
                    sc.prospect_logit
                } else if st.alive {
                    0.0
                } else {
                    sc.lapsed_logit
                };
                let evening = if (18.0..23.0).contains(&hour) {
                    0.2
                } else {
                    0.0
                };
                let intent = sc.intent_weight * u.z + life + evening;
                let g: f64 = StandardNormal.sample(&mut rng);
                let arch = &m.cfg.archetypes[u.archetype as usize];
                *row = Row {
                    user: uid as i64,
                    intent,
                    guide_u: sc.guide_effect * (arch.guide_response + 0.5 * g),
                    ps: u.price_sensitivity,
                    resp: u.responsiveness,
                    dog: u.sleeping_dog,
                    nu: u.nu,
                };
            });
        ctl.check()?;
        let s = Sessions {
            seed,
            steps: 0,
            n_features: d,
            feature_names: names,
            user: rows.par_iter().map(|r| r.user).collect(),
            context,
            stage: try_vec("n", n, BROWSE)?,
            held: try_vec("n", n, 0)?,
            intent: rows.par_iter().map(|r| r.intent).collect(),
            guide_u: rows.par_iter().map(|r| r.guide_u).collect(),
            ps: rows.par_iter().map(|r| r.ps).collect(),
            resp: rows.par_iter().map(|r| r.resp).collect(),
            dog: rows.par_iter().map(|r| r.dog).collect(),
            nu: rows.par_iter().map(|r| r.nu).collect(),
        };
        Ok(s)
    }

    fn coupon_value(cfg: &WorldConfig, a: u8) -> (f64, f64) {
        // (appeal value, cost)
        let sc = &cfg.sessions;
        match a {
            2 => (sc.small_coupon_value, sc.small_coupon_value),
            3 => (sc.large_coupon_value, sc.large_coupon_value),
            4 => (
                sc.shipping_value * sc.free_shipping_appeal,
                sc.shipping_value,
            ),
            5 => (sc.exit_coupon_value, sc.exit_coupon_value),
            _ => (0.0, 0.0),
        }
    }

    /// The coupon held after taking `a` at `stage` with `held` (the more valuable one is kept).
    fn held_after(cfg: &WorldConfig, stage: i8, held: u8, a: u8) -> u8 {
        // Coupons are offered on browse and cart pages; on exit intent only the exit overlay
        // (action 5) reaches the leaving visitor.
        let offered = match a {
            2..=4 if stage != EXIT => a,
            5 if stage == EXIT => 5,
            _ => 0,
        };
        if offered == 0 {
            return held;
        }
        if held == 0 || Self::coupon_value(cfg, offered).1 > Self::coupon_value(cfg, held).1 {
            offered
        } else {
            held
        }
    }

    fn appeal(&self, cfg: &WorldConfig, i: usize, held: u8) -> f64 {
        if held == 0 {
            return 0.0;
        }
        if self.dog[i] {
            return cfg.sessions.sleeping_dog_coupon_logit;
        }
        let (v, _) = Self::coupon_value(cfg, held);
        cfg.sessions.coupon_logit_per_unit * v * (0.4 + 1.2 * self.ps[i]) * self.resp[i]
    }

    fn basket_mult(&self, cfg: &WorldConfig, i: usize, held: u8) -> f64 {
        if held == 0 {
            1.0
        } else {
            1.0 + cfg.sessions.coupon_basket_lift * self.ps[i]
        }
    }

    /// Probability of the "good" transition at `stage` after action `a` (held = after a):
    /// browse -> cart, cart -> purchase, exit -> purchase.
    fn p_forward(&self, cfg: &WorldConfig, i: usize, stage: i8, held: u8, a: u8) -> f64 {
        let sc = &cfg.sessions;
        let x = self.intent[i];
        let ap = self.appeal(cfg, i, held);
        match stage {
            BROWSE => {
                let g = if a == 1 { self.guide_u[i] } else { 0.0 };
                sigmoid(sc.cart_logit + x + g + sc.coupon_browse_factor * ap)
            }
            CART => {
                let g = if a == 1 {
                    sc.guide_cart_effect * self.guide_u[i].signum()
                } else {
                    0.0
                };
                sigmoid(sc.checkout_logit + x + ap + g)
            }
            EXIT => sigmoid(sc.recover_logit + x + ap),
            _ => 0.0,
        }
    }

    fn exit_share(cfg: &WorldConfig, stage: i8) -> f64 {
        match stage {
            BROWSE => cfg.sessions.exit_detect_share,
            CART => cfg.sessions.cart_exit_share,
            _ => 0.0,
        }
    }

    /// Expected net value (GMV - cost) of the rest of session `i` if `a` is taken now, then none.
    pub fn value(&self, m: &Model, i: usize, stage: i8, held: u8, a: u8) -> f64 {
        let cfg = &m.cfg;
        if stage == PURCHASED || stage == LEFT {
            return 0.0;
        }
        let h2 = Self::held_after(cfg, stage, held, a);
        let p = self.p_forward(cfg, i, stage, h2, a);
        let leave_to_exit = (1.0 - p) * Self::exit_share(cfg, stage);
        let exit_v = if stage == EXIT {
            0.0
        } else {
            leave_to_exit * self.value(m, i, EXIT, h2, 0)
        };
        let fwd = if stage == BROWSE {
            self.value(m, i, CART, h2, 0)
        } else {
            let mu = cfg.spend.p / self.nu[i];
            mu * self.basket_mult(cfg, i, h2) - Self::coupon_value(cfg, h2).1
        };
        p * fwd + exit_v
    }

    fn check_actions(&self, actions: &[i64]) -> Result<()> {
        crate::error::check_len("actions", actions.len(), self.n(), "the sessions")?;
        for (i, &a) in actions.iter().enumerate() {
            if a < 0 || a >= ACTIONS.len() as i64 {
                return Err(CoreError::invalid(
                    "actions",
                    format!(
                        "position {i}: {a} is not an action (0 to {})",
                        ACTIONS.len() - 1
                    ),
                ));
            }
            if a != 0 && self.stage[i] >= PURCHASED {
                return Err(CoreError::invalid(
                    "actions",
                    format!(
                        "position {i}: session is done (stage {}); only action 0 is allowed",
                        self.stage[i]
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn expected_value(&self, m: &Model, actions: &[i64]) -> Result<Vec<f64>> {
        self.check_actions(actions)?;
        Ok((0..self.n())
            .into_par_iter()
            .with_min_len(4096)
            .map(|i| self.value(m, i, self.stage[i], self.held[i], actions[i] as u8))
            .collect())
    }

    /// Advances every active session by one step.
    pub fn step(&mut self, m: &Model, actions: &[i64]) -> Result<StepOut> {
        self.check_actions(actions)?;
        let cfg = &m.cfg;
        let n = self.n();
        let step_seed = mix64(self.seed ^ mix64(self.steps.wrapping_add(0x5E55)));
        let this = &*self;
        let res: Vec<(i8, u8, f64, f64)> = (0..n)
            .into_par_iter()
            .with_min_len(4096)
            .map(|i| {
                let stage = this.stage[i];
                if stage >= PURCHASED {
                    return (stage, this.held[i], 0.0, 0.0);
                }
                let a = actions[i] as u8;
                let h2 = Self::held_after(cfg, stage, this.held[i], a);
                let mut rng = stream2(step_seed, DOMAIN_SESSION + 1, i as u64);
                let p = this.p_forward(cfg, i, stage, h2, a);
                let u: f64 = rng.random();
                if u < p {
                    if stage == BROWSE {
                        (CART, h2, 0.0, 0.0)
                    } else {
                        let x: f64 = Gamma::new(cfg.spend.p, 1.0 / this.nu[i])
                            .unwrap()
                            .sample(&mut rng);
                        let amount =
                            ((x * this.basket_mult(cfg, i, h2) * 100.0).round() / 100.0).max(0.01);
                        (PURCHASED, h2, amount, Self::coupon_value(cfg, h2).1)
                    }
                } else {
                    let to_exit =
                        stage != EXIT && rng.random::<f64>() < Self::exit_share(cfg, stage);
                    (if to_exit { EXIT } else { LEFT }, h2, 0.0, 0.0)
                }
            })
            .collect();
        let mut out = StepOut {
            reward: vec![0.0; n],
            cost: vec![0.0; n],
        };
        for (i, (s, h, r, c)) in res.into_iter().enumerate() {
            self.stage[i] = s;
            self.held[i] = h;
            out.reward[i] = r;
            out.cost[i] = c;
        }
        self.steps += 1;
        Ok(out)
    }
}
