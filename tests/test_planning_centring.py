"""Centring the outcome before the uplift model (``Planner(center=True)``)."""

from __future__ import annotations

import numpy as np

from growthmachine.planning._crossfit import centring_baseline, crossfit
from growthmachine.planning.uplift import UpliftForest


def test_centring_baseline_is_out_of_sample():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X @ np.array([2.0, -1.0, 0.5]) + rng.normal(size=400)
    base = centring_baseline(X, y, seed=1)
    # the prediction tracks the outcome's signal...
    assert np.corrcoef(base, y)[0, 1] > 0.8
    # ...but no row's prediction moves with its own outcome; half the others' do
    y2 = y.copy()
    y2[7] += 1e3
    moved = centring_baseline(X, y2, seed=1) != base
    assert not moved[7]
    assert 150 < moved.sum() < 250
    assert np.array_equal(centring_baseline(X, y, seed=1), base)  # deterministic for a seed


def _heavy_buyers(n, seed):
    """Orders of users whose baseline rate spreads widely (heavy and light buyers), with a
    small incremental effect that depends on another feature."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.lognormal(0.0, 1.0, n), rng.uniform(size=n), rng.normal(size=n)])
    tau = 0.1 + 0.3 * (X[:, 1] > 0.5)
    t = rng.integers(0, 2, n)
    y = rng.poisson(3.0 * X[:, 0]) + (rng.uniform(size=n) < tau * t)
    return X, t, y.astype(np.float64), tau


def test_centring_cuts_the_error_of_noisy_outcomes():
    X, t, y, tau = _heavy_buyers(60_000, 0)
    fold_of_user = np.arange(len(X)) % 2
    err = {}
    for centre in (False, True):
        model = UpliftForest(n_estimators=40, min_samples_leaf=400, seed=0, progress=False)
        est, _, _ = crossfit(
            {"orders": model}, X, X, t, np.zeros(len(X), np.int64), {"orders": y},
            fold_of_user, fold_of_user, 2, 1, {"orders": None},
            center=frozenset({"orders"} if centre else ()), seed=0,
        )  # fmt: skip
        err[centre] = float(np.sqrt(np.mean((est["orders"][:, 0] - tau) ** 2)))
    # the spread of the heavy buyers' baseline is most of the noise of every leaf's effect
    assert err[True] < 0.7 * err[False], err
