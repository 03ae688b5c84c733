//! The log and its sufficient statistics per (segment, channel, exposures): aggregation in
//! fixed chunks, merging, scaling.

use super::*;

/// One exposure log: row `i` is a user of segment `group[i]` who received `exposures[i]` exposures
/// of channel `channel[i]` (the randomised frequency arm) with outcomes `converted[i]` and
/// `opted_out[i]` in [0, 1] and an optional weight >= 0.
#[derive(Clone, Copy, Debug)]
pub struct Log<'a> {
    pub group: &'a [u32],
    pub channel: &'a [u32],
    pub exposures: &'a [u32],
    pub converted: &'a [f64],
    pub opted_out: &'a [f64],
    pub weight: Option<&'a [f64]>,
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
        let what = "segments x channels x exposure levels (32 bytes each)";
        let bytes = checked_bytes("log", what, len, 32)?;
        check_fits_memory("log", bytes)?;
        let len = len.unwrap_or_default();
        Ok(Counts {
            n_groups,
            n_channels,
            n_levels,
            trials: crate::error::try_zeroed("log", len)?,
            conversions: crate::error::try_zeroed("log", len)?,
            opt_outs: crate::error::try_zeroed("log", len)?,
            rows: crate::error::try_zeroed("log", len)?,
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
                }
            }
        }
        Ok(out)
    }

    /// Adds `other` (e.g. the next window's log) to these counts; the table grows to hold the
    /// groups, channels and levels of both.
    /// Multiplies every weighted count by `f` (rows stay counted as rows).
    pub fn scale(&mut self, f: f64) {
        for v in [&mut self.trials, &mut self.conversions, &mut self.opt_outs] {
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

    pub(super) fn check(&self) -> Result<()> {
        // Overflowing sizes (a corrupt state) are malformed, never a wrapped length.
        let len = Self::entries(self.n_groups, self.n_channels, self.n_levels);
        let ok = [&self.trials, &self.conversions, &self.opt_outs]
            .iter()
            .all(|v| Some(v.len()) == len && v.iter().all(|x| x.is_finite() && *x >= 0.0))
            && Some(self.rows.len()) == len
            && self.n_levels <= MAX_EXPOSURES as usize + 1;
        if ok {
            Ok(())
        } else {
            Err(CoreError::State("response counts are malformed".into()))
        }
    }

    /// The non-empty levels of cell `(g, c)`.
    pub(super) fn cell(&self, g: usize, c: usize) -> Vec<Level> {
        let base = (g * self.n_channels + c) * self.n_levels;
        (0..self.n_levels)
            .filter(|&l| self.trials[base + l] > 0.0)
            .map(|l| Level::new(l, base + l, self))
            .collect()
    }

    /// The non-empty levels of channel `c`, all groups pooled (summed in group order).
    pub(super) fn pooled(&self, c: usize) -> Vec<Level> {
        let mut t = vec![0.0; self.n_levels];
        let mut y = vec![0.0; self.n_levels];
        let mut o = vec![0.0; self.n_levels];
        for g in 0..self.n_groups {
            let base = (g * self.n_channels + c) * self.n_levels;
            for l in 0..self.n_levels {
                t[l] += self.trials[base + l];
                y[l] += self.conversions[base + l];
                o[l] += self.opt_outs[base + l];
            }
        }
        (0..self.n_levels)
            .filter(|&l| t[l] > 0.0)
            .map(|l| Level {
                n: l as f64,
                ln_n: (l as f64).ln(),
                t: t[l],
                y: y[l].min(t[l]),
                o: o[l].min(t[l]),
            })
            .collect()
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
    }
    Ok(max_n)
}

/// Counts at one level of one cell.
#[derive(Clone, Copy, Debug)]
pub(super) struct Level {
    pub(super) n: f64,
    pub(super) ln_n: f64,
    pub(super) t: f64,
    pub(super) y: f64,
    pub(super) o: f64,
}

impl Level {
    pub(super) fn new(l: usize, e: usize, c: &Counts) -> Level {
        // Rounding of weighted sums may leave conversions a hair above trials.
        Level {
            n: l as f64,
            ln_n: (l as f64).ln(),
            t: c.trials[e],
            y: c.conversions[e].min(c.trials[e]),
            o: c.opt_outs[e].min(c.trials[e]),
        }
    }
}
