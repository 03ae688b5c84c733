"""The planner's bridge to a simulated world (:mod:`growthmachine.sim`): a plan's tasks as the
world's actions, and a randomised experiment over them whose log :class:`~._planner.Planner`
fits on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from ._plan import Plan, check_env

__all__ = ["run_experiment", "world_actions"]


def run_experiment(
    env: Any, plan: Plan, *, share: float = 0.5, days: int | None = None, seed: int = 0, **kw: Any
) -> pd.DataFrame:
    """A randomised experiment over the plan's tasks in a simulated world: each user is treated
    with probability ``share`` by a task drawn uniformly (``env.run_experiment``), and the log's
    ``action_id`` is the plan's ``task_id`` (-1 = control). ``days`` defaults to the plan's
    horizon. Each task must name a benefit, channel and content of the world's catalogue, and
    no two tasks may be the same world action (a plan with several audiences: run the world's
    experiment and recode it yourself)."""
    cv.check_instance(plan, "plan", Plan, "a planning.Plan")
    tasks = plan.tasks()
    aid = world_actions(env, tasks)
    if len(np.unique(aid)) != len(aid):
        raise ValueError(
            "plan: several tasks are the same world action (several audiences); "
            "run env.run_experiment and recode action_id to task ids"
        )
    days = plan.horizon_days if days is None else days
    log = env.run_experiment(aid, share=share, days=days, seed=seed, **kw)
    a = log["action_id"].to_numpy()
    task_of = np.full(len(env.actions), -1, dtype=np.int64)
    task_of[aid] = tasks["task_id"].to_numpy()
    log["action_id"] = np.where(a < 0, -1, task_of[np.maximum(a, 0)])
    log["propensity"] = np.where(a < 0, 1.0 - share, share / len(aid))
    return log


_TASK_KEY = ("benefit", "channel", "content")


def world_actions(env: Any, tasks: pd.DataFrame) -> np.ndarray:
    """The world's action id (``env.actions``) of each task row (by benefit, channel and
    content names); ``ValueError`` naming the first task the catalogue does not have."""
    acts = check_env(env).actions
    key = acts["benefit"].astype(str) + "|" + acts["channel"].astype(str) + "|"
    key = key + acts["content"].astype(str)
    b, c, k = (pd.Series(cv.column(tasks, "tasks", n)).astype(str) for n in _TASK_KEY)
    tkey = b + "|" + c + "|" + k
    aid = pd.Index(key).get_indexer(tkey)
    if (aid < 0).any():
        bad = np.asarray(tkey)[aid < 0][0]
        raise ValueError(
            f"plan: task {bad!r} is not an action of the world's catalogue (env.actions)"
        )
    return aid.astype(np.int64)
