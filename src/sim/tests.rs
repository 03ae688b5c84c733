#![allow(clippy::needless_range_loop)]
use super::config::*;
use super::env::*;
use super::model::*;
use super::population::*;
use super::response::*;
use super::sessions::*;
use super::treatments::*;
use crate::control::Control;
use crate::parallel;
use crate::special::{digamma, trigamma};

fn model() -> Model {
    Model::new(WorldConfig::default())
}

fn env_for(m: &Model, p: &PopulationData, seed: u64, days: u32, pop_seed: u64) -> Env {
    let customer: Vec<bool> = (0..p.n_users())
        .map(|i| !p.is_prospect[i] && p.first_order_day[i] < days as f64)
        .collect();
    let statics = (0..p.n_users())
        .map(|i| StaticUser::from_params(&m.draw_user(pop_seed, i as u64, days)))
        .collect();
    Env::new(
        pop_seed,
        days,
        seed,
        statics,
        &p.alive_at_end,
        &customer,
        &p.last_order_day,
        &p.n_orders,
        &p.gmv,
    )
    .unwrap()
}

#[test]
fn special_functions() {
    // digamma(1) = -Euler gamma, trigamma(1) = pi^2 / 6
    assert!((digamma(1.0) + 0.5772156649015329).abs() < 1e-10);
    assert!((trigamma(1.0) - std::f64::consts::PI.powi(2) / 6.0).abs() < 1e-10);
    assert!((digamma(0.5) + 1.9635100260214235).abs() < 1e-10);
}

#[test]
fn season_has_mean_one_and_a_november_peak() {
    let m = model();
    let mean: f64 = (0..365 * 7).map(|d| m.season(d)).sum::<f64>() / (365.0 * 7.0);
    assert!((mean - 1.0).abs() < 0.01, "{mean}");
    let nov: f64 = (310..320).map(|d| m.season(d)).sum::<f64>() / 10.0;
    let spring: f64 = (90..100).map(|d| m.season(d)).sum::<f64>() / 10.0;
    assert!(nov > 1.5 * spring, "{nov} {spring}");
    assert_eq!(m.season(-1), m.season(365 * 7 - 1));
}

#[test]
fn generation_is_deterministic_across_threads_and_prefix_stable() {
    let m = model();
    parallel::set_num_threads(1);
    let a = parallel::install(|| generate(&m, 40_000, 365, 7, &Control::new()).unwrap());
    parallel::set_num_threads(2);
    let b = parallel::install(|| generate(&m, 40_000, 365, 7, &Control::new()).unwrap());
    assert_eq!(a.tx_amount, b.tx_amount);
    assert_eq!(a.tx_user, b.tx_user);
    assert_eq!(a.archetype, b.archetype);
    let c = generate(&m, 1000, 365, 7, &Control::new()).unwrap();
    assert_eq!(c.purchase_rate[..], a.purchase_rate[..1000]);
    let d = generate(&m, 1000, 365, 8, &Control::new()).unwrap();
    assert_ne!(c.purchase_rate, d.purchase_rate);
}

#[test]
fn generated_statistics_match_the_config() {
    let m = model();
    let n = 100_000;
    let p = generate(&m, n, 365, 1, &Control::new()).unwrap();
    let cfg = &m.cfg;
    let nf = n as f64;
    let prospects = p.is_prospect.iter().filter(|x| **x).count() as f64 / nf;
    let se = (0.25f64 * 0.75 / nf).sqrt();
    assert!(
        (prospects - cfg.population.prospect_share).abs() < 4.0 * se,
        "{prospects}"
    );
    let mean_rate = p.purchase_rate.iter().sum::<f64>() / nf;
    let want = cfg.purchase.r / cfg.purchase.alpha;
    let sd = (cfg.purchase.r).sqrt() / cfg.purchase.alpha / nf.sqrt();
    assert!((mean_rate - want).abs() < 4.0 * sd, "{mean_rate} vs {want}");
    let mean_p = p.dropout_p.iter().sum::<f64>() / nf;
    let (a, b) = (cfg.purchase.a, cfg.purchase.b);
    assert!((mean_p - a / (a + b)).abs() < 0.003, "{mean_p}");
    // Transactions sorted by (user, day), inside the window, positive amounts.
    for w in 0..p.tx_user.len().saturating_sub(1) {
        assert!(
            (p.tx_user[w], p.tx_day[w]) <= (p.tx_user[w + 1], p.tx_day[w + 1]),
            "unsorted at {w}"
        );
    }
    assert!(p.tx_day.iter().all(|d| (0..365).contains(d)));
    assert!(p.tx_amount.iter().all(|a| *a > 0.0));
    // Prospects never order in the history.
    let ordered: std::collections::HashSet<i64> = p.tx_user.iter().cloned().collect();
    for (i, pr) in p.is_prospect.iter().enumerate() {
        if *pr {
            assert!(!ordered.contains(&(i as i64)));
        }
    }
    // Mean order value ~ p * gamma / (q - 1) (average over orders weighted by users: check the
    // per-user mean_spend average instead, which is exact in expectation).
    let ms = p.mean_spend.iter().sum::<f64>() / nf;
    let want = cfg.spend.p * cfg.spend.gamma / (cfg.spend.q - 1.0);
    assert!((ms - want).abs() / want < 0.03, "{ms} vs {want}");
    // All archetypes present.
    for k in 0..cfg.archetypes.len() as u8 {
        assert!(p.archetype.iter().filter(|a| **a == k).count() > 1000);
    }
}

#[test]
fn expected_orders_matches_simulation() {
    use rand::Rng as _;
    let (big_l, p) = (2.5, 0.3);
    let mut rng = crate::rng::stream(1, 2);
    let n = 200_000;
    let mut tot = 0u64;
    for _ in 0..n {
        // Poisson arrivals with dropout after each order.
        let mut t = 0.0;
        loop {
            let e: f64 = -rng.random::<f64>().ln();
            t += e / big_l;
            if t >= 1.0 {
                break;
            }
            tot += 1;
            if rng.random::<f64>() < p {
                break;
            }
        }
    }
    let sim = tot as f64 / n as f64;
    let ex = expected_orders(big_l, p);
    assert!((sim - ex).abs() < 0.01, "{sim} vs {ex}");
    assert_eq!(expected_orders(0.0, 0.5), 0.0);
    assert!((expected_orders(1.0, 0.0) - 1.0).abs() < 1e-12);
}

#[test]
fn hill_and_fatigue_are_monotone() {
    let mut prev = 0.0;
    for k in 1..30 {
        let h = hill(k as f64, 6.0, 2.0);
        assert!(h > prev);
        prev = h;
    }
    assert!((hill(6.0, 6.0, 2.0) - 0.5).abs() < 1e-12);
    // Expected effect decreases with fatigue.
    let m = model();
    let mut st = UserState {
        alive: true,
        customer: true,
        optout: 0,
        last_touch: NEVER,
        fatigue: 0.0,
        n_orders: 3,
        last_order: 300.0,
        gmv: 100.0,
    };
    let u = (0..1000)
        .map(|i| m.draw_user(3, i, 365))
        .find(|u| !u.sleeping_dog && u.push_ok)
        .unwrap();
    let mut prev = f64::INFINITY;
    for f in 0..10 {
        st.fatigue = f as f32;
        st.last_touch = 365;
        let e = expected_effect(&m, &u, &st, 2, CH_PUSH, 0, 365, 30);
        assert!(e.eligible);
        assert!(e.incremental_conversion < prev, "fatigue {f}");
        prev = e.incremental_conversion;
    }
}

#[test]
fn apply_checks_rules_and_is_deterministic() {
    let m = model();
    let p = generate(&m, 20_000, 365, 3, &Control::new()).unwrap();
    let mut e1 = env_for(&m, &p, 9, 365, 3);
    // A user without SMS consent.
    let no_sms = (0..20_000).find(|i| !p.sms_opt_in[*i]).unwrap() as i64;
    let err = e1
        .apply(
            &m,
            &[no_sms],
            &[1],
            &[CH_SMS as u8],
            &[0],
            &[365],
            365,
            30,
            &Control::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("treatments['channel']: row 0"), "{err}");
    assert_eq!(e1.day, 365, "a rejected call must not advance the world");
    let err = e1
        .apply(
            &m,
            &[0],
            &[1],
            &[CH_ADS as u8],
            &[0],
            &[300],
            365,
            30,
            &Control::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("treatments['day']"), "{err}");
    // Ads: cap 10 per day.
    let err = e1
        .apply(
            &m,
            &[5; 11],
            &[0; 11],
            &[CH_ADS as u8; 11],
            &[0; 11],
            &[365; 11],
            365,
            30,
            &Control::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("cap is 10"), "{err}");
    let users: Vec<i64> = (0..20_000).collect();
    let t = users.len();
    let run = |threads| {
        parallel::set_num_threads(threads);
        let mut e = env_for(&m, &p, 9, 365, 3);
        parallel::install(|| {
            e.apply(
                &m,
                &users,
                &vec![2; t],
                &vec![CH_ADS as u8; t],
                &vec![0; t],
                &vec![370; t],
                365,
                30,
                &Control::new(),
            )
            .unwrap()
        })
    };
    let a = run(1);
    let b = run(2);
    assert_eq!(a.gmv, b.gmv);
    assert_eq!(a.incentive_cost, b.incentive_cost);
    // Costs only when redeemed, never more than one coupon per user here.
    for i in 0..t {
        assert!(a.incentive_cost[i] == 0.0 || a.redeemed[i] == 1);
        assert!(a.redeemed[i] <= a.orders[i]);
        assert_eq!(a.exposures[i], 1);
    }
}

#[test]
fn sessions_invariants_and_determinism() {
    let m = model();
    let p = generate(&m, 5_000, 365, 4, &Control::new()).unwrap();
    let env = env_for(&m, &p, 1, 365, 4);
    let mut s = Sessions::new(&m, &env, 20_000, 5, None, &Control::new()).unwrap();
    let mut s2 = s.clone();
    assert_eq!(s.context.len(), s.n() * s.n_features);
    let mut total_cost = 0.0;
    for step in 0..6 {
        let acts: Vec<i64> = (0..s.n())
            .map(|i| {
                if s.stage[i] >= PURCHASED {
                    0
                } else {
                    ((i + step) % 6) as i64
                }
            })
            .collect();
        let before = s.stage.clone();
        let r = s.step(&m, &acts).unwrap();
        let r2 = s2.step(&m, &acts).unwrap();
        assert_eq!(r.reward, r2.reward);
        for i in 0..s.n() {
            if before[i] >= PURCHASED {
                assert_eq!(s.stage[i], before[i]);
                assert_eq!(r.reward[i], 0.0);
            }
            if r.cost[i] > 0.0 {
                assert_eq!(s.stage[i], PURCHASED);
                assert!(r.reward[i] > 0.0);
            }
            total_cost += r.cost[i];
        }
        let bad: Vec<i64> = (0..s.n())
            .map(|i| if s.stage[i] >= PURCHASED { 1 } else { 0 })
            .collect();
        if s.stage.iter().any(|x| *x >= PURCHASED) {
            assert!(s.step(&m, &bad).is_err());
        }
    }
    assert!(total_cost > 0.0);
    assert!(
        s.stage.iter().all(|x| *x >= PURCHASED),
        "sessions end within 3 steps"
    );
}

#[test]
fn session_expected_value_matches_simulation() {
    let m = model();
    let p = generate(&m, 2_000, 365, 4, &Control::new()).unwrap();
    let env = env_for(&m, &p, 1, 365, 4);
    let n = 200_000;
    for first in [0i64, 1, 3] {
        let mut s = Sessions::new(&m, &env, n, 11, None, &Control::new()).unwrap();
        let ev: f64 = s
            .expected_value(&m, &vec![first; n])
            .unwrap()
            .iter()
            .sum::<f64>()
            / n as f64;
        let mut net = 0.0;
        let mut acts = vec![first; n];
        for _ in 0..3 {
            let r = s.step(&m, &acts).unwrap();
            net += r.reward.iter().sum::<f64>() - r.cost.iter().sum::<f64>();
            acts = vec![0; n];
        }
        let sim = net / n as f64;
        assert!(
            (sim - ev).abs() < 0.05 * ev.abs().max(1.0),
            "action {first}: {sim} vs {ev}"
        );
    }
}

#[test]
#[ignore]
fn timing_apply() {
    let m = model();
    let n = 1_000_000u64;
    let p = generate(&m, n, 365, 3, &Control::new()).unwrap();
    let mut e = env_for(&m, &p, 9, 365, 3);
    for _ in 0..3 {
        let t = std::time::Instant::now();
        e.apply(&m, &[], &[], &[], &[], &[], e.day, 30, &Control::new())
            .unwrap();
        println!("apply no touches: {:?}", t.elapsed());
    }
    let st = e.statics.clone();
    let t = std::time::Instant::now();
    let s: f64 = st.iter().map(|u| u.expand(&m).z).sum();
    println!("expand: {:?} {s}", t.elapsed());
}

#[test]
#[ignore]
fn timing_apply_touches() {
    let m = model();
    let n = 1_000_000u64;
    let p = generate(&m, n, 365, 3, &Control::new()).unwrap();
    let mut e = env_for(&m, &p, 9, 365, 3);
    let users: Vec<i64> = (0..n as i64).collect();
    let t = users.len();
    let (b, c, k, d) = (
        vec![2u8; t],
        vec![CH_ADS as u8; t],
        vec![0u8; t],
        vec![365i64; t],
    );
    for _ in 0..2 {
        let d: Vec<i64> = vec![e.day; t];
        let t0 = std::time::Instant::now();
        e.check_treatments(&m, &users, &b, &c, &k, &d, e.day, 30)
            .unwrap();
        println!("check: {:?}", t0.elapsed());
        let t0 = std::time::Instant::now();
        e.apply(&m, &users, &b, &c, &k, &d, e.day, 30, &Control::new())
            .unwrap();
        println!("apply 1M touches: {:?}", t0.elapsed());
    }
    let _ = d;
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn expected_orders_monotone(l in 0.0f64..20.0, dl in 0.01f64..5.0, p in 0.0f64..0.99, dp in 0.001f64..0.01) {
            let a = expected_orders(l, p);
            prop_assert!(expected_orders(l + dl, p) > a || l + dl <= 0.0);
            prop_assert!(expected_orders(l, (p + dp).min(1.0)) <= a + 1e-12);
            // Bounded by the Poisson mean and by the first order.
            prop_assert!(a <= l + 1e-9);
            prop_assert!(a >= 1.0 - (-l).exp() - 1e-12);
        }

        #[test]
        fn effects_are_finite_and_consistent(uid in 0u64..100_000, b in 0usize..6, c in 0usize..5, k in 0usize..4,
                                             fatigue in 0.0f32..20.0, alive: bool, customer: bool) {
            let m = model();
            let u = m.draw_user(5, uid, 365);
            let st = UserState { alive, customer, optout: 0, last_touch: 360, fatigue, n_orders: 1, last_order: 300.0, gmv: 50.0 };
            let e = expected_effect(&m, &u, &st, b, c, k, 365, 30);
            prop_assert_eq!(e.eligible, u.reachable(c));
            for v in [e.incremental_conversion, e.incremental_gmv, e.expected_incentive_cost, e.baseline_gmv] {
                prop_assert!(v.is_finite());
            }
            prop_assert!(e.expected_incentive_cost >= 0.0);
            prop_assert!(e.incremental_conversion <= 1.0 && e.incremental_conversion >= -1.0);
            if !e.eligible {
                prop_assert_eq!(e.incremental_gmv, 0.0);
                prop_assert_eq!(e.expected_incentive_cost, 0.0);
            }
            if u.sleeping_dog && e.eligible && customer && alive {
                prop_assert!(e.incremental_gmv <= 0.0);
            }
            if !u.sleeping_dog {
                prop_assert!(e.incremental_conversion >= 0.0);
            }
        }

        #[test]
        fn window_outcomes_are_consistent(uid in 0u64..100_000, seed: u64, n in 0usize..12) {
            let m = model();
            let u = m.draw_user(5, uid, 365);
            let mut st = UserState { alive: true, customer: true, optout: 0, last_touch: NEVER, fatigue: 0.0, n_orders: 1, last_order: 300.0, gmv: 50.0 };
            let touches: Vec<Touch> = (0..n).map(|i| Touch { row: i as u32, day: 365 + (i % 5) as i32, benefit: (i % 6) as u8, channel: CH_ADS as u8, content: (i % 4) as u8 }).collect();
            let mut rng = crate::rng::stream(seed, uid);
            let o = simulate_window(&m, &u, &mut st, &touches, 365, 10, &mut rng, None);
            prop_assert_eq!(o.touches as usize, n);
            prop_assert_eq!(o.exposures as usize, n);
            prop_assert!(o.redeemed <= o.orders);
            prop_assert_eq!(o.converted, o.orders > 0);
            prop_assert!((o.incentive_cost > 0.0) == (o.redeemed > 0));
            prop_assert!(o.gmv >= 0.0 && (o.orders == 0) == (o.gmv == 0.0));
            if n > 0 { prop_assert!(st.fatigue >= 1.0); }
        }
    }
}

#[test]
fn alias_sampler_matches_weights() {
    let w = [1.0, 0.0, 3.0, 6.0];
    let s = VisitSampler::new(&w);
    let mut rng = crate::rng::stream(3, 4);
    let mut counts = [0usize; 4];
    let n = 200_000;
    for _ in 0..n {
        counts[s.sample(&mut rng)] += 1;
    }
    assert_eq!(counts[1], 0);
    for (c, wi) in counts.iter().zip(w) {
        assert!(
            (*c as f64 / n as f64 - wi / 10.0).abs() < 0.005,
            "{counts:?}"
        );
    }
}

#[test]
#[ignore]
fn timing_apply_phases() {
    let m = model();
    let n = 3_000_000u64;
    let p = generate(&m, n, 365, 3, &Control::new()).unwrap();
    let mut e = env_for(&m, &p, 9, 365, 3);
    let t = 3_000_000usize;
    let users: Vec<i64> = (0..t as i64).map(|i| (i * 7919) % n as i64).collect();
    let (b, c, k) = (vec![2u8; t], vec![CH_ADS as u8; t], vec![0u8; t]);
    let d: Vec<i64> = vec![e.day; t];
    let t0 = std::time::Instant::now();
    e.check_treatments(&m, &users, &b, &c, &k, &d, e.day, 30)
        .unwrap();
    println!("check: {:?}", t0.elapsed());
    let t0 = std::time::Instant::now();
    let g = e.group(&users, |i| Touch {
        row: i as u32,
        day: d[i] as i32,
        benefit: b[i],
        channel: c[i],
        content: k[i],
    });
    println!("group: {:?}", t0.elapsed());
    let t0 = std::time::Instant::now();
    e.check_rules(&m, &g).unwrap();
    println!("rules: {:?}", t0.elapsed());
    let t0 = std::time::Instant::now();
    e.apply(&m, &users, &b, &c, &k, &d, e.day, 30, &Control::new())
        .unwrap();
    println!("apply total: {:?}", t0.elapsed());
}

#[test]
#[ignore]
fn timing_sessions() {
    let m = model();
    let p = generate(&m, 1_000_000, 365, 3, &Control::new()).unwrap();
    let e = env_for(&m, &p, 9, 365, 3);
    let t0 = std::time::Instant::now();
    let vs = Sessions::visit_sampler(&m, &e);
    println!("sampler: {:?}", t0.elapsed());
    for _ in 0..2 {
        let t0 = std::time::Instant::now();
        let s = Sessions::new(&m, &e, 1_000_000, 1, Some(&vs), &Control::new()).unwrap();
        println!("sessions: {:?} {}", t0.elapsed(), s.n());
    }
}

mod expected {
    use super::*;
    use crate::sim::expected::*;

    fn state(kind: u64) -> UserState {
        // 0 active customer, 1 prospect, 2 lapsed, 3 active and fatigued by recent touches.
        UserState {
            alive: kind != 2,
            customer: kind != 1,
            optout: 0,
            last_touch: if kind == 3 { 362 } else { NEVER },
            fatigue: if kind == 3 { 3.0 } else { 0.0 },
            n_orders: 2,
            last_order: 350.0,
            gmv: 80.0,
        }
    }

    fn touch(row: u32, day: i32, benefit: u8, channel: usize, content: u8) -> Touch {
        Touch {
            row,
            day,
            benefit,
            channel: channel as u8,
            content,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn one_touch_on_the_first_day_equals_expected_effect() {
        let m = model();
        let mut checked = 0;
        for uid in 0..600u64 {
            let u = m.draw_user(5, uid, 365);
            let st = state(uid % 4);
            for (b, c, k) in [
                (0, CH_ADS, 1),
                (2, CH_EMAIL, 0),
                (3, CH_PUSH, 2),
                (4, CH_IN_APP, 3),
            ] {
                if !u.reachable(c) {
                    continue;
                }
                let e = expected_effect(&m, &u, &st, b, c, k as usize, 365, 30);
                let ts = [touch(0, 365, b as u8, c, k)];
                let mut rng = crate::rng::stream(1, uid);
                let w = expected_window(&m, &u, &st, &ts, 365, 30, &mut rng);
                let pairs = [
                    (w.incremental_conversion, e.incremental_conversion),
                    (w.incremental_orders, e.incremental_orders),
                    (w.incremental_gmv, e.incremental_gmv),
                    (w.expected_incentive_cost, e.expected_incentive_cost),
                    (w.channel_cost, e.channel_cost),
                    (w.baseline_conversion, e.baseline_conversion),
                    (w.baseline_gmv, e.baseline_gmv),
                ];
                for (i, (a, b)) in pairs.iter().enumerate() {
                    assert!(
                        close(*a, *b),
                        "user {uid} channel {c} field {i}: {a} vs {b}"
                    );
                }
                assert_eq!((w.touches, w.exposures), (1, (c != CH_IN_APP) as u32));
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    /// Scenario users: (params, state, touches) with the user's archetype and lifecycle mixed.
    fn scenario(m: &Model, which: usize) -> Vec<(UserParams, UserState, Vec<Touch>)> {
        (0..150u64)
            .map(|uid| {
                let mut u = m.draw_user(9, uid, 365);
                let st = state(uid % 4);
                // 8 ads over 4 days (fatigue builds up), contents varying.
                let mut ts: Vec<Touch> = (0..8)
                    .map(|i| touch(i, 365 + (i / 2) as i32, 0, CH_ADS, (i % 4) as u8))
                    .collect();
                match which {
                    // One e-mail coupon after the first touch day (baseline redemption from d > start).
                    0 => ts.push(touch(8, 370, 2, CH_EMAIL, 2)),
                    // Same with sleeping dogs: negative uplift, more opt-outs.
                    1 => {
                        u.sleeping_dog = true;
                        ts.push(touch(8, 366, 2, CH_EMAIL, 2));
                    }
                    // One in-app coupon on the first day (the incremental order takes it).
                    2 => ts.push(touch(8, 365, 3, CH_IN_APP, 1)),
                    // Several coupons on several channels (the averaged path).
                    _ => {
                        ts.push(touch(8, 365, 1, CH_PUSH, 0));
                        ts.push(touch(9, 365, 3, CH_SMS, 2));
                        ts.push(touch(10, 367, 2, CH_EMAIL, 2));
                        ts.push(touch(11, 370, 4, CH_IN_APP, 3));
                        if uid % 3 == 0 {
                            u.sleeping_dog = true;
                        }
                    }
                }
                ts.sort_by_key(|t| (t.day, t.channel, t.row));
                (u, st, ts)
            })
            .collect()
    }

    #[test]
    fn expected_window_matches_the_mean_of_simulate_window() {
        let mut cfg = WorldConfig::default();
        // Make opt-outs and prospects' first orders frequent enough to be measured.
        cfg.response.optout_base = 0.02;
        cfg.response.prospect_daily_hazard = 0.02;
        // Frequent baseline orders and dropouts: the order path before a late coupon matters.
        cfg.purchase.alpha = 3.0;
        (cfg.purchase.a, cfg.purchase.b) = (3.0, 3.0);
        let m = Model::new(cfg);
        let (start, days) = (365i64, 14i64);
        let seeds = 3000u64;
        for which in 0..4 {
            let users = scenario(&m, which);
            // Expected totals over the scenario's users; the averaged incentive cost (several
            // coupons) is also averaged over a few streams, whose spread enters the tolerance.
            let streams = 8u64;
            let mut want = [0.0f64; 6];
            let mut inc_by_stream = vec![0.0f64; streams as usize];
            for (i, (u, st, ts)) in users.iter().enumerate() {
                let mu = m.mean_spend(u);
                for s in 0..streams {
                    let mut rng = crate::rng::stream(1000 + s, i as u64);
                    let e = expected_window(&m, u, st, ts, start, days, &mut rng);
                    inc_by_stream[s as usize] += e.expected_incentive_cost;
                    if s == 0 {
                        want[0] += e.incremental_conversion + e.baseline_conversion;
                        want[1] += e.incremental_orders + e.baseline_gmv / mu;
                        want[2] += e.incremental_gmv + e.baseline_gmv;
                        want[4] += e.p_optout;
                        want[5] += e.expected_optouts;
                        assert_eq!(e.touches as usize, ts.len());
                    }
                }
            }
            let sf = streams as f64;
            want[3] = inc_by_stream.iter().sum::<f64>() / sf;
            let var_streams = inc_by_stream
                .iter()
                .map(|x| (x - want[3]).powi(2))
                .sum::<f64>()
                / (sf - 1.0)
                / sf;
            if which < 3 {
                let same = inc_by_stream.iter().all(|x| *x == inc_by_stream[0]);
                assert!(same, "one coupon at most: exact, no replicates");
            }
            // Monte-Carlo: totals per seed.
            let mut sum = [0.0f64; 6];
            let mut sum2 = [0.0f64; 6];
            for seed in 0..seeds {
                let mut tot = [0.0f64; 6];
                for (i, (u, st, ts)) in users.iter().enumerate() {
                    let mut s2 = *st;
                    let mut rng = crate::rng::stream2(seed, 77, i as u64);
                    let o = simulate_window(&m, u, &mut s2, ts, start, days, &mut rng, None);
                    tot[0] += o.converted as u32 as f64;
                    tot[1] += o.orders as f64;
                    tot[2] += o.gmv;
                    tot[3] += o.incentive_cost;
                    tot[4] += o.opted_out as u32 as f64;
                    tot[5] += (s2.optout & !st.optout).count_ones() as f64;
                }
                for k in 0..6 {
                    sum[k] += tot[k];
                    sum2[k] += tot[k] * tot[k];
                }
            }
            let n = seeds as f64;
            for k in 0..6 {
                let mean = sum[k] / n;
                let var = (sum2[k] / n - mean * mean).max(0.0) / n;
                let extra = if k == 3 { var_streams } else { 0.0 };
                let se = (var + extra).sqrt();
                assert!(
                    (mean - want[k]).abs() <= 4.0 * se + 1e-9,
                    "scenario {which}, quantity {k}: simulated {mean} vs expected {} (se {se})",
                    want[k]
                );
            }
        }
    }

    #[test]
    fn env_expected_outcome_validates_like_apply_and_changes_nothing() {
        let m = model();
        let p = generate(&m, 20_000, 365, 3, &Control::new()).unwrap();
        let e1 = env_for(&m, &p, 9, 365, 3);
        let ctl = Control::new();
        // Same errors as apply: a day outside the window, the ads cap.
        let err = e1
            .expected_outcome(&m, &[0], &[1], &[CH_ADS as u8], &[0], &[300], 365, 30, &ctl)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("treatments['day']: row 0"), "{err}");
        let err = e1
            .expected_outcome(
                &m,
                &[5; 11],
                &[0; 11],
                &[CH_ADS as u8; 11],
                &[0; 11],
                &[365; 11],
                365,
                30,
                &ctl,
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("cap is 10"), "{err}");
        // Every third user: 3 ads on 3 days and an in-app coupon (two coupons for some).
        let mut t = (vec![], vec![], vec![], vec![], vec![]);
        for uid in (0..20_000i64).step_by(3) {
            for d in 0..3 {
                t.0.push(uid);
                t.1.push((uid % 2 * 2) as u8);
                t.2.push(CH_ADS as u8);
                t.3.push(d as u8);
                t.4.push(365 + d);
            }
        }
        let run = |threads| {
            parallel::set_num_threads(threads);
            parallel::install(|| {
                e1.expected_outcome(&m, &t.0, &t.1, &t.2, &t.3, &t.4, 365, 30, &Control::new())
                    .unwrap()
            })
        };
        let a = run(1);
        let b = run(2);
        assert_eq!(a.user, b.user);
        assert_eq!(a.rows, b.rows);
        let want: Vec<i64> = (0..20_000i64).step_by(3).collect();
        assert_eq!(a.user, want);
        assert!(a.rows.iter().all(|r| r.touches == 3 && r.exposures == 3));
        let fresh = env_for(&m, &p, 9, 365, 3);
        assert_eq!((e1.day, e1.epoch), (fresh.day, fresh.epoch));
        // (Debug: NaN last_order days compare equal as text.)
        let same = format!("{:?}", e1.users) == format!("{:?}", fresh.users);
        assert!(same, "expected_outcome changed the state");
    }
}

#[test]
fn env_from_population_copies_the_truth_it_needs() {
    let m = model();
    let (days, pop_seed) = (200u32, 9u64);
    let p = generate(&m, 3_000, days, pop_seed, &Control::new()).unwrap();
    p.check(&m).unwrap();
    let e = parallel::install(|| Env::from_population(&p, pop_seed, days, 4).unwrap());
    assert_eq!((e.n_users(), e.day, e.epoch), (3_000, days as i64, 0));
    for i in 0..p.n_users() {
        let u = m.draw_user(pop_seed, i as u64, days);
        let want = StaticUser {
            signup: u.signup.floor() as f32,
            ..StaticUser::from_params(&u)
        };
        assert_eq!(e.statics[i], want, "user {i}");
        let st = &e.users[i];
        assert_eq!(st.customer, !u.is_prospect && u.first_order < days as f64);
        assert_eq!(st.n_orders, p.orders_before[i] + p.n_orders[i]);
        assert_eq!(st.alive, p.alive_at_end[i]);
        assert_eq!(st.last_order.to_bits(), p.last_order_day[i].to_bits());
        assert_eq!((st.optout, st.last_touch, st.fatigue), (0, NEVER, 0.0));
    }
}

#[test]
fn population_check_names_the_column_and_row() {
    let m = model();
    let p = generate(&m, 500, 100, 1, &Control::new()).unwrap();
    let err = |f: &dyn Fn(&mut PopulationData)| {
        let mut q = generate(&m, 500, 100, 1, &Control::new()).unwrap();
        f(&mut q);
        q.check(&m).unwrap_err().to_string()
    };
    p.check(&m).unwrap();
    assert!(err(&|q| q.archetype[7] = 7).starts_with("archetype: row 7: code 7"));
    assert!(err(&|q| q.device[3] = 200).starts_with("device: row 3:"));
    assert!(err(&|q| q.purchase_rate[2] = f64::NAN).starts_with("purchase_rate: row 2:"));
    assert!(err(&|q| q.spend_rate[4] = 1e300).starts_with("spend_rate: row 4:"));
    assert!(err(&|q| q.affinity[3][5] = f32::INFINITY).starts_with("affinity_in_app: row 5:"));
    assert!(err(&|q| q.tx_user[0] = 500).starts_with("tx_user_id: row 0:"));
    assert!(err(&|q| {
        q.gmv.pop();
    })
    .starts_with("gmv: has length 499"));
}

#[test]
fn channel_tables_describe_the_reachability_rule() {
    // CONSENT and NEEDS_APP (what Python reads) say what UserParams::reachable does.
    let m = model();
    for uid in 0..5_000u64 {
        let u = m.draw_user(3, uid, 365);
        for c in 0..CHANNELS.len() {
            let consent = match CONSENT[c] {
                Some("push_opt_in") => u.push_ok,
                Some("sms_opt_in") => u.sms_ok,
                Some("email_opt_in") => u.email_ok,
                Some(other) => panic!("unknown consent column {other}"),
                None => true,
            };
            assert_eq!(u.reachable(c), consent && (!NEEDS_APP[c] || u.app), "{c}");
        }
    }
    assert_eq!(OFFSITE.iter().filter(|o| !**o).count(), 1);
    assert!(!OFFSITE[CH_IN_APP]);
}

/// A sessions state that disagrees with itself or with the world is `CoreError::State` (it
/// loaded before and failed later, e.g. building the context matrix).
#[test]
fn inconsistent_sessions_states_are_errors() {
    let m = model();
    let p = generate(&m, 500, 120, 4, &Control::new()).unwrap();
    let env = env_for(&m, &p, 1, 120, 4);
    let s = Sessions::new(&m, &env, 50, 5, None, &Control::new()).unwrap();
    let b = s.to_bytes().unwrap();
    let back = Sessions::from_bytes(&b, &m.cfg).unwrap();
    assert_eq!(back.context, s.context);
    let good: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let edits: [(&str, serde_json::Value); 6] = [
        ("n_features", (1u64 << 60).into()),
        ("user", serde_json::json!([1])),
        ("context", serde_json::json!([0.5])),
        ("stage", serde_json::Value::from(vec![9; 50])),
        ("held", serde_json::Value::from(vec![6; 50])),
        ("feature_names", serde_json::json!(["x"])),
    ];
    for (key, value) in edits {
        let mut v = good.clone();
        v["data"][key] = value;
        let e = Sessions::from_bytes(&serde_json::to_vec(&v).unwrap(), &m.cfg).unwrap_err();
        assert!(matches!(e, crate::error::CoreError::State(_)), "{key}: {e}");
    }
}
