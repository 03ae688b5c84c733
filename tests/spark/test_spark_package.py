"""The gm.spark package surface and the shared helpers of growthmachine.spark._arrow."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql import types as T

import growthmachine as gm
from growthmachine.spark import _arrow


def test_import_without_pyspark_names_the_extra():
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "import growthmachine as gm\n"
        "assert 'spark' not in dir(gm)\n"
        "try:\n"
        "    gm.spark\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'pip install "growthmachine[spark]"' in r.stdout


def test_the_package_lists_its_functions():
    assert gm.spark.__all__ == ["features", "score", "solve"]
    assert callable(gm.spark.features) and callable(gm.spark.score)
    assert "solve" in dir(gm.spark)


def test_task_functions_use_the_tasks_cpus(spark):
    # local[2] runs tasks of spark.task.cpus = 1: one core thread per task, not one per CPU
    def run(batches):
        n = _arrow.use_task_threads(_arrow.task_cpus())
        for b in batches:
            yield pa.RecordBatch.from_pydict({"threads": np.full(b.num_rows, n, dtype=np.int64)})

    schema = T.StructType([T.StructField("threads", T.LongType())])
    df = spark.range(0, 100, numPartitions=2)
    got = {r["threads"] for r in _arrow.map_in_arrow(df, run, schema).collect()}
    assert got == {1}


def test_session_conf_sets_and_restores_the_batch_size(spark):
    before = spark.conf.get(_arrow.BATCH_CONF)
    with _arrow.session_conf(spark, {_arrow.BATCH_CONF: "1234"}):
        assert spark.conf.get(_arrow.BATCH_CONF) == "1234"
    assert spark.conf.get(_arrow.BATCH_CONF) == before
    assert int(_arrow.recommended_conf()[_arrow.BATCH_CONF]) >= 1_000_000


def test_rebatch_gives_large_tables_whatever_the_input_batches():
    batches = [pa.record_batch({"x": np.arange(i * 10, i * 10 + 10)}) for i in range(25)]
    tables = list(_arrow.rebatch(iter(batches), rows=100))
    assert [t.num_rows for t in tables] == [100, 100, 50]
    assert np.array_equal(
        np.concatenate([t.column("x").to_numpy() for t in tables]), np.arange(250)
    )


def test_column_checks_read_the_schema_only(spark):
    df = spark.createDataFrame(pa.table({"a": [1, 2], "s": ["x", "y"]}))
    assert _arrow.check_columns(df, "t", {"a": _arrow.INTEGER})["a"] == T.LongType()
    with pytest.raises(ValueError, match=r"t: unknown column 'b' \(available: a, s\)"):
        _arrow.check_columns(df, "t", {"b": _arrow.NUMERIC})
    with pytest.raises(TypeError, match=r"t\['s'\]: must be numeric"):
        _arrow.check_columns(df, "t", {"s": _arrow.NUMERIC})
