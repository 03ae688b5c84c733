"""The scaled honest-value map (``Planner(calibration="scaled")``): a stratum's level measured
on the randomised log, spread over its pairs in proportion to the model's score."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from growthmachine.planning import Calibration, ScaledCalibration
from growthmachine.planning._calibrate import fit_scaled_calibrations


def _log(rng, n, levels, noise=5.0):
    """Scores from a gamma (mean 2); stratum ``s``'s true effect is ``levels[s] x score / 2``."""
    S = len(levels)
    score = rng.gamma(2.0, 1.0, size=n)
    strata = rng.integers(0, S, n)
    treated = rng.random(n) < 0.5
    effect = np.asarray(levels)[strata] * score / 2.0
    y = rng.normal(0.0, noise, n) + treated * effect
    return score, y, treated, strata, effect


def test_recovers_each_strata_level_and_spreads_it_by_score():
    """Three strata with levels -1, 1 and 3: each fitted level is within 4 standard errors of the
    stratum's true mean effect; the map doubles from a score at the mean to twice the mean; a
    level that is not positive gives a flat map; scores beyond the 0.1 % / 99.9 % quantiles are
    valued as those."""
    rng = np.random.default_rng(0)
    score, y, tr, strata, effect = _log(rng, 300_000, [-1.0, 1.0, 3.0])
    maps = fit_scaled_calibrations(score, y, tr, strata, shrink=False)
    for s, cal in enumerate(maps):
        assert isinstance(cal, ScaledCalibration) and isinstance(cal, Calibration)
        truth = effect[strata == s].mean()
        assert abs(cal.level - truth) < 4 * cal.level_se
        assert cal.raw_level == cal.level  # no shrinkage asked
    for cal in maps[1:]:
        m = cal.mean_score
        v = cal(np.array([m, 2 * m]))
        assert v[1] == pytest.approx(2 * v[0], rel=1e-9)
        assert v[0] == pytest.approx(cal.level, rel=1e-9)
        top = cal(np.array([cal.knots_x[-1], cal.knots_x[-1] + 50.0]))
        assert top[0] == top[1]
    flat = maps[0]
    assert flat.level < 0  # the true level is -1, many standard errors below 0
    assert np.all(flat(np.array([0.0, 1.0, 10.0])) == flat.level)


def test_levels_are_shrunk_toward_zero_by_their_noise():
    """With one stratum of no effect among strong ones, shrinking pulls every level toward 0 and
    narrows its standard error; the map's scale follows the shrunk level."""
    rng = np.random.default_rng(1)
    score, y, tr, strata, _ = _log(rng, 20_000, [0.0, 0.4, 3.0], noise=8.0)
    raw = fit_scaled_calibrations(score, y, tr, strata, shrink=False)
    post = fit_scaled_calibrations(score, y, tr, strata, shrink=True)
    for r, p in zip(raw, post, strict=True):
        assert abs(p.level) <= abs(r.level) + 1e-12
        assert p.level_se <= r.level_se + 1e-12
        assert p.raw_level == r.level


def test_a_level_the_log_cannot_tell_from_zero_is_valued_at_zero():
    """With ``alpha``, a stratum whose raw level is within z(1 - alpha / 2) standard errors of 0
    gets level 0 (flat map at 0, ``tested=False``); the others keep the level they have without
    the test, and the standard error stays the shrunk one. Strata of true level 0 (x3, large
    noise; raw levels -0.26, -0.01 and +0.25 in this draw, on both sides of 0) and 3: the first
    three are untested at 5 %, the last is tested even at alpha = 1e-9."""
    rng = np.random.default_rng(4)
    score, y, tr, strata, _ = _log(rng, 40_000, [0.0, 0.0, 0.0, 3.0], noise=8.0)
    plain = fit_scaled_calibrations(score, y, tr, strata)
    for alpha, z in ((0.05, 1.959964), (0.5, 0.674490), (1e-9, 6.109410)):
        tested = fit_scaled_calibrations(score, y, tr, strata, alpha=alpha)
        for k, (p, t) in enumerate(zip(plain, tested, strict=True)):
            yt, yc = y[(strata == k) & tr], y[(strata == k) & ~tr]
            se = np.sqrt(yt.var(ddof=1) / len(yt) + yc.var(ddof=1) / len(yc))
            assert t.tested == (abs(yt.mean() - yc.mean()) > z * se)
            assert t.raw_level == p.raw_level and t.level_se == p.level_se
            if t.tested:
                assert t.level == p.level and np.array_equal(t.knots_y, p.knots_y)
            else:
                assert t.level == 0.0
                assert np.all(t(np.array([-1.0, 0.0, 1.0, 100.0])) == 0.0)
    at5 = fit_scaled_calibrations(score, y, tr, strata, alpha=0.05)
    assert [c.tested for c in at5] == [False, False, False, True]
    assert at5[3].table()["tested"].all() and not at5[0].table()["tested"].any()


def test_forecast_variance_counts_the_shared_level():
    """One level serves every pair: the variance of a sum is (sum of value / level)^2 x se^2,
    not a sum of independent terms; scores beyond the knots count as the end knots."""
    cal = ScaledCalibration(
        knots_x=np.array([0.0, 4.0]), knots_y=np.array([0.0, 4.0]), se=np.full(2, 0.1),
        raw=np.full(2, 2.0), counts=np.array([10, 10]), level=2.0, level_se=0.1,
        raw_level=2.0, mean_score=2.0,
    )  # fmt: skip
    s = np.array([1.0, 2.0, 9.0])  # 9 is valued as 4: weights 0.5 + 1 + 2
    assert cal.forecast_var(s) == pytest.approx((3.5 * 0.1) ** 2)
    assert cal(s) == pytest.approx([1.0, 2.0, 4.0])


def test_a_stratum_without_controls_is_named():
    rng = np.random.default_rng(2)
    score, y, tr, strata, _ = _log(rng, 200, [1.0])
    strata[:] = 0
    strata[tr & (score > np.median(score))] = 1  # stratum 1: treated rows only
    with pytest.raises(ValueError, match="stratum 1"):
        fit_scaled_calibrations(score, y, tr, strata)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    levels=st.lists(st.floats(-3, 3), min_size=1, max_size=4),
    shift=st.floats(-3, 3),
)
def test_maps_never_decrease_and_average_to_their_level(seed, levels, shift):
    """Whatever the levels and however many scores fall below 0: every map is non-decreasing in
    the score, its forecast variance is finite and non-negative, and (when the level is
    positive) its mean over the scores it was fitted on, clipped to its knots, is the level
    up to that clipping (between 0.99 and 1.01 of it)."""
    rng = np.random.default_rng(seed)
    score, y, tr, strata, _ = _log(rng, 4_000, levels)
    score = score + shift
    strata[: 2 * len(levels)] = np.repeat(np.arange(len(levels)), 2)
    tr[: 2 * len(levels)] = [True, False] * len(levels)
    for s, cal in enumerate(fit_scaled_calibrations(score, y, tr, strata)):
        x = np.sort(score[strata == s])
        assert np.all(np.diff(cal(x)) >= -1e-12)
        v = cal.forecast_var(x)
        assert np.isfinite(v) and v >= 0.0
        if cal.level > 0 and cal.mean_score > 0:
            mean = cal(x).mean() / cal.level
            assert 0.99 < mean < 1.01 or (x > 0).mean() < 0.05
