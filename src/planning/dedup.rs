//! Users that no split of a forest tells apart, scored once (`Forest::predict_pairs`).
//!
//! **Codes.** For each user feature `f` some tree splits on, let `t_0 < t_1 < ...` be the
//! distinct thresholds of all the forest's splits on `f`. A user's code on `f` is `c = #{i :
//! t_i < x_f}` (a NaN: all of them). A split `x_f <= t_i` sends the user left iff `i >= c`: for
//! a number, `x_f <= t_i` iff no threshold at or above `t_i` is below `x_f`, i.e. `c <= i`;
//! a NaN fails every `<=` and has `c` = the count, above every `i`. So two users with the same
//! code on every such feature go the same way at every user split of every tree, and their
//! estimates for every task are the same numbers, bit for bit (the same leaves, added in the
//! same order). Features no tree splits on do not enter the code.
//!
//! **Scoring.** The rows are coded (at most 255 thresholds per feature: one byte each, which
//! the forest's bins, at most 256, guarantee), grouped by code, each group scored once from its
//! code (a split `x_f <= t_i` read as `c <= i`, [`super::pairs::Resolver::add_codes`]), and
//! its estimates copied to the group's rows. The prospects of a world share most of their
//! features, so many rows share a code; the result is the same whatever the sharing.
//! Grouping is by hash shards of fixed number, so the groups, and the order in which the
//! unique rows are scored, do not depend on the thread count.

use super::tree::{Tree, LEAF};
use crate::control::Control;
use crate::error::{try_vec, Result};
use rayon::prelude::*;

/// Hash shards of the grouping (a fixed number: the groups do not depend on the threads).
const SHARDS: usize = 64;
/// Rows coded per parallel chunk (Ctrl-C is checked before each).
const CHUNK: usize = 1 << 14;

/// The user features some tree splits on and their sorted distinct thresholds.
pub struct Coder {
    feats: Vec<usize>,
    thresholds: Vec<Vec<f64>>,
}

impl Coder {
    /// `None` if a feature has more than 255 distinct thresholds or a threshold is NaN (the
    /// codes would not fit a byte, or not order).
    pub fn new(trees: &[Tree], pu: usize) -> Option<Coder> {
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); pu];
        for tr in trees {
            for nd in &tr.nodes {
                if nd.feature != LEAF && (nd.feature as usize) < pu {
                    if nd.threshold.is_nan() {
                        return None;
                    }
                    per[nd.feature as usize].push(nd.threshold);
                }
            }
        }
        let mut feats = Vec::new();
        let mut thresholds = Vec::new();
        for (f, mut t) in per.into_iter().enumerate() {
            if t.is_empty() {
                continue;
            }
            t.sort_by(f64::total_cmp);
            t.dedup_by(|a, b| a == b); // -0.0 == 0.0: one threshold, as a comparison sees it
            if t.len() > 255 {
                return None;
            }
            feats.push(f);
            thresholds.push(t);
        }
        Some(Coder { feats, thresholds })
    }

    /// Bytes of a row's code.
    pub fn width(&self) -> usize {
        self.feats.len()
    }

    /// The code column of user feature `f` and the index of `threshold` among its thresholds
    /// (`None` if no split of the coder's trees is there).
    pub fn position(&self, f: usize, threshold: f64) -> Option<(usize, u8)> {
        let col = self.feats.binary_search(&f).ok()?;
        let t = &self.thresholds[col];
        let i = t.partition_point(|&v| v < threshold);
        (i < t.len() && t[i] == threshold).then_some((col, i as u8))
    }

    /// Writes the code of `row` into `out` (`width()` bytes).
    #[inline]
    fn code(&self, row: &[f64], out: &mut [u8]) {
        for ((o, &f), t) in out.iter_mut().zip(&self.feats).zip(&self.thresholds) {
            let x = row[f];
            *o = if x.is_nan() {
                t.len() as u8
            } else {
                t.partition_point(|&v| v < x) as u8
            };
        }
    }
}

#[inline]
fn hash(key: &[u8]) -> u64 {
    let mut h = 0u64;
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

/// The rows of `x` grouped by code ([`group`]).
pub struct Groups {
    /// The group of each row.
    pub of_row: Vec<u32>,
    /// The first row of each group.
    pub firsts: Vec<u32>,
    /// The code of each group (`width()` bytes each).
    pub codes: Vec<u8>,
}

/// The groups of the `n` rows of `x` (`pu` wide) by code, numbered shard by shard, in row order
/// within a shard.
#[cfg(test)]
pub fn group(coder: &Coder, x: &[f64], n: usize, pu: usize, ctl: &Control) -> Result<Groups> {
    group_rows(coder, n, |i| &x[i * pu..(i + 1) * pu], ctl)
}

/// [`group`] of the `n` rows `row(0)`, ..., `row(n - 1)`.
pub fn group_rows<'a>(
    coder: &Coder,
    n: usize,
    row: impl Fn(usize) -> &'a [f64] + Sync,
    ctl: &Control,
) -> Result<Groups> {
    let m = coder.width();
    let mut codes: Vec<u8> = try_vec("X", n * m.max(1), 0u8)?;
    let mut hashes: Vec<u64> = try_vec("X", n, 0u64)?;
    if m > 0 {
        codes
            .par_chunks_mut(CHUNK * m)
            .zip(hashes.par_chunks_mut(CHUNK))
            .enumerate()
            .try_for_each(|(at, (c, h))| {
                ctl.check()?;
                for (i, (c, h)) in c.chunks_exact_mut(m).zip(h).enumerate() {
                    coder.code(row(at * CHUNK + i), c);
                    *h = hash(c);
                }
                Ok::<(), crate::error::CoreError>(())
            })?;
    }
    // rows by shard (counting sort, row order kept within a shard)
    let shard = |h: u64| (h >> 58) as usize % SHARDS;
    let mut start = [0usize; SHARDS + 1];
    for &h in &hashes {
        start[shard(h) + 1] += 1;
    }
    for s in 0..SHARDS {
        start[s + 1] += start[s];
    }
    let mut order: Vec<u32> = try_vec("X", n, 0u32)?;
    let mut at = start;
    for (i, &h) in hashes.iter().enumerate() {
        let s = shard(h);
        order[at[s]] = i as u32;
        at[s] += 1;
    }
    ctl.check()?;
    let key = |i: usize| &codes[i * m..(i + 1) * m];
    // per shard: each of its rows' group within the shard, and the shard's first rows
    let shards: Vec<(Vec<u32>, Vec<u32>)> = (0..SHARDS)
        .into_par_iter()
        .map(|s| {
            let rows = &order[start[s]..start[s + 1]];
            let size = (2 * rows.len()).next_power_of_two().max(2);
            let mut slot = vec![u32::MAX; size];
            let mut local = Vec::with_capacity(rows.len());
            let mut firsts: Vec<u32> = Vec::new();
            for &r in rows {
                let r = r as usize;
                let mut p = (hashes[r] as usize) & (size - 1);
                let g = loop {
                    let q = slot[p];
                    if q == u32::MAX {
                        slot[p] = firsts.len() as u32;
                        firsts.push(r as u32);
                        break firsts.len() as u32 - 1;
                    }
                    let f = firsts[q as usize] as usize;
                    if hashes[f] == hashes[r] && key(f) == key(r) {
                        break q;
                    }
                    p = (p + 1) & (size - 1);
                };
                local.push(g);
            }
            (local, firsts)
        })
        .collect();
    let mut of_row: Vec<u32> = try_vec("X", n, 0u32)?;
    let mut firsts = Vec::new();
    for (s, (local, f)) in shards.into_iter().enumerate() {
        let off = firsts.len() as u32;
        for (&r, &g) in order[start[s]..start[s + 1]].iter().zip(&local) {
            of_row[r as usize] = off + g;
        }
        firsts.extend(f);
    }
    let mut group_codes: Vec<u8> = try_vec("X", firsts.len() * m, 0u8)?;
    if m > 0 {
        for (c, &f) in group_codes.chunks_exact_mut(m).zip(&firsts) {
            c.copy_from_slice(key(f as usize));
        }
    }
    Ok(Groups {
        of_row,
        firsts,
        codes: group_codes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planning::forest::Forest;
    use crate::planning::pairs::tests::random_tree;
    use crate::planning::tree::Node;
    use rand::{Rng, SeedableRng};

    fn forest(trees: Vec<Tree>, p: usize) -> Forest {
        Forest {
            n_features: p,
            n_treatments: 1,
            trees,
            importances: vec![0.0; p],
        }
    }

    /// `predict` of every stacked row `[x_i, z_j]`, as `predict_pairs` must give it.
    fn stacked(f: &Forest, x: &[f64], pu: usize, z: &[f64], pz: usize) -> (Vec<f64>, Vec<f64>) {
        let (n, k) = (x.len() / pu, z.len() / pz);
        let mut rows = Vec::new();
        for i in 0..n {
            for j in 0..k {
                rows.extend_from_slice(&x[i * pu..(i + 1) * pu]);
                rows.extend_from_slice(&z[j * pz..(j + 1) * pz]);
            }
        }
        f.predict(&rows, n * k, &Control::default()).unwrap()
    }

    #[test]
    fn rows_of_one_code_are_scored_once_and_get_the_same_numbers() {
        let mut rng = crate::rng::Rng::seed_from_u64(9);
        let (pu, pz, k, n) = (4, 2, 6, 3000);
        let trees: Vec<Tree> = (0..12).map(|_| random_tree(&mut rng, 6, pu, pz)).collect();
        // user values: thresholds themselves and values just above them (the `<=` boundary),
        // NaN (right at every split), both zeros, values beyond every threshold
        let thr: Vec<f64> = trees[0]
            .nodes
            .iter()
            .filter(|nd| nd.feature != LEAF)
            .map(|nd| nd.threshold)
            .take(3)
            .collect();
        let mut pool: Vec<f64> = thr.iter().flat_map(|&t| [t, t + 1e-12]).collect();
        pool.extend([f64::NAN, -0.0, 0.0, -2.0, 2.0]);
        let x: Vec<f64> = (0..n * pu)
            .map(|_| pool[rng.random_range(0..pool.len())])
            .collect();
        let z: Vec<f64> = (0..k * pz)
            .map(|_| rng.random::<f64>() * 2.0 - 1.0)
            .collect();
        let f = forest(trees, pu + pz);
        let coder = Coder::new(&f.trees, pu).expect("few thresholds");
        let g = group(&coder, &x, n, pu, &Control::default()).unwrap();
        let (of_row, firsts) = (g.of_row, g.firsts);
        assert!(firsts.len() < n / 2, "{} groups of {n} rows", firsts.len());
        assert!(firsts.len() > 100, "{} groups", firsts.len());
        for (g, &r) in firsts.iter().enumerate() {
            assert_eq!(
                of_row[r as usize] as usize, g,
                "a group's first row is in it"
            );
        }
        let (e, s) = f
            .predict_pairs(&x, n, pu, &z, k, &Control::default())
            .unwrap();
        let (we, ws) = stacked(&f, &x, pu, &z, pz);
        // bit for bit (NaN rows included: their sums are numbers)
        assert_eq!(e, we);
        assert_eq!(s, ws);
    }

    #[test]
    fn rows_of_x_scored_into_float32_rows_equal_predict_pairs_rounded() {
        let mut rng = crate::rng::Rng::seed_from_u64(17);
        let (pu, pz, k, n) = (5, 2, 7, 2500);
        // depth 5: every tree tabled; depth 9: too many regions or leaves for some
        for depth in [5, 9] {
            let trees: Vec<Tree> = (0..9)
                .map(|_| random_tree(&mut rng, depth, pu, pz))
                .collect();
            let f = forest(trees, pu + pz);
            let x: Vec<f64> = (0..n * pu)
                .map(|_| (rng.random_range(0..40) as f64) / 20.0 - 1.0)
                .collect();
            let z: Vec<f64> = (0..k * pz)
                .map(|_| rng.random::<f64>() * 2.0 - 1.0)
                .collect();
            let rows: Vec<usize> = (0..n).filter(|_| rng.random::<f64>() < 0.6).collect();
            let sub: Vec<f64> = rows
                .iter()
                .flat_map(|&r| x[r * pu..(r + 1) * pu].to_vec())
                .collect();
            let ctl = Control::default();
            let (we, ws) = f.predict_pairs(&sub, rows.len(), pu, &z, k, &ctl).unwrap();
            let (mut e, mut s) = (vec![-7.0f32; n * k], vec![-7.0f32; n * k]);
            f.predict_pairs_rows(&x, n, pu, &rows, &z, k, &mut e, &mut s, &ctl)
                .unwrap();
            let mut at = 0;
            for r in 0..n {
                let (er, sr) = (&e[r * k..(r + 1) * k], &s[r * k..(r + 1) * k]);
                if rows.get(at) == Some(&r) {
                    for j in 0..k {
                        assert_eq!(er[j], we[at * k + j] as f32, "depth {depth}, row {r}");
                        assert_eq!(sr[j], ws[at * k + j] as f32, "depth {depth}, row {r}");
                    }
                    at += 1;
                } else {
                    assert!(er.iter().chain(sr).all(|&v| v == -7.0), "row {r} untouched");
                }
            }
            // rows not strictly increasing, or beyond X: errors naming `rows`
            for bad in [vec![3, 3], vec![4, 2], vec![n]] {
                let err = f
                    .predict_pairs_rows(&x, n, pu, &bad, &z, k, &mut e, &mut s, &ctl)
                    .unwrap_err();
                assert!(err.to_string().contains("rows"), "{err}");
            }
        }
    }

    #[test]
    fn more_than_255_thresholds_on_a_feature_are_scored_row_by_row() {
        // 300 one-split trees on user feature 0, each at its own threshold
        let trees: Vec<Tree> = (0..300)
            .map(|i| Tree {
                nodes: vec![
                    Node {
                        feature: 0,
                        bin: 0,
                        threshold: i as f64 / 300.0,
                        left: 1,
                        right: 2,
                    },
                    Node::leaf(),
                    Node {
                        left: 1,
                        ..Node::leaf()
                    },
                ],
                est: vec![i as f64, -(i as f64) / 7.0],
                se: vec![1.0, 0.5],
            })
            .collect();
        assert!(Coder::new(&trees[..255], 2).is_some());
        assert!(Coder::new(&trees, 2).is_none());
        let f = forest(trees, 3);
        let x: Vec<f64> = (0..400).map(|i| (i % 200) as f64 / 199.0).collect();
        let z = [0.0, 1.0];
        let (e, s) = f
            .predict_pairs(&x, 200, 2, &z, 2, &Control::default())
            .unwrap();
        let (we, ws) = stacked(&f, &x, 2, &z, 1);
        assert_eq!(e, we);
        assert_eq!(s, ws);
    }
}
