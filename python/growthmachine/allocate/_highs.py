"""The HiGHS bridge (optional: the independent oracle): the problem as a HiGHS LP/MIP, its LP
relaxation (:func:`highs_lp`) and the MIP with only what HiGHS proved (:func:`solve_highs`).

HiGHS runs in a child process (``_CHILD``), which is killed on Ctrl-C and shortly after the time
limit: HiGHS checks its time limit and interrupt callbacks only in some phases (its presolve,
heuristics and the simplex on large instances ran for tens of seconds past both)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _convert as cv
from .. import _core
from .._core import InfeasibleError

if TYPE_CHECKING:  # pragma: no cover
    from ._problem import Problem

__all__ = ["highs_lp", "solve_highs"]


def _objective_scale(value: np.ndarray) -> float:
    """The power of two that brings the largest |value| to [1, 2) (exact): HiGHS sees values of
    order 1 whatever the units (it treats costs of 1e20 or more as infinite)."""
    most = float(np.max(np.abs(value))) if value.size else 0.0
    return float(2.0 ** -np.floor(np.log2(most))) if most > 0 else 1.0


class _OutOfTime(Exception):
    """Building the model used up the time limit."""


def _check_time(deadline: float | None) -> None:
    if deadline is not None and time.time() >= deadline:
        raise _OutOfTime


def _highs_model(
    problem: Problem, integer: bool, deadline: float | None = None
) -> tuple[dict[str, Any], int, float]:
    """The model as the arrays of a HiGHS LP/MIP (columns = candidates; a CSC matrix), its
    objective scaled by ``_objective_scale`` (returned last: divide HiGHS's objective, bound and
    duals by it), and the number of resource rows (they come first). Raises ``_OutOfTime``
    between its steps once ``deadline`` (``time.time()``) has passed: at 400,000 users the model
    takes several seconds to build on a loaded machine."""
    import scipy.sparse as sp

    nnz, n, r_n = problem.n_candidates, problem.n_users, len(problem.resources)
    k = np.arange(nnz)
    rows, cols, vals = [], [], []
    # Resource rows (one column of usage per resource, each contiguous).
    u = problem.action_usage[problem.action.astype(np.int64)]  # nnz x R
    u = np.array(u, dtype=np.float64, order="F")
    for a, r in zip(problem.usage, problem.usage_resource, strict=True):
        u[:, r] += a
    _check_time(deadline)
    for r in range(r_n):
        _check_time(deadline)
        nzk = np.flatnonzero(u[:, r])
        rows.append(np.full(len(nzk), r))
        cols.append(nzk)
        vals.append(u[nzk, r])
    row_lo = [np.where(problem.lower > 0, problem.lower, -np.inf)]
    row_hi = [np.asarray(problem.upper, dtype=np.float64)]
    # Per-user limits.
    user = np.repeat(np.arange(n), np.diff(problem.indptr))
    lim = problem.per_user_limit
    lim_arr = np.full(n, lim) if isinstance(lim, (int, np.integer)) else np.asarray(lim)
    rows.append(r_n + user)
    cols.append(k)
    vals.append(np.ones(nnz))
    row_lo.append(np.full(n, -np.inf))
    row_hi.append(lim_arr.astype(np.float64))
    n_rows = r_n + n
    _check_time(deadline)
    if problem.groups.size and (problem.groups >= 0).any():
        g = problem.groups[problem.action.astype(np.int64)]
        m = g >= 0
        # One row per (user, group) pair in use: an int64 key, numbered in order (the
        # candidates come by user, so rows come by user then group).
        n_grp = int(g.max()) + 1
        key = np.unique(user[m].astype(np.int64) * n_grp + g[m], return_inverse=True)[1]
        rows.append(n_rows + key)
        cols.append(k[m])
        vals.append(np.ones(int(m.sum())))
        n_g = int(key.max()) + 1 if key.size else 0
        row_lo.append(np.full(n_g, -np.inf))
        row_hi.append(np.ones(n_g))
        n_rows += n_g
    _check_time(deadline)
    A = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, nnz),
    )
    _check_time(deadline)
    A.sort_indices()
    _check_time(deadline)
    scale = _objective_scale(problem.value)
    model = {
        "num_col": nnz,
        "num_row": n_rows,
        "col_cost": problem.value.astype(np.float64) * scale,
        "row_lower": np.concatenate(row_lo).astype(np.float64),
        "row_upper": np.concatenate(row_hi).astype(np.float64),
        "start": A.indptr.astype(np.int32),
        "index": A.indices.astype(np.int32),
        "value": np.asarray(A.data, dtype=np.float64),
        "integer": integer,
    }
    return model, r_n, scale


#: The child process that runs HiGHS: reads ``(model, solves)`` (pickled) from stdin, runs each
#: solve (a dict of HiGHS options; ``integer``: solve the MIP, else the LP relaxation) on the
#: model with a time limit up to the wall-clock ``deadline``, and writes one pickled result per
#: solve to stdout as soon as it has it. HiGHS's banner and output go to /dev/null.
_CHILD = """
import os, pickle, sys, time
out = os.fdopen(os.dup(1), "wb")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
import numpy as np
import highspy
model, solves = pickle.load(sys.stdin.buffer)
lp = highspy.HighsLp()
lp.num_col_ = model["num_col"]
lp.num_row_ = model["num_row"]
lp.sense_ = highspy.ObjSense.kMaximize
lp.col_cost_ = model["col_cost"]
lp.col_lower_ = np.zeros(model["num_col"])
lp.col_upper_ = np.ones(model["num_col"])
lp.row_lower_ = model["row_lower"]
lp.row_upper_ = model["row_upper"]
lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
lp.a_matrix_.start_ = model["start"]
lp.a_matrix_.index_ = model["index"]
lp.a_matrix_.value_ = model["value"]
lp.a_matrix_.num_col_ = model["num_col"]
lp.a_matrix_.num_row_ = model["num_row"]
for job in solves:
    lp.integrality_ = (
        [highspy.HighsVarType.kInteger] * model["num_col"] if job.pop("integer") else []
    )
    deadline = job.pop("deadline")
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    for k, v in job.items():
        h.setOptionValue(k, v)
    if deadline is not None:
        h.setOptionValue("time_limit", max(deadline - time.time(), 0.0))
    h.passModel(lp)
    t0 = time.perf_counter()
    h.run()
    secs = time.perf_counter() - t0
    info, sol, status = h.getInfo(), h.getSolution(), h.getModelStatus()
    pickle.dump({
        "status": h.modelStatusToString(status),
        "optimal": status == highspy.HighsModelStatus.kOptimal,
        "objective": float(info.objective_function_value),
        "mip_dual_bound": float(getattr(info, "mip_dual_bound", np.inf)),
        "has_plan": int(info.primal_solution_status) == 2,
        "x": np.asarray(sol.col_value),
        "row_dual": np.asarray(sol.row_dual),
        "seconds": secs,
    }, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()
"""

#: Seconds past the deadline before the child is stopped: HiGHS honours its time limit only
#: where it checks it (a large instance's presolve or feasibility-jump heuristic ran for minutes
#: past it), so the child is killed then and what it had not reported is lost.
GRACE = 0.5


def _in_child(model: dict[str, Any], solves: list[dict[str, Any]], deadline: float | None):
    """Runs ``solves`` on ``model`` in a child process (see ``_CHILD``); returns the results the
    child reported, in order, by the time it finished or ``GRACE`` seconds past ``deadline``
    (wall-clock, ``time.time()``), when it is killed. Ctrl-C kills the child at once and
    re-raises ``KeyboardInterrupt``: HiGHS's own interrupt checks miss whole phases."""
    try:
        import highspy  # noqa: F401  (the child needs it; fail here with the message)
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("method='highs' needs highspy: pip install highspy") from None
    if deadline is not None and time.time() >= deadline:
        return []  # building the model used up the time
    for job in solves:
        job["deadline"] = deadline
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    got: list[dict[str, Any]] = []

    def send() -> None:
        try:
            pickle.dump((model, solves), child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            child.stdin.close()
        except OSError:  # the child was killed
            pass

    def receive() -> None:
        try:
            while True:
                got.append(pickle.load(child.stdout))
        except Exception:  # end of the stream (finished or killed)
            pass

    threads = [threading.Thread(target=f, daemon=True) for f in (send, receive)]
    for t in threads:
        t.start()
    try:
        while child.poll() is None and len(got) < len(solves):
            if deadline is not None and time.time() > deadline + GRACE:
                break
            try:
                child.wait(0.02)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        threads[1].join()
    return got


def highs_lp(
    problem: Problem,
    solver: str = "ipm",
    crossover: bool = False,
    time_limit: float | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The LP relaxation solved by HiGHS (``solver="ipm"``: interior point; crossover off by
    default). Returns objective, status, seconds (solve only) and the resource duals. Stops on
    Ctrl-C (``KeyboardInterrupt``) and at ``time_limit`` (HiGHS runs in a child process that is
    killed then, within ``GRACE`` seconds: status ``"Time limit reached"``, objective and duals
    NaN when it had not finished)."""
    from ._problem import Problem

    cv.check_instance(problem, "problem", Problem, "a growthmachine.allocate.Problem")
    if not isinstance(crossover, (bool, np.bool_)):
        raise TypeError(f"crossover: must be a bool, got {type(crossover).__name__}")
    if threads is not None:
        threads = cv.check_int(threads, "threads", minimum=1)
        reason = _core.thread_count_error(threads)
        if reason:
            raise ValueError(f"threads: {reason}, got {threads}")
    deadline = None if time_limit is None else time.time() + time_limit
    r_n = len(problem.resources)
    job: dict[str, Any] = {"integer": False, "solver": solver}
    if solver == "ipm":
        job["run_crossover"] = "on" if crossover else "off"
    if threads is not None:
        job["threads"] = int(threads)
    try:
        model, r_n, scale = _highs_model(problem, integer=False, deadline=deadline)
        got = _in_child(model, [job], deadline)
    except _OutOfTime:
        got = []
    if not got:
        return {
            "objective": np.nan,
            "status": "Time limit reached",
            "seconds": np.nan,
            "prices": np.full(r_n, np.nan),
            "x": np.full(problem.n_candidates, np.nan),
        }
    res = got[0]
    return {
        "objective": res["objective"] / scale,
        "status": res["status"],
        "seconds": res["seconds"],
        "prices": res["row_dual"][:r_n] / scale,
        "x": res["x"],
    }


def solve_highs(
    problem: Problem, integer: bool, time_limit: float | None, start: float | None = None
) -> dict:
    """The MIP through HiGHS. Claims only what HiGHS proved: ``optimal`` when HiGHS says so; at
    the time limit its best plan (or the empty plan, if that meets every bound) with HiGHS's dual
    bound, or an infinite bound (gap ``inf``) when it has none, as when the child running HiGHS
    had to be killed. The shadow-price LP runs after it in the time left (prices NaN if it does
    not finish). Ctrl-C stops either solve (``KeyboardInterrupt``). The clock starts at
    ``start`` (``time.time()`` when the caller was called; default now): building the model
    counts against ``time_limit`` (past it, no child is started), HiGHS gets what is left."""
    t0 = time.perf_counter()
    start = time.time() if start is None else start
    deadline = None if time_limit is None else start + time_limit
    r_n = len(problem.resources)
    # HiGHS 1.16's feasibility-jump heuristic checks neither the time limit nor the interrupt
    # callbacks (a 400,000-column instance ran for minutes past a 5 s limit and past Ctrl-C);
    # without it the search proves the same optimum.
    solves = [
        {"integer": integer, "mip_rel_gap": 1e-6, "mip_heuristic_run_feasibility_jump": False}
    ]
    if problem.n_candidates <= 200_000:
        solves.append({"integer": False, "solver": "simplex"})
    try:
        model, r_n, scale = _highs_model(problem, integer=integer, deadline=deadline)
        got = _in_child(model, solves, deadline)
    except _OutOfTime:
        got = []
    mip = got[0] if got else None
    status = mip["status"] if mip else "Time limit reached (HiGHS stopped)"
    if "nfeasible" in status:
        raise InfeasibleError(
            f"HiGHS: no plan meets the bounds of the resources {problem.resources} together "
            "with the per-user and group limits"
        )
    optimal = bool(mip and mip["optimal"])
    has_plan = bool(mip and mip["has_plan"] and mip["x"].size == problem.n_candidates)
    chosen = np.flatnonzero(mip["x"] > 0.5) if has_plan else np.zeros(0, dtype=np.int64)
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
    raw = mip["mip_dual_bound"] if mip else np.inf
    bound = raw / scale if np.isfinite(raw) else (obj if optimal else np.inf)
    lp_res = got[1] if len(got) > 1 and got[1]["status"] == "Optimal" else None
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
        "prices": lp_res["row_dual"][:r_n] / scale if lp_res else np.full(r_n, np.nan),
        "status": state,
        "message": "" if optimal else f"HiGHS: {status}",
        "passes": 0,
        "history": {
            "phase": np.array([2]),
            "iteration": np.array([0]),
            "dual": np.array([bound]),
            "bound": np.array([bound]),
            "lp_value": np.array([lp_res["objective"] / scale if lp_res else np.nan]),
            "value": np.array([obj]),
            "max_violation": np.array([0.0]),
            "seconds": np.array([time.perf_counter() - t0]),
        },
    }
