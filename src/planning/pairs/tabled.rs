//! The summation kernel of [`super`] when every tree has its table of regions: each user's
//! region per tree is found first, then the regions' packed rows are summed a few users at a
//! time over groups of trees whose tables fit the cache, with the widest vector instructions the
//! CPU has (the same additions in the same order whatever they are). With AVX-512 the sums are
//! written with intrinsics ([`sum_rows_avx512`]): the portable [`sum_rows`], even inlined into
//! a function compiled for AVX-512, became a mix of 128- and 256-bit additions (and, passed as
//! a closure, plain SSE2).

use super::*;

/// Values a region's packed row is added by, together (a row is padded to a multiple).
pub(super) const LANES: usize = 8;

/// The length of a region's packed row: `2k` values padded to a multiple of [`LANES`].
pub(super) fn packed_stride(k: usize) -> usize {
    (2 * k).div_ceil(LANES) * LANES
}

/// [`Resolver::add_codes`] when every tree has its table of regions ([`add_tabled_with`]),
/// with the widest vector instructions the CPU has (the same additions in the same order, so
/// the same numbers whatever the instructions: Rust never fuses a multiply and an add).
pub(super) fn add_tabled<const W: usize>(
    trees: &[Compiled<W>],
    e: &mut [f64],
    s: &mut [f64],
    codes: &[u8],
    m: usize,
    k: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has AVX-512F, BW and VL (checked just above).
            return unsafe { add_tabled_avx512(trees, e, s, codes, m, k) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { add_tabled_avx2(trees, e, s, codes, m, k) };
        }
    }
    add_tabled_with::<W, false>(trees, e, s, codes, m, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn add_tabled_avx512<const W: usize>(
    trees: &[Compiled<W>],
    e: &mut [f64],
    s: &mut [f64],
    codes: &[u8],
    m: usize,
    k: usize,
) {
    add_tabled_with::<W, true>(trees, e, s, codes, m, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_tabled_avx2<const W: usize>(
    trees: &[Compiled<W>],
    e: &mut [f64],
    s: &mut [f64],
    codes: &[u8],
    m: usize,
    k: usize,
) {
    add_tabled_with::<W, false>(trees, e, s, codes, m, k)
}

/// Rows whose sums [`add_tabled_with`] keeps together (independent additions in flight).
pub(super) const ROWS_AT_ONCE: usize = 4;
/// Rows of a block of [`add_tabled_with`].
pub(super) const TABLED_BLOCK: usize = 512;
/// Most bytes of packed region rows of the trees whose sums [`add_tabled_with`] adds together
/// (they stay in a core's L2 cache while every row of a block adds them).
const CHUNK_BYTES: usize = 384 << 10;

/// [`Resolver::add_codes`] when every tree has its table of regions, in two passes over a
/// block of rows. First each tree's region of every row of the block: the tree's splits one
/// at a time over the block's codes (a column per coded feature), each clearing the leaf bits
/// of the side the row does not take (the same bits [`Compiled::add_code`] keeps), then the
/// region of the bits. Then, for a chunk of trees at a time (their packed rows fit the L2
/// cache), each row's sums, [`LANES`] at a time, are loaded into registers, the chunk's
/// packed rows of its regions added tree by tree, and stored ([`ROWS_AT_ONCE`] rows
/// together). Each sum starts at `+0.0` and adds the trees in order, the same additions as
/// [`Compiled::add_code`] into a zeroed `e` and `s`, so the same numbers bit for bit; `e` and
/// `s` (zero on entry) are set to them.
#[inline(always)]
///
/// `AVX512`: the sums by [`sum_rows_avx512`] (only from [`add_tabled_avx512`], which runs
/// after the CPU's AVX-512F, BW and VL were detected), else by [`sum_rows`]: the same additions.
pub(super) fn add_tabled_with<const W: usize, const AVX512: bool>(
    trees: &[Compiled<W>],
    e: &mut [f64],
    s: &mut [f64],
    codes: &[u8],
    m: usize,
    k: usize,
) {
    if k == 0 || trees.is_empty() {
        return;
    }
    let nt = trees.len();
    let stride = packed_stride(k);
    let rows = e.len() / k;
    let tables: Vec<&[f64]> = trees
        .iter()
        .map(|t| t.regions.as_ref().expect("tabled").packed.as_slice())
        .collect();
    // chunks of trees: [t0, t1) with at most CHUNK_BYTES of packed rows (at least one tree)
    let mut chunks = Vec::new();
    let mut t0 = 0;
    while t0 < nt {
        let mut t1 = t0 + 1;
        let mut bytes = 8 * tables[t0].len();
        while t1 < nt && bytes + 8 * tables[t1].len() <= CHUNK_BYTES {
            bytes += 8 * tables[t1].len();
            t1 += 1;
        }
        chunks.push((t0, t1));
        t0 = t1;
    }
    let mut cols = vec![0u8; m * TABLED_BLOCK];
    let mut bits = [[0u64; W]; TABLED_BLOCK];
    let mut reg = vec![0u32; TABLED_BLOCK * nt];
    let mut acc = vec![0.0f64; TABLED_BLOCK * stride];
    for a in (0..rows).step_by(TABLED_BLOCK) {
        let nb = TABLED_BLOCK.min(rows - a);
        for (r, code) in codes[a * m..(a + nb) * m].chunks_exact(m).enumerate() {
            for (c, &b) in code.iter().enumerate() {
                cols[c * TABLED_BLOCK + r] = b;
            }
        }
        for (t, tr) in trees.iter().enumerate() {
            let v = &mut bits[..nb];
            v.fill(tr.all);
            for sp in &tr.splits {
                let col = &cols[sp.col * TABLED_BLOCK..sp.col * TABLED_BLOCK + nb];
                let (right, left) = (sp.keep[0], sp.keep[1]);
                for (vr, &c) in v.iter_mut().zip(col) {
                    let go_left = c <= sp.at;
                    for w in 0..W {
                        vr[w] &= if go_left { left[w] } else { right[w] };
                    }
                }
            }
            let tab = tr.regions.as_ref().expect("tabled");
            let n_regions = tab.packed.len() / stride;
            for (r, vr) in v.iter().enumerate() {
                let g = tab.find(vr);
                // every user's set of kept leaves is a region (the sums read its row unchecked)
                assert!(g < n_regions, "a set of leaves that is no region");
                reg[r * nt + t] = (g * stride) as u32;
            }
        }
        let acc = &mut acc[..nb * stride];
        acc.fill(0.0);
        for &(t0, t1) in &chunks {
            let mut r = 0;
            while r + ROWS_AT_ONCE <= nb {
                let (tabs, reg, acc) =
                    (&tables[t0..t1], &reg[r * nt + t0..], &mut acc[r * stride..]);
                if AVX512 {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX512 is only set by add_tabled_avx512 (the CPU has AVX-512F, VL);
                    // every offset in `reg` is a region's row of its table (asserted above).
                    unsafe {
                        sum_rows_avx512::<ROWS_AT_ONCE>(tabs, reg, nt, stride, acc)
                    };
                } else {
                    sum_rows::<ROWS_AT_ONCE>(tabs, reg, nt, stride, acc);
                }
                r += ROWS_AT_ONCE;
            }
            for r in r..nb {
                sum_rows::<1>(
                    &tables[t0..t1],
                    &reg[r * nt + t0..],
                    nt,
                    stride,
                    &mut acc[r * stride..],
                );
            }
        }
        for (r, acc) in acc.chunks_exact(stride).enumerate() {
            let row = a + r;
            e[row * k..(row + 1) * k].copy_from_slice(&acc[..k]);
            s[row * k..(row + 1) * k].copy_from_slice(&acc[k..2 * k]);
        }
    }
}

/// Adds, for `R` rows, the packed rows of their regions in the trees of `tables` (`reg`: the
/// rows' offsets into each tree's table, `nt` per row) into their sums `acc` (`stride` per
/// row), [`LANES`] values of each at a time, tree after tree.
#[inline(always)]
pub(super) fn sum_rows<const R: usize>(
    tables: &[&[f64]],
    reg: &[u32],
    nt: usize,
    stride: usize,
    acc: &mut [f64],
) {
    for lane in (0..stride).step_by(LANES) {
        let mut sum = [[0.0f64; LANES]; R];
        for (i, sum) in sum.iter_mut().enumerate() {
            sum.copy_from_slice(&acc[i * stride + lane..i * stride + lane + LANES]);
        }
        for (t, tab) in tables.iter().enumerate() {
            for (i, sum) in sum.iter_mut().enumerate() {
                let at = reg[i * nt + t] as usize + lane;
                let v: &[f64; LANES] = tab[at..at + LANES].try_into().expect("lanes");
                for l in 0..LANES {
                    sum[l] += v[l];
                }
            }
        }
        for (i, sum) in sum.iter().enumerate() {
            acc[i * stride + lane..i * stride + lane + LANES].copy_from_slice(sum);
        }
    }
}

/// [`sum_rows`] with the registers of AVX-512: each row's sums held in up to [`AVX512_QUADS`]
/// registers of 4 values (of the 32 that AVX-512VL gives 256-bit instructions) while the trees'
/// packed rows are added, tree after tree (so a region's row is read in one go). The same
/// additions in the same order as [`sum_rows`]. (256-bit intrinsics: the 512-bit ones need
/// Rust 1.89, above the crate's minimum.)
///
/// # Safety
/// The CPU must have AVX-512F and VL, and each `reg[i * nt + t] + stride` (`i < R`, `t <
/// tables.len()`) must be within `tables[t]`; `stride` is a multiple of [`LANES`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn sum_rows_avx512<const R: usize>(
    tables: &[&[f64]],
    reg: &[u32],
    nt: usize,
    stride: usize,
    acc: &mut [f64],
) {
    let acc = &mut acc[..R * stride];
    let reg = &reg[..(R - 1) * nt + tables.len()];
    let mut lane = 0;
    while lane < stride {
        let quads = ((stride - lane) / 4).min(AVX512_QUADS);
        // SAFETY: as this function's (the offsets and the CPU); `acc` and `reg` were sliced
        // to the lengths read.
        unsafe {
            match quads {
                1 => sum_quads_avx512::<R, 1>(tables, reg, nt, stride, lane, acc),
                2 => sum_quads_avx512::<R, 2>(tables, reg, nt, stride, lane, acc),
                3 => sum_quads_avx512::<R, 3>(tables, reg, nt, stride, lane, acc),
                4 => sum_quads_avx512::<R, 4>(tables, reg, nt, stride, lane, acc),
                _ => sum_quads_avx512::<R, 5>(tables, reg, nt, stride, lane, acc),
            }
        }
        lane += quads * 4;
    }
}

/// Registers of 4 sums per row [`sum_rows_avx512`] holds at once (with [`ROWS_AT_ONCE`] rows,
/// 20 of the 32).
#[cfg(target_arch = "x86_64")]
const AVX512_QUADS: usize = 5;

/// The values `lane..lane + 4 V` of the sums of `R` rows (see [`sum_rows_avx512`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
unsafe fn sum_quads_avx512<const R: usize, const V: usize>(
    tables: &[&[f64]],
    reg: &[u32],
    nt: usize,
    stride: usize,
    lane: usize,
    acc: &mut [f64],
) {
    use std::arch::x86_64::{__m256d, _mm256_add_pd, _mm256_loadu_pd, _mm256_storeu_pd};
    debug_assert!(lane + V * 4 <= stride && acc.len() >= R * stride);
    // SAFETY: the caller's: `acc` holds `R` rows of `stride`, every region row read is within
    // its table, and the CPU has AVX-512F and VL.
    unsafe {
        let mut sum: [[__m256d; V]; R] = [[_mm256_loadu_pd(acc.as_ptr()); V]; R];
        for (i, row) in sum.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm256_loadu_pd(acc.as_ptr().add(i * stride + lane + v * 4));
            }
        }
        for (t, tab) in tables.iter().enumerate() {
            for (i, row) in sum.iter_mut().enumerate() {
                let at = *reg.get_unchecked(i * nt + t) as usize + lane;
                debug_assert!(at + V * 4 <= tab.len());
                let p = tab.as_ptr().add(at);
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm256_add_pd(*x, _mm256_loadu_pd(p.add(v * 4)));
                }
            }
        }
        for (i, row) in sum.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                _mm256_storeu_pd(acc.as_mut_ptr().add(i * stride + lane + v * 4), *x);
            }
        }
    }
}
