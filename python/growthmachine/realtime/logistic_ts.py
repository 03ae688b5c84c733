"""Bayesian logistic regression with Thompson sampling (Chapelle and Li 2011)."""

from __future__ import annotations

from .. import _convert as cv
from .._core import RealtimePolicy
from ._base import PolicyMixin


class LogisticTS(PolicyMixin, RealtimePolicy):
    """Thompson sampling on per-action Bayesian logistic regressions for rewards in [0, 1]
    (clicks, conversions). The Laplace approximation is kept online with one Newton step per
    event (rank-one covariance update, no inverse). ``scores`` are sampled logits. Same methods
    as :class:`LinUCB`; rewards outside [0, 1] raise ``ValueError``.
    """

    _ALGO = "logistic_ts"

    def __new__(
        cls,
        n_actions: int,
        n_features: int,
        v: float = 1.0,
        ridge: float = 1.0,
        seed: int = 0,
        *,
        n_action_features: int = 0,
    ):
        na, d, k, ridge, seed = cls._check(n_actions, n_features, n_action_features, ridge, seed)
        v = cv.check_number(v, "v", minimum=0.0)
        return super().__new__(
            cls, cls._ALGO, na, d, n_action_features=k, v=v, ridge=ridge, seed=seed
        )
