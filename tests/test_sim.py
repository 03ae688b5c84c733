"""Tests of growthmachine.sim: configuration, population, environment, sessions, pipeline stage."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import growthmachine as gm
from growthmachine import _core
from growthmachine.sim import Environment, Population, WorldConfig

# ---- fixtures (module scope: generated once) ------------------------------------------------


@pytest.fixture(scope="module")
def pop() -> Population:
    return Population.generate(60_000, days=365, seed=11)


@pytest.fixture()
def env(pop) -> Environment:
    return Environment(pop, seed=3)


# ---- configuration ---------------------------------------------------------------------------


def test_python_defaults_equal_rust_defaults():
    py = WorldConfig().to_dict()
    rs = json.loads(_core.sim_default_config())
    assert py == rs


def test_config_round_trips(tmp_path):
    c = WorldConfig()
    c2 = WorldConfig.from_json(c.to_json())
    assert c2 == c
    p = tmp_path / "world.yaml"
    c.to_yaml(p)
    assert WorldConfig.from_yaml(p) == c
    c.to_json(tmp_path / "w.json")
    assert WorldConfig.from_json(tmp_path / "w.json") == c
    assert pickle.loads(pickle.dumps(c)) == c
    # Partial dicts keep defaults.
    c3 = WorldConfig.from_dict({"purchase": {"r": 0.5}})
    assert c3.purchase.r == 0.5 and c3.purchase.alpha == c.purchase.alpha


@pytest.mark.parametrize(
    "change, field",
    [
        ({"purchase": {"r": -1.0}}, "config.purchase.r"),
        ({"purchase": {"a": 0.0}}, "config.purchase.a"),
        ({"spend": {"q": 0.9}}, "config.spend.q"),
        ({"population": {"prospect_share": 1.5}}, "config.population.prospect_share"),
        ({"response": {"hill_ec50": float("nan")}}, "config.response.hill_ec50"),
        ({"seasonality": {"weekly": [1.0, 1.0]}}, "config.seasonality.weekly"),
        ({"observables": {"app_devices": ["tablet"]}}, "config.observables.app_devices"),
    ],
)
def test_bad_config_values_name_the_field(change, field):
    with pytest.raises(ValueError, match="^" + re.escape(field)):
        WorldConfig.from_dict(change)


def test_bad_config_structure():
    with pytest.raises(ValueError, match=r"config\.purchase\.rr: unknown field"):
        WorldConfig.from_dict({"purchase": {"rr": 1.0}})
    with pytest.raises(TypeError, match=r"config\.purchase\.r: must be a number"):
        WorldConfig.from_dict({"purchase": {"r": "high"}})
    c = WorldConfig()
    c.archetypes[1].category_weights = [1.0]
    with pytest.raises(ValueError, match=r"config\.archetypes\[1\]\.category_weights"):
        c.validate()
    with pytest.raises(ValueError, match=r"config\.archetypes\[1\]\.category_weights"):
        Population.generate(10, config=c)
    c = WorldConfig()
    c.archetypes[0].name = c.archetypes[1].name
    with pytest.raises(ValueError, match="duplicate archetype"):
        c.validate()


# ---- population ------------------------------------------------------------------------------


def test_population_columns(pop):
    u, tx, t = pop.users, pop.transactions, pop.truth
    assert pop.n_users == len(u) == len(t) == 60_000
    assert u["user_id"].dtype == np.int64 and (u["user_id"].to_numpy() == np.arange(len(u))).all()
    assert u["signup_day"].dtype == np.int32
    for c in ("acquisition_channel", "city_tier", "age_band", "device"):
        assert isinstance(u[c].dtype, pd.CategoricalDtype), c
    assert tx["user_id"].dtype == np.int64 and tx["day"].dtype == np.int32
    assert tx["amount"].dtype == np.float64 and (tx["amount"] > 0).all()
    assert isinstance(tx["category"].dtype, pd.CategoricalDtype)
    assert tx["day"].between(0, pop.days - 1).all()
    key = tx["user_id"].to_numpy() * 1000 + tx["day"].to_numpy()
    assert (np.diff(key) >= 0).all(), "transactions sorted by (user_id, day)"
    assert t["archetype"].cat.categories.size >= 6
    for c in ("purchase_rate", "dropout_p", "spend_rate", "alive_at_end", "death_day",
              "price_sensitivity", "is_prospect", "sleeping_dog", "affinity_push"):  # fmt: skip
        assert c in t.columns, c
    # Orders only after sign-up; n_orders and gmv agree with the transactions.
    n = np.bincount(tx["user_id"], minlength=pop.n_users)
    assert (n == t["n_orders"].to_numpy()).all()
    first_day = tx.groupby("user_id")["day"].min()
    assert (first_day.to_numpy() >= u["signup_day"].to_numpy()[first_day.index]).all()
    assert not t["is_prospect"].to_numpy()[n > 0].any(), "prospects never order on their own"
    # Dead users have no orders after their death day.
    last = tx.groupby("user_id")["day"].max()
    dd = t["death_day"].to_numpy()[last.index]
    ok = np.isnan(dd) | (last.to_numpy() <= np.floor(dd))
    assert ok.all()


def test_configured_statistics_are_reproduced(pop):
    c = pop.config
    t = pop.truth
    n = len(t)
    share = t["is_prospect"].mean()
    se = np.sqrt(c.population.prospect_share * (1 - c.population.prospect_share) / n)
    assert abs(share - c.population.prospect_share) < 4 * se
    # Gamma purchase rates, Beta dropout, Gamma spend rates: KS tests against the configuration.
    r, alpha = c.purchase.r, c.purchase.alpha
    assert stats.kstest(t["purchase_rate"], stats.gamma(r, scale=1 / alpha).cdf).pvalue > 1e-3
    assert stats.kstest(t["dropout_p"], stats.beta(c.purchase.a, c.purchase.b).cdf).pvalue > 1e-3
    s = c.spend
    assert stats.kstest(t["spend_rate"], stats.gamma(s.q, scale=1 / s.gamma).cdf).pvalue > 1e-3
    # Order values: given nu, amount / (p / nu) has mean 1 and variance 1 / p.
    tx = pop.transactions
    ratio = tx["amount"].to_numpy() / t["mean_spend"].to_numpy()[tx["user_id"]]
    assert abs(ratio.mean() - 1) < 4 * np.sqrt(1 / s.p / len(ratio)) + 0.002
    assert abs(ratio.var() * s.p - 1) < 0.05
    # Seasonality: the festival week sells more than an average week.
    d = np.bincount(tx["day"], minlength=365)
    assert d[311:318].mean() > 1.5 * d.mean()


def test_value_models_recover_configured_heterogeneity():
    lifetimes = pytest.importorskip("lifetimes")
    pop = Population.generate(40_000, days=365, seed=5)
    t = pop.truth
    born = t.index[(t["first_order_day"] >= 0) & (t["first_order_day"] < 200)]
    tx = pop.transactions[pop.transactions["user_id"].isin(born)]
    g = tx.groupby("user_id")["day"]
    first, last, cnt = g.min(), g.max(), g.size()
    summary = pd.DataFrame({"frequency": cnt - 1, "recency": last - first, "T": pop.days - first})
    bg = lifetimes.BetaGeoFitter(penalizer_coef=0.0).fit(
        summary["frequency"], summary["recency"], summary["T"]
    )
    p = bg.params_
    c = pop.config.purchase
    # Day granularity (several orders a day count once) and seasonality blur the fit a little.
    assert abs(p["r"] / p["alpha"] - c.r / c.alpha) / (c.r / c.alpha) < 0.2
    assert abs(p["r"] - c.r) / c.r < 0.3
    assert abs(p["a"] / (p["a"] + p["b"]) - c.a / (c.a + c.b)) < 0.05
    # Gamma-Gamma on every user with at least two orders in the window.
    g = pop.transactions.groupby("user_id")["amount"]
    m = pd.DataFrame({"f": g.size(), "mv": g.mean()})
    m = m[m.f >= 2]
    gg = lifetimes.GammaGammaFitter().fit(m["f"], m["mv"]).params_
    s = pop.config.spend
    assert abs(gg["p"] - s.p) / s.p < 0.15
    assert abs(gg["q"] - s.q) / s.q < 0.15
    assert abs(gg["v"] - s.gamma) / s.gamma < 0.15


def test_generation_is_deterministic_across_threads():
    before = gm.get_num_threads()
    try:
        gm.set_num_threads(1)
        a = Population.generate(40_000, seed=2)
        gm.set_num_threads(2)
        b = Population.generate(40_000, seed=2)
    finally:
        gm.set_num_threads(before)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    pd.testing.assert_frame_equal(a.users, b.users)
    small = Population.generate(1_000, seed=2)
    pd.testing.assert_frame_equal(small.truth, a.truth.iloc[:1000])


def test_generate_bad_arguments():
    with pytest.raises(ValueError, match="n_users"):
        Population.generate(0)
    with pytest.raises(TypeError, match="n_users"):
        Population.generate(1.5)
    with pytest.raises(ValueError, match="days"):
        Population.generate(10, days=0)
    with pytest.raises(TypeError, match="config"):
        Population.generate(10, config={"purchase": {}})


def test_population_and_environment_pickle(pop):
    env = Environment(pop, seed=1)
    env.apply({"user_id": np.arange(100), "benefit": "coupon_5", "channel": "ads"}, days=7)
    env2 = pickle.loads(pickle.dumps(env))
    assert env2.day == env.day
    tr = {"user_id": np.arange(500), "benefit": "coupon_10", "channel": "ads"}
    pd.testing.assert_frame_equal(env.apply(tr, days=10), env2.apply(tr, days=10))


# ---- environment -----------------------------------------------------------------------------


def test_actions_catalogue(env):
    a = env.actions
    for c in (
        "action_id",
        "benefit",
        "channel",
        "content",
        "face_value",
        "unit_cost",
        "is_offsite",
    ):
        assert c in a.columns
    assert (a["action_id"].to_numpy() == np.arange(len(a))).all()
    assert set(a["channel"].astype(str)) == {"push", "sms", "email", "in_app", "ads"}
    assert not a.loc[a["channel"] == "in_app", "is_offsite"].any()


def test_apply_outputs_and_advances(env, pop):
    assert env.day == pop.days
    users = pop.users
    ok = np.flatnonzero(users["push_opt_in"].to_numpy())[:1000]
    tr = pd.DataFrame(
        {
            "user_id": ok,
            "benefit": "coupon_10",
            "channel": "push",
            "content": "discount",
            "day": pop.days + 2,
        }  # fmt: skip
    )
    out = env.apply(tr, start_day=pop.days, days=14)
    assert env.day == pop.days + 14
    assert list(out.columns[:7]) == ["user_id", "converted", "orders", "gmv", "incentive_cost",
                                     "channel_cost", "exposures"]  # fmt: skip
    assert "opted_out" in out.columns and len(out) == pop.n_users
    assert (out["converted"] == (out["orders"] > 0)).all()
    assert (out.loc[~out.user_id.isin(ok), "incentive_cost"] == 0).all()
    paid = out["incentive_cost"] > 0
    assert (out.loc[paid, "orders"] > 0).all(), "coupons cost only when redeemed"
    assert set(np.unique(out.loc[paid, "incentive_cost"])) <= {10.0}
    assert (out.loc[out.user_id.isin(ok), "exposures"] == 1).all()
    # Untouched world keeps going; action ids work too.
    out2 = env.apply(None, days=5)
    assert out2["touches"].sum() == 0 and out2["orders"].sum() > 0
    out3 = env.apply({"user_id": ok[:10], "action_id": 56}, days=5)
    assert out3["touches"].sum() == 10


@pytest.mark.parametrize(
    "tr, col",
    [
        ({"user_id": [0], "benefit": "coupon_99", "channel": "ads"}, r"treatments\['benefit'\]"),
        ({"user_id": [0], "benefit": "coupon_5", "channel": "fax"}, r"treatments\['channel'\]"),
        ({"user_id": [10**9], "benefit": "coupon_5", "channel": "ads"}, r"treatments\['user_id'\]"),
        (
            {"user_id": [0], "benefit": "coupon_5", "channel": "ads", "day": [10]},
            r"treatments\['day'\]",
        ),
        ({"user_id": [0], "channel": "ads"}, "'benefit'"),
        ({"user_id": [0], "action_id": 5, "benefit": "none"}, "either 'action_id'"),
        ({"user_id": [0], "action_id": 10**6}, r"treatments\['action_id'\]"),
        ({"user_id": [0.5], "action_id": 1}, r"treatments\['user_id'\]"),
        ({"benefit": ["none"]}, "user_id"),
    ],
)
def test_bad_treatment_tables_fail_clearly(env, tr, col):
    day = env.day
    with pytest.raises((ValueError, TypeError), match=col):
        env.apply(tr, days=10)
    assert env.day == day, "a rejected call does not advance the world"


def test_channel_rules(env, pop):
    u = pop.users
    no_sms = int(np.flatnonzero(~u["sms_opt_in"].to_numpy())[0])
    with pytest.raises(
        ValueError, match=r"treatments\['channel'\]: row 1: user \d+ cannot receive sms"
    ):
        env.apply({"user_id": [0, no_sms], "benefit": "none", "channel": ["ads", "sms"]})
    web = int(np.flatnonzero(~u["has_app"].to_numpy())[0])
    with pytest.raises(ValueError, match="in_app needs the app"):
        env.apply({"user_id": [web], "benefit": "none", "channel": "in_app"})
    with pytest.raises(ValueError, match=r"cap is 1 per day"):
        env.apply({"user_id": [7, 7], "benefit": "none", "channel": "email", "day": env.day}
                  if u["email_opt_in"][7] else
                  {"user_id": [7, 7], "benefit": "none", "channel": "sms", "day": env.day})  # fmt: skip
    with pytest.raises(ValueError, match="start_day"):
        env.apply(None, start_day=env.day - 1)
    # Opt-outs close the channel: over-touch by ads until someone opts out.
    cfg = WorldConfig.from_dict({"response": {"optout_base": 0.2}})
    p2 = Population.generate(2000, seed=1, config=cfg)
    e2 = Environment(p2)
    out = e2.apply({"user_id": np.arange(2000), "benefit": "none", "channel": "ads"}, days=3)
    gone = np.flatnonzero(out["opted_out"].to_numpy())
    assert len(gone) > 100
    assert e2.opted_out()["ads"].to_numpy()[gone].all()
    assert not e2.eligible(gone[:5], 16).any()  # 16 = none|ads|discount
    with pytest.raises(ValueError, match="opted out of ads"):
        e2.apply({"user_id": gone[:1], "benefit": "none", "channel": "ads"})


def test_experiment_recovers_true_uplift():
    pop = Population.generate(150_000, seed=21)
    env = Environment(pop, seed=4)
    acts = env.actions
    a_coupon = int(acts.query("name == 'coupon_20|ads|discount'").action_id.iloc[0])
    a_push = int(acts.query("name == 'coupon_10|push|personalised'").action_id.iloc[0])
    truth = env.true_uplift(np.arange(pop.n_users), [a_coupon, a_push], product=True)
    truth = truth.set_index(["user_id", "action_id"])
    log = env.run_experiment([a_coupon, a_push], share=2 / 3, days=30, seed=9)
    assert env.day == pop.days + 30
    assert set(log["action_id"].unique()) == {-1, a_coupon, a_push}
    for c in ("user_id", "action_id", "orders", "gmv", "incentive_cost", "converted",
              "age_band", "device", "city_tier", "acquisition_channel", "orders_to_date"):  # fmt: skip
        assert c in log.columns, c
    ctrl = log[log.action_id == -1]
    for a in (a_coupon, a_push):
        arm = log[log.action_id == a]
        tru = truth.loc[list(zip(arm.user_id, arm.action_id, strict=True))]
        for obs, true_col in (("gmv", "incremental_gmv"), ("converted", "incremental_conversion")):
            x, y = arm[obs].astype(float), ctrl[obs].astype(float)
            diff = x.mean() - y.mean()
            se = np.sqrt(x.var() / len(x) + y.var() / len(y))
            expected = tru[true_col].mean()
            assert abs(diff - expected) < 3 * se, (a, obs, diff, expected, se)
        # Costs: expected incentive cost of the arm vs realised (no control needed).
        cost = arm["incentive_cost"]
        se = cost.std() / np.sqrt(len(cost))
        assert abs(cost.mean() - tru["expected_incentive_cost"].mean()) < 3 * se + 1e-9
    # The strong coupon has a clearly positive uplift, and some users have negative uplift.
    tc = truth.xs(a_coupon, level="action_id")
    assert tc["incremental_gmv"].mean() > 0
    assert (tc["incremental_gmv"] < 0).mean() > 0.01, "sleeping dogs"
    assert pop.truth["sleeping_dog"].to_numpy()[tc.index[tc["incremental_gmv"] < 0]].all()


def test_fatigue_and_saturation_are_monotone(pop):
    env = Environment(pop, seed=5)
    a = int(env.actions.query("name == 'coupon_10|ads|discount'").action_id.iloc[0])
    users = np.arange(5000)
    prev = env.true_uplift(users, a)["incremental_conversion"].to_numpy()
    st0 = env.state()
    for _ in range(3):
        # Touch everyone once a day for 3 days; fatigue grows, true response falls.
        ok = users[env.eligible(users, 16)]  # 16 = none|ads|discount; opted-out users are closed
        tr = {"user_id": np.repeat(ok, 3), "benefit": "none", "channel": "ads",
              "day": np.tile(np.arange(env.day, env.day + 3), len(ok))}  # fmt: skip
        env.apply(tr, days=3)
        cur = env.true_uplift(users, a)["incremental_conversion"].to_numpy()
        st = env.state()
        # Same lifecycle and still reachable: only fatigue changed.
        same = (
            (st["customer"] == st0["customer"]) & (st["alive"] == st0["alive"])
            & ~st["opted_out_ads"]
        ).to_numpy()[users]  # fmt: skip
        pos = (prev > 0) & same
        assert pos.sum() > 1000
        assert (cur[pos] < prev[pos]).all()
        prev, st0 = cur, st
    # Saturation: more off-site exposures in one window -> more conversions, with diminishing
    # returns (a world with a strong exposure effect so the Hill curve is visible).
    cfg = WorldConfig.from_dict({"response": {"exposure_max": 0.8, "fatigue_rate": 0.0,
                                              "optout_base": 0.0}})  # fmt: skip
    p = Population.generate(80_000, seed=3, config=cfg)
    groups = np.array_split(np.arange(p.n_users), 4)
    ks = [0, 3, 6, 10]
    e = Environment(p, seed=1)
    uid, day = [], []
    for g, k in zip(groups, ks, strict=True):
        uid.append(np.repeat(g, k))
        day.append(np.full(len(g) * k, e.day))
    out = e.apply({"user_id": np.concatenate(uid), "benefit": "none", "channel": "ads",
                   "day": np.concatenate(day)}, days=14)  # fmt: skip
    conv = [out["converted"].to_numpy()[g].mean() for g in groups]
    assert conv[0] < conv[1] < conv[2] < conv[3], conv
    gain = np.diff(conv) / np.diff(ks)
    assert gain[2] < gain[1], ("diminishing returns past the effective frequency", conv)


def test_true_uplift_and_oracle(env):
    users = np.arange(3000)
    t = env.true_uplift(users, np.arange(len(env.actions)), product=True)
    assert len(t) == 3000 * len(env.actions)
    assert (t.loc[~t.eligible, ["incremental_gmv", "expected_cost"]] == 0).all().all()
    assert np.allclose(t["expected_cost"], t["expected_incentive_cost"] + t["channel_cost"])
    with pytest.raises(ValueError, match="action_ids"):
        env.true_uplift(users, [1, 2])
    with pytest.raises(ValueError, match="user_ids"):
        env.true_uplift([-1], 1)
    free = env.oracle_allocation(None, user_ids=users)
    assert (free["value"] > 0).all()
    assert free.user_id.is_unique
    budget = 0.3 * free.attrs["total_cost"]
    capped = env.oracle_allocation(budget, user_ids=users)
    assert capped.attrs["total_cost"] <= budget + 1e-9
    assert capped.attrs["total_value"] <= free.attrs["total_value"]
    # The oracle is at least as good as any single action for everyone within the budget.
    best_single = t.groupby("action_id")["incremental_profit"].apply(
        lambda s: s.clip(lower=0).sum()
    )
    assert free.attrs["total_value"] >= best_single.max() - 1e-9


# ---- sessions --------------------------------------------------------------------------------


def test_oracle_candidates_hold_every_best_response(pop):
    # the hull rows computed in Rust contain each user's best action at any price: the oracle
    # from them equals the one from the dense users x actions table, at several budgets
    e = Environment(pop, seed=2)
    users = np.arange(0, pop.n_users, 3)
    A = len(e.actions)
    c = e.oracle_candidates(user_ids=users)
    assert c["user_id"].is_monotonic_increasing and (c["value"] > 0).all()
    assert c.groupby("user_id").size().max() < A
    t = e.true_uplift(users, np.arange(A), product=True)
    V = t["incremental_profit"].to_numpy().reshape(len(users), A)
    C = t["expected_cost"].to_numpy().reshape(len(users), A)
    V = np.where(t["eligible"].to_numpy().reshape(len(users), A), V, -np.inf)
    pos = pd.Index(users).get_indexer(c["user_id"].to_numpy())
    np.testing.assert_allclose(V[pos, c["action_id"].to_numpy()], c["value"])
    np.testing.assert_allclose(C[pos, c["action_id"].to_numpy()], c["expected_cost"])
    r = np.arange(len(users))
    for mu in (0.0, 0.3, 1.0, 5.0):
        sc = V - mu * C
        j = sc.argmax(1)
        dense = np.where(sc[r, j] > 0, sc[r, j], 0.0).sum()
        hull = (c["value"] - mu * c["expected_cost"]).groupby(c["user_id"]).max().clip(lower=0)
        assert hull.sum() == pytest.approx(dense, rel=1e-12, abs=1e-9)
    o = e.oracle_allocation(budget=50.0, user_ids=users)
    assert o.attrs["total_cost"] <= 50.0 + 1e-9 and o["user_id"].is_unique
    with pytest.raises(ValueError, match="objective"):
        e.oracle_candidates(objective="clicks")
    with pytest.raises(ValueError, match="user_ids"):
        e.oracle_candidates(user_ids=[pop.n_users])


def test_transactions_join_each_applied_window(pop):
    e = Environment(pop, seed=4)
    h = e.transactions()
    pd.testing.assert_frame_equal(h, pop.transactions)
    start = e.day
    out = e.apply({"user_id": [1, 2], "benefit": "coupon_10", "channel": "ads"}, days=30)
    tx = e.transactions()
    new = tx.iloc[len(h) :]
    # every order of the window, with its user, day and amount; nothing else
    assert len(new) == out["orders"].sum()
    per_user = new.groupby("user_id").size().reindex(range(pop.n_users), fill_value=0)
    np.testing.assert_array_equal(per_user.to_numpy(), out["orders"].to_numpy())
    gmv = new.groupby("user_id")["amount"].sum().reindex(range(pop.n_users), fill_value=0.0)
    np.testing.assert_allclose(gmv.to_numpy(), out["gmv"].to_numpy())
    assert new["day"].between(start, start + 29).all()
    assert new["category"].isna().all()
    assert len(e.transactions(history=False)) == len(new)
    # the windows survive pickling and copying
    e2 = pickle.loads(pickle.dumps(e))
    pd.testing.assert_frame_equal(e2.transactions(), tx)
    pd.testing.assert_frame_equal(e.copy().transactions(), tx)


def test_session_stream_invariants(env):
    sb = env.sessions(30_000, seed=2)
    assert sb.n == 30_000 and sb.context.shape == (sb.n, sb.n_features)
    assert sb.action_names[0] == "none" and len(sb.action_names) == 6
    assert len(sb.feature_names) == sb.n_features and np.isfinite(sb.context).all()
    assert sb.user_id.dtype == np.int64 and (sb.stage == 0).all() and sb.active.all()
    rng = np.random.default_rng(0)
    total_reward = 0.0
    for _ in range(4):
        before = sb.stage.copy()
        act = np.where(sb.active, rng.integers(0, 6, sb.n), 0)
        r = sb.step(act)
        assert r.reward.shape == r.cost.shape == (sb.n,)
        done_before = before >= 3
        assert (r.stage[done_before] == before[done_before]).all(), "done sessions stay done"
        assert (r.reward[done_before] == 0).all() and (r.cost[done_before] == 0).all()
        assert ((r.cost > 0) <= (r.stage == 3)).all(), "costs only on a purchase"
        assert ((r.reward > 0) == ((r.stage == 3) & ~done_before)).all()
        assert (r.done == (r.stage >= 3)).all()
        total_reward += r.reward.sum()
        if (~sb.active).any():
            bad = np.zeros(sb.n, np.int64)
            bad[np.flatnonzero(~sb.active)[0]] = 2
            with pytest.raises(ValueError, match="actions"):
                sb.step(bad)
    assert not sb.active.any()
    assert total_reward > 0
    with pytest.raises(ValueError, match="actions"):
        sb.step(np.zeros(3, np.int64))


def test_session_expected_value_and_heterogeneity(env):
    n = 60_000
    vals = {}
    for a in (0, 1, 3):
        sb = env.sessions(n, seed=7)
        ev = sb.expected_value(np.full(n, a))
        net = 0.0
        act = np.full(n, a)
        while sb.active.any():
            r = sb.step(np.where(sb.active, act, 0))
            net += (r.reward - r.cost).sum()
            act = np.zeros(n, np.int64)
        sim = net / n
        assert abs(sim - ev.mean()) < 0.05 * abs(ev.mean()) + 0.05, (a, sim, ev.mean())
        vals[a] = ev
    # Responses differ across users: guidance helps some and hurts others.
    d = vals[1] - vals[0]
    assert (d > 0).mean() > 0.2 and (d < 0).mean() > 0.05
    sb = env.sessions(100, seed=1)
    sb2 = pickle.loads(pickle.dumps(sb))
    a = np.ones(100, np.int64)
    np.testing.assert_array_equal(sb.step(a).reward, sb2.step(a).reward)


# ---- pipeline --------------------------------------------------------------------------------


def test_pipeline_stage(tmp_path):
    res = gm.pipeline.run(n_users=20_000, out=tmp_path)
    assert (tmp_path / "report.html").stat().st_size > 10_000
    summary = json.loads((tmp_path / "summary.json").read_text())
    k = summary["sections"]["sim"]["kpis"]
    assert k["users"] == 20_000 and k["transactions"] > 10_000
    assert 0.2 < k["prospect_share_true"] < 0.3
    arche = pd.read_parquet(tmp_path / "tables" / "sim_archetypes.parquet")
    assert len(arche) >= 6 and abs(arche["share"].sum() - 1) < 1e-9
    daily = pd.read_parquet(tmp_path / "tables" / "sim_daily.parquet")
    assert len(daily) == 365 and daily["orders"].sum() == k["transactions"]
    assert "The world" in (tmp_path / "report.html").read_text()
    resp = pd.read_parquet(tmp_path / "tables" / "sim_response.parquet")
    assert len(resp) == 25 and resp["eligible_share"].between(0, 1).all()
    assert (resp["incremental_conversion"] > 0).all()
    assert "sim" in res.stages


# ---- determinism, property tests -------------------------------------------------------------


def test_environment_and_sessions_deterministic_across_threads(pop):
    before = gm.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            gm.set_num_threads(threads)
            env = Environment(pop, seed=8)
            tr = {"user_id": np.arange(0, pop.n_users, 3), "action_id": 56}
            out = env.apply(tr, days=20)
            tu = env.true_uplift(np.arange(2000), 40)
            sb = env.sessions(50_000, seed=4)
            r = sb.step(np.full(sb.n, 1))
            outs.append((out, tu, sb.context, r.reward))
    finally:
        gm.set_num_threads(before)
    (a, b) = outs
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[3], b[3])


def test_progress_and_outputs(pop):
    p = Population.generate(5_000, seed=1, progress=True)
    assert p.n_users == 5_000
    env = Environment(p)
    pl = env.apply(None, days=3, output="polars")
    assert pl.shape[0] == 5_000
    ar = env.true_uplift(np.arange(10), 3, output="arrow")
    assert ar.num_rows == 10


def test_over_touching_raises_opt_outs():
    p = Population.generate(40_000, seed=2)
    e = Environment(p, seed=0)
    groups = np.array_split(np.arange(p.n_users), 3)
    ks = [1, 4, 10]
    tr = {
        "user_id": np.concatenate([np.repeat(g, k) for g, k in zip(groups, ks, strict=True)]),
        "benefit": "none",
        "channel": "ads",
    }
    out = e.apply(tr, days=7)
    rate = [out["opted_out"].to_numpy()[g].mean() for g in groups]
    assert rate[0] < rate[1] < rate[2], rate
    # Sleeping dogs opt out more.
    dogs = p.truth["sleeping_dog"].to_numpy()
    g = groups[2]
    assert (
        out["opted_out"].to_numpy()[g][dogs[g]].mean()
        > out["opted_out"].to_numpy()[g][~dogs[g]].mean()
    )


_SMALL = None


def _small_env() -> Environment:
    global _SMALL
    if _SMALL is None:
        _SMALL = Population.generate(3_000, seed=17)
    return Environment(_SMALL, seed=1)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    policy=st.lists(st.integers(0, 5), min_size=3, max_size=3),
)
def test_session_invariants_property(seed, policy):
    env = _small_env()
    sb = env.sessions(500, seed=seed)
    for a in policy:
        prev = sb.stage.copy()
        ev = sb.expected_value(np.where(sb.active, a, 0))
        assert np.isfinite(ev).all() and (ev[prev >= 3] == 0).all()
        r = sb.step(np.where(sb.active, a, 0))
        assert ((prev >= 3) <= (r.stage == prev)).all()
        assert ((r.cost > 0) <= (r.stage == 3)).all()
        assert (r.reward >= 0).all() and (r.cost >= 0).all()
        assert set(np.unique(r.stage)) <= {0, 1, 2, 3, 4}
    assert not sb.active.any(), "every session ends within three steps"


@settings(max_examples=20, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 2999),
            st.integers(0, 5),
            st.sampled_from(["ads", "email"]),
            st.integers(0, 3),
            st.integers(0, 9),
        ),  # fmt: skip
        min_size=1,
        max_size=40,
    )
)
def test_apply_property(rows):
    env = _small_env()
    users = env.population.users
    tr = pd.DataFrame(rows, columns=["user_id", "benefit", "channel", "content", "offset"])
    tr["day"] = env.day + tr.pop("offset")
    email_ok = users["email_opt_in"].to_numpy()[tr["user_id"]]
    dup_email = tr[tr.channel == "email"].duplicated(["user_id", "day"]).any()
    bad = ((tr.channel == "email") & ~email_ok).any() or dup_email
    bad = bad or (tr[tr.channel == "ads"].groupby(["user_id", "day"]).size() > 10).any()
    if bad:
        with pytest.raises(ValueError, match=r"treatments\['(channel|day)'\]"):
            env.apply(tr, days=10)
        assert env.day == env.population.days
        return
    out = env.apply(tr, days=10)
    touched = np.bincount(tr["user_id"], minlength=len(users))
    assert (out["touches"].to_numpy() == touched).all()
    assert (out["redeemed"] <= out["orders"]).all()
    assert ((out["incentive_cost"] > 0) <= (out["redeemed"] > 0)).all()
    assert (out.loc[touched == 0, ["incentive_cost", "channel_cost"]] == 0).all().all()
    assert (out["converted"] == (out["orders"] > 0)).all()


def test_generate_stops_on_ctrl_c():
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import growthmachine as gm, sys\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    gm.sim.Population.generate(30_000_000, progress=False)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True); sys.exit(3)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    t0 = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 3 and "interrupted" in out
    assert time.perf_counter() - t0 < 2.0


def test_baseline_expectation_matches_simulation(pop):
    env = Environment(pop, seed=12)
    users = np.arange(pop.n_users)
    t = env.true_uplift(users, 16)  # the expectation without any touch is in baseline_*
    out = env.apply(None, days=30)
    for sim_col, true_col in (("gmv", "baseline_gmv"), ("converted", "baseline_conversion")):
        x = out[sim_col].astype(float)
        se = x.std() / np.sqrt(len(x))
        assert abs(x.mean() - t[true_col].mean()) < 3 * se, (sim_col, x.mean(), t[true_col].mean())


def test_run_experiment_arguments(env):
    sub = np.arange(0, 2000, 2)
    log = env.run_experiment([56], share=0.3, days=5, seed=1, user_ids=sub)
    assert (log["user_id"].to_numpy() == sub).all()
    assert 0.2 < (log["action_id"] == 56).mean() < 0.4
    with pytest.raises(ValueError, match="user_ids"):
        env.run_experiment([56], user_ids=[1, 1])
    with pytest.raises(ValueError, match="share"):
        env.run_experiment([56], share=1.5)
    with pytest.raises(ValueError, match="actions"):
        env.run_experiment([10**6])
