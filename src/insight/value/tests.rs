#![allow(clippy::needless_range_loop)]
use super::*;

#[test]
fn gradient_and_hessian_match_finite_differences() {
    let tt: Vec<f64> = (0..2000).map(|i| 30.0 + (i % 50) as f64).collect();
    let (x, t) = simulate_bgnbd(&[0.8, 10.0, 0.7, 3.0], &tt, 3);
    let d = BgData::new(&x, &t, &tt, None, &Control::new()).unwrap();
    let ctl = Control::new();
    let th = [0.1f64, 2.0, -0.2, 1.0];
    let (f, g, h) = d.objective(&th, 0.0, &ctl).unwrap().unwrap();
    for i in 0..4 {
        let mut a = th;
        let mut b = th;
        a[i] += 1e-5;
        b[i] -= 1e-5;
        let (fa, ga, _) = d.objective(&a, 0.0, &ctl).unwrap().unwrap();
        let (fb, gb, _) = d.objective(&b, 0.0, &ctl).unwrap().unwrap();
        assert!(((fa - fb) / 2e-5 - g[i]).abs() < 1e-6, "grad {i}");
        for j in 0..4 {
            let fd = (ga[j] - gb[j]) / 2e-5;
            assert!(
                (fd - h[i * 4 + j]).abs() < 1e-5,
                "hess {i} {j}: {fd} vs {}",
                h[i * 4 + j]
            );
        }
    }
    assert!(f.is_finite());
    let m: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, _)| 5.0 + (i % 17) as f64)
        .collect();
    let gd = GgData::new(&x, &m, None, &Control::new()).unwrap();
    let th = [0.5f64, 1.0, 2.0];
    let (_, g, h) = gd.objective(&th, 0.0, &ctl).unwrap().unwrap();
    for i in 0..3 {
        let mut a = th;
        let mut b = th;
        a[i] += 1e-5;
        b[i] -= 1e-5;
        let (fa, ga, _) = gd.objective(&a, 0.0, &ctl).unwrap().unwrap();
        let (fb, gb, _) = gd.objective(&b, 0.0, &ctl).unwrap().unwrap();
        assert!(((fa - fb) / 2e-5 - g[i]).abs() < 1e-6, "gg grad {i}");
        for j in 0..3 {
            assert!(
                ((ga[j] - gb[j]) / 2e-5 - h[i * 3 + j]).abs() < 1e-5,
                "gg hess {i} {j}"
            );
        }
    }
}

#[test]
fn recovers_generating_parameters() {
    let truth = [0.5, 8.0, 0.8, 2.5];
    let tt: Vec<f64> = (0..40_000).map(|i| 100.0 + (i % 265) as f64).collect();
    let (x, t) = simulate_bgnbd(&truth, &tt, 11);
    let d = BgData::new(&x, &t, &tt, None, &Control::new()).unwrap();
    let fit = d.fit(&FitOptions::default(), &Control::new()).unwrap();
    assert!(fit.converged);
    for i in 0..4 {
        let z = (fit.params[i] - truth[i]) / fit.std_errors[i];
        assert!(
            z.abs() < 4.0,
            "param {i}: {} vs {} (se {})",
            fit.params[i],
            truth[i],
            fit.std_errors[i]
        );
    }
    // the same data with duplicate rows merged through weights gives the same fit
    let w: Vec<f64> = vec![2.0; x.len()];
    let f2 = BgData::new(&x, &t, &tt, Some(&w), &Control::new())
        .unwrap()
        .fit(&FitOptions::default(), &Control::new())
        .unwrap();
    for i in 0..4 {
        assert!((f2.params[i] / fit.params[i] - 1.0).abs() < 1e-8);
    }
    assert!((f2.log_likelihood / fit.log_likelihood - 2.0).abs() < 1e-10);
}

#[test]
fn integral_fast_path_matches_general_path() {
    let tt: Vec<f64> = (0..30_000).map(|i| 1.0 + (i % 300) as f64).collect();
    let (x, t) = simulate_bgnbd(&[0.5, 8.0, 0.8, 2.5], &tt, 4);
    // whole days; a repeat purchase is at least one day after the first (recency > 0)
    let t: Vec<f64> = t
        .iter()
        .zip(&x)
        .map(|(v, xi)| if *xi > 0.0 { v.floor().max(1.0) } else { 0.0 })
        .collect();
    let fast = BgData::new(&x, &t, &tt, None, &Control::new()).unwrap();
    let ones = vec![1.0; x.len()];
    let general = BgData::new(&x, &t, &tt, Some(&ones), &Control::new()).unwrap();
    assert_eq!(fast.rows, general.rows);
    assert_eq!(fast.rw, general.rw);
    assert_eq!(fast.wx, general.wx[..fast.wx.len()].to_vec());
    let ctl = Control::new();
    let p = [0.6, 9.0, 0.7, 3.0];
    let (a, b) = (
        fast.log_likelihood(&p, &ctl).unwrap(),
        general.log_likelihood(&p, &ctl).unwrap(),
    );
    assert!((a / b - 1.0).abs() < 1e-13, "{a} vs {b}");
}

#[test]
fn simulate_stops_on_ctrl_c_inside_one_endless_customer() {
    // A purchase rate of ~1e9 per day and almost no drop-out: one customer's history is endless.
    let ctl = Control::new();
    let tt = [365.0];
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            ctl.cancel();
        });
        simulate_bgnbd_ctl(&[1e6, 1e-3, 1e-3, 1e6], &tt, 0, &ctl)
    });
    assert_eq!(r, Err(crate::error::CoreError::Cancelled));
}

#[test]
fn compression_stops_on_ctrl_c() {
    let ctl = Control::new();
    ctl.cancel();
    let (x, t, tt) = (
        vec![1.0, 0.0, 2.0],
        vec![3.0, 0.0, 4.0],
        vec![5.0, 6.0, 7.0],
    );
    for w in [None, Some(&[1.0, 2.0, 1.0][..])] {
        let r = BgData::new(&x, &t, &tt, w, &ctl);
        assert!(
            matches!(r, Err(crate::error::CoreError::Cancelled)),
            "{:?}",
            r.err()
        );
    }
    let r = GgData::new(&[1.0, 2.0], &[3.0, 4.0], None, &ctl);
    assert!(
        matches!(r, Err(crate::error::CoreError::Cancelled)),
        "{:?}",
        r.err()
    );
    // the same rows without Ctrl-C compress
    assert!(BgData::new(&x, &t, &tt, None, &Control::new()).is_ok());
}

#[test]
fn expectations_are_finite_and_continuous_at_a_equal_one() {
    use super::bgnbd::bg_expected_one;
    // a fit on data without repeat purchases leaves a at 1, where the closed forms are 0/0
    let at = |a: f64| {
        let p = [0.06, 1.3e3, a, 1.0];
        let e = bg_expected_one(&p, 90.0, 2.0, 70.0, 165.0);
        let z = bg_expected_one(&p, 90.0, 0.0, 0.0, 165.0);
        (e, z, bg_expected_new(&p, 90.0))
    };
    let (mid, lo, hi) = (at(1.0), at(1.0 - 1e-3), at(1.0 + 1e-3));
    for (m, l, h) in [
        (mid.0, lo.0, hi.0),
        (mid.1, lo.1, hi.1),
        (mid.2, lo.2, hi.2),
    ] {
        assert!(m.is_finite() && m > 0.0, "{m}");
        assert!((m - 0.5 * (l + h)).abs() <= 1e-5 * m, "{m} {l} {h}");
    }
}
