//! Row compression for the value models. Rows are mapped to tables of distinct x, t_x and T
//! values, exactly identical rows are merged (their weights add up), terms that depend on x only
//! are summed per distinct x, and zero-repeat customers per distinct T; predictions are evaluated
//! once per distinct row. Nothing is rounded, and every merge is in a fixed order (results do not
//! depend on the thread count).

use super::bgnbd::{check_bg_rows, BgData};
use super::gammagamma::GgData;
use crate::control::{par_map_checked, par_sort_checked, Control};
use crate::error::{CoreError, Result};
use crate::parallel::CHUNK;
use rayon::prelude::*;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

type WeightParts = (Vec<(u32, f64)>, Vec<(u32, f64)>, f64);

/// Distinct values of `v` (sorted) and each row's index into them. Integral values in
/// [0, 2^21) use the identity table 0..=max (no sort). Ctrl-C (`ctl`) is checked every few
/// milliseconds (the sort of 8M values took seconds on a loaded machine when it could not be
/// stopped).
pub(super) fn value_table(v: &[f64], ctl: &Control) -> Result<(Vec<f64>, Vec<u32>)> {
    let integral = v
        .par_iter()
        .with_min_len(CHUNK)
        .all(|&x| x >= 0.0 && x < (1u64 << 21) as f64 && x.fract() == 0.0);
    ctl.check()?;
    if integral {
        let max = v
            .par_iter()
            .with_min_len(CHUNK)
            .map(|&x| x as u32)
            .max()
            .unwrap_or(0);
        let table = (0..=max).map(|i| i as f64).collect();
        let idx = par_map_checked(v.len(), ctl, |i| v[i] as u32)?;
        Ok((table, idx))
    } else {
        let mut t = v.to_vec();
        par_sort_checked(&mut t, |a, b| a.total_cmp(b), ctl)?;
        t.dedup();
        ctl.check()?;
        let idx = par_map_checked(v.len(), ctl, |i| {
            t.binary_search_by(|y| y.total_cmp(&v[i])).unwrap_or(0) as u32
        })?;
        Ok((t, idx))
    }
}

/// Merges rows with equal `key`; returns (distinct keys in increasing order, summed weights).
/// Ctrl-C (`ctl`) is checked every few milliseconds.
pub(super) fn merge_keys(
    keys: &[u128],
    w: Option<&[f64]>,
    ctl: &Control,
) -> Result<(Vec<u128>, Vec<f64>)> {
    let mut uk = Vec::new();
    let mut uw: Vec<f64> = Vec::new();
    match w {
        None => {
            // unweighted: sort the keys alone and count runs (exact integer weights)
            let mut k = keys.to_vec();
            par_sort_checked(&mut k, |a, b| a.cmp(b), ctl)?;
            for (i, &key) in k.iter().enumerate() {
                if i % CHUNK == 0 {
                    ctl.check()?;
                }
                if uk.last() != Some(&key) {
                    uk.push(key);
                    uw.push(0.0);
                }
                *uw.last_mut().unwrap() += 1.0;
            }
        }
        Some(w) => {
            // weighted: sort (key, weight) so equal keys add their weights in a fixed order
            let mut order: Vec<(u128, u64)> = keys
                .par_iter()
                .zip(w.par_iter())
                .with_min_len(CHUNK)
                .map(|(&k, &wi)| (k, wi.to_bits()))
                .collect();
            par_sort_checked(&mut order, |a, b| a.cmp(b), ctl)?;
            for (i, &(key, wb)) in order.iter().enumerate() {
                if i % CHUNK == 0 {
                    ctl.check()?;
                }
                if uk.last() != Some(&key) {
                    uk.push(key);
                    uw.push(0.0);
                }
                *uw.last_mut().unwrap() += f64::from_bits(wb);
            }
        }
    }
    Ok((uk, uw))
}

/// Dense counting of packed keys `< size` (unweighted rows): exact, in key order.
pub(super) fn count_dense(keys: &[u64], size: usize) -> (Vec<u64>, Vec<f64>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let counts: Vec<AtomicU32> = (0..size).map(|_| AtomicU32::new(0)).collect();
    keys.par_iter().with_min_len(CHUNK).for_each(|&k| {
        counts[k as usize].fetch_add(1, Ordering::Relaxed);
    });
    let parts: Vec<(Vec<u64>, Vec<f64>)> = counts
        .par_chunks(1 << 16)
        .enumerate()
        .map(|(c, ch)| {
            let mut a = Vec::new();
            let mut b = Vec::new();
            for (i, v) in ch.iter().enumerate() {
                let v = v.load(Ordering::Relaxed);
                if v > 0 {
                    a.push((c * (1 << 16) + i) as u64);
                    b.push(v as f64);
                }
            }
            (a, b)
        })
        .collect();
    let mut uk = Vec::new();
    let mut uw = Vec::new();
    for (a, b) in parts {
        uk.extend(a);
        uw.extend(b);
    }
    (uk, uw)
}

pub(super) fn check_weights(w: Option<&[f64]>, n: usize) -> Result<()> {
    if let Some(w) = w {
        crate::error::check_len("weights", w.len(), n, "frequency")?;
        crate::error::check_nonnegative("weights", w)?;
        if w.iter().all(|&v| v == 0.0) {
            return Err(CoreError::invalid("weights", "are all zero"));
        }
    }
    Ok(())
}

/// Every `stride`-th value of `v` (a systematic subsample).
pub(super) fn stride_sample(v: &[f64], stride: usize) -> Vec<f64> {
    v.iter().step_by(stride).copied().collect()
}

/// A fast multiplicative hasher for [`per_distinct`]'s keys (three f64 bit patterns): the
/// default SipHash costs several times more per row; the keys are not adversarial, and a bad
/// spread would cost time, never correctness.
#[derive(Default, Clone, Copy)]
struct RowHasher(u64);

impl Hasher for RowHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(23) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Evaluates `f(x, t_x, T)` once per distinct row and scatters the result back.
pub(super) fn per_distinct(
    x: &[f64],
    t: &[f64],
    big_t: &[f64],
    ctl: &Control,
    f: impl Fn(f64, f64, f64) -> Vec<f64> + Sync,
    k: usize,
) -> Result<Vec<Vec<f64>>> {
    check_bg_rows(x, t, big_t)?;
    // Distinct rows by hashing, in one pass that checks Ctrl-C (a parallel sort of the rows
    // took seconds at 8M rows and could not be stopped). `+ 0.0` merges -0.0 with 0.0.
    let mut reps: Vec<u32> = Vec::new();
    let mut group = crate::error::try_vec("frequency", x.len(), 0u32)?;
    let mut seen: HashMap<(u64, u64, u64), u32, BuildHasherDefault<RowHasher>> = HashMap::default();
    for (i, g) in group.iter_mut().enumerate() {
        if i % (1 << 16) == 0 {
            ctl.check()?;
        }
        let key = (
            (x[i] + 0.0).to_bits(),
            (t[i] + 0.0).to_bits(),
            (big_t[i] + 0.0).to_bits(),
        );
        *g = *seen.entry(key).or_insert_with(|| {
            reps.push(i as u32);
            (reps.len() - 1) as u32
        });
    }
    drop(seen);
    // In blocks, so that Ctrl-C is seen between them (one value can cost a microsecond).
    let mut vals: Vec<Vec<f64>> = Vec::with_capacity(reps.len());
    for block in reps.chunks(1 << 14) {
        ctl.check()?;
        vals.par_extend(block.par_iter().with_min_len(64).map(|&i| {
            let i = i as usize;
            f(x[i], t[i], big_t[i])
        }));
    }
    ctl.check()?;
    let mut out = vec![vec![0.0; x.len()]; k];
    for (o, col) in out.iter_mut().enumerate() {
        col.par_iter_mut()
            .with_min_len(CHUNK)
            .enumerate()
            .for_each(|(i, v)| *v = vals[group[i] as usize][o]);
    }
    Ok(out)
}

/// Raw pointer for disjoint parallel writes of bucket keys.
#[derive(Clone, Copy)]
struct KeyPtr(*mut u32);
unsafe impl Send for KeyPtr {}
unsafe impl Sync for KeyPtr {}
impl KeyPtr {
    /// # Safety
    /// `i` in bounds and written by no other thread.
    unsafe fn write(self, i: usize, v: u32) {
        unsafe { self.0.add(i).write(v) }
    }
}

impl BgData {
    /// Compresses the rows; Ctrl-C (`ctl`) is checked between its passes (each under a second at
    /// 10M rows).
    pub fn new(
        x: &[f64],
        t: &[f64],
        big_t: &[f64],
        w: Option<&[f64]>,
        ctl: &Control,
    ) -> Result<BgData> {
        check_bg_rows(x, t, big_t)?;
        check_weights(w, x.len())?;
        ctl.check()?;
        if w.is_none() {
            if let Some(d) = Self::new_integral_unweighted(x, t, big_t, ctl)? {
                return Ok(d);
            }
        }
        let (xs, ix) = value_table(x, ctl)?;
        let (ts, it) = value_table(t, ctl)?;
        let (tts, itt) = value_table(big_t, ctl)?;
        ctl.check()?;
        let max_t = tts.last().copied().unwrap_or(0.0);
        if max_t <= 0.0 {
            return Err(CoreError::invalid("T", "must have at least one value > 0"));
        }
        let mut wx = vec![0.0; xs.len()];
        let mut w0 = vec![0.0; tts.len()];
        let mut wsum = 0.0;
        // x-only and zero-repeat sums: sequential over rows would be O(n); do it per chunk
        let parts: Vec<WeightParts> = (0..x.len().div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let lo = c * CHUNK;
                let hi = (lo + CHUNK).min(x.len());
                let mut a: Vec<(u32, f64)> = Vec::new();
                let mut b: Vec<(u32, f64)> = Vec::new();
                let mut s = 0.0;
                let mut lx = vec![0.0; xs.len().min(4096)];
                for i in lo..hi {
                    let wi = w.map(|w| w[i]).unwrap_or(1.0);
                    s += wi;
                    if (ix[i] as usize) < lx.len() {
                        lx[ix[i] as usize] += wi;
                    } else {
                        a.push((ix[i], wi));
                    }
                    if ix[i] == 0 && xs[0] == 0.0 {
                        b.push((itt[i], wi));
                    }
                }
                for (j, v) in lx.into_iter().enumerate() {
                    if v != 0.0 {
                        a.push((j as u32, v));
                    }
                }
                (a, b, s)
            })
            .collect();
        for (a, b, s) in parts {
            for (j, v) in a {
                wx[j as usize] += v;
            }
            for (j, v) in b {
                w0[j as usize] += v;
            }
            wsum += s;
        }
        if wsum <= 0.0 {
            return Err(CoreError::invalid("weights", "sum to zero"));
        }
        ctl.check()?;
        // repeat rows, merged
        let sel: Vec<u32> = (0..x.len() as u32)
            .into_par_iter()
            .with_min_len(CHUNK)
            .filter(|&i| x[i as usize] > 0.0)
            .collect();
        // pack (x, t_x, T) indices into one key; count identical rows
        let (nt, ntt) = (ts.len() as u64, tts.len() as u64);
        let size = (xs.len() as u128) * (nt as u128) * (ntt as u128);
        let (rows, rw): (Vec<(u32, u32, u32)>, Vec<f64>) = if w.is_none() && size <= 1 << 25 {
            let keys: Vec<u64> = sel
                .par_iter()
                .with_min_len(CHUNK)
                .map(|&i| {
                    let i = i as usize;
                    (ix[i] as u64 * nt + it[i] as u64) * ntt + itt[i] as u64
                })
                .collect();
            let (uk, uw) = count_dense(&keys, size as usize);
            let rows = uk
                .iter()
                .map(|&k| {
                    (
                        (k / ntt / nt) as u32,
                        ((k / ntt) % nt) as u32,
                        (k % ntt) as u32,
                    )
                })
                .collect();
            (rows, uw)
        } else {
            let keys: Vec<u128> = par_map_checked(sel.len(), ctl, |q| {
                let i = sel[q] as usize;
                ((ix[i] as u128) << 64) | ((it[i] as u128) << 32) | itt[i] as u128
            })?;
            let sw: Option<Vec<f64>> = match w {
                Some(w) => Some(par_map_checked(sel.len(), ctl, |q| w[sel[q] as usize])?),
                None => None,
            };
            let (uk, uw) = merge_keys(&keys, sw.as_deref(), ctl)?;
            let rows = uk
                .iter()
                .map(|&k| ((k >> 64) as u32, (k >> 32) as u32, k as u32))
                .collect();
            (rows, uw)
        };
        drop(sel);
        ctl.check()?;
        Ok(BgData {
            xs,
            ts,
            tts,
            wx,
            w0,
            rows,
            rw,
            wsum,
            max_t,
        })
    }

    /// Fast path for unweighted whole-number data (the output of `features`): two passes, all
    fn new_integral_unweighted(
        x: &[f64],
        t: &[f64],
        big_t: &[f64],
        ctl: &Control,
    ) -> Result<Option<BgData>> {
        const LIM: f64 = (1u64 << 21) as f64;
        let ok = |v: f64| (0.0..LIM).contains(&v) && v.fract() == 0.0;
        let maxes = (0..x.len())
            .into_par_iter()
            .with_min_len(CHUNK)
            .fold(
                || Some((0u32, 0u32, 0u32)),
                |acc, i| {
                    let (a, b, c) = acc?;
                    if ok(x[i]) && ok(t[i]) && ok(big_t[i]) {
                        Some((
                            a.max(x[i] as u32),
                            b.max(t[i] as u32),
                            c.max(big_t[i] as u32),
                        ))
                    } else {
                        None
                    }
                },
            )
            .reduce(
                || Some((0, 0, 0)),
                |p, q| match (p, q) {
                    (Some(p), Some(q)) => Some((p.0.max(q.0), p.1.max(q.1), p.2.max(q.2))),
                    _ => None,
                },
            );
        let Some((mx, mt, mtt)) = maxes else {
            return Ok(None);
        };
        let (nx, nt, ntt) = (mx as usize + 1, mt as usize + 1, mtt as usize + 1);
        let size = nx as u128 * nt as u128 * ntt as u128;
        if size > 1 << 25 || x.len() >= u32::MAX as usize {
            return Ok(None);
        }
        ctl.check()?;
        if mtt == 0 {
            return Err(CoreError::invalid("T", "must have at least one value > 0"));
        }
        if nx > 1 << 16 || ntt > 1 << 16 {
            return Ok(None);
        }
        let n = x.len();
        let n_chunks = n.div_ceil(CHUNK);
        let range = |c: usize| (c * CHUNK, ((c + 1) * CHUNK).min(n));
        // per-chunk histograms of x (all rows) and of T (zero-repeat rows): no shared counters
        let hists: Vec<(Vec<u32>, Vec<u32>)> = (0..n_chunks)
            .into_par_iter()
            .map(|c| {
                let (lo, hi) = range(c);
                let mut hx = vec![0u32; nx];
                let mut h0 = vec![0u32; ntt];
                for i in lo..hi {
                    let xi = x[i] as usize;
                    hx[xi] += 1;
                    if xi == 0 {
                        h0[big_t[i] as usize] += 1;
                    }
                }
                (hx, h0)
            })
            .collect();
        let mut wx = vec![0.0f64; nx];
        let mut w0 = vec![0.0f64; ntt];
        // bucket offsets per (chunk, x) for the repeat rows: a counting sort by x in chunk order
        let mut starts = vec![0usize; nx + 1];
        for (hx, h0) in &hists {
            for (j, &v) in hx.iter().enumerate() {
                wx[j] += v as f64;
            }
            for (j, &v) in h0.iter().enumerate() {
                w0[j] += v as f64;
            }
        }
        for j in 1..nx {
            starts[j + 1] = starts[j] + wx[j] as usize;
        }
        starts[1] = 0;
        let n_rep = starts[nx];
        let mut cursor: Vec<Vec<usize>> = Vec::with_capacity(n_chunks);
        let mut run = starts.clone();
        for (hx, _) in &hists {
            cursor.push(run[..nx].to_vec());
            for j in 1..nx {
                run[j] += hx[j] as usize;
            }
        }
        drop(hists);
        let mut keys: Vec<u32> = Vec::with_capacity(n_rep);
        {
            let pk = KeyPtr(keys.as_mut_ptr());
            cursor.par_iter_mut().enumerate().for_each(|(c, cur)| {
                let (lo, hi) = range(c);
                for i in lo..hi {
                    let xi = x[i] as usize;
                    if xi > 0 {
                        let p = cur[xi];
                        cur[xi] += 1;
                        let k = (t[i] as u32) * ntt as u32 + big_t[i] as u32;
                        // SAFETY: (chunk, x) cursor ranges are disjoint and cover 0..n_rep.
                        unsafe { pk.write(p, k) };
                    }
                }
            });
            // SAFETY: every position in 0..n_rep was written once above.
            unsafe { keys.set_len(n_rep) };
        }
        // per distinct x: dense count of (t_x, T) pairs, in key order
        type Part = (Vec<(u32, u32, u32)>, Vec<f64>);
        let per_x: Vec<Part> = (1..nx)
            .into_par_iter()
            .map(|j| {
                let bucket = &keys[starts[j]..starts[j + 1]];
                let mut rows = Vec::new();
                let mut rw = Vec::new();
                if bucket.is_empty() {
                    return (rows, rw);
                }
                if bucket.len() * 8 >= nt * ntt {
                    // dense bucket: count (t_x, T) pairs in a table
                    let mut cnt = vec![0u32; nt * ntt];
                    for &k in bucket {
                        cnt[k as usize] += 1;
                    }
                    for (k, &v) in cnt.iter().enumerate() {
                        if v > 0 {
                            rows.push((j as u32, (k / ntt) as u32, (k % ntt) as u32));
                            rw.push(v as f64);
                        }
                    }
                } else {
                    // sparse bucket: sort its keys and count runs
                    let mut b = bucket.to_vec();
                    b.sort_unstable();
                    for &k in &b {
                        let r = (j as u32, k / ntt as u32, k % ntt as u32);
                        if rows.last() == Some(&r) {
                            *rw.last_mut().unwrap() += 1.0;
                        } else {
                            rows.push(r);
                            rw.push(1.0);
                        }
                    }
                }
                (rows, rw)
            })
            .collect();
        let mut rows = Vec::new();
        let mut rw = Vec::new();
        for (a, b) in per_x {
            rows.extend(a);
            rw.extend(b);
        }
        let table = |n: usize| (0..n).map(|i| i as f64).collect::<Vec<f64>>();
        Ok(Some(BgData {
            xs: table(nx),
            ts: table(nt),
            tts: table(ntt),
            wx,
            w0,
            rows,
            rw,
            wsum: x.len() as f64,
            max_t: mtt as f64,
        }))
    }
}

impl GgData {
    /// Rows with frequency 0 carry no information about spend and are skipped.
    /// Ctrl-C (`ctl`) is checked between the passes.
    pub fn new(x: &[f64], m: &[f64], w: Option<&[f64]>, ctl: &Control) -> Result<GgData> {
        let n = x.len();
        if n == 0 {
            return Err(CoreError::invalid("frequency", "is empty"));
        }
        crate::error::check_len("monetary", m.len(), n, "frequency")?;
        check_weights(w, n)?;
        let bad = (0..n).into_par_iter().with_min_len(CHUNK).find_first(|&i| {
            !(x[i].is_finite() && x[i] >= 0.0 && x[i].fract() == 0.0 && m[i].is_finite())
                || (x[i] > 0.0 && m[i] <= 0.0)
        });
        if let Some(i) = bad {
            return Err(
                if !(x[i].is_finite() && x[i] >= 0.0 && x[i].fract() == 0.0) {
                    CoreError::invalid(
                        "frequency",
                        format!("must be a non-negative integer, found {} at row {i}", x[i]),
                    )
                } else {
                    CoreError::invalid(
                    "monetary",
                    format!("must be finite and > 0 for customers with frequency > 0, found {} at row {i}", m[i]),
                )
                },
            );
        }
        let sel: Vec<u32> = (0..n as u32)
            .into_par_iter()
            .with_min_len(CHUNK)
            .filter(|&i| x[i as usize] > 0.0 && w.map(|w| w[i as usize] > 0.0).unwrap_or(true))
            .collect();
        if sel.is_empty() {
            return Err(CoreError::invalid(
                "frequency",
                "no customer with frequency > 0 (and positive weight): Gamma-Gamma needs repeat buyers",
            ));
        }
        ctl.check()?;
        let xsel: Vec<f64> = sel.iter().map(|&i| x[i as usize]).collect();
        let (xs, ix) = value_table(&xsel, ctl)?;
        let keys: Vec<u128> = sel
            .par_iter()
            .enumerate()
            .with_min_len(CHUNK)
            .map(|(q, &i)| ((ix[q] as u128) << 64) | m[i as usize].to_bits() as u128)
            .collect();
        let sw: Option<Vec<f64>> = w.map(|w| sel.iter().map(|&i| w[i as usize]).collect());
        // Weighted input (a compressed table) is merged exactly; unweighted rows are used as they
        // are: spend values rarely repeat exactly, so sorting them would cost more than it saves.
        let (uk, rw) = if sw.is_some() {
            merge_keys(&keys, sw.as_deref(), ctl)?
        } else {
            let n = keys.len();
            (keys, vec![1.0; n])
        };
        ctl.check()?;
        // rows and sufficient statistics, in parallel chunks reduced in chunk order
        let rows: Vec<(u32, f64)> = uk
            .par_iter()
            .with_min_len(CHUNK)
            .map(|k| {
                let jx = (k >> 64) as u32;
                (jx, xs[jx as usize] * f64::from_bits(*k as u64))
            })
            .collect();
        let parts: Vec<(Vec<f64>, f64, f64, f64)> = uk
            .par_chunks(CHUNK)
            .zip(rw.par_chunks(CHUNK))
            .map(|(ks, ws)| {
                let mut wxl = vec![0.0; xs.len()];
                let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
                for (k, &wk) in ks.iter().zip(ws) {
                    let jx = (k >> 64) as usize;
                    let l = f64::from_bits(*k as u64).ln();
                    wxl[jx] += wk;
                    a += wk * l;
                    b += wk * xs[jx] * l;
                    c += wk;
                }
                (wxl, a, b, c)
            })
            .collect();
        let mut wx = vec![0.0; xs.len()];
        let (mut s_lnm, mut s_xlnm, mut wsum) = (0.0, 0.0, 0.0);
        for (wxl, a, b, c) in parts {
            for (t, v) in wx.iter_mut().zip(wxl) {
                *t += v;
            }
            s_lnm += a;
            s_xlnm += b;
            wsum += c;
        }
        Ok(GgData {
            xs,
            wx,
            rows,
            rw,
            s_lnm,
            s_xlnm,
            wsum,
        })
    }
}
