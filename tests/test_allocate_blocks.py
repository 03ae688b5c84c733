"""The dual solver over blocks of users (``allocate_solve_source``, ``AllocateBlock``: what
gm.spark.solve runs), checked in-process against gm.allocate.solve, without Spark."""

from __future__ import annotations

import numpy as np
import pytest

import growthmachine as gm
from growthmachine import _core
from growthmachine.spark._blocks import BlockSource, solve_blocks, split_problem

pytest.importorskip("pyspark")  # growthmachine.spark imports pyspark


def _solve(p, n_blocks: int, **kw):
    meta, blocks = split_problem(p, n_blocks)
    src = BlockSource(lambda m, *a: [getattr(b, m)(*a) for b in blocks], p.n_users, meta, **kw)
    return src, blocks, solve_blocks(src)


@pytest.mark.parametrize(
    ("n", "limit", "groups", "n_blocks"),
    [(30_000, 1, 0, 5), (30_000, 2, 3, 3), (120_000, 1, 0, 4), (120_000, 2, 3, 7)],
)
def test_blocks_give_the_in_process_plan(n, limit, groups, n_blocks):
    # 120k users take the sample + Newton path of the solver, 30k the level method
    p = gm.allocate.random_problem(n, 10, 20, 2, 3, per_user_limit=limit, n_groups=groups, seed=3)
    ref = gm.allocate.solve(p)
    src, blocks, out = _solve(p, n_blocks)
    assert abs(out["objective"] - ref.objective) <= 1e-6 * abs(ref.objective)
    assert out["dual_bound"] == pytest.approx(ref.dual_bound, rel=1e-9)
    # the written plan (every block's choices with the driver's repairs) is the certified one
    mix, cum, seed, users, indptr, flags = src.final
    chosen, start = [], 0
    for b in blocks:
        lo, hi = np.searchsorted(users, [start, start + b.n_users])
        pos = b.chosen(mix, cum, seed, users[lo:hi], flags[indptr[lo] : indptr[hi]])
        chosen.append(pos.astype(np.int64) + p.indptr[start])
        start += b.n_users
    chosen = np.concatenate(chosen)
    assert p.value[chosen].astype(np.float64).sum() == pytest.approx(out["objective"], rel=1e-12)
    assert np.all(np.asarray(out["usage"]) <= p.upper * (1 + 1e-9) + 1e-9)


def test_few_gathered_users_still_meet_the_bounds():
    # gathering as few users as possible forces the driver to gather more until the repair fits
    p = gm.allocate.random_problem(20_000, 10, 20, 2, 3, seed=8, tightness=(0.1, 0.3))
    ref = gm.allocate.solve(p)
    src, _, out = _solve(p, 4, gather_min=1, gather_max=1)
    assert np.all(np.asarray(out["usage"]) <= p.upper * (1 + 1e-9) + 1e-9)
    assert out["objective"] <= out["dual_bound"] * (1 + 1e-12)
    assert out["objective"] >= ref.objective * (1 - 1e-3)


def test_a_failing_source_raises_its_own_exception():
    p = gm.allocate.random_problem(2_000, 5, 10, 1, 2, seed=1)
    meta, blocks = split_problem(p, 2)

    def run(method, *args):
        if method == "jacobian" or method == "plan_stats":
            raise ConnectionError("executor lost")
        return [getattr(b, method)(*args) for b in blocks]

    with pytest.raises(ConnectionError, match="executor lost"):
        solve_blocks(BlockSource(run, p.n_users, meta))


def test_block_arguments_are_checked():
    p = gm.allocate.random_problem(1_000, 5, 10, 1, 2, seed=1)
    _, blocks = split_problem(p, 2)
    b = blocks[1]
    q = [0.0] * len(p.resources)
    with pytest.raises(ValueError, match="users"):
        b.chosen([q], [1.0], 0, np.array([3], np.uint64), np.zeros(0, np.uint8))  # not its user
    first = 500
    k = int(p.indptr[first + 1] - p.indptr[first])
    with pytest.raises(ValueError, match="flags"):
        b.chosen([q], [1.0], 0, np.array([first], np.uint64), np.zeros(k + 1, np.uint8))
    with pytest.raises(ValueError, match="value"):
        _core.AllocateBlock(
            np.array([0, 1], np.int64),
            np.array([0], np.uint32),
            np.array([np.nan]),
            [],
            [],
            np.zeros(0),
            1,
            np.zeros(0, np.int32),
            1,
            None,
            0,
            0,
        )
