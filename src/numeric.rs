//! Small numerical helpers shared by the cores: dense symmetric positive definite solves (value
//! models' Newton steps and covariances, the touchpoint response model's Laplace approximation)
//! and a numerically stable logistic function (realtime's logistic Thompson sampling, the
//! touchpoint response model).

/// Solves `h x = g` for a symmetric positive definite `k x k` matrix `h` (row-major) by
/// Cholesky; `None` when `h` is not positive definite.
pub fn cholesky_solve(h: &[f64], k: usize, g: &[f64]) -> Option<Vec<f64>> {
    let mut l = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            let mut s = h[i * k + j];
            for m in 0..j {
                s -= l[i * k + m] * l[j * k + m];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * k + i] = s.sqrt();
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    let mut y = vec![0.0; k];
    for i in 0..k {
        let mut s = g[i];
        for m in 0..i {
            s -= l[i * k + m] * y[m];
        }
        y[i] = s / l[i * k + i];
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let mut s = y[i];
        for m in i + 1..k {
            s -= l[m * k + i] * x[m];
        }
        x[i] = s / l[i * k + i];
    }
    Some(x)
}

/// The inverse of a symmetric positive definite `k x k` matrix (row-major), column by column.
pub fn invert_spd(h: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut inv = vec![0.0; k * k];
    for j in 0..k {
        let mut e = vec![0.0; k];
        e[j] = 1.0;
        let col = cholesky_solve(h, k, &e)?;
        for i in 0..k {
            inv[i * k + j] = col[i];
        }
    }
    Some(inv)
}

/// The logistic function, stable for large `|t|` (no overflow of `exp`).
#[inline(always)]
pub fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}
