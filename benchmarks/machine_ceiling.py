"""How much of the oracle any model of the users' observable features can earn (issue 12).

The oracle of ``python -m benchmarks machine`` allocates with every user's *true* effect of every
action, which depends on hidden per-user parameters (the user's archetype, its responsiveness,
price sensitivity and channel affinities, drawn around the archetype's). A model of observables
cannot earn all of it however much data it sees. This measures how much it can, on a fresh
world (day 365, one 30-day window, at a budget of the machine's mean spend per scored period in
its own run of the same world and seed, or if not given its campaign budget of one period):

- ``oracle``: :func:`growthmachine.allocate.solve` on the true values (``oracle_candidates``);
- ``trees of truth``: the same allocation on values predicted by gradient-boosted trees
  (scikit-learn's ``HistGradientBoostingRegressor``, one per action) fitted to the **true**
  value of every (user, action) pair from the features, cross-fitted over two folds of users:
  what a model that had seen noise-free effects of every action on half the users earns.
  Features: the machine's (``planning_features`` of a ``UserInsight`` fitted as the machine
  fits it) plus each buyer's share of orders per product category (which the machine does not
  use; more features can only raise this ceiling);
- each with every action of the catalogue, and with the actions of the machine's default plan
  (as many content variants as its learning periods can measure; one at 200k users).

Every figure is scored on the world's truth (``Environment.true_uplift`` of the chosen pairs) at
the same budget. ``R2``: of the trees' values against the true values over all pairs.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


def _solve(env, c: pd.DataFrame, col: str, budget: float, start: int, days: int) -> float:
    from growthmachine import allocate

    uid = c["user_id"].to_numpy()
    first = np.r_[True, uid[1:] != uid[:-1]]
    indptr = np.r_[np.flatnonzero(first), len(uid)]
    p = allocate.Problem.from_arrays(
        indptr, c["action_id"].to_numpy(), c[col].to_numpy(), resources={"budget": budget},
        usage={"budget": c["expected_cost"].to_numpy()}, n_actions=len(env.actions),
    )  # fmt: skip
    a = allocate.solve(p, seed=0, progress=False).assignment
    users = uid[first][a["user"].to_numpy()]
    t = env.true_uplift(users, a["action"].to_numpy(), start_day=start, days=days)
    return float(t["incremental_profit"].sum())


def features(env, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The machine's planning features plus category order shares; rows aligned to user ids."""
    import growthmachine as gm
    from growthmachine.insight import UserInsight
    from growthmachine.planning import planning_features

    k_b, k_p = gm.MachineConfig().insight_clusters
    users = env.population.users
    tx = env.transactions()
    ins = UserInsight(n_clusters=k_b, n_prospect_clusters=k_p, seed=seed, progress=False)
    ins.fit(tx, as_of=env.day, users=users)
    X, _, ids = planning_features(ins, users)
    ids = np.asarray(ids)
    cat = next(k for k in tx.columns if "categ" in k)
    sh = pd.crosstab(tx["user_id"], tx[cat])
    sh = sh.div(sh.sum(axis=1), axis=0).reindex(ids).fillna(-1.0).to_numpy()
    return np.hstack([X, sh]), ids


def run(n: int, world: str | None, seed: int = 0, max_iter: int = 100,
        budget: float | None = None) -> dict[str, float]:  # fmt: skip
    from sklearn.ensemble import HistGradientBoostingRegressor

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
    c = env.oracle_candidates(start_day=start, days=days, progress=False)
    c = c.sort_values(["user_id", "action_id"], kind="stable").reset_index(drop=True)
    X, ids = features(env, seed)
    row = pd.Series(np.arange(len(ids)), index=ids)
    fold = np.random.default_rng(seed).integers(0, 2, n)
    t0 = time.perf_counter()
    pred = np.zeros(len(c))
    aid, uid, val = c["action_id"].to_numpy(), c["user_id"].to_numpy(), c["value"].to_numpy()
    for a in np.unique(aid):
        idx = np.flatnonzero(aid == a)
        r, y, f = row.reindex(uid[idx]).to_numpy(), val[idx], fold[uid[idx]]
        for k in (0, 1):
            tr, te = f != k, f == k
            if not te.any():
                continue
            if tr.sum() < 50:  # too few pairs to fit: their mean
                pred[idx[te]] = y[tr].mean() if tr.any() else 0.0
                continue
            m = HistGradientBoostingRegressor(max_iter=max_iter, random_state=seed)
            pred[idx[te]] = m.fit(X[r[tr]], y[tr]).predict(X[r[te]])
    fit_s = time.perf_counter() - t0
    c["pred"] = pred
    plan = Machine(config=mc)._default_plan(env, mc.period_budget(n))
    acts = np.unique(world_actions(env, plan.tasks()))
    cp = c[np.isin(aid, acts)]
    full = _solve(env, c, "value", budget, start, days)
    out = {
        "oracle": full,
        "oracle, plan's actions": _solve(env, cp, "value", budget, start, days),
        "trees of truth": _solve(env, c, "pred", budget, start, days),
        "trees of truth, plan's actions": _solve(env, cp, "pred", budget, start, days),
    }
    out = {k: v / full for k, v in out.items()} | {"oracle profit": full}
    out["R2"] = float(1 - ((val - pred) ** 2).sum() / ((val - val.mean()) ** 2).sum())
    out["plan actions"] = float(len(acts))
    out["actions"] = float(len(env.actions))
    out["budget"] = budget
    out["fit s"] = fit_s
    return out
