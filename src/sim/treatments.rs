//! Treatments and channel rules: a window's treatment table is checked (ranges, the window, then
//! consent, device, opt-outs and daily caps per channel, the first bad row named) and grouped by
//! user, deterministically whatever the thread count, before any response is drawn.

use super::config::*;
use super::env::Env;
use super::model::Model;
use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::parallel::CHUNK;
use rayon::prelude::*;

/// Treatments grouped by user: per fixed chunk of users, offsets (empty if no touches) and rows.
pub struct Grouped {
    chunks: Vec<(Vec<u32>, Vec<Touch>)>,
}

impl Grouped {
    #[inline]
    pub fn user(&self, uid: usize) -> &[Touch] {
        let (off, ts) = &self.chunks[uid / CHUNK];
        if off.is_empty() {
            return &[];
        }
        let j = uid % CHUNK;
        &ts[off[j] as usize..off[j + 1] as usize]
    }
}

/// One treatment row after name -> code conversion.
#[derive(Clone, Copy, Debug, Default)]
pub struct Touch {
    pub row: u32,
    pub day: i32,
    pub benefit: u8,
    pub channel: u8,
    pub content: u8,
}

impl Env {
    /// Checks the treatment table against the ranges and channel rules; names the first bad row.
    #[allow(clippy::too_many_arguments)]
    pub fn check_treatments(
        &self,
        m: &Model,
        user: &[i64],
        benefit: &[u8],
        channel: &[u8],
        content: &[u8],
        day: &[i64],
        start: i64,
        days: i64,
    ) -> Result<()> {
        let t = user.len();
        for (name, len) in [
            ("benefit", benefit.len()),
            ("channel", channel.len()),
            ("content", content.len()),
            ("day", day.len()),
        ] {
            crate::error::check_len(
                &format!("treatments['{name}']"),
                len,
                t,
                "treatments['user_id']",
            )?;
        }
        if start < self.day {
            return Err(CoreError::invalid(
                "start_day",
                format!(
                    "must be >= the environment's current day {} (the past cannot be changed), got {start}",
                    self.day
                ),
            ));
        }
        if days < 1 {
            return Err(CoreError::invalid(
                "days",
                format!("must be >= 1, got {days}"),
            ));
        }
        if t > u32::MAX as usize {
            return Err(CoreError::invalid("treatments", "too many rows"));
        }
        let n = self.users.len() as i64;
        let nb = m.cfg.response.benefits.len() as u8;
        let nk = m.cfg.response.contents.len() as u8;
        // Range checks, in parallel, reporting the first bad row.
        let first_bad = (0..t)
            .into_par_iter()
            .with_min_len(CHUNK)
            .filter_map(|i| {
                let msg = if user[i] < 0 || user[i] >= n {
                    Some((
                        "user_id",
                        format!("{} is not a user id (0 to {})", user[i], n - 1),
                    ))
                } else if benefit[i] >= nb {
                    Some(("benefit", format!("code {} is not a benefit", benefit[i])))
                } else if channel[i] as usize >= CHANNELS.len() {
                    Some(("channel", format!("code {} is not a channel", channel[i])))
                } else if content[i] >= nk {
                    Some(("content", format!("code {} is not a content", content[i])))
                } else if day[i] < start || day[i] >= start + days {
                    Some((
                        "day",
                        format!(
                            "{} is outside the window [{start}, {}) (start_day, start_day + days)",
                            day[i],
                            start + days
                        ),
                    ))
                } else {
                    None
                };
                msg.map(|(c, m)| (i, c, m))
            })
            .min_by_key(|x| x.0);
        if let Some((i, col, msg)) = first_bad {
            return Err(CoreError::invalid(
                format!("treatments['{col}']"),
                format!("row {i}: {msg}"),
            ));
        }
        Ok(())
    }

    /// Groups treatments by user: rows are bucketed by fixed chunk of users (in row order, from
    /// fixed blocks of rows, in parallel), then counting-sorted by user inside each chunk; rows of
    /// one user are sorted by (day, channel, row). The result never depends on the thread count.
    pub(crate) fn group(&self, user: &[i64], mk: impl Fn(usize) -> Touch + Sync) -> Grouped {
        const ROWS: usize = 1 << 16;
        let n = self.users.len();
        let n_chunks = n.div_ceil(CHUNK);
        let blocks: Vec<Vec<Vec<u32>>> = user
            .par_chunks(ROWS)
            .enumerate()
            .map(|(bi, us)| {
                let mut b: Vec<Vec<u32>> = vec![Vec::new(); n_chunks];
                for (j, &u) in us.iter().enumerate() {
                    b[u as usize / CHUNK].push((bi * ROWS + j) as u32);
                }
                b
            })
            .collect();
        let chunks = (0..n_chunks)
            .into_par_iter()
            .map(|c| {
                let lo = c * CHUNK;
                let len = ((c + 1) * CHUNK).min(n) - lo;
                let total: usize = blocks.iter().map(|b| b[c].len()).sum();
                if total == 0 {
                    return (Vec::new(), Vec::new());
                }
                let mut off = vec![0u32; len + 1];
                for b in &blocks {
                    for &r in &b[c] {
                        off[user[r as usize] as usize - lo + 1] += 1;
                    }
                }
                for j in 0..len {
                    off[j + 1] += off[j];
                }
                let mut pos = off[..len].to_vec();
                let mut ts = vec![Touch::default(); total];
                for b in &blocks {
                    for &r in &b[c] {
                        let j = user[r as usize] as usize - lo;
                        ts[pos[j] as usize] = mk(r as usize);
                        pos[j] += 1;
                    }
                }
                for j in 0..len {
                    let s = &mut ts[off[j] as usize..off[j + 1] as usize];
                    if s.len() > 1 {
                        s.sort_by_key(|t| (t.day, t.channel, t.row));
                    }
                }
                (off, ts)
            })
            .collect();
        Grouped { chunks }
    }

    /// Channel rules (consent, device, opt-outs, daily caps): the first violating row, if any.
    pub(crate) fn check_rules(&self, m: &Model, grouped: &Grouped) -> Result<()> {
        let n = self.users.len();
        let n_chunks = n.div_ceil(CHUNK);
        let first = (0..n_chunks)
            .into_par_iter()
            .filter_map(|c| {
                let mut best: Option<(u32, String, String)> = None;
                for uid in c * CHUNK..((c + 1) * CHUNK).min(n) {
                    let ts = grouped.user(uid);
                    if ts.is_empty() {
                        continue;
                    }
                    let u = self.statics[uid].expand(m);
                    let st = &self.users[uid];
                    for (j, t) in ts.iter().enumerate() {
                        let ch = t.channel as usize;
                        let cname = CHANNELS[ch];
                        let err = if !u.reachable(ch) {
                            let why = match ch {
                                CH_PUSH => "push needs the app and push consent (users.push_opt_in)",
                                CH_SMS => "sms needs SMS consent (users.sms_opt_in)",
                                CH_EMAIL => "email needs e-mail consent (users.email_opt_in)",
                                _ => "in_app needs the app (users.has_app)",
                            };
                            Some(("channel".to_string(), format!("user {uid} cannot receive {cname}: {why}")))
                        } else if st.optout & (1 << ch) != 0 {
                            Some((
                                "channel".to_string(),
                                format!("user {uid} has opted out of {cname} (see Environment.opted_out)"),
                            ))
                        } else {
                            let cap = m.cfg.response.channels.get(ch).daily_cap as usize;
                            let same = ts[..=j]
                                .iter()
                                .rev()
                                .take_while(|o| o.day == t.day)
                                .filter(|o| o.channel == t.channel)
                                .count();
                            if same > cap {
                                Some((
                                    "day".to_string(),
                                    format!(
                                        "user {uid} gets {same} {cname} touches on day {}; the cap is {cap} per day (config.response.channels.{cname}.daily_cap)",
                                        t.day
                                    ),
                                ))
                            } else {
                                None
                            }
                        };
                        if let Some((col, msg)) = err {
                            if best.as_ref().is_none_or(|b| t.row < b.0) {
                                best = Some((t.row, col, msg));
                            }
                        }
                    }
                }
                best
            })
            .min_by_key(|x| x.0);
        if let Some((row, col, msg)) = first {
            return Err(CoreError::invalid(
                format!("treatments['{col}']"),
                format!("row {row}: {msg}"),
            ));
        }
        Ok(())
    }

    /// Whether each (user, channel) pair passes the channel rules (consent, app, opt-outs): what
    /// [`Env::check_rules`] requires of every touch, without the daily caps.
    pub fn eligible(&self, m: &Model, user: &[i64], channel: &[u8]) -> Result<Vec<bool>> {
        crate::error::check_len("channel", channel.len(), user.len(), "user_id")?;
        let n = self.users.len() as i64;
        if let Some(i) = user.iter().position(|u| *u < 0 || *u >= n) {
            return Err(CoreError::invalid(
                "user_id",
                format!(
                    "{} at position {i} is not a user id (0 to {})",
                    user[i],
                    n - 1
                ),
            ));
        }
        if let Some(i) = channel.iter().position(|c| *c as usize >= CHANNELS.len()) {
            return Err(CoreError::invalid(
                "channel",
                format!("code {} at position {i} is not a channel", channel[i]),
            ));
        }
        Ok(user
            .par_iter()
            .zip(channel.par_iter())
            .with_min_len(CHUNK)
            .map(|(&u, &c)| {
                let uid = u as usize;
                self.statics[uid].expand(m).reachable(c as usize)
                    && self.users[uid].optout & (1 << c) == 0
            })
            .collect())
    }

    /// Validates a treatment table (ranges, window, channel rules: the first bad row named) and
    /// groups it by user: what [`Env::apply`] and [`Env::expected_outcome`] both start with.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn checked_group(
        &self,
        m: &Model,
        user: &[i64],
        benefit: &[u8],
        channel: &[u8],
        content: &[u8],
        day: &[i64],
        start: i64,
        days: i64,
        ctl: &Control,
    ) -> Result<Grouped> {
        self.check_treatments(m, user, benefit, channel, content, day, start, days)?;
        ctl.check()?;
        let grouped = self.group(user, |i| Touch {
            row: i as u32,
            day: day[i] as i32,
            benefit: benefit[i],
            channel: channel[i],
            content: content[i],
        });
        ctl.check()?;
        self.check_rules(m, &grouped)?;
        Ok(grouped)
    }
}
