//! The planner's allocation candidates in one pass (`Planner.candidates`,
//! `growthmachine/planning/_candidates.py`): for every eligible (user, task) pair, the
//! calibrated values from the float32 out-of-fold scores ([`super::calmap::Map`]), the goals'
//! weighted value, and the pairs a plan may use (positive value, or any finite value when a
//! goal has a floor), row-major as `np.nonzero` of the whole (users x tasks) matrix gives them.
//!
//! The numbers are those of the planner's numpy code, operation for operation: a score is
//! widened to float64 and mapped; `cost = max(map(cost), 0) + cost_per_touch` (numpy's
//! `maximum`: a NaN stays NaN); `profit = margin * gmv - cost`; the goal value starts at `+0.0`
//! and adds, goal by goal, `value * weight` (times `1.0` or `0.0` where the goal has an
//! audience mask); an ineligible pair is `-inf` (never kept).

use super::calmap::Map;
use crate::control::Control;
use crate::error::{check_len, CoreError, Result};
use rayon::prelude::*;

/// Users per parallel chunk (Ctrl-C is checked before each).
const CHUNK: usize = 4096;

/// A calibrated quantity of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Gmv,
    Cost,
    Profit,
    Conversion,
}

/// An outcome's out-of-fold scores (`n x t`, float32) and its calibration maps (knots, values)
/// per stratum.
pub struct Outcome<'a> {
    pub est: &'a [f32],
    pub maps: Vec<(&'a [f64], &'a [f64])>,
}

/// A goal: its metric, its weight and, if it counts only its audience, the users in it.
pub struct Goal<'a> {
    pub metric: Metric,
    pub weight: f64,
    pub mask: Option<&'a [bool]>,
}

/// Everything the pass reads.
pub struct Inputs<'a> {
    pub n: usize,
    pub t: usize,
    pub gmv: Outcome<'a>,
    pub cost: Outcome<'a>,
    pub conversion: Option<Outcome<'a>>,
    /// The stratum (map) of each task.
    pub stratum: &'a [usize],
    pub cost_per_touch: &'a [f64],
    pub margin: f64,
    pub goals: Vec<Goal<'a>>,
    /// `n x t`: may the user receive the task.
    pub eligible: &'a [bool],
    /// Per user: may they receive any task (`None`: all may).
    pub allowed: Option<&'a [bool]>,
    /// Keep every pair of finite value (a goal has a floor), else those of positive value.
    pub keep_finite: bool,
    /// The metrics given for each kept pair, besides its goal value.
    pub columns: Vec<Metric>,
}

/// The kept pairs: user rows ascending, tasks ascending within a user; per pair its goal value
/// and the asked metrics ([`Inputs::columns`], in order).
#[derive(Debug, Default, PartialEq)]
pub struct Kept {
    pub rows: Vec<i64>,
    pub tasks: Vec<i64>,
    pub value: Vec<f64>,
    pub columns: Vec<Vec<f64>>,
}

impl Inputs<'_> {
    fn check(&self) -> Result<()> {
        let nt = self
            .n
            .checked_mul(self.t)
            .ok_or_else(|| CoreError::invalid("scores", "n_users x n_tasks overflows"))?;
        check_len("scores['gmv']", self.gmv.est.len(), nt, "n_users x n_tasks")?;
        check_len(
            "scores['cost']",
            self.cost.est.len(),
            nt,
            "n_users x n_tasks",
        )?;
        check_len("eligible", self.eligible.len(), nt, "n_users x n_tasks")?;
        check_len("stratum", self.stratum.len(), self.t, "n_tasks")?;
        check_len(
            "cost_per_touch",
            self.cost_per_touch.len(),
            self.t,
            "n_tasks",
        )?;
        if let Some(a) = self.allowed {
            check_len("allowed", a.len(), self.n, "n_users")?;
        }
        let mut outcomes = vec![("gmv", &self.gmv), ("cost", &self.cost)];
        if let Some(c) = &self.conversion {
            check_len("scores['conversion']", c.est.len(), nt, "n_users x n_tasks")?;
            outcomes.push(("conversion", c));
        }
        for (name, o) in outcomes {
            if let Some(&s) = self.stratum.iter().find(|&&s| s >= o.maps.len()) {
                return Err(CoreError::invalid(
                    "stratum",
                    format!("{s} has no map of {name} ({} maps)", o.maps.len()),
                ));
            }
            for (i, (x, y)) in o.maps.iter().enumerate() {
                if x.is_empty() || x.len() != y.len() {
                    return Err(CoreError::invalid(
                        "maps",
                        format!(
                            "map {i} of {name} has {} knots and {} values (at least one, as many)",
                            x.len(),
                            y.len()
                        ),
                    ));
                }
            }
        }
        let needs_conversion = self
            .goals
            .iter()
            .map(|g| g.metric)
            .chain(self.columns.iter().copied())
            .any(|m| m == Metric::Conversion);
        if needs_conversion && self.conversion.is_none() {
            return Err(CoreError::invalid(
                "scores",
                "a goal or column needs the conversion, which has no scores",
            ));
        }
        for (i, g) in self.goals.iter().enumerate() {
            if let Some(m) = g.mask {
                check_len(&format!("goals[{i}].mask"), m.len(), self.n, "n_users")?;
            }
        }
        Ok(())
    }
}

/// An outcome's scores and its maps, ready to apply.
struct Prepared<'a> {
    est: &'a [f32],
    maps: Vec<Map<'a>>,
}

impl<'a> Prepared<'a> {
    fn new(o: &Outcome<'a>) -> Self {
        Prepared {
            est: o.est,
            maps: o.maps.iter().map(|&(x, f)| Map::new(x, f)).collect(),
        }
    }
}

/// The pass's inputs with the maps prepared.
struct Pass<'a, 'b> {
    inp: &'b Inputs<'a>,
    gmv: Prepared<'a>,
    cost: Prepared<'a>,
    conversion: Option<Prepared<'a>>,
}

/// One pair's calibrated values (conversion: 0 when it has no scores, never asked for then).
#[derive(Clone, Copy)]
struct Values {
    gmv: f64,
    cost: f64,
    profit: f64,
    conversion: f64,
}

impl Values {
    #[inline(always)]
    fn get(&self, m: Metric) -> f64 {
        match m {
            Metric::Gmv => self.gmv,
            Metric::Cost => self.cost,
            Metric::Profit => self.profit,
            Metric::Conversion => self.conversion,
        }
    }
}

impl Pass<'_, '_> {
    /// The calibrated values of the pair at `at` (row-major index) of task `j`.
    #[inline(always)]
    fn values(&self, at: usize, j: usize) -> Values {
        let inp = self.inp;
        let s = inp.stratum[j];
        let gmv = self.gmv.maps[s].at(f64::from(self.gmv.est[at]));
        let c = self.cost.maps[s].at(f64::from(self.cost.est[at]));
        // numpy's maximum(c, 0.0): c if c >= 0 or c is NaN
        let cost = if c >= 0.0 || c.is_nan() { c } else { 0.0 } + inp.cost_per_touch[j];
        let conversion = match &self.conversion {
            Some(o) => o.maps[s].at(f64::from(o.est[at])),
            None => 0.0,
        };
        Values {
            gmv,
            cost,
            profit: inp.margin * gmv - cost,
            conversion,
        }
    }
}

/// Calls `kept(i, j, goal value, values)` for each kept pair of the users `lo..hi`, in order.
#[inline(always)]
fn each_kept(
    pass: &Pass<'_, '_>,
    lo: usize,
    hi: usize,
    mut kept: impl FnMut(usize, usize, f64, &Values),
) {
    let inp = pass.inp;
    let t = inp.t;
    for i in lo..hi {
        if inp.allowed.is_some_and(|a| !a[i]) {
            continue;
        }
        for j in 0..t {
            let at = i * t + j;
            if !inp.eligible[at] {
                continue; // -inf: neither positive nor finite
            }
            let v = pass.values(at, j);
            let mut total = 0.0;
            for g in &inp.goals {
                let mut x = v.get(g.metric) * g.weight;
                if let Some(m) = g.mask {
                    x *= if m[i] { 1.0 } else { 0.0 };
                }
                total += x;
            }
            let keep = if inp.keep_finite {
                total.is_finite()
            } else {
                total > 0.0
            };
            if keep {
                kept(i, j, total, &v);
            }
        }
    }
}

/// Chunks of users computed at once into their own buffers (reused from wave to wave), then
/// appended to the outputs in order.
const WAVE: usize = 32;

impl Kept {
    fn empty(columns: usize) -> Kept {
        Kept {
            columns: vec![Vec::new(); columns],
            ..Kept::default()
        }
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.tasks.clear();
        self.value.clear();
        self.columns.iter_mut().for_each(Vec::clear);
    }

    fn append(&mut self, b: &Kept) -> Result<()> {
        let more = b.rows.len();
        let oom = |_| crate::error::CoreError::OutOfMemory("candidates: too many pairs".into());
        self.rows.try_reserve(more).map_err(oom)?;
        self.tasks.try_reserve(more).map_err(oom)?;
        self.value.try_reserve(more).map_err(oom)?;
        self.rows.extend_from_slice(&b.rows);
        self.tasks.extend_from_slice(&b.tasks);
        self.value.extend_from_slice(&b.value);
        for (c, bc) in self.columns.iter_mut().zip(&b.columns) {
            c.try_reserve(more).map_err(oom)?;
            c.extend_from_slice(bc);
        }
        Ok(())
    }
}

/// The kept pairs of every user (see the module's doc), chunks of users in parallel, a wave of
/// [`WAVE`] chunks at a time, each into its own buffer, then appended in order: the result
/// does not depend on the thread count.
pub fn kept_pairs(inp: &Inputs<'_>, ctl: &Control) -> Result<Kept> {
    inp.check()?;
    let pass = Pass {
        inp,
        gmv: Prepared::new(&inp.gmv),
        cost: Prepared::new(&inp.cost),
        conversion: inp.conversion.as_ref().map(Prepared::new),
    };
    let ncol = inp.columns.len();
    let starts: Vec<usize> = (0..inp.n).step_by(CHUNK).collect();
    let mut bufs: Vec<Kept> = (0..WAVE.min(starts.len()))
        .map(|_| Kept::empty(ncol))
        .collect();
    let mut out = Kept::empty(ncol);
    for wave in starts.chunks(WAVE) {
        ctl.check()?;
        bufs.par_iter_mut().zip(wave).for_each(|(b, &lo)| {
            b.clear();
            each_kept(&pass, lo, (lo + CHUNK).min(inp.n), |i, j, total, v| {
                b.rows.push(i as i64);
                b.tasks.push(j as i64);
                b.value.push(total);
                for (c, &m) in b.columns.iter_mut().zip(&inp.columns) {
                    c.push(v.get(m));
                }
            });
        });
        for b in &bufs[..wave.len()] {
            out.append(b)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::calmap::interp;
    use super::*;
    use rand::{Rng, SeedableRng};

    struct World {
        n: usize,
        t: usize,
        gmv: Vec<f32>,
        cost: Vec<f32>,
        conv: Vec<f32>,
        knots: Vec<(Vec<f64>, Vec<f64>)>,
        stratum: Vec<usize>,
        cpt: Vec<f64>,
        eligible: Vec<bool>,
        allowed: Vec<bool>,
        mask: Vec<bool>,
    }

    fn world(n: usize, t: usize, seed: u64) -> World {
        let mut rng = crate::rng::Rng::seed_from_u64(seed);
        let mut draw = |k: usize, lo: f64, hi: f64| -> Vec<f32> {
            (0..k)
                .map(|_| (lo + (hi - lo) * rng.random::<f64>()) as f32)
                .collect()
        };
        let gmv = draw(n * t, -3.0, 5.0);
        let cost = draw(n * t, -1.0, 2.0);
        let conv = draw(n * t, -0.1, 0.2);
        let mut rng = crate::rng::Rng::seed_from_u64(seed + 1);
        // maps: one of one knot, one with a repeated knot, ascending others
        let knots = vec![
            (vec![0.5], vec![-0.25]),
            (
                vec![-2.0, 0.0, 0.0, 1.0, 4.0],
                vec![-1.0, -0.5, 0.25, 0.5, 3.0],
            ),
            (vec![-0.5, 0.5, 1.5], vec![-0.75, 0.0, 1.25]),
        ];
        World {
            n,
            t,
            gmv,
            cost,
            conv,
            knots,
            stratum: (0..t).map(|j| j % 3).collect(),
            cpt: (0..t)
                .map(|j| if j % 4 == 0 { 0.0 } else { 0.05 * j as f64 })
                .collect(),
            eligible: (0..n * t).map(|_| rng.random::<f64>() < 0.7).collect(),
            allowed: (0..n).map(|_| rng.random::<f64>() < 0.9).collect(),
            mask: (0..n).map(|_| rng.random::<f64>() < 0.5).collect(),
        }
    }

    fn inputs<'a>(w: &'a World, goals: Vec<Goal<'a>>, keep_finite: bool) -> Inputs<'a> {
        let maps: Vec<(&[f64], &[f64])> = w
            .knots
            .iter()
            .map(|(x, y)| (x.as_slice(), y.as_slice()))
            .collect();
        Inputs {
            n: w.n,
            t: w.t,
            gmv: Outcome {
                est: &w.gmv,
                maps: maps.clone(),
            },
            cost: Outcome {
                est: &w.cost,
                maps: maps.clone(),
            },
            conversion: Some(Outcome { est: &w.conv, maps }),
            stratum: &w.stratum,
            cost_per_touch: &w.cpt,
            margin: 0.3,
            goals,
            eligible: &w.eligible,
            allowed: Some(&w.allowed),
            keep_finite,
            columns: vec![Metric::Cost, Metric::Conversion, Metric::Gmv],
        }
    }

    /// The pass written as the planner's numpy code: whole matrices, then `nonzero`.
    fn plain(inp: &Inputs<'_>) -> Kept {
        let (n, t) = (inp.n, inp.t);
        let map = |o: &Outcome<'_>, i: usize, j: usize| {
            let (xp, fp) = o.maps[inp.stratum[j]];
            interp(o.est[i * t + j] as f64, xp, fp)
        };
        let mut out = Kept {
            columns: vec![Vec::new(); inp.columns.len()],
            ..Kept::default()
        };
        for i in 0..n {
            for j in 0..t {
                let gmv = map(&inp.gmv, i, j);
                let c = map(&inp.cost, i, j);
                let cost = if c >= 0.0 || c.is_nan() { c } else { 0.0 } + inp.cost_per_touch[j];
                let profit = inp.margin * gmv - cost;
                let conv = map(inp.conversion.as_ref().unwrap(), i, j);
                let val = |m: Metric| match m {
                    Metric::Gmv => gmv,
                    Metric::Cost => cost,
                    Metric::Profit => profit,
                    Metric::Conversion => conv,
                };
                let mut total = 0.0;
                for g in &inp.goals {
                    let mut v = val(g.metric) * g.weight;
                    if let Some(m) = g.mask {
                        v *= m[i] as u8 as f64;
                    }
                    total += v;
                }
                let gv = if inp.eligible[i * t + j] {
                    total
                } else {
                    f64::NEG_INFINITY
                };
                let mut keep = if inp.keep_finite {
                    gv.is_finite()
                } else {
                    gv > 0.0
                };
                keep &= inp.allowed.is_none_or(|a| a[i]);
                if keep {
                    out.rows.push(i as i64);
                    out.tasks.push(j as i64);
                    out.value.push(gv);
                    for (col, &m) in out.columns.iter_mut().zip(&inp.columns) {
                        col.push(val(m));
                    }
                }
            }
        }
        out
    }

    fn same(a: &Kept, b: &Kept) {
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.tasks, b.tasks);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.value), bits(&b.value));
        for (x, y) in a.columns.iter().zip(&b.columns) {
            assert_eq!(bits(x), bits(y));
        }
    }

    #[test]
    fn equals_the_whole_matrices_bit_for_bit() {
        // more users than a chunk, so several chunks are put together
        let w = world(2 * CHUNK + 123, 7, 3);
        let goal_sets: Vec<Vec<Goal<'_>>> = vec![
            vec![Goal {
                metric: Metric::Profit,
                weight: 1.0,
                mask: None,
            }],
            vec![
                Goal {
                    metric: Metric::Profit,
                    weight: 0.7,
                    mask: None,
                },
                Goal {
                    metric: Metric::Conversion,
                    weight: 25.0,
                    mask: Some(&w.mask),
                },
                Goal {
                    metric: Metric::Gmv,
                    weight: 0.1,
                    mask: None,
                },
            ],
        ];
        for goals in goal_sets {
            for keep_finite in [false, true] {
                let g: Vec<Goal<'_>> = goals
                    .iter()
                    .map(|g| Goal {
                        metric: g.metric,
                        weight: g.weight,
                        mask: g.mask,
                    })
                    .collect();
                let inp = inputs(&w, g, keep_finite);
                let got = kept_pairs(&inp, &Control::default()).unwrap();
                let want = plain(&inp);
                assert!(!want.rows.is_empty() && want.rows.len() < w.n * w.t);
                same(&got, &want);
                // every thread count gives the same pairs
                let one = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap()
                    .install(|| kept_pairs(&inp, &Control::default()).unwrap());
                same(&one, &got);
            }
        }
    }

    #[test]
    fn a_nan_score_or_negative_zero_keeps_numpys_arithmetic() {
        let mut w = world(50, 4, 5);
        w.gmv[0] = f32::NAN;
        w.cost[1] = f32::NAN;
        w.cost[2] = -5.0; // mapped below 0: the cost becomes 0 + cost per touch
        w.eligible[..4].iter_mut().for_each(|e| *e = true);
        w.allowed[0] = true;
        for keep_finite in [false, true] {
            let goals = vec![Goal {
                metric: Metric::Profit,
                weight: 1.0,
                mask: None,
            }];
            let inp = inputs(&w, goals, keep_finite);
            same(
                &kept_pairs(&inp, &Control::default()).unwrap(),
                &plain(&inp),
            );
        }
    }

    #[test]
    fn bad_shapes_and_missing_scores_are_errors() {
        let w = world(10, 3, 1);
        let goal = || Goal {
            metric: Metric::Conversion,
            weight: 1.0,
            mask: None,
        };
        let mut inp = inputs(&w, vec![goal()], false);
        inp.conversion = None;
        let e = kept_pairs(&inp, &Control::default()).unwrap_err();
        assert!(e.to_string().contains("conversion"), "{e}");
        let mut inp = inputs(&w, vec![goal()], false);
        inp.n = 11;
        assert!(kept_pairs(&inp, &Control::default()).is_err());
        let bad = [9usize, 0, 1];
        let mut inp = inputs(&w, vec![goal()], false);
        inp.stratum = &bad;
        let e = kept_pairs(&inp, &Control::default()).unwrap_err();
        assert!(e.to_string().contains("stratum"), "{e}");
        let ctl = Control::default();
        ctl.cancel();
        assert!(kept_pairs(&inputs(&w, vec![goal()], false), &ctl).is_err());
    }
}
