//! The contextual-bandit policy engine shared by LinUCB, LinTS, LogisticTS and epsilon-greedy:
//! one uniform API (`choose`, `choose_batch`, `scores_batch`, `probabilities`, `update`,
//! `update_batch`), shared context features `x` (d) plus optional per-action features `xa`
//! (K x k per event); action `a` sees `z = [x, xa[a]]` (dimension `d + k`) and has its own model.
//!
//! Determinism: the random draws of decision number `t` (counted over the policy's life) come from
//! `rng::stream2(seed, 1, t)`, so decisions do not depend on the batch split or the thread count.
//! `update_batch` runs actions in parallel (each action's events in their original order), so it
//! gives exactly the state of the same events applied one by one.

//!
//! Files: this one holds the configuration, the state, its checks and the updates; [`decide`]
//! the decisions (scores, batch decisions, probabilities). Each algorithm's own formulas (its
//! decision index, its probabilities) live in its file: [`linucb`], [`lints`] (also LogisticTS's
//! sampling), [`epsilon_greedy`].

use super::arms::{update_many, Link};
use super::{epsilon_greedy, lints, linucb};
use crate::control::Control;
use crate::error::{check_finite, check_fits_memory, checked_bytes, try_vec, CoreError, Result};
use crate::numeric::cholesky;
use crate::rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

mod decide;

/// Rows per parallel chunk of `choose_batch`/`scores_batch` (fixed: results never depend on it).
const ROWS: usize = 1024;
/// Batches smaller than this run on the calling thread (a pool hand-off costs microseconds).
const SMALL: usize = 256;
/// Batches of updates from this many events on can be cancelled (see `update_batch_ctl`).
const CANCEL_ROWS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Algo {
    LinUcb { alpha: f64 },
    LinTs { v: f64 },
    LogisticTs { v: f64 },
    EpsilonGreedy { epsilon: f64 },
}

impl Algo {
    fn link(&self) -> Link {
        match self {
            Algo::LogisticTs { .. } => Link::Logistic,
            _ => Link::Ridge,
        }
    }
    fn needs_quad(&self) -> bool {
        !matches!(self, Algo::EpsilonGreedy { .. })
    }
    pub fn name(&self) -> &'static str {
        match self {
            Algo::LinUcb { .. } => "LinUCB",
            Algo::LinTs { .. } => "LinTS",
            Algo::LogisticTs { .. } => "LogisticTS",
            Algo::EpsilonGreedy { .. } => "EpsilonGreedy",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub algo: Algo,
    pub n_actions: usize,
    pub n_features: usize,
    pub n_action_features: usize,
    pub ridge: f64,
    pub seed: u64,
}

impl Config {
    /// Dimension of each action's model, `n_features + n_action_features`.
    pub fn dim(&self) -> Result<usize> {
        self.n_features
            .checked_add(self.n_action_features)
            .ok_or_else(|| {
                CoreError::invalid(
                    "n_action_features",
                    "too large: n_features + n_action_features overflows",
                )
            })
    }

    /// Checks the parameters (not the sizes: [`Policy::new`] does, where it allocates).
    pub fn validate(&self) -> Result<()> {
        if self.n_actions < 1 {
            return Err(CoreError::invalid("n_actions", "must be >= 1"));
        }
        if self.dim()? < 1 {
            return Err(CoreError::invalid("n_features", "must be >= 1"));
        }
        if !(self.ridge.is_finite() && self.ridge > 0.0) {
            return Err(CoreError::invalid(
                "ridge",
                format!("must be > 0, got {}", self.ridge),
            ));
        }
        let bad = |name: &str, v: f64| {
            Err(CoreError::invalid(
                name,
                format!("must be finite and >= 0, got {v}"),
            ))
        };
        match self.algo {
            Algo::LinUcb { alpha } if !(alpha.is_finite() && alpha >= 0.0) => {
                return bad("alpha", alpha)
            }
            Algo::LinTs { v } | Algo::LogisticTs { v } if !(v.is_finite() && v >= 0.0) => {
                return bad("v", v)
            }
            Algo::EpsilonGreedy { epsilon } if !(0.0..=1.0).contains(&epsilon) => {
                return Err(CoreError::invalid(
                    "epsilon",
                    format!("must be in [0, 1], got {epsilon}"),
                ))
            }
            _ => {}
        }
        Ok(())
    }
}

/// Events or decision rows: `x` is n x d, `xa` (optional) n x K x k, both row-major; or `xa`
/// K x k, the same per-action features for every row (told apart by its length; for one row
/// both layouts are the same).
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub x: &'a [f64],
    pub xa: Option<&'a [f64]>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Policy {
    cfg: Config,
    /// Per action: `S = A^{-1}` (D x D).
    s: Vec<f64>,
    /// Per action: the mean `theta` (D).
    theta: Vec<f64>,
    counts: Vec<u64>,
    /// Decisions made so far (keys the random streams).
    t: u64,
    #[serde(skip)]
    chol: Vec<f64>,
    /// Per action: 0 = factor stale, 1 = fresh, 2 = not positive definite (use `S` directly).
    #[serde(skip)]
    chol_state: Vec<u8>,
}

impl PartialEq for Policy {
    fn eq(&self, o: &Self) -> bool {
        self.cfg == o.cfg
            && self.s == o.s
            && self.theta == o.theta
            && self.counts == o.counts
            && self.t == o.t
    }
}

pub const STATE_VERSION: u32 = 1;

impl Policy {
    pub fn new(cfg: Config) -> Result<Self> {
        cfg.validate()?;
        let (k, dd) = (cfg.n_actions, cfg.dim()?);
        let (mut s, chol) = Policy::alloc_matrices(&cfg)?;
        for a in 0..k {
            for i in 0..dd {
                s[a * dd * dd + i * dd + i] = 1.0 / cfg.ridge;
            }
        }
        Ok(Policy {
            s,
            theta: try_vec("n_features", k * dd, 0.0)?,
            counts: try_vec("n_actions", k, 0)?,
            t: 0,
            chol,
            chol_state: try_vec("n_actions", k, 0)?,
            cfg,
        })
    }

    /// The two K x D x D buffers (`S` and its factors), zeroed: the one place where the sizes a
    /// user chose become an allocation. `Invalid` if the size cannot exist, `OutOfMemory` if
    /// this machine cannot hold it (checked for both buffers together before allocating either).
    fn alloc_matrices(cfg: &Config) -> Result<(Vec<f64>, Vec<f64>)> {
        let dd = cfg.dim()?;
        let what = "n_actions x (n_features + n_action_features)^2 values";
        let arg = if cfg.n_actions > dd {
            "n_actions"
        } else if cfg.n_action_features > cfg.n_features {
            "n_action_features"
        } else {
            "n_features"
        };
        let count = dd
            .checked_mul(dd)
            .and_then(|v| v.checked_mul(cfg.n_actions));
        let bytes = checked_bytes(arg, what, count.and_then(|c| c.checked_mul(2)), 8)?;
        let count = count.unwrap_or(usize::MAX);
        let too_big = |e: CoreError| match e {
            CoreError::OutOfMemory(_) => CoreError::OutOfMemory(format!(
                "{arg}: too large for this machine: a policy with {} actions and {dd} features \
                 per action needs {:.1} GiB",
                cfg.n_actions,
                bytes as f64 / (1u64 << 30) as f64
            )),
            e => e,
        };
        check_fits_memory(arg, bytes).map_err(too_big)?;
        let s = try_vec(arg, count, 0.0).map_err(too_big)?;
        let chol = try_vec(arg, count, 0.0).map_err(too_big)?;
        Ok((s, chol))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn n_actions(&self) -> usize {
        self.cfg.n_actions
    }
    /// Dimension of each action's model (`n_features + n_action_features`).
    pub fn dim(&self) -> usize {
        self.cfg.n_features + self.cfg.n_action_features
    }
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
    pub fn n_updates(&self) -> u64 {
        self.counts.iter().sum()
    }
    pub fn n_decisions(&self) -> u64 {
        self.t
    }
    /// Per action mean coefficients (K x D).
    pub fn theta(&self) -> &[f64] {
        &self.theta
    }
    /// Per action `A^{-1}` (K x D x D).
    pub fn a_inv(&self) -> &[f64] {
        &self.s
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::state::sealed::to_bytes("realtime.Policy", STATE_VERSION, self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut p: Policy =
            crate::state::sealed::from_bytes("realtime.Policy", &[STATE_VERSION], bytes)?;
        let corrupt = || CoreError::State("realtime.Policy state is inconsistent (corrupt)".into());
        // The sizes are checked against the stored buffers before anything is allocated.
        let (k, dd) = (p.cfg.n_actions, p.cfg.dim().map_err(|_| corrupt())?);
        let ok = dd
            .checked_mul(dd)
            .and_then(|v| v.checked_mul(k))
            .is_some_and(|c| c == p.s.len())
            && p.theta.len() == k * dd
            && p.counts.len() == k
            && p.s.iter().chain(&p.theta).all(|v| v.is_finite());
        if !ok {
            return Err(corrupt());
        }
        p.cfg.validate().map_err(|_| corrupt())?;
        p.chol = try_vec("state", k * dd * dd, 0.0)?;
        p.chol_state = vec![0; k];
        Ok(p)
    }

    /// Checks the shapes of `rows` for `n` rows and that every value is finite.
    pub fn check_rows(&self, rows: &Rows, n: usize) -> Result<()> {
        let (d, k, na) = (
            self.cfg.n_features,
            self.cfg.n_action_features,
            self.cfg.n_actions,
        );
        if rows.x.len() != n * d {
            return Err(CoreError::invalid(
                "x",
                format!("has {} values, expected {n} x {d}", rows.x.len()),
            ));
        }
        check_finite("x", rows.x)?;
        match (rows.xa, k) {
            (None, 0) => {}
            (None, _) => {
                return Err(CoreError::invalid(
                    "action_features",
                    format!("required: the policy has n_action_features={k}"),
                ))
            }
            (Some(_), 0) => {
                return Err(CoreError::invalid(
                    "action_features",
                    "given, but the policy has n_action_features=0",
                ))
            }
            (Some(xa), _) => {
                if xa.len() != n * na * k && xa.len() != na * k {
                    return Err(CoreError::invalid(
                        "action_features",
                        format!(
                            "has {} values, expected {n} x {na} x {k} (or {na} x {k}, shared)",
                            xa.len()
                        ),
                    ));
                }
                check_finite("action_features", xa)?;
            }
        }
        Ok(())
    }

    /// Writes `z = [x_i, xa_i[a]]`.
    #[inline(always)]
    fn fill_z(&self, rows: &Rows, i: usize, a: usize, z: &mut [f64]) {
        let (d, k, na) = (
            self.cfg.n_features,
            self.cfg.n_action_features,
            self.cfg.n_actions,
        );
        fill_z_raw(rows, i, a, z, d, k, na);
    }

    fn row_rng(&self, t: u64) -> rng::Rng {
        rng::stream2(self.cfg.seed, 1, t)
    }

    /// Turns (mean, quad) of every action into the decision index for decision number `t`.
    #[inline(always)]
    fn index_row(&self, t: u64, means: &[f64], quads: &[f64], out: &mut [f64]) {
        match self.cfg.algo {
            Algo::LinUcb { alpha } => linucb::index_row(means, quads, alpha, out),
            Algo::LinTs { v } | Algo::LogisticTs { v } => {
                lints::sample_row(&mut self.row_rng(t), means, quads, v, out)
            }
            Algo::EpsilonGreedy { epsilon } => {
                epsilon_greedy::index_row(|| self.row_rng(t), means, epsilon, out)
            }
        }
    }

    fn refresh_factors(&mut self) {
        let dd = self.dim();
        if !self.cfg.algo.needs_quad() {
            return;
        }
        for a in 0..self.cfg.n_actions {
            if self.chol_state[a] == 0 {
                let mut l = vec![0.0; dd * dd];
                let ok = cholesky(&self.s[a * dd * dd..(a + 1) * dd * dd], dd, &mut l);
                // Stored as the upper factor U = L^T (row-major), as block_mean_quad reads it.
                let u = &mut self.chol[a * dd * dd..(a + 1) * dd * dd];
                for i in 0..dd {
                    for j in 0..dd {
                        u[i * dd + j] = l[j * dd + i];
                    }
                }
                self.chol_state[a] = if ok { 1 } else { 2 };
            }
        }
    }

    fn check_reward(&self, r: f64, i: usize) -> Result<()> {
        if !r.is_finite() {
            return Err(CoreError::invalid(
                "rewards",
                format!("must be finite, found {r} at position {i}"),
            ));
        }
        if self.cfg.algo.link() == Link::Logistic && !(0.0..=1.0).contains(&r) {
            return Err(CoreError::invalid(
                "rewards",
                format!("LogisticTS needs rewards in [0, 1], found {r} at position {i}"),
            ));
        }
        Ok(())
    }

    /// Learns from events `(rows_i, actions_i, rewards_i)`; equal to applying them one by one.
    /// Actions run in parallel (their models are independent), each in event order.
    pub fn update_batch(&mut self, rows: &Rows, actions: &[i64], rewards: &[f64]) -> Result<()> {
        self.update_batch_ctl(rows, actions, rewards, &Control::new())
    }

    /// [`Policy::update_batch`] that stops on `ctl` (`Err(Cancelled)`, the policy unchanged):
    /// a batch of [`CANCEL_ROWS`] events or more keeps a copy of the models it updates (a small
    /// cost next to the batch's work, which is at least `CANCEL_ROWS / n_actions` times larger)
    /// and checks `ctl` every [`ROWS`] events of each action.
    pub fn update_batch_ctl(
        &mut self,
        rows: &Rows,
        actions: &[i64],
        rewards: &[f64],
        ctl: &Control,
    ) -> Result<()> {
        let n = actions.len();
        if rewards.len() != n {
            return Err(CoreError::invalid(
                "rewards",
                format!(
                    "has length {}, expected {n} (the length of actions)",
                    rewards.len()
                ),
            ));
        }
        self.check_rows(rows, n)?;
        let na = self.cfg.n_actions;
        for (i, &a) in actions.iter().enumerate() {
            if a < 0 || a as usize >= na {
                return Err(CoreError::invalid(
                    "actions",
                    format!("must be in [0, {na}), found {a} at position {i}"),
                ));
            }
        }
        for (i, &r) in rewards.iter().enumerate() {
            self.check_reward(r, i)?;
        }
        // Stable bucketing of event indices by action.
        let mut start = vec![0usize; na + 1];
        for &a in actions {
            start[a as usize + 1] += 1;
        }
        for a in 0..na {
            start[a + 1] += start[a];
        }
        let mut order = vec![0u32; n];
        let mut fill = start.clone();
        for (i, &a) in actions.iter().enumerate() {
            order[fill[a as usize]] = i as u32;
            fill[a as usize] += 1;
        }
        let dd = self.dim();
        let (d, k) = (self.cfg.n_features, self.cfg.n_action_features);
        let link = self.cfg.algo.link();
        let cancellable = n >= CANCEL_ROWS && n >= 8 * na;
        let backup = if cancellable {
            let mut s = try_vec("update_batch (a copy of the models)", self.s.len(), 0.0)?;
            s.copy_from_slice(&self.s);
            let mut t = try_vec("update_batch (a copy of the models)", self.theta.len(), 0.0)?;
            t.copy_from_slice(&self.theta);
            Some((s, t))
        } else {
            None
        };
        let mut s = std::mem::take(&mut self.s);
        let mut theta = std::mem::take(&mut self.theta);
        let work = |(a, (sa, ta)): (usize, (&mut [f64], &mut [f64]))| {
            let idx = &order[start[a]..start[a + 1]];
            if idx.is_empty() {
                return 0;
            }
            update_many(link, sa, ta, dd, &mut |j, z| {
                if cancellable && j % ROWS == 0 && ctl.is_cancelled() {
                    return None;
                }
                // The events of one action are scattered over X: fetch ahead.
                if let Some(&ahead) = idx.get(j + 8) {
                    prefetch(&rows.x[ahead as usize * d..]);
                }
                idx.get(j).map(|&e| {
                    fill_z_raw(rows, e as usize, a, z, d, k, na);
                    rewards[e as usize]
                })
            })
        };
        // Small batches (e.g. a single event) stay on the calling thread: no pool hand-off.
        let added: Vec<u64> = if n < SMALL {
            s.chunks_mut(dd * dd)
                .zip(theta.chunks_mut(dd))
                .enumerate()
                .map(work)
                .collect()
        } else {
            s.par_chunks_mut(dd * dd)
                .zip(theta.par_chunks_mut(dd))
                .enumerate()
                .map(work)
                .collect()
        };
        if let (Some((s0, t0)), true) = (backup, ctl.is_cancelled()) {
            self.s = s0;
            self.theta = t0;
            return Err(CoreError::Cancelled);
        }
        self.s = s;
        self.theta = theta;
        for (a, c) in added.iter().enumerate() {
            if *c > 0 {
                self.counts[a] += c;
                self.chol_state[a] = 0;
            }
        }
        Ok(())
    }
}

// ---- helpers -------------------------------------------------------------------------------

#[inline(always)]
fn fill_z_raw(rows: &Rows, i: usize, a: usize, z: &mut [f64], d: usize, k: usize, na: usize) {
    z[..d].copy_from_slice(&rows.x[i * d..(i + 1) * d]);
    if let Some(xa) = rows.xa {
        // Shared (K x k) features: every row reads the same block.
        let row = if xa.len() == na * k { 0 } else { i };
        let o = (row * na + a) * k;
        z[d..d + k].copy_from_slice(&xa[o..o + k]);
    }
}

/// Hints the CPU to load the first 256 bytes of `v` into cache.
#[inline(always)]
fn prefetch(v: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = v.as_ptr() as *const i8;
        let lines = (v.len().min(32) * 8).div_ceil(64);
        for l in 0..lines {
            // SAFETY: prefetch never faults; the address is inside `v`.
            unsafe { _mm_prefetch(p.add(l * 64), _MM_HINT_T0) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

#[cfg(test)]
mod tests;
