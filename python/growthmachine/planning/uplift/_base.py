"""The estimator contract every uplift model follows (one base, one validation path).

Data: ``X`` (n, p) features, ``treatment`` (n,) coded 0 = control and 1..T for the T treatments,
``y`` (n,) outcome, optional ``sample_weight`` (n,) >= 0. ``fit`` returns ``self``; fitted
attributes end in ``_`` (``n_features_in_``, ``n_treatments_``); ``predict(X)`` returns the
estimated uplift ``E[y | x, t] - E[y | x, 0]``: shape (n,) for one treatment, (n, T) for T.
``predict(X, return_se=True)`` also returns the standard error of each estimate (same shape).
Every model is compared with its peers (scikit-uplift, CausalML) on the same arrays through this
interface.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from ... import _convert as cv
from ..._state import Versioned

__all__ = ["UpliftModel", "check_fit_inputs", "check_X"]


def check_fit_inputs(
    X: Any, treatment: Any, y: Any, sample_weight: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Validated ``(X, treatment, y, sample_weight, n_treatments)``; errors name the argument.

    Every arm 0..T must have rows (a treatment with no rows, or no control, is an error: nothing
    could be estimated for it and nothing is silently dropped)."""
    X = cv.as_array(X, "X", np.float64, ndim=2)
    t = cv.as_array(treatment, "treatment", np.int64)
    y = cv.as_array(y, "y", np.float64)
    arrays = {"X": X, "treatment": t, "y": y}
    w = None
    if sample_weight is not None:
        w = cv.as_array(sample_weight, "sample_weight", np.float64, nonnegative=True)
        arrays["sample_weight"] = w
    cv.check_same_length(arrays)
    if t.min() < 0:
        raise ValueError(
            f"treatment: must be coded 0 = control and 1..T, found {int(t.min())} "
            "(map a control code such as -1 to 0 first)"
        )
    n_t = int(t.max())
    if n_t >= len(t):  # arms 1..T without gaps, each with rows: T < n
        raise ValueError(
            f"treatment: must be coded 0 = control and 1..T without gaps, found code {n_t} "
            f"among {len(t)} rows"
        )
    if n_t < 1:
        raise ValueError("treatment: has no treated rows (all 0 = control)")
    counts = np.bincount(t, minlength=n_t + 1)
    if counts[0] == 0:
        raise ValueError("treatment: has no control rows (0); uplift needs a control group")
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ValueError(
            f"treatment: arm {int(empty[0])} has no rows (arms must be coded 1..T without gaps)"
        )
    if w is not None:
        wsum = np.bincount(t, weights=w, minlength=n_t + 1)
        if np.any(wsum <= 0):
            raise ValueError(
                f"sample_weight: arm {int(np.flatnonzero(wsum <= 0)[0])} has zero total weight"
            )
    return X, t, y, w, n_t


def check_X(X: Any, n_features: int) -> np.ndarray:
    return cv.as_array(X, "X", np.float64, ndim=2, shape=(None, n_features))


def _check_pairs(X: Any, Z: Any, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    X = cv.as_array(X, "X", np.float64, ndim=2)
    Z = cv.as_array(Z, "Z", np.float64, ndim=2, allow_empty=True)
    if X.shape[1] + Z.shape[1] != n_features:
        raise ValueError(
            f"X, Z: have {X.shape[1]} + {Z.shape[1]} columns, but the model was fitted with "
            f"{n_features} features"
        )
    return X, Z


class UpliftModel(Versioned, abc.ABC):
    """Base of every uplift model: ``fit(X, treatment, y, sample_weight=None) -> self`` and
    ``predict(X, return_se=False)``. Subclasses implement ``_fit`` and ``_predict`` (returning
    (n, T) estimates and standard errors)."""

    def fit(self, X: Any, treatment: Any, y: Any, sample_weight: Any = None) -> UpliftModel:
        X, t, y, w, n_t = check_fit_inputs(X, treatment, y, sample_weight)
        self.n_features_in_ = X.shape[1]
        self.n_treatments_ = n_t
        self._fit(X, t, y, w)
        return self

    def predict(self, X: Any, *, return_se: bool = False):
        self._check_fitted()
        X = check_X(X, self.n_features_in_)
        est, se = self._predict(X, return_se)
        if self.n_treatments_ == 1:
            est = est[:, 0]
            se = se[:, 0] if se is not None else None
        return (est, se) if return_se else est

    def predict_pairs(self, X: Any, Z: Any, *, return_se: bool = False):
        """Estimates for every pair of a row of ``X`` (n, p) and a row of ``Z`` (k, q), of a model
        fitted with one treatment on rows ``[x, z]`` (p + q columns): shape (n, k), entry
        ``[i, j]`` = ``predict([X[i], Z[j]])``. The planner's task-pooled estimation uses it
        (``z`` describes a task: benefit, channel, content, costs). This generic version stacks
        one block of rows per row of ``Z``; :class:`UpliftForest` walks each tree once per row
        of ``X`` for all rows of ``Z`` together."""
        self._check_fitted()
        if self.n_treatments_ != 1:
            raise ValueError(
                f"predict_pairs: needs a model fitted with one treatment, this one has "
                f"{self.n_treatments_}"
            )
        X, Z = _check_pairs(X, Z, self.n_features_in_)
        return self._predict_pairs(X, Z, return_se)

    def _predict_pairs(self, X: np.ndarray, Z: np.ndarray, return_se: bool):
        n, k = len(X), len(Z)
        est = np.empty((n, k))
        se = np.empty((n, k)) if return_se else None
        for j in range(k):
            try:
                e, s = self._predict(np.column_stack([X, np.repeat(Z[j : j + 1], n, 0)]), return_se)
            except ValueError as err:  # the model checked the stacked rows, named X
                msg = str(err)
                if msg.startswith("X:"):
                    raise ValueError(f"X, Z (as the rows [x, z]):{msg[2:]}") from None
                raise
            est[:, j] = e[:, 0]
            if se is not None:
                se[:, j] = s[:, 0]
        return (est, se) if return_se else est

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_treatments_"):
            raise ValueError(f"{type(self).__name__}: not fitted; call fit(X, treatment, y) first")

    # -- implemented by subclasses --------------------------------------------------------
    def _fit(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> None:
        """Fits on validated arrays; a model that overrides :meth:`fit` itself (e.g. on group
        codes) need not implement it."""
        raise NotImplementedError(f"{type(self).__name__} implements fit() directly")

    @abc.abstractmethod
    def _predict(self, X: np.ndarray, return_se: bool) -> tuple[np.ndarray, np.ndarray | None]: ...
