"""The Python workers' side of :func:`growthmachine.spark.solve`: where each block of users
(``_core.AllocateBlock``) is kept between the solver's jobs, and how it is let go.

A block is written once, by the set-up job that builds it, to a host-local spill directory
(``<tmp>/growthmachine-spark/<solve token>/<block>.arrow``); a worker that runs one of its tasks
maps it from there and keeps it in memory (:data:`BLOCKS`) for the next jobs. A host without the
file (another machine of a cluster, or no writable disk) receives the block's encoded copy from
Spark instead. When the solve is over, :func:`finish` deletes the files and leaves a ``.done``
mark, by which every worker of the host drops its copies at its next task
(:func:`drop_finished`); marks older than a day are removed with their directory.

Functions, not closures: the solver's task closures are pickled by value with the globals they
name, so they reach this module's state only through its functions.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .. import _core
from ._blocks import Meta

__all__ = [
    "BLOCKS",
    "block",
    "cached",
    "decode",
    "drop_finished",
    "encode",
    "finish",
    "root",
    "spill",
    "write",
]

#: Blocks built in this Python worker, by (solve token, block): kept across the solver's jobs.
BLOCKS: dict[tuple[str, int], tuple[Any, pa.Table]] = {}
#: Most solves whose blocks a worker keeps (the oldest are dropped first).
KEEP_SOLVES = 2
#: Age after which a finished solve's directory (its ``.done`` mark) is removed.
DONE_TTL = 24 * 3600.0


def encode(tbl: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, tbl.schema) as w:
        w.write_table(tbl)
    return sink.getvalue()


def decode(b: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(b)).read_all().combine_chunks()


def root() -> Path:
    return Path(tempfile.gettempdir()) / "growthmachine-spark"


def spill(token: str) -> Path:
    """The host-local directory of one solve's blocks."""
    return root() / token


def write(token: str, block_id: int, tbl: pa.Table) -> None:
    """Writes a block's table to the host's spill directory (atomically: other workers map only
    whole files); without a writable local disk, each worker receives the block instead."""
    try:
        d = spill(token)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{block_id}.{os.getpid()}.tmp"
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, tbl.schema) as w:
            w.write_table(tbl)
        os.replace(tmp, d / f"{block_id}.arrow")
    except OSError:
        pass


def drop_finished() -> None:
    """Drops this worker's blocks of finished solves (their directory holds a ``.done`` mark)
    and removes the directories of solves finished more than :data:`DONE_TTL` ago."""
    for t in list(dict.fromkeys(t for t, _ in BLOCKS)):
        if (spill(t) / ".done").exists():
            for k in [k for k in BLOCKS if k[0] == t]:
                del BLOCKS[k]
    try:
        marks = list(root().glob("*/.done"))
    except OSError:
        return
    now = time.time()
    for m in marks:
        try:
            if now - m.stat().st_mtime > DONE_TTL:
                shutil.rmtree(m.parent, ignore_errors=True)
        except OSError:
            pass


def finish(token: str) -> None:
    """The solve ``token`` is over: this worker drops its blocks, the host's files go, and a
    ``.done`` mark tells the host's other workers to drop theirs."""
    for k in [k for k in BLOCKS if k[0] == token]:
        del BLOCKS[k]
    d = spill(token)
    try:
        for f in d.glob("*.arrow"):
            f.unlink(missing_ok=True)
        d.mkdir(parents=True, exist_ok=True)
        (d / ".done").touch()
    except OSError:
        pass


def _forget_old(token: str) -> None:
    """Keeps the blocks of the last :data:`KEEP_SOLVES` solves in memory and on disk."""
    drop_finished()
    tokens = list(dict.fromkeys(t for t, _ in BLOCKS))
    if token in tokens or len(tokens) < KEEP_SOLVES:
        return
    old = tokens[0]
    for k in [k for k in BLOCKS if k[0] == old]:
        del BLOCKS[k]
    shutil.rmtree(spill(old), ignore_errors=True)


def _make(token: str, block_id: int, tbl: pa.Table, first: int, meta: Meta, limit_col: bool):
    u = tbl.column("u").to_numpy()
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.zeros(0, np.int64)
    indptr = np.r_[starts, len(u)].astype(np.int64)
    n_cols = len(meta.usage_resource)
    lim = None
    if limit_col:
        lim = np.ascontiguousarray(tbl.column("lim").to_numpy()[starts], dtype=np.uint32)
    blk = _core.AllocateBlock(
        indptr,
        np.ascontiguousarray(tbl.column("a").to_numpy(), dtype=np.uint32),
        np.ascontiguousarray(tbl.column("v").to_numpy(), dtype=np.float64),
        [
            np.ascontiguousarray(tbl.column(f"u{c}").to_numpy(), dtype=np.float64)
            for c in range(n_cols)
        ],
        meta.usage_resource,
        meta.action_usage,
        meta.n_actions,
        meta.groups,
        meta.limit,
        lim,
        meta.n_resources,
        first,
    )
    _forget_old(token)
    BLOCKS[(token, block_id)] = (blk, tbl)
    return blk, tbl


def cached(token: str, block_id: int, first: int, meta: Meta, limit_col: bool):
    """The block built by an earlier task of this worker or, mapped from the host's spill
    directory, of another worker; ``None`` if neither."""
    hit = BLOCKS.get((token, block_id))
    if hit is not None:
        return hit
    path = spill(token) / f"{block_id}.arrow"
    try:
        tbl = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    except (FileNotFoundError, OSError, pa.ArrowInvalid):
        return None
    return _make(token, block_id, tbl, first, meta, limit_col)


def block(
    token: str, block_id: int, data: bytes, first: int, meta: Meta, limit_col: bool, to_disk: bool
):
    """The block of this task (sent as ``data``), built once per worker and solve, and written
    to the host's spill directory for the other workers if ``to_disk``."""
    hit = cached(token, block_id, first, meta, limit_col)
    if hit is not None:
        return hit
    tbl = decode(data)
    if to_disk:
        write(token, block_id, tbl)
    return _make(token, block_id, tbl, first, meta, limit_col)
