//! AVX-512F versions of the f32 kernels of [`super::avx2`] (16 lanes per register, tiles of
//! 4 rows x 32 centers). Selected at run time when the CPU has AVX-512F; same arithmetic per lane
//! (one fused multiply-add per coordinate, in coordinate order) as the AVX2 kernels.
#![cfg(target_arch = "x86_64")]

use super::kernel::{P, W};
use std::arch::x86_64::*;

/// True if the CPU has AVX-512F (checked once; env `GROWTHMACHINE_NO_AVX512` disables it).
#[inline]
pub fn available() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static S: AtomicU8 = AtomicU8::new(0);
    match S.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let ok = std::env::var_os("GROWTHMACHINE_NO_AVX512").is_none()
                && is_x86_feature_detected!("avx512f");
            S.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
            ok
        }
    }
}

#[inline(always)]
fn row_ptrs(rows: &[f32], np: usize, d: usize) -> [*const f32; P] {
    let last = np - 1;
    std::array::from_fn(|p| rows[p.min(last) * d..].as_ptr())
}

/// `cn - 2 x.c` for 4 rows and the 16 centers of block `b` (`a[p]`), and of block `b + 1`
/// (`a[P + p]`) when `two` is set.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn vals(
    xp: &[*const f32; P],
    d: usize,
    ct: *const f32,
    cn: *const f32,
    b: usize,
    pair: bool,
) -> [__m512; 2 * P] {
    let mut a = [_mm512_setzero_ps(); 2 * P];
    let c0p = ct.add(b * d * W);
    if pair {
        let c1p = ct.add((b + 1) * d * W);
        for j in 0..d {
            let c0 = _mm512_loadu_ps(c0p.add(j * W));
            let c1 = _mm512_loadu_ps(c1p.add(j * W));
            for p in 0..P {
                let xv = _mm512_set1_ps(*xp[p].add(j));
                a[p] = _mm512_fmadd_ps(xv, c0, a[p]);
                a[P + p] = _mm512_fmadd_ps(xv, c1, a[P + p]);
            }
        }
    } else {
        for j in 0..d {
            let c0 = _mm512_loadu_ps(c0p.add(j * W));
            for p in 0..P {
                let xv = _mm512_set1_ps(*xp[p].add(j));
                a[p] = _mm512_fmadd_ps(xv, c0, a[p]);
            }
        }
    }
    let two = _mm512_set1_ps(2.0);
    let n0 = _mm512_loadu_ps(cn.add(b * W));
    for p in 0..P {
        a[p] = _mm512_fnmadd_ps(two, a[p], n0);
    }
    if pair {
        let n1 = _mm512_loadu_ps(cn.add((b + 1) * W));
        for p in 0..P {
            a[P + p] = _mm512_fnmadd_ps(two, a[P + p], n1);
        }
    }
    a
}

/// See [`super::avx2::nearest_tile`].
///
/// # Safety
/// The CPU must support AVX-512F; `ct`/`cn` must be a packed layout of `nb` blocks.
#[target_feature(enable = "avx512f")]
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
    let xp = row_ptrs(rows, np, d);
    let mut bv = [_mm512_set1_ps(f32::INFINITY); P];
    let mut bb = [_mm512_setzero_ps(); P];
    let mut b = 0;
    while b < nb {
        let pair = b + 1 < nb;
        let v = vals(&xp, d, ct.as_ptr(), cn.as_ptr(), b, pair);
        let bf = _mm512_set1_ps(b as f32);
        for p in 0..P {
            let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v[p], bv[p]);
            bv[p] = _mm512_mask_blend_ps(m, bv[p], v[p]);
            bb[p] = _mm512_mask_blend_ps(m, bb[p], bf);
        }
        if pair {
            let bf = _mm512_set1_ps((b + 1) as f32);
            for p in 0..P {
                let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v[P + p], bv[p]);
                bv[p] = _mm512_mask_blend_ps(m, bv[p], v[P + p]);
                bb[p] = _mm512_mask_blend_ps(m, bb[p], bf);
            }
        }
        b += 2;
    }
    let mut idx = [0u32; P];
    let mut d2 = [0f32; P];
    let mut vals_ = [0f32; W];
    let mut blks = [0f32; W];
    for p in 0..np {
        _mm512_storeu_ps(vals_.as_mut_ptr(), bv[p]);
        _mm512_storeu_ps(blks.as_mut_ptr(), bb[p]);
        let (mut i, mut v) = (u32::MAX, f32::INFINITY);
        for w in 0..W {
            let c = blks[w] as u32 * W as u32 + w as u32;
            if vals_[w] < v || (vals_[w] == v && c < i) {
                v = vals_[w];
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

/// (min, lane of min (first on ties), second min) of 16 lanes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn top2(v: __m512) -> (f32, usize, f32) {
    let m1 = _mm512_reduce_min_ps(v);
    let eq = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v, _mm512_set1_ps(m1));
    if eq == 0 {
        return (f32::INFINITY, 0, f32::INFINITY);
    }
    let i1 = eq.trailing_zeros() as usize;
    let w = _mm512_mask_blend_ps(1u16 << i1, v, _mm512_set1_ps(f32::INFINITY));
    (m1, i1, _mm512_reduce_min_ps(w))
}

/// See [`super::avx2::block_top2`].
///
/// # Safety
/// The CPU must support AVX-512F; layout as in [`nearest_tile`].
#[target_feature(enable = "avx512f")]
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
    let xp = row_ptrs(rows, np, d);
    for o in out.iter_mut() {
        o.clear();
    }
    let mut b = b0;
    while b < b1 {
        let pair = b + 1 < b1;
        let v = vals(&xp, d, ct.as_ptr(), cn.as_ptr(), b, pair);
        for p in 0..np {
            let (m1, i1, m2) = top2(v[p]);
            out[p].push((m1, (b * W + i1) as u32, m2));
        }
        if pair {
            for p in 0..np {
                let (m1, i1, m2) = top2(v[P + p]);
                out[p].push((m1, ((b + 1) * W + i1) as u32, m2));
            }
        }
        b += 2;
    }
}

/// See [`super::avx2::group_top2`].
///
/// # Safety
/// The CPU must support AVX-512F; layout as in [`nearest_tile`].
#[target_feature(enable = "avx512f")]
pub unsafe fn group_top2(
    x: &[f32],
    d: usize,
    ct: &[f32],
    cn: &[f32],
    b0: usize,
    b1: usize,
) -> (f32, u32, f32) {
    assert!(x.len() >= d && ct.len() >= b1 * d * W && cn.len() >= b1 * W);
    let two = _mm512_set1_ps(2.0);
    let (mut m1, mut i1, mut m2) = (f32::INFINITY, 0u32, f32::INFINITY);
    for b in b0..b1 {
        let cb = ct.as_ptr().add(b * d * W);
        let mut a0 = _mm512_setzero_ps();
        let mut a1 = _mm512_setzero_ps();
        let mut j = 0;
        while j + 1 < d {
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[j]), _mm512_loadu_ps(cb.add(j * W)), a0);
            a1 = _mm512_fmadd_ps(
                _mm512_set1_ps(x[j + 1]),
                _mm512_loadu_ps(cb.add(j * W + W)),
                a1,
            );
            j += 2;
        }
        if j < d {
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[j]), _mm512_loadu_ps(cb.add(j * W)), a0);
        }
        let v = _mm512_fnmadd_ps(
            two,
            _mm512_add_ps(a0, a1),
            _mm512_loadu_ps(cn.as_ptr().add(b * W)),
        );
        let (bm1, bi1, bm2) = top2(v);
        if bm1 < m1 {
            m2 = m1.min(bm2);
            m1 = bm1;
            i1 = (b * W + bi1) as u32;
        } else {
            m2 = m2.min(bm1);
        }
    }
    (m1, i1, m2)
}
