"""What the estimators of this package share (scikit-learn conventions): the dtype rule, the
input matrix, the core function of the data's dtype, and the base class with ``get_params`` /
``set_params`` and the fitted-state checks. Used by :mod:`.kmeans` and :mod:`.scaler`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _convert as cv
from .. import _core
from .._core import StateError
from .._state import Versioned

__all__ = ["Estimator", "as_matrix", "core_fn", "dtype_of", "resolve_dtype"]


def dtype_of(X: Any) -> np.dtype | None:
    dt = getattr(X, "dtype", None)
    if dt is not None:
        try:
            return np.dtype(dt)
        except TypeError:
            return None
    dts = getattr(X, "dtypes", None)  # pandas / polars frames
    if dts is not None:
        try:
            kinds = {
                np.dtype(str(t).lower()) for t in (dts if isinstance(dts, list) else list(dts))
            }
        except TypeError:
            return None
        return kinds.pop() if len(kinds) == 1 else None
    return None


def resolve_dtype(dtype: Any, X: Any) -> np.dtype:
    if dtype is not None:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise ValueError(
                f"dtype: must be None, 'float32' or 'float64', got {dtype!r}"
            ) from None
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype: must be None, 'float32' or 'float64', got {dtype!r}")
        return dt
    return np.dtype(np.float32) if dtype_of(X) == np.float32 else np.dtype(np.float64)


def as_matrix(X: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous 2-d array of ``dtype`` (no copy when X already is one). Finiteness is
    checked by the core (in parallel, naming the row and column)."""
    if not isinstance(X, np.ndarray) and cv.is_table(X):
        if hasattr(X, "to_numpy") and not isinstance(X, Mapping):
            X = X.to_numpy()
        else:
            cols = cv.columns(X, name)
            if not cols:
                raise ValueError(f"{name}: is empty (no columns)")
            X = np.column_stack([cv.column(X, name, c) for c in cols])
    raw = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if raw.ndim == 1:
        raise ValueError(
            f"{name}: expected a 2-d array (n_samples, n_features), got a 1-d array of shape "
            f"{raw.shape}; use X.reshape(-1, 1) for a single feature"
        )
    if raw.ndim == 2 and raw.shape[0] == 0:
        raise ValueError(f"{name}: is empty (0 samples)")
    if raw.ndim == 2 and raw.shape[1] == 0:
        raise ValueError(f"{name}: has 0 features (columns)")
    return cv.as_array(raw, name, dtype, ndim=2, finite=False)


def core_fn(op: str, dtype: np.dtype):
    return getattr(_core, f"insight_{op}_{'f32' if dtype == np.float32 else 'f64'}")


class Estimator(Versioned):
    """Shared parameter handling (``get_params``/``set_params``) and fitted-state checks."""

    _PARAMS: tuple[str, ...] = ()

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params: Any):
        for k, v in params.items():
            if k not in self._PARAMS:
                raise ValueError(f"{k}: unknown parameter of {type(self).__name__}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._PARAMS)
        return f"{type(self).__name__}({args})"

    def _check_fitted(self, attr: str) -> None:
        if not hasattr(self, attr):
            raise StateError(
                f"this {type(self).__name__} is not fitted yet; call fit(X) before using it"
            )

    def _input(self, X: Any, dtype: np.dtype, n_features: int) -> np.ndarray:
        x = as_matrix(X, "X", dtype)
        if x.shape[1] != n_features:
            raise ValueError(
                f"X: has {x.shape[1]} features, but {type(self).__name__} was fitted with "
                f"{n_features} features"
            )
        return x
