"""The entry point :func:`solve`: checks the arguments, picks the method and hands the problem to
the Rust core (or to HiGHS)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _progress
from ._highs import solve_highs
from ._problem import Problem
from ._solution import Solution, solution_of

__all__ = ["METHODS", "solve"]

METHODS = ("auto", "dual", "exact", "lp", "highs")

#: ``method="auto"``: problems of at most this many candidates try the exact MIP first.
AUTO_EXACT_CANDIDATES = 200

#: ``method="auto"``: seconds the exact MIP may take to prove its plan optimal before the dual
#: method's plan is returned instead. microlp's branch and bound has no gap tolerance and can
#: run for hours on small knapsacks whose LP bound stays loose (136 candidates of equal usage
#: under one budget: every branch's bound keeps the budget's fractional item).
AUTO_EXACT_SECONDS = 5.0


def _prices_of(warm_start: Any, problem: Problem) -> list[float] | None:
    if warm_start is None:
        return None
    if isinstance(warm_start, Solution):
        p = warm_start.prices
    elif isinstance(warm_start, (Mapping, pd.Series)):
        p = pd.Series(warm_start)
    else:
        a = cv.as_array(warm_start, "warm_start", np.float64, shape=(len(problem.resources),))
        return [float(x) for x in a]
    p = pd.Series(p).reindex(problem.resources).fillna(0.0)
    return [float(x) for x in p.to_numpy(dtype=np.float64)]


def solve(
    problem: Problem,
    method: str = "auto",
    tol: float = 1e-4,
    time_limit: float | None = None,
    warm_start: Solution | Mapping[str, float] | Any = None,
    progress: bool | None = None,
    *,
    max_iter: int = 500,
    seed: int = 0,
) -> Solution:
    """Solves ``problem``; see the module docs for the methods (``"auto"``: for at most
    :data:`AUTO_EXACT_CANDIDATES` candidates the exact MIP if it proves its plan optimal within
    :data:`AUTO_EXACT_SECONDS` (and half of ``time_limit``), else, and for larger problems, the
    dual method). ``warm_start``: a previous
    :class:`Solution` (or prices by resource) to start the dual method from. ``time_limit``
    counts from the call (checks and conversions included)."""
    start = time.time()
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: must be an allocate.Problem, got {type(problem).__name__}")
    cv.check_choice(method, "method", METHODS)
    tol = cv.check_number(tol, "tol", minimum=0, strict_min=True)
    if time_limit is not None:
        time_limit = cv.check_number(time_limit, "time_limit", minimum=0)
    max_iter = cv.check_int(max_iter, "max_iter", minimum=1)
    seed = cv.check_int(seed, "seed", minimum=0)
    t0 = time.perf_counter()
    if method == "auto":
        if problem.n_candidates > AUTO_EXACT_CANDIDATES:
            method = "dual"
        else:
            # with a time limit, the exact attempt may use half of it
            limit = (
                AUTO_EXACT_SECONDS
                if time_limit is None
                else min(time_limit / 2, AUTO_EXACT_SECONDS)
            )
            sol = solve(problem, "exact", tol, limit, warm_start, progress, max_iter=max_iter,
                        seed=seed)  # fmt: skip
            if sol.status == "optimal":
                return sol
            # not proven in time: the dual method's plan (deterministic, with its certificate)
            method = "dual"  # (its time limit below counts from the call, as the exact's did)
    if method == "highs":
        out = solve_highs(problem, integer=True, time_limit=time_limit, start=start)
    else:
        with _progress.bar(progress, f"allocate ({method})") as cb:
            out = problem._run(
                method,
                tol=tol,
                max_iter=max_iter,
                time_limit=None
                if time_limit is None
                else max(0.0, time_limit - (time.time() - start)),
                warm_start=_prices_of(warm_start, problem),
                seed=seed,
                progress=cb,
            )
    return solution_of(problem, out, method, time.perf_counter() - t0)
