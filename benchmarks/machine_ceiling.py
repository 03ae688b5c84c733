"""How much of the oracle the machine's plan can reach at all (issue 12).

The oracle of ``python -m benchmarks machine`` chooses among the whole catalogue; the machine's
default plan holds only as many content variants per (benefit, channel) as its learning periods
can measure (one at 200k users: 30 of 120 actions). On a fresh world (day 365, one 30-day
window, at a budget of the machine's mean spend per scored period in its own run of the same
world and seed), :func:`growthmachine.allocate.solve` on the true values of every eligible
(user, action) pair (``Environment.true_uplift``; usage their true expected cost):

- ``oracle``: with every action;
- ``oracle, plan's actions``: with the actions of the machine's default plan only;
- ``observables, cell means`` and ``observables, boosted trees``: what a plan can reach that
  knows the true values *only as far as the machine's information tells them*: every user's
  value and expected cost for each of the plan's actions replaced by their conditional means
  given what the machine sees at planning time (its planning features: the insight fitted on
  the transactions so far and the users table), estimated from the *true* values of the other
  half of the users (cross-fitted, so no user's own truth enters its estimate), either as the
  mean over the user's insight cell (stage x cluster x value tier) or by gradient-boosted trees
  (scikit-learn ``HistGradientBoostingRegressor``, one per action, target and half). The
  allocation uses those estimates for both the value and the budget's usage, and its budget is
  bisected until the plan's *true* spend is the benchmark's. The exact conditional means are
  the most an uplift model of the same information could learn from any log; the cells and
  the trees estimate them from noiseless targets, so the better of the two is a close, if
  slightly low, measure of that bound. What they cannot see is each user's own latent
  response (responsiveness, price sensitivity, channel affinity). The machine also sees how
  its earlier treatments' users responded, which this bound leaves out; at 200k users the
  count of a user's earlier campaign touches and of the orders on their days, added to the
  trees' features, raised the truth of the top fifth of free-shipping pairs they chose by
  0.4 % (a probe on the machine's third period, default world, seed 0).

Two earlier forms of that last measure were wrong, one optimistic and one pessimistic:
the cell means of ``../shared/probes/cellorc.py`` (54 % of the oracle at 100k users) were the
means of the *same* users' truth they were scored on, about 45 users per cell, so a cell's luck
was both chosen and paid (cross-fitted: 40 %); trees fitted to the true values but allocated
under the pairs' *true* costs (0.32 of the oracle here) chose, among users of one predicted
value, those whose true cost was lowest, which for an incentive paid on an incremental order
are the users least likely to respond. (An earlier restricted oracle, on
``Environment.oracle_candidates``, dropped every action off a user's hull over the whole
catalogue and put the restricted oracle at 0.65 of the full one, against 0.85 here.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _choose(
    env, c: pd.DataFrame, value: np.ndarray, usage: np.ndarray, budget: float
) -> np.ndarray:
    """The rows of ``c`` (one row per user and action, sorted by user, then action) that
    :func:`growthmachine.allocate.solve` chooses by ``value`` under ``budget`` (each row's use:
    ``usage``)."""
    from growthmachine import allocate

    uid, act = c["user_id"].to_numpy(), c["action_id"].to_numpy()
    first = np.r_[True, uid[1:] != uid[:-1]]
    indptr = np.r_[np.flatnonzero(first), len(uid)]
    n_a = len(env.actions)
    p = allocate.Problem.from_arrays(indptr, act, value, resources={"budget": budget},
                                     usage={"budget": usage}, n_actions=n_a)  # fmt: skip
    a = allocate.solve(p, seed=0, progress=False).assignment
    key = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr)) * n_a + act  # sorted
    return np.searchsorted(key, a["user"].to_numpy() * n_a + a["action"].to_numpy())


def _solve(env, c: pd.DataFrame, budget: float) -> float:
    """Allocates ``c``'s rows by their true value under the budget (usage: the pairs' true
    expected cost); the true value of the chosen pairs."""
    rows = _choose(env, c, c["value"].to_numpy(), c["expected_cost"].to_numpy(), budget)
    return float(c["value"].to_numpy()[rows].sum())


def run(
    n: int, world: str | None, seed: int = 0, budget: float | None = None, observables: bool = True
) -> dict[str, float]:
    import growthmachine as gm
    from benchmarks.bench_machine import _world
    from growthmachine.machine import Machine
    from growthmachine.planning import world_actions

    cfg = _world(world or "default")
    pop = gm.sim.Population.generate(n, seed=seed, **({} if cfg is None else {"config": cfg}))
    env = gm.sim.Environment(pop, seed=seed)
    mc = gm.MachineConfig(seed=seed)
    if budget is None:
        budget = mc.period_budget(n) * (1.0 - mc.touchpoint_share)
    start, days = env.day, 30
    users = np.arange(n, dtype=np.int64)
    parts = []
    for a in range(len(env.actions)):
        tu = env.true_uplift(users, np.full(n, a), start_day=start, days=days)
        tu = tu[tu["eligible"].to_numpy()]
        parts.append(pd.DataFrame({"user_id": tu["user_id"].to_numpy(), "action_id": a,
                                   "value": tu["incremental_profit"].to_numpy(),
                                   "expected_cost": tu["expected_cost"].to_numpy()}))  # fmt: skip
    every = pd.concat(parts, ignore_index=True).sort_values(["user_id", "action_id"], kind="stable")
    c = every[every["value"].to_numpy() > 0]
    machine = Machine(config=mc)
    plan = machine._default_plan(env, mc.period_budget(n))
    acts = np.unique(world_actions(env, plan.tasks()))
    cp = c[np.isin(c["action_id"].to_numpy(), acts)]
    full = _solve(env, c, budget)
    out = {
        "oracle profit": full,
        "oracle, plan's actions": _solve(env, cp, budget) / full,
        "plan actions": float(len(acts)),
        "actions": float(len(env.actions)),
        "budget": budget,
    }
    if observables:
        from growthmachine.planning import planning_features

        insight = machine._insight(env, start, 0)
        X, _, ids = planning_features(insight, pop.users)
        if not np.array_equal(ids, users):
            raise AssertionError("planning features are not in user order")
        ea = every[np.isin(every["action_id"].to_numpy(), acts)].reset_index(drop=True)
        half = np.random.default_rng(seed).permutation(n) % 2
        cell = np.asarray(insight.cell_)
        fits = {"cells": lambda col: _cell_means(ea, col, cell, half),
                "trees": lambda col: _tree_means(ea, col, X, half, seed)}  # fmt: skip
        for name, fit in fits.items():
            est = ea.assign(value=fit("value"), expected_cost=fit("expected_cost"))
            out[f"observables, {name}"] = _at_spend(env, ea, est, budget) / full
    return out


def _cell_means(pairs: pd.DataFrame, col: str, cell, half) -> np.ndarray:
    """Each pair's ``col``: the mean over the other half's users of its action and insight cell
    (the other half's mean over its action where the cell has none of them)."""
    u = pairs["user_id"].to_numpy()
    key = pd.MultiIndex.from_arrays([pairs["action_id"].to_numpy(), cell[u]])
    y = pairs[col].to_numpy()
    out = np.empty(len(pairs))
    for h in (0, 1):
        train, test = half[u] != h, half[u] == h
        m = pd.Series(y[train]).groupby(key[train]).mean()
        by_action = pd.Series(y[train]).groupby(pairs["action_id"].to_numpy()[train]).mean()
        v = m.reindex(key[test]).to_numpy().copy()
        miss = np.isnan(v)
        v[miss] = by_action.reindex(pairs["action_id"].to_numpy()[test][miss]).to_numpy()
        out[test] = v
    return out


def _tree_means(pairs: pd.DataFrame, col: str, X, half, seed) -> np.ndarray:
    """Each pair's ``col`` predicted from its user's features by boosted trees fitted, per
    action, on the other half's users."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    u = pairs["user_id"].to_numpy()
    a = pairs["action_id"].to_numpy()
    y = pairs[col].to_numpy()
    out = np.empty(len(pairs))
    for act in np.unique(a):
        rows = np.flatnonzero(a == act)
        for h in (0, 1):
            train, test = rows[half[u[rows]] != h], rows[half[u[rows]] == h]
            m = HistGradientBoostingRegressor(max_iter=200, random_state=seed)
            out[test] = m.fit(X[u[train]], y[train]).predict(X[u[test]])
    return out


def _at_spend(env, truth: pd.DataFrame, est: pd.DataFrame, budget: float) -> float:
    """Allocates by ``est``'s values under ``est``'s costs, with the budget bisected until the
    chosen pairs' *true* expected cost is ``budget`` (within 0.5 %); their true profit."""
    keep = est["value"].to_numpy() > 0
    e, t = est[keep], truth[keep]
    v_est, c_est = e["value"].to_numpy(), np.maximum(e["expected_cost"].to_numpy(), 1e-9)
    true_cost, true_value = t["expected_cost"].to_numpy(), t["value"].to_numpy()

    def plan(b: float) -> tuple[float, float]:
        rows = _choose(env, e, v_est, c_est, b)
        return float(true_cost[rows].sum()), float(true_value[rows].sum())

    lo, hi = 0.0, 4.0 * budget
    best = 0.0  # the last plan within the budget
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        spent, value = plan(mid)
        if spent <= 1.005 * budget:
            best = value
            if spent >= 0.995 * budget:
                break
        lo, hi = (mid, hi) if spent < budget else (lo, mid)
    return best
