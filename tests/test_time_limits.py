"""Every ``gm.allocate.solve`` method honours ``time_limit`` within a small margin, on instances
large enough that the solver's own checks come too late (clarabel's set-up and iterations, HiGHS's
presolve and simplex), and its certificate claims only what was proven (issue 15, defects 6/7)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import growthmachine as gm

al = gm.allocate

#: Seconds allowed past the limit: model building outside the solvers' clocks, the child
#: process of ``highs``, a loaded 2-core machine.
MARGIN = 2.0

#: (method, users, limit): each needs well over ``limit`` seconds to finish.
CASES = [
    ("dual", 2_000_000, 1.0),
    # Past the limit before the dual method has learnt prices (it planned at zero prices, a
    # repair of seconds: 29 s for a limit of 0.01 s), and between its phases (30 s for 0.2 s).
    ("dual", 2_000_000, 0.05),
    ("dual", 2_000_000, 0.3),
    ("lp", 100_000, 1.0),
    ("exact", 3_000, 1.0),
    ("highs", 100_000, 2.0),
    # Building the HiGHS model dominates (5-7 s at 400,000 users on a loaded machine; the call
    # took 5.1 s for a limit of 0.5 s when the building was not checked against it).
    ("highs", 400_000, 0.5),
]


@pytest.fixture(scope="module")
def problems():
    return {n: al.random_problem(n, per_user=8, n_groups=3, seed=2) for _, n, _ in CASES}


@pytest.mark.parametrize("method, n, limit", CASES)
def test_time_limit_is_honoured_and_the_certificate_is_honest(problems, method, n, limit):
    if method == "highs":
        pytest.importorskip("highspy")
    p = problems[n]
    t = time.perf_counter()
    sol = al.solve(p, method=method, time_limit=limit, progress=False)
    took = time.perf_counter() - t
    print(f"{method} at {n} users, time_limit={limit}: {took:.2f} s, {sol.status}, gap {sol.gap}")
    assert sol.status in ("time_limit", "optimal")
    # The plan is a plan: within every bound.
    used, upper = sol.usage["used"].to_numpy(), sol.usage["upper"].to_numpy()
    assert (used <= upper * (1 + 1e-9) + 1e-9).all()
    # The bound is a bound: never below the plan's value; a gap of 0 only with a proof.
    assert sol.dual_bound >= sol.objective - 1e-9 * max(1.0, abs(sol.objective))
    assert sol.gap >= 0
    if sol.status == "time_limit":
        assert sol.gap > 0 or sol.dual_bound == sol.objective
    if np.isfinite(sol.dual_bound) and n <= 100_000:
        # Valid: at least the value of any plan, here the dual method's.
        ref = al.solve(p, method="dual", progress=False)
        assert sol.dual_bound >= ref.objective * (1 - 1e-9)
    assert took < limit + MARGIN, took
