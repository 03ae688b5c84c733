//! Initial centers: k-means|| (default), greedy k-means++, random rows, or given centers.

use super::kernel::{self, Packed, Real};
use super::{ordered, Init, SyncSlice};
use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::parallel;
use crate::rng::{stream2, Rng};
use rand::Rng as _;

/// Random-stream domains (so that init streams never collide with other uses of the seed).
const DOM_RANDOM: u64 = 0x4B4D_0001;
const DOM_PP: u64 = 0x4B4D_0002;
const DOM_PAR: u64 = 0x4B4D_0100;
const DOM_SUB: u64 = 0x4B4D_0003;

/// k-means|| runs on a uniform row sample of about `max(SAMPLE_PER_K * k, SAMPLE_MIN)` rows when
/// the data has more than twice that many (the candidates' weights then come from the sample).
/// 128 rows per center (was 256): on 1M x 16 blobs with k=1024 the init costs 0.61 s CPU instead
/// of 0.98 s; the inertia after 50 Lloyd steps is 1e-5 to 1e-3 higher depending on the data
/// (benchmark blobs: 32,554,108 vs 32,523,491, +0.09%; 10M rows: +0.04%).
pub const SAMPLE_PER_K: usize = 128;
pub const SAMPLE_MIN: usize = 65_536;

/// Rounds and oversampling factor (`l = OVERSAMPLE * k`) of k-means||.
pub const ROUNDS: usize = 5;
pub const OVERSAMPLE: f64 = 1.0;
/// Weighted Lloyd iterations run on the k-means|| candidates after k-means++ on them.
pub const CANDIDATE_LLOYD: usize = 10;
/// Rows per parallel chunk in k-means++ (small: it also runs on the few k-means|| candidates).
const KPP_CH: usize = 1024;

/// The initial centers (row-major `k*d`) for `init`.
pub fn init_centers<T: Real>(
    x: &[T],
    d: usize,
    k: usize,
    init: &Init,
    seed: u64,
    ctl: &Control,
) -> Result<Vec<T>> {
    let n = x.len() / d;
    match init {
        Init::Explicit(c) => {
            if c.len() != k * d {
                return Err(CoreError::invalid(
                    "init",
                    format!(
                        "expected an array of shape ({k}, {d}) (n_clusters, n_features), got {} values",
                        c.len()
                    ),
                ));
            }
            if let Some(p) = c.iter().position(|v| !v.is_finite()) {
                return Err(CoreError::invalid(
                    "init",
                    format!(
                        "must be finite, found {} at row {}, column {}",
                        c[p],
                        p / d,
                        p % d
                    ),
                ));
            }
            Ok(c.iter().map(|&v| T::from_f64(v)).collect())
        }
        Init::Random => {
            let mut rng = stream2(seed, DOM_RANDOM, 0);
            Ok(gather(x, d, &distinct_indices(&mut rng, n, k)))
        }
        Init::KMeansPlusPlus => {
            let mut rng = stream2(seed, DOM_PP, 0);
            let idx = kmeanspp(x, d, None, k, &mut rng, ctl)?;
            Ok(gather(x, d, &idx))
        }
        Init::KMeansParallel => kmeans_parallel(x, d, k, seed, ctl),
    }
}

fn gather<T: Real>(x: &[T], d: usize, idx: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        out.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    out
}

/// `k` distinct indices of `0..n` (Floyd's algorithm, then in draw order).
fn distinct_indices(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    let mut seen = std::collections::HashSet::with_capacity(k * 2);
    let mut out = Vec::with_capacity(k);
    for j in n - k..n {
        let t = rng.random_range(0..=j);
        let v = if seen.contains(&t) { j } else { t };
        seen.insert(v);
        out.push(v);
    }
    out
}

/// Greedy k-means++ (scikit-learn's: `2 + ln k` trials per step, keep the trial that lowers the
/// potential most) on rows of `x`, optionally weighted. Returns the chosen row indices.
pub fn kmeanspp<T: Real>(
    x: &[T],
    d: usize,
    w: Option<&[f64]>,
    k: usize,
    rng: &mut Rng,
    ctl: &Control,
) -> Result<Vec<usize>> {
    let n = x.len() / d;
    let wt = |i: usize| w.map_or(1.0, |w| w[i]);
    let trials = 2 + (k as f64).ln().floor() as usize;
    let nc = n.div_ceil(KPP_CH);
    // First center: drawn proportionally to the weights.
    let first = {
        let total: f64 = (0..n).map(wt).sum();
        let r = rng.random::<f64>() * total;
        let mut acc = 0.0;
        let mut pick = n - 1;
        for i in 0..n {
            acc += wt(i);
            if acc > r {
                pick = i;
                break;
            }
        }
        pick
    };
    let mut chosen = vec![first];
    // closest squared distances (f64) and per-chunk weighted potentials
    let mut closest = vec![0.0f64; n];
    let mut chunk_pot = vec![0.0f64; nc];
    {
        let cl = SyncSlice::new(&mut closest);
        let c0 = &x[first * d..(first + 1) * d];
        parallel::ordered(
            n,
            KPP_CH,
            ctl,
            |_, r| {
                // SAFETY: disjoint row ranges.
                let cl = unsafe { cl.range(r.clone()) };
                let mut pot = 0.0;
                for (o, i) in cl.iter_mut().zip(r) {
                    *o = kernel::dist2_f64(&x[i * d..(i + 1) * d], c0);
                    pot += wt(i) * *o;
                }
                pot
            },
            |c, p| chunk_pot[c] = p,
        )?;
    }
    ctl.set_total(k as u64);
    while chosen.len() < k {
        ctl.check()?;
        ctl.advance(1);
        let pot: f64 = chunk_pot.iter().sum();
        // Draw the trial rows by inverse CDF over chunk potentials, then within the chunk.
        let mut cands = Vec::with_capacity(trials);
        for _ in 0..trials {
            let r = rng.random::<f64>() * pot;
            cands.push(search(&closest, &chunk_pot, r, &wt));
        }
        cands.sort_unstable();
        cands.dedup();
        // Potential after adding each trial.
        let nt = cands.len();
        let mut pots = vec![0.0f64; nt];
        let cl: &[f64] = &closest;
        let tp = Packed::new(&gather(x, d, &cands), nt, d);
        parallel::ordered(
            n,
            KPP_CH,
            ctl,
            |_, r| {
                let mut dd = vec![T::ZERO; r.len() * nt];
                kernel::all_dist(&x[r.start * d..r.end * d], d, &tp, &mut dd);
                let mut p = vec![0.0f64; nt];
                for (ii, i) in r.enumerate() {
                    let w = wt(i);
                    for (t, pt) in p.iter_mut().enumerate() {
                        *pt += w * dd[ii * nt + t].to_f64().min(cl[i]);
                    }
                }
                p
            },
            |_, p| pots.iter_mut().zip(&p).for_each(|(a, b)| *a += b),
        )?;
        let mut best = 0;
        for t in 1..nt {
            if pots[t] < pots[best] {
                best = t;
            }
        }
        let c = cands[best];
        chosen.push(c);
        let cl = SyncSlice::new(&mut closest);
        let crow = &x[c * d..(c + 1) * d];
        parallel::ordered(
            n,
            KPP_CH,
            ctl,
            |_, r| {
                // SAFETY: disjoint row ranges.
                let cl = unsafe { cl.range(r.clone()) };
                let mut pot = 0.0;
                for (o, i) in cl.iter_mut().zip(r) {
                    let dd = kernel::dist2_f64(&x[i * d..(i + 1) * d], crow);
                    if dd < *o {
                        *o = dd;
                    }
                    pot += wt(i) * *o;
                }
                pot
            },
            |ci, p| chunk_pot[ci] = p,
        )?;
    }
    Ok(chosen)
}

/// The row where the cumulative weighted potential first exceeds `r`.
fn search(closest: &[f64], chunk_pot: &[f64], r: f64, wt: &impl Fn(usize) -> f64) -> usize {
    let n = closest.len();
    let mut acc = 0.0;
    for (c, &p) in chunk_pot.iter().enumerate() {
        if acc + p > r {
            let lo = c * KPP_CH;
            let hi = (lo + KPP_CH).min(n);
            for (i, &c) in closest.iter().enumerate().take(hi).skip(lo) {
                acc += wt(i) * c;
                if acc > r {
                    return i;
                }
            }
            return (lo..hi).rev().find(|&i| closest[i] > 0.0).unwrap_or(hi - 1);
        }
        acc += p;
    }
    // Rounding at the very end: the last row with a positive potential.
    (0..n).rev().find(|&i| closest[i] > 0.0).unwrap_or(n - 1)
}

/// k-means|| (Bailey et al., "Scalable k-means++") on a uniform row sample of large data (see
/// [`SAMPLE_PER_K`]): [`ROUNDS`] rounds each sampling every row
/// independently with probability `min(1, l * D(x) / phi)`, `l = k`, from its own random stream
/// per (round, chunk); every row keeps its nearest candidate, whose counts weight a greedy
/// k-means++ and then [`CANDIDATE_LLOYD`] weighted Lloyd steps on the candidates.
pub fn kmeans_parallel<T: Real>(
    x: &[T],
    d: usize,
    k: usize,
    seed: u64,
    ctl: &Control,
) -> Result<Vec<T>> {
    let n = x.len() / d;
    let target = (SAMPLE_PER_K * k).max(SAMPLE_MIN);
    if n > 2 * target {
        // Bernoulli sample, one stream per fixed chunk (thread-count independent).
        let p = target as f64 / n as f64;
        let mut rows: Vec<usize> = Vec::with_capacity(target + target / 8);
        ordered(
            n,
            ctl,
            |c, r| {
                let mut g = stream2(seed, DOM_SUB, c as u64);
                r.filter(|_| g.random::<f64>() < p).collect::<Vec<_>>()
            },
            |_, mut v| rows.append(&mut v),
        )?;
        if rows.len() > k {
            let xs = gather(x, d, &rows);
            return kmeans_parallel_all(&xs, d, k, seed, ctl);
        }
    }
    kmeans_parallel_all(x, d, k, seed, ctl)
}

/// [`kmeans_parallel`] on all rows of `x`.
pub(super) fn kmeans_parallel_all<T: Real>(
    x: &[T],
    d: usize,
    k: usize,
    seed: u64,
    ctl: &Control,
) -> Result<Vec<T>> {
    let n = x.len() / d;
    let mut rng = stream2(seed, DOM_PAR, u64::MAX);
    let first = rng.random_range(0..n);
    let mut cands: Vec<T> = x[first * d..(first + 1) * d].to_vec();
    let mut dist = vec![T::ZERO; n];
    let mut near = vec![0u32; n];
    {
        let ds = SyncSlice::new(&mut dist);
        let c0 = &x[first * d..(first + 1) * d];
        ordered(
            n,
            ctl,
            |_, r| {
                // SAFETY: disjoint row ranges.
                let ds = unsafe { ds.range(r.clone()) };
                for (o, i) in ds.iter_mut().zip(r) {
                    *o = kernel::dist2::<T, crate::simd::NoFma>(&x[i * d..(i + 1) * d], c0);
                }
            },
            |_, _| {},
        )?;
    }
    let l = OVERSAMPLE * k as f64;
    ctl.set_total(ROUNDS as u64 + 1);
    for round in 0..ROUNDS {
        let mut phi = 0.0f64;
        let dv: &[T] = &dist;
        ordered(
            n,
            ctl,
            |_, r| dv[r].iter().map(|v| v.to_f64()).sum::<f64>(),
            |_, s| phi += s,
        )?;
        if phi <= 0.0 {
            break;
        }
        let mut picks: Vec<usize> = Vec::new();
        ordered(
            n,
            ctl,
            |c, r| {
                let mut g = stream2(seed, DOM_PAR + round as u64, c as u64);
                r.filter(|&i| g.random::<f64>() * phi < l * dv[i].to_f64())
                    .collect::<Vec<_>>()
            },
            |_, mut v| picks.append(&mut v),
        )?;
        if picks.is_empty() {
            continue;
        }
        let base = (cands.len() / d) as u32;
        let new = gather(x, d, &picks);
        let pk = Packed::new(&new, picks.len(), d);
        let ds = SyncSlice::new(&mut dist);
        let ns = SyncSlice::new(&mut near);
        ordered(
            n,
            ctl,
            |_, r| {
                let mut idx = vec![0u32; r.len()];
                let mut d2 = vec![T::ZERO; r.len()];
                kernel::nearest(&x[r.start * d..r.end * d], d, &pk, &mut idx, &mut d2);
                // SAFETY: disjoint row ranges.
                let (ds, ns) = unsafe { (ds.range(r.clone()), ns.range(r)) };
                for i in 0..idx.len() {
                    if d2[i] < ds[i] {
                        ds[i] = d2[i];
                        ns[i] = base + idx[i];
                    }
                }
            },
            |_, _| {},
        )?;
        cands.extend_from_slice(&new);
        ctl.advance(1);
    }
    let m = cands.len() / d;
    let mut weights = vec![0.0f64; m];
    let nr: &[u32] = &near;
    ordered(
        n,
        ctl,
        |_, r| {
            let mut c = vec![0u32; m];
            for &j in &nr[r] {
                c[j as usize] += 1;
            }
            c
        },
        |_, c| {
            weights
                .iter_mut()
                .zip(&c)
                .for_each(|(a, &b)| *a += b as f64)
        },
    )?;
    let mut centers;
    if m <= k {
        // Too few candidates (e.g. few distinct rows): all of them plus random distinct rows.
        centers = cands.clone();
        let mut g = stream2(seed, DOM_PAR, u64::MAX - 1);
        let extra = distinct_indices(&mut g, n, k);
        for i in extra.into_iter().take(k - m) {
            centers.extend_from_slice(&x[i * d..(i + 1) * d]);
        }
    } else {
        // Several k-means++ draws on the (small) candidate set when cheap; keep the best after
        // weighted Lloyd on the candidates.
        let work = (m * k * d) as f64;
        let reps = if work < 2e7 {
            5
        } else if work < 5e7 {
            2
        } else {
            1
        };
        let mut best: Option<(f64, Vec<T>)> = None;
        for _ in 0..reps {
            let idx = kmeanspp(&cands, d, Some(&weights), k, &mut rng, ctl)?;
            let mut c = gather(&cands, d, &idx);
            let cost = weighted_lloyd(&cands, d, &weights, &mut c, k, CANDIDATE_LLOYD);
            if best.as_ref().is_none_or(|b| cost < b.0) {
                best = Some((cost, c));
            }
        }
        centers = best.map(|b| b.1).unwrap_or_default();
    }
    ctl.advance(1);
    Ok(centers)
}

/// A few weighted Lloyd steps on a small candidate set (clusters left empty keep their center).
fn weighted_lloyd<T: Real>(
    pts: &[T],
    d: usize,
    w: &[f64],
    centers: &mut [T],
    k: usize,
    iters: usize,
) -> f64 {
    let m = pts.len() / d;
    let mut labels = vec![u32::MAX; m];
    let mut cost = f64::INFINITY;
    for _ in 0..=iters {
        let pk = Packed::new(centers, k, d);
        let mut idx = vec![0u32; m];
        let mut d2 = vec![T::ZERO; m];
        {
            let (is, ds) = (SyncSlice::new(&mut idx), SyncSlice::new(&mut d2));
            let _ = parallel::ordered(
                m,
                KPP_CH,
                &Control::new(),
                |_, r| {
                    // SAFETY: disjoint row ranges.
                    let (i, dd) = unsafe { (is.range(r.clone()), ds.range(r.clone())) };
                    kernel::nearest(&pts[r.start * d..r.end * d], d, &pk, i, dd);
                },
                |_, _| {},
            );
        }
        cost = d2.iter().zip(w).map(|(v, w)| v.to_f64() * w).sum();
        if idx == labels {
            break;
        }
        labels = idx;
        let mut sums = vec![0.0f64; k * d];
        let mut cnt = vec![0.0f64; k];
        for i in 0..m {
            let c = labels[i] as usize;
            cnt[c] += w[i];
            for j in 0..d {
                sums[c * d + j] += w[i] * pts[i * d + j].to_f64();
            }
        }
        for c in 0..k {
            if cnt[c] > 0.0 {
                for j in 0..d {
                    centers[c * d + j] = T::from_f64(sums[c * d + j] / cnt[c]);
                }
            }
        }
    }
    cost
}
