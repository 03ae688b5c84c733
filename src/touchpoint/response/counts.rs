//! The log and its sufficient statistics per (segment, channel, exposures): aggregation in
//! fixed chunks, merging, scaling.

use super::*;

/// One exposure log: row `i` is a user of segment `group[i]` who received `exposures[i]` exposures
/// of channel `channel[i]` (the randomised frequency arm) with outcomes `converted[i]` and
/// `opted_out[i]` in [0, 1], an optional weight >= 0 and an optional prior fatigue >= 0 (the
/// user's decayed number of earlier touches when the window began; 0 if not given).
#[derive(Clone, Copy, Debug)]
pub struct Log<'a> {
    pub group: &'a [u32],
    pub channel: &'a [u32],
    pub exposures: &'a [u32],
    pub converted: &'a [f64],
    pub opted_out: &'a [f64],
    pub weight: Option<&'a [f64]>,
    pub fatigue: Option<&'a [f64]>,
}

/// Sufficient statistics of a log, dense over (group, channel, exposures): entry
/// `(g * n_channels + c) * n_levels + n`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub n_groups: usize,
    pub n_channels: usize,
    /// `1 + ` the largest number of exposures seen (0 for an empty log).
    pub n_levels: usize,
    pub trials: Vec<f64>,
    pub conversions: Vec<f64>,
    pub opt_outs: Vec<f64>,
    /// Rows per entry (unweighted).
    pub rows: Vec<u64>,
    /// The sufficient statistics per entry and class of prior fatigue ([`fatigue_class`]; entry
    /// `e` class `k` at `e * FATIGUE_CLASSES + k`): weighted trials, conversions and opt-outs,
    /// and the prior fatigue summed weighted by the weight times the opt-out (`fatigue_out`)
    /// and times its complement (`fatigue_kept`). The opt-out likelihood is then exact for the
    /// users who stayed and uses the class's mean fatigue for those who opted out (see
    /// `cell::opt_loglik`); the conversion's uses the class's mean fatigue. Empty in states
    /// written before the fatigue covariate (read as every row in class 0 without fatigue).
    #[serde(default)]
    pub class_trials: Vec<f64>,
    #[serde(default)]
    pub class_conversions: Vec<f64>,
    #[serde(default)]
    pub class_opt_outs: Vec<f64>,
    #[serde(default)]
    pub fatigue_kept: Vec<f64>,
    #[serde(default)]
    pub fatigue_out: Vec<f64>,
}

/// Classes of prior fatigue `f` in the opt-out counts: 0 for `f < 0.5`, then doubling widths
/// (`[0.5, 1.5)`, `[1.5, 3.5)`, ..., the last open): within a class the opted-out users' fatigue
/// is close to its mean, so the Jensen gap of the mean is small.
pub const FATIGUE_CLASSES: usize = 8;

#[inline]
pub(super) fn fatigue_class(f: f64) -> usize {
    if f < 0.5 {
        0
    } else {
        (1 + (f + 0.5).log2().floor() as usize).min(FATIGUE_CLASSES - 1)
    }
}

impl Counts {
    /// Counts of nothing, with room for `n_groups` x `n_channels` cells.
    pub fn empty(n_groups: usize, n_channels: usize) -> Counts {
        Counts {
            n_groups,
            n_channels,
            n_levels: 0,
            trials: Vec::new(),
            conversions: Vec::new(),
            opt_outs: Vec::new(),
            rows: Vec::new(),
            class_trials: Vec::new(),
            class_conversions: Vec::new(),
            class_opt_outs: Vec::new(),
            fatigue_kept: Vec::new(),
            fatigue_out: Vec::new(),
        }
    }

    /// The entries of a `n_groups x n_channels x n_levels` table, or `None` if they overflow.
    fn entries(n_groups: usize, n_channels: usize, n_levels: usize) -> Option<usize> {
        n_groups.checked_mul(n_channels)?.checked_mul(n_levels)
    }

    /// A table of zeros. Its size is set by the log (segments x channels x the most exposures),
    /// so it is checked and allocated fallibly: `ValueError` / `MemoryError` naming `log`.
    pub(super) fn zeros(n_groups: usize, n_channels: usize, n_levels: usize) -> Result<Counts> {
        let len = Self::entries(n_groups, n_channels, n_levels);
        let what = "segments x channels x exposure levels (352 bytes each)";
        let bytes = checked_bytes("log", what, len, 32 + 40 * FATIGUE_CLASSES)?;
        check_fits_memory("log", bytes)?;
        let len = len.unwrap_or_default();
        let wide = len * FATIGUE_CLASSES;
        Ok(Counts {
            n_groups,
            n_channels,
            n_levels,
            trials: crate::error::try_zeroed("log", len)?,
            conversions: crate::error::try_zeroed("log", len)?,
            opt_outs: crate::error::try_zeroed("log", len)?,
            rows: crate::error::try_zeroed("log", len)?,
            class_trials: crate::error::try_zeroed("log", wide)?,
            class_conversions: crate::error::try_zeroed("log", wide)?,
            class_opt_outs: crate::error::try_zeroed("log", wide)?,
            fatigue_kept: crate::error::try_zeroed("log", wide)?,
            fatigue_out: crate::error::try_zeroed("log", wide)?,
        })
    }

    /// Rows counted.
    pub fn n_obs(&self) -> u64 {
        self.rows.iter().sum()
    }

    /// Aggregates a log into counts (groups `< n_groups`, channels `< n_channels`). Errors name
    /// the argument and the first offending row.
    pub fn aggregate(
        log: &Log<'_>,
        n_groups: usize,
        n_channels: usize,
        ctl: &Control,
    ) -> Result<Counts> {
        let n = log.group.len();
        check_len("channel", log.channel.len(), n, "group")?;
        check_len("exposures", log.exposures.len(), n, "group")?;
        check_len("converted", log.converted.len(), n, "group")?;
        check_len("opted_out", log.opted_out.len(), n, "group")?;
        if let Some(w) = log.weight {
            check_len("weight", w.len(), n, "group")?;
        }
        if let Some(f) = log.fatigue {
            check_len("fatigue", f.len(), n, "group")?;
        }
        let n_chunks = n.div_ceil(ROWS);
        ctl.set_total(2 * n_chunks as u64);
        // Pass 1: validation and the largest level (first error in row order).
        let maxes: Vec<Result<u32>> = (0..n_chunks)
            .into_par_iter()
            .map(|i| {
                ctl.check()?;
                let r = validate(log, i * ROWS, ((i + 1) * ROWS).min(n), n_groups, n_channels);
                ctl.advance(1);
                r
            })
            .collect();
        let mut max_n = 0u32;
        for m in maxes {
            max_n = max_n.max(m?);
        }
        let levels = if n == 0 { 0 } else { max_n as usize + 1 };
        let mut out = Counts::zeros(n_groups, n_channels, levels)?;
        if n == 0 {
            return Ok(out);
        }
        // Pass 2: partial tables of fixed chunks, added in chunk order.
        let rows = ROWS.max(out.trials.len());
        let n_chunks = n.div_ceil(rows);
        ctl.set_total(n_chunks as u64);
        let mut first = 0;
        while first < n_chunks {
            let last = (first + BATCH).min(n_chunks);
            let parts: Vec<Result<Counts>> = (first..last)
                .into_par_iter()
                .map(|i| {
                    ctl.check()?;
                    let mut p = Counts::zeros(n_groups, n_channels, levels)?;
                    p.count(log, i * rows, ((i + 1) * rows).min(n));
                    ctl.advance(1);
                    Ok(p)
                })
                .collect();
            for p in parts {
                out.add_same_shape(&p?);
            }
            first = last;
        }
        Ok(out)
    }

    pub(super) fn count(&mut self, log: &Log<'_>, lo: usize, hi: usize) {
        let (nc, nl) = (self.n_channels, self.n_levels);
        for i in lo..hi {
            let e = (log.group[i] as usize * nc + log.channel[i] as usize) * nl
                + log.exposures[i] as usize;
            let w = log.weight.map_or(1.0, |w| w[i]);
            self.trials[e] += w;
            self.conversions[e] += w * log.converted[i];
            self.opt_outs[e] += w * log.opted_out[i];
            self.rows[e] += 1;
            let f = log.fatigue.map_or(0.0, |f| f[i]);
            let k = e * FATIGUE_CLASSES + fatigue_class(f);
            let o = log.opted_out[i];
            self.class_trials[k] += w;
            self.class_opt_outs[k] += w * o;
            self.class_conversions[k] += w * log.converted[i];
            self.fatigue_kept[k] += w * (1.0 - o) * f;
            self.fatigue_out[k] += w * o * f;
        }
    }

    pub(super) fn add_same_shape(&mut self, o: &Counts) {
        for (a, b) in self.trials.iter_mut().zip(&o.trials) {
            *a += b;
        }
        for (a, b) in self.conversions.iter_mut().zip(&o.conversions) {
            *a += b;
        }
        for (a, b) in self.opt_outs.iter_mut().zip(&o.opt_outs) {
            *a += b;
        }
        for (a, b) in self.rows.iter_mut().zip(&o.rows) {
            *a += b;
        }
        for (a, b) in [
            (&mut self.class_trials, &o.class_trials),
            (&mut self.class_opt_outs, &o.class_opt_outs),
            (&mut self.class_conversions, &o.class_conversions),
            (&mut self.fatigue_kept, &o.fatigue_kept),
            (&mut self.fatigue_out, &o.fatigue_out),
        ] {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }

    /// The same counts in a larger table (cells and levels keep their codes).
    pub(super) fn resized(
        &self,
        n_groups: usize,
        n_channels: usize,
        n_levels: usize,
    ) -> Result<Counts> {
        let mut out = Counts::zeros(n_groups, n_channels, n_levels)?;
        for g in 0..self.n_groups {
            for c in 0..self.n_channels {
                for l in 0..self.n_levels {
                    let s = (g * self.n_channels + c) * self.n_levels + l;
                    let d = (g * n_channels + c) * n_levels + l;
                    out.trials[d] = self.trials[s];
                    out.conversions[d] = self.conversions[s];
                    out.opt_outs[d] = self.opt_outs[s];
                    out.rows[d] = self.rows[s];
                    for k in 0..FATIGUE_CLASSES {
                        let (sk, dk) = (s * FATIGUE_CLASSES + k, d * FATIGUE_CLASSES + k);
                        out.class_trials[dk] = self.class_trials[sk];
                        out.class_opt_outs[dk] = self.class_opt_outs[sk];
                        out.class_conversions[dk] = self.class_conversions[sk];
                        out.fatigue_kept[dk] = self.fatigue_kept[sk];
                        out.fatigue_out[dk] = self.fatigue_out[sk];
                    }
                }
            }
        }
        Ok(out)
    }

    /// Adds `other` (e.g. the next window's log) to these counts; the table grows to hold the
    /// groups, channels and levels of both.
    /// Multiplies every weighted count by `f` (rows stay counted as rows).
    pub fn scale(&mut self, f: f64) {
        for v in [
            &mut self.trials,
            &mut self.conversions,
            &mut self.opt_outs,
            &mut self.class_trials,
            &mut self.class_opt_outs,
            &mut self.class_conversions,
            &mut self.fatigue_kept,
            &mut self.fatigue_out,
        ] {
            v.iter_mut().for_each(|x| *x *= f);
        }
    }

    pub fn merge(&mut self, other: &Counts) -> Result<()> {
        let g = self.n_groups.max(other.n_groups);
        let c = self.n_channels.max(other.n_channels);
        let l = self.n_levels.max(other.n_levels);
        if (g, c, l) != (self.n_groups, self.n_channels, self.n_levels) {
            *self = self.resized(g, c, l)?;
        }
        if (g, c, l) == (other.n_groups, other.n_channels, other.n_levels) {
            self.add_same_shape(other);
        } else {
            self.add_same_shape(&other.resized(g, c, l)?);
        }
        Ok(())
    }

    /// A state written before the fatigue covariate has no class tables: every row in class 0,
    /// without fatigue.
    pub(super) fn fill_fatigue(&mut self) {
        let wide = self.trials.len().saturating_mul(FATIGUE_CLASSES);
        if self.class_trials.is_empty() && wide > 0 {
            let spread = |v: &[f64]| {
                let mut out = vec![0.0; wide];
                for (e, x) in v.iter().enumerate() {
                    out[e * FATIGUE_CLASSES] = *x;
                }
                out
            };
            self.class_trials = spread(&self.trials);
            self.class_opt_outs = spread(&self.opt_outs);
            self.class_conversions = spread(&self.conversions);
            self.fatigue_kept = vec![0.0; wide];
            self.fatigue_out = vec![0.0; wide];
        }
    }

    pub(super) fn check(&self) -> Result<()> {
        // Overflowing sizes (a corrupt state) are malformed, never a wrapped length.
        let len = Self::entries(self.n_groups, self.n_channels, self.n_levels);
        let wide = len.and_then(|l| l.checked_mul(FATIGUE_CLASSES));
        let fine = |v: &Vec<f64>| v.iter().all(|x| x.is_finite() && *x >= 0.0);
        let ok = [&self.trials, &self.conversions, &self.opt_outs]
            .iter()
            .all(|v| Some(v.len()) == len && fine(v))
            && [
                &self.class_trials,
                &self.class_opt_outs,
                &self.class_conversions,
                &self.fatigue_kept,
                &self.fatigue_out,
            ]
            .iter()
            .all(|v| Some(v.len()) == wide && fine(v))
            && Some(self.rows.len()) == len
            && self.n_levels <= MAX_EXPOSURES as usize + 1;
        if ok {
            Ok(())
        } else {
            Err(CoreError::State("response counts are malformed".into()))
        }
    }

    /// The non-empty levels of cell `(g, c)`: per number of exposures for the conversion, per
    /// number of exposures and class of prior fatigue for the opt-out.
    pub(super) fn cell(&self, g: usize, c: usize) -> CellData {
        let base = (g * self.n_channels + c) * self.n_levels;
        self.levels(|e| vec![base + e])
    }

    /// The non-empty levels of channel `c`, all groups pooled (summed in group order).
    pub(super) fn pooled(&self, c: usize) -> CellData {
        let (nc, nl) = (self.n_channels, self.n_levels);
        self.levels(|l| (0..self.n_groups).map(|g| (g * nc + c) * nl + l).collect())
    }

    /// The levels of the entries `entries(l)` summed per level `l`.
    fn levels(&self, entries: impl Fn(usize) -> Vec<usize>) -> CellData {
        let mut out = CellData::default();
        for l in 0..self.n_levels {
            let es = entries(l);
            let sum = |v: &[f64]| es.iter().map(|&e| v[e]).sum::<f64>();
            let t = sum(&self.trials);
            if t <= 0.0 {
                continue;
            }
            out.conv.push(Level::of(
                l,
                t,
                sum(&self.conversions),
                sum(&self.opt_outs),
                0.0,
                0.0,
            ));
            for k in 0..FATIGUE_CLASSES {
                let ksum = |v: &[f64]| es.iter().map(|&e| v[e * FATIGUE_CLASSES + k]).sum::<f64>();
                let tk = ksum(&self.class_trials);
                if tk > 0.0 && l > 0 {
                    let (fk, fo) = (ksum(&self.fatigue_kept), ksum(&self.fatigue_out));
                    let lv = Level::of(
                        l,
                        tk,
                        ksum(&self.class_conversions),
                        ksum(&self.class_opt_outs),
                        fk,
                        fo,
                    );
                    out.opt.push(lv);
                    out.conv_f.push((lv, (fk + fo) / tk));
                }
            }
        }
        out
    }
}

/// A cell's (or a channel's) levels: the conversion's per number of exposures, the opt-out's
/// per number of exposures (> 0) and class of prior fatigue, and the conversion's per number
/// of exposures (> 0) and class with the class's mean fatigue (for [`CellData::at_rate`]).
#[derive(Clone, Debug, Default)]
pub(super) struct CellData {
    pub(super) conv: Vec<Level>,
    pub(super) opt: Vec<Level>,
    pub(super) conv_f: Vec<(Level, f64)>,
}

impl CellData {
    /// The levels with the conversion's exposures damped by prior fatigue at `rate`: a user of
    /// fatigue `f` who receives `n` exposures counts `n / (1 + rate f)` (see the module docs).
    /// `rate == 0` or no fatigue: the levels as they are.
    pub(super) fn at_rate(&self, rate: f64) -> CellData {
        if rate <= 0.0 || self.conv_f.iter().all(|(_, f)| *f <= 0.0) {
            return self.clone();
        }
        let mut conv: Vec<Level> = self.conv.iter().filter(|l| l.n == 0.0).copied().collect();
        conv.extend(self.conv_f.iter().map(|(l, f)| {
            let n = l.n / (1.0 + rate * f);
            Level {
                n,
                ln_n: n.ln(),
                ..*l
            }
        }));
        conv.sort_by(|a, b| a.n.total_cmp(&b.n));
        CellData {
            conv,
            opt: self.opt.clone(),
            conv_f: self.conv_f.clone(),
        }
    }

    /// The levels with the opt-out's fatigue loads of a layout (`loads[l]` for level `l`);
    /// `None`: the quadratic loads they were made with.
    pub(super) fn with_loads(mut self, loads: Option<&[(f64, f64)]>) -> CellData {
        if let Some(t) = loads {
            for l in &mut self.opt {
                (l.w, l.p) = t[l.n as usize];
            }
        }
        self
    }

    pub(super) fn is_empty(&self) -> bool {
        self.conv.is_empty()
    }

    /// The levels with the opt-out's prior fatigue scaled by `carry` (the share of it that acts
    /// over the window; see `fit::fatigue_carry`).
    pub(super) fn at_carry(&self, carry: f64) -> CellData {
        let mut out = self.clone();
        if carry != 1.0 {
            for l in &mut out.opt {
                l.fk *= carry;
                l.fo *= carry;
            }
        }
        out
    }

    /// Weighted trials.
    pub(super) fn trials(&self) -> f64 {
        self.conv.iter().map(|l| l.t).sum()
    }
}

pub(super) fn validate(
    log: &Log<'_>,
    lo: usize,
    hi: usize,
    n_groups: usize,
    n_channels: usize,
) -> Result<u32> {
    let bad = |arg: &str, i: usize, msg: String| {
        Err(CoreError::invalid(arg, format!("{msg} at row {i}")))
    };
    let mut max_n = 0u32;
    for i in lo..hi {
        if log.group[i] as usize >= n_groups {
            return bad(
                "group",
                i,
                format!("must be < {n_groups}, found {}", log.group[i]),
            );
        }
        if log.channel[i] as usize >= n_channels {
            return bad(
                "channel",
                i,
                format!(
                    "unknown channel code {} (must be < {n_channels})",
                    log.channel[i]
                ),
            );
        }
        let e = log.exposures[i];
        if e > MAX_EXPOSURES {
            return bad(
                "exposures",
                i,
                format!("must be <= {MAX_EXPOSURES}, found {e}"),
            );
        }
        max_n = max_n.max(e);
        for (arg, v) in [
            ("converted", log.converted[i]),
            ("opted_out", log.opted_out[i]),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(arg, i, format!("must be in [0, 1], found {v}"));
            }
        }
        if let Some(w) = log.weight {
            if !(w[i].is_finite() && w[i] >= 0.0) {
                return bad(
                    "weight",
                    i,
                    format!("must be finite and >= 0, found {}", w[i]),
                );
            }
        }
        if let Some(f) = log.fatigue {
            if !(f[i].is_finite() && f[i] >= 0.0) {
                return bad(
                    "fatigue",
                    i,
                    format!("must be finite and >= 0, found {}", f[i]),
                );
            }
        }
    }
    Ok(max_n)
}

/// Counts at one level of one cell: `fk` is the prior fatigue summed over the users who did not
/// opt out (weighted), `fo` the mean prior fatigue of those who did; `w` and `p` the level's
/// fatigue load (the within-window load and the weight of the prior fatigue, see `load`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Level {
    pub(super) n: f64,
    pub(super) ln_n: f64,
    pub(super) t: f64,
    pub(super) y: f64,
    pub(super) o: f64,
    pub(super) fk: f64,
    pub(super) fo: f64,
    pub(super) w: f64,
    pub(super) p: f64,
}

impl Level {
    /// From the weighted sums (rounding of weighted sums may leave conversions a hair above
    /// trials).
    /// The load is the quadratic one (no layout; see [`CellData::with_loads`]).
    pub(super) fn of(l: usize, t: f64, y: f64, o: f64, fk: f64, fo: f64) -> Level {
        let o = o.min(t);
        let (w, p) = super::load::quadratic(l as f64);
        Level {
            w,
            p,
            n: l as f64,
            ln_n: (l as f64).ln(),
            t,
            y: y.min(t),
            o,
            fk,
            fo: if o > 0.0 { fo / o } else { 0.0 },
        }
    }
}
