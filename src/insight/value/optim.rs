//! The optimiser shared by the value models: damped Newton on the log-parameters with the
//! analytic gradient and Hessian, the covariance of the natural parameters at the optimum, and the
//! [`Likelihood`] trait through which both models get their penalised objective, their fit and
//! their log-likelihood from this one place.

use super::{FitOptions, FitResult};
use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::numeric::{cholesky_solve, invert_spd};

/// Objective in log-parameters: returns (f, gradient, Hessian row-major) or None if not finite.
pub type Point = Option<(f64, Vec<f64>, Vec<f64>)>;
type Eval<'a> = dyn Fn(&[f64]) -> Result<Point> + Sync + 'a;

/// A value model on compressed data: it gives its log-likelihood with gradient and Hessian in
/// natural parameters, the scales of its penalty and its starting point; the penalised mean
/// objective in log-parameters, the fit and the covariance are written once, here.
pub trait Likelihood: Sync {
    /// Log-likelihood sum, gradient and Hessian (row-major `k x k`) at natural parameters `p`.
    fn loglik(&self, p: &[f64], ctl: &Control) -> Result<(f64, Vec<f64>, Vec<f64>)>;
    /// `s` of the penalty `penalizer * sum(s_i * p_i)^2`.
    fn scales(&self) -> Vec<f64>;
    /// The default starting point of the fit, in log-parameters.
    fn start(&self) -> Vec<f64>;
    /// Total weight of the rows.
    fn total_weight(&self) -> f64;
    /// Number of distinct rows after compression.
    fn n_unique(&self) -> usize;

    /// The penalty `penalizer * sum(s_i * p_i)^2` at natural parameters `p`.
    fn penalty(&self, p: &[f64], pen: f64) -> f64 {
        let s = self.scales();
        pen * (0..p.len()).map(|i| (s[i] * p[i]).powi(2)).sum::<f64>()
    }

    /// Penalised mean objective in log-parameters.
    fn objective(&self, theta: &[f64], pen: f64, ctl: &Control) -> Result<Point> {
        let p: Vec<f64> = theta.iter().map(|t| t.exp()).collect();
        if p.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return Ok(None);
        }
        let (ll, g, h) = self.loglik(&p, ctl)?;
        if !ll.is_finite() || g.iter().any(|v| !v.is_finite()) || h.iter().any(|v| !v.is_finite()) {
            return Ok(None);
        }
        let (s, k) = (self.scales(), p.len());
        let w = self.total_weight();
        let mut f = -ll / w;
        let mut gp: Vec<f64> = g.iter().map(|v| -v / w).collect();
        let mut hp: Vec<f64> = h.iter().map(|v| -v / w).collect();
        for i in 0..k {
            f += pen * (s[i] * p[i]).powi(2);
            gp[i] += 2.0 * pen * s[i] * s[i] * p[i];
            hp[i * k + i] += 2.0 * pen * s[i] * s[i];
        }
        let (gt, ht) = to_log_space(&p, &gp, &hp);
        Ok(Some((f, gt, ht)))
    }

    fn fit(&self, opt: &FitOptions, ctl: &Control) -> Result<FitResult> {
        self.fit_from(opt, ctl, None)
    }

    /// Fits from natural parameters `start` (default: [`Likelihood::start`]).
    fn fit_from(
        &self,
        opt: &FitOptions,
        ctl: &Control,
        start: Option<&[f64]>,
    ) -> Result<FitResult> {
        if !(opt.penalizer >= 0.0 && opt.penalizer.is_finite()) {
            return Err(CoreError::invalid("penalizer", "must be finite and >= 0"));
        }
        let eval = |th: &[f64]| self.objective(th, opt.penalizer, ctl);
        let theta0 = match start {
            Some(p) => p.iter().map(|v| v.ln()).collect(),
            None => self.start(),
        };
        let out = newton(&eval, theta0, opt, ctl)?;
        let (n_iter, converged) = (out.n_iter, out.converged);
        let p: Vec<f64> = out.theta.iter().map(|t| t.exp()).collect();
        let w = self.total_weight();
        let (cov, se) = covariance(&p, &out.h, w);
        // the objective is -LL / W + penalty: recover the full log-likelihood without a pass
        let pen: f64 = self.penalty(&p, opt.penalizer);
        Ok(FitResult {
            log_likelihood: -(out.f - pen) * w,
            params: p,
            covariance: cov,
            std_errors: se,
            n_iter,
            converged,
            n_unique: self.n_unique(),
            total_weight: w,
        })
    }
}

/// Converts (f, g_p, H_p) in natural parameters p = exp(theta) to theta.
fn to_log_space(p: &[f64], g: &[f64], h: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let k = p.len();
    let gt: Vec<f64> = (0..k).map(|i| g[i] * p[i]).collect();
    let mut ht = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            ht[i * k + j] = h[i * k + j] * p[i] * p[j];
        }
        ht[i * k + i] += gt[i];
    }
    (gt, ht)
}

struct NewtonOut {
    theta: Vec<f64>,
    n_iter: usize,
    converged: bool,
    /// objective and log-space Hessian at `theta`
    f: f64,
    h: Vec<f64>,
}

/// Damped Newton minimisation of `eval` from `theta0`.
fn newton(eval: &Eval<'_>, theta0: Vec<f64>, opt: &FitOptions, ctl: &Control) -> Result<NewtonOut> {
    let k = theta0.len();
    let mut theta = theta0;
    let (mut f, mut g, mut h) = eval(&theta)?.ok_or_else(|| {
        CoreError::Internal("the likelihood is not finite at the starting point".into())
    })?;
    let mut lambda = 0.0f64;
    for it in 0..opt.max_iter {
        ctl.check()?;
        let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if gmax < opt.gtol {
            return Ok(NewtonOut {
                theta,
                n_iter: it,
                converged: true,
                f,
                h,
            });
        }
        let mut accepted = false;
        for _attempt in 0..30 {
            let mut hd = h.clone();
            let scale = (0..k).map(|i| h[i * k + i].abs()).fold(1e-12f64, f64::max);
            for i in 0..k {
                hd[i * k + i] += lambda * scale;
            }
            let neg: Vec<f64> = g.iter().map(|v| -v).collect();
            let d = match cholesky_solve(&hd, k, &neg) {
                Some(d) if d.iter().all(|v| v.is_finite()) => d,
                _ => {
                    lambda = if lambda == 0.0 { 1e-6 } else { lambda * 10.0 };
                    continue;
                }
            };
            let mut d = d;
            let dmax = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            if dmax > 2.0 {
                for v in d.iter_mut() {
                    *v *= 2.0 / dmax;
                }
            }
            let slope: f64 = d.iter().zip(&g).map(|(a, b)| a * b).sum();
            if lambda == 0.0 && -slope < 1e-15 * f.abs().max(1.0) && slope <= 0.0 {
                // Newton decrement below rounding of the objective: at the optimum (the
                // remaining step changes the objective by less than its rounding error).
                return Ok(NewtonOut {
                    theta,
                    n_iter: it,
                    converged: true,
                    f,
                    h,
                });
            }
            if slope >= 0.0 {
                lambda = if lambda == 0.0 { 1e-6 } else { lambda * 10.0 };
                continue;
            }
            let mut step = 1.0;
            for _ in 0..40 {
                let cand: Vec<f64> = theta.iter().zip(&d).map(|(t, v)| t + step * v).collect();
                if let Some((fc, gc, hc)) = eval(&cand)? {
                    if fc <= f + 1e-4 * step * slope || (fc <= f && gmax < 1e3 * opt.gtol) {
                        theta = cand;
                        let tiny = (f - fc).abs() <= 1e-16 * f.abs().max(1.0);
                        f = fc;
                        g = gc;
                        h = hc;
                        accepted = true;
                        if tiny {
                            let gm = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                            if gm < 1e3 * opt.gtol {
                                return Ok(NewtonOut {
                                    theta,
                                    n_iter: it + 1,
                                    converged: true,
                                    f,
                                    h,
                                });
                            }
                        }
                        break;
                    }
                }
                step *= 0.5;
            }
            if accepted {
                lambda = if lambda > 0.0 { lambda * 0.1 } else { 0.0 };
                if lambda < 1e-9 {
                    lambda = 0.0;
                }
                break;
            }
            lambda = if lambda == 0.0 { 1e-6 } else { lambda * 10.0 };
        }
        if !accepted {
            // no descent possible: at the optimum up to rounding
            let gm = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            return Ok(NewtonOut {
                theta,
                n_iter: it,
                converged: gm < 1e-6,
                f,
                h,
            });
        }
    }
    let gm = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    Ok(NewtonOut {
        theta,
        n_iter: opt.max_iter,
        converged: gm < opt.gtol * 1e3,
        f,
        h,
    })
}

/// Standard errors and covariance of natural parameters from the log-space Hessian of the mean
/// objective (times the total weight): cov_p = diag(p) (W H_theta)^-1 diag(p).
fn covariance(p: &[f64], h_theta_mean: &[f64], w: f64) -> (Vec<f64>, Vec<f64>) {
    let k = p.len();
    let hw: Vec<f64> = h_theta_mean.iter().map(|v| v * w).collect();
    match invert_spd(&hw, k) {
        Some(inv) => {
            let mut cov = vec![0.0; k * k];
            for i in 0..k {
                for j in 0..k {
                    cov[i * k + j] = inv[i * k + j] * p[i] * p[j];
                }
            }
            let se = (0..k).map(|i| cov[i * k + i].max(0.0).sqrt()).collect();
            (cov, se)
        }
        None => (vec![f64::NAN; k * k], vec![f64::NAN; k]),
    }
}
