"""Tests of growthmachine.allocate: invariants on random instances against HiGHS (highspy)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import growthmachine as gm
from growthmachine import allocate as al

highspy = pytest.importorskip("highspy")


def make(seed: int, n: int = 30, groups: bool = False, limit=1, lower: bool = False, neg=0.0):
    """A small random problem built with numpy (independent of the Rust generator)."""
    rng = np.random.default_rng(seed)
    n_actions = 8
    counts = rng.integers(0, 6, n)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    action = np.concatenate([np.sort(rng.choice(n_actions, c, replace=False)) for c in counts])
    nnz = len(action)
    value = rng.normal(1.0, 1.0, nnz) - neg
    cost = rng.uniform(0.1, 2.0, nnz)
    slot = rng.uniform(0.5, 1.5, n_actions)
    reach = (rng.uniform(size=n_actions) < 0.5).astype(float)
    g = rng.integers(-1, 3, n_actions) if groups else None
    pos = value > 0
    res = {
        "cost": 0.4 * cost[pos].sum() + 0.1,
        "slot": 0.5 * slot[action[pos]].sum() + 0.1,
    }
    usage = {"cost": cost}
    au = {"slot": slot}
    if lower:
        res["reach"] = (0.3 * min(n, reach[action].sum()), np.inf)
        au["reach"] = reach
    return al.Problem.from_arrays(
        indptr,
        action,
        value,
        resources=res,
        usage=usage,
        action_usage=au,
        n_actions=n_actions,
        per_user_limit=limit,
        groups=g,
    )


def check_plan(p: al.Problem, sol: al.Solution) -> None:
    """Independent check (numpy) of every constraint of the plan."""
    k = sol.chosen
    user = np.searchsorted(p.indptr, k, side="right") - 1
    lim = p.per_user_limit
    lim = np.full(p.n_users, lim) if np.isscalar(lim) else np.asarray(lim)
    per_user = np.bincount(user, minlength=p.n_users)
    assert (per_user <= lim).all(), "per-user limit broken"
    if p.groups.size:
        g = p.groups[p.action[k]]
        m = g >= 0
        pairs = pd.DataFrame({"u": user[m], "g": g[m]})
        assert not pairs.duplicated().any(), "group limit broken"
    used = p.action_usage[p.action[k]].sum(axis=0)
    for a, r in zip(p.usage, p.usage_resource, strict=True):
        used[r] += a[k].astype(np.float64).sum()
    np.testing.assert_allclose(used, sol.usage["used"].to_numpy(), rtol=1e-9, atol=1e-9)
    assert (used <= p.upper * (1 + 1e-12) + 1e-12).all(), "upper bound broken"
    assert sol.objective == pytest.approx(p.value[k].astype(np.float64).sum(), rel=1e-9, abs=1e-9)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    groups=st.booleans(),
    limit=st.sampled_from([1, 2, 3, "per_user"]),
    neg=st.sampled_from([0.0, 1.0]),
)
def test_dual_against_highs(seed, groups, limit, neg):
    n = 30
    lim = np.random.default_rng(seed).integers(0, 4, n) if limit == "per_user" else limit
    p = make(seed, n, groups=groups, limit=lim, neg=neg)
    sol = al.solve(p, method="dual")
    check_plan(p, sol)
    lp = al.highs_lp(p, solver="simplex")["objective"]
    scale = max(1.0, abs(lp))
    # The dual bound is a bound of the LP optimum, the certified primal is a feasible LP value.
    assert sol.dual_bound >= lp - 1e-7 * scale
    assert sol.lp_value <= lp + 1e-7 * scale
    assert sol.dual_bound - sol.lp_value <= 1e-4 * scale + 1e-9 or sol.status != "optimal"
    # The plan's value is within the reported gap of the HiGHS optimum.
    mip = al.solve(p, method="highs").objective
    assert sol.objective <= mip + 1e-9 * scale
    assert mip - sol.objective <= sol.gap * abs(sol.dual_bound) + 1e-7 * scale


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_matches_highs_mip(seed):
    p = make(seed, 12, groups=True, limit=2)
    ex = al.solve(p, method="exact")
    hi = al.solve(p, method="highs")
    check_plan(p, ex)
    assert ex.status == "optimal"
    assert ex.objective == pytest.approx(hi.objective, rel=1e-7, abs=1e-7)
    lp = al.solve(p, method="lp")
    assert lp.dual_bound == pytest.approx(al.highs_lp(p)["objective"], rel=1e-6, abs=1e-6)


def test_lower_bounds_met_and_priced():
    p = make(5, 200, lower=True)
    sol = al.solve(p, method="dual")
    check_plan(p, sol)
    r = p.resources.index("reach")
    assert sol.usage["used"][r] >= p.lower[r] - 1e-9
    h = al.highs_lp(p, solver="simplex")
    assert sol.dual_bound >= h["objective"] - 1e-6 * abs(h["objective"])
    assert sol.lp_gap <= 1e-4
    if sol.usage["used"][r] <= p.lower[r] * (1 + 1e-6):
        assert sol.prices["reach"] <= 0


def test_all_negative_values_give_empty_plan():
    p = make(3, 40, neg=10.0)
    sol = al.solve(p, method="dual")
    assert len(sol.assignment) == 0 and sol.objective == 0.0
    assert sol.status == "optimal"


def test_scale_case_gap_and_warm_start():
    p = al.random_problem(50_000, per_user=10, seed=4)
    cold = al.solve(p, tol=1e-4)
    check_plan(p, cold)
    assert cold.lp_gap <= 1e-4
    assert cold.gap <= 2e-3
    # Re-plan the next day: budgets move by 2%.
    p2 = p.with_bounds(budget_0=p.upper[0] * 1.02, slots_1=p.upper[3] * 0.98)
    cold2 = al.solve(p2)
    warm2 = al.solve(p2, warm_start=cold)
    assert warm2.lp_gap <= 1e-4
    assert warm2.passes < cold2.passes
    assert warm2.dual_bound == pytest.approx(cold2.dual_bound, rel=2e-4)


def test_same_result_for_one_and_two_threads():
    p = al.random_problem(220_000, per_user=4, n_actions=20, seed=9)  # includes the sample phase
    n0 = gm.get_num_threads()
    try:
        gm.set_num_threads(1)
        a = al.solve(p)
        gm.set_num_threads(2)
        b = al.solve(p)
    finally:
        gm.set_num_threads(n0)
    assert (a.history["phase"] == "sample").any()
    np.testing.assert_array_equal(a.chosen, b.chosen)
    assert a.dual_bound == b.dual_bound and a.objective == b.objective
    pd.testing.assert_series_equal(a.prices, b.prices)


def test_from_frame_labels_groups_limits():
    df = pd.DataFrame(
        {
            "uid": ["a", "a", "a", "b", "b", "c"],
            "camp": ["c10", "c20", "push", "c10", "push", "c20"],
            "uplift": [5.0, 6.0, 2.0, 1.0, 3.0, 4.0],
            "coupon_cost": [1.0, 2.0, 0.0, 1.0, 0.0, 2.0],
        }
    )
    prob = al.Problem.from_frame(
        df,
        user="uid",
        action="camp",
        value="uplift",
        usage=["coupon_cost"],
        resources={"coupon_cost": 3.0, "push": 1},
        action_usage=pd.DataFrame({"push": [1.0]}, index=["push"]),
        per_user_limit={"a": 2, "b": 2, "c": 1},
        groups={"c10": "coupon", "c20": "coupon"},
    )
    sol = al.solve(prob, method="dual")
    ex = al.solve(prob, method="exact")
    assert list(sol.assignment.columns[:2]) == ["uid", "camp"]
    # Push capacity 1: b's push (3) beats a's (2). Coupon budget 3, one coupon per user:
    # a:c10 (5, cost 1) + c:c20 (4, cost 2) = 9 beats a:c20 + b:c10 = 7. Optimum 3 + 9.
    assert ex.objective == pytest.approx(12.0, abs=1e-9)
    assert set(map(tuple, ex.assignment[["uid", "camp"]].to_numpy())) == {
        ("a", "c10"),
        ("b", "push"),
        ("c", "c20"),
    }
    got = set(map(tuple, ex.assignment[["uid", "camp"]].to_numpy()))
    assert ("a", "c10") not in got or ("a", "c20") not in got  # group exclusivity
    assert sol.objective <= ex.objective + 1e-9
    assert ex.dual_bound >= ex.objective


def test_validation_errors_name_the_problem():
    df = pd.DataFrame({"user": [1, 1, 2], "action": [0, 1, 0], "value": [1.0, 2.0, 3.0]})
    df["cost"] = [1.0, 1.0, 1.0]
    ok = dict(usage=["cost"], resources={"cost": 2.0})
    al.Problem.from_frame(df, **ok)
    bad = df.assign(value=[1.0, np.nan, 3.0])
    with pytest.raises(ValueError, match="value"):
        al.Problem.from_frame(bad, **ok)
    with pytest.raises(ValueError, match="cost.*>= 0"):
        al.Problem.from_frame(df.assign(cost=[1.0, -1.0, 1.0]), **ok)
    with pytest.raises(ValueError, match="unknown column 'nope'"):
        al.Problem.from_frame(df, usage=["nope"], resources={"nope": 1})
    with pytest.raises(ValueError, match="'budget' has no usage"):
        al.Problem.from_frame(df, usage=["cost"], resources={"cost": 1, "budget": 5})
    with pytest.raises(gm.InfeasibleError, match="cost.*lower bound 5.*exceeds upper bound 2"):
        al.Problem.from_frame(df, usage=["cost"], resources={"cost": (5, 2)})
    with pytest.raises(gm.InfeasibleError, match="cost.*lower bound 3.*most any plan can use"):
        al.Problem.from_frame(df, usage=["cost"], resources={"cost": (3, 10)})
    with pytest.raises(ValueError, match="per_user_limit"):
        al.Problem.from_frame(df, per_user_limit=-1, **ok)
    with pytest.raises(ValueError, match="method"):
        al.solve(al.Problem.from_frame(df, **ok), method="magic")
    with pytest.raises(ValueError, match="tol"):
        al.solve(al.Problem.from_frame(df, **ok), tol=0)
    with pytest.raises(ValueError, match="action: must be in 0..2"):
        al.Problem.from_arrays(
            [0, 2], [0, 5], [1.0, 1.0], resources={"x": 1}, usage={"x": [1.0, 1.0]}, n_actions=2
        )


def test_lp_infeasible_lower_bounds_are_named():
    # Each user can reach only one of the two lower-bounded resources: both cannot be met.
    indptr = np.arange(0, 41, 2)
    action = np.tile([0, 1], 20)
    p = al.Problem.from_arrays(
        indptr,
        action,
        np.ones(40),
        resources={"reach_a": (15, np.inf), "reach_b": (15, np.inf)},
        action_usage={"reach_a": [1.0, 0.0], "reach_b": [0.0, 1.0]},
    )
    sol = al.solve(p, method="dual")
    assert sol.status == "infeasible"
    assert "reach_" in sol.message
    with pytest.raises(gm.InfeasibleError):
        al.solve(p, method="lp")


def test_time_limit_progress_dtype_and_pickle():
    p = al.random_problem(20_000, per_user=8, seed=2)
    calls = []
    sol = al.solve(p, time_limit=0.0, progress=False)
    assert sol.status == "time_limit"
    check_plan(p, sol)
    full = al.solve(p)
    p64 = al.Problem.from_arrays(
        p.indptr,
        p.action,
        p.value.astype(np.float64),
        resources=dict(zip(p.resources, p.upper, strict=True)),
        usage={
            p.resources[r]: a.astype(np.float64)
            for a, r in zip(p.usage, p.usage_resource, strict=True)
        },
        action_usage={
            r: p.action_usage[:, j] for j, r in enumerate(p.resources) if p.action_usage[:, j].any()
        },
        n_actions=p.n_actions,
    )
    s64 = al.solve(p64)
    assert s64.dual_bound == pytest.approx(full.dual_bound, rel=1e-9)
    back = pickle.loads(pickle.dumps(full))
    assert back.objective == full.objective and back.assignment.equals(full.assignment)
    pb = pickle.loads(pickle.dumps(p))
    assert al.solve(pb).dual_bound == full.dual_bound
    del calls


def test_plan_from_environment_holds_only_eligible_pairs():
    pop = gm.sim.Population.generate(10_000, seed=2)
    env = gm.sim.Environment(pop, seed=0)
    plan, resources, action_usage = gm.planning.plan_from_environment(env, seed=0)
    assert len(plan) > 1000
    # The experiment that estimates the plan causes opt-outs: those pairs must be gone.
    assert env.eligible(plan["user"].to_numpy(), plan["action"].to_numpy()).all()
    assert set(action_usage.columns) <= set(resources)
