//! Small dense kernels for the policies, compiled twice: a portable version and, on x86-64 CPUs
//! with AVX2+FMA (detected once at run time), a version using fused multiply-adds. Results are
//! deterministic on a given machine; they may differ in the last bits between CPUs with and
//! without FMA.

/// How `a * b + c` is evaluated.
pub(crate) trait Mode {
    fn fma(a: f64, b: f64, c: f64) -> f64;
}

/// Separate multiply and add (any CPU).
pub(crate) struct Plain;
/// One fused multiply-add (only inside `#[target_feature(enable = "fma")]` code).
pub(crate) struct Fused;

impl Mode for Plain {
    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

impl Mode for Fused {
    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

/// True if this CPU has AVX2 and FMA (checked once).
#[inline]
pub(crate) fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y += a * x`.
#[inline(always)]
pub(crate) fn axpy<M: Mode>(y: &mut [f64], a: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = M::fma(a, *xi, *yi);
    }
}

/// Dot product with eight independent accumulators (vectorisable, fixed summation order).
#[inline(always)]
pub(crate) fn dot<M: Mode>(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0.0f64; 8];
    let xc = x.chunks_exact(8);
    let yc = y.chunks_exact(8);
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            acc[k] = M::fma(a[k], b[k], acc[k]);
        }
    }
    let mut tail = 0.0;
    for (a, b) in xr.iter().zip(yr) {
        tail = M::fma(*a, *b, tail);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `w = S z` for a symmetric row-major `S` (d x d), computed as a sum of rows (vectorisable).
#[inline(always)]
pub(crate) fn symv<M: Mode>(s: &[f64], z: &[f64], w: &mut [f64]) {
    let d = z.len();
    w[..d].fill(0.0);
    for (j, zj) in z.iter().enumerate() {
        axpy::<M>(&mut w[..d], *zj, &s[j * d..(j + 1) * d]);
    }
}

/// `S -= c * u u^T` (full symmetric storage).
#[inline(always)]
pub(crate) fn rank1_sub<M: Mode>(s: &mut [f64], u: &[f64], c: f64) {
    let d = u.len();
    for (i, ui) in u.iter().enumerate() {
        axpy::<M>(&mut s[i * d..(i + 1) * d], -c * ui, u);
    }
}

/// Lower Cholesky factor `L` (row-major, upper part zero) of the SPD matrix `s`; `false` if
/// `s` is not numerically positive definite.
pub(crate) fn cholesky(s: &[f64], d: usize, l: &mut [f64]) -> bool {
    l[..d * d].fill(0.0);
    for i in 0..d {
        for j in 0..=i {
            let mut sum = s[i * d + j];
            for k in 0..j {
                sum -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return false;
                }
                l[i * d + i] = sum.sqrt();
            } else {
                l[i * d + j] = sum / l[j * d + j];
            }
        }
    }
    true
}

/// For a block of rows `z` (r x d, row-major) and a lower factor `L` of `S = L L^T`, writes
/// `q[r] = z_r^T S z_r = ||L^T z_r||^2` using `y` (r x d) as scratch: half the flops of `z S z`.
#[inline(always)]
pub(crate) fn quad_block_chol<M: Mode>(
    l: &[f64],
    z: &[f64],
    d: usize,
    y: &mut [f64],
    q: &mut [f64],
) {
    let r = q.len();
    y[..r * d].fill(0.0);
    for j in 0..d {
        let lj = &l[j * d..j * d + j + 1];
        for row in 0..r {
            let zj = z[row * d + j];
            axpy::<M>(&mut y[row * d..row * d + j + 1], zj, lj);
        }
    }
    for row in 0..r {
        let yr = &y[row * d..(row + 1) * d];
        q[row] = dot::<M>(yr, yr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_naive() {
        let d = 5;
        // SPD matrix: B B^T + I
        let b: Vec<f64> = (0..d * d)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 7.0)
            .collect();
        let mut s = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                s[i * d + j] = (0..d).map(|k| b[i * d + k] * b[j * d + k]).sum::<f64>()
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        let z = [0.3, -1.2, 0.5, 2.0, -0.7];
        let mut w = vec![0.0; d];
        symv::<Plain>(&s, &z, &mut w);
        let q_naive: f64 = (0..d)
            .map(|i| (0..d).map(|j| z[i] * s[i * d + j] * z[j]).sum::<f64>())
            .sum();
        assert!((dot::<Plain>(&w, &z) - q_naive).abs() < 1e-12);
        let mut l = vec![0.0; d * d];
        assert!(cholesky(&s, d, &mut l));
        let mut y = vec![0.0; d];
        let mut q = [0.0];
        quad_block_chol::<Plain>(&l, &z, d, &mut y, &mut q);
        assert!((q[0] - q_naive).abs() < 1e-10, "{} {}", q[0], q_naive);
        let mut s2 = s.clone();
        rank1_sub::<Plain>(&mut s2, &z, 0.5);
        assert!((s2[d + 2] - (s[d + 2] - 0.5 * z[1] * z[2])).abs() < 1e-15);
        assert!(!cholesky(&[-1.0], 1, &mut [0.0]));
    }
}
