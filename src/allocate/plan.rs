//! The integer plan from the users' choices at given prices: repair (while an upper bound is
//! exceeded, switch or drop the chosen candidates with the lowest reduced value per unit of that
//! resource; while a lower bound is unmet, add the unchosen ones with the highest) and fill (use
//! the slack the repair left).

#![allow(clippy::needless_range_loop)] // several arrays indexed by resource

use super::kernel::{assign, reduced, Prices, USERS_PER_CHUNK};
use super::{trace, Problem, Real};
use crate::control::{par_sort_checked, Control};
use crate::error::Result;
use rayon::prelude::*;
use std::time::Instant;

/// An integer plan: the chosen candidates (ascending), their value and resource use.
pub struct Plan {
    pub chosen: Vec<u64>,
    pub objective: f64,
    pub usage: Vec<f64>,
}

/// How a plan is finished after the users' choices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Finish {
    /// Prices from the Newton phase (violations at the users' granularity): repair by switching
    /// the users within this margin of changing their choice first.
    Near(f64),
    /// Prices from the level method (a rounding of its fractional primal): repair over every
    /// user, then fill the slack the rounding left.
    Full,
}

impl Plan {
    /// Each user takes its choice at one of the prices `mix` (drawn by the weights `cum`, see
    /// `kernel::assign`) unless the `choices` are given, then the plan is repaired (and filled)
    /// at the prices `pr`.
    #[allow(clippy::too_many_arguments)]
    pub fn build<T: Real>(
        p: &Problem<'_, T>,
        choices: Option<Vec<u8>>,
        mix: &[Prices],
        cum: &[f64],
        pr: &Prices,
        finish: Finish,
        seed: u64,
        ctl: &Control,
    ) -> Result<Plan> {
        let t0 = Instant::now();
        let mut flags = match choices {
            Some(f) => f,
            None => assign(p, mix, cum, seed, 0, ctl)?,
        };
        trace(t0, "  assign");
        let margin = match finish {
            Finish::Near(m) => m,
            Finish::Full => f64::INFINITY,
        };
        let mut usage = repair(p, pr, &mut flags, margin, ctl)?;
        if let Finish::Full = finish {
            usage = fill(p, pr, &mut flags, usage, ctl)?;
        }
        trace(t0, "  repair");
        let chosen: Vec<u64> = flags
            .par_iter()
            .enumerate()
            .with_min_len(1 << 16)
            .filter(|(_, f)| **f != 0)
            .map(|(k, _)| k as u64)
            .collect();
        let objective: f64 = chosen
            .par_chunks(1 << 16)
            .map(|c| c.iter().map(|&k| p.value[k as usize].into()).sum::<f64>())
            .collect::<Vec<f64>>()
            .iter()
            .sum();
        trace(t0, "  chosen + objective");
        Ok(Plan {
            chosen,
            objective,
            usage,
        })
    }

    /// Messages for the lower bounds the plan does not meet.
    pub fn unmet<T: Real>(&self, p: &Problem<'_, T>) -> Vec<String> {
        (0..p.n_resources())
            .filter(|&r| self.usage[r] < p.lo(r) * (1.0 - 1e-12))
            .map(|r| {
                format!(
                    "resource {:?}: lower bound {} not met (plan uses {})",
                    p.names.get(r).cloned().unwrap_or_default(),
                    p.lo(r),
                    self.usage[r]
                )
            })
            .collect()
    }
}

/// Usage of the plan given by `flags` (parallel, deterministic).
pub fn plan_usage<T: Real>(p: &Problem<'_, T>, flags: &[u8]) -> Vec<f64> {
    let n = p.n_users();
    let n_chunks = n.div_ceil(USERS_PER_CHUNK);
    let na = p.n_actions;
    let npc = p.pair_usage.len();
    // Each chunk hands over the actions it chose (see `kernel::count_into`).
    let parts: Vec<(Vec<u32>, Vec<f64>)> = (0..n_chunks)
        .into_par_iter()
        .map(|c| {
            let lo = p.indptr[c * USERS_PER_CHUNK] as usize;
            let hi = p.indptr[((c + 1) * USERS_PER_CHUNK).min(n)] as usize;
            let mut cnt = Vec::new();
            let mut pair = vec![0.0; npc];
            for k in lo..hi {
                if flags[k] != 0 {
                    cnt.push(p.action[k]);
                    for (c, col) in p.pair_usage.iter().enumerate() {
                        pair[c] += col[k].into();
                    }
                }
            }
            (cnt, pair)
        })
        .collect();
    let mut cnt = vec![0u64; na];
    let mut pair = vec![0.0; npc];
    for (c, s) in parts {
        super::kernel::count_into(&mut cnt, &c);
        for (a, b) in pair.iter_mut().zip(&s) {
            *a += b;
        }
    }
    super::kernel::usage_from(p, &cnt, &pair)
}

/// Uses the slack the repair left: each user's best move that raises the plan's value (adding
/// a candidate to a free slot, or replacing a chosen one), taken in order of reduced-value
/// change at the prices `pr` (the least negative first: the moves a slightly lower price would
/// make) while it keeps every upper bound, group and per-user limit. Returns the usage.
fn fill<T: Real>(
    p: &Problem<'_, T>,
    pr: &Prices,
    flags: &mut [u8],
    mut usage: Vec<f64>,
    ctl: &Control,
) -> Result<Vec<f64>> {
    ctl.check()?;
    let r_n = p.n_resources();
    let n = p.n_users();
    let has_groups = !p.group.is_empty();
    let group_of = |k: usize| {
        if has_groups {
            p.group[p.action[k] as usize]
        } else {
            -1
        }
    };
    let f: &[u8] = flags;
    // (minus the reduced-value change, user, from k or u64::MAX, to j)
    let mut items: Vec<(f64, u64, u64, u64)> = (0..n.div_ceil(USERS_PER_CHUNK))
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut out = Vec::new();
            // Chosen candidates of a user: (k, group, value, reduced value).
            let mut chosen: Vec<(usize, i32, f64, f64)> = Vec::new();
            for i in c * USERS_PER_CHUNK..((c + 1) * USERS_PER_CHUNK).min(n) {
                let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
                chosen.clear();
                chosen.extend(
                    (s..e)
                        .filter(|&k| f[k] != 0)
                        .map(|k| (k, group_of(k), p.value[k].into(), reduced(p, pr, k))),
                );
                let free_slot = chosen.len() < p.limit.get(i) as usize;
                let mut best: Option<(f64, u64, u64)> = None;
                for j in s..e {
                    if f[j] != 0 {
                        continue;
                    }
                    let (vj, gj) = (p.value[j].into(), group_of(j));
                    let mut rj = None;
                    let mut rj_of = || *rj.get_or_insert_with(|| reduced(p, pr, j));
                    // Chosen candidates in j's group (at most one: the plan keeps the groups).
                    let blocker = if gj >= 0 {
                        chosen.iter().position(|c| c.1 == gj)
                    } else {
                        None
                    };
                    if free_slot && vj > 0.0 && blocker.is_none() {
                        let dr = rj_of();
                        if best.is_none_or(|b| dr > b.0) {
                            best = Some((dr, u64::MAX, j as u64));
                        }
                    }
                    for (ci, &(k, _, vk, rk)) in chosen.iter().enumerate() {
                        if vj > vk && blocker.is_none_or(|b| b == ci) {
                            let dr = rj_of() - rk;
                            if best.is_none_or(|b| dr > b.0) {
                                best = Some((dr, k as u64, j as u64));
                            }
                        }
                    }
                }
                if let Some((dr, from, to)) = best {
                    out.push((-dr, i as u64, from, to));
                }
            }
            out.into_iter()
        })
        .collect();
    ascending_until(
        &mut items,
        |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
        |&(_, _, from, to)| {
            let j = to as usize;
            let fits = (0..r_n).all(|x| {
                let back = if from == u64::MAX {
                    0.0
                } else {
                    p.usage_of(from as usize, x)
                };
                let u = p.usage_of(j, x) - back;
                (u <= 0.0 || usage[x] + u <= p.upper[x]) && (u >= 0.0 || usage[x] + u >= p.lo(x))
            });
            if fits {
                if from != u64::MAX {
                    flags[from as usize] = 0;
                    for (x, u) in usage.iter_mut().enumerate() {
                        *u -= p.usage_of(from as usize, x);
                    }
                }
                flags[j] = 1;
                for (x, u) in usage.iter_mut().enumerate() {
                    *u += p.usage_of(j, x);
                }
            }
            true
        },
        ctl,
    )?;
    Ok(plan_usage(p, flags))
}

/// Calls `f` on `items` in ascending order of `cmp` until it returns `false`, sorting only as
/// much as is consumed (selection of a growing prefix, then a parallel sort of that prefix that
/// Ctrl-C (`ctl`) stops: at poor prices most of tens of millions of items are consumed). `cmp`
/// is a total order on distinct items (the candidate index breaks ties), so the order, and the
/// result, do not depend on the sort.
fn ascending_until<I: Copy + Send + Sync>(
    items: &mut [I],
    cmp: impl Fn(&I, &I) -> std::cmp::Ordering + Copy + Sync,
    mut f: impl FnMut(&I) -> bool,
    ctl: &Control,
) -> Result<()> {
    let mut start = 0;
    let mut step = 1024;
    while start < items.len() {
        ctl.check()?;
        let rest = &mut items[start..];
        let take = step.min(rest.len());
        if take < rest.len() {
            rest.select_nth_unstable_by(take, cmp);
        }
        par_sort_checked(&mut rest[..take], cmp, ctl)?;
        for it in rest[..take].iter() {
            if !f(it) {
                return Ok(());
            }
        }
        start += take;
        step *= 4;
    }
    Ok(())
}

fn user_of<T: Real>(p: &Problem<'_, T>, k: usize) -> usize {
    p.indptr.partition_point(|&x| x as usize <= k) - 1
}

/// A switch the repair may make: (lost reduced value per unit freed, the chosen candidate, its
/// alternative or `u64::MAX` for none, the user; the user is carried along: finding it from the
/// candidate, a binary search of `indptr` per item, took seconds at 2M users).
type SwitchItem = (f64, u64, u64, u64);

/// Repairs the plan in `flags` (see the module docs); returns its usage.
///
/// The first round of switches considers only the users within `margin` (in reduced value) of
/// changing their choice (those a small price change moves), when the violations are small;
/// the later rounds consider every user.
fn repair<T: Real>(
    p: &Problem<'_, T>,
    pr: &Prices,
    flags: &mut [u8],
    margin: f64,
    ctl: &Control,
) -> Result<Vec<f64>> {
    let r_n = p.n_resources();
    let t0 = Instant::now();
    let mut usage = plan_usage(p, flags);
    trace(t0, "    plan_usage");
    // Upper bounds, first by switches: a user leaves a chosen candidate for its best compatible
    // alternative that uses less of the exceeded resource (what a higher price would do), in
    // order of lost reduced value per unit freed; a switch that would exceed another bound is
    // skipped. Then, whatever is left, by dropping the lowest reduced value per unit.
    // One scan per round collects the moves for every exceeded resource at once.
    let mut touched = vec![false; p.n_users()];
    for round in 0..3 {
        // Round 0: switches of the users near the margin (all users if `margin` is infinite);
        // round 1: switches of every user; round 2: drops.
        if round == 1 && !margin.is_finite() {
            continue;
        }
        let switches = round < 2;
        let filtered = round == 0 && margin.is_finite();
        let violated: Vec<usize> = (0..r_n)
            .filter(|&r| p.has_upper(r) && usage[r] > p.upper[r])
            .collect();
        if violated.is_empty() {
            break;
        }
        ctl.check()?;
        let f: &[u8] = flags;
        let n_chunks = p.n_users().div_ceil(USERS_PER_CHUNK);
        let has_groups = !p.group.is_empty();
        // Per violated resource: (loss per unit freed, chosen k, alternative j or u64::MAX for
        // none). A user's reduced values are computed once; its alternatives are scanned once
        // per chosen candidate and violated resource.
        let parts: Vec<Vec<Vec<SwitchItem>>> = (0..n_chunks)
            .into_par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(red, chosen_groups): &mut (Vec<f64>, Vec<(usize, i32)>), c| {
                    let lo = c * USERS_PER_CHUNK;
                    let hi = (lo + USERS_PER_CHUNK).min(p.n_users());
                    let mut out: Vec<Vec<SwitchItem>> = vec![Vec::new(); violated.len()];
                    for i in lo..hi {
                        let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
                        let uses = (s..e)
                            .any(|k| f[k] != 0 && violated.iter().any(|&r| p.usage_of(k, r) > 0.0));
                        if !uses {
                            continue;
                        }
                        red.clear();
                        red.extend((s..e).map(|k| reduced(p, pr, k)));
                        if filtered {
                            // Smallest margin of a chosen candidate: over dropping it and
                            // over the best unchosen one.
                            let best_off = (s..e)
                                .filter(|&j| f[j] == 0)
                                .map(|j| red[j - s])
                                .fold(0.0f64, f64::max);
                            let near = (s..e)
                                .filter(|&k| f[k] != 0)
                                .any(|k| red[k - s] - best_off < margin);
                            if !near {
                                continue;
                            }
                        }
                        chosen_groups.clear();
                        if has_groups {
                            chosen_groups.extend(
                                (s..e)
                                    .filter(|&x| f[x] != 0)
                                    .map(|x| (x, p.group[p.action[x] as usize])),
                            );
                        }
                        for k in s..e {
                            if f[k] == 0 {
                                continue;
                            }
                            for (vi, &r) in violated.iter().enumerate() {
                                let uk = p.usage_of(k, r);
                                if uk <= 0.0 {
                                    continue;
                                }
                                let rk = red[k - s];
                                let mut best = (0.0f64, u64::MAX, uk);
                                if switches {
                                    for j in s..e {
                                        if f[j] != 0 || red[j - s] <= best.0 {
                                            continue;
                                        }
                                        let uj = p.usage_of(j, r);
                                        if uj >= uk {
                                            continue;
                                        }
                                        if has_groups {
                                            let g = p.group[p.action[j] as usize];
                                            if g >= 0
                                                && chosen_groups
                                                    .iter()
                                                    .any(|&(x, gx)| x != k && gx == g)
                                            {
                                                continue;
                                            }
                                        }
                                        best = (red[j - s], j as u64, uk - uj);
                                    }
                                }
                                out[vi].push(((rk - best.0) / best.2, k as u64, best.1, i as u64));
                            }
                        }
                    }
                    out
                },
            )
            .collect();
        touched.iter_mut().for_each(|t| *t = false);
        for (vi, &r) in violated.iter().enumerate() {
            let mut items: Vec<SwitchItem> =
                parts.iter().flat_map(|c| c[vi].iter().copied()).collect();
            ascending_until(
                &mut items,
                |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
                |&(_, k, j, i)| {
                    if usage[r] <= p.upper[r] {
                        return false;
                    }
                    let (k, i) = (k as usize, i as usize);
                    if touched[i] || flags[k] == 0 {
                        return true;
                    }
                    if j != u64::MAX {
                        let j = j as usize;
                        let fits = (0..r_n).all(|x| {
                            x == r
                                || usage[x] + p.usage_of(j, x) - p.usage_of(k, x) <= p.upper[x]
                                || p.usage_of(j, x) <= p.usage_of(k, x)
                        });
                        if !fits {
                            return true;
                        }
                        flags[j] = 1;
                        for (x, u) in usage.iter_mut().enumerate() {
                            *u += p.usage_of(j, x);
                        }
                    }
                    flags[k] = 0;
                    for (x, u) in usage.iter_mut().enumerate() {
                        *u -= p.usage_of(k, x);
                    }
                    touched[i] = true;
                    true
                },
                ctl,
            )?;
        }
        // Recompute exactly (the updates above accumulate rounding).
        usage = plan_usage(p, flags);
        trace(t0, &format!("    switch round {round}"));
    }
    // Anything still exceeded: drop the lowest reduced value per unit.
    for r in 0..r_n {
        if !p.has_upper(r) || usage[r] <= p.upper[r] {
            continue;
        }
        ctl.check()?;
        let f: &[u8] = flags;
        let mut items: Vec<(f64, u64)> = (0..p.nnz())
            .into_par_iter()
            .with_min_len(1 << 16)
            .filter(|&k| f[k] != 0)
            .filter_map(|k| {
                let u = p.usage_of(k, r);
                (u > 0.0).then(|| (reduced(p, pr, k) / u, k as u64))
            })
            .collect();
        ascending_until(
            &mut items,
            |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
            |&(_, k)| {
                let k = k as usize;
                flags[k] = 0;
                for (x, u) in usage.iter_mut().enumerate() {
                    *u -= p.usage_of(k, x);
                }
                usage[r] > p.upper[r]
            },
            ctl,
        )?;
        usage = plan_usage(p, flags);
    }
    // Lower bounds: add the best unchosen candidates that keep every limit.
    for r in 0..r_n {
        if !p.has_lower(r) || usage[r] >= p.lo(r) {
            continue;
        }
        ctl.check()?;
        let f: &[u8] = flags;
        let mut items: Vec<(f64, u64)> = (0..p.nnz())
            .into_par_iter()
            .with_min_len(1 << 16)
            .filter(|&k| f[k] == 0)
            .filter_map(|k| {
                let u = p.usage_of(k, r);
                (u > 0.0).then(|| (-reduced(p, pr, k) / u, k as u64))
            })
            .collect();
        ascending_until(
            &mut items,
            |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
            |&(_, k)| {
                let k = k as usize;
                let i = user_of(p, k);
                let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
                let count = flags[s..e].iter().filter(|f| **f != 0).count();
                if count >= p.limit.get(i) as usize {
                    return true;
                }
                if !p.group.is_empty() {
                    let g = p.group[p.action[k] as usize];
                    if g >= 0 && (s..e).any(|j| flags[j] != 0 && p.group[p.action[j] as usize] == g)
                    {
                        return true;
                    }
                }
                let fits = (0..r_n).all(|x| usage[x] + p.usage_of(k, x) <= p.upper[x]);
                if !fits {
                    return true;
                }
                flags[k] = 1;
                for (x, u) in usage.iter_mut().enumerate() {
                    *u += p.usage_of(k, x);
                }
                usage[r] < p.lo(r)
            },
            ctl,
        )?;
        usage = plan_usage(p, flags);
    }
    Ok(usage)
}
