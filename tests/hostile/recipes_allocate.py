"""Recipes: gm.allocate."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from growthmachine import allocate as al

from .driver import Recipes
from .stages import stage_recipe

R = Recipes()


class Ctx:
    @cached_property
    def frame(self) -> pd.DataFrame:
        rng = np.random.default_rng(0)
        users, actions = np.repeat(np.arange(6), 3), np.tile(np.arange(3), 6)
        return pd.DataFrame(
            {
                "user": users,
                "action": actions,
                "value": rng.uniform(1, 2, 18),
                "cost": rng.uniform(0.5, 1, 18),
            }
        )

    @cached_property
    def problem(self) -> al.Problem:
        return al.Problem.from_frame(self.frame, usage=["cost"], resources={"cost": 4.0})

    @cached_property
    def solution(self) -> al.Solution:
        return al.solve(self.problem)


#: users and actions of a problem are labels (from_frame keeps the table's: numbers or strings).
_LABELS = {"1.5": "labels may be any numbers", "str-dtype": "labels may be strings"}


@R(
    "allocate.Problem",
    names={k: ("problem",) for k in ("indptr", "action", "value", "usage")},
    allow={
        "users": _LABELS,
        "actions": _LABELS,
        "per_user_limit": {"2**64": "a limit of 2**32 - 1 or more means no limit (documented)"},
        "upper": {"inf": "an upper bound of inf is no bound (documented)"},
    },
)
def _(c):
    p = c.problem
    kw = {k: v for k, v in vars(p).items() if not k.startswith("_")}
    return al.Problem, kw


NO_BOUND = {"cost:inf": "an upper bound of inf is no bound (documented)"}
NO_LIMIT = {"2**64": "a limit of 2**32 - 1 or more means no limit (documented)"}
LABELS = {"str-user": "user labels may be strings", "str-action": "action labels may be strings"}


@R("allocate.Problem.from_arrays", allow={"resources": NO_BOUND, "per_user_limit": NO_LIMIT})
def _(c):
    f = c.frame
    return al.Problem.from_arrays, dict(
        indptr=np.arange(0, 19, 3),
        action=f["action"].to_numpy(),
        value=f["value"].to_numpy(),
        resources={"cost": 4.0},
        usage={"cost": f["cost"].to_numpy()},
        n_actions=3,
        per_user_limit=1,
        groups=np.array([0, 0, -1]),
    )


@R(
    "allocate.Problem.from_frame",
    columns={"df": ("user", "action", "value", "cost")},
    allow={"resources": NO_BOUND, "df": LABELS, "per_user_limit": NO_LIMIT},
)
def _(c):
    return al.Problem.from_frame, dict(
        df=c.frame,
        usage=["cost"],
        resources={"cost": 4.0},
        per_user_limit=1,
        action_usage={"cost": {0: 0.1, 1: 0.2, 2: 0.3}},
    )


@R("allocate.Problem.with_bounds", allow={"cost": {"inf": "no bound (documented)"}})
def _(c):
    return c.problem.with_bounds, dict(cost=3.0)


@R("allocate.Solution", stores=True)
def _(c):
    s = c.solution
    return al.Solution, {f: getattr(s, f) for f in s.__dataclass_fields__}


@R("allocate.solve", deterministic=True)
def _(c):
    return al.solve, dict(
        problem=c.problem, method="dual", tol=1e-4, time_limit=30.0, max_iter=100, seed=0
    )


@R("allocate.highs_lp", deterministic=False)
def _(c):
    return al.highs_lp, dict(problem=c.problem, solver="ipm", crossover=False, threads=1)


@R(
    "allocate.random_problem",
    names={"n_action_res": ("n_actions",)},  # the table is n_actions x n_action_res
    allow={"per_user_limit": NO_LIMIT},
)
def _(c):
    return al.random_problem, dict(
        n_users=5,
        per_user=3,
        n_actions=4,
        n_pair=1,
        n_action_res=1,
        n_groups=1,
        per_user_limit=1,
        tightness=(0.3, 0.9),
        seed=0,
    )


R("allocate.run_stage")(stage_recipe(al.run_stage, "allocate"))
