"""What a policy's treatments did in one period, from the world's exact expectation (scoring
only): the KPIs every policy is compared on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv

__all__ = ["KPIS", "eligible", "kpis_of", "empty_treatments"]

#: KPI columns of a policy's period row and of ``summary.json``'s comparison.
KPIS = (
    "incremental_profit",
    "incremental_gmv",
    "new_buyers",
    "reactivated",
    "incentive_cost",
    "channel_cost",
    "spend",
    "opt_outs",
    "avg_offsite_touches",
    "users_treated",
)

#: Days without an order after which a customer counts as lapsed (reactivation goal).
LAPSED_DAYS = 90


def eligible(env: Any, users: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``env.eligible`` that also takes no pairs at all."""
    if not len(users):
        return np.zeros(0, dtype=bool)
    return env.eligible(users, actions)


def empty_treatments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": np.zeros(0, np.int64),
            "benefit": np.zeros(0, np.int64),
            "channel": np.zeros(0, np.int64),
            "content": np.zeros(0, np.int64),
            "day": np.zeros(0, np.int64),
        }
    )


def kpis_of(env: Any, expected: pd.DataFrame | None, start: int) -> dict[str, float]:
    """KPIs of a policy's period from ``expected`` (``env.expected_outcome`` of its treatments,
    in ``env``'s state at ``start``; ``None``: nothing was sent): the exact expected incremental
    profit and GMV, new buyers (incremental conversions of users who never ordered),
    reactivated users (of customers without an order in :data:`LAPSED_DAYS` days), incentive
    and channel cost, spend (both), expected opt-outs, the average number of off-site touches
    per user touched off-site, and users treated."""
    from ._baselines import _env

    _env(env)
    start = cv.check_int(start, "start", minimum=-(2**31) + 1, maximum=2**31 - 1)
    e = None if expected is None else cv.as_pandas(expected, "expected")
    if e is None or not len(e):
        return {k: 0.0 for k in KPIS}
    s = env.state()
    u = e["user_id"].to_numpy()
    customer = s["customer"].to_numpy()[u]
    last = s["last_order_day"].to_numpy()[u]
    with np.errstate(invalid="ignore"):
        lapsed = customer & ~(start - last < LAPSED_DAYS)
    conv = e["incremental_conversion"].to_numpy()
    expo = e["exposures"].to_numpy()
    return {
        "incremental_profit": float(e["incremental_profit"].sum()),
        "incremental_gmv": float(e["incremental_gmv"].sum()),
        "new_buyers": float(conv[~customer].sum()),
        "reactivated": float(conv[lapsed].sum()),
        "incentive_cost": float(e["expected_incentive_cost"].sum()),
        "channel_cost": float(e["channel_cost"].sum()),
        "spend": float(e["expected_cost"].sum()),
        "opt_outs": float(e["expected_optouts"].sum()),
        "avg_offsite_touches": float(expo[expo > 0].mean()) if (expo > 0).any() else 0.0,
        "users_treated": float(len(e)),
    }
