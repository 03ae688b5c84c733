//! Cell uplift: the difference in means per (group, treatment), shrunk toward coarser groups.
//!
//! **Groups.** `groups` is an `n x L` matrix of integer codes, finest level first (column 0, e.g.
//! cell), coarsest last (e.g. lifecycle stage), with an implicit global level above. Level `l`'s
//! group of a row is the combination of its codes at levels `l..L`, so the hierarchy is nested
//! even when the columns are not (a cell that spans two clusters gives one group per cluster; with
//! nested columns this is just the column's code). Group ids are the ranks of the keys
//! `code * n_parent_groups + parent_id`, so they do not depend on the order of the rows.
//!
//! **One pass.** Per finest group and arm the weighted sums (rows, Σw, Σw², Σwy, Σwy²) are added
//! over fixed chunks of rows (in parallel, merged in chunk order: the same bits for any thread
//! count); coarser groups add their children's sums.
//!
//! **Shrinkage** (parametric empirical Bayes, Morris 1983, "Parametric empirical Bayes inference:
//! theory and applications", JASA), top down from the global effect: a group's raw difference in
//! means `raw_g` (sampling variance `s_g^2`, effective size `n_g`; arms with fewer than
//! `min_count` rows give no raw estimate and the parent's effect is kept) is shrunk toward its
//! parent's estimate, `w_g raw_g + (1 - w_g) parent_g` with `w_g = n_g / (n_g + k)`
//! ([`super::shrink`]). `k` is given (`prior_strength`) or estimated per level and treatment by
//! the method of moments: the between-group variance of the effects around their parents
//! `tau^2 = max(0, mean_g (raw_g - parent_g)^2 - mean_g s_g^2)` and the variance of one row of the
//! difference `sigma^2 = mean_g n_g s_g^2` give `k = sigma^2 / tau^2`, so that
//! `w_g = tau^2 / (tau^2 + s_g^2)` is the James-Stein / Morris weight (no between-group variance:
//! every group takes its parent's effect; fewer than two groups with a raw estimate: likewise).
//! The standard error is the posterior one of [`super::shrink`].
//!
//! **Prediction** looks a row's groups up from the coarsest level down and returns the estimate of
//! the finest group seen in the fit; an unseen code falls back to the last level found (the global
//! effect if even the coarsest code is new).

use super::{
    arms_of, check_arms, global_effects, raw_effect, shrink, smoothed_var, ArmSums, Effect,
};
use crate::control::{par_map_checked, par_sort_checked, Control};
use crate::error::{check_finite, check_len, try_vec, try_zeroed_rows, CoreError, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// Largest group code (codes are 0..2^31).
pub const MAX_CODE: i64 = i32::MAX as i64;

/// Fit data: `groups` row-major `n x levels`.
pub struct CellData<'a> {
    pub groups: &'a [i64],
    pub n: usize,
    pub levels: usize,
    pub treatment: &'a [i64],
    pub n_treatments: usize,
    pub y: &'a [f64],
    pub w: Option<&'a [f64]>,
}

#[derive(Clone, Debug)]
pub struct CellParams {
    /// `None`: estimated per level and treatment (method of moments); else `k` in rows.
    pub prior_strength: Option<f64>,
    /// Rows needed in both the treated and the control arm of a group for a raw estimate.
    pub min_count: usize,
}

/// One level of the hierarchy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// Sorted keys `code * n_parent + parent_id` of the groups seen; a group's id is its rank.
    pub keys: Vec<u64>,
    /// Groups of the level above (1 for the coarsest level: the global group).
    pub n_parent: u64,
    /// Per group: rows, and the estimate and standard error `[g * T + (t - 1)]`.
    pub rows: Vec<f64>,
    pub est: Vec<f64>,
    pub se: Vec<f64>,
    /// Prior strength `k` used per treatment; `None`: infinite (no between-group variance, every
    /// group takes its parent's effect). Infinity has no JSON form, hence the option.
    pub k: Vec<Option<f64>>,
}

const STATE_KIND: &str = "planning.CellUplift";
const STATE_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellModel {
    pub n_treatments: usize,
    pub global: Vec<Effect>,
    /// Finest first (level 0 = column 0 of `groups`).
    pub levels: Vec<Level>,
}

/// Rows or groups between two checks of Ctrl-C in the sequential loops.
const CHECK_EVERY: usize = 1 << 16;

/// Per level: the sorted keys and each row's group id.
fn factorize(
    codes: impl Fn(usize) -> i64 + Sync,
    parent: &[u32],
    n_parent: u64,
    n: usize,
    ctl: &Control,
) -> Result<(Vec<u64>, Vec<u32>)> {
    let key = |i: usize| codes(i) as u64 * n_parent + parent[i] as u64;
    let max_code = (0..n).into_par_iter().map(&codes).max().unwrap_or(0) as u64;
    let space = (max_code + 1).saturating_mul(n_parent);
    ctl.check()?;
    if space <= (2 * n as u64).clamp(1 << 16, 1 << 27) {
        let seen: Vec<AtomicBool> = (0..space).map(|_| AtomicBool::new(false)).collect();
        (0..n).into_par_iter().with_min_len(1 << 14).for_each(|i| {
            seen[key(i) as usize].store(true, Ordering::Relaxed);
        });
        ctl.check()?;
        let mut map = vec![u32::MAX; space as usize];
        let mut keys = Vec::new();
        for (k, s) in seen.iter().enumerate() {
            if k % CHECK_EVERY == 0 {
                ctl.check()?;
            }
            if s.load(Ordering::Relaxed) {
                map[k] = keys.len() as u32;
                keys.push(k as u64);
            }
        }
        let ids = par_map_checked(n, ctl, |i| map[key(i) as usize])?;
        Ok((keys, ids))
    } else {
        let mut keys: Vec<u64> = par_map_checked(n, ctl, key)?;
        par_sort_checked(&mut keys, |a, b| a.cmp(b), ctl)?;
        keys.dedup();
        let ids = par_map_checked(n, ctl, |i| {
            keys.binary_search(&key(i)).expect("key seen") as u32
        })?;
        Ok((keys, ids))
    }
}

/// Per-(group, arm) sums over fixed chunks of rows, merged in chunk order.
fn accumulate(
    ids: &[u32],
    arm: &[u8],
    y: &[f64],
    w: Option<&[f64]>,
    n_groups: usize,
    arms: usize,
    ctl: &Control,
) -> Result<Vec<ArmSums>> {
    let n = ids.len();
    let size = n_groups * arms;
    let chunk = (1usize << 20).max(8 * size);
    let n_chunks = n.div_ceil(chunk).max(1);
    const ROUND: usize = 4;
    let mut total = vec![ArmSums::default(); size];
    for r in (0..n_chunks).step_by(ROUND) {
        ctl.check()?;
        let parts: Vec<Vec<ArmSums>> = (r..(r + ROUND).min(n_chunks))
            .into_par_iter()
            .map(|c| {
                let mut s = vec![ArmSums::default(); size];
                for i in c * chunk..((c + 1) * chunk).min(n) {
                    // A chunk is a single pass of seconds when the groups are many (4M rows).
                    if i % CHECK_EVERY == 0 {
                        ctl.check()?;
                    }
                    s[ids[i] as usize * arms + arm[i] as usize].add(w.map_or(1.0, |w| w[i]), y[i]);
                }
                Ok(s)
            })
            .collect::<Result<_>>()?;
        for part in parts {
            for (i, (t, s)) in total.iter_mut().zip(&part).enumerate() {
                if i % CHECK_EVERY == 0 {
                    ctl.check()?;
                }
                t.merge(s);
            }
        }
    }
    Ok(total)
}

/// Fits the model.
pub fn fit(d: &CellData<'_>, prm: &CellParams, ctl: &Control) -> Result<CellModel> {
    let (n, levels) = (d.n, d.levels);
    if n == 0 {
        return Err(CoreError::invalid("groups", "is empty"));
    }
    if levels == 0 {
        return Err(CoreError::invalid("groups", "has 0 levels (columns)"));
    }
    if n > u32::MAX as usize {
        return Err(CoreError::invalid(
            "groups",
            format!("has {n} rows, at most {} are supported", u32::MAX),
        ));
    }
    if let Some(k) = prm.prior_strength {
        if !(k.is_finite() && k >= 0.0) {
            return Err(CoreError::invalid(
                "prior_strength",
                format!("must be 'auto' or a finite number >= 0, got {k}"),
            ));
        }
    }
    check_len("groups", d.groups.len(), n * levels, "n_samples * n_levels")?;
    check_len("treatment", d.treatment.len(), n, "groups")?;
    check_len("y", d.y.len(), n, "groups")?;
    check_finite("y", d.y)?;
    if let Some(w) = d.w {
        check_len("sample_weight", w.len(), n, "groups")?;
        crate::error::check_nonnegative("sample_weight", w)?;
    }
    if let Some(i) = d
        .groups
        .par_iter()
        .position_first(|&c| !(0..=MAX_CODE).contains(&c))
    {
        return Err(CoreError::invalid(
            "groups",
            format!(
                "codes must be integers in 0..={MAX_CODE}, found {} at row {}, level {}",
                d.groups[i],
                i / levels,
                i % levels
            ),
        ));
    }
    let arm = arms_of(d.treatment, d.n_treatments)?;
    let arms = d.n_treatments + 1;
    let t_count = d.n_treatments;
    ctl.set_total(levels as u64 + 1);
    // Group ids, coarsest level first.
    let mut parent = vec![0u32; n];
    let mut n_parent = 1u64;
    let mut keys_of = vec![Vec::new(); levels];
    for l in (0..levels).rev() {
        let g = d.groups;
        let (keys, ids) = factorize(|i| g[i * levels + l], &parent, n_parent, n, ctl)?;
        n_parent = keys.len() as u64;
        keys_of[l] = keys;
        parent = ids;
        ctl.advance(1);
    }
    let finest = accumulate(&parent, &arm, d.y, d.w, keys_of[0].len(), arms, ctl)?;
    drop(parent);
    // Sums per level, finest first, by adding children to parents.
    let mut sums: Vec<Vec<ArmSums>> = vec![finest];
    for l in 1..levels {
        let n_up = keys_of[l].len();
        let np = n_up as u64;
        let mut up = vec![ArmSums::default(); n_up * arms];
        for (g, key) in keys_of[l - 1].iter().enumerate() {
            if g % CHECK_EVERY == 0 {
                ctl.check()?;
            }
            let pa = (key % np) as usize;
            for a in 0..arms {
                let s = sums[l - 1][g * arms + a];
                up[pa * arms + a].merge(&s);
            }
        }
        sums.push(up);
    }
    let mut all = vec![ArmSums::default(); arms];
    for g in 0..keys_of[levels - 1].len() {
        for a in 0..arms {
            all[a].merge(&sums[levels - 1][g * arms + a]);
        }
    }
    check_arms(&all)?;
    let (global, global_var) = global_effects(&all);
    // Shrinkage, coarsest level first.
    let min_rows = prm.min_count.max(1) as f64;
    let mut out: Vec<Level> = Vec::with_capacity(levels);
    let mut p_eff: Vec<Effect> = global.clone();
    let mut p_var: Vec<f64> = global_var.clone();
    let mut p_count = 1u64;
    for l in (0..levels).rev() {
        ctl.check()?;
        let keys = &keys_of[l];
        let s = &sums[l];
        let g_count = keys.len();
        let parent_of = |g: usize| (keys[g] % p_count) as usize;
        // Per (group, arm) and (group, treatment): in parallel, checking Ctrl-C (at 4M groups a
        // level took over a second).
        let var: Vec<f64> = par_map_checked(g_count * arms, ctl, |k| {
            smoothed_var(&s[k], p_var[parent_of(k / arms) * arms + k % arms])
        })?;
        let raw: Vec<Option<(f64, f64, f64)>> = par_map_checked(g_count * t_count, ctl, |k| {
            let (g, t) = (k / t_count, k % t_count + 1);
            let pa = parent_of(g);
            raw_effect(
                &s[g * arms + t],
                &s[g * arms],
                p_var[pa * arms + t],
                p_var[pa * arms],
                min_rows,
            )
        })?;
        let k_t: Vec<f64> = (0..t_count)
            .map(|t| match prm.prior_strength {
                Some(k) => Ok(k),
                None => {
                    let (mut m, mut d2, mut s2, mut u) = (0.0, 0.0, 0.0, 0.0);
                    for g in 0..g_count {
                        if g % CHECK_EVERY == 0 {
                            ctl.check()?;
                        }
                        if let Some((e, v, ne)) = raw[g * t_count + t] {
                            let dev = e - p_eff[parent_of(g) * t_count + t].est;
                            m += 1.0;
                            d2 += dev * dev;
                            s2 += v;
                            u += v * ne;
                        }
                    }
                    let tau2 = if m >= 2.0 { (d2 - s2) / m } else { 0.0 };
                    Ok(if tau2 > 0.0 {
                        (u / m) / tau2
                    } else {
                        f64::INFINITY
                    })
                }
            })
            .collect::<Result<_>>()?;
        let eff: Vec<Effect> = par_map_checked(g_count * t_count, ctl, |k| {
            let (g, t) = (k / t_count, k % t_count);
            shrink(raw[k], k_t[t], p_eff[parent_of(g) * t_count + t])
        })?;
        ctl.check()?;
        out.push(Level {
            keys: keys.clone(),
            n_parent: p_count,
            rows: par_map_checked(g_count, ctl, |g| (0..arms).map(|a| s[g * arms + a].n).sum())?,
            est: eff.iter().map(|e| e.est).collect(),
            se: eff.iter().map(|e| e.se).collect(),
            k: k_t.iter().map(|k| k.is_finite().then_some(*k)).collect(),
        });
        p_eff = eff;
        p_var = var;
        p_count = g_count as u64;
    }
    out.reverse();
    ctl.advance(1);
    Ok(CellModel {
        n_treatments: t_count,
        global,
        levels: out,
    })
}

impl CellModel {
    /// Estimates and standard errors (`n x T` row-major) for `groups` (`n x L` row-major); also
    /// the level each row was answered at (0 = finest, L = global).
    pub fn predict(
        &self,
        groups: &[i64],
        n: usize,
        ctl: &Control,
    ) -> Result<(Vec<f64>, Vec<f64>, Vec<u8>)> {
        let levels = self.levels.len();
        let t = self.n_treatments;
        check_len("X", groups.len(), n * levels, "n_samples * n_levels")?;
        // n rows x the fitted treatments: a large model and many rows can exceed memory
        let mut est: Vec<f64> = try_zeroed_rows("X", n, t)?;
        let mut se: Vec<f64> = try_zeroed_rows("X", n, t)?;
        let mut at = try_vec("X", n, levels as u8)?;
        const C: usize = 1 << 14;
        est.par_chunks_mut(C * t)
            .zip(se.par_chunks_mut(C * t))
            .zip(at.par_chunks_mut(C))
            .enumerate()
            .try_for_each(|(c, ((e, s), a))| {
                ctl.check()?;
                for r in 0..a.len() {
                    let row = &groups[(c * C + r) * levels..(c * C + r + 1) * levels];
                    let mut src: (&[f64], &[f64]) = (&[], &[]);
                    let mut pid = 0u64;
                    for l in (0..levels).rev() {
                        let lv = &self.levels[l];
                        let code = row[l];
                        if !(0..=MAX_CODE).contains(&code) {
                            break;
                        }
                        let key = code as u64 * lv.n_parent + pid;
                        let Ok(g) = lv.keys.binary_search(&key) else {
                            break;
                        };
                        src = (&lv.est[g * t..(g + 1) * t], &lv.se[g * t..(g + 1) * t]);
                        pid = g as u64;
                        a[r] = l as u8;
                    }
                    for k in 0..t {
                        if src.0.is_empty() {
                            e[r * t + k] = self.global[k].est;
                            s[r * t + k] = self.global[k].se;
                        } else {
                            e[r * t + k] = src.0[k];
                            s[r * t + k] = src.1[k];
                        }
                    }
                }
                Ok(())
            })?;
        Ok((est, se, at))
    }

    /// Versioned state with a checksum.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::state::sealed::to_bytes(STATE_KIND, STATE_VERSION, self)
    }

    pub fn from_bytes(b: &[u8]) -> Result<CellModel> {
        let m: CellModel = crate::state::sealed::from_bytes(STATE_KIND, &[STATE_VERSION], b)?;
        let t = m.n_treatments;
        let ok = t >= 1
            && m.global.len() == t
            && !m.levels.is_empty()
            && m.levels.iter().all(|l| {
                let g = l.keys.len();
                l.est.len() == g * t
                    && l.se.len() == g * t
                    && l.rows.len() == g
                    && l.k.len() == t
                    && l.n_parent >= 1
                    && l.keys.windows(2).all(|w| w[0] < w[1])
            });
        if !ok {
            return Err(CoreError::State("CellUplift state is malformed".into()));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Vec<i64>, Vec<i64>, Vec<f64>) {
        // two levels: cell (0..4) inside cluster (cell / 2); effect 1 in cells 0, 1; 0 else.
        let mut g = Vec::new();
        let mut t = Vec::new();
        let mut y = Vec::new();
        for i in 0..4000i64 {
            let cell = i % 4;
            let arm = (i / 4) % 2;
            g.extend([cell, cell / 2]);
            t.push(arm);
            let noise = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
            y.push(if arm == 1 && cell < 2 { 1.0 } else { 0.0 } + noise);
        }
        (g, t, y)
    }

    #[test]
    fn raw_with_zero_prior_and_fallback_for_unseen_codes() {
        let (g, t, y) = data();
        let d = CellData {
            groups: &g,
            n: 4000,
            levels: 2,
            treatment: &t,
            n_treatments: 1,
            y: &y,
            w: None,
        };
        let ctl = Control::new();
        let m = fit(
            &d,
            &CellParams {
                prior_strength: Some(0.0),
                min_count: 1,
            },
            &ctl,
        )
        .unwrap();
        // raw difference of means of cell 0
        let (mut s1, mut n1, mut s0, mut n0) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..4000 {
            if g[2 * i] == 0 {
                if t[i] == 1 {
                    s1 += y[i];
                    n1 += 1.0;
                } else {
                    s0 += y[i];
                    n0 += 1.0;
                }
            }
        }
        let (e, _, at) = m.predict(&[0, 0, 9, 1, 9, 9], 3, &ctl).unwrap();
        assert!((e[0] - (s1 / n1 - s0 / n0)).abs() < 1e-12);
        assert_eq!(at, vec![0, 1, 2]);
        assert!((e[1] - m.levels[1].est[1]).abs() < 1e-15);
        assert!((e[2] - m.global[0].est).abs() < 1e-15);
        let auto = fit(
            &d,
            &CellParams {
                prior_strength: None,
                min_count: 1,
            },
            &ctl,
        )
        .unwrap();
        // Clusters differ (finite k); cells of a cluster share its effect (no between-cell
        // variance: k infinite, every cell takes its cluster's estimate).
        assert!(auto.levels[1].k[0].is_some());
        assert!(auto.levels[0].k[0].is_none());
        assert_eq!(auto.levels[0].est[0], auto.levels[1].est[0]);
        let b = auto.to_bytes().unwrap();
        assert_eq!(CellModel::from_bytes(&b).unwrap(), auto);
    }
}
