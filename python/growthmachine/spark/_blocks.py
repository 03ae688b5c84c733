"""The dual solver over blocks of users held apart from it (the driver's side of
:func:`growthmachine.spark.solve`).

A problem partitioned by user is a list of blocks (``_core.AllocateBlock``: users ``first ..
first + n`` in the problem's user order). The solver (``_core.allocate_solve_source``: the same
code as :func:`growthmachine.allocate.solve`) asks its *source* for passes at given prices;
:class:`BlockSource` answers by running the block kernel on every block (``run(method, *args)``,
on Spark one ``mapInArrow`` job) and summing the results in block order, so the driver holds only
R-vectors. The subsample of the price phase is copied to the driver as the in-process solver
copies it. The integer plan: every user keeps its choice at the final prices except the users
closest to changing it (smallest margins, see ``allocate::block::margins``), which are copied to
the driver and repaired there with the others' use held fixed (``_core.allocate_finish``: the
in-process repair and fill); if that cannot meet the bounds, more users are gathered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core

__all__ = ["Meta", "BlockSource", "concat_blocks", "solve_blocks", "split_problem"]


@dataclass
class Meta:
    """What every block and the driver share (see ``_core.AllocateBlock``)."""

    usage_resource: list[int]
    action_usage: np.ndarray  # n_actions x n_resources, row-major, flat
    n_actions: int
    groups: np.ndarray  # int32, one per action, or empty
    limit: int
    lower: np.ndarray
    upper: np.ndarray
    names: list[str]

    @property
    def n_resources(self) -> int:
        return len(self.names)


def concat_blocks(parts: Sequence[dict]) -> dict:
    """The users of several blocks' dicts (``users``, ``indptr``, ``action``, ``value``,
    ``usage``, ``limit_per_user`` and optionally ``flags``) as one, in the given order."""
    n_cols = len(parts[0]["usage"]) if parts else 0
    offs = [0]
    for d in parts:
        offs.append(offs[-1] + len(d["action"]))
    indptr = [np.zeros(1, dtype=np.int64)]
    for d, o in zip(parts, offs[:-1], strict=False):
        indptr.append(np.asarray(d["indptr"][1:], dtype=np.int64) + o)

    def cat(key: str, dtype: Any) -> np.ndarray:
        xs = [np.asarray(d[key]) for d in parts]
        return np.ascontiguousarray(np.concatenate(xs) if xs else np.zeros(0), dtype=dtype)

    out = {
        "users": cat("users", np.uint64),
        "indptr": np.ascontiguousarray(np.concatenate(indptr)),
        "action": cat("action", np.uint32),
        "value": cat("value", np.float64),
        "usage": [
            np.ascontiguousarray(
                np.concatenate([np.asarray(d["usage"][c]) for d in parts])
                if parts
                else np.zeros(0),
                dtype=np.float64,
            )
            for c in range(n_cols)
        ],
        "limit_per_user": None,
    }
    if parts and parts[0]["limit_per_user"] is not None:
        out["limit_per_user"] = cat("limit_per_user", np.uint32)
    if parts and "flags" in parts[0]:
        out["flags"] = cat("flags", np.uint8)
    return out


class BlockSource:
    """The solver's source over blocks reached through ``run(method, *args) -> [result per
    block, in block order]``, which calls ``AllocateBlock.<method>(*args)`` on every block.

    ``gather_min``: fewest users copied to the driver for the repair of the integer plan (else
    1 % of the users); the count grows fourfold while the repair cannot meet the bounds.
    ``gather_max``: most users gathered for being within the repair's margin (the in-process
    repair tries those first; with all of them the plan is the in-process one).
    """

    def __init__(
        self,
        run: Callable[..., list[Any]],
        n_users: int,
        meta: Meta,
        *,
        gather_min: int = 20_000,
        gather_max: int = 250_000,
    ):
        self._run = run
        self.n_users = n_users
        self.meta = meta
        self.gather_min = gather_min
        self.gather_max = gather_max
        #: The plan the solver settled on last, for the write: (mix, cum, seed, gathered users,
        #: their candidates' offsets and flags).
        self.final: tuple | None = None
        self.passes = 0
        self.pass_seconds = 0.0
        self.gathered = 0

    def run(self, method: str, *args: Any) -> list[Any]:
        t = time.perf_counter()
        out = self._run(method, *args)
        self.pass_seconds += time.perf_counter() - t
        self.passes += 1
        return out

    # The solver's calls -------------------------------------------------------------------
    def pass_(self, qs: list[list[float]]) -> list[tuple]:
        parts = self.run("pass_", qs)
        out = []
        for j in range(len(qs)):
            lsum = value = 0.0
            usage = np.zeros(self.meta.n_resources)
            picks = 0
            for p in parts:
                lsum += p[j][0]
                value += p[j][1]
                usage += np.asarray(p[j][2])
                picks += p[j][3]
            out.append((lsum, value, usage.tolist(), picks))
        return out

    def jacobian(self, q: list[float], h: float) -> tuple:
        parts = self.run("jacobian", q, h)
        r = self.meta.n_resources
        lsum = sum(p[0] for p in parts)
        value = sum(p[1] for p in parts)
        usage = np.sum([np.asarray(p[2]) for p in parts], axis=0) if parts else np.zeros(r)
        picks = sum(p[3] for p in parts)
        jac = np.sum([np.asarray(p[4]) for p in parts], axis=0) if parts else np.zeros(r * r)
        events = sum(p[5] for p in parts)
        return lsum, value, list(usage), picks, list(jac), events

    def sample(self, key: int, stride: int) -> dict:
        return concat_blocks(self.run("sample", key, stride))

    def plan(self, mix: list, cum: list, q: list, margin: float, seed: int) -> tuple:
        n = self.n_users
        want = min(n, max(self.gather_min, n // 100))
        # At most this many users are gathered for the margin (see below).
        cap = min(n, max(want, self.gather_max))
        lower = np.asarray(self.meta.lower, dtype=np.float64)
        upper = np.asarray(self.meta.upper, dtype=np.float64)
        while True:
            stats = self.run("plan_stats", mix, cum, q, seed, max(want, cap))
            total_value = sum(s[0] for s in stats)
            total_usage = np.sum([np.asarray(s[1]) for s in stats], axis=0)
            smallest = np.sort(np.concatenate([np.asarray(s[2], dtype=np.float64) for s in stats]))
            threshold = float(smallest[want - 1]) if len(smallest) >= want else np.inf
            if want >= n:
                threshold = np.inf
            elif np.isfinite(margin):
                # The users the in-process repair tries first (those within the margin), up to
                # `cap` of them.
                at_cap = float(smallest[cap - 1]) if len(smallest) >= cap else np.inf
                threshold = max(threshold, min(margin, at_cap))
            parts = self.run("gather", mix, cum, q, seed, threshold)
            fixed_value = total_value - sum(d["value_sum"] for d in parts)
            fixed_usage = total_usage - np.sum([np.asarray(d["usage_sum"]) for d in parts], axis=0)
            g = concat_blocks(parts)
            r = _core.allocate_finish(
                g["indptr"],
                g["action"],
                g["value"],
                g["usage"],
                g["limit_per_user"],
                self.meta.usage_resource,
                self.meta.action_usage,
                self.meta.n_actions,
                self.meta.groups,
                self.meta.limit,
                list(lower - fixed_usage),
                list(upper - fixed_usage),
                g["flags"],
                list(q),
                margin,
                seed,
            )
            usage = fixed_usage + np.asarray(r["usage"])
            slack = 1e-9 * np.maximum(np.abs(np.where(np.isfinite(upper), upper, lower)), 1.0)
            wrong = (usage > upper + slack) | (usage < lower - slack)
            self.gathered = len(g["users"])
            if not wrong.any() or want >= n:
                break
            want = min(n, 4 * want)
        self.final = (mix, cum, seed, g["users"], g["indptr"], r["flags"])
        return fixed_value + float(r["objective"]), list(usage)


def split_problem(problem: Any, n_blocks: int) -> tuple[Meta, list[Any]]:
    """An in-process :class:`growthmachine.allocate.Problem` as ``n_blocks`` blocks of
    consecutive users (float64), with the shared :class:`Meta` (for tests and for checking a
    distributed solve against the in-process one)."""
    r_n = len(problem.resources)
    groups = np.asarray(problem.groups, dtype=np.int32)
    lim = problem.per_user_limit
    meta = Meta(
        usage_resource=[int(r) for r in problem.usage_resource],
        action_usage=np.ascontiguousarray(problem.action_usage, dtype=np.float64).ravel(),
        n_actions=int(problem.n_actions),
        groups=groups,
        limit=int(lim) if np.isscalar(lim) else 1,
        lower=np.asarray(problem.lower, dtype=np.float64),
        upper=np.asarray(problem.upper, dtype=np.float64),
        names=list(problem.resources),
    )
    n = problem.n_users
    cuts = np.linspace(0, n, n_blocks + 1).astype(np.int64)
    blocks = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        s, e = int(problem.indptr[a]), int(problem.indptr[b])
        blocks.append(
            _core.AllocateBlock(
                np.ascontiguousarray(problem.indptr[a : b + 1] - s, dtype=np.int64),
                np.ascontiguousarray(problem.action[s:e], dtype=np.uint32),
                np.ascontiguousarray(problem.value[s:e], dtype=np.float64),
                [np.ascontiguousarray(u[s:e], dtype=np.float64) for u in problem.usage],
                meta.usage_resource,
                meta.action_usage,
                meta.n_actions,
                meta.groups,
                meta.limit,
                None
                if np.isscalar(lim)
                else np.ascontiguousarray(np.asarray(lim)[a:b], dtype=np.uint32),
                r_n,
                int(a),
            )
        )
    return meta, blocks


def solve_blocks(
    source: BlockSource,
    *,
    tol: float = 1e-4,
    max_iter: int = 500,
    time_limit: float | None = None,
    seed: int = 0,
    progress: Any = None,
) -> dict:
    """Runs the dual solver over ``source``; returns the core's certificate dict."""
    m = source.meta
    return _core.allocate_solve_source(
        source,
        source.n_users,
        m.usage_resource,
        m.action_usage,
        m.n_actions,
        m.groups,
        m.limit,
        list(m.lower),
        list(m.upper),
        list(m.names),
        tol=tol,
        max_iter=max_iter,
        time_limit=time_limit,
        seed=seed,
        progress=progress,
    )
