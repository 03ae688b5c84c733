"""Meta-learners over any scikit-learn-compatible regressor: S-, T-, X- and DR-learner.

Each takes the base estimator(s) as arguments (cloned with ``sklearn.base.clone`` when
scikit-learn is installed, else deep-copied), so any object with ``fit(X, y)`` and
``predict(X)`` works: scikit-learn, LightGBM, XGBoost. Binary outcomes are fitted by regression on
0/1 (the estimate is then a difference of probabilities). Multi-treatment: ``treatment`` coded
0 = control and 1..T, ``predict`` gives (n, T).

Standard errors. None of these learners has a closed-form variance. Each fits ``n_folds``
models on disjoint folds of the users (cross-fitting, as the DR-learner needs anyway) and
predicts with their mean; the standard error reported is the spread of the fold models'
predictions divided by ``sqrt(n_folds)``: the between-fold (sampling) variability of the
estimate, a jackknife-style figure, not a confidence interval with coverage guarantees.

References: Kunzel, Sekhon, Bickel & Yu (2019), "Metalearners for estimating heterogeneous
treatment effects using machine learning", PNAS 116(10) (S, T, X); Kennedy (2023), "Towards
optimal doubly robust estimation of heterogeneous causal effects", EJS 17(2) (DR-learner).
"""

from __future__ import annotations

import abc
import copy
from typing import Any

import numpy as np

from ... import _convert as cv
from ..._core import StateError
from ._base import UpliftModel

__all__ = ["SLearner", "TLearner", "XLearner", "DRLearner"]


def clone_estimator(est: Any) -> Any:
    """An unfitted copy: one of the library's own models with only plain parameters is
    rebuilt from them (no scikit-learn import, which costs a second or two in a fresh process);
    otherwise ``sklearn.base.clone`` when scikit-learn can, else a deep copy."""
    if isinstance(est, UpliftModel) and hasattr(est, "get_params"):
        params = est.get_params()
        if not any(hasattr(v, "fit") for v in params.values()):
            return type(est)(**params)
    try:
        from sklearn.base import clone

        return clone(est)
    except (ImportError, TypeError):
        return copy.deepcopy(est)


def _check_estimator(est: Any, name: str) -> Any:
    if est is None:
        return None
    if not (hasattr(est, "fit") and hasattr(est, "predict")):
        raise TypeError(
            f"{name}: must be a regressor with fit(X, y) and predict(X), got {type(est).__name__}"
        )
    return est


def _fit(est: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> Any:
    m = clone_estimator(est)
    if w is None:
        return m.fit(X, y)
    return m.fit(X, y, sample_weight=w)


def _folds(n: int, n_folds: int, seed: int) -> np.ndarray:
    """Balanced random fold of each row (the same rows for every outcome and learner)."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n) % n_folds)


def _sub(w: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    return None if w is None else w[mask]


def _is_model(m: Any) -> bool:
    return callable(getattr(m, "predict", None))


def _models(m: Any, n: int) -> bool:
    """Whether ``m`` is a list of ``n`` fitted models."""
    return isinstance(m, list) and len(m) == n and all(map(_is_model, m))


class _Meta(UpliftModel):
    """Cross-fitted meta-learner: ``n_folds`` copies, each fitted without one fold."""

    def __init__(self, n_folds: int = 2, seed: int = 0):
        self.n_folds = cv.check_int(n_folds, "n_folds", minimum=1, maximum=100)
        self.seed = cv.check_int(seed, "seed", minimum=0)

    def _fit(self, X, t, y, w) -> None:
        n = len(y)
        if self.n_folds == 1:
            self.models_ = [self._fit_one(X, t, y, w)]
            return
        fold = _folds(n, self.n_folds, self.seed)
        self.models_ = []
        for k in range(self.n_folds):
            keep = fold != k
            tk = t[keep]
            if len(np.unique(tk)) != self.n_treatments_ + 1:
                raise ValueError(
                    f"treatment: an arm has too few rows for n_folds={self.n_folds} "
                    "(every fold must leave rows of every arm); lower n_folds"
                )
            self.models_.append(self._fit_one(X[keep], tk, y[keep], _sub(w, keep)))

    def _predict(self, X, return_se):
        preds = np.stack([self._predict_one(m, X) for m in self.models_])
        est = preds.mean(0)
        se = None
        if return_se:
            k = len(preds)
            se = preds.std(0, ddof=1) / np.sqrt(k) if k > 1 else np.full_like(est, np.nan)
        return est, se

    @abc.abstractmethod
    def _fit_one(self, X, t, y, w): ...

    @abc.abstractmethod
    def _predict_one(self, model, X) -> np.ndarray: ...

    @abc.abstractmethod
    def _fold_model_ok(self, m: Any, T: int) -> bool:
        """Whether ``m`` has the shape of one fold's ``_fit_one`` result for ``T`` arms."""

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        # The fold models are nested (lists, tuples), past the types Versioned checks: one
        # replaced or lost by corruption is a StateError here, not an error inside predict.
        models, T = self.__dict__.get("models_"), self.__dict__.get("n_treatments_")
        if models is None:  # not fitted
            return
        if not (
            isinstance(models, list)
            and len(models) == self.n_folds
            and isinstance(T, int)
            and all(self._fold_model_ok(m, T) for m in models)
        ):
            raise StateError(
                f"{self._STATE_KIND} state: models_ is not {self.n_folds} fold models of this "
                "learner"
            )


class SLearner(_Meta):
    """One model of ``y`` on ``[X, arm encoding]``; uplift = prediction with the arm minus with
    control. ``treatment_features`` (T + 1, q), optional, encodes each arm (row 0 = control) by
    attributes (benefit, channel, ...) so that arms with few rows borrow strength from similar
    ones; by default each arm is one indicator column."""

    _STATE_KIND = "planning.SLearner"

    def __init__(
        self, estimator: Any, *, treatment_features: Any = None, n_folds: int = 2, seed: int = 0
    ):
        super().__init__(n_folds, seed)
        self.estimator = _check_estimator(estimator, "estimator")
        self.treatment_features = (
            None
            if treatment_features is None
            else cv.as_array(treatment_features, "treatment_features", np.float64, ndim=2)
        )

    def _encoding(self) -> np.ndarray:
        T = self.n_treatments_
        if self.treatment_features is None:
            return np.vstack([np.zeros((1, T)), np.eye(T)])
        if self.treatment_features.shape[0] != T + 1:
            raise ValueError(
                f"treatment_features: has {self.treatment_features.shape[0]} rows, expected "
                f"{T + 1} (control + {T} arms)"
            )
        return self.treatment_features

    def _fit_one(self, X, t, y, w):
        E = self._encoding()
        return _fit(self.estimator, np.hstack([X, E[t]]), y, w)

    def _fold_model_ok(self, m, T):
        return _is_model(m)

    def _predict_one(self, model, X):
        E = self._encoding()
        n = len(X)
        base = model.predict(np.hstack([X, np.repeat(E[:1], n, 0)]))
        out = np.empty((n, self.n_treatments_))
        for j in range(1, self.n_treatments_ + 1):
            out[:, j - 1] = model.predict(np.hstack([X, np.repeat(E[j : j + 1], n, 0)])) - base
        return out


class TLearner(_Meta):
    """One model per arm (control included); uplift = arm model minus control model."""

    _STATE_KIND = "planning.TLearner"

    def __init__(self, estimator: Any, *, n_folds: int = 2, seed: int = 0):
        super().__init__(n_folds, seed)
        self.estimator = _check_estimator(estimator, "estimator")

    def _fit_one(self, X, t, y, w):
        return [
            _fit(self.estimator, X[t == j], y[t == j], _sub(w, t == j))
            for j in range(self.n_treatments_ + 1)
        ]

    def _fold_model_ok(self, m, T):
        return _models(m, T + 1)

    def _predict_one(self, models, X):
        base = models[0].predict(X)
        return np.column_stack([m.predict(X) - base for m in models[1:]])


def _propensities(t: np.ndarray, w: np.ndarray | None, n_arms: int) -> np.ndarray:
    """Share of each arm (randomised experiments: the assignment probability)."""
    return np.bincount(t, weights=w, minlength=n_arms) / (len(t) if w is None else w.sum())


class XLearner(_Meta):
    """Kunzel et al.'s X-learner: outcome models per arm, imputed effects
    ``D1 = y - mu0(x)`` on the treated and ``D0 = mu_j(x) - y`` on the controls, an effect model
    on each, combined with the arm's propensity ``g``: ``tau = g tau0 + (1 - g) tau1``
    (randomised data: ``g`` is the arm's share among the rows of control and that arm)."""

    _STATE_KIND = "planning.XLearner"

    def __init__(
        self,
        estimator: Any,
        *,
        effect_estimator: Any = None,
        n_folds: int = 2,
        seed: int = 0,
    ):
        super().__init__(n_folds, seed)
        self.estimator = _check_estimator(estimator, "estimator")
        self.effect_estimator = _check_estimator(effect_estimator, "effect_estimator")

    def _fit_one(self, X, t, y, w):
        eff = self.effect_estimator if self.effect_estimator is not None else self.estimator
        c = t == 0
        mu0 = _fit(self.estimator, X[c], y[c], _sub(w, c))
        out = []
        for j in range(1, self.n_treatments_ + 1):
            s = t == j
            mu_j = _fit(self.estimator, X[s], y[s], _sub(w, s))
            tau1 = _fit(eff, X[s], y[s] - mu0.predict(X[s]), _sub(w, s))
            tau0 = _fit(eff, X[c], mu_j.predict(X[c]) - y[c], _sub(w, c))
            ws = s.sum() if w is None else w[s].sum()
            wc = c.sum() if w is None else w[c].sum()
            g = ws / (ws + wc)
            out.append((tau0, tau1, g))
        return out

    def _fold_model_ok(self, m, T):
        return (
            isinstance(m, list)
            and len(m) == T
            and all(
                isinstance(e, tuple)
                and len(e) == 3
                and _is_model(e[0])
                and _is_model(e[1])
                and isinstance(e[2], (float, np.floating))
                for e in m
            )
        )

    def _predict_one(self, models, X):
        return np.column_stack(
            [g * t0.predict(X) + (1 - g) * t1.predict(X) for t0, t1, g in models]
        )


class DRLearner(_Meta):
    """Kennedy's DR-learner: outcome models ``mu_a`` fitted on one part of the data, the
    doubly robust pseudo-outcome ``phi = mu_j(x) - mu_0(x) + 1[t=j](y - mu_j(x))/p_j -
    1[t=0](y - mu_0(x))/p_0`` computed on the other part (cross-fitting inside each fold
    model), and the final effect model regressed on ``phi``. ``propensity`` (T + 1,) gives the
    known assignment probabilities of a randomised log (default: the arms' shares)."""

    _STATE_KIND = "planning.DRLearner"

    def __init__(
        self,
        estimator: Any,
        *,
        final_estimator: Any = None,
        propensity: Any = None,
        n_folds: int = 2,
        seed: int = 0,
    ):
        super().__init__(n_folds, seed)
        self.estimator = _check_estimator(estimator, "estimator")
        self.final_estimator = _check_estimator(final_estimator, "final_estimator")
        self.propensity = (
            None
            if propensity is None
            else cv.as_array(propensity, "propensity", np.float64, nonnegative=True)
        )

    def _p(self, t, w) -> np.ndarray:
        T1 = self.n_treatments_ + 1
        if self.propensity is None:
            return _propensities(t, w, T1)
        p = self.propensity
        if len(p) != T1:
            raise ValueError(f"propensity: has length {len(p)}, expected {T1} (control + arms)")
        if np.any(p <= 0) or np.any(p >= 1):
            raise ValueError("propensity: every arm's probability must be in (0, 1)")
        return p

    def _fit_one(self, X, t, y, w):
        final = self.final_estimator if self.final_estimator is not None else self.estimator
        p = self._p(t, w)
        half = _folds(len(y), 2, self.seed + 1)
        phi = np.zeros((len(y), self.n_treatments_))
        for h in (0, 1):
            fit_, ev = half != h, half == h
            tf = t[fit_]
            if len(np.unique(tf)) != self.n_treatments_ + 1:
                raise ValueError("treatment: an arm has too few rows to cross-fit the DR-learner")
            mus = [
                _fit(self.estimator, X[fit_][tf == j], y[fit_][tf == j], _sub(w, fit_ & (t == j)))
                for j in range(self.n_treatments_ + 1)
            ]
            Xe, te, ye = X[ev], t[ev], y[ev]
            m0 = mus[0].predict(Xe)
            r0 = (te == 0) * (ye - m0) / p[0]
            for j in range(1, self.n_treatments_ + 1):
                mj = mus[j].predict(Xe)
                phi[ev, j - 1] = mj - m0 + (te == j) * (ye - mj) / p[j] - r0
        return [_fit(final, X, phi[:, j], w) for j in range(self.n_treatments_)]

    def _fold_model_ok(self, m, T):
        return _models(m, T)

    def _predict_one(self, models, X):
        return np.column_stack([m.predict(X) for m in models])
