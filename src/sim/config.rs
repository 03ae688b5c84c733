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

// Every check names the field by its full path: `at.field`, where `at` is the section's own path
// ("config.purchase" inside a world, "purchase" for a section checked on its own, as Python's
// dataclasses do at construction).

fn bad(path: &str, msg: impl Into<String>) -> CoreError {
    CoreError::invalid(path, msg)
}

fn pos(path: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(bad(path, format!("must be a finite number > 0, got {v}")));
    }
    Ok(())
}

fn nonneg(path: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(bad(path, format!("must be a finite number >= 0, got {v}")));
    }
    Ok(())
}

fn finite(path: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(bad(path, format!("must be finite, got {v}")));
    }
    Ok(())
}

fn prob(path: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
        return Err(bad(path, format!("must be in [0, 1], got {v}")));
    }
    Ok(())
}

fn open_prob(path: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0 && v < 1.0) {
        return Err(bad(path, format!("must be in (0, 1), got {v}")));
    }
    Ok(())
}

/// Weights: finite values >= 0 with a positive sum (their number is the world's to check).
fn weights(path: &str, w: &[f64]) -> Result<()> {
    for (i, v) in w.iter().enumerate() {
        if !(v.is_finite() && *v >= 0.0) {
            return Err(bad(
                path,
                format!("must hold finite values >= 0, got {v} at position {i}"),
            ));
        }
    }
    if w.iter().sum::<f64>() <= 0.0 {
        return Err(bad(path, "must have a positive sum"));
    }
    Ok(())
}

/// One value per element of a list of the world (`of`, `len` of them).
fn one_per(path: &str, n: usize, len: usize, of: &str) -> Result<()> {
    if n != len {
        return Err(bad(
            path,
            format!("has {n} values, expected {len} (one per {of})"),
        ));
    }
    Ok(())
}

fn names(path: &str, v: &[String], max: usize) -> Result<()> {
    if v.is_empty() {
        return Err(bad(path, "must not be empty"));
    }
    if v.len() > max {
        return Err(bad(
            path,
            format!("has {} names, at most {max} are supported", v.len()),
        ));
    }
    for (i, n) in v.iter().enumerate() {
        if n.is_empty() {
            return Err(bad(path, format!("empty name at position {i}")));
        }
        if v[..i].contains(n) {
            return Err(bad(path, format!("duplicate name {n:?}")));
        }
    }
    Ok(())
}

/// A part of the configuration whose own fields can be checked without the rest of the world.
pub trait Section: serde::de::DeserializeOwned {
    /// Checks the section's fields; errors name them as `at.field`.
    fn validate_at(&self, at: &str) -> Result<()>;
}

impl Section for PurchaseConfig {
    fn validate_at(&self, at: &str) -> Result<()> {
        let f = |x: &str| format!("{at}.{x}");
        pos(&f("r"), self.r)?;
        pos(&f("alpha"), self.alpha)?;
        pos(&f("a"), self.a)?;
        pos(&f("b"), self.b)?;
        pos(&f("first_order_delay_days"), self.first_order_delay_days)?;
        if self.r / self.alpha > 5.0 {
            return Err(bad(
                &f("alpha"),
                format!(
                    "mean purchase rate r/alpha = {} orders per day is implausible (> 5)",
                    self.r / self.alpha
                ),
            ));
        }
        Ok(())
    }
}

impl Section for SpendConfig {
    fn validate_at(&self, at: &str) -> Result<()> {
        let f = |x: &str| format!("{at}.{x}");
        pos(&f("p"), self.p)?;
        pos(&f("q"), self.q)?;
        pos(&f("gamma"), self.gamma)?;
        if self.q <= 1.0 {
            return Err(bad(
                &f("q"),
                format!(
                    "must be > 1 so that the mean order value is finite, got {}",
                    self.q
                ),
            ));
        }
        Ok(())
    }
}

impl Section for PopulationConfig {
    fn validate_at(&self, at: &str) -> Result<()> {
        let f = |x: &str| format!("{at}.{x}");
        prob(&f("prospect_share"), self.prospect_share)?;
        prob(&f("pre_window_share"), self.pre_window_share)?;
        pos(&f("history_days"), self.history_days)?;
        if self.history_days > 20_000.0 {
            return Err(bad(&f("history_days"), "must be <= 20000"));
        }
        Ok(())
    }
}

impl Section for SeasonalityConfig {
    fn validate_at(&self, at: &str) -> Result<()> {
        let f = |x: &str| format!("{at}.{x}");
        let weekly = f("weekly");
        one_per(&weekly, self.weekly.len(), 7, "weekday, Monday first")?;
        weights(&weekly, &self.weekly)?;
        if self.weekly.iter().any(|v| *v <= 0.0) {
            return Err(bad(&weekly, "every weekday needs a weight > 0"));
        }
        let amplitude = self.yearly_amplitude;
        if !(amplitude.is_finite() && (0.0..1.0).contains(&amplitude)) {
            return Err(bad(
                &f("yearly_amplitude"),
                format!("must be in [0, 1), got {amplitude}"),
            ));
        }
        finite(&f("yearly_peak_day"), self.yearly_peak_day)?;
        finite(&f("festival_day"), self.festival_day)?;
        nonneg(&f("festival_boost"), self.festival_boost)?;
        pos(&f("festival_width_days"), self.festival_width_days)?;
        if self.start_day_of_year >= 365 {
            return Err(bad(&f("start_day_of_year"), "must be in 0 to 364"));
        }
        if self.start_weekday >= 7 {
            return Err(bad(&f("start_weekday"), "must be in 0 to 6"));
        }
        Ok(())
    }
}

impl Section for ObservablesConfig {
    fn validate_at(&self, at: &str) -> Result<()> {
        let f = |x: &str| format!("{at}.{x}");
        names(&f("age_bands"), &self.age_bands, 255)?;
        names(&f("city_tiers"), &self.city_tiers, 255)?;
        names(&f("devices"), &self.devices, 255)?;
        names(&f("acquisition_channels"), &self.acquisition_channels, 255)?;
        for d in &self.app_devices {
            if !self.devices.contains(d) {
                return Err(bad(
                    &f("app_devices"),
                    format!("{d:?} is not one of {at}.devices"),
                ));
            }
        }
        prob(&f("push_opt_in"), self.push_opt_in)?;
        prob(&f("email_opt_in"), self.email_opt_in)?;
        prob(&f("sms_opt_in"), self.sms_opt_in)?;
        Ok(())
    }
}

impl Section for Archetype {
    /// The archetype's own values; how many weights it needs is the world's to check.
    fn validate_at(&self, at: &str) -> Result<()> {
        let f = |x: &str| format!("{at}.{x}");
        if self.name.is_empty() {
            return Err(bad(&f("name"), "must not be empty"));
        }
        nonneg(&f("share"), self.share)?;
        finite(&f("rate_tilt"), self.rate_tilt)?;
        if self.rate_tilt.abs() > 10.0 {
            return Err(bad(&f("rate_tilt"), "must be in [-10, 10]"));
        }
        open_prob(&f("price_sensitivity"), self.price_sensitivity)?;
        nonneg(&f("responsiveness"), self.responsiveness)?;
        prob(&f("sleeping_dog_share"), self.sleeping_dog_share)?;
        finite(&f("guide_response"), self.guide_response)?;
        weights(&f("category_weights"), &self.category_weights)?;
        if self.channel_affinity.len() != CHANNELS.len() {
            return Err(bad(
                &f("channel_affinity"),
                format!(
                    "has {} values, expected {} ({})",
                    self.channel_affinity.len(),
                    CHANNELS.len(),
                    CHANNELS.join(", ")
                ),
            ));
        }
        for (j, v) in self.channel_affinity.iter().enumerate() {
            prob(&format!("{at}.channel_affinity[{j}]"), *v)?;
        }
        for (j, v) in self.content_fit.iter().enumerate() {
            nonneg(&format!("{at}.content_fit[{j}]"), *v)?;
        }
        weights(&f("age_band_weights"), &self.age_band_weights)?;
        weights(&f("city_tier_weights"), &self.city_tier_weights)?;
        weights(&f("device_weights"), &self.device_weights)?;
        weights(&f("acquisition_weights"), &self.acquisition_weights)?;
        Ok(())
    }
}

impl Section for Benefit {
    fn validate_at(&self, at: &str) -> Result<()> {
        let f = |x: &str| format!("{at}.{x}");
        if self.name.is_empty() {
            return Err(bad(&f("name"), "must not be empty"));
        }
        nonneg(&f("face_value"), self.face_value)?;
        nonneg(&f("cost"), self.cost)?;
        nonneg(&f("appeal"), self.appeal)?;
        nonneg(&f("basket_lift"), self.basket_lift)?;
        Ok(())
    }
}

impl Section for Channel {
    fn validate_at(&self, at: &str) -> Result<()> {
        nonneg(&format!("{at}.unit_cost"), self.unit_cost)?;
        if self.daily_cap == 0 {
            return Err(bad(&format!("{at}.daily_cap"), "must be >= 1"));
        }
        Ok(())
    }
}

impl Section for ChannelsConfig {
    fn validate_at(&self, at: &str) -> Result<()> {
        for (c, name) in CHANNELS.iter().enumerate() {
            self.get(c).validate_at(&format!("{at}.{name}"))?;
        }
        Ok(())
    }
}

impl Section for ResponseConfig {
    fn validate_at(&self, at: &str) -> Result<()> {
        let f = |x: &str| format!("{at}.{x}");
        names(&f("contents"), &self.contents, 255)?;
        if self.benefits.is_empty() || self.benefits.len() > 255 {
            return Err(bad(&f("benefits"), "needs 1 to 255 benefits"));
        }
        for (i, b) in self.benefits.iter().enumerate() {
            b.validate_at(&format!("{at}.benefits[{i}]"))?;
            if self.benefits[..i].iter().any(|c| c.name == b.name) {
                return Err(bad(
                    &format!("{at}.benefits[{i}].name"),
                    format!("duplicate benefit {:?}", b.name),
                ));
            }
        }
        self.channels.validate_at(&f("channels"))?;
        nonneg(&f("offer_scale"), self.offer_scale)?;
        prob(&f("offer_cap"), self.offer_cap)?;
        if self.offer_cap >= 1.0 {
            return Err(bad(&f("offer_cap"), "must be < 1"));
        }
        prob(&f("exposure_max"), self.exposure_max)?;
        pos(&f("hill_ec50"), self.hill_ec50)?;
        pos(&f("hill_slope"), self.hill_slope)?;
        if self.hill_slope > 10.0 {
            return Err(bad(&f("hill_slope"), "must be <= 10"));
        }
        nonneg(&f("fatigue_rate"), self.fatigue_rate)?;
        pos(&f("fatigue_halflife_days"), self.fatigue_halflife_days)?;
        prob(&f("optout_base"), self.optout_base)?;
        nonneg(&f("optout_per_fatigue"), self.optout_per_fatigue)?;
        prob(&f("sleeping_dog_penalty"), self.sleeping_dog_penalty)?;
        nonneg(
            &f("sleeping_dog_optout_mult"),
            self.sleeping_dog_optout_mult,
        )?;
        prob(&f("redemption_rate"), self.redemption_rate)?;
        nonneg(&f("prospect_daily_hazard"), self.prospect_daily_hazard)?;
        if self.prospect_daily_hazard > 1.0 {
            return Err(bad(&f("prospect_daily_hazard"), "must be <= 1"));
        }
        nonneg(&f("prospect_mult"), self.prospect_mult)?;
        nonneg(&f("active_mult"), self.active_mult)?;
        nonneg(&f("lapsed_mult"), self.lapsed_mult)?;
        nonneg(&f("affinity_noise"), self.affinity_noise)?;
        nonneg(&f("responsiveness_noise"), self.responsiveness_noise)?;
        pos(
            &f("price_sensitivity_concentration"),
            self.price_sensitivity_concentration,
        )?;
        prob(&f("margin"), self.margin)?;
        Ok(())
    }
}

impl Section for SessionConfig {
    fn validate_at(&self, at: &str) -> Result<()> {
        let f = |x: &str| format!("{at}.{x}");
        nonneg(&f("visit_base"), self.visit_base)?;
        nonneg(&f("visit_rate_weight"), self.visit_rate_weight)?;
        if self.visit_base + self.visit_rate_weight <= 0.0 {
            return Err(bad(
                &f("visit_base"),
                "visit_base + visit_rate_weight must be > 0",
            ));
        }
        for (n, v) in [
            ("cart_logit", self.cart_logit),
            ("checkout_logit", self.checkout_logit),
            ("recover_logit", self.recover_logit),
            ("intent_weight", self.intent_weight),
            ("lapsed_logit", self.lapsed_logit),
            ("prospect_logit", self.prospect_logit),
            ("guide_effect", self.guide_effect),
            ("guide_cart_effect", self.guide_cart_effect),
            ("sleeping_dog_coupon_logit", self.sleeping_dog_coupon_logit),
        ] {
            finite(&f(n), v)?;
        }
        prob(&f("exit_detect_share"), self.exit_detect_share)?;
        prob(&f("cart_exit_share"), self.cart_exit_share)?;
        nonneg(&f("coupon_logit_per_unit"), self.coupon_logit_per_unit)?;
        nonneg(&f("coupon_browse_factor"), self.coupon_browse_factor)?;
        nonneg(&f("coupon_basket_lift"), self.coupon_basket_lift)?;
        nonneg(&f("small_coupon_value"), self.small_coupon_value)?;
        nonneg(&f("large_coupon_value"), self.large_coupon_value)?;
        nonneg(&f("exit_coupon_value"), self.exit_coupon_value)?;
        nonneg(&f("shipping_value"), self.shipping_value)?;
        nonneg(&f("free_shipping_appeal"), self.free_shipping_appeal)?;
        Ok(())
    }
}

/// Checks one section given as JSON (`kind`: the name of its type, e.g. `"PurchaseConfig"`) on its
/// own, naming its fields `at.field`: what Python's configuration dataclasses run at construction.
pub fn validate_section(kind: &str, json: &str, at: &str) -> Result<()> {
    fn check<S: Section>(json: &str, at: &str) -> Result<()> {
        let s: S = serde_json::from_str(json)
            .map_err(|e| CoreError::invalid(at, format!("cannot be read: {e}")))?;
        s.validate_at(at)
    }
    match kind {
        "PurchaseConfig" => check::<PurchaseConfig>(json, at),
        "SpendConfig" => check::<SpendConfig>(json, at),
        "PopulationConfig" => check::<PopulationConfig>(json, at),
        "SeasonalityConfig" => check::<SeasonalityConfig>(json, at),
        "ObservablesConfig" => check::<ObservablesConfig>(json, at),
        "Archetype" => check::<Archetype>(json, at),
        "Benefit" => check::<Benefit>(json, at),
        "ChannelConfig" => check::<Channel>(json, at),
        "ChannelsConfig" => check::<ChannelsConfig>(json, at),
        "ResponseConfig" => check::<ResponseConfig>(json, at),
        "SessionConfig" => check::<SessionConfig>(json, at),
        _ => Err(CoreError::invalid(
            "kind",
            format!("unknown section {kind:?}"),
        )),
    }
}

impl WorldConfig {
    pub fn from_json(s: &str) -> Result<Self> {
        let cfg: WorldConfig = serde_json::from_str(s)
            .map_err(|e| CoreError::invalid("config", format!("cannot be read: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field; the error names the field by its dotted path (`config.purchase.r`):
    /// each section's own checks, then what relates the sections (one weight per category, ...).
    pub fn validate(&self) -> Result<()> {
        self.purchase.validate_at("config.purchase")?;
        self.spend.validate_at("config.spend")?;
        self.population.validate_at("config.population")?;
        self.seasonality.validate_at("config.seasonality")?;
        names("config.categories", &self.categories, 255)?;
        let o = &self.observables;
        o.validate_at("config.observables")?;
        let r = &self.response;
        if self.archetypes.is_empty() {
            return Err(bad("config.archetypes", "must not be empty"));
        }
        if self.archetypes.len() > 255 {
            return Err(bad(
                "config.archetypes",
                "at most 255 archetypes are supported",
            ));
        }
        names("config.response.contents", &r.contents, 255)?;
        for (i, a) in self.archetypes.iter().enumerate() {
            let at = format!("config.archetypes[{i}]");
            let f = |x: &str| format!("{at}.{x}");
            a.validate_at(&at)?;
            if self.archetypes[..i].iter().any(|b| b.name == a.name) {
                return Err(bad(&f("name"), format!("duplicate archetype {:?}", a.name)));
            }
            for (field, n, len, of) in [
                (
                    "category_weights",
                    a.category_weights.len(),
                    self.categories.len(),
                    "category",
                ),
                (
                    "content_fit",
                    a.content_fit.len(),
                    r.contents.len(),
                    "response.contents",
                ),
                (
                    "age_band_weights",
                    a.age_band_weights.len(),
                    o.age_bands.len(),
                    "age band",
                ),
                (
                    "city_tier_weights",
                    a.city_tier_weights.len(),
                    o.city_tiers.len(),
                    "city tier",
                ),
                (
                    "device_weights",
                    a.device_weights.len(),
                    o.devices.len(),
                    "device",
                ),
                (
                    "acquisition_weights",
                    a.acquisition_weights.len(),
                    o.acquisition_channels.len(),
                    "acquisition channel",
                ),
            ] {
                one_per(&f(field), n, len, of)?;
            }
        }
        if self.archetypes.iter().map(|a| a.share).sum::<f64>() <= 0.0 {
            return Err(bad("config.archetypes", "shares must have a positive sum"));
        }
        r.validate_at("config.response")?;
        self.sessions.validate_at("config.sessions")
    }
}
