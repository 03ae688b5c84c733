"""Pinned outputs of the world on a small population: draws must stay bit-identical.

The digests below were computed on the code before the world's static truth moved into a Rust
object (issue 14); any refactoring of ``growthmachine.sim`` must keep them. A digest covers every
column's bytes (categoricals: codes and categories), in column order.
"""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pandas as pd
import pytest

from growthmachine.sim import Environment, Population, WorldConfig


def digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for c in df.columns:
        h.update(str(c).encode())
        v = df[c]
        if isinstance(v.dtype, pd.CategoricalDtype):
            h.update(np.ascontiguousarray(v.cat.codes.to_numpy()).tobytes())
            h.update("|".join(map(str, v.cat.categories)).encode())
        else:
            a = np.ascontiguousarray(v.to_numpy())
            h.update(str(a.dtype).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def world() -> dict[str, str]:
    cfg = WorldConfig.from_dict({"population": {"prospect_share": 0.3}})
    pop = Population.generate(4_000, days=200, seed=7, config=cfg)
    out = {
        "users": digest(pop.users),
        "truth": digest(pop.truth),
        "transactions": digest(pop.transactions),
    }
    env = Environment(pop, seed=5)
    out["experiment"] = digest(env.run_experiment(actions=[3, 12, 30], share=0.6, days=30, seed=2))
    out["state_1"] = digest(env.state())
    users = np.arange(0, 4_000, 7)
    out["true_uplift"] = digest(env.true_uplift(users, 12, days=20))
    out["true_uplift_product"] = digest(env.true_uplift(users[:50], [0, 5, 44], product=True))
    out["oracle"] = digest(env.oracle_allocation(budget=300.0, days=20))
    eligible = env.eligible(users, np.full(len(users), 12))
    tr = {"user_id": users[eligible], "action_id": 12}
    out["expected_outcome"] = digest(env.expected_outcome(tr, days=25))
    back = pickle.loads(pickle.dumps(env))
    out["apply"] = digest(env.apply(tr, days=25))
    out["apply_unpickled"] = digest(back.apply(tr, days=25))
    out["state_2"] = digest(env.state())
    out["transactions_2"] = digest(env.transactions())
    sb = env.sessions(2_000, seed=4)
    ctx = pd.DataFrame(sb.context, columns=sb.feature_names)
    ctx["user_id"] = sb.user_id
    out["sessions"] = digest(ctx)
    r = sb.step(np.where(sb.active, 2, 0))
    out["sessions_step"] = digest(pd.DataFrame({"reward": r.reward, "cost": r.cost}))
    return out


PINNED = {
    "users": "6e0e59994f0dcf2b",
    "truth": "658a007d135d9f3a",
    "transactions": "d2080d3c050caa4d",
    "experiment": "352977a01e3963c5",
    "state_1": "359f1162ebb1d240",
    "true_uplift": "a3699ecac1d8ee89",
    "true_uplift_product": "3e92fc7a54374a9a",
    "oracle": "149811890cb6ac95",
    "expected_outcome": "cd743a6dc45b3736",
    "apply": "2695ca78b70394e9",
    "state_2": "933724710b754a18",
    "transactions_2": "56974bf41b723cfd",
    "sessions": "788847e1d2f1d18a",
    "sessions_step": "bc91c395e0e5b4fb",
}


@pytest.mark.parametrize("key", sorted(PINNED))
def test_world_outputs_are_pinned(world, key):
    assert world[key] == PINNED[key]


def test_unpickled_world_continues_identically(world):
    assert world["apply"] == world["apply_unpickled"]


def test_population_rebuilt_from_its_tables_is_the_same_world():
    """The tables (the pickled form, format 1) go back into the Rust core unchanged, and the
    environment built from the rebuilt population draws the same outcomes."""
    pop = Population.generate(2_000, days=150, seed=3)
    state = pop.__getstate__()
    assert state["__gm_version__"] == 1
    assert sorted(state["state"]) == ["config", "days", "seed", "transactions", "truth", "users"]
    back = pickle.loads(pickle.dumps(pop))
    for t in ("users", "transactions", "truth"):
        pd.testing.assert_frame_equal(getattr(back, t), getattr(pop, t))
    # an old pickle's state: plain (writable) frames, rebuilt by the constructor
    rebuilt = Population(
        pop.users.copy(), pop.transactions.copy(), pop.truth.copy(),
        days=pop.days, seed=pop.seed, config=pop.config,
    )  # fmt: skip
    tr = {"user_id": np.arange(0, 2_000, 3), "benefit": "coupon_10", "channel": "ads"}
    a = Environment(pop, seed=2).apply(tr, days=20)
    pd.testing.assert_frame_equal(a, Environment(back, seed=2).apply(tr, days=20))
    pd.testing.assert_frame_equal(a, Environment(rebuilt, seed=2).apply(tr, days=20))


def test_population_tables_are_read_only_views_and_bad_tables_are_named():
    pop = Population.generate(500, days=100, seed=1)
    assert pop.users is pop.users
    with pytest.raises(ValueError, match="read-only"):
        pop.truth.loc[0, "purchase_rate"] = 1.0
    truth = pop.truth.copy()
    truth["purchase_rate"] = truth["purchase_rate"].to_numpy().copy()
    truth.loc[4, "purchase_rate"] = np.nan
    with pytest.raises(ValueError, match=r"purchase_rate: row 4: must be finite"):
        Population(pop.users, pop.transactions, truth, days=100, seed=1, config=pop.config)
    users = pop.users.copy()
    users["device"] = pd.Categorical(["tv"] * 500)
    with pytest.raises(ValueError, match=r"users\['device'\]: row 0: 'tv' is not one of"):
        Population(users, pop.transactions, pop.truth, days=100, seed=1, config=pop.config)
    with pytest.raises(ValueError, match="truth: needs a 'gmv' column"):
        Population(
            pop.users, pop.transactions, pop.truth.drop(columns="gmv"),
            days=100, seed=1, config=pop.config,
        )  # fmt: skip
