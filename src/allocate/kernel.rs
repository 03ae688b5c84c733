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
use crate::error::{try_vec, Result};
use crate::parallel;
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
    pick: impl FnMut(usize, f64),
) {
    choose_with(p, i, buf, |k| reduced(p, pr, k), pick)
}

/// [`choose_user`] with the reduced values given by `red(k)`.
#[inline(always)]
fn choose_with<T: Real>(
    p: &Problem<'_, T>,
    i: usize,
    buf: &mut Vec<(f64, u32)>,
    red: impl Fn(usize) -> f64,
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
            let r = red(k);
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
        let r = red(k);
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

/// One pass over `users` at prices `pr`.
pub fn pass<T: Real>(
    p: &Problem<'_, T>,
    pr: &Prices,
    users: Users<'_>,
    ctl: &Control,
) -> Result<PassOut> {
    Ok(pass_multi(p, std::slice::from_ref(pr), users, ctl)?.remove(0))
}

/// One pass over `users` evaluating every price vector of `prs` (the data is read once: a
/// user's candidates stay in cache while they are priced K times), in parallel over fixed
/// chunks ([`parallel::ordered`]): float sums per chunk are added in chunk order, so the result
/// is identical for any number of threads. One result per price vector.
pub fn pass_multi<T: Real>(
    p: &Problem<'_, T>,
    prs: &[Prices],
    users: Users<'_>,
    ctl: &Control,
) -> Result<Vec<PassOut>> {
    let n_items = users.len();
    let na = p.n_actions;
    let npc = p.pair_usage.len();
    let kk = prs.len();
    let width = 2 + npc;
    let mut counts = try_vec("n_actions", na.saturating_mul(kk), 0u64)?;
    let mut tot = vec![0.0; kk * width];
    let work = |_c: usize, range: std::ops::Range<usize>| {
        // The chosen actions per price vector: a chunk's part is bounded by its candidates.
        let mut cnt: Vec<Vec<u32>> = vec![Vec::new(); kk];
        let mut vals = vec![0.0f64; kk * width];
        if !ctl.is_cancelled() {
            let mut buf = Vec::new();
            for idx in range {
                let i = users.get(idx);
                for (j, pr) in prs.iter().enumerate() {
                    let v = &mut vals[j * width..(j + 1) * width];
                    let cj = &mut cnt[j];
                    choose_user(p, pr, i, &mut buf, |k, r| {
                        v[0] += r;
                        v[1] += p.value[k].into();
                        cj.push(p.action[k]);
                        for (c, col) in p.pair_usage.iter().enumerate() {
                            v[2 + c] += col[k].into();
                        }
                    });
                }
            }
        }
        (cnt, vals)
    };
    // Counts are exact; the float sums of each chunk are added in chunk order.
    parallel::ordered(n_items, USERS_PER_CHUNK, ctl, work, |_c, (cnt, vals)| {
        for (j, picks) in cnt.iter().enumerate() {
            count_into(&mut counts[j * na..(j + 1) * na], picks);
        }
        for (a, v) in tot.iter_mut().zip(&vals) {
            *a += *v;
        }
    })?;
    ctl.check()?;
    Ok((0..kk)
        .map(|j| {
            let v = &tot[j * width..(j + 1) * width];
            let cj = &counts[j * na..(j + 1) * na];
            PassOut {
                lsum: v[0],
                value: v[1],
                usage: usage_from(p, cj, &v[2..]),
                picks: cj.iter().sum(),
            }
        })
        .collect())
}

/// Adds one to `counts[a]` for every chosen action `a` of `picks`. Chunks of users hand over
/// the actions they chose, never a table of `n_actions` counts each: those tables (64 chunks in
/// flight, or one per block) took 64 x 8 bytes per action, an abort at 50M actions (sparse
/// action ids set `n_actions`).
pub fn count_into(counts: &mut [u64], picks: &[u32]) {
    for &a in picks {
        counts[a as usize] += 1;
    }
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
///
/// `first` is the index of the problem's first user among all users (non-zero for a block of a
/// larger problem): the draw depends on the user's index among all users, not on the block.
pub fn assign<T: Real>(
    p: &Problem<'_, T>,
    mix: &[Prices],
    cum: &[f64],
    seed: u64,
    first: u64,
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
                    let h = (crate::rng::mix64((first + i as u64) ^ seed) >> 11) as f64
                        / (1u64 << 53) as f64;
                    cum.iter().position(|c| h < *c).unwrap_or(mix.len() - 1)
                };
                choose_user(p, &mix[j], i, buf, |k, _| part[k - base] = 1);
            }
        });
    ctl.check()?;
    Ok(flags)
}

/// Result of [`pass_jacobian`]: a pass, plus a kernel estimate of the Jacobian of the choices'
/// resource use with respect to the prices.
pub struct JacobianPass {
    pub out: PassOut,
    /// `dg/dq` (R x R, row-major, symmetric, negative semidefinite), in usage per unit price.
    pub jac: Vec<f64>,
    /// Number of marginal events the estimate rests on.
    pub events: u64,
}

/// Users per block of the Jacobian pass (one R x R accumulator per block).
const JAC_BLOCK: usize = 16 * USERS_PER_CHUNK;

/// One pass at prices `pr` (the same choices and sums as [`pass`]) that also estimates the
/// Jacobian `dg/dq` of the resource use.
///
/// A user is *marginal* when two of its feasible choices are within `h` of each other in
/// reduced value: a chosen candidate `k` and an unchosen `j` that could replace it (a swap,
/// usage change `d = u_j - u_k`), a chosen `k` with reduced value below `h` (a drop,
/// `d = -u_k`), or an unchosen `j` with reduced value above `-h` that fits a free slot (an add,
/// `d = u_j`). A price change `dq` moves that margin by `d . dq`; with the margins of the
/// population spread with density `rho` near zero, the expected usage change is `-rho d (d . dq)`.
/// Every marginal user is counted once, from the side of its current choice, so the events
/// are the margins in `(-h, h)`; estimating `rho` by their count divided by `2h` gives
/// `J = -(1/2h) sum_events d d^T`: symmetric and negative semidefinite, like the true Hessian of
/// the (negated) dual. Every user contributes, so the estimate is far less noisy than finite
/// differences of the choices on a sample.
///
/// With `flags` (one per candidate), the choices are also written there (1 = chosen).
pub fn pass_jacobian<T: Real>(
    p: &Problem<'_, T>,
    pr: &Prices,
    h: f64,
    flags: Option<&mut [u8]>,
    ctl: &Control,
) -> Result<JacobianPass> {
    let n = p.n_users();
    let n_blocks = n.div_ceil(JAC_BLOCK);
    // Each block's part of the flags.
    let mut parts: Vec<Option<&mut [u8]>> = Vec::with_capacity(n_blocks);
    match flags {
        Some(f) => {
            let mut rest = f;
            for b in 0..n_blocks {
                let lo = b * JAC_BLOCK;
                let hi = (lo + JAC_BLOCK).min(n);
                let len = (p.indptr[hi] - p.indptr[lo]) as usize;
                let (a, r) = rest.split_at_mut(len);
                parts.push(Some(a));
                rest = r;
            }
        }
        None => parts.resize_with(n_blocks, || None),
    }
    let r_n = p.n_resources();
    let na = p.n_actions;
    let npc = p.pair_usage.len();
    // Sparse per-action usage rows.
    let mut arow: Vec<Vec<(usize, f64)>> = Vec::with_capacity(na);
    for a in 0..na {
        let row = &p.action_usage[a * r_n..(a + 1) * r_n];
        arow.push(
            row.iter()
                .enumerate()
                .filter(|(_, v)| **v != 0.0)
                .map(|(r, v)| (r, *v))
                .collect(),
        );
    }
    let has_groups = !p.group.is_empty();
    struct Block {
        // The actions chosen in the block (see `count_into`).
        cnt: Vec<u32>,
        vals: Vec<f64>,
        jac: Vec<f64>,
        events: u64,
    }
    let blocks: Vec<Block> = parts
        .into_par_iter()
        .enumerate()
        .map(|(b, mut fl)| {
            let mut blk = Block {
                cnt: Vec::new(),
                vals: vec![0.0; 2 + npc],
                jac: vec![0.0; r_n * r_n],
                events: 0,
            };
            if ctl.is_cancelled() {
                return blk;
            }
            let mut buf = Vec::new();
            let mut red: Vec<f64> = Vec::new();
            let mut chosen: Vec<usize> = Vec::new();
            let mut d: Vec<(usize, f64)> = Vec::new();
            // Usage of candidate `k`, added to `d` with sign `sg`.
            let add = |d: &mut Vec<(usize, f64)>, k: usize, sg: f64| {
                let mut put = |r: usize, v: f64| match d.iter_mut().find(|e| e.0 == r) {
                    Some(e) => e.1 += sg * v,
                    None => d.push((r, sg * v)),
                };
                for &(r, v) in &arow[p.action[k] as usize] {
                    put(r, v);
                }
                for (c, col) in p.pair_usage.iter().enumerate() {
                    put(p.pair_resource[c], col[k].into());
                }
            };
            let outer = |jac: &mut Vec<f64>, d: &[(usize, f64)]| {
                for &(r1, v1) in d {
                    for &(r2, v2) in d {
                        jac[r1 * r_n + r2] += v1 * v2;
                    }
                }
            };
            for i in b * JAC_BLOCK..((b + 1) * JAC_BLOCK).min(n) {
                let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
                red.clear();
                red.extend((s..e).map(|k| reduced(p, pr, k)));
                chosen.clear();
                let vals = &mut blk.vals;
                let cnt = &mut blk.cnt;
                choose_with(
                    p,
                    i,
                    &mut buf,
                    |k| red[k - s],
                    |k, r| {
                        vals[0] += r;
                        vals[1] += p.value[k].into();
                        cnt.push(p.action[k]);
                        for (c, col) in p.pair_usage.iter().enumerate() {
                            vals[2 + c] += col[k].into();
                        }
                        chosen.push(k);
                    },
                );
                if let Some(fl) = fl.as_deref_mut() {
                    let base = p.indptr[b * JAC_BLOCK] as usize;
                    fl[s - base..e - base].fill(0);
                    for &k in &chosen {
                        fl[k - base] = 1;
                    }
                }
                let l = p.limit.get(i) as usize;
                let group_of = |k: usize| {
                    if has_groups {
                        p.group[p.action[k] as usize]
                    } else {
                        -1
                    }
                };
                // Is group `g` used by a chosen candidate other than `except`?
                let taken = |g: i32, except: usize| {
                    g >= 0 && chosen.iter().any(|&x| x != except && group_of(x) == g)
                };
                for &k in &chosen {
                    let rk = red[k - s];
                    if rk < h {
                        d.clear();
                        add(&mut d, k, -1.0);
                        outer(&mut blk.jac, &d);
                        blk.events += 1;
                    }
                    for j in s..e {
                        let m = rk - red[j - s];
                        if m < 0.0 || m >= h || chosen.contains(&j) || taken(group_of(j), k) {
                            continue;
                        }
                        d.clear();
                        add(&mut d, j, 1.0);
                        add(&mut d, k, -1.0);
                        outer(&mut blk.jac, &d);
                        blk.events += 1;
                    }
                }
                if chosen.len() < l {
                    for j in s..e {
                        let rj = red[j - s];
                        if rj > 0.0
                            || rj <= -h
                            || chosen.contains(&j)
                            || taken(group_of(j), usize::MAX)
                        {
                            continue;
                        }
                        d.clear();
                        add(&mut d, j, 1.0);
                        outer(&mut blk.jac, &d);
                        blk.events += 1;
                    }
                }
            }
            blk
        })
        .collect();
    ctl.check()?;
    let mut cnt = try_vec("n_actions", na, 0u64)?;
    let mut vals = vec![0.0; 2 + npc];
    let mut jac = vec![0.0; r_n * r_n];
    let mut events = 0;
    for b in &blocks {
        count_into(&mut cnt, &b.cnt);
        for (x, y) in vals.iter_mut().zip(&b.vals) {
            *x += y;
        }
        for (x, y) in jac.iter_mut().zip(&b.jac) {
            *x -= y / (2.0 * h);
        }
        events += b.events;
    }
    Ok(JacobianPass {
        out: PassOut {
            lsum: vals[0],
            value: vals[1],
            usage: usage_from(p, &cnt, &vals[2..]),
            picks: cnt.iter().sum(),
        },
        jac,
        events,
    })
}
