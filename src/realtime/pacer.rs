//! Budget pacing by online dual descent (Balseiro, Lu and Mirrokni 2020, "dual mirror descent"
//! with the Euclidean mirror map): each event chooses `argmax_a v_a - sum_j price_j cost_aj`
//! among the actions whose cost still fits every hard budget, then moves each resource's price
//! by `step_j (cost_tj - rho_tj)`, where `rho_tj = remaining budget_j / remaining events` is the
//! spend rate that would end exactly on budget. Spending faster than `rho` raises the price,
//! slower lowers it (never below 0). Using the remaining-budget rate (instead of the fixed
//! `B / T`) corrects past drift, so spend tracks the budget under drifting traffic.
//!
//! Hard cap: an action is chosen only if its cost fits every remaining budget (outstanding
//! decisions' face values reserved); the null action, taken when nothing else fits, must cost 0
//! (costs giving it a cost are refused), and each decision whose cost is revealed later is
//! charged exactly once (a cost with no decision awaiting it is refused).
//!
//! Units: `step_j = step * V / rho0_j^2` with `V` a running average of the spread of the values
//! (max - min over actions) and `rho0_j = B_j / T`, so `step` is unit-free.

use crate::error::{check_finite, check_nonnegative, try_vec, CoreError, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pacer {
    n_actions: usize,
    n_resources: usize,
    budget: Vec<f64>,
    horizon: u64,
    step: f64,
    null_action: usize,
    price: Vec<f64>,
    spend: Vec<f64>,
    t: u64,
    vscale: f64,
    /// Decision-time costs of decisions whose revealed cost is not charged yet (FIFO, m each).
    /// Keyed by decision number: `[action, face (m), expected cost (m)]`.
    pending: std::collections::BTreeMap<u64, Vec<f64>>,
    /// Sum of `pending` per resource.
    committed: Vec<f64>,
    /// Normalised prices and the largest cost seen per resource.
    mu: Vec<f64>,
    cmax: Vec<f64>,
    /// Revealed costs per action (K x m sums) and their counts, for the expected cost.
    cost_sum: Vec<f64>,
    cost_n: Vec<f64>,
    /// How far (a fraction of the pro-rata budget `B t / T`) expected spend may run ahead.
    max_ahead: Option<f64>,
    /// Expected cost of outstanding decisions per resource.
    committed_est: Vec<f64>,
}

pub const STATE_VERSION: u32 = 1;

/// Pseudo-observations at the decision-time cost in the expected revealed cost.
const PRIOR: f64 = 200.0;

impl Pacer {
    pub fn new(
        n_actions: usize,
        budget: &[f64],
        horizon: u64,
        step: f64,
        null_action: usize,
    ) -> Result<Self> {
        if n_actions < 1 {
            return Err(CoreError::invalid("n_actions", "must be >= 1"));
        }
        if budget.is_empty() {
            return Err(CoreError::invalid("budget", "is empty"));
        }
        check_nonnegative("budget", budget)?;
        if horizon < 1 {
            return Err(CoreError::invalid("horizon", "must be >= 1"));
        }
        if !(step.is_finite() && step > 0.0) {
            return Err(CoreError::invalid(
                "step",
                format!("must be > 0, got {step}"),
            ));
        }
        if null_action >= n_actions {
            return Err(CoreError::invalid(
                "null_action",
                format!("must be in [0, {n_actions}), got {null_action}"),
            ));
        }
        let m = budget.len();
        // n_actions x n_resources learned costs: the one allocation the caller's sizes control.
        let per_action = n_actions.checked_mul(m).ok_or_else(|| {
            CoreError::invalid("budget", "too large: n_actions x n_resources overflows")
        })?;
        let cost_sum = try_vec("budget", per_action, 0.0)?;
        let cost_n = try_vec("n_actions", n_actions, 0.0)?;
        Ok(Pacer {
            n_actions,
            n_resources: m,
            budget: budget.to_vec(),
            horizon,
            step,
            null_action,
            price: vec![0.0; m],
            spend: vec![0.0; m],
            t: 0,
            vscale: 0.0,
            pending: Default::default(),
            committed: vec![0.0; m],
            mu: vec![0.0; m],
            cmax: vec![0.0; m],
            cost_sum,
            cost_n,
            max_ahead: None,
            committed_est: vec![0.0; m],
        })
    }

    /// Caps expected spend (spent + expected cost of outstanding decisions) at
    /// `(1 + max_ahead) B t / T` plus one largest cost: spend cannot run far ahead of the
    /// pro-rata budget line early on (it may always catch up). Infinite (the default) = off.
    pub fn set_max_ahead(&mut self, max_ahead: f64) -> Result<()> {
        if max_ahead.is_nan() || max_ahead < 0.0 {
            return Err(CoreError::invalid(
                "max_ahead",
                format!("must be >= 0, got {max_ahead}"),
            ));
        }
        self.max_ahead = max_ahead.is_finite().then_some(max_ahead);
        Ok(())
    }

    pub fn price(&self) -> &[f64] {
        &self.price
    }
    pub fn spend(&self) -> &[f64] {
        &self.spend
    }
    pub fn budget(&self) -> &[f64] {
        &self.budget
    }
    pub fn n_events(&self) -> u64 {
        self.t
    }
    pub fn horizon(&self) -> u64 {
        self.horizon
    }
    pub fn n_resources(&self) -> usize {
        self.n_resources
    }
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }
    pub fn null_action(&self) -> usize {
        self.null_action
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::state::sealed::to_bytes("realtime.Pacer", STATE_VERSION, self)
    }
    /// Reads state written by [`Pacer::to_bytes`], checking every size, index and value the
    /// methods rely on (a state that passes works; anything else is `CoreError::State`).
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let p: Pacer = crate::state::sealed::from_bytes("realtime.Pacer", &[STATE_VERSION], b)?;
        if !p.is_consistent() {
            return Err(CoreError::State(
                "realtime.Pacer state is inconsistent (corrupt)".into(),
            ));
        }
        Ok(p)
    }

    fn is_consistent(&self) -> bool {
        let (k, m) = (self.n_actions, self.n_resources);
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        let nonneg = |v: &[f64]| v.iter().all(|x| x.is_finite() && *x >= 0.0);
        let per_resource = [
            &self.budget,
            &self.price,
            &self.spend,
            &self.committed,
            &self.mu,
            &self.cmax,
            &self.committed_est,
        ];
        k >= 1
            && m >= 1
            && self.null_action < k
            && self.horizon >= 1
            && self.step.is_finite()
            && self.step > 0.0
            && self.vscale.is_finite()
            && self.max_ahead.is_none_or(|a| a.is_finite() && a >= 0.0)
            && per_resource.iter().all(|v| v.len() == m && finite(v))
            && nonneg(&self.budget)
            && k.checked_mul(m) == Some(self.cost_sum.len())
            && self.cost_n.len() == k
            && nonneg(&self.cost_sum)
            && nonneg(&self.cost_n)
            && self
                .pending
                .values()
                .all(|e| e.len() == 2 * m + 1 && finite(e) && e[0] >= 0.0 && (e[0] as usize) < k)
    }

    /// Moves the prices after spending `cost` (one value per resource) on the current event:
    /// `mu_j += step (cost_j - rho_j) / c_j` on the normalised price `mu_j` (costs in units of
    /// the largest cost seen `c_j`), then `price_j = mu_j V / c_j` (value units per cost unit).
    fn step_prices(&mut self, cost: &[f64]) {
        let remaining_events = self.horizon.saturating_sub(self.t).max(1) as f64;
        for j in 0..self.n_resources {
            let rho0 = self.budget[j] / self.horizon as f64;
            let rho = (self.budget[j] - self.spend[j]).max(0.0) / remaining_events;
            self.cmax[j] = self.cmax[j].max(cost[j]);
            let scale = if self.cmax[j] > 0.0 {
                self.cmax[j]
            } else {
                rho0
            };
            if scale <= 0.0 {
                continue;
            }
            self.mu[j] = (self.mu[j] + self.step * (cost[j] - rho) / scale).max(0.0);
            self.price[j] = self.mu[j] * self.vscale.max(1e-12) / scale;
        }
    }

    /// Like `step_prices` for a decision whose cost is not known yet: `est` is its expected cost
    /// and the spend target counts the expected spend of outstanding decisions.
    fn step_prices_expected(&mut self, est: &[f64]) {
        let remaining_events = self.horizon.saturating_sub(self.t).max(1) as f64;
        let m = self.n_resources;
        for j in 0..m {
            let rho0 = self.budget[j] / self.horizon as f64;
            let rho = (self.budget[j] - self.spend[j]).max(0.0) / remaining_events;
            let scale = if self.cmax[j] > 0.0 {
                self.cmax[j]
            } else {
                rho0
            };
            if scale <= 0.0 {
                continue;
            }
            self.mu[j] = (self.mu[j] + self.step * (est[j] - rho) / scale).max(0.0);
            self.price[j] = self.mu[j] * self.vscale.max(1e-12) / scale;
        }
    }

    /// Expected revealed cost of action `a` on resource `j`: the mean of its settled costs with
    /// [`PRIOR`] pseudo-observations at the decision-time cost `face` (early settlements are
    /// biased low: decisions that end without a purchase settle first).
    fn expected_cost(&self, a: usize, j: usize, face: f64) -> f64 {
        let m = self.n_resources;
        (self.cost_sum[a * m + j] + PRIOR * face) / (self.cost_n[a] + PRIOR)
    }

    /// Number of decisions (made with `charge = false`) whose revealed cost is not charged yet.
    pub fn n_pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether decision number `id` awaits its revealed cost.
    pub fn is_pending(&self, id: u64) -> bool {
        self.pending.contains_key(&id)
    }

    /// Charges a revealed cost to the oldest outstanding decision (for costs charged after the
    /// fact). A cost with no outstanding decision is an error: every cost spent belongs to a
    /// decision that reserved its face value, which is what keeps the hard cap.
    pub fn charge(&mut self, cost: &[f64]) -> Result<()> {
        let Some(id) = self.pending.keys().next().copied() else {
            return Err(CoreError::invalid(
                "cost",
                "no decision is awaiting its cost (each decision made with costs revealed \
                 later is charged exactly once)",
            ));
        };
        self.charge_id(id, cost)
    }

    /// Settles decision number `id` (as counted by [`Pacer::n_events`] when it was decided) with
    /// its revealed `cost`: releases its reservation, learns its action's mean cost and corrects
    /// the price step made with the estimate. An id that is not awaiting its cost (unknown, or
    /// charged already) is an error and changes nothing.
    pub fn charge_id(&mut self, id: u64, cost: &[f64]) -> Result<()> {
        check_nonnegative("cost", cost)?;
        let m = self.n_resources;
        if cost.len() != m {
            return Err(CoreError::invalid(
                "cost",
                format!("has {} values, expected {m} (one per resource)", cost.len()),
            ));
        }
        let Some(e) = self.pending.remove(&id) else {
            return Err(CoreError::invalid(
                "ids",
                format!("decision {id} is not awaiting its cost (unknown, or charged already)"),
            ));
        };
        let a = e[0] as usize;
        for j in 0..m {
            self.committed[j] = (self.committed[j] - e[1 + j]).max(0.0);
            self.committed_est[j] = (self.committed_est[j] - e[1 + m + j]).max(0.0);
        }
        if a < self.n_actions {
            self.cost_n[a] += 1.0;
        }
        for j in 0..m {
            if a < self.n_actions {
                self.cost_sum[a * m + j] += cost[j];
            }
            self.spend[j] += cost[j];
            let scale = if self.cmax[j] > 0.0 {
                self.cmax[j]
            } else {
                1.0
            };
            self.cmax[j] = self.cmax[j].max(cost[j]);
            self.mu[j] = (self.mu[j] + self.step * (cost[j] - e[1 + m + j]) / scale).max(0.0);
            self.price[j] = self.mu[j] * self.vscale.max(1e-12) / scale;
        }
        Ok(())
    }

    /// Decides `n` events. `values` is n x K; `costs` is K x m (per action) or n x K x m (per
    /// event). With `charge`, the chosen action's cost is spent at once (known costs) and the
    /// prices move; else the caller charges revealed costs later with [`Pacer::charge`] (the
    /// decision-time costs then serve as the estimate used for the hard-budget check).
    pub fn decide(
        &mut self,
        values: &[f64],
        costs: &[f64],
        n: usize,
        charge: bool,
        out: &mut [i64],
    ) -> Result<()> {
        let (k, m) = (self.n_actions, self.n_resources);
        if values.len() != n * k {
            return Err(CoreError::invalid(
                "values",
                format!("has {} values, expected {n} x {k}", values.len()),
            ));
        }
        check_finite("values", values)?;
        let per_event = if costs.len() == k * m {
            false
        } else if costs.len() == n * k * m {
            true
        } else {
            return Err(CoreError::invalid(
                "costs",
                format!(
                    "has {} values, expected {k} x {m} or {n} x {k} x {m}",
                    costs.len()
                ),
            ));
        };
        check_nonnegative("costs", costs)?;
        // The null action is what is taken when nothing else fits: it must cost nothing, or the
        // hard cap could not hold (and its charge would depend on the budget left).
        let null = self.null_action;
        for (i, ce) in costs.chunks(k * m).enumerate() {
            if let Some(j) = (0..m).find(|&j| ce[null * m + j] != 0.0) {
                let at = if per_event {
                    format!(" (event {i}, resource {j})")
                } else {
                    format!(" (resource {j})")
                };
                return Err(CoreError::invalid(
                    "costs",
                    format!(
                        "the null action {null} must cost 0 (it is taken when nothing else fits \
                         the budget), found {}{at}",
                        ce[null * m + j]
                    ),
                ));
            }
        }
        for (idx, c) in costs.iter().enumerate() {
            let j = idx % m;
            if *c > self.cmax[j] {
                self.cmax[j] = *c;
            }
        }
        for i in 0..n {
            let v = &values[i * k..(i + 1) * k];
            let c = if per_event {
                &costs[i * k * m..(i + 1) * k * m]
            } else {
                costs
            };
            let (lo, hi) = v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                    (a.min(*x), b.max(*x))
                });
            let spread = hi - lo;
            self.vscale = if self.t == 0 {
                spread
            } else {
                0.99 * self.vscale + 0.01 * spread
            };
            let mut best = self.null_action;
            let mut best_v = f64::NEG_INFINITY;
            let frac = ((self.t + 1) as f64 / self.horizon as f64).min(1.0);
            for a in 0..k {
                let ca = &c[a * m..(a + 1) * m];
                let fits = (0..m).all(|j| {
                    self.spend[j] + self.committed[j] + ca[j] <= self.budget[j] * (1.0 + 1e-12)
                });
                if !fits {
                    continue;
                }
                if let Some(max_ahead) = self.max_ahead {
                    let ahead = (0..m).any(|j| {
                        let e = if charge {
                            ca[j]
                        } else {
                            self.expected_cost(a, j, ca[j])
                        };
                        let line = self.budget[j] * frac * (1.0 + max_ahead) + self.cmax[j];
                        e > 0.0 && self.spend[j] + self.committed_est[j] + e > line
                    });
                    if ahead {
                        continue;
                    }
                }
                let s = v[a] - (0..m).map(|j| self.price[j] * ca[j]).sum::<f64>();
                if s > best_v {
                    best_v = s;
                    best = a;
                }
            }
            out[i] = best as i64;
            if charge {
                let ca = &c[best * m..(best + 1) * m];
                let fits = (0..m).all(|j| self.spend[j] + ca[j] <= self.budget[j] * (1.0 + 1e-12));
                if fits {
                    for j in 0..m {
                        self.spend[j] += ca[j];
                    }
                    self.step_prices(ca);
                } else {
                    // Nothing fits (not even the null action): spend nothing.
                    self.step_prices(&vec![0.0; m]);
                }
            } else {
                // Revealed later: reserve the decision-time cost (hard cap), and move the prices
                // now with the action's mean revealed cost so far (the decision-time cost until
                // one is known); `charge` corrects the step when the true cost arrives.
                let ca = &c[best * m..(best + 1) * m];
                let est: Vec<f64> = (0..m).map(|j| self.expected_cost(best, j, ca[j])).collect();
                let mut entry = Vec::with_capacity(2 * m + 1);
                entry.push(best as f64);
                for j in 0..m {
                    entry.push(ca[j]);
                    self.committed[j] += ca[j];
                }
                for j in 0..m {
                    entry.push(est[j]);
                    self.committed_est[j] += est[j];
                }
                self.pending.insert(self.t, entry);
                self.step_prices_expected(&est);
            }
            self.t += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;
    use rand::Rng;

    const STEP: f64 = 0.05;

    #[test]
    fn spend_tracks_budget_on_drifting_stream_and_never_exceeds_it() {
        let (n, k) = (200_000usize, 3usize);
        let costs = [0.0, 1.0, 2.0];
        let budget = 0.3 * n as f64;
        let mut p = Pacer::new(k, &[budget], n as u64, STEP, 0).unwrap();
        let mut r = rng::stream(1, 0);
        let mut out = [0i64; 1000];
        for b in 0..n / 1000 {
            // values drift: the offer gets more attractive over time
            let drift = 1.0 + (b as f64 / 40.0).sin();
            let vals: Vec<f64> = (0..1000 * k)
                .map(|i| {
                    if i % k == 0 {
                        0.0
                    } else {
                        drift * r.random::<f64>() * (i % k) as f64
                    }
                })
                .collect();
            p.decide(&vals, &costs, 1000, true, &mut out).unwrap();
            assert!(p.spend()[0] <= budget * (1.0 + 1e-9));
        }
        let ratio = p.spend()[0] / budget;
        assert!(ratio > 0.99 && ratio <= 1.0 + 1e-9, "{ratio}");
    }

    #[test]
    fn revealed_costs_settle_by_id_and_max_ahead_smooths_spend() {
        // Every event would like the costly action; costs are revealed later (half are paid).
        let n = 10_000usize;
        let mut p = Pacer::new(2, &[1000.0], n as u64, 0.05, 0).unwrap();
        p.set_max_ahead(0.1).unwrap();
        let mut out = vec![0i64; 100];
        for b in 0..n / 100 {
            let vals: Vec<f64> = (0..200).map(|i| (i % 2) as f64).collect();
            let t0 = p.n_events();
            p.decide(&vals, &[0.0, 1.0], 100, false, &mut out).unwrap();
            // the expected spend never runs ahead of the pro-rata line (+10%, + one cost)
            let line = 1000.0 * p.n_events() as f64 / n as f64 * 1.1 + 1.0;
            assert!(
                p.spend()[0] + p.committed_est[0] <= line + 1e-9,
                "batch {b}"
            );
            for (i, a) in out.iter().enumerate() {
                let paid = if *a == 1 && i % 2 == 0 { 1.0 } else { 0.0 };
                p.charge_id(t0 + i as u64, &[paid]).unwrap();
            }
            assert!(p.spend()[0] <= 1000.0);
        }
        assert!(p.pending.is_empty());
        assert!(p.spend()[0] > 900.0, "{}", p.spend()[0]);
        let back = Pacer::from_bytes(&p.to_bytes().unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn every_revealed_cost_settles_one_decision_and_the_null_action_is_free() {
        let mut p = Pacer::new(2, &[10.0], 100, 0.05, 0).unwrap();
        let mut out = [0i64; 5];
        p.decide(&[0.0, 1.0].repeat(5), &[0.0, 1.0], 5, false, &mut out)
            .unwrap();
        for _ in 0..5 {
            p.charge(&[1.0]).unwrap();
        }
        let spent = p.spend()[0];
        // a sixth cost has no decision: refused, nothing spent
        let e = p.charge(&[40.0]).unwrap_err();
        assert!(e.to_string().starts_with("cost: no decision"), "{e}");
        assert!(p.charge_id(3, &[1.0]).is_err());
        assert_eq!(p.spend()[0], spent);
        assert!(spent <= 10.0);
        // a costly null action is refused, whatever the budget left
        for budget in [0.0, 50.0] {
            let mut q = Pacer::new(2, &[budget], 10, 0.05, 0).unwrap();
            let e = q
                .decide(&[1.0, 0.0], &[50.0, 0.0], 1, true, &mut out[..1])
                .unwrap_err();
            assert!(e.to_string().contains("null action 0 must cost 0"), "{e}");
            assert_eq!(q.spend()[0], 0.0);
        }
    }

    #[test]
    fn bad_input() {
        assert!(Pacer::new(2, &[-1.0], 10, 0.1, 0).is_err());
        assert!(Pacer::new(2, &[1.0], 0, 0.1, 0).is_err());
        assert!(Pacer::new(2, &[1.0], 10, 0.1, 2).is_err());
        // sizes no machine holds: an error, not an abort
        let e = Pacer::new(1 << 60, &[1.0], 10, 0.1, 0).unwrap_err();
        assert!(
            matches!(e, CoreError::OutOfMemory(_) | CoreError::Invalid { .. }),
            "{e}"
        );
        let e = Pacer::new(usize::MAX / 2, &[1.0; 4], 10, 0.1, 0).unwrap_err();
        assert!(
            matches!(&e, CoreError::Invalid { arg, .. } if arg == "budget"),
            "{e}"
        );
        let mut p = Pacer::new(2, &[1.0], 10, 0.1, 0).unwrap();
        let mut o = [0];
        assert!(p
            .decide(&[0.0, 1.0], &[0.0, -1.0], 1, true, &mut o)
            .is_err());
        assert!(p
            .decide(&[0.0, f64::NAN], &[0.0, 1.0], 1, true, &mut o)
            .is_err());
    }

    /// A state whose sizes or values disagree is `CoreError::State` (it loaded before and
    /// panicked or asked for 2^60 actions' worth of work at the first decision).
    #[test]
    fn inconsistent_states_are_errors() {
        let mut p = Pacer::new(3, &[5.0], 100, STEP, 0).unwrap();
        let mut o = [0; 4];
        p.decide(
            &[0.0, 1.0, 2.0].repeat(4),
            &[0.0, 1.0, 2.0],
            4,
            false,
            &mut o,
        )
        .unwrap();
        let good: serde_json::Value = serde_json::to_value(&p).unwrap();
        let reseal = |v: &serde_json::Value| {
            crate::state::sealed::to_bytes("realtime.Pacer", STATE_VERSION, v).unwrap()
        };
        assert_eq!(Pacer::from_bytes(&reseal(&good)).unwrap(), p);
        let edits: [(&str, serde_json::Value); 10] = [
            ("n_actions", (1u64 << 60).into()),
            ("n_resources", 0.into()),
            ("null_action", 3.into()),
            ("horizon", 0.into()),
            ("mu", serde_json::json!([])),
            ("cmax", serde_json::json!([1.0, 2.0])),
            ("cost_sum", serde_json::json!([0.0])),
            ("cost_n", serde_json::json!([0.0, -1.0, 0.0])),
            ("budget", serde_json::json!([-5.0])),
            ("pending", serde_json::json!({"0": [0.0, 1.0]})),
        ];
        for (key, value) in edits {
            let mut v = good.clone();
            v[key] = value;
            let e = Pacer::from_bytes(&reseal(&v)).unwrap_err();
            assert!(matches!(e, CoreError::State(_)), "{key}: {e}");
        }
    }
}
