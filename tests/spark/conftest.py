"""One local Spark session for every test of ``tests/spark`` (a session starts in about 12 s).

The directory is skipped only when pyspark cannot be imported (it is in the ``test`` extra, so CI
runs it). The session's environment and settings: ``spark_testing.builder``.
"""

from __future__ import annotations

import contextlib
import uuid
import warnings

import pytest

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (growthmachine[spark])")

from spark_testing import builder  # noqa: E402

import growthmachine as gm  # noqa: E402


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
