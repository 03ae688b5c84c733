//! Covariates in the height of the response curve: a per-user multiplier of a segment's
//! incremental conversion, from features the platform observes (recency, frequency and value of
//! orders, tenure, device, acquisition channel, consents, ...), so that two users of one segment
//! get different curves.
//!
//! Model, per log row `i` (a user randomised to `n_i` exposures on a channel): with the segment
//! curves' baseline `b_i` and incremental conversion `z_i = A H(n_i)` (the response model's fit,
//! at the row's prior fatigue) and the row's features `x_i` standardised over the rows
//! (`s_i = (x_i - mean) / sd`),
//!
//! `y_i - b_i - z_i = g0 + s_i' gamma + z_i (h0 + s_i' beta) + e_i`,
//!
//! i.e. the user's conversion is `b_i + s_i' gamma + z_i (1 + h0 + s_i' beta)`: the features shift
//! the baseline (`gamma`: heavy buyers buy anyway; left out, it would load onto `beta` wherever
//! the arms are unbalanced) and scale the curve's height (`beta`). The multiplier of a user is
//! `w = 1 + s' beta`, clamped to `[0, HEIGHT_MAX]` (`h0`, the curves' overall calibration, is the
//! response model's job and is left out of it). The arms are randomised, so within a segment
//! `z_i` is independent of `x_i` and `beta` is identified by how the gain over the baseline
//! grows with the exposures across the features.
//!
//! Fit: ridge regression (least squares: a linear probability model; the segment curves already
//! carry the nonlinearity in `n`) with Gaussian priors `gamma ~ N(0, s2 / BASE_LAMBDA)`, `beta ~
//! N(0, s2 / lambda)` and flat ones on the intercepts, `s2` the mean squared residual. The
//! precision `lambda` is chosen on [`LAMBDAS`] by the marginal likelihood (empirical Bayes,
//! MacKay 1992, "Bayesian interpolation"; Bishop 2006, "Pattern Recognition and Machine
//! Learning", 3.5): with few rows or features that say nothing about the height, `beta` shrinks to
//! 0 and every multiplier to 1 (the segment curves unchanged).
//!
//! Sufficient statistics: the weighted normal equations of the raw design `[1, x, z, z x]`
//! (Gram matrix, cross-products with the residual, its sum of squares). The standardised design is
//! a linear map of the raw one, so the standardisation (from the same sums) is applied when
//! solving, and the statistics of two logs add: `partial_fit` merges them (the old ones scaled
//! by `forget`). A past window's rows keep the `z` and `b` of the curves fitted when they were
//! added (an approximation: the curves move a little between refits). Rows are summed in fixed
//! chunks whose partial sums are added in chunk order, so the result does not depend on the thread
//! count.

use crate::control::Control;
use crate::error::{check_finite, check_len, CoreError, Result};
use crate::numeric::cholesky;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Candidate prior precisions of the height coefficients (in units of the residual variance).
pub const LAMBDAS: [f64; 10] = [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 1e4];
/// Prior precision of the baseline coefficients `gamma`.
pub const BASE_LAMBDA: f64 = 30.0;
/// Largest height multiplier.
pub const HEIGHT_MAX: f64 = 5.0;
/// Most features.
pub const MAX_FEATURES: usize = 256;
const ROWS: usize = 1 << 14;

const STATE_KIND: &str = "growthmachine.touchpoint.Height";
const STATE_VERSION: u32 = 1;

/// The height model: statistics of every log seen and the fit made from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Height {
    /// Features.
    pub k: usize,
    /// Weighted normal equations of the raw design `[1, x, z, z x]` (`p = 2 k + 2`): Gram
    /// matrix (`p * p`), cross-products with the residual (`p`), the residual's sum of squares.
    pub gram: Vec<f64>,
    pub cross: Vec<f64>,
    pub rss: f64,
    /// Standardisation of the features (over the rows seen, weighted).
    pub mean: Vec<f64>,
    pub sd: Vec<f64>,
    /// Height coefficients per standardised feature (`beta`) and the chosen precision.
    pub beta: Vec<f64>,
    pub lambda: f64,
    /// Baseline coefficients (`gamma`) and the calibration of the curves' height (`h0`).
    pub gamma: Vec<f64>,
    pub h0: f64,
}

fn p_of(k: usize) -> usize {
    2 * k + 2
}

/// The rows' statistics: `(gram, cross, rss)` of the raw design.
fn stats(
    x: &[f64],
    z: &[f64],
    r: &[f64],
    w: Option<&[f64]>,
    k: usize,
    ctl: &Control,
) -> Result<(Vec<f64>, Vec<f64>, f64)> {
    let n = z.len();
    let p = p_of(k);
    let parts = (0..n.div_ceil(ROWS))
        .into_par_iter()
        .map(|c| {
            ctl.check()?;
            let mut g = vec![0.0; p * p];
            let mut h = vec![0.0; p];
            let mut s = 0.0;
            let mut d = vec![0.0; p];
            for i in c * ROWS..((c + 1) * ROWS).min(n) {
                let wi = w.map_or(1.0, |w| w[i]);
                if wi == 0.0 {
                    continue;
                }
                d[0] = 1.0;
                d[k + 1] = z[i];
                for j in 0..k {
                    let xj = x[i * k + j];
                    d[1 + j] = xj;
                    d[k + 2 + j] = z[i] * xj;
                }
                for a in 0..p {
                    let da = wi * d[a];
                    h[a] += da * r[i];
                    for b in 0..=a {
                        g[a * p + b] += da * d[b];
                    }
                }
                s += wi * r[i] * r[i];
            }
            Ok((g, h, s))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut g = vec![0.0; p * p];
    let mut h = vec![0.0; p];
    let mut s = 0.0;
    for (gc, hc, sc) in parts {
        g.iter_mut().zip(&gc).for_each(|(a, b)| *a += b);
        h.iter_mut().zip(&hc).for_each(|(a, b)| *a += b);
        s += sc;
    }
    for a in 0..p {
        for b in 0..a {
            g[b * p + a] = g[a * p + b];
        }
    }
    Ok((g, h, s))
}

impl Height {
    /// Fits the rows (features `x`, row-major `n x k`; the curves' incremental conversion `z`;
    /// the residual `r = y - b - z`; optional weights `w >= 0`), adding the statistics of
    /// `previous` (scaled by `forget` in (0, 1]) if given.
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        previous: Option<&Height>,
        x: &[f64],
        k: usize,
        z: &[f64],
        r: &[f64],
        w: Option<&[f64]>,
        forget: f64,
        ctl: &Control,
    ) -> Result<Height> {
        if k == 0 || k > MAX_FEATURES {
            return Err(CoreError::invalid(
                "covariates",
                format!("must have 1 to {MAX_FEATURES} columns, got {k}"),
            ));
        }
        let n = z.len();
        check_len("covariates", x.len(), n * k, "rows x columns")?;
        check_len("residual", r.len(), n, "incremental")?;
        check_finite("covariates", x)?;
        check_finite("incremental", z)?;
        check_finite("residual", r)?;
        if let Some(w) = w {
            check_len("weight", w.len(), n, "incremental")?;
            if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(CoreError::invalid(
                    "weight",
                    format!("must be finite and >= 0, found {} at position {i}", w[i]),
                ));
            }
        }
        if !(forget.is_finite() && forget > 0.0 && forget <= 1.0) {
            return Err(CoreError::invalid(
                "forget",
                format!("must be in (0, 1], got {forget}"),
            ));
        }
        if let Some(p) = previous {
            if p.k != k {
                return Err(CoreError::invalid(
                    "covariates",
                    format!("has {k} columns; the model was fitted with {}", p.k),
                ));
            }
        }
        let (mut gram, mut cross, mut rss) = stats(x, z, r, w, k, ctl)?;
        if let Some(p) = previous {
            gram.iter_mut()
                .zip(&p.gram)
                .for_each(|(a, b)| *a += forget * b);
            cross
                .iter_mut()
                .zip(&p.cross)
                .for_each(|(a, b)| *a += forget * b);
            rss += forget * p.rss;
        }
        let mut h = Height {
            k,
            gram,
            cross,
            rss,
            mean: vec![0.0; k],
            sd: vec![1.0; k],
            beta: vec![0.0; k],
            lambda: LAMBDAS[LAMBDAS.len() - 1],
            gamma: vec![0.0; k],
            h0: 0.0,
        };
        h.solve(ctl)?;
        Ok(h)
    }

    /// The standardisation, then the ridge fit at every precision of [`LAMBDAS`], keeping the
    /// one of highest marginal likelihood (the first on ties). Without rows (or residual
    /// variance) every coefficient stays 0.
    fn solve(&mut self, ctl: &Control) -> Result<()> {
        let (k, p) = (self.k, p_of(self.k));
        let n = self.gram[0];
        let informed = n > 0.0 && self.rss > 0.0; // false for NaN too
        if !informed {
            return Ok(());
        }
        for j in 0..k {
            let m = self.gram[1 + j] / n;
            let v = self.gram[(1 + j) * p + 1 + j] / n - m * m;
            self.mean[j] = m;
            self.sd[j] = if v > 1e-12 * (1.0 + m * m) {
                v.sqrt()
            } else {
                1.0
            };
        }
        // Standardised design = raw design x t (p x p).
        let mut t = vec![0.0; p * p];
        t[0] = 1.0;
        t[(k + 1) * p + k + 1] = 1.0;
        for j in 0..k {
            let (m, s) = (self.mean[j], self.sd[j]);
            t[1 + j] = -m / s; // column 1 + j: (x_j - m) / s
            t[(1 + j) * p + 1 + j] = 1.0 / s;
            t[(k + 1) * p + k + 2 + j] = -m / s; // column k + 2 + j: z (x_j - m) / s
            t[(k + 2 + j) * p + k + 2 + j] = 1.0 / s;
        }
        let mut gt = vec![0.0; p * p]; // gram x t
        for a in 0..p {
            for b in 0..p {
                gt[a * p + b] = (0..p).map(|c| self.gram[a * p + c] * t[c * p + b]).sum();
            }
        }
        let mut gs = vec![0.0; p * p]; // t' gram t
        for a in 0..p {
            for b in 0..p {
                gs[a * p + b] = (0..p).map(|c| t[c * p + a] * gt[c * p + b]).sum();
            }
        }
        let hs: Vec<f64> = (0..p)
            .map(|a| (0..p).map(|c| t[c * p + a] * self.cross[c]).sum())
            .collect();
        let s2 = self.rss / n;
        let mut best: Option<(f64, f64, Vec<f64>)> = None;
        let mut l = vec![0.0; p * p];
        for &lam in LAMBDAS.iter() {
            ctl.check()?;
            let mut a = gs.clone();
            let mut log_prior = 0.0;
            for j in 0..k {
                a[(1 + j) * p + 1 + j] += BASE_LAMBDA;
                a[(k + 2 + j) * p + k + 2 + j] += lam;
                log_prior += BASE_LAMBDA.ln() + lam.ln();
            }
            // Intercepts: a tiny ridge keeps a segment-free log (z = 0) solvable.
            a[0] += 1e-9 * n;
            a[(k + 1) * p + k + 1] += 1e-9 * n;
            if !cholesky(&a, p, &mut l) {
                continue;
            }
            let logdet: f64 = (0..p).map(|i| 2.0 * l[i * p + i].ln()).sum();
            let c = crate::numeric::cholesky_solve(&a, p, &hs).unwrap_or_else(|| vec![0.0; p]);
            let fit: f64 = hs.iter().zip(&c).map(|(h, c)| h * c).sum();
            let ll = 0.5 * log_prior - 0.5 * logdet - (self.rss - fit) / (2.0 * s2);
            if ll.is_finite() && best.as_ref().is_none_or(|b| ll > b.0) {
                best = Some((ll, lam, c));
            }
        }
        if let Some((_, lam, c)) = best {
            self.lambda = lam;
            self.gamma = c[1..=k].to_vec();
            self.h0 = c[k + 1];
            self.beta = c[k + 2..].to_vec();
        }
        Ok(())
    }

    /// Each row's height multiplier `clamp(1 + s' beta, 0, HEIGHT_MAX)` (features row-major
    /// `n x k`, finite).
    pub fn predict(&self, x: &[f64], ctl: &Control) -> Result<Vec<f64>> {
        let k = self.k;
        if x.len() % k != 0 {
            return Err(CoreError::invalid(
                "covariates",
                format!("must have {k} columns (as fitted)"),
            ));
        }
        check_finite("covariates", x)?;
        let n = x.len() / k;
        let mut out = crate::error::try_zeroed("covariates", n)?;
        out.par_chunks_mut(ROWS)
            .enumerate()
            .try_for_each(|(c, o)| {
                ctl.check()?;
                for (j, v) in o.iter_mut().enumerate() {
                    let row = &x[(c * ROWS + j) * k..(c * ROWS + j + 1) * k];
                    let s: f64 = (0..k)
                        .map(|f| self.beta[f] * (row[f] - self.mean[f]) / self.sd[f])
                        .sum();
                    *v = (1.0 + s).clamp(0.0, HEIGHT_MAX);
                }
                Ok::<(), CoreError>(())
            })?;
        Ok(out)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::state::sealed::to_bytes(STATE_KIND, STATE_VERSION, self)
    }

    /// Reads state written by [`Height::to_bytes`], checking every table's shape.
    pub fn from_bytes(b: &[u8]) -> Result<Height> {
        let h: Height = crate::state::sealed::from_bytes(STATE_KIND, &[STATE_VERSION], b)?;
        let p = p_of(h.k);
        let ok = h.k > 0
            && h.k <= MAX_FEATURES
            && h.gram.len() == p * p
            && h.cross.len() == p
            && [&h.mean, &h.sd, &h.beta, &h.gamma]
                .iter()
                .all(|v| v.len() == h.k)
            && h.sd.iter().all(|s| s.is_finite() && *s > 0.0)
            && h.beta.iter().chain(&h.mean).all(|v| v.is_finite());
        if !ok {
            return Err(CoreError::State("height model is malformed".into()));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows with a feature that doubles the height for half the users: `beta` finds it.
    fn world(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        use rand::Rng;
        let mut rng = crate::rng::stream(seed, 11);
        let (mut x, mut z, mut r) = (vec![], vec![], vec![]);
        for _ in 0..n {
            let hi = rng.random::<f64>() < 0.5;
            let noise = rng.random::<f64>(); // an irrelevant feature
            let zi = 0.2 * rng.random::<f64>(); // the curve's gain at the row's arm
            let truth = 0.1 + zi * if hi { 1.5 } else { 0.5 };
            let y = if rng.random::<f64>() < truth {
                1.0
            } else {
                0.0
            };
            x.extend([hi as u8 as f64, noise]);
            z.push(zi);
            r.push(y - 0.1 - zi);
        }
        (x, z, r)
    }

    #[test]
    fn finds_the_feature_that_scales_the_height() {
        let (x, z, r) = world(200_000, 1);
        let h = Height::fit(None, &x, 2, &z, &r, None, 1.0, &Control::new()).unwrap();
        let w = h.predict(&[1.0, 0.5, 0.0, 0.5], &Control::new()).unwrap();
        assert!(
            (w[0] - 1.5).abs() < 0.15 && (w[1] - 0.5).abs() < 0.15,
            "{w:?}"
        );
        assert!(h.beta[1].abs() < 0.1, "irrelevant feature {:?}", h.beta);
    }

    #[test]
    fn shrinks_to_one_without_signal() {
        let (x, z, mut r) = world(2_000, 2);
        // Residuals unrelated to the features or the arms: pure noise.
        r.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = if (i * 7919) % 10 < 1 { 0.9 } else { -0.1 });
        let h = Height::fit(None, &x, 2, &z, &r, None, 1.0, &Control::new()).unwrap();
        let w = h.predict(&x, &Control::new()).unwrap();
        let spread = w.iter().fold(0.0f64, |m, v| m.max((v - 1.0).abs()));
        assert!(spread < 0.2, "lambda {} spread {spread}", h.lambda);
    }

    #[test]
    fn merged_statistics_equal_the_concatenation_and_threads_do_not_matter() {
        let (x, z, r) = world(50_000, 3);
        let cut = 20_000;
        let a = Height::fit(
            None,
            &x[..2 * cut],
            2,
            &z[..cut],
            &r[..cut],
            None,
            1.0,
            &Control::new(),
        )
        .unwrap();
        let ab = Height::fit(
            Some(&a),
            &x[2 * cut..],
            2,
            &z[cut..],
            &r[cut..],
            None,
            1.0,
            &Control::new(),
        )
        .unwrap();
        let all = Height::fit(None, &x, 2, &z, &r, None, 1.0, &Control::new()).unwrap();
        for (u, v) in ab.beta.iter().zip(&all.beta) {
            assert!((u - v).abs() < 1e-9);
        }
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let single =
            one.install(|| Height::fit(None, &x, 2, &z, &r, None, 1.0, &Control::new()).unwrap());
        assert_eq!(single, all);
        let bytes = all.to_bytes().unwrap();
        assert_eq!(Height::from_bytes(&bytes).unwrap(), all);
    }

    #[test]
    fn bad_input_names_the_argument() {
        let (x, z, r) = world(100, 4);
        let ctl = Control::new();
        let e = Height::fit(None, &x[..10], 2, &z, &r, None, 1.0, &ctl).unwrap_err();
        assert!(e.to_string().contains("covariates"), "{e}");
        let mut bad = x.clone();
        bad[3] = f64::NAN;
        let e = Height::fit(None, &bad, 2, &z, &r, None, 1.0, &ctl).unwrap_err();
        assert!(e.to_string().contains("covariates"), "{e}");
        let e = Height::fit(None, &x, 2, &z, &r, None, 0.0, &ctl).unwrap_err();
        assert!(e.to_string().contains("forget"), "{e}");
        let h = Height::fit(None, &x, 2, &z, &r, None, 1.0, &ctl).unwrap();
        let e = Height::fit(Some(&h), &x, 1, &z[..], &r, None, 1.0, &ctl);
        assert!(e.is_err());
        assert!(h.predict(&[1.0, 2.0, 3.0], &ctl).is_err());
    }
}
