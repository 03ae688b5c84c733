"""Tests of growthmachine.planning._plan: the plan inputs, their validation and loading, the
default plan of the simulated world, audiences and the composition into candidate tasks."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml

import growthmachine as gm
from growthmachine.planning._plan import (
    Audience,
    Benefit,
    Channel,
    Composition,
    Content,
    Goal,
    Plan,
)

# ---- fixtures (module scope: a small world, generated once) -----------------------------------


@pytest.fixture(scope="module")
def pop():
    return gm.sim.Population.generate(3000, days=365, seed=0, progress=False)


@pytest.fixture(scope="module")
def insight(pop):
    return gm.insight.UserInsight(
        n_clusters=16, n_prospect_clusters=8, min_cell_size=15, max_iter=30, seed=0
    ).fit(pop.transactions, as_of=pop.days, users=pop.users)


@pytest.fixture()
def env(pop):
    return gm.sim.Environment(pop, seed=0)


BASE = """
name: spring
horizon_days: 30
budget: 50000
goals:
  - {name: new buyers, kind: acquisition, metric: conversion, floor: 2000, audience: prospects}
  - {name: profit, kind: arpu}
audiences:
  - {name: prospects, stages: [prospect]}
  - {name: big spenders, features: {clv: [200, null]}, description: top CLV}
  - {name: picked, user_ids: [1, 2, 3], clusters: [0, "some name"], cells: [4]}
benefits:
  - {name: none, kind: none, face_value: 0, cost: 0}
  - {name: coupon_10, kind: coupon, face_value: 10, cost: 10, budget: 20000}
  - {name: welcome_20, kind: coupon, face_value: 20, cost: 20, eligibility: prospects}
channels:
  - {name: push, offsite: true, cost_per_touch: 0.0005, consent: push_opt_in, requires_app: true}
  - {name: email, offsite: true, cost_per_touch: 0.001, consent: email_opt_in, weekly_cap: 2}
  - {name: in_app, offsite: false, cost_per_touch: 0, daily_cap: 2, capacity_per_day: 100000}
contents:
  - {name: discount}
  - {name: new_arrivals, description: what is new}
"""


def _plan_text(**sections: str) -> str:
    """BASE with top-level sections replaced by YAML snippets (``None`` removes one)."""
    d = yaml.safe_load(BASE)
    for k, snippet in sections.items():
        if snippet is None:
            del d[k]
        else:
            d.update(yaml.safe_load(f"{k}: {snippet}"))
    return yaml.safe_dump(d, sort_keys=False)


# ---- loading, saving, validation ----------------------------------------------------------------


def test_plan_loads_and_round_trips(tmp_path):
    p = Plan.from_yaml(BASE)
    assert p.name == "spring" and p.budget == 50000.0 and isinstance(p.budget, float)
    assert p.audiences[1].features == {"clv": [200.0, None]}
    assert p.audiences[2].clusters == [0, "some name"]
    assert p.benefits[2].eligibility == "prospects" and p.channels[1].weekly_cap == 2
    assert Plan.from_yaml(p.to_yaml()) == p
    assert Plan.from_json(p.to_json()) == p
    assert Plan.from_dict(p.to_dict()) == p
    p.to_yaml(tmp_path / "plan.yaml")
    p.to_json(tmp_path / "plan.json")
    assert Plan.from_yaml(tmp_path / "plan.yaml") == p
    assert Plan.from_yaml(str(tmp_path / "plan.yaml")) == p
    assert Plan.from_json(tmp_path / "plan.json") == p
    # the optional fields keep their defaults
    assert p.goals[1].metric == "profit" and p.goals[1].weight == 1.0 and p.goals[1].floor is None
    assert p.channels[0].daily_cap == 1 and p.channels[2].requires_app is False


@pytest.mark.parametrize(
    "sections, path, exc",
    [
        # unknown keys
        ({"benefits": "[{name: a, kind: none, face_value: 0, costt: 0}]"}, "plan.benefits[0].costt", ValueError),
        ({"goals": "[{name: g, kind: arpu, audiance: x}]"}, "plan.goals[0].audiance", ValueError),
        ({"audiences": "[{name: a, features: {clv: [1, 2]}, stage: [new]}]"}, "plan.audiences[0].stage", ValueError),
        # wrong types
        ({"channels": "[{name: c, offsite: true, cost_per_touch: 0, daily_cap: two}]"}, "plan.channels[0].daily_cap", TypeError),
        ({"channels": "[{name: c, offsite: 'yes', cost_per_touch: 0}]"}, "plan.channels[0].offsite", TypeError),
        ({"channels": "[{name: c, offsite: true, cost_per_touch: cheap}]"}, "plan.channels[0].cost_per_touch", TypeError),
        ({"horizon_days": "30.5"}, "plan.horizon_days", TypeError),
        ({"audiences": "[{name: a, clusters: [1.5]}]"}, "plan.audiences[0].clusters[0]", TypeError),
        ({"audiences": "[{name: a, features: {clv: [low, 2]}}]"}, "plan.audiences[0].features['clv'][0]", TypeError),
        ({"audiences": "[{name: a, features: [clv]}]"}, "plan.audiences[0].features", TypeError),
        ({"audiences": "[{name: a, user_ids: 7}]"}, "plan.audiences[0].user_ids", TypeError),
        ({"goals": "{name: g, kind: arpu}"}, "plan.goals", TypeError),
        ({"contents": "[discount]"}, "plan.contents[0]", TypeError),
        ({"budget": ".nan"}, "plan.budget", ValueError),
        # negative or out-of-range values
        ({"benefits": "[{name: a, kind: coupon, face_value: 1, cost: 0}, {name: b, kind: coupon, face_value: 1, cost: 0}, {name: c, kind: coupon, face_value: 5, cost: -1}]"}, "plan.benefits[2].cost", ValueError),
        ({"benefits": "[{name: a, kind: coupon, face_value: -5, cost: 1}]"}, "plan.benefits[0].face_value", ValueError),
        ({"benefits": "[{name: a, kind: coupon, face_value: 5, cost: 1, budget: 0}]"}, "plan.benefits[0].budget", ValueError),
        ({"channels": "[{name: c, offsite: true, cost_per_touch: -0.1}]"}, "plan.channels[0].cost_per_touch", ValueError),
        ({"channels": "[{name: c, offsite: true, cost_per_touch: 0, daily_cap: 0}]"}, "plan.channels[0].daily_cap", ValueError),
        ({"channels": "[{name: c, offsite: true, cost_per_touch: 0, weekly_cap: -2}]"}, "plan.channels[0].weekly_cap", ValueError),
        ({"goals": "[{name: g, kind: arpu, weight: -1}]"}, "plan.goals[0].weight", ValueError),
        ({"horizon_days": "0"}, "plan.horizon_days", ValueError),
        ({"budget": "-5"}, "plan.budget", ValueError),
        ({"audiences": "[{name: a, features: {clv: [5, 1]}}]"}, "plan.audiences[0].features['clv']", ValueError),
        ({"audiences": "[{name: a, features: {clv: [5]}}]"}, "plan.audiences[0].features['clv']", ValueError),
        ({"audiences": "[{name: a, stages: [new, active]}]"}, "plan.audiences[0].stages[1]", ValueError),
        ({"audiences": "[{name: a, cells: []}]"}, "plan.audiences[0].cells", ValueError),
        # unknown audience references
        ({"goals": "[{name: g, kind: arpu, audience: vip}]"}, "plan.goals[0].audience", ValueError),
        ({"benefits": "[{name: a, kind: none, face_value: 0, cost: 0}, {name: b, kind: coupon, face_value: 5, cost: 5, eligibility: vip}]"}, "plan.benefits[1].eligibility", ValueError),
        # empty and missing lists
        ({"goals": "[]"}, "plan.goals", ValueError),
        ({"audiences": "[]"}, "plan.audiences", ValueError),
        ({"benefits": "[]"}, "plan.benefits", ValueError),
        ({"channels": "[]"}, "plan.channels", ValueError),
        ({"contents": "[]"}, "plan.contents", ValueError),
        ({"contents": None}, "plan.contents", ValueError),
        ({"benefits": "[{name: a, kind: coupon, face_value: 5}]"}, "plan.benefits[0].cost", ValueError),
        # bad kinds and choices
        ({"benefits": "[{name: a, kind: voucher, face_value: 5, cost: 5}]"}, "plan.benefits[0].kind", ValueError),
        ({"goals": "[{name: g, kind: growth}]"}, "plan.goals[0].kind", ValueError),
        ({"goals": "[{name: g, kind: arpu, metric: clicks}]"}, "plan.goals[0].metric", ValueError),
        # names
        ({"contents": "[{name: a}, {name: b}, {name: a}]"}, "plan.contents[2].name", ValueError),
        ({"channels": "[{name: 'a|b', offsite: true, cost_per_touch: 0}]"}, "plan.channels[0].name", ValueError),
        ({"audiences": "[{name: 'x:y'}]"}, "plan.audiences[0].name", ValueError),
        ({"audiences": "[{name: ''}]"}, "plan.audiences[0].name", ValueError),
    ],
)  # fmt: skip
def test_bad_plans_name_the_field(sections, path, exc):
    text = _plan_text(**sections)
    with pytest.raises(exc, match="^" + re.escape(path) + ":"):
        Plan.from_yaml(text)
    with pytest.raises(exc, match="^" + re.escape(path) + ":"):
        Plan.from_dict(yaml.safe_load(text))


def test_bad_top_level():
    with pytest.raises(ValueError, match=r"^plan\.owner: unknown field"):
        Plan.from_yaml(BASE + "owner: me\n")
    with pytest.raises(TypeError, match=r"^plan: must be a mapping"):
        Plan.from_yaml("- a\n- b\n")
    with pytest.raises(ValueError, match=r"^plan: not valid YAML"):
        Plan.from_yaml("goals: [\n")
    with pytest.raises(ValueError, match=r"^plan: not valid JSON"):
        Plan.from_json("{goals: ")
    with pytest.raises(ValueError, match=r"^plan\.goals: missing"):
        Plan.from_yaml("\n")


def test_direct_construction_validates():
    with pytest.raises(ValueError, match=r"^benefit\.cost: must be >= 0, got -1$"):
        Benefit("a", "coupon", 5, -1)
    with pytest.raises(ValueError, match=r"^channel\.daily_cap: must be >= 1, got 0"):
        Channel("c", True, 0.0, daily_cap=0)
    with pytest.raises(ValueError, match=r"^goal\.kind: must be one of"):
        Goal("g", "growth")
    with pytest.raises(TypeError, match=r"^audience\.cells\[1\]: must be an int"):
        Audience("a", cells=[1, "2"])
    b = Benefit("a", "coupon", 5, 5)
    b.cost = -1  # mutated after construction: the plan's validation catches it with its path
    with pytest.raises(ValueError, match=r"^plan\.benefits\[0\]\.cost: must be >= 0, got -1$"):
        Plan([Goal("g", "arpu")], [Audience("all")], [b], [Channel("c", True, 0)], [Content("k")])
    with pytest.raises(TypeError, match=r"^plan\.goals\[0\]: must be a Goal, got str"):
        Plan(["g"], [Audience("all")], [Benefit("a", "none", 0, 0)], [Channel("c", True, 0)],
             [Content("k")])  # fmt: skip


# ---- the default plan of the simulated world ----------------------------------------------------


def test_default_plan_tasks_are_env_actions(env):
    p = Plan.default(env, budget=1000.0)
    assert p.budget == 1000.0 and p.horizon_days == 30 and Plan.default(env).budget is None
    assert [a.name for a in p.audiences] == ["everyone"] and p.audiences[0].is_everyone
    assert [(g.name, g.kind, g.metric) for g in p.goals] == [("profit", "arpu", "profit")]
    kinds = {b.name: b.kind for b in p.benefits}
    assert kinds == {"none": "none", "coupon_5": "coupon", "coupon_10": "coupon",
                     "coupon_20": "coupon", "free_shipping": "free_shipping",
                     "points_500": "points"}  # fmt: skip
    rules = {c.name: (c.consent, c.requires_app, c.offsite) for c in p.channels}
    assert rules == {"push": ("push_opt_in", True, True), "sms": ("sms_opt_in", False, True),
                     "email": ("email_opt_in", False, True), "in_app": (None, True, False),
                     "ads": (None, False, True)}  # fmt: skip
    t = p.tasks()
    a = env.actions
    assert len(t) == len(a) == 120
    assert (t["task_id"].to_numpy() == a["action_id"].to_numpy()).all()
    for col in ("benefit", "channel", "content", "name"):
        assert t[col].tolist() == a[col].astype(str).tolist(), col
    np.testing.assert_array_equal(t["face_value"], a["face_value"])
    np.testing.assert_array_equal(t["benefit_cost"], a["incentive_cost"])
    np.testing.assert_array_equal(t["cost_per_touch"], a["unit_cost"])
    np.testing.assert_array_equal(t["is_offsite"], a["is_offsite"])
    assert list(t.columns) == ["task_id", "name", "audience", "benefit", "channel", "content",
                               "benefit_kind", "face_value", "benefit_cost", "cost_per_touch",
                               "is_offsite"]  # fmt: skip
    assert Plan.from_yaml(p.to_yaml()) == p
    with pytest.raises(TypeError, match="^env: must be a growthmachine.sim.Environment"):
        Plan.default(env.population)


def _touch_everyone(env):
    """Five days of off-site touches on every eligible user and channel: creates opt-outs."""
    a, ids = env.actions, np.arange(env.n_users)
    rows = []
    for ch in ("ads", "email", "push", "sms", "in_app"):
        aid = int(a.index[(a.benefit == "none") & (a.channel == ch)][0])
        ok = env.eligible(ids, aid)
        for d in range(5):
            rows.append(pd.DataFrame({"user_id": ids[ok], "action_id": aid, "day": env.day + d}))
    env.apply(pd.concat(rows), days=10)


def test_default_compose_equals_env_eligible(env, insight, pop):
    _touch_everyone(env)
    opted_out = env.opted_out()
    assert opted_out[["push", "sms", "email", "ads"]].to_numpy().sum(axis=0).min() > 0
    p = Plan.default(env)
    c = p.compose(insight, pop.users, opted_out)
    assert isinstance(c, Composition)
    assert c.eligible.shape == (pop.n_users, 120) and c.eligible.dtype == bool
    assert c.user_ids.dtype == np.int64
    np.testing.assert_array_equal(c.user_ids, insight.users_["user_id"].to_numpy())
    u = np.repeat(c.user_ids, 120)
    k = np.tile(np.arange(120), len(c.user_ids))
    want = env.eligible(u, k).reshape(len(c.user_ids), 120)
    np.testing.assert_array_equal(c.eligible, want)
    # every rule bites somewhere, and ads/none rows differ only by opt-outs
    assert 0 < c.n_pairs < c.eligible.size
    ads = p.tasks().query("channel == 'ads'")["task_id"].to_numpy()
    np.testing.assert_array_equal(c.eligible[:, ads[0]], ~opted_out["ads"].to_numpy())
    # without opt-outs: more pairs, and the users table alone gives the same rows
    c0 = p.compose(insight, pop.users)
    assert c0.n_pairs > c.n_pairs and not (c.eligible & ~c0.eligible).any()
    c1 = p.compose(users=pop.users, opted_out=opted_out)
    np.testing.assert_array_equal(c1.eligible, c.eligible)


def test_compose_aligns_a_shuffled_users_table(env, insight, pop):
    _touch_everyone(env)
    p = Plan.default(env)
    c = p.compose(insight, pop.users, env.opted_out())
    perm = np.random.default_rng(1).permutation(pop.n_users)
    users = pop.users.iloc[perm].reset_index(drop=True)
    out = env.opted_out().iloc[perm].reset_index(drop=True)
    c2 = p.compose(insight, users, out)
    np.testing.assert_array_equal(c2.user_ids, c.user_ids)
    np.testing.assert_array_equal(c2.eligible, c.eligible)


def test_pairs_are_user_major(insight, pop, env):
    c = Plan.default(env).compose(insight, pop.users)
    u, k = c.pairs()
    assert len(u) == len(k) == c.n_pairs == int(c.eligible.sum())
    assert u.dtype == np.int64 and k.dtype == np.int64
    row = np.searchsorted(c.user_ids, u)
    assert (np.diff(row) >= 0).all()
    same = np.diff(row) == 0
    assert (np.diff(k)[same] > 0).all()
    assert c.eligible[row, k].all()
    assert "n_pairs" in repr(c)


# ---- audiences ------------------------------------------------------------------------------------


def test_audience_selectors(insight, pop):
    t = insight.users_
    f = insight.features_
    stages = Audience("s", stages=["at-risk", "dormant"]).select(insight)
    np.testing.assert_array_equal(stages, t["stage"].isin(["at-risk", "dormant"]).to_numpy())
    assert 0 < stages.sum() < len(t)
    cells = sorted(t["cell_id"].unique()[:3].tolist())
    np.testing.assert_array_equal(
        Audience("c", cells=cells).select(insight), t["cell_id"].isin(cells).to_numpy()
    )
    # features: insight.users_ column, insight.features_ column, users-table column (bool too)
    clv = Audience("v", features={"clv": [100.0, None]}).select(insight)
    np.testing.assert_array_equal(clv, (t["clv"] >= 100).to_numpy())
    rec = Audience("r", features={"recency": [10.0, 200.0]}).select(insight)
    r = f["recency"].to_numpy()
    np.testing.assert_array_equal(rec, (r >= 10) & (r <= 200))
    su = Audience("u", features={"signup_day": [None, 100], "has_app": [1, 1]})
    got = su.select(insight, pop.users)
    u = pop.users
    np.testing.assert_array_equal(got, ((u["signup_day"] <= 100) & u["has_app"]).to_numpy())
    # clusters by id and by name
    name = insight.cluster_names_[2]
    by = Audience("k", clusters=[0, name]).select(insight)
    np.testing.assert_array_equal(by, t["cluster"].isin([0, 2]).to_numpy())
    # explicit ids, with or without an insight
    ids = [5, 17, 2999]
    np.testing.assert_array_equal(np.flatnonzero(Audience("i", user_ids=ids).select(insight)), ids)
    np.testing.assert_array_equal(
        np.flatnonzero(Audience("i", user_ids=ids).select(users=pop.users)), ids
    )
    # criteria are ANDed; none = everyone
    both = Audience("b", stages=["at-risk", "dormant"], features={"clv": [100.0, None]})
    np.testing.assert_array_equal(both.select(insight), stages & clv)
    assert Audience("all").select(insight).all()


def test_audience_errors_name_the_argument(insight, pop):
    with pytest.raises(ValueError, match=r"^audience 'a'\.cells\[1\]: 99999 is not a cell"):
        Audience("a", cells=[0, 99999]).select(insight)
    with pytest.raises(ValueError, match=r"^audience 'a'\.clusters\[0\]: 'nope' is not a cluster"):
        Audience("a", clusters=["nope"]).select(insight)
    with pytest.raises(ValueError, match=r"^audience 'a'\.clusters\[0\]: 9999 is not a cluster id"):
        Audience("a", clusters=[9999]).select(insight)
    with pytest.raises(ValueError, match=r"^audience 'a'\.features\['zz'\]: unknown feature"):
        Audience("a", features={"zz": [0, 1]}).select(insight, pop.users)
    with pytest.raises(TypeError, match=r"^audience 'a'\.features\['device'\]: .*not numeric"):
        Audience("a", features={"device": [0, 1]}).select(insight, pop.users)
    with pytest.raises(ValueError, match=r"^audience 'a'\.user_ids\[1\]: user id 5000 is not"):
        Audience("a", user_ids=[1, 5000]).select(insight)
    with pytest.raises(ValueError, match=r"^audience 'a'\.stages: needs insight"):
        Audience("a", stages=["new"]).select(users=pop.users)
    with pytest.raises(ValueError, match=r"^insight, users: give"):
        Audience("a").select()
    with pytest.raises(TypeError, match=r"^insight: must be a fitted"):
        Audience("a").select(insight=pop)


def _two_audience_plan(stage_list=("prospect",)):
    return Plan(
        goals=[Goal("new buyers", "acquisition", metric="conversion", floor=100.0,
                    audience="prospects")],
        audiences=[Audience("everyone"), Audience("prospects", stages=list(stage_list))],
        benefits=[Benefit("none", "none", 0, 0), Benefit("welcome", "coupon", 20, 20,
                                                         eligibility="prospects")],
        channels=[Channel("push", True, 0.0005, consent="push_opt_in", requires_app=True),
                  Channel("ads", True, 0.01)],
        contents=[Content("discount")],
    )  # fmt: skip


def test_benefit_eligibility_and_task_names(insight, pop):
    p = _two_audience_plan()
    t = p.tasks()
    # everyone x none x 2 channels + prospects x (none, welcome) x 2 channels
    assert len(t) == 6 and (t["task_id"].to_numpy() == np.arange(6)).all()
    assert set(t.loc[t["benefit"] == "welcome", "audience"]) == {"prospects"}
    assert t["name"].tolist()[:2] == ["everyone:none|push|discount", "everyone:none|ads|discount"]
    assert "prospects:welcome|ads|discount" in t["name"].tolist()
    c = p.compose(insight, pop.users)
    pros = (insight.users_["stage"] == "prospect").to_numpy()
    push = (pop.users["push_opt_in"] & pop.users["has_app"]).to_numpy()
    for row in t.itertuples():
        aud = pros if row.audience == "prospects" else np.ones_like(pros)
        ch = push if row.channel == "push" else np.ones_like(pros)
        np.testing.assert_array_equal(c.eligible[:, row.task_id], aud & ch, err_msg=row.name)


def test_empty_audience_raises_at_compose(insight, pop):
    p = _two_audience_plan()
    p.audiences[1] = Audience("prospects", stages=["prospect"], features={"clv": [1.0, None]})
    with pytest.raises(ValueError, match=r"^plan\.audiences\[1\] \('prospects'\): selects no user"):
        p.compose(insight, pop.users)


def test_compose_drops_nothing_silently(insight, pop, env):
    p = Plan.default(env)
    users = pop.users
    extra = pd.concat([users, users.iloc[[0]].assign(user_id=10**6)], ignore_index=True)
    with pytest.raises(ValueError, match=r"^users: user id 1000000 \(row 3000\) is not in insight"):
        p.compose(insight, extra)
    with pytest.raises(ValueError, match=r"^users: has no row for user id 0 of insight"):
        p.compose(insight, users.iloc[1:])
    with pytest.raises(ValueError, match=r"^users: user id 3 appears more than once"):
        p.compose(users=pd.concat([users, users.iloc[[3]]], ignore_index=True))
    with pytest.raises(ValueError, match=r"^users: user id 3 appears more than once"):
        p.compose(insight, pd.concat([users, users.iloc[[3]]], ignore_index=True))
    with pytest.raises(
        ValueError,
        match=r"^users: has no column 'sms_opt_in' \(the consent column of plan\.channels\[1\]",
    ):
        p.compose(insight, users.drop(columns="sms_opt_in"))
    with pytest.raises(ValueError, match=r"^users: has no column 'has_app'"):
        p.compose(insight, users.drop(columns="has_app"))
    with pytest.raises(
        ValueError, match=r"^users: required \(the consent column of plan\.channels\[0\]"
    ):
        p.compose(insight)
    with pytest.raises(TypeError, match=r"^users\['push_opt_in'\]: must be bool"):
        p.compose(insight, users.assign(push_opt_in=users["push_opt_in"].astype(float)))
    out = env.opted_out()
    with pytest.raises(ValueError, match=r"^opted_out: has no column for channel 'ads'"):
        p.compose(insight, users, out.drop(columns="ads"))
    with pytest.raises(ValueError, match=r"^opted_out: has 2,999 rows, expected 3,000"):
        p.compose(insight, users, out.iloc[1:])
    # a plan without consent rules composes from the insight alone
    q = _two_audience_plan()
    q.channels = [Channel("ads", True, 0.01)]
    assert q.compose(insight).eligible.shape == (3000, 3)
