"""Playing policies on a stream of multi-step sessions (the world of ``growthmachine.sim``, or any
batch with the contract of its ``env.sessions``): the comparison behind the benchmark, the
notebook and the report section."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .session import SessionPolicy


def no_intervention(sb: Any) -> np.ndarray:
    return np.zeros(sb.n, dtype=np.int64)


def exit_offer_to_all(sb: Any) -> np.ndarray:
    """The fixed rule: the exit coupon to every session at exit intent (stage 2), nothing else."""
    k = list(sb.action_names).index("exit_coupon")
    return np.where(np.asarray(sb.active) & (np.asarray(sb.stage) == 2), k, 0).astype(np.int64)


def play(
    make_batch: Callable[[int], Any],
    policy: SessionPolicy | Callable[[Any], np.ndarray],
    n: int,
    rounds: int,
    seed: int = 0,
) -> pd.DataFrame:
    """Runs ``rounds`` batches of ``n`` sessions (``make_batch(seed)``) under ``policy``; one
    row per round: net value (GMV - incentive cost), GMV, cost and decisions per session, and
    the cumulative spend and price of a budgeted :class:`SessionPolicy`."""
    rows = []
    learner = isinstance(policy, SessionPolicy)
    for rd in range(rounds):
        sb = make_batch(seed + rd)
        if learner:
            policy.begin(sb.n)
        gmv = cost = 0.0
        decisions = 0
        while np.asarray(sb.active).any():
            active = np.asarray(sb.active)
            a = policy.act(sb.context, sb.stage, active) if learner else policy(sb)
            decisions += int(active.sum())
            res = sb.step(a)
            r, c, d = res[0], res[1], res[3]
            if learner:
                policy.observe(r, c, d)
            gmv += float(np.sum(r))
            cost += float(np.sum(c))
        rows.append(
            {
                "round": rd,
                "net_value": (gmv - cost) / sb.n,
                "gmv": gmv / sb.n,
                "cost": cost / sb.n,
                "decisions": decisions / sb.n,
                "spend": policy.spend_ if learner else float("nan"),
                "price": policy.price_ if learner else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def compare(
    make_batch: Callable[[int], Any],
    *,
    n: int = 20_000,
    rounds: int = 10,
    budget_share: float = 1.0,
    seed: int = 0,
    param: float = 10.0,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], SessionPolicy]:
    """No intervention vs the exit-intent rule vs the learned :class:`SessionPolicy` with a budget
    of ``budget_share`` x the rule's spend, on the same sessions. Returns a summary table, the
    per-round results of each and the trained policy."""
    probe = make_batch(seed)
    names = list(probe.action_names)
    base = play(make_batch, no_intervention, n, rounds, seed)
    rule = play(make_batch, exit_offer_to_all, n, rounds, seed)
    decisions = float(base["decisions"].mean()) * n * rounds
    budget = budget_share * float(rule["cost"].sum()) * n
    face = np.array([face_value(a) for a in names])
    sp = SessionPolicy(
        len(names),
        probe.n_features,
        param=param,
        seed=seed,
        costs=face,
        budget=budget,
        horizon=max(int(decisions), 1),
    )
    learned = play(make_batch, sp, n, rounds, seed)
    runs = {
        "no intervention": base,
        "exit offer to all": rule,
        "session policy (budgeted)": learned,
    }
    late = slice(rounds // 2, None)
    summary = pd.DataFrame(
        {
            "policy": list(runs),
            "net value / session": [r["net_value"].mean() for r in runs.values()],
            "net value / session (2nd half)": [
                r["net_value"].iloc[late].mean() for r in runs.values()
            ],
            "GMV / session": [r["gmv"].mean() for r in runs.values()],
            "cost / session": [r["cost"].mean() for r in runs.values()],
            "total cost": [r["cost"].sum() * n for r in runs.values()],
            "budget": [float("nan"), float("nan"), budget],
        }
    )
    return summary, runs, sp


def face_value(name: str) -> float:
    """Face value of an incentive from its name (coupon_5 -> 5); free shipping and the exit
    coupon are valued at 10 (upper bounds used only for the hard budget check)."""
    if name.startswith("coupon_"):
        try:
            return float(name.split("_", 1)[1])
        except ValueError:
            return 10.0
    return {"none": 0.0, "guide": 0.0}.get(name, 10.0)
