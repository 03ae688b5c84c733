"""How much of the oracle the machine's plan can reach at all (issue 12).

The oracle of ``python -m benchmarks machine`` chooses among the whole catalogue; the machine's
default plan holds only as many content variants per (benefit, channel) as its learning periods
can measure (one at 200k users: 30 of 120 actions). On a fresh world (day 365, one 30-day
window, at a budget of the machine's mean spend per scored period in its own run of the same
world and seed), :func:`growthmachine.allocate.solve` on the true values of every eligible
(user, action) pair (``Environment.true_uplift``; usage their true expected cost):

- ``oracle``: with every action;
- ``oracle, plan's actions``: with the actions of the machine's default plan only.

(An earlier form of this measure restricted ``Environment.oracle_candidates``, the users'
upper concave hulls over the whole catalogue, to the plan's actions: it dropped every action
that is not on the full hull and put the restricted oracle at 0.65 of the full one on the
default world, against 0.85 here.) Also tried here and dropped: gradient-boosted trees fitted
to the true values from the users' features (a would-be ceiling for models of observables)
earned 0.32 of the oracle on the default world, less than the machine (0.43): a squared-error
regressor of the true values ranks the few users worth a budget worse than the planner's
uplift models, so it bounds nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _solve(env, c: pd.DataFrame, budget: float, start: int, days: int) -> float:
    """Allocates ``c``'s rows (one row per user and action, sorted by user) by their true value
    under the budget (usage: the pairs' true expected cost); the world's truth of the chosen
    pairs."""
    from growthmachine import allocate

    uid = c["user_id"].to_numpy()
    first = np.r_[True, uid[1:] != uid[:-1]]
    indptr = np.r_[np.flatnonzero(first), len(uid)]
    p = allocate.Problem.from_arrays(
        indptr, c["action_id"].to_numpy(), c["value"].to_numpy(), resources={"budget": budget},
        usage={"budget": c["expected_cost"].to_numpy()}, n_actions=len(env.actions),
    )  # fmt: skip
    a = allocate.solve(p, seed=0, progress=False).assignment
    users = uid[first][a["user"].to_numpy()]
    t = env.true_uplift(users, a["action"].to_numpy(), start_day=start, days=days)
    return float(t["incremental_profit"].sum())


def run(n: int, world: str | None, seed: int = 0, budget: float | None = None) -> dict[str, float]:
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
        tu = tu[tu["eligible"].to_numpy() & (tu["incremental_profit"].to_numpy() > 0)]
        parts.append(pd.DataFrame({"user_id": tu["user_id"].to_numpy(), "action_id": a,
                                   "value": tu["incremental_profit"].to_numpy(),
                                   "expected_cost": tu["expected_cost"].to_numpy()}))  # fmt: skip
    c = pd.concat(parts, ignore_index=True).sort_values(["user_id", "action_id"], kind="stable")
    plan = Machine(config=mc)._default_plan(env, mc.period_budget(n))
    acts = np.unique(world_actions(env, plan.tasks()))
    cp = c[np.isin(c["action_id"].to_numpy(), acts)]
    full = _solve(env, c, budget, start, days)
    out = {
        "oracle profit": full,
        "oracle, plan's actions": _solve(env, cp, budget, start, days) / full,
        "plan actions": float(len(acts)),
        "actions": float(len(env.actions)),
        "budget": budget,
    }
    return out
