//! The default world: the one definition of every default of `growthmachine.sim.WorldConfig`.
//! Python reads it (`_core.sim_default_config()`) for its dataclass defaults and documents each
//! field there, with the reasoning behind its value; the archetypes are described here.

use super::config::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[allow(clippy::too_many_arguments)]
fn arch(
    name: &str,
    share: f64,
    rate_tilt: f64,
    price_sensitivity: f64,
    responsiveness: f64,
    sleeping_dog_share: f64,
    guide_response: f64,
    category_weights: [f64; 8],
    channel_affinity: [f64; 5],
    content_fit: [f64; 4],
    age_band_weights: [f64; 5],
    city_tier_weights: [f64; 4],
    device_weights: [f64; 3],
    acquisition_weights: [f64; 6],
) -> Archetype {
    Archetype {
        name: name.to_string(),
        share,
        rate_tilt,
        price_sensitivity,
        responsiveness,
        sleeping_dog_share,
        guide_response,
        category_weights: category_weights.to_vec(),
        channel_affinity: channel_affinity.to_vec(),
        content_fit: content_fit.to_vec(),
        age_band_weights: age_band_weights.to_vec(),
        city_tier_weights: city_tier_weights.to_vec(),
        device_weights: device_weights.to_vec(),
        acquisition_weights: acquisition_weights.to_vec(),
    }
}

impl Default for WorldConfig {
    fn default() -> Self {
        // categories: grocery, fashion, electronics, beauty, home, baby, sports, books
        // channels: push, sms, email, in_app, ads
        // contents: discount, new_arrivals, personalised, social_proof
        // age bands: 18-24, 25-34, 35-44, 45-54, 55+; tiers 1..4; devices ios, android, web
        // acquisition: organic, search, social, referral, paid_ads, offline
        let archetypes = vec![
            // Price-driven, coupon-responsive, mass-market cities, Android, low sleeping-dog risk.
            arch(
                "bargain_hunter",
                0.20,
                -0.2,
                0.85,
                1.3,
                0.03,
                0.2,
                [3.0, 2.0, 1.0, 1.5, 1.5, 1.0, 0.7, 0.5],
                [0.55, 0.45, 0.35, 0.6, 0.5],
                [1.4, 0.6, 0.9, 1.1],
                [1.5, 2.5, 2.0, 1.5, 1.0],
                [0.6, 1.2, 1.6, 1.6],
                [0.8, 2.2, 0.7],
                [1.0, 1.5, 1.5, 2.0, 1.5, 0.5],
            ),
            // Frequent, price-insensitive, dislike interruptions (negative guidance), many dogs.
            arch(
                "busy_professional",
                0.17,
                0.4,
                0.25,
                0.7,
                0.12,
                -0.4,
                [1.5, 1.5, 2.0, 0.8, 1.0, 0.3, 0.8, 0.8],
                [0.25, 0.1, 0.35, 0.45, 0.35],
                [0.5, 1.0, 1.5, 0.7],
                [0.3, 2.5, 2.5, 1.2, 0.3],
                [2.5, 1.5, 0.6, 0.3],
                [2.0, 1.0, 1.2],
                [2.0, 2.0, 0.8, 0.8, 1.0, 0.3],
            ),
            // Young, fashion/beauty, social acquisition, responsive to new arrivals and social proof.
            arch(
                "young_trendsetter",
                0.16,
                0.1,
                0.6,
                1.1,
                0.05,
                0.6,
                [0.6, 3.0, 1.5, 2.5, 0.6, 0.1, 1.2, 0.4],
                [0.6, 0.2, 0.2, 0.7, 0.6],
                [0.8, 1.6, 1.1, 1.5],
                [3.0, 2.5, 0.6, 0.2, 0.1],
                [1.6, 1.4, 1.0, 0.6],
                [1.8, 1.6, 0.3],
                [0.8, 0.8, 3.0, 1.5, 1.5, 0.2],
            ),
            // Groceries, baby and home; frequent; moderately price sensitive.
            arch(
                "family_shopper",
                0.17,
                0.3,
                0.55,
                1.0,
                0.04,
                0.4,
                [3.0, 1.2, 0.8, 0.8, 2.0, 2.5, 0.7, 0.6],
                [0.45, 0.3, 0.45, 0.5, 0.35],
                [1.2, 0.8, 1.3, 1.0],
                [0.3, 2.0, 3.0, 1.5, 0.4],
                [1.0, 1.5, 1.5, 1.0],
                [1.0, 1.6, 0.8],
                [1.5, 1.5, 1.2, 1.5, 1.0, 0.8],
            ),
            // Most frequent, least price sensitive, tier-1 iOS: a quarter react badly to promotions.
            arch(
                "loyal_premium",
                0.10,
                0.8,
                0.15,
                0.5,
                0.25,
                -0.1,
                [1.5, 1.5, 1.5, 1.5, 1.5, 0.8, 1.0, 1.0],
                [0.35, 0.1, 0.4, 0.55, 0.15],
                [0.3, 1.3, 1.6, 0.6],
                [0.2, 1.5, 2.5, 2.0, 1.0],
                [3.0, 1.5, 0.5, 0.2],
                [2.5, 0.8, 1.0],
                [3.0, 1.5, 0.5, 1.0, 0.5, 0.5],
            ),
            // Rare buyers of gifts (electronics, beauty, books), reached best by ads and e-mail.
            arch(
                "occasional_gifter",
                0.12,
                -0.6,
                0.45,
                0.9,
                0.06,
                0.8,
                [0.3, 1.5, 2.0, 2.0, 1.2, 0.6, 1.0, 1.8],
                [0.3, 0.2, 0.45, 0.3, 0.55],
                [0.9, 1.3, 1.0, 1.4],
                [0.8, 1.5, 1.5, 1.5, 1.0],
                [1.2, 1.4, 1.2, 0.8],
                [1.0, 1.0, 1.5],
                [1.0, 2.5, 1.0, 1.0, 2.0, 0.5],
            ),
            // Older, web and SMS/e-mail, price sensitive, welcome guidance.
            arch(
                "silver_saver",
                0.08,
                -0.3,
                0.7,
                0.8,
                0.08,
                0.9,
                [2.5, 0.6, 0.8, 0.8, 2.0, 0.4, 0.6, 2.0],
                [0.2, 0.5, 0.6, 0.25, 0.3],
                [1.2, 0.6, 0.9, 0.8],
                [0.05, 0.2, 0.8, 2.0, 4.0],
                [1.0, 1.3, 1.5, 1.5],
                [0.6, 1.2, 1.8],
                [1.5, 1.0, 0.3, 1.5, 0.5, 2.5],
            ),
        ];
        WorldConfig {
            purchase: PurchaseConfig {
                r: 0.8,
                alpha: 60.0,
                a: 0.9,
                b: 6.0,
                first_order_delay_days: 3.0,
            },
            spend: SpendConfig {
                p: 5.0,
                q: 3.5,
                gamma: 25.0,
            },
            population: PopulationConfig {
                prospect_share: 0.25,
                pre_window_share: 0.5,
                history_days: 730.0,
            },
            seasonality: SeasonalityConfig {
                weekly: vec![0.95, 0.92, 0.95, 1.0, 1.05, 1.1, 1.03],
                yearly_amplitude: 0.12,
                yearly_peak_day: 330.0,
                festival_day: 314.0,
                festival_boost: 1.5,
                festival_width_days: 3.0,
                start_day_of_year: 0,
                start_weekday: 0,
            },
            categories: s(&[
                "grocery",
                "fashion",
                "electronics",
                "beauty",
                "home",
                "baby",
                "sports",
                "books",
            ]),
            observables: ObservablesConfig {
                age_bands: s(&["18-24", "25-34", "35-44", "45-54", "55+"]),
                city_tiers: s(&["tier1", "tier2", "tier3", "tier4"]),
                devices: s(&["ios", "android", "web"]),
                acquisition_channels: s(&[
                    "organic", "search", "social", "referral", "paid_ads", "offline",
                ]),
                app_devices: s(&["ios", "android"]),
                push_opt_in: 0.65,
                email_opt_in: 0.6,
                sms_opt_in: 0.35,
            },
            archetypes,
            response: ResponseConfig {
                benefits: vec![
                    Benefit {
                        name: "none".into(),
                        face_value: 0.0,
                        cost: 0.0,
                        appeal: 0.0,
                        basket_lift: 0.0,
                    },
                    Benefit {
                        name: "coupon_5".into(),
                        face_value: 5.0,
                        cost: 5.0,
                        appeal: 0.6,
                        basket_lift: 0.05,
                    },
                    Benefit {
                        name: "coupon_10".into(),
                        face_value: 10.0,
                        cost: 10.0,
                        appeal: 1.0,
                        basket_lift: 0.12,
                    },
                    Benefit {
                        name: "coupon_20".into(),
                        face_value: 20.0,
                        cost: 20.0,
                        appeal: 1.5,
                        basket_lift: 0.25,
                    },
                    Benefit {
                        name: "free_shipping".into(),
                        face_value: 6.0,
                        cost: 4.0,
                        appeal: 0.7,
                        basket_lift: 0.08,
                    },
                    Benefit {
                        name: "points_500".into(),
                        face_value: 5.0,
                        cost: 3.0,
                        appeal: 0.35,
                        basket_lift: 0.03,
                    },
                ],
                contents: s(&["discount", "new_arrivals", "personalised", "social_proof"]),
                channels: ChannelsConfig {
                    push: Channel {
                        unit_cost: 0.0005,
                        daily_cap: 1,
                    },
                    sms: Channel {
                        unit_cost: 0.03,
                        daily_cap: 1,
                    },
                    email: Channel {
                        unit_cost: 0.001,
                        daily_cap: 1,
                    },
                    in_app: Channel {
                        unit_cost: 0.0,
                        daily_cap: 2,
                    },
                    ads: Channel {
                        unit_cost: 0.01,
                        daily_cap: 10,
                    },
                },
                offer_scale: 0.12,
                offer_cap: 0.6,
                exposure_max: 0.15,
                hill_ec50: 6.0,
                hill_slope: 2.0,
                fatigue_rate: 0.25,
                fatigue_halflife_days: 7.0,
                optout_base: 0.002,
                optout_per_fatigue: 0.5,
                sleeping_dog_penalty: 0.4,
                sleeping_dog_optout_mult: 5.0,
                redemption_rate: 0.8,
                prospect_daily_hazard: 0.0005,
                prospect_mult: 1.3,
                active_mult: 1.0,
                lapsed_mult: 0.4,
                affinity_noise: 0.3,
                responsiveness_noise: 0.5,
                price_sensitivity_concentration: 8.0,
                margin: 0.3,
            },
            sessions: SessionConfig {
                visit_base: 0.05,
                visit_rate_weight: 30.0,
                cart_logit: -2.6,
                checkout_logit: 0.3,
                recover_logit: -3.5,
                intent_weight: 0.5,
                lapsed_logit: -1.0,
                prospect_logit: -0.8,
                exit_detect_share: 0.7,
                cart_exit_share: 0.8,
                guide_effect: 0.8,
                guide_cart_effect: 0.0,
                coupon_logit_per_unit: 0.04,
                coupon_browse_factor: 0.3,
                sleeping_dog_coupon_logit: -0.6,
                coupon_basket_lift: 0.1,
                small_coupon_value: 5.0,
                large_coupon_value: 10.0,
                exit_coupon_value: 8.0,
                shipping_value: 6.0,
                free_shipping_appeal: 0.8,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        WorldConfig::default().validate().unwrap();
        let j = serde_json::to_string(&WorldConfig::default()).unwrap();
        assert_eq!(WorldConfig::from_json(&j).unwrap(), WorldConfig::default());
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = WorldConfig::default();
        c.purchase.r = -1.0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("config.purchase.r:"));
        let mut c = WorldConfig::default();
        c.archetypes[2].category_weights.pop();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("config.archetypes[2].category_weights:"),
            "{e}"
        );
        let mut c = WorldConfig::default();
        c.spend.q = 0.5;
        assert!(c.validate().unwrap_err().to_string().contains("spend.q"));
        assert!(WorldConfig::from_json("{\"purchase\": 1}").is_err());
    }

    #[test]
    fn sections_are_checked_on_their_own_with_their_path() {
        let c = WorldConfig::default();
        let mut a = c.archetypes[2].clone();
        a.share = -1.0;
        let e = a.validate_at("archetype").unwrap_err().to_string();
        assert!(e.starts_with("archetype.share:"), "{e}");
        // how many weights an archetype needs is the world's: on its own any number is fine
        a.share = 1.0;
        a.category_weights.pop();
        a.validate_at("archetype").unwrap();
        let mut w = c.clone();
        w.archetypes[2] = a;
        let e = w.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("config.archetypes[2].category_weights:"),
            "{e}"
        );
        let json = serde_json::to_string(&c.response.channels.sms).unwrap();
        validate_section("ChannelConfig", &json, "channel").unwrap();
        let bad = json.replace("\"daily_cap\":", "\"daily_cap\":0,\"x\":");
        assert!(validate_section("ChannelConfig", &bad, "channel").is_err());
        let mut r = c.response.clone();
        r.channels.ads.daily_cap = 0;
        let e = validate_section(
            "ResponseConfig",
            &serde_json::to_string(&r).unwrap(),
            "response",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("response.channels.ads.daily_cap:"), "{e}");
        assert!(validate_section("Nothing", "{}", "x").is_err());
    }
}
