"""Feature scaling (scikit-learn's ``StandardScaler`` conventions, Rust core)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from ._estimator import Estimator, as_matrix, core_fn, resolve_dtype

__all__ = ["StandardScaler"]


class StandardScaler(Estimator):
    """Centers each column on its mean and scales it to unit variance (scikit-learn's
    StandardScaler: population standard deviation, constant columns scaled by 1).

    Fitted attributes: ``mean_``, ``var_``, ``scale_`` (float64), ``n_features_in_``,
    ``n_samples_seen_``. ``transform`` keeps float32 input in float32.
    """

    _STATE_KIND = "growthmachine.insight.StandardScaler"
    _STATE_VERSION = 1
    _PARAMS = ("with_mean", "with_std")

    def __init__(self, *, with_mean: bool = True, with_std: bool = True):
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X: Any, y: Any = None) -> StandardScaler:
        for p in ("with_mean", "with_std"):
            if not isinstance(getattr(self, p), bool):
                raise TypeError(f"{p}: must be True or False, got {getattr(self, p)!r}")
        dtype = resolve_dtype(None, X)
        x = as_matrix(X, "X", dtype)
        # std is computed scaled (exact even where var overflows, e.g. values of 1e200)
        mean, var, scale = core_fn("column_moments", dtype)(x)
        self.mean_ = mean if self.with_mean else None
        self.var_ = var if self.with_std else None
        if self.with_std:
            scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
            self.scale_ = scale
        else:
            self.scale_ = None
        self.n_features_in_ = x.shape[1]
        self.n_samples_seen_ = x.shape[0]
        return self

    def _xs(self, X: Any) -> np.ndarray:
        self._check_fitted("n_features_in_")
        dtype = resolve_dtype(None, X)
        x = self._input(X, dtype, self.n_features_in_)
        if not (_core.all_finite(x.reshape(-1)) if dtype == np.float64 else np.isfinite(x).all()):
            bad = int(np.flatnonzero(~np.isfinite(x.reshape(-1)))[0])
            raise ValueError(
                f"X: must be finite, found {x.reshape(-1)[bad]} at row {bad // x.shape[1]}, "
                f"column {bad % x.shape[1]}"
            )
        return x

    def transform(self, X: Any) -> np.ndarray:
        """``(X - mean_) / scale_`` as a new array of X's float dtype."""
        x = self._xs(X)
        out = x.copy()
        if self.with_mean:
            out -= self.mean_.astype(x.dtype)
        if self.with_std:
            out /= self.scale_.astype(x.dtype)
        return out

    def inverse_transform(self, X: Any) -> np.ndarray:
        """``X * scale_ + mean_``."""
        x = self._xs(X)
        out = x.copy()
        if self.with_std:
            out *= self.scale_.astype(x.dtype)
        if self.with_mean:
            out += self.mean_.astype(x.dtype)
        return out

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).transform(X)
