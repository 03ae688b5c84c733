//! Small dense kernels for the policies, generic over how `a * b + c` is computed ([`Fm`]) and
//! compiled twice by the crate's one dispatch ([`crate::simd`]): a portable version and, on
//! x86-64 CPUs with AVX2+FMA, a version using fused multiply-adds. Results are deterministic on a
//! given machine; they may differ in the last bits between CPUs with and without FMA.

use crate::simd::Fm;

/// `y += a * x`.
#[inline(always)]
pub(crate) fn axpy<M: Fm>(y: &mut [f64], a: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = M::fma(a, *xi, *yi);
    }
}

/// Dot product with eight independent accumulators (vectorisable, fixed summation order).
#[inline(always)]
pub(crate) fn dot<M: Fm>(x: &[f64], y: &[f64]) -> f64 {
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

/// `w = S z` for a symmetric row-major `S` (d x d), computed as a sum of rows. Columns go in
/// blocks of 32 and 16 held in registers (independent accumulator chains), the rest by `axpy`.
#[inline(always)]
pub(crate) fn symv<M: Fm>(s: &[f64], z: &[f64], w: &mut [f64]) {
    let d = z.len();
    let mut c0 = 0;
    while c0 + 32 <= d {
        symv_cols::<M, 32>(s, z, d, c0, w);
        c0 += 32;
    }
    if c0 + 16 <= d {
        symv_cols::<M, 16>(s, z, d, c0, w);
        c0 += 16;
    }
    if c0 < d {
        w[c0..d].fill(0.0);
        for (j, zj) in z.iter().enumerate() {
            axpy::<M>(&mut w[c0..d], *zj, &s[j * d + c0..(j + 1) * d]);
        }
    }
}

#[inline(always)]
fn symv_cols<M: Fm, const N: usize>(s: &[f64], z: &[f64], d: usize, c0: usize, w: &mut [f64]) {
    let mut acc = [0.0f64; N];
    for (j, zj) in z.iter().enumerate() {
        let row: &[f64; N] = s[j * d + c0..j * d + c0 + N].try_into().unwrap();
        for c in 0..N {
            acc[c] = M::fma(*zj, row[c], acc[c]);
        }
    }
    w[c0..c0 + N].copy_from_slice(&acc);
}

/// `S -= c * u u^T` (full symmetric storage).
#[inline(always)]
pub(crate) fn rank1_sub<M: Fm>(s: &mut [f64], u: &[f64], c: f64) {
    let d = u.len();
    for (i, ui) in u.iter().enumerate() {
        axpy::<M>(&mut s[i * d..(i + 1) * d], -c * ui, u);
    }
}

/// `argmax` with ties to the lowest index (as numpy); NaN never wins.
#[inline]
pub(crate) fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    let mut bv = f64::NEG_INFINITY;
    for (i, &x) in v.iter().enumerate() {
        if x > bv {
            bv = x;
            best = i;
        }
    }
    best
}

/// Rows scored together by [`block_mean_quad`] (SIMD lanes run over rows).
pub(crate) const LANES: usize = 32;

/// For `LANES` rows stored transposed in `zt` (d x LANES: `zt[j * LANES + r]` is feature `j` of
/// row `r`), the upper factor `U` (row-major, `S = U^T U`) and the mean `theta`, writes
/// `mean[r] = theta . z_r` and `quad[r] = z_r^T S z_r = ||U z_r||^2`. Vectorised over rows, so
/// every inner loop has the fixed length `LANES` whatever `d` is; d (d + 1) / 2 + d fused
/// multiply-adds per row.
#[inline(always)]
pub(crate) fn block_mean_quad<M: Fm>(
    u: &[f64],
    theta: &[f64],
    zt: &[f64],
    d: usize,
    need_quad: bool,
    mean: &mut [f64; LANES],
    quad: &mut [f64; LANES],
) {
    let mut mu = [0.0f64; LANES];
    for j in 0..d {
        let zr: &[f64; LANES] = zt[j * LANES..(j + 1) * LANES].try_into().unwrap();
        let t = theta[j];
        for r in 0..LANES {
            mu[r] = M::fma(t, zr[r], mu[r]);
        }
    }
    *mean = mu;
    if !need_quad {
        *quad = [0.0; LANES];
        return;
    }
    let mut q = [0.0f64; LANES];
    for i in 0..d {
        let mut acc = [0.0f64; LANES];
        let row = &u[i * d..(i + 1) * d];
        for j in i..d {
            let zr: &[f64; LANES] = zt[j * LANES..(j + 1) * LANES].try_into().unwrap();
            let uij = row[j];
            for r in 0..LANES {
                acc[r] = M::fma(uij, zr[r], acc[r]);
            }
        }
        for r in 0..LANES {
            q[r] = M::fma(acc[r], acc[r], q[r]);
        }
    }
    *quad = q;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::cholesky;
    use crate::simd::NoFma;

    #[test]
    fn symv_blocks_agree_with_naive() {
        for d in [1usize, 15, 16, 17, 32, 33, 49, 70] {
            let s: Vec<f64> = (0..d * d)
                .map(|i| ((i * 13 % 17) as f64 - 8.0) / 9.0)
                .collect();
            let z: Vec<f64> = (0..d).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut w = vec![0.0; d];
            symv::<NoFma>(&s, &z, &mut w);
            for c in 0..d {
                let e: f64 = (0..d).map(|j| z[j] * s[j * d + c]).sum();
                assert!((w[c] - e).abs() < 1e-12, "d={d} c={c}");
            }
        }
    }

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
        symv::<NoFma>(&s, &z, &mut w);
        let q_naive: f64 = (0..d)
            .map(|i| (0..d).map(|j| z[i] * s[i * d + j] * z[j]).sum::<f64>())
            .sum();
        assert!((dot::<NoFma>(&w, &z) - q_naive).abs() < 1e-12);
        let mut l = vec![0.0; d * d];
        assert!(cholesky(&s, d, &mut l));
        let mut s2 = s.clone();
        rank1_sub::<NoFma>(&mut s2, &z, 0.5);
        assert!((s2[d + 2] - (s[d + 2] - 0.5 * z[1] * z[2])).abs() < 1e-15);
        assert!(!cholesky(&[-1.0], 1, &mut [0.0]));
        // block kernel: U = L^T
        let mut u = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                u[i * d + j] = l[j * d + i];
            }
        }
        let mut zt = vec![0.0; d * LANES];
        for r in 0..LANES {
            for j in 0..d {
                zt[j * LANES + r] = z[j] * (r as f64 + 1.0);
            }
        }
        let theta = [1.0, 2.0, 3.0, 4.0, 5.0];
        let (mut mean, mut quad) = ([0.0; LANES], [0.0; LANES]);
        block_mean_quad::<NoFma>(&u, &theta, &zt, d, true, &mut mean, &mut quad);
        let m0: f64 = theta.iter().zip(&z).map(|(a, b)| a * b).sum();
        for r in 0..LANES {
            let s2 = (r as f64 + 1.0).powi(2);
            assert!((quad[r] - q_naive * s2).abs() < 1e-9 * s2, "{r}");
            assert!((mean[r] - m0 * (r as f64 + 1.0)).abs() < 1e-12 * s2);
        }
    }
}
