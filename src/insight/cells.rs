//! User cells: the cross product lifecycle stage x cluster x value tier, with small cells merged
//! into their nearest sibling until every cell has at least `min_size` users.
//!
//! Merging, level by level (deterministic; ties broken by the smaller index):
//! 1. clusters within a stage: while a cluster group of a stage has fewer than `min_size` users and
//!    the stage has another group, the smallest group joins the group nearest to it (smallest
//!    centre distance between any of their clusters, single linkage);
//! 2. stages: a stage whose users still number fewer than `min_size` joins the largest group of
//!    the nearest non-empty stage in stage order (the next stage first);
//! 3. value tiers within each (stage group, cluster group): while a run of adjacent tiers has fewer
//!    than `min_size` users, the smallest run joins its smaller adjacent run.
//!
//! Cells are numbered by (first stage, first cluster, lowest tier), so the same input always gives
//! the same ids.

use crate::error::{CoreError, Result};
use crate::parallel::CHUNK;
use rayon::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub stages: Vec<u8>,
    pub clusters: Vec<u32>,
    pub tier_lo: u8,
    pub tier_hi: u8,
    pub size: u64,
}

pub struct CellsOut {
    pub cells: Vec<Cell>,
    pub cell_of: Vec<u32>,
}

/// Builds the cells. `dist` is the `n_clusters x n_clusters` row-major matrix of distances
/// between cluster centres (None: all clusters equally near, the merge goes to the smallest id).
pub fn build(
    stage: &[u8],
    cluster: &[u32],
    tier: &[u8],
    n_clusters: usize,
    dist: Option<&[f64]>,
    min_size: u64,
) -> Result<CellsOut> {
    let n = stage.len();
    crate::error::check_len("clusters", cluster.len(), n, "lifecycle")?;
    crate::error::check_len("value_tier", tier.len(), n, "lifecycle")?;
    if n == 0 {
        return Err(CoreError::invalid("lifecycle", "is empty"));
    }
    if let Some(d) = dist {
        let square = n_clusters.checked_mul(n_clusters).ok_or_else(|| {
            CoreError::invalid("n_clusters", format!("too large: {n_clusters}^2 overflows"))
        })?;
        crate::error::check_len("distances", d.len(), square, "n_clusters^2")?;
    }
    if let Some(i) = cluster.iter().position(|&c| c as usize >= n_clusters) {
        return Err(CoreError::invalid(
            "clusters",
            format!(
                "label {} at row {i} is >= n_clusters = {n_clusters}",
                cluster[i]
            ),
        ));
    }
    // counts per (stage, cluster, tier), deterministic
    let key = |i: usize| ((stage[i] as u64) << 40) | ((cluster[i] as u64) << 8) | tier[i] as u64;
    let parts: Vec<BTreeMap<u64, u64>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut m = BTreeMap::new();
            for i in c * CHUNK..(c * CHUNK + CHUNK).min(n) {
                *m.entry(key(i)).or_insert(0u64) += 1;
            }
            m
        })
        .collect();
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for p in parts {
        for (k, v) in p {
            *counts.entry(k).or_insert(0) += v;
        }
    }
    let d = |a: u32, b: u32| -> f64 {
        match dist {
            Some(m) => m[a as usize * n_clusters + b as usize],
            None => 1.0,
        }
    };
    // level 1: cluster groups per stage
    let mut per_stage: BTreeMap<u8, BTreeMap<u32, u64>> = BTreeMap::new();
    for (&k, &v) in &counts {
        *per_stage
            .entry((k >> 40) as u8)
            .or_default()
            .entry(((k >> 8) & 0xFFFF_FFFF) as u32)
            .or_insert(0) += v;
    }
    // group: (stages, clusters, size)
    let mut groups: Vec<(Vec<u8>, Vec<u32>, u64)> = Vec::new();
    for (&s, cl) in &per_stage {
        let mut gs: Vec<(Vec<u32>, u64)> = cl.iter().map(|(&c, &v)| (vec![c], v)).collect();
        while gs.len() > 1 {
            let (si, _) = gs
                .iter()
                .enumerate()
                .min_by_key(|(i, g)| (g.1, *i))
                .map(|(i, g)| (i, g.1))
                .unwrap();
            if gs[si].1 >= min_size {
                break;
            }
            let mut best = (f64::INFINITY, usize::MAX);
            for (j, g) in gs.iter().enumerate() {
                if j == si {
                    continue;
                }
                let dj =
                    g.0.iter()
                        .flat_map(|&a| gs[si].0.iter().map(move |&b| (a, b)))
                        .map(|(a, b)| d(a, b))
                        .fold(f64::INFINITY, f64::min);
                if dj < best.0 || (dj == best.0 && j < best.1) {
                    best = (dj, j);
                }
            }
            let j = if best.1 == usize::MAX {
                usize::from(si == 0)
            } else {
                best.1
            };
            let g = gs.remove(si);
            let j = if j > si { j - 1 } else { j };
            gs[j].0.extend(g.0);
            gs[j].0.sort_unstable();
            gs[j].1 += g.1;
        }
        for (cl, size) in gs {
            groups.push((vec![s], cl, size));
        }
    }
    // level 2: small stages join the largest group of the nearest stage
    loop {
        let mut totals: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for g in &groups {
            *totals.entry(g.0.clone()).or_insert(0) += g.2;
        }
        if totals.len() <= 1 {
            break;
        }
        let small = totals
            .iter()
            .filter(|(_, &v)| v < min_size)
            .min_by_key(|(k, &v)| (v, (*k).clone()))
            .map(|(k, _)| k.clone());
        let Some(small) = small else { break };
        let s0 = small[0] as i32;
        let target = totals
            .keys()
            .filter(|k| **k != small)
            .min_by_key(|k| {
                let dist = (k[0] as i32 - s0).abs();
                (dist, k[0] as i32 <= s0, (*k).clone())
            })
            .cloned()
            .unwrap();
        let moving: Vec<(Vec<u8>, Vec<u32>, u64)> =
            groups.iter().filter(|g| g.0 == small).cloned().collect();
        groups.retain(|g| g.0 != small);
        let ti = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.0 == target)
            .max_by_key(|(i, g)| (g.2, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
            .unwrap();
        let mut stages = target.clone();
        stages.extend(small.iter().copied());
        stages.sort_unstable();
        for g in groups.iter_mut().filter(|g| g.0 == target) {
            g.0 = stages.clone();
        }
        for m in moving {
            groups[ti].1.extend(m.1);
            groups[ti].2 += m.2;
        }
        groups[ti].1.sort_unstable();
        groups[ti].1.dedup();
    }
    // map (stage, cluster) -> group
    let mut group_of: BTreeMap<(u8, u32), usize> = BTreeMap::new();
    for (gi, g) in groups.iter().enumerate() {
        for &s in &g.0 {
            for &c in &g.1 {
                group_of.insert((s, c), gi);
            }
        }
    }
    // tiers per group
    let mut tiers: Vec<BTreeMap<u8, u64>> = vec![BTreeMap::new(); groups.len()];
    for (&k, &v) in &counts {
        let s = (k >> 40) as u8;
        let c = ((k >> 8) & 0xFFFF_FFFF) as u32;
        *tiers[group_of[&(s, c)]].entry(k as u8).or_insert(0) += v;
    }
    let mut cells: Vec<Cell> = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let mut runs: Vec<(u8, u8, u64)> = tiers[gi].iter().map(|(&t, &v)| (t, t, v)).collect();
        while runs.len() > 1 {
            let si = runs
                .iter()
                .enumerate()
                .min_by_key(|(i, r)| (r.2, *i))
                .map(|(i, _)| i)
                .unwrap();
            if runs[si].2 >= min_size {
                break;
            }
            let j = if si == 0 {
                1
            } else if si == runs.len() - 1 || runs[si - 1].2 <= runs[si + 1].2 {
                si - 1
            } else {
                si + 1
            };
            let (a, b) = (si.min(j), si.max(j));
            runs[a] = (runs[a].0, runs[b].1, runs[a].2 + runs[b].2);
            runs.remove(b);
        }
        for (lo, hi, size) in runs {
            cells.push(Cell {
                stages: g.0.clone(),
                clusters: g.1.clone(),
                tier_lo: lo,
                tier_hi: hi,
                size,
            });
        }
    }
    cells.sort_by(|a, b| {
        (a.stages[0], a.clusters[0], a.tier_lo).cmp(&(b.stages[0], b.clusters[0], b.tier_lo))
    });
    // lookup (stage, cluster, tier) -> cell
    let mut lut: BTreeMap<u64, u32> = BTreeMap::new();
    for (ci, c) in cells.iter().enumerate() {
        for &s in &c.stages {
            for &cl in &c.clusters {
                for t in c.tier_lo..=c.tier_hi {
                    lut.insert(
                        ((s as u64) << 40) | ((cl as u64) << 8) | t as u64,
                        ci as u32,
                    );
                }
            }
        }
    }
    let cell_of: Vec<u32> = (0..n)
        .into_par_iter()
        .with_min_len(CHUNK)
        .map(|i| lut[&key(i)])
        .collect();
    Ok(CellsOut { cells, cell_of })
}

/// Per-group sums of `values` (deterministic chunked reduction).
pub fn group_sums(codes: &[u32], values: &[f64], n_groups: usize) -> Result<Vec<f64>> {
    crate::error::check_len("values", values.len(), codes.len(), "codes")?;
    if let Some(i) = codes.iter().position(|&c| c as usize >= n_groups) {
        return Err(CoreError::invalid(
            "codes",
            format!("code at row {i} >= {n_groups}"),
        ));
    }
    // Chunks of at least `n_groups` rows: the partial sums never outweigh the rows.
    let rows = (CHUNK * 4).max(n_groups);
    let mut s = crate::error::try_vec("n_groups", n_groups, 0.0)?;
    let parts: Vec<Vec<f64>> = codes
        .par_chunks(rows)
        .zip(values.par_chunks(rows))
        .map(|(c, v)| {
            let mut s = vec![0.0; n_groups];
            for (&ci, &vi) in c.iter().zip(v) {
                s[ci as usize] += vi;
            }
            s
        })
        .collect();
    for p in parts {
        for (a, b) in s.iter_mut().zip(p) {
            *a += b;
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_reaches_min_size_and_ids_are_stable() {
        let mut rng = crate::rng::stream(5, 0);
        use rand::Rng;
        let n = 20_000;
        let stage: Vec<u8> = (0..n)
            .map(|_| rng.random_range(0..7u8).min(rng.random_range(0..7u8)))
            .collect();
        let cluster: Vec<u32> = (0..n).map(|_| rng.random_range(0..20u32)).collect();
        let tier: Vec<u8> = (0..n)
            .map(|_| (rng.random::<f64>().powi(3) * 5.0) as u8)
            .collect();
        let k = 20;
        let dist: Vec<f64> = (0..k * k)
            .map(|i| ((i / k) as f64 - (i % k) as f64).abs())
            .collect();
        let out = build(&stage, &cluster, &tier, k, Some(&dist), 50).unwrap();
        assert!(out.cells.iter().all(|c| c.size >= 50));
        let total: u64 = out.cells.iter().map(|c| c.size).sum();
        assert_eq!(total, n as u64);
        let mut sizes = vec![0u64; out.cells.len()];
        for &c in &out.cell_of {
            sizes[c as usize] += 1;
        }
        assert_eq!(sizes, out.cells.iter().map(|c| c.size).collect::<Vec<_>>());
        assert!(out.cells.len() > 50);
        let again = build(&stage, &cluster, &tier, k, Some(&dist), 50).unwrap();
        assert_eq!(again.cell_of, out.cell_of);
        // tiny population: one cell
        let one = build(&[3, 4], &[0, 1], &[0, 4], 2, None, 10).unwrap();
        assert_eq!(one.cells.len(), 1);
        assert_eq!(one.cell_of, vec![0, 0]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn cells_partition_users_and_respect_min_size(
            rows in proptest::collection::vec((0u8..7, 0u32..6, 0u8..5), 1..400),
            min_size in 1u64..40,
        ) {
            let stage: Vec<u8> = rows.iter().map(|r| r.0).collect();
            let cluster: Vec<u32> = rows.iter().map(|r| r.1).collect();
            let tier: Vec<u8> = rows.iter().map(|r| r.2).collect();
            let out = build(&stage, &cluster, &tier, 6, None, min_size).unwrap();
            let mut sizes = vec![0u64; out.cells.len()];
            for (i, &c) in out.cell_of.iter().enumerate() {
                sizes[c as usize] += 1;
                let cell = &out.cells[c as usize];
                proptest::prop_assert!(cell.stages.contains(&stage[i]));
                proptest::prop_assert!(cell.clusters.contains(&cluster[i]));
                proptest::prop_assert!(cell.tier_lo <= tier[i] && tier[i] <= cell.tier_hi);
            }
            for (c, &s) in out.cells.iter().zip(&sizes) {
                proptest::prop_assert_eq!(c.size, s);
                if (rows.len() as u64) >= min_size {
                    proptest::prop_assert!(s >= min_size, "cell of {} < {}", s, min_size);
                }
            }
        }
    }
}
