"""The machine: the closed loop, its baselines, and their scoring on the world's truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import growthmachine as gm
from growthmachine.machine import (
    KPIS,
    AbWinner,
    MachineConfig,
    Oracle,
    RandomPolicy,
    RfmRule,
    kpis_of,
)

N = 20_000


@pytest.fixture(scope="module")
def world():
    pop = gm.sim.Population.generate(N, seed=5)
    return gm.sim.Environment(pop, seed=5)


@pytest.fixture(scope="module")
def run(world):
    env = world.copy()
    m = gm.Machine(config=MachineConfig(seed=1))
    return m, env, m.run(env, periods=4, period_days=30, progress=False)


def test_every_policy_every_period_is_scored(run, world):
    m, env, r = run
    per = r.periods
    pols = {"machine", "rfm_rule", "ab_winner", "random", "none", "oracle"}
    assert set(per["policy"]) == pols
    assert per.groupby("policy").size().eq(4).all()
    assert set(KPIS) <= set(per.columns)
    none = per[per["policy"] == "none"]
    assert (none[list(KPIS)] == 0).all().all()
    # the machine's world advanced 4 windows; the caller's copy of the start did not
    assert env.day == world.day + 120
    assert list(r.comparison.index) and r.scored_periods == [2, 3]
    c = r.comparison
    summed = per[per["period"].isin([2, 3])].groupby("policy")["incremental_profit"].sum()
    np.testing.assert_allclose(c.loc[summed.index, "incremental_profit"], summed)


def test_baselines_spend_the_budget_and_the_oracle_the_machines_spend(run):
    m, env, r = run
    per = r.periods.set_index(["policy", "period"])
    budget = m.config.period_budget(N)
    for p in ("random", "rfm_rule", "ab_winner"):
        s = per.loc[p, "spend"]
        assert (s <= budget * (1 + 1e-9)).all(), p
    assert (per.loc["random", "spend"] > 0.9 * budget).all()
    ms = per.loc["machine", "spend"].to_numpy()
    os_ = per.loc["oracle", "spend"].to_numpy()
    assert np.all(os_ <= ms * (1 + 1e-3) + 1e-6)
    # the oracle beats every baseline in every period although it spends no more than the
    # machine; the machine's spend stays near its budget (it only knows its estimated costs)
    for p in ("random", "rfm_rule", "ab_winner", "machine"):
        assert (per.loc["oracle", "incremental_profit"] >= per.loc[p, "incremental_profit"]
                - 1e-6).all(), p  # fmt: skip


def test_the_machine_learns_and_reports_its_forecast(run):
    m, env, r = run
    h = r.history
    assert len(h) == 4
    # the first periods only explore (no forecast of a plan); later ones plan from the log
    assert np.isnan(h.loc[0, "forecast_profit"])
    assert h.loc[0, "users_planned"] == 0 and h.loc[0, "users_explored"] > 0
    assert np.isfinite(h.loc[3, "forecast_profit"])
    assert (h["log_rows"].diff().dropna() > 0).all()
    assert h["users_held_out"].eq(round(0.1 * N)).all()
    # the session policy served its visits within its own budget, paced over the run
    assert h["sessions"].eq(m.config.sessions_per_period).all()
    assert h["session_spend"].sum() <= m.config.session_budget_share * m.config.period_budget(
        N
    ) * 4 * (1 + 1e-9)
    assert np.isfinite(h["session_incremental_value"]).all()
    # each part's truth sums to the period's truth up to interactions (parts are disjoint users)
    parts = h[["true_campaign", "true_explore", "true_touchpoint"]].sum(axis=1)
    np.testing.assert_allclose(parts, h["true_profit"], rtol=1e-9, atol=1e-6)


def test_optout_scale_corrects_the_rates_by_what_plans_showed(run):
    m, _, _ = run
    # the run recorded, per planned period, the plan's opt-outs against its shadows
    assert len(m.optout_feedback_) >= 1
    assert all(np.isfinite(list(f.values())).all() for f in m.optout_feedback_)
    probe = gm.Machine()
    probe.optout_feedback_ = []
    assert probe._optout_scale() == 1.0  # nothing observed: no correction
    # precisely measured: the ratio of realised to expected opt-outs
    probe.optout_feedback_ = [{"realised": 300.0, "expected": 100.0, "var": 1e-6}]
    assert probe._optout_scale() == pytest.approx(3.0, rel=1e-6)
    # the periods are pooled, not averaged: 300 + 100 realised for 100 + 100 expected
    probe.optout_feedback_.append({"realised": 100.0, "expected": 100.0, "var": 1e-6})
    assert probe._optout_scale() == pytest.approx(2.0, rel=1e-6)
    # as noisy as a few opt-outs: pulled most of the way back to 1
    probe.optout_feedback_ = [{"realised": 3.0, "expected": 1.0, "var": 100.0}]
    assert 1.0 < probe._optout_scale() < 1.1
    # a period whose plan the rates expected no opt-outs from still counts: 10 unexpected
    # opt-outs pooled with 100 realised for 100 expected; alone, it cannot scale anything
    probe.optout_feedback_ = [{"realised": 10.0, "expected": 0.0, "var": 1e-6},
                              {"realised": 100.0, "expected": 100.0, "var": 1e-6}]  # fmt: skip
    assert probe._optout_scale() == pytest.approx(1.1, rel=1e-6)
    probe.optout_feedback_ = [{"realised": 10.0, "expected": 0.0, "var": 1e-6}]
    assert probe._optout_scale() == 1.0
    # fewer than none (shadows opted out more) never makes a rate negative
    probe.optout_feedback_ = [{"realised": -50.0, "expected": 10.0, "var": 1e-6}]
    assert probe._optout_scale() == 0.0


def test_same_seed_same_run(world):
    a = gm.Machine(config=MachineConfig(seed=2)).run(world.copy(), periods=2, progress=False)
    b = gm.Machine(config=MachineConfig(seed=2)).run(world.copy(), periods=2, progress=False)
    pd.testing.assert_frame_equal(a.periods, b.periods)
    pd.testing.assert_frame_equal(a.history, b.history)


def test_oracle_is_at_least_any_one_action_plan_at_its_spend(world):
    env = world.copy()
    t = RandomPolicy(seed=3).treatments(env, 0, env.day, 30, 300.0)
    k = kpis_of(env, env.expected_outcome(t, days=30), env.day)
    o = Oracle(seed=0).treatments(env, 0, env.day, 30, k["spend"])
    ko = kpis_of(env, env.expected_outcome(o, days=30), env.day)
    assert ko["spend"] <= k["spend"] * (1 + 1e-3)
    assert ko["incremental_profit"] >= k["incremental_profit"]
    assert o["user_id"].is_unique


def test_rfm_rule_targets_the_best_tiers_with_the_largest_coupon(world):
    env = world.copy()
    t = RfmRule().treatments(env, 0, env.day, 30, 500.0)
    acts = env.actions.set_index("action_id")
    b = acts.loc[t["action_id"], "benefit"].astype(str).to_numpy()
    coupons = t[b != "none"]
    top = acts[acts["incentive_cost"] > 0]["incentive_cost"].idxmax()
    assert set(acts.loc[coupons["action_id"], "benefit"].astype(str)) == {
        str(acts.loc[top, "benefit"])
    }
    score = RfmRule.scores(env, env.day)
    assert (score[coupons["user_id"].to_numpy()] > 0).all()  # no prospects
    # nobody left out ranks above someone targeted (ties aside), within reachable users
    assert score[coupons["user_id"]].min() >= np.sort(score)[-len(coupons) * 3]
    burst = t[b == "none"]
    assert (acts.loc[burst["action_id"], "channel"].astype(str) == "ads").all()
    assert burst.groupby("user_id").size().eq(RfmRule.BURST).all()
    assert (score[burst["user_id"].unique()] >= 13).all()


def test_ab_winner_tests_then_rolls_out_one_action(world):
    env = world.copy()
    arms = np.array([0, 25, 50, 75])
    pol = AbWinner(arms, seed=0)
    t = pol.treatments(env, 0, env.day, 30, 400.0)
    assert set(t["action_id"]) <= set(arms) and len(set(t["action_id"])) > 1
    out = env.apply(t, days=30, progress=False)
    pol.observe(env, t, out)
    assert pol.winner_ in arms and set(pol.arms_.index) <= set(arms)
    t2 = pol.treatments(env, 1, env.day, 30, 400.0)
    assert set(t2["action_id"]) == {pol.winner_}


def test_what_if_spends_nothing(world):
    env = world.copy()
    day = env.day
    t = RandomPolicy(seed=1).treatments(env, 0, env.day, 30, 200.0)
    k = gm.Machine().what_if(env, t)
    assert env.day == day and len(env.transactions()) == len(env.population.transactions)
    assert k == kpis_of(env, env.expected_outcome(t, days=30), day)
    assert gm.Machine().what_if(env, t.iloc[:0]) == {k2: 0.0 for k2 in KPIS}


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"budget": -1.0}, "budget"),
        ({"explore_share": 1.5}, "explore_share"),
        ({"holdout_share": 1.0}, "holdout_share"),
        ({"explore_periods": 0}, "explore_periods"),
        ({"touchpoint_channels": ()}, "touchpoint_channels"),
        ({"insight_clusters": (0, 5)}, "insight_clusters"),
        ({"seed": -3}, "seed"),
    ],
)
def test_config_errors_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        MachineConfig(**kw)


def test_argument_errors(world):
    with pytest.raises(TypeError, match="plan"):
        gm.Machine(plan="plan.yaml")
    with pytest.raises(TypeError, match="config"):
        gm.Machine(config={"budget": 1})
    with pytest.raises(ValueError, match="periods"):
        gm.Machine().run(world.copy(), periods=0)
    with pytest.raises(ValueError, match="baselines"):
        gm.Machine().run(world.copy(), periods=1, baselines=["guru"])


def test_the_log_carries_the_orders_so_gmv_is_scored_from_them(run):
    m, _, _ = run
    # every period's randomised rows keep their realised orders, next to the GMV, so the
    # planner takes its defaults' route: GMV = uplift in orders (centred) x value of an order
    log = pd.concat([lg for lg, _, _ in m.logs_], ignore_index=True)
    assert {"orders", "gmv"} <= set(log.columns)
    assert (log["orders"] >= 0).all() and ((log["orders"] > 0) == (log["gmv"] > 0)).all()
    planner = gm.planning.Planner(m.plan_)
    assert planner._by_orders(list(log.columns)) and "orders" in planner.center


def test_optout_rates_are_shrunk_toward_their_channels_rate():
    """A task whose few exploration rows saw no opt-out is not taken as opt-out free: its rate
    is pulled toward its channel's pooled rate, while a task measured on many rows keeps close
    to its own; channels are pooled apart; no rate is negative."""
    rng = np.random.default_rng(0)
    probe = gm.Machine()
    probe.tasks_ = pd.DataFrame({"channel": ["push", "push", "push", "sms", "sms"]})
    rows = []
    for task, n, p in ((0, 400, 0.02), (1, 400, 0.02), (2, 400, 0.0), (3, 100_000, 0.05),
                       (4, 300, 0.0)):  # fmt: skip
        k = int(round(n * p))
        rows.append(pd.DataFrame({"action_id": task, "delivered": True,
                                  "opted_out": np.r_[np.ones(k), np.zeros(n - k)]}))  # fmt: skip
    rows.append(pd.DataFrame({"action_id": -1, "delivered": False,
                              "opted_out": (rng.random(20_000) < 0.001).astype(float)}))  # fmt: skip
    probe.logs_ = [(pd.concat(rows, ignore_index=True), None, None)]
    r = probe._optout_rates()
    ctrl = probe.logs_[0][0].query("action_id < 0")["opted_out"].mean()
    assert np.all(r >= 0.0)
    # task 2 saw no opt-out in 400 rows: shrunk toward push's 1.3 %, not 0
    assert 0.0 < r[2] < 0.02 - ctrl
    assert r[0] <= 0.02 - ctrl + 1e-12 and r[0] > r[2]
    # sms: task 3 measured on 100k rows keeps its 5 %; task 4 (300 rows, none) is pulled up a
    # little (two tasks this far apart say the channel's tasks differ: little pooling)
    assert r[3] == pytest.approx(0.05 - ctrl, abs=2e-3)
    assert 0.0 < r[4] < r[3]
