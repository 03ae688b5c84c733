//! Off-policy evaluation: IPS, SNIPS, DM, DR and switch-DR as defined in the Open Bandit
//! Pipeline (obp, `obp/ope/estimators.py`), computed in one parallel pass over the logged rounds
//! with no per-round or (n, actions, positions) temporary.
//!
//! Per round `i` with logged action `a_i`, position `p_i`, reward `r_i`, logging propensity
//! `pi_b_i`, evaluation probabilities `pi_e[i, :, p_i]` and reward model `q[i, :, p_i]`:
//! - `w_i = pi_e[i, a_i, p_i] / pi_b_i`, `w~_i = min(w_i, clip)` (obp's `lambda_`, inf = none);
//! - IPS `r_i w~_i`; SNIPS `r_i w_i / mean(w)` (no clipping, as obp);
//! - DM `dm_i = sum_a pi_e q / sum_a pi_e` (obp's `np.average(q, weights=pi_e)`);
//! - DR `dm_i + w~_i (r_i - q[i, a_i, p_i])`;
//! - switch-DR `dm_i + [w_i <= tau] w_i (r_i - q[i, a_i, p_i])` (obp's `SwitchDoublyRobust`).
//!
//! Each estimate is the mean of its per-round values; the sample standard deviation of those values
//! (ddof 1) is returned for normal-approximation intervals, and [`bootstrap`] resamples rounds
//! (obp's interval method) with one seeded stream per bootstrap sample.

use crate::control::Control;
use crate::error::{try_vec, CoreError, Result};
use crate::parallel::CHUNK;
use crate::rng;
use rand::Rng as _;
use rayon::prelude::*;

pub const ESTIMATORS: [&str; 5] = ["ips", "snips", "dm", "dr", "switch_dr"];

/// How far a row of `action_probs` may sum from 1 (numpy's `allclose` defaults, as obp checks).
const SUM_TOL: f64 = 1e-5;

/// Logged data. `pi_e` and `q` are `n x n_actions x n_positions`, row-major.
pub struct Logged<'a> {
    pub actions: &'a [i64],
    pub rewards: &'a [f64],
    pub pscore: &'a [f64],
    pub pi_e: &'a [f64],
    pub q: Option<&'a [f64]>,
    pub positions: Option<&'a [i64]>,
    pub n_actions: usize,
    pub n_positions: usize,
}

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub clip: f64,
    pub switch_tau: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Estimates {
    pub n: usize,
    /// In the order of [`ESTIMATORS`]; DM, DR and switch-DR are NaN without `q`.
    pub value: [f64; 5],
    /// Sample standard deviation (ddof 1) of the per-round values.
    pub std: [f64; 5],
    pub mean_weight: f64,
    pub max_weight: f64,
}

/// Raw per-round quantities: (w, w~, r, q_factual, dm).
#[inline(always)]
fn round(l: &Logged, p: &Params, i: usize) -> (f64, f64, f64, f64, f64) {
    let (k, np) = (l.n_actions, l.n_positions);
    let a = l.actions[i] as usize;
    let pos = l.positions.map_or(0, |v| v[i] as usize);
    let base = i * k * np;
    let w = l.pi_e[base + a * np + pos] / l.pscore[i];
    let wc = w.min(p.clip);
    let (qf, dm) = match l.q {
        None => (f64::NAN, f64::NAN),
        Some(q) => {
            let (mut num, mut den) = (0.0, 0.0);
            for b in 0..k {
                let pe = l.pi_e[base + b * np + pos];
                num += pe * q[base + b * np + pos];
                den += pe;
            }
            (q[base + a * np + pos], num / den)
        }
    };
    (w, wc, l.rewards[i], qf, dm)
}

/// Per-round values of the five estimators (SNIPS before division by mean(w)).
#[inline(always)]
fn values(p: &Params, (w, wc, r, qf, dm): (f64, f64, f64, f64, f64)) -> [f64; 5] {
    let sw = if w <= p.switch_tau { w * (r - qf) } else { 0.0 };
    [r * wc, r * w, dm, dm + wc * (r - qf), dm + sw]
}

fn check_chunk(l: &Logged, lo: usize, hi: usize) -> Option<CoreError> {
    let (k, np) = (l.n_actions, l.n_positions);
    for i in lo..hi {
        let a = l.actions[i];
        if a < 0 || a as usize >= k {
            return Some(CoreError::invalid(
                "actions",
                format!("must be in [0, {k}), found {a} at position {i}"),
            ));
        }
        if let Some(pv) = l.positions {
            if pv[i] < 0 || pv[i] as usize >= np {
                return Some(CoreError::invalid(
                    "positions",
                    format!("must be in [0, {np}), found {} at position {i}", pv[i]),
                ));
            }
        }
        let ps = l.pscore[i];
        if !(ps > 0.0 && ps <= 1.0) {
            return Some(CoreError::invalid(
                "propensities",
                format!("must be in (0, 1], found {ps} at position {i}"),
            ));
        }
        if !l.rewards[i].is_finite() {
            return Some(CoreError::invalid(
                "rewards",
                format!("must be finite, found {} at position {i}", l.rewards[i]),
            ));
        }
        let row = &l.pi_e[i * k * np..(i + 1) * k * np];
        if let Some(j) = row
            .iter()
            .position(|v| !(v.is_finite() && *v >= 0.0 && *v <= 1.0))
        {
            return Some(CoreError::invalid(
                "action_probs",
                format!("must be in [0, 1], found {} in row {i}", row[j]),
            ));
        }
        for pos in 0..np {
            let s: f64 = (0..k).map(|b| row[b * np + pos]).sum();
            if (s - 1.0).abs() > SUM_TOL {
                let at = if np > 1 {
                    format!(" at position {pos}")
                } else {
                    String::new()
                };
                return Some(CoreError::invalid(
                    "action_probs",
                    format!("each row must sum to 1 over the actions, row {i} sums to {s}{at}"),
                ));
            }
        }
        if let Some(q) = l.q {
            let qr = &q[i * k * np..(i + 1) * k * np];
            if let Some(j) = qr.iter().position(|v| !v.is_finite()) {
                return Some(CoreError::invalid(
                    "q_hat",
                    format!("must be finite, found {} in row {i}", qr[j]),
                ));
            }
        }
    }
    None
}

fn check(l: &Logged) -> Result<usize> {
    let n = l.actions.len();
    if n == 0 {
        return Err(CoreError::invalid("actions", "is empty"));
    }
    crate::error::check_len("rewards", l.rewards.len(), n, "actions")?;
    crate::error::check_len("propensities", l.pscore.len(), n, "actions")?;
    if let Some(p) = l.positions {
        crate::error::check_len("positions", p.len(), n, "actions")?;
    }
    // Checked: sizes that overflow match no array (never a wrapped length).
    let want = (l.n_actions.checked_mul(l.n_positions)).and_then(|per| per.checked_mul(n));
    if Some(l.pi_e.len()) != want {
        return Err(CoreError::invalid(
            "action_probs",
            format!(
                "has {} values, expected {n} x {} x {}",
                l.pi_e.len(),
                l.n_actions,
                l.n_positions
            ),
        ));
    }
    if let Some(q) = l.q {
        if Some(q.len()) != want {
            return Err(CoreError::invalid(
                "q_hat",
                format!(
                    "has {} values, expected {n} x {} x {}",
                    q.len(),
                    l.n_actions,
                    l.n_positions
                ),
            ));
        }
    }
    Ok(n)
}

/// All five estimates with their per-round standard deviations.
pub fn evaluate(l: &Logged, p: &Params, ctl: &Control) -> Result<Estimates> {
    let n = check(l)?;
    if p.clip.is_nan() || p.clip <= 0.0 {
        return Err(CoreError::invalid(
            "clip",
            format!("must be > 0, got {}", p.clip),
        ));
    }
    if p.switch_tau.is_nan() || p.switch_tau < 0.0 {
        return Err(CoreError::invalid(
            "switch_threshold",
            format!("must be >= 0, got {}", p.switch_tau),
        ));
    }
    let n_chunks = n.div_ceil(CHUNK);
    ctl.set_total(2 * n_chunks as u64);
    // Pass 1: validate and sum.
    let parts: Vec<Result<([f64; 5], f64, f64)>> = (0..n_chunks)
        .into_par_iter()
        .map(|c| {
            ctl.check()?;
            let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
            if let Some(e) = check_chunk(l, lo, hi) {
                return Err(e);
            }
            let mut s = [0.0; 5];
            let (mut sw, mut mw) = (0.0, 0.0f64);
            for i in lo..hi {
                let rd = round(l, p, i);
                sw += rd.0;
                mw = mw.max(rd.0);
                let v = values(p, rd);
                for j in 0..5 {
                    s[j] += v[j];
                }
            }
            ctl.advance(1);
            Ok((s, sw, mw))
        })
        .collect();
    let mut sum = [0.0; 5];
    let (mut sum_w, mut max_w) = (0.0, 0.0f64);
    for part in parts {
        let (s, sw, mw) = part?;
        for j in 0..5 {
            sum[j] += s[j];
        }
        sum_w += sw;
        max_w = max_w.max(mw);
    }
    let nf = n as f64;
    let mean_w = sum_w / nf;
    let mut mean = sum.map(|s| s / nf);
    // SNIPS: mean(r w / mean(w)) = mean(r w) / mean(w)
    let snips_scale = if mean_w > 0.0 { 1.0 / mean_w } else { f64::NAN };
    mean[1] *= snips_scale;
    // Pass 2: centred squares.
    let sq: Vec<Result<[f64; 5]>> = (0..n_chunks)
        .into_par_iter()
        .map(|c| {
            ctl.check()?;
            let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
            let mut s = [0.0; 5];
            for i in lo..hi {
                let mut v = values(p, round(l, p, i));
                v[1] *= snips_scale;
                for j in 0..5 {
                    let e = v[j] - mean[j];
                    s[j] += e * e;
                }
            }
            ctl.advance(1);
            Ok(s)
        })
        .collect();
    let mut ss = [0.0; 5];
    for part in sq {
        let s = part?;
        for j in 0..5 {
            ss[j] += s[j];
        }
    }
    let std = ss.map(|s| {
        if n > 1 {
            (s / (nf - 1.0)).sqrt()
        } else {
            f64::NAN
        }
    });
    let mut value = [mean[0], mean[1], f64::NAN, f64::NAN, f64::NAN];
    let mut stdv = [std[0], std[1], f64::NAN, f64::NAN, f64::NAN];
    if l.q.is_some() {
        value[2..].copy_from_slice(&mean[2..]);
        stdv[2..].copy_from_slice(&std[2..]);
    }
    Ok(Estimates {
        n,
        value,
        std: stdv,
        mean_weight: mean_w,
        max_weight: max_w,
    })
}

/// Bootstrap means: `out[b * 5 + j]` is the mean of estimator `j` over the `b`-th resample of the
/// rounds (with replacement, `n` draws from the stream `(seed, b)`). SNIPS is normalised by the
/// full-sample mean weight, as obp bootstraps its per-round values.
pub fn bootstrap(
    l: &Logged,
    p: &Params,
    n_boot: usize,
    seed: u64,
    mean_weight: f64,
    ctl: &Control,
) -> Result<Vec<f64>> {
    let n = check(l)?;
    if n_boot < 1 {
        return Err(CoreError::invalid("n_bootstrap", "must be >= 1"));
    }
    // The output is the only allocation the caller's number controls: checked before any work.
    let count = n_boot.checked_mul(5).ok_or_else(|| {
        CoreError::invalid("n_bootstrap", "too large: 5 x n_bootstrap values overflow")
    })?;
    let mut out = try_vec("n_bootstrap", count, 0.0)?;
    ctl.set_total(n_boot as u64);
    let scale = 1.0 / mean_weight;
    out.par_chunks_mut(5)
        .enumerate()
        .try_for_each(|(b, row)| -> Result<()> {
            let mut r = rng::stream(seed, b as u64);
            let mut s = [0.0; 5];
            for t in 0..n {
                if t % CHUNK == 0 {
                    ctl.check()?;
                }
                let i = r.random_range(0..n);
                let v = values(p, round(l, p, i));
                for j in 0..5 {
                    s[j] += v[j];
                }
            }
            s[1] *= scale;
            ctl.advance(1);
            for j in 0..5 {
                row[j] = s[j] / n as f64;
            }
            Ok(())
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_case() {
        // 2 rounds, 2 actions.
        let pi_e = [0.2, 0.8, 1.0, 0.0];
        let q = [1.0, 2.0, 0.5, 3.0];
        let l = Logged {
            actions: &[1, 0],
            rewards: &[3.0, 1.0],
            pscore: &[0.5, 0.25],
            pi_e: &pi_e,
            q: Some(&q),
            positions: None,
            n_actions: 2,
            n_positions: 1,
        };
        let p = Params {
            clip: f64::INFINITY,
            switch_tau: 2.0,
        };
        let e = evaluate(&l, &p, &Control::new()).unwrap();
        // w = [1.6, 4]; ips = [4.8, 4] -> 4.4; snips = 8.8 / 5.6 * ... = mean(r w)/mean(w) = 4.4/2.8
        assert!((e.value[0] - 4.4).abs() < 1e-12);
        assert!((e.value[1] - 4.4 / 2.8).abs() < 1e-12);
        // dm = [0.2 + 1.6, 0.5] -> 1.15
        assert!((e.value[2] - 1.15).abs() < 1e-12);
        // dr = [1.8 + 1.6 (3 - 2), 0.5 + 4 (1 - 0.5)] = [3.4, 2.5] -> 2.95
        assert!((e.value[3] - 2.95).abs() < 1e-12);
        // switch (tau 2): round 2 has w = 4 > 2 -> dm only: [3.4, 0.5] -> 1.95
        assert!((e.value[4] - 1.95).abs() < 1e-12);
        assert_eq!(e.max_weight, 4.0);
        let bad = Logged {
            pscore: &[0.0, 0.5],
            ..l
        };
        assert!(evaluate(&bad, &p, &Control::new()).is_err());
    }
}
