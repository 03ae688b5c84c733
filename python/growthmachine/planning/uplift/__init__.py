"""Uplift (incremental-effect) models: multi-treatment, with standard errors, one interface.

``fit(X, treatment, y, sample_weight=None) -> self``; ``predict(X)`` -> (n,) for one treatment,
(n, T) for T; ``predict(X, return_se=True)`` -> (estimate, standard error); ``treatment`` coded
0 = control, 1..T. See :mod:`._base`. Meta-learners over any scikit-learn regressor:
:class:`SLearner`, :class:`TLearner`, :class:`XLearner`, :class:`DRLearner`. In Rust:
:class:`UpliftForest` (honest multi-treatment forest, the default) and :class:`CellUplift`
(difference in means per group with empirical-Bayes shrinkage).
"""

from __future__ import annotations

from . import meta
from ._base import UpliftModel
from .cell import CellUplift
from .forest import UpliftForest
from .meta import DRLearner, SLearner, TLearner, XLearner

__all__ = [
    "CellUplift",
    "DRLearner",
    "SLearner",
    "TLearner",
    "UpliftForest",
    "UpliftModel",
    "XLearner",
    "meta",
]
