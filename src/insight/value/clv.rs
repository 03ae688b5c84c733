//! Discounted customer lifetime value from a BG/NBD fit and a spend per purchase.

use super::bgnbd::{bg_expected_one, check_bg_params};
use super::compress::per_distinct;
use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::parallel::CHUNK;
use rayon::prelude::*;

/// Discounted customer lifetime value as in `lifetimes`' `customer_lifetime_value`: for steps
/// i = 1..=horizon of `period` days, spend x (E[purchases by i*period] - E[by (i-1)*period]) /
/// (1 + discount)^i, with spend per purchase `spend` (usually the Gamma-Gamma expectation).
#[allow(clippy::too_many_arguments)]
pub fn clv(
    bg: &[f64],
    x: &[f64],
    t: &[f64],
    big_t: &[f64],
    spend: &[f64],
    horizon: usize,
    period: f64,
    discount: f64,
    ctl: &Control,
) -> Result<Vec<f64>> {
    check_bg_params(bg)?;
    crate::error::check_len("spend", spend.len(), x.len(), "frequency")?;
    if !(period > 0.0 && period.is_finite()) {
        return Err(CoreError::invalid("period", "must be > 0"));
    }
    if !(discount >= 0.0 && discount.is_finite()) {
        return Err(CoreError::invalid(
            "discount_rate",
            format!("must be finite and >= 0, got {discount}"),
        ));
    }
    // `horizon` sizes the discount factors: checked before allocating (never an abort).
    let bytes = crate::error::checked_bytes("horizon", "the discount factors", Some(horizon), 8)?;
    crate::error::check_fits_memory("horizon", bytes)?;
    let factors: Vec<f64> = (1..=horizon)
        .map(|i| 1.0 / (1.0 + discount).powf(i as f64))
        .collect();
    // discounted sum of expected purchase increments per distinct (x, t_x, T)
    let mut units = per_distinct(
        x,
        t,
        big_t,
        ctl,
        |xi, ti, tti| {
            let mut prev = 0.0;
            let mut acc = 0.0;
            for (i, f) in factors.iter().enumerate() {
                let e = bg_expected_one(bg, (i + 1) as f64 * period, xi, ti, tti);
                acc += (e - prev) * f;
                prev = e;
            }
            vec![acc]
        },
        1,
    )?
    .pop()
    .unwrap();
    units
        .par_iter_mut()
        .zip(spend.par_iter())
        .with_min_len(CHUNK)
        .for_each(|(u, s)| *u *= s);
    Ok(units)
}
