"""Spark benchmarks: gm.spark against the same cores in-process, on one machine (local mode).

    python -m benchmarks spark [--part {features,score,solve,all}] [--tx N] [--partitions P]

One ``local[N]`` session (``--master``, default ``local[2]``); every part is a function
``part_NAME(spark, args, table)`` registered in ``PARTS`` that adds rows to the shared table.

- ``features``: ``gm.spark.features`` of ``--tx`` transactions (default 10M) read from Parquet
  (8 files written first, so the scan is split over the cores), forced to the end with a
  ``noop`` write, vs ``gm.insight.features`` on the same arrays in memory (and, for the cost of
  getting the data, vs reading the same Parquet with pyarrow first). Target (issue 13): within
  2x in-process.
- ``score``: ``gm.spark.score`` of a BetaGeo (expected purchases in 30 days) over the features
  of the ``features`` part's users vs ``BetaGeo.expected_purchases`` in-process.
- ``solve``: distributed allocation (``gm.spark.solve``), added with it.

Spark times are wall times on the driver (every job of the call); session start-up (about 12 s)
is not counted, the first run of each part is a warm-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import growthmachine as gm
from benchmarks.bench_insight import make_log
from benchmarks.harness import Table, measure, write_section

PART_NAMES = ("features", "score", "solve")


def session(master: str, partitions: int, memory: str):
    """A local session with the settings of the README's recipe."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    root = str(Path(gm.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    os.environ["PYTHONPATH"] = path
    warnings.filterwarnings("ignore", message=".*pandas >= 3.0.0.*")
    from pyspark.sql import SparkSession

    from growthmachine.spark import _arrow

    b = (
        SparkSession.builder.master(master)
        .appName("growthmachine-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.executorEnv.PYTHONPATH", path)
    )
    for k, v in _arrow.recommended_conf().items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _force(df) -> None:
    """Runs every job of ``df`` without collecting it (Spark's ``noop`` sink)."""
    df.write.format("noop").mode("overwrite").save()


class _State:
    """What parts hand on to later parts (the log, its Parquet copy, the features)."""

    log: dict[str, np.ndarray] | None = None
    parquet: str | None = None
    features = None
    verdicts: list[str] = []


def part_features(spark, args, table: Table, state: _State) -> None:
    n_users = max(1, args.tx // 10)
    log = make_log(args.tx, n_users, seed=0, category=False)
    state.log = log
    tmp = Path(tempfile.mkdtemp(prefix="gm-bench-spark-"))
    arrow = pa.table(log)
    step = -(-args.tx // 8)
    for i in range(8):
        pq.write_table(
            arrow.slice(i * step, step), tmp / f"part-{i}.parquet", row_group_size=1 << 20
        )
    state.parquet = str(tmp)
    del arrow
    as_of = int(log["day"].max())

    inproc = measure(lambda: gm.insight.features(log, as_of), repeat=args.repeat, warmup=1)
    state.features = inproc.result
    read = measure(
        lambda: gm.insight.features(pq.read_table(state.parquet), as_of), repeat=args.repeat
    )
    df = spark.read.parquet(state.parquet)
    n_in = df.rdd.getNumPartitions()  # (an RDD call is fine here: the benchmark is classic)

    def run():
        out = gm.spark.features(df, as_of, num_partitions=args.partitions)
        _force(out)
        return out

    sp = measure(run, repeat=args.repeat, warmup=1)
    got = sp.result.toArrow().sort_by("user_id")
    ref = inproc.result
    same = all(
        np.array_equal(
            got.column(c).to_numpy().astype(float), ref[c].to_numpy().astype(float), equal_nan=True
        )
        for c in ref.columns
    )
    parts = _features_breakdown(spark, df, args, sp.result)
    case = f"{args.tx:,} tx, {len(ref):,} users"
    table.add(
        case,
        "gm.insight.features (in-process, arrays in memory)",
        inproc.median,
        1.0,
        f"{gm.get_num_threads()} threads",
    )
    table.add(
        case,
        "pyarrow read_table + gm.insight.features",
        read.median,
        read.median / inproc.median,
        "same Parquet files as Spark reads",
    )
    table.add(
        case,
        f"gm.spark.features ({args.master})",
        sp.median,
        sp.median / inproc.median,
        f"{n_in} input partitions, {args.partitions} shuffle partitions; every job until a noop "
        f"write; equal to in-process: {same}; times {', '.join(f'{t:.1f}' for t in sp.times)} s",
    )
    ratio, ratio_read = sp.median / inproc.median, sp.median / read.median
    state.verdicts.append(
        f"Target of issue 13, gm.spark.features within 2x in-process: "
        f"{'met' if ratio <= 2 else 'not met'} ({ratio:.1f}x the in-process time on arrays in "
        f"memory, {ratio_read:.1f}x in-process including reading the same Parquet). The rows "
        "'of which' run pieces of the call alone on the same data (they overlap: the identity "
        "pass includes the shuffle, and returns all 10 rows per user where the features pass "
        "returns one): Spark's own data path, the shuffle that co-locates users and the Arrow "
        "round trip to the Python workers, is most of the time; the core's own share is about "
        "the in-process time."
    )
    for what, m, note in parts:
        table.add(case, f"of which: {what}", m.median, m.median / inproc.median, note)


def _features_breakdown(spark, df, args, out) -> list:
    """Where the time of gm.spark.features goes: its pieces run alone, same data."""
    from pyspark.sql import functions as F

    from growthmachine.spark import _arrow, _features

    types = {c: df.schema[c].dataType for c in ("user_id", "day", "amount")}
    check = measure(
        lambda: _arrow.check_values(
            df,
            "transactions",
            types,
            finite=("amount",),
            nonnegative=("amount",),
            extra={"day_max": F.max("day")},
        ),
        repeat=args.repeat,
    )
    shuffled = df.repartition(args.partitions, "user_id")
    shuffle = measure(lambda: _force(shuffled), repeat=args.repeat)

    def identity(batches):
        yield from batches

    arrow = measure(
        lambda: _force(_arrow.map_in_arrow(shuffled, identity, df.schema)), repeat=args.repeat
    )
    per_user = out.drop("r_score", "f_score", "m_score", "rfm_score").localCheckpoint()
    thresholds = measure(lambda: _features._quintile_thresholds(per_user), repeat=args.repeat)
    return [
        (
            "checking aggregation",
            check,
            "one scan: nulls, NaN, negative amounts, day range, default as_of",
        ),
        ("shuffle by user", shuffle, "repartition(user) + noop write, no Python"),
        (
            "shuffle + Arrow to Python and back",
            arrow,
            "the same with an identity mapInArrow: the data path without the core",
        ),
        ("RFM thresholds", thresholds, "two small jobs over one row per user"),
    ]


def part_score(spark, args, table: Table, state: _State) -> None:
    if state.features is None:
        part_features(spark, args, table, state)
    feats = state.features
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bg = gm.insight.BetaGeo().fit(feats)
    cols = ["user_id", "frequency", "recency", "T"]
    inproc = measure(lambda: bg.expected_purchases(30.0, feats), repeat=args.repeat, warmup=1)
    tmp = Path(state.parquet) / "features"
    tmp.mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pandas(feats[cols], preserve_index=False), tmp / "f.parquet")
    df = spark.read.parquet(str(tmp)).repartition(args.partitions).cache()
    df.count()
    sp = measure(
        lambda: _force(gm.spark.score(df, bg, t=30.0, check=False)), repeat=args.repeat, warmup=1
    )
    chk = measure(lambda: _force(gm.spark.score(df, bg, t=30.0)), repeat=args.repeat)
    df.unpersist()
    case = f"BetaGeo expected purchases, {len(feats):,} users"
    table.add(case, "BetaGeo.expected_purchases (in-process)", inproc.median, 1.0, "")
    table.add(
        case,
        f"gm.spark.score ({args.master}, check=False)",
        sp.median,
        sp.median / inproc.median,
        f"{args.partitions} partitions (cached input)",
    )
    table.add(
        case,
        f"gm.spark.score ({args.master}, check=True)",
        chk.median,
        chk.median / inproc.median,
        "plus the checking aggregation",
    )


def _candidate_table(p) -> tuple[pa.Table, dict, dict, dict]:
    """An in-process problem as a candidate table (user, action, value, usage columns) with the
    usage mapping, per-action usage and resource bounds that rebuild it."""
    users = np.repeat(np.arange(p.n_users, dtype=np.int64), np.diff(p.indptr))
    cols = {"user": users, "action": p.action.astype(np.int64), "value": p.value}
    usage = {}
    for i, (c, r) in enumerate(zip(p.usage, p.usage_resource, strict=True)):
        cols[f"col{i}"] = c
        usage[f"col{i}"] = p.resources[r]
    au = {}
    for r, name in enumerate(p.resources):
        col = {a: float(p.action_usage[a, r]) for a in range(p.n_actions) if p.action_usage[a, r]}
        if col:
            au[name] = col
    bounds = {
        n: (max(lo, 0.0), hi) for n, lo, hi in zip(p.resources, p.lower, p.upper, strict=True)
    }
    return pa.table(cols), usage, au, bounds


def _empty_job_seconds(spark, rows: int, repeat: int) -> float:
    """Median wall time of one ``mapInArrow`` job that does nothing (one row per block, the
    function returns its input): the fixed cost of every solver pass in this Spark session."""
    df = spark.range(rows, numPartitions=rows).cache()
    df.count()

    def identity(batches):
        yield from batches

    try:
        return measure(
            lambda: df.mapInArrow(identity, df.schema).count(), repeat=repeat, warmup=1
        ).median
    finally:
        df.unpersist()


def part_solve(spark, args, table: Table, state: _State) -> None:
    p = gm.allocate.random_problem(args.users, 20, 20, 2, 4, seed=1)
    inproc = measure(lambda: gm.allocate.solve(p), repeat=args.repeat, warmup=1)
    ref = inproc.result
    tbl, usage, au, bounds = _candidate_table(p)
    tmp = Path(tempfile.mkdtemp(prefix="gm-spark-solve-"))
    try:
        pq.write_table(tbl, tmp / "candidates.parquet", row_group_size=1 << 20)
        df = spark.read.parquet(str(tmp))

        def run():
            asg, sol = gm.spark.solve(
                df, bounds, usage=usage, action_usage=au, partitions=args.partitions
            )
            n = asg.count()
            return sol, n

        sp = measure(run, repeat=args.repeat, warmup=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sol, n_assigned = sp.result
    rel = abs(sol.objective - ref.objective) / abs(ref.objective)
    case = f"{p.n_users:,} users x 20 x {len(p.resources)} resources"
    per_pass = sol.driver_seconds / max(sol.jobs, 1)
    table.add(case, "gm.allocate.solve (in-process)", inproc.median, 1.0, f"gap {ref.gap:.1e}")
    table.add(
        case,
        f"gm.spark.solve ({args.master})",
        sp.median,
        sp.median / inproc.median,
        f"{sol.partitions} partitions, {sol.jobs} solver passes ({sol.extra}), "
        f"{len(sol.history)} iterations, objective rel. diff {rel:.1e}, {n_assigned:,} rows "
        f"written; times {', '.join(f'{t:.1f}' for t in sp.times)} s",
    )
    table.add(
        case,
        "of which: set-up (partition by user, build blocks)",
        sol.setup_seconds,
        sol.setup_seconds / inproc.median,
        "one range-partition shuffle and one job",
    )
    table.add(
        case,
        "of which: the solver's Spark jobs",
        sol.job_seconds,
        sol.job_seconds / inproc.median,
        f"{sol.jobs} passes, {sol.job_seconds / max(sol.jobs, 1):.2f} s each",
    )
    table.add(
        case,
        "of which: inside the executors' kernels",
        sol.extra["kernel_seconds"] + sol.extra["find_seconds"],
        (sol.extra["kernel_seconds"] + sol.extra["find_seconds"]) / inproc.median,
        f"slowest block per pass: kernel {sol.extra['kernel_seconds']:.2f} s, finding or "
        f"mapping the block {sol.extra['find_seconds']:.2f} s; the rest of the jobs' time is Spark",
    )
    table.add(
        case,
        "of which: the final write (checkpointed assignment)",
        sol.write_seconds,
        sol.write_seconds / inproc.median,
        f"{n_assigned:,} rows; blocks sent again: {sol.extra['write_missing_blocks']}",
    )
    table.add(
        case,
        "of which: driver (solver steps, repair of the gathered users)",
        sol.driver_seconds,
        sol.driver_seconds / inproc.median,
        f"{per_pass:.3f} s per pass; {sol.gathered:,} users gathered",
    )
    floor = _empty_job_seconds(spark, sol.partitions, repeat=max(args.repeat, 5))
    table.add(
        case,
        "Spark's floor: one empty mapInArrow job",
        floor,
        floor / inproc.median,
        f"over one row per block ({sol.partitions} rows), the function returns its input; the "
        f"call runs {sol.jobs + 1} such jobs (passes and the final write) plus the set-up",
    )
    ratio = sp.median / inproc.median
    state.verdicts.append(
        f"Targets of issue 13 for gm.spark.solve: within 3x in-process: "
        f"{'met' if ratio <= 3 else 'not met'} ({ratio:.1f}x); driver time per iteration "
        f"<= 0.3 s: {'met' if per_pass <= 0.3 else 'not met'} ({per_pass:.3f} s); same "
        f"objective as in-process: relative difference {rel:.1e}. Spark's fixed cost alone, "
        f"{sol.jobs + 1} empty jobs of {floor:.3f} s, is {(sol.jobs + 1) * floor:.2f} s = "
        f"{(sol.jobs + 1) * floor / inproc.median:.1f}x in-process before any data moves; the "
        f"set-up (one range-partition shuffle of the candidates to the Python workers, each "
        f"block written to local disk and kept by Spark for hosts that lack it) is the largest "
        f"part."
    )


PARTS = {"features": part_features, "score": part_score, "solve": part_solve}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks spark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--part",
        choices=(*PART_NAMES, "all"),
        nargs="+",
        default=["all"],
        help="parts to run; 'all' runs every part (solve writes its own section)",
    )
    ap.add_argument("--tx", type=int, default=10_000_000, help="transactions (features)")
    ap.add_argument("--partitions", type=int, default=8, help="shuffle partitions")
    ap.add_argument("--users", type=int, default=1_000_000, help="users (solve)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md")
    args = ap.parse_args(argv)
    import pyspark

    load = os.getloadavg()
    t0 = time.perf_counter()
    spark = session(args.master, args.partitions, args.driver_memory)
    start = time.perf_counter() - t0
    table = Table(["case", "implementation", "median s", "x in-process", "notes"])
    state = _State()
    parts = PART_NAMES if "all" in args.part else tuple(dict.fromkeys(args.part))
    try:
        for p in parts:
            PARTS[p](spark, args, table, state)
    finally:
        spark.stop()
        if state.parquet:
            shutil.rmtree(state.parquet, ignore_errors=True)
    cmd = "python -m benchmarks spark " + " ".join(argv)
    body = (
        f"Spark {pyspark.__version__} in local mode (`{args.master}`: 2 task slots of "
        f"spark.task.cpus = 1, so one core thread per task), "
        f"spark.sql.execution.arrow.maxRecordsPerBatch = 1,000,000, session start-up "
        f"{start:.1f} s (not counted). Median of {args.repeat} runs after one warm-up. "
        f"Load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) at the start "
        "(2 cores).\n\n" + table.markdown() + "".join(f"\n\n{v}" for v in state.verdicts)
    )
    print(body)
    if not args.no_write:
        if parts == ("solve",):
            title = "Spark: distributed allocation (gm.spark.solve, local mode)"
            write_section("spark-solve", title, command=cmd.strip(), body=body)
        else:
            write_section("spark", "Spark (gm.spark, local mode)", command=cmd.strip(), body=body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
