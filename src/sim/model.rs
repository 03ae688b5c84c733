//! The prepared model: the configuration plus the tables every sampler uses (seasonality,
//! cumulative weights), and the per-user hidden parameters drawn from each user's own stream.
//!
//! A user's static parameters are a pure function of `(population seed, user id, config)`: the
//! environment re-draws them on demand instead of storing them, so they cost no memory and can
//! never drift from what the population was generated with.

use super::config::*;
use crate::rng::{stream2, Rng};
use crate::special::{digamma, trigamma};
use rand::Rng as _;
use rand_distr::{Beta, Distribution, Exp1, Gamma, StandardNormal};

pub const DOMAIN_USER: u64 = 1;
pub const DOMAIN_HISTORY: u64 = 2;
pub const DOMAIN_APPLY: u64 = 3;
pub const DOMAIN_SESSION: u64 = 4;
/// Replicate order paths of `expected_window` (the incentive cost of several coupons).
pub const DOMAIN_EXPECTED: u64 = 5;

/// Days in the seasonality cycle (365 x 7: both the yearly and the weekly pattern repeat).
const CYCLE: usize = 365 * 7;

/// Cumulative, normalised weights for categorical draws.
#[derive(Clone, Debug)]
pub struct Cum(Vec<f64>);

impl Cum {
    pub fn new(w: &[f64]) -> Self {
        let total: f64 = w.iter().sum();
        let mut acc = 0.0;
        let mut c: Vec<f64> = w
            .iter()
            .map(|v| {
                acc += v / total;
                acc
            })
            .collect();
        if let Some(last) = c.last_mut() {
            *last = 1.0;
        }
        Cum(c)
    }
    #[inline]
    pub fn draw(&self, rng: &mut Rng) -> u8 {
        let u: f64 = rng.random();
        self.0
            .iter()
            .position(|c| u < *c)
            .unwrap_or(self.0.len() - 1) as u8
    }
}

#[derive(Clone, Debug)]
pub struct ArchTables {
    pub category: Cum,
    pub age: Cum,
    pub tier: Cum,
    pub device: Cum,
    pub acq: Cum,
}

/// Config + precomputed tables.
#[derive(Clone, Debug)]
pub struct Model {
    pub cfg: WorldConfig,
    season: Vec<f64>,
    pub season_max: f64,
    pub arch: Vec<ArchTables>,
    pub app_device: Vec<bool>,
    ln_rate_mean: f64,
    ln_rate_sd: f64,
    pub benefit_has_cost: Vec<bool>,
}

/// The hidden and observable static parameters of one user.
#[derive(Clone, Debug, Default)]
pub struct UserParams {
    pub archetype: u8,
    pub lambda: f64,
    pub dropout: f64,
    pub nu: f64,
    pub z: f64,
    pub is_prospect: bool,
    pub signup: f64,
    pub first_order: f64,
    pub price_sensitivity: f64,
    pub responsiveness: f64,
    pub sleeping_dog: bool,
    pub affinity: [f64; 5],
    pub age: u8,
    pub tier: u8,
    pub device: u8,
    pub acq: u8,
    pub push_ok: bool,
    pub email_ok: bool,
    pub sms_ok: bool,
    /// Has the app (device in `observables.app_devices`): push and in-app need it.
    pub app: bool,
}

impl UserParams {
    /// May the user be contacted on channel `c` (consent and device; opt-outs are state)?
    pub fn reachable(&self, c: usize) -> bool {
        match c {
            CH_PUSH => self.push_ok,
            CH_SMS => self.sms_ok,
            CH_EMAIL => self.email_ok,
            CH_IN_APP => self.app,
            _ => true,
        }
    }
}

/// The compact, stored form of a user's static parameters (48 bytes): what the environment and
/// the session stream need, copied once from the population's truth.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StaticUser {
    pub lambda: f32,
    pub dropout: f32,
    pub nu: f32,
    pub price_sensitivity: f32,
    pub responsiveness: f32,
    pub affinity: [f32; 5],
    pub signup: f32,
    pub archetype: u8,
    pub age: u8,
    pub tier: u8,
    pub device: u8,
    pub acq: u8,
    /// Bits: 0 prospect, 1 sleeping dog, 2 push ok, 3 email ok, 4 sms ok, 5 app.
    pub flags: u8,
}

impl StaticUser {
    pub fn from_params(u: &UserParams) -> Self {
        let mut flags = 0u8;
        for (bit, on) in [
            u.is_prospect,
            u.sleeping_dog,
            u.push_ok,
            u.email_ok,
            u.sms_ok,
            u.app,
        ]
        .iter()
        .enumerate()
        {
            if *on {
                flags |= 1 << bit;
            }
        }
        StaticUser {
            lambda: u.lambda as f32,
            dropout: u.dropout as f32,
            nu: u.nu as f32,
            price_sensitivity: u.price_sensitivity as f32,
            responsiveness: u.responsiveness as f32,
            affinity: u.affinity.map(|a| a as f32),
            signup: u.signup as f32,
            archetype: u.archetype,
            age: u.age,
            tier: u.tier,
            device: u.device,
            acq: u.acq,
            flags,
        }
    }

    /// The parameters as [`UserParams`] (fields the environment does not use are left default).
    #[inline]
    pub fn expand(&self, m: &Model) -> UserParams {
        let f = |bit: u8| self.flags & (1 << bit) != 0;
        let lambda = self.lambda as f64;
        UserParams {
            archetype: self.archetype,
            lambda,
            dropout: self.dropout as f64,
            nu: self.nu as f64,
            z: m.rate_z(lambda),
            is_prospect: f(0),
            signup: self.signup as f64,
            first_order: f64::NAN,
            price_sensitivity: self.price_sensitivity as f64,
            responsiveness: self.responsiveness as f64,
            sleeping_dog: f(1),
            affinity: self.affinity.map(|a| a as f64),
            age: self.age,
            tier: self.tier,
            device: self.device,
            acq: self.acq,
            push_ok: f(2),
            email_ok: f(3),
            sms_ok: f(4),
            app: f(5),
        }
    }
}

impl Model {
    /// Standardised log purchase rate (the archetype and session-intent covariate).
    #[inline]
    pub fn rate_z(&self, lambda: f64) -> f64 {
        (((lambda * self.cfg.purchase.alpha).max(1e-300).ln() - self.ln_rate_mean)
            / self.ln_rate_sd)
            .clamp(-6.0, 6.0)
    }

    pub fn new(cfg: WorldConfig) -> Self {
        let se = &cfg.seasonality;
        let wmean = se.weekly.iter().sum::<f64>() / 7.0;
        let mut yearly = vec![0.0; 365];
        for (d, y) in yearly.iter_mut().enumerate() {
            let two_pi = 2.0 * std::f64::consts::PI;
            let cyc = (two_pi * (d as f64 - se.yearly_peak_day) / 365.0).cos();
            let mut dist = (d as f64 - se.festival_day).rem_euclid(365.0);
            if dist > 182.5 {
                dist = 365.0 - dist;
            }
            let fest = se.festival_boost * (-0.5 * (dist / se.festival_width_days).powi(2)).exp();
            *y = 1.0 + se.yearly_amplitude * cyc + fest;
        }
        let ymean = yearly.iter().sum::<f64>() / 365.0;
        let mut season = vec![0.0; CYCLE];
        for (i, s) in season.iter_mut().enumerate() {
            let doy = (se.start_day_of_year as usize + i) % 365;
            let dow = (se.start_weekday as usize + i) % 7;
            *s = yearly[doy] / ymean * se.weekly[dow] / wmean;
        }
        let season_max = season.iter().cloned().fold(0.0, f64::max);
        let arch = cfg
            .archetypes
            .iter()
            .map(|a| ArchTables {
                category: Cum::new(&a.category_weights),
                age: Cum::new(&a.age_band_weights),
                tier: Cum::new(&a.city_tier_weights),
                device: Cum::new(&a.device_weights),
                acq: Cum::new(&a.acquisition_weights),
            })
            .collect();
        let app_device = cfg
            .observables
            .devices
            .iter()
            .map(|d| cfg.observables.app_devices.contains(d))
            .collect();
        let r = cfg.purchase.r;
        let benefit_has_cost = cfg.response.benefits.iter().map(|b| b.cost > 0.0).collect();
        Model {
            season,
            season_max,
            arch,
            app_device,
            ln_rate_mean: digamma(r),
            ln_rate_sd: trigamma(r).sqrt(),
            benefit_has_cost,
            cfg,
        }
    }

    /// Relative order intensity on day index `d` (any integer; mean 1 over a year).
    #[inline]
    pub fn season(&self, d: i64) -> f64 {
        self.season[d.rem_euclid(CYCLE as i64) as usize]
    }

    /// Sum of the seasonality over days `[start, start + days)`.
    pub fn season_sum(&self, start: i64, days: i64) -> f64 {
        (start..start + days).map(|d| self.season(d)).sum()
    }

    pub fn n_archetypes(&self) -> usize {
        self.cfg.archetypes.len()
    }

    /// Draws user `uid`'s static parameters from its own stream.
    pub fn draw_user(&self, pop_seed: u64, uid: u64, days: u32) -> UserParams {
        let cfg = &self.cfg;
        let mut rng = stream2(pop_seed, DOMAIN_USER, uid);
        let pc = &cfg.purchase;
        let g: f64 = Gamma::new(pc.r, 1.0).unwrap().sample(&mut rng);
        let g = g.max(1e-300);
        let lambda = g / pc.alpha;
        let dropout: f64 = Beta::new(pc.a, pc.b).unwrap().sample(&mut rng);
        let dropout = dropout.clamp(1e-12, 1.0 - 1e-12);
        let sc = &cfg.spend;
        let nu: f64 = Gamma::new(sc.q, 1.0 / sc.gamma).unwrap().sample(&mut rng);
        let nu = nu.max(1e-12);
        let z = ((g.ln() - self.ln_rate_mean) / self.ln_rate_sd).clamp(-6.0, 6.0);
        // Archetype given the (standardised log) purchase rate: keeps lambda's marginal exactly Gamma.
        let mut wsum = 0.0;
        let mut w = [0.0f64; 256];
        for (k, a) in cfg.archetypes.iter().enumerate() {
            w[k] = a.share * (a.rate_tilt * z).exp();
            wsum += w[k];
        }
        let mut u: f64 = rng.random::<f64>() * wsum;
        let mut archetype = cfg.archetypes.len() - 1;
        for (k, wk) in w.iter().enumerate().take(cfg.archetypes.len()) {
            if u < *wk {
                archetype = k;
                break;
            }
            u -= wk;
        }
        let a = &cfg.archetypes[archetype];
        let t = &self.arch[archetype];
        let is_prospect = rng.random::<f64>() < cfg.population.prospect_share;
        let pre = rng.random::<f64>() < cfg.population.pre_window_share;
        let us: f64 = rng.random();
        let signup = if pre {
            -cfg.population.history_days * us
        } else {
            days as f64 * us
        };
        let delay: f64 = Exp1.sample(&mut rng);
        let first_order = if is_prospect {
            f64::NAN
        } else {
            signup + delay * pc.first_order_delay_days
        };
        let rc = &cfg.response;
        let kappa = rc.price_sensitivity_concentration;
        let ps: f64 = Beta::new(
            (a.price_sensitivity * kappa).max(1e-3),
            ((1.0 - a.price_sensitivity) * kappa).max(1e-3),
        )
        .unwrap()
        .sample(&mut rng);
        let n1: f64 = StandardNormal.sample(&mut rng);
        let sr = rc.responsiveness_noise;
        let responsiveness = a.responsiveness * (sr * n1 - 0.5 * sr * sr).exp();
        let sleeping_dog = rng.random::<f64>() < a.sleeping_dog_share;
        let mut affinity = [0.0; 5];
        let sa = rc.affinity_noise;
        for (c, af) in affinity.iter_mut().enumerate() {
            let n: f64 = StandardNormal.sample(&mut rng);
            *af = (a.channel_affinity[c] * (sa * n - 0.5 * sa * sa).exp()).min(1.0);
        }
        let age = t.age.draw(&mut rng);
        let tier = t.tier.draw(&mut rng);
        let device = t.device.draw(&mut rng);
        let acq = t.acq.draw(&mut rng);
        let app = self.app_device[device as usize];
        let o = &cfg.observables;
        let push_ok = app && rng.random::<f64>() < o.push_opt_in;
        let email_ok = rng.random::<f64>() < o.email_opt_in;
        let sms_ok = rng.random::<f64>() < o.sms_opt_in;
        UserParams {
            archetype: archetype as u8,
            lambda,
            dropout,
            nu,
            z,
            is_prospect,
            signup,
            first_order,
            price_sensitivity: ps,
            responsiveness,
            sleeping_dog,
            affinity,
            age,
            tier,
            device,
            acq,
            push_ok,
            email_ok,
            sms_ok,
            app,
        }
    }

    /// Mean order value of a user (Gamma-Gamma: p / nu).
    #[inline]
    pub fn mean_spend(&self, u: &UserParams) -> f64 {
        self.cfg.spend.p / u.nu
    }

    #[inline]
    pub fn draw_amount(&self, u: &UserParams, rng: &mut Rng) -> f64 {
        let x: f64 = Gamma::new(self.cfg.spend.p, 1.0 / u.nu)
            .unwrap()
            .sample(rng);
        ((x * 100.0).round() / 100.0).max(0.01)
    }
}
