//! The world's oracle (scoring only): every user's options under the *true* effects, for the
//! allocation core to choose among at a budget.
//!
//! A user is a multiple-choice item over the catalogue's actions; its Lagrangian best response at
//! any price lies on the upper concave hull of its `(expected cost, true value)` points
//! ([`upper_hull`](crate::numeric::upper_hull)). Only hull points are kept, computed over fixed
//! chunks of users, so that no users x actions table is ever built (1M users x 120 actions keeps
//! a few million candidates, not 120M rows).

use super::config::CHANNELS;
use super::env::Env;
use super::model::Model;
use super::response::expected_effect;
use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::numeric::upper_hull;
use crate::parallel::CHUNK;
use rayon::prelude::*;

/// What the oracle maximises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Incremental profit: margin x incremental GMV - expected incentive and channel cost.
    Profit,
    /// Incremental GMV.
    Gmv,
}

/// One row per kept (user, action) option: the true effects of delivering it.
#[derive(Debug, Default)]
pub struct Candidates {
    pub user: Vec<i64>,
    /// Index into the actions passed in.
    pub action: Vec<u32>,
    pub value: Vec<f64>,
    pub cost: Vec<f64>,
    pub gmv: Vec<f64>,
    pub profit: Vec<f64>,
    pub conversion: Vec<f64>,
}

type Row = (i64, u32, [f64; 5]);

impl Env {
    /// The hull options of each of `users` over the actions `(benefit[a], channel[a],
    /// content[a])` delivered on `start` for `days` days, given the current state; options of
    /// non-positive value are never kept. Rows are sorted by user, then cost.
    #[allow(clippy::too_many_arguments)]
    pub fn oracle_candidates(
        &self,
        m: &Model,
        users: &[i64],
        benefit: &[u8],
        channel: &[u8],
        content: &[u8],
        start: i64,
        days: i64,
        objective: Objective,
        ctl: &Control,
    ) -> Result<Candidates> {
        let rc = &m.cfg.response;
        let n = self.users.len() as i64;
        if let Some(u) = users.iter().find(|&&u| u < 0 || u >= n) {
            return Err(CoreError::invalid(
                "user_ids",
                format!("user {u} is out of range (the world has {n} users)"),
            ));
        }
        crate::error::check_len("channel", channel.len(), benefit.len(), "benefit")?;
        crate::error::check_len("content", content.len(), benefit.len(), "benefit")?;
        for (a, ((&b, &c), &k)) in benefit.iter().zip(channel).zip(content).enumerate() {
            if b as usize >= rc.benefits.len()
                || c as usize >= CHANNELS.len()
                || k as usize >= rc.contents.len()
            {
                return Err(CoreError::invalid(
                    "action_ids",
                    format!("action {a} has a benefit, channel or content code out of range"),
                ));
            }
        }
        if start < self.day {
            return Err(CoreError::invalid(
                "start_day",
                format!("{start} is before the world's current day {}", self.day),
            ));
        }
        ctl.set_total(users.len() as u64);
        let chunks: Vec<Vec<Row>> = users
            .par_chunks(CHUNK)
            .map(|chunk| -> Result<Vec<Row>> {
                ctl.check()?;
                let mut rows = Vec::new();
                let mut pts: Vec<(f64, f64, usize)> = Vec::with_capacity(benefit.len());
                let mut eff = Vec::with_capacity(benefit.len());
                let mut hull = Vec::new();
                for &uid in chunk {
                    // Per user: a user's work grows with `days` and the number of actions.
                    ctl.check()?;
                    let u = self.statics[uid as usize].expand(m);
                    let st = &self.users[uid as usize];
                    pts.clear();
                    eff.clear();
                    for a in 0..benefit.len() {
                        let e = expected_effect(
                            m,
                            &u,
                            st,
                            benefit[a] as usize,
                            channel[a] as usize,
                            content[a] as usize,
                            start,
                            days,
                        );
                        let cost = e.expected_incentive_cost + e.channel_cost;
                        let profit = rc.margin * e.incremental_gmv - cost;
                        let value = match objective {
                            Objective::Profit => profit,
                            Objective::Gmv => e.incremental_gmv,
                        };
                        eff.push([
                            value,
                            cost,
                            e.incremental_gmv,
                            profit,
                            e.incremental_conversion,
                        ]);
                        if e.eligible && value > 0.0 {
                            pts.push((cost, value, a));
                        }
                    }
                    // by cost, the better of equal costs first, then by action (deterministic)
                    pts.sort_by(|x, y| {
                        x.0.total_cmp(&y.0)
                            .then(y.1.total_cmp(&x.1))
                            .then(x.2.cmp(&y.2))
                    });
                    pts.dedup_by(|later, first| later.0 == first.0);
                    upper_hull(pts.iter().copied(), &mut hull);
                    rows.extend(hull.iter().map(|&a| (uid, a as u32, eff[a])));
                }
                ctl.advance(chunk.len() as u64);
                Ok(rows)
            })
            .collect::<Result<_>>()?;
        let mut out = Candidates::default();
        for (uid, a, e) in chunks.into_iter().flatten() {
            out.user.push(uid);
            out.action.push(a);
            out.value.push(e[0]);
            out.cost.push(e[1]);
            out.gmv.push(e[2]);
            out.profit.push(e[3]);
            out.conversion.push(e[4]);
        }
        Ok(out)
    }
}
