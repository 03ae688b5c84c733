//! Tests of the allocate core (small instances against the exact LP; determinism).

#![allow(clippy::needless_range_loop)]

use super::generate::{random, Spec};
use super::*;
use crate::control::Control;

fn spec(n: usize, m: usize, seed: u64) -> Spec {
    Spec {
        n_users: n,
        per_user: m,
        n_actions: 12,
        n_pair: 1,
        n_action_res: 3,
        n_groups: 0,
        limit: 1,
        tight_lo: 0.3,
        tight_hi: 0.8,
        seed,
    }
}

#[test]
fn dual_matches_exact_lp_on_small_instances() {
    let ctl = Control::new();
    for seed in 0..6 {
        for (limit, groups) in [(1u32, 0usize), (2, 3), (3, 0)] {
            let mut sp = spec(300, 6, seed);
            sp.limit = limit;
            sp.n_groups = groups;
            let inst = random(&sp, &ctl).unwrap();
            let p = inst.problem(limit);
            let lp = exact::solve_lp(&p, None, &ctl).unwrap().objective;
            let s = dual::solve_dual(&p, &DualOptions::default(), &ctl).unwrap();
            let scale = lp.abs().max(1.0);
            assert!(
                s.dual_bound >= lp - 1e-6 * scale,
                "bound {} < lp {lp}",
                s.dual_bound
            );
            assert!(
                s.lp_value <= lp + 1e-6 * scale,
                "lp_value {} > lp {lp}",
                s.lp_value
            );
            assert!(
                s.dual_bound - s.lp_value <= 1e-4 * s.dual_bound.abs() + 1e-9,
                "seed {seed} L {limit}: gap {} {} status {:?} hist {}",
                s.dual_bound,
                s.lp_value,
                s.status,
                s.history.len()
            );
            check_plan(&p, &s.chosen).unwrap();
            let (v, u) = evaluate(&p, &s.chosen);
            assert!((v - s.objective).abs() <= 1e-6 * scale);
            for r in 0..p.n_resources() {
                assert!(u[r] <= p.upper[r] * (1.0 + 1e-12), "resource {r} over");
                if s.status != Status::Infeasible {
                    assert!(u[r] >= p.lo(r) * (1.0 - 1e-12), "resource {r} under");
                }
            }
            assert!(s.objective <= lp + 1e-6 * scale);
            // The integer plan, repaired and filled, is close to the LP optimum.
            assert!(
                s.objective >= lp - 2e-2 * scale,
                "seed {seed} L {limit}: plan {} vs LP {lp}",
                s.objective
            );
        }
    }
}

#[test]
fn same_result_for_one_and_two_threads() {
    let ctl = Control::new();
    let inst = random(&spec(20_000, 8, 3), &ctl).unwrap();
    let p = inst.problem(1);
    crate::parallel::set_num_threads(1);
    let a =
        crate::parallel::install(|| dual::solve_dual(&p, &DualOptions::default(), &ctl)).unwrap();
    crate::parallel::set_num_threads(2);
    let b =
        crate::parallel::install(|| dual::solve_dual(&p, &DualOptions::default(), &ctl)).unwrap();
    assert_eq!(a.chosen, b.chosen);
    assert_eq!(a.dual_bound.to_bits(), b.dual_bound.to_bits());
    assert_eq!(a.prices, b.prices);
}

#[test]
#[ignore]
fn scale_timing() {
    let ctl = Control::new();
    for (n, m, npair, nra) in [
        (100_000usize, 20usize, 2usize, 4usize),
        (1_000_000, 20, 2, 4),
    ] {
        let sp = Spec {
            n_users: n,
            per_user: m,
            n_actions: 60,
            n_pair: npair,
            n_action_res: nra,
            n_groups: 0,
            limit: 1,
            tight_lo: 0.3,
            tight_hi: 0.9,
            seed: 1,
        };
        let inst = random(&sp, &ctl).unwrap();
        let p = inst.problem(1);
        let t = std::time::Instant::now();
        let s = dual::solve_dual(&p, &DualOptions::default(), &ctl).unwrap();
        let el = t.elapsed().as_secs_f64();
        let gap = (s.dual_bound - s.lp_value) / s.dual_bound;
        let igap = (s.dual_bound - s.objective) / s.dual_bound;
        let ph0 = s.history.iter().filter(|h| h.phase == 0).count();
        eprintln!("n={n}: {el:.3}s passes {} sample-iters {ph0} lp gap {gap:.2e} int gap {igap:.2e} status {:?}", s.passes, s.status);
    }
}

#[test]
#[ignore]
fn scale_history() {
    let env = |k: &str, d: usize| -> usize {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let ctl = Control::new();
    let n = env("GM_N", 100_000);
    let sp = Spec {
        n_users: n,
        per_user: 20,
        n_actions: env("GM_NA", 60),
        n_pair: env("GM_NPAIR", 2),
        n_action_res: env("GM_NRA", 4),
        n_groups: 0,
        limit: 1,
        tight_lo: 0.3,
        tight_hi: 0.9,
        seed: 1,
    };
    let inst = random(&sp, &ctl).unwrap();
    let p = inst.problem(1);
    let t = std::time::Instant::now();
    let s = dual::solve_dual(&p, &DualOptions::default(), &ctl).unwrap();
    let ph0 = s.history.iter().filter(|h| h.phase == 0).count();
    eprintln!(
        "total {:.3} sample iters {ph0} (until {:.2}s) full {} lpgap {:.2e} gap {:.2e} status {:?}",
        t.elapsed().as_secs_f64(),
        s.history
            .iter()
            .filter(|h| h.phase == 0)
            .map(|h| h.seconds)
            .fold(0.0, f64::max),
        s.history.len() - ph0,
        (s.dual_bound - s.lp_value) / s.dual_bound,
        (s.dual_bound - s.objective) / s.dual_bound,
        s.status
    );
    if std::env::var("GM_QUIET").is_err() {
        for h in &s.history {
            eprintln!(
                "{} {} {:.6} {:.6} {:.6} viol {:.2e} t {:.3}",
                h.phase, h.iteration, h.dual, h.bound, h.lp_value, h.max_violation, h.seconds
            );
        }
    }
}

/// Prices near the optimum of `p` (from the level method on the full problem).
fn near_optimal_prices(p: &Problem<'_, f32>, ctl: &Control) -> Vec<f64> {
    let opt = DualOptions {
        sample: false,
        ..DualOptions::default()
    };
    dual::solve_dual(p, &opt, ctl).unwrap().prices
}

#[test]
fn jacobian_pass_agrees_with_pass_and_finite_differences() {
    use kernel::{pass, pass_jacobian, Prices, Users};
    let ctl = Control::new();
    for (limit, groups) in [(1u32, 0usize), (2, 3)] {
        let mut sp = spec(30_000, 8, 11);
        sp.limit = limit;
        sp.n_groups = groups;
        let inst = random(&sp, &ctl).unwrap();
        let p = inst.problem(limit);
        let r_n = p.n_resources();
        let q = near_optimal_prices(&p, &ctl);
        let base = pass(&p, &Prices::new(&p, &q), Users::All(p.n_users()), &ctl).unwrap();
        let h = 0.02 * base.value / base.picks as f64;
        let mut flags = vec![7u8; p.nnz()];
        let jp = pass_jacobian(&p, &Prices::new(&p, &q), h, Some(&mut flags), &ctl).unwrap();
        let pr = Prices::new(&p, &q);
        let assigned = kernel::assign(&p, std::slice::from_ref(&pr), &[1.0], 0, 0, &ctl).unwrap();
        assert_eq!(flags, assigned, "the choices written by the pass");
        // The same choices as a plain pass.
        assert_eq!(jp.out.picks, base.picks);
        assert!((jp.out.lsum - base.lsum).abs() <= 1e-9 * base.lsum.abs());
        for r in 0..r_n {
            assert!((jp.out.usage[r] - base.usage[r]).abs() <= 1e-9 * base.usage[r].max(1.0));
        }
        assert!(jp.events > 100, "events {}", jp.events);
        // Symmetric and negative semidefinite.
        let j = &jp.jac;
        for r in 0..r_n {
            assert!(j[r * r_n + r] <= 0.0);
            for c in 0..r_n {
                assert_eq!(j[r * r_n + c], j[c * r_n + r]);
            }
        }
        let mut seed = 7u64;
        for _ in 0..20 {
            let x: Vec<f64> = (0..r_n)
                .map(|_| {
                    seed = crate::rng::mix64(seed);
                    (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
                })
                .collect();
            let xjx: f64 = (0..r_n)
                .map(|r| (0..r_n).map(|c| x[r] * j[r * r_n + c] * x[c]).sum::<f64>())
                .sum();
            assert!(xjx <= 1e-9 * j.iter().map(|v| v.abs()).sum::<f64>());
        }
        // Each diagonal entry against central finite differences of the usage (both estimate
        // the density of marginal users, with different windows: within a third).
        for c in 0..r_n {
            let jd = j[c * r_n + c];
            if jd == 0.0 {
                continue;
            }
            // A step that moves about 2% of the resource's use by the kernel's estimate.
            let d = (0.02 * base.usage[c].max(1.0) / -jd).max(1e-12);
            let mut qu = q.clone();
            qu[c] += d;
            let mut qd = q.clone();
            qd[c] -= d;
            let gu = pass(&p, &Prices::new(&p, &qu), Users::All(p.n_users()), &ctl).unwrap();
            let gd = pass(&p, &Prices::new(&p, &qd), Users::All(p.n_users()), &ctl).unwrap();
            let fd = (gu.usage[c] - gd.usage[c]) / (2.0 * d);
            assert!(
                fd < 0.0 && jd / fd > 0.75 && jd / fd < 1.33,
                "L {limit} resource {c}: kernel {jd} vs finite differences {fd}"
            );
        }
    }
}

#[test]
fn newton_phase_gives_a_valid_certified_plan() {
    let ctl = Control::new();
    for (limit, groups) in [(1u32, 0usize), (2, 3)] {
        let mut sp = spec(40_000, 8, 5);
        sp.limit = limit;
        sp.n_groups = groups;
        let inst = random(&sp, &ctl).unwrap();
        let p = inst.problem(limit);
        let newton_opt = DualOptions {
            sample_min_users: 0,
            ..DualOptions::default()
        };
        let a = dual::solve_dual(&p, &newton_opt, &ctl).unwrap();
        // The Newton phase ran and its plan certified the gap: the level method did not
        // have to continue on the full problem.
        assert!(
            a.history.iter().any(|h| h.phase == 3),
            "the Newton phase did not run"
        );
        assert!(
            a.history.iter().all(|h| h.phase != 1),
            "L {limit}: the Newton plan did not certify the gap"
        );
        let level_opt = DualOptions {
            sample: false,
            ..DualOptions::default()
        };
        let b = dual::solve_dual(&p, &level_opt, &ctl).unwrap();
        for s in [&a, &b] {
            check_plan(&p, &s.chosen).unwrap();
            let (v, u) = evaluate(&p, &s.chosen);
            assert!((v - s.objective).abs() <= 1e-9 * v.abs());
            for r in 0..p.n_resources() {
                assert!(u[r] <= p.upper[r] * (1.0 + 1e-12), "resource {r} over");
            }
        }
        // Each solver's dual bound is above the other's plan and fractional plan.
        let tol = 1e-9 * a.dual_bound.abs();
        assert!(a.dual_bound >= b.objective - tol && a.dual_bound >= b.lp_value - tol);
        assert!(b.dual_bound >= a.objective - tol && b.dual_bound >= a.lp_value - tol);
        assert!(
            (a.dual_bound - a.objective) <= 1e-4 * a.dual_bound,
            "L {limit}: Newton plan gap {} (status {:?})",
            (a.dual_bound - a.objective) / a.dual_bound,
            a.status
        );
        assert_eq!(a.status, Status::Optimal);
    }
}

#[test]
fn users_of_handles_users_without_candidates() {
    // Users 0..6 with 2, 0, 3, 0, 0, 1 candidates.
    let indptr = [0i64, 2, 2, 5, 5, 5, 6];
    let chosen = [0u64, 1, 2, 4, 5];
    assert_eq!(users_of(&indptr, &chosen), vec![0, 0, 2, 2, 5]);
    assert!(users_of(&indptr, &[]).is_empty());
    // Against a scan, on many blocks.
    let inst = random(&spec(50_000, 3, 1), &Control::new()).unwrap();
    let p = inst.problem(1);
    let chosen: Vec<u64> = (0..p.nnz() as u64).step_by(7).collect();
    let scan: Vec<u64> = chosen
        .iter()
        .map(|&k| (p.indptr.partition_point(|&x| x as u64 <= k) - 1) as u64)
        .collect();
    assert_eq!(users_of(p.indptr, &chosen), scan);
}

fn tiny<'a>(
    indptr: &'a [i64],
    action: &'a [u32],
    value: &'a [f64],
    au: &'a [f64],
) -> Problem<'a, f64> {
    Problem {
        indptr,
        action,
        value,
        pair_usage: Vec::new(),
        pair_resource: Vec::new(),
        action_usage: au,
        n_actions: au.len(),
        group: &[],
        limit: Limit::All(2),
        lower: vec![0.0],
        upper: vec![10.0],
        names: vec!["slots".into()],
    }
}

#[test]
fn validate_rejects_a_duplicate_user_action_pair() {
    let au = [1.0, 1.0, 1.0];
    // Sorted and unsorted users; user 2 repeats action 1 (not adjacent).
    let (ip, act, v) = ([0i64, 2, 3, 6], [0u32, 2, 1, 1, 0, 1], [1.0; 6]);
    let e = tiny(&ip, &act, &v, &au).validate().unwrap_err().to_string();
    assert!(
        e.starts_with("action: user 2 has action 1 more than once"),
        "{e}"
    );
    let act_ok = [0u32, 2, 1, 1, 0, 2];
    assert!(tiny(&ip, &act_ok, &v, &au).validate().is_ok());
}

#[test]
fn certified_bound_holds_at_any_prices_and_is_zero_for_worthless_candidates() {
    let ctl = Control::new();
    let inst = random(&spec(200, 5, 7), &ctl).unwrap();
    let p = inst.problem(2);
    let lp = exact::solve_lp(&p, None, &ctl).unwrap();
    let scale = lp.objective.abs().max(1.0);
    // Weak duality: every price vector (after projection) bounds the LP optimum.
    for q in [
        vec![0.0; 4],
        lp.prices.clone(),
        vec![0.3, -1.0, 2.0, 0.01],
        vec![1e3; 4],
    ] {
        let b = certified_bound(&p, &q, &ctl).unwrap();
        assert!(
            b >= lp.objective - 1e-7 * scale,
            "q {q:?}: {b} < {}",
            lp.objective
        );
    }
    // At the LP's prices the bound is tight.
    let b = certified_bound(&p, &lp.prices, &ctl).unwrap();
    assert!(b - lp.objective <= 1e-6 * scale, "{b} vs {}", lp.objective);
    // Worthless candidates: the bound at zero prices is exactly 0, a proof the empty plan is optimal.
    let neg: Vec<f64> = vec![-1.0; 6];
    let au = [1.0, 1.0, 1.0];
    let (ip, act) = ([0i64, 2, 3, 6], [0u32, 2, 1, 0, 1, 2]);
    let t = tiny(&ip, &act, &neg, &au);
    assert_eq!(certified_bound(&t, &[0.0], &ctl).unwrap(), 0.0);
    let s = exact::solve_exact(&t, false, None, &ctl).unwrap();
    assert_eq!(
        (s.objective, s.dual_bound, s.status),
        (0.0, 0.0, Status::Optimal)
    );
}
