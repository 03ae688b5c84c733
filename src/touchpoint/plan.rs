//! The frequency planner: how many off-site exposures each user gets, on which channel and day.
//!
//! Every user is a multiple-choice item: no exposure, or one `(channel, level)` option, where a
//! level is a number of exposures over the horizon. The option's value is
//! `value[i] * incremental(group[i], channel, level) - optout_cost[channel] *
//! optout(group, channel, level) - unit_cost[channel] * level`; it uses `unit_cost * level` of the budget and `level / days` of
//! the channel's daily capacity (the layout spreads exposures evenly, so each day carries the
//! average). The allocation core's Lagrangian solver ([`crate::allocate::dual::solve_dual`])
//! prices the budget and capacities and certifies the plan (dual bound and gap).
//!
//! Because every resource a channel's options use grows in proportion to the level, the
//! Lagrangian best response of a user at any prices lies on the upper concave hull of its
//! `(level, value)` points per channel (S-shaped curves make the hull skip the levels below the
//! knee): only hull points become candidates, which keeps the problem small (a few per user and
//! channel) without changing the LP relaxation.
//!
//! Layout over the days (`days` = horizon `D`): a level `n` gives `n / D` exposures every day and
//! one more on `n % D = r` days. Users of one channel with the same `r` take the days of the
//! evenly spaced pattern `{floor(k D / r)}` rotated by `0, 1, ..., D - 1` in turn, so each full
//! cycle of `D` users loads every day equally; the last `< D` users of each `r` take consecutive
//! days from one running pointer per channel, which keeps the daily loads within one exposure of
//! each other. The busiest day therefore carries at most `ceil(total / D)` exposures, within an
//! integer daily capacity whenever the plan's average is.

use crate::allocate::{dual::solve_dual, DualOptions, Limit, Problem, Solved};
use crate::control::Control;
use crate::error::{try_grow, CoreError, Result};
use crate::parallel::CHUNK;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// What the plan's candidate arrays hold, for their out-of-memory errors.
const CANDIDATES: &str = "the candidate frequencies (hull points) of the users";

/// No channel (the user gets no exposure).
pub const NONE: u8 = u8::MAX;

/// One off-site channel's rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelSpec {
    pub name: String,
    /// Cost of one exposure.
    pub unit_cost: f64,
    /// Most exposures per user per day.
    pub daily_cap: u32,
    /// Most exposures per user in any 7 consecutive days (`u32::MAX`: none).
    pub weekly_cap: u32,
    /// Most exposures per day over all users (`inf`: none).
    pub capacity: f64,
    /// Expected cost of one opt-out of this channel (the value of the reach it loses).
    pub optout_cost: f64,
}

/// Response curves per `(group, channel, level)`, row-major.
#[derive(Clone, Debug)]
pub struct Curves<'a> {
    pub n_groups: usize,
    pub levels: &'a [u32],
    /// Expected incremental conversion probability.
    pub incremental: &'a [f64],
    /// Probability of opting out of the channel.
    pub optout: &'a [f64],
}

/// What the planner needs per user.
#[derive(Clone, Debug)]
pub struct Users<'a> {
    /// Curve group of each user.
    pub group: &'a [u32],
    /// Value of one incremental conversion of each user.
    pub value: &'a [f64],
    /// Reachable channels of each user (bit `c` for channel `c`).
    pub reach: &'a [u8],
}

/// Options of one planning run.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub days: u32,
    pub budget: f64,
    /// Fewest exposures a reached user gets (levels below are not offered).
    pub min_frequency: u32,
    pub tol: f64,
    pub max_iter: usize,
    pub seed: u64,
}

/// Where the extra exposures of a level go (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub offset: u16,
    pub consecutive: bool,
}

/// A planned frequency per user and the solver's certificate.
#[derive(Clone, Debug)]
pub struct FrequencyPlan {
    /// Channel of each user ([`NONE`]: no exposure).
    pub channel: Vec<u8>,
    /// Exposures of each user over the horizon (0 when `channel == NONE`).
    pub level: Vec<u32>,
    pub layout: Vec<Layout>,
    /// Option value of each user's choice (0 when none).
    pub value: Vec<f64>,
    pub solved: Solved,
    /// Resource names (`budget`, then `capacity:<channel>`), bounds.
    pub names: Vec<String>,
    pub upper: Vec<f64>,
    /// Exposures per channel and day, `n_channels x days`.
    pub daily_load: Vec<u64>,
    /// Candidates (hull points) the solver saw.
    pub n_candidates: usize,
}

/// Largest level a user can get on a channel within its daily and weekly caps.
fn level_fits(n: u32, days: u32, ch: &ChannelSpec) -> bool {
    let (base, r) = (n / days, n % days);
    if base + u32::from(r > 0) > ch.daily_cap {
        return false;
    }
    if ch.weekly_cap == u32::MAX {
        return true;
    }
    if days <= 7 {
        return n <= ch.weekly_cap;
    }
    // A 7-day window holds 7 base days plus at most min(7, r) extra days (consecutive layout).
    7 * base as u64 + u64::from(r.min(7)) <= ch.weekly_cap as u64
}

/// The levels each channel may use: `allowed[c * L + l]`.
pub fn allowed_levels(
    levels: &[u32],
    channels: &[ChannelSpec],
    days: u32,
    min_frequency: u32,
) -> Vec<bool> {
    let mut out = Vec::with_capacity(channels.len() * levels.len());
    for ch in channels {
        for &n in levels {
            out.push(n >= min_frequency.max(1) && level_fits(n, days, ch));
        }
    }
    out
}

fn validate(
    curves: &Curves<'_>,
    users: &Users<'_>,
    ch: &[ChannelSpec],
    o: &PlanOptions,
) -> Result<()> {
    let c_n = ch.len();
    if c_n == 0 || c_n > 8 {
        return Err(CoreError::invalid(
            "channels",
            format!("must hold 1 to 8 channels, got {c_n}"),
        ));
    }
    for s in ch {
        let arg = format!("channels[{:?}]", s.name);
        if !(s.unit_cost.is_finite() && s.unit_cost >= 0.0) {
            return Err(CoreError::invalid(
                arg,
                format!("unit_cost must be finite and >= 0, got {}", s.unit_cost),
            ));
        }
        if !(s.optout_cost.is_finite() && s.optout_cost >= 0.0) {
            return Err(CoreError::invalid(
                arg,
                format!("optout_cost must be finite and >= 0, got {}", s.optout_cost),
            ));
        }
        if s.capacity.is_nan() || s.capacity <= 0.0 {
            return Err(CoreError::invalid(
                arg,
                format!(
                    "capacity must be > 0 (a channel with no capacity cannot be planned), got {}",
                    s.capacity
                ),
            ));
        }
        if s.daily_cap == 0 {
            return Err(CoreError::invalid(arg, "daily_cap must be >= 1"));
        }
        if s.weekly_cap == 0 {
            return Err(CoreError::invalid(arg, "weekly_cap must be >= 1"));
        }
    }
    if o.days == 0 {
        return Err(CoreError::invalid("horizon_days", "must be >= 1, got 0"));
    }
    if o.days > u16::MAX as u32 {
        return Err(CoreError::invalid(
            "horizon_days",
            format!("must be <= {}, got {}", u16::MAX, o.days),
        ));
    }
    if o.budget.is_nan() || o.budget < 0.0 {
        return Err(CoreError::invalid(
            "budget",
            format!("must be >= 0, got {}", o.budget),
        ));
    }
    let l_n = curves.levels.len();
    if l_n == 0 {
        return Err(CoreError::invalid("levels", "is empty"));
    }
    if curves.levels[0] == 0 || curves.levels.windows(2).any(|w| w[1] <= w[0]) {
        return Err(CoreError::invalid(
            "levels",
            "must be positive and strictly increasing",
        ));
    }
    // Checked: a size that overflows matches no array (never a wrapped length).
    let size = (curves.n_groups.checked_mul(c_n * l_n)).ok_or_else(|| {
        CoreError::invalid(
            "n_groups",
            "too large: n_groups x n_channels x n_levels overflows",
        )
    })?;
    crate::error::check_len(
        "curves.incremental",
        curves.incremental.len(),
        size,
        "n_groups x n_channels x n_levels",
    )?;
    crate::error::check_len(
        "curves.optout",
        curves.optout.len(),
        size,
        "n_groups x n_channels x n_levels",
    )?;
    crate::error::check_finite("curves.incremental", curves.incremental)?;
    if let Some(k) = curves.optout.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(CoreError::invalid(
            "curves.optout",
            format!(
                "must be probabilities in [0, 1], found {} at position {k}",
                curves.optout[k]
            ),
        ));
    }
    let n = users.group.len();
    crate::error::check_len("value", users.value.len(), n, "users")?;
    crate::error::check_len("reach", users.reach.len(), n, "users")?;
    crate::error::check_finite("value", users.value)?;
    if let Some(i) = users
        .group
        .iter()
        .position(|g| *g as usize >= curves.n_groups)
    {
        return Err(CoreError::invalid(
            "group",
            format!(
                "{} at position {i} has no curve (n_groups = {})",
                users.group[i], curves.n_groups
            ),
        ));
    }
    Ok(())
}

/// Hull points `(level index)` of one user and channel: the upper concave hull of
/// `(0, 0), (n_l, v_l)` over the allowed levels, cut where it stops rising.
#[inline]
fn hull(levels: &[u32], vals: &[f64], allowed: &[bool], out: &mut Vec<usize>) {
    let pts = (0..levels.len())
        .filter(|&l| allowed[l])
        .map(|l| (levels[l] as f64, vals[l], l));
    crate::numeric::upper_hull(pts, out);
}

/// Plans the exposures (see the module docs).
pub fn plan(
    curves: &Curves<'_>,
    users: &Users<'_>,
    channels: &[ChannelSpec],
    o: &PlanOptions,
    ctl: &Control,
) -> Result<FrequencyPlan> {
    validate(curves, users, channels, o)?;
    let n = users.group.len();
    let c_n = channels.len();
    let levels = curves.levels;
    let l_n = levels.len();
    let allowed = allowed_levels(levels, channels, o.days, o.min_frequency);
    if !allowed.iter().any(|a| *a) {
        let most: Vec<String> = channels
            .iter()
            .map(|ch| {
                let m = levels
                    .iter()
                    .rev()
                    .find(|&&n| level_fits(n, o.days, ch))
                    .copied()
                    .unwrap_or(0);
                format!("{} at most {m}", ch.name)
            })
            .collect();
        return Err(CoreError::Infeasible(format!(
            "min_frequency {} exceeds what the caps allow over {} days on every channel ({})",
            o.min_frequency,
            o.days,
            most.join(", ")
        )));
    }
    ctl.check()?;
    // Option values per user, channel and level -> hull candidates, in two passes over fixed chunks.
    let vals_of = |i: usize, c: usize, buf: &mut Vec<f64>| {
        let g = users.group[i] as usize;
        let base = (g * c_n + c) * l_n;
        let ch = &channels[c];
        buf.clear();
        buf.extend((0..l_n).map(|l| {
            users.value[i] * curves.incremental[base + l]
                - ch.optout_cost * curves.optout[base + l]
                - ch.unit_cost * levels[l] as f64
        }));
    };
    let n_chunks = n.div_ceil(CHUNK);
    // One pass over fixed chunks: each user's hull candidates (count, action, value).
    type Part = (Vec<u8>, Vec<u32>, Vec<f32>);
    let parts: Vec<Part> = (0..n_chunks)
        .into_par_iter()
        .map(|k| {
            ctl.check()?;
            let mut buf = Vec::new();
            let mut h = Vec::new();
            let (mut cnt, mut act, mut val) = (Vec::new(), Vec::new(), Vec::new());
            try_grow(&mut cnt, CHUNK, "users", CANDIDATES)?;
            for i in k * CHUNK..((k + 1) * CHUNK).min(n) {
                let mut m = 0u8;
                for c in 0..c_n {
                    if users.reach[i] & (1 << c) == 0 {
                        continue;
                    }
                    vals_of(i, c, &mut buf);
                    hull(levels, &buf, &allowed[c * l_n..(c + 1) * l_n], &mut h);
                    try_grow(&mut act, h.len(), "users", CANDIDATES)?;
                    try_grow(&mut val, h.len(), "users", CANDIDATES)?;
                    for &l in &h {
                        if m == u8::MAX {
                            break;
                        }
                        act.push((c * l_n + l) as u32);
                        val.push(buf[l] as f32);
                        m += 1;
                    }
                }
                cnt.push(m);
            }
            Ok((cnt, act, val))
        })
        .collect::<Result<_>>()?;
    let nnz: usize = parts.iter().map(|p| p.1.len()).sum();
    let mut indptr = Vec::new();
    try_grow(&mut indptr, n + 1, "users", CANDIDATES)?;
    indptr.push(0i64);
    let (mut action, mut value) = (Vec::new(), Vec::new());
    try_grow(&mut action, nnz, "users", CANDIDATES)?;
    try_grow(&mut value, nnz, "users", CANDIDATES)?;
    let mut acc = 0i64;
    for (cnt, act, val) in parts {
        ctl.check()?;
        for m in cnt {
            acc += m as i64;
            indptr.push(acc);
        }
        action.extend(act);
        value.extend(val);
    }
    ctl.check()?;
    // Resources: the budget, then one daily capacity per channel.
    let r_n = 1 + c_n;
    let mut action_usage = vec![0.0; c_n * l_n * r_n];
    for c in 0..c_n {
        for (l, &lv) in levels.iter().enumerate() {
            let a = c * l_n + l;
            action_usage[a * r_n] = channels[c].unit_cost * lv as f64;
            action_usage[a * r_n + 1 + c] = lv as f64 / o.days as f64;
        }
    }
    let mut names = vec!["budget".to_string()];
    let mut upper = vec![if o.budget.is_finite() {
        o.budget
    } else {
        f64::INFINITY
    }];
    for ch in channels {
        names.push(format!("capacity:{}", ch.name));
        upper.push(ch.capacity);
    }
    let problem = Problem {
        indptr: &indptr,
        action: &action,
        value: &value,
        pair_usage: Vec::new(),
        pair_resource: Vec::new(),
        action_usage: &action_usage,
        n_actions: c_n * l_n,
        group: &[],
        limit: Limit::All(1),
        lower: vec![0.0; r_n],
        upper: upper.clone(),
        names: names.clone(),
    };
    let opts = DualOptions {
        tol: o.tol,
        max_iter: o.max_iter,
        seed: o.seed,
        ..Default::default()
    };
    let solved = solve_dual(&problem, &opts, ctl)?;
    let mut channel = vec![NONE; n];
    let mut level = vec![0u32; n];
    let mut val = vec![0.0f64; n];
    for (&k, &i) in solved.chosen.iter().zip(&solved.chosen_user) {
        let a = action[k as usize] as usize;
        let i = i as usize;
        channel[i] = (a / l_n) as u8;
        level[i] = levels[a % l_n];
        val[i] = value[k as usize] as f64;
    }
    drop(action);
    drop(value);
    drop(indptr);
    let (layout, daily_load) = lay_out(&channel, &level, c_n, o.days, ctl)?;
    Ok(FrequencyPlan {
        channel,
        level,
        layout,
        value: val,
        solved,
        names,
        upper,
        daily_load,
        n_candidates: nnz,
    })
}

/// Evenly spaced extra days of `r` out of `d`: `floor(k d / r)`.
#[inline]
fn spaced(k: u32, r: u32, d: u32) -> u32 {
    ((k as u64 * d as u64) / r as u64) as u32
}

/// Layout of each user's extras (see the module docs) and the resulting daily loads; Ctrl-C
/// (`ctl`) is checked every [`CHUNK`] users.
pub fn lay_out(
    channel: &[u8],
    level: &[u32],
    c_n: usize,
    days: u32,
    ctl: &Control,
) -> Result<(Vec<Layout>, Vec<u64>)> {
    // Channel codes are u8 (255: none): a larger count is no channel count; the tables below
    // are n_channels x days.
    if c_n > NONE as usize {
        return Err(CoreError::invalid(
            "n_channels",
            format!("must be at most {NONE}, got {c_n}"),
        ));
    }
    let d = days as usize;
    // Users per (channel, r) class, to know where each class's last incomplete cycle starts.
    let mut total = vec![0u64; c_n * d];
    for (i, (c, n)) in channel.iter().zip(level).enumerate() {
        if i % CHUNK == 0 {
            ctl.check()?;
        }
        if *c != NONE {
            total[*c as usize * d + (*n % days) as usize] += 1;
        }
    }
    let mut seen = vec![0u64; c_n * d];
    let mut pointer = vec![0u32; c_n];
    let mut load = vec![0u64; c_n * d];
    // Whole cycles (`level / days` on every day) per channel, added to each day at the end.
    let mut base_load = vec![0u64; c_n];
    let mut layout = vec![Layout::default(); channel.len()];
    for (i, (c, n)) in channel.iter().zip(level).enumerate() {
        if i % CHUNK == 0 {
            ctl.check()?;
        }
        if *c == NONE {
            continue;
        }
        let c = *c as usize;
        let (base, r) = (*n / days, *n % days);
        base_load[c] += base as u64;
        if r == 0 {
            continue;
        }
        let cls = c * d + r as usize;
        let full = total[cls] / d as u64 * d as u64;
        let lay = if seen[cls] < full {
            Layout {
                offset: (seen[cls] % d as u64) as u16,
                consecutive: false,
            }
        } else {
            let p = pointer[c];
            pointer[c] = (p + r) % days;
            Layout {
                offset: p as u16,
                consecutive: true,
            }
        };
        seen[cls] += 1;
        for k in 0..r {
            load[c * d + extra_day(lay, k, r, days) as usize] += 1;
        }
        layout[i] = lay;
    }
    for (c, b) in base_load.iter().enumerate() {
        for x in &mut load[c * d..(c + 1) * d] {
            *x += b;
        }
    }
    Ok((layout, load))
}

/// Day (0-based) of the `k`-th extra exposure of a user with `r` extras.
#[inline]
pub fn extra_day(lay: Layout, k: u32, r: u32, days: u32) -> u32 {
    let p = if lay.consecutive {
        k
    } else {
        spaced(k, r, days)
    };
    (p + lay.offset as u32) % days
}

/// Exposures of one user per day (0-based days), `out.len() == days`.
pub fn user_days(level: u32, lay: Layout, days: u32, out: &mut [u32]) {
    let (base, r) = (level / days, level % days);
    for x in out.iter_mut() {
        *x = base;
    }
    for k in 0..r {
        out[extra_day(lay, k, r, days) as usize] += 1;
    }
}

/// Rows (or days walked) [`schedule`] writes between two Ctrl-C checks (about a millisecond).
const ROWS_PER_CHECK: usize = 1 << 20;

/// One row per exposure, `(user index, channel, day index)`, users ascending, days ascending
/// within a user (fixed chunks in parallel; the order never depends on the thread count).
///
/// The rows are counted first, so the output is checked against the machine's memory
/// (`OutOfMemory` naming `level`, never an abort) and allocated once; each chunk of users then
/// writes its own part, checking `ctl` before every chunk and every [`ROWS_PER_CHECK`] rows.
pub fn schedule(
    channel: &[u8],
    level: &[u32],
    layout: &[Layout],
    days: u32,
    ctl: &Control,
) -> Result<(Vec<u64>, Vec<u8>, Vec<u32>)> {
    let n = channel.len();
    crate::error::check_len("level", level.len(), n, "channel")?;
    crate::error::check_len("layout", layout.len(), n, "channel")?;
    if days == 0 || days > u16::MAX as u32 {
        return Err(CoreError::invalid(
            "horizon_days",
            format!("must be in 1..={}, got {days}", u16::MAX),
        ));
    }
    let rows_of = |i: usize| -> u64 {
        if channel[i] == NONE {
            0
        } else {
            level[i] as u64
        }
    };
    let n_chunks = n.div_ceil(CHUNK);
    ctl.set_total(2 * n_chunks as u64);
    let counts: Vec<u64> = (0..n_chunks)
        .into_par_iter()
        .map(|k| {
            ctl.check()?;
            let rows = (k * CHUNK..((k + 1) * CHUNK).min(n)).map(rows_of).sum();
            ctl.advance(1);
            Ok(rows)
        })
        .collect::<Result<_>>()?;
    let total = counts.iter().try_fold(0u64, |a, &b| a.checked_add(b));
    let total = total.and_then(|t| usize::try_from(t).ok());
    let bytes =
        crate::error::checked_bytes("level", "the exposures (rows of 13 bytes)", total, 13)?;
    crate::error::check_fits_memory("level", bytes)?;
    let total = total.unwrap_or_default();
    let (mut u, mut c, mut d) = (
        crate::error::try_zeroed::<u64>("level", total)?,
        crate::error::try_zeroed::<u8>("level", total)?,
        crate::error::try_zeroed::<u32>("level", total)?,
    );
    // Each chunk's part of the three outputs.
    let mut parts = Vec::with_capacity(n_chunks);
    let (mut ru, mut rc, mut rd) = (&mut u[..], &mut c[..], &mut d[..]);
    for &k in &counts {
        let k = k as usize;
        let (pu, tu) = std::mem::take(&mut ru).split_at_mut(k);
        let (pc, tc) = std::mem::take(&mut rc).split_at_mut(k);
        let (pd, td) = std::mem::take(&mut rd).split_at_mut(k);
        parts.push((pu, pc, pd));
        (ru, rc, rd) = (tu, tc, td);
    }
    parts
        .into_par_iter()
        .enumerate()
        .try_for_each(|(k, (pu, pc, pd))| {
            ctl.check()?;
            let mut per_day = vec![0u32; days as usize];
            let (mut at, mut since) = (0usize, 0usize);
            for i in k * CHUNK..((k + 1) * CHUNK).min(n) {
                if rows_of(i) == 0 {
                    continue;
                }
                user_days(level[i], layout[i], days, &mut per_day);
                // The walk over the days is work too (a 366-day horizon with one exposure).
                since += days as usize;
                for (day, &m) in per_day.iter().enumerate() {
                    let mut left = m as usize;
                    while left > 0 {
                        let step = left.min(ROWS_PER_CHECK);
                        pu[at..at + step].fill(i as u64);
                        pc[at..at + step].fill(channel[i]);
                        pd[at..at + step].fill(day as u32);
                        (at, left, since) = (at + step, left - step, since + step);
                        if since >= ROWS_PER_CHECK {
                            ctl.check()?;
                            since = 0;
                        }
                    }
                }
                if since >= ROWS_PER_CHECK {
                    ctl.check()?;
                    since = 0;
                }
            }
            ctl.advance(1);
            Ok::<(), CoreError>(())
        })?;
    Ok((u, c, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str, cost: f64, daily: u32) -> ChannelSpec {
        ChannelSpec {
            name: name.into(),
            unit_cost: cost,
            daily_cap: daily,
            weekly_cap: u32::MAX,
            capacity: f64::INFINITY,
            optout_cost: 0.0,
        }
    }

    #[test]
    fn hull_skips_the_levels_below_the_knee() {
        // S-shaped values: the first levels are below the chord from the origin.
        let levels = [1, 2, 3, 4, 5, 6];
        let vals = [0.01, 0.05, 0.5, 0.9, 1.0, 0.95];
        let mut h = Vec::new();
        hull(&levels, &vals, &[true; 6], &mut h);
        assert_eq!(h, vec![3, 4]);
        // Nothing positive: no candidate.
        hull(&levels, &[-1.0; 6], &[true; 6], &mut h);
        assert!(h.is_empty());
        // Disallowed levels are skipped.
        hull(
            &levels,
            &vals,
            &[true, true, false, true, true, true],
            &mut h,
        );
        assert_eq!(h, vec![3, 4]);
    }

    #[test]
    fn layout_balances_daily_loads_within_one() {
        let days = 14;
        let n = 10_007;
        let channel: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
        let level: Vec<u32> = (0..n).map(|i| ((i * 7919) % 45) as u32 + 1).collect();
        let (layout, load) = lay_out(&channel, &level, 2, days, &Control::new()).unwrap();
        for c in 0..2 {
            let l = &load[c * 14..(c + 1) * 14];
            let (lo, hi) = (l.iter().min().unwrap(), l.iter().max().unwrap());
            assert!(hi - lo <= 1, "channel {c}: loads {l:?}");
            let total: u64 = (0..n)
                .filter(|i| channel[*i] == c as u8)
                .map(|i| level[i] as u64)
                .sum();
            assert_eq!(l.iter().sum::<u64>(), total);
        }
        // Every user's days sum to its level, each day within ceil(level / days).
        let mut out = vec![0u32; days as usize];
        for i in 0..n {
            user_days(level[i], layout[i], days, &mut out);
            assert_eq!(out.iter().sum::<u32>(), level[i]);
            assert!(*out.iter().max().unwrap() <= level[i].div_ceil(days));
        }
    }

    #[test]
    fn schedule_lists_every_exposure_and_checks_its_size() {
        let (days, n) = (30u32, 40_000usize);
        let channel: Vec<u8> = (0..n).map(|i| [0, 1, NONE][i % 3]).collect();
        let level: Vec<u32> = (0..n).map(|i| ((i * 7919) % 70) as u32).collect();
        let (layout, _) = lay_out(&channel, &level, 2, days, &Control::new()).unwrap();
        let (u, c, d) = schedule(&channel, &level, &layout, days, &Control::new()).unwrap();
        let mut want = (Vec::new(), Vec::new(), Vec::new());
        let mut out = vec![0u32; days as usize];
        for i in (0..n).filter(|&i| channel[i] != NONE) {
            user_days(level[i], layout[i], days, &mut out);
            for (day, &m) in out.iter().enumerate() {
                want.0.extend(std::iter::repeat_n(i as u64, m as usize));
                want.1.extend(std::iter::repeat_n(channel[i], m as usize));
                want.2.extend(std::iter::repeat_n(day as u32, m as usize));
            }
        }
        assert!(want.0.len() > 500_000, "{}", want.0.len());
        assert_eq!((u, c, d), want);
        // A size no machine holds is an error naming the levels, before anything is written.
        let (big, lay) = (vec![u32::MAX; 1 << 22], vec![Layout::default(); 1 << 22]);
        let e = schedule(&vec![0; 1 << 22], &big, &lay, days, &Control::new()).unwrap_err();
        assert!(e.to_string().starts_with("level: too large"), "{e}");
        let e = schedule(&channel, &level, &layout, 70_000, &Control::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("horizon_days: must be in 1..=65535"),
            "{e}"
        );
        let ctl = Control::new();
        ctl.cancel();
        let e = schedule(&channel, &level, &layout, days, &ctl).unwrap_err();
        assert_eq!(e, CoreError::Cancelled);
    }

    #[test]
    fn caps_and_min_frequency() {
        let mut c = ch("sms", 0.03, 1);
        assert!(level_fits(14, 14, &c));
        assert!(!level_fits(15, 14, &c));
        c.daily_cap = 10;
        c.weekly_cap = 20;
        // 7 base days of 2 plus up to 7 consecutive extras must fit 20 a week.
        assert!(level_fits(34, 14, &c));
        assert!(!level_fits(35, 14, &c));
        let allowed = allowed_levels(&[1, 2, 6, 10], &[ch("a", 0.0, 1)], 5, 2);
        assert_eq!(allowed, vec![false, true, false, false]);
    }

    #[test]
    fn plan_matches_brute_force_on_a_small_instance() {
        // 3 groups x 2 channels x 4 levels; 30 users; a budget that binds.
        let levels = [2u32, 4, 8, 12];
        let c_n = 2;
        let g_n = 3;
        let mut inc = vec![0.0; g_n * c_n * levels.len()];
        let opt = vec![0.0; inc.len()];
        for g in 0..g_n {
            for c in 0..c_n {
                for (l, &n) in levels.iter().enumerate() {
                    let k = 5.0 + g as f64 + 3.0 * c as f64;
                    let x = (n as f64 / k).powi(2);
                    inc[(g * c_n + c) * levels.len() + l] = 0.2 * x / (1.0 + x);
                }
            }
        }
        let n = 30;
        let group: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        let value: Vec<f64> = (0..n).map(|i| 1.0 + (i as f64 * 0.37) % 2.0).collect();
        let reach: Vec<u8> = (0..n).map(|i| if i % 4 == 0 { 1 } else { 3 }).collect();
        let channels = [ch("ads", 0.01, 2), ch("email", 0.002, 1)];
        let curves = Curves {
            n_groups: g_n,
            levels: &levels,
            incremental: &inc,
            optout: &opt,
        };
        let users = Users {
            group: &group,
            value: &value,
            reach: &reach,
        };
        let o = PlanOptions {
            days: 10,
            budget: 1.0,
            min_frequency: 0,
            tol: 1e-6,
            max_iter: 500,
            seed: 0,
        };
        let p = plan(&curves, &users, &channels, &o, &Control::new()).unwrap();
        let spent: f64 = (0..n)
            .filter(|i| p.channel[*i] != NONE)
            .map(|i| channels[p.channel[i] as usize].unit_cost * p.level[i] as f64)
            .sum();
        assert!(spent <= 1.0 + 1e-9, "spent {spent}");
        // Email allows at most 10 exposures in 10 days.
        for i in 0..n {
            if p.channel[i] == 1 {
                assert!(p.level[i] <= 10);
            }
        }
        assert!(p.solved.dual_bound + 1e-9 >= p.solved.objective);
        assert!((p.solved.dual_bound - p.solved.objective) / p.solved.dual_bound < 0.05);
        let total: f64 = p.value.iter().sum();
        assert!((total - p.solved.objective).abs() < 1e-4);
    }

    #[test]
    fn infeasible_min_frequency_and_bad_input() {
        let levels = [5u32, 10];
        let inc = vec![0.1; 2];
        let opt = vec![0.0; 2];
        let curves = Curves {
            n_groups: 1,
            levels: &levels,
            incremental: &inc,
            optout: &opt,
        };
        let users = Users {
            group: &[0],
            value: &[1.0],
            reach: &[1],
        };
        let mut o = PlanOptions {
            days: 3,
            budget: 1.0,
            min_frequency: 4,
            tol: 1e-4,
            max_iter: 100,
            seed: 0,
        };
        let e = plan(&curves, &users, &[ch("sms", 0.03, 1)], &o, &Control::new()).unwrap_err();
        assert!(matches!(e, CoreError::Infeasible(_)), "{e:?}");
        o.min_frequency = 0;
        o.days = 0;
        let e = plan(&curves, &users, &[ch("sms", 0.03, 1)], &o, &Control::new()).unwrap_err();
        assert!(e.to_string().starts_with("horizon_days"), "{e}");
        o.days = 3;
        o.budget = -1.0;
        let e = plan(&curves, &users, &[ch("sms", 0.03, 1)], &o, &Control::new()).unwrap_err();
        assert!(e.to_string().starts_with("budget"), "{e}");
        o.budget = 1.0;
        let mut c = ch("sms", 0.03, 1);
        c.capacity = 0.0;
        let e = plan(&curves, &users, &[c], &o, &Control::new()).unwrap_err();
        assert!(e.to_string().contains("capacity"), "{e}");
    }
}
