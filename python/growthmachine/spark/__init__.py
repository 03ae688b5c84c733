"""Scale-out on Apache Spark: the same Rust cores, run inside Spark tasks.

Install with ``pip install "growthmachine[spark]"`` (pyspark 4.x) on the driver and on every
executor (the package has a compiled extension: see the README, "Scale-out on Spark").

- :func:`features`: :func:`growthmachine.insight.features` on a transaction log held in Spark
  (users co-located by hash partitioning, the Rust features once per partition, the RFM quintile
  scores over all buyers); same columns and values as in-process;
- :func:`score`: a fitted value model, uplift model or real-time policy applied to a Spark
  DataFrame, one Arrow batch at a time, with the model's own in-process method;
- :func:`solve`: distributed allocation by the dual decomposition of
  :func:`growthmachine.allocate.solve`.

Only DataFrame APIs are used (``mapInArrow``, aggregations, ``repartition``): no RDDs and no
``SparkContext``, so every function also runs through Spark Connect. Data crosses between the
JVM and Python as Arrow record batches (never pandas frames), and inside a task the cores' thread
pool is sized from the task's CPUs (:mod:`growthmachine.spark._arrow`).
"""

from __future__ import annotations

import importlib

try:
    import pyspark  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        f'growthmachine.spark needs pyspark 4.x: pip install "growthmachine[spark]" ({e})'
    ) from None

from ._features import features
from ._score import score

__all__ = ["features", "score", "solve"]


def __getattr__(name: str):
    # solve lives in ._solve; imported on first use so that this package imports without it.
    if name == "solve":
        return importlib.import_module(f"{__name__}._solve").solve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"solve"})
