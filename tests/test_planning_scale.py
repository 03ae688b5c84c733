"""The planner's fast paths at scale equal their plain definitions (issue 10's speed target)."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

import growthmachine as gm


def _plain_features(insight, users):
    """The definition: one float64 column per number, 0/1 per boolean, one 0/1 column per
    level (``str`` of the value) of a text or categorical column, -1 for non-finite history."""
    cols = {}

    def add(df, prefix=""):
        for c in df.columns:
            if c in ("user_id", "cell_id", "cluster", "cell_label", "cluster_name"):
                continue
            s = df[c]
            if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or s.dtype == "string":
                cats = (
                    s.cat.categories
                    if isinstance(s.dtype, pd.CategoricalDtype)
                    else sorted(s.astype(str).unique())
                )
                vals = s.astype(str).to_numpy()
                for k in cats:
                    cols[f"{prefix}{c}={k}"] = (vals == str(k)).astype(float)
            elif s.dtype == bool:
                cols[f"{prefix}{c}"] = s.to_numpy(float)
            else:
                v = s.to_numpy(float)
                cols[f"{prefix}{c}"] = np.where(np.isfinite(v), v, -1.0)

    ids = insight.users_["user_id"].to_numpy()
    add(insight.features_)
    add(insight.users_[["stage", "value_tier", "p_alive", "expected_purchases", "clv"]])
    add(users.set_index("user_id").loc[ids].reset_index(drop=True), "user.")
    return np.column_stack(list(cols.values())), list(cols), ids


def _tables(n, seed):
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(10, 10 + n))
    recency = rng.exponential(30, n)
    recency[rng.random(n) < 0.3] = np.nan  # prospects: no history
    feats = pd.DataFrame(
        {
            "user_id": ids,
            "is_prospect": np.isnan(recency),
            "recency": recency,
            "n_transactions": rng.integers(0, 9, n),
            "r_score": rng.integers(1, 6, n).astype(np.uint8),
            "trend": np.where(rng.random(n) < 0.1, np.inf, rng.normal(size=n)),
        }
    )
    base = pd.DataFrame(
        {
            "user_id": ids,
            "stage": pd.array(rng.choice(["new", "mature", "at-risk"], n), dtype="string"),
            "value_tier": rng.integers(0, 4, n).astype(np.uint8),
            "p_alive": rng.random(n),
            "expected_purchases": rng.random(n) * 3,
            "clv": rng.gamma(2.0, 50.0, n),
            "cluster": rng.integers(0, 3, n),
        }
    )
    city = pd.Categorical(rng.choice(["t1", "t2", "t3"], n), categories=["t3", "t1", "t2", "t9"])
    city[min(3, n - 1)] = np.nan  # a missing category matches no level
    users = pd.DataFrame(
        {
            "user_id": rng.permutation(ids),  # another order than the insight's
            "city": city,
            "device": rng.choice(["ios", "web", "android"], n).astype(object),
            "band": rng.choice([3, 1, 2], n).astype(object),  # levels by their text
            "signup": pd.array(rng.integers(0, 400, n), dtype="Int64"),
            "has_app": rng.random(n) < 0.5,
        }
    )
    return types.SimpleNamespace(users_=base, features_=feats), users


@pytest.mark.parametrize("n", [1, 5, 20_000])  # 20k rows: several chunks of the Rust fill
def test_features_equal_their_definition(n):
    insight, users = _tables(n, n)
    X, names, ids = gm.planning.planning_features(insight, users)
    users_plain = users.assign(signup=users["signup"].to_numpy(np.int64))
    Xp, names_p, ids_p = _plain_features(insight, users_plain)
    assert names == names_p
    np.testing.assert_array_equal(ids, ids_p)
    assert X.dtype == np.float64 and X.flags.c_contiguous
    np.testing.assert_array_equal(X, Xp)
    assert X.tobytes() == Xp.tobytes()  # bit for bit
    # users already in the insight's order take the fast path, to the same matrix
    ordered = users.set_index("user_id").loc[ids].reset_index()
    np.testing.assert_array_equal(gm.planning.planning_features(insight, ordered)[0], X)


def test_features_name_a_text_column_with_missing_values():
    insight, users = _tables(50, 1)
    users.loc[7, "device"] = None
    with pytest.raises(ValueError, match=r"users\['device'\]: has missing values"):
        gm.planning.planning_features(insight, users)


@pytest.fixture(scope="module")
def fitted():
    from sklearn.linear_model import Ridge

    from growthmachine.planning.uplift import TLearner

    pop = gm.sim.Population.generate(6_000, days=365, seed=5)
    env = gm.sim.Environment(pop, seed=5)
    ui = gm.insight.UserInsight(
        n_clusters=8, n_prospect_clusters=8, min_cell_size=15, max_iter=20, progress=False
    ).fit(pop.transactions, as_of=pop.days, users=pop.users)
    full = gm.planning.Plan.default(env)
    keep = [b for b in full.benefits if b.name in ("coupon_10", "free_shipping")]
    d = gm.planning.Plan(
        goals=full.goals, audiences=full.audiences, benefits=keep,
        channels=[c for c in full.channels if c.name in ("email", "in_app", "ads")],
        contents=full.contents[:1], budget=300.0,
    ).to_dict()  # fmt: skip
    d["goals"] = [{**d["goals"][0], "floor": 1.0}]  # a floor keeps every eligible pair
    d["benefits"][0]["budget"] = 100.0
    plan = gm.planning.Plan.from_dict(d)
    log = gm.planning.run_experiment(env, plan, share=0.6, seed=5, progress=False)
    model = TLearner(Ridge(alpha=1.0), n_folds=1)
    return gm.planning.Planner(plan, model, seed=0).fit(
        log, ui, pop.users, opted_out=env.opted_out()
    )


def _arrays(prob):
    return [prob.indptr, prob.action, prob.value, *prob.usage, prob.users, prob.lower, prob.upper]


def test_candidates_by_blocks_equal_the_whole_matrix(fitted, monkeypatch):
    from growthmachine.planning import _candidates

    pl = fitted
    whole = pl.candidates()
    # the definition: np.nonzero of the whole (users x tasks) goal-value matrix
    vals = pl.values()
    gv = pl._goal_value(vals)
    r, j = np.nonzero(np.isfinite(gv))
    np.testing.assert_array_equal(whole.action, j)
    np.testing.assert_array_equal(whole.value, gv[r, j])
    np.testing.assert_array_equal(whole.usage[0], vals["cost"][r, j])
    np.testing.assert_array_equal(whole.users, pl.user_ids_[np.unique(r)])
    np.testing.assert_array_equal(np.diff(whole.indptr), np.bincount(r)[np.unique(r)])
    assert whole.resources == ["cost", "budget:coupon_10", "goal:profit"]
    n = len(pl.user_ids_)
    allowed = np.zeros(n, dtype=bool)
    allowed[::3] = True
    ex = {"user": pl.user_ids_[[5, 2, 900]], "value": np.array([1.0, 2.0, 3.0]),
          "cost": np.ones(3), "name": "other", "budget": 2.0, "usage": {}}  # fmt: skip
    full = pl._candidates(None, vals, allowed, ex)
    for block in (1, 7, n - 1):  # one user, blocks with a partial last one
        monkeypatch.setattr(_candidates, "BLOCK", block)
        for a, b in zip(_arrays(pl.candidates()), _arrays(whole), strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(
            _arrays(pl._candidates(None, vals, allowed, ex)), _arrays(full), strict=True
        ):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("goals", ["profit", "floor", "weighted"])
def test_candidates_in_one_rust_pass_equal_the_numpy_blocks(fitted, goals, monkeypatch):
    """``candidates()`` takes one Rust pass over the float32 scores (``_kept_in_rust``); the
    numpy path by blocks (the maps, the goal value, ``np.nonzero``) gives the same problem, bit
    for bit: one profit goal (positive values kept), a floor (finite values kept), and weighted
    goals of other metrics, one with an audience, with a share of the users allowed."""
    from growthmachine.planning import _candidates
    from growthmachine.planning._plan import Goal

    pl = fitted
    d = pl.plan.to_dict()
    if goals == "profit":
        d["goals"] = [Goal("profit", kind="arpu", metric="profit").to_dict()]
    elif goals == "weighted":
        d["goals"] = [
            Goal("profit", kind="arpu", metric="profit", weight=0.6).to_dict(),
            Goal("winback", kind="retention", metric="gmv", weight=0.25).to_dict(),
            Goal("buyers", kind="acquisition", metric="gmv", weight=3.0).to_dict(),
        ]
    p2 = gm.planning.Plan.from_dict(d)
    pl2 = gm.planning.Planner(p2, pl.model, seed=0)
    pl2.__dict__.update({k: v for k, v in pl.__dict__.items() if k not in ("plan", "goal_masks_")})
    rng = np.random.default_rng(0)
    n = len(pl.user_ids_)
    pl2.goal_masks_ = {g.name: rng.random(n) < 0.5 for g in p2.goals if g.kind != "arpu"}
    calls = []
    fast = _candidates._kept_in_rust

    def counted(*a):
        out = fast(*a)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(_candidates, "_kept_in_rust", counted)
    allowed = rng.random(n) < 0.8
    got = [pl2.candidates(), pl2._candidates(None, pl2._values_rows, allowed)]
    assert calls == [True, True]
    monkeypatch.setattr(_candidates, "_kept_in_rust", lambda *a: None)
    want = [pl2.candidates(), pl2._candidates(None, pl2._values_rows, allowed)]
    for g, w in zip(got, want, strict=True):
        assert g.n_candidates > 0 and g.resources == w.resources
        for a, b in zip(_arrays(g), _arrays(w), strict=True):
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes()  # bit for bit (the sign of a zero too)
