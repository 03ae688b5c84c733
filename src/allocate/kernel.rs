//! The per-user subproblem and the parallel passes over users.
//!
//! Given resource prices `q`, user `i` picks the set `S` of its candidates maximising
//! `sum_{k in S} (v_k - q . u_k)` subject to `|S| <= L_i` and at most one candidate per exclusive
//! group.
//!
//! Why greedy is exact. Put every candidate whose action has no group in a block of its own and
//! the candidates of each group in one block. The sets with at most one element per block are the
//! independent sets of a partition matroid `M`; the feasible sets are those of `M` with at most
//! `L_i` elements, i.e. the independent sets of the truncation of `M` to rank `L_i`. A truncation
//! of a matroid is a matroid (if `I`, `J` are independent with `|I| < |J| <= L`, augmentation in
//! `M` gives `e in J \ I` with `I + e` independent in `M`, and `|I + e| <= L`). For a matroid, the
//! greedy algorithm (scan by non-increasing weight, keep an element if its weight is positive and
//! the set stays independent) returns a maximum-weight independent set (Rado-Edmonds). Moreover
//! the LP `{x in [0,1]: sum x <= L, sum over a block <= 1}` is exactly this matroid's polytope
//! (its rank function is `r(A) = min(L, number of blocks meeting A)` and both families of
//! inequalities imply `x(A) <= r(A)`), so it is integral: the Lagrangian dual equals the LP
//! relaxation of the whole problem, and the dual bound is a bound on the LP optimum.

use super::{Problem, Real};
use crate::control::Control;
use crate::error::Result;
use rayon::prelude::*;

/// Users per parallel chunk (fixed: results do not depend on the thread count).
pub const USERS_PER_CHUNK: usize = 4096;

/// Prices in the form the kernel reads them.
#[derive(Clone, Debug)]
pub struct Prices {
    /// Price of each resource.
    pub q: Vec<f64>,
    /// Cost of each action from its per-action usage: `sum_r q_r A[a, r]`.
    pub action_cost: Vec<f64>,
    /// Price of each per-candidate usage column.
    pub pair_price: Vec<f64>,
}

impl Prices {
    pub fn new<T: Real>(p: &Problem<'_, T>, q: &[f64]) -> Prices {
        let r_n = p.n_resources();
        let action_cost = (0..p.n_actions)
            .map(|a| {
                let row = &p.action_usage[a * r_n..(a + 1) * r_n];
                row.iter().zip(q).map(|(u, q)| u * q).sum()
            })
            .collect();
        let pair_price = p.pair_resource.iter().map(|&r| q[r]).collect();
        Prices {
            q: q.to_vec(),
            action_cost,
            pair_price,
        }
    }
}

/// Reduced value `v_k - q . u_k` of candidate `k`.
#[inline(always)]
pub fn reduced<T: Real>(p: &Problem<'_, T>, pr: &Prices, k: usize) -> f64 {
    let mut r = p.value[k].into() - pr.action_cost[p.action[k] as usize];
    for (c, col) in p.pair_usage.iter().enumerate() {
        r -= pr.pair_price[c] * col[k].into();
    }
    r
}

/// Solves user `i`'s subproblem exactly (see the module docs) and calls `pick(k, reduced_k)` for
/// each chosen candidate. `buf` is scratch space.
#[inline]
pub fn choose_user<T: Real>(
    p: &Problem<'_, T>,
    pr: &Prices,
    i: usize,
    buf: &mut Vec<(f64, u32)>,
    mut pick: impl FnMut(usize, f64),
) {
    let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
    let l = p.limit.get(i) as usize;
    if l == 0 || s == e {
        return;
    }
    if l == 1 {
        // One pick: the best positive reduced value (first one on ties). Groups cannot bind.
        let mut best = 0.0f64;
        let mut bk = usize::MAX;
        for k in s..e {
            let r = reduced(p, pr, k);
            if r > best {
                best = r;
                bk = k;
            }
        }
        if bk != usize::MAX {
            pick(bk, best);
        }
        return;
    }
    buf.clear();
    for k in s..e {
        let r = reduced(p, pr, k);
        if r > 0.0 {
            buf.push((r, (k - s) as u32));
        }
    }
    let groups = !p.group.is_empty();
    if buf.len() <= l && !groups {
        for &(r, off) in buf.iter() {
            pick(s + off as usize, r);
        }
        return;
    }
    buf.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut taken = 0usize;
    // Groups used so far: at most l entries, l is small.
    let mut used: [i32; 16] = [-1; 16];
    let mut used_vec: Vec<i32> = Vec::new();
    for &(r, off) in buf.iter() {
        let k = s + off as usize;
        if groups {
            let g = p.group[p.action[k] as usize];
            if g >= 0 {
                let seen = if l <= 16 {
                    used[..taken.min(16)].contains(&g)
                } else {
                    used_vec.contains(&g)
                };
                if seen {
                    continue;
                }
            }
            if l <= 16 {
                used[taken] = g;
            } else {
                used_vec.push(g);
            }
        }
        pick(k, r);
        taken += 1;
        if taken == l {
            break;
        }
    }
}

/// The users a pass runs over: all of them, or a list (a sample).
#[derive(Clone, Copy, Debug)]
pub enum Users<'a> {
    All(usize),
    List(&'a [u32]),
}

impl Users<'_> {
    pub fn len(&self) -> usize {
        match self {
            Users::All(n) => *n,
            Users::List(l) => l.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    #[inline]
    fn get(&self, idx: usize) -> usize {
        match self {
            Users::All(_) => idx,
            Users::List(l) => l[idx] as usize,
        }
    }
}

/// Result of one pass: the Lagrangian part of the dual function, the value of the choices and
/// their resource use.
#[derive(Clone, Debug)]
pub struct PassOut {
    /// `sum_i max_S sum_{k in S} (v_k - q . u_k)`.
    pub lsum: f64,
    /// `sum_i sum_{k in S_i} v_k`.
    pub value: f64,
    /// Resource use of the choices.
    pub usage: Vec<f64>,
    pub picks: u64,
}

struct ChunkFloats {
    chunk: usize,
    /// Per price vector: lsum, value, then the pair column sums.
    vals: Vec<f64>,
}

/// One pass over `users` at prices `pr`.
pub fn pass<T: Real>(
    p: &Problem<'_, T>,
    pr: &Prices,
    users: Users<'_>,
    ctl: &Control,
) -> Result<PassOut> {
    Ok(pass_multi(p, std::slice::from_ref(pr), users, 1, ctl)?
        .remove(0)
        .remove(0))
}

/// One pass over `users` evaluating every price vector of `prs` (the data is read once: a
/// user's candidates stay in cache while they are priced K times), in parallel over fixed
/// chunks. Integer counts are reduced in any order (exact); float sums per chunk are added in
/// chunk order, so the result is identical for any number of threads.
///
/// With `blocks > 1`, the users are split into that many blocks of whole chunks and the result
/// is given per block (`out[j][b]`), for a disaggregated cutting-plane model.
pub fn pass_multi<T: Real>(
    p: &Problem<'_, T>,
    prs: &[Prices],
    users: Users<'_>,
    blocks: usize,
    ctl: &Control,
) -> Result<Vec<Vec<PassOut>>> {
    let n_items = users.len();
    let n_chunks = n_items.div_ceil(USERS_PER_CHUNK);
    let blocks = blocks.clamp(1, n_chunks.max(1));
    let block_of = |c: usize| c * blocks / n_chunks.max(1);
    let na = p.n_actions;
    let npc = p.pair_usage.len();
    let kk = prs.len();
    let width = 2 + npc;
    type Acc = (Vec<u64>, Vec<ChunkFloats>, Vec<(f64, u32)>);
    let (counts, mut floats): (Vec<u64>, Vec<ChunkFloats>) = (0..n_chunks)
        .into_par_iter()
        .fold(
            || -> Acc { (vec![0u64; na * kk * blocks], Vec::new(), Vec::new()) },
            |(mut cnt, mut fl, mut buf), c| {
                let mut vals = vec![0.0f64; kk * width];
                let boff = block_of(c) * kk * na;
                if !ctl.is_cancelled() {
                    let lo = c * USERS_PER_CHUNK;
                    let hi = (lo + USERS_PER_CHUNK).min(n_items);
                    for idx in lo..hi {
                        let i = users.get(idx);
                        for (j, pr) in prs.iter().enumerate() {
                            let v = &mut vals[j * width..(j + 1) * width];
                            let cj = &mut cnt[boff + j * na..boff + (j + 1) * na];
                            choose_user(p, pr, i, &mut buf, |k, r| {
                                v[0] += r;
                                v[1] += p.value[k].into();
                                cj[p.action[k] as usize] += 1;
                                for (c, col) in p.pair_usage.iter().enumerate() {
                                    v[2 + c] += col[k].into();
                                }
                            });
                        }
                    }
                }
                fl.push(ChunkFloats { chunk: c, vals });
                (cnt, fl, buf)
            },
        )
        .map(|(c, f, _)| (c, f))
        .reduce(
            || (vec![0u64; na * kk * blocks], Vec::new()),
            |(mut ca, mut fa), (cb, fb)| {
                for (x, y) in ca.iter_mut().zip(&cb) {
                    *x += *y;
                }
                fa.extend(fb);
                (ca, fa)
            },
        );
    ctl.check()?;
    floats.sort_unstable_by_key(|f| f.chunk);
    let mut tot = vec![0.0; blocks * kk * width];
    for f in &floats {
        let off = block_of(f.chunk) * kk * width;
        for (a, b) in tot[off..off + kk * width].iter_mut().zip(&f.vals) {
            *a += *b;
        }
    }
    Ok((0..kk)
        .map(|j| {
            (0..blocks)
                .map(|b| {
                    let o = b * kk * width + j * width;
                    let v = &tot[o..o + width];
                    let co = b * kk * na + j * na;
                    let cj = &counts[co..co + na];
                    PassOut {
                        lsum: v[0],
                        value: v[1],
                        usage: usage_from(p, cj, &v[2..]),
                        picks: cj.iter().sum(),
                    }
                })
                .collect()
        })
        .collect())
}

/// Resource use from per-action counts and per-column sums.
pub fn usage_from<T: Real>(p: &Problem<'_, T>, counts: &[u64], pair: &[f64]) -> Vec<f64> {
    let r_n = p.n_resources();
    let mut usage = vec![0.0; r_n];
    for (a, &c) in counts.iter().enumerate() {
        if c > 0 {
            let row = &p.action_usage[a * r_n..(a + 1) * r_n];
            for (u, x) in usage.iter_mut().zip(row) {
                *u += c as f64 * x;
            }
        }
    }
    for (c, &s) in pair.iter().enumerate() {
        usage[p.pair_resource[c]] += s;
    }
    usage
}

/// The users' choices as one flag per candidate (1 = chosen), in parallel: user `i` takes its
/// choice at the prices `mix[j]`, `j` drawn from the weights `cum` (cumulative, ending at 1) by a
/// hash of `i` and `seed`: a rounding of the convex combination of the iterates' choices.
pub fn assign<T: Real>(
    p: &Problem<'_, T>,
    mix: &[Prices],
    cum: &[f64],
    seed: u64,
    ctl: &Control,
) -> Result<Vec<u8>> {
    let n = p.n_users();
    let mut flags = vec![0u8; p.nnz()];
    let n_chunks = n.div_ceil(USERS_PER_CHUNK);
    let mut parts: Vec<(usize, &mut [u8])> = Vec::with_capacity(n_chunks);
    let mut rest: &mut [u8] = &mut flags;
    for c in 0..n_chunks {
        let lo = c * USERS_PER_CHUNK;
        let hi = (lo + USERS_PER_CHUNK).min(n);
        let len = (p.indptr[hi] - p.indptr[lo]) as usize;
        let (a, b) = rest.split_at_mut(len);
        parts.push((c, a));
        rest = b;
    }
    parts
        .into_par_iter()
        .for_each_init(Vec::new, |buf, (c, part)| {
            if ctl.is_cancelled() {
                return;
            }
            let lo = c * USERS_PER_CHUNK;
            let hi = (lo + USERS_PER_CHUNK).min(n);
            let base = p.indptr[lo] as usize;
            for i in lo..hi {
                let j = if mix.len() == 1 {
                    0
                } else {
                    let h = (crate::rng::mix64(i as u64 ^ seed) >> 11) as f64 / (1u64 << 53) as f64;
                    cum.iter().position(|c| h < *c).unwrap_or(mix.len() - 1)
                };
                choose_user(p, &mix[j], i, buf, |k, _| part[k - base] = 1);
            }
        });
    ctl.check()?;
    Ok(flags)
}
