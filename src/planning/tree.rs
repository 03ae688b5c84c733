//! One honest uplift tree on binned features (see [`super::forest`] for the method and its
//! references).
//!
//! Growth, depth first, on the tree's own copy of its structure rows (codes, arm, y, weight),
//! kept so that every node is a contiguous range (stable partition after each split, except under
//! the last level, whose leaves never read their rows):
//! 1. a node that may still split (depth, `2 * min_samples_leaf` rows, `2 * min_samples_treatment`
//!    rows in every arm) draws its candidate features and needs their histograms: per bin and arm,
//!    (rows, Σw, Σwy);
//! 2. histogram subtraction: of two siblings only the smaller is built from its rows; the larger
//!    one's histogram of a feature that the parent and the smaller sibling both have is
//!    `parent - smaller` (every feature when `max_features` is all of them; with feature sampling
//!    only the overlap, the rest is built on the larger child's rows);
//! 3. the split maximises the criterion of [`super::forest`] over every (candidate feature, bin).
//!
//! Then the leaves are estimated from the estimation rows ([`super::estimate`]).
//!
//! Invariant that the state check and prediction rely on: children have larger indices than their
//! parent (nodes are numbered when created), so a walk from the root always ends at a leaf.

use super::estimate::estimate;
use super::{smoothed_var, ArmSums, Effect};
use crate::control::Control;
use crate::error::{CoreError, Result};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// `Node::feature` of a leaf.
pub const LEAF: u32 = u32::MAX;
/// Sums per (bin, arm) in a histogram: rows, Σw, Σwy.
const HS: usize = 3;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Split feature, or [`LEAF`].
    pub feature: u32,
    /// Rows whose code is `<= bin` (values `<= threshold`) go left.
    pub bin: u8,
    pub threshold: f64,
    /// Children; a leaf's `left` is its leaf index.
    pub left: u32,
    pub right: u32,
}

impl Node {
    /// A leaf (leaf index 0 in `left`).
    pub(crate) fn leaf() -> Node {
        Node {
            feature: LEAF,
            bin: 0,
            threshold: 0.0,
            left: 0,
            right: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// Leaf effects and standard errors, `[leaf * T + (t - 1)]`.
    pub est: Vec<f64>,
    pub se: Vec<f64>,
}

impl Tree {
    /// The leaf index of a row of raw values.
    #[inline]
    pub fn leaf_of(&self, x: &[f64]) -> usize {
        let mut k = 0usize;
        loop {
            let nd = &self.nodes[k];
            if nd.feature == LEAF {
                return nd.left as usize;
            }
            k = if x[nd.feature as usize] <= nd.threshold {
                nd.left
            } else {
                nd.right
            } as usize;
        }
    }

    /// Structural check of a tree read from state: indices in range, children after parents,
    /// leaf values of the right length.
    pub fn check(&self, p: usize, t: usize) -> Result<()> {
        let bad = |m: &str| Err(CoreError::State(format!("UpliftForest tree: {m}")));
        let len = self.nodes.len();
        if len == 0 {
            return bad("no nodes");
        }
        let n_leaves = self.est.len() / t.max(1);
        if self.est.len() != n_leaves * t || self.se.len() != self.est.len() {
            return bad("leaf values of the wrong length");
        }
        for (i, nd) in self.nodes.iter().enumerate() {
            if nd.feature == LEAF {
                if nd.left as usize >= n_leaves {
                    return bad("leaf index out of range");
                }
            } else if nd.feature as usize >= p
                || nd.left as usize <= i
                || nd.right as usize <= i
                || nd.left as usize >= len
                || nd.right as usize >= len
            {
                return bad("malformed split node");
            }
        }
        Ok(())
    }
}

/// Parameters of one tree (validated by the forest).
#[derive(Clone, Debug)]
pub struct TreeParams {
    pub max_depth: usize,
    pub min_samples_leaf: usize,
    pub min_samples_treatment: usize,
    /// Candidate features per node (1..=p).
    pub max_features: usize,
    pub honest: bool,
    pub subsample: f64,
    pub shrinkage: f64,
}

/// Data shared by all trees of a fit.
pub struct Shared<'a> {
    /// Row-major u8 codes, `n` rows of `stride` bytes (see [`super::binning::stride`]).
    pub codes: &'a [u8],
    pub stride: usize,
    pub p: usize,
    pub edges: &'a [Vec<f64>],
    pub arm: &'a [u8],
    pub y: &'a [f64],
    pub w: Option<&'a [f64]>,
    /// Arms including control (T + 1).
    pub arms: usize,
    /// Global effects (the root's parent) and per-arm row variances.
    pub global: &'a [Effect],
    pub global_var: &'a [f64],
}

/// A grown tree and the criterion gain of its splits per feature.
pub struct Grown {
    pub tree: Tree,
    pub importance: Vec<f64>,
}

/// The tree's copy of its structure rows; a row's codes are `words` u64 (8 codes each, little
/// endian), moved as whole words by the partition.
#[derive(Default)]
struct Rows {
    codes: Vec<u64>,
    arm: Vec<u8>,
    y: Vec<f64>,
    w: Vec<f64>,
}

/// Code of feature `f` in a row of words.
#[inline(always)]
fn code(words: &[u64], f: usize) -> usize {
    ((words[f >> 3] >> ((f & 7) * 8)) & 0xff) as usize
}

impl Rows {
    fn clear(&mut self) {
        self.codes.clear();
        self.arm.clear();
        self.y.clear();
        self.w.clear();
    }

    #[inline]
    fn push_from(&mut self, sh: &Shared<'_>, i: usize) {
        let row = &sh.codes[i * sh.stride..(i + 1) * sh.stride];
        for w in row.chunks_exact(8) {
            self.codes
                .push(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        self.arm.push(sh.arm[i]);
        self.y.push(sh.y[i]);
        if let Some(w) = sh.w {
            self.w.push(w[i]);
        }
    }

    #[inline]
    fn weight(&self, i: usize) -> f64 {
        if self.w.is_empty() {
            1.0
        } else {
            self.w[i]
        }
    }
}

/// Histograms of one node: all features in one buffer, with the features they are valid for.
struct Hist {
    data: Vec<f64>,
    valid: Vec<bool>,
}

struct Pending {
    start: usize,
    end: usize,
    depth: usize,
    node: usize,
    feats: Vec<u32>,
    hist: Option<Hist>,
    totals: Vec<ArmSums>,
}

struct Grower<'s, 'a> {
    sh: &'s Shared<'a>,
    prm: &'s TreeParams,
    /// Offset of each feature's histogram in a buffer, and the buffer length.
    off: Vec<usize>,
    hist_len: usize,
    rows: Rows,
    scratch: Rows,
    pool: Vec<Hist>,
    rng: crate::rng::Rng,
    perm: Vec<u32>,
}

/// Buffers of one tree, reused by the next tree grown on the same worker (fresh pages cost a
/// page fault and a kernel zeroing each; a tree of 10M rows would otherwise fault in ~150 MB).
/// Their contents never carry over: every buffer is cleared or overwritten before it is read.
#[derive(Default)]
pub struct Work {
    rows: Rows,
    scratch: Rows,
    est_rows: Vec<u32>,
    pool: Vec<Hist>,
}

/// Grows tree `index` of the forest seeded by `seed`.
pub fn grow(
    sh: &Shared<'_>,
    prm: &TreeParams,
    seed: u64,
    index: u64,
    work: &mut Work,
    ctl: &Control,
) -> Result<Grown> {
    let n = sh.arm.len();
    let p = sh.p;
    let mut rng = crate::rng::stream(seed, index);
    // Subsample without replacement (each row kept with probability `subsample`), then the
    // honest halves: bit 0 of the same draw sends a kept row to the structure or the estimation
    // half.
    let keep = if prm.subsample >= 1.0 {
        u64::MAX
    } else {
        (prm.subsample * (1u64 << 53) as f64) as u64
    };
    let mut rows = std::mem::take(&mut work.rows);
    rows.clear();
    let mut est_rows = std::mem::take(&mut work.est_rows);
    est_rows.clear();
    // Decisions for 64 rows at a time as bit masks (one draw per row, as a row-by-row loop
    // would make them), then the kept rows copied in order: no unpredictable branch per row.
    for i0 in (0..n).step_by(64) {
        let len = (n - i0).min(64);
        let (mut kept, mut odd) = (0u64, 0u64);
        for j in 0..len {
            let r = rng.next_u64();
            kept |= (((r >> 11) < keep) as u64) << j;
            odd |= (r & 1) << j;
        }
        let (mut to_s, mut to_e) = if prm.honest {
            (kept & !odd, kept & odd)
        } else {
            (kept, kept)
        };
        while to_s != 0 {
            rows.push_from(sh, i0 + to_s.trailing_zeros() as usize);
            to_s &= to_s - 1;
        }
        while to_e != 0 {
            est_rows.push((i0 + to_e.trailing_zeros() as usize) as u32);
            to_e &= to_e - 1;
        }
    }
    ctl.check()?;
    let mut off = Vec::with_capacity(p);
    let mut hist_len = 0;
    for e in sh.edges {
        off.push(hist_len);
        hist_len += (e.len() + 1) * sh.arms * HS;
    }
    let mut pool = std::mem::take(&mut work.pool);
    pool.retain(|h| h.data.len() == hist_len);
    let mut g = Grower {
        sh,
        prm,
        off,
        hist_len,
        rows,
        scratch: std::mem::take(&mut work.scratch),
        pool,
        rng,
        perm: (0..p as u32).collect(),
    };
    let grown = g.grow(ctl);
    work.rows = g.rows;
    work.scratch = g.scratch;
    work.pool = g.pool;
    let (nodes, parent, importance) = grown?;
    let tree = estimate(sh, prm, nodes, &parent, &est_rows, ctl);
    work.est_rows = est_rows;
    Ok(Grown {
        tree: tree?,
        importance,
    })
}

impl Grower<'_, '_> {
    fn totals(&self, start: usize, end: usize) -> Vec<ArmSums> {
        let mut t = vec![ArmSums::default(); self.sh.arms];
        for i in start..end {
            t[self.rows.arm[i] as usize].add(self.rows.weight(i), self.rows.y[i]);
        }
        t
    }

    fn can_split(&self, depth: usize, size: usize, totals: &[ArmSums]) -> bool {
        let mst = (2 * self.prm.min_samples_treatment.max(1)) as f64;
        depth < self.prm.max_depth
            && size >= 2 * self.prm.min_samples_leaf.max(1)
            && totals.iter().all(|a| a.n >= mst)
    }

    /// `max_features` distinct features, ascending (partial Fisher-Yates on `perm`).
    fn sample_features(&mut self) -> Vec<u32> {
        let p = self.perm.len();
        let k = self.prm.max_features.min(p);
        if k == p {
            return (0..p as u32).collect();
        }
        for i in 0..k {
            let j = i + (self.rng.next_u64() % (p - i) as u64) as usize;
            self.perm.swap(i, j);
        }
        let mut f = self.perm[..k].to_vec();
        f.sort_unstable();
        f
    }

    fn take_hist(&mut self) -> Hist {
        match self.pool.pop() {
            Some(mut h) => {
                h.valid.iter_mut().for_each(|v| *v = false);
                h
            }
            None => Hist {
                data: vec![0.0; self.hist_len],
                valid: vec![false; self.sh.p],
            },
        }
    }

    fn feature_range(&self, f: usize) -> std::ops::Range<usize> {
        let end = if f + 1 < self.off.len() {
            self.off[f + 1]
        } else {
            self.hist_len
        };
        self.off[f]..end
    }

    /// Builds the histograms of `feats` on rows `start..end` into `h` (zeroed first).
    fn build(&self, h: &mut Hist, feats: &[u32], start: usize, end: usize) {
        for &f in feats {
            let r = self.feature_range(f as usize);
            h.data[r].iter_mut().for_each(|v| *v = 0.0);
            h.valid[f as usize] = true;
        }
        if self.rows.w.is_empty() {
            self.build_rows::<false>(&mut h.data, feats, start, end);
        } else {
            self.build_rows::<true>(&mut h.data, feats, start, end);
        }
    }

    /// The histogram loop: blocks of rows, one feature at a time inside a block, so that the
    /// feature's histogram (bins x arms x 3 f64) stays in L1 while the block's rows stay in L2.
    fn build_rows<const WEIGHTED: bool>(
        &self,
        data: &mut [f64],
        feats: &[u32],
        start: usize,
        end: usize,
    ) {
        const BLOCK: usize = 4096;
        let stride = self.sh.arms * HS;
        let words = self.sh.stride / 8;
        let rows = &self.rows;
        for b0 in (start..end).step_by(BLOCK) {
            let b1 = (b0 + BLOCK).min(end);
            let arm = &rows.arm[b0..b1];
            let y = &rows.y[b0..b1];
            let codes = &rows.codes[b0 * words..b1 * words];
            for &f in feats {
                let f = f as usize;
                let o = self.off[f];
                let hf = &mut data[o..];
                for (j, row) in codes.chunks_exact(words).enumerate() {
                    let k = code(row, f) * stride + arm[j] as usize * HS;
                    let c = &mut hf[k..k + HS];
                    if WEIGHTED {
                        let w = rows.w[b0 + j];
                        c[0] += 1.0;
                        c[1] += w;
                        c[2] += w * y[j];
                    } else {
                        c[0] += 1.0;
                        c[1] += 1.0;
                        c[2] += y[j];
                    }
                }
            }
        }
    }

    /// Best (feature, bin, gain) among `feats`, or None.
    fn best_split(
        &self,
        h: &Hist,
        feats: &[u32],
        totals: &[ArmSums],
    ) -> Option<(usize, usize, f64)> {
        let arms = self.sh.arms;
        let var: Vec<f64> = totals
            .iter()
            .zip(self.sh.global_var)
            .map(|(a, g)| smoothed_var(a, *g))
            .collect();
        let n_all: f64 = totals.iter().map(|a| a.n).sum();
        let min_leaf = self.prm.min_samples_leaf.max(1) as f64;
        let mst = self.prm.min_samples_treatment.max(1) as f64;
        let mut left = vec![[0.0f64; HS]; arms];
        let mut best: Option<(usize, usize, f64)> = None;
        let mut best_gain = 0.0;
        for &f in feats {
            let f = f as usize;
            debug_assert!(h.valid[f]);
            let r = self.feature_range(f);
            let hf = &h.data[r];
            let nb = hf.len() / (arms * HS);
            left.iter_mut().for_each(|l| *l = [0.0; HS]);
            let mut n_left = 0.0;
            for b in 0..nb.saturating_sub(1) {
                let cell = &hf[b * arms * HS..(b + 1) * arms * HS];
                for a in 0..arms {
                    let c = &cell[a * HS..(a + 1) * HS];
                    left[a][0] += c[0];
                    left[a][1] += c[1];
                    left[a][2] += c[2];
                    n_left += c[0];
                }
                if n_left < min_leaf {
                    continue;
                }
                if n_all - n_left < min_leaf {
                    break;
                }
                let ok = (0..arms).all(|a| {
                    let t = &totals[a];
                    left[a][0] >= mst
                        && t.n - left[a][0] >= mst
                        && left[a][1] > 0.0
                        && t.w - left[a][1] > 1e-12 * t.w
                });
                if !ok {
                    continue;
                }
                let side = |a: usize| {
                    let t = &totals[a];
                    let (lw, rw) = (left[a][1], t.w - left[a][1]);
                    (
                        left[a][2] / lw,
                        (t.wy - left[a][2]) / rw,
                        1.0 / lw,
                        1.0 / rw,
                    )
                };
                let (cl, cr, icl, icr) = side(0);
                let mut gain = 0.0;
                for t in 1..arms {
                    let (tl, tr, itl, itr) = side(t);
                    let d = (tl - cl) - (tr - cr);
                    let den = var[t] * (itl + itr) + var[0] * (icl + icr);
                    if den > 0.0 {
                        gain += d * d / den;
                    }
                }
                if gain > best_gain {
                    best_gain = gain;
                    best = Some((f, b, gain));
                }
            }
        }
        best
    }

    /// Stable partition of `start..end` by `code[f] <= bin`; returns the split point and the
    /// left side's totals.
    /// Without a branch per row (the side is a coin flip to the predictor): every row is
    /// written both to its place on the left (at or before its own index) and to the scratch,
    /// and only the index of its side advances; the left totals add the row times 0 or 1.
    fn partition(&mut self, start: usize, end: usize, f: usize, bin: u8) -> (usize, Vec<ArmSums>) {
        let words = self.sh.stride / 8;
        let bin = bin as usize;
        let m = end - start;
        let mut lt = vec![ArmSums::default(); self.sh.arms];
        let weighted = !self.rows.w.is_empty();
        let s = &mut self.scratch;
        if s.arm.len() < m {
            s.codes.resize(m * words, 0);
            s.arm.resize(m, 0);
            s.y.resize(m, 0.0);
            if weighted {
                s.w.resize(m, 0.0);
            }
        }
        let r = &mut self.rows;
        let (mut wl, mut sr) = (start, 0usize);
        for i in start..end {
            let left = (code(&r.codes[i * words..], f) <= bin) as usize;
            for k in 0..words {
                let v = r.codes[i * words + k];
                r.codes[wl * words + k] = v;
                s.codes[sr * words + k] = v;
            }
            let (a, y) = (r.arm[i], r.y[i]);
            let w = if weighted { r.w[i] } else { 1.0 };
            r.arm[wl] = a;
            s.arm[sr] = a;
            r.y[wl] = y;
            s.y[sr] = y;
            if weighted {
                r.w[wl] = w;
                s.w[sr] = w;
            }
            let g = left as f64;
            let t = &mut lt[a as usize];
            let gw = g * w;
            t.n += g;
            t.w += gw;
            t.ww += gw * w;
            t.wy += gw * y;
            t.wyy += gw * y * y;
            wl += left;
            sr += 1 - left;
        }
        r.codes[wl * words..end * words].copy_from_slice(&s.codes[..sr * words]);
        r.arm[wl..end].copy_from_slice(&s.arm[..sr]);
        r.y[wl..end].copy_from_slice(&s.y[..sr]);
        if weighted {
            r.w[wl..end].copy_from_slice(&s.w[..sr]);
        }
        (wl, lt)
    }

    #[allow(clippy::type_complexity)]
    fn grow(&mut self, ctl: &Control) -> Result<(Vec<Node>, Vec<u32>, Vec<f64>)> {
        let p = self.sh.p;
        let m = self.rows.arm.len();
        let mut nodes = vec![Node::leaf()];
        let mut parent = vec![u32::MAX];
        let mut importance = vec![0.0; p];
        let totals = self.totals(0, m);
        let mut root = Pending {
            start: 0,
            end: m,
            depth: 0,
            node: 0,
            feats: Vec::new(),
            hist: None,
            totals,
        };
        if self.can_split(0, m, &root.totals) {
            root.feats = self.sample_features();
            let mut h = self.take_hist();
            let feats = root.feats.clone();
            self.build(&mut h, &feats, 0, m);
            root.hist = Some(h);
        }
        let mut stack = vec![root];
        while let Some(nd) = stack.pop() {
            ctl.check()?;
            let Some(hist) = nd.hist else { continue };
            let Some((f, b, gain)) = self.best_split(&hist, &nd.feats, &nd.totals) else {
                self.pool.push(hist);
                continue;
            };
            importance[f] += gain;
            let (li, ri) = (nodes.len(), nodes.len() + 1);
            nodes[nd.node] = Node {
                feature: f as u32,
                bin: b as u8,
                threshold: self.sh.edges[f][b],
                left: li as u32,
                right: ri as u32,
            };
            nodes.push(Node::leaf());
            nodes.push(Node::leaf());
            parent.push(nd.node as u32);
            parent.push(nd.node as u32);
            let depth = nd.depth + 1;
            if depth >= self.prm.max_depth {
                // Both children are leaves: their rows are never read again (the leaves are
                // estimated from the estimation rows), so they need no partition.
                self.pool.push(hist);
                continue;
            }
            let (mid, lt) = self.partition(nd.start, nd.end, f, b as u8);
            let rt: Vec<ArmSums> = nd
                .totals
                .iter()
                .zip(&lt)
                .map(|(t, l)| ArmSums {
                    n: t.n - l.n,
                    w: t.w - l.w,
                    ww: t.ww - l.ww,
                    wy: t.wy - l.wy,
                    wyy: t.wyy - l.wyy,
                })
                .collect();
            let mut kids = [
                Pending {
                    start: nd.start,
                    end: mid,
                    depth,
                    node: li,
                    feats: Vec::new(),
                    hist: None,
                    totals: lt,
                },
                Pending {
                    start: mid,
                    end: nd.end,
                    depth,
                    node: ri,
                    feats: Vec::new(),
                    hist: None,
                    totals: rt,
                },
            ];
            let mut need = [false; 2];
            for (k, kid) in kids.iter_mut().enumerate() {
                need[k] = self.can_split(depth, kid.end - kid.start, &kid.totals);
                if need[k] {
                    kid.feats = self.sample_features();
                }
            }
            // Smaller child built from its rows, larger by subtraction where possible.
            let (s, l) = if mid - nd.start <= nd.end - mid {
                (0, 1)
            } else {
                (1, 0)
            };
            let mut parent_hist = hist;
            let mut build_s = vec![false; p];
            if need[s] {
                for &f in &kids[s].feats {
                    build_s[f as usize] = true;
                }
            }
            if need[l] {
                for &f in &kids[l].feats {
                    if parent_hist.valid[f as usize] {
                        build_s[f as usize] = true;
                    }
                }
            }
            let bs: Vec<u32> = (0..p as u32).filter(|&f| build_s[f as usize]).collect();
            let hs = if bs.is_empty() {
                None
            } else {
                let mut h = self.take_hist();
                self.build(&mut h, &bs, kids[s].start, kids[s].end);
                Some(h)
            };
            if need[l] {
                for f in 0..p {
                    let both = parent_hist.valid[f] && hs.as_ref().is_some_and(|h| h.valid[f]);
                    if both {
                        let r = self.feature_range(f);
                        let src = &hs.as_ref().expect("checked").data[r.clone()];
                        for (d, v) in parent_hist.data[r].iter_mut().zip(src) {
                            *d -= *v;
                        }
                    }
                    parent_hist.valid[f] = both;
                }
                let missing: Vec<u32> = kids[l]
                    .feats
                    .iter()
                    .copied()
                    .filter(|&f| !parent_hist.valid[f as usize])
                    .collect();
                if !missing.is_empty() {
                    self.build(&mut parent_hist, &missing, kids[l].start, kids[l].end);
                }
                kids[l].hist = Some(parent_hist);
            } else {
                self.pool.push(parent_hist);
            }
            if need[s] {
                kids[s].hist = hs;
            } else if let Some(h) = hs {
                self.pool.push(h);
            }
            let [k0, k1] = kids;
            if s == 0 {
                stack.push(k1);
                stack.push(k0);
            } else {
                stack.push(k0);
                stack.push(k1);
            }
        }
        Ok((nodes, parent, importance))
    }
}
