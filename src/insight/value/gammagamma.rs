//! Gamma-Gamma (Fader & Hardie 2013): spend per transaction. The log-likelihood with its
//! analytic gradient and Hessian on the compressed rows (fitted through [`Likelihood`], penalty
//! scales `s = 1`) and the posterior expected spend.

use super::compress::stride_sample;
use super::optim::Likelihood;
use super::{fit_warm, FitOptions, FitResult};
use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::parallel::CHUNK;
use crate::special::{digamma, lgamma, trigamma};
use rayon::prelude::*;

/// Compressed Gamma-Gamma data.
pub struct GgData {
    pub(super) xs: Vec<f64>,
    pub(super) wx: Vec<f64>,
    /// per distinct row: x index, s = x * m
    pub(super) rows: Vec<(u32, f64)>,
    pub(super) rw: Vec<f64>,
    pub(super) s_lnm: f64,
    pub(super) s_xlnm: f64,
    pub(super) wsum: f64,
}

impl Likelihood for GgData {
    fn loglik(&self, p: &[f64], ctl: &Control) -> Result<(f64, Vec<f64>, Vec<f64>)> {
        let (pp, q, v) = (p[0], p[1], p[2]);
        let mut ll = 0.0;
        let mut g = [0.0f64; 3];
        let mut h = [0.0f64; 9];
        let (lgq, dgq, tgq) = (lgamma(q), digamma(q), trigamma(q));
        for (j, &x) in self.xs.iter().enumerate() {
            let w = self.wx[j];
            if w == 0.0 {
                continue;
            }
            let (u, z) = (pp * x + q, pp * x);
            ll += w * (lgamma(u) - lgamma(z) - lgq + z * x.ln());
            let (du, dz) = (digamma(u), digamma(z));
            let (tu, tz) = (trigamma(u), trigamma(z));
            g[0] += w * (x * du - x * dz + x * x.ln());
            g[1] += w * (du - dgq);
            h[0] += w * x * x * (tu - tz);
            h[1] += w * x * tu;
            h[4] += w * (tu - tgq);
        }
        let wsum = self.wsum;
        ll += q * v.ln() * wsum + pp * self.s_xlnm - self.s_lnm;
        g[0] += self.s_xlnm;
        g[1] += wsum * v.ln();
        g[2] += wsum * q / v;
        h[5] += wsum / v;
        h[8] += -wsum * q / (v * v);
        let n = self.rows.len();
        let parts: Vec<Result<[f64; 6]>> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                ctl.check()?;
                let mut s = [0.0f64; 6];
                let hi = (c * CHUNK + CHUNK).min(n);
                for k in c * CHUNK..hi {
                    let (jx, sv) = self.rows[k];
                    let w = self.rw[k];
                    let x = self.xs[jx as usize];
                    let l = (sv + v).ln();
                    let iv = 1.0 / (sv + v);
                    s[0] += w * x * l;
                    s[1] += w * l;
                    s[2] += w * x * iv;
                    s[3] += w * iv;
                    s[4] += w * x * iv * iv;
                    s[5] += w * iv * iv;
                }
                Ok(s)
            })
            .collect();
        let mut s = [0.0; 6];
        for part in parts {
            let t = part?;
            for i in 0..6 {
                s[i] += t[i];
            }
        }
        ll -= pp * s[0] + q * s[1];
        g[0] -= s[0];
        g[1] -= s[1];
        g[2] -= pp * s[2] + q * s[3];
        h[2] -= s[2];
        h[5] -= s[3];
        h[8] += pp * s[4] + q * s[5];
        for i in 0..3 {
            for j in 0..i {
                h[i * 3 + j] = h[j * 3 + i];
            }
        }
        Ok((ll, g.to_vec(), h.to_vec()))
    }

    fn scales(&self) -> Vec<f64> {
        vec![1.0; 3]
    }

    /// p = 1, q = 2, gamma = mean spend.
    fn start(&self) -> Vec<f64> {
        let mean_m = self
            .rows
            .iter()
            .zip(&self.rw)
            .map(|(&(jx, s), &w)| w * s / self.xs[jx as usize])
            .sum::<f64>()
            / self.wsum;
        vec![0.0, 2f64.ln(), mean_m.max(1e-12).ln()]
    }

    fn total_weight(&self) -> f64 {
        self.wsum
    }

    fn n_unique(&self) -> usize {
        self.rows.len()
    }
}

impl GgData {
    /// The log-likelihood sum at natural parameters `p` = (p, q, gamma).
    pub fn log_likelihood(&self, p: &[f64], ctl: &Control) -> Result<f64> {
        Ok(self.loglik(p, ctl)?.0)
    }
}

/// Fits Gamma-Gamma to (frequency, monetary) rows with optional weights.
pub fn fit_gammagamma(
    x: &[f64],
    m: &[f64],
    w: Option<&[f64]>,
    opt: &FitOptions,
    ctl: &Control,
) -> Result<FitResult> {
    let data = GgData::new(x, m, w, ctl)?;
    let subsample = |k: usize| {
        let ws = w.map(|w| stride_sample(w, k));
        GgData::new(
            &stride_sample(x, k),
            &stride_sample(m, k),
            ws.as_deref(),
            ctl,
        )
    };
    fit_warm(data, x.len(), subsample, opt, ctl)
}

/// Expected mean spend per transaction given the history (Gamma-Gamma posterior mean).
/// Needs q > 1; customers with frequency 0 get the population mean p * gamma / (q - 1).
pub fn gg_expected_spend(p: &[f64], x: &[f64], m: &[f64]) -> Result<Vec<f64>> {
    if p.len() != 3 || p.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(CoreError::invalid(
            "params",
            "Gamma-Gamma needs 3 positive finite params p, q, gamma",
        ));
    }
    let (pp, q, v) = (p[0], p[1], p[2]);
    if q <= 1.0 {
        return Err(CoreError::invalid(
            "params",
            format!("expected spend needs q > 1, the fitted q is {q} (add a penalizer)"),
        ));
    }
    crate::error::check_len("monetary", m.len(), x.len(), "frequency")?;
    crate::error::check_finite("monetary", m)?;
    let pop = v * pp / (q - 1.0);
    Ok(x.par_iter()
        .zip(m.par_iter())
        .with_min_len(CHUNK)
        .map(|(&xi, &mi)| {
            let wgt = pp * xi / (pp * xi + q - 1.0);
            (1.0 - wgt) * pop + wgt * mi
        })
        .collect())
}
