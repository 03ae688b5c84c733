use super::*;
use crate::control::Control;
use proptest::prelude::*;

fn cfg(algo: Algo, k: usize, d: usize) -> Config {
    Config {
        algo,
        n_actions: k,
        n_features: d,
        n_action_features: 0,
        ridge: 1.0,
        seed: 3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn batch_update_equals_one_by_one_and_keeps_the_inverse(
        k in 1usize..4, d in 1usize..6, n in 1usize..300, seed in 0u64..1000,
    ) {
        use rand::Rng;
        let mut r = crate::rng::stream(seed, 0);
        let x: Vec<f64> = (0..n * d).map(|_| r.random::<f64>() * 2.0 - 1.0).collect();
        let a: Vec<i64> = (0..n).map(|_| r.random_range(0..k as i64)).collect();
        let y: Vec<f64> = (0..n).map(|_| r.random::<f64>()).collect();
        for algo in [Algo::LinUcb { alpha: 1.0 }, Algo::LogisticTs { v: 1.0 }] {
            let mut p = Policy::new(cfg(algo, k, d)).unwrap();
            let mut q = p.clone();
            p.update_batch(&Rows { x: &x, xa: None }, &a, &y).unwrap();
            for i in 0..n {
                q.update_batch(&Rows { x: &x[i * d..(i + 1) * d], xa: None }, &a[i..i + 1], &y[i..i + 1]).unwrap();
            }
            prop_assert_eq!(&p, &q);
            if let Algo::LinUcb { .. } = algo {
                // A^{-1} A = I with A = I + sum z z^T over each action's events
                for act in 0..k {
                    let mut am = vec![0.0; d * d];
                    for i in 0..d { am[i * d + i] = 1.0; }
                    for e in 0..n {
                        if a[e] as usize == act {
                            for i in 0..d { for j in 0..d { am[i * d + j] += x[e * d + i] * x[e * d + j]; } }
                        }
                    }
                    let s = &p.a_inv()[act * d * d..(act + 1) * d * d];
                    for i in 0..d { for j in 0..d {
                        let v: f64 = (0..d).map(|t| s[i * d + t] * am[t * d + j]).sum();
                        let want = if i == j { 1.0 } else { 0.0 };
                            prop_assert!((v - want).abs() < 1e-8, "A^-1 A off identity");
                    } }
                }
            }
        }
    }
}

#[test]
fn impossible_sizes_are_invalid_and_huge_ones_out_of_memory() {
    let sized = |k: usize, d: usize, ka: usize| {
        Policy::new(Config {
            n_action_features: ka,
            ..cfg(Algo::LinTs { v: 1.0 }, k, d)
        })
        .map(|_| ())
    };
    let arg = |e: CoreError| match e {
        CoreError::Invalid { arg, .. } => format!("invalid {arg}"),
        CoreError::OutOfMemory(m) => format!("memory {}", m.split(':').next().unwrap()),
        e => format!("{e:?}"),
    };
    // (2^32)^2 overflows: the size cannot exist
    assert_eq!(arg(sized(2, 1 << 32, 0).unwrap_err()), "invalid n_features");
    assert_eq!(
        arg(sized(2, 3, 1 << 32).unwrap_err()),
        "invalid n_action_features"
    );
    assert_eq!(
        arg(sized(2, usize::MAX, 1).unwrap_err()),
        "invalid n_action_features"
    );
    // valid sizes no machine holds
    assert_eq!(arg(sized(4, 1 << 20, 0).unwrap_err()), "memory n_features");
    assert_eq!(arg(sized(1 << 40, 5, 0).unwrap_err()), "memory n_actions");
    assert_eq!(arg(sized(1, 1 << 16, 0).unwrap_err()), "memory n_features");
    assert!(sized(3, 4, 2).is_ok());
}

#[test]
fn cancelled_batch_calls_stop_and_change_nothing() {
    let (k, d, n) = (3, 2, 2000);
    let x: Vec<f64> = (0..n * d).map(|i| (i % 7) as f64 - 3.0).collect();
    let rows = Rows { x: &x, xa: None };
    let ctl = Control::new();
    ctl.cancel();
    let mut p = Policy::new(cfg(Algo::LinTs { v: 1.0 }, k, d)).unwrap();
    let before = p.clone();
    let mut sc = vec![0.0; n * k];
    let mut a = vec![0i64; n];
    assert_eq!(
        p.scores_batch(&rows, n, &mut sc, &ctl),
        Err(CoreError::Cancelled)
    );
    assert_eq!(
        p.choose_batch(&rows, n, &mut a, &ctl),
        Err(CoreError::Cancelled)
    );
    assert_eq!(
        p.choose_batch_hallucinated(&rows, n, &mut a, &ctl),
        Err(CoreError::Cancelled)
    );
    assert_eq!(
        p.probabilities(&rows, n, 10, &mut sc, &ctl),
        Err(CoreError::Cancelled)
    );
    assert_eq!(p, before);
    assert!(p.choose_batch(&rows, n, &mut a, &Control::new()).is_ok());
    assert_eq!(p.n_decisions(), n as u64);
}

#[test]
fn state_round_trip_and_corruption() {
    let mut p = Policy::new(cfg(Algo::LinTs { v: 0.5 }, 3, 2)).unwrap();
    p.update_batch(
        &Rows {
            x: &[0.1, 0.2, 0.3, -0.4],
            xa: None,
        },
        &[0, 2],
        &[1.0, 0.5],
    )
    .unwrap();
    let b = p.to_bytes().unwrap();
    assert_eq!(Policy::from_bytes(&b).unwrap(), p);
    assert!(Policy::from_bytes(&b[..b.len() - 3]).is_err());
    let mut c = b.clone();
    let mid = c.len() / 2;
    c[mid] ^= 0x04;
    assert!(Policy::from_bytes(&c).is_err());
}

#[test]
fn a_cancelled_update_batch_leaves_the_policy_unchanged() {
    use rand::Rng;
    let (k, d, n) = (3, 4, 20_000);
    let mut r = crate::rng::stream(7, 0);
    let x: Vec<f64> = (0..n * d).map(|_| r.random::<f64>()).collect();
    let a: Vec<i64> = (0..n).map(|_| r.random_range(0..k as i64)).collect();
    let y: Vec<f64> = (0..n).map(|_| r.random::<f64>()).collect();
    let rows = Rows { x: &x, xa: None };
    let mut p = Policy::new(cfg(Algo::LinUcb { alpha: 1.0 }, k, d)).unwrap();
    let first = Rows {
        x: &x[..100 * d],
        xa: None,
    };
    p.update_batch(&first, &a[..100], &y[..100]).unwrap();
    let before = p.clone();
    let ctl = Control::new();
    ctl.cancel();
    assert_eq!(
        p.update_batch_ctl(&rows, &a, &y, &ctl),
        Err(CoreError::Cancelled)
    );
    assert_eq!(p, before);
    // Not cancelled: the same call learns, as update_batch does.
    let mut q = p.clone();
    p.update_batch_ctl(&rows, &a, &y, &Control::new()).unwrap();
    q.update_batch(&rows, &a, &y).unwrap();
    assert_eq!(p, q);
    assert_ne!(p, before);
}
