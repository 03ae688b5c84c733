"""Recipes: gm.spark (a local[2] session, a few hundred rows; run by tests/spark only)."""

from __future__ import annotations

import os
import sys
from functools import cached_property

import numpy as np
import pandas as pd

import growthmachine as gm
from growthmachine import spark as gs

from .driver import Recipes

R = Recipes()


class Ctx:
    @cached_property
    def spark(self):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "spark"))
        from spark_testing import builder, worker_env

        worker_env()
        s = builder().getOrCreate()
        s.sparkContext.setLogLevel("OFF")
        return s

    @cached_property
    def tx(self):
        t = gm.sim.Population.generate(100, days=120, seed=0).transactions
        return self.spark.createDataFrame(t[["user_id", "day", "amount"]])

    @cached_property
    def bg(self):
        t = gm.sim.Population.generate(100, days=120, seed=0).transactions
        f = gm.insight.features(t, as_of=120)
        return gm.insight.BetaGeo().fit(f), self.spark.createDataFrame(
            f[["frequency", "recency", "T"]].astype(float)
        )

    @cached_property
    def candidates(self):
        rng = np.random.default_rng(0)
        df = pd.DataFrame(
            {
                "user": np.repeat(np.arange(20), 3),
                "action": np.tile(np.arange(3), 20),
                "value": rng.uniform(1, 2, 60),
                "cost": rng.uniform(0.5, 1, 60),
            }
        )
        return self.spark.createDataFrame(df)


@R(
    "spark.features",
    # an unknown column name is reported as the table's unknown column
    names={"user": ("transactions",), "time": ("transactions",), "amount": ("transactions",)},
)
def _(c):
    return gs.features, dict(
        transactions=c.tx, as_of=120, user="user_id", time="day", amount="amount",
        trend_window=30, num_partitions=2,
    )  # fmt: skip


@R("spark.score", names={"method": ("t",)})  # method=None: the default, which needs t=
def _(c):
    model, df = c.bg
    return gs.score, dict(df=df, model=model, output_col="score", method="p_alive", check=True)


@R(
    "spark.solve",
    deterministic=False,
    names={"per_user_limit": ("candidates_df",)},  # a str is the name of a limit column
    allow={
        "resources": {
            "cost:inf": "an upper bound of inf is no bound (documented)",
            "cost:0": "the usage table's share_of_upper is NaN for a bound of 0 (by design)",
        }
    },
    nan_ok=("resources=cost:0",),
)
def _(c):
    return gs.solve, dict(
        candidates_df=c.candidates, resources={"cost": 8.0}, usage=["cost"], per_user_limit=1,
        tol=1e-4, max_iter=50, time_limit=60.0, seed=0, partitions=2,
    )  # fmt: skip
