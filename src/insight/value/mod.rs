//! Customer value models: BG/NBD (Fader, Hardie & Lee 2005) for the purchase process and
//! Gamma-Gamma (Fader & Hardie 2013) for spend, fitted by maximum likelihood.
//!
//! - Objective (as in the `lifetimes` package, so fits can be compared): the weighted mean negative
//!   log-likelihood plus an optional L2 penalty `penalizer * sum(s_i * p_i)^2` on the natural
//!   parameters, where `s = (1, 1/max(T), 1, 1)` for BG/NBD (lifetimes fits in time scaled by
//!   max(T) and penalises the scaled alpha) and `s = 1` for Gamma-Gamma.
//! - Optimiser: damped Newton on the log-parameters with the analytic gradient and Hessian,
//!   Levenberg-style damping when the Hessian is not positive definite, a step cap and a
//!   backtracking Armijo line search. Standard errors come from the analytic Hessian at the
//!   optimum (observed information, delta method to the natural parameters).
//! - Data are compressed before fitting: rows are mapped to tables of distinct x, t_x and T values,
//!   exactly identical rows are merged (their weights add up), terms that depend on x only are
//!   summed per distinct x, and zero-repeat customers per distinct T. Nothing is rounded.
//! - Every sum runs over fixed chunks of rows reduced in chunk order: results do not depend on the
//!   thread count.
//!
//! Files: [`optim`] (the Newton optimiser, the covariance at the optimum and the [`Likelihood`]
//! trait that writes the penalised objective and the fit once for both models), [`compress`] (row
//! compression), [`bgnbd`] (BG/NBD likelihood and predictions), [`gammagamma`] (Gamma-Gamma
//! likelihood and expected spend) and [`clv`] (discounted customer lifetime value).

use crate::control::Control;
use crate::error::Result;
use serde::{Deserialize, Serialize};

pub mod bgnbd;
pub mod clv;
mod compress;
pub mod gammagamma;
pub mod optim;

pub use bgnbd::{
    bg_expected_new, bg_predict, fit_bgnbd, simulate_bgnbd, simulate_bgnbd_ctl, BgData, BgPredict,
};
pub use clv::clv;
pub use gammagamma::{fit_gammagamma, gg_expected_spend, GgData};
pub use optim::Likelihood;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FitResult {
    pub params: Vec<f64>,
    /// Full (weighted sum, not mean) log-likelihood at `params`, without the penalty.
    pub log_likelihood: f64,
    /// Covariance of the natural parameters (row-major k x k), from the penalised objective.
    pub covariance: Vec<f64>,
    pub std_errors: Vec<f64>,
    pub n_iter: usize,
    pub converged: bool,
    /// Number of distinct rows after compression, and the total weight.
    pub n_unique: usize,
    pub total_weight: f64,
}

#[derive(Clone, Copy, Debug)]
pub struct FitOptions {
    pub penalizer: f64,
    pub max_iter: usize,
    /// Convergence: max |gradient| of the mean objective in log-parameters.
    pub gtol: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            penalizer: 0.0,
            max_iter: 200,
            gtol: 1e-10,
        }
    }
}

/// Rows above which the fit starts from a fit on a systematic subsample (every k-th row, about
/// `SUBSAMPLE` rows): the full-data Newton iterations then start near the optimum. The answer is
/// the optimum of the full data either way; only the number of full passes changes.
const WARM_START_ROWS: usize = 200_000;
const SUBSAMPLE: usize = 50_000;

/// Fits `data` (of `n` input rows); above [`WARM_START_ROWS`] rows, from the optimum of
/// `subsample(k)`, the model of every k-th row (`None` or a failed fit: from the default start).
fn fit_warm<L: Likelihood>(
    data: L,
    n: usize,
    subsample: impl FnOnce(usize) -> Result<L>,
    opt: &FitOptions,
    ctl: &Control,
) -> Result<FitResult> {
    let mut start = None;
    if n > WARM_START_ROWS {
        if let Ok(sub) = subsample(n / SUBSAMPLE) {
            if let Ok(f) = sub.fit(opt, ctl) {
                start = Some(f.params);
            }
        }
    }
    ctl.check()?;
    data.fit_from(opt, ctl, start.as_deref())
}

#[cfg(test)]
mod tests;
