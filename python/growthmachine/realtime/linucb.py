"""LinUCB (disjoint; Li et al. 2010)."""

from __future__ import annotations

from .. import _convert as cv
from .._core import RealtimePolicy
from ._base import PolicyMixin


class LinUCB(PolicyMixin, RealtimePolicy):
    """Disjoint LinUCB: per action a ridge regression; choose ``argmax_a theta_a.z + alpha *
    sqrt(z' A_a^{-1} z)`` (ties: lowest index).

    With ``ridge=1, alpha=1`` it makes the decisions of the textbook algorithm (Li et al. 2010,
    algorithm 1) when updated after every event; ``A^{-1}`` and ``theta`` are maintained by
    Sherman-Morrison rank-one updates (O(d^2) per event, no inverse).

    Parameters: ``n_actions``, ``n_features`` (shared context features), ``alpha`` (width of the
    confidence bonus), ``ridge`` (prior precision), ``n_action_features`` (per-action features:
    then every call takes ``action_features`` of shape (n_actions, k) or (n, n_actions, k) and
    action ``a`` sees ``[x, action_features[a]]``), ``seed`` (unused: LinUCB is deterministic).

    Batching: ``choose_batch`` then ``update_batch`` delays feedback; a deterministic policy then
    repeats its choice for similar rows of a batch (at d=32, 10 actions, 1M events, cumulative
    regret is about 5x the one-at-a-time regret with batches of 100 and 50x with batches of 1000;
    see ``benchmarks/RESULTS.md``). ``choose_batch(X, hallucinate=True)`` decides rows in order,
    counting earlier rows as observed in the confidence widths, which cuts that cost about 10x
    (it is sequential: about 1 us per row).

    Methods: ``choose(x)``, ``choose_batch(X, hallucinate=False)``, ``scores(x)``, ``scores_batch(X)``,
    ``probabilities(X)`` (one-hot), ``update(x, action, reward)``,
    ``update_batch(X, actions, rewards)``, ``save(path)``, ``LinUCB.load(path)``; pickles.
    """

    _ALGO = "linucb"

    def __new__(
        cls,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        ridge: float = 1.0,
        seed: int = 0,
        *,
        n_action_features: int = 0,
    ):
        na, d, k, ridge, seed = cls._check(n_actions, n_features, n_action_features, ridge, seed)
        alpha = cv.check_number(alpha, "alpha", minimum=0.0)
        return super().__new__(
            cls, cls._ALGO, na, d, n_action_features=k, alpha=alpha, ridge=ridge, seed=seed
        )
