//! The fatigue load of `n` exposures laid out over a window: the opt-out's exposure to fatigue
//! when every touch carries its own hazard `a + d F` with `F` the user's decayed number of earlier
//! touches (the form of the world's per-touch hazard `base (1 + k F)`).
//!
//! Over a window of `D` days with touches on days `t_1 <= ... <= t_n` (0-based from the window's
//! start), fatigue halving every `halflife` days and the user arriving with prior fatigue `f`:
//!
//! `Lambda(n | f) = sum_j (a + d F_j) = a n + d (W(n) + f P(n))`, with the within-window load
//! `W(n) = sum_j sum_{i < j} 2^(-(t_j - t_i) / halflife)` and the prior-fatigue weight
//! `P(n) = sum_j 2^(-t_j / halflife)` (touches of one day come one after the other, without
//! decay between them).
//!
//! The touches' days are those of the planner's layout (`plan::lay_out`): `n / D` every day and
//! one more on the `n % D` evenly spaced days `floor(k D / r)` rotated by the user's offset. The
//! users of a level take the offsets `0..D` in turn, so the loads here are averaged over the `D`
//! rotations. Without a layout (`None`, states written before it) the load is the quadratic
//! form `W = n^2`, `P = 2 n` (the increments of `a n + d n^2`).

use super::*;
use crate::touchpoint::plan::{user_days, Layout};

/// How the exposures of a log were laid out: over `days` days by the planner's layout, with
/// fatigue halving every `halflife` days.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TouchLayout {
    pub days: u32,
    pub halflife: f64,
}

/// Longest window a layout may span (the planner's horizon is at most a year).
pub const MAX_LAYOUT_DAYS: u32 = 366;

impl TouchLayout {
    pub fn validate(&self) -> Result<()> {
        if self.days == 0 || self.days > MAX_LAYOUT_DAYS {
            return Err(CoreError::invalid(
                "horizon_days",
                format!("must be in 1..={MAX_LAYOUT_DAYS}, got {}", self.days),
            ));
        }
        if !(self.halflife.is_finite() && self.halflife > 0.0) {
            return Err(CoreError::invalid(
                "fatigue_halflife",
                format!("must be finite and > 0, got {}", self.halflife),
            ));
        }
        Ok(())
    }

    /// `(W(n), P(n))` of `n` exposures (see the module docs), averaged over the rotations.
    pub fn loads(&self, n: u32) -> (f64, f64) {
        if n == 0 {
            return (0.0, 0.0);
        }
        let d = self.days;
        let decay = 0.5f64.powf(1.0 / self.halflife);
        let rotations = if n % d == 0 { 1 } else { d };
        let mut per_day = vec![0u32; d as usize];
        let (mut w, mut p) = (0.0, 0.0);
        for offset in 0..rotations {
            let lay = Layout {
                offset: offset as u16,
                consecutive: false,
            };
            user_days(n, lay, d, &mut per_day);
            let (mut f, mut weight) = (0.0f64, 1.0f64);
            for &m in &per_day {
                if m > 0 {
                    let m = m as f64;
                    w += m * f + 0.5 * m * (m - 1.0);
                    p += m * weight;
                    f += m;
                }
                f *= decay;
                weight *= decay;
            }
        }
        (w / rotations as f64, p / rotations as f64)
    }

    /// Loads of the levels `0..n_levels`.
    pub(super) fn table(&self, n_levels: usize) -> Vec<(f64, f64)> {
        (0..n_levels).map(|l| self.loads(l as u32)).collect()
    }
}

/// The quadratic load of a model without a layout.
#[inline]
pub(super) fn quadratic(n: f64) -> (f64, f64) {
    (n * n, 2.0 * n)
}

/// Loads at fractional exposures: linear between the integer levels around `n` (`table[l]` for
/// the levels it holds, NaN or beyond it: computed).
pub(super) fn loads_at(layout: Option<&TouchLayout>, table: &[(f64, f64)], n: f64) -> (f64, f64) {
    let Some(lay) = layout else {
        return quadratic(n);
    };
    let at = |l: u64| -> (f64, f64) {
        match table.get(l as usize) {
            Some(v) if !v.0.is_nan() => *v,
            _ => lay.loads(l.min(u32::MAX as u64) as u32),
        }
    };
    let lo = n.floor();
    let x = at(lo as u64);
    let t = n - lo;
    if t <= 0.0 {
        return x;
    }
    let y = at(lo as u64 + 1);
    (x.0 + t * (y.0 - x.0), x.1 + t * (y.1 - x.1))
}
