"""Helpers of the Spark tests (a module of its own, not conftest, so that test modules and the
Spark Connect child import it by a name no other test directory uses).

The Python workers must run this interpreter and import this checkout of the package:
``PYSPARK_PYTHON``/``PYSPARK_DRIVER_PYTHON`` are set to ``sys.executable`` and ``PYTHONPATH``
gets the directory growthmachine was imported from, before the session starts (local-mode
workers inherit the driver's environment; ``spark.executorEnv.PYTHONPATH`` says it for other
masters too).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import growthmachine as gm

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
