"""The planner's allocation problem (``Planner.candidates`` / ``Planner.allocate``), built a
block of users at a time: the calibrated values, the goals' value and the kept pairs of a block
are computed together, so no (users x tasks) matrix of all users is made and the pairs come out
row-major as ``np.nonzero`` of the whole matrix would give them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core
from ._calibrate import Calibration

__all__ = ["build_problem", "kept_pairs"]

#: Users per block (a block's (users x tasks) arrays stay in the cache).
BLOCK = 8192

Values = Callable[[slice], dict[str, np.ndarray]]


def kept_pairs(
    pl: Any, vals: Values, floors: list, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The pairs a plan may use: eligible, of positive goal value (any finite value when a goal
    has a floor) and of an ``allowed`` user; (user rows, tasks, per pair its ``value`` (goal
    value), ``cost`` and the floors' metrics), users ascending, tasks ascending within a user."""
    n = len(pl.user_ids_)
    need = ["cost"] + sorted({g.metric for g in floors} - {"cost"})
    fast = _kept_in_rust(pl, vals, floors, allowed, need)
    if fast is not None:
        return fast
    rs, js, cols = [], [], {k: [] for k in ["value", *need]}
    for a in range(0, n, BLOCK):
        rows = slice(a, min(a + BLOCK, n))
        v = vals(rows)
        gv = pl._goal_value(v, rows)
        keep = np.isfinite(gv) if floors else gv > 0
        if allowed is not None:
            keep &= allowed[rows, None]
        r, j = np.nonzero(keep)
        rs.append(r + a)
        js.append(j)
        cols["value"].append(gv[r, j])
        for k in need:
            cols[k].append(v[k][r, j])
    cat = {k: np.concatenate(c) if c else np.zeros(0) for k, c in cols.items()}
    if not rs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), cat
    return np.concatenate(rs), np.concatenate(js), cat


def _kept_in_rust(
    pl: Any, vals: Values, floors: list, allowed: np.ndarray | None, need: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]] | None:
    """:func:`kept_pairs` of the planner's own values (``vals`` is ``pl._values_rows``) in one
    Rust pass over its float32 scores (``src/planning/kept.rs``: the same numbers, the maps of
    :class:`Calibration` applied as :func:`._calibrate.interp_columns` does, the binned and
    the scaled maps alike); ``None`` where that pass does not apply (other values, linear
    maps, a goal's metric without scores), for the block-by-block numpy path."""
    if vals != getattr(pl, "_values_rows", None):
        return None
    cal = pl.calibration_
    outcomes = ["gmv", "cost"] + (["conversion"] if "conversion" in cal else [])
    est = pl.estimates_
    metrics = {g.metric for g in pl.plan.goals} | set(need)
    if not metrics <= {"profit", *outcomes}:
        return None
    if not all(isinstance(m, Calibration) for k in outcomes for m in cal[k]):
        return None
    if not all(k in est and est[k].dtype == np.float32 for k in outcomes):
        return None
    goals = []
    for g in pl.plan.goals:
        mask = pl.goal_masks_.get(g.name)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (len(pl.user_ids_),):
                return None
            mask = np.ascontiguousarray(mask)
        goals.append((g.metric, float(g.weight), mask))
    T = pl.composition_.n_tasks
    eligible = np.ascontiguousarray(pl.composition_.eligible, dtype=np.bool_)
    r, j, value, cols = _core.planning_kept_pairs(
        [np.ascontiguousarray(est[k]) for k in outcomes],
        [
            (
                [np.ascontiguousarray(m.knots_x, dtype=np.float64) for m in cal[k]],
                [np.ascontiguousarray(m.knots_y, dtype=np.float64) for m in cal[k]],
            )
            for k in outcomes
        ],
        np.ascontiguousarray(pl._strata(np.arange(T)), dtype=np.int64),
        np.ascontiguousarray(pl.composition_.tasks["cost_per_touch"].to_numpy(np.float64)),
        float(pl.margin),
        goals,
        eligible,
        None if allowed is None else np.ascontiguousarray(allowed, dtype=np.bool_),
        bool(floors),
        need,
    )
    return r, j, {"value": value, **dict(zip(need, cols, strict=True))}


def build_problem(
    pl: Any,
    budget: float | None,
    vals: dict[str, np.ndarray] | Values,
    allowed: np.ndarray | None = None,
    extra: dict[str, Any] | None = None,
    task_resources: dict[str, tuple[np.ndarray, float]] | None = None,
):
    """The :class:`growthmachine.allocate.Problem` of the fitted planner ``pl`` (see
    ``Planner.candidates``); ``vals``: the calibrated values (``Planner.values``), as full
    matrices or as a function of a block of rows; ``None`` if no pair is kept."""
    from .. import allocate

    budget = pl.plan.budget if budget is None else budget
    if budget is not None:
        budget = cv.check_number(budget, "budget", minimum=0.0)
    floors = [g for g in pl.plan.goals if g.floor is not None]
    if not callable(vals):
        full = vals
        vals = lambda rows: {k: v[rows] for k, v in full.items()}  # noqa: E731
    r, j, at = kept_pairs(pl, vals, floors, allowed)
    tasks = pl.composition_.tasks
    T = len(tasks)
    cols: dict[str, np.ndarray] = {"value": at["value"], "cost": at["cost"]}
    resources: dict[str, Any] = {"cost": np.inf if budget is None else budget}
    usage = ["cost"]
    for b in pl.plan.benefits:
        if b.budget is not None:
            key = f"budget:{b.name}"
            is_b = tasks["benefit"].to_numpy()[j] == b.name
            cols[key] = np.where(is_b, cols["cost"], 0.0)
            resources[key] = b.budget
            usage.append(key)
    for g in floors:
        key = f"goal:{g.name}"
        cols[key] = np.maximum(at[g.metric], 0.0)
        mask = pl.goal_masks_.get(g.name)
        if mask is not None:  # the floor counts the goal's own users
            cols[key] = cols[key] * mask[r]
        resources[key] = (g.floor, None)
        usage.append(key)
    au = {}
    for c in pl.plan.channels:
        if c.capacity_per_day is not None:
            key = f"capacity:{c.name}"
            resources[key] = c.capacity_per_day * pl.plan.horizon_days
            au[key] = (tasks["channel"] == c.name).astype(float).to_numpy()
    for name, (per_task, bound) in (task_resources or {}).items():
        cols[name] = per_task[j].astype(np.float64)
        resources[name] = bound
        usage.append(name)
    action = j.astype(np.int64)
    n_actions = T
    if extra is not None and len(extra["user"]):
        # the outside option: one more action (id n_tasks) after each user's tasks, paid
        # from its own budget
        er = pd.Index(pl.user_ids_).get_indexer(extra["user"])
        if (er < 0).any():
            bad = extra["user"][er < 0][0]
            raise ValueError(f"extra['user_id']: user {bad} is not among the fitted users")
        o = np.argsort(er, kind="stable")
        er = er[o]
        pos = np.searchsorted(r, er, side="right")
        key = f"budget:{extra['name']}"
        cols[key] = np.zeros(len(r))
        ex_cols = {"value": extra["value"][o], key: extra["cost"][o]}
        for name in task_resources or {}:
            u = extra["usage"].get(name)
            ex_cols[name] = np.zeros(len(er)) if u is None else u[o]
        for c in list(cols):
            cols[c] = np.insert(cols[c], pos, ex_cols.get(c, 0.0))
        r = np.insert(r, pos, er)
        action = np.insert(action, pos, T)
        resources[key] = extra["budget"]
        usage.append(key)
        n_actions = T + 1
        au = {k: np.r_[v, 0.0] for k, v in au.items()}
    if not len(r):
        return None
    # only users with a candidate, ascending (as a table's sorted user codes would be)
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])  # r is sorted: its runs
    present = r[starts]
    counts = np.diff(np.r_[starts, len(r)])
    prob = allocate.Problem.from_arrays(
        np.r_[0, np.cumsum(counts)].astype(np.int64),
        action,
        cols["value"],
        resources=resources,
        usage={k: cols[k] for k in usage},
        action_usage=au or None,
        n_actions=n_actions,
        per_user_limit=1,
    )
    prob.users = pl.user_ids_[present]
    return prob
