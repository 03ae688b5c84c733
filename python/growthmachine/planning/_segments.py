"""The plan the main job used before the planner: a difference in means per coarse segment
(customer x city tier x app) and action from one experiment. Kept as the "before" baseline of
the planning benchmark (benchmarks/bench_planning.py) and of decision-quality notes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from ._plan import check_env

__all__ = ["plan_from_environment"]


def _pick_actions(actions: pd.DataFrame, k: int = 12) -> np.ndarray:
    """A spread of actions: the first content of each (benefit, channel), up to ``k``."""
    first = actions.drop_duplicates(["benefit", "channel"], keep="first")
    # Alternate channels so that a cut at k keeps every channel.
    first = first.assign(_r=first.groupby("channel", observed=True).cumcount())
    first = first.sort_values(["_r", "action_id"])
    return first["action_id"].to_numpy()[:k]


def plan_from_environment(
    env: Any, *, n_actions: int = 12, days: int = 30, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """A candidate table estimated from a randomised experiment in ``env`` (difference in means
    per segment and action; ``env.true_uplift`` is never used here).

    Returns ``(plan, resources, action_usage)``: ``plan`` has user, action, value (estimated
    incremental profit over ``days``) and ``incentive_cost`` (estimated) per eligible pair;
    ``resources`` bounds an incentive budget and per-channel message capacities;
    ``action_usage`` gives each action's use of its channel's capacity."""
    check_env(env)
    n_actions = cv.check_int(n_actions, "n_actions", minimum=1)
    days = cv.check_int(days, "days", minimum=1)
    seed = cv.check_int(seed, "seed", minimum=0)
    acts = _pick_actions(env.actions, n_actions)
    if n_actions > len(acts):
        raise ValueError(
            f"n_actions: the catalogue has {len(acts)} distinct (benefit, channel) actions to "
            f"experiment with, got {n_actions}"
        )
    log = env.run_experiment(acts, share=0.5, days=days, seed=seed, progress=False)
    margin = float(env.config.response.margin)
    seg_cols = [c for c in ("customer", "city_tier", "has_app") if c in log.columns]
    log = log.assign(
        profit=margin * log["gmv"] - log["incentive_cost"] - log.get("channel_cost", 0.0)
    )
    seg = (
        log[seg_cols].astype(str).agg("|".join, axis=1) if seg_cols else pd.Series("all", log.index)
    )
    log = log.assign(segment=seg.to_numpy())
    ctrl = log[log["action_id"] < 0].groupby("segment")["profit"].mean()
    treated = log[log["action_id"] >= 0]
    cell = treated.groupby(["segment", "action_id"]).agg(
        profit=("profit", "mean"), incentive_cost=("incentive_cost", "mean"), n=("profit", "size")
    )
    cell = cell.reset_index()
    cell["value"] = cell["profit"] - cell["segment"].map(ctrl).fillna(0.0)
    cell = cell[cell["n"] >= 20]
    users = log[["user_id", "segment"]].drop_duplicates("user_id")
    cand = users.merge(cell[["segment", "action_id", "value", "incentive_cost"]], on="segment")
    ch = env.actions.set_index("action_id")["channel"].astype(str)
    cand["channel"] = cand["action_id"].map(ch).to_numpy()
    # Only pairs the platform may send now: consent, app and the opt-outs the experiment caused
    # (the environment's channel rules, observable data, not its hidden truth).
    cand = cand[env.eligible(cand["user_id"].to_numpy(), cand["action_id"].to_numpy())]
    plan = pd.DataFrame(
        {
            "user": cand["user_id"].to_numpy(),
            "action": cand["action_id"].to_numpy(),
            "value": cand["value"].to_numpy(dtype=np.float64),
            "incentive_cost": np.maximum(cand["incentive_cost"].to_numpy(dtype=np.float64), 0.0),
        }
    )
    # Budgets: what the unconstrained best plan would use, cut down (a real conflict).
    best = plan.loc[plan["value"] > 0].sort_values("value", ascending=False)
    best = best.drop_duplicates("user")
    used_cost = float(best["incentive_cost"].sum())
    resources: dict[str, Any] = {"incentive_cost": max(1.0, 0.4 * used_cost)}
    au = {}
    for channel in sorted(plan["action"].map(ch).unique()):
        key = f"{channel}_capacity"
        n_ch = int((best["action"].map(ch) == channel).sum())
        resources[key] = max(1.0, round(0.5 * n_ch))
        au[key] = {a: float(ch[a] == channel) for a in np.unique(plan["action"])}
    return plan, resources, pd.DataFrame(au)
