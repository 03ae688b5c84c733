"""What every ``growthmachine.spark`` function shares (written once, used by each).

Session settings
    :data:`ARROW_BATCH_ROWS` rows per Arrow batch: the cores pay a fixed cost per call (thread
    pool start, table building), so they want batches of about a million rows, not Spark's
    default of 10,000 (``spark.sql.execution.arrow.maxRecordsPerBatch``).
    :func:`recommended_conf` lists the settings, :func:`configure` applies them to a session
    (runtime SQL settings: allowed on a live session, also through Spark Connect) and
    :func:`session_conf` applies them only around the jobs a function runs eagerly. A function
    that returns a lazy DataFrame cannot rely on the setting (it is read when the job runs, not
    when the plan is built): its task function re-batches with :func:`rebatch` instead, so the
    cores see large batches whatever the session says.

Threads inside a task
    :func:`use_task_threads` (first thing in every task function) sizes the cores' thread pool
    to the CPUs Spark reserved for the task (``TaskContext.cpus()``, i.e. ``spark.task.cpus``;
    ``fallback`` read on the driver when the task context does not say): an executor running
    ``cores / task.cpus`` tasks at once then runs exactly ``cores`` threads, not ``cores``
    threads per task. Results never depend on the thread count.

Checks before any job
    :func:`check_dataframe` and :func:`check_columns` read only the schema (no job): unknown
    column -> ``ValueError``, wrong Spark type -> ``TypeError``, both naming ``table[column]``.
    :func:`check_values` is one aggregation (one job, no shuffle of the data) that counts rows,
    nulls, NaN/inf and negative values and raises ``ValueError`` naming the first bad column (and
    ``table: is empty`` for no rows); it also returns any extra aggregates the caller needs (so
    ``as_of=None`` costs no second pass).

Arrow <-> numpy
    :func:`map_in_arrow` is ``DataFrame.mapInArrow`` (without pyspark's irrelevant pandas-version
    warning), :func:`gather` concatenates a task's batches into one table (a partition's users in one core
    call), :func:`numpy_column` converts one column with the package's own checks
    (``growthmachine._convert.as_array``), :func:`record_batches` builds output batches from
    numpy columns in a declared schema, :func:`spark_type` maps numpy dtypes to Spark types.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .. import _convert as cv

__all__ = [
    "ARROW_BATCH_ROWS",
    "BATCH_CONF",
    "check_columns",
    "check_dataframe",
    "check_values",
    "configure",
    "driver_task_cpus",
    "gather",
    "map_in_arrow",
    "numpy_column",
    "rebatch",
    "recommended_conf",
    "record_batches",
    "session_conf",
    "spark_type",
    "task_cpus",
    "use_task_threads",
]

#: Rows per Arrow batch handed to the cores (Spark's default is 10,000).
ARROW_BATCH_ROWS = 1_000_000
#: The session setting that sizes the Arrow batches Spark sends to Python.
BATCH_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"


# -- session settings ---------------------------------------------------------------------------


def recommended_conf() -> dict[str, str]:
    """The session settings ``growthmachine.spark`` is tuned for (all runtime SQL settings).

    ``spark.sql.execution.arrow.pyspark.enabled`` makes ``createDataFrame(pandas)`` and
    ``toPandas()`` move Arrow too (it does not affect ``mapInArrow``, which is always Arrow)."""
    return {
        BATCH_CONF: str(ARROW_BATCH_ROWS),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


def configure(spark: Any, settings: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Applies ``settings`` (default :func:`recommended_conf`) to ``spark.conf``; returns the
    previous values (``None`` where unset), e.g. to restore them."""
    settings = recommended_conf() if settings is None else dict(settings)
    before: dict[str, str | None] = {}
    for k, v in settings.items():
        before[k] = spark.conf.get(k, None)
        spark.conf.set(k, str(v))
    return before


@contextlib.contextmanager
def session_conf(spark: Any, settings: Mapping[str, str] | None = None) -> Iterator[None]:
    """Applies ``settings`` (default: the batch size only) for the jobs run inside the block,
    then restores the session's previous values."""
    settings = {BATCH_CONF: str(ARROW_BATCH_ROWS)} if settings is None else settings
    before = configure(spark, settings)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


# -- threads inside a task ----------------------------------------------------------------------


def driver_task_cpus(spark: Any) -> int:
    """``spark.task.cpus`` as the driver sees it (1 when unset or unreadable): the fallback
    passed into task functions for executors whose task context does not report CPUs."""
    try:
        return max(1, int(spark.conf.get("spark.task.cpus", "1")))
    except Exception:  # noqa: BLE001 - a conf the session does not expose counts as the default
        return 1


def task_cpus(fallback: int = 1) -> int:
    """CPUs Spark reserved for the running task (``TaskContext.cpus()``), else ``fallback``."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is not None:
        try:
            return max(1, int(ctx.cpus()))
        except Exception:  # noqa: BLE001 - older task contexts have no cpus()
            pass
    return max(1, int(fallback))


def use_task_threads(fallback: int = 1) -> int:
    """Sizes the cores' thread pool to the task's CPUs (called first in every task function;
    the pool is rebuilt only when the size changes, Python workers being reused across tasks).
    Returns the thread count."""
    import growthmachine as gm

    n = task_cpus(fallback)
    if gm.get_num_threads() != n:
        try:
            gm.set_num_threads(n)
        except ValueError:  # more CPUs than the cap of 4 threads per CPU of this machine
            pass
    return gm.get_num_threads()


def map_in_arrow(df: DataFrame, fn: Any, schema: T.StructType) -> DataFrame:
    """``df.mapInArrow(fn, schema)`` without pyspark's warning about pandas >= 3 (it checks the
    pandas version even for this Arrow-only path, which never builds a pandas frame)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        return df.mapInArrow(fn, schema)


# -- checks before any job ----------------------------------------------------------------------

INTEGER = "integer"
NUMERIC = "numeric"
DAY = "day"
ANY = "any"

_KIND_TEXT = {
    INTEGER: "an integer type (tinyint, smallint, int, bigint)",
    NUMERIC: "numeric (an integer type, float, double or boolean; cast decimals to double)",
    DAY: "integer day numbers (tinyint, smallint, int, bigint) or a date",
    ANY: "a non-nested type",
}


def _matches(dt: T.DataType, kind: str) -> bool:
    if kind == INTEGER:
        return isinstance(dt, T.IntegralType)
    if kind == NUMERIC:
        return isinstance(dt, (T.IntegralType, T.FloatType, T.DoubleType, T.BooleanType))
    if kind == DAY:
        return isinstance(dt, (T.IntegralType, T.DateType))
    return not isinstance(dt, (T.ArrayType, T.MapType, T.StructType))


def check_dataframe(df: Any, name: str) -> None:
    """``TypeError`` naming ``name`` unless ``df`` is a Spark DataFrame (classic or Connect)."""
    if not isinstance(df, DataFrame):
        raise TypeError(f"{name}: expected a Spark DataFrame, got {type(df).__name__}")


def check_columns(df: DataFrame, name: str, spec: Mapping[str, str]) -> dict[str, T.DataType]:
    """Checks that each column of ``spec`` (column -> kind: ``"integer"``, ``"numeric"``,
    ``"day"`` or ``"any"``) exists with a matching Spark type, from the schema alone (no job).
    Returns the Spark type of each column."""
    schema = df.schema
    types = {f.name: f.dataType for f in schema.fields}
    out: dict[str, T.DataType] = {}
    for col, kind in spec.items():
        if not isinstance(col, str):
            raise TypeError(f"{name}: column names must be str, got {type(col).__name__}")
        if col not in types:
            raise ValueError(
                f"{name}: unknown column {col!r} (available: {', '.join(types) or 'none'})"
            )
        dt = types[col]
        if not _matches(dt, kind):
            raise TypeError(f"{name}[{col!r}]: must be {_KIND_TEXT[kind]}, got {dt.simpleString()}")
        out[col] = dt
    return out


def _is_float(dt: T.DataType) -> bool:
    return isinstance(dt, (T.FloatType, T.DoubleType))


def check_values(
    df: DataFrame,
    name: str,
    types: Mapping[str, T.DataType],
    *,
    finite: Sequence[str] = (),
    nonnegative: Sequence[str] = (),
    extra: Mapping[str, Column] | None = None,
    allow_empty: bool = False,
) -> dict[str, Any]:
    """One aggregation over ``df`` (one Spark job): every column of ``types`` must have no nulls,
    the float columns among ``finite`` no NaN or infinity, the columns of ``nonnegative`` no
    negative values; ``ValueError`` names the first offender (columns in ``types`` order), and
    ``name: is empty`` when ``df`` has no rows (unless ``allow_empty``). Returns the row count
    (key ``"rows"``) and the ``extra`` aggregates by name."""
    aggs: list[Column] = [F.count(F.lit(1)).alias("rows")]
    for i, (col, dt) in enumerate(types.items()):
        c = F.col(col)
        aggs.append(F.sum(c.isNull().cast("long")).alias(f"null{i}"))
        if col in finite and _is_float(dt):
            bad = F.isnan(c) | (F.abs(c) == F.lit(float("inf")))
            aggs.append(F.sum(bad.cast("long")).alias(f"nonfinite{i}"))
        if col in nonnegative:
            aggs.append(F.sum((c < 0).cast("long")).alias(f"negative{i}"))
    extra = dict(extra or {})
    aggs += [v.alias(f"extra_{k}") for k, v in extra.items()]
    row = df.agg(*aggs).collect()[0].asDict()
    for i, col in enumerate(types):
        label = f"{name}[{col!r}]"
        if row[f"null{i}"]:
            raise ValueError(f"{label}: has {row[f'null{i}']} missing (null) values")
        if row.get(f"nonfinite{i}"):
            raise ValueError(f"{label}: must be finite, found {row[f'nonfinite{i}']} NaN or inf")
        if row.get(f"negative{i}"):
            raise ValueError(f"{label}: must be >= 0, found {row[f'negative{i}']} negative values")
    if not row["rows"] and not allow_empty:
        raise ValueError(f"{name}: is empty")
    out = {"rows": int(row["rows"])}
    out.update({k: row[f"extra_{k}"] for k in extra})
    return out


# -- Arrow <-> numpy ----------------------------------------------------------------------------


def gather(batches: Iterable[pa.RecordBatch]) -> pa.Table | None:
    """A task's batches as one table with contiguous columns (``None`` for no rows)."""
    batches = [b for b in batches if b.num_rows]
    if not batches:
        return None
    return pa.Table.from_batches(batches).combine_chunks()


def rebatch(batches: Iterable[pa.RecordBatch], rows: int = ARROW_BATCH_ROWS) -> Iterator[pa.Table]:
    """Regroups a stream of batches into tables of at least ``rows`` rows (the last may be
    smaller), whatever batch size the session sends."""
    buf: list[pa.RecordBatch] = []
    n = 0
    for b in batches:
        if not b.num_rows:
            continue
        buf.append(b)
        n += b.num_rows
        if n >= rows:
            yield pa.Table.from_batches(buf).combine_chunks()
            buf, n = [], 0
    if buf:
        yield pa.Table.from_batches(buf).combine_chunks()


def numpy_column(table: pa.Table, col: str, label: str, dtype: Any, **checks: Any) -> np.ndarray:
    """Column ``col`` of ``table`` as a C-contiguous numpy array of ``dtype``, with the package's
    checks (``growthmachine._convert.as_array``; ``checks`` are passed on); errors name
    ``label``."""
    return cv.as_array(table.column(col), label, dtype, **checks)


_SPARK_TYPES = {
    np.dtype(np.bool_): T.BooleanType(),
    np.dtype(np.int8): T.ByteType(),
    np.dtype(np.uint8): T.ByteType(),
    np.dtype(np.int16): T.ShortType(),
    np.dtype(np.int32): T.IntegerType(),
    np.dtype(np.int64): T.LongType(),
    np.dtype(np.float32): T.FloatType(),
    np.dtype(np.float64): T.DoubleType(),
}

_ARROW_TYPES = {
    T.BooleanType: pa.bool_(),
    T.ByteType: pa.int8(),
    T.ShortType: pa.int16(),
    T.IntegerType: pa.int32(),
    T.LongType: pa.int64(),
    T.FloatType: pa.float32(),
    T.DoubleType: pa.float64(),
}


def spark_type(dtype: Any) -> T.DataType:
    """The Spark type of a numpy dtype (Spark has no unsigned types: uint8 -> tinyint)."""
    return _SPARK_TYPES[np.dtype(dtype)]


def arrow_schema(schema: T.StructType) -> pa.Schema:
    """The Arrow schema Spark expects for a flat ``schema`` of the primitive types above."""
    return pa.schema([pa.field(f.name, _ARROW_TYPES[type(f.dataType)]) for f in schema.fields])


def record_batches(
    columns: Mapping[str, np.ndarray], schema: pa.Schema, rows: int = ARROW_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Output batches of at most ``rows`` rows from numpy ``columns`` (cast to ``schema``: e.g.
    uint8 -> int8 for Spark's tinyint)."""
    arrays = [pa.array(columns[f.name]).cast(f.type) for f in schema]
    table = pa.Table.from_arrays(arrays, schema=schema)
    yield from table.to_batches(max_chunksize=rows)
