//! Exact Lloyd iterations accelerated by Yinyang group bounds (Ding et al., ICML 2015).
//!
//! Centers are ordered so that spatially close centers form contiguous groups of whole packed
//! blocks (recursive median splits of the initial centers). Every row keeps an upper bound on the
//! distance to its center and, per group, a lower bound on the distance to every other center of
//! the group. After each update the bounds move by the center drifts; a row is skipped when its
//! upper bound is below every group bound (global filter), and only groups whose bound is below
//! the row's best distance are recomputed, with the blocked kernel (group filter). With a single
//! group this is Hamerly's algorithm. The result equals plain Lloyd's up to ties and rounding.

use super::kernel::{self, dist_one, dist_tile, norm2, simd_fn, Fm, Packed, Real, P, W};
use super::{ordered, relocate_empty, update_centers, Fitted, SyncSlice};
use crate::control::Control;
use crate::error::Result;

/// Memory allowed for the per-row group bounds (bytes).
pub const BOUNDS_BUDGET: usize = 1 << 30;

/// Geometry of the groups: `t` groups of `gb` packed blocks each (the last may be shorter).
#[derive(Clone, Copy)]
struct Groups {
    t: usize,
    gb: usize,
    nb: usize,
}

impl Groups {
    #[inline(always)]
    fn blocks(&self, g: usize) -> (usize, usize) {
        (g * self.gb, ((g + 1) * self.gb).min(self.nb))
    }
}

/// Order of the centers such that consecutive runs of `leaf` centers are spatially close.
fn group_order<T: Real>(centers: &[T], k: usize, d: usize, leaf: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..k).collect();
    split(&mut idx, centers, d, leaf);
    idx
}

fn split<T: Real>(idx: &mut [usize], c: &[T], d: usize, leaf: usize) {
    if idx.len() <= leaf {
        return;
    }
    // dimension of largest spread
    let mut best = (0, -1.0f64);
    for j in 0..d {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &i in idx.iter() {
            let v = c[i * d + j].to_f64();
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi - lo > best.1 {
            best = (j, hi - lo);
        }
    }
    let j = best.0;
    idx.sort_by(|&a, &b| {
        c[a * d + j]
            .to_f64()
            .total_cmp(&c[b * d + j].to_f64())
            .then(a.cmp(&b))
    });
    let half = (idx.len() / 2).div_ceil(leaf) * leaf;
    let half = half.clamp(leaf, idx.len() - 1);
    let (a, b) = idx.split_at_mut(half);
    split(a, c, d, leaf);
    split(b, c, d, leaf);
}

/// First pass: all distances; labels, upper bounds, group lower bounds, sums and counts.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn first_imp<T: Real, F: Fm>(
    x: &[T],
    d: usize,
    pk: &Packed<T>,
    gr: Groups,
    labels: &mut [u32],
    ub: &mut [T],
    lb: &mut [T],
    sums: &mut [f64],
    counts: &mut [u64],
) -> u64 {
    let n = labels.len();
    let t = gr.t;
    #[cfg(target_arch = "x86_64")]
    if F::FUSED {
        if let (Some(x32), Some(ct), Some(cn)) = (
            kernel::as_f32(x),
            kernel::as_f32(&pk.ct),
            kernel::as_f32(&pk.cn),
        ) {
            let mut out: [Vec<(f32, u32, f32)>; P] = std::array::from_fn(|_| Vec::new());
            let mut i = 0;
            while i < n {
                let np = (n - i).min(P);
                // SAFETY: F::FUSED is only true in code running after AVX2+FMA detection.
                unsafe {
                    super::avx2::block_top2(
                        &x32[i * d..(i + np) * d],
                        np,
                        d,
                        ct,
                        cn,
                        0,
                        pk.nb,
                        &mut out,
                    )
                };
                for p in 0..np {
                    let blocks = &out[p];
                    let mut a = 0usize;
                    let mut best = f32::INFINITY;
                    for &(m1, i1, _) in blocks {
                        if m1 < best {
                            best = m1;
                            a = i1 as usize;
                        }
                    }
                    let xr = &x[(i + p) * d..(i + p + 1) * d];
                    let x2 = norm2::<T, F>(xr).to_f64();
                    labels[i + p] = a as u32;
                    ub[i + p] = kernel::dist2::<T, F>(xr, &pk_center(pk, a, d)).sqrt();
                    let l = &mut lb[(i + p) * t..(i + p + 1) * t];
                    for (g, lg) in l.iter_mut().enumerate() {
                        let (b0, b1) = gr.blocks(g);
                        let mut m = f32::INFINITY;
                        for &(m1, i1, m2) in &blocks[b0..b1] {
                            m = m.min(if i1 as usize == a { m2 } else { m1 });
                        }
                        *lg = T::from_f64((x2 + m as f64).max(0.0).sqrt());
                    }
                    counts[a] += 1;
                    for (s, v) in sums[a * d..(a + 1) * d].iter_mut().zip(xr) {
                        *s += v.to_f64();
                    }
                }
                i += np;
            }
            return n as u64;
        }
    }
    let width = pk.width();
    let mut buf = vec![T::ZERO; P * width];
    let mut xn = [T::ZERO; P];
    let mut i = 0;
    while i < n {
        let np = (n - i).min(P);
        let rows = &x[i * d..(i + np) * d];
        for p in 0..np {
            xn[p] = norm2::<T, F>(&rows[p * d..(p + 1) * d]);
        }
        dist_tile::<T, F>(rows, &xn[..np], d, pk, 0, pk.nb, &mut buf, width);
        for p in 0..np {
            let row = &buf[p * width..p * width + width];
            let (a, _) = kernel::argmin(&row[..pk.k]);
            let xr = &rows[p * d..(p + 1) * d];
            labels[i + p] = a as u32;
            ub[i + p] = kernel::dist2::<T, F>(xr, &pk_center(pk, a, d)).sqrt();
            let l = &mut lb[(i + p) * t..(i + p + 1) * t];
            for (g, lg) in l.iter_mut().enumerate() {
                let (b0, b1) = gr.blocks(g);
                let mut m = T::INF;
                for (c, &v) in row[b0 * W..b1 * W].iter().enumerate() {
                    if c + b0 * W != a && v < m {
                        m = v;
                    }
                }
                *lg = m.sqrt();
            }
            counts[a] += 1;
            for (s, v) in sums[a * d..(a + 1) * d].iter_mut().zip(xr) {
                *s += v.to_f64();
            }
        }
        i += np;
    }
    n as u64
}

/// Center `c` of a packed set as a row (gathered from the transposed block).
#[inline(always)]
fn pk_center<T: Real>(pk: &Packed<T>, c: usize, d: usize) -> [T; 64] {
    let mut out = [T::ZERO; 64];
    let (b, l) = (c / W, c % W);
    for (j, o) in out.iter_mut().enumerate().take(d) {
        *o = pk.ct[b * d * W + j * W + l];
    }
    out
}

/// Over the centers of blocks `b0..b1`: (index of the nearest, its squared distance, the second
/// smallest squared distance).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn group_top2<T: Real, F: Fm>(
    xr: &[T],
    x2: T,
    d: usize,
    pk: &Packed<T>,
    b0: usize,
    b1: usize,
    buf: &mut [T],
) -> (usize, T, T) {
    #[cfg(target_arch = "x86_64")]
    if F::FUSED {
        if let (Some(x), Some(ct), Some(cn)) = (
            kernel::as_f32(xr),
            kernel::as_f32(&pk.ct),
            kernel::as_f32(&pk.cn),
        ) {
            // SAFETY: F::FUSED is only true in code running after AVX2+FMA detection.
            let (m1, i1, m2) = unsafe { super::avx2::group_top2(x, d, ct, cn, b0, b1) };
            let x2 = x2.to_f64();
            return (
                i1 as usize,
                T::from_f64((x2 + m1 as f64).max(0.0)),
                T::from_f64((x2 + m2 as f64).max(0.0)),
            );
        }
    }
    let m = (b1 - b0) * W;
    dist_one::<T, F>(xr, x2, d, pk, b0, b1, &mut buf[..m]);
    let (mut i1, mut m1, mut m2) = (0usize, T::INF, T::INF);
    for (c, &v) in buf[..m].iter().enumerate() {
        if v < m1 {
            m2 = m1;
            m1 = v;
            i1 = c;
        } else if v < m2 {
            m2 = v;
        }
    }
    (i1 + b0 * W, m1, m2)
}

/// A bounded pass; returns the number of changed labels. Sums and counts are accumulated for
/// the new labels when `sums` is not empty.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pass_imp<T: Real, F: Fm>(
    x: &[T],
    d: usize,
    pk: &Packed<T>,
    centers: &[T],
    gr: Groups,
    drift: &[T],
    gdrift: &[T],
    labels: &mut [u32],
    ub: &mut [T],
    lb: &mut [T],
    sums: &mut [f64],
    counts: &mut [u64],
) -> u64 {
    let n = labels.len();
    let t = gr.t;
    let mut buf = vec![T::ZERO; gr.gb * W];
    let mut rec: Vec<(usize, usize, T, T)> = Vec::with_capacity(t);
    let mut changed = 0u64;
    for i in 0..n {
        let xr = &x[i * d..(i + 1) * d];
        let a = labels[i] as usize;
        let mut u = ub[i] + drift[a];
        let l = &mut lb[i * t..(i + 1) * t];
        let mut gmin = T::INF;
        for (lg, &gd) in l.iter_mut().zip(gdrift) {
            *lg = *lg - gd;
            gmin = gmin.mn(*lg);
        }
        let mut best = a;
        if u > gmin {
            u = kernel::dist2::<T, F>(xr, &centers[a * d..(a + 1) * d]).sqrt();
            if u > gmin {
                let x2 = norm2::<T, F>(xr);
                let mut bestd = u;
                rec.clear();
                for g in 0..t {
                    if l[g] >= bestd {
                        continue;
                    }
                    let (b0, b1) = gr.blocks(g);
                    let (i1, m1, m2) = group_top2::<T, F>(xr, x2, d, pk, b0, b1, &mut buf);
                    let (m1, m2) = (m1.sqrt(), m2.sqrt());
                    rec.push((g, i1, m1, m2));
                    if m1 < bestd && i1 != a {
                        bestd = m1;
                        best = i1;
                    }
                }
                for &(g, i1, m1, m2) in &rec {
                    l[g] = if i1 == best { m2 } else { m1 };
                }
                if best != a {
                    let ga = a / (gr.gb * W);
                    l[ga] = l[ga].mn(u);
                    labels[i] = best as u32;
                    changed += 1;
                    u = bestd;
                }
            }
        }
        ub[i] = u;
        if !sums.is_empty() {
            counts[best] += 1;
            for (s, v) in sums[best * d..(best + 1) * d].iter_mut().zip(xr) {
                *s += v.to_f64();
            }
        }
    }
    changed
}

simd_fn!(
    fn first<T>(
        x: &[T],
        d: usize,
        pk: &Packed<T>,
        gr: Groups,
        labels: &mut [u32],
        ub: &mut [T],
        lb: &mut [T],
        sums: &mut [f64],
        counts: &mut [u64],
    ) -> u64 = first_imp
);

simd_fn!(
    fn pass<T>(
        x: &[T],
        d: usize,
        pk: &Packed<T>,
        centers: &[T],
        gr: Groups,
        drift: &[T],
        gdrift: &[T],
        labels: &mut [u32],
        ub: &mut [T],
        lb: &mut [T],
        sums: &mut [f64],
        counts: &mut [u64],
    ) -> u64 = pass_imp
);

/// Yinyang Lloyd from `centers` (row-major `k*d`), same stopping rules as [`super::lloyd::run`].
pub fn run<T: Real>(
    x: &[T],
    d: usize,
    centers0: Vec<T>,
    k: usize,
    max_iter: usize,
    tol: f64,
    ctl: &Control,
) -> Result<Fitted<T>> {
    if d > 64 {
        // The bound bookkeeping gathers a center into a fixed 64-wide row; wide data runs plain.
        return super::lloyd::run(x, d, centers0, k, max_iter, tol, ctl);
    }
    let n = x.len() / d;
    let nb = k.div_ceil(W);
    // groups of gb blocks, as many as the bounds budget allows (at most one per block)
    let max_t = (BOUNDS_BUDGET / (n * std::mem::size_of::<T>())).max(1);
    let gb = nb.div_ceil(max_t.min(nb)).max(1);
    let t = nb.div_ceil(gb);
    let gr = Groups { t, gb, nb };
    // internal order: groups contiguous
    let perm = group_order(&centers0, k, d, gb * W);
    let mut centers: Vec<T> = Vec::with_capacity(k * d);
    for &c in &perm {
        centers.extend_from_slice(&centers0[c * d..(c + 1) * d]);
    }
    let mut labels = vec![0u32; n];
    let mut ub = vec![T::ZERO; n];
    let mut lb = vec![T::ZERO; n * t];
    ctl.set_total(max_iter as u64);

    let mut prev = centers.clone();
    let mut n_iter = 0;
    let mut strict = false;
    for it in 0..max_iter {
        let pk = Packed::new(&centers, k, d);
        let mut sums = vec![0.0f64; k * d];
        let mut counts = vec![0u64; k];
        let mut changed = 0u64;
        let (ls, us, bs) = (
            SyncSlice::new(&mut labels),
            SyncSlice::new(&mut ub),
            SyncSlice::new(&mut lb),
        );
        let (drift, gdrift) = drifts(&prev, &centers, k, d, gr);
        let cref: &[T] = &centers;
        ordered(
            n,
            ctl,
            |_, r| {
                let mut s = vec![0.0f64; k * d];
                let mut c = vec![0u64; k];
                // SAFETY: chunks are disjoint row ranges.
                let (l, u, b) = unsafe {
                    (
                        ls.range(r.clone()),
                        us.range(r.clone()),
                        bs.range(r.start * t..r.end * t),
                    )
                };
                let xs = &x[r.start * d..r.end * d];
                let ch = if it == 0 {
                    first(xs, d, &pk, gr, l, u, b, &mut s, &mut c)
                } else {
                    pass(
                        xs, d, &pk, cref, gr, &drift, &gdrift, l, u, b, &mut s, &mut c,
                    )
                };
                (s, c, ch)
            },
            |_, (s, c, ch)| {
                sums.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
                counts.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
                changed += ch;
            },
        )?;
        let moved = relocate_empty(x, d, &centers, &mut labels, &mut sums, &mut counts, ctl)?;
        for &(i, _) in &moved {
            // force a full recomputation of the moved rows next pass
            ub[i] = T::INF;
            lb[i * t..(i + 1) * t].fill(T::ZERO);
        }
        prev.copy_from_slice(&centers);
        let shift = update_centers(&mut centers, &sums, &counts, d);
        n_iter = it + 1;
        ctl.advance(1);
        if it > 0 && changed == 0 && moved.is_empty() {
            strict = true;
            break;
        }
        if shift <= tol {
            break;
        }
    }
    if !strict {
        let pk = Packed::new(&centers, k, d);
        let (drift, gdrift) = drifts(&prev, &centers, k, d, gr);
        let (ls, us, bs) = (
            SyncSlice::new(&mut labels),
            SyncSlice::new(&mut ub),
            SyncSlice::new(&mut lb),
        );
        let cref: &[T] = &centers;
        ordered(
            n,
            ctl,
            |_, r| {
                // SAFETY: chunks are disjoint row ranges.
                let (l, u, b) = unsafe {
                    (
                        ls.range(r.clone()),
                        us.range(r.clone()),
                        bs.range(r.start * t..r.end * t),
                    )
                };
                let xs = &x[r.start * d..r.end * d];
                pass(
                    xs,
                    d,
                    &pk,
                    cref,
                    gr,
                    &drift,
                    &gdrift,
                    l,
                    u,
                    b,
                    &mut [],
                    &mut [],
                )
            },
            |_, _| {},
        )?;
    }
    // back to the caller's center order
    let mut inv = vec![0u32; k];
    for (new, &old) in perm.iter().enumerate() {
        inv[new] = old as u32;
    }
    let mut out = vec![T::ZERO; k * d];
    for (new, &old) in perm.iter().enumerate() {
        out[old * d..(old + 1) * d].copy_from_slice(&centers[new * d..(new + 1) * d]);
    }
    for l in labels.iter_mut() {
        *l = inv[*l as usize];
    }
    let inertia = super::inertia_of(x, d, &out, &labels, ctl)?;
    Ok(Fitted {
        centers: out,
        labels,
        inertia,
        n_iter,
    })
}

/// Per-center drift (rounded up slightly, so bounds stay safe) and per-group maximum drift.
fn drifts<T: Real>(prev: &[T], cur: &[T], k: usize, d: usize, gr: Groups) -> (Vec<T>, Vec<T>) {
    let mut drift = vec![T::ZERO; k];
    let mut gdrift = vec![T::ZERO; gr.t];
    for c in 0..k {
        let s = kernel::dist2_f64(&prev[c * d..(c + 1) * d], &cur[c * d..(c + 1) * d]).sqrt();
        let v = if s > 0.0 {
            T::from_f64(s * (1.0 + 1e-6))
        } else {
            T::ZERO
        };
        drift[c] = v;
        let g = c / (gr.gb * W);
        gdrift[g] = gdrift[g].mx(v);
    }
    (drift, gdrift)
}
