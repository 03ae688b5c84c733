"""``features`` on Spark: :func:`growthmachine.insight.features` of a transaction log held in
Spark, with the same columns, dtypes (as Spark types) and values.

Why the result is exactly the in-process one:

- every feature but the RFM scores depends only on one user's rows, and the core sorts a user's
  rows by (day, amount, category) before summing, so the values do not depend on row order or on
  which other users share the call. After ``repartition(user)`` each user's rows are in one
  partition (hash partitioning; adaptive execution may merge partitions, never split them), and
  the core runs once per partition on all of that partition's users;
- rows after ``as_of`` are ignored by the core, so they are dropped before the shuffle;
- the RFM scores are quintiles over *all* buyers: a score is 1 + the number of the four
  thresholds (the values at ranks ``ceil(k n / 5) - 1``, k = 1..4, of the ``n`` buyers) the
  user's value exceeds. The thresholds are selected exactly (:func:`_quintile_thresholds`) from
  the per-user features, then compared in Spark exactly as the core compares them.

Jobs: one aggregation (checks, row count, ``as_of`` default), the features pass (shuffle +
one core call per partition, materialised with ``localCheckpoint``), two small aggregations
over one row per user for the thresholds. The returned DataFrame reads the checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .. import _convert as cv
from .. import _core
from ..insight.features import _INT_COLUMNS, FEATURE_COLUMNS, _as_of, _columns
from . import _arrow as ar

__all__ = ["features"]

#: RFM score columns -> the per-user feature they rank (as in the core's ``quintile_scores``).
_RANKED = {"r_score": "last_purchase", "f_score": "frequency", "m_score": "total_spend"}
#: percentile_approx accuracy of the first guess of the thresholds (rank error <= n / this).
_ACCURACY = 10_000
#: How far (in quantile) below and above each rank the first guesses are taken.
_GUESS_MARGIN = 2.0 / _ACCURACY


def features(
    transactions: DataFrame,
    as_of: int | Any | None = None,
    *,
    user: str = "user_id",
    time: str = "day",
    amount: str = "amount",
    category: str | None = None,
    trend_window: int = 90,
    num_partitions: int | None = None,
) -> DataFrame:
    """One row per user from a transaction log in a Spark DataFrame: the columns, dtypes and
    values of :func:`growthmachine.insight.features` (see it for every definition).

    Parameters
    ----------
    transactions
        A Spark DataFrame with one row per transaction: ``user`` (integer ids), ``time``
        (integer day numbers or a ``date`` column: days since 1970-01-01), ``amount`` (numeric,
        finite, >= 0) and optionally ``category`` (any non-nested type). Any partitioning.
    as_of
        The observation end (a day number, or a date when ``time`` is a date column); rows after
        it are ignored. Default: the last day in the log (one aggregation, shared with the
        checks).
    trend_window
        Days in the recent window of ``recent_spend`` and ``trend``.
    num_partitions
        Partitions of the shuffle that co-locates each user's rows (default: the session's
        ``spark.sql.shuffle.partitions``). Each partition's rows go through the core in one
        call, so a partition must fit in a Python worker's memory (about 40 bytes per row).

    Returns a DataFrame with the columns of ``growthmachine.insight.FEATURE_COLUMNS``
    (``n_categories`` only with ``category``) as Spark types: ``user_id``, ``n_transactions``,
    ``n_categories`` bigint; ``is_prospect`` boolean; the other features double; ``r_score``,
    ``f_score``, ``m_score`` tinyint (uint8 in-process: Spark has no unsigned types);
    ``rfm_score`` smallint. Rows are in no particular order (``orderBy("user_id")`` for the
    in-process order). The features are computed by this call and kept with
    ``localCheckpoint``; the returned DataFrame reads them.

    Errors, raised before the features pass: unknown column (``ValueError``) or wrong Spark type
    (``TypeError``), from the schema without any job; nulls, NaN, infinite or negative
    amounts, day numbers outside int32 and an empty log (``ValueError``), from one aggregation.
    Every message names the column.
    """
    name = "transactions"
    ar.check_dataframe(transactions, name)
    for arg, v in (("user", user), ("time", time), ("amount", amount)):
        if not isinstance(v, str):
            raise TypeError(f"{arg}: must be a column name (str), got {type(v).__name__}")
    if category is not None and not isinstance(category, str):
        raise TypeError(f"category: must be a column name (str) or None, got {type(category)}")
    spec = {user: ar.INTEGER, time: ar.DAY, amount: ar.NUMERIC}
    if category is not None:
        spec[category] = ar.ANY
    if len(spec) < 3 + (category is not None):
        raise ValueError("user, time, amount and category: must name different columns")
    types = ar.check_columns(transactions, name, spec)
    as_of_arg = None if as_of is None else _as_of(as_of)
    trend_window = cv.check_int(trend_window, "trend_window", minimum=1, maximum=2**31 - 1)
    if num_partitions is not None:
        num_partitions = cv.check_int(num_partitions, "num_partitions", minimum=1,
                                      maximum=2**31 - 1)  # Spark's partition count is an int  # fmt: skip

    is_date = isinstance(types[time], T.DateType)
    day = F.unix_date(F.col(time)) if is_date else F.col(time).cast("long")
    checked = ar.check_values(
        transactions,
        name,
        types,
        finite=(amount,),
        nonnegative=(amount,),
        extra={"day_min": F.min(day), "day_max": F.max(day)},
    )
    lo, hi = checked["day_min"], checked["day_max"]
    if lo < -(2**31) + 1 or hi > 2**31 - 1:
        raise ValueError(
            f"{name}[{time!r}]: day numbers must fit in int32, found range [{lo}, {hi}]"
        )
    as_of_i = int(hi) if as_of_arg is None else as_of_arg

    cols = [
        F.col(user).cast("long").alias("user"),
        day.cast("int").alias("day"),
        F.col(amount).cast("double").alias("amount"),
    ]
    if category is not None:
        cols.append(F.col(category).alias("category"))
    log = transactions.select(*cols).where(F.col("day") <= F.lit(as_of_i))
    log = log.repartition(num_partitions, "user") if num_partitions else log.repartition("user")

    schema = _schema(category is not None)
    spark = transactions.sparkSession
    run = _partition_features(
        as_of_i,
        trend_window,
        category is not None,
        ar.arrow_schema(schema),
        ar.driver_task_cpus(spark),
    )
    with ar.session_conf(spark):
        per_user = ar.map_in_arrow(log, run, schema).localCheckpoint(eager=True)
        thresholds = _quintile_thresholds(per_user)
    # score = 1 + the number of thresholds the value exceeds (buyers; 0 for prospects)
    scores = {}
    for score, col in _RANKED.items():
        above = " + ".join(f"CAST(`{col}` > {_double(t)} AS INT)" for t in thresholds[col])
        scores[score] = f"CAST(CASE WHEN n_transactions > 0 THEN 1 + {above} ELSE 0 END AS TINYINT)"
    rfm = "CAST(100 * r_score + 10 * f_score + m_score AS SMALLINT)"
    return per_user.selectExpr(
        *[f"`{f.name}`" for f in schema.fields], *[f"{v} AS {k}" for k, v in scores.items()]
    ).selectExpr("*", f"{rfm} AS rfm_score")


def _schema(has_category: bool) -> T.StructType:
    """Spark schema of the per-partition pass: every feature column but the RFM scores, with
    the Spark type of the in-process dtype."""
    fields = []
    for c in FEATURE_COLUMNS:
        if c in _RANKED or c == "rfm_score" or (c == "n_categories" and not has_category):
            continue
        if c == "user_id":
            dt = np.int64
        elif c == "is_prospect":
            dt = np.bool_
        elif c in _INT_COLUMNS:
            dt = np.int64
        else:
            dt = np.float64
        fields.append(T.StructField(c, ar.spark_type(dt), nullable=True))
    return T.StructType(fields)


def _partition_features(as_of: int, trend_window: int, has_category: bool, schema, cpus: int):
    """The task function: all of a partition's rows (every row of each of its users) through
    the core in one call."""

    def run(batches):
        ar.use_task_threads(cpus)
        table = ar.gather(batches)
        if table is None:
            return
        uid = ar.numpy_column(table, "user", "transactions['user']", np.int64)
        day = ar.numpy_column(table, "day", "transactions['day']", np.int32)
        amt = ar.numpy_column(table, "amount", "transactions['amount']", np.float64)
        cat = None
        if has_category:
            # distinct categories per user only: partition-local codes give the same counts
            codes = table.column("category").combine_chunks().dictionary_encode().indices
            cat = np.ascontiguousarray(codes.to_numpy(zero_copy_only=False), dtype=np.int32)
        result = _core.insight_features(uid, day, amt, as_of, cat, None, None, trend_window, None)
        cols = _columns(result, has_category, scores=False)
        yield from ar.record_batches(cols, schema)

    return run


def _double(x: float) -> str:
    """A SQL double literal that reads back as exactly ``x`` (shortest round-trip repr)."""
    if math.isinf(x):
        return f"CAST('{'-' if x < 0 else ''}Infinity' AS DOUBLE)"
    return f"CAST('{x!r}' AS DOUBLE)"


def _quintile_thresholds(per_user: DataFrame) -> dict[str, list[float]]:
    """The four quintile thresholds of each ranked column over the buyers, exactly as the core's
    ``quintile_scores`` selects them: the values at ranks ``r_k = ceil(k n / 5) - 1``.

    Exact selection in two small jobs over one row per user: (1) the buyer count ``n`` and, for
    each rank, approximate values a little below and a little above it (``percentile_approx``),
    the bracket ``[lo, hi]``; (2) per bracket, the number of buyers below ``lo`` and the distinct
    values inside it with their counts (grouped, so ties such as many frequency-0 buyers cost
    one row). If ``below <= r_k < below + inside``, the value at rank ``r_k`` is read off the
    sorted distinct values; otherwise the guess missed, the bracket is widened to infinity on the
    side that missed (which then holds the rank) and (2) runs again for those brackets only."""
    cols = list(_RANKED.values())
    buyers = per_user.where(F.col("n_transactions") > 0)
    eps = _GUESS_MARGIN
    probes = []
    for k in range(1, 5):
        probes += [min(max(0.0, k / 5 - eps), 1.0), max(min(1.0, k / 5 + eps), 0.0)]
    row = buyers.agg(
        F.count(F.lit(1)).alias("n"),
        *[F.percentile_approx(c, probes, _ACCURACY).alias(c) for c in cols],
    ).collect()[0]
    n = int(row["n"])
    if n == 0:
        return {c: [math.inf] * 4 for c in cols}
    ranks = [-(-(k * n) // 5) - 1 for k in range(1, 5)]  # ceil(k n / 5) - 1, n >= 1
    # bracket id b = 4 * column index + k - 1 -> (column, rank, lo, hi)
    todo = {
        4 * ci + i: (c, ranks[i], float(row[c][2 * i]), float(row[c][2 * i + 1]))
        for ci, c in enumerate(cols)
        for i in range(4)
    }
    found: dict[int, float] = {}
    while todo:
        items = []
        for b, (c, _, lo, hi) in todo.items():
            items.append(
                f"CASE WHEN `{c}` < {_double(lo)} THEN named_struct('b', {b}, 'v', "
                f"CAST(NULL AS DOUBLE)) WHEN `{c}` <= {_double(hi)} THEN named_struct('b', {b}, "
                f"'v', CAST(`{c}` AS DOUBLE)) END"
            )
        hits = (
            buyers.select(F.explode(F.expr(f"array({', '.join(items)})")).alias("h"))
            .where(F.col("h").isNotNull())
            .groupBy("h.b", "h.v")
            .count()
            .collect()
        )
        below = dict.fromkeys(todo, 0)
        inside: dict[int, list[tuple[float, int]]] = {b: [] for b in todo}
        for h in hits:
            if h["v"] is None:
                below[h["b"]] = h["count"]
            else:
                inside[h["b"]].append((h["v"], h["count"]))
        missed = {}
        for b, (c, r, lo, hi) in todo.items():
            seen = below[b]
            if seen > r:  # the rank lies below lo
                missed[b] = (c, r, -math.inf, hi)
                continue
            for v, cnt in sorted(inside[b]):
                seen += cnt
                if seen > r:
                    found[b] = float(v)
                    break
            else:  # the rank lies above hi
                missed[b] = (c, r, lo, math.inf)
        todo = missed
    return {c: [found[4 * ci + i] for i in range(4)] for ci, c in enumerate(cols)}
