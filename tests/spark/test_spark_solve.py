"""gm.spark.solve: the dual solver over a candidate DataFrame partitioned by user, checked against
the in-process solver (same objective), HiGHS (the dual bound holds) and the bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import growthmachine as gm
from growthmachine.spark import solve


def _frame(p: gm.allocate.Problem) -> tuple[pd.DataFrame, dict, dict, dict]:
    users = np.repeat(np.arange(p.n_users), np.diff(p.indptr))
    df = pd.DataFrame({"user": users, "action": p.action.astype(np.int64), "value": p.value})
    usage = {}
    for i, (c, r) in enumerate(zip(p.usage, p.usage_resource, strict=True)):
        df[f"col{i}"] = c
        usage[f"col{i}"] = p.resources[r]
    au = {}
    for r, name in enumerate(p.resources):
        col = {a: float(p.action_usage[a, r]) for a in range(p.n_actions) if p.action_usage[a, r]}
        if col:
            au[name] = col
    resources = {
        n: (max(lo, 0.0), hi) for n, lo, hi in zip(p.resources, p.lower, p.upper, strict=True)
    }
    return df, usage, au, resources


@pytest.fixture(scope="module")
def instance(spark):
    # 50k users x 20 candidates, 6 resources (2 per-candidate, 4 per-action), over 8 blocks
    p = gm.allocate.random_problem(50_000, 20, 20, 2, 4, seed=1)
    df, usage, au, resources = _frame(p)
    # round-robin rows: every user's candidates are spread over the input partitions, so the
    # solver must bring each user's rows together (range partitioning), not sum split users
    scattered = spark.createDataFrame(df).repartition(7)
    asg, sol = solve(scattered, resources, usage=usage, action_usage=au, partitions=8)
    return p, asg.toPandas(), sol


def test_same_objective_as_in_process(instance):
    p, asg, sol = instance
    ref = gm.allocate.solve(p)
    assert sol.partitions == 8
    assert abs(sol.objective - ref.objective) <= 1e-6 * abs(ref.objective)
    assert sol.dual_bound >= sol.objective
    assert sol.status in ("optimal", "feasible")
    # the written assignment is the plan the certificate describes
    assert np.isclose(asg["value"].sum(), sol.objective, rtol=1e-9)
    assert not asg.duplicated(["user"]).any()  # per_user_limit=1


def test_assignment_respects_every_resource(instance):
    p, asg, sol = instance
    pair_res = {p.resources[r] for r in p.usage_resource}
    acts = asg["action"].to_numpy()
    for r, name in enumerate(p.resources):
        own = float(asg[name].sum()) if name in pair_res else 0.0
        total = own + float(p.action_usage[acts, r].sum())
        assert total <= p.upper[r] * (1 + 1e-9) + 1e-9, name
        assert np.isclose(total, sol.usage.set_index("resource").loc[name, "used"], rtol=1e-9)


def test_dual_bound_is_valid_against_highs(spark):
    pytest.importorskip("highspy")
    p = gm.allocate.random_problem(300, 6, 8, 2, 2, seed=4)
    df, usage, au, resources = _frame(p)
    _, sol = solve(spark.createDataFrame(df), resources, usage=usage, action_usage=au, partitions=3)
    best = gm.allocate.solve(p, method="highs")
    assert best.objective <= sol.dual_bound * (1 + 1e-9) + 1e-9
    assert sol.objective <= best.objective * (1 + 1e-9) + 1e-9


def test_bad_input_names_the_column(spark):
    df = spark.createDataFrame(
        pd.DataFrame(
            {
                "user": [1, 1, 2],
                "action": [0, 1, 0],
                "value": [1.0, np.nan, 2.0],
                "c": [1.0, 1.0, 1.0],
            }
        )
    )
    with pytest.raises(ValueError, match="value"):
        solve(df, {"c": 1.0}, usage="c")
    with pytest.raises(ValueError, match="unknown column 'nope'"):
        solve(df, {"c": 1.0}, usage="c", value="nope")
    with pytest.raises(TypeError, match="user"):
        solve(
            df.withColumn("user", df["user"].cast("string")).withColumn("value", df["c"]),
            {"c": 1.0},
            usage="c",
            value="user",
        )
    with pytest.raises(ValueError, match="is empty"):
        solve(df.limit(0), {"c": 1.0}, usage="c")
    neg = df.withColumn("value", df["c"]).withColumn("c", -df["c"])
    with pytest.raises(ValueError, match="'c'"):
        solve(neg, {"c": 1.0}, usage="c")


def test_duplicate_pairs_are_rejected(spark):
    df = spark.createDataFrame(
        pd.DataFrame(
            {"user": [1, 1, 2], "action": [0, 0, 0], "value": [1.0, 2.0, 2.0], "c": [1.0, 1.0, 1.0]}
        )
    )
    with pytest.raises(ValueError, match=r"user 1 has action 0 in more than one row"):
        solve(df, {"c": 1.0}, usage="c", partitions=2)


def _spilled_files() -> list:
    from growthmachine.spark import _store

    return sorted(_store.root().glob("*/*.arrow")) if _store.root().exists() else []


def test_blocks_sent_instead_of_spilled_give_the_same_plan(spark):
    # spill=False: no worker finds a block on disk, so every pass and the final write run the
    # path where Spark sends the blocks a worker lacks
    p = gm.allocate.random_problem(4_000, 10, 10, 2, 2, seed=6)
    df, usage, au, resources = _frame(p)
    sdf = spark.createDataFrame(df)
    a1, s1 = solve(sdf, resources, usage=usage, action_usage=au, partitions=3)
    a2, s2 = solve(sdf, resources, usage=usage, action_usage=au, partitions=3, spill=False)
    assert s1.extra["fallback_blocks"] == 0  # the set-up job spilled every block
    assert s2.extra["fallback"] >= 1
    assert s2.objective == s1.objective
    cols = ["user", "action", "value"]
    x1 = a1.toPandas().sort_values("user")[cols].reset_index(drop=True)
    x2 = a2.toPandas().sort_values("user")[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(x1, x2)
    assert np.isclose(x1["value"].sum(), s1.objective, rtol=1e-9)
    with pytest.raises(TypeError, match="spill: must be True or False"):
        solve(sdf, resources, usage=usage, action_usage=au, spill="no")


def test_a_solve_lets_go_of_its_blocks(spark):
    # the blocks' spill files are deleted when solve returns, a failing solve leaves none, and the
    # returned assignment does not need them: it reads the same, again and again
    p = gm.allocate.random_problem(3_000, 8, 8, 2, 2, seed=7)
    df, usage, au, resources = _frame(p)
    sdf = spark.createDataFrame(df)
    before = _spilled_files()
    asg, sol = solve(sdf, resources, usage=usage, action_usage=au, partitions=2)
    assert _spilled_files() == before
    first = asg.toPandas().sort_values("user").reset_index(drop=True)
    again = asg.toPandas().sort_values("user").reset_index(drop=True)
    pd.testing.assert_frame_equal(first, again)
    assert np.isclose(first["value"].sum(), sol.objective, rtol=1e-9)
    bad = sdf.withColumn("action", sdf["action"] * 0)  # duplicate pairs: fails in the set-up job
    with pytest.raises(ValueError, match="more than one row"):
        solve(bad, resources, usage=usage, action_usage=au, partitions=2)
    assert _spilled_files() == before
