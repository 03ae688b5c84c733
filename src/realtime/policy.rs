//! The contextual-bandit policy engine shared by LinUCB, LinTS, LogisticTS and epsilon-greedy:
//! one uniform API (`choose`, `choose_batch`, `scores_batch`, `probabilities`, `update`,
//! `update_batch`), shared context features `x` (d) plus optional per-action features `xa`
//! (K x k per event); action `a` sees `z = [x, xa[a]]` (dimension `d + k`) and has its own model.
//!
//! Determinism: the random draws of decision number `t` (counted over the policy's life) come from
//! `rng::stream2(seed, 1, t)`, so decisions do not depend on the batch split or the thread count.
//! `update_batch` runs actions in parallel (each action's events in their original order), so it
//! gives exactly the state of the same events applied one by one.

use super::arms::{update_many, Link};
use super::kernels::{
    block_mean_quad, cholesky, dot, has_fma, rank1_sub, symv, Fused, Mode, Plain, LANES,
};
use super::{epsilon_greedy, lints, linucb};
use crate::control::Control;
use crate::error::{check_finite, check_fits_memory, checked_bytes, try_vec, CoreError, Result};
use crate::rng;
use rand::Rng as _;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows per parallel chunk of `choose_batch`/`scores_batch` (fixed: results never depend on it).
const ROWS: usize = 1024;
/// Batches smaller than this run on the calling thread (a pool hand-off costs microseconds).
const SMALL: usize = 256;
/// Monte Carlo draws of `probabilities` between two checks for Ctrl-C (well under 10 ms).
const SAMPLES_PER_CHECK: usize = 4096;

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
            Algo::LinUcb { alpha } => {
                for a in 0..out.len() {
                    out[a] = linucb::index(means[a], quads[a], alpha);
                }
            }
            Algo::LinTs { v } | Algo::LogisticTs { v } => {
                let mut r = self.row_rng(t);
                for a in 0..out.len() {
                    let e: f64 = r.sample(StandardNormal);
                    out[a] = lints::sample(means[a], quads[a], v, e);
                }
            }
            Algo::EpsilonGreedy { epsilon } => {
                out.copy_from_slice(means);
                if epsilon > 0.0 {
                    let mut r = self.row_rng(t);
                    if r.random::<f64>() < epsilon {
                        // Explore: the drawn action gets the only finite top score.
                        let pick = r.random_range(0..out.len());
                        for (a, o) in out.iter_mut().enumerate() {
                            *o = if a == pick { f64::MAX } else { f64::MIN };
                        }
                    }
                }
            }
        }
    }

    /// Decision indices (UCB, posterior sample, or greedy mean) of one row; advances the decision
    /// counter. Single-event path: no allocation beyond the caller's buffers (`scratch` >= 3 D + 2 K).
    pub fn scores_one(
        &mut self,
        rows: &Rows,
        out: &mut [f64],
        scratch: &mut Vec<f64>,
    ) -> Result<()> {
        self.check_rows(rows, 1)?;
        let (na, dd) = (self.cfg.n_actions, self.dim());
        scratch.resize(2 * dd + 2 * na, 0.0);
        let (z, rest) = scratch.split_at_mut(dd);
        let (w, rest) = rest.split_at_mut(dd);
        let (means, quads) = rest.split_at_mut(na);
        let need_q = self.cfg.algo.needs_quad();
        let fma = has_fma();
        for a in 0..na {
            self.fill_z(rows, 0, a, z);
            let sa = &self.s[a * dd * dd..(a + 1) * dd * dd];
            let th = &self.theta[a * dd..(a + 1) * dd];
            let (m, q) = if fma {
                // SAFETY: AVX2+FMA present.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    mean_quad_fma(sa, th, z, w, need_q)
                }
                #[cfg(not(target_arch = "x86_64"))]
                mean_quad::<Plain>(sa, th, z, w, need_q)
            } else {
                mean_quad::<Plain>(sa, th, z, w, need_q)
            };
            means[a] = m;
            quads[a] = q;
        }
        let t = self.t;
        self.index_row(t, means, &quads[..na], &mut out[..na]);
        self.t += 1;
        Ok(())
    }

    /// One decision: `argmax` of [`Policy::scores_one`].
    pub fn choose_one(&mut self, rows: &Rows, scratch: &mut Vec<f64>) -> Result<usize> {
        let na = self.cfg.n_actions;
        let mut buf = [0.0f64; 64];
        if na <= 64 {
            self.scores_one(rows, &mut buf[..na], scratch)?;
            Ok(argmax(&buf[..na]))
        } else {
            let mut v = vec![0.0; na];
            self.scores_one(rows, &mut v, scratch)?;
            Ok(argmax(&v))
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

    /// Decision indices of `n` rows (n x K, row-major); parallel over fixed chunks of rows.
    /// Checks `ctl` (Ctrl-C) every block of rows; a cancelled call changes nothing.
    pub fn scores_batch(
        &mut self,
        rows: &Rows,
        n: usize,
        out: &mut [f64],
        ctl: &Control,
    ) -> Result<()> {
        self.check_rows(rows, n)?;
        let na = self.cfg.n_actions;
        if out.len() != n * na {
            return Err(CoreError::Internal("scores_batch: output size".into()));
        }
        self.refresh_factors();
        let t0 = self.t;
        let this = &*self;
        let score = |(c, chunk): (usize, &mut [f64])| {
            let start = c * ROWS;
            let m = chunk.len() / na;
            if has_fma() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2+FMA present.
                unsafe {
                    this.score_chunk_fma(rows, start, m, t0, chunk, ctl)
                }
                #[cfg(not(target_arch = "x86_64"))]
                this.score_chunk::<Plain>(rows, start, m, t0, chunk, ctl)
            } else {
                this.score_chunk::<Plain>(rows, start, m, t0, chunk, ctl)
            }
        };
        if n <= ROWS {
            out.chunks_mut(ROWS * na).enumerate().for_each(score);
        } else {
            out.par_chunks_mut(ROWS * na).enumerate().for_each(score);
        }
        ctl.check()?;
        self.t += n as u64;
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn score_chunk_fma(
        &self,
        rows: &Rows,
        start: usize,
        m: usize,
        t0: u64,
        out: &mut [f64],
        ctl: &Control,
    ) {
        self.score_chunk::<Fused>(rows, start, m, t0, out, ctl)
    }

    /// Scores rows `start..start + m` into `out`; stops early (output unfinished) once `ctl` is
    /// cancelled: the caller checks `ctl` afterwards.
    #[inline(always)]
    fn score_chunk<M: Mode>(
        &self,
        rows: &Rows,
        start: usize,
        m: usize,
        t0: u64,
        out: &mut [f64],
        ctl: &Control,
    ) {
        let (na, dd) = (self.cfg.n_actions, self.dim());
        let need_q = self.cfg.algo.needs_quad();
        let shared = rows.xa.is_none();
        let mut means = vec![0.0; m * na];
        let mut quads = vec![0.0; m * na];
        let mut zt = vec![0.0; dd * LANES];
        let mut z = vec![0.0; dd];
        let mut w = vec![0.0; dd];
        let (mut mu, mut qu) = ([0.0; LANES], [0.0; LANES]);
        let mut b0 = 0;
        while b0 < m {
            if ctl.is_cancelled() {
                return;
            }
            let r = LANES.min(m - b0);
            for a in 0..na {
                if a == 0 || !shared {
                    // Transpose the block's rows into zt (zero padding past r).
                    zt.fill(0.0);
                    for j in 0..r {
                        self.fill_z(rows, start + b0 + j, a, &mut z);
                        for (f, zf) in z.iter().enumerate() {
                            zt[f * LANES + j] = *zf;
                        }
                    }
                }
                let th = &self.theta[a * dd..(a + 1) * dd];
                if !need_q || self.chol_state[a] == 1 {
                    let u = &self.chol[a * dd * dd..(a + 1) * dd * dd];
                    block_mean_quad::<M>(u, th, &zt, dd, need_q, &mut mu, &mut qu);
                } else {
                    // Factor unavailable (S not numerically positive definite): use S itself.
                    let sa = &self.s[a * dd * dd..(a + 1) * dd * dd];
                    for j in 0..r {
                        self.fill_z(rows, start + b0 + j, a, &mut z);
                        let (mm, qq) = mean_quad::<M>(sa, th, &z, &mut w, true);
                        mu[j] = mm;
                        qu[j] = qq;
                    }
                }
                for j in 0..r {
                    means[(b0 + j) * na + a] = mu[j];
                    quads[(b0 + j) * na + a] = qu[j];
                }
            }
            b0 += r;
        }
        for i in 0..m {
            let o = i * na;
            self.index_row(
                t0 + (start + i) as u64,
                &means[o..o + na],
                &quads[o..o + na],
                &mut out[o..o + na],
            );
        }
    }

    /// Decisions for `n` rows (Ctrl-C: as [`Policy::scores_batch`]).
    pub fn choose_batch(
        &mut self,
        rows: &Rows,
        n: usize,
        out: &mut [i64],
        ctl: &Control,
    ) -> Result<()> {
        let na = self.cfg.n_actions;
        let count = n.checked_mul(na).ok_or_else(|| {
            CoreError::invalid("x", "too large: n rows x n_actions values overflow")
        })?;
        let mut sc = try_vec("x", count, 0.0)?;
        self.scores_batch(rows, n, &mut sc, ctl)?;
        out.par_chunks_mut(ROWS)
            .zip(sc.par_chunks(ROWS * na))
            .for_each(|(o, s)| {
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = argmax(&s[i * na..(i + 1) * na]) as i64;
                }
            });
        Ok(())
    }

    /// Decisions for `n` rows taken one after another, each earlier row of the batch counted as
    /// observed in the confidence widths (a "hallucinated" covariance update with no reward;
    /// Desautels, Krause and Burdick 2014): a batch then spreads its exploration over actions like
    /// one-at-a-time decisions instead of repeating the same choice. The policy's state is not
    /// changed (only the decision counter). Sequential: about one update's cost per row. Checks
    /// `ctl` (Ctrl-C) every few rows; a cancelled call changes nothing.
    pub fn choose_batch_hallucinated(
        &mut self,
        rows: &Rows,
        n: usize,
        out: &mut [i64],
        ctl: &Control,
    ) -> Result<()> {
        self.check_rows(rows, n)?;
        if has_fma() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2+FMA present.
            unsafe {
                self.hallucinated_fma(rows, n, out, ctl)
            }
            #[cfg(not(target_arch = "x86_64"))]
            self.hallucinated::<Plain>(rows, n, out, ctl)
        } else {
            self.hallucinated::<Plain>(rows, n, out, ctl)
        }
        ctl.check()?;
        self.t += n as u64;
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hallucinated_fma(&self, rows: &Rows, n: usize, out: &mut [i64], ctl: &Control) {
        self.hallucinated::<Fused>(rows, n, out, ctl)
    }

    /// Stops early (output unfinished) once `ctl` is cancelled: the caller checks `ctl`.
    #[inline(always)]
    fn hallucinated<M: Mode>(&self, rows: &Rows, n: usize, out: &mut [i64], ctl: &Control) {
        let (na, dd) = (self.cfg.n_actions, self.dim());
        let need_q = self.cfg.algo.needs_quad();
        let mut s = self.s.clone();
        let (mut z, mut w) = (vec![0.0; dd], vec![0.0; dd]);
        let (mut means, mut quads, mut idx) = (vec![0.0; na], vec![0.0; na], vec![0.0; na]);
        for i in 0..n {
            if i % 64 == 0 && ctl.is_cancelled() {
                return;
            }
            for a in 0..na {
                self.fill_z(rows, i, a, &mut z);
                let (m, q) = mean_quad::<M>(
                    &s[a * dd * dd..(a + 1) * dd * dd],
                    &self.theta[a * dd..(a + 1) * dd],
                    &z,
                    &mut w,
                    need_q,
                );
                means[a] = m;
                quads[a] = q;
            }
            self.index_row(self.t + i as u64, &means, &quads, &mut idx);
            let a = argmax(&idx);
            out[i] = a as i64;
            if need_q {
                self.fill_z(rows, i, a, &mut z);
                let sa = &mut s[a * dd * dd..(a + 1) * dd * dd];
                symv::<M>(sa, &z, &mut w);
                let q = dot::<M>(&z, &w);
                rank1_sub::<M>(sa, &w, 1.0 / (1.0 + q));
            }
        }
    }

    /// Probability of each action under the policy for each row (n x K), without changing the
    /// policy: exact for LinUCB (one-hot; it is deterministic) and epsilon-greedy; for the
    /// Thompson samplers a Monte Carlo estimate from `n_samples` draws (row `i` uses the streams
    /// `(seed, 2, i)`, so the result is reproducible). Checks `ctl` every [`SAMPLES_PER_CHECK`]
    /// draws (Ctrl-C): the cost is `n x n_samples x K` draws, unbounded by the input's size.
    pub fn probabilities(
        &mut self,
        rows: &Rows,
        n: usize,
        n_samples: usize,
        out: &mut [f64],
        ctl: &Control,
    ) -> Result<()> {
        self.check_rows(rows, n)?;
        let na = self.cfg.n_actions;
        if n_samples < 1 {
            return Err(CoreError::invalid("n_samples", "must be >= 1"));
        }
        self.refresh_factors();
        let this = &*self;
        out.par_chunks_mut(ROWS * na)
            .enumerate()
            .try_for_each(|(c, chunk)| -> Result<()> {
                ctl.check()?;
                let start = c * ROWS;
                let m = chunk.len() / na;
                // Means and quads via the score kernel with the deterministic LinUCB index trick:
                // compute (mean, quad) pairs directly.
                let (means, quads) = this.mean_quad_rows(rows, start, m);
                for i in 0..m {
                    let o = i * na;
                    let (mu, qu, p) = (&means[o..o + na], &quads[o..o + na], &mut chunk[o..o + na]);
                    p.fill(0.0);
                    match this.cfg.algo {
                        Algo::LinUcb { alpha } => {
                            let idx: Vec<f64> = (0..na)
                                .map(|a| linucb::index(mu[a], qu[a], alpha))
                                .collect();
                            p[argmax(&idx)] = 1.0;
                        }
                        Algo::EpsilonGreedy { epsilon } => {
                            let g = argmax(mu);
                            for (a, pa) in p.iter_mut().enumerate() {
                                *pa = epsilon_greedy::propensity(a, g, epsilon, na);
                            }
                        }
                        Algo::LinTs { v } | Algo::LogisticTs { v } => {
                            let mut r = rng::stream2(this.cfg.seed, 2, (start + i) as u64);
                            let mut s = vec![0.0; na];
                            for k in 0..n_samples {
                                if k % SAMPLES_PER_CHECK == 0 {
                                    ctl.check()?;
                                }
                                for a in 0..na {
                                    let e: f64 = r.sample(StandardNormal);
                                    s[a] = lints::sample(mu[a], qu[a], v, e);
                                }
                                p[argmax(&s)] += 1.0;
                            }
                            for pa in p.iter_mut() {
                                *pa /= n_samples as f64;
                            }
                        }
                    }
                }
                Ok(())
            })
    }

    fn mean_quad_rows(&self, rows: &Rows, start: usize, m: usize) -> (Vec<f64>, Vec<f64>) {
        let (na, dd) = (self.cfg.n_actions, self.dim());
        let mut means = vec![0.0; m * na];
        let mut quads = vec![0.0; m * na];
        let mut z = vec![0.0; dd];
        let mut w = vec![0.0; dd];
        for i in 0..m {
            for a in 0..na {
                self.fill_z(rows, start + i, a, &mut z);
                let (mu, q) = mean_quad::<Plain>(
                    &self.s[a * dd * dd..(a + 1) * dd * dd],
                    &self.theta[a * dd..(a + 1) * dd],
                    &z,
                    &mut w,
                    self.cfg.algo.needs_quad(),
                );
                means[i * na + a] = mu;
                quads[i * na + a] = q;
            }
        }
        (means, quads)
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
        let mut s = std::mem::take(&mut self.s);
        let mut theta = std::mem::take(&mut self.theta);
        let work = |(a, (sa, ta)): (usize, (&mut [f64], &mut [f64]))| {
            let idx = &order[start[a]..start[a + 1]];
            if idx.is_empty() {
                return 0;
            }
            update_many(link, sa, ta, dd, &mut |j, z| {
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

/// `argmax` with ties to the lowest index (as numpy); NaN never wins.
#[inline]
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    let mut bv = f64::NEG_INFINITY;
    for (i, &x) in v.iter().enumerate() {
        if x > bv {
            bv = x;
            best = i;
        }
    }
    best
}

#[inline(always)]
fn mean_quad<M: Mode>(
    s: &[f64],
    theta: &[f64],
    z: &[f64],
    w: &mut [f64],
    need_q: bool,
) -> (f64, f64) {
    let m = dot::<M>(theta, z);
    if !need_q {
        return (m, 0.0);
    }
    symv::<M>(s, z, w);
    (m, dot::<M>(w, z))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mean_quad_fma(
    s: &[f64],
    theta: &[f64],
    z: &[f64],
    w: &mut [f64],
    need_q: bool,
) -> (f64, f64) {
    mean_quad::<Fused>(s, theta, z, w, need_q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(algo: Algo, k: usize, d: usize) -> Config {
        Config {
            algo,
            n_actions: k,
            n_features: d,
            n_action_features: 0,
            ridge: 1.0,
            seed: 3,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn batch_update_equals_one_by_one_and_keeps_the_inverse(
            k in 1usize..4, d in 1usize..6, n in 1usize..300, seed in 0u64..1000,
        ) {
            use rand::Rng;
            let mut r = crate::rng::stream(seed, 0);
            let x: Vec<f64> = (0..n * d).map(|_| r.random::<f64>() * 2.0 - 1.0).collect();
            let a: Vec<i64> = (0..n).map(|_| r.random_range(0..k as i64)).collect();
            let y: Vec<f64> = (0..n).map(|_| r.random::<f64>()).collect();
            for algo in [Algo::LinUcb { alpha: 1.0 }, Algo::LogisticTs { v: 1.0 }] {
                let mut p = Policy::new(cfg(algo, k, d)).unwrap();
                let mut q = p.clone();
                p.update_batch(&Rows { x: &x, xa: None }, &a, &y).unwrap();
                for i in 0..n {
                    q.update_batch(&Rows { x: &x[i * d..(i + 1) * d], xa: None }, &a[i..i + 1], &y[i..i + 1]).unwrap();
                }
                prop_assert_eq!(&p, &q);
                if let Algo::LinUcb { .. } = algo {
                    // A^{-1} A = I with A = I + sum z z^T over each action's events
                    for act in 0..k {
                        let mut am = vec![0.0; d * d];
                        for i in 0..d { am[i * d + i] = 1.0; }
                        for e in 0..n {
                            if a[e] as usize == act {
                                for i in 0..d { for j in 0..d { am[i * d + j] += x[e * d + i] * x[e * d + j]; } }
                            }
                        }
                        let s = &p.a_inv()[act * d * d..(act + 1) * d * d];
                        for i in 0..d { for j in 0..d {
                            let v: f64 = (0..d).map(|t| s[i * d + t] * am[t * d + j]).sum();
                            let want = if i == j { 1.0 } else { 0.0 };
                                prop_assert!((v - want).abs() < 1e-8, "A^-1 A off identity");
                        } }
                    }
                }
            }
        }
    }

    #[test]
    fn impossible_sizes_are_invalid_and_huge_ones_out_of_memory() {
        let sized = |k: usize, d: usize, ka: usize| {
            Policy::new(Config {
                n_action_features: ka,
                ..cfg(Algo::LinTs { v: 1.0 }, k, d)
            })
            .map(|_| ())
        };
        let arg = |e: CoreError| match e {
            CoreError::Invalid { arg, .. } => format!("invalid {arg}"),
            CoreError::OutOfMemory(m) => format!("memory {}", m.split(':').next().unwrap()),
            e => format!("{e:?}"),
        };
        // (2^32)^2 overflows: the size cannot exist
        assert_eq!(arg(sized(2, 1 << 32, 0).unwrap_err()), "invalid n_features");
        assert_eq!(
            arg(sized(2, 3, 1 << 32).unwrap_err()),
            "invalid n_action_features"
        );
        assert_eq!(
            arg(sized(2, usize::MAX, 1).unwrap_err()),
            "invalid n_action_features"
        );
        // valid sizes no machine holds
        assert_eq!(arg(sized(4, 1 << 20, 0).unwrap_err()), "memory n_features");
        assert_eq!(arg(sized(1 << 40, 5, 0).unwrap_err()), "memory n_actions");
        assert_eq!(arg(sized(1, 1 << 16, 0).unwrap_err()), "memory n_features");
        assert!(sized(3, 4, 2).is_ok());
    }

    #[test]
    fn cancelled_batch_calls_stop_and_change_nothing() {
        let (k, d, n) = (3, 2, 2000);
        let x: Vec<f64> = (0..n * d).map(|i| (i % 7) as f64 - 3.0).collect();
        let rows = Rows { x: &x, xa: None };
        let ctl = Control::new();
        ctl.cancel();
        let mut p = Policy::new(cfg(Algo::LinTs { v: 1.0 }, k, d)).unwrap();
        let before = p.clone();
        let mut sc = vec![0.0; n * k];
        let mut a = vec![0i64; n];
        assert_eq!(
            p.scores_batch(&rows, n, &mut sc, &ctl),
            Err(CoreError::Cancelled)
        );
        assert_eq!(
            p.choose_batch(&rows, n, &mut a, &ctl),
            Err(CoreError::Cancelled)
        );
        assert_eq!(
            p.choose_batch_hallucinated(&rows, n, &mut a, &ctl),
            Err(CoreError::Cancelled)
        );
        assert_eq!(
            p.probabilities(&rows, n, 10, &mut sc, &ctl),
            Err(CoreError::Cancelled)
        );
        assert_eq!(p, before);
        assert!(p.choose_batch(&rows, n, &mut a, &Control::new()).is_ok());
        assert_eq!(p.n_decisions(), n as u64);
    }

    #[test]
    fn state_round_trip_and_corruption() {
        let mut p = Policy::new(cfg(Algo::LinTs { v: 0.5 }, 3, 2)).unwrap();
        p.update_batch(
            &Rows {
                x: &[0.1, 0.2, 0.3, -0.4],
                xa: None,
            },
            &[0, 2],
            &[1.0, 0.5],
        )
        .unwrap();
        let b = p.to_bytes().unwrap();
        assert_eq!(Policy::from_bytes(&b).unwrap(), p);
        assert!(Policy::from_bytes(&b[..b.len() - 3]).is_err());
        let mut c = b.clone();
        let mid = c.len() / 2;
        c[mid] ^= 0x04;
        assert!(Policy::from_bytes(&c).is_err());
    }
}
