"""Linear Thompson sampling (Agrawal and Goyal 2013)."""

from __future__ import annotations

from .. import _convert as cv
from .._core import RealtimePolicy
from ._base import PolicyMixin


class LinTS(PolicyMixin, RealtimePolicy):
    """Linear Thompson sampling: per action a ridge regression with posterior
    ``N(theta_a, v^2 A_a^{-1})``; choose the action whose sampled mean reward is largest.

    Seeded: the draws of decision number t come from a stream keyed by (seed, t), so results do
    not depend on batching or threads. ``probabilities(X, n_samples=1000)`` estimates the
    propensities by Monte Carlo. Same methods as :class:`LinUCB`.
    """

    _ALGO = "lints"

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
