"""The linear honest-value map (``Planner(calibration="linear")``): a line per stratum fitted by
the treatment x score interaction on a randomised log, slopes shrunk across strata."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from growthmachine.planning import LinearCalibration
from growthmachine.planning._calibrate import fit_linear_calibrations


def _log(rng, n, a, b, base_slope=0.7, noise=2.0):
    score = rng.normal(1.0, 1.5, size=n)
    treated = rng.random(n) < 0.4
    effect = a + b * score
    y = 3.0 + base_slope * score + treated * effect + rng.normal(size=n) * noise
    return score, y, treated, effect


def test_recovers_a_linear_effect_and_extrapolates():
    """One stratum, effect 0.5 + 2 x score: the map's slope and its value at the mean score are
    within 4 standard errors of the truth; the map keeps rising up to the 99.9 % quantile of
    the scores (an isotonic map of 5 bins is flat from the top fifth's mean) and is flat
    beyond it."""
    rng = np.random.default_rng(0)
    score, y, tr, effect = _log(rng, 100_000, 0.5, 2.0)
    (cal,) = fit_linear_calibrations(score, y, tr, np.zeros(len(y), np.int64), shrink=False)
    assert abs(cal.slope - 2.0) < 4 * cal.se_slope
    assert abs(cal.intercept - effect.mean()) < 4 * cal.se_intercept
    q80, q999 = np.quantile(score, [0.8, 0.999])
    assert cal(np.array([q999]))[0] - cal(np.array([q80]))[0] == pytest.approx(
        cal.slope * (q999 - q80)
    )
    assert cal(np.array([score.max() + 5.0]))[0] == pytest.approx(cal(np.array([q999]))[0])
    assert isinstance(cal, LinearCalibration)
    np.testing.assert_allclose(cal.knots_y, cal(cal.knots_x))


def test_a_falling_line_is_flat_and_noise_is_shrunk():
    """A negative slope is not trusted (the map is flat: never decreasing in the score); two
    strata whose slopes differ only by noise are pulled together."""
    rng = np.random.default_rng(1)
    score, y, tr, _ = _log(rng, 50_000, 1.0, -0.8)
    (cal,) = fit_linear_calibrations(score, y, tr, np.zeros(len(y), np.int64))
    assert cal.slope == 0.0
    s1, y1, t1, _ = _log(rng, 4_000, 1.0, 1.0, noise=6.0)
    s2, y2, t2, _ = _log(rng, 4_000, 1.0, 1.0, noise=6.0)
    strata = np.r_[np.zeros(4_000, np.int64), np.ones(4_000, np.int64)]
    args = (np.r_[s1, s2], np.r_[y1, y2], np.r_[t1, t2], strata)
    raw = fit_linear_calibrations(*args, shrink=False)
    shrunk = fit_linear_calibrations(*args, shrink=True)
    gap_raw = abs(raw[0].slope - raw[1].slope)
    assert gap_raw > 0.05  # the two noisy fits differ ...
    assert abs(shrunk[0].slope - shrunk[1].slope) < 0.5 * gap_raw  # ... and shrinking halves that


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    a=st.floats(-3, 3),
    b=st.floats(-3, 3),
    n_strata=st.integers(1, 4),
)
def test_maps_never_decrease_and_forecast_variance_is_finite(seed, a, b, n_strata):
    rng = np.random.default_rng(seed)
    score, y, tr, _ = _log(rng, 2_000, a, b)
    strata = rng.integers(0, n_strata, len(y))
    strata[:n_strata] = np.arange(n_strata)
    tr[:8] = [True, False] * 4  # every stratum below gets both groups
    for cal in fit_linear_calibrations(score, y, tr, np.minimum(strata, n_strata - 1)):
        assert cal.slope >= 0.0
        assert np.all(np.diff(cal(np.sort(score))) >= -1e-9)
        assert np.isfinite(cal.forecast_var(score)) and cal.forecast_var(score) >= 0.0


def test_forecast_variance_counts_shared_errors():
    cal = LinearCalibration(
        intercept=1.0, slope=2.0, centre=0.5, se_intercept=0.1, se_slope=0.2,
        counts=np.array([10, 10]), knots_x=np.array([0.0, 1.0]), knots_y=np.array([0.0, 2.0]),
    )  # fmt: skip
    s = np.array([0.0, 1.0, 2.0])  # 2.0 is beyond the map's range: valued as 1.0
    # deviations from the centre -0.5, 0.5, 0.5: their sum carries the slope's error
    assert cal.forecast_var(s) == pytest.approx((3 * 0.1) ** 2 + (0.5 * 0.2) ** 2)


def test_a_stratum_without_controls_is_named():
    rng = np.random.default_rng(2)
    score, y, tr, _ = _log(rng, 100, 1.0, 1.0)
    strata = np.zeros(100, np.int64)
    strata[tr & (score > np.median(score))] = 1  # stratum 1: treated rows only
    with pytest.raises(ValueError, match="stratum 1"):
        fit_linear_calibrations(score, y, tr, strata)
