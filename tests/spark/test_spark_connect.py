"""gm.spark through Spark Connect (``SparkSession.builder.remote("local[2]")``, issue 13): the
same answers as in-process when the client speaks to a Connect server.

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


def test_features_and_score_through_spark_connect():
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
