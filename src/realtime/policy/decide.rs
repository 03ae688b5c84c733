//! Decisions of the policy engine: the scores of one row or of a batch (parallel over fixed
//! chunks of rows, `LANES` rows at a time through the factor of `S`), batch decisions with
//! hallucinated covariance updates, and the probability of each action.

use super::{Algo, Policy, Rows, ROWS};
use crate::control::Control;
use crate::error::{try_vec, CoreError, Result};
use crate::realtime::kernels::{argmax, block_mean_quad, dot, rank1_sub, symv, LANES};
use crate::realtime::{epsilon_greedy, lints, linucb};
use crate::rng;
use crate::simd::{simd_fn, Fm, NoFma};
use rayon::prelude::*;

impl Policy {
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
        for a in 0..na {
            self.fill_z(rows, 0, a, z);
            let sa = &self.s[a * dd * dd..(a + 1) * dd * dd];
            let th = &self.theta[a * dd..(a + 1) * dd];
            let (m, q) = mean_quad_any(sa, th, z, w, need_q);
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
            score_chunk_any(this, rows, start, m, t0, chunk, ctl)
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
        hallucinated_any(self, rows, n, out, ctl);
        ctl.check()?;
        self.t += n as u64;
        Ok(())
    }

    /// Probability of each action under the policy for each row (n x K), without changing the
    /// policy: exact for LinUCB (one-hot; it is deterministic) and epsilon-greedy; for the
    /// Thompson samplers a Monte Carlo estimate from `n_samples` draws (row `i` uses the streams
    /// `(seed, 2, i)`, so the result is reproducible). Checks `ctl` every [`lints::SAMPLES_PER_CHECK`]
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
                        Algo::LinUcb { alpha } => linucb::probabilities(mu, qu, alpha, p),
                        Algo::EpsilonGreedy { epsilon } => {
                            epsilon_greedy::probabilities(mu, epsilon, p)
                        }
                        Algo::LinTs { v } | Algo::LogisticTs { v } => {
                            let mut r = rng::stream2(this.cfg.seed, 2, (start + i) as u64);
                            lints::probabilities(&mut r, mu, qu, v, n_samples, p, ctl)?
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
                let (mu, q) = mean_quad::<NoFma>(
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
}

#[inline(always)]
fn mean_quad<M: Fm>(
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

simd_fn!(
    /// `(theta . z, z^T S z)` (the second 0 unless `need_q`); `w` is scratch of length d.
    fn mean_quad_any(s: &[f64], theta: &[f64], z: &[f64], w: &mut [f64], need_q: bool) -> (f64, f64) = mean_quad
);

/// Scores rows `start..start + m` into `out`; stops early (output unfinished) once `ctl` is
/// cancelled: the caller checks `ctl` afterwards.
#[inline(always)]
fn score_chunk<M: Fm>(
    p: &Policy,
    rows: &Rows,
    start: usize,
    m: usize,
    t0: u64,
    out: &mut [f64],
    ctl: &Control,
) {
    let (na, dd) = (p.cfg.n_actions, p.dim());
    let need_q = p.cfg.algo.needs_quad();
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
                    p.fill_z(rows, start + b0 + j, a, &mut z);
                    for (f, zf) in z.iter().enumerate() {
                        zt[f * LANES + j] = *zf;
                    }
                }
            }
            let th = &p.theta[a * dd..(a + 1) * dd];
            if !need_q || p.chol_state[a] == 1 {
                let u = &p.chol[a * dd * dd..(a + 1) * dd * dd];
                block_mean_quad::<M>(u, th, &zt, dd, need_q, &mut mu, &mut qu);
            } else {
                // Factor unavailable (S not numerically positive definite): use S itself.
                let sa = &p.s[a * dd * dd..(a + 1) * dd * dd];
                for j in 0..r {
                    p.fill_z(rows, start + b0 + j, a, &mut z);
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
        p.index_row(
            t0 + (start + i) as u64,
            &means[o..o + na],
            &quads[o..o + na],
            &mut out[o..o + na],
        );
    }
}

simd_fn!(
    fn score_chunk_any(
        p: &Policy,
        rows: &Rows,
        start: usize,
        m: usize,
        t0: u64,
        out: &mut [f64],
        ctl: &Control,
    ) -> () = score_chunk
);

/// Stops early (output unfinished) once `ctl` is cancelled: the caller checks `ctl`.
#[inline(always)]
fn hallucinated<M: Fm>(p: &Policy, rows: &Rows, n: usize, out: &mut [i64], ctl: &Control) {
    let (na, dd) = (p.cfg.n_actions, p.dim());
    let need_q = p.cfg.algo.needs_quad();
    let mut s = p.s.clone();
    let (mut z, mut w) = (vec![0.0; dd], vec![0.0; dd]);
    let (mut means, mut quads, mut idx) = (vec![0.0; na], vec![0.0; na], vec![0.0; na]);
    for i in 0..n {
        if i % 64 == 0 && ctl.is_cancelled() {
            return;
        }
        for a in 0..na {
            p.fill_z(rows, i, a, &mut z);
            let (m, q) = mean_quad::<M>(
                &s[a * dd * dd..(a + 1) * dd * dd],
                &p.theta[a * dd..(a + 1) * dd],
                &z,
                &mut w,
                need_q,
            );
            means[a] = m;
            quads[a] = q;
        }
        p.index_row(p.t + i as u64, &means, &quads, &mut idx);
        let a = argmax(&idx);
        out[i] = a as i64;
        if need_q {
            p.fill_z(rows, i, a, &mut z);
            let sa = &mut s[a * dd * dd..(a + 1) * dd * dd];
            symv::<M>(sa, &z, &mut w);
            let q = dot::<M>(&z, &w);
            rank1_sub::<M>(sa, &w, 1.0 / (1.0 + q));
        }
    }
}

simd_fn!(
    fn hallucinated_any(p: &Policy, rows: &Rows, n: usize, out: &mut [i64], ctl: &Control) -> () = hallucinated
);
