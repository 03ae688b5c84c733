//! Hand-written AVX2+FMA versions of the f32 hot spots (the generic code vectorises the dot
//! products but not the running arg-min selections). Only called from code compiled with
//! `avx2,fma` after run-time detection (the crate's one dispatch, [`crate::simd`]).
#![cfg(target_arch = "x86_64")]

use super::{P, W};
use std::arch::x86_64::*;

/// Dot-product tile of `N` rows ([`P`] or [`R`]) x one block of 16 centers, returned as
/// `cn - 2 x.c` per lane in `2 N` registers (`[p][half]`); per lane the same operations in the
/// same order for every `N` and as [`one_vals`] (so the values are bit-identical).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block_vals<const N: usize>(
    xp: &[*const f32; N],
    d: usize,
    cb: *const f32,
    cnb: *const f32,
) -> [[__m256; 2]; N] {
    let mut a = [[_mm256_setzero_ps(); 2]; N];
    for j in 0..d {
        let c0 = _mm256_loadu_ps(cb.add(j * W));
        let c1 = _mm256_loadu_ps(cb.add(j * W + 8));
        for p in 0..N {
            let xv = _mm256_broadcast_ss(&*xp[p].add(j));
            a[p][0] = _mm256_fmadd_ps(xv, c0, a[p][0]);
            a[p][1] = _mm256_fmadd_ps(xv, c1, a[p][1]);
        }
    }
    let two = _mm256_set1_ps(2.0);
    let cn0 = _mm256_loadu_ps(cnb);
    let cn1 = _mm256_loadu_ps(cnb.add(8));
    for ap in a.iter_mut() {
        ap[0] = _mm256_fnmadd_ps(two, ap[0], cn0);
        ap[1] = _mm256_fnmadd_ps(two, ap[1], cn1);
    }
    a
}

/// Pointers to `N` rows of `rows` (the first `np`; the last one repeated to fill the tile).
#[inline(always)]
fn row_ptrs<const N: usize>(rows: &[f32], np: usize, d: usize) -> [*const f32; N] {
    let last = np - 1;
    std::array::from_fn(|p| rows[p.min(last) * d..].as_ptr())
}

/// Nearest center of up to 4 rows: (index, squared distance).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `ct`/`cn` must be a packed layout of `nb` blocks.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn nearest_tile(
    rows: &[f32],
    xn: &[f32],
    d: usize,
    ct: &[f32],
    cn: &[f32],
    nb: usize,
) -> ([u32; P], [f32; P]) {
    let np = xn.len();
    assert!(np >= 1 && rows.len() >= np * d && ct.len() >= nb * d * W && cn.len() >= nb * W);
    let xp = row_ptrs::<P>(rows, np, d);
    let mut bv = [_mm256_set1_ps(f32::INFINITY); 8];
    let mut bb = [_mm256_setzero_ps(); 8];
    for b in 0..nb {
        let v = block_vals::<P>(&xp, d, ct.as_ptr().add(b * d * W), cn.as_ptr().add(b * W));
        let bf = _mm256_set1_ps(b as f32);
        for r in 0..8 {
            let vr = v[r / 2][r % 2];
            let m = _mm256_cmp_ps::<_CMP_LT_OQ>(vr, bv[r]);
            bv[r] = _mm256_blendv_ps(bv[r], vr, m);
            bb[r] = _mm256_blendv_ps(bb[r], bf, m);
        }
    }
    let mut vals = [[0f32; W]; P];
    let mut blks = [[0f32; W]; P];
    for p in 0..P {
        _mm256_storeu_ps(vals[p].as_mut_ptr(), bv[2 * p]);
        _mm256_storeu_ps(vals[p].as_mut_ptr().add(8), bv[2 * p + 1]);
        _mm256_storeu_ps(blks[p].as_mut_ptr(), bb[2 * p]);
        _mm256_storeu_ps(blks[p].as_mut_ptr().add(8), bb[2 * p + 1]);
    }
    let mut idx = [0u32; P];
    let mut d2 = [0f32; P];
    for p in 0..np {
        let (mut i, mut v) = (u32::MAX, f32::INFINITY);
        for w in 0..W {
            let c = blks[p][w] as u32 * W as u32 + w as u32;
            if vals[p][w] < v || (vals[p][w] == v && c < i) {
                v = vals[p][w];
                i = c;
            }
        }
        if i == u32::MAX {
            i = 0;
        }
        idx[p] = i;
        d2[p] = (xn[p] + v).max(0.0);
    }
    (idx, d2)
}

/// Smallest value, its lane (first on ties) and the second smallest of 16 lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn top2(v0: __m256, v1: __m256) -> (f32, usize, f32) {
    let m = _mm256_min_ps(v0, v1);
    let m = _mm256_min_ps(m, _mm256_permute2f128_ps::<1>(m, m));
    let m = _mm256_min_ps(m, _mm256_shuffle_ps::<0b01_00_11_10>(m, m));
    let m = _mm256_min_ps(m, _mm256_shuffle_ps::<0b10_11_00_01>(m, m));
    let m1 = _mm256_cvtss_f32(m);
    let e0 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(v0, m)) as u32;
    let e1 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(v1, m)) as u32;
    let mask = e0 | (e1 << 8);
    if mask == 0 {
        // all lanes are NaN/inf: no finite minimum
        return (f32::INFINITY, 0, f32::INFINITY);
    }
    let i1 = mask.trailing_zeros() as usize;
    // second smallest: the minimum with lane i1 replaced by +inf
    let lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    let k0 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lane, _mm256_set1_epi32(i1 as i32)));
    let k1 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lane, _mm256_set1_epi32(i1 as i32 - 8)));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let w0 = _mm256_blendv_ps(v0, inf, k0);
    let w1 = _mm256_blendv_ps(v1, inf, k1);
    let s = _mm256_min_ps(w0, w1);
    let s = _mm256_min_ps(s, _mm256_permute2f128_ps::<1>(s, s));
    let s = _mm256_min_ps(s, _mm256_shuffle_ps::<0b01_00_11_10>(s, s));
    let s = _mm256_min_ps(s, _mm256_shuffle_ps::<0b10_11_00_01>(s, s));
    (m1, i1, _mm256_cvtss_f32(s))
}

/// For up to 4 rows and blocks `b0..b1`: per block, (min, lane of min, second min) of the squared
/// distances minus `||x||^2` (i.e. `||c||^2 - 2 x.c`), written to `out[p][b - b0]`.
///
/// # Safety
/// The CPU must support AVX2 and FMA; layout as in [`nearest_tile`].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn block_top2(
    rows: &[f32],
    np: usize,
    d: usize,
    ct: &[f32],
    cn: &[f32],
    b0: usize,
    b1: usize,
    out: &mut [Vec<(f32, u32, f32)>; P],
) {
    assert!((1..=P).contains(&np) && rows.len() >= np * d && ct.len() >= b1 * d * W);
    assert!(cn.len() >= b1 * W);
    let xp = row_ptrs::<P>(rows, np, d);
    for o in out.iter_mut() {
        o.clear();
    }
    for b in b0..b1 {
        let v = block_vals::<P>(&xp, d, ct.as_ptr().add(b * d * W), cn.as_ptr().add(b * W));
        for p in 0..np {
            let (m1, i1, m2) = top2(v[p][0], v[p][1]);
            out[p].push((m1, (b * W + i1) as u32, m2));
        }
    }
}

/// `cn - 2 x.c` of one row against one block (two registers of 8 lanes).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn row_block(x: &[f32], d: usize, cb: *const f32, cnb: *const f32) -> (__m256, __m256) {
    let mut a0 = _mm256_setzero_ps();
    let mut a1 = _mm256_setzero_ps();
    let mut c0 = _mm256_setzero_ps();
    let mut c1 = _mm256_setzero_ps();
    let mut j = 0;
    while j + 1 < d {
        let x0 = _mm256_set1_ps(*x.get_unchecked(j));
        let x1 = _mm256_set1_ps(*x.get_unchecked(j + 1));
        a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(cb.add(j * W)), a0);
        a1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(cb.add(j * W + 8)), a1);
        c0 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(cb.add(j * W + W)), c0);
        c1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(cb.add(j * W + W + 8)), c1);
        j += 2;
    }
    if j < d {
        let x0 = _mm256_set1_ps(*x.get_unchecked(j));
        a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(cb.add(j * W)), a0);
        a1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(cb.add(j * W + 8)), a1);
    }
    a0 = _mm256_add_ps(a0, c0);
    a1 = _mm256_add_ps(a1, c1);
    let two = _mm256_set1_ps(2.0);
    (
        _mm256_fnmadd_ps(two, a0, _mm256_loadu_ps(cnb)),
        _mm256_fnmadd_ps(two, a1, _mm256_loadu_ps(cnb.add(8))),
    )
}

/// One row against blocks `b0..b1`: the (min, index, second min) of `||c||^2 - 2 x.c` over all
/// their centers (lowest index on ties). Blocks go in pairs: lane-wise low/high of the two
/// blocks, then one top-2 over the lows (the second minimum is the smaller of the lows' second
/// minimum and the high in the winning lane).
///
/// # Safety
/// The CPU must support AVX2 and FMA; layout as in [`nearest_tile`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn group_top2(
    x: &[f32],
    d: usize,
    ct: &[f32],
    cn: &[f32],
    b0: usize,
    b1: usize,
) -> (f32, u32, f32) {
    assert!(x.len() >= d && ct.len() >= b1 * d * W && cn.len() >= b1 * W);
    let (mut m1, mut i1, mut m2) = (f32::INFINITY, 0u32, f32::INFINITY);
    let mut b = b0;
    while b < b1 {
        let (bm1, bi1, bm2) = if b + 1 < b1 {
            let (p0, p1) = row_block(x, d, ct.as_ptr().add(b * d * W), cn.as_ptr().add(b * W));
            let (q0, q1) = row_block(
                x,
                d,
                ct.as_ptr().add((b + 1) * d * W),
                cn.as_ptr().add((b + 1) * W),
            );
            // block b wins ties (lower indices)
            let k0 = _mm256_cmp_ps::<_CMP_LT_OQ>(q0, p0);
            let k1 = _mm256_cmp_ps::<_CMP_LT_OQ>(q1, p1);
            let lo0 = _mm256_blendv_ps(p0, q0, k0);
            let lo1 = _mm256_blendv_ps(p1, q1, k1);
            let hi0 = _mm256_blendv_ps(q0, p0, k0);
            let hi1 = _mm256_blendv_ps(q1, p1, k1);
            let lm1 = hmin8(_mm256_min_ps(lo0, lo1));
            let mv = _mm256_set1_ps(lm1);
            let eq = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(lo0, mv)) as u32
                | ((_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(lo1, mv)) as u32) << 8);
            if eq == 0 {
                // no finite minimum (all lanes NaN/inf)
                (f32::INFINITY, 0, f32::INFINITY)
            } else {
                // lanes whose low came from block b+1; lowest center index wins ties
                let fq = _mm256_movemask_ps(k0) as u32 | ((_mm256_movemask_ps(k1) as u32) << 8);
                let (lane, bb) = if eq & !fq != 0 {
                    ((eq & !fq).trailing_zeros() as usize, b)
                } else {
                    (eq.trailing_zeros() as usize, b + 1)
                };
                let lv = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
                let s0 =
                    _mm256_castsi256_ps(_mm256_cmpeq_epi32(lv, _mm256_set1_epi32(lane as i32)));
                let s1 =
                    _mm256_castsi256_ps(_mm256_cmpeq_epi32(lv, _mm256_set1_epi32(lane as i32 - 8)));
                // second minimum: the lows with the winning lane replaced by its high
                let w0 = _mm256_blendv_ps(lo0, hi0, s0);
                let w1 = _mm256_blendv_ps(lo1, hi1, s1);
                (lm1, (bb * W + lane) as u32, hmin8(_mm256_min_ps(w0, w1)))
            }
        } else {
            let (v0, v1) = row_block(x, d, ct.as_ptr().add(b * d * W), cn.as_ptr().add(b * W));
            let (bm1, bi1, bm2) = top2(v0, v1);
            (bm1, (b * W + bi1) as u32, bm2)
        };
        if bm1 < m1 {
            m2 = m1.min(bm2);
            m1 = bm1;
            i1 = bi1;
        } else {
            m2 = m2.min(bm1);
        }
        b += 2;
    }
    (m1, i1, m2)
}

/// Horizontal minimum of 8 lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn hmin8(m: __m256) -> f32 {
    let m = _mm256_min_ps(m, _mm256_permute2f128_ps::<1>(m, m));
    let m = _mm256_min_ps(m, _mm256_shuffle_ps::<0b01_00_11_10>(m, m));
    let m = _mm256_min_ps(m, _mm256_shuffle_ps::<0b10_11_00_01>(m, m));
    _mm256_cvtss_f32(m)
}

/// Rows per tile of the wide kernels ([`nearest_rows`], [`group_mins`]): 6 rows x 16 centers
/// keep 12 accumulators in flight (the 4-row tile's 8 only just cover the FMA latency).
pub const R: usize = 6;

/// `cn - 2 x.c` of one row against one block, computed exactly as in [`block_vals`].
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn one_vals(x: *const f32, d: usize, cb: *const f32, cnb: *const f32) -> [f32; W] {
    let mut a0 = _mm256_setzero_ps();
    let mut a1 = _mm256_setzero_ps();
    for j in 0..d {
        let xv = _mm256_broadcast_ss(&*x.add(j));
        a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(cb.add(j * W)), a0);
        a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(cb.add(j * W + 8)), a1);
    }
    let two = _mm256_set1_ps(2.0);
    a0 = _mm256_fnmadd_ps(two, a0, _mm256_loadu_ps(cnb));
    a1 = _mm256_fnmadd_ps(two, a1, _mm256_loadu_ps(cnb.add(8)));
    let mut out = [0f32; W];
    _mm256_storeu_ps(out.as_mut_ptr(), a0);
    _mm256_storeu_ps(out.as_mut_ptr().add(8), a1);
    out
}

/// Nearest center of up to [`R`] rows (`xn.len()` of them): (index, squared distance), the same
/// result as [`nearest_tile`] (lowest index on ties). Per lane pair (`w`, `w + 8`) the running
/// minimum and the first block reaching it are kept; the winner's index is then found by
/// recomputing that block for the row (bit-identical values).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `ct`/`cn` must be a packed layout of `nb` blocks.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn nearest_rows(
    rows: &[f32],
    xn: &[f32],
    d: usize,
    ct: &[f32],
    cn: &[f32],
    nb: usize,
) -> ([u32; R], [f32; R]) {
    let np = xn.len();
    assert!((1..=R).contains(&np) && rows.len() >= np * d);
    assert!(ct.len() >= nb * d * W && cn.len() >= nb * W);
    let xp = row_ptrs::<R>(rows, np, d);
    let mut bv = [_mm256_set1_ps(f32::INFINITY); R];
    let mut bb = [_mm256_setzero_ps(); R];
    for b in 0..nb {
        let v = block_vals::<R>(&xp, d, ct.as_ptr().add(b * d * W), cn.as_ptr().add(b * W));
        let bf = _mm256_set1_ps(b as f32);
        for p in 0..R {
            let m = _mm256_min_ps(v[p][0], v[p][1]);
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(m, bv[p]);
            bv[p] = _mm256_blendv_ps(bv[p], m, lt);
            bb[p] = _mm256_blendv_ps(bb[p], bf, lt);
        }
    }
    let mut idx = [0u32; R];
    let mut d2 = [0f32; R];
    for p in 0..np {
        let mut vals = [0f32; 8];
        let mut blks = [0f32; 8];
        _mm256_storeu_ps(vals.as_mut_ptr(), bv[p]);
        _mm256_storeu_ps(blks.as_mut_ptr(), bb[p]);
        let v = vals
            .iter()
            .fold(f32::INFINITY, |m, &x| if x < m { x } else { m });
        let mut i = u32::MAX;
        if v < f32::INFINITY {
            for w in 0..8 {
                if vals[w] == v {
                    let b = blks[w] as usize;
                    let o = one_vals(xp[p], d, ct.as_ptr().add(b * d * W), cn.as_ptr().add(b * W));
                    for l in [w, w + 8] {
                        if o[l] == v {
                            i = i.min((b * W + l) as u32);
                        }
                    }
                }
            }
        }
        if i == u32::MAX {
            i = 0;
        }
        idx[p] = i;
        d2[p] = (xn[p] + v).max(0.0);
    }
    (idx, d2)
}

/// For up to [`R`] rows and groups of `gb` blocks (`nb` blocks in all, the last group may be
/// shorter): per group, the minimum over its centers of `||c||^2 - 2 x.c` (`gmin[p][g]`), and
/// the group holding the overall minimum (`best[p]`; lowest group on ties). One sweep over the
/// centers with lane-wise minima; the caller finds the nearest center inside `best` (and the
/// second nearest) with [`group_top2`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; layout as in [`nearest_tile`]; `gmin[p]` has room for
/// `nb.div_ceil(gb)` values.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn group_mins(
    rows: &[f32],
    np: usize,
    d: usize,
    ct: &[f32],
    cn: &[f32],
    nb: usize,
    gb: usize,
    gmin: &mut [Vec<f32>; R],
) -> [usize; R] {
    assert!((1..=R).contains(&np) && rows.len() >= np * d && ct.len() >= nb * d * W);
    assert!(cn.len() >= nb * W && gb >= 1);
    let t = nb.div_ceil(gb);
    for g in gmin.iter_mut().take(np) {
        assert!(g.len() >= t);
    }
    let xp = row_ptrs::<R>(rows, np, d);
    let inf = _mm256_set1_ps(f32::INFINITY);
    let mut best = [0usize; R];
    let mut bestv = [f32::INFINITY; R];
    for g in 0..t {
        let (b0, b1) = (g * gb, ((g + 1) * gb).min(nb));
        let mut gm = [inf; R];
        for b in b0..b1 {
            let v = block_vals::<R>(&xp, d, ct.as_ptr().add(b * d * W), cn.as_ptr().add(b * W));
            for p in 0..R {
                gm[p] = _mm256_min_ps(gm[p], _mm256_min_ps(v[p][0], v[p][1]));
            }
        }
        for p in 0..np {
            let m = hmin8(gm[p]);
            *gmin[p].get_unchecked_mut(g) = m;
            if m < bestv[p] {
                bestv[p] = m;
                best[p] = g;
            }
        }
    }
    best
}
