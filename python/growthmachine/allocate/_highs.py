"""The HiGHS bridge (optional: the independent oracle): the problem as a HiGHS LP/MIP, its LP
relaxation (:func:`highs_lp`) and the MIP with only what HiGHS proved (:func:`solve_highs`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._core import InfeasibleError

if TYPE_CHECKING:  # pragma: no cover
    from ._problem import Problem

__all__ = ["highs_lp", "solve_highs"]


def _objective_scale(value: np.ndarray) -> float:
    """The power of two that brings the largest |value| to [1, 2) (exact): HiGHS sees values of
    order 1 whatever the units (it treats costs of 1e20 or more as infinite)."""
    most = float(np.max(np.abs(value))) if value.size else 0.0
    return float(2.0 ** -np.floor(np.log2(most))) if most > 0 else 1.0


def _highs_model(problem: Problem, integer: bool):
    """The model as a HiGHS LP/MIP (columns = candidates), its objective scaled by
    ``_objective_scale`` (returned last: divide HiGHS's objective, bound and duals by it)."""
    try:
        import highspy
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("method='highs' needs highspy: pip install highspy") from None
    import scipy.sparse as sp

    nnz, n, r_n = problem.n_candidates, problem.n_users, len(problem.resources)
    k = np.arange(nnz)
    rows, cols, vals = [], [], []
    # Resource rows.
    u = problem.action_usage[problem.action.astype(np.int64)]  # nnz x R
    u = np.array(u, dtype=np.float64)
    for a, r in zip(problem.usage, problem.usage_resource, strict=True):
        u[:, r] += a
    for r in range(r_n):
        nzk = np.flatnonzero(u[:, r])
        rows.append(np.full(len(nzk), r))
        cols.append(nzk)
        vals.append(u[nzk, r])
    row_lo = list(np.where(problem.lower > 0, problem.lower, -np.inf))
    row_hi = list(problem.upper)
    # Per-user limits.
    user = np.repeat(np.arange(n), np.diff(problem.indptr))
    lim = problem.per_user_limit
    lim_arr = np.full(n, lim) if isinstance(lim, (int, np.integer)) else np.asarray(lim)
    rows.append(r_n + user)
    cols.append(k)
    vals.append(np.ones(nnz))
    row_lo += [-np.inf] * n
    row_hi += list(lim_arr.astype(np.float64))
    n_rows = r_n + n
    if problem.groups.size and (problem.groups >= 0).any():
        g = problem.groups[problem.action.astype(np.int64)]
        m = g >= 0
        key = pd.factorize(pd.MultiIndex.from_arrays([user[m], g[m]]))[0]
        rows.append(n_rows + key)
        cols.append(k[m])
        vals.append(np.ones(int(m.sum())))
        n_g = int(key.max()) + 1 if key.size else 0
        row_lo += [-np.inf] * n_g
        row_hi += [1.0] * n_g
        n_rows += n_g
    A = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, nnz),
    )
    A.sort_indices()
    lp = highspy.HighsLp()
    lp.num_col_ = nnz
    lp.num_row_ = n_rows
    lp.sense_ = highspy.ObjSense.kMaximize
    scale = _objective_scale(problem.value)
    lp.col_cost_ = problem.value.astype(np.float64) * scale
    lp.col_lower_ = np.zeros(nnz)
    lp.col_upper_ = np.ones(nnz)
    lp.row_lower_ = np.asarray(row_lo, dtype=np.float64)
    lp.row_upper_ = np.asarray(row_hi, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data
    lp.a_matrix_.num_col_ = nnz
    lp.a_matrix_.num_row_ = n_rows
    if integer:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * nnz
    return highspy, lp, r_n, scale


def _run_highs(h: Any) -> None:
    """Runs HiGHS on a worker thread (highspy's ``startSolve``), polling for Ctrl-C every 0.1 s:
    on ``KeyboardInterrupt`` HiGHS is told to stop through its interrupt callbacks
    (``HandleUserInterrupt``/``cancelSolve``), the thread is joined, and the interrupt re-raised."""
    h.HandleUserInterrupt = True
    h.startSolve()
    try:
        while not h.wait(0.1)[0]:
            pass
    except KeyboardInterrupt:
        h.cancelSolve()
        while not h.wait(0.1)[0]:
            pass
        raise


def highs_lp(
    problem: Problem,
    solver: str = "ipm",
    crossover: bool = False,
    time_limit: float | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The LP relaxation solved by HiGHS (``solver="ipm"``: interior point; crossover off by
    default). Returns objective, status, seconds (solve only) and the resource duals. Stops on
    Ctrl-C (``KeyboardInterrupt``) and at ``time_limit``."""
    highspy, lp, r_n, scale = _highs_model(problem, integer=False)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("solver", solver)
    if solver == "ipm":
        h.setOptionValue("run_crossover", "on" if crossover else "off")
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    if threads is not None:
        h.setOptionValue("threads", int(threads))
    h.passModel(lp)
    t0 = time.perf_counter()
    _run_highs(h)
    secs = time.perf_counter() - t0
    info = h.getInfo()
    sol = h.getSolution()
    return {
        "objective": float(info.objective_function_value) / scale,
        "status": h.modelStatusToString(h.getModelStatus()),
        "seconds": secs,
        "prices": np.asarray(sol.row_dual[:r_n]) / scale,
        "x": np.asarray(sol.col_value),
    }


def solve_highs(problem: Problem, integer: bool, time_limit: float | None) -> dict:
    """The MIP through HiGHS. Claims only what HiGHS proved: ``optimal`` when HiGHS says so; at
    the time limit its best plan (or the empty plan, if that meets every bound) with HiGHS's dual
    bound, or an infinite bound (gap ``inf``) when it has none. The shadow-price LP runs in the
    time left. Ctrl-C stops either solve (``KeyboardInterrupt``)."""
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + time_limit
    highspy, lp, r_n, scale = _highs_model(problem, integer=integer)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 1e-6)
    # HiGHS 1.16's feasibility-jump heuristic checks neither the time limit nor the interrupt
    # callbacks (a 400,000-column instance ran for minutes past a 5 s limit and past Ctrl-C);
    # without it the search proves the same optimum.
    h.setOptionValue("mip_heuristic_run_feasibility_jump", False)
    if time_limit is not None:
        h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 0.0))
    h.passModel(lp)
    _run_highs(h)
    model_status = h.getModelStatus()
    status = h.modelStatusToString(model_status)
    if "nfeasible" in status:
        raise InfeasibleError(
            f"HiGHS: no plan meets the bounds of the resources {problem.resources} together "
            "with the per-user and group limits"
        )
    info = h.getInfo()
    optimal = model_status == highspy.HighsModelStatus.kOptimal
    x = np.asarray(h.getSolution().col_value)
    has_plan = int(info.primal_solution_status) == 2 and x.size == problem.n_candidates
    chosen = np.flatnonzero(x > 0.5) if has_plan else np.zeros(0, dtype=np.int64)
    u = problem.action_usage[problem.action[chosen].astype(np.int64)].sum(axis=0)
    u = np.array(u, dtype=np.float64).reshape(-1)
    if u.size != r_n:
        u = np.zeros(r_n)
    for a, r in zip(problem.usage, problem.usage_resource, strict=True):
        u[r] += a[chosen].astype(np.float64).sum()
    if not has_plan and (problem.lower > 0).any():
        raise ValueError(
            f"time_limit: HiGHS found no plan meeting the lower bounds within {time_limit} s "
            f"(HiGHS status: {status}); give more time or use method='dual'"
        )
    obj = float(problem.value[chosen].astype(np.float64).sum())
    # HiGHS's proof (its dual bound, scaled back), else the plan itself when HiGHS proved it
    # optimal, else no bound at all.
    raw = float(getattr(info, "mip_dual_bound", np.inf))
    bound = raw / scale if np.isfinite(raw) else (obj if optimal else np.inf)
    left = None if deadline is None else deadline - time.perf_counter()
    lp_res = None
    if problem.n_candidates <= 200_000 and (left is None or left > 0):
        lp_res = highs_lp(problem, solver="simplex", time_limit=left)
        if lp_res["status"] != "Optimal":
            lp_res = None
    if optimal:
        state = "optimal"
    elif "Time limit" in status:
        state = "time_limit"
    else:
        state = "feasible"
    return {
        "chosen": chosen,
        "objective": obj,
        "dual_bound": bound,
        "lp_value": obj,
        "usage": u,
        "prices": lp_res["prices"] if lp_res else np.full(r_n, np.nan),
        "status": state,
        "message": "" if optimal else f"HiGHS: {status}",
        "passes": 0,
        "history": {
            "phase": np.array([2]),
            "iteration": np.array([0]),
            "dual": np.array([bound]),
            "bound": np.array([bound]),
            "lp_value": np.array([lp_res["objective"] if lp_res else np.nan]),
            "value": np.array([obj]),
            "max_violation": np.array([0.0]),
            "seconds": np.array([time.perf_counter() - t0]),
        },
    }
