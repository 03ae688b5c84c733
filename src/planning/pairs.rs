//! Estimates of every (user, task) pair of a one-treatment forest fitted on rows `[u, z]`
//! (`Forest::predict_pairs`): each user row against every task row, without stacking the pairs.
//!
//! **Task masks.** A split on a task feature sends the same tasks the same way for every user,
//! so the set of tasks that can reach a node, `M(node)`, is fixed once `Z` is known: the tasks
//! that satisfy every task split on the node's path. For a user `u`, the pair `(u, j)` ends in
//! the leaf `L` with `j` in `M(L)` whose path's user splits `u` all satisfies, and that leaf is
//! unique: if two such leaves existed, the stacked row `[u, z_j]` would satisfy both paths,
//! which part at their last common node.
//!
//! **Leaf elimination.** So a tree, for a user, is the set of its leaves (with a non-empty
//! `M(L)`) that no user split on their path rules out: start from all of them and, at every user
//! split, clear the leaves of the side the user does not take (a bit mask per side, the leaves
//! numbered in depth-first order so each subtree is a range). Every user split is evaluated,
//! without branches and in any order, the idea of QuickScorer (Lucchese et al. 2015, "QuickScorer:
//! a fast algorithm to rank documents with additive ensembles of regression trees", SIGIR)
//! extended to the several leaves a user reaches through task splits.
//!
//! **Regions.** The sets of leaves a user can reach are few (one per way of going at the user
//! splits: the two sides' sets at a user split, every pair of the sides' sets at a task split;
//! 90 on average for the planner's depth-8 trees on 20 tasks), and in each set every task is in
//! exactly one leaf. So each set has one row of `k` values, found by its bits in a small hash
//! table (cuckoo hashing: one of two slots, read without a branch), and a user adds that one
//! row per tree. A tree with more than [`MAX_REGIONS`] sets instead adds one row per kept leaf:
//! its estimate at the tasks of `M(L)`, `+0.0` elsewhere, and then so does every tree of the
//! forest (a slower path: at 1024, one model of the planner's 2M-user benchmark had 3 such
//! trees of its 100 and scored its users in 2.2 times the time).
//!
//! **Bit for bit.** Entry `[i, j]` gets, tree by tree, the estimate of its one leaf (plus `+0.0`
//! from the other kept leaves, when adding per leaf, and a region's row is built so too);
//! `a + 0.0 == a` exactly for every `a` but `-0.0`, and the sums
//! start at `+0.0` and never become `-0.0` (`x + (-x) = +0.0`), so the sums are those of
//! [`crate::planning::forest::Forest::predict`] on the stacked rows, added in the same tree
//! order. A NaN feature fails every `<=` and goes right, as in the walk.
//!
//! Trees with more than [`MAX_WORDS`] x 64 such leaves take [`walk`], the direct walk of each
//! user through the tree that splits the task set at task splits.

use super::dedup::Coder;
use super::tree::{Tree, LEAF};

/// Most u64 words of leaf bits per tree the elimination takes (256 leaves).
pub const MAX_WORDS: usize = 4;
mod tabled;
use tabled::{add_tabled, packed_stride};

/// Rows evaluated together against one tree (their rows and sums stay in the L1 cache).
const BLOCK: usize = 256;
/// Most regions per tree given a table of their `k` values (else each kept leaf adds its own).
/// A table of 4096 regions of 20 tasks holds 2.6 MB of rows, of which a user reads one.
const MAX_REGIONS: usize = 4096;

/// The user split of a tree: the leaf bits to keep if the user goes right (`keep[0]`) or left
/// (`keep[1]`), indexed by the comparison, so no branch depends on the data.
struct Split<const W: usize> {
    feature: usize,
    threshold: f64,
    keep: [[u64; W]; 2],
    /// The same split on the codes of [`super::dedup`] (set by [`Resolver::to_codes`]): the
    /// code column of `feature` and the index of `threshold` among its thresholds.
    col: usize,
    at: u8,
}

/// One tree resolved for the rows of `Z`.
pub struct Compiled<const W: usize> {
    splits: Vec<Split<W>>,
    all: [u64; W],
    /// Per kept leaf, `k` estimates and `k` squared standard errors (0 outside `M(L)`).
    est: Vec<f64>,
    var: Vec<f64>,
    /// The regions, if not too many: each user's set of kept leaves is one of them.
    regions: Option<RegionTable<W>>,
}

/// The sets of kept leaves a user can reach, found by their bits, each with its `k` estimates
/// and squared standard errors: every task is in exactly one leaf of a set.
///
/// A region is in one of its two slots `h(key, MULS[m])` and `h(key, MULS[m + 1])` (cuckoo
/// hashing at most a quarter full), so [`RegionTable::find`] reads both and picks the one that
/// holds the key, without a branch on the data. If no pair of multipliers places every region
/// so, the table is filled by linear probing from the first slot instead.
struct RegionTable<const W: usize> {
    /// The key of each slot (all zero if empty: a region keeps at least one leaf).
    keys: Vec<[u64; W]>,
    slot: Vec<u32>,
    shift: u32,
    /// The two multipliers of the slots (cuckoo), or `None` (linear probing from the first).
    muls: Option<[u64; 2]>,
    est: Vec<f64>,
    var: Vec<f64>,
    /// Per region, its `k` estimates then its `k` squared standard errors, `+0.0` up to
    /// [`packed_stride`]`(k)` (the rows [`add_tabled`] adds, [`tabled::LANES`] at a time).
    packed: Vec<f64>,
}

const EMPTY: u32 = u32::MAX;
/// Odd multipliers of the slots' hashes, tried in pairs (the first pair nearly always places
/// every region); fixed, so the table does not depend on anything but the regions.
const MULS: [u64; 9] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xD6E8_FEB8_6659_FD93,
    0xFF51_AFD7_ED55_8CCD,
    0xC4CE_B9FE_1A85_EC53,
    0x94D0_49BB_1331_11EB,
    0xBF58_476D_1CE4_E5B9,
    0x2545_F491_4F6C_DD1D,
];
/// Displacements tried per region when placing it (cuckoo), before the next multipliers.
const MAX_KICKS: usize = 256;

impl<const W: usize> RegionTable<W> {
    #[inline(always)]
    fn hash(&self, key: &[u64; W], mul: u64) -> usize {
        let h = key.iter().fold(0u64, |h, &w| (h ^ w).wrapping_mul(mul));
        (h >> self.shift) as usize
    }

    fn new(regions: &[Vec<u32>], leaf_est: &[f64], leaf_var: &[f64], k: usize) -> Self {
        let size = (4 * regions.len()).next_power_of_two().max(4);
        let mut t = RegionTable {
            keys: vec![[0; W]; size],
            slot: vec![EMPTY; size],
            shift: 64 - size.trailing_zeros(),
            muls: None,
            est: vec![0.0; regions.len() * k],
            var: vec![0.0; regions.len() * k],
            packed: vec![0.0; regions.len() * packed_stride(k)],
        };
        let mut keys = Vec::with_capacity(regions.len());
        for (r, leaves) in regions.iter().enumerate() {
            let mut key = [0u64; W];
            for &l in leaves {
                let l = l as usize;
                key[l / 64] |= 1 << (l % 64);
                // the leaf's tasks (its row is 0 elsewhere, and the leaves' tasks are disjoint)
                for j in 0..k {
                    t.est[r * k + j] += leaf_est[l * k + j];
                    t.var[r * k + j] += leaf_var[l * k + j];
                }
            }
            keys.push(key);
            let row = &mut t.packed[r * packed_stride(k)..];
            row[..k].copy_from_slice(&t.est[r * k..(r + 1) * k]);
            row[k..2 * k].copy_from_slice(&t.var[r * k..(r + 1) * k]);
        }
        if !(0..MULS.len() - 1).any(|m| t.place_cuckoo(&keys, [MULS[m], MULS[m + 1]])) {
            t.place_probing(&keys);
        }
        t
    }

    /// Places every region by linear probing from its slot under `MULS[0]`.
    fn place_probing(&mut self, keys: &[[u64; W]]) {
        self.keys.fill([0; W]);
        self.slot.fill(EMPTY);
        self.muls = None;
        let size = self.slot.len();
        for (r, key) in keys.iter().enumerate() {
            let mut h = self.hash(key, MULS[0]);
            while self.slot[h] != EMPTY {
                h = (h + 1) & (size - 1);
            }
            self.keys[h] = *key;
            self.slot[h] = r as u32;
        }
    }

    /// Places every region in one of its two slots under `muls`; `false` (and the table in any
    /// state) if one cannot be placed.
    fn place_cuckoo(&mut self, keys: &[[u64; W]], muls: [u64; 2]) -> bool {
        self.keys.fill([0; W]);
        self.slot.fill(EMPTY);
        for (r, key) in keys.iter().enumerate() {
            let (mut key, mut r) = (*key, r as u32);
            let mut h = self.hash(&key, muls[0]);
            let mut placed = false;
            for _ in 0..MAX_KICKS {
                std::mem::swap(&mut self.keys[h], &mut key);
                std::mem::swap(&mut self.slot[h], &mut r);
                if r == EMPTY {
                    placed = true;
                    break;
                }
                // the displaced region goes to its other slot
                let (a, b) = (self.hash(&key, muls[0]), self.hash(&key, muls[1]));
                h = if a == h { b } else { a };
            }
            if !placed {
                return false;
            }
        }
        self.muls = Some(muls);
        true
    }

    /// The region of a set of kept leaves (one of the table's: every user's set is).
    #[inline(always)]
    fn find(&self, key: &[u64; W]) -> usize {
        if let Some([m0, m1]) = self.muls {
            let (a, b) = (self.hash(key, m0), self.hash(key, m1));
            let h = if self.keys[a] == *key { a } else { b };
            if self.keys[h] == *key {
                return self.slot[h] as usize;
            }
            return EMPTY as usize;
        }
        let mut h = self.hash(key, MULS[0]);
        while self.keys[h] != *key && self.slot[h] != EMPTY {
            h = (h + 1) & (self.slot.len() - 1);
        }
        self.slot[h] as usize
    }
}

/// The pair layout: user features `0..pu`, task features `pu..` (rows of `z`, `pz` wide).
#[derive(Clone, Copy)]
pub struct Layout<'a> {
    pub pu: usize,
    pub z: &'a [f64],
    pub pz: usize,
    pub k: usize,
}

impl Layout<'_> {
    fn goes_left(&self, j: usize, feature: usize, threshold: f64) -> bool {
        self.z[j * self.pz + feature - self.pu] <= threshold
    }
}

/// Kept leaves (tree leaf index, tasks) in depth-first order, and the user splits as (feature,
/// threshold, first leaf, first leaf of the right side, end) over those leaves.
struct Resolved {
    leaves: Vec<(usize, Vec<bool>)>,
    splits: Vec<(usize, f64, usize, usize, usize)>,
}

/// The regions of a subtree: the sets of kept leaves (numbers) one user can reach in it, one
/// per way of going at its user splits; `None` once there are more than `cap`.
type Regions = Option<Vec<Vec<u32>>>;

fn resolve(
    tr: &Tree,
    node: usize,
    tasks: Vec<bool>,
    lay: &Layout<'_>,
    out: &mut Resolved,
    cap: usize,
) -> Regions {
    let nd = &tr.nodes[node];
    if nd.feature == LEAF {
        out.leaves.push((nd.left as usize, tasks));
        return Some(vec![vec![out.leaves.len() as u32 - 1]]);
    }
    let f = nd.feature as usize;
    if f < lay.pu {
        // the user goes one way: a region of either side
        let at = out.splits.len();
        let start = out.leaves.len();
        out.splits.push((f, nd.threshold, start, start, start));
        let a = resolve(tr, nd.left as usize, tasks.clone(), lay, out, cap);
        let mid = out.leaves.len();
        let b = resolve(tr, nd.right as usize, tasks, lay, out, cap);
        let end = out.leaves.len();
        out.splits[at] = (f, nd.threshold, start, mid, end);
        let mut a = a?;
        a.extend(b?);
        return (a.len() <= cap).then_some(a);
    }
    // the tasks part: a region of each side together
    let left: Vec<bool> = (0..lay.k)
        .map(|j| tasks[j] && lay.goes_left(j, f, nd.threshold))
        .collect();
    let right: Vec<bool> = (0..lay.k).map(|j| tasks[j] && !left[j]).collect();
    let mut regions: Regions = Some(vec![Vec::new()]);
    for (child, set) in [(nd.left, left), (nd.right, right)] {
        if set.iter().any(|&b| b) {
            let sub = resolve(tr, child as usize, set, lay, out, cap);
            regions = match (regions, sub) {
                (Some(r), Some(sub)) if r.len() * sub.len() <= cap => Some(
                    r.iter()
                        .flat_map(|a| sub.iter().map(move |b| [a.as_slice(), b].concat()))
                        .collect(),
                ),
                _ => None,
            };
        }
    }
    regions
}

/// `[u64; W]` with the bits `a..b` set.
fn range_bits<const W: usize>(a: usize, b: usize) -> [u64; W] {
    let mut m = [0u64; W];
    for i in a..b {
        m[i / 64] |= 1 << (i % 64);
    }
    m
}

fn and_not<const W: usize>(a: [u64; W], b: [u64; W]) -> [u64; W] {
    std::array::from_fn(|w| a[w] & !b[w])
}

impl<const W: usize> Compiled<W> {
    /// `None` if the tree keeps more than `64 W` leaves for these tasks; a table of regions if
    /// it has at most `cap`.
    fn new(tr: &Tree, lay: &Layout<'_>, cap: usize) -> Option<Self> {
        let mut r = Resolved {
            leaves: Vec::new(),
            splits: Vec::new(),
        };
        let regions = if lay.k > 0 {
            resolve(tr, 0, vec![true; lay.k], lay, &mut r, cap)
        } else {
            None
        };
        let n = r.leaves.len();
        if n > 64 * W {
            return None;
        }
        let all = range_bits::<W>(0, n);
        let splits = r
            .splits
            .iter()
            .filter(|s| s.2 < s.4)
            .map(|&(feature, threshold, a, mid, b)| Split {
                feature,
                threshold,
                keep: [
                    and_not(all, range_bits(a, mid)),
                    and_not(all, range_bits(mid, b)),
                ],
                col: 0,
                at: 0,
            })
            .collect();
        let (mut est, mut var) = (vec![0.0; n * lay.k], vec![0.0; n * lay.k]);
        for (l, (leaf, tasks)) in r.leaves.iter().enumerate() {
            let (v, s) = (tr.est[*leaf], tr.se[*leaf]);
            for j in (0..lay.k).filter(|&j| tasks[j]) {
                est[l * lay.k + j] = v;
                var[l * lay.k + j] = s * s;
            }
        }
        let regions = regions
            .filter(|g| g.len() <= cap)
            .map(|g| RegionTable::new(&g, &est, &var, lay.k));
        Some(Compiled {
            splits,
            all,
            est,
            var,
            regions,
        })
    }

    /// Adds this tree's estimates and squared standard errors of the user `row` to `e` and `s`.
    #[inline]
    fn add(&self, row: &[f64], e: &mut [f64], s: &mut [f64]) {
        self.add_by(|sp| row[sp.feature] <= sp.threshold, e, s)
    }

    /// [`Compiled::add`] of a user given by its code ([`super::dedup`]): `x <= t_i` iff the
    /// code `<= i`, so the same leaves.
    #[inline]
    fn add_code(&self, code: &[u8], e: &mut [f64], s: &mut [f64]) {
        self.add_by(|sp| code[sp.col] <= sp.at, e, s)
    }

    /// Adds the estimates of the user that goes left at the splits where `left` says so.
    #[inline(always)]
    fn add_by(&self, left: impl Fn(&Split<W>) -> bool, e: &mut [f64], s: &mut [f64]) {
        let mut v = self.all;
        for sp in &self.splits {
            let m = &sp.keep[left(sp) as usize];
            for w in 0..W {
                v[w] &= m[w];
            }
        }
        let k = e.len();
        let s = &mut s[..k];
        if let Some(t) = &self.regions {
            let r = t.find(&v);
            let (re, rs) = (&t.est[r * k..(r + 1) * k], &t.var[r * k..(r + 1) * k]);
            for j in 0..k {
                e[j] += re[j];
                s[j] += rs[j];
            }
            return;
        }
        for (w, mut bits) in v.into_iter().enumerate() {
            while bits != 0 {
                let l = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let (le, ls) = (&self.est[l * k..(l + 1) * k], &self.var[l * k..(l + 1) * k]);
                for j in 0..k {
                    e[j] += le[j];
                    s[j] += ls[j];
                }
            }
        }
    }
}

/// The forest's trees resolved for `Z`, with the fewest words of leaf bits that hold them all.
pub enum Resolver {
    W1(Vec<Compiled<1>>),
    W2(Vec<Compiled<2>>),
    W4(Vec<Compiled<4>>),
}

impl Resolver {
    /// `None` if a tree keeps more than [`MAX_WORDS`] x 64 leaves (use [`walk`]).
    pub fn new(trees: &[Tree], lay: &Layout<'_>) -> Option<Resolver> {
        Self::with_cap(trees, lay, MAX_REGIONS)
    }

    /// As [`Resolver::new`], with at most `cap` regions per tree tabled.
    fn with_cap(trees: &[Tree], lay: &Layout<'_>, cap: usize) -> Option<Resolver> {
        fn c<const W: usize>(t: &[Tree], l: &Layout<'_>, cap: usize) -> Option<Vec<Compiled<W>>> {
            t.iter().map(|t| Compiled::<W>::new(t, l, cap)).collect()
        }
        c(trees, lay, cap)
            .map(Resolver::W1)
            .or_else(|| c(trees, lay, cap).map(Resolver::W2))
            .or_else(|| c(trees, lay, cap).map(Resolver::W4))
    }

    /// Trees with a table of regions.
    #[cfg(test)]
    fn tabled(&self) -> usize {
        match self {
            Resolver::W1(t) => t.iter().filter(|c| c.regions.is_some()).count(),
            Resolver::W2(t) => t.iter().filter(|c| c.regions.is_some()).count(),
            Resolver::W4(t) => t.iter().filter(|c| c.regions.is_some()).count(),
        }
    }

    /// Adds, tree by tree, the estimates and squared standard errors of every pair of the rows
    /// `xs` (`pu` wide) and the `k` tasks into `e` and `s` (rows x `k`).
    pub fn add(&self, e: &mut [f64], s: &mut [f64], xs: &[f64], pu: usize, k: usize) {
        match self {
            Resolver::W1(t) => add_blocks(t, e, s, xs, pu, k, Compiled::add),
            Resolver::W2(t) => add_blocks(t, e, s, xs, pu, k, Compiled::add),
            Resolver::W4(t) => add_blocks(t, e, s, xs, pu, k, Compiled::add),
        }
    }

    /// Points every user split at the codes of `coder` (its column and threshold index), for
    /// [`Resolver::add_codes`]; `false` (nothing changed) if a split is not among the coder's.
    pub fn to_codes(&mut self, coder: &Coder) -> bool {
        fn set<const W: usize>(trees: &mut [Compiled<W>], coder: &Coder) -> bool {
            let mut at = Vec::new();
            for sp in trees.iter().flat_map(|t| &t.splits) {
                match coder.position(sp.feature, sp.threshold) {
                    Some(p) => at.push(p),
                    None => return false,
                }
            }
            let splits = trees.iter_mut().flat_map(|t| &mut t.splits);
            for (sp, (col, i)) in splits.zip(at) {
                (sp.col, sp.at) = (col, i);
            }
            true
        }
        match self {
            Resolver::W1(t) => set(t, coder),
            Resolver::W2(t) => set(t, coder),
            Resolver::W4(t) => set(t, coder),
        }
    }

    /// [`Resolver::add`] of users given by their codes (`codes`: rows of `m` bytes), after
    /// [`Resolver::to_codes`].
    pub fn add_codes(&self, e: &mut [f64], s: &mut [f64], codes: &[u8], m: usize, k: usize) {
        fn go<const W: usize>(
            t: &[Compiled<W>],
            e: &mut [f64],
            s: &mut [f64],
            c: &[u8],
            m: usize,
            k: usize,
        ) {
            if t.iter().all(|c| c.regions.is_some()) {
                add_tabled(t, e, s, c, m, k);
            } else {
                add_blocks(t, e, s, c, m, k, Compiled::add_code);
            }
        }
        match self {
            Resolver::W1(t) => go(t, e, s, codes, m, k),
            Resolver::W2(t) => go(t, e, s, codes, m, k),
            Resolver::W4(t) => go(t, e, s, codes, m, k),
        }
    }

    /// [`Resolver::add_codes`] by the row-by-row path only (tests compare the two).
    #[cfg(test)]
    fn add_codes_by_rows(&self, e: &mut [f64], s: &mut [f64], codes: &[u8], m: usize, k: usize) {
        match self {
            Resolver::W1(t) => add_blocks(t, e, s, codes, m, k, Compiled::add_code),
            Resolver::W2(t) => add_blocks(t, e, s, codes, m, k, Compiled::add_code),
            Resolver::W4(t) => add_blocks(t, e, s, codes, m, k, Compiled::add_code),
        }
    }
}

/// `add(tree, row, e, s)` of every tree for every row of `xs` (`pu` wide), a block of rows at a
/// time.
#[allow(clippy::too_many_arguments)]
fn add_blocks<const W: usize, T>(
    trees: &[Compiled<W>],
    e: &mut [f64],
    s: &mut [f64],
    xs: &[T],
    pu: usize,
    k: usize,
    add: impl Fn(&Compiled<W>, &[T], &mut [f64], &mut [f64]),
) {
    if k == 0 {
        return;
    }
    for ((eb, sb), xb) in e
        .chunks_mut(BLOCK * k)
        .zip(s.chunks_mut(BLOCK * k))
        .zip(xs.chunks(BLOCK * pu))
    {
        for tr in trees {
            for ((er, sr), row) in eb
                .chunks_exact_mut(k)
                .zip(sb.chunks_exact_mut(k))
                .zip(xb.chunks_exact(pu))
            {
                add(tr, row, er, sr);
            }
        }
    }
}

/// The direct walk: each row of `xs` through each tree, the task set partitioned at task
/// splits; adds into `e` and `s` as [`Resolver::add`] does.
pub fn walk(trees: &[Tree], e: &mut [f64], s: &mut [f64], xs: &[f64], lay: &Layout<'_>) {
    let (pu, pz, k, z) = (lay.pu, lay.pz, lay.k, lay.z);
    if k == 0 {
        return;
    }
    let rows = e.len() / k;
    let mut idx: Vec<u32> = (0..k as u32).collect();
    let mut stack: Vec<(u32, usize, usize)> = Vec::new();
    for tr in trees {
        for r in 0..rows {
            let row = &xs[r * pu..(r + 1) * pu];
            let (er, sr) = (&mut e[r * k..(r + 1) * k], &mut s[r * k..(r + 1) * k]);
            stack.push((0, 0, k));
            while let Some((node, a, c)) = stack.pop() {
                let nd = &tr.nodes[node as usize];
                if nd.feature == LEAF {
                    let leaf = nd.left as usize;
                    let (v, sv) = (tr.est[leaf], tr.se[leaf] * tr.se[leaf]);
                    for &j in &idx[a..c] {
                        er[j as usize] += v;
                        sr[j as usize] += sv;
                    }
                } else if (nd.feature as usize) < pu {
                    let go = if row[nd.feature as usize] <= nd.threshold {
                        nd.left
                    } else {
                        nd.right
                    };
                    stack.push((go, a, c));
                } else {
                    let f = nd.feature as usize - pu;
                    let mut mid = a;
                    for q in a..c {
                        if z[idx[q] as usize * pz + f] <= nd.threshold {
                            idx.swap(q, mid);
                            mid += 1;
                        }
                    }
                    if mid > a {
                        stack.push((nd.left, a, mid));
                    }
                    if c > mid {
                        stack.push((nd.right, mid, c));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::tree::Node;
    use super::tabled::{add_tabled_with, ROWS_AT_ONCE, TABLED_BLOCK};
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A full random tree of `depth` over `pu + pz` features (split features drawn with
    /// `p_task` chance of being a task feature), thresholds in [-1, 1], leaf values random.
    pub(in crate::planning) fn random_tree(
        rng: &mut crate::rng::Rng,
        depth: usize,
        pu: usize,
        pz: usize,
    ) -> Tree {
        let mut nodes = Vec::new();
        let mut n_leaves = 0u32;
        fn grow(
            rng: &mut crate::rng::Rng,
            nodes: &mut Vec<Node>,
            n_leaves: &mut u32,
            d: usize,
            pu: usize,
            pz: usize,
        ) -> u32 {
            let at = nodes.len() as u32;
            nodes.push(Node {
                feature: LEAF,
                bin: 0,
                threshold: 0.0,
                left: 0,
                right: 0,
            });
            if d == 0 || rng.random::<f64>() < 0.1 {
                nodes[at as usize].left = *n_leaves;
                *n_leaves += 1;
                return at;
            }
            let f = if rng.random::<f64>() < 0.3 {
                pu + rng.random_range(0..pz)
            } else {
                rng.random_range(0..pu)
            };
            let thr = rng.random::<f64>() * 2.0 - 1.0;
            let l = grow(rng, nodes, n_leaves, d - 1, pu, pz);
            let r = grow(rng, nodes, n_leaves, d - 1, pu, pz);
            nodes[at as usize] = Node {
                feature: f as u32,
                bin: 0,
                threshold: thr,
                left: l,
                right: r,
            };
            at
        }
        grow(rng, &mut nodes, &mut n_leaves, depth, pu, pz);
        let est = (0..n_leaves).map(|_| rng.random::<f64>() - 0.5).collect();
        let se = (0..n_leaves).map(|_| rng.random::<f64>()).collect();
        Tree { nodes, est, se }
    }

    #[test]
    fn region_tables_find_every_region_by_cuckoo_and_by_probing() {
        fn check<const W: usize>(rng: &mut crate::rng::Rng, n: usize) -> bool {
            // n distinct non-empty sets of leaves (as the regions of a tree are)
            let mut seen = std::collections::HashSet::new();
            let mut regions: Vec<Vec<u32>> = Vec::new();
            while regions.len() < n {
                let set: Vec<u32> = (0..64 * W as u32)
                    .filter(|_| rng.random::<f64>() < 0.1)
                    .collect();
                if !set.is_empty() && seen.insert(set.clone()) {
                    regions.push(set);
                }
            }
            let k = 3;
            let leaf_est: Vec<f64> = (0..64 * W * k).map(|i| i as f64).collect();
            let mut t = RegionTable::<W>::new(&regions, &leaf_est, &leaf_est, k);
            let cuckoo = t.muls.is_some();
            let keys: Vec<[u64; W]> = regions
                .iter()
                .map(|set| {
                    let mut key = [0u64; W];
                    for &l in set {
                        key[l as usize / 64] |= 1 << (l % 64);
                    }
                    key
                })
                .collect();
            for (r, key) in keys.iter().enumerate() {
                assert_eq!(t.find(key), r, "{n} regions, W {W}, cuckoo {cuckoo}");
            }
            assert_eq!(t.find(&[0; W]), EMPTY as usize, "no region is empty");
            t.place_probing(&keys);
            for (r, key) in keys.iter().enumerate() {
                assert_eq!(t.find(key), r, "{n} regions, W {W}, by probing");
            }
            cuckoo
        }
        let mut rng = crate::rng::Rng::seed_from_u64(41);
        let mut cuckoo = 0;
        for n in [1, 2, 3, 17, 300, 1025, 4096] {
            cuckoo += check::<1>(&mut rng, n) as usize;
            cuckoo += check::<2>(&mut rng, n) as usize;
            cuckoo += check::<4>(&mut rng, n) as usize;
        }
        assert!(cuckoo >= 19, "{cuckoo} of 21 tables by cuckoo hashing");
    }

    #[test]
    fn regions_summed_by_blocks_equal_the_row_by_row_sums() {
        use super::super::dedup::{group, Coder};
        use crate::control::Control;
        let mut rng = crate::rng::Rng::seed_from_u64(23);
        let (pu, pz, n) = (6, 3, 1501);
        let x: Vec<f64> = (0..n * pu)
            .map(|_| (rng.random_range(0..30) as f64) / 15.0 - 1.0)
            .collect();
        // k: below, at and above one lane block; depth 5: one word, 7: more
        let mut tested = 0;
        for (k, depth) in [(1, 5), (3, 7), (4, 5), (20, 5), (20, 6), (37, 7)] {
            let z: Vec<f64> = (0..k * pz)
                .map(|_| rng.random::<f64>() * 2.0 - 1.0)
                .collect();
            let trees: Vec<Tree> = (0..23)
                .map(|_| random_tree(&mut rng, depth, pu, pz))
                .collect();
            let lay = Layout { pu, z: &z, pz, k };
            let Some(mut r) = Resolver::new(&trees, &lay) else {
                continue;
            };
            let coder = Coder::new(&trees, pu).expect("few thresholds");
            assert!(r.to_codes(&coder));
            let g = group(&coder, &x, n, pu, &Control::default()).unwrap();
            let (u, m) = (g.firsts.len(), coder.width());
            let (mut e1, mut s1) = (vec![0.0; u * k], vec![0.0; u * k]);
            r.add_codes_by_rows(&mut e1, &mut s1, &g.codes, m, k);
            if r.tabled() < trees.len() {
                continue; // add_codes takes the row-by-row path
            }
            tested += 1;
            let (mut e2, mut s2) = (vec![0.0; u * k], vec![0.0; u * k]);
            r.add_codes(&mut e2, &mut s2, &g.codes, m, k);
            assert!(u > TABLED_BLOCK && u % ROWS_AT_ONCE != 0, "{u} rows");
            assert_eq!(e1, e2, "k {k}, depth {depth}");
            assert_eq!(s1, s2, "k {k}, depth {depth}");
            // and the portable sums, whatever the CPU
            let (mut e3, mut s3) = (vec![0.0; u * k], vec![0.0; u * k]);
            match &r {
                Resolver::W1(t) => add_tabled_with::<_, false>(t, &mut e3, &mut s3, &g.codes, m, k),
                Resolver::W2(t) => add_tabled_with::<_, false>(t, &mut e3, &mut s3, &g.codes, m, k),
                Resolver::W4(t) => add_tabled_with::<_, false>(t, &mut e3, &mut s3, &g.codes, m, k),
            }
            assert_eq!(e1, e3, "k {k}, depth {depth}");
            assert_eq!(s1, s3, "k {k}, depth {depth}");
        }
        assert!(tested >= 3, "{tested} cases with every tree tabled");
    }

    #[test]
    fn elimination_equals_the_walk_and_the_stacked_rows() {
        let mut rng = crate::rng::Rng::seed_from_u64(5);
        let (pu, pz, k, n) = (4, 3, 70, 300);
        let z: Vec<f64> = (0..k * pz)
            .map(|_| rng.random::<f64>() * 2.0 - 1.0)
            .collect();
        let mut x: Vec<f64> = (0..n * pu)
            .map(|_| rng.random::<f64>() * 2.0 - 1.0)
            .collect();
        x[3] = f64::NAN; // goes right at every split, in both paths
        x[pu + 1] = z[0]; // ties with thresholds are rare; a feature equal to a z value
        let lay = Layout { pu, z: &z, pz, k };
        // depth 5: one word; 7: two or four; 10: more leaves than four words hold
        for (depth, words) in [(5, Some(1)), (7, None), (10, Some(0))] {
            let trees: Vec<Tree> = (0..6)
                .map(|_| random_tree(&mut rng, depth, pu, pz))
                .collect();
            let res = Resolver::new(&trees, &lay);
            match (words, &res) {
                (Some(0), None) | (Some(1), Some(Resolver::W1(_))) => {}
                (None, Some(Resolver::W2(_) | Resolver::W4(_))) => {}
                _ => panic!("depth {depth}: unexpected resolver"),
            }
            let (mut e1, mut s1) = (vec![0.0; n * k], vec![0.0; n * k]);
            walk(&trees, &mut e1, &mut s1, &x, &lay);
            if res.is_some() {
                // regions tabled (all of them at depth 5), and each kept leaf adding its row
                for cap in [MAX_REGIONS, 0] {
                    let r = Resolver::with_cap(&trees, &lay, cap).unwrap();
                    let tabled = r.tabled();
                    assert!(
                        if cap == 0 { tabled == 0 } else { tabled > 0 },
                        "depth {depth}"
                    );
                    assert!(depth > 5 || cap == 0 || tabled == trees.len());
                    let (mut e2, mut s2) = (vec![0.0; n * k], vec![0.0; n * k]);
                    r.add(&mut e2, &mut s2, &x, pu, k);
                    assert_eq!(e1, e2, "depth {depth}, cap {cap}");
                    assert_eq!(s1, s2, "depth {depth}, cap {cap}");
                }
            }
            // the walk against each stacked row through each tree
            for i in [0, 1, 57, n - 1] {
                for j in [0, 1, k - 1] {
                    let mut row = x[i * pu..(i + 1) * pu].to_vec();
                    row.extend_from_slice(&z[j * pz..(j + 1) * pz]);
                    let want: f64 = trees.iter().map(|t| t.est[t.leaf_of(&row)]).sum();
                    assert_eq!(e1[i * k + j], want, "depth {depth}, pair ({i}, {j})");
                }
            }
        }
    }
}
