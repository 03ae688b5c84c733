"""gm.spark through Spark Connect (``SparkSession.builder.remote("local[2]")``, issue 13): the
same answers as in-process (features, score and solve) when the client speaks to a Connect
server.

A local Connect server cannot start next to the classic session the other tests share (it would
reuse that session's JVM, which has no Connect endpoint), so this test runs in a child
interpreter; skipped, with the reason, when the Connect client's dependencies (grpcio, ...;
``pip install "pyspark[connect]"``) are missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import sys
import numpy as np
sys.path.insert(0, {tests!r})
import spark_testing
from pyspark.sql import SparkSession
import growthmachine as gm

spark_testing.worker_env()
spark = (
    SparkSession.builder.remote("local[2]")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "4")
    .getOrCreate()
)
assert type(spark).__module__.startswith("pyspark.sql.connect"), type(spark)
tx = gm.sim.Population.generate(2_000, days=200, seed=5).transactions
expected = gm.insight.features(tx, category="category")
got = gm.spark.features(spark_testing.to_spark(spark, tx, 2), category="category", num_partitions=3)
got = got.toArrow().to_pandas().sort_values("user_id").reset_index(drop=True)
assert list(got.columns) == list(expected.columns)
for c in expected.columns:
    np.testing.assert_array_equal(
        got[c].to_numpy().astype(float), expected[c].to_numpy().astype(float), err_msg=c
    )
bg = gm.insight.BetaGeo().fit(expected)
frame = expected[["user_id", "frequency", "recency", "T"]]
out = gm.spark.score(spark_testing.to_spark(spark, frame, 2), bg, t=10.0)
out = out.toArrow().to_pandas().sort_values("user_id")
np.testing.assert_array_equal(out["score"].to_numpy(), bg.expected_purchases(10.0, expected))
p = gm.allocate.random_problem(5_000, 8, 12, 1, 3, seed=6)
users = np.repeat(np.arange(p.n_users), np.diff(p.indptr))
import pandas as pd
cands = pd.DataFrame(
    {{"user": users, "action": p.action.astype(np.int64), "value": p.value, "cost": p.usage[0]}}
)
au = {{
    name: {{a: float(p.action_usage[a, r]) for a in range(p.n_actions) if p.action_usage[a, r]}}
    for r, name in enumerate(p.resources)
    if p.action_usage[:, r].any()
}}
asg, sol = gm.spark.solve(
    spark_testing.to_spark(spark, cands, 3),
    dict(zip(p.resources, p.upper)),
    usage={{"cost": p.resources[p.usage_resource[0]]}},
    action_usage=au,
    partitions=3,
)
ref = gm.allocate.solve(p)
assert abs(sol.objective - ref.objective) <= 1e-6 * abs(ref.objective), (sol.objective, ref.objective)
assert np.isclose(asg.toArrow().column("value").to_numpy().sum(), sol.objective)
print("connect ok", flush=True)
spark.stop()
"""


def _connect_missing() -> str | None:
    try:
        from pyspark.sql.connect.utils import check_dependencies

        check_dependencies()
    except Exception as e:  # noqa: BLE001 - any missing piece means: no Connect here
        return f"Spark Connect client dependencies missing ({e}); pip install 'pyspark[connect]'"
    return None


def test_features_score_and_solve_through_spark_connect():
    missing = _connect_missing()
    if missing:
        pytest.skip(missing)
    tests = str(Path(__file__).parent)
    env = dict(os.environ)
    r = subprocess.run(
        [sys.executable, "-c", CHILD.format(tests=tests)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0 and "connect ok" in r.stdout, r.stderr[-4000:]
