"""The planner's fast paths at scale equal their plain definitions (issue 10's speed target)."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

import growthmachine as gm
from growthmachine.planning import _features


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


@pytest.mark.parametrize("n", [1, 5, 20_000])  # 20k rows: several blocks and a partial one
def test_features_equal_their_definition(n, monkeypatch):
    monkeypatch.setattr(_features, "_BLOCK", 4096)
    insight, users = _tables(n, n)
    X, names, ids = gm.planning.planning_features(insight, users)
    users_plain = users.assign(signup=users["signup"].to_numpy(np.int64))
    Xp, names_p, ids_p = _plain_features(insight, users_plain)
    assert names == names_p
    np.testing.assert_array_equal(ids, ids_p)
    assert X.dtype == np.float64 and X.flags.c_contiguous
    np.testing.assert_array_equal(X, Xp)
    # users already in the insight's order take the fast path, to the same matrix
    ordered = users.set_index("user_id").loc[ids].reset_index()
    np.testing.assert_array_equal(gm.planning.planning_features(insight, ordered)[0], X)


def test_features_name_a_text_column_with_missing_values():
    insight, users = _tables(50, 1)
    users.loc[7, "device"] = None
    with pytest.raises(ValueError, match=r"users\['device'\]: has missing values"):
        gm.planning.planning_features(insight, users)
