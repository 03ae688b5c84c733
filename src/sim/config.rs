//! The world's configuration: the serde mirror of `growthmachine.sim.WorldConfig`.
//!
//! The core owns the defaults ([`defaults`](super::defaults)); Python reads them for its dataclasses
//! (`python/growthmachine/sim/_config.py`, which documents every field) and sends the whole
//! configuration as JSON. Every field is required here (no serde defaults), unknown
//! fields are rejected, and [`WorldConfig::validate`] names the offending field with its dotted path
//! (`purchase.r`, `archetypes[2].category_weights`, ...), so bad values never reach a sampler.

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// Channel order used everywhere in the core (codes 0..5).
pub const CHANNELS: [&str; 5] = ["push", "sms", "email", "in_app", "ads"];
pub const CH_PUSH: usize = 0;
pub const CH_SMS: usize = 1;
pub const CH_EMAIL: usize = 2;
pub const CH_IN_APP: usize = 3;
pub const CH_ADS: usize = 4;
/// Off-site channels (push, sms, email, ads): their exposures saturate along the Hill curve and may
/// opt the user out. in_app is on site.
pub const OFFSITE: [bool; 5] = [true, true, true, false, true];
/// The users column holding each channel's consent (`None`: no consent needed).
pub const CONSENT: [Option<&str>; 5] = [
    Some("push_opt_in"),
    Some("sms_opt_in"),
    Some("email_opt_in"),
    None,
    None,
];
/// Channels that need the app (`users.has_app`).
pub const NEEDS_APP: [bool; 5] = [true, false, false, true, false];

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorldConfig {
    pub purchase: PurchaseConfig,
    pub spend: SpendConfig,
    pub population: PopulationConfig,
    pub seasonality: SeasonalityConfig,
    pub categories: Vec<String>,
    pub observables: ObservablesConfig,
    pub archetypes: Vec<Archetype>,
    pub response: ResponseConfig,
    pub sessions: SessionConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PurchaseConfig {
    /// Purchase rate per day lambda ~ Gamma(shape r, rate alpha).
    pub r: f64,
    pub alpha: f64,
    /// Dropout probability after each repeat order p ~ Beta(a, b).
    pub a: f64,
    pub b: f64,
    /// Mean of the exponential delay from sign-up to the first order (days).
    pub first_order_delay_days: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpendConfig {
    /// Order value ~ Gamma(shape p, rate nu), nu ~ Gamma(shape q, rate gamma) (Gamma-Gamma).
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PopulationConfig {
    pub prospect_share: f64,
    pub pre_window_share: f64,
    pub history_days: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeasonalityConfig {
    /// Relative order intensity Monday..Sunday (normalised to mean 1).
    pub weekly: Vec<f64>,
    pub yearly_amplitude: f64,
    pub yearly_peak_day: f64,
    pub festival_day: f64,
    pub festival_boost: f64,
    pub festival_width_days: f64,
    /// Day of year (0 = 1 January) of day index 0, and its weekday (0 = Monday).
    pub start_day_of_year: u64,
    pub start_weekday: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObservablesConfig {
    pub age_bands: Vec<String>,
    pub city_tiers: Vec<String>,
    pub devices: Vec<String>,
    pub acquisition_channels: Vec<String>,
    /// Devices with the app installed (push and in-app messages need one).
    pub app_devices: Vec<String>,
    pub push_opt_in: f64,
    pub email_opt_in: f64,
    pub sms_opt_in: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Archetype {
    pub name: String,
    pub share: f64,
    pub rate_tilt: f64,
    pub price_sensitivity: f64,
    pub responsiveness: f64,
    pub sleeping_dog_share: f64,
    pub guide_response: f64,
    pub category_weights: Vec<f64>,
    /// push, sms, email, in_app, ads.
    pub channel_affinity: Vec<f64>,
    pub content_fit: Vec<f64>,
    pub age_band_weights: Vec<f64>,
    pub city_tier_weights: Vec<f64>,
    pub device_weights: Vec<f64>,
    pub acquisition_weights: Vec<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Benefit {
    pub name: String,
    /// Face value shown to the user (currency units; 0 for none).
    pub face_value: f64,
    /// What the platform pays when the benefit is redeemed.
    pub cost: f64,
    /// Base appeal of the offer (scales the offer response).
    pub appeal: f64,
    /// Relative basket increase of an order the benefit caused.
    pub basket_lift: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub unit_cost: f64,
    pub daily_cap: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    pub push: Channel,
    pub sms: Channel,
    pub email: Channel,
    pub in_app: Channel,
    pub ads: Channel,
}

impl ChannelsConfig {
    pub fn get(&self, c: usize) -> &Channel {
        match c {
            CH_PUSH => &self.push,
            CH_SMS => &self.sms,
            CH_EMAIL => &self.email,
            CH_IN_APP => &self.in_app,
            _ => &self.ads,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    pub benefits: Vec<Benefit>,
    pub contents: Vec<String>,
    pub channels: ChannelsConfig,
    pub offer_scale: f64,
    pub offer_cap: f64,
    pub exposure_max: f64,
    pub hill_ec50: f64,
    pub hill_slope: f64,
    pub fatigue_rate: f64,
    pub fatigue_halflife_days: f64,
    pub optout_base: f64,
    pub optout_per_fatigue: f64,
    pub sleeping_dog_penalty: f64,
    pub sleeping_dog_optout_mult: f64,
    pub redemption_rate: f64,
    pub prospect_daily_hazard: f64,
    pub prospect_mult: f64,
    pub active_mult: f64,
    pub lapsed_mult: f64,
    pub affinity_noise: f64,
    pub responsiveness_noise: f64,
    pub price_sensitivity_concentration: f64,
    pub margin: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    pub visit_base: f64,
    pub visit_rate_weight: f64,
    pub cart_logit: f64,
    pub checkout_logit: f64,
    pub recover_logit: f64,
    pub intent_weight: f64,
    pub lapsed_logit: f64,
    pub prospect_logit: f64,
    pub exit_detect_share: f64,
    pub cart_exit_share: f64,
    pub guide_effect: f64,
    pub guide_cart_effect: f64,
    pub coupon_logit_per_unit: f64,
    pub coupon_browse_factor: f64,
    pub sleeping_dog_coupon_logit: f64,
    pub coupon_basket_lift: f64,
    pub small_coupon_value: f64,
    pub large_coupon_value: f64,
    pub exit_coupon_value: f64,
    pub shipping_value: f64,
    pub free_shipping_appeal: f64,
}

fn bad(field: &str, msg: impl Into<String>) -> CoreError {
    CoreError::invalid(format!("config.{field}"), msg)
}

fn pos(field: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(bad(field, format!("must be a finite number > 0, got {v}")));
    }
    Ok(())
}

fn nonneg(field: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(bad(field, format!("must be a finite number >= 0, got {v}")));
    }
    Ok(())
}

fn finite(field: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(bad(field, format!("must be finite, got {v}")));
    }
    Ok(())
}

fn prob(field: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
        return Err(bad(field, format!("must be in [0, 1], got {v}")));
    }
    Ok(())
}

fn open_prob(field: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0 && v < 1.0) {
        return Err(bad(field, format!("must be in (0, 1), got {v}")));
    }
    Ok(())
}

fn weights(field: &str, w: &[f64], len: usize, of: &str) -> Result<()> {
    if w.len() != len {
        return Err(bad(
            field,
            format!("has {} values, expected {len} (one per {of})", w.len()),
        ));
    }
    for (i, v) in w.iter().enumerate() {
        if !(v.is_finite() && *v >= 0.0) {
            return Err(bad(
                field,
                format!("must hold finite values >= 0, got {v} at position {i}"),
            ));
        }
    }
    if w.iter().sum::<f64>() <= 0.0 {
        return Err(bad(field, "must have a positive sum"));
    }
    Ok(())
}

fn names(field: &str, v: &[String], max: usize) -> Result<()> {
    if v.is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if v.len() > max {
        return Err(bad(
            field,
            format!("has {} names, at most {max} are supported", v.len()),
        ));
    }
    for (i, n) in v.iter().enumerate() {
        if n.is_empty() {
            return Err(bad(field, format!("empty name at position {i}")));
        }
        if v[..i].contains(n) {
            return Err(bad(field, format!("duplicate name {n:?}")));
        }
    }
    Ok(())
}

impl WorldConfig {
    pub fn from_json(s: &str) -> Result<Self> {
        let cfg: WorldConfig = serde_json::from_str(s)
            .map_err(|e| CoreError::invalid("config", format!("cannot be read: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field; the error names the field by its dotted path.
    pub fn validate(&self) -> Result<()> {
        let p = &self.purchase;
        pos("purchase.r", p.r)?;
        pos("purchase.alpha", p.alpha)?;
        pos("purchase.a", p.a)?;
        pos("purchase.b", p.b)?;
        pos("purchase.first_order_delay_days", p.first_order_delay_days)?;
        if p.r / p.alpha > 5.0 {
            return Err(bad(
                "purchase.alpha",
                format!(
                    "mean purchase rate r/alpha = {} orders per day is implausible (> 5)",
                    p.r / p.alpha
                ),
            ));
        }
        let s = &self.spend;
        pos("spend.p", s.p)?;
        pos("spend.q", s.q)?;
        pos("spend.gamma", s.gamma)?;
        if s.q <= 1.0 {
            return Err(bad(
                "spend.q",
                format!(
                    "must be > 1 so that the mean order value is finite, got {}",
                    s.q
                ),
            ));
        }
        let pc = &self.population;
        prob("population.prospect_share", pc.prospect_share)?;
        prob("population.pre_window_share", pc.pre_window_share)?;
        pos("population.history_days", pc.history_days)?;
        if pc.history_days > 20_000.0 {
            return Err(bad("population.history_days", "must be <= 20000"));
        }
        let se = &self.seasonality;
        weights("seasonality.weekly", &se.weekly, 7, "weekday, Monday first")?;
        if se.weekly.iter().any(|v| *v <= 0.0) {
            return Err(bad(
                "seasonality.weekly",
                "every weekday needs a weight > 0",
            ));
        }
        if !(se.yearly_amplitude.is_finite() && (0.0..1.0).contains(&se.yearly_amplitude)) {
            return Err(bad(
                "seasonality.yearly_amplitude",
                format!("must be in [0, 1), got {}", se.yearly_amplitude),
            ));
        }
        finite("seasonality.yearly_peak_day", se.yearly_peak_day)?;
        finite("seasonality.festival_day", se.festival_day)?;
        nonneg("seasonality.festival_boost", se.festival_boost)?;
        pos("seasonality.festival_width_days", se.festival_width_days)?;
        if se.start_day_of_year >= 365 {
            return Err(bad("seasonality.start_day_of_year", "must be in 0 to 364"));
        }
        if se.start_weekday >= 7 {
            return Err(bad("seasonality.start_weekday", "must be in 0 to 6"));
        }
        names("categories", &self.categories, 255)?;
        let o = &self.observables;
        names("observables.age_bands", &o.age_bands, 255)?;
        names("observables.city_tiers", &o.city_tiers, 255)?;
        names("observables.devices", &o.devices, 255)?;
        names(
            "observables.acquisition_channels",
            &o.acquisition_channels,
            255,
        )?;
        for d in &o.app_devices {
            if !o.devices.contains(d) {
                return Err(bad(
                    "observables.app_devices",
                    format!("{d:?} is not one of observables.devices"),
                ));
            }
        }
        prob("observables.push_opt_in", o.push_opt_in)?;
        prob("observables.email_opt_in", o.email_opt_in)?;
        prob("observables.sms_opt_in", o.sms_opt_in)?;
        let r = &self.response;
        if self.archetypes.is_empty() {
            return Err(bad("archetypes", "must not be empty"));
        }
        if self.archetypes.len() > 255 {
            return Err(bad("archetypes", "at most 255 archetypes are supported"));
        }
        names("response.contents", &r.contents, 255)?;
        for (i, a) in self.archetypes.iter().enumerate() {
            let f = |x: &str| format!("archetypes[{i}].{x}");
            if a.name.is_empty() {
                return Err(bad(&f("name"), "must not be empty"));
            }
            if self.archetypes[..i].iter().any(|b| b.name == a.name) {
                return Err(bad(&f("name"), format!("duplicate archetype {:?}", a.name)));
            }
            nonneg(&f("share"), a.share)?;
            finite(&f("rate_tilt"), a.rate_tilt)?;
            if a.rate_tilt.abs() > 10.0 {
                return Err(bad(&f("rate_tilt"), "must be in [-10, 10]"));
            }
            open_prob(&f("price_sensitivity"), a.price_sensitivity)?;
            nonneg(&f("responsiveness"), a.responsiveness)?;
            prob(&f("sleeping_dog_share"), a.sleeping_dog_share)?;
            finite(&f("guide_response"), a.guide_response)?;
            weights(
                &f("category_weights"),
                &a.category_weights,
                self.categories.len(),
                "category",
            )?;
            if a.channel_affinity.len() != CHANNELS.len() {
                return Err(bad(
                    &f("channel_affinity"),
                    format!(
                        "has {} values, expected {} ({})",
                        a.channel_affinity.len(),
                        CHANNELS.len(),
                        CHANNELS.join(", ")
                    ),
                ));
            }
            for (j, v) in a.channel_affinity.iter().enumerate() {
                prob(&format!("archetypes[{i}].channel_affinity[{j}]"), *v)?;
            }
            if a.content_fit.len() != r.contents.len() {
                return Err(bad(
                    &f("content_fit"),
                    format!(
                        "has {} values, expected {} (one per response.contents)",
                        a.content_fit.len(),
                        r.contents.len()
                    ),
                ));
            }
            for (j, v) in a.content_fit.iter().enumerate() {
                nonneg(&format!("archetypes[{i}].content_fit[{j}]"), *v)?;
            }
            weights(
                &f("age_band_weights"),
                &a.age_band_weights,
                o.age_bands.len(),
                "age band",
            )?;
            weights(
                &f("city_tier_weights"),
                &a.city_tier_weights,
                o.city_tiers.len(),
                "city tier",
            )?;
            weights(
                &f("device_weights"),
                &a.device_weights,
                o.devices.len(),
                "device",
            )?;
            weights(
                &f("acquisition_weights"),
                &a.acquisition_weights,
                o.acquisition_channels.len(),
                "acquisition channel",
            )?;
        }
        if self.archetypes.iter().map(|a| a.share).sum::<f64>() <= 0.0 {
            return Err(bad("archetypes", "shares must have a positive sum"));
        }
        if r.benefits.is_empty() || r.benefits.len() > 255 {
            return Err(bad("response.benefits", "needs 1 to 255 benefits"));
        }
        for (i, b) in r.benefits.iter().enumerate() {
            let f = |x: &str| format!("response.benefits[{i}].{x}");
            if b.name.is_empty() {
                return Err(bad(&f("name"), "must not be empty"));
            }
            if r.benefits[..i].iter().any(|c| c.name == b.name) {
                return Err(bad(&f("name"), format!("duplicate benefit {:?}", b.name)));
            }
            nonneg(&f("face_value"), b.face_value)?;
            nonneg(&f("cost"), b.cost)?;
            nonneg(&f("appeal"), b.appeal)?;
            nonneg(&f("basket_lift"), b.basket_lift)?;
        }
        for (c, name) in CHANNELS.iter().enumerate() {
            let ch = r.channels.get(c);
            nonneg(&format!("response.channels.{name}.unit_cost"), ch.unit_cost)?;
            if ch.daily_cap == 0 {
                return Err(bad(
                    &format!("response.channels.{name}.daily_cap"),
                    "must be >= 1",
                ));
            }
        }
        nonneg("response.offer_scale", r.offer_scale)?;
        prob("response.offer_cap", r.offer_cap)?;
        if r.offer_cap >= 1.0 {
            return Err(bad("response.offer_cap", "must be < 1"));
        }
        prob("response.exposure_max", r.exposure_max)?;
        pos("response.hill_ec50", r.hill_ec50)?;
        pos("response.hill_slope", r.hill_slope)?;
        if r.hill_slope > 10.0 {
            return Err(bad("response.hill_slope", "must be <= 10"));
        }
        nonneg("response.fatigue_rate", r.fatigue_rate)?;
        pos("response.fatigue_halflife_days", r.fatigue_halflife_days)?;
        prob("response.optout_base", r.optout_base)?;
        nonneg("response.optout_per_fatigue", r.optout_per_fatigue)?;
        prob("response.sleeping_dog_penalty", r.sleeping_dog_penalty)?;
        nonneg(
            "response.sleeping_dog_optout_mult",
            r.sleeping_dog_optout_mult,
        )?;
        prob("response.redemption_rate", r.redemption_rate)?;
        nonneg("response.prospect_daily_hazard", r.prospect_daily_hazard)?;
        if r.prospect_daily_hazard > 1.0 {
            return Err(bad("response.prospect_daily_hazard", "must be <= 1"));
        }
        nonneg("response.prospect_mult", r.prospect_mult)?;
        nonneg("response.active_mult", r.active_mult)?;
        nonneg("response.lapsed_mult", r.lapsed_mult)?;
        nonneg("response.affinity_noise", r.affinity_noise)?;
        nonneg("response.responsiveness_noise", r.responsiveness_noise)?;
        pos(
            "response.price_sensitivity_concentration",
            r.price_sensitivity_concentration,
        )?;
        prob("response.margin", r.margin)?;
        let s = &self.sessions;
        nonneg("sessions.visit_base", s.visit_base)?;
        nonneg("sessions.visit_rate_weight", s.visit_rate_weight)?;
        if s.visit_base + s.visit_rate_weight <= 0.0 {
            return Err(bad(
                "sessions.visit_base",
                "visit_base + visit_rate_weight must be > 0",
            ));
        }
        for (n, v) in [
            ("sessions.cart_logit", s.cart_logit),
            ("sessions.checkout_logit", s.checkout_logit),
            ("sessions.recover_logit", s.recover_logit),
            ("sessions.intent_weight", s.intent_weight),
            ("sessions.lapsed_logit", s.lapsed_logit),
            ("sessions.prospect_logit", s.prospect_logit),
            ("sessions.guide_effect", s.guide_effect),
            ("sessions.guide_cart_effect", s.guide_cart_effect),
            (
                "sessions.sleeping_dog_coupon_logit",
                s.sleeping_dog_coupon_logit,
            ),
        ] {
            finite(n, v)?;
        }
        prob("sessions.exit_detect_share", s.exit_detect_share)?;
        prob("sessions.cart_exit_share", s.cart_exit_share)?;
        nonneg("sessions.coupon_logit_per_unit", s.coupon_logit_per_unit)?;
        nonneg("sessions.coupon_browse_factor", s.coupon_browse_factor)?;
        nonneg("sessions.coupon_basket_lift", s.coupon_basket_lift)?;
        nonneg("sessions.small_coupon_value", s.small_coupon_value)?;
        nonneg("sessions.large_coupon_value", s.large_coupon_value)?;
        nonneg("sessions.exit_coupon_value", s.exit_coupon_value)?;
        nonneg("sessions.shipping_value", s.shipping_value)?;
        nonneg("sessions.free_shipping_appeal", s.free_shipping_appeal)?;
        Ok(())
    }
}
