"""Distributed allocation: :func:`growthmachine.allocate.solve` over a candidate DataFrame held
in Spark, by the same dual decomposition (LinkedIn's DuaLip does the same on Spark).

The candidates are range-partitioned by user (a user never spans two blocks) and each partition
becomes one block (``_core.AllocateBlock``), written by the set-up job to its host's disk and kept
by the Python workers that map it (:mod:`growthmachine.spark._store`); every iteration of the
solver is one ``mapInArrow`` job in which the block kernel computes its users' best responses at
the current prices and returns their sums; the driver runs the solver
(``_core.allocate_solve_source``: prices, level method and Newton steps, bound, certificate) on
the summed results (:mod:`growthmachine.spark._blocks`). A final job writes the assignment, which
is checkpointed, so that the blocks are let go (files, the workers' copies, Spark's cache) when
the call returns.
"""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from .. import _convert as cv
from ..allocate import certificate
from ..allocate._problem import _bounds, usage_columns
from . import _arrow, _store
from ._blocks import BlockSource, Meta, solve_blocks

__all__ = ["solve", "SparkSolution"]


@dataclass
class SparkSolution:
    """The certificate of :func:`solve` (the fields of :class:`growthmachine.allocate.Solution`
    but the assignment, which :func:`solve` returns as a Spark DataFrame) and how the work was
    spread: ``partitions`` (blocks of users), ``jobs`` (Spark jobs of the solver), ``seconds``
    (total), ``job_seconds`` (inside the solver's Spark jobs), ``driver_seconds`` (the rest:
    the solver's steps on the driver and the set-up), ``gathered`` (users repaired on the
    driver), ``spark_version``."""

    objective: float
    dual_bound: float
    gap: float
    lp_value: float
    lp_gap: float
    usage: pd.DataFrame
    prices: pd.Series
    status: str
    message: str
    history: pd.DataFrame
    passes: int
    partitions: int
    jobs: int
    seconds: float
    job_seconds: float
    driver_seconds: float
    gathered: int
    spark_version: str
    method: str = "dual"
    setup_seconds: float = 0.0
    write_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def iterations(self) -> int:
        return len(self.history)


def _let_go(spark: Any, blocks_df: DataFrame, token: str, n: int) -> None:
    """Frees what a solve held, however it ended: Spark's copy of the blocks, and the workers'
    (one small job whose tasks delete the spill files and mark the solve finished, so that
    every worker of a host drops its blocks at its next task; the driver's host too, where
    local mode's workers run). Best effort: a failure here must not hide the solve's own."""

    def done(batches):
        _store.finish(token)
        yield from batches

    try:
        blocks_df.unpersist()
        probe = spark.range(0, n, 1, n)
        _arrow.map_in_arrow(probe, done, probe.schema).collect()
    except Exception:  # noqa: BLE001 (best effort, see above)
        pass
    _store.finish(token)


def solve(
    candidates_df: DataFrame,
    resources: Mapping[str, Any],
    *,
    user: str = "user",
    action: str = "action",
    value: str = "value",
    usage: Sequence[str] | Mapping[str, str] | str | None = None,
    action_usage: Mapping[str, Mapping[Any, float]] | None = None,
    per_user_limit: int | str = 1,
    tol: float = 1e-4,
    max_iter: int = 500,
    time_limit: float | None = None,
    seed: int = 0,
    partitions: int | None = None,
    progress: bool | None = None,
    spill: bool = True,
) -> tuple[DataFrame, SparkSolution]:
    """Solves the allocation problem of ``candidates_df`` (one row per (user, action)
    candidate, as :meth:`growthmachine.allocate.Problem.from_frame`) on Spark; returns the
    assignment (a Spark DataFrame: user, action, value and the use of each resource of the
    chosen rows) and the certificate (:class:`SparkSolution`).

    ``per_user_limit``: an int, or the name of a column holding each user's limit (constant per
    user). ``partitions``: blocks of users (default ``spark.sql.shuffle.partitions``).
    Results do not depend on the number of partitions beyond the order of float sums.
    ``spill``: the set-up job writes each block to its host's temporary directory, from which
    the solver's jobs map it (False: every worker that lacks a block receives it from Spark,
    slower; for hosts with little local disk). The files are deleted when the call returns.
    """
    t_start = time.perf_counter()
    _arrow.check_dataframe(candidates_df, "candidates_df")
    names, lower, upper = _bounds(resources)
    umap = usage_columns(usage)
    for c, r in umap.items():
        if r not in names:
            raise ValueError(f"usage: column {c!r} counts towards unknown resource {r!r}")
    spec = {user: _arrow.ANY, action: _arrow.ANY, value: _arrow.NUMERIC}
    spec.update({c: _arrow.NUMERIC for c in umap})
    limit_col = isinstance(per_user_limit, str)
    if limit_col:
        spec[per_user_limit] = _arrow.INTEGER
        limit = 1
    else:
        limit = cv.check_int(per_user_limit, "per_user_limit", minimum=0, maximum=2**32 - 1)
    types = _arrow.check_columns(candidates_df, "candidates_df", spec)
    tol = cv.check_number(tol, "tol", minimum=0, strict_min=True)
    max_iter = cv.check_int(max_iter, "max_iter", minimum=1)
    if time_limit is not None:  # as allocate.solve checks it
        time_limit = cv.check_number(time_limit, "time_limit", minimum=0)
    seed = cv.check_int(seed, "seed", minimum=0)
    spark = candidates_df.sparkSession
    if partitions is None:
        partitions = int(spark.conf.get("spark.sql.shuffle.partitions", "8"))
    partitions = cv.check_int(partitions, "partitions", minimum=1, maximum=1_000_000)
    if not isinstance(spill, (bool, np.bool_)):
        raise TypeError(f"spill: must be True or False, got {spill!r}")
    spill = bool(spill)
    _arrow.check_values(
        candidates_df,
        "candidates_df",
        types,
        finite=[value, *umap],
        nonnegative=[*umap, *([per_user_limit] if limit_col else [])],
    )
    acts = [r[0] for r in candidates_df.select(action).distinct().collect()]
    actions = np.asarray(pd.Index(acts).sort_values())
    n_actions = len(actions)
    r_n = len(names)
    au = np.zeros((n_actions, r_n))
    if action_usage is not None:
        if not isinstance(action_usage, Mapping):
            raise TypeError("action_usage: must be a mapping {resource: {action: amount}}")
        for res, amounts in action_usage.items():
            if str(res) not in names:
                raise ValueError(f"action_usage: unknown resource {res!r}")
            s = pd.Series(amounts).reindex(pd.Index(actions)).fillna(0.0)
            au[:, names.index(str(res))] = s.to_numpy(dtype=np.float64)
    cols = list(dict.fromkeys(umap))
    meta = Meta(
        usage_resource=[names.index(umap[c]) for c in cols],
        action_usage=np.ascontiguousarray(au.ravel()),
        n_actions=n_actions,
        groups=np.zeros(0, dtype=np.int32),
        limit=int(limit),
        lower=lower,
        upper=upper,
        names=names,
    )
    token = uuid.uuid4().hex
    threads = _arrow.driver_task_cpus(spark)
    action_values = pa.array(list(actions))
    ucols = [user, action, value, *cols, *([per_user_limit] if limit_col else [])]

    def encode(batches):
        from pyspark import TaskContext

        tbl = _arrow.gather(batches)
        if tbl is None:
            return
        u = tbl.column(user)
        a = pc.index_in(tbl.column(action), value_set=action_values).to_numpy()
        order = np.lexsort((a, pc.rank(u, sort_keys="ascending", tiebreaker="dense").to_numpy()))
        u = u.take(pa.array(order))
        a = a[order]
        un = pc.rank(u, sort_keys="ascending", tiebreaker="dense").to_numpy()
        dup = (un[1:] == un[:-1]) & (a[1:] == a[:-1])
        if dup.any():
            j = int(np.argmax(dup))
            act = actions[a[j]]
            act = act.item() if isinstance(act, np.generic) else act
            raise ValueError(
                f"candidates_df: user {u[j].as_py()!r} has action {act!r} in more than "
                f"one row; each (user, action) pair must appear once (merge them first)"
            )
        out = {
            "u": pa.array(un),
            "user": u,
            "a": pa.array(a.astype(np.uint32)),
            "v": tbl.column(value).take(pa.array(order)).cast(pa.float64()),
        }
        for c, name in enumerate(cols):
            out[f"u{c}"] = tbl.column(name).take(pa.array(order)).cast(pa.float64())
        if limit_col:
            out["lim"] = tbl.column(per_user_limit).take(pa.array(order)).cast(pa.int64())
        t = pa.table(out)
        n_users = int(un.max()) if len(un) else 0
        block = TaskContext.get().partitionId()
        # the host's copy for the solver's passes, which find it there (the encoded copy below,
        # kept by Spark, reaches the hosts that lack it)
        if spill:
            _store.write(token, block, t)
        yield pa.RecordBatch.from_pydict(
            {
                "block": pa.array([block], pa.int32()),
                "n_users": pa.array([n_users], pa.int64()),
                "data": pa.array([_store.encode(t)], pa.binary()),
            }
        )

    blocks_df = _arrow.map_in_arrow(
        candidates_df.select(*ucols).repartitionByRange(partitions, user),
        encode,
        "block int, n_users long, data binary",
    ).persist()
    try:
        try:
            with _arrow.session_conf(spark):
                rows = blocks_df.select("block", "n_users").collect()
        except Exception as e:  # a check inside the block-building job: re-raise it as itself
            line = next((x for x in str(e).splitlines() if "candidates_df: user" in x), None)
            if line is None:
                raise
            raise ValueError(line[line.index("candidates_df: user") :]) from None
        counts = sorted((r[0], r[1]) for r in rows)
        firsts = {}
        n_users = 0
        for b, nu in counts:
            firsts[b] = n_users
            n_users += nu
        t_setup = time.perf_counter() - t_start

        block_ids = [b for b, _ in counts]
        # One row per block, in as many partitions: the jobs of the solver's passes run on these
        # rows and find their block in the worker (built by an earlier job); only the blocks a
        # worker has not built yet are sent, from blocks_df, in a second job.
        probe_df = spark.range(0, len(block_ids), 1, len(block_ids))
        jobs: dict[str, Any] = {
            "probe": 0,
            "fallback": 0,
            "fallback_blocks": 0,
            "find_seconds": 0.0,
            "kernel_seconds": 0.0,
        }

        def run(method: str, *args: Any) -> list[Any]:
            def answer(b: int, blk: Any, t0: float) -> pa.RecordBatch:
                t1 = time.perf_counter()
                res = getattr(blk, method)(*args)
                out = pickle.dumps(res)
                t2 = time.perf_counter()
                return pa.RecordBatch.from_pydict(
                    {
                        "block": pa.array([b], pa.int32()),
                        "out": pa.array([out], pa.binary()),
                        "find": pa.array([t1 - t0], pa.float64()),
                        "kernel": pa.array([t2 - t1], pa.float64()),
                    }
                )

            def probe(batches):
                _arrow.use_task_threads(threads)
                for batch in batches:
                    for i in batch.column("id").to_pylist():
                        b = block_ids[i]
                        t0 = time.perf_counter()
                        hit = _store.cached(token, b, firsts[b], meta, limit_col)
                        if hit is None:
                            yield pa.RecordBatch.from_pydict(
                                {
                                    "block": pa.array([b], pa.int32()),
                                    "out": pa.array([None], pa.binary()),
                                    "find": pa.array([0.0], pa.float64()),
                                    "kernel": pa.array([0.0], pa.float64()),
                                }
                            )
                        else:
                            yield answer(b, hit[0], t0)

            def build(batches):
                _arrow.use_task_threads(threads)
                for batch in batches:
                    for b, data in zip(
                        batch.column("block").to_pylist(),
                        batch.column("data").to_pylist(),
                        strict=True,
                    ):
                        t0 = time.perf_counter()
                        yield answer(
                            b,
                            _store.block(token, b, data, firsts[b], meta, limit_col, spill)[0],
                            t0,
                        )

            schema = "block int, out binary, find double, kernel double"
            got = _arrow.map_in_arrow(probe_df, probe, schema).collect()
            jobs["probe"] += 1
            missing = [r[0] for r in got if r[1] is None]
            if missing:
                jobs["fallback"] += 1
                jobs["fallback_blocks"] += len(missing)
                part = blocks_df.where(F.col("block").isin(missing))
                got += _arrow.map_in_arrow(part, build, schema).collect()
            rows = {r[0]: r for r in got if r[1] is not None}
            # the slowest block of the pass: finding (or building) it, and its kernel call
            jobs["find_seconds"] += max((rows[b][2] for b in block_ids), default=0.0)
            jobs["kernel_seconds"] += max((rows[b][3] for b in block_ids), default=0.0)
            return [pickle.loads(rows[b][1]) for b in block_ids]

        src = BlockSource(run, n_users, meta)
        out = solve_blocks(src, tol=tol, max_iter=max_iter, time_limit=time_limit, seed=seed)
        cert = certificate(out, names, lower, upper)
        # The assignment: every block's choices, with the driver's for the gathered users.
        mix, cum, fseed, g_users, g_indptr, g_flags = src.final
        g_users = np.asarray(g_users, dtype=np.uint64)
        split: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for b, nu in counts:
            i0, i1 = np.searchsorted(g_users, [firsts[b], firsts[b] + nu])
            split[b] = (
                np.ascontiguousarray(g_users[i0:i1]),
                np.ascontiguousarray(g_flags[g_indptr[i0] : g_indptr[i1]], dtype=np.uint8),
            )
        res_names = list(dict.fromkeys(umap[c] for c in cols))
        out_schema = T.StructType(
            [
                T.StructField(user, types[user]),
                T.StructField(action, types[action]),
                T.StructField("value", T.DoubleType()),
            ]
            + [T.StructField(n, T.DoubleType()) for n in res_names]
        )

        marked = T.StructType(
            [
                *out_schema.fields,
                T.StructField("__gm_block", T.IntegerType()),
                T.StructField("__gm_missing", T.BooleanType()),
            ]
        )
        arrow_marked = to_arrow_schema(marked)

        def rows_of(b: int, blk: Any, tbl: pa.Table) -> pa.Table:
            users_b, flags_b = split.get(b, (np.zeros(0, np.uint64), np.zeros(0, np.uint8)))
            pos = pa.array(blk.chosen(mix, cum, fseed, users_b, flags_b).astype(np.int64))
            a = tbl.column("a").take(pos)
            cols_out = [
                tbl.column("user").take(pos),
                action_values.take(a.cast(pa.int64())),
                tbl.column("v").take(pos),
            ]
            for n in res_names:
                acc = np.zeros(len(pos))
                for c, name in enumerate(cols):
                    if umap[name] == n:
                        acc += tbl.column(f"u{c}").take(pos).to_numpy()
                cols_out.append(pa.array(acc))
            cols_out += [
                pa.array(np.full(len(pos), b, np.int32)),
                pa.array(np.zeros(len(pos), bool)),
            ]
            return pa.Table.from_arrays(
                [x.cast(fld.type) for x, fld in zip(cols_out, arrow_marked, strict=True)],
                schema=arrow_marked,
            )

        def write_found(batches):
            _arrow.use_task_threads(threads)
            for batch in batches:
                for i in batch.column("id").to_pylist():
                    b = block_ids[i]
                    hit = _store.cached(token, b, firsts[b], meta, limit_col)
                    if hit is None:
                        row = {f.name: pa.nulls(1, f.type) for f in arrow_marked}
                        row["__gm_block"] = pa.array([b], pa.int32())
                        row["__gm_missing"] = pa.array([True])
                        yield pa.RecordBatch.from_pydict(row, schema=arrow_marked)
                    else:
                        yield from rows_of(b, hit[0], hit[1]).to_batches()

        def write_sent(batches):
            _arrow.use_task_threads(threads)
            for batch in batches:
                for b, data in zip(
                    batch.column("block").to_pylist(), batch.column("data").to_pylist(), strict=True
                ):
                    blk, tbl = _store.block(token, b, data, firsts[b], meta, limit_col, spill)
                    yield from rows_of(b, blk, tbl).to_batches()

        # The final pass, like the solver's: the blocks the workers hold, then the others sent.
        # Checkpointed (eagerly, truncating the lineage) so that the assignment never needs the
        # blocks again, which are let go below.
        t_write = time.perf_counter()
        found = _arrow.map_in_arrow(probe_df, write_found, marked).localCheckpoint(eager=True)
        missing = [r[0] for r in found.where(F.col("__gm_missing")).select("__gm_block").collect()]
        assignment = found.where(~F.col("__gm_missing"))
        if missing:
            part = blocks_df.where(F.col("block").isin(missing))
            sent = _arrow.map_in_arrow(part, write_sent, marked).localCheckpoint(eager=True)
            assignment = assignment.unionByName(sent)
        assignment = assignment.drop("__gm_block", "__gm_missing")
        jobs["write_missing_blocks"] = len(missing)
        t_write = time.perf_counter() - t_write
        seconds = time.perf_counter() - t_start
        sol = SparkSolution(
            **cert,
            partitions=len(counts),
            jobs=src.passes,
            seconds=seconds,
            job_seconds=src.pass_seconds,
            driver_seconds=seconds - src.pass_seconds - t_setup - t_write,
            gathered=src.gathered,
            spark_version=spark.version,
            setup_seconds=t_setup,
            write_seconds=t_write,
            extra=dict(jobs),
        )
        return assignment, sol
    finally:
        _let_go(spark, blocks_df, token, partitions)
