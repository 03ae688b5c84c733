"""Touchpoint on the simulated world: truth curves and scores agree with expected_outcome, the
baselines spend what they say, and the observe -> re-plan loop learns from what users did."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import growthmachine as gm

tp = gm.touchpoint


@pytest.fixture(scope="module")
def world():
    pop = gm.sim.Population.generate(6000, seed=3)
    return gm.sim.Environment(pop, seed=3)


def planner(env, **kw):
    return tp.FrequencyPlanner.for_world(
        env, ("ads", "sms", "email"), levels=(2, 4, 6, 10, 14, 28, 56), **kw
    )


def test_true_curves_are_expected_outcomes_of_the_layout(world):
    env = world
    pl = planner(env)
    users = np.arange(0, 6000, 7)
    reach = tp.world_reachable(env, users, pl.channels)
    inc, opt = tp.true_curves(env, pl, users, reachable=reach)
    # Unreachable pairs are 0; reachable ones are exact expectations of the same layout.
    assert (inc[~reach[:, 1], 1] == 0).all()
    j = list(pl.levels).index(10)
    # (The layout, hence the offsets, is that of all users reachable on the channel.)
    sel = np.flatnonzero(reach[:, 0])
    p = tp.fixed_plan(pl, users[sel], np.zeros(len(sel), int), np.full(len(sel), 10),
                      start_day=env.day)  # fmt: skip
    e = env.expected_outcome(p.schedule(), start_day=env.day, days=pl.horizon_days)
    np.testing.assert_allclose(inc[sel, 0, j], e["incremental_conversion"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(opt[sel, 0, j], e["p_optout"].to_numpy(), rtol=1e-12)
    # The curves rise with the level on average and opt-outs rise with every level.
    r = reach[:, 0]
    assert np.all(np.diff(opt[r, 0].mean(0)) > 0)
    assert inc[r, 0, -1].mean() > inc[r, 0, 0].mean()
    # The world is untouched.
    assert env.day == 365


def test_baselines_and_score(world):
    env = world
    pl = planner(env)
    users = np.arange(6000)
    reach = tp.world_reachable(env, users, pl.channels)
    uni = tp.uniform_plan(pl, users, reachable=reach, start_day=env.day)
    assert (uni.assignment.loc[reach[:, 0], "exposures"] == 6).all()
    s = tp.score(env, uni)
    assert s["exposures"] == 6 * reach[:, 0].sum()
    assert s["cost"] == pytest.approx(0.01 * s["exposures"])
    budget = s["cost"]
    mx = tp.max_caps_plan(pl, users, budget, reachable=reach, start_day=env.day)
    a = mx.assignment
    assert set(a.loc[a.exposures > 0, "exposures"]) == {56}
    assert mx.cost["total"] <= budget + 1e-9


def test_planner_on_true_curves_beats_the_rules_at_equal_spend(world):
    """With the truth, the planner's plan dominates both rules in expected value and, at the
    uniform rule's opt-outs, in conversions (the property the fitted planner is scored on)."""
    env = world
    pl = planner(env, optout_cost=1.0)
    users = np.arange(6000)
    reach = tp.world_reachable(env, users, pl.channels)
    inc, opt = tp.true_curves(env, pl, users, reachable=reach)
    uni = tp.score(env, tp.uniform_plan(pl, users, reachable=reach, start_day=env.day))
    budget = uni["cost"]
    mx = tp.score(env, tp.max_caps_plan(pl, users, budget, reachable=reach, start_day=env.day))
    p = pl.plan(users, budget, value=10.0, segment=np.arange(6000), reachable=reach,
                curves=(inc, opt), start_day=env.day, max_optouts=uni["optouts"])  # fmt: skip
    s = tp.score(env, p)
    assert s["cost"] <= budget + 1e-6
    assert s["optouts"] <= uni["optouts"] * (1 + 1e-6)
    assert s["incremental_conversions"] >= 1.2 * uni["incremental_conversions"]
    assert s["incremental_conversions"] >= 1.2 * mx["incremental_conversions"]
    # The planner's own forecast under the truth is what the world says.
    forecast = p.assignment["value"].sum()
    value = 10 * s["incremental_conversions"] - s["cost"] - 1.0 * s["optouts"]
    assert forecast == pytest.approx(value, rel=0.02)
    assert p.forecast["conversions"] == pytest.approx(s["incremental_conversions"], rel=0.02)
    assert p.forecast["optouts"] == pytest.approx(s["optouts"], rel=0.02)


def test_observe_replan_loop_learns(world):
    env = world.copy()
    model = tp.ResponseModel()
    pl = planner(env, model=model, explore_share=0.2, seed=1)
    users = np.arange(6000)
    seg = tp.world_segments(env, users)
    reach = tp.world_reachable(env, users, pl.channels)
    p0 = pl.plan(users, 200.0, value=10.0, segment=seg, reachable=reach, start_day=env.day)
    assert p0.assignment["explore"].all()  # flat priors: everyone explores
    assert p0.status == "not_optimised"
    out = env.apply(p0.schedule(), start_day=env.day, days=pl.horizon_days)
    pl.observe(out)
    n0 = model.n_obs_
    assert n0 == int(p0.assignment["channel"].notna().sum())
    seg = tp.world_segments(env, users)
    reach = tp.world_reachable(env, users, pl.channels)
    p1 = pl.plan(users, 200.0, value=10.0, segment=seg, reachable=reach, start_day=env.day)
    assert p1.status in ("optimal", "feasible")
    share = p1.assignment["explore"].mean()
    assert 0.15 < share < 0.25
    out = env.apply(p1.schedule(), start_day=env.day, days=pl.horizon_days)
    pl.observe(out)
    # Only the randomised users update the curves.
    ex = p1.assignment[p1.assignment["explore"] & p1.assignment["channel"].notna()]
    assert model.n_obs_ == n0 + len(ex)
    # Outcomes for users the plan does not know are rejected, missing planned users too.
    with pytest.raises(ValueError, match="outcomes"):
        pl.observe(pd.DataFrame({"user_id": [0], "converted": [1], "opted_out": [0]}))


def test_world_helpers_reject_bad_input(world):
    pl = planner(world)
    with pytest.raises(ValueError, match="channels"):
        tp.world_reachable(world, [0, 1], ["in_app"])
    with pytest.raises(ValueError, match="users"):
        tp.world_reachable(world, [-1], pl.channels)
    with pytest.raises(ValueError, match="channel"):
        tp.uniform_plan(pl, [0, 1], channel="fax")
    with pytest.raises(ValueError, match="channels"):
        tp.FrequencyPlanner.for_world(world, ("in_app",))


def test_prior_fatigue_loop_tired_users_get_the_opt_out_they_have(world):
    """With each user's prior fatigue, the planner logs it with the outcomes, and a model fitted
    on fresh users only predicts the opt-outs of the users the last window tired close to the
    world's truth (without it, every tired user gets the fresh users' rate)."""
    env = world.copy()
    pl = planner(env, model=tp.ResponseModel(), explore_share=0.2, seed=2)
    users = np.arange(6000)
    fat0 = tp.world_fatigue(env, users)
    assert (fat0 == 0).all()  # nobody touched yet
    reach = tp.world_reachable(env, users, pl.channels)
    p0 = pl.plan(users, 300.0, value=10.0, segment=tp.world_segments(env, users),
                 reachable=reach, start_day=env.day, fatigue=fat0)  # fmt: skip
    assert "fatigue" in p0.assignment
    pl.observe(env.apply(p0.schedule(), start_day=env.day, days=pl.horizon_days))
    fat = tp.world_fatigue(env, users)
    tired = fat > 5
    assert tired.sum() > 100
    # the decayed count: halved every 7 days since the last touch
    s = env.state()
    last = s["last_touch_day"].to_numpy()
    k = int(np.flatnonzero(tired)[0])
    assert fat[k] == pytest.approx(s["fatigue"][k] * 0.5 ** ((env.day - last[k]) / 7.0), rel=1e-6)
    reach = tp.world_reachable(env, users, pl.channels)
    seg = tp.world_segments(env, users)
    inc, opt = tp.true_curves(env, pl, users, reachable=reach)
    j = list(pl.levels).index(10)
    sel = tired & reach[:, 0]
    _, m_opt, g = pl._model_curves(seg, fat)
    _, b_opt, gb = pl._model_curves(seg)
    truth = opt[sel, 0, j].mean()
    with_f, blind = m_opt[g[sel], 0, j].mean(), b_opt[gb[sel], 0, j].mean()
    assert abs(with_f - truth) < 0.25 * truth
    assert blind < 0.7 * truth
    # the plan takes it; explicit curves refuse it
    p1 = pl.plan(users, 300.0, value=10.0, segment=seg, reachable=reach, start_day=env.day,
                 fatigue=fat)  # fmt: skip
    a = p1.assignment[~p1.assignment["explore"]]
    assert (
        a.loc[a["fatigue"] > 5, "exposures"].mean() < a.loc[a["fatigue"] == 0, "exposures"].mean()
    )
    with pytest.raises(ValueError, match="fatigue"):
        pl.plan(users, 300.0, segment=np.zeros(6000, int), curves=(inc[:1], opt[:1]), fatigue=fat)
    with pytest.raises(ValueError, match="fatigue"):
        pl.plan(users, 300.0, segment=seg, fatigue=fat[:10])
    with pytest.raises(ValueError, match="halflife_days"):
        tp.world_fatigue(env, users, halflife_days=0)


def test_covariates_loop_the_plan_logs_them_and_scales_each_users_height(world):
    """With per-user covariates, the first plan (everyone randomised) logs them, observe fits
    the height model on them, and the next plan scales every user's curve by its multiplier:
    the forecast is the multipliers times the segment curves (at 6,000 users the features
    say little and the multipliers stay near 1; test_touchpoint_planner checks the choices)."""
    env = world.copy()
    pl = planner(env, model=tp.ResponseModel(), explore_share=0.2, seed=4)
    users = np.arange(6000)
    cov = tp.world_covariates(env, users)
    assert len(cov) == 6000 and np.isfinite(cov.to_numpy()).all()
    assert {"log_orders", "customer", "has_app"} <= set(cov.columns)
    reach = tp.world_reachable(env, users, pl.channels)
    p0 = pl.plan(users, 300.0, value=10.0, segment=tp.world_segments(env, users),
                 reachable=reach, start_day=env.day, covariates=cov)  # fmt: skip
    assert "height" in p0.assignment and (p0.assignment["height"] == 1).all()  # no model yet
    pl.observe(env.apply(p0.schedule(), start_day=env.day, days=pl.horizon_days))
    m = pl.model
    assert m.covariates_ == tuple(cov.columns)
    assert m.n_obs_ == int(p0.assignment["channel"].notna().sum())
    cov = tp.world_covariates(env, users)
    seg = tp.world_segments(env, users)
    reach = tp.world_reachable(env, users, pl.channels)
    p1 = pl.plan(users, 300.0, value=10.0, segment=seg, reachable=reach, start_day=env.day,
                 covariates=cov, explore=False)  # fmt: skip
    h = p1.assignment["height"].to_numpy()
    assert np.allclose(h, m.height(cov))
    inc, _, group = pl._model_curves(seg)
    chan = p1.assignment["channel"]
    ch = np.where(chan.isna(), 255, chan.cat.codes).astype(np.uint8)
    lv = p1.assignment["exposures"].to_numpy().astype(np.uint32)
    conv = tp._planner._per_user(inc, group, ch, lv, pl.levels)
    assert p1.forecast["conversions"] == pytest.approx(float((h * conv).sum()), rel=1e-9)
    # bad covariates: wrong rows, NaN, names the log takes, with explicit curves
    with pytest.raises(ValueError, match="covariates"):
        pl.plan(users, 300.0, segment=seg, covariates=cov.iloc[:10])
    with pytest.raises(ValueError, match="covariates"):
        pl.plan(users, 300.0, segment=seg, covariates=cov.assign(customer=np.nan))
    with pytest.raises(ValueError, match="covariates"):
        pl.plan(users, 300.0, segment=seg, covariates=cov.drop(columns="customer"))
    with pytest.raises(ValueError, match="covariates"):
        pl.plan(users, 300.0, segment=np.zeros(6000, int), curves=(inc[:1], inc[:1]),
                covariates=cov)  # fmt: skip
    pl2 = planner(env, model=tp.ResponseModel(), seed=4)
    with pytest.raises(ValueError, match="covariates"):
        pl2.plan(users, 300.0, segment=seg, covariates=cov.rename(columns={"customer": "channel"}))


@pytest.fixture(scope="module")
def insight(world):
    return gm.insight.UserInsight(seed=0, progress=False).fit(
        world.transactions(), as_of=world.day, users=world.population.users
    )


def test_user_covariates_are_the_insights_planning_features(world, insight):
    """The covariates from the insight: planning_features' columns and rows (in the order of
    user_ids), long-tailed counts and amounts as log(1 + x), the same columns whatever users
    are selected; a loop logs them and fits the heights on them."""
    X, names, ids = gm.planning.planning_features(insight, world.population.users)
    full = tp.user_covariates(insight, world.population.users)
    assert list(full.columns) == names and len(full) == len(ids)
    assert np.isfinite(full.to_numpy()).all()
    logged = [n for n in names if not np.array_equal(full[n].to_numpy(), X[:, names.index(n)])]
    assert "total_spend" in logged and "p_alive" not in logged
    assert "user.has_app" not in logged and "stage=prospect" not in logged
    j = names.index("total_spend")
    assert np.allclose(full["total_spend"], np.log1p(X[:, j]))
    pick = np.array([17, 3, 5000, 3])
    sub = tp.user_covariates(insight, world.population.users, user_ids=ids[pick])
    assert list(sub.columns) == names
    assert np.array_equal(sub.to_numpy(), full.to_numpy()[pick])
    assert list(sub.index) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="user_ids"):
        tp.user_covariates(insight, world.population.users, user_ids=[0, 10**9])
    with pytest.raises(TypeError, match="insight"):
        tp.user_covariates(world, world.population.users)
    # the loop: the first plan logs them, observe fits the heights on them
    env = world.copy()
    pl = planner(env, model=tp.ResponseModel(), explore_share=0.2, seed=4)
    users = np.arange(6000)
    reach = tp.world_reachable(env, users, pl.channels)
    p0 = pl.plan(users, 300.0, value=10.0, segment=tp.world_segments(env, users),
                 reachable=reach, start_day=env.day, covariates=full)  # fmt: skip
    pl.observe(env.apply(p0.schedule(), start_day=env.day, days=pl.horizon_days))
    assert pl.model.covariates_ == tuple(names)
    h = pl.model.height(full)
    assert h.shape == (6000,) and np.isfinite(h).all() and (h >= 0).all()
