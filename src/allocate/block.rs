//! Kernels for a block of users held apart from the solver (an executor's share of a problem
//! partitioned by user): the choices at given prices, how close each user is to changing them,
//! the plan's value and use, and the subsample. The solver's side is a
//! [`super::source::Source`] whose passes sum these over the blocks; the integer plan is
//! finished by gathering the users closest to changing their choice (see [`margins`]) and
//! repairing them with the others held fixed ([`finish`]).

use super::kernel::{assign, reduced, Prices, USERS_PER_CHUNK};
use super::plan::{plan_usage, Finish, Plan};
use super::source::SubProblem;
use super::{Problem, Real};
use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::rng::mix64;
use rayon::prelude::*;

/// The users `i` of a block whose index among all users (`first + i`) has
/// `mix64(index ^ key) % stride == 0`: the subsample of the dual solver.
pub fn sample_users(n: usize, first: u64, key: u64, stride: u64) -> Vec<u32> {
    (0..n as u32)
        .into_par_iter()
        .with_min_len(USERS_PER_CHUNK)
        .filter(|&i| mix64((first + i as u64) ^ key) % stride == 0)
        .collect()
}

/// The users' choices (one flag per candidate): user `i` takes its choice at one of the price
/// vectors `mix` drawn by `cum` (see [`assign`]); `first` is the block's first user index.
pub fn choices<T: Real>(
    p: &Problem<'_, T>,
    mix: &[Vec<f64>],
    cum: &[f64],
    seed: u64,
    first: u64,
    ctl: &Control,
) -> Result<Vec<u8>> {
    let prs: Vec<Prices> = mix.iter().map(|q| Prices::new(p, q)).collect();
    assign(p, &prs, cum, seed, first, ctl)
}

/// Per user, how far (in reduced value at prices `q`) its choice in `flags` is from changing:
/// the smallest of the margin of its weakest chosen candidate over the best unchosen
/// alternative (or over dropping it) and, with a free slot, the reduced value the best
/// unchosen candidate lacks to be taken. Negative when the choice is not the best at `q` (a rounding took other prices);
/// `+inf` for a user without candidates. The users a small price change moves come first.
pub fn margins<T: Real>(p: &Problem<'_, T>, q: &[f64], flags: &[u8]) -> Vec<f64> {
    let pr = Prices::new(p, q);
    (0..p.n_users())
        .into_par_iter()
        .with_min_len(USERS_PER_CHUNK)
        .map(|i| {
            let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
            let mut worst_on = f64::INFINITY;
            let mut best_off = f64::NEG_INFINITY;
            let mut taken = 0u32;
            for (k, &f) in flags.iter().enumerate().take(e).skip(s) {
                let r = reduced(p, &pr, k);
                if f != 0 {
                    worst_on = worst_on.min(r);
                    taken += 1;
                } else {
                    best_off = best_off.max(r);
                }
            }
            // Replacing (or dropping) the weakest chosen candidate, and taking the best
            // unchosen one into a free slot.
            let swap = worst_on - best_off.max(0.0);
            let add = if taken < p.limit.get(i) {
                -best_off
            } else {
                f64::INFINITY
            };
            swap.min(add)
        })
        .collect()
}

/// The value and resource use of the plan in `flags`.
pub fn value_usage<T: Real>(p: &Problem<'_, T>, flags: &[u8]) -> (f64, Vec<f64>) {
    let value = flags
        .par_chunks(1 << 16)
        .enumerate()
        .map(|(c, f)| {
            f.iter()
                .enumerate()
                .filter(|(_, x)| **x != 0)
                .map(|(j, _)| p.value[(c << 16) + j].into())
                .sum::<f64>()
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    (value, plan_usage(p, flags))
}

/// Repairs (and, for [`Finish::Full`], fills) the choices `flags` of the gathered users in `p`,
/// whose bounds are what the other users' fixed choices leave (see `plan::Plan::build`).
pub fn finish<T: Real>(
    p: &Problem<'_, T>,
    flags: Vec<u8>,
    q: &[f64],
    how: Finish,
    seed: u64,
    ctl: &Control,
) -> Result<Plan> {
    let pr = Prices::new(p, q);
    Plan::build(
        p,
        Some(flags),
        std::slice::from_ref(&pr),
        &[1.0],
        &pr,
        how,
        seed,
        ctl,
    )
}

/// The users with margin (see [`margins`]) at most `threshold`, copied out with their choices
/// in `flags` (concatenated in user order): `(users, their data, their flags)`.
pub fn gather<T: Real>(
    p: &Problem<'_, T>,
    flags: &[u8],
    margin: &[f64],
    threshold: f64,
) -> (Vec<u32>, SubProblem<T>, Vec<u8>) {
    let ids: Vec<u32> = (0..margin.len() as u32)
        .filter(|&i| margin[i as usize] <= threshold)
        .collect();
    let sub = SubProblem::gather(p, &ids);
    let mut f = Vec::with_capacity(sub.action.len());
    for &i in &ids {
        let (s, e) = (
            p.indptr[i as usize] as usize,
            p.indptr[i as usize + 1] as usize,
        );
        f.extend_from_slice(&flags[s..e]);
    }
    (ids, sub, f)
}

/// Positions of the chosen candidates of `flags` once the users `users` (ascending user
/// indices among all users; the block starts at `first`) take the flags `over` instead
/// (concatenated in that order).
pub fn chosen_with<T: Real>(
    p: &Problem<'_, T>,
    mut flags: Vec<u8>,
    first: u64,
    users: &[u64],
    over: &[u8],
) -> Result<Vec<u64>> {
    let n = p.n_users() as u64;
    if users.windows(2).any(|w| w[0] >= w[1]) {
        return Err(CoreError::invalid("users", "must be strictly ascending"));
    }
    let mut need = 0usize;
    for &u in users {
        if u < first || u >= first + n {
            return Err(CoreError::invalid(
                "users",
                format!("{u} is not in this block ({first}..{})", first + n),
            ));
        }
        let i = (u - first) as usize;
        need += (p.indptr[i + 1] - p.indptr[i]) as usize;
    }
    if need != over.len() {
        return Err(CoreError::invalid(
            "flags",
            format!(
                "the users' candidates number {need}, got {} flags",
                over.len()
            ),
        ));
    }
    let mut at = 0usize;
    for &u in users {
        let i = (u - first) as usize;
        let (s, e) = (p.indptr[i] as usize, p.indptr[i + 1] as usize);
        flags[s..e].copy_from_slice(&over[at..at + e - s]);
        at += e - s;
    }
    Ok(flags
        .iter()
        .enumerate()
        .filter(|(_, f)| **f != 0)
        .map(|(k, _)| k as u64)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocate::generate::{random, Spec};

    #[test]
    fn blocks_draw_as_the_whole() {
        let inst = random(
            &Spec {
                n_users: 9000,
                per_user: 10,
                n_actions: 30,
                n_pair: 2,
                n_action_res: 3,
                n_groups: 4,
                limit: 2,
                tight_lo: 0.3,
                tight_hi: 0.9,
                seed: 5,
            },
            &Control::new(),
        )
        .unwrap();
        let p = inst.problem(1);
        let ctl = Control::new();
        let q = vec![0.01; p.n_resources()];
        let mix = vec![q.clone(), vec![0.02; p.n_resources()]];
        let whole = choices(&p, &mix, &[0.4, 1.0], 7, 0, &ctl).unwrap();
        let ids: Vec<u32> = (5000..9000).collect();
        let sub = SubProblem::gather(&p, &ids);
        let part = choices(&sub.problem(&p), &mix, &[0.4, 1.0], 7, 5000, &ctl).unwrap();
        let off = p.indptr[5000] as usize;
        assert_eq!(&whole[off..], &part[..]);
        assert_eq!(
            sample_users(9000, 0, 3, 7)
                .into_iter()
                .filter(|&i| i >= 5000)
                .map(|i| i - 5000)
                .collect::<Vec<_>>(),
            sample_users(4000, 5000, 3, 7)
        );
        // At one price vector the choices are the best there: no margin is negative; under a
        // rounding over two price vectors some users hold a choice that is not.
        let at_q = choices(&p, std::slice::from_ref(&q), &[1.0], 7, 0, &ctl).unwrap();
        let m = margins(&p, &q, &at_q);
        assert_eq!(m.len(), p.n_users());
        assert!(
            m.iter().all(|x| *x >= -1e-12),
            "{:?}",
            m.iter().cloned().fold(0.0, f64::min)
        );
        assert!(margins(&p, &q, &whole).iter().any(|x| *x < -1e-9));
    }
}
