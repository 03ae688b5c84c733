"""Uplift (incremental-effect) models: multi-treatment, with standard errors, one interface.

``fit(X, treatment, y, sample_weight=None) -> self``; ``predict(X)`` -> (n,) for one treatment,
(n, T) for T; ``treatment`` coded 0 = control, 1..T. See :mod:`._base`.
"""

from __future__ import annotations

from ._base import UpliftModel
from .cell import CellUplift
from .forest import UpliftForest

__all__ = ["CellUplift", "UpliftForest", "UpliftModel"]
