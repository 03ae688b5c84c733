//! Seeded random instances for tests and benchmarks (generation is parallel and deterministic).
//!
//! Every user has `per_user` distinct candidate actions out of `n_actions`. Values are
//! log-normal minus an offset (a share is negative). `n_pair` resources are used per candidate
//! (an expected cost correlated with the value, stored as f32); the other `n_action_res` are used
//! per action (each action uses one or two of them, e.g. a channel slot). Upper bounds are a
//! fraction (`tight_lo..tight_hi`) of what the unconstrained optimum would use.

use super::kernel::{pass, Prices, Users, USERS_PER_CHUNK};
use super::{Limit, Problem};
use crate::control::Control;
use crate::error::{try_vec, try_zeroed, CoreError, Result};
use crate::parallel::CHUNK;
use crate::rng::stream2;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

pub struct Instance {
    pub indptr: Vec<i64>,
    pub action: Vec<u32>,
    pub value: Vec<f32>,
    pub pair_usage: Vec<Vec<f32>>,
    pub pair_resource: Vec<usize>,
    pub action_usage: Vec<f64>,
    pub n_actions: usize,
    pub group: Vec<i32>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub names: Vec<String>,
}

impl Instance {
    pub fn problem(&self, limit: u32) -> Problem<'_, f32> {
        Problem {
            indptr: &self.indptr,
            action: &self.action,
            value: &self.value,
            pair_usage: self.pair_usage.iter().map(|c| c.as_slice()).collect(),
            pair_resource: self.pair_resource.clone(),
            action_usage: &self.action_usage,
            n_actions: self.n_actions,
            group: &self.group,
            limit: Limit::All(limit),
            lower: self.lower.clone(),
            upper: self.upper.clone(),
            names: self.names.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub n_users: usize,
    pub per_user: usize,
    pub n_actions: usize,
    pub n_pair: usize,
    pub n_action_res: usize,
    pub n_groups: usize,
    pub limit: u32,
    pub tight_lo: f64,
    pub tight_hi: f64,
    pub seed: u64,
}

pub fn random(spec: &Spec, ctl: &Control) -> Result<Instance> {
    let Spec {
        n_users: n,
        per_user: m,
        n_actions: na,
        n_pair,
        n_action_res: nra,
        ..
    } = *spec;
    if m == 0 || na < m {
        return Err(CoreError::invalid(
            "per_user",
            format!("must be in 1..=n_actions ({na}), got {m}"),
        ));
    }
    if na > u32::MAX as usize {
        return Err(CoreError::invalid(
            "n_actions",
            format!("must be at most {} (actions are u32), got {na}", u32::MAX),
        ));
    }
    if spec.n_groups > i32::MAX as usize {
        return Err(CoreError::invalid(
            "n_groups",
            format!(
                "must be at most {} (groups are i32), got {}",
                i32::MAX,
                spec.n_groups
            ),
        ));
    }
    // Sizes first (in u128, which cannot overflow here): an impossible size is a ValueError
    // naming the argument; a possible one that does not fit is a MemoryError (fallible
    // allocation below), never an abort.
    let (n128, m128, na128) = (n as u128, m as u128, na as u128);
    let r128 = n_pair as u128 + nra as u128;
    let nnz128 = n128 * m128;
    let per_action = na128.saturating_mul(r128 + 3).saturating_mul(8);
    let bytes = nnz128
        .saturating_mul(8 + 4 * n_pair as u128)
        .saturating_add((n128 + 1) * 8)
        .saturating_add(per_action);
    if bytes > isize::MAX as u128 {
        let (arg, got) = if nnz128 * 8 > isize::MAX as u128 {
            (
                "n_users",
                format!("n_users x per_user = {nnz128} candidates"),
            )
        } else if per_action > isize::MAX as u128 {
            // Blame the resources when the catalogue alone would fit.
            let arg = if na128 * 24 > isize::MAX as u128 {
                "n_actions"
            } else if n_pair >= nra {
                "n_pair"
            } else {
                "n_action_res"
            };
            (arg, format!("n_actions x resources = {}", na128 * r128))
        } else {
            (
                "n_pair",
                format!("{n_pair} usage columns of {nnz128} candidates"),
            )
        };
        return Err(CoreError::invalid(
            arg,
            format!("{got} is more than any machine can hold ({bytes} bytes)"),
        ));
    }
    let r_n = n_pair + nra;
    let nnz = n * m;
    let seed = spec.seed;
    // Zero pages handed out lazily (try_zeroed): the chunks below write every entry and check
    // Ctrl-C; filling gigabytes with zeros first could not be interrupted.
    let indptr_buf: Vec<i64> = try_zeroed("n_users", n + 1)?;
    let mut action: Vec<u32> = try_zeroed("n_users", nnz)?;
    let mut value: Vec<f32> = try_zeroed("n_users", nnz)?;
    let mut pair = try_vec("n_pair", n_pair, Vec::new())?;
    for col in pair.iter_mut() {
        *col = try_zeroed("n_users", nnz)?;
    }
    let mut action_usage = try_vec("n_actions", na * r_n, 0.0f64)?;
    // Catalogue.
    let mut rng = stream2(seed, 0, 0);
    let mut lift = try_vec("n_actions", na, 0.0f64)?;
    lift.iter_mut().for_each(|l| *l = 0.5 + rng.random::<f64>());
    let mut cost = try_vec("n_actions", na, 0.0f64)?;
    cost.iter_mut().for_each(|c| *c = 0.2 + rng.random::<f64>());
    if nra > 0 {
        for a in 0..na {
            let first = a % nra;
            action_usage[a * r_n + n_pair + first] = 1.0;
            if nra > 1 && rng.random::<f64>() < 0.5 {
                let second = rng.random_range(0..nra);
                action_usage[a * r_n + n_pair + second] += 0.5 + rng.random::<f64>();
            }
        }
    }
    let group: Vec<i32> = if spec.n_groups > 0 {
        let mut g = try_vec("n_actions", na, -1i32)?;
        for (a, g) in g.iter_mut().enumerate() {
            if a % 3 != 0 {
                *g = (a % spec.n_groups) as i32;
            }
        }
        g
    } else {
        Vec::new()
    };
    let mut indptr = indptr_buf;
    // In chunks with Ctrl-C checks: 100M users touch 800 MB here, seconds on a loaded machine.
    indptr
        .par_chunks_mut(CHUNK)
        .enumerate()
        .try_for_each(|(c, part)| {
            ctl.check()?;
            for (j, x) in part.iter_mut().enumerate() {
                *x = ((c * CHUNK + j) * m) as i64;
            }
            Ok::<(), CoreError>(())
        })?;
    {
        let step = USERS_PER_CHUNK * m;
        let mut pair_chunks: Vec<Vec<&mut [f32]>> = Vec::new();
        let n_chunks = n.div_ceil(USERS_PER_CHUNK);
        for _ in 0..n_chunks {
            pair_chunks.push(Vec::new());
        }
        for col in pair.iter_mut() {
            for (c, part) in col.chunks_mut(step).enumerate() {
                pair_chunks[c].push(part);
            }
        }
        action
            .par_chunks_mut(step)
            .zip(value.par_chunks_mut(step))
            .zip(pair_chunks.into_par_iter())
            .enumerate()
            .for_each(|(c, ((act, val), mut pcols))| {
                if ctl.is_cancelled() {
                    return;
                }
                let mut rng = stream2(seed, 1, c as u64);
                let users = act.len() / m;
                let mut picked: Vec<u32> = Vec::with_capacity(m);
                for u in 0..users {
                    let base: f64 = rng.sample::<f64, _>(StandardNormal) * 0.5;
                    picked.clear();
                    while picked.len() < m {
                        let a = rng.random_range(0..na as u32);
                        if !picked.contains(&a) {
                            picked.push(a);
                        }
                    }
                    picked.sort_unstable();
                    for (j, &a) in picked.iter().enumerate() {
                        let k = u * m + j;
                        act[k] = a;
                        let z: f64 = StandardNormal.sample(&mut rng);
                        let v = (base + 0.6 * z).exp() * lift[a as usize] - 0.4;
                        val[k] = v as f32;
                        for col in pcols.iter_mut() {
                            let e: f64 = StandardNormal.sample(&mut rng);
                            col[k] =
                                (cost[a as usize] * (0.3 * e).exp() * (0.5 + v.max(0.0))) as f32;
                        }
                    }
                }
            });
    }
    ctl.check()?;
    let names: Vec<String> = (0..r_n)
        .map(|r| {
            if r < n_pair {
                format!("budget_{r}")
            } else {
                format!("slots_{}", r - n_pair)
            }
        })
        .collect();
    let mut inst = Instance {
        indptr,
        action,
        value,
        pair_usage: pair,
        pair_resource: (0..n_pair).collect(),
        action_usage,
        n_actions: na,
        group,
        lower: vec![0.0; r_n],
        upper: vec![f64::INFINITY; r_n],
        names,
    };
    let base = {
        let p = inst.problem(spec.limit);
        let zero = vec![0.0; r_n];
        pass(&p, &Prices::new(&p, &zero), Users::All(n), ctl)?
    };
    let mut rng = stream2(seed, 2, 0);
    for r in 0..r_n {
        let t = spec.tight_lo + (spec.tight_hi - spec.tight_lo) * rng.random::<f64>();
        inst.upper[r] = (base.usage[r] * t).max(1.0).round();
    }
    Ok(inst)
}
