//! `planning` core (pure Rust, no PyO3 types): incremental-effect (uplift) models for several
//! treatments against one control.
//!
//! - [`forest`]: the honest multi-treatment uplift forest (`gm.planning.uplift.UpliftForest`),
//!   built from [`binning`] (quantile bins, u8 codes), [`tree`] (growing one tree on histograms)
//!   and [`estimate`] (its honest leaf effects), [`pairs`] (its estimates for every (user, task)
//!   pair when tasks are described by features, each set of users no split tells apart scored
//!   once: [`dedup`]);
//! - [`features`]: the planner's feature matrix from its source columns;
//! - [`calmap`] and [`kept`]: the planner's calibration maps and, in one pass, its allocation
//!   candidates (`Planner.candidates`);
//! - [`rank`]: the one sort behind the uplift curves of `gm.planning.metrics`;
//! - [`cell`]: difference in means per (group, treatment) with empirical-Bayes shrinkage along a
//!   hierarchy of groupings (`gm.planning.uplift.CellUplift`).
//!
//! Both models estimate an effect the same way, with the helpers of this file: per-arm weighted
//! sums ([`ArmSums`]) give a raw difference of means with its sampling variance ([`raw_effect`]),
//! which is then shrunk toward a parent estimate ([`shrink`]): the parent node of a leaf in the
//! forest, the coarser group of a cell.
//!
//! Treatments are coded 0 = control and 1..=T; estimates are stored treatment-major per unit
//! (`est[unit * T + (t - 1)]`).

pub mod binning;
pub mod calmap;
pub mod cell;
pub mod dedup;
pub mod estimate;
pub mod features;
pub mod forest;
pub mod kept;
pub mod pairs;
pub mod rank;
pub mod tree;

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// Most treatments a model takes (arms are stored as u8: control + 255 treatments).
pub const MAX_TREATMENTS: usize = 255;

/// Weighted sums of one arm in one unit (node, group): rows, Σw, Σw², Σwy, Σwy².
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmSums {
    pub n: f64,
    pub w: f64,
    pub ww: f64,
    pub wy: f64,
    pub wyy: f64,
}

impl ArmSums {
    #[inline]
    pub fn add(&mut self, w: f64, y: f64) {
        let wy = w * y;
        self.n += 1.0;
        self.w += w;
        self.ww += w * w;
        self.wy += wy;
        self.wyy += wy * y;
    }

    #[inline]
    pub fn merge(&mut self, o: &ArmSums) {
        self.n += o.n;
        self.w += o.w;
        self.ww += o.ww;
        self.wy += o.wy;
        self.wyy += o.wyy;
    }

    /// Weighted mean of y (meaningful when `w > 0`).
    #[inline]
    pub fn mean(&self) -> f64 {
        self.wy / self.w
    }

    /// Weighted variance of one row's y, population form (>= 0; 0 when `w <= 0`).
    pub fn var(&self) -> f64 {
        if self.w <= 0.0 {
            return 0.0;
        }
        let m = self.mean();
        (self.wyy / self.w - m * m).max(0.0)
    }

    /// Kish's effective number of rows `(Σw)² / Σw²` (the row count when unweighted).
    #[inline]
    pub fn n_eff(&self) -> f64 {
        if self.ww > 0.0 {
            self.w * self.w / self.ww
        } else {
            0.0
        }
    }
}

/// An estimate with its standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    pub est: f64,
    pub se: f64,
}

/// A raw difference of means `mean_t - mean_c` with its sampling variance and the effective size
/// of the comparison `n_e = (1/n_t + 1/n_c)^-1` (Kish sizes), or `None` when an arm has fewer
/// than `min_rows` rows or no weight.
///
/// Each arm's row variance is its weighted variance plus one pseudo-row at the parent's variance
/// (`var + var_parent / n_eff`): finite and positive for an arm of one row or of constant y (an
/// all-zero conversion arm), and equal to the plain estimate as the arm grows. The variance of the
/// arm's mean is that over `n_eff` (exact for weighted means of independent rows).
pub fn raw_effect(
    t: &ArmSums,
    c: &ArmSums,
    var_t_parent: f64,
    var_c_parent: f64,
    min_rows: f64,
) -> Option<(f64, f64, f64)> {
    if t.n < min_rows.max(1.0) || c.n < min_rows.max(1.0) || t.w <= 0.0 || c.w <= 0.0 {
        return None;
    }
    let (nt, nc) = (t.n_eff(), c.n_eff());
    let vt = t.var() + var_t_parent / nt;
    let vc = c.var() + var_c_parent / nc;
    let se2 = vt / nt + vc / nc;
    Some((t.mean() - c.mean(), se2, 1.0 / (1.0 / nt + 1.0 / nc)))
}

/// Row variance of an arm smoothed toward its parent's with one pseudo-row (see [`raw_effect`]).
pub fn smoothed_var(a: &ArmSums, var_parent: f64) -> f64 {
    let ne = a.n_eff();
    if ne > 0.0 {
        a.var() + var_parent / ne
    } else {
        var_parent
    }
}

/// Shrinks a raw effect toward its parent: `w * raw + (1 - w) * parent` with
/// `w = n_e / (n_e + k)` (`k`: prior strength in rows; 0 keeps the raw estimate, infinity the
/// parent's). This is the normal-normal posterior mean when the unit's true effect is drawn around
/// the parent's with variance `tau^2 = sigma^2 / k` (Morris 1983): `w = tau^2 / (tau^2 + s^2)`
/// with `s^2 = sigma^2 / n_e`. The standard error is the posterior one, `w * s^2`, plus the
/// parent's own uncertainty carried by the weight `(1 - w)^2` (the covariance between a unit and
/// its parent is ignored). A missing raw estimate gives the parent's.
pub fn shrink(raw: Option<(f64, f64, f64)>, k: f64, parent: Effect) -> Effect {
    let Some((est, se2, ne)) = raw else {
        return parent;
    };
    let w = if k <= 0.0 {
        1.0
    } else if !k.is_finite() {
        0.0
    } else {
        ne / (ne + k)
    };
    Effect {
        est: w * est + (1.0 - w) * parent.est,
        se: (w * se2 + (1.0 - w) * (1.0 - w) * parent.se * parent.se).sqrt(),
    }
}

/// Arms of the whole input: per-arm sums, checked so that every arm 0..=T has rows and weight.
pub fn global_sums(
    arm: &[u8],
    y: &[f64],
    w: Option<&[f64]>,
    n_treatments: usize,
) -> Result<Vec<ArmSums>> {
    let mut s = vec![ArmSums::default(); n_treatments + 1];
    for i in 0..arm.len() {
        s[arm[i] as usize].add(w.map_or(1.0, |w| w[i]), y[i]);
    }
    check_arms(&s)?;
    Ok(s)
}

/// Every arm 0..=T has rows and weight.
pub fn check_arms(s: &[ArmSums]) -> Result<()> {
    for (a, x) in s.iter().enumerate() {
        if x.n == 0.0 {
            return Err(CoreError::invalid(
                "treatment",
                format!("arm {a} has no rows (arms must be coded 0 = control, 1..T without gaps)"),
            ));
        }
        if x.w <= 0.0 {
            return Err(CoreError::invalid(
                "sample_weight",
                format!("arm {a} has zero total weight"),
            ));
        }
    }
    Ok(())
}

/// Global effects (the root of every hierarchy): the raw difference of means per treatment, each
/// arm's variance smoothed toward the pooled variance of y.
pub fn global_effects(s: &[ArmSums]) -> (Vec<Effect>, Vec<f64>) {
    let mut all = ArmSums::default();
    for a in s {
        all.merge(a);
    }
    let pooled = all.var();
    let vars: Vec<f64> = s.iter().map(|a| smoothed_var(a, pooled)).collect();
    let eff = (1..s.len())
        .map(|t| {
            let (est, se2, _) =
                raw_effect(&s[t], &s[0], pooled, pooled, 1.0).expect("checked arms");
            Effect {
                est,
                se: se2.sqrt(),
            }
        })
        .collect();
    (eff, vars)
}

/// Converts treatment codes to arms (u8), checking `0 <= t <= n_treatments`.
pub fn arms_of(treatment: &[i64], n_treatments: usize) -> Result<Vec<u8>> {
    if n_treatments == 0 || n_treatments > MAX_TREATMENTS {
        return Err(CoreError::invalid(
            "treatment",
            format!("needs 1 to {MAX_TREATMENTS} treatments, got {n_treatments}"),
        ));
    }
    if let Some(i) = treatment
        .iter()
        .position(|&t| t < 0 || t as usize > n_treatments)
    {
        return Err(CoreError::invalid(
            "treatment",
            format!(
                "must be coded 0 = control and 1..{n_treatments}, found {} at position {i}",
                treatment[i]
            ),
        ));
    }
    Ok(treatment.iter().map(|&t| t as u8).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_effect_is_the_difference_of_means() {
        let mut t = ArmSums::default();
        let mut c = ArmSums::default();
        for y in [1.0, 2.0, 3.0] {
            t.add(1.0, y);
        }
        for y in [0.0, 1.0] {
            c.add(1.0, y);
        }
        let (est, se2, ne) = raw_effect(&t, &c, 0.0, 0.0, 1.0).unwrap();
        assert!((est - 1.5).abs() < 1e-12);
        // population variances 2/3 and 1/4, over 3 and 2 rows
        assert!((se2 - (2.0 / 9.0 + 1.0 / 8.0)).abs() < 1e-12);
        assert!((ne - 1.2).abs() < 1e-12);
        assert!(raw_effect(&t, &c, 0.0, 0.0, 3.0).is_none());
        let p = Effect { est: 0.5, se: 0.1 };
        assert_eq!(shrink(Some((est, se2, ne)), 0.0, p).est, est);
        assert_eq!(shrink(None, 1.0, p), p);
        let half = shrink(Some((est, se2, ne)), ne, p);
        assert!((half.est - 1.0).abs() < 1e-12);
    }

    #[test]
    fn arms_are_checked() {
        assert!(arms_of(&[0, 1, 2], 2).is_ok());
        let e = arms_of(&[0, 3], 2).unwrap_err();
        assert!(e.to_string().starts_with("treatment:"), "{e}");
        let e = global_sums(&[0, 2], &[1.0, 2.0], None, 2).unwrap_err();
        assert!(e.to_string().contains("arm 1 has no rows"), "{e}");
    }
}
