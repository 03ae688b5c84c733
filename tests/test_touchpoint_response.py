"""gm.touchpoint.ResponseModel: recovery, shrinkage, partial_fit, pickling, errors, threads."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import growthmachine as gm
from growthmachine.touchpoint import ResponseModel

ARMS = np.array([0, 1, 2, 3, 4, 6, 9, 14])
# (b, A, k, h, a, d) per channel
EMAIL = (0.02, 0.10, 3.0, 2.0, 0.004, 0.0008)
SMS = (0.05, 0.06, 1.5, 1.0, 0.010, 0.0002)


def p_conv(t, n):
    b, A, k, h = t[:4]
    n = np.asarray(n, dtype=float)
    hill = np.where(n > 0, n**h / (n**h + k**h), 0.0)
    return b + A * hill


def p_opt(t, n):
    n = np.asarray(n, dtype=float)
    return 1.0 - np.exp(-(t[4] * n + t[5] * n * n))


def simulate(cells, seed=0):
    """cells: list of (segment, channel, truth, rows) -> DataFrame log."""
    rng = np.random.default_rng(seed)
    parts = []
    for seg, ch, t, rows in cells:
        n = rng.choice(ARMS, size=rows)
        parts.append(
            pd.DataFrame(
                {
                    "segment": seg,
                    "channel": ch,
                    "exposures": n,
                    "converted": (rng.random(rows) < p_conv(t, n)).astype(float),
                    "opted_out": (rng.random(rows) < p_opt(t, n)).astype(np.int8),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def big_log():
    return simulate([(7, "email", EMAIL, 300_000), (7, "sms", SMS, 300_000)], seed=1)


def test_recovers_the_parameters_of_its_own_model(big_log):
    m = ResponseModel().fit(big_log)
    assert m.n_obs_ == len(big_log)
    assert list(m.channels_) == ["email", "sms"]
    assert list(m.segments_) == [7]
    p = m.params_.set_index("channel")
    for ch, t in (("email", EMAIL), ("sms", SMS)):
        assert p.loc[ch, "b"] == pytest.approx(t[0], rel=0.06)
        assert p.loc[ch, "A"] == pytest.approx(t[1], rel=0.12)
        assert p.loc[ch, "a"] == pytest.approx(t[4], rel=0.15)
        assert p.loc[ch, "n_trials"] == 300_000
    cur = m.curves(ARMS)
    assert cur.incremental.shape == (1, 2, len(ARMS))
    for j, t in enumerate((EMAIL, SMS)):
        truth = p_conv(t, ARMS) - t[0]
        # 90 % bands: the truth inside up to a small slack, bands narrow, opt-out close
        assert np.all(cur.lower[0, j] <= truth + 2e-3)
        assert np.all(truth - 2e-3 <= cur.upper[0, j])
        assert np.all(cur.upper[0, j] - cur.lower[0, j] < 0.02)
        np.testing.assert_allclose(cur.opt_out[0, j], p_opt(t, ARMS), atol=0.01)
    assert cur.incremental[0, 0, 0] == 0.0  # no exposure, no increment


def test_predict_matches_curves_and_unknown_segments_get_the_channel_curve(big_log):
    m = ResponseModel().fit(big_log)
    cur = m.curves([2.0, 5.0])
    inc, opt = m.predict([7, 7, 99], ["sms", "email", "email"], [2, 5, 5], return_opt_out=True)
    assert inc[0] == cur.incremental[0, 1, 0]
    assert inc[1] == cur.incremental[0, 0, 1]
    assert opt[1] == cur.opt_out[0, 0, 1]
    chan = m.channel_params_.set_index("channel").loc["email"]
    hill = 5.0 ** chan["h"] / (5.0 ** chan["h"] + chan["k"] ** chan["h"])
    assert inc[2] == pytest.approx(chan["A"] * hill, rel=1e-12)
    assert m.predict([7], ["sms"], [0.0])[0] == 0.0


def test_shrinkage_pulls_tiny_segments_toward_the_channel_curve():
    common = (0.03, 0.08, 2.5, 1.5, 0.005, 0.0005)
    odd = (0.10, 0.30, 1.0, 1.0, 0.05, 0.005)
    cells = [(f"s{i}", "push", common, 30_000) for i in range(8)]
    cells += [("tiny", "push", odd, 16), ("big", "push", odd, 30_000)]
    log = simulate(cells, seed=2)
    lv = [1.0, 3.0, 9.0]
    eb = ResponseModel().fit(log)
    loose = ResponseModel(tau=5.0).fit(log)
    seg = list(eb.segments_)
    tiny, big = seg.index("tiny"), seg.index("big")
    c = eb.channel_params_.iloc[0]
    chan = c["A"] * np.array([n ** c["h"] / (n ** c["h"] + c["k"] ** c["h"]) for n in lv])
    d_eb = eb.curves(lv).incremental[tiny, 0] - chan
    d_loose = loose.curves(lv).incremental[tiny, 0] - chan
    # the tiny segment's curve stays near the channel's; with a loose spread it follows its 16 rows
    assert np.abs(d_eb).max() < 0.6 * np.abs(d_loose).max()
    own = p_conv(odd, lv) - odd[0]
    np.testing.assert_allclose(eb.curves(lv).incremental[big, 0], own, rtol=0.15)
    assert eb.tau_.loc["push", "log_k"] < 2.0  # estimated, below the weak prior's scale
    assert (loose.tau_.to_numpy() == 5.0).all()


def test_cells_without_data_fall_back_and_channels_without_data_are_flagged():
    t = (0.03, 0.08, 2.5, 1.5, 0.005, 0.0005)
    log = simulate([(0, "email", t, 4000), (1, "email", t, 4000), (1, "sms", t, 4000)], seed=3)
    m = ResponseModel(channels=["email", "sms", "ads"]).fit(log)
    cp = m.channel_params_.set_index("channel")
    assert cp["informed"].tolist() == [True, True, False]
    p = m.params_.set_index(["segment", "channel"])
    assert not p.loc[(0, "sms"), "has_data"] and p.loc[(1, "sms"), "has_data"]
    assert p.loc[(0, "sms"), "n_trials"] == 0
    for col in ("b", "A", "k", "h", "a", "d"):
        assert p.loc[(0, "sms"), col] == cp.loc["sms", col]
    with pytest.raises(ValueError, match=r"^channel: unknown channel 'tv'"):
        ResponseModel(channels=["email", "sms"]).fit(
            log.assign(channel=np.where(log.index == 5, "tv", log["channel"]))
        )


def _split(log, at):
    return log.iloc[:at].reset_index(drop=True), log.iloc[at:].reset_index(drop=True)


def _by_label(m):
    return m.params_.sort_values(["segment", "channel"]).reset_index(drop=True)


def test_partial_fit_equals_fit_of_the_concatenation():
    t = (0.03, 0.08, 2.5, 1.5, 0.005, 0.0005)
    log = simulate([(s, ch, t, 3000) for s in (3, 1, 2) for ch in ("sms", "email")], seed=4)
    log = log.sample(frac=1.0, random_state=0).reset_index(drop=True)
    # a has no segment 2 and no email: both arrive with b
    a = log[(log.segment != 2) & (log.channel == "sms")].reset_index(drop=True)
    b = log[~((log.segment != 2) & (log.channel == "sms"))].reset_index(drop=True)
    whole = ResponseModel().fit(pd.concat([a, b], ignore_index=True))
    inc = ResponseModel().partial_fit(a).partial_fit(b)
    assert inc.n_obs_ == whole.n_obs_ == len(log)
    pd.testing.assert_frame_equal(_by_label(inc), _by_label(whole), check_exact=True)


@settings(max_examples=15, deadline=None)
@given(at=st.integers(min_value=1, max_value=5999), seed=st.integers(0, 2**16))
def test_partial_fit_split_anywhere_equals_fit(at, seed):
    t = (0.05, 0.1, 2.0, 1.2, 0.01, 0.001)
    log = simulate([(0, "a", t, 3000), (1, "a", t, 3000)], seed=seed)
    log = log.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    a, b = _split(log, at)
    inc = ResponseModel().partial_fit(a).partial_fit(b)
    whole = ResponseModel().fit(log)
    pd.testing.assert_frame_equal(_by_label(inc), _by_label(whole), check_exact=True)
    cur = inc.curves([0.0, 1.0, 4.0, 20.0])
    # curves are probabilities with ordered bands, opt-out grows with exposures
    assert np.all((0 <= cur.lower) & (cur.lower <= cur.incremental))
    assert np.all((cur.incremental <= cur.upper) & (cur.upper <= 1))
    assert np.all(np.diff(cur.opt_out, axis=-1) >= 0)


def test_weights_and_input_types():
    t = (0.05, 0.1, 2.0, 1.2, 0.01, 0.001)
    log = simulate([(0, "a", t, 3000), (1, "b", t, 3000)], seed=5)
    ones = ResponseModel().fit(log.assign(w=1.0), weight="w")
    plain = ResponseModel().fit(log)
    pd.testing.assert_frame_equal(ones.params_, plain.params_)
    doubled = ResponseModel().fit(log.assign(w=2.0), weight="w")
    assert (doubled.params_["n_trials"] == 2 * plain.params_["n_trials"]).all()
    # categorical channels, dict of columns and polars give the same fit
    cat = ResponseModel().fit(log.assign(channel=log["channel"].astype("category")))
    pd.testing.assert_frame_equal(cat.params_, plain.params_)
    as_dict = ResponseModel().fit({k: log[k].to_numpy() for k in log.columns})
    pd.testing.assert_frame_equal(as_dict.params_, plain.params_)
    # a categorical (with an unused category) in a dict of columns is read by its codes
    codes = pd.Categorical(log["channel"], categories=["z", "b", "a"])
    cat_dict = ResponseModel().fit(
        {**{k: log[k].to_numpy() for k in log.columns}, "channel": codes}
    )
    assert list(cat_dict.channels_) == ["b", "a"]
    by = ["segment", "channel"]
    pd.testing.assert_frame_equal(
        cat_dict.params_.sort_values(by).reset_index(drop=True),
        plain.params_.sort_values(by).reset_index(drop=True),
    )
    pl = pytest.importorskip("polars")
    pd.testing.assert_frame_equal(ResponseModel().fit(pl.from_pandas(log)).params_, plain.params_)


def test_pickle_round_trip_then_partial_fit():
    t = (0.05, 0.1, 2.0, 1.2, 0.01, 0.001)
    log = simulate([(0, "a", t, 3000), (1, "b", t, 3000)], seed=6)
    a, b = _split(log, 2500)
    m = ResponseModel(interval=0.8).fit(a)
    back = pickle.loads(pickle.dumps(m))
    pd.testing.assert_frame_equal(back.params_, m.params_)
    for x, y in zip(back.curves([1, 2, 5]), m.curves([1, 2, 5]), strict=True):
        np.testing.assert_array_equal(x, y)
    pd.testing.assert_frame_equal(
        back.partial_fit(b).params_, m.partial_fit(b).params_, check_exact=True
    )
    state = m.__getstate__()
    state["state"]["_core"] = state["state"]["_core"][:-5]
    with pytest.raises(gm.StateError):
        ResponseModel().__setstate__(state)


@pytest.mark.parametrize(
    "mutate, exc, pattern",
    [
        (
            lambda d: d.assign(converted=np.where(d.index == 3, np.nan, d.converted)),
            ValueError,
            r"^converted: must be finite",
        ),
        (
            lambda d: d.assign(converted=np.where(d.index == 3, 2.0, d.converted)),
            ValueError,
            r"^converted: must be in \[0, 1\], found 2 at row 3",
        ),
        (
            lambda d: d.assign(opted_out=np.where(d.index == 4, -1, d.opted_out)),
            ValueError,
            r"^opted_out: must be in \[0, 1\]",
        ),
        (
            lambda d: d.assign(exposures=np.where(d.index == 2, -1, d.exposures)),
            ValueError,
            r"^exposures: must be >= 0",
        ),
        (lambda d: d.assign(exposures=d.exposures + 0.5), ValueError, r"^exposures: must hold"),
        (
            lambda d: d.assign(w=np.where(d.index == 1, -2.0, 1.0)),
            ValueError,
            r"^weight: must be >= 0",
        ),
        (lambda d: d.drop(columns="opted_out"), ValueError, r"^log: unknown column 'opted_out'"),
        (lambda d: d.iloc[:0], ValueError, r"^log: is empty"),
        (
            lambda d: d.assign(segment=np.where(d.index == 0, None, d.segment)),
            ValueError,
            r"^segment: has missing values",
        ),
        (lambda d: d.assign(converted="yes"), TypeError, r"^converted: must be numeric"),
    ],
)
def test_bad_input_names_the_argument(mutate, exc, pattern):
    t = (0.05, 0.1, 2.0, 1.2, 0.01, 0.001)
    log = simulate([(0, "a", t, 50)], seed=7)
    bad = mutate(log)
    weight = "w" if "w" in bad.columns else None
    with pytest.raises(exc, match=pattern):
        ResponseModel().fit(bad, weight=weight)


def test_bad_parameters_and_calls_name_the_argument():
    t = (0.05, 0.1, 2.0, 1.2, 0.01, 0.001)
    log = simulate([(0, "a", t, 200)], seed=8)
    with pytest.raises(ValueError, match=r"^tau: must be finite and > 0"):
        ResponseModel(tau=-1.0).fit(log)
    with pytest.raises(ValueError, match=r"^tau: must be a number or 6"):
        ResponseModel(tau=[1.0, 2.0]).fit(log)
    with pytest.raises(TypeError, match=r"^tau:"):
        ResponseModel(tau="big").fit(log)
    with pytest.raises(ValueError, match=r"^interval:"):
        ResponseModel(interval=1.0).fit(log)
    for bad, exc in [((0.0, 1.0), ValueError), ((1.0, -1.0), ValueError), ((1.0,), ValueError),
                     ((1.0, float("nan")), ValueError), ("1,1", TypeError), (2.0, TypeError),
                     ((1.0, "a"), TypeError)]:  # fmt: skip
        with pytest.raises(exc, match=r"^slope_prior:"):
            ResponseModel(slope_prior=bad).fit(log)
    with pytest.raises(TypeError, match=r"^log: expected a table"):
        ResponseModel().fit([1, 2, 3])
    with pytest.raises(ValueError, match=r"not fitted"):
        ResponseModel().curves([1])
    m = ResponseModel().fit(log)
    with pytest.raises(ValueError, match=r"^channel: unknown channel 'tv'"):
        m.predict([0], ["tv"], [1])
    with pytest.raises(ValueError, match=r"^levels: must be >= 0"):
        m.curves([1, -1])
    with pytest.raises(ValueError, match=r"^exposures: has length 2, expected 1"):
        m.predict([0], ["a"], [1, 2])


def test_one_and_two_threads_give_identical_fits():
    t = (0.03, 0.08, 2.5, 1.5, 0.005, 0.0005)
    u = (0.05, 0.04, 4.0, 1.0, 0.002, 0.0015)
    log = simulate([(s, ch, tt, 60_000) for s in range(5) for ch, tt in (("x", t), ("y", u))])
    rng = np.random.default_rng(0)
    log["w"] = rng.uniform(0.2, 1.3, len(log))  # non-dyadic: the order of sums matters
    before = gm.get_num_threads()
    try:
        gm.set_num_threads(1)
        one = ResponseModel().fit(log, weight="w")
        gm.set_num_threads(2)
        two = ResponseModel().fit(log, weight="w")
    finally:
        gm.set_num_threads(before)
    pd.testing.assert_frame_equal(one.params_, two.params_, check_exact=True)
    for x, y in zip(one.curves([1, 3, 7]), two.curves([1, 3, 7]), strict=True):
        np.testing.assert_array_equal(x, y)


def test_forgetting_follows_a_drifting_world():
    """With forget < 1 the past counts are down-weighted at each partial_fit: after the world's
    effect halves, the forgetting model's curve is closer to the new truth than the one that
    keeps every window at full weight; forget = 1 is the plain sum of the counts."""
    old = (0.05, 0.12, 4.0, 1.5, 0.005, 0.0005)
    new = (0.05, 0.04, 4.0, 1.5, 0.005, 0.0005)
    first = simulate([(0, "ads", old, 40_000)], seed=11)
    later = [simulate([(0, "ads", new, 40_000)], seed=12 + i) for i in range(3)]
    keep, forget = ResponseModel(), ResponseModel(forget=0.5)
    for m in (keep, forget):
        m.fit(first)
        for log in later:
            m.partial_fit(log)
    lv = np.array([8.0])
    truth = new[1] * 8**1.5 / (8**1.5 + 4**1.5)
    err_keep = abs(keep.curves(lv).incremental[0, 0, 0] - truth)
    err_forget = abs(forget.curves(lv).incremental[0, 0, 0] - truth)
    assert err_forget < 0.5 * err_keep
    whole = ResponseModel().fit(pd.concat([first, *later], ignore_index=True))
    pd.testing.assert_frame_equal(_by_label(keep), _by_label(whole), check_exact=True)
    with pytest.raises(ValueError, match="forget"):
        ResponseModel(forget=0.0).fit(first)
    with pytest.raises(ValueError, match="forget"):
        ResponseModel(forget=1.5).fit(first)


def _fatigued_log(t, rows, fresh, seed):
    """One segment and channel; users arrive with prior fatigue f in {0, 5, 20} (0 if fresh):
    opt-out hazard a n + d (n^2 + 2 n f)."""
    rng = np.random.default_rng(seed)
    n = rng.choice(ARMS, size=rows).astype(float)
    f = np.zeros(rows) if fresh else rng.choice([0.0, 5.0, 20.0], size=rows)
    lam = t[4] * n + t[5] * (n * n + 2 * n * f)
    return pd.DataFrame(
        {
            "segment": 0,
            "channel": "email",
            "exposures": n.astype(int),
            "converted": (rng.random(rows) < p_conv(t, n)).astype(float),
            "opted_out": (rng.random(rows) < 1 - np.exp(-lam)).astype(float),
            "fatigue": f,
        }
    )


def test_prior_fatigue_column_is_fitted_and_raises_the_opt_out_of_tired_users():
    t = (0.02, 0.06, 4.0, 2.0, 0.004, 0.0015)
    log = _fatigued_log(t, 60_000, fresh=False, seed=5)
    m = ResponseModel().fit(log, fatigue="fatigue")
    blind = ResponseModel().fit(log)
    p = m.params_.iloc[0]
    assert p["a"] == pytest.approx(t[4], rel=0.25)
    assert p["d"] == pytest.approx(t[5], rel=0.25)

    def truth(n, f):
        return 1 - np.exp(-(t[4] * n + t[5] * (n * n + 2 * n * f)))

    for f in (0.0, 20.0):
        _, o = m.predict([0], ["email"], [9], fatigue=[f], return_opt_out=True)
        assert o[0] == pytest.approx(truth(9, f), rel=0.15)
    # Ignoring the column, the tired users' opt-outs are read as the fresh users' rate.
    _, o = blind.predict([0], ["email"], [9], return_opt_out=True)
    assert o[0] > 1.3 * truth(9, 0.0)
    # curves and pooled_curves take the fatigue too
    assert m.curves([9], fatigue=20.0).opt_out[0, 0, 0] == pytest.approx(truth(9, 20.0), rel=0.15)
    assert m.pooled_curves([9], fatigue=20.0)[1][0, 0] > m.pooled_curves([9])[1][0, 0]
    # A model fitted on fresh users only extrapolates to tired ones from the fatigue within
    # the windows (no parameter is added).
    fresh = ResponseModel().fit(_fatigued_log(t, 60_000, fresh=True, seed=6), fatigue="fatigue")
    _, o = fresh.predict([0], ["email"], [9], fatigue=[20.0], return_opt_out=True)
    assert o[0] == pytest.approx(truth(9, 20.0), rel=0.3)
    # partial_fit of the two halves equals the fit of the whole
    half = ResponseModel().partial_fit(log.iloc[:30_000], fatigue="fatigue")
    half.partial_fit(log.iloc[30_000:], fatigue="fatigue")
    assert np.allclose(half.params_[["a", "d"]], m.params_[["a", "d"]], rtol=1e-9)
    # state round-trips
    m2 = pickle.loads(pickle.dumps(m))
    assert np.array_equal(
        m2.curves([3, 9], fatigue=5.0).opt_out, m.curves([3, 9], fatigue=5.0).opt_out
    )


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_bad_fatigue_names_the_argument(bad):
    log = _fatigued_log((0.02, 0.06, 4.0, 2.0, 0.004, 0.0015), 200, fresh=False, seed=1)
    log.loc[3, "fatigue"] = bad
    with pytest.raises(ValueError, match="fatigue"):
        ResponseModel().fit(log, fatigue="fatigue")
    m = ResponseModel().fit(log.drop(index=3))
    with pytest.raises(ValueError, match="fatigue"):
        m.predict([0], ["email"], [3], fatigue=[bad])
    with pytest.raises(ValueError, match="fatigue"):
        m.curves([3], fatigue=bad)
    with pytest.raises(ValueError, match="fatigue"):
        m.predict([0, 0], ["email"] * 2, [3, 4], fatigue=[1.0])


def test_fatigue_damping_of_the_conversion_is_learned_from_tired_users_only():
    """Conversion at n / (1 + r f): learned (fatigue_rate_, with the standard deviation of its
    log) when the log holds users of different prior fatigue, 0 when it does not (nothing
    assumed); a state from before the standard deviation loads with 0."""
    t, r = (0.02, 0.1, 5.0, 2.0, 0.002, 0.0002), 0.2
    rng = np.random.default_rng(9)
    n = rng.choice([0, 2, 4, 6, 9, 14, 20, 28, 40], size=80_000)
    f = rng.choice([0.0, 4.0, 12.0], size=len(n))
    log = pd.DataFrame({"segment": 0, "channel": "ads", "exposures": n,
                        "converted": (rng.random(len(n)) < p_conv(t, n / (1 + r * f))).astype(float),
                        "opted_out": 0.0, "fatigue": f})  # fmt: skip
    m = ResponseModel().fit(log, fatigue="fatigue")
    assert 0.1 <= m.fatigue_rate_ <= 0.3
    assert 0.0 < m.fatigue_rate_sd_ < 0.5
    assert abs(np.log(m.fatigue_rate_ / r)) < 3 * m.fatigue_rate_sd_
    tired = m.predict([0], ["ads"], [6], fatigue=[12.0])[0]
    assert tired == pytest.approx(p_conv(t, 6 / (1 + r * 12)) - t[0], rel=0.25)
    assert tired < 0.5 * m.predict([0], ["ads"], [6])[0]
    fresh = ResponseModel().fit(log.assign(fatigue=0.0), fatigue="fatigue")
    assert fresh.fatigue_rate_ == 0.0 and fresh.fatigue_rate_sd_ == 0.0
    back = pickle.loads(pickle.dumps(m))
    assert (back.fatigue_rate_, back.fatigue_rate_sd_) == (m.fatigue_rate_, m.fatigue_rate_sd_)
    del m.__dict__["fatigue_rate_sd_"]
    old = pickle.loads(pickle.dumps(m))
    assert old.fatigue_rate_sd_ == 0.0 and old.fatigue_rate_ == back.fatigue_rate_


def _height_log(n: int, seed: int, scale: tuple[float, float] = (1.5, 0.5)) -> pd.DataFrame:
    """Randomised arms where a feature ``hi`` doubles (x1.5 vs x0.5: ``scale``) the incremental
    conversion within each segment, a noise feature does nothing and ``buyer`` raises the
    baseline only."""
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, 4, n)
    hi = (rng.random(n) < 0.5).astype(float)
    buyer = (rng.random(n) < 0.3).astype(float)
    noise = rng.normal(size=n)
    e = rng.integers(0, 15, n)
    hill = e**2 / (e**2 + 36.0)
    p = 0.05 + 0.1 * buyer + (0.1 + 0.02 * seg) * hill * np.where(hi > 0, *scale)
    return pd.DataFrame(
        {
            "segment": seg,
            "channel": "ads",
            "exposures": e,
            "converted": (rng.random(n) < p).astype(float),
            "opted_out": (rng.random(n) < 0.01 * e / 10).astype(float),
            "hi": hi,
            "buyer": buyer,
            "noise": noise,
        }
    )


def test_covariates_scale_the_height_per_user():
    log = _height_log(200_000, 0)
    m = ResponseModel().fit(log, covariates=["hi", "buyer", "noise"])
    assert m.covariates_ == ("hi", "buyer", "noise")
    assert list(m.height_.index) == ["hi", "buyer", "noise"]
    x = pd.DataFrame({"hi": [1.0, 0.0], "buyer": [0.3, 0.3], "noise": [0.0, 0.0]})
    w = m.height(x)
    # the truth: 1.5 and 0.5 times the segment's average user's height
    assert w[0] == pytest.approx(1.5, abs=0.2) and w[1] == pytest.approx(0.5, abs=0.2)
    # the baseline feature and the noise do not move the height
    assert abs(m.height_.loc["buyer", "beta"]) < 0.1 and abs(m.height_.loc["noise", "beta"]) < 0.1
    assert m.height_.loc["buyer", "gamma"] > 0.02
    # an array in the fitted order gives the same; a wrong width or NaN is refused
    assert np.allclose(m.height(x.to_numpy()), w)
    with pytest.raises(ValueError, match="covariates"):
        m.height(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="covariates"):
        m.height(x.assign(hi=[np.nan, 1.0]))
    with pytest.raises(ValueError, match="covariates"):
        m.height(x.drop(columns="noise"))
    # partial_fit needs the same covariates; pickling keeps the height model
    with pytest.raises(ValueError, match="covariates"):
        ResponseModel().fit(log).partial_fit(log).height(x)
    with pytest.raises(ValueError, match="covariates"):
        m.partial_fit(log, covariates=["hi"])
    m2 = pickle.loads(pickle.dumps(m))
    assert np.array_equal(m2.height(x), w)


def test_covariates_without_signal_leave_the_curves_alone():
    """Features unrelated to the response: the empirical-Bayes precision shrinks every
    multiplier to about 1 (the segment curves unchanged)."""
    log = _height_log(20_000, 1)
    rng = np.random.default_rng(5)
    log = log.assign(u1=rng.normal(size=len(log)), u2=rng.integers(0, 2, len(log)) * 1.0)
    m = ResponseModel().fit(log, covariates=["u1", "u2"])
    w = m.height(log[["u1", "u2"]])
    assert np.abs(w - 1).max() < 0.15, (m.height_precision_, np.abs(w - 1).max())


def test_covariates_partial_fit_equals_fit_of_the_concatenation():
    log = _height_log(60_000, 2)
    a, b = log.iloc[:25_000], log.iloc[25_000:]
    cols = ["hi", "buyer", "noise"]
    m1 = ResponseModel().fit(a, covariates=cols).partial_fit(b, covariates=cols)
    m2 = ResponseModel().fit(log, covariates=cols)
    # the counts are exact; the height statistics of `a` keep the curves fitted on `a` alone
    x = log[cols].iloc[:50]
    assert np.allclose(m1.height(x), m2.height(x), atol=0.1)


def test_height_forget_weighs_the_past_windows_of_the_height_model():
    """A window where ``hi`` scales the height (x1.5 / x0.5), then one where it does not: with
    ``height_forget=1`` both windows count fully, with ``None`` the heights forget as the curves
    (``forget=0.5``), with a tiny one only the last window counts (multipliers near 1)."""
    cols = ["hi", "buyer", "noise"]
    a = _height_log(100_000, 3)
    b = _height_log(100_000, 4, scale=(1.0, 1.0))
    x = pd.DataFrame({"hi": [1.0, 0.0], "buyer": [0.3, 0.3], "noise": [0.0, 0.0]})

    def spread(height_forget):
        m = ResponseModel(forget=0.5, height_forget=height_forget)
        m.fit(a, covariates=cols).partial_fit(b, covariates=cols)
        w = m.height(x)
        return w[0] - w[1], m

    full, m = spread(1.0)
    half, m_half = spread(None)
    last, _ = spread(1e-6)
    assert m.get_params()["height_forget"] == 1.0 and "height_forget=1.0" in repr(m)
    assert full > half + 0.05 and half > last + 0.05, (full, half, last)
    assert abs(last) < 0.15
    assert np.array_equal(m_half.height(x), spread(0.5)[1].height(x))  # None: forget's 0.5
    # a state from before height_forget loads with None (its heights forgot as the curves)
    del m_half.__dict__["height_forget"]
    old = pickle.loads(pickle.dumps(m_half))
    assert old.height_forget is None and np.array_equal(old.height(x), m_half.height(x))
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(ValueError, match="height_forget"):
            ResponseModel(height_forget=bad).fit(a, covariates=cols)
    with pytest.raises(TypeError, match="height_forget"):
        ResponseModel(height_forget="1").fit(a, covariates=cols)


def _per_touch_log(base, k, halflife, days, rows, seed):
    """A log whose opt-outs follow a per-touch hazard ``base (1 + k F)`` as the world draws it:
    ``F`` the decayed number of earlier touches (halving every ``halflife`` days; prior fatigue
    ``f`` in {0, 4} decaying from the window's start), the touches on the days the planner's
    layout gives them (one channel, ``days`` days). Returns the log and the truth per (level,
    prior fatigue), averaged over the users of the level as laid out."""
    from growthmachine.touchpoint import Channel, FrequencyPlanner
    from growthmachine.touchpoint._scoring import fixed_plan

    rng = np.random.default_rng(seed)
    levels = np.array([0, 1, 2, 3, 4, 6, 8, 10, 14, 20, 28, 40, 56, 84, 140])
    n = rng.choice(levels, size=rows)
    f0 = np.where(rng.random(rows) < 0.5, 0.0, 4.0)
    pl = FrequencyPlanner([Channel("email", 0.001, 10)], days)
    sched = fixed_plan(pl, np.arange(rows), np.where(n > 0, 0, -1), n).schedule()
    touch_days = sched.groupby("user_id")["day"].apply(tuple).reindex(range(rows))

    def p_out(t, f):
        stay, fat, last = 1.0, f, 0
        for d in t:
            fat *= 0.5 ** ((d - last) / halflife)
            last = d
            stay *= 1.0 - base * (1.0 + k * fat)
            fat += 1.0
        return 1.0 - stay

    cache: dict = {}
    p = np.zeros(rows)
    for i, (t, f) in enumerate(zip(touch_days, f0, strict=True)):
        if isinstance(t, tuple):
            if (t, f) not in cache:
                cache[(t, f)] = p_out(t, f)
            p[i] = cache[(t, f)]
    truth = pd.DataFrame({"n": n, "f": f0, "p": p}).groupby(["n", "f"])["p"].mean()
    log = pd.DataFrame(
        {
            "segment": 0,
            "channel": "email",
            "exposures": n,
            "converted": (rng.random(rows) < 0.03).astype(float),
            "opted_out": (rng.random(rows) < p).astype(float),
            "fatigue": f0,
        }
    )
    return log, truth


def test_the_layouts_load_recovers_a_per_touch_hazard():
    """Fatigue halving every 2 days over a 28-day window: a per-touch hazard gives little extra
    opt-out to exposures spread over the days and much to several a day. With the window's
    layout (``horizon_days``) the fit recovers the hazard's base and fatigue and every level's
    opt-out; the quadratic ``a n + d n^2`` cannot (its errors are several times larger)."""
    base, k = 0.003, 0.5
    log, truth = _per_touch_log(base, k, 2.0, 28, 400_000, 3)
    m = ResponseModel(fatigue_halflife=2.0).fit(log, fatigue="fatigue", horizon_days=28)
    quad = ResponseModel().fit(log, fatigue="fatigue")
    assert m.horizon_days_ == 28 and quad.horizon_days_ is None
    p = m.params_.iloc[0]
    assert p["a"] == pytest.approx(base, rel=0.06)
    assert p["d"] == pytest.approx(base * k, rel=0.08)
    err, err_q = [], []
    for n in (1, 2, 3, 4, 6, 8, 10, 14, 20, 28):
        for f in (0.0, 4.0):
            want = truth[(n, f)]
            _, o = m.predict([0], ["email"], [n], fatigue=[f], return_opt_out=True)
            _, q = quad.predict([0], ["email"], [n], fatigue=[f], return_opt_out=True)
            err.append(abs(o[0] / want - 1))
            err_q.append(abs(q[0] / want - 1))
    assert max(err) < 0.04, err
    assert max(err_q) > 2 * max(err), (max(err_q), max(err))
    # the layout is kept by partial_fit and pickling; another horizon is refused by name
    half = ResponseModel(fatigue_halflife=2.0).fit(log.iloc[:200_000], fatigue="fatigue",
                                                   horizon_days=28)  # fmt: skip
    half.partial_fit(log.iloc[200_000:], fatigue="fatigue")
    assert half.horizon_days_ == 28
    assert np.allclose(half.params_[["a", "d"]], m.params_[["a", "d"]], rtol=1e-9)
    back = pickle.loads(pickle.dumps(m))
    assert back.horizon_days_ == 28 and back.get_params()["fatigue_halflife"] == 2.0
    np.testing.assert_array_equal(back.curves([3, 9], fatigue=4.0).opt_out,
                                  m.curves([3, 9], fatigue=4.0).opt_out)  # fmt: skip
    with pytest.raises(ValueError, match=r"^horizon_days: the model's logs were laid out over 28"):
        m.partial_fit(log.iloc[:100], fatigue="fatigue", horizon_days=14)
    with pytest.raises(ValueError, match=r"^fatigue_halflife: the model's logs"):
        m.set_params(fatigue_halflife=7.0).partial_fit(log.iloc[:100], horizon_days=28)
    # a state from before the layout loads as the quadratic model it was
    del quad.__dict__["fatigue_halflife"], quad.__dict__["horizon_days_"]
    old = pickle.loads(pickle.dumps(quad))
    assert old.horizon_days_ is None and old.fatigue_halflife == 7.0
    np.testing.assert_array_equal(old.curves([3]).opt_out, quad.curves([3]).opt_out)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        ({"horizon_days": 0}, ValueError, r"^horizon_days: must be >= 1"),
        ({"horizon_days": 367}, ValueError, r"^horizon_days: must be <= 366"),
        ({"horizon_days": 1.5}, TypeError, r"^horizon_days: must be an int"),
        (
            {"horizon_days": 14, "fatigue_halflife": 0.0},
            ValueError,
            r"^fatigue_halflife: must be > 0",
        ),
        ({"horizon_days": 14, "fatigue_halflife": np.nan}, ValueError, r"^fatigue_halflife:"),
    ],
)
def test_bad_layout_names_the_argument(kwargs, exc, pattern):
    log = simulate([(0, "a", (0.05, 0.1, 2.0, 1.2, 0.01, 0.001), 200)], seed=9)
    kw = dict(kwargs)
    halflife = kw.pop("fatigue_halflife", 7.0)
    with pytest.raises(exc, match=pattern):
        ResponseModel(fatigue_halflife=halflife).fit(log, **kw)


def test_slope_prior_moves_a_weakly_identified_shape_and_old_states_keep_theirs():
    """A concave truth (slope 0.8) with a small effect on a noisy baseline: the default slope
    prior (median 1, sd 1 on the log) lets the data put the slope below 1.3; a tight prior at
    2 (the earlier default's median) holds it S-shaped. ``slope_prior`` is a parameter
    (get_params, repr); a state saved before it loads with the earlier prior, and
    partial_fit keeps using it."""
    t = (0.07, 0.05, 8.0, 0.8, 0.005, 0.0002)
    rng = np.random.default_rng(3)
    n = rng.integers(0, 29, size=200_000)
    log = pd.DataFrame({"segment": 0, "channel": "ads", "exposures": n,
                        "converted": (rng.random(len(n)) < p_conv(t, n)).astype(float),
                        "opted_out": (rng.random(len(n)) < p_opt(t, n)).astype(float)})  # fmt: skip
    m = ResponseModel().fit(log)
    assert m.slope_prior == (1.0, 1.0) and m.get_params()["slope_prior"] == (1.0, 1.0)
    h = float(m.channel_params_["h"].iloc[0])
    assert h < 1.3
    tight = ResponseModel(slope_prior=(2.0, 0.05)).fit(log)
    assert float(tight.channel_params_["h"].iloc[0]) > 1.8
    assert "slope_prior=(2.0, 0.05)" in repr(tight)
    # a state from before slope_prior
    del m.__dict__["slope_prior"]
    old = pickle.loads(pickle.dumps(m))
    assert old.slope_prior == pytest.approx((np.exp(0.7), 0.4))
    again = old.partial_fit(log.iloc[:1000])
    assert again.slope_prior == pytest.approx((np.exp(0.7), 0.4))
