//! `allocate` core (pure Rust, no PyO3 types): the conflict decision engine.
//!
//! The problem: users `i`, each with a sparse list of candidate actions (CSR: `indptr`, `action`),
//! a value per candidate (may be negative) and resource usage, either per candidate (`pair_usage`
//! columns, e.g. expected coupon cost) or per action (`action_usage`, e.g. one push slot, stored
//! once per action). Constraints: at most `L_i` actions per user, at most one action of each
//! exclusive group per user, and global resources with lower and upper bounds.
//!
//! Solvers: [`dual::solve_dual`] (Lagrangian decomposition, level bundle method on the dual,
//! certified LP gap from the aggregated primal, integer plan by repair) and [`exact::solve_exact`]
//! (the same model through good_lp: clarabel for the LP, microlp for small MIPs).

pub mod block;
pub mod dual;
pub mod exact;
pub mod generate;
pub mod kernel;
mod level;
mod master;
mod newton;
pub mod plan;
pub mod source;

use crate::control::Control;
use crate::error::{CoreError, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Developer timing trace of the solver's steps, on stderr when the environment variable
/// `GM_ALLOC_TRACE` is set (for profiling; off otherwise; read once, see [`crate::trace`]).
pub(crate) fn trace(t0: Instant, what: &str) {
    if crate::trace::alloc_trace() {
        eprintln!("[{:8.3}] {what}", t0.elapsed().as_secs_f64());
    }
}

/// Storage type of values and per-candidate usage (f32 or f64). All arithmetic is f64.
pub trait Real: Copy + Send + Sync + Into<f64> + 'static {}
impl Real for f32 {}
impl Real for f64 {}

/// Per-user limit on the number of actions.
#[derive(Clone, Copy, Debug)]
pub enum Limit<'a> {
    All(u32),
    PerUser(&'a [u32]),
}

impl Limit<'_> {
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Limit::All(l) => *l,
            Limit::PerUser(v) => v[i],
        }
    }
}

/// A borrowed allocation problem (see the module docs).
#[derive(Clone, Debug)]
pub struct Problem<'a, T: Real> {
    /// Candidate offsets per user, length `n_users + 1`, starting at 0.
    pub indptr: &'a [i64],
    /// Action of each candidate, in `0..n_actions`.
    pub action: &'a [u32],
    /// Value of each candidate.
    pub value: &'a [T],
    /// Per-candidate usage columns (each of length nnz) ...
    pub pair_usage: Vec<&'a [T]>,
    /// ... and the resource each column counts towards.
    pub pair_resource: Vec<usize>,
    /// Per-action usage, `n_actions x n_resources`, row-major.
    pub action_usage: &'a [f64],
    pub n_actions: usize,
    /// Exclusive group of each action (`-1`: none), length `n_actions`, or empty for no groups.
    pub group: &'a [i32],
    pub limit: Limit<'a>,
    /// Resource bounds (`lower` may be 0 or `-inf` for none, `upper` may be `+inf`).
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub names: Vec<String>,
}

impl<T: Real> Problem<'_, T> {
    pub fn n_users(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }
    pub fn nnz(&self) -> usize {
        self.value.len()
    }
    pub fn n_resources(&self) -> usize {
        self.lower.len()
    }
    pub fn has_groups(&self) -> bool {
        !self.group.is_empty() && self.group.iter().any(|g| *g >= 0)
    }
    /// Effective lower bound (usage is never negative, so bounds <= 0 are no constraint).
    pub fn lo(&self, r: usize) -> f64 {
        self.lower[r].max(0.0)
    }
    pub fn has_lower(&self, r: usize) -> bool {
        self.lower[r] > 0.0
    }
    pub fn has_upper(&self, r: usize) -> bool {
        self.upper[r].is_finite()
    }
    /// Usage of resource `r` by candidate `k`.
    pub fn usage_of(&self, k: usize, r: usize) -> f64 {
        let a = self.action[k] as usize;
        let mut u = self.action_usage[a * self.n_resources() + r];
        for (c, col) in self.pair_usage.iter().enumerate() {
            if self.pair_resource[c] == r {
                u += col[k].into();
            }
        }
        u
    }
    fn name(&self, r: usize) -> String {
        self.names
            .get(r)
            .cloned()
            .unwrap_or_else(|| format!("resource {r}"))
    }

    /// Checks shapes, ranges and finiteness, and bounds that make the problem trivially
    /// infeasible (`CoreError::Infeasible` naming the resource).
    pub fn validate(&self) -> Result<()> {
        let n = self.n_users();
        let nnz = self.nnz();
        let r_n = self.n_resources();
        if self.indptr.is_empty() || self.indptr[0] != 0 {
            return Err(CoreError::invalid("indptr", "must start with 0"));
        }
        if self.indptr[n] as usize != nnz || self.indptr[n] < 0 {
            return Err(CoreError::invalid(
                "indptr",
                format!(
                    "must end with the number of candidates {nnz}, found {}",
                    self.indptr[n]
                ),
            ));
        }
        if let Some(i) = first_bad_window(self.indptr) {
            return Err(CoreError::invalid(
                "indptr",
                format!("must be non-decreasing, found a decrease at position {i}"),
            ));
        }
        crate::error::check_len("action", self.action.len(), nnz, "value")?;
        let na = self.n_actions;
        if let Some(k) = first_bad(self.action, |a| (a as usize) < na) {
            return Err(CoreError::invalid(
                "action",
                format!(
                    "must be in 0..{}, found {} at position {k}",
                    self.n_actions, self.action[k]
                ),
            ));
        }
        if let Some((i, a)) = first_duplicate(self.indptr, self.action) {
            return Err(CoreError::invalid(
                "action",
                format!(
                    "user {i} has action {a} more than once (each (user, action) candidate must \
                     be unique: merge or drop the duplicates)"
                ),
            ));
        }
        if let Some(k) = first_bad(self.value, |v| v.into().is_finite()) {
            return Err(CoreError::invalid(
                "value",
                format!(
                    "must be finite, found {} at position {k}",
                    (self.value[k]).into()
                ),
            ));
        }
        // Magnitudes the float64 sums of every method can hold (with room for prices).
        let most = self
            .value
            .par_chunks(CHECK_BLOCK)
            .map(|c| {
                c.iter()
                    .fold(0.0f64, |m, &v| m.max(Into::<f64>::into(v).abs()))
            })
            .reduce(|| 0.0, f64::max);
        if most * nnz as f64 > MAX_TOTAL {
            return Err(CoreError::invalid(
                "value",
                format!(
                    "values up to {most:e} over {nnz} candidates could overflow the sums (the \
                     largest |value| times the number of candidates must be at most \
                     {MAX_TOTAL:e}): rescale the values"
                ),
            ));
        }
        if self.pair_usage.len() != self.pair_resource.len() {
            return Err(CoreError::invalid(
                "usage",
                "one resource index per usage column is needed",
            ));
        }
        for (c, col) in self.pair_usage.iter().enumerate() {
            let r = self.pair_resource[c];
            if r >= r_n {
                return Err(CoreError::invalid(
                    "usage",
                    format!("column {c} refers to unknown resource {r}"),
                ));
            }
            let name = format!("usage[{}]", self.name(r));
            crate::error::check_len(&name, col.len(), nnz, "value")?;
            if let Some(k) = first_bad(col, |u| {
                let u: f64 = u.into();
                u.is_finite() & (u >= 0.0)
            }) {
                return Err(CoreError::invalid(
                    name,
                    format!(
                        "must be finite and >= 0, found {} at position {k}",
                        col[k].into()
                    ),
                ));
            }
        }
        crate::error::check_len(
            "action_usage",
            self.action_usage.len(),
            self.n_actions * r_n,
            "n_actions x n_resources",
        )?;
        if let Some(x) = self
            .action_usage
            .iter()
            .position(|u| !(u.is_finite() && *u >= 0.0))
        {
            return Err(CoreError::invalid(
                format!("action_usage[{}]", self.name(x % r_n.max(1))),
                format!(
                    "must be finite and >= 0, found {} for action {}",
                    self.action_usage[x],
                    x / r_n.max(1)
                ),
            ));
        }
        if !self.group.is_empty() {
            crate::error::check_len("groups", self.group.len(), self.n_actions, "the actions")?;
            if let Some(a) = self.group.iter().position(|g| *g < -1) {
                return Err(CoreError::invalid(
                    "groups",
                    format!("must be >= -1, found {} for action {a}", self.group[a]),
                ));
            }
        }
        if let Limit::PerUser(l) = self.limit {
            crate::error::check_len("per_user_limit", l.len(), n, "the users")?;
        }
        crate::error::check_len("upper", self.upper.len(), r_n, "lower")?;
        for r in 0..r_n {
            let (lo, hi) = (self.lower[r], self.upper[r]);
            if lo.is_nan() || hi.is_nan() || lo == f64::INFINITY || hi == f64::NEG_INFINITY {
                return Err(CoreError::invalid(
                    format!("resources[{:?}]", self.name(r)),
                    format!("bounds must be numbers with lower < inf and upper > -inf, found ({lo}, {hi})"),
                ));
            }
            if lo > hi {
                return Err(CoreError::Infeasible(format!(
                    "resource {:?}: lower bound {lo} exceeds upper bound {hi}",
                    self.name(r)
                )));
            }
            if hi < 0.0 {
                return Err(CoreError::Infeasible(format!(
                    "resource {:?}: upper bound {hi} is negative but usage is never negative",
                    self.name(r)
                )));
            }
        }
        // Lower bounds above what any plan can reach (ignoring the other resources).
        let lowers: Vec<usize> = (0..r_n).filter(|r| self.has_lower(*r)).collect();
        if !lowers.is_empty() {
            for &r in &lowers {
                // The most each user can use (its `L_i` largest uses), summed per fixed chunk
                // of users in chunk order (deterministic).
                let parts: Vec<f64> = (0..n.div_ceil(4096))
                    .into_par_iter()
                    .map_init(Vec::new, |buf: &mut Vec<f64>, c| {
                        let mut total = 0.0;
                        for i in c * 4096..((c + 1) * 4096).min(n) {
                            let (s, e) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
                            let l = self.limit.get(i) as usize;
                            buf.clear();
                            buf.extend((s..e).map(|k| self.usage_of(k, r)));
                            if l < buf.len() {
                                buf.select_nth_unstable_by(l, |a, b| b.total_cmp(a));
                            }
                            total += buf.iter().take(l).sum::<f64>();
                        }
                        total
                    })
                    .collect();
                let total: f64 = parts.iter().sum();
                if total < self.lower[r] {
                    return Err(CoreError::Infeasible(format!(
                        "resource {:?}: lower bound {} exceeds the most any plan can use ({total})",
                        self.name(r),
                        self.lower[r]
                    )));
                }
            }
        }
        Ok(())
    }
}

const CHECK_BLOCK: usize = 1 << 16;

/// The largest total a problem's values may reach (largest |value| times the candidates): far
/// below `f64::MAX`, so that no sum of values, reduced values or priced bounds overflows.
pub const MAX_TOTAL: f64 = 1e300;

/// Index of the first element of `xs` that is not `ok`, checked in parallel over fixed blocks
/// (each block by a branch-free fold, which vectorises; positions only in a failing block).
fn first_bad<T: Copy + Sync>(xs: &[T], ok: impl Fn(T) -> bool + Sync) -> Option<usize> {
    xs.par_chunks(CHECK_BLOCK)
        .enumerate()
        .find_map_first(|(b, c)| {
            if c.iter().fold(true, |acc, &x| acc & ok(x)) {
                None
            } else {
                c.iter().position(|&x| !ok(x)).map(|k| b * CHECK_BLOCK + k)
            }
        })
}

/// The first user (in user order) with an action among its candidates twice, and that action.
/// Users whose actions are strictly increasing (the common case) are checked without sorting.
/// `indptr` must be validated (non-decreasing, within `action`).
fn first_duplicate(indptr: &[i64], action: &[u32]) -> Option<(usize, u32)> {
    let n = indptr.len().saturating_sub(1);
    (0..n.div_ceil(kernel::USERS_PER_CHUNK))
        .into_par_iter()
        .find_map_first(|c| {
            let mut buf: Vec<u32> = Vec::new();
            let users = c * kernel::USERS_PER_CHUNK..((c + 1) * kernel::USERS_PER_CHUNK).min(n);
            users.into_iter().find_map(|i| {
                let acts = &action[indptr[i] as usize..indptr[i + 1] as usize];
                if acts.windows(2).all(|w| w[0] < w[1]) {
                    return None;
                }
                buf.clear();
                buf.extend_from_slice(acts);
                buf.sort_unstable();
                buf.windows(2).find(|w| w[0] == w[1]).map(|w| (i, w[0]))
            })
        })
}

/// Position of the first decrease in `xs` (`xs[i + 1] < xs[i]`).
fn first_bad_window(xs: &[i64]) -> Option<usize> {
    let n = xs.len().saturating_sub(1);
    (0..n.div_ceil(CHECK_BLOCK))
        .into_par_iter()
        .find_map_first(|b| {
            let w = &xs[b * CHECK_BLOCK..((b + 1) * CHECK_BLOCK).min(n) + 1];
            if w.windows(2).fold(true, |acc, w| acc & (w[1] >= w[0])) {
                None
            } else {
                w.windows(2)
                    .position(|w| w[1] < w[0])
                    .map(|i| b * CHECK_BLOCK + i)
            }
        })
}

/// The user of each candidate in `chosen` (ascending candidate indices), in parallel.
pub fn users_of(indptr: &[i64], chosen: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; chosen.len()];
    out.par_chunks_mut(CHECK_BLOCK)
        .zip(chosen.par_chunks(CHECK_BLOCK))
        .for_each(|(o, c)| {
            let Some(&first) = c.first() else { return };
            let mut i = indptr.partition_point(|&x| x as u64 <= first) - 1;
            for (o, &k) in o.iter_mut().zip(c) {
                while indptr[i + 1] as u64 <= k {
                    i += 1;
                }
                *o = i as u64;
            }
        });
    out
}

/// How a solve ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Integer plan within `tol` of the dual bound (relative gap).
    Optimal,
    /// Feasible integer plan; the LP relaxation is solved to `tol` but the plan's gap is larger
    /// (integrality gap on small instances).
    Feasible,
    /// Stopped by the time limit: best plan and bound so far.
    TimeLimit,
    /// Stopped by the iteration limit: best plan and bound so far.
    IterationLimit,
    /// No feasible plan: `message` names the constraints.
    Infeasible,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Optimal => "optimal",
            Status::Feasible => "feasible",
            Status::TimeLimit => "time_limit",
            Status::IterationLimit => "iteration_limit",
            Status::Infeasible => "infeasible",
        }
    }
}

/// One row of the solver's history.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistoryRow {
    /// 0: sample phase (prices from a subsample of users), 1: full problem, 2: exact solver.
    pub phase: u8,
    pub iteration: usize,
    /// Dual function at this iterate (an upper bound of the LP optimum; on the sample phase, of
    /// the sample problem).
    pub dual: f64,
    /// Best dual bound so far.
    pub bound: f64,
    /// Best certified primal LP value so far (`-inf` before one exists).
    pub lp_value: f64,
    /// Value of the users' choices at this iterate (ignoring the resources).
    pub value: f64,
    /// Largest violation of a resource bound by those choices, relative to the bound.
    pub max_violation: f64,
    pub seconds: f64,
}

/// What a solver returns.
#[derive(Clone, Debug)]
pub struct Solved {
    /// Indices of the chosen candidates (the integer plan), ascending.
    pub chosen: Vec<u64>,
    /// The user of each chosen candidate.
    pub chosen_user: Vec<u64>,
    pub objective: f64,
    /// Upper bound on the LP optimum (hence on every plan's value).
    pub dual_bound: f64,
    /// Certified value of a feasible fractional plan (lower bound of the LP optimum).
    pub lp_value: f64,
    /// Resource use of the integer plan.
    pub usage: Vec<f64>,
    /// Shadow prices (per unit of each resource; negative for binding lower bounds).
    pub prices: Vec<f64>,
    pub status: Status,
    pub message: String,
    pub history: Vec<HistoryRow>,
    /// Full passes over the users (sample passes are counted in `history`).
    pub passes: usize,
}

/// Options of the dual solver.
#[derive(Clone, Debug)]
pub struct DualOptions {
    pub tol: f64,
    pub max_iter: usize,
    /// Starting prices (e.g. from yesterday's solution).
    pub warm_start: Option<Vec<f64>>,
    /// Estimate prices on a subsample of users first (used when there are many users), then take
    /// Newton steps on the full problem.
    pub sample: bool,
    /// Fewest users for the sample and Newton phases.
    pub sample_min_users: usize,
    pub seed: u64,
}

impl Default for DualOptions {
    fn default() -> Self {
        DualOptions {
            tol: 1e-4,
            max_iter: 500,
            warm_start: None,
            sample: true,
            sample_min_users: 100_000,
            seed: 0,
        }
    }
}

/// Resource use and value of a set of chosen candidates.
pub fn evaluate<T: Real>(p: &Problem<'_, T>, chosen: &[u64]) -> (f64, Vec<f64>) {
    let mut usage = vec![0.0; p.n_resources()];
    let mut value = 0.0;
    for &k in chosen {
        let k = k as usize;
        value += p.value[k].into();
        for (r, u) in usage.iter_mut().enumerate() {
            *u += p.usage_of(k, r);
        }
    }
    (value, usage)
}

/// The prices `q` projected on those the bounds allow: positive only where a resource has an
/// upper bound, negative only where it has a (positive) lower bound, 0 where not finite.
pub fn project_prices<T: Real>(p: &Problem<'_, T>, q: &[f64]) -> Vec<f64> {
    (0..p.n_resources())
        .map(|r| {
            let x = q.get(r).copied().unwrap_or(0.0);
            if !x.is_finite() || (x > 0.0 && !p.has_upper(r)) || (x < 0.0 && !p.has_lower(r)) {
                0.0
            } else {
                x
            }
        })
        .collect()
}

/// A certified upper bound on the LP optimum (hence on every plan's value) from any prices `q`:
/// the Lagrangian dual function `sum_i max_S sum_{k in S} (v_k - q . u_k) + sum_r phi_r(q_r)`
/// (`phi_r = q_r upper_r` for `q_r > 0`, `q_r lower_r` for `q_r < 0`) at `q` projected by
/// [`project_prices`]. Weak duality makes it a bound whatever the prices are (from a solver that
/// stopped early, or none: `q = 0` gives the unconstrained optimum); the per-user maxima are
/// exact (see `kernel`). Not finite if the sums overflow.
pub fn certified_bound<T: Real>(p: &Problem<'_, T>, q: &[f64], ctl: &Control) -> Result<f64> {
    let q = project_prices(p, q);
    let lsum = kernel::pass(
        p,
        &kernel::Prices::new(p, &q),
        kernel::Users::All(p.n_users()),
        ctl,
    )?
    .lsum;
    let phi: f64 = q
        .iter()
        .enumerate()
        .map(|(r, &x)| {
            if x > 0.0 {
                x * p.upper[r]
            } else if x < 0.0 {
                x * p.lo(r)
            } else {
                0.0
            }
        })
        .sum();
    Ok(lsum + phi)
}

/// Checks every per-user and group limit of a plan; `Err` names the first broken one.
pub fn check_plan<T: Real>(p: &Problem<'_, T>, chosen: &[u64]) -> std::result::Result<(), String> {
    let mut user = 0usize;
    let mut count = 0u32;
    let mut groups: Vec<i32> = Vec::new();
    for w in chosen.windows(2) {
        if w[1] <= w[0] {
            return Err("chosen indices not strictly increasing".into());
        }
    }
    for &k in chosen {
        let k = k as usize;
        if k >= p.nnz() {
            return Err(format!("candidate {k} out of range"));
        }
        while p.indptr[user + 1] as usize <= k {
            user += 1;
            count = 0;
            groups.clear();
        }
        count += 1;
        if count > p.limit.get(user) {
            return Err(format!("user {user} gets more than its limit"));
        }
        if !p.group.is_empty() {
            let g = p.group[p.action[k] as usize];
            if g >= 0 {
                if groups.contains(&g) {
                    return Err(format!("user {user} gets two actions of group {g}"));
                }
                groups.push(g);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
