//! Per-user features from a raw transaction log, in one parallel pass and one copy.
//!
//! Algorithm (no comparison sort of the log):
//! 1. map user ids to slots: `id - min` when the ids are dense enough
//!    (`max - min < 2 * rows + 2^20`), else the index among the sorted unique ids (open-addressing
//!    hash table);
//! 2. sort the rows by slot in two cache-friendly passes (the only copy of the log): a radix
//!    partition by the slot's high bits into at most ~1024 buckets (per-block histograms of fixed
//!    row blocks, offsets in block order, one scatter), then per bucket a counting sort by slot
//!    in a cache-sized scratch buffer (no atomics, no random writes across the whole log);
//! 3. per user, in parallel chunks of users: stable-sort the small segment by day (rows keep their
//!    log order, so results never depend on threads), collapse same-day purchases into one
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

/// One transaction in the per-user scatter (16 bytes: one cache line fetch per row).
#[derive(Clone, Copy)]
struct Rec {
    amount: f64,
    day: i32,
    cat: i32,
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
            IdMap::Dense { min } => (id - min) as usize as u32,
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

/// Rows per block of the radix partition (each block has its own bucket histogram and cursors:
/// plain, non-atomic writes). Fixed, so the work split never depends on the thread count.
const PBLOCK: usize = 1 << 18;

/// Slots per bucket of the radix partition = `1 << bucket_shift`: at most ~1024 buckets, so the
/// partition writes few streams, and a bucket's rows and counters fit in cache for the local
/// counting sort. Depends only on the number of slots (never on threads).
fn bucket_shift(n_slots: usize) -> u32 {
    let mut shift = 10u32;
    while (n_slots >> shift) > 1024 {
        shift += 1;
    }
    shift
}

/// Maps user ids to slots: dense ids use `id - min` directly, sparse ids an open-addressing
/// table over the sorted unique ids. Returns (map, number of slots, sorted ids of the slots for
/// the sparse case).
fn build_map(
    inp: &FeatureInput<'_>,
    mm: Option<(i64, i64)>,
    ctl: &Control,
) -> Result<(IdMap, usize, Option<Vec<i64>>)> {
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
        return Ok((IdMap::Dense { min: 0 }, 0, None));
    }
    let range = (hi as i128 - lo as i128 + 1) as u128;
    let total = (n + listed.len()) as u128;
    if range <= 2 * total + (1 << 20) && range < u32::MAX as u128 {
        return Ok((IdMap::Dense { min: lo }, range as usize, None));
    }
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
    let k = ids.len();
    Ok((IdMap::Hash { keys, vals, mask }, k, Some(ids)))
}

impl IdMap {
    /// The slot of a user id (dense: id - min; sparse: index among the sorted unique ids).
    #[inline]
    fn slot(&self, id: i64) -> usize {
        match self {
            IdMap::Dense { min } => (id - min) as usize,
            _ => self.get(id) as usize,
        }
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
    if n >= u32::MAX as usize {
        return Err(CoreError::invalid(
            "user",
            "more than 2^32 - 1 transactions",
        ));
    }
    ctl.set_total(4);
    let mm = scan(inp, ctl)?;
    ctl.advance(1);
    let (map, n_slots, sparse_ids) = build_map(inp, mm, ctl)?;
    let dense_min = match &map {
        IdMap::Dense { min } => Some(*min),
        _ => None,
    };

    // 1. radix partition of the rows by slot bucket (high bits of the slot): per-block bucket
    //    histograms, deterministic offsets (blocks in row order), one scatter into the buckets
    //    (few write streams: cache and TLB friendly); `cat` temporarily holds the local slot.
    let shift = bucket_shift(n_slots);
    let n_buckets = if n_slots == 0 {
        0
    } else {
        ((n_slots - 1) >> shift) + 1
    };
    let n_pblocks = n.div_ceil(PBLOCK);
    let hists: Vec<Vec<u32>> = (0..n_pblocks)
        .into_par_iter()
        .map(|k| -> Result<Vec<u32>> {
            ctl.check()?;
            let mut h = vec![0u32; n_buckets];
            for i in k * PBLOCK..((k + 1) * PBLOCK).min(n) {
                if inp.day[i] <= inp.as_of {
                    h[map.slot(inp.user[i]) >> shift] += 1;
                }
            }
            Ok(h)
        })
        .collect::<Result<_>>()?;
    // offsets: bucket b starts at bstart[b]; block k writes its rows of b after blocks < k
    let mut bstart = vec![0usize; n_buckets + 1];
    let mut offs: Vec<Vec<u32>> = vec![vec![0u32; n_buckets]; n_pblocks];
    let mut acc = 0u32;
    for b in 0..n_buckets {
        bstart[b] = acc as usize;
        for k in 0..n_pblocks {
            offs[k][b] = acc;
            acc += hists[k][b];
        }
    }
    bstart[n_buckets] = acc as usize;
    drop(hists);
    let m = acc as usize;
    let mut recs: Vec<Rec> = Vec::with_capacity(m);
    let mut cat_part: Vec<i32> = Vec::with_capacity(if inp.category.is_some() { m } else { 0 });
    {
        let pr = SyncPtr(recs.as_mut_ptr());
        let pc = SyncPtr(cat_part.as_mut_ptr());
        offs.par_iter_mut()
            .enumerate()
            .try_for_each(|(k, cur)| -> Result<()> {
                ctl.check()?;
                for i in k * PBLOCK..((k + 1) * PBLOCK).min(n) {
                    if inp.day[i] <= inp.as_of {
                        let s = map.slot(inp.user[i]);
                        let b = s >> shift;
                        let p = cur[b] as usize;
                        cur[b] += 1;
                        let rec = Rec {
                            amount: inp.amount[i],
                            day: inp.day[i],
                            cat: (s & ((1usize << shift) - 1)) as i32,
                        };
                        // SAFETY: the cursors of (block, bucket) cover disjoint ranges of 0..m
                        // whose lengths are exactly the counts, so p < m is written once.
                        unsafe { pr.write(p, rec) };
                        if let Some(c) = inp.category {
                            // SAFETY: as above (cat_part has capacity m when category is set).
                            unsafe { pc.write(p, c[i]) };
                        }
                    }
                }
                Ok(())
            })?;
        // SAFETY: every position in 0..m was written exactly once above.
        unsafe { recs.set_len(m) };
        if inp.category.is_some() {
            // SAFETY: as above.
            unsafe { cat_part.set_len(m) };
        }
    }
    drop(offs);
    ctl.advance(1);

    // 2. per bucket (in cache): count the rows of each slot, counting sort by slot into a
    //    scratch buffer, copy back; `cat` gets the category again
    let mut cnt = vec![0u32; n_slots];
    {
        let mut rest: &mut [Rec] = &mut recs;
        let mut parts: Vec<(usize, &mut [Rec], &mut [u32])> = Vec::with_capacity(n_buckets);
        let mut cnt_rest: &mut [u32] = &mut cnt;
        for b in 0..n_buckets {
            let (r, tail) = rest.split_at_mut(bstart[b + 1] - bstart[b]);
            rest = tail;
            let w = (1usize << shift).min(cnt_rest.len());
            let (c, ctail) = cnt_rest.split_at_mut(w);
            cnt_rest = ctail;
            parts.push((bstart[b], r, c));
        }
        let cat_part = &cat_part;
        parts.into_par_iter().try_for_each_init(
            || (Vec::<Rec>::new(), Vec::<u32>::new()),
            |(tmp, cur), (off, r, c)| -> Result<()> {
                ctl.check()?;
                for x in r.iter() {
                    c[x.cat as usize] += 1;
                }
                cur.clear();
                let mut a = 0u32;
                for &v in c.iter() {
                    cur.push(a);
                    a += v;
                }
                tmp.clear();
                tmp.reserve(r.len());
                let pt = tmp.as_mut_ptr();
                for (j, x) in r.iter().enumerate() {
                    let l = x.cat as usize;
                    let p = cur[l] as usize;
                    cur[l] += 1;
                    let rec = Rec {
                        amount: x.amount,
                        day: x.day,
                        cat: if cat_part.is_empty() {
                            0
                        } else {
                            cat_part[off + j]
                        },
                    };
                    // SAFETY: p < r.len() <= capacity, each p written once (counting sort).
                    unsafe { pt.add(p).write(rec) };
                }
                // SAFETY: all r.len() positions were written above.
                unsafe { tmp.set_len(r.len()) };
                r.copy_from_slice(tmp);
                Ok(())
            },
        )?;
    }
    drop(cat_part);

    // output rows (slots with rows or listed users) and their row ranges
    let mut is_listed = vec![false; if inp.users.is_some() { n_slots } else { 0 }];
    if let Some(listed) = inp.users {
        for &u in listed {
            is_listed[map.slot(u)] = true;
        }
    }
    drop(map);
    let mut ids: Vec<i64> = Vec::new();
    let mut starts: Vec<u32> = Vec::with_capacity(n_slots.min(n + 1) + 1);
    let mut acc = 0u32;
    for (s, &tot) in cnt.iter().enumerate() {
        if tot > 0 || (!is_listed.is_empty() && is_listed[s]) {
            starts.push(acc);
            ids.push(match (dense_min, &sparse_ids) {
                (Some(m), _) => m + s as i64,
                (None, Some(v)) => v[s],
                _ => unreachable!(),
            });
        }
        acc += tot;
    }
    starts.push(acc);
    drop(is_listed);
    drop(cnt);
    let n_out = ids.len();
    if n_out >= EMPTY as usize {
        return Err(CoreError::invalid(
            "user",
            "more than 2^32 - 2 distinct users",
        ));
    }
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
                buf.extend(recs[a..b].iter().map(|r| (r.day, r.amount, r.cat)));
                let signup = signup_of.as_ref().map(|v| v[j]).filter(|&s| s != i32::MAX);
                let row = user_features(&mut buf, &mut cats, has_cat, inp, signup);
                for (i, v) in row.iter().enumerate() {
                    block[[i, k]] = *v;
                }
            }
            Ok(())
        })?;
    drop(recs);
    ctl.advance(1);

    let buyers: Vec<bool> = values.row(0).iter().map(|&c| c > 0.0).collect();
    let (r_score, (f_score, m_score)) = rayon::join(
        || quintile_scores(values.row(8).as_slice().unwrap(), &buyers),
        || {
            rayon::join(
                || quintile_scores(values.row(1).as_slice().unwrap(), &buyers),
                || quintile_scores(values.row(5).as_slice().unwrap(), &buyers),
            )
        },
    );
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
    // exact integer sums of the gaps between distinct days
    let mut g_sum: i64 = 0;
    let mut g_sq: i128 = 0;
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
                let gap = (d - prev_day) as i64;
                g_sum += gap;
                g_sq += (gap * gap) as i128;
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
        let k = (n_days - 1) as i128;
        out[11] = g_sum as f64 / freq;
        // population variance = (k sum g^2 - (sum g)^2) / k^2, exact in integers
        let num = k * g_sq - (g_sum as i128) * (g_sum as i128);
        out[12] = ((num as f64) / ((k * k) as f64)).max(0.0).sqrt();
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn totals_and_bounds_hold(
            rows in proptest::collection::vec((0i64..20, 0i32..50, 0u32..100), 1..300),
            as_of in 0i32..60,
        ) {
            let user: Vec<i64> = rows.iter().map(|r| r.0 * 7919).collect();
            let day: Vec<i32> = rows.iter().map(|r| r.1).collect();
            let amount: Vec<f64> = rows.iter().map(|r| r.2 as f64).collect();
            let f = run(&user, &day, &amount, None, as_of);
            let n_tx: f64 = col(&f, "n_transactions").iter().sum();
            let kept = day.iter().filter(|&&d| d <= as_of).count() as f64;
            proptest::prop_assert_eq!(n_tx, kept);
            let (fr, rc, tt, tr) = (col(&f, "frequency"), col(&f, "recency"), col(&f, "T"), col(&f, "trend"));
            for i in 0..f.user_id.len() {
                proptest::prop_assert!(fr[i] <= rc[i] && rc[i] <= tt[i]);
                proptest::prop_assert!((-1.0..=1.0).contains(&tr[i]));
            }
            proptest::prop_assert!(f.user_id.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
