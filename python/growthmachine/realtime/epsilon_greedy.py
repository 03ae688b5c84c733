"""Epsilon-greedy on per-action ridge regressions."""

from __future__ import annotations

from .. import _convert as cv
from .._core import RealtimePolicy
from ._base import PolicyMixin


class EpsilonGreedy(PolicyMixin, RealtimePolicy):
    """With probability ``epsilon`` a uniformly random action, else the action with the largest
    ridge-regression mean (ties: lowest index). ``probabilities`` are exact:
    ``(1 - epsilon) [a = greedy] + epsilon / n_actions``. Same methods as :class:`LinUCB`.
    """

    _ALGO = "epsilon_greedy"

    def __new__(
        cls,
        n_actions: int,
        n_features: int,
        epsilon: float = 0.1,
        ridge: float = 1.0,
        seed: int = 0,
        *,
        n_action_features: int = 0,
    ):
        na, d, k, ridge, seed = cls._check(n_actions, n_features, n_action_features, ridge, seed)
        epsilon = cv.check_number(epsilon, "epsilon", minimum=0.0, maximum=1.0)
        return super().__new__(
            cls, cls._ALGO, na, d, n_action_features=k, epsilon=epsilon, ridge=ridge, seed=seed
        )
