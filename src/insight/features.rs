//! Per-user features from a raw transaction log, in one parallel pass and one copy.
//!
//! Algorithm (no comparison sort of the log):
//! 1. map user ids to output rows: a direct table over `[min, max]` when the ids are dense enough
//!    (`max - min < 2 * rows + 2^20`), else a sorted list of the unique ids plus an open-addressing
//!    hash table; count the rows of each user (atomic counters, exact whatever the threads);
//! 2. scatter `(day, amount, category)` into per-user segments (a counting sort by user: the only
//!    copy of the log);
//! 3. per user, in parallel chunks of users: sort the small segment by (day, amount, category)
//!    (so the result does not depend on the scatter order), collapse same-day purchases into one
//!    period as `lifetimes.utils.summary_data_from_transaction_data(freq="D")` does, and compute
//!    every feature;
//! 4. RFM quintile scores from quintile thresholds (selection, no sort).
//!
//! Conventions (day is the time unit; transactions after `as_of` are ignored, like lifetimes'
//! `observation_period_end`):
//! - `frequency` = number of distinct purchase days - 1 (repeat periods);
//! - `recency` = last purchase day - first purchase day; `T` = as_of - first purchase day;
//! - `monetary` = mean over repeat days of the day's total spend (0 when frequency is 0): exactly
//!   lifetimes' `monetary_value`;
//! - prospects (users with no purchase up to `as_of`, from `users`): frequency = recency = T =
//!   monetary = 0, first/last purchase, days since last and inter-purchase times NaN, trend 0,
//!   RFM scores 0.

use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::parallel::CHUNK;
use ndarray::{Array2, Axis};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The feature columns, in the row order of [`Features::values`].
pub const COLUMNS: [&str; 15] = [
    "n_transactions",
    "frequency",
    "recency",
    "T",
    "monetary",
    "total_spend",
    "recent_spend",
    "first_purchase",
    "last_purchase",
    "days_since_last",
    "tenure",
    "ipt_mean",
    "ipt_std",
    "n_categories",
    "trend",
];
const K: usize = COLUMNS.len();

pub struct FeatureInput<'a> {
    pub user: &'a [i64],
    pub day: &'a [i32],
    pub amount: &'a [f64],
    /// Category codes (>= 0), or None.
    pub category: Option<&'a [i32]>,
    /// Users to include even without purchases (prospects).
    pub users: Option<&'a [i64]>,
    /// Signup day of each of `users` (for `tenure`), or None.
    pub signup: Option<&'a [i32]>,
    pub as_of: i32,
    /// Length in days of the recent window for `recent_spend` and `trend`.
    pub trend_window: i32,
}

pub struct Features {
    /// Sorted user ids, one per output row.
    pub user_id: Vec<i64>,
    /// `COLUMNS.len() x n_users`: one contiguous row per feature column.
    pub values: Array2<f64>,
    pub r_score: Vec<u8>,
    pub f_score: Vec<u8>,
    pub m_score: Vec<u8>,
}

/// Pointer for disjoint parallel writes (each position is written by exactly one thread).
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    /// # Safety
    /// `i` must be in bounds and written by no other thread concurrently.
    #[inline]
    unsafe fn write(self, i: usize, v: T) {
        unsafe { self.0.add(i).write(v) }
    }
}

enum IdMap {
    Dense {
        min: i64,
        out: Vec<u32>,
    },
    Hash {
        keys: Vec<i64>,
        vals: Vec<u32>,
        mask: usize,
    },
}

const EMPTY: u32 = u32::MAX;

impl IdMap {
    #[inline]
    fn get(&self, id: i64) -> u32 {
        match self {
            IdMap::Dense { min, out } => out[(id - min) as usize],
            IdMap::Hash { keys, vals, mask } => {
                let mut h = crate::rng::mix64(id as u64) as usize & mask;
                loop {
                    let v = vals[h];
                    if v == EMPTY || keys[h] == id {
                        return v;
                    }
                    h = (h + 1) & mask;
                }
            }
        }
    }
}

/// Checks the log (amount finite and >= 0, category >= 0) in parallel; returns (min, max) of the
/// user ids of rows with day <= as_of, or None if there are none.
fn scan(inp: &FeatureInput<'_>, ctl: &Control) -> Result<Option<(i64, i64)>> {
    let n = inp.user.len();
    let parts: Vec<Result<Option<(i64, i64)>>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            ctl.check()?;
            let lo = c * CHUNK;
            let hi = (lo + CHUNK).min(n);
            let mut mm: Option<(i64, i64)> = None;
            for i in lo..hi {
                let a = inp.amount[i];
                if !a.is_finite() || a < 0.0 {
                    return Err(CoreError::invalid(
                        "amount",
                        format!(
                            "must be finite and >= 0, found {a} at row {i} (net refunds into \
                             their orders or drop them first)"
                        ),
                    ));
                }
                if let Some(cat) = inp.category {
                    if cat[i] < 0 {
                        return Err(CoreError::invalid(
                            "category",
                            format!("has a missing value at row {i}"),
                        ));
                    }
                }
                if inp.day[i] <= inp.as_of {
                    let u = inp.user[i];
                    mm = Some(match mm {
                        None => (u, u),
                        Some((a, b)) => (a.min(u), b.max(u)),
                    });
                }
            }
            Ok(mm)
        })
        .collect();
    let mut out: Option<(i64, i64)> = None;
    for p in parts {
        if let Some((a, b)) = p? {
            out = Some(match out {
                None => (a, b),
                Some((x, y)) => (x.min(a), y.max(b)),
            });
        }
    }
    Ok(out)
}

/// Builds the id map and the per-output-row transaction counts. Returns (map, sorted ids, counts).
fn build_map(
    inp: &FeatureInput<'_>,
    mm: Option<(i64, i64)>,
    ctl: &Control,
) -> Result<(IdMap, Vec<i64>, Vec<u32>)> {
    let n = inp.user.len();
    let listed = inp.users.unwrap_or(&[]);
    let mut lo = i64::MAX;
    let mut hi = i64::MIN;
    if let Some((a, b)) = mm {
        lo = a;
        hi = b;
    }
    for &u in listed {
        lo = lo.min(u);
        hi = hi.max(u);
    }
    if lo > hi {
        return Ok((
            IdMap::Dense {
                min: 0,
                out: vec![],
            },
            vec![],
            vec![],
        ));
    }
    let range = (hi as i128 - lo as i128 + 1) as u128;
    let total = (n + listed.len()) as u128;
    let dense = range <= 2 * total + (1 << 20) && range < u32::MAX as u128;
    if dense {
        let range = range as usize;
        let counts: Vec<AtomicU32> = (0..range).map(|_| AtomicU32::new(0)).collect();
        (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .try_for_each(|c| -> Result<()> {
                ctl.check()?;
                let hi_i = (c * CHUNK + CHUNK).min(n);
                for i in c * CHUNK..hi_i {
                    if inp.day[i] <= inp.as_of {
                        counts[(inp.user[i] - lo) as usize].fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })?;
        let mut counts: Vec<u32> = counts.into_iter().map(|a| a.into_inner()).collect();
        let mut is_listed = vec![false; if listed.is_empty() { 0 } else { range }];
        for &u in listed {
            is_listed[(u - lo) as usize] = true;
        }
        // counts becomes the slot -> output row map; per-row counts are collected alongside
        let mut ids = Vec::new();
        let mut row_counts = Vec::new();
        for (s, c) in counts.iter_mut().enumerate() {
            if *c > 0 || (!is_listed.is_empty() && is_listed[s]) {
                ids.push(lo + s as i64);
                row_counts.push(*c);
                *c = (ids.len() - 1) as u32;
            } else {
                *c = EMPTY;
            }
        }
        if ids.len() >= EMPTY as usize {
            return Err(CoreError::invalid(
                "user",
                "more than 2^32 - 2 distinct users",
            ));
        }
        Ok((
            IdMap::Dense {
                min: lo,
                out: counts,
            },
            ids,
            row_counts,
        ))
    } else {
        // sparse ids: unique sorted ids, then an open-addressing table id -> output row
        let mut ids: Vec<i64> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .flat_map_iter(|c| {
                let hi_i = (c * CHUNK + CHUNK).min(n);
                (c * CHUNK..hi_i)
                    .filter(|&i| inp.day[i] <= inp.as_of)
                    .map(|i| inp.user[i])
            })
            .collect();
        ctl.check()?;
        ids.extend_from_slice(listed);
        ids.par_sort_unstable();
        ids.dedup();
        ids.shrink_to_fit();
        if ids.len() >= EMPTY as usize {
            return Err(CoreError::invalid(
                "user",
                "more than 2^32 - 2 distinct users",
            ));
        }
        let cap = (ids.len() * 2).next_power_of_two().max(16);
        let mask = cap - 1;
        let mut keys = vec![0i64; cap];
        let mut vals = vec![EMPTY; cap];
        for (j, &id) in ids.iter().enumerate() {
            let mut h = crate::rng::mix64(id as u64) as usize & mask;
            while vals[h] != EMPTY {
                h = (h + 1) & mask;
            }
            keys[h] = id;
            vals[h] = j as u32;
        }
        let map = IdMap::Hash { keys, vals, mask };
        let counts: Vec<AtomicU32> = (0..ids.len()).map(|_| AtomicU32::new(0)).collect();
        (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .try_for_each(|c| -> Result<()> {
                ctl.check()?;
                let hi_i = (c * CHUNK + CHUNK).min(n);
                for i in c * CHUNK..hi_i {
                    if inp.day[i] <= inp.as_of {
                        counts[map.get(inp.user[i]) as usize].fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })?;
        let counts = counts.into_iter().map(|a| a.into_inner()).collect();
        Ok((map, ids, counts))
    }
}

/// Computes the features of every user. See the module docs for the definitions.
pub fn compute(inp: &FeatureInput<'_>, ctl: &Control) -> Result<Features> {
    let n = inp.user.len();
    crate::error::check_len("day", inp.day.len(), n, "user")?;
    crate::error::check_len("amount", inp.amount.len(), n, "user")?;
    if let Some(c) = inp.category {
        crate::error::check_len("category", c.len(), n, "user")?;
    }
    if let (Some(u), Some(s)) = (inp.users, inp.signup) {
        crate::error::check_len("signup", s.len(), u.len(), "users")?;
    }
    if inp.trend_window < 1 {
        return Err(CoreError::invalid("trend_window", "must be >= 1 day"));
    }
    ctl.set_total(4);
    let mm = scan(inp, ctl)?;
    ctl.advance(1);
    let (map, ids, counts) = build_map(inp, mm, ctl)?;
    let n_out = ids.len();
    ctl.advance(1);

    // offsets and scatter (the one copy of the log)
    let mut starts = Vec::with_capacity(n_out + 1);
    let mut acc = 0u64;
    starts.push(0u64);
    for &c in &counts {
        acc += c as u64;
        starts.push(acc);
    }
    drop(counts);
    let m = acc as usize;
    let cursors: Vec<AtomicU64> = starts[1..].iter().map(|&s| AtomicU64::new(s)).collect();
    let mut s_day: Vec<i32> = Vec::with_capacity(m);
    let mut s_amt: Vec<f64> = Vec::with_capacity(m);
    let mut s_cat: Vec<i32> = Vec::with_capacity(if inp.category.is_some() { m } else { 0 });
    {
        let pd = SyncPtr(s_day.as_mut_ptr());
        let pa = SyncPtr(s_amt.as_mut_ptr());
        let pc = SyncPtr(s_cat.as_mut_ptr());
        (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .try_for_each(|c| -> Result<()> {
                ctl.check()?;
                let hi_i = (c * CHUNK + CHUNK).min(n);
                for i in c * CHUNK..hi_i {
                    if inp.day[i] <= inp.as_of {
                        let r = map.get(inp.user[i]) as usize;
                        let p = cursors[r].fetch_sub(1, Ordering::Relaxed) as usize - 1;
                        // SAFETY: p < m and each p is handed out exactly once by the cursors.
                        unsafe {
                            pd.write(p, inp.day[i]);
                            pa.write(p, inp.amount[i]);
                            if let Some(cat) = inp.category {
                                pc.write(p, cat[i]);
                            }
                        }
                    }
                }
                Ok(())
            })?;
        // SAFETY: every position in 0..m was written exactly once above (the counts match).
        unsafe {
            s_day.set_len(m);
            s_amt.set_len(m);
            if inp.category.is_some() {
                s_cat.set_len(m);
            }
        }
    }
    drop(cursors);
    drop(map);
    ctl.advance(1);

    // signup day per output row (for tenure)
    let signup_of: Option<Vec<i32>> = match (inp.users, inp.signup) {
        (Some(u), Some(s)) => {
            let mut v = vec![i32::MAX; n_out];
            for (id, &sd) in u.iter().zip(s) {
                if let Ok(j) = ids.binary_search(id) {
                    v[j] = v[j].min(sd);
                }
            }
            Some(v)
        }
        _ => None,
    };

    let mut values = Array2::<f64>::zeros((K, n_out));
    let has_cat = inp.category.is_some();
    values
        .axis_chunks_iter_mut(Axis(1), CHUNK)
        .into_par_iter()
        .enumerate()
        .try_for_each(|(c, mut block)| -> Result<()> {
            ctl.check()?;
            let mut buf: Vec<(i32, f64, i32)> = Vec::new();
            let mut cats: Vec<i32> = Vec::new();
            for k in 0..block.ncols() {
                let j = c * CHUNK + k;
                let (a, b) = (starts[j] as usize, starts[j + 1] as usize);
                buf.clear();
                for p in a..b {
                    buf.push((s_day[p], s_amt[p], if has_cat { s_cat[p] } else { 0 }));
                }
                let signup = signup_of.as_ref().map(|v| v[j]).filter(|&s| s != i32::MAX);
                let row = user_features(&mut buf, &mut cats, has_cat, inp, signup);
                for (i, v) in row.iter().enumerate() {
                    block[[i, k]] = *v;
                }
            }
            Ok(())
        })?;
    drop((s_day, s_amt, s_cat));
    ctl.advance(1);

    let n_tx = values.row(0);
    let buyers: Vec<bool> = n_tx.iter().map(|&c| c > 0.0).collect();
    let r_score = quintile_scores(values.row(8).as_slice().unwrap(), &buyers);
    let f_score = quintile_scores(values.row(1).as_slice().unwrap(), &buyers);
    let m_score = quintile_scores(values.row(5).as_slice().unwrap(), &buyers);
    Ok(Features {
        user_id: ids,
        values,
        r_score,
        f_score,
        m_score,
    })
}

fn user_features(
    buf: &mut [(i32, f64, i32)],
    cats: &mut Vec<i32>,
    has_cat: bool,
    inp: &FeatureInput<'_>,
    signup: Option<i32>,
) -> [f64; K] {
    let as_of = inp.as_of;
    let mut out = [0.0f64; K];
    if buf.is_empty() {
        out[7] = f64::NAN;
        out[8] = f64::NAN;
        out[9] = f64::NAN;
        out[10] = signup.map(|s| (as_of - s).max(0) as f64).unwrap_or(0.0);
        out[11] = f64::NAN;
        out[12] = f64::NAN;
        return out;
    }
    if buf.len() > 1 {
        buf.sort_unstable_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)).then(x.2.cmp(&y.2)));
    }
    let first = buf[0].0;
    let last = buf[buf.len() - 1].0;
    let cut = as_of - inp.trend_window; // recent window: day > cut
    let mut total = 0.0;
    let mut recent = 0.0;
    let mut first_day_spend = 0.0;
    let mut n_days = 0u64;
    let mut prev_day = i32::MIN;
    // Welford over gaps between distinct days
    let mut g_mean = 0.0;
    let mut g_m2 = 0.0;
    let mut mask: u64 = 0;
    cats.clear();
    for &(d, a, c) in buf.iter() {
        total += a;
        if d > cut {
            recent += a;
        }
        if d == first {
            first_day_spend += a;
        }
        if d != prev_day {
            if n_days > 0 {
                let gap = (d - prev_day) as f64;
                let k = n_days as f64; // number of gaps so far, after this one
                let delta = gap - g_mean;
                g_mean += delta / k;
                g_m2 += delta * (gap - g_mean);
            }
            n_days += 1;
            prev_day = d;
        }
        if has_cat {
            if (0..64).contains(&c) {
                mask |= 1u64 << c;
            } else {
                cats.push(c);
            }
        }
    }
    let freq = (n_days - 1) as f64;
    let t_cap = (as_of - first) as f64;
    out[0] = buf.len() as f64;
    out[1] = freq;
    out[2] = (last - first) as f64;
    out[3] = t_cap;
    // mean of the repeat days' totals (lifetimes' monetary_value): (total - first day) / freq
    out[4] = if n_days > 1 {
        (total - first_day_spend) / freq
    } else {
        0.0
    };
    out[5] = total;
    out[6] = recent;
    out[7] = first as f64;
    out[8] = last as f64;
    out[9] = (as_of - last) as f64;
    let start = signup.map(|s| s.min(first)).unwrap_or(first);
    out[10] = (as_of - start).max(0) as f64;
    if n_days > 1 {
        out[11] = g_mean;
        out[12] = (g_m2 / freq).max(0.0).sqrt();
    } else {
        out[11] = f64::NAN;
        out[12] = f64::NAN;
    }
    if has_cat {
        cats.sort_unstable();
        cats.dedup();
        out[13] = (mask.count_ones() as usize + cats.len()) as f64;
    }
    // trend: spend rate in the recent window vs the rate before it, in [-1, 1]
    let earlier_len = (cut - first + 1) as f64;
    out[14] = if earlier_len <= 0.0 {
        0.0
    } else {
        let recent_len = (inp.trend_window as f64).min((as_of - first + 1) as f64);
        let rr = recent / recent_len;
        let er = (total - recent) / earlier_len;
        if rr + er > 0.0 {
            (rr - er) / (rr + er)
        } else {
            0.0
        }
    };
    out
}

/// Classic RFM quintile scores 1..5 over the buyers (0 for prospects): the thresholds are the
/// values at ranks ceil(k n / 5) - 1, k = 1..4, and a user scores 1 + the number of thresholds
/// its value exceeds, so equal values always share a score (ties go to the lower score).
pub fn quintile_scores(v: &[f64], buyers: &[bool]) -> Vec<u8> {
    let mut vals: Vec<f64> = v
        .iter()
        .zip(buyers)
        .filter(|(_, &b)| b)
        .map(|(&x, _)| x)
        .collect();
    let n = vals.len();
    let mut thr = [f64::INFINITY; 4];
    if n > 0 {
        for (k, t) in thr.iter_mut().enumerate() {
            let rank = ((k + 1) * n).div_ceil(5).max(1) - 1;
            let (_, x, _) = vals.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
            *t = *x;
        }
    }
    v.par_iter()
        .zip(buyers.par_iter())
        .with_min_len(CHUNK)
        .map(|(&x, &b)| {
            if b {
                1 + thr.iter().filter(|&&t| x > t).count() as u8
            } else {
                0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        user: &[i64],
        day: &[i32],
        amount: &[f64],
        users: Option<&[i64]>,
        as_of: i32,
    ) -> Features {
        compute(
            &FeatureInput {
                user,
                day,
                amount,
                category: None,
                users,
                signup: None,
                as_of,
                trend_window: 30,
            },
            &Control::new(),
        )
        .unwrap()
    }

    fn col(f: &Features, name: &str) -> Vec<f64> {
        let i = COLUMNS.iter().position(|c| *c == name).unwrap();
        f.values.row(i).to_vec()
    }

    #[test]
    fn lifetimes_conventions() {
        // user 7: days 1, 1, 4, 10 (same-day collapse), a day after as_of ignored
        let user = [7, 3, 7, 7, 7, 7];
        let day = [1, 5, 1, 4, 10, 99];
        let amount = [1.0, 2.0, 2.0, 5.0, 7.0, 100.0];
        let f = run(&user, &day, &amount, Some(&[11]), 20);
        assert_eq!(f.user_id, vec![3, 7, 11]);
        assert_eq!(col(&f, "frequency"), vec![0.0, 2.0, 0.0]);
        assert_eq!(col(&f, "recency"), vec![0.0, 9.0, 0.0]);
        assert_eq!(col(&f, "T"), vec![15.0, 19.0, 0.0]);
        assert_eq!(col(&f, "monetary"), vec![0.0, 6.0, 0.0]);
        assert_eq!(col(&f, "total_spend"), vec![2.0, 15.0, 0.0]);
        assert_eq!(col(&f, "n_transactions"), vec![1.0, 4.0, 0.0]);
        let ipt = col(&f, "ipt_mean");
        assert!(ipt[0].is_nan() && ipt[1] == 4.5 && ipt[2].is_nan());
        assert_eq!(col(&f, "ipt_std")[1], 1.5);
        assert_eq!(f.r_score[2], 0);
    }

    #[test]
    fn sparse_ids_match_dense_ids_and_order_does_not_matter() {
        let n = 5000;
        let mut rng = crate::rng::stream(1, 0);
        use rand::Rng;
        let user: Vec<i64> = (0..n).map(|_| rng.random_range(0..300)).collect();
        let day: Vec<i32> = (0..n).map(|_| rng.random_range(0..100)).collect();
        let amount: Vec<f64> = (0..n).map(|_| rng.random_range(0..50) as f64).collect();
        let a = run(&user, &day, &amount, None, 80);
        let sparse: Vec<i64> = user.iter().map(|u| u * 1_000_000_007 - (1 << 60)).collect();
        let b = run(&sparse, &day, &amount, None, 80);
        assert_eq!(a.values, b.values);
        let mut idx: Vec<usize> = (0..n).collect();
        idx.reverse();
        let u2: Vec<i64> = idx.iter().map(|&i| user[i]).collect();
        let d2: Vec<i32> = idx.iter().map(|&i| day[i]).collect();
        let a2: Vec<f64> = idx.iter().map(|&i| amount[i]).collect();
        let c = run(&u2, &d2, &a2, None, 80);
        assert_eq!(a.values, c.values);
        assert_eq!(a.r_score, c.r_score);
    }

    #[test]
    fn errors_and_quintiles() {
        let e = compute(
            &FeatureInput {
                user: &[1],
                day: &[1],
                amount: &[f64::NAN],
                category: None,
                users: None,
                signup: None,
                as_of: 5,
                trend_window: 30,
            },
            &Control::new(),
        );
        assert!(matches!(e, Err(CoreError::Invalid { arg, .. }) if arg == "amount"));
        let s = quintile_scores(&[1.0, 2.0, 3.0, 4.0, 5.0, 5.0], &[true; 6]);
        assert_eq!(s, vec![1, 1, 2, 3, 4, 4]);
        let s = quintile_scores(&[5.0, 4.0, 3.0, 2.0, 1.0], &[true; 5]);
        assert_eq!(s, vec![5, 4, 3, 2, 1]);
        let s = quintile_scores(&[2.0; 4], &[true, true, true, false]);
        assert_eq!(s, vec![1, 1, 1, 0]);
    }
}
