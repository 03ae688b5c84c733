"""BetaGeo / GammaGamma / clv: parameter recovery, agreement with lifetimes, predictions, errors,
determinism, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import growthmachine as gm
from growthmachine.insight import BetaGeo, GammaGamma, clv

TRUE = {"r": 0.6, "alpha": 12.0, "a": 0.8, "b": 2.5}


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    T = rng.integers(10, 365, 40_000).astype(float)
    d = BetaGeo.simulate(TRUE, T, seed=1)
    # whole days, like features(): a repeat purchase is at least one day after the first
    rep = d["frequency"].to_numpy() > 0
    d["recency"] = np.where(rep, np.maximum(np.floor(d["recency"]), 1.0), 0.0)
    nu = rng.gamma(4.0, 1 / 15.0, len(d))
    m = np.zeros(len(d))
    x = d["frequency"].to_numpy()[rep]
    m[rep] = rng.gamma(6.0 * x, 1 / (nu[rep] * x))  # mean of x Gamma(6, nu) draws
    d["monetary"] = m
    return d


def _lifetimes_bg(d, penalizer=0.0):
    from lifetimes import BetaGeoFitter

    # note: d.T would be the transpose under pandas; lifetimes is given plain arrays
    return BetaGeoFitter(penalizer_coef=penalizer).fit(
        d["frequency"].to_numpy(), d["recency"].to_numpy(), d["T"].to_numpy()
    )


def test_recovers_generating_parameters(sim):
    bg = BetaGeo().fit(sim)
    assert bg.converged_
    for k, v in TRUE.items():
        z = (bg.params_[k] - v) / bg.standard_errors_[k]
        assert abs(z) < 4, (k, bg.params_[k], v, bg.standard_errors_[k])
    gg = GammaGamma().fit(sim)
    for k, v in {"p": 6.0, "q": 4.0, "gamma": 15.0}.items():
        assert abs(gg.params_[k] - v) < 4 * gg.standard_errors_[k] + 0.05 * v, (k, gg.params_)


@pytest.mark.parametrize("penalizer", [0.0, 0.01])
def test_matches_lifetimes(sim, penalizer):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    d = sim.iloc[:15_000]
    bg = BetaGeo(penalizer).fit(d)
    lt = _lifetimes_bg(d, penalizer)
    for k in bg.params_:
        assert bg.params_[k] == pytest.approx(lt.params_[k], rel=1e-4)
    # same log-likelihood at the respective optima, lifetimes' own formula, unscaled time
    n = len(d)
    ll_lt = (
        -BetaGeoFitter._negative_log_likelihood(
            np.log(lt.params_.to_numpy()),
            d["frequency"].to_numpy(),
            d["recency"].to_numpy(),
            d["T"].to_numpy(),
            np.ones(n),
            0.0,
        )
        * n
    )
    assert bg.log_likelihood_ == pytest.approx(ll_lt, rel=1e-6)
    if penalizer == 0.0:
        for k in bg.params_:
            assert bg.standard_errors_[k] == pytest.approx(lt.standard_errors_[k], rel=1e-3)
    rep = d[d["frequency"] > 0]
    gg = GammaGamma(penalizer).fit(d)
    lg = GammaGammaFitter(penalizer_coef=penalizer).fit(
        rep["frequency"].to_numpy(), rep["monetary"].to_numpy()
    )
    for k, lk in (("p", "p"), ("q", "q"), ("gamma", "v")):
        assert gg.params_[k] == pytest.approx(lg.params_[lk], rel=1e-4)


def test_predictions_match_lifetimes_formulas(sim):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    d = sim.iloc[:3000]
    bg = BetaGeo().fit(d)
    gg = GammaGamma().fit(d)
    lt = BetaGeoFitter()
    lt.params_ = pd.Series(bg.params_)
    lt.predict = lt.conditional_expected_number_of_purchases_up_to_time  # set by fit()
    lg = GammaGammaFitter()
    lg.params_ = pd.Series({"p": gg.params_["p"], "q": gg.params_["q"], "v": gg.params_["gamma"]})
    x, t, T, m = (d[c].to_numpy() for c in ("frequency", "recency", "T", "monetary"))
    np.testing.assert_allclose(
        bg.expected_purchases(90, d),
        lt.conditional_expected_number_of_purchases_up_to_time(90, x, t, T),
        rtol=1e-9,
    )
    np.testing.assert_allclose(bg.p_alive(d), lt.conditional_probability_alive(x, t, T), rtol=1e-9)
    np.testing.assert_allclose(
        bg.expected_purchases_new([10.0, 100.0]),
        lt.expected_number_of_purchases_up_to_time(np.array([10.0, 100.0])),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        gg.expected_spend(x, m), lg.conditional_expected_average_profit(x, m), rtol=1e-12
    )
    got = clv(bg, gg, d, horizon=6, discount_rate=0.02)
    ref = lg.customer_lifetime_value(
        lt, pd.Series(x), pd.Series(t), pd.Series(T), pd.Series(m), time=6, discount_rate=0.02
    )
    np.testing.assert_allclose(got, ref.to_numpy(), rtol=1e-8)
    assert (got >= 0).all()


def test_weights_equal_duplicated_rows(sim):
    d = sim.iloc[:2000]
    w = np.where(np.arange(len(d)) % 3 == 0, 2.0, 1.0)
    dup = pd.concat([d, d[w == 2.0]])
    a = BetaGeo().fit(d, weights=w)
    b = BetaGeo().fit(dup)
    for k in a.params_:
        assert a.params_[k] == pytest.approx(b.params_[k], rel=1e-7)
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-12)
    assert b.n_unique_ < len(dup)
    ga = GammaGamma().fit(d["frequency"], d["monetary"], weights=w)
    gb = GammaGamma().fit(dup)
    for k in ga.params_:
        assert ga.params_[k] == pytest.approx(gb.params_[k], rel=1e-7)


def test_edge_cases_and_errors():
    # no repeat buyers at all: still a finite fit of the BG/NBD likelihood
    with pytest.raises(ValueError, match="frequency"):
        BetaGeo().fit([1.5, 2], [1, 2], [3, 4])
    with pytest.raises(ValueError, match="recency: must be <= T"):
        BetaGeo().fit([1, 2], [5, 2], [3, 4])
    with pytest.raises(ValueError, match="recency: must be 0 when frequency is 0"):
        BetaGeo().fit([0, 2], [1, 2], [3, 4])
    with pytest.raises(ValueError, match="finite"):
        BetaGeo().fit([1, np.nan], [1, 2], [3, 4])
    with pytest.raises(ValueError, match="has length"):
        BetaGeo().fit([1, 2], [1], [3, 4])
    with pytest.raises(ValueError, match="weights"):
        BetaGeo().fit([1, 2], [1, 2], [3, 4], weights=[-1, 1])
    with pytest.raises(ValueError, match="penalizer"):
        BetaGeo(penalizer=-1)
    with pytest.raises(ValueError, match="monetary"):
        GammaGamma().fit([1, 2], [0.0, 3.0])
    with pytest.raises(ValueError, match="Gamma-Gamma needs repeat buyers"):
        GammaGamma().fit([0, 0], [0.0, 0.0])
    with pytest.raises(gm.StateError, match="not fitted"):
        BetaGeo().p_alive([1], [1], [2])
    # single customer, and one purchase per customer (no repeats): finite, converged fits
    one = BetaGeo().fit([3], [20], [40])
    assert np.isfinite(one.log_likelihood_)
    no_rep = BetaGeo().fit(np.zeros(50), np.zeros(50), np.arange(1, 51, dtype=float))
    assert np.isfinite(no_rep.log_likelihood_)
    assert (no_rep.p_alive(np.zeros(3), np.zeros(3), np.ones(3)) == 1).all()


def test_huge_frequencies_are_fine():
    rng = np.random.default_rng(5)
    T = np.full(3000, 365.0)
    d = BetaGeo.simulate({"r": 50.0, "alpha": 5.0, "a": 0.2, "b": 40.0}, T, seed=3)
    assert d["frequency"].max() > 1000
    bg = BetaGeo().fit(d)
    assert bg.converged_ and np.isfinite(list(bg.params_.values())).all()
    assert rng is not None


def test_same_fit_for_1_and_2_threads(sim):
    gm.set_num_threads(1)
    a = BetaGeo().fit(sim)
    ga = GammaGamma().fit(sim)
    gm.set_num_threads(2)
    b = BetaGeo().fit(sim)
    gb = GammaGamma().fit(sim)
    assert a.params_ == b.params_ and a.log_likelihood_ == b.log_likelihood_
    assert ga.params_ == gb.params_


def test_pickle_round_trip_and_version(sim):
    bg = BetaGeo().fit(sim.iloc[:2000])
    back = pickle.loads(pickle.dumps(bg))
    assert back.params_ == bg.params_
    np.testing.assert_array_equal(back.p_alive(sim.iloc[:10]), bg.p_alive(sim.iloc[:10]))
    state = bg.__getstate__()
    state["__gm_version__"] = 99
    with pytest.raises(gm.StateError, match="format version 99"):
        BetaGeo.__new__(BetaGeo).__setstate__(state)
    gg = GammaGamma().fit(sim.iloc[:2000])
    assert pickle.loads(pickle.dumps(gg)).params_ == gg.params_
