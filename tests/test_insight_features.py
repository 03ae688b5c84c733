"""gm.insight.features: lifetimes conventions, prospects, edge cases, input types, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from demo_transactions import simulate_transactions
from hypothesis import given, settings
from hypothesis import strategies as st

import growthmachine as gm
from growthmachine.insight import features

BASE = pd.Timestamp("2020-01-01")


def _lifetimes_summary(tx: pd.DataFrame, as_of: int) -> pd.DataFrame:
    from lifetimes.utils import summary_data_from_transaction_data

    t = tx.assign(date=BASE + pd.to_timedelta(tx["day"], unit="D"))
    return summary_data_from_transaction_data(
        t, "user_id", "date", "amount", observation_period_end=BASE + pd.Timedelta(days=as_of)
    )


def test_matches_lifetimes_summary_on_a_simulated_log():
    tx, _ = simulate_transactions(3000, 200, seed=1)
    as_of = 180  # some transactions fall after as_of and must be ignored
    f = features(tx, as_of).set_index("user_id")
    s = _lifetimes_summary(tx[["user_id", "day", "amount"]], as_of)
    assert set(f.index) == set(s.index)
    f = f.loc[s.index]
    np.testing.assert_array_equal(f["frequency"].to_numpy(), s["frequency"].to_numpy())
    np.testing.assert_array_equal(f["recency"].to_numpy(), s["recency"].to_numpy())
    np.testing.assert_array_equal(f["T"].to_numpy(), s["T"].to_numpy())
    np.testing.assert_allclose(f["monetary"].to_numpy(), s["monetary_value"].to_numpy(), rtol=1e-12)


def test_definitions_on_a_hand_made_log():
    tx = {
        "user_id": [7, 3, 7, 7, 7, 7, 7],
        "day": [1, 5, 1, 4, 10, 99, 16],
        "amount": [1.0, 2.0, 2.0, 5.0, 7.0, 100.0, 3.0],
    }
    f = features(tx, 20, users=[11, 3], trend_window=5)
    assert f["user_id"].tolist() == [3, 7, 11]
    assert f["is_prospect"].tolist() == [False, False, True]
    assert f["n_transactions"].tolist() == [1, 5, 0]
    assert f["frequency"].tolist() == [0, 3, 0]
    assert f["recency"].tolist() == [0, 15, 0]
    assert f["T"].tolist() == [15, 19, 0]
    # repeat days 4, 10, 16 spend 5, 7, 3 -> mean 5 (same-day purchases on day 1 collapse)
    assert f["monetary"].tolist() == [0, 5, 0]
    assert f["total_spend"].tolist() == [2, 18, 0]
    assert f["recent_spend"].tolist() == [0, 3, 0]  # window (15, 20]
    assert f["days_since_last"].iloc[1] == 4
    assert f["ipt_mean"].iloc[1] == 5.0 and f["ipt_std"].iloc[1] == pytest.approx(np.std([3, 6, 6]))
    assert np.isnan(f["first_purchase"].iloc[2]) and np.isnan(f["ipt_mean"].iloc[0])
    # trend: recent rate 3/5 per day vs earlier 15/(15-1+1) per day
    rr, er = 3 / 5, 15 / 15
    assert f["trend"].iloc[1] == pytest.approx((rr - er) / (rr + er))
    assert f["r_score"].iloc[2] == 0 and f["rfm_score"].iloc[2] == 0
    assert f["r_score"].iloc[1] >= f["r_score"].iloc[0]


def test_prospects_only_and_users_table_with_signup():
    users = pd.DataFrame({"user_id": [5, 6], "signup_day": np.array([3, 8], dtype=np.int32)})
    empty = {
        "user_id": np.array([], np.int64),
        "day": np.array([], np.int32),
        "amount": np.array([]),
    }
    f = features(empty, 10, users=users)
    assert f["is_prospect"].all()
    assert f["tenure"].tolist() == [7, 2]
    assert (f[["frequency", "recency", "T", "monetary", "trend"]].to_numpy() == 0).all()
    with pytest.raises(ValueError, match="is empty"):
        features(empty, 10)


def test_single_user_one_transaction_and_ties():
    f = features({"user_id": [42], "day": [3], "amount": [9.5]}, 3)
    assert len(f) == 1 and f["frequency"].iloc[0] == 0 and f["T"].iloc[0] == 0
    assert f["r_score"].iloc[0] == 1
    # everyone identical: every score ties
    tx = {"user_id": [1, 2, 3, 4], "day": [5] * 4, "amount": [1.0] * 4}
    f = features(tx, 9)
    assert f["r_score"].nunique() == 1 and f["m_score"].nunique() == 1


def test_bad_input_names_the_argument():
    ok = {"user_id": [1, 2], "day": [1, 2], "amount": [1.0, 2.0]}
    with pytest.raises(ValueError, match="amount.*finite"):
        features({**ok, "amount": [1.0, np.nan]}, 5)
    with pytest.raises(ValueError, match="amount: must be finite and >= 0"):
        features({**ok, "amount": [1.0, -2.0]}, 5)
    with pytest.raises(ValueError, match="unknown column 'when'"):
        features(ok, 5, time="when")
    with pytest.raises(ValueError, match="has length"):
        features({"user_id": [1, 2], "day": [1], "amount": [1.0, 2.0]}, 5)
    with pytest.raises(TypeError, match="as_of"):
        features(ok, "yesterday")
    with pytest.raises(ValueError, match="trend_window"):
        features(ok, 5, trend_window=0)
    with pytest.raises(ValueError, match="whole days"):
        features({**ok, "day": [1.5, 2.0]}, 5)
    with pytest.raises(ValueError, match="missing"):
        features({**ok, "c": pd.Categorical(["a", None])}, 5, category="c")


def test_input_types_agree():
    tx, _ = simulate_transactions(500, 100, seed=2)
    ref = features(tx, 90, category="category")
    pl_tx = pl.from_pandas(tx)
    got_pl = features(pl_tx, 90, category="category")
    pd.testing.assert_frame_equal(ref, got_pl)
    got_pa = features(pa.Table.from_pandas(tx), 90, category="category")
    pd.testing.assert_frame_equal(ref, got_pa)
    # int64 days, float32 amounts of the same values, string categories
    tx2 = tx.assign(day=tx["day"].astype(np.int64), category=tx["category"].astype(str))
    pd.testing.assert_frame_equal(ref, features(tx2, 90, category="category"))
    # datetimes
    tx3 = tx.assign(day=BASE + pd.to_timedelta(tx["day"], unit="D"))
    got = features(tx3, BASE + pd.Timedelta(days=90), category="category")
    np.testing.assert_array_equal(got["frequency"], ref["frequency"])
    np.testing.assert_array_equal(got["T"], ref["T"])
    out = features(tx, 90, output="polars")
    assert isinstance(out, pl.DataFrame) and out.height == len(ref)


def test_sparse_int64_ids_and_order_do_not_matter():
    tx, _ = simulate_transactions(800, 120, seed=3)
    ref = features(tx, 120)
    sparse = tx.assign(user_id=tx["user_id"] * 1_000_000_007 - (1 << 62))
    got = features(sparse.sample(frac=1.0, random_state=0), 120)
    np.testing.assert_array_equal(np.sort(got["user_id"]), got["user_id"])
    cols = [c for c in ref.columns if c != "user_id"]
    pd.testing.assert_frame_equal(ref[cols], got[cols])


def test_same_result_for_1_and_2_threads():
    tx, _ = simulate_transactions(20_000, 200, seed=4)
    gm.set_num_threads(1)
    a = features(tx, 200, category="category")
    gm.set_num_threads(2)
    b = features(tx, 200, category="category")
    pd.testing.assert_frame_equal(a, b)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 30), st.integers(0, 100)),
        min_size=1,
        max_size=60,
    ),
    st.integers(0, 30),
)
def test_property_counts_and_bounds(rows, as_of):
    u, d, a = (np.array(x) for x in zip(*rows, strict=True))
    f = features({"user_id": u, "day": d, "amount": a.astype(float)}, as_of, users=[0])
    kept = d <= as_of
    assert f["n_transactions"].sum() == kept.sum()
    assert f["total_spend"].sum() == pytest.approx(a[kept].sum())
    b = f[~f["is_prospect"]]
    assert (b["recency"] <= b["T"]).all() and (b["frequency"] <= b["recency"]).all()
    assert ((b["trend"] >= -1) & (b["trend"] <= 1)).all()
    assert b["r_score"].between(1, 5).all()
