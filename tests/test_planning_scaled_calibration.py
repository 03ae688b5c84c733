"""The scaled honest-value map (``Planner(calibration="scaled")``): a stratum's level measured
on the randomised log, spread over its pairs in proportion to the model's score."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from growthmachine.planning import Calibration, ScaledCalibration
from growthmachine.planning._calibrate import ControlPool, fit_scaled_calibrations


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
    positive) its mean over the scores it was fitted on is the level times the share of their
    positive part that the clipping to its knots keeps (the level itself, up to 1 %, when the
    clipping keeps 99 % of it). With few positive scores the few clipped at the top knot can be
    a few per cent of that part (hypothesis found 0.987 with 19 % of the scores positive)."""
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
            pos = np.maximum(x, 0.0)
            kept = np.maximum(np.clip(x, cal.knots_x[0], cal.knots_x[-1]), 0.0).sum() / pos.sum()
            assert mean == pytest.approx(kept, rel=1e-9)


def _pooled_log(rng, n_treated, n_control, levels, noise=5.0, tasks_per_stratum=3):
    """A log whose treated rows carry tasks (``tasks_per_stratum`` per stratum, uneven shares),
    users eligible for each task with their own probability, and a baseline that differs with
    eligibility (so an estimator that compared treated rows with the wrong controls would be
    biased); every control row is in the pool, a share of them also in the rows at a
    pseudo-task (as the planner draws them)."""
    S = len(levels)
    T = S * tasks_per_stratum
    task_stratum = np.repeat(np.arange(S), tasks_per_stratum)
    share = rng.dirichlet(np.ones(T) * 2.0)
    p_elig = rng.uniform(0.3, 0.9, T)
    # controls: eligibility per task, outcome = baseline (+1 per eligible task) + noise
    elig_c = rng.random((n_control, T)) < p_elig
    y_c = elig_c.sum(1) * 1.0 + rng.normal(0.0, noise, n_control)
    # treated: task drawn by share, kept only if eligible (delivered)
    task = rng.choice(T, size=n_treated, p=share)
    elig_t = rng.random((n_treated, T)) < p_elig
    delivered = elig_t[np.arange(n_treated), task]
    task, elig_t = task[delivered], elig_t[delivered]
    score = rng.gamma(2.0, 1.0, len(task))
    effect = np.asarray(levels)[task_stratum[task]] * score / 2.0
    y_t = elig_t.sum(1) * 1.0 + effect + rng.normal(0.0, noise, len(task))
    counts = np.bincount(task, minlength=T)
    # the rows of the map: treated at their task, controls at an eligible pseudo-task
    pseudo = rng.choice(T, size=n_control, p=counts / counts.sum())
    ok = elig_c[np.arange(n_control), pseudo]
    strata = np.r_[task_stratum[task], task_stratum[pseudo[ok]]]
    y = np.r_[y_t, y_c[ok]]
    treated = np.r_[np.ones(len(task), bool), np.zeros(ok.sum(), bool)]
    sc = np.r_[score, rng.gamma(2.0, 1.0, ok.sum())]
    pool = ControlPool(elig_c, y_c, task_stratum, counts)
    truth = [effect[task_stratum[task] == s].mean() for s in range(S)]
    return sc, y, treated, strata, pool, truth


def test_control_pool_weights_are_the_treated_mixture_of_eligible_controls():
    """A stratum's control mean over the pool is ``sum_t w_t x mean(y of the controls eligible
    for t)`` with ``w_t`` its tasks' shares of the treated rows (checked against that sum
    directly); the weights sum to 1, and the variance is the weights' sum of squares times the
    weighted controls' variance."""
    rng = np.random.default_rng(5)
    _, _, _, _, pool, _ = _pooled_log(rng, 4_000, 3_000, [1.0, 2.0])
    for s in range(2):
        a = pool.weights(s)
        assert a.sum() == pytest.approx(1.0, rel=1e-12)
        tasks = np.flatnonzero(pool.task_stratum == s)
        w = pool.treated_counts[tasks] / pool.treated_counts[tasks].sum()
        direct = sum(
            wt * pool.y[pool.eligible[:, t]].mean() for wt, t in zip(w, tasks, strict=True)
        )
        mean, var, n_eff = pool.level(s)
        assert mean == pytest.approx(direct, rel=1e-12)
        assert var == pytest.approx(pool.y[a > 0].var(ddof=1) * (a @ a), rel=1e-12)
        assert n_eff == pytest.approx(1.0 / (a @ a), rel=1e-12)
        assert n_eff > 0.5 * (a > 0).sum()  # nearly every eligible control counts


def test_levels_from_the_control_pool_are_unbiased_and_tighter():
    """Over 40 simulated logs whose baseline depends on eligibility, the pool's levels are
    centred on the truth (mean z-score within 0.5, z-scores' sd near 1: the standard error is
    right) and their standard errors are smaller than those of the controls at pseudo-tasks
    (which use a third of the eligible controls here)."""
    z, ratio = [], []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        sc, y, tr, strata, pool, truth = _pooled_log(rng, 3_000, 6_000, [0.5, 2.0, 4.0])
        with_pool = fit_scaled_calibrations(sc, y, tr, strata, shrink=False, controls=pool)
        pseudo = fit_scaled_calibrations(sc, y, tr, strata, shrink=False)
        for s, (a, b) in enumerate(zip(with_pool, pseudo, strict=True)):
            z.append((a.raw_level - truth[s]) / a.level_se)
            ratio.append(a.level_se / b.level_se)
            assert a.counts[1] > 1.5 * b.counts[1]  # effective controls
    z = np.array(z)
    assert abs(z.mean()) < 0.5
    assert 0.75 < z.std() < 1.25
    # the treated rows' noise is untouched: with 1,000 treated and 1,200 -> 3,600 controls per
    # stratum the ratio should be about sqrt((1/1000 + 1/3600) / (1/1000 + 1/1200)) = 0.84
    assert max(ratio) < 1.0 and np.mean(ratio) < 0.92


def test_a_control_pool_without_eligible_controls_is_named():
    rng = np.random.default_rng(6)
    sc, y, tr, strata, pool, _ = _pooled_log(rng, 1_000, 500, [1.0, 2.0])
    pool.eligible[:, pool.task_stratum == 1] = False
    with pytest.raises(ValueError, match="stratum 1 has no control eligible"):
        fit_scaled_calibrations(sc, y, tr, strata, controls=pool)
