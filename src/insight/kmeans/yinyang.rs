//! Exact Lloyd iterations accelerated by Yinyang group bounds (Ding et al., ICML 2015).
//!
//! Centers are ordered so that spatially close centers form contiguous groups of whole packed
//! blocks (recursive median splits of the initial centers). Every row keeps an upper bound on the
//! distance to its center and, per group, a lower bound on the distance to every other center of
//! the group. After each update the bounds move by the center drifts; a row is skipped when its
//! upper bound is below every group bound (global filter), and only groups whose bound is below
//! the row's best distance are recomputed, with the blocked kernel (group filter). With a single
//! group this is Hamerly's algorithm. The result equals plain Lloyd's up to ties and rounding.

use super::kernel::{self, dist_tile, norm2, Packed, Real};
use super::{ordered, relocate_empty, update_centers, Fitted, SyncSlice};
use super::{P, W};
use crate::control::Control;
use crate::error::Result;
use crate::simd::{simd_fn, Fm};
use rayon::prelude::*;

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
pub fn group_order<T: Real>(centers: &[T], k: usize, d: usize, leaf: usize) -> Vec<usize> {
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
            const R: usize = super::avx2::R;
            let mut gm: [Vec<f32>; R] = std::array::from_fn(|_| vec![0f32; t]);
            let mut i = 0;
            while i < n {
                let np = (n - i).min(R);
                // SAFETY: F::FUSED is only true in code running after AVX2+FMA detection.
                let best = unsafe {
                    let rows = &x32[i * d..(i + np) * d];
                    super::avx2::group_mins(rows, np, d, ct, cn, pk.nb, gr.gb, &mut gm)
                };
                for p in 0..np {
                    let xr = &x[(i + p) * d..(i + p + 1) * d];
                    let x2 = norm2::<T, F>(xr).to_f64();
                    // nearest and second nearest center inside the best group
                    let ga = best[p];
                    let (b0, b1) = gr.blocks(ga);
                    // SAFETY: as above.
                    let (m1, a, m2) = unsafe {
                        super::avx2::group_top2(
                            &x32[(i + p) * d..(i + p + 1) * d],
                            d,
                            ct,
                            cn,
                            b0,
                            b1,
                        )
                    };
                    let a = a as usize;
                    gm[p][ga] = if m1.is_finite() { m2 } else { m1 };
                    labels[i + p] = a as u32;
                    ub[i + p] = kernel::dist2_lanes::<T, F>(xr, &pk_center(pk, a, d)).sqrt();
                    let l = &mut lb[(i + p) * t..(i + p + 1) * t];
                    for (lg, &m) in l.iter_mut().zip(&gm[p]) {
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

/// Per-row state besides the group bounds: global lower bound (the smallest group bound, as of
/// the pass at which the row's group bounds were last brought up to date: `stamp`) and that pass
/// (drifts since then are applied lazily from the cumulative group drifts).
pub struct RowState<'a, T> {
    pub labels: &'a mut [u32],
    pub ub: &'a mut [T],
    pub glb: &'a mut [T],
    pub stamp: &'a mut [u32],
    pub lb: &'a mut [T],
}

/// Drift information of one pass.
pub struct Drift<'a, T> {
    /// per center drift (rounded up)
    pub drift: &'a [T],
    /// per center: half the distance to its nearest other center (rounded down); a row closer
    /// than that to its center cannot be closer to any other (Hamerly's / Elkan's test)
    pub half: &'a [T],
    /// `dec[s*t + g]`: how much the group bounds last brought up to date at pass `s` must
    /// decrease by now (rounded up); row `it` is zero
    pub dec: &'a [T],
    /// `gmax[s]`: the largest decrement of row `s` of `dec` (how much the global bound of a row
    /// whose bounds were last brought up to date at pass `s` must decrease by now)
    pub gmax: &'a [T],
    pub it: usize,
}

/// `l -= dec` elementwise and the minimum of the result (lane-wise, so it vectorises).
#[inline(always)]
fn sub_min<T: Real>(l: &mut [T], dec: &[T]) -> T {
    const L: usize = 8;
    let mut m = [T::INF; L];
    let mut a = l.chunks_exact_mut(L);
    let mut b = dec.chunks_exact(L);
    for (x, y) in (&mut a).zip(&mut b) {
        // loads, arithmetic and stores grouped so they vectorise
        let xv: [T; L] = std::array::from_fn(|w| x[w]);
        let yv: [T; L] = std::array::from_fn(|w| y[w]);
        let r: [T; L] = std::array::from_fn(|w| xv[w] - yv[w]);
        for w in 0..L {
            m[w] = m[w].mn(r[w]);
        }
        x.copy_from_slice(&r);
    }
    let mut r = T::INF;
    for (x, y) in a.into_remainder().iter_mut().zip(b.remainder()) {
        *x = *x - *y;
        r = r.mn(*x);
    }
    for v in m {
        r = r.mn(v);
    }
    r
}

/// Bit `g` set where `l[g] < u` (`l.len() <= 64`); lane-wise so it vectorises.
#[inline(always)]
fn below_mask<T: Real>(l: &[T], u: T) -> u64 {
    const L: usize = 8;
    let mut mask = 0u64;
    let mut ch = l.chunks_exact(L);
    for (ci, c) in (&mut ch).enumerate() {
        let mut m = 0u64;
        for (w, &v) in c.iter().enumerate() {
            m |= ((v < u) as u64) << w;
        }
        mask |= m << (ci * L);
    }
    let base = l.len() - ch.remainder().len();
    for (w, &v) in ch.remainder().iter().enumerate() {
        mask |= ((v < u) as u64) << (base + w);
    }
    mask
}

/// Half the distance of every center to its nearest other center, rounded down (0 for k = 1).
/// Blocks of 64 centers in parallel, each with its own 64 x k distances: never the k x k matrix
/// (29 GB at k = 60,000 in f64). Each value is computed alone: no effect on results.
fn half_gaps<T: Real>(centers: &[T], pk: &Packed<T>, k: usize, d: usize) -> Vec<T> {
    if k < 2 {
        return vec![T::ZERO; k];
    }
    let blocks: Vec<Vec<T>> = centers
        .par_chunks(64 * d)
        .enumerate()
        .map(|(b, rows)| {
            let mut all = vec![T::ZERO; rows.len() / d * k];
            kernel::all_dist(rows, d, pk, &mut all);
            all.chunks(k)
                .enumerate()
                .map(|(r, dist)| {
                    let c = b * 64 + r;
                    let mut m = f64::INFINITY;
                    for (o, &v) in dist.iter().enumerate() {
                        if o != c {
                            // exact distance when the kernel says it may be the nearest
                            if v.to_f64() < m * 1.01 + 1e-12 {
                                let e = kernel::dist2_f64(
                                    &centers[c * d..(c + 1) * d],
                                    &centers[o * d..(o + 1) * d],
                                );
                                m = m.min(e);
                            }
                        }
                    }
                    T::from_f64(m.sqrt() * 0.5 * (1.0 - 1e-5))
                })
                .collect()
        })
        .collect();
    blocks.concat()
}

/// Memory allowed for the history of the centers (bytes): with it, the group bounds decay by
/// how far each center moved since the bounds were computed, not by the sum of its moves.
pub const HISTORY_BUDGET: usize = 64 << 20;

/// Tightens the decrement table of pass `it` with the center history (`hist`: the centers of
/// passes `0..=it`, `k*d` each): a bound of group `g` computed at pass `s` decays by at most the
/// largest distance between a center of `g` at pass `s` and now (rounded up).
fn tighten_dec<T: Real>(dec: &mut [T], hist: &[T], it: usize, k: usize, d: usize, gr: Groups) {
    let t = gr.t;
    let now = &hist[it * k * d..(it + 1) * k * d];
    dec[..it * t]
        .par_chunks_mut(t)
        .enumerate()
        .for_each(|(s, row)| {
            let then = &hist[s * k * d..(s + 1) * k * d];
            let mut m = vec![0.0f64; t];
            for c in 0..k {
                let v = kernel::dist2_f64(&then[c * d..(c + 1) * d], &now[c * d..(c + 1) * d]);
                let g = c / (gr.gb * W);
                m[g] = m[g].max(v);
            }
            for (o, v) in row.iter_mut().zip(m) {
                let v = T::from_f64(v.sqrt() * (1.0 + 1e-6));
                *o = o.mn(v);
            }
        });
}

/// The decrement table of pass `it` from the cumulative group drifts (`cum`, `(it+1) x t`).
fn dec_table<T: Real>(cum: &[f64], it: usize, t: usize) -> Vec<T> {
    let now = &cum[it * t..(it + 1) * t];
    let mut out = vec![T::ZERO; (it + 1) * t];
    for s in 0..it {
        for g in 0..t {
            let dd = now[g] - cum[s * t + g];
            if dd > 0.0 {
                out[s * t + g] = T::from_f64(dd * (1.0 + 1e-6));
            }
        }
    }
    out
}

/// Hints the cache lines of `s` into the cache (no-op off x86-64).
#[inline(always)]
fn prefetch<T>(s: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = std::mem::size_of_val(s);
        let p = s.as_ptr() as *const i8;
        let mut o = 0;
        while o < bytes {
            // SAFETY: prefetching never faults; the address is inside `s`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(o)) };
            o += 64;
        }
    }
}

/// Largest value of every row of `t` values.
fn row_max<T: Real>(dec: &[T], t: usize) -> Vec<T> {
    dec.chunks_exact(t)
        .map(|r| r.iter().fold(T::ZERO, |m, &v| m.mx(v)))
        .collect()
}

/// A bounded pass; returns the rows whose label changed as `(row, from, to)` (row relative to
/// the chunk).
#[inline(always)]
fn pass_imp<T: Real, F: Fm>(
    x: &[T],
    d: usize,
    pk: &Packed<T>,
    centers: &[T],
    gr: Groups,
    dr: &Drift<'_, T>,
    st: RowState<'_, T>,
) -> Vec<(u32, u32, u32)> {
    let n = st.labels.len();
    let t = gr.t;
    let mut buf = vec![T::ZERO; gr.gb * W];
    let mut rec: Vec<(usize, usize, T, T)> = Vec::with_capacity(t);
    let mut moves = Vec::new();
    const AHEAD: usize = 8;
    for i in 0..n {
        // the rows that fail the global filter read their group bounds: prefetch them a few
        // rows ahead (same test as below, on the bounds as they are now)
        if i + AHEAD < n {
            let j = i + AHEAD;
            let a = st.labels[j] as usize;
            let s0 = st.stamp[j] as usize;
            if st.ub[j] + dr.drift[a] > (st.glb[j] - dr.gmax[s0]).mx(dr.half[a]) {
                prefetch(&st.lb[j * t..(j + 1) * t]);
            }
        }
        let a = st.labels[i] as usize;
        let mut u = st.ub[i] + dr.drift[a];
        let s0 = st.stamp[i] as usize;
        let g0h = (st.glb[i] - dr.gmax[s0]).mx(dr.half[a]);
        st.ub[i] = u;
        if u <= g0h {
            continue;
        }
        let xr = &x[i * d..(i + 1) * d];
        u = kernel::dist2_lanes::<T, F>(xr, &centers[a * d..(a + 1) * d]).sqrt();
        st.ub[i] = u;
        if u <= g0h {
            continue;
        }
        // bring the group bounds up to date
        let l = &mut st.lb[i * t..(i + 1) * t];
        let gmin = sub_min(l, &dr.dec[s0 * t..(s0 + 1) * t]);
        st.stamp[i] = dr.it as u32;
        if u <= gmin {
            st.glb[i] = gmin;
            continue;
        }
        let x2 = norm2::<T, F>(xr);
        let mut best = a;
        let mut bestd = u;
        rec.clear();
        // candidate groups (bound below the current best), 64 at a time as a bit mask, in
        // increasing group order; `bestd` only decreases, so each candidate is checked again
        for (wi, lw) in l.chunks(64).enumerate() {
            let mut mask = below_mask(lw, u);
            while mask != 0 {
                let g = wi * 64 + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if l[g] >= bestd {
                    continue;
                }
                let (b0, b1) = gr.blocks(g);
                let (i1, m1, m2) = kernel::group_top2::<T, F>(xr, x2, d, pk, b0, b1, &mut buf);
                let (m1, m2) = (m1.sqrt(), m2.sqrt());
                rec.push((g, i1, m1, m2));
                if m1 < bestd && i1 != a {
                    bestd = m1;
                    best = i1;
                }
            }
        }
        for &(g, i1, m1, m2) in &rec {
            l[g] = if i1 == best { m2 } else { m1 };
        }
        if best != a {
            let ga = a / (gr.gb * W);
            l[ga] = l[ga].mn(u);
            st.labels[i] = best as u32;
            moves.push((i as u32, a as u32, best as u32));
            st.ub[i] = bestd;
        }
        st.glb[i] = sub_min(l, &dr.dec[dr.it * t..(dr.it + 1) * t]);
    }
    moves
}

simd_fn!(
    fn first<T: Real>(
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
    fn pass<T: Real>(
        x: &[T],
        d: usize,
        pk: &Packed<T>,
        centers: &[T],
        gr: Groups,
        dr: &Drift<'_, T>,
        st: RowState<'_, T>,
    ) -> Vec<(u32, u32, u32)> = pass_imp
);

/// Yinyang Lloyd from `centers` (row-major `k*d`), same stopping rules as [`super::lloyd::run`].
/// Center sums are kept in f64 and updated incrementally from the rows that changed cluster.
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
    // one group (Hamerly) up to 128 centers, else groups of 2 blocks (32 centers), fewer and
    // larger if the bounds would not fit the memory budget
    let want_gb = if nb <= 8 { nb } else { 2 };
    let gb = nb.div_ceil(max_t.min(nb)).max(want_gb).min(nb);
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
    let mut glb = vec![T::ZERO; n];
    let mut stamp = vec![0u32; n];
    let mut lb = vec![T::ZERO; n * t];
    let mut cum = vec![0.0f64; t];
    let mut sums = vec![0.0f64; k * d];
    let mut counts = vec![0u64; k];
    ctl.set_total(max_iter as u64);

    let mut prev = centers.clone();
    let use_hist = (max_iter + 1) * k * d * std::mem::size_of::<T>() <= HISTORY_BUDGET;
    let mut hist: Vec<T> = if use_hist {
        centers.clone()
    } else {
        Vec::new()
    };
    let mut n_iter = 0;
    let mut strict = false;
    let mut it = 0;
    while it <= max_iter {
        // pass `it` runs on `centers`; `it == max_iter` is the final re-assignment (no update)
        let last = it == max_iter;
        let pk = Packed::new(&centers, k, d);
        let mut changed = 0u64;
        let (ls, us, gs, ss, bs) = (
            SyncSlice::new(&mut labels),
            SyncSlice::new(&mut ub),
            SyncSlice::new(&mut glb),
            SyncSlice::new(&mut stamp),
            SyncSlice::new(&mut lb),
        );
        let cref: &[T] = &centers;
        if it == 0 {
            ordered(
                n,
                ctl,
                |_, r| {
                    let mut s = vec![0.0f64; k * d];
                    let mut c = vec![0u64; k];
                    // SAFETY: chunks are disjoint row ranges.
                    let (l, u, g, b) = unsafe {
                        (
                            ls.range(r.clone()),
                            us.range(r.clone()),
                            gs.range(r.clone()),
                            bs.range(r.start * t..r.end * t),
                        )
                    };
                    first(
                        &x[r.start * d..r.end * d],
                        d,
                        &pk,
                        gr,
                        l,
                        u,
                        b,
                        &mut s,
                        &mut c,
                    );
                    for (gi, gv) in g.iter_mut().enumerate() {
                        *gv = b[gi * t..(gi + 1) * t].iter().fold(T::INF, |m, &v| m.mn(v));
                    }
                    (s, c)
                },
                |_, (s, c)| {
                    sums.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
                    counts.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
                },
            )?;
            changed = n as u64;
        } else {
            let tb = tables(
                &prev, &centers, &pk, k, d, gr, it, &mut cum, &mut hist, use_hist,
            );
            let dr = tb.drift(it);
            ordered(
                n,
                ctl,
                |_, r| {
                    // SAFETY: chunks are disjoint row ranges.
                    let st = unsafe {
                        RowState {
                            labels: ls.range(r.clone()),
                            ub: us.range(r.clone()),
                            glb: gs.range(r.clone()),
                            stamp: ss.range(r.clone()),
                            lb: bs.range(r.start * t..r.end * t),
                        }
                    };
                    let mv = pass(&x[r.start * d..r.end * d], d, &pk, cref, gr, &dr, st);
                    (r.start, mv)
                },
                |_, (start, mv)| {
                    if last {
                        return;
                    }
                    for (row, from, to) in mv {
                        let row = &x[(start + row as usize) * d..(start + row as usize + 1) * d];
                        let (f, to) = (from as usize, to as usize);
                        counts[f] -= 1;
                        counts[to] += 1;
                        for j in 0..d {
                            let v = row[j].to_f64();
                            sums[f * d + j] -= v;
                            sums[to * d + j] += v;
                        }
                        changed += 1;
                    }
                },
            )?;
        }
        if last {
            break;
        }
        let moved = relocate_empty(x, d, &centers, &mut labels, &mut sums, &mut counts, ctl)?;
        for &(i, _) in &moved {
            // force a full recomputation of the moved rows next pass
            ub[i] = T::INF;
            glb[i] = T::ZERO;
            lb[i * t..(i + 1) * t].fill(T::ZERO);
            stamp[i] = it as u32;
        }
        prev.copy_from_slice(&centers);
        let shift = update_centers(&mut centers, &sums, &counts, d);
        n_iter = it + 1;
        ctl.advance(1);
        if it > 0 && changed == 0 && moved.is_empty() {
            strict = true;
            break;
        }
        it += 1;
        if shift <= tol {
            break;
        }
    }
    if !strict && it < max_iter {
        // stopped on tol: one more assignment pass against the final centers
        let pk = Packed::new(&centers, k, d);
        let tb = tables(
            &prev, &centers, &pk, k, d, gr, it, &mut cum, &mut hist, use_hist,
        );
        let dr = tb.drift(it);
        let (ls, us, gs, ss, bs) = (
            SyncSlice::new(&mut labels),
            SyncSlice::new(&mut ub),
            SyncSlice::new(&mut glb),
            SyncSlice::new(&mut stamp),
            SyncSlice::new(&mut lb),
        );
        let cref: &[T] = &centers;
        ordered(
            n,
            ctl,
            |_, r| {
                // SAFETY: chunks are disjoint row ranges.
                let st = unsafe {
                    RowState {
                        labels: ls.range(r.clone()),
                        ub: us.range(r.clone()),
                        glb: gs.range(r.clone()),
                        stamp: ss.range(r.clone()),
                        lb: bs.range(r.start * t..r.end * t),
                    }
                };
                pass(&x[r.start * d..r.end * d], d, &pk, cref, gr, &dr, st);
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

/// Per-center drift (rounded up slightly, so bounds stay safe) and per-group maximum drift (f64).
/// The per-pass tables of the bounds after the centers moved from `prev` to `centers` (pass
/// `it`): drifts, half gaps, the bound decrements since each earlier pass (tightened by the
/// center history when it is kept) and their row maxima. Extends `cum` (and `hist`).
struct Tables<T> {
    drift: Vec<T>,
    half: Vec<T>,
    dec: Vec<T>,
    gmax: Vec<T>,
}

impl<T: Real> Tables<T> {
    fn drift(&self, it: usize) -> Drift<'_, T> {
        Drift {
            drift: &self.drift,
            half: &self.half,
            dec: &self.dec,
            gmax: &self.gmax,
            it,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn tables<T: Real>(
    prev: &[T],
    centers: &[T],
    pk: &Packed<T>,
    k: usize,
    d: usize,
    gr: Groups,
    it: usize,
    cum: &mut Vec<f64>,
    hist: &mut Vec<T>,
    use_hist: bool,
) -> Tables<T> {
    let t = gr.t;
    let (drift, gdrift) = drifts(prev, centers, k, d, gr);
    let base = cum[(it - 1) * t..it * t].to_vec();
    cum.extend(base.iter().zip(&gdrift).map(|(a, b)| a + b));
    let half = half_gaps(centers, pk, k, d);
    let mut dec = dec_table::<T>(cum, it, t);
    if use_hist {
        hist.extend_from_slice(centers);
        tighten_dec(&mut dec, hist, it, k, d, gr);
    }
    let gmax = row_max(&dec, t);
    Tables {
        drift,
        half,
        dec,
        gmax,
    }
}

fn drifts<T: Real>(prev: &[T], cur: &[T], k: usize, d: usize, gr: Groups) -> (Vec<T>, Vec<f64>) {
    let mut drift = vec![T::ZERO; k];
    let mut gdrift = vec![0.0f64; gr.t];
    for c in 0..k {
        let s = kernel::dist2_f64(&prev[c * d..(c + 1) * d], &cur[c * d..(c + 1) * d]).sqrt();
        drift[c] = if s > 0.0 {
            T::from_f64(s * (1.0 + 1e-6))
        } else {
            T::ZERO
        };
        let g = c / (gr.gb * W);
        gdrift[g] = gdrift[g].max(s);
    }
    (drift, gdrift)
}
