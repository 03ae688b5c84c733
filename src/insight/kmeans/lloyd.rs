//! Plain Lloyd iterations: every row against every center each iteration, blocked kernel.

use super::kernel::{self, norm2, Packed, Real};
use super::P;
use super::{ordered, relocate_empty, update_centers, Fitted, SyncSlice};
use crate::control::Control;
use crate::error::Result;
use crate::simd::{simd_fn, Fm};

/// Assigns rows of `x` to their nearest packed center, accumulating f64 sums and counts of the
/// new assignment; returns the number of labels that changed.
#[inline(always)]
fn assign_imp<T: Real, F: Fm>(
    x: &[T],
    d: usize,
    pk: &Packed<T>,
    labels: &mut [u32],
    sums: &mut [f64],
    counts: &mut [u64],
) -> u64 {
    let n = labels.len();
    let mut xn = [T::ZERO; P];
    let mut changed = 0u64;
    let mut i = 0;
    while i < n {
        let np = (n - i).min(P);
        let rows = &x[i * d..(i + np) * d];
        for p in 0..np {
            xn[p] = norm2::<T, F>(&rows[p * d..(p + 1) * d]);
        }
        let (bi, _) = kernel::nearest_tile::<T, F>(rows, &xn[..np], d, pk);
        for p in 0..np {
            let b32 = bi[p];
            let b = b32 as usize;
            if labels[i + p] != b32 {
                changed += 1;
                labels[i + p] = b32;
            }
            counts[b] += 1;
            let s = &mut sums[b * d..(b + 1) * d];
            for (a, v) in s.iter_mut().zip(&rows[p * d..(p + 1) * d]) {
                *a += v.to_f64();
            }
        }
        i += np;
    }
    changed
}

simd_fn!(
    pub fn assign<T: Real>(
        x: &[T],
        d: usize,
        pk: &Packed<T>,
        labels: &mut [u32],
        sums: &mut [f64],
        counts: &mut [u64],
    ) -> u64 = assign_imp
);

/// One assignment pass over all rows: new labels, f64 sums and counts, number of changes.
pub fn step<T: Real>(
    x: &[T],
    d: usize,
    centers: &[T],
    k: usize,
    labels: &mut [u32],
    ctl: &Control,
) -> Result<(Vec<f64>, Vec<u64>, u64)> {
    let n = labels.len();
    let pk = Packed::new(centers, k, d);
    let mut sums = vec![0.0f64; k * d];
    let mut counts = vec![0u64; k];
    let mut changed = 0u64;
    let lab = SyncSlice::new(labels);
    ordered(
        n,
        ctl,
        |_, r| {
            let mut s = vec![0.0f64; k * d];
            let mut c = vec![0u64; k];
            // SAFETY: chunks are disjoint row ranges.
            let l = unsafe { lab.range(r.clone()) };
            let ch = assign(&x[r.start * d..r.end * d], d, &pk, l, &mut s, &mut c);
            (s, c, ch)
        },
        |_, (s, c, ch)| {
            sums.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
            counts.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
            changed += ch;
        },
    )?;
    Ok((sums, counts, changed))
}

/// Plain Lloyd from `centers` (row-major `k*d`), scikit-learn's stopping rules: stop when no label
/// changes, or when the sum of squared center shifts is `<= tol` (absolute); then labels are
/// recomputed against the final centers if needed.
pub fn run<T: Real>(
    x: &[T],
    d: usize,
    mut centers: Vec<T>,
    k: usize,
    max_iter: usize,
    tol: f64,
    ctl: &Control,
) -> Result<Fitted<T>> {
    let n = x.len() / d;
    let mut labels = vec![u32::MAX; n];
    ctl.set_total(max_iter as u64);
    let mut n_iter = 0;
    let mut strict = false;
    for it in 0..max_iter {
        let (mut sums, mut counts, changed) = step(x, d, &centers, k, &mut labels, ctl)?;
        relocate_empty(x, d, &centers, &mut labels, &mut sums, &mut counts, ctl)?;
        let shift = update_centers(&mut centers, &sums, &counts, d);
        n_iter = it + 1;
        ctl.advance(1);
        if changed == 0 {
            strict = true;
            break;
        }
        if shift <= tol {
            break;
        }
    }
    if !strict {
        step(x, d, &centers, k, &mut labels, ctl)?;
    }
    let inertia = super::inertia_of(x, d, &centers, &labels, ctl)?;
    Ok(Fitted {
        centers,
        labels,
        inertia,
        n_iter,
    })
}
