//! The one sort behind the uplift curves (`gm.planning.metrics`): rows ranked by predicted
//! uplift, highest first, summarised at the end of each group of equal scores.
//!
//! Binary outcomes make every row one of four categories (`code = 2 * treated + outcome`), so
//! the curves need only the scores' order and, per tie group, the category counts. The scores
//! are mapped to their order-preserving integer image (Herf, "Radix tricks", 2001), distributed
//! into 2^16 buckets by the image's top bits (one MSD radix pass: Knuth, TAOCP vol. 3, 5.2.5),
//! and each bucket is sorted on the library's threads as plain integers that carry the category
//! in their two lowest bits (the bucket's shared top bits make room for it). n keys of extra
//! memory. The counts are integers: the result does not depend on the order inside a tie or on
//! the thread count.

use crate::control::Control;
use crate::error::{try_vec, CoreError, Result};
use rayon::prelude::*;

/// Cumulative counts at the end of each tie group, highest score first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ranked {
    /// Rows so far.
    pub rows: Vec<i64>,
    /// Treated rows so far (categories 2 and 3).
    pub treated: Vec<i64>,
    /// Treated responders so far (category 3).
    pub treated_resp: Vec<i64>,
    /// Control responders so far (category 1).
    pub control_resp: Vec<i64>,
}

/// Bits of the key that pick a bucket (the sign, the exponent and 4 bits of the mantissa).
const TOP: u32 = 16;
const LOW: u32 = 64 - TOP;

/// Descending order of `x` as ascending order of the key (-0.0 and 0.0 share a key).
#[inline]
fn key_desc(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    let asc = if b >> 63 == 1 { !b } else { b ^ (1 << 63) };
    !asc
}

/// Ranks `score` (finite) highest first and counts the categories (`code`, 0..=3) per tie group.
pub fn ranked_counts(score: &[f64], code: &[u8], ctl: &Control) -> Result<Ranked> {
    let mut out = Ranked::default();
    scan(score, code, ctl, |rows, t, tr, cr| {
        out.rows.push(rows);
        out.treated.push(t);
        out.treated_resp.push(tr);
        out.control_resp.push(cr);
    })?;
    Ok(out)
}

/// A curve over the ranked rows (the definitions of `gm.planning.metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// `Y_T - Y_C * N_T / N_C` (the ratio 0 while `N_C = 0`).
    Qini,
    /// `(Y_T / N_T - Y_C / N_C) * n` (each rate 0 while its group is empty).
    Uplift,
}

#[inline]
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// The area under `curve` from the origin through one point per tie group (the trapezoidal
/// rule), without holding the curve: what `ranked_counts` followed by the curve and its area
/// computes, in one pass.
pub fn ranked_area(score: &[f64], code: &[u8], curve: Curve, ctl: &Control) -> Result<f64> {
    let (mut area, mut x0, mut v0) = (0.0f64, 0.0f64, 0.0f64);
    scan(score, code, ctl, |rows, t, tr, cr| {
        let (n, nt, yt, yc) = (rows as f64, t as f64, tr as f64, cr as f64);
        let v = match curve {
            Curve::Qini => yt - yc * ratio(nt, n - nt),
            Curve::Uplift => (ratio(yt, nt) - ratio(yc, n - nt)) * n,
        };
        area += (n - x0) * (v + v0);
        (x0, v0) = (n, v);
    })?;
    Ok(area / 2.0)
}

/// Calls `emit(rows, treated, treated responders, control responders)` (all so far) at the
/// end of each tie group, highest score first.
fn scan(
    score: &[f64],
    code: &[u8],
    ctl: &Control,
    mut emit: impl FnMut(i64, i64, i64, i64),
) -> Result<()> {
    let n = score.len();
    crate::error::check_len("code", code.len(), n, "score")?;
    crate::error::check_finite("score", score)?;
    if let Some(i) = code.iter().position(|&c| c > 3) {
        return Err(CoreError::invalid(
            "code",
            format!("must be 0..=3, found {} at position {i}", code[i]),
        ));
    }
    // One bucket pass on the key's top bits; inside a bucket the top bits are equal, so the
    // key's low bits and the category fit one u64 (low << 2 | category), sorted as integers.
    let mut count = try_vec("score", (1usize << TOP) + 1, 0usize)?;
    for &x in score {
        count[(key_desc(x) >> LOW) as usize + 1] += 1;
    }
    for b in 1..count.len() {
        count[b] += count[b - 1];
    }
    let starts = count.clone();
    let mut packed = try_vec("score", n, 0u64)?;
    for (&x, &c) in score.iter().zip(code) {
        let k = key_desc(x);
        let slot = &mut count[(k >> LOW) as usize];
        packed[*slot] = ((k & ((1u64 << LOW) - 1)) << 2) | u64::from(c);
        *slot += 1;
    }
    ctl.check()?;
    let mut buckets: Vec<&mut [u64]> = Vec::new();
    let mut rest: &mut [u64] = &mut packed;
    for w in starts.windows(2) {
        let (here, tail) = rest.split_at_mut(w[1] - w[0]);
        if here.len() > 1 {
            buckets.push(here);
        }
        rest = tail;
    }
    buckets.par_iter_mut().try_for_each(|b| {
        ctl.check()?;
        b.sort_unstable();
        Ok::<(), CoreError>(())
    })?;
    let (mut rows, mut t, mut tr, mut cr) = (0i64, 0i64, 0i64, 0i64);
    for w in starts.windows(2) {
        let bucket = &packed[w[0]..w[1]];
        for (i, &p) in bucket.iter().enumerate() {
            let c = p & 3;
            rows += 1;
            t += i64::from(c >= 2);
            tr += i64::from(c == 3);
            cr += i64::from(c == 1);
            if i + 1 == bucket.len() || bucket[i + 1] >> 2 != p >> 2 {
                emit(rows, t, tr, cr);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::Rng as _;

    /// The definition, by a comparison sort and a scan.
    fn naive(score: &[f64], code: &[u8]) -> Ranked {
        let mut idx: Vec<usize> = (0..score.len()).collect();
        idx.sort_by(|&a, &b| score[b].partial_cmp(&score[a]).unwrap());
        let mut out = Ranked::default();
        let (mut rows, mut t, mut tr, mut cr) = (0, 0, 0, 0);
        for (j, &i) in idx.iter().enumerate() {
            rows += 1;
            t += i64::from(code[i] >= 2);
            tr += i64::from(code[i] == 3);
            cr += i64::from(code[i] == 1);
            if j + 1 == idx.len() || score[idx[j + 1]] != score[i] {
                out.rows.push(rows);
                out.treated.push(t);
                out.treated_resp.push(tr);
                out.control_resp.push(cr);
            }
        }
        out
    }

    #[test]
    fn ties_signed_zeros_and_extremes() {
        let s = [
            0.0,
            -0.0,
            1.5,
            -1.5,
            1.5,
            f64::MAX,
            f64::MIN,
            1e-300,
            -1e-300,
            0.0,
        ];
        let c = [0, 1, 2, 3, 3, 1, 0, 2, 2, 3];
        let r = ranked_counts(&s, &c, &Control::new()).unwrap();
        assert_eq!(r, naive(&s, &c));
        // MAX, 1.5 x2, 1e-300, the three zeros, -1e-300, -1.5, MIN
        assert_eq!(r.rows, vec![1, 3, 4, 7, 8, 9, 10]);
        assert_eq!(r.control_resp, vec![1, 1, 1, 2, 2, 2, 2]);
    }

    #[test]
    fn many_buckets_and_ties_across_them() {
        // magnitudes from 1e-12 to 1e12 of both signs (thousands of buckets), a third of the
        // rows on a few repeated values, sorted on the pool's threads
        let mut rng = crate::rng::stream(5, 0);
        let n = 100_000;
        let score: Vec<f64> = (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    f64::from((i % 7) as u32) - 3.0
                } else {
                    let m = 10f64.powf(rng.random::<f64>() * 24.0 - 12.0);
                    if rng.random::<f64>() < 0.5 {
                        -m
                    } else {
                        m
                    }
                }
            })
            .collect();
        let code: Vec<u8> = (0..n).map(|i| ((i * 7 + i / 3) % 4) as u8).collect();
        let got = crate::parallel::install(|| ranked_counts(&score, &code, &Control::new()));
        assert_eq!(got.unwrap(), naive(&score, &code));
    }

    #[test]
    fn areas_match_the_curves_of_the_counts() {
        let score: Vec<f64> = (0..500)
            .map(|i| f64::from((i * 37 % 101) as u32) * 0.5)
            .collect();
        let code: Vec<u8> = (0..500).map(|i| ((i * 13 + i / 7) % 4) as u8).collect();
        let ctl = Control::new();
        let r = ranked_counts(&score, &code, &ctl).unwrap();
        for curve in [Curve::Qini, Curve::Uplift] {
            let (mut x, mut v) = (vec![0.0], vec![0.0]);
            for i in 0..r.rows.len() {
                let (n, nt) = (r.rows[i] as f64, r.treated[i] as f64);
                let (yt, yc) = (r.treated_resp[i] as f64, r.control_resp[i] as f64);
                x.push(n);
                v.push(match curve {
                    Curve::Qini => yt - yc * ratio(nt, n - nt),
                    Curve::Uplift => (ratio(yt, nt) - ratio(yc, n - nt)) * n,
                });
            }
            let want: f64 = (1..x.len())
                .map(|i| (x[i] - x[i - 1]) * (v[i] + v[i - 1]) / 2.0)
                .sum();
            let got = ranked_area(&score, &code, curve, &ctl).unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{curve:?} {got} {want}"
            );
        }
    }

    #[test]
    fn bad_input_names_the_argument() {
        let ctl = Control::new();
        let e = ranked_counts(&[1.0, f64::NAN], &[0, 1], &ctl).unwrap_err();
        assert!(e.to_string().starts_with("score: must be finite"), "{e}");
        let e = ranked_counts(&[1.0], &[4], &ctl).unwrap_err();
        assert!(e.to_string().starts_with("code: must be 0..=3"), "{e}");
        assert!(ranked_counts(&[1.0], &[0, 1], &ctl).is_err());
        assert_eq!(ranked_counts(&[], &[], &ctl).unwrap(), Ranked::default());
    }

    proptest! {
        #[test]
        fn equals_the_definition(
            rows in proptest::collection::vec((-4i32..4, 0u8..4, any::<f64>()), 0..300),
            coarse in any::<bool>(),
        ) {
            // coarse: few distinct scores (many ties); else arbitrary finite floats
            let score: Vec<f64> = rows
                .iter()
                .map(|&(a, _, x)| if coarse || !x.is_finite() { f64::from(a) * 0.25 } else { x })
                .collect();
            let code: Vec<u8> = rows.iter().map(|r| r.1).collect();
            let got = ranked_counts(&score, &code, &Control::new()).unwrap();
            prop_assert_eq!(got, naive(&score, &code));
        }
    }
}
