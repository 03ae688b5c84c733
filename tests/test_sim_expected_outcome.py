"""Tests of ``Environment.expected_outcome``: the expected outcome of a whole treatment table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import growthmachine as gm
from growthmachine.sim import Environment, Population


@pytest.fixture(scope="module")
def pop() -> Population:
    return Population.generate(2000, seed=0)


def campaign(env: Environment, start: int) -> pd.DataFrame:
    """8 ads over 4 days for everyone, a coupon_10 e-mail on day 2 for e-mail subscribers and, for
    every fourth push subscriber, a coupon_5 push on day 1 (two coupons: the averaged cost)."""
    u = env.population.users
    ids = np.arange(env.n_users)
    rows = [
        pd.DataFrame(
            {
                "user_id": ids,
                "benefit": "none",
                "channel": "ads",
                "content": env.config.response.contents[i % 4],
                "day": start + i // 2,
            }
        )
        for i in range(8)
    ]
    mail = ids[u["email_opt_in"].to_numpy()]
    rows.append(pd.DataFrame({"user_id": mail, "benefit": "coupon_10", "channel": "email",
                              "content": "personalised", "day": start + 1}))  # fmt: skip
    push = ids[u["push_opt_in"].to_numpy() & (ids % 4 == 0)]
    rows.append(pd.DataFrame({"user_id": push, "benefit": "coupon_5", "channel": "push",
                              "content": "discount", "day": start}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_equals_true_uplift_for_one_action_per_user(pop):
    env = Environment(pop, seed=1)
    # Some history first: fatigue, opt-outs and lifecycles that are not the initial ones.
    env.apply(campaign(env, env.day), days=5)
    users = np.arange(env.n_users)
    acts = np.resize(env.actions["action_id"].to_numpy(), len(users))
    ok = env.eligible(users, acts)
    users, acts = users[ok], acts[ok]
    assert len(users) > 1000
    eo = env.expected_outcome({"user_id": users, "action_id": acts}, days=20)
    tu = env.true_uplift(users, acts, days=20)
    np.testing.assert_array_equal(eo["user_id"], users)
    assert (eo["touches"] == 1).all()
    np.testing.assert_array_equal(eo["exposures"], env.actions["is_offsite"].to_numpy()[acts])
    for c in ["incremental_conversion", "incremental_orders", "incremental_gmv",
              "expected_incentive_cost", "channel_cost", "expected_cost", "incremental_profit",
              "baseline_conversion", "baseline_gmv"]:  # fmt: skip
        np.testing.assert_allclose(eo[c], tu[c], rtol=1e-9, atol=1e-12, err_msg=c)


def test_matches_the_mean_of_apply_on_copies_of_the_world(pop):
    env = Environment(pop, seed=0)
    tr = campaign(env, env.day)
    eo = env.expected_outcome(tr, days=14)
    assert (eo["touches"] >= 8).all() and len(eo) == env.n_users
    want = {
        "converted": (eo["incremental_conversion"] + eo["baseline_conversion"]).sum(),
        "gmv": (eo["incremental_gmv"] + eo["baseline_gmv"]).sum(),
        "incentive_cost": eo["expected_incentive_cost"].sum(),
        "opted_out": eo["p_optout"].sum(),
        "optouts": eo["expected_optouts"].sum(),
    }
    before = env.opted_out().to_numpy()
    totals = []
    for k in range(200):
        world = env.copy(seed=100 + k)
        out = world.apply(tr, days=14)
        optouts = (world.opted_out().to_numpy() & ~before).sum()
        totals.append([out["converted"].sum(), out["gmv"].sum(), out["incentive_cost"].sum(),
                       out["opted_out"].sum(), optouts])  # fmt: skip
        np.testing.assert_allclose(out["channel_cost"], eo["channel_cost"], rtol=1e-12)
    totals = np.array(totals, dtype=float)
    mean = totals.mean(axis=0)
    se = totals.std(axis=0, ddof=1) / np.sqrt(len(totals))
    for j, (name, w) in enumerate(want.items()):
        assert abs(mean[j] - w) < 4.5 * se[j], (name, mean[j], w, se[j])


def test_does_not_advance_the_world(pop):
    env = Environment(pop, seed=2)
    twin = env.copy()
    s0 = env.state()
    eo = env.expected_outcome(campaign(env, env.day + 3), start_day=env.day + 3, days=10)
    assert len(eo) == env.n_users
    assert env.day == twin.day == pop.days
    pd.testing.assert_frame_equal(env.state(), s0)
    # Nor its randomness: the next window plays out exactly as in an untouched copy.
    tr = campaign(env, env.day)
    pd.testing.assert_frame_equal(env.apply(tr, days=7), twin.apply(tr, days=7))
    empty = env.expected_outcome(None)
    assert len(empty) == 0 and "incremental_profit" in empty.columns


def _bad_tables(env: Environment) -> list[tuple[dict, int | None, int, str]]:
    d = env.day
    return [
        ({"user_id": [env.n_users], "action_id": 0}, None, 30, r"treatments\['user_id'\]"),
        ({"user_id": [5] * 11, "benefit": "none", "channel": "ads"}, None, 30,
         r"treatments\['day'\].*cap is 10"),
        ({"user_id": [1], "action_id": 0, "day": [d + 30]}, None, 30, r"treatments\['day'\]"),
        ({"user_id": [1], "action_id": 0}, None, 0, r"days"),
        ({"user_id": [1], "action_id": 0}, d - 1, 30, r"start_day"),
    ]  # fmt: skip


def test_rejects_bad_input_like_apply(pop):
    env = Environment(pop, seed=3)
    for table, start, days, pattern in _bad_tables(env):
        with pytest.raises(ValueError, match=pattern) as got:
            env.expected_outcome(table, start_day=start, days=days)
        with pytest.raises(ValueError) as applied:
            env.apply(table, start_day=start, days=days)
        assert str(got.value) == str(applied.value)
    assert env.day == pop.days
    with pytest.raises(TypeError, match="start_day"):
        env.expected_outcome({"user_id": [1], "action_id": 0}, start_day=1.5)


def test_same_result_for_one_and_two_threads():
    big = Population.generate(40_000, seed=4)  # three chunks of users
    env = Environment(big, seed=5)
    tr = campaign(env, env.day)
    n0 = gm.get_num_threads()
    try:
        gm.set_num_threads(1)
        a = env.expected_outcome(tr)
        gm.set_num_threads(2)
        b = env.expected_outcome(tr)
    finally:
        gm.set_num_threads(n0)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert len(a) == env.n_users
