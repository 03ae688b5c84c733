"""Planner: plan + randomised log -> cross-fitted, calibrated values -> allocation -> tasks."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

import growthmachine as gm
from growthmachine.planning import Goal, LinearCalibration, Plan, Planner, ScaledCalibration
from growthmachine.planning._calibrate import fit_calibration
from growthmachine.planning.uplift import TLearner


@pytest.fixture(scope="module")
def world():
    pop = gm.sim.Population.generate(12_000, days=365, seed=3)
    env = gm.sim.Environment(pop, seed=3)
    ui = gm.insight.UserInsight(
        n_clusters=16, n_prospect_clusters=16, min_cell_size=15, max_iter=30, progress=False
    ).fit(pop.transactions, as_of=pop.days, users=pop.users)
    full = Plan.default(env)
    plan = Plan(
        goals=full.goals,
        audiences=full.audiences,
        benefits=[b for b in full.benefits if b.name in ("coupon_10", "free_shipping")],
        channels=[c for c in full.channels if c.name in ("email", "in_app", "ads")],
        contents=full.contents[:1],
        budget=600.0,
    )
    log = gm.planning.run_experiment(env, plan, share=0.6, seed=3, progress=False)
    return pop, env, ui, plan, log


def _planner(plan, **kw):
    return Planner(plan, TLearner(Ridge(alpha=1.0), n_folds=1), seed=0, **kw)


def test_run_experiment_recodes_to_task_ids(world):
    pop, env, ui, plan, log = world
    tasks = plan.tasks()
    a = log["action_id"].to_numpy()
    assert set(np.unique(a)) == {-1, *tasks["task_id"]}
    assert np.allclose(log.loc[a < 0, "propensity"], 0.4)
    assert np.allclose(log.loc[a >= 0, "propensity"], 0.6 / len(tasks))


def test_fit_allocate_end_to_end(world):
    pop, env, ui, plan, log = world
    # the raw isotonic map (no shrinkage): this small log's noise gives a plan to check
    pl = _planner(plan, shrink=False).fit(log, ui, pop.users, opted_out=env.opted_out())
    assert pl.estimates_["gmv"].shape == (pop.n_users, len(plan.tasks()))
    assert pl.log_summary_["treated_not_delivered_left_out"] > 0
    tp = pl.allocate(start_day=env.day)
    t = tp.tasks
    assert {"user_id", "task_id", "benefit", "channel", "content", "day"} <= set(t.columns)
    assert t["user_id"].is_unique
    # every planned pair is eligible now, and the plan stays within the budget it was given
    acts = env.actions.set_index(["benefit", "channel", "content"])["action_id"]
    aid = acts.loc[list(zip(t["benefit"], t["channel"], t["content"], strict=True))].to_numpy()
    assert env.eligible(t["user_id"].to_numpy(), aid).all()
    assert tp.forecast["cost"] <= plan.budget * (1 + 1e-6)
    assert tp.forecast["profit"] == pytest.approx(t["expected_profit"].sum())
    assert tp.summary["users"].sum() == len(t)
    assert tp.solution.gap < 1e-2
    out = env.apply(t[["user_id", "benefit", "channel", "content", "day"]], progress=False)
    assert len(out) == pop.n_users


@pytest.mark.parametrize("shuffle", [0, 1, 2])
def test_a_log_without_effects_forecasts_no_more_than_its_noise(world, shuffle):
    # the treatment labels shuffled among the users: no task has any effect on the outcomes.
    # The shrunk maps may still hold some noise (12k users over 6 tasks), but the plan's
    # forecast must stay within two of its own standard errors of 0: the report says how much
    # of the forecast the log can vouch for
    pop, env, ui, plan, log = world
    shuffled = log.copy()
    rng = np.random.default_rng(shuffle)
    shuffled["action_id"] = rng.permutation(log["action_id"].to_numpy())
    shuffled["delivered"] = True
    pl = _planner(plan).fit(shuffled, ui, pop.users, opted_out=env.opted_out())
    tp = pl.allocate(start_day=env.day)
    assert tp.forecast["profit"] <= 2.0 * tp.forecast["profit_se"] + 1e-9
    assert {"user_id", "task_id", "benefit", "channel", "day", "expected_profit"} <= set(
        tp.tasks.columns
    )


def test_a_plan_with_no_positive_value_is_empty(world):
    pop, env, ui, plan, log = world
    pl = _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out())
    tp = pl.allocate(start_day=env.day, profit_offset=np.full(len(plan.tasks()), 1e6))
    assert len(tp.tasks) == 0 and tp.forecast["profit"] == 0.0
    assert {"user_id", "task_id", "benefit", "channel", "day", "expected_profit"} <= set(
        tp.tasks.columns
    )


def test_stacked_rows_with_their_own_features_match_the_one_period_fit(world):
    # features= given as the users' current rows is the one-row-per-user fit, exactly
    pop, env, ui, plan, log = world
    a = _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out())
    X, _, ids = gm.planning.planning_features(ui, pop.users)
    rows = pd.Index(ids).get_indexer(log["user_id"].to_numpy())
    b = _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out(), features=X[rows])
    for k in a.estimates_:
        np.testing.assert_array_equal(a.estimates_[k], b.estimates_[k])
    np.testing.assert_allclose(b.values()["profit"], a.values()["profit"], rtol=1e-6, atol=1e-9)
    # a user may then appear once per period; without features= that is an error
    twice = pd.concat([log, log], ignore_index=True)
    with pytest.raises(ValueError, match="appears twice"):
        _planner(plan).fit(twice, ui, pop.users, opted_out=env.opted_out())
    c = _planner(plan).fit(
        twice, ui, pop.users, opted_out=env.opted_out(), features=np.vstack([X[rows], X[rows]])
    )
    assert c.log_summary_["rows"] == 2 * len(log)
    with pytest.raises(ValueError, match="features"):
        _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out(), features=X[rows][:-1])


def test_shrinkage_is_a_posterior_mean():
    from growthmachine.planning._calibrate import shrink_to_mean

    rng = np.random.default_rng(0)
    est = rng.normal(0, 1, 8)
    se = rng.uniform(0.1, 2.0, 8)
    post, var = shrink_to_mean(est, se)
    mu = (est / se**2).sum() / (1 / se**2).sum()
    # each posterior lies between the pooled mean and its own estimate, closer for noisier ones
    assert np.all((post - mu) * (est - mu) >= -1e-12)
    assert np.all(np.abs(post - mu) <= np.abs(est - mu) + 1e-12)
    assert np.all(var <= se**2 + 1e-12)
    # precise estimates are kept; pure noise around 0 collapses to 0 with mean=0
    p2, _ = shrink_to_mean(np.array([1.0, -1.0, 3.0]), np.full(3, 1e-6))
    np.testing.assert_allclose(p2, [1.0, -1.0, 3.0], atol=1e-6)
    p3, _ = shrink_to_mean(np.array([0.1, -0.2, 0.15]), np.ones(3), mean=0.0)
    np.testing.assert_array_equal(p3, 0.0)


def test_calibration_tables_are_monotone_and_honest(world):
    pop, env, ui, plan, log = world
    pl = _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out())
    for maps in pl.calibration_.values():
        for cal in maps:
            assert np.all(np.diff(cal.knots_y) >= -1e-12)
            assert np.all(np.diff(cal.knots_x) > 0)


def test_same_seed_same_plan_and_pickle(world):
    pop, env, ui, plan, log = world
    a = _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out())
    b = _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out())
    pd.testing.assert_frame_equal(a.allocate().tasks, b.allocate().tasks)
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.values()["profit"], a.values()["profit"])


def test_goal_floor_becomes_a_lower_bound_and_infeasible_names_it(world):
    pop, env, ui, plan, log = world
    p2 = Plan.from_dict({**plan.to_dict(), "goals": [{**plan.goals[0].to_dict(), "floor": 1e9}]})
    pl = _planner(p2).fit(log, ui, pop.users, opted_out=env.opted_out())
    with pytest.raises(gm.InfeasibleError, match="goal:profit"):
        pl.allocate()


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda lg: lg.assign(action_id=np.maximum(lg["action_id"], 0)), "no control"),
        (lambda lg: lg.assign(action_id=lg["action_id"].where(lg["action_id"] != 1, -1)), "no delivered rows"),
        (lambda lg: lg.assign(gmv=lg["gmv"].where(lg.index != 5, np.nan)), "gmv"),
        (lambda lg: lg.assign(action_id=lg["action_id"].where(lg.index != 7, 99)), "action_id"),
        (lambda lg: lg.assign(user_id=lg["user_id"].where(lg.index != 3, 10**9)), "user_id"),
        (lambda lg: lg.drop(columns=["incentive_cost"]), "incentive_cost"),
    ],
)  # fmt: skip
def test_bad_logs_name_the_field(world, mutate, match):
    pop, env, ui, plan, log = world
    with pytest.raises(ValueError, match=match):
        _planner(plan).fit(mutate(log.copy()), ui, pop.users, opted_out=env.opted_out())


def test_planner_argument_checks(world):
    pop, env, ui, plan, log = world
    with pytest.raises(TypeError, match="plan"):
        Planner("plan")
    with pytest.raises(TypeError, match="model"):
        Planner(plan, model=3)
    with pytest.raises(ValueError, match="calibrate_by"):
        Planner(plan, calibrate_by="colour")
    with pytest.raises(ValueError, match="not fitted"):
        Planner(plan).allocate()


def test_fit_calibration_recovers_bin_effects():
    """Randomised rows with a known effect per score: each bin's calibrated effect is within 4
    standard errors of the true mean effect of its pairs, and the map is non-decreasing."""
    rng = np.random.default_rng(0)
    n = 200_000
    score = rng.normal(size=n)
    true = np.clip(score, 0, None) * 2.0  # effect grows with the score
    treated = rng.random(n) < 0.5
    y = rng.normal(size=n) * 3 + treated * true
    cal = fit_calibration(score[treated], y[treated], score[~treated], y[~treated], bins=8)
    edges = np.quantile(score, np.linspace(0, 1, 9)[1:-1])
    b = np.searchsorted(edges, score, side="right")
    truth = np.array([true[b == k].mean() for k in range(8)])
    assert np.all(np.abs(cal.raw - truth) < 4 * cal.se)
    assert np.all(np.diff(cal.knots_y) >= 0)
    # a map learned on noise only is flat near zero
    cal0 = fit_calibration(score[treated], y[treated] - true[treated], score[~treated], y[~treated])
    assert np.abs(cal0.knots_y).max() < 4 * cal0.se.max()


def test_goal_metrics_conversion_needs_converted(world):
    pop, env, ui, plan, log = world
    p2 = Plan.from_dict(
        {
            **plan.to_dict(),
            "goals": [Goal("buyers", kind="acquisition", metric="conversion").to_dict()],
        }
    )
    pl = _planner(p2).fit(log, ui, pop.users, opted_out=env.opted_out())
    assert "conversion" in pl.values()
    with pytest.raises(ValueError, match="converted"):
        _planner(p2).fit(log.drop(columns=["converted"]), ui, pop.users)


def test_goal_kinds_count_their_users_and_floors_count_only_them(world):
    pop, env, ui, plan, log = world
    goals = [
        Goal("profit", kind="arpu", metric="profit"),
        Goal("buyers", kind="acquisition", metric="conversion", weight=0.0, floor=1.0),
        Goal("winback", kind="retention", metric="conversion", weight=0.0),
    ]
    p2 = Plan.from_dict({**plan.to_dict(), "goals": [g.to_dict() for g in goals]})
    pl = _planner(p2, shrink=False).fit(log, ui, pop.users, opted_out=env.opted_out())
    stage = ui.users_.set_index("user_id").loc[pl.user_ids_, "stage"].astype(str).to_numpy()
    assert "buyers" in pl.goal_masks_ and "profit" not in pl.goal_masks_  # arpu: everyone
    np.testing.assert_array_equal(pl.goal_masks_["buyers"], stage == "prospect")
    np.testing.assert_array_equal(pl.goal_masks_["winback"], np.isin(stage, ["at-risk", "dormant"]))
    # the floor's usage is the conversions of prospects only
    tp = pl.allocate()
    conv = pl.values()["conversion"]
    rows = pd.Index(pl.user_ids_).get_indexer(tp.tasks["user_id"].to_numpy())
    j = tp.tasks["task_id"].to_numpy()
    prospects = np.maximum(conv[rows, j], 0.0) * (stage[rows] == "prospect")
    used = tp.solution.usage.set_index("resource").loc["goal:buyers", "used"]
    assert used == pytest.approx(prospects.sum(), rel=1e-6) and used >= 1.0


def test_outside_option_and_task_resources_share_one_allocation(world):
    pop, env, ui, plan, log = world
    pl = _planner(plan, shrink=False).fit(log, ui, pop.users, opted_out=env.opted_out())
    base = pl.allocate()
    assert len(base.tasks) > 0
    T = pl.composition_.n_tasks
    users = base.tasks["user_id"].to_numpy()[:50]
    # an outside option worth far more than any task wins those users, within its own budget
    extra = pd.DataFrame({"user_id": users, "value": 1e3, "cost": 1.0})
    tp = pl.allocate(extra=extra, extra_budget=30.0, extra_name="touchpoint")
    assert len(tp.extra) == 30 and set(tp.extra["user_id"]) <= set(users)
    assert not set(tp.extra["user_id"]) & set(tp.tasks["user_id"])
    assert "budget:touchpoint" in tp.solution.usage["resource"].to_numpy()
    # a further resource used by one task at bound 0 keeps that task out of the plan
    used = int(base.tasks["task_id"].value_counts().index[0])
    per_task = np.zeros(T)
    per_task[used] = 1.0
    tr = pl.allocate(task_resources={"optouts": (per_task, 0.0)})
    assert used not in set(tr.tasks["task_id"]) and len(tr.tasks) > 0
    # scaling a task's profit by 0 drops it; by 1 changes nothing
    scale = np.ones(T)
    pd.testing.assert_frame_equal(pl.allocate(profit_scale=scale).tasks, base.tasks)
    scale[used] = 0.0
    assert used not in set(pl.allocate(profit_scale=scale).tasks["task_id"])
    # pair_profit is values()["profit"] at the pairs
    rows = np.arange(0, len(pl.user_ids_), 97)
    tj = rows % T
    np.testing.assert_allclose(
        pl.pair_profit(pl.user_ids_[rows], tj), pl.values()["profit"][rows, tj], rtol=1e-12
    )
    with pytest.raises(ValueError, match="task_ids"):
        pl.pair_profit(pl.user_ids_[:1], [T])
    with pytest.raises(ValueError, match="profit_scale"):
        pl.allocate(profit_scale=np.ones(T + 1))
    with pytest.raises(ValueError, match="extra"):
        pl.allocate(extra=extra.drop(columns=["cost"]))
    with pytest.raises(ValueError, match="task_resources"):
        pl.allocate(task_resources={"optouts": (np.ones(T - 1), 1.0)})


def test_design_experiment_draws_its_arms_with_the_stated_probabilities(world):
    pop, env, ui, plan, log = world
    pl = _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out())
    d = pl.design_experiment(10_000, control_share=0.3, seed=5)
    p = d.attrs["task_shares"]
    T = len(plan.tasks())
    assert list(p.index) == list(range(T)) and p.sum() == pytest.approx(1.0)
    assert (p >= 0.5 / T - 1e-12).all()  # the uniform half
    assert d["user_id"].is_unique and len(d) + d.attrs["not_eligible"] == 10_000
    # every treated user is eligible for its task; propensities are the arm's probability
    tr = d[d["task_id"] >= 0]
    rows = pd.Index(pl.user_ids_).get_indexer(tr["user_id"].to_numpy())
    assert pl.composition_.eligible[rows, tr["task_id"].to_numpy()].all()
    np.testing.assert_allclose(tr["propensity"], 0.7 * p.loc[tr["task_id"]].to_numpy())
    assert (d.loc[d["task_id"] < 0, "propensity"] == 0.3).all()
    # drawn shares follow the probabilities (before eligibility: controls are never lost)
    n_ctrl = (d["task_id"] < 0).sum()
    assert abs(n_ctrl / 10_000 - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 10_000)
    # same seed, same design
    pd.testing.assert_frame_equal(d, pl.design_experiment(10_000, control_share=0.3, seed=5))


def test_design_experiment_gives_more_rows_to_what_is_uncertain(world):
    pop, env, ui, plan, log = world
    pl = _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out())
    # a ridge T-learner with one fold has no standard errors: the design is uniform
    p0 = pl.design_experiment(5_000, uniform_share=0.2, seed=0).attrs["task_shares"]
    np.testing.assert_allclose(p0, 1.0 / len(p0))
    # make task 2 the one the models know least about, and task 4 known exactly
    for k in ("gmv", "cost"):
        pl.standard_errors_[k][:] = 0.1
        pl.standard_errors_[k][:, 2] = 5.0
        pl.standard_errors_[k][:, 4] = 0.0
    p = pl.design_experiment(5_000, uniform_share=0.2, seed=0).attrs["task_shares"]
    assert p.idxmax() == 2 and p[2] > 0.5
    assert p[4] == pytest.approx(0.2 / len(p))  # only its uniform part
    # a subset of tasks and users
    d = pl.design_experiment(100, tasks=[1, 3], users=pl.user_ids_[:500], seed=0)
    assert set(d["task_id"]) <= {-1, 1, 3} and set(d["user_id"]) <= set(pl.user_ids_[:500])


def test_a_designed_experiment_is_a_log_the_planner_fits(world):
    pop, env, ui, plan, log = world
    pl = _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out())
    d = pl.design_experiment(pop.n_users, seed=1)
    w = env.copy(seed=1)
    tasks = plan.tasks().set_index("task_id")
    tr = d[d["task_id"] >= 0]
    sent = pd.DataFrame(
        {
            "user_id": tr["user_id"].to_numpy(),
            "benefit": tasks.loc[tr["task_id"], "benefit"].to_numpy(),
            "channel": tasks.loc[tr["task_id"], "channel"].to_numpy(),
            "content": tasks.loc[tr["task_id"], "content"].to_numpy(),
            "day": w.day,
        }
    )
    out = w.apply(sent, progress=False).set_index("user_id").loc[d["user_id"]]
    log2 = d.assign(**{c: out[c].to_numpy() for c in ("gmv", "incentive_cost", "converted")})
    log2 = log2.rename(columns={"task_id": "action_id"})
    pl2 = _planner(plan).fit(log2, ui, pop.users, opted_out=w.opted_out())
    assert pl2.log_summary_["rows"] == len(d)
    assert np.isfinite(pl2.values()["profit"]).all()


def test_design_experiment_rejects_bad_arguments(world):
    pop, env, ui, plan, log = world
    pl = _planner(plan).fit(log, ui, pop.users, opted_out=env.opted_out())
    with pytest.raises(ValueError, match="n_users"):
        pl.design_experiment(pop.n_users + 1)
    with pytest.raises(ValueError, match="control_share"):
        pl.design_experiment(10, control_share=1.0)
    with pytest.raises(ValueError, match="tasks"):
        pl.design_experiment(10, tasks=[0, 99])
    with pytest.raises(ValueError, match="tasks"):
        pl.design_experiment(10, tasks=[1, 1])
    with pytest.raises(ValueError, match="users"):
        pl.design_experiment(10, users=[-5])
    with pytest.raises(ValueError, match="Planner: not fitted"):
        _planner(plan).design_experiment(10)


def test_pooled_and_orders_options(world):
    """pool_tasks: the listed outcomes' models learn from (user, task) pairs with the tasks'
    features (one treatment); gmv_from: the GMV score is the uplift in orders times the value
    of an order. Both give estimates of the same shape, the same plan for the same seed, and
    round-trip through pickle; without an orders column 'auto' falls back to the GMV."""
    pop, env, ui, plan, log = world
    kw = {"opted_out": env.opted_out()}
    pl = Planner(plan, pool_tasks=("cost", "orders"), gmv_from="orders", seed=1, progress=False)
    pl.fit(log, ui, pop.users, **kw)
    T = len(plan.tasks())
    assert set(pl.estimates_) == {"gmv", "cost"}
    assert pl.estimates_["gmv"].shape == (pop.n_users, T)
    assert len(pl.task_feature_names_) > 0
    assert any(n.startswith("channel=") for n in pl.task_feature_names_)
    again = Planner(plan, pool_tasks=("cost", "orders"), gmv_from="orders", seed=1, progress=False)
    again.fit(log, ui, pop.users, **kw)
    np.testing.assert_array_equal(pl.estimates_["gmv"], again.estimates_["gmv"])
    np.testing.assert_array_equal(pl.estimates_["cost"], again.estimates_["cost"])
    back = pickle.loads(pickle.dumps(pl))
    np.testing.assert_array_equal(back.values()["profit"], pl.values()["profit"])
    # the order score differs from the GMV's own model, and 'auto' takes it when it can
    gmv = Planner(plan, gmv_from="gmv", seed=1, progress=False).fit(log, ui, pop.users, **kw)
    auto = Planner(plan, seed=1, progress=False).fit(log, ui, pop.users, **kw)
    assert not np.array_equal(gmv.estimates_["gmv"], auto.estimates_["gmv"])
    no_orders = log.drop(columns=["orders"])
    fb = Planner(plan, seed=1, progress=False).fit(no_orders, ui, pop.users, **kw)
    np.testing.assert_array_equal(fb.estimates_["gmv"], gmv.estimates_["gmv"])
    with pytest.raises(ValueError, match="orders"):
        Planner(plan, gmv_from="orders", progress=False).fit(no_orders, ui, pop.users, **kw)
    # pooled everything: all outcomes through predict_pairs
    allp = Planner(plan, pool_tasks=True, seed=1, progress=False).fit(log, ui, pop.users, **kw)
    assert np.isfinite(allp.values()["profit"]).all()


@pytest.mark.parametrize(
    "kw, err, match",
    [
        ({"pool_tasks": "cost"}, TypeError, "pool_tasks"),
        ({"pool_tasks": "all"}, TypeError, "pool_tasks"),
        ({"pool_tasks": ("cost", "clicks")}, ValueError, "pool_tasks.*clicks"),
        ({"pool_tasks": 1}, TypeError, "pool_tasks"),
        ({"gmv_from": "basket"}, ValueError, "gmv_from"),
        ({"model": Ridge(), "pool_tasks": ("cost",)}, TypeError, "pool_tasks.*predict_pairs"),
    ],
)
def test_pool_and_gmv_options_are_checked(world, kw, err, match):
    with pytest.raises(err, match=match):
        Planner(world[3], **kw)


def test_pool_tasks_auto_pools_only_models_that_predict_pairs(world):
    plan = world[3]
    assert Planner(plan).pool_tasks == ("cost", "orders")
    assert Planner(plan, TLearner(Ridge())).pool_tasks == ("cost", "orders")

    class Plain:  # fit/predict only: one arm per task
        def fit(self, X, t, y):
            return self

        def predict(self, X, return_se=False):
            return X[:, :1]

    assert Planner(plan, Plain()).pool_tasks is False


def _linear_maps(cal):
    for maps in cal.values():
        for c in maps:
            assert isinstance(c, LinearCalibration) and c.slope >= 0.0


def _scaled_maps(cal):
    # scaled maps for the GMV, binned ones for the cost (precise, and no control pays it)
    assert all(isinstance(c, ScaledCalibration) for c in cal["gmv"])
    assert not any(isinstance(c, ScaledCalibration) for c in cal["cost"])


@pytest.mark.parametrize("how, check", [("linear", _linear_maps), ("scaled", _scaled_maps)])
def test_planner_calibration_choices(world, how, check):
    """On the shared small world, each honest-value map (linear: a monotone line per stratum;
    scaled: the score scaled per stratum for the GMV): finite values, a forecast with its
    standard error, the plan unchanged by a pickle round-trip; an unknown choice is a
    ValueError naming the argument."""
    pop, env, ui, plan, log = world
    pl = Planner(plan, TLearner(Ridge(alpha=1.0), n_folds=1), seed=0, calibration=how)
    pl.fit(log, ui, pop.users, opted_out=env.opted_out())
    check(pl.calibration_)
    v = pl.values()
    assert all(np.isfinite(x).all() for x in v.values())
    tp = pl.allocate()
    assert np.isfinite(tp.forecast["profit"]) and tp.forecast["profit_se"] >= 0.0
    again = pickle.loads(pickle.dumps(pl))
    np.testing.assert_array_equal(again.values()["profit"], v["profit"])
    with pytest.raises(ValueError, match="calibration"):
        Planner(plan, calibration="spline")


def test_the_level_test_values_strata_it_cannot_tell_from_zero_at_zero(world):
    """``level_alpha``: None tests nothing (every scaled map keeps its level); a test so strict
    that no stratum of the small world passes values every pair's GMV at 0, so nothing is worth
    its cost and the plan is empty; the raw levels are the same either way; a level outside
    (0, 1) is a ValueError naming the argument."""
    pop, env, ui, plan, log = world
    kw = dict(seed=0, progress=False)
    model = TLearner(Ridge(alpha=1.0), n_folds=1)
    off = Planner(plan, model, level_alpha=None, **kw).fit(log, ui, pop.users)
    strict = Planner(plan, model, level_alpha=1e-12, **kw).fit(log, ui, pop.users)
    assert Planner(plan).level_alpha == 0.05
    assert all(c.tested for c in off.calibration_["gmv"])
    assert not any(c.tested for c in strict.calibration_["gmv"])
    for a, b in zip(off.calibration_["gmv"], strict.calibration_["gmv"], strict=True):
        assert a.raw_level == b.raw_level and b.level == 0.0
    assert np.all(strict.values()["gmv"] == 0.0)
    assert len(strict.allocate().tasks) == 0 and len(off.allocate().tasks) > 0
    for bad in (0.0, 1.0, -0.1, np.nan):
        with pytest.raises(ValueError, match="level_alpha"):
            Planner(plan, level_alpha=bad)
    with pytest.raises(TypeError, match="level_alpha"):
        Planner(plan, level_alpha="0.05")


def test_planner_centres_the_orders_by_default(world):
    pop, env, ui, plan, log = world
    kw = dict(seed=0, progress=False, margin=0.3)
    on = Planner(plan, **kw).fit(log, ui, pop.users, opted_out=env.opted_out())
    off = Planner(plan, center=(), **kw).fit(log, ui, pop.users, opted_out=env.opted_out())
    assert on.center == ("orders",)
    # the cost is not centred by default: its model sees the same outcomes either way
    assert np.array_equal(on.estimates_["cost"], off.estimates_["cost"])
    # the orders (the GMV score's source) are: other leaves, other estimates
    assert not np.array_equal(on.estimates_["gmv"], off.estimates_["gmv"])
    both = Planner(plan, center=["cost", "orders", "cost"], **kw)
    assert both.center == ("cost", "orders")
    both.fit(log, ui, pop.users, opted_out=env.opted_out())
    assert not np.array_equal(both.estimates_["cost"], off.estimates_["cost"])
    with pytest.raises(TypeError, match="center"):
        Planner(plan, center="orders")
    with pytest.raises(ValueError, match="center: unknown outcome 'visits'"):
        Planner(plan, center=("visits",))


def test_the_isotonic_map_is_np_interp_to_the_bit():
    """Calibration's map (Rust, src/planning/calmap.rs) against np.interp: float32 scores as
    the planner's, the knots themselves, a repeated knot, beyond both ends, NaN, a map of one
    knot; interp_columns (several maps, one per column) against each column's map."""
    from growthmachine.planning._calibrate import Calibration, interp_columns

    rng = np.random.default_rng(3)
    maps = []
    for m in (1, 2, 3, 5, 7):
        xp = np.sort(rng.normal(size=m))
        if m > 2:
            xp[1] = xp[2]
        fp = np.maximum.accumulate(rng.normal(size=m))
        maps.append(Calibration(xp, fp, np.ones(m), fp, np.ones((m, 2))))
        x = np.r_[rng.normal(size=500).astype(np.float32), xp, np.nan, np.inf, -np.inf]
        want = np.interp(x, xp, fp) if m > 1 else np.full(len(x), fp[0])
        np.testing.assert_array_equal(maps[-1](x), want)
    S = rng.normal(size=(300, 8)).astype(np.float32)
    which = rng.integers(0, len(maps), 8)
    got = interp_columns(S, maps, which)
    for c in range(8):
        np.testing.assert_array_equal(got[:, c], maps[which[c]](S[:, c]))
