"""Meta-learners (S, T, X, DR) over scikit-learn regressors: contract, recovery, honesty."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from growthmachine.planning.uplift import DRLearner, SLearner, TLearner, XLearner


def _data(n=12_000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    t = rng.integers(0, 3, n)
    tau = np.column_stack([0.8 * (X[:, 0] > 0), -0.5 * X[:, 1]])
    eff = np.where(t > 0, tau[np.arange(n), np.maximum(t - 1, 0)], 0.0)
    y = X[:, 2] + eff + rng.normal(size=n)
    return X, t, y, tau


LEARNERS = {
    "S": lambda: SLearner(HistGradientBoostingRegressor(max_iter=100)),
    "T": lambda: TLearner(HistGradientBoostingRegressor(max_iter=100)),
    "X": lambda: XLearner(HistGradientBoostingRegressor(max_iter=100)),
    "DR": lambda: DRLearner(
        HistGradientBoostingRegressor(max_iter=100),
        final_estimator=HistGradientBoostingRegressor(max_iter=50),
    ),
}


@pytest.mark.parametrize("name", list(LEARNERS))
def test_recovers_heterogeneous_effects(name):
    X, t, y, tau = _data()
    m = LEARNERS[name]()
    assert m.fit(X, t, y) is m
    est, se = m.predict(X, return_se=True)
    assert est.shape == (len(X), 2) and se.shape == (len(X), 2)
    assert np.all(se >= 0)
    for j in range(2):
        assert np.corrcoef(est[:, j], tau[:, j])[0, 1] > 0.6, (name, j)
    # the sign split of arm 1 is recovered on average
    assert est[X[:, 0] > 0, 0].mean() - est[X[:, 0] <= 0, 0].mean() > 0.5
    q = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(q.predict(X), est)


def test_single_treatment_returns_1d_and_linear_model_is_exact():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4000, 2))
    t = rng.integers(0, 2, 4000)
    y = 1.0 + X[:, 0] + t * (0.5 + 2.0 * X[:, 1])  # no noise: a linear T-learner is exact
    m = TLearner(LinearRegression()).fit(X, t, y)
    est = m.predict(X)
    assert est.shape == (4000,)
    np.testing.assert_allclose(est, 0.5 + 2.0 * X[:, 1], atol=1e-9)


def test_slearner_treatment_features_pool_arms():
    X, t, y, _ = _data(6000)
    tf = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    m = SLearner(HistGradientBoostingRegressor(max_iter=50), treatment_features=tf).fit(X, t, y)
    assert m.predict(X).shape == (6000, 2)
    bad = SLearner(LinearRegression(), treatment_features=np.ones((2, 2)))
    with pytest.raises(ValueError, match="treatment_features"):
        bad.fit(X, t, y)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"treatment": [0, 1, 3, 1, 0, 3]}, "arm 2 has no rows"),
        ({"treatment": [1, 1, 1, 1, 1, 1]}, "no control"),
        ({"treatment": [0, 0, 0, 0, 0, 0]}, "no treated"),
        ({"treatment": [0, -1, 1, 1, 0, 1]}, "treatment"),
        ({"y": [0.0, np.nan, 1, 1, 0, 1]}, "y: must be finite"),
        ({"y": [0.0, 1.0]}, "y: has length 2"),
    ],
)
def test_bad_input_names_the_argument(kw, match):
    args = {"X": np.ones((6, 2)), "treatment": [0, 1, 0, 1, 0, 1], "y": [0.0, 1, 0, 1, 0, 1]}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        TLearner(LinearRegression(), n_folds=1).fit(args["X"], args["treatment"], args["y"])


def test_estimator_and_predict_checks():
    with pytest.raises(TypeError, match="estimator"):
        TLearner(object())
    with pytest.raises(ValueError, match="not fitted"):
        TLearner(LinearRegression()).predict(np.ones((2, 2)))
    X, t, y, _ = _data(2000)
    m = TLearner(LinearRegression()).fit(X, t, y)
    with pytest.raises(ValueError, match="X: expected shape"):
        m.predict(np.ones((3, 5)))


def test_dr_learner_known_propensities_validated():
    X, t, y, _ = _data(3000)
    with pytest.raises(ValueError, match="propensity"):
        DRLearner(LinearRegression(), propensity=[0.5, 0.5]).fit(X, t, y)
    with pytest.raises(ValueError, match="propensity"):
        DRLearner(LinearRegression(), propensity=[1.0, 0.2, 0.2]).fit(X, t, y)
    m = DRLearner(LinearRegression(), propensity=[1 / 3, 1 / 3, 1 / 3]).fit(X, t, y)
    assert np.isfinite(m.predict(X)).all()
