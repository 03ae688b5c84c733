//! Where the users live, as the dual solver sees them.
//!
//! The solver ([`super::dual::solve_with`]) touches the users' candidates only through a
//! [`Source`]: passes at given prices (sums over the users), a pass that also estimates the
//! Jacobian, a subsample copied out, and the integer plan at the final prices. [`Local`] is the
//! problem in this process; a source over blocks of users held elsewhere (executors of a
//! cluster, each running the same kernels on its block) gives the same solver without a second
//! implementation: the driver's part (prices, level method, Newton steps, certificate) runs on
//! the summed results.

use super::kernel::{pass_jacobian, pass_multi, JacobianPass, PassOut, Prices, Users};
use super::plan::{Finish, Plan};
use super::{Limit, Problem, Real};
use crate::control::Control;
use crate::error::Result;

/// What the solver asks of the source for the integer plan.
#[derive(Clone, Debug)]
pub struct PlanRequest<'a> {
    /// Price vectors of the rounding: user `i` takes its choice at `mix[j]`, `j` drawn by the
    /// cumulative weights `cum` from a hash of `i` and `seed` (see `kernel::assign`).
    pub mix: &'a [Vec<f64>],
    pub cum: &'a [f64],
    /// Prices of the repair (reduced values).
    pub q: &'a [f64],
    pub finish: Finish,
    /// The choices of the last Jacobian pass are the users' choices at `mix[0]` (the source may
    /// reuse them instead of a pass).
    pub last_choices: bool,
    pub seed: u64,
}

/// The users' candidates, reached through passes (see the module docs).
pub trait Source<T: Real> {
    fn n_users(&self) -> usize;
    /// One pass at each price vector of `qs` (`kernel::pass_multi`), in that order.
    fn pass(&mut self, qs: &[Vec<f64>], ctl: &Control) -> Result<Vec<PassOut>>;
    /// A pass at `q` estimating the Jacobian with bandwidth `h` (`kernel::pass_jacobian`).
    fn pass_jacobian(&mut self, q: &[f64], h: f64, ctl: &Control) -> Result<JacobianPass>;
    /// The users `i` with `mix64(i ^ key) % stride == 0`, copied out, in ascending order.
    fn sample(&mut self, key: u64, stride: u64, ctl: &Control) -> Result<SubProblem<T>>;
    /// The integer plan (see `plan::Plan::build`); `chosen` may be empty when the plan stays
    /// with the source (then `objective` and `usage` describe it).
    fn plan(&mut self, req: &PlanRequest<'_>, ctl: &Control) -> Result<Plan>;
}

/// The users of a problem in this process.
pub struct Local<'p, 'a, T: Real> {
    p: &'p Problem<'a, T>,
    /// Choices of the last Jacobian pass.
    flags: Option<Vec<u8>>,
}

impl<'p, 'a, T: Real> Local<'p, 'a, T> {
    pub fn new(p: &'p Problem<'a, T>) -> Self {
        Local { p, flags: None }
    }
}

impl<T: Real> Source<T> for Local<'_, '_, T> {
    fn n_users(&self) -> usize {
        self.p.n_users()
    }

    fn pass(&mut self, qs: &[Vec<f64>], ctl: &Control) -> Result<Vec<PassOut>> {
        let prs: Vec<Prices> = qs.iter().map(|q| Prices::new(self.p, q)).collect();
        pass_multi(self.p, &prs, Users::All(self.p.n_users()), ctl)
    }

    fn pass_jacobian(&mut self, q: &[f64], h: f64, ctl: &Control) -> Result<JacobianPass> {
        let mut flags = self.flags.take().unwrap_or_else(|| vec![0u8; self.p.nnz()]);
        let jp = pass_jacobian(self.p, &Prices::new(self.p, q), h, Some(&mut flags), ctl)?;
        self.flags = Some(flags);
        Ok(jp)
    }

    fn sample(&mut self, key: u64, stride: u64, _ctl: &Control) -> Result<SubProblem<T>> {
        let sample = super::block::sample_users(self.p.n_users(), 0, key, stride);
        Ok(SubProblem::gather(self.p, &sample))
    }

    fn plan(&mut self, req: &PlanRequest<'_>, ctl: &Control) -> Result<Plan> {
        let choices = if req.last_choices {
            self.flags.take()
        } else {
            None
        };
        let mix: Vec<Prices> = req.mix.iter().map(|q| Prices::new(self.p, q)).collect();
        Plan::build(
            self.p,
            choices,
            &mix,
            req.cum,
            &Prices::new(self.p, req.q),
            req.finish,
            req.seed,
            ctl,
        )
    }
}

/// A subset of the users' data, owned and contiguous.
pub struct SubProblem<T: Real> {
    pub indptr: Vec<i64>,
    pub action: Vec<u32>,
    pub value: Vec<T>,
    /// Per-candidate usage columns (as `Problem::pair_usage`).
    pub pair: Vec<Vec<T>>,
    /// Per-user limits, or `None` for the problem's common limit.
    pub limit: Option<Vec<u32>>,
}

impl<T: Real> SubProblem<T> {
    /// The users `users` of `p`, copied together.
    pub fn gather(p: &Problem<'_, T>, users: &[u32]) -> Self {
        let mut indptr = Vec::with_capacity(users.len() + 1);
        indptr.push(0i64);
        let mut len = 0i64;
        for &i in users {
            let i = i as usize;
            len += p.indptr[i + 1] - p.indptr[i];
            indptr.push(len);
        }
        let ranges = || {
            users
                .iter()
                .map(|&i| p.indptr[i as usize] as usize..p.indptr[i as usize + 1] as usize)
        };
        let copy = |src: &[T]| -> Vec<T> {
            let mut v = Vec::with_capacity(len as usize);
            for r in ranges() {
                v.extend_from_slice(&src[r]);
            }
            v
        };
        let mut action = Vec::with_capacity(len as usize);
        for r in ranges() {
            action.extend_from_slice(&p.action[r]);
        }
        let limit = match p.limit {
            Limit::All(_) => None,
            Limit::PerUser(l) => Some(users.iter().map(|&i| l[i as usize]).collect()),
        };
        SubProblem {
            indptr,
            action,
            value: copy(p.value),
            pair: p.pair_usage.iter().map(|c| copy(c)).collect(),
            limit,
        }
    }

    /// A problem over these users with the resources, actions and bounds of `p`.
    pub fn problem<'a>(&'a self, p: &Problem<'a, T>) -> Problem<'a, T> {
        Problem {
            indptr: &self.indptr,
            action: &self.action,
            value: &self.value,
            pair_usage: self.pair.iter().map(|c| c.as_slice()).collect(),
            pair_resource: p.pair_resource.clone(),
            action_usage: p.action_usage,
            n_actions: p.n_actions,
            group: p.group,
            limit: match &self.limit {
                Some(l) => Limit::PerUser(l),
                None => p.limit,
            },
            lower: p.lower.clone(),
            upper: p.upper.clone(),
            names: p.names.clone(),
        }
    }
}
