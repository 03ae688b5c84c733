//! Tests of the fitted fatigue: prior fatigue's opt-out, the conversion's damping rate, and
//! the opt-out load of a planner's layout.

use super::*;
/// A log of one segment and channel whose users arrive with prior fatigue `f` in {0, 5, 20}
/// (or only 0 with `fresh`): the opt-out hazard of the `j`-th exposure is `a + d (2 (f + j) - 1)`.
fn fatigued_log(truth: &Truth, rows: usize, fresh: bool, seed: u64) -> (Sim, Vec<f64>) {
    fatigued_log_carry(truth, rows, fresh, 1.0, seed)
}

/// [`fatigued_log`] with only the share `carry` of the prior fatigue acting on the opt-out.
fn fatigued_log_carry(
    truth: &Truth,
    rows: usize,
    fresh: bool,
    carry: f64,
    seed: u64,
) -> (Sim, Vec<f64>) {
    let mut s = simulate(&[vec![*truth]], &[vec![rows]], seed);
    let mut rng = crate::rng::stream(seed, 99);
    let mut fat = Vec::with_capacity(rows);
    for i in 0..rows {
        let f = if fresh {
            0.0
        } else {
            [0.0, 5.0, 20.0][rng.random_range(0..3)]
        };
        let n = s.exposures[i] as f64;
        let lam = truth[4] * n + truth[5] * (n * n + 2.0 * n * carry * f);
        s.opted_out[i] = (rng.random::<f64>() < -(-lam).exp_m1()) as u8 as f64;
        fat.push(f);
    }
    (s, fat)
}

/// The fit with the default prior of a simulated log, with its fatigue column if given.
fn fit_prior(s: &Sim, fat: Option<&[f64]>) -> ResponseFit {
    let mut log = s.log(false);
    log.fatigue = fat;
    fit(
        &Counts::aggregate(&log, 1, 1, &ctl()).unwrap(),
        &Prior::default(),
        None,
        &ctl(),
    )
    .unwrap()
}

#[test]
fn prior_fatigue_is_fitted_and_extrapolates_the_opt_out() {
    let truth: Truth = [0.02, 0.06, 4.0, 2.0, 0.004, 0.0015];
    let opt_at = |f: &ResponseFit, n: f64, fat: f64| {
        f.predict(&[0], &[0], &[n], Some(&[fat]), &ctl()).unwrap().1[0]
    };
    let want = |n: f64, fat: f64| -(-(truth[4] * n + truth[5] * (n * n + 2.0 * n * fat))).exp_m1();
    // A log of mixed fatigue: with the column the parameters are recovered; without it the
    // tired users' opt-outs inflate the fresh users' curve.
    let (s, fat) = fatigued_log(&truth, 60_000, false, 3);
    let with = fit_prior(&s, Some(&fat));
    let without = fit_prior(&s, None);
    let p = with.params();
    assert!(with.fatigue_carry >= 0.85, "carry {}", with.fatigue_carry);
    assert!(relerr(p[4], truth[4]) < 0.25, "a {} vs {}", p[4], truth[4]);
    assert!(relerr(p[5], truth[5]) < 0.25, "d {} vs {}", p[5], truth[5]);
    for n in [3.0, 9.0] {
        assert!(relerr(opt_at(&with, n, 0.0), want(n, 0.0)) < 0.15);
        assert!(relerr(opt_at(&with, n, 20.0), want(n, 20.0)) < 0.15);
        assert!(opt_at(&without, n, 0.0) > 1.3 * want(n, 0.0));
    }
    // Fresh users only: the fatigue measured within the windows predicts the tired users.
    let (s, fat) = fatigued_log(&truth, 60_000, true, 4);
    let fresh = fit_prior(&s, Some(&fat));
    for n in [3.0, 9.0] {
        assert!(relerr(opt_at(&fresh, n, 20.0), want(n, 20.0)) < 0.3);
        assert!(opt_at(&fresh, n, 20.0) > 2.0 * opt_at(&fresh, n, 0.0));
    }
    assert_eq!(fresh.fatigue_carry, 1.0); // nothing to learn it from: the structural value
                                          // Half of the prior fatigue acting over the window is learned from tired rows.
    let (s2, fat2) = fatigued_log_carry(&truth, 60_000, false, 0.5, 5);
    let half = fit_prior(&s2, Some(&fat2));
    assert!(
        (0.4..=0.7).contains(&half.fatigue_carry),
        "carry {}",
        half.fatigue_carry
    );
    let want_half = -(-(truth[4] * 9.0 + truth[5] * (81.0 + 9.0 * 20.0))).exp_m1();
    assert!(relerr(opt_at(&half, 9.0, 20.0), want_half) < 0.15);
    // The curves take the fatigue too; a negative one is refused by name.
    let c = with.curves(&[9.0], 0.0, 20.0, &ctl()).unwrap();
    assert!((c.opt_out[0] - opt_at(&with, 9.0, 20.0)).abs() < 1e-12);
    let e = with.curves(&[9.0], 0.0, -1.0, &ctl()).unwrap_err();
    assert!(e.to_string().contains("fatigue"), "{e}");
    let e = with
        .predict(&[0], &[0], &[1.0], Some(&[f64::NAN]), &ctl())
        .unwrap_err();
    assert!(e.to_string().contains("fatigue"), "{e}");
    let mut log = s.log(false);
    let bad = vec![-1.0; s.group.len()];
    log.fatigue = Some(&bad);
    let e = Counts::aggregate(&log, 1, 1, &ctl()).unwrap_err();
    assert!(e.to_string().contains("fatigue"), "{e}");
}

/// Rows of one cell whose conversion follows `truth` at `n / (1 + r f)`, prior fatigue 0, 4 or
/// 12 (`fresh`: 0 only), arms up to 40 exposures so the damped curve is seen.
fn damped_rows(truth: &Truth, r: f64, fresh: bool, rows: usize, seed: u64) -> (Sim, Vec<f64>) {
    let arms = [0u32, 2, 4, 6, 9, 14, 20, 28, 40];
    let mut rng = crate::rng::stream(seed, 7);
    let mut s = simulate(&[vec![*truth]], &[vec![0]], seed);
    let mut fat = vec![];
    for _ in 0..rows {
        let n = arms[rng.random_range(0..arms.len())];
        let f = if fresh {
            0.0
        } else {
            [0.0, 4.0, 12.0][rng.random_range(0..3)]
        };
        let ne = n as f64 / (1.0 + r * f);
        s.group.push(0);
        s.channel.push(0);
        s.exposures.push(n);
        s.converted
            .push((rng.random::<f64>() < p_conv(truth, ne)) as u8 as f64);
        s.opted_out.push(0.0);
        s.weight.push(1.0);
        fat.push(f);
    }
    (s, fat)
}

#[test]
fn prior_fatigue_damping_of_the_conversion_is_learned_only_from_tired_rows() {
    // conversion at n / (1 + r f), r = 0.2
    let truth: Truth = [0.02, 0.1, 5.0, 2.0, 0.002, 0.0002];
    let r = 0.2;
    let (s, fat) = damped_rows(&truth, r, false, 80_000, 11);
    let f = fit_prior(&s, Some(&fat));
    assert!(
        (0.1..=0.3).contains(&f.fatigue_rate),
        "rate {}",
        f.fatigue_rate
    );
    let inc = |f: &ResponseFit, n: f64, fat: f64| {
        f.predict(&[0], &[0], &[n], Some(&[fat]), &ctl()).unwrap().0[0]
    };
    for (n, fa) in [(6.0, 0.0), (6.0, 12.0), (20.0, 12.0)] {
        let want = truth[1]
            * p_conv(
                &[0.0, 1.0, truth[2], truth[3], 0.0, 0.0],
                n / (1.0 + r * fa),
            );
        assert!(
            relerr(inc(&f, n, fa), want) < 0.2,
            "n {n} f {fa}: {} vs {want}",
            inc(&f, n, fa)
        );
    }
    // fresh users only: nothing to learn the damping from, none assumed
    let (s, fat) = damped_rows(&truth, r, true, 80_000, 12);
    let f = fit_prior(&s, Some(&fat));
    assert_eq!(f.fatigue_rate, 0.0);
    assert_eq!(f.fatigue_rate_sd, 0.0);
    assert_eq!(inc(&f, 6.0, 12.0), inc(&f, 6.0, 0.0));
}

#[test]
fn the_damping_rate_is_continuous_follows_the_data_away_from_the_prior_and_reports_its_spread() {
    let truth: Truth = [0.02, 0.1, 5.0, 2.0, 0.002, 0.0002];
    // A rate far from the prior's centre (0.18) and off the old grid is recovered: the prior
    // (a factor e at one sd) does not hold it back when the data speak.
    for (r, seed) in [(0.65, 21u64), (0.04, 22)] {
        let (s, fat) = damped_rows(&truth, r, false, 200_000, seed);
        let f = fit_prior(&s, Some(&fat));
        assert!(
            relerr(f.fatigue_rate, r) < 0.35,
            "rate {} vs {r}",
            f.fatigue_rate
        );
        assert!(
            f.fatigue_rate_sd > 0.0 && f.fatigue_rate_sd < 1.0,
            "sd {}",
            f.fatigue_rate_sd
        );
        // the truth lies within 3 sd on the log scale
        assert!(
            (f.fatigue_rate.ln() - r.ln()).abs() < 3.0 * f.fatigue_rate_sd,
            "rate {} sd {} vs {r}",
            f.fatigue_rate,
            f.fatigue_rate_sd
        );
    }
    // More rows, a smaller spread.
    let sd = |rows: usize| {
        let (s, fat) = damped_rows(&truth, 0.3, false, rows, 23);
        fit_prior(&s, Some(&fat)).fatigue_rate_sd
    };
    let (few, many) = (sd(40_000), sd(320_000));
    assert!(many < 0.6 * few, "sd {few} -> {many}");
    // No conversion effect at all: the data say nothing about the rate, the prior decides (its
    // centre, its spread).
    let flat: Truth = [0.02, 1e-6, 5.0, 2.0, 0.002, 0.0002];
    let (s, fat) = damped_rows(&flat, 0.5, false, 80_000, 24);
    let f = fit_prior(&s, Some(&fat));
    assert!(
        (f.fatigue_rate / super::fit::FATIGUE_RATE_PRIOR.0)
            .ln()
            .abs()
            < 0.3,
        "rate {}",
        f.fatigue_rate
    );
    assert!(f.fatigue_rate_sd > 0.8, "sd {}", f.fatigue_rate_sd);
}

/// The days of a user's touches under the planner's layout (one entry per touch).
fn touch_days(n: u32, offset: u32, days: u32) -> Vec<u32> {
    let mut per_day = vec![0u32; days as usize];
    let lay = crate::touchpoint::plan::Layout {
        offset: offset as u16,
        consecutive: false,
    };
    crate::touchpoint::plan::user_days(n, lay, days, &mut per_day);
    (0..days)
        .flat_map(|d| std::iter::repeat_n(d, per_day[d as usize] as usize))
        .collect()
}

#[test]
fn loads_are_the_touches_decayed_fatigue_under_the_layout() {
    // Pairwise sums over the touches (independent of the day-by-day recursion of `loads`).
    for days in [1u32, 7, 14, 30] {
        let lay = TouchLayout {
            days,
            halflife: 5.0,
        };
        for n in [0u32, 1, 2, 3, 6, days, days + 3, 4 * days + 1] {
            let mut w = 0.0;
            let mut p = 0.0;
            for off in 0..days {
                let t = touch_days(n, off, days);
                for j in 0..t.len() {
                    p += 0.5f64.powf(t[j] as f64 / 5.0);
                    for i in 0..j {
                        w += 0.5f64.powf((t[j] - t[i]) as f64 / 5.0);
                    }
                }
            }
            let (lw, lp) = lay.loads(n);
            let (w, p) = (w / days as f64, p / days as f64);
            assert!(
                (lw - w).abs() <= 1e-9 * (1.0 + w),
                "W({n}, {days}) {lw} vs {w}"
            );
            assert!(
                (lp - p).abs() <= 1e-9 * (1.0 + p),
                "P({n}, {days}) {lp} vs {p}"
            );
        }
    }
    // All on one day (a 1-day window): the quadratic's increments n (n - 1) / 2, P = n.
    let one = TouchLayout {
        days: 1,
        halflife: 7.0,
    };
    assert_eq!(one.loads(5), (10.0, 5.0));
    // Fractions interpolate between the levels; no layout: the quadratic load.
    let lay = TouchLayout {
        days: 14,
        halflife: 7.0,
    };
    let (a, b) = (lay.loads(6), lay.loads(7));
    let mid = loads_at(Some(&lay), &[], 6.25);
    assert!((mid.0 - (a.0 + 0.25 * (b.0 - a.0))).abs() < 1e-12);
    assert_eq!(loads_at(None, &[], 3.0), (9.0, 6.0));
    for bad in [
        TouchLayout {
            days: 0,
            halflife: 7.0,
        },
        TouchLayout {
            days: 367,
            halflife: 7.0,
        },
    ] {
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("horizon_days"));
    }
    for h in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let bad = TouchLayout {
            days: 14,
            halflife: h,
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("fatigue_halflife"), "{e}");
    }
}

/// Opt-out of a user with prior fatigue `f0` whose touches fall on `days_of` (ascending): a
/// per-touch hazard `base (1 + k F)`, `F` the decayed number of earlier touches (halving every
/// `halflife` days, `f0` decaying from the window's start), as the world draws it.
fn per_touch(base: f64, k: f64, halflife: f64, f0: f64, days_of: &[u32]) -> f64 {
    let (mut stay, mut f, mut last) = (1.0, f0, 0u32);
    for &t in days_of {
        f *= 0.5f64.powf((t - last) as f64 / halflife);
        last = t;
        stay *= 1.0 - (base * (1.0 + k * f)).min(1.0);
        f += 1.0;
    }
    1.0 - stay
}

/// A log whose opt-outs follow a per-touch hazard (see [`per_touch`]) over the planner's
/// layout of `days` days (each row a random rotation), prior fatigue `f` in {0, 4}; arms as
/// the planner's levels.
fn per_touch_log(
    base: f64,
    k: f64,
    days: u32,
    halflife: f64,
    rows: usize,
    seed: u64,
) -> (Sim, Vec<f64>) {
    const LEVELS: [u32; 16] = [0, 1, 2, 3, 4, 5, 6, 8, 10, 14, 20, 28, 40, 56, 84, 140];
    let truth: Truth = [0.02, 0.05, 6.0, 2.0, 0.0, 0.0];
    let mut s = simulate(&[vec![truth]], &[vec![rows]], seed);
    let mut rng = crate::rng::stream(seed, 7);
    let mut fat = Vec::with_capacity(rows);
    for i in 0..rows {
        let n = LEVELS[rng.random_range(0..LEVELS.len())];
        let f0 = if rng.random::<f64>() < 0.5 { 0.0 } else { 4.0 };
        let t = touch_days(n, rng.random_range(0..days), days);
        let p = per_touch(base, k, halflife, f0, &t);
        s.exposures[i] = n;
        s.opted_out[i] = (rng.random::<f64>() < p) as u8 as f64;
        fat.push(f0);
    }
    (s, fat)
}

#[test]
fn the_layouts_load_recovers_a_per_touch_hazard_that_the_quadratic_misses() {
    // Fatigue halving every 2 days over a 28-day window: exposures spread over the days barely
    // tire the user, several a day do (a quadratic in n cannot be both).
    let (base, k, days, halflife) = (0.003, 0.5, 28, 2.0);
    let (s, fat) = per_touch_log(base, k, days, halflife, 200_000, 11);
    let mut log = s.log(false);
    log.fatigue = Some(&fat);
    let counts = Counts::aggregate(&log, 1, 1, &ctl()).unwrap();
    let lay = TouchLayout { days, halflife };
    let with = fit(&counts, &Prior::default(), Some(&lay), &ctl()).unwrap();
    let quad = fit(&counts, &Prior::default(), None, &ctl()).unwrap();
    assert_eq!(with.layout, Some(lay));
    let p = with.params();
    assert!(relerr(p[4], base) < 0.1, "a {} vs {base}", p[4]);
    assert!(relerr(p[5], base * k) < 0.15, "d {} vs {}", p[5], base * k);
    // The world's opt-out per level (averaged over the rotations): the layout's load is within
    // a few percent at every level a plan compares, fresh or tired; the quadratic is not.
    let truth = |n: u32, f: f64| {
        (0..days)
            .map(|o| per_touch(base, k, halflife, f, &touch_days(n, o, days)))
            .sum::<f64>()
            / days as f64
    };
    let (mut worst_with, mut worst_quad) = (0.0f64, 0.0f64);
    for n in [1u32, 2, 3, 4, 6, 8, 10, 14, 20, 28] {
        for f in [0.0, 4.0] {
            let o = |m: &ResponseFit| m.predict(&[0], &[0], &[n as f64], Some(&[f]), &ctl());
            worst_with = worst_with.max(relerr(o(&with).unwrap().1[0], truth(n, f)));
            worst_quad = worst_quad.max(relerr(o(&quad).unwrap().1[0], truth(n, f)));
        }
    }
    assert!(worst_with < 0.05, "layout's load: worst error {worst_with}");
    assert!(
        worst_quad > 2.0 * worst_with,
        "quadratic {worst_quad} vs {worst_with}"
    );
    // The curves and the predictions agree, at fractions too.
    let c = with.curves(&[6.0, 6.5], 0.0, 4.0, &ctl()).unwrap();
    let pr = with
        .predict(&[0, 0], &[0, 0], &[6.0, 6.5], Some(&[4.0, 4.0]), &ctl())
        .unwrap()
        .1;
    assert!((c.opt_out[0] - pr[0]).abs() < 1e-15 && (c.opt_out[1] - pr[1]).abs() < 1e-15);
    assert!(pr[0] < pr[1]);
}

#[test]
fn a_layout_is_kept_by_refits_and_states_and_another_is_refused() {
    let (s, fat) = per_touch_log(0.003, 0.5, 14, 7.0, 20_000, 12);
    let mut log = s.log(false);
    log.fatigue = Some(&fat);
    let c = Counts::aggregate(&log, 1, 1, &ctl()).unwrap();
    let lay = TouchLayout {
        days: 14,
        halflife: 7.0,
    };
    let r = Response::fit(None, c.clone(), Prior::default(), 1.0, Some(lay), &ctl()).unwrap();
    let b = r.to_bytes().unwrap();
    assert_eq!(Response::from_bytes(&b).unwrap(), r);
    // a refit without a layout keeps the model's; the same layout is fine
    let r2 = Response::fit(Some(&r), c.clone(), Prior::default(), 1.0, None, &ctl()).unwrap();
    assert_eq!(r2.fit.layout, Some(lay));
    let r3 = Response::fit(
        Some(&r),
        c.clone(),
        Prior::default(),
        1.0,
        Some(lay),
        &ctl(),
    )
    .unwrap();
    assert_eq!(r3.fit, r2.fit);
    // another horizon or half-life: refused by name
    for (other, arg) in [
        (
            TouchLayout {
                days: 7,
                halflife: 7.0,
            },
            "horizon_days",
        ),
        (
            TouchLayout {
                days: 14,
                halflife: 3.0,
            },
            "fatigue_halflife",
        ),
    ] {
        let e = Response::fit(
            Some(&r),
            c.clone(),
            Prior::default(),
            1.0,
            Some(other),
            &ctl(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(arg), "{e}");
    }
    // a state without the layout (written before it) reads as the quadratic model it was
    let q = Response::fit(None, c, Prior::default(), 1.0, None, &ctl()).unwrap();
    let mut v = serde_json::to_value(&q).unwrap();
    assert!(v["fit"].as_object_mut().unwrap().remove("layout").is_some());
    let old = crate::state::sealed::to_bytes(STATE_KIND, STATE_VERSION, &v).unwrap();
    let back = Response::from_bytes(&old).unwrap();
    assert_eq!(back, q);
    assert_eq!(back.fit.layout, None);
    // a malformed layout in a state is refused
    let mut v = serde_json::to_value(&r).unwrap();
    v["fit"]["layout"]["days"] = serde_json::json!(0);
    let bad = crate::state::sealed::to_bytes(STATE_KIND, STATE_VERSION, &v).unwrap();
    assert!(matches!(
        Response::from_bytes(&bad),
        Err(CoreError::State(_))
    ));
}
