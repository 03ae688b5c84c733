"""Hostile input to growthmachine.insight (issue 15): values accepted that give silently wrong
answers, valid input that was rejected, raw library errors instead of messages naming the
argument."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from demo_transactions import simulate_transactions

from growthmachine import StateError
from growthmachine.insight import (
    BetaGeo,
    GammaGamma,
    KMeans,
    StandardScaler,
    clv,
    features,
    lifecycle,
    transition_matrix,
)


@pytest.fixture(scope="module")
def feats():
    tx, users = simulate_transactions(2000, 300, seed=3)
    return features(tx, 300, users=users)


@pytest.fixture(scope="module")
def models(feats):
    buyers = feats[feats["frequency"] > 0]
    return BetaGeo().fit(feats), GammaGamma(penalizer=0.01).fit(buyers)


@pytest.mark.parametrize("bad", [5.0, -0.1, 1.0001])
def test_lifecycle_rejects_p_alive_outside_0_1(feats, bad):
    pa = np.full(len(feats), 0.5)
    pa[3] = bad
    with pytest.raises(ValueError, match=r"p_alive: must be probabilities in \[0, 1\].*position 3"):
        lifecycle(feats, p_alive=pa)


def test_lifecycle_of_prospects_only_needs_no_model():
    users = pd.DataFrame({"user_id": [5, 6, 7], "signup_day": np.array([3, 8, 9], np.int32)})
    empty = {"user_id": np.array([], np.int64), "day": np.array([], np.int32), "amount": []}
    f = features(empty, 10, users=users)
    s = lifecycle(f)
    assert (s == "prospect").all() and s.index.tolist() == [5, 6, 7]


def test_transition_matrix_rejects_repeated_users_and_non_bool_normalize(feats):
    s = lifecycle(feats)
    m = transition_matrix(s, s)
    assert int(m.to_numpy().sum()) == len(s)
    dup = pd.concat([s, s.iloc[:1]])
    for before, after in ((dup, s), (s, dup)):
        with pytest.raises(ValueError, match="appears more than once"):
            transition_matrix(before, after)
    with pytest.raises(TypeError, match="normalize: must be True or False"):
        transition_matrix(s, s, normalize="yes")


def test_betageo_rejects_repeat_purchases_without_recency():
    x, t, T = np.array([2.0, 0.0]), np.array([0.0, 0.0]), np.array([30.0, 30.0])
    with pytest.raises(ValueError, match=r"recency: must be > 0 when frequency is > 0.*row 0"):
        BetaGeo().fit(x, t, T)


def test_betageo_simulate_names_missing_parameters():
    with pytest.raises(ValueError, match="params: needs exactly r, alpha, a, b.*alpha, a, b"):
        BetaGeo.simulate({"r": 1}, [10.0])
    with pytest.raises(ValueError, match="params\\['alpha'\\]: must be > 0"):
        BetaGeo.simulate({"r": 1, "alpha": -1, "a": 1, "b": 1}, [10.0])
    sim = BetaGeo.simulate({"r": 0.5, "alpha": 10, "a": 0.5, "b": 2}, [30.0, 60.0], seed=1)
    assert len(sim) == 2


def test_gammagamma_on_constant_spend_warns():
    x = np.array([1.0, 2.0, 3.0, 4.0] * 50)
    m = np.full(len(x), 20.0)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        gg = GammaGamma().fit(x, m)
    assert not gg.converged_
    # a fit that converges does not warn
    rng = np.random.default_rng(0)
    m2 = rng.gamma(5.0, 10.0, len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert GammaGamma().fit(x, m2).converged_


@pytest.mark.parametrize("big", [1e160, 1e200, 1e300])
def test_standard_scaler_on_huge_values_scales_them(big):
    # squares of these overflow float64: the variance is inf, the standard deviation is not
    x = np.array([[1.0, 2.0], [3.0, -4.0], [5.0, 6.0]]) * big
    sc = StandardScaler().fit(x)
    ref = StandardScaler().fit(x / big)
    np.testing.assert_allclose(sc.scale_ / big, ref.scale_, rtol=1e-12)
    np.testing.assert_allclose(sc.mean_ / big, ref.mean_, rtol=1e-12)
    z = sc.transform(x)
    np.testing.assert_allclose(z, ref.transform(x / big), rtol=1e-5, atol=1e-6)
    assert np.abs(z).max() > 0.5  # not the zeros it returned when the variance overflowed


def test_standard_scaler_on_ordinary_values_matches_the_two_pass_formula():
    rng = np.random.default_rng(4)
    x = rng.normal(3.0, 7.0, (1000, 3)) * np.array([1.0, 1e3, 1e-3])
    sc = StandardScaler().fit(x)
    mean = x.mean(axis=0)
    np.testing.assert_allclose(sc.mean_, mean, rtol=1e-14)
    np.testing.assert_allclose(sc.var_, ((x - mean) ** 2).mean(axis=0), rtol=1e-13)
    np.testing.assert_array_equal(sc.scale_, np.sqrt(sc.var_))


@pytest.mark.parametrize("rate", [-0.5, -1e-9, float("nan")])
def test_clv_rejects_a_negative_discount_rate(feats, models, rate):
    bg, gg = models
    with pytest.raises(ValueError, match="discount_rate"):
        clv(bg, gg, feats, discount_rate=rate)


def test_kmeans_bogus_dtype_names_the_argument():
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="dtype: must be None, 'float32' or 'float64'"):
        KMeans(2, dtype="bogus").fit(x)


@pytest.mark.parametrize("cls", [BetaGeo, GammaGamma, KMeans, StandardScaler])
def test_an_empty_inner_state_is_a_state_error(cls):
    obj = cls() if cls is not KMeans else KMeans(2)
    state = obj.__getstate__()
    blank = cls.__new__(cls)
    with pytest.raises(StateError, match="missing"):
        blank.__setstate__({**state, "state": {}})
    again = pickle.loads(pickle.dumps(obj))
    assert type(again) is cls


@pytest.mark.parametrize("tier, bad", [([0, 256], 256), ([-1, 0], -1)])
def test_cells_value_tier_range_is_inclusive_and_names_the_value(tier, bad):
    from growthmachine.insight import Cells

    with pytest.raises(ValueError, match=rf"value_tier: must be in 0 to 255, got {bad}"):
        Cells.build(["new", "new"], [0, 0], tier)


_SETUP = (
    f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
    "import numpy as np; from growthmachine.insight import *; "
    "from demo_transactions import simulate_transactions; "
    "tx, us = simulate_transactions(300, 200, seed=1); f = features(tx, 200, users=us); "
    "X = np.random.default_rng(0).normal(size=(100, 2)); "
)


@pytest.mark.parametrize(
    "call, error",
    [
        # an abort (handle_alloc_error) before: the discount factors were allocated unchecked
        (
            "bg = BetaGeo().fit(f); gg = GammaGamma(0.01).fit(f[f.frequency > 0]); "
            "clv(bg, gg, f, horizon=2**40)",
            "MemoryError: horizon:",
        ),
        # bare OverflowErrors from PyO3 before
        ("clv(BetaGeo(), GammaGamma(), f, horizon=2**64)", "ValueError: horizon:"),
        ("KMeans(2, max_iter=2**64).fit(X)", "ValueError: max_iter:"),
        ("MiniBatchKMeans(2, batch_size=2**64).fit(X)", "ValueError: batch_size:"),
        ("features(tx, 200, users=us, trend_window=2**64)", "ValueError: trend_window:"),
        ("BetaGeo(max_iter=2**64)", "ValueError: max_iter:"),
        ("GammaGamma(max_iter=2**64)", "ValueError: max_iter:"),
        (
            "BetaGeo.simulate({'r': 1, 'alpha': 1, 'a': 1, 'b': 1}, [10.0], seed=2**64)",
            "ValueError: seed:",
        ),  # fmt: skip
        ("Cells(min_size=2**64)", "ValueError: min_size:"),
        ("UserInsight(horizon=2**64)", "ValueError: horizon:"),
        ("UserInsight(seed=2**64)", "ValueError: seed:"),
    ],
)
def test_huge_numbers_raise_errors_naming_the_argument(call, error):
    r = subprocess.run(
        [sys.executable, "-c", _SETUP + call], capture_output=True, text=True, timeout=300
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and lines, r.stderr  # an exception, not a signal
    assert lines[-1].startswith(error), lines[-1]
