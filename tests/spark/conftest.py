"""One local Spark session for every test of ``tests/spark`` (a session starts in about 12 s).

The directory is skipped only when pyspark cannot be imported (it is in the ``test`` extra, so CI
runs it). The Python workers must run this interpreter and import this checkout of the package:
``PYSPARK_PYTHON``/``PYSPARK_DRIVER_PYTHON`` are set to ``sys.executable`` and ``PYTHONPATH``
gets the directory growthmachine was imported from, before the session starts (local-mode
workers inherit the driver's environment; ``spark.executorEnv.PYTHONPATH`` says it for other
masters too).
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (growthmachine[spark])")

import growthmachine as gm  # noqa: E402

#: The directory holding this checkout's ``growthmachine`` package (for the Python workers).
PACKAGE_ROOT = str(Path(gm.__file__).resolve().parent.parent)


def _python_path() -> str:
    parts = [PACKAGE_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(parts))


def worker_env() -> None:
    """The environment the Python workers inherit (set before any session starts)."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = _python_path()


def builder(master: str = "local[2]"):
    """A session builder with the settings the tests share (UI off, few shuffle partitions)."""
    from pyspark.sql import SparkSession

    from growthmachine.spark import _arrow

    worker_env()
    b = (
        SparkSession.builder.master(master)
        .appName("growthmachine-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "2g")
        .config("spark.executorEnv.PYTHONPATH", _python_path())
    )
    for k, v in _arrow.recommended_conf().items():
        b = b.config(k, v)
    return b


@pytest.fixture(scope="session")
def spark():
    """The session-scoped ``local[2]`` SparkSession shared by every Spark test."""
    warnings.filterwarnings("ignore", message=".*pandas >= 3.0.0.*")
    session = builder().getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def world():
    """A small world's population: ``world.transactions`` (user_id, day, amount, category)."""
    return gm.sim.Population.generate(6_000, days=365, seed=3)


def to_spark(spark, frame, num_partitions: int | None = None):
    """A pandas frame as a Spark DataFrame (categoricals as their string labels), spread
    round-robin over ``num_partitions`` so that each user's rows start in several partitions."""
    import pyarrow as pa

    cols = {}
    for c in frame.columns:
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(str)
        # floats keep NaN as NaN (pyarrow's pandas conversion would make them nulls)
        if isinstance(s.dtype, np.dtype) and s.dtype.kind == "f":
            cols[c] = pa.array(s.to_numpy(), from_pandas=False)
        else:
            cols[c] = pa.array(s, from_pandas=True)
    df = spark.createDataFrame(pa.table(cols))
    return df.repartition(num_partitions) if num_partitions else df


@pytest.fixture
def count_jobs(spark):
    """``with count_jobs() as jobs: ...`` then ``jobs[0]``: the Spark jobs the block started
    (counted by job group on this thread)."""
    sc = spark.sparkContext

    @contextlib.contextmanager
    def counter():
        group = f"growthmachine-test-{uuid.uuid4()}"
        sc.setJobGroup(group, "counted by a test")
        out: list[int] = []
        try:
            yield out
        finally:
            sc.setLocalProperty("spark.jobGroup.id", None)
            # the status tracker is fed by the listener bus, asynchronously: let it catch up
            sc._jsc.sc().listenerBus().waitUntilEmpty()
            out.append(len(sc.statusTracker().getJobIdsForGroup(group)))

    return counter
