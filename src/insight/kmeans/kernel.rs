//! Distance kernels: centers packed in transposed blocks of [`W`] lanes, tiles of [`P`] points.
//!
//! Squared distances use `||x||^2 - 2 x.c + ||c||^2` computed in the precision of the data (f32
//! data: f32 accumulation), with the dot products in register tiles of `P` points x `W` centers so
//! the loops vectorise. Every chunk-level function is compiled twice: for baseline x86-64 (SSE2,
//! separate multiply and add) and, selected at run time, for AVX2+FMA (the crate's one dispatch,
//! [`crate::simd`]). Results on one machine never depend on the thread count.

use super::{P, W};
use crate::simd::{simd_fn, Fm, MulAdd};
use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Sub};

/// The float types the cores run on (f32 and f64).
pub trait Real:
    MulAdd
    + Copy
    + Send
    + Sync
    + PartialOrd
    + Debug
    + Default
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
{
    const ZERO: Self;
    const INF: Self;
    const TWO: Self;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn sqrt(self) -> Self;
    #[inline(always)]
    fn mx(self, o: Self) -> Self {
        if self > o {
            self
        } else {
            o
        }
    }
    #[inline(always)]
    fn mn(self, o: Self) -> Self {
        if self < o {
            self
        } else {
            o
        }
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const INF: Self = f32::INFINITY;
    const TWO: Self = 2.0;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const INF: Self = f64::INFINITY;
    const TWO: Self = 2.0;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

/// Centers packed for the kernels: block `b` holds centers `b*W .. b*W+W` transposed
/// (`ct[b*d*W + j*W + lane]`), `cn` their squared norms; padding lanes have norm +inf.
#[derive(Clone, Debug)]
pub struct Packed<T> {
    pub k: usize,
    pub d: usize,
    pub nb: usize,
    pub ct: Vec<T>,
    pub cn: Vec<T>,
}

impl<T: Real> Packed<T> {
    /// Packs `k` centers stored row-major (`centers[c*d + j]`).
    pub fn new(centers: &[T], k: usize, d: usize) -> Self {
        let nb = k.div_ceil(W).max(1);
        let mut ct = vec![T::ZERO; nb * d * W];
        let mut cn = vec![T::INF; nb * W];
        for c in 0..k {
            let (b, l) = (c / W, c % W);
            let row = &centers[c * d..(c + 1) * d];
            let mut s = T::ZERO;
            for (j, &v) in row.iter().enumerate() {
                ct[b * d * W + j * W + l] = v;
                s = s + v * v;
            }
            cn[c] = s;
        }
        Packed { k, d, nb, ct, cn }
    }

    /// Width of a row of distances to every packed center (`nb * W`).
    #[inline(always)]
    pub fn width(&self) -> usize {
        self.nb * W
    }
}

/// Squared norm of a row.
#[inline(always)]
pub fn norm2<T: Real, F: Fm>(x: &[T]) -> T {
    let mut s = T::ZERO;
    for &v in x {
        s = F::fma(v, v, s);
    }
    s
}

/// Exact squared distance in f64 (for inertia and bookkeeping).
#[inline(always)]
pub fn dist2_f64<T: Real>(x: &[T], c: &[T]) -> f64 {
    let mut s = 0.0f64;
    for (a, b) in x.iter().zip(c) {
        let t = a.to_f64() - b.to_f64();
        s += t * t;
    }
    s
}

/// Squared distance in the data precision, direct form (accurate, for a single center).
#[inline(always)]
pub fn dist2<T: Real, F: Fm>(x: &[T], c: &[T]) -> T {
    let mut s = T::ZERO;
    for (a, b) in x.iter().zip(c) {
        let t = *a - *b;
        s = F::fma(t, t, s);
    }
    s
}

/// Squared distance in the data precision, direct form, with 8 lane-wise partial sums (so it
/// vectorises instead of running one long dependent chain); used for the Yinyang upper bounds.
#[inline(always)]
pub fn dist2_lanes<T: Real, F: Fm>(x: &[T], c: &[T]) -> T {
    const L: usize = 8;
    let mut acc = [T::ZERO; L];
    let mut a = x.chunks_exact(L);
    let mut b = c[..x.len()].chunks_exact(L);
    for (xa, cb) in (&mut a).zip(&mut b) {
        for w in 0..L {
            let t = xa[w] - cb[w];
            acc[w] = F::fma(t, t, acc[w]);
        }
    }
    let mut r = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (u, v) in a.remainder().iter().zip(b.remainder()) {
        let t = *u - *v;
        r = F::fma(t, t, r);
    }
    r
}

/// Dot products of `P` points (rows `xs[p]`, length `d`) with the `W` centers of one block.
#[inline(always)]
fn tile<T: Real, F: Fm>(xs: &[&[T]; P], d: usize, block: &[T]) -> [[T; W]; P] {
    let mut acc = [[T::ZERO; W]; P];
    let block = &block[..d * W];
    let xs = [&xs[0][..d], &xs[1][..d], &xs[2][..d], &xs[3][..d]];
    for j in 0..d {
        let c: &[T; W] = block[j * W..j * W + W].try_into().unwrap();
        for p in 0..P {
            let xv = xs[p][j];
            for w in 0..W {
                acc[p][w] = F::fma(xv, c[w], acc[p][w]);
            }
        }
    }
    acc
}

/// Dot products of one point with the `W` centers of one block.
#[inline(always)]
fn tile1<T: Real, F: Fm>(x: &[T], d: usize, block: &[T]) -> [T; W] {
    let mut acc = [T::ZERO; W];
    let block = &block[..d * W];
    let x = &x[..d];
    for j in 0..d {
        let c: &[T; W] = block[j * W..j * W + W].try_into().unwrap();
        let xv = x[j];
        for w in 0..W {
            acc[w] = F::fma(xv, c[w], acc[w]);
        }
    }
    acc
}

/// Squared distances of up to `P` points (`rows`, row-major with `d` columns; `xn` their squared
/// norms) to the centers of blocks `b0..b1`: `out[p * stride + (b - b0) * W + lane]`, clamped at 0.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn dist_tile<T: Real, F: Fm>(
    rows: &[T],
    xn: &[T],
    d: usize,
    pk: &Packed<T>,
    b0: usize,
    b1: usize,
    out: &mut [T],
    stride: usize,
) {
    let np = xn.len();
    debug_assert!((1..=P).contains(&np));
    let last = np - 1;
    let xs: [&[T]; P] = std::array::from_fn(|p| {
        let q = p.min(last);
        &rows[q * d..(q + 1) * d]
    });
    for b in b0..b1 {
        let acc = tile::<T, F>(&xs, d, &pk.ct[b * d * W..(b + 1) * d * W]);
        let cn: &[T; W] = pk.cn[b * W..b * W + W].try_into().unwrap();
        let off = (b - b0) * W;
        for p in 0..np {
            let o: &mut [T; W] = (&mut out[p * stride + off..p * stride + off + W])
                .try_into()
                .unwrap();
            let x2 = xn[p];
            for w in 0..W {
                o[w] = (x2 + cn[w] - T::TWO * acc[p][w]).mx(T::ZERO);
            }
        }
    }
}

/// Squared distances of one point to the centers of blocks `b0..b1` (`out[(b - b0) * W + lane]`).
#[inline(always)]
pub fn dist_one<T: Real, F: Fm>(
    x: &[T],
    x2: T,
    d: usize,
    pk: &Packed<T>,
    b0: usize,
    b1: usize,
    out: &mut [T],
) {
    for b in b0..b1 {
        let acc = tile1::<T, F>(x, d, &pk.ct[b * d * W..(b + 1) * d * W]);
        let cn: &[T; W] = pk.cn[b * W..b * W + W].try_into().unwrap();
        let o: &mut [T; W] = (&mut out[(b - b0) * W..(b - b0) * W + W])
            .try_into()
            .unwrap();
        for w in 0..W {
            o[w] = (x2 + cn[w] - T::TWO * acc[w]).mx(T::ZERO);
        }
    }
}

/// Index and value of the minimum of `row[..k]` (first index on ties).
#[inline(always)]
pub fn argmin<T: Real>(row: &[T]) -> (usize, T) {
    let mut bi = 0;
    let mut bv = T::INF;
    for (i, &v) in row.iter().enumerate() {
        if v < bv {
            bv = v;
            bi = i;
        }
    }
    (bi, bv)
}

/// `Some(slice as f32)` when `T` is f32.
#[inline(always)]
pub fn as_f32<T: Real>(s: &[T]) -> Option<&[f32]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32.
        Some(unsafe { std::slice::from_raw_parts(s.as_ptr() as *const f32, s.len()) })
    } else {
        None
    }
}

/// Nearest center of up to `P` rows (`np` of them; `xn` their squared norms): indices and squared
/// distances. The running minimum is kept per lane (vectorised select), reduced at the end with
/// the lowest index winning ties.
#[inline(always)]
pub fn nearest_tile<T: Real, F: Fm>(
    rows: &[T],
    xn: &[T],
    d: usize,
    pk: &Packed<T>,
) -> ([u32; P], [T; P]) {
    #[cfg(target_arch = "x86_64")]
    if F::FUSED {
        if let (Some(r), Some(x2), Some(ct), Some(cn)) =
            (as_f32(rows), as_f32(xn), as_f32(&pk.ct), as_f32(&pk.cn))
        {
            // SAFETY: F::FUSED is only true in code running after AVX2+FMA detection.
            let (i, v) = unsafe { super::avx2::nearest_tile(r, x2, d, ct, cn, pk.nb) };
            return (i, std::array::from_fn(|p| T::from_f64(v[p] as f64)));
        }
    }
    let np = xn.len();
    let last = np - 1;
    let xs: [&[T]; P] = std::array::from_fn(|p| {
        let q = p.min(last);
        &rows[q * d..(q + 1) * d]
    });
    let mut bv = [[T::INF; W]; P];
    // the block of the running minimum, as a float of the data type (same-width select)
    let mut bb = [[T::ZERO; W]; P];
    for b in 0..pk.nb {
        let acc = tile::<T, F>(&xs, d, &pk.ct[b * d * W..(b + 1) * d * W]);
        let cn: &[T; W] = pk.cn[b * W..b * W + W].try_into().unwrap();
        let bf = T::from_f64(b as f64);
        for p in 0..P {
            for w in 0..W {
                let v = cn[w] - T::TWO * acc[p][w];
                let lt = v < bv[p][w];
                bv[p][w] = if lt { v } else { bv[p][w] };
                bb[p][w] = if lt { bf } else { bb[p][w] };
            }
        }
    }
    let bi: [[u32; W]; P] = std::array::from_fn(|p| {
        std::array::from_fn(|w| (bb[p][w].to_f64() as usize * W + w) as u32)
    });
    let mut idx = [0u32; P];
    let mut d2 = [T::ZERO; P];
    for p in 0..np {
        let (mut i, mut v) = (bi[p][0], bv[p][0]);
        for w in 1..W {
            if bv[p][w] < v || (bv[p][w] == v && bi[p][w] < i) {
                v = bv[p][w];
                i = bi[p][w];
            }
        }
        idx[p] = i;
        d2[p] = (xn[p] + v).mx(T::ZERO);
    }
    (idx, d2)
}

#[inline(always)]
fn nearest_imp<T: Real, F: Fm>(x: &[T], d: usize, pk: &Packed<T>, idx: &mut [u32], d2: &mut [T]) {
    let n = idx.len();
    #[cfg(target_arch = "x86_64")]
    if F::FUSED {
        if let (Some(x32), Some(ct), Some(cn)) = (as_f32(x), as_f32(&pk.ct), as_f32(&pk.cn)) {
            const R: usize = super::avx2::R;
            let mut xn = [0f32; R];
            let mut i = 0;
            while i < n {
                let np = (n - i).min(R);
                let rows = &x32[i * d..(i + np) * d];
                for p in 0..np {
                    xn[p] = norm2::<f32, F>(&rows[p * d..(p + 1) * d]);
                }
                // SAFETY: F::FUSED is only true in code running after AVX2+FMA detection.
                let (bi, bv) =
                    unsafe { super::avx2::nearest_rows(rows, &xn[..np], d, ct, cn, pk.nb) };
                idx[i..i + np].copy_from_slice(&bi[..np]);
                for p in 0..np {
                    d2[i + p] = T::from_f64(bv[p] as f64);
                }
                i += np;
            }
            return;
        }
    }
    let mut xn = [T::ZERO; P];
    let mut i = 0;
    while i < n {
        let np = (n - i).min(P);
        let rows = &x[i * d..(i + np) * d];
        for p in 0..np {
            xn[p] = norm2::<T, F>(&rows[p * d..(p + 1) * d]);
        }
        let (bi, bv) = nearest_tile::<T, F>(rows, &xn[..np], d, pk);
        idx[i..i + np].copy_from_slice(&bi[..np]);
        d2[i..i + np].copy_from_slice(&bv[..np]);
        i += np;
    }
}

/// Over the centers of blocks `b0..b1`: (index of the nearest, its squared distance, the second
/// smallest squared distance).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn group_top2<T: Real, F: Fm>(
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
        if let (Some(x), Some(ct), Some(cn)) = (as_f32(xr), as_f32(&pk.ct), as_f32(&pk.cn)) {
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

simd_fn!(
    /// Nearest packed center of each row of `x` (`idx.len()` rows) and its squared distance
    /// (kernel precision).
    pub fn nearest<T: Real>(x: &[T], d: usize, pk: &Packed<T>, idx: &mut [u32], d2: &mut [T]) -> () = nearest_imp
);

#[inline(always)]
fn all_dist_imp<T: Real, F: Fm>(x: &[T], d: usize, pk: &Packed<T>, out: &mut [T]) {
    let k = pk.k;
    let n = out.len() / k.max(1);
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
            out[(i + p) * k..(i + p + 1) * k].copy_from_slice(&buf[p * width..p * width + k]);
        }
        i += np;
    }
}

simd_fn!(
    /// Squared distances of every row of `x` to every center (`out[i*k + c]`).
    pub fn all_dist<T: Real>(x: &[T], d: usize, pk: &Packed<T>, out: &mut [T]) -> () = all_dist_imp
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_direct_distances() {
        let (n, d, k) = (13, 5, 37);
        let x: Vec<f64> = (0..n * d)
            .map(|i| ((i * 7919) % 101) as f64 / 10.0)
            .collect();
        let c: Vec<f64> = (0..k * d)
            .map(|i| ((i * 104_729) % 97) as f64 / 9.0)
            .collect();
        let pk = Packed::new(&c, k, d);
        let mut out = vec![0.0; n * k];
        all_dist(&x, d, &pk, &mut out);
        let mut idx = vec![0u32; n];
        let mut d2 = vec![0.0; n];
        nearest(&x, d, &pk, &mut idx, &mut d2);
        for i in 0..n {
            let mut best = (0, f64::INFINITY);
            for cc in 0..k {
                let e = dist2_f64(&x[i * d..(i + 1) * d], &c[cc * d..(cc + 1) * d]);
                assert!((out[i * k + cc] - e).abs() < 1e-9 * (1.0 + e), "{i} {cc}");
                if e < best.1 {
                    best = (cc, e);
                }
            }
            assert_eq!(idx[i] as usize, best.0);
            assert!((d2[i] - best.1).abs() < 1e-9 * (1.0 + best.1));
        }
    }

    #[test]
    fn f32_kernels_find_the_nearest_center() {
        // exercises the AVX2 f32 paths where the CPU has them
        // (GROWTHMACHINE_NO_SIMD=1 selects the baseline path)
        for (n, d, k) in [(37, 3, 5), (101, 16, 70), (64, 7, 33), (9, 16, 1)] {
            let x: Vec<f32> = (0..n * d)
                .map(|i| ((i * 7919) % 211) as f32 / 13.0)
                .collect();
            let c: Vec<f32> = (0..k * d)
                .map(|i| ((i * 104_729) % 197) as f32 / 11.0)
                .collect();
            let pk = Packed::new(&c, k, d);
            let mut idx = vec![0u32; n];
            let mut d2 = vec![0f32; n];
            nearest(&x, d, &pk, &mut idx, &mut d2);
            for i in 0..n {
                let row = &x[i * d..(i + 1) * d];
                let all: Vec<f64> = (0..k)
                    .map(|cc| dist2_f64(row, &c[cc * d..(cc + 1) * d]))
                    .collect();
                let best = all.iter().cloned().fold(f64::INFINITY, f64::min);
                let got = all[idx[i] as usize];
                assert!(
                    got <= best + 1e-3 * (1.0 + best),
                    "n={n} d={d} k={k} row {i}"
                );
                assert!((d2[i] as f64 - best).abs() <= 1e-3 * (1.0 + best));
            }
        }
    }
}
