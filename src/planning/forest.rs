//! The honest multi-treatment uplift forest.
//!
//! **Data.** Features are cut once into at most `max_bins` quantile bins and coded as u8
//! ([`super::binning`]); treatments are arms 0 = control, 1..=T.
//!
//! **Trees.** Tree `b` draws from its own stream `rng::stream(seed, b)`: a subsample of the rows
//! without replacement (each row kept with probability `subsample`), which, when `honest`, is
//! split at random into a structure half that chooses the splits and an estimation half that
//! estimates the leaf effects (Wager & Athey 2018, "Estimation and inference of heterogeneous
//! treatment effects using random forests", JASA; Athey & Imbens 2016, "Recursive partitioning
//! for heterogeneous causal effects", PNAS). Trees grow in parallel on the growthmachine pool, one
//! tree per task, and are kept in index order, so the forest is bit-identical for any thread count.
//!
//! **Split criterion.** For a split into L and R the gain is
//! `sum_t (tau_L,t - tau_R,t)^2 / (s_t^2 (1/W_L,t + 1/W_R,t) + s_0^2 (1/W_L,0 + 1/W_R,0))`,
//! summed over the treatments t = 1..T, where `tau_S,t` is the difference of weighted means of
//! arm t and control in side S, `W_S,a` the weight of arm a in S and `s_a^2` the node's row
//! variance of arm a. For one treatment with the same arm shares on both sides it is proportional
//! to Athey & Imbens' `n_L n_R / n (tau_L - tau_R)^2`; dividing by the variance of the difference
//! (the squared t-statistic of the interaction test of Su et al. 2009, "Subgroup analysis via
//! recursive partitioning", JMLR) makes the terms of treatments with different arm sizes or
//! outcome scales comparable and penalises splits that leave an arm thin; the sum over treatments
//! is the multi-treatment extension of Rzepakowski & Jaroszewicz 2012 ("Decision trees for uplift
//! modeling with single and multiple treatments", KAIS), which sums a divergence over treatments.
//! Every side must keep `min_samples_leaf` rows and `min_samples_treatment` rows of every arm.
//! Histograms per node hold (rows, Σw, Σwy) per bin and arm; `s_a^2` comes from the node's
//! (Σw, Σwy, Σwy²) kept with the partition ([`super::tree`]).
//!
//! **Leaf effects.** From the estimation half only (honest): per node and treatment the
//! difference of weighted means, shrunk toward the parent node's effect with weight
//! `n_e / (n_e + shrinkage)`, `n_e = (1/n_t + 1/n_c)^-1` ([`super::shrink`]); the root shrinks
//! toward the effect on all the data. This is the small-count guard: a leaf arm with few rows
//! borrows from its parent, one with none takes the parent's effect.
//!
//! **Standard error.** Per tree, the leaf's posterior standard error ([`super::shrink`]: the
//! sampling variance of the difference of means `var_t/n_t + var_c/n_c`, shrunk with the
//! estimate). The forest reports `sqrt(mean_b se_b(x)^2)`: the average over trees of the per-tree
//! variance. The forest's estimate is the mean of B correlated tree estimates, whose variance is
//! at most the mean of their variances (Cauchy-Schwarz), so this is an upper bound, reached when
//! the trees agree; it ignores the (smaller) variance from the choice of the splits.

use super::binning::Bins;
use super::tree::{self, Shared, Tree, TreeParams};
use super::{arms_of, global_effects, global_sums};
use super::{dedup, pairs};
use crate::control::Control;
use crate::error::{check_finite, check_len, CoreError, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// What [`Forest::pairs_scored`] gives: `n x k` estimates and standard errors, or those of
/// each group of rows and the group of each row.
enum Scored {
    Rows(Vec<f64>, Vec<f64>),
    Groups(Vec<f64>, Vec<f64>, Vec<u32>),
    /// The groups' numbers rounded to float32 (as the rows get them), and the group of each row.
    Groups32(Vec<f32>, Vec<f32>, Vec<u32>),
}

/// How many candidate features each node draws.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxFeatures {
    /// `ceil(sqrt(p))`
    Sqrt,
    /// `min(ceil(sqrt(p) + 20), p)`: the default `mtry` of grf's causal forest (Athey,
    /// Tibshirani & Wager 2019, "Generalized random forests", Annals of Statistics), every
    /// feature up to p = 25. A node that may only try a few features splits on whichever of
    /// them fits the noise best, so a strong but rarely drawn effect modifier (a binary flag
    /// among one-hot columns) is missed in most nodes; uplift signals are weak, which is why grf
    /// tries many features per split rather than the `sqrt(p)` of classification forests.
    SqrtPlus20,
    /// `max(1, round(share * p))`, share in (0, 1]
    Share(f64),
    /// an exact count, 1..=p
    Count(usize),
}

impl MaxFeatures {
    pub fn resolve(self, p: usize) -> Result<usize> {
        match self {
            MaxFeatures::Sqrt => Ok(((p as f64).sqrt().ceil() as usize).clamp(1, p)),
            MaxFeatures::SqrtPlus20 => Ok((((p as f64).sqrt() + 20.0).ceil() as usize).clamp(1, p)),
            MaxFeatures::Share(s) if s > 0.0 && s <= 1.0 => {
                Ok(((s * p as f64).round() as usize).clamp(1, p))
            }
            MaxFeatures::Share(s) => Err(CoreError::invalid(
                "max_features",
                format!("a share must be in (0, 1], got {s}"),
            )),
            MaxFeatures::Count(k) if (1..=p).contains(&k) => Ok(k),
            MaxFeatures::Count(k) => Err(CoreError::invalid(
                "max_features",
                format!("must be between 1 and n_features={p}, got {k}"),
            )),
        }
    }
}

/// Parameters of a fit (every one explicit: the defaults live in the Python API only).
#[derive(Clone, Debug)]
pub struct ForestParams {
    pub n_estimators: usize,
    pub max_depth: usize,
    pub min_samples_leaf: usize,
    pub min_samples_treatment: usize,
    pub max_features: MaxFeatures,
    pub max_bins: usize,
    pub honest: bool,
    pub subsample: f64,
    pub shrinkage: f64,
    pub seed: u64,
}

/// Largest accepted `n_estimators` and `max_depth`.
pub const MAX_ESTIMATORS: usize = 100_000;
pub const MAX_DEPTH: usize = 64;

impl ForestParams {
    pub fn validate(&self) -> Result<()> {
        let bad = |arg: &str, msg: String| Err(CoreError::invalid(arg, msg));
        if !(1..=MAX_ESTIMATORS).contains(&self.n_estimators) {
            return bad(
                "n_estimators",
                format!(
                    "must be between 1 and {MAX_ESTIMATORS}, got {}",
                    self.n_estimators
                ),
            );
        }
        if !(1..=MAX_DEPTH).contains(&self.max_depth) {
            return bad(
                "max_depth",
                format!("must be between 1 and {MAX_DEPTH}, got {}", self.max_depth),
            );
        }
        if self.min_samples_leaf == 0 {
            return bad("min_samples_leaf", "must be >= 1, got 0".into());
        }
        if self.min_samples_treatment == 0 {
            return bad("min_samples_treatment", "must be >= 1, got 0".into());
        }
        if !(2..=256).contains(&self.max_bins) {
            return bad(
                "max_bins",
                format!("must be between 2 and 256, got {}", self.max_bins),
            );
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return bad(
                "subsample",
                format!("must be in (0, 1], got {}", self.subsample),
            );
        }
        if !(self.shrinkage.is_finite() && self.shrinkage >= 0.0) {
            return bad(
                "shrinkage",
                format!("must be a finite number >= 0, got {}", self.shrinkage),
            );
        }
        Ok(())
    }
}

/// Training data: `x` row-major `n x p`, treatment 0..=T, outcome, optional weights. The values
/// of `x` must be finite: the caller checks them (the Python API does, once, in parallel); a NaN
/// would fall into bin 0 and a split would send it left.
pub struct ForestData<'a> {
    pub x: &'a [f64],
    pub n: usize,
    pub p: usize,
    pub treatment: &'a [i64],
    pub n_treatments: usize,
    pub y: &'a [f64],
    pub w: Option<&'a [f64]>,
}

const STATE_KIND: &str = "planning.UpliftForest";
const STATE_VERSION: u32 = 1;

/// A fitted forest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    pub n_features: usize,
    pub n_treatments: usize,
    pub trees: Vec<Tree>,
    /// Criterion gain per feature, summed over splits and trees, normalised to sum 1.
    pub importances: Vec<f64>,
}

/// Fits a forest. Progress: one unit per tree.
pub fn fit(d: &ForestData<'_>, prm: &ForestParams, ctl: &Control) -> Result<Forest> {
    prm.validate()?;
    let (n, p) = (d.n, d.p);
    if n == 0 {
        return Err(CoreError::invalid("X", "is empty"));
    }
    if p == 0 {
        return Err(CoreError::invalid("X", "has 0 features (columns)"));
    }
    if n > u32::MAX as usize {
        return Err(CoreError::invalid(
            "X",
            format!("has {n} rows, at most {} are supported", u32::MAX),
        ));
    }
    check_len("X", d.x.len(), n * p, "n_samples * n_features")?;
    check_len("treatment", d.treatment.len(), n, "X")?;
    check_len("y", d.y.len(), n, "X")?;
    check_finite("y", d.y)?;
    if let Some(w) = d.w {
        check_len("sample_weight", w.len(), n, "X")?;
        crate::error::check_nonnegative("sample_weight", w)?;
    }
    let max_features = prm.max_features.resolve(p)?;
    let arm = arms_of(d.treatment, d.n_treatments)?;
    let sums = global_sums(&arm, d.y, d.w, d.n_treatments)?;
    let (global, global_var) = global_effects(&sums);
    ctl.set_total(prm.n_estimators as u64);
    let bins = Bins::fit(d.x, n, p, prm.max_bins)?;
    let codes = bins.transform(d.x, n, ctl)?;
    let sh = Shared {
        codes: &codes,
        stride: super::binning::stride(p),
        p,
        edges: &bins.edges,
        arm: &arm,
        y: d.y,
        w: d.w,
        arms: d.n_treatments + 1,
        global: &global,
        global_var: &global_var,
    };
    let tp = TreeParams {
        max_depth: prm.max_depth,
        min_samples_leaf: prm.min_samples_leaf,
        min_samples_treatment: prm.min_samples_treatment,
        max_features,
        honest: prm.honest,
        subsample: prm.subsample,
        shrinkage: prm.shrinkage,
    };
    // Buffers shared out to the trees being grown (at most one set per worker thread).
    let spare: Mutex<Vec<tree::Work>> = Mutex::new(Vec::new());
    let grown: Vec<tree::Grown> = (0..prm.n_estimators)
        .into_par_iter()
        .with_max_len(1)
        .map(|b| {
            let mut work = spare
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .unwrap_or_default();
            let g = tree::grow(&sh, &tp, prm.seed, b as u64, &mut work, ctl);
            spare.lock().unwrap_or_else(|e| e.into_inner()).push(work);
            ctl.advance(1);
            g
        })
        .collect::<Result<_>>()?;
    drop(spare);
    let mut importances = vec![0.0; p];
    let mut trees = Vec::with_capacity(grown.len());
    for g in grown {
        for (a, b) in importances.iter_mut().zip(&g.importance) {
            *a += b;
        }
        trees.push(g.tree);
    }
    let total: f64 = importances.iter().sum();
    if total > 0.0 {
        importances.iter_mut().for_each(|v| *v /= total);
    }
    Ok(Forest {
        n_features: p,
        n_treatments: d.n_treatments,
        trees,
        importances,
    })
}

/// Rows per prediction chunk.
const PREDICT_CHUNK: usize = 1024;

impl Forest {
    /// Estimates and standard errors for the `n x p` row-major `x`, each `n x T` row-major.
    pub fn predict(&self, x: &[f64], n: usize, ctl: &Control) -> Result<(Vec<f64>, Vec<f64>)> {
        let (p, t) = (self.n_features, self.n_treatments);
        check_len("X", x.len(), n * p, "n_samples * n_features")?;
        // finite values: checked by the caller, as for fit (a NaN goes right at every split)
        self.by_chunks(x, n, p, t, ctl, |e, s, xs| {
            for tr in &self.trees {
                for (r, row) in xs.chunks_exact(p).enumerate() {
                    let leaf = tr.leaf_of(row);
                    let (le, ls) = (&tr.est[leaf * t..(leaf + 1) * t], &tr.se[leaf * t..]);
                    for k in 0..t {
                        e[r * t + k] += le[k];
                        s[r * t + k] += ls[k] * ls[k];
                    }
                }
            }
        })
    }

    /// The `n x width` estimates and standard errors of the rows of `x` (`n x p`), as float64
    /// or float32 (`O`, see [`ChunkOut`]): `add(e, s, xs)` sums, over the trees, the leaf
    /// estimates and squared standard errors of a chunk of rows `xs` into `e` and `s`; chunks
    /// run in parallel (one float64 scratch pair per worker, reused across its chunks), Ctrl-C
    /// is checked before each, and the sums become means and root mean squares. The outputs
    /// come from zero pages, so nothing is filled before the first check.
    fn by_chunks<T: Sync, O: ChunkOut>(
        &self,
        x: &[T],
        n: usize,
        p: usize,
        width: usize,
        ctl: &Control,
        add: impl Fn(&mut [f64], &mut [f64], &[T]) + Sync,
    ) -> Result<(Vec<O>, Vec<O>)> {
        let mut est: Vec<O> = crate::error::try_zeroed_rows("X", n, width)?;
        let mut se: Vec<O> = crate::error::try_zeroed_rows("X", n, width)?;
        if est.is_empty() {
            return Ok((est, se));
        }
        let b = self.trees.len() as f64;
        ctl.set_total(n.div_ceil(PREDICT_CHUNK) as u64);
        est.par_chunks_mut(PREDICT_CHUNK * width)
            .zip(se.par_chunks_mut(PREDICT_CHUNK * width))
            .zip(x.par_chunks(PREDICT_CHUNK * p.max(1)))
            .try_for_each_init(
                || (Vec::new(), Vec::new()),
                |scratch, ((e, s), xs)| {
                    ctl.check()?;
                    O::fill(e, s, xs, b, scratch, &add);
                    ctl.advance(1);
                    Ok(())
                },
            )?;
        Ok((est, se))
    }

    /// Estimates and standard errors of a one-treatment forest fitted on rows `[u, z]` for
    /// every pair of a row of `xu` (`n x pu`) and a row of `z` (`k x (n_features - pu)`), each
    /// `n x k` row-major: entry `[i, j]` equals [`Forest::predict`] of the row `[xu_i, z_j]`,
    /// bit for bit (each pair gets one leaf per tree, added in tree order).
    ///
    /// Each tree is resolved once for the rows of `z` and then evaluated per row of `xu` for
    /// all rows of `z` together, without branches ([`pairs`]: leaf elimination); trees with too
    /// many leaves for that are walked once per row of `xu`, the task set split at task splits.
    /// Rows of `xu` that no user split of any tree tells apart are scored once ([`dedup`]).
    pub fn predict_pairs(
        &self,
        xu: &[f64],
        n: usize,
        pu: usize,
        z: &[f64],
        k: usize,
        ctl: &Control,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        self.check_pairs(pu, z, k)?;
        check_len("X", xu.len(), n * pu, "n_samples * n_user_features")?;
        let row = |i: usize| &xu[i * pu..(i + 1) * pu];
        let scored = self.pairs_scored(n, pu, row, Some(xu), z, k, false, ctl)?;
        let (eu, su, of_row) = match scored {
            Scored::Rows(e, s) => return Ok((e, s)),
            Scored::Groups(eu, su, of_row) => (eu, su, of_row),
            Scored::Groups32(..) => unreachable!("float64 groups asked"),
        };
        let mut est: Vec<f64> = crate::error::try_zeroed("X", n * k)?;
        let mut se: Vec<f64> = crate::error::try_zeroed("X", n * k)?;
        if k > 0 {
            est.par_chunks_mut(PREDICT_CHUNK * k)
                .zip(se.par_chunks_mut(PREDICT_CHUNK * k))
                .zip(of_row.par_chunks(PREDICT_CHUNK))
                .for_each(|((e, s), g)| {
                    for ((e, s), &g) in e.chunks_exact_mut(k).zip(s.chunks_exact_mut(k)).zip(g) {
                        let g = g as usize;
                        e.copy_from_slice(&eu[g * k..(g + 1) * k]);
                        s.copy_from_slice(&su[g * k..(g + 1) * k]);
                    }
                });
        }
        Ok((est, se))
    }

    /// [`Forest::predict_pairs`] of the rows `rows` of `x` (`n_all x pu`), written as float32
    /// into the same rows of `est` and `se` (`n_all x k` each; other rows untouched): row
    /// `rows[i]` of each gets the float64 numbers of [`Forest::predict_pairs`] of that row,
    /// rounded to the nearest float32. `rows` must be strictly increasing (and below `n_all`),
    /// so that each output row is written once; no copy of the rows of `x` is made.
    #[allow(clippy::too_many_arguments)]
    pub fn predict_pairs_rows(
        &self,
        x: &[f64],
        n_all: usize,
        pu: usize,
        rows: &[usize],
        z: &[f64],
        k: usize,
        est: &mut [f32],
        se: &mut [f32],
        ctl: &Control,
    ) -> Result<()> {
        self.check_pairs(pu, z, k)?;
        check_len("X", x.len(), n_all * pu, "n_samples * n_user_features")?;
        check_len("est", est.len(), n_all * k, "n_samples * n_tasks")?;
        check_len("se", se.len(), n_all * k, "n_samples * n_tasks")?;
        if let Some(w) = rows.windows(2).position(|w| w[0] >= w[1]) {
            return Err(CoreError::invalid(
                "rows",
                format!(
                    "must be strictly increasing, got {} then {}",
                    rows[w],
                    rows[w + 1]
                ),
            ));
        }
        if let Some(&last) = rows.last() {
            if last >= n_all {
                return Err(CoreError::invalid(
                    "rows",
                    format!("row {last} is beyond the {n_all} rows of X"),
                ));
            }
        }
        let n = rows.len();
        if n == 0 || k == 0 {
            return Ok(());
        }
        let row = |i: usize| &x[rows[i] * pu..(rows[i] + 1) * pu];
        // the groups' numbers come as float32 (the rounding the rows get): half the bytes
        // written, then read at random by the copy to the rows
        let scored = self.pairs_scored(n, pu, row, None, z, k, true, ctl)?;
        let (e64, s64, e32, s32, of_row): (&[f64], &[f64], &[f32], &[f32], _) = match &scored {
            Scored::Rows(e, s) => (e, s, &[], &[], None),
            Scored::Groups(eu, su, of_row) => (eu, su, &[], &[], Some(of_row)),
            Scored::Groups32(eu, su, of_row) => (&[], &[], eu, su, Some(of_row)),
        };
        // the output rows of each chunk of `rows` (ascending): disjoint slices
        let mut parts = Vec::with_capacity(n.div_ceil(PREDICT_CHUNK));
        let (mut e_rest, mut s_rest) = (est, se);
        let mut done = 0;
        for (c, chunk) in rows.chunks(PREDICT_CHUNK).enumerate() {
            let (lo, hi) = (chunk[0], chunk[chunk.len() - 1] + 1);
            let (_, e_tail) = std::mem::take(&mut e_rest).split_at_mut((lo - done) * k);
            let (e_mine, e_tail) = e_tail.split_at_mut((hi - lo) * k);
            let (_, s_tail) = std::mem::take(&mut s_rest).split_at_mut((lo - done) * k);
            let (s_mine, s_tail) = s_tail.split_at_mut((hi - lo) * k);
            (e_rest, s_rest, done) = (e_tail, s_tail, hi);
            parts.push((c * PREDICT_CHUNK, chunk, e_mine, s_mine));
        }
        parts
            .into_par_iter()
            .for_each(|(first, chunk, e_out, s_out)| {
                let lo = chunk[0];
                for (i, &r) in chunk.iter().enumerate() {
                    let g = of_row.map_or(first + i, |o| o[first + i] as usize);
                    let (at, from) = ((r - lo) * k, g * k);
                    if e32.is_empty() {
                        for j in 0..k {
                            e_out[at + j] = e64[from + j] as f32;
                            s_out[at + j] = s64[from + j] as f32;
                        }
                    } else {
                        e_out[at..at + k].copy_from_slice(&e32[from..from + k]);
                        s_out[at..at + k].copy_from_slice(&s32[from..from + k]);
                    }
                }
            });
        Ok(())
    }

    fn check_pairs(&self, pu: usize, z: &[f64], k: usize) -> Result<()> {
        if self.n_treatments != 1 {
            return Err(CoreError::invalid(
                "forest",
                format!(
                    "pairs need one treatment, the forest has {}",
                    self.n_treatments
                ),
            ));
        }
        if pu == 0 || pu > self.n_features {
            return Err(CoreError::invalid(
                "X",
                format!(
                    "has {pu} features, the forest {} (at least one is the user's)",
                    self.n_features
                ),
            ));
        }
        check_len(
            "Z",
            z.len(),
            k * (self.n_features - pu),
            "n_pairs_rows * n_pair_features",
        )
    }

    /// The scores of the `n` user rows `row(i)` (`pu` wide; `contiguous`: the same rows as
    /// one `n x pu` slice, if they are) against every row of `z`: each row's `k` estimates and
    /// standard errors, or those of each group of rows no split tells apart and the group of
    /// each row ([`dedup`]).
    /// `f32_groups`: the groups scored from their codes come as [`Scored::Groups32`] (each
    /// number the float64 one rounded to the nearest float32).
    #[allow(clippy::too_many_arguments)]
    fn pairs_scored<'a>(
        &self,
        n: usize,
        pu: usize,
        row: impl Fn(usize) -> &'a [f64] + Sync,
        contiguous: Option<&[f64]>,
        z: &[f64],
        k: usize,
        f32_groups: bool,
        ctl: &Control,
    ) -> Result<Scored> {
        let pz = self.n_features - pu;
        let lay = pairs::Layout { pu, z, pz, k };
        let mut resolver = pairs::Resolver::new(&self.trees, &lay);
        // rows no split tells apart are scored once ([`dedup`]: the same numbers, bit for bit),
        // from their codes, as the splits see them (1 byte a feature, not 8), where they can
        let coder = dedup::Coder::new(&self.trees, pu).filter(|_| n > 1 && n <= u32::MAX as usize);
        let by_codes = coder
            .as_ref()
            .is_some_and(|c| c.width() > 0 && resolver.as_mut().is_some_and(|r| r.to_codes(c)));
        let score = |xs: &[f64], rows: usize| match &resolver {
            Some(r) => self.by_chunks(xs, rows, pu, k, ctl, |e, s, xs| r.add(e, s, xs, pu, k)),
            None => self.by_chunks(xs, rows, pu, k, ctl, |e, s, xs| {
                pairs::walk(&self.trees, e, s, xs, &lay)
            }),
        };
        let gather = |idx: &mut dyn Iterator<Item = usize>, len: usize| -> Result<Vec<f64>> {
            let mut xs: Vec<f64> = crate::error::try_vec("X", len * pu, 0.0)?;
            for (out, i) in xs.chunks_exact_mut(pu).zip(idx) {
                out.copy_from_slice(row(i));
            }
            Ok(xs)
        };
        let Some(coder) = coder else {
            let (e, s) = match contiguous {
                Some(xs) => score(xs, n)?,
                None => score(&gather(&mut (0..n), n)?, n)?,
            };
            return Ok(Scored::Rows(e, s));
        };
        let dedup::Groups {
            of_row,
            firsts,
            codes,
        } = dedup::group_rows(&coder, n, &row, ctl)?;
        let (u, m) = (firsts.len(), coder.width());
        let (eu, su) = if by_codes {
            let r = resolver.as_ref().expect("resolved");
            let add = |e: &mut [f64], s: &mut [f64], cs: &[u8]| r.add_codes(e, s, cs, m, k);
            if f32_groups {
                let (e, s) = self.by_chunks::<_, f32>(&codes, u, m, k, ctl, add)?;
                return Ok(Scored::Groups32(e, s, of_row));
            }
            self.by_chunks(&codes, u, m, k, ctl, add)?
        } else if u == n {
            let (e, s) = match contiguous {
                Some(xs) => score(xs, n)?,
                None => score(&gather(&mut (0..n), n)?, n)?,
            };
            return Ok(Scored::Rows(e, s));
        } else {
            let xs = gather(&mut firsts.iter().map(|&f| f as usize), u)?;
            score(&xs, u)?
        };
        Ok(Scored::Groups(eu, su, of_row))
    }

    /// Versioned state with a checksum (a flipped bit is an error, never other numbers).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::state::sealed::to_bytes(STATE_KIND, STATE_VERSION, self)
    }

    /// Reads state written by [`Forest::to_bytes`], checking every tree's structure.
    pub fn from_bytes(b: &[u8]) -> Result<Forest> {
        let f: Forest = crate::state::sealed::from_bytes(STATE_KIND, &[STATE_VERSION], b)?;
        if f.n_treatments == 0 || f.trees.is_empty() || f.importances.len() != f.n_features {
            return Err(CoreError::State("UpliftForest state is malformed".into()));
        }
        for t in &f.trees {
            t.check(f.n_features, f.n_treatments)?;
        }
        Ok(f)
    }
}

/// The number type of [`Forest::by_chunks`]' outputs: float64 (the sums are made in place) or
/// float32 (the same float64 sums in a scratch buffer, then each mean and root mean square
/// rounded to the nearest float32).
trait ChunkOut: crate::error::Zeroed + Send {
    fn fill<T>(
        e: &mut [Self],
        s: &mut [Self],
        xs: &[T],
        b: f64,
        scratch: &mut (Vec<f64>, Vec<f64>),
        add: &impl Fn(&mut [f64], &mut [f64], &[T]),
    );
}

impl ChunkOut for f64 {
    fn fill<T>(
        e: &mut [f64],
        s: &mut [f64],
        xs: &[T],
        b: f64,
        _: &mut (Vec<f64>, Vec<f64>),
        add: &impl Fn(&mut [f64], &mut [f64], &[T]),
    ) {
        add(e, s, xs);
        e.iter_mut().for_each(|v| *v /= b);
        s.iter_mut().for_each(|v| *v = (*v / b).sqrt());
    }
}

impl ChunkOut for f32 {
    fn fill<T>(
        e: &mut [f32],
        s: &mut [f32],
        xs: &[T],
        b: f64,
        (e64, s64): &mut (Vec<f64>, Vec<f64>),
        add: &impl Fn(&mut [f64], &mut [f64], &[T]),
    ) {
        e64.clear();
        e64.resize(e.len(), 0.0);
        s64.clear();
        s64.resize(s.len(), 0.0);
        add(e64, s64, xs);
        for (o, &v) in e.iter_mut().zip(e64.iter()) {
            *o = (v / b) as f32;
        }
        for (o, &v) in s.iter_mut().zip(s64.iter()) {
            *o = (v / b).sqrt() as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// y = 0.5 x1 + tau_t(x) 1[arm t] + noise, tau_1 = 1[x0 > 0] * 0.6 - 0.2, tau_2 = 0.3 x2.
    fn data(n: usize, seed: u64) -> (Vec<f64>, Vec<i64>, Vec<f64>) {
        let mut rng = crate::rng::Rng::seed_from_u64(seed);
        let p = 4;
        let mut x = vec![0.0; n * p];
        let mut t = vec![0i64; n];
        let mut y = vec![0.0; n];
        for i in 0..n {
            for f in 0..p {
                x[i * p + f] = rng.random::<f64>() * 2.0 - 1.0;
            }
            t[i] = rng.random_range(0..3);
            let tau = match t[i] {
                1 => {
                    if x[i * p] > 0.0 {
                        0.4
                    } else {
                        -0.2
                    }
                }
                2 => 0.3 * x[i * p + 2],
                _ => 0.0,
            };
            y[i] = 0.5 * x[i * p + 1] + tau + (rng.random::<f64>() - 0.5);
        }
        (x, t, y)
    }

    #[test]
    fn pairs_equal_the_stacked_rows() {
        // one treatment; the last two columns describe a "task" (5 distinct rows of z)
        let (n, pu, k) = (3000, 3, 5);
        let (x, t, y0) = data(n, 7);
        let z: Vec<f64> = (0..k).flat_map(|j| [j as f64, (j % 2) as f64]).collect();
        let mut rows = Vec::with_capacity(n * (pu + 2));
        let mut y = y0.clone();
        for i in 0..n {
            let j = i % k;
            rows.extend_from_slice(&x[i * 4..i * 4 + pu]);
            rows.extend_from_slice(&z[j * 2..j * 2 + 2]);
            if t[i] > 0 {
                y[i] += 0.3 * j as f64 - 0.5 * x[i * 4];
            }
        }
        let tr: Vec<i64> = t.iter().map(|&v| (v > 0) as i64).collect();
        let d = ForestData {
            x: &rows,
            n,
            p: pu + 2,
            treatment: &tr,
            n_treatments: 1,
            y: &y,
            w: None,
        };
        let mut prm = params();
        prm.max_features = MaxFeatures::Count(5);
        let f = fit(&d, &prm, &Control::default()).unwrap();
        assert!(
            f.importances[pu] > 0.0,
            "the trees split on the task's features"
        );
        let m = 200;
        let xu: Vec<f64> = (0..m).flat_map(|i| x[i * 4..i * 4 + pu].to_vec()).collect();
        let (pe, ps) = f
            .predict_pairs(&xu, m, pu, &z, k, &Control::default())
            .unwrap();
        let mut stacked = Vec::new();
        for i in 0..m {
            for j in 0..k {
                stacked.extend_from_slice(&xu[i * pu..(i + 1) * pu]);
                stacked.extend_from_slice(&z[j * 2..j * 2 + 2]);
            }
        }
        let (e, s) = f.predict(&stacked, m * k, &Control::default()).unwrap();
        assert_eq!(pe, e);
        assert_eq!(ps, s);
        // wrong shapes and more than one treatment are errors
        assert!(f
            .predict_pairs(&xu, m, pu + 1, &z, k, &Control::default())
            .is_err());
        let (x3, t3, y3) = data(600, 1);
        let d3 = ForestData {
            x: &x3,
            n: 600,
            p: 4,
            treatment: &t3,
            n_treatments: 2,
            y: &y3,
            w: None,
        };
        let f3 = fit(&d3, &params(), &Control::default()).unwrap();
        assert!(f3
            .predict_pairs(&x3[..8], 2, 2, &[0.0, 0.0], 1, &Control::default())
            .is_err());
    }

    fn params() -> ForestParams {
        ForestParams {
            n_estimators: 20,
            max_depth: 6,
            min_samples_leaf: 50,
            min_samples_treatment: 10,
            max_features: MaxFeatures::Count(4),
            max_bins: 32,
            honest: true,
            subsample: 0.5,
            shrinkage: 1.0,
            seed: 3,
        }
    }

    #[test]
    fn recovers_heterogeneous_effects_and_round_trips() {
        let n = 20_000;
        let (x, t, y) = data(n, 1);
        let d = ForestData {
            x: &x,
            n,
            p: 4,
            treatment: &t,
            n_treatments: 2,
            y: &y,
            w: None,
        };
        let ctl = Control::new();
        let f = fit(&d, &params(), &ctl).unwrap();
        let probe = [0.5, 0.0, 0.8, 0.0, -0.5, 0.0, -0.8, 0.0];
        let (e, s) = f.predict(&probe, 2, &ctl).unwrap();
        assert!(e[0] > 0.2 && e[2] < 0.0, "{e:?}");
        assert!(e[1] > 0.1 && e[3] < -0.1, "{e:?}");
        assert!(s.iter().all(|v| v.is_finite() && *v > 0.0));
        assert!(f.importances[0] > f.importances[1] && f.importances[2] > f.importances[3]);
        let b = f.to_bytes().unwrap();
        let g = Forest::from_bytes(&b).unwrap();
        assert_eq!(g, f);
        let mut c = b.clone();
        let k = c.len() / 2;
        c[k] ^= 4;
        assert!(Forest::from_bytes(&c).is_err());
        // Same seed: same forest; another seed: another one.
        assert_eq!(fit(&d, &params(), &ctl).unwrap(), f);
        let mut p2 = params();
        p2.seed = 4;
        assert_ne!(fit(&d, &p2, &ctl).unwrap(), f);
    }

    #[test]
    fn max_features_resolve_to_counts() {
        // grf's rule: every feature up to p = 25, then sqrt(p) + 20 (p = 100: 30, p = 400: 40)
        for (p, k) in [
            (1, 1),
            (11, 11),
            (20, 20),
            (25, 25),
            (26, 26),
            (30, 26),
            (100, 30),
            (400, 40),
        ] {
            assert_eq!(MaxFeatures::SqrtPlus20.resolve(p).unwrap(), k, "p = {p}");
        }
        assert_eq!(MaxFeatures::Sqrt.resolve(11).unwrap(), 4);
        assert_eq!(MaxFeatures::Share(0.5).resolve(11).unwrap(), 6);
        assert_eq!(MaxFeatures::Count(3).resolve(11).unwrap(), 3);
        assert!(MaxFeatures::Share(1.5).resolve(11).is_err());
        assert!(MaxFeatures::Count(12).resolve(11).is_err());
    }

    #[test]
    fn bad_parameters_name_the_argument() {
        let (x, t, y) = data(100, 2);
        let d = ForestData {
            x: &x,
            n: 100,
            p: 4,
            treatment: &t,
            n_treatments: 2,
            y: &y,
            w: None,
        };
        let ctl = Control::new();
        for (prm, arg) in [
            (
                ForestParams {
                    n_estimators: 0,
                    ..params()
                },
                "n_estimators",
            ),
            (
                ForestParams {
                    max_bins: 1,
                    ..params()
                },
                "max_bins",
            ),
            (
                ForestParams {
                    max_depth: 65,
                    ..params()
                },
                "max_depth",
            ),
            (
                ForestParams {
                    subsample: 0.0,
                    ..params()
                },
                "subsample",
            ),
            (
                ForestParams {
                    max_features: MaxFeatures::Count(5),
                    ..params()
                },
                "max_features",
            ),
        ] {
            let e = fit(&d, &prm, &ctl).unwrap_err();
            assert!(e.to_string().starts_with(arg), "{e}");
        }
        let d3 = ForestData {
            n_treatments: 3,
            ..d
        };
        let e = fit(&d3, &params(), &ctl).unwrap_err();
        assert!(e.to_string().contains("arm 3 has no rows"), "{e}");
        ctl.cancel();
        assert_eq!(fit(&d, &params(), &ctl), Err(CoreError::Cancelled));
    }
}
