"""Hostile input for growthmachine.allocate and the thread count (issue 15): every case raises a
ValueError/TypeError/MemoryError naming the argument, or succeeds with an honest certificate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

import growthmachine as gm
from growthmachine import _core
from growthmachine import allocate as al

# ----- thread count ---------------------------------------------------------------------------


def _cap() -> int:
    """The largest accepted thread count (4 per CPU as the core counts CPUs, at least 8)."""
    n = 8
    while _core.thread_count_error(n + 1) is None:
        n += 1
    return n


def test_thread_cap_is_four_per_cpu_and_at_least_eight():
    cap = _cap()
    assert cap >= 8 and cap % 4 == 0
    assert cap <= 4 * max(os.cpu_count() or 1, 2)


def test_set_num_threads_rejects_counts_above_the_cap():
    before = gm.get_num_threads()
    cap = _cap()
    with pytest.raises(ValueError, match=rf"^n: must be at most {cap} .*got 10000$"):
        gm.set_num_threads(10_000)
    with pytest.raises(ValueError, match=r"^n: must be at most .*got 18446744073709551616$"):
        gm.set_num_threads(2**64)
    with pytest.raises(ValueError, match=r"^n: must be a positive integer, got -3$"):
        gm.set_num_threads(-3)
    with pytest.raises(ValueError, match=r"^n: must be a positive integer, got -\d+$"):
        gm.set_num_threads(-(2**200))
    assert gm.get_num_threads() == before
    try:
        gm.set_num_threads(cap)
        assert gm.get_num_threads() == cap
    finally:
        gm.set_num_threads(before)


@pytest.mark.parametrize("value", ["100000", "0", "-1", "two", "1e3"])
def test_env_thread_count_is_checked_at_import(value):
    out = subprocess.run(
        [sys.executable, "-c", "import growthmachine"],
        env={**os.environ, "GROWTHMACHINE_NUM_THREADS": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: GROWTHMACHINE_NUM_THREADS: must be"), last
    assert repr(value).replace("'", '"') in last, last


def test_env_thread_count_blank_means_unset():
    def threads(env):
        code = "import growthmachine as gm; print(gm.get_num_threads())"
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return int(out.stdout)

    unset = {k: v for k, v in os.environ.items() if k != "GROWTHMACHINE_NUM_THREADS"}
    assert threads({**unset, "GROWTHMACHINE_NUM_THREADS": " "}) == threads(unset)


@pytest.mark.parametrize("command", ["run", "plan"])
def test_cli_threads_above_the_cap_is_a_one_line_error(command):
    args = [sys.executable, "-m", "growthmachine", command, "--threads", "100000"]
    if command == "plan":
        args += ["--transactions", "t", "--users", "u", "--campaign-log", "c", "--plan", "p"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert f"argument --threads: must be at most {_cap()}" in last and "got 100000" in last, last
    assert "Traceback" not in out.stderr


# ----- problem construction ---------------------------------------------------------------------

IP, ACT, VAL = [0, 2, 3], [0, 1, 0], [1.0, 2.0, 3.0]


def _arrays(**kw):
    kw.setdefault("resources", {"c": 10})
    kw.setdefault("usage", {"c": [1.0, 1.0, 1.0]})
    return al.Problem.from_arrays(kw.pop("indptr", IP), kw.pop("action", ACT), VAL, **kw)


def test_from_frame_rejects_duplicate_user_action_rows():
    df = pd.DataFrame(
        {
            "user": [1, 2, 1, 1],
            "action": ["a", "a", "b", "a"],
            "value": [1.0, 1.0, 3.0, 2.0],
            "cost": [1.0, 1.0, 1.0, 1.0],
        }
    )
    msg = r"^df: rows 0 and 3 are both user 1 with action 'a'; each \(user, action\) pair"
    with pytest.raises(ValueError, match=msg):
        al.Problem.from_frame(df, usage=["cost"], resources={"cost": 10}, per_user_limit=2)
    # Without the duplicate the same table is accepted.
    al.Problem.from_frame(df.iloc[:3], usage=["cost"], resources={"cost": 10}, per_user_limit=2)


def test_from_arrays_rejects_duplicate_user_action_pairs():
    # User 1 lists action 2 twice (not next to each other).
    with pytest.raises(ValueError, match=r"^action: user 1 has action 2 more than once"):
        al.Problem.from_arrays(
            [0, 1, 4],
            [0, 2, 1, 2],
            [1.0, 1.0, 1.0, 1.0],
            resources={"c": 10},
            usage={"c": [1.0] * 4},
        )


@pytest.mark.parametrize("big", [2**32, 2**40, 2**64])
def test_huge_per_user_limits_mean_no_limit(big):
    want = al.solve(_arrays(per_user_limit=10), method="dual")
    assert want.objective == pytest.approx(6.0)
    lims = [big, np.array([big, big], dtype=np.float64)]
    if big < 2**63:
        lims += [[big, big], np.array([big, big], dtype=np.int64)]
    for lim in lims:
        sol = al.solve(_arrays(per_user_limit=lim), method="dual")
        assert sol.objective == pytest.approx(6.0), lim
        assert len(sol.assignment) == 3


@pytest.mark.parametrize(
    "lim, exc, msg",
    [
        (1.5, TypeError, r"^per_user_limit: must be an int or one int per user, got float 1.5$"),
        ([1, 1.5], ValueError, r"^per_user_limit: must hold integers, found 1.5 at position 1$"),
        ([1, -1], ValueError, r"^per_user_limit: must be >= 0, found -1$"),
        (-(2**40), ValueError, r"^per_user_limit: must be >= 0"),
        (np.True_, TypeError, r"^per_user_limit: must be an int or one int per user, got bool$"),
    ],
)
def test_bad_per_user_limits_are_named(lim, exc, msg):
    with pytest.raises(exc, match=msg):
        _arrays(per_user_limit=lim)


@pytest.mark.parametrize("a", [2**32, 2**40, 2**62])
def test_huge_action_codes_are_a_value_error(a):
    with pytest.raises(
        ValueError, match=rf"^action: must be < 4294967295 .*found {a} at position 1$"
    ):
        _arrays(action=[0, a, 0])


def test_huge_n_actions_is_named():
    with pytest.raises(
        ValueError, match=r"^n_actions: must be <= 4294967295, got 4611686018427387904"
    ):
        _arrays(n_actions=2**62)
    # Valid, but the per-action table (2**32 - 1 actions x 256 resources: 8 TiB) does not fit.
    res = {f"r{j}": 10 for j in range(256)}
    use = {r: [1.0, 1.0, 1.0] for r in res}
    with pytest.raises(MemoryError, match=r"^n_actions: the per-action usage table needs 8,192.0"):
        _arrays(n_actions=2**32 - 1, resources=res, usage=use)


@pytest.mark.parametrize(
    "kw, exc, msg",
    [
        ({"n_users": 10**12}, MemoryError, r"^n_users: too large for this machine"),
        ({"n_users": 2**62}, ValueError, r"^n_users: n_users x per_user = \d+ candidates is more"),
        ({"n_users": 2, "n_actions": 2**40}, ValueError, r"^n_actions: must be at most 4294967295"),
        ({"n_users": 2, "n_pair": 2**62}, ValueError, r"^n_pair: .* is more than any machine"),
        ({"n_users": 2, "n_action_res": 2**62}, ValueError, r"^n_action_res: .* is more than any"),
    ],
)
def test_random_problem_sizes_never_abort(kw, exc, msg):
    # In a child process: an abort there fails the test instead of killing pytest.
    code = (
        "import growthmachine as gm\n"
        "try:\n"
        f"    gm.allocate.random_problem(**{kw!r})\n"
        "except BaseException as e:\n"
        "    print(type(e).__name__); print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    name, message = out.stdout.split("\n", 1)
    assert name == exc.__name__, out.stdout
    assert re.match(msg, message), message


def test_random_problem_with_a_huge_limit_is_unlimited():
    a = al.random_problem(50, per_user=3, n_actions=6, per_user_limit=2**40, seed=1)
    b = al.random_problem(50, per_user=3, n_actions=6, per_user_limit=3, seed=1)
    assert al.solve(a, method="dual").objective == pytest.approx(
        al.solve(b, method="dual").objective
    )


# ----- certificates and time limits of the exact, lp and highs methods ------------------------


def _tiny(values, lower=None):
    res = {"c": 10.0 if lower is None else (lower, 10.0)}
    return al.Problem.from_arrays(IP, ACT, values, resources=res, usage={"c": [1.0, 1.0, 1.0]})


@pytest.mark.parametrize("method", ["lp", "exact", "dual", "highs"])
def test_empty_plan_is_proven_optimal_only_with_a_zero_bound(method):
    if method == "highs":
        pytest.importorskip("highspy")
    sol = al.solve(_tiny([-1.0, -2.0, -3.0]), method=method)
    assert len(sol.assignment) == 0 and sol.objective == 0.0
    assert sol.dual_bound == 0.0 and sol.gap == 0.0 and sol.status == "optimal"


@pytest.mark.parametrize("method", ["lp", "exact", "dual", "highs"])
def test_huge_values_are_solved_or_rejected_never_misreported(method):
    if method == "highs":
        pytest.importorskip("highspy")
    # Values near 1e299: within the documented range, solved with an honest certificate.
    v = [1e299, 2e299, 3e299]
    sol = al.solve(_tiny(v), method=method)
    assert sol.objective == pytest.approx(5e299, rel=1e-9)
    assert sol.dual_bound >= sol.objective * (1 - 1e-9)
    assert sol.dual_bound == pytest.approx(5e299, rel=1e-6)
    # Beyond it (max |value| x candidates > 1e300): a ValueError naming value.
    with pytest.raises(ValueError, match=r"^value: values up to 3e\+?300 over 3 candidates"):
        _tiny([1e300, 2e300, 3e300])


def _timed(method: str, n: int, time_limit: float, groups: int = 3):
    p = al.random_problem(n, per_user=8, n_groups=groups, seed=2)
    t = time.perf_counter()
    sol = al.solve(p, method=method, time_limit=time_limit)
    return p, sol, time.perf_counter() - t


@pytest.mark.parametrize("method, n", [("lp", 20_000), ("exact", 2_000), ("exact", 300)])
def test_time_limit_is_honoured_with_a_certified_bound(method, n):
    p, sol, secs = _timed(method, n, 1.0)
    assert secs < 1.0 + 1.5, secs  # model building (good_lp) is outside the solvers' clocks
    assert sol.status == "time_limit"
    # The bound is certified whatever the solver reached: at least the dual method's LP value.
    ref = al.solve(p, method="dual", tol=1e-6)
    assert sol.dual_bound >= ref.lp_value - 1e-6 * abs(ref.lp_value)
    assert sol.objective <= ref.dual_bound + 1e-6 * abs(ref.dual_bound)
    assert np.isfinite(sol.gap) and sol.gap >= 0


def test_exact_time_limit_without_a_plan_and_lower_bounds_is_a_value_error():
    p = al.random_problem(2_000, per_user=8, n_groups=3, seed=2)
    r = p.resources[-1]
    p = p.with_bounds(**{r: (1.0, float(p.upper[-1]))})
    with pytest.raises(ValueError, match=r"^time_limit: no plan meeting the lower bounds"):
        al.solve(p, method="exact", time_limit=0.0)


def test_highs_time_limit_claims_nothing_it_did_not_prove():
    pytest.importorskip("highspy")
    p, sol, secs = _timed("highs", 300, 1.0)
    assert secs < 1.0 + 2.0, secs
    assert sol.status == "time_limit"
    # HiGHS's bound is on the integer optimum (below the LP's with cuts), so above any plan.
    ref = al.solve(p, method="dual", tol=1e-6)
    assert sol.dual_bound >= ref.objective
    assert sol.gap > 0
    # No time at all: no plan, no bound, no gap of 0.
    sol0 = al.solve(p, method="highs", time_limit=0.0)
    assert sol0.status == "time_limit" and sol0.gap > 0
    assert sol0.dual_bound > sol0.objective


_SETUP = """
import growthmachine as gm
p = gm.allocate.random_problem({n}, per_user=8, n_groups=3, seed=2)
if {highs}:  # HiGHS prints a banner on stdout (once per process): send it to /dev/null
    import ctypes, os, highspy
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    highspy.Highs()
    ctypes.CDLL(None).fflush(None)
    os.dup2(saved, 1)

"""


@pytest.mark.parametrize("method, n", [("lp", 20_000), ("exact", 300), ("highs", 300)])
def test_ctrl_c_stops_the_solvers(seconds_to_interrupt, method, n):
    if method == "highs":
        pytest.importorskip("highspy")
    took = seconds_to_interrupt(
        _SETUP.format(n=n, highs=method == "highs"),
        f"gm.allocate.solve(p, method={method!r})",
        after=1.5,
    )
    assert took < 1.0, took


def test_auto_falls_back_to_dual_when_the_mip_cannot_prove_its_plan_in_time(monkeypatch):
    """136 candidates of equal usage under one budget (a cardinality constraint in disguise: 28
    fit): microlp's branch and bound keeps the budget's fractional item in every branch's bound
    and does not finish (it ran for minutes); ``method="auto"`` gives it AUTO_EXACT_SECONDS
    (shortened here), then returns the dual method's plan with its certificate. The plan is the
    optimum here (the 28 largest values) and within the budget."""
    from growthmachine.allocate import _solve

    monkeypatch.setattr(_solve, "AUTO_EXACT_SECONDS", 0.5)
    rng = np.random.default_rng(0)
    v = rng.gamma(1.0, 2.0, 136) + 0.01
    w = np.full(136, 50.0 / 28.69)
    prob = gm.allocate.Problem.from_arrays(
        np.arange(137), np.zeros(136, np.int64), v, resources={"budget": 50.0},
        usage={"budget": w}, n_actions=1,
    )  # fmt: skip
    # in a thread, so that a solver that hangs again fails the test instead of stalling it
    out: list = []
    worker = threading.Thread(target=lambda: out.append(gm.allocate.solve(prob, progress=False)),
                              daemon=True)  # fmt: skip
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and out, "method='auto' did not return within 60 s"
    sol = out[0]
    assert sol.method == "dual"
    assert sol.status in ("optimal", "feasible")
    assert sol.usage["used"].iloc[0] <= 50.0 + 1e-9
    assert sol.objective == pytest.approx(np.sort(v)[-28:].sum(), rel=1e-9)
    assert sol.dual_bound >= sol.objective
    # a problem the MIP proves at once keeps the exact method
    small = gm.allocate.Problem.from_arrays(
        np.arange(6), np.zeros(5, np.int64), np.arange(1.0, 6.0), resources={"budget": 2.0},
        usage={"budget": np.array([1.0, 1.0, 1.5, 1.0, 0.5])}, n_actions=1,
    )  # fmt: skip
    exact = gm.allocate.solve(small, progress=False)
    assert exact.method == "exact" and exact.status == "optimal"
