//! Per-action models shared by the policies: a ridge regression (LinUCB, LinTS, epsilon-greedy)
//! or a Laplace-approximated logistic regression (LogisticTS), each holding the inverse of its
//! precision matrix `S = A^{-1}` (d x d, row-major) and its mean `theta`, updated in O(d^2) per
//! event by a Sherman-Morrison rank-one update (no matrix inverse, no factorisation).

use super::kernels::{dot, rank1_sub, symv};
use super::logistic_ts::weight;
use crate::numeric::sigmoid;
use crate::simd::{simd_fn, Fm};

/// Which per-action model the policy learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Ridge,
    Logistic,
}

/// One event's rank-one update of one action's model. `u` is scratch of length d.
#[inline(always)]
fn update_one<M: Fm>(
    link: Link,
    s: &mut [f64],
    theta: &mut [f64],
    z: &[f64],
    r: f64,
    u: &mut [f64],
) {
    symv::<M>(s, z, u);
    let q = dot::<M>(z, u);
    let m = dot::<M>(z, theta);
    match link {
        Link::Ridge => {
            // RLS: theta += S z (r - z.theta) / (1 + z'Sz); S -= (Sz)(Sz)' / (1 + z'Sz).
            let den = 1.0 + q;
            let g = (r - m) / den;
            for (t, ui) in theta.iter_mut().zip(u.iter()) {
                *t = M::fma(g, *ui, *t);
            }
            rank1_sub::<M>(s, u, 1.0 / den);
        }
        Link::Logistic => {
            let p = sigmoid(m);
            let w = weight(p);
            let den = 1.0 + w * q;
            // S_new z = S z / (1 + w z'Sz)
            let g = (r - p) / den;
            for (t, ui) in theta.iter_mut().zip(u.iter()) {
                *t = M::fma(g, *ui, *t);
            }
            rank1_sub::<M>(s, u, w / den);
        }
    }
}

#[inline(always)]
fn update_many_g<M: Fm>(
    link: Link,
    s: &mut [f64],
    theta: &mut [f64],
    d: usize,
    events: &mut dyn FnMut(usize, &mut [f64]) -> Option<f64>,
) -> u64 {
    let mut z = vec![0.0; d];
    let mut u = vec![0.0; d];
    let mut i = 0;
    while let Some(r) = events(i, &mut z) {
        update_one::<M>(link, s, theta, &z, r, &mut u);
        i += 1;
    }
    i as u64
}

simd_fn!(
    /// Applies events to one action's model in order. `events(i, z)` writes the i-th event's
    /// features into `z` and returns its reward, or `None` when there are no more events.
    /// Returns the number of events applied.
    pub fn update_many(
        link: Link,
        s: &mut [f64],
        theta: &mut [f64],
        d: usize,
        events: &mut dyn FnMut(usize, &mut [f64]) -> Option<f64>,
    ) -> u64 = update_many_g
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_update_matches_normal_equations() {
        // After events, theta must equal (I + Z'Z)^{-1} Z'r and S its inverse (checked on A S = I).
        let d = 3;
        let zs = [
            [1.0, 0.5, -0.2],
            [0.1, -1.0, 0.3],
            [0.7, 0.2, 0.9],
            [-0.4, 0.8, 0.1],
        ];
        let rs = [1.0, -0.5, 2.0, 0.3];
        let mut s = vec![0.0; 9];
        for i in 0..d {
            s[i * d + i] = 1.0;
        }
        let mut theta = vec![0.0; d];
        let n = update_many(Link::Ridge, &mut s, &mut theta, d, &mut |i, z| {
            (i < zs.len()).then(|| {
                z.copy_from_slice(&zs[i]);
                rs[i]
            })
        });
        assert_eq!(n, 4);
        let mut a = [[0.0; 3]; 3];
        let mut b = [0.0; 3];
        for (zk, rk) in zs.iter().zip(rs) {
            for i in 0..d {
                b[i] += rk * zk[i];
                for j in 0..d {
                    a[i][j] += zk[i] * zk[j];
                }
            }
        }
        for (i, row) in a.iter_mut().enumerate() {
            row[i] += 1.0;
        }
        for i in 0..d {
            // (A theta)_i == b_i and (A S)_ij == delta_ij
            let at: f64 = (0..d).map(|j| a[i][j] * theta[j]).sum();
            assert!((at - b[i]).abs() < 1e-12);
            for j in 0..d {
                let as_: f64 = (0..d).map(|k| a[i][k] * s[k * d + j]).sum();
                assert!((as_ - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }
}
