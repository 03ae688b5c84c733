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
            let (_, lp, _) = exact::solve_lp(&p).unwrap();
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
            }
            assert!(s.objective <= lp + 1e-6 * scale);
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
