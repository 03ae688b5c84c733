//! Lifecycle stages from P(alive), recency and trend, by configurable threshold rules.
//!
//! Stages (codes): 0 prospect, 1 new, 2 growing, 3 mature, 4 at-risk, 5 dormant, 6 churned.
//! Rules, checked in this order (the first that matches wins):
//! 1. no purchase up to as_of -> prospect;
//! 2. P(alive) < `churned_p_alive` or days since last purchase > `churned_days` -> churned;
//! 3. P(alive) < `dormant_p_alive` or days since last purchase > `dormant_days` -> dormant;
//! 4. first purchase at most `new_days` ago -> new;
//! 5. P(alive) < `at_risk_p_alive` or trend <= `at_risk_trend` -> at-risk;
//! 6. trend >= `growing_trend` -> growing;
//! 7. otherwise -> mature.

use crate::error::{CoreError, Result};
use crate::parallel::CHUNK;
use rayon::prelude::*;

pub const STAGES: [&str; 7] = [
    "prospect", "new", "growing", "mature", "at-risk", "dormant", "churned",
];

/// The thresholds of the rules above. [`Rules::default`] is the one definition of their defaults
/// (`growthmachine.insight.LifecycleRules` reads it); they travel by name ([`Rules::from_json`]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub new_days: f64,
    pub churned_p_alive: f64,
    pub churned_days: f64,
    pub dormant_p_alive: f64,
    pub dormant_days: f64,
    pub at_risk_p_alive: f64,
    pub at_risk_trend: f64,
    pub growing_trend: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            new_days: 30.0,
            churned_p_alive: 0.1,
            churned_days: 270.0,
            dormant_p_alive: 0.3,
            dormant_days: 120.0,
            at_risk_p_alive: 0.6,
            at_risk_trend: -0.5,
            growing_trend: 0.25,
        }
    }
}

impl Rules {
    /// Rules from a JSON object naming every threshold; `rules: ...` if one is missing or unknown.
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| CoreError::invalid("rules", e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serialisable")
    }
}

/// Assigns a stage code to each user. Inputs per user: number of transactions, T (days since
/// first purchase), days since last purchase, P(alive), trend. NaN in the last three are allowed
/// only for prospects.
pub fn assign(
    n_tx: &[f64],
    age: &[f64],
    days_since_last: &[f64],
    p_alive: &[f64],
    trend: &[f64],
    rules: &Rules,
) -> Result<Vec<u8>> {
    let n = n_tx.len();
    for (name, len) in [
        ("T", age.len()),
        ("days_since_last", days_since_last.len()),
        ("p_alive", p_alive.len()),
        ("trend", trend.len()),
    ] {
        crate::error::check_len(name, len, n, "n_transactions")?;
    }
    let bad = (0..n).into_par_iter().with_min_len(CHUNK).find_first(|&i| {
        n_tx[i] > 0.0
            && !(age[i].is_finite()
                && days_since_last[i].is_finite()
                && p_alive[i].is_finite()
                && trend[i].is_finite())
    });
    if let Some(i) = bad {
        return Err(CoreError::invalid(
            "features",
            format!("row {i}: a buyer needs finite T, days_since_last, p_alive and trend"),
        ));
    }
    let r = *rules;
    let mut out = vec![0u8; n];
    // A plain loop per chunk of users: the stage rule compiles the same wherever the crate's
    // code generation places it (a rayon map closure did not, by up to 40 %).
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        let lo = c * CHUNK;
        for (j, s) in o.iter_mut().enumerate() {
            let i = lo + j;
            *s = r.stage(n_tx[i], age[i], days_since_last[i], p_alive[i], trend[i]);
        }
    });
    Ok(out)
}

impl Rules {
    /// The stage code of one user (the rules of the module docs, in order).
    #[inline]
    fn stage(&self, n_tx: f64, age: f64, days_since_last: f64, p_alive: f64, trend: f64) -> u8 {
        let r = self;
        if n_tx <= 0.0 {
            0
        } else if p_alive < r.churned_p_alive || days_since_last > r.churned_days {
            6
        } else if p_alive < r.dormant_p_alive || days_since_last > r.dormant_days {
            5
        } else if age <= r.new_days {
            1
        } else if p_alive < r.at_risk_p_alive || trend <= r.at_risk_trend {
            4
        } else if trend >= r.growing_trend {
            2
        } else {
            3
        }
    }
}

/// Counts of (from, to) pairs: a `k x k` row-major matrix.
pub fn transitions(from: &[u8], to: &[u8], k: usize) -> Result<Vec<u64>> {
    crate::error::check_len("after", to.len(), from.len(), "before")?;
    if k > 256 {
        return Err(CoreError::invalid(
            "k",
            format!("must be at most 256 (stage codes are u8), got {k}"),
        ));
    }
    // Chunks of at least k^2 rows: the partial tables never outweigh the rows.
    let rows = CHUNK.max(k * k);
    let parts: Vec<Vec<u64>> = from
        .par_chunks(rows)
        .zip(to.par_chunks(rows))
        .map(|(a, b)| {
            let mut m = vec![0u64; k * k];
            for (&x, &y) in a.iter().zip(b) {
                if (x as usize) < k && (y as usize) < k {
                    m[x as usize * k + y as usize] += 1;
                }
            }
            m
        })
        .collect();
    let mut m = vec![0u64; k * k];
    for p in parts {
        for (a, b) in m.iter_mut().zip(p) {
            *a += b;
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_in_order() {
        let r = Rules::default();
        let s = assign(
            &[0.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0],
            &[0.0, 10.0, 200.0, 200.0, 200.0, 200.0, 200.0, 300.0],
            &[f64::NAN, 5.0, 5.0, 5.0, 5.0, 150.0, 5.0, 280.0],
            &[f64::NAN, 0.9, 0.9, 0.9, 0.5, 0.9, 0.05, 0.9],
            &[f64::NAN, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0],
            &r,
        )
        .unwrap();
        assert_eq!(s, vec![0, 1, 2, 3, 4, 5, 6, 6]);
        let m = transitions(&[0, 1, 1], &[1, 1, 2], 3).unwrap();
        assert_eq!(m, vec![0, 1, 0, 0, 1, 1, 0, 0, 0]);
    }
}
