"""Budget pacing: choose by value minus price x cost, with prices adapted online."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _convert as cv
from .._core import RealtimePacer, StateError
from .._state import Versioned
from ._base import restore


class BudgetPacer(Versioned):
    """Wraps a policy so that spend tracks a budget over a horizon of events.

    Each event picks ``argmax_a value_a - sum_j price_j cost_aj`` among the actions whose cost
    still fits every budget (a hard cap: spend never exceeds the budget), where ``value`` is the
    policy's decision index (``policy.scores``: UCB, posterior sample or mean). Each resource's
    price follows online dual descent: it rises when spend runs ahead of ``remaining budget /
    remaining events`` and falls (to 0) when it lags. See ``src/realtime/pacer.rs``.

    Parameters
    ----------
    policy: a :class:`LinUCB`, :class:`LinTS`, :class:`LogisticTS` or :class:`EpsilonGreedy`.
    costs: (n_actions,) or (n_actions, n_resources) cost of each action, known in advance; or
        ``None`` when costs come with each event (``choose(..., costs=)``).
    budget: total budget, a number or one per resource (n_resources,).
    horizon: number of events the budget must last.
    step: unit-free price step (default 0.05).
    null_action: the action taken when nothing else fits (default 0, "no intervention"). It
        must cost 0 on every resource (a ``costs`` giving it a cost is refused): the hard cap
        relies on an action that always fits.
    charge: ``"choose"`` (default) spends an action's cost when it is chosen (known costs);
        ``"update"`` spends the cost revealed to ``update(..., cost=)`` / ``update_batch(...,
        costs=)`` instead, using the decision-time costs as estimates for the budget check (the
        hard cap then holds if revealed costs never exceed them). Each decision is charged
        exactly once, oldest first: charging more costs than decisions awaiting theirs raises
        ``ValueError`` and charges nothing.

    max_ahead: if finite, expected spend may not run more than this fraction ahead of the
        pro-rata budget line ``budget * t / horizon`` (plus one largest cost): smooth spend when
        early values are unreliable (default: off).

    Attributes: ``price_``, ``spend_``, ``budget_``, ``n_events_``, ``horizon``.
    """

    _STATE_KIND = "realtime.BudgetPacer"
    _STATE_VERSION = 1

    def __init__(
        self,
        policy: Any,
        costs: Any,
        budget: Any,
        horizon: int,
        *,
        step: float = 0.05,
        null_action: int = 0,
        charge: str = "choose",
        max_ahead: float = float("inf"),
    ):
        if not hasattr(policy, "scores_batch"):
            raise TypeError(
                f"policy: expected a growthmachine.realtime policy, got {type(policy).__name__}"
            )
        self.policy = policy
        k = policy.n_actions
        if isinstance(budget, (bool, np.bool_)):
            raise TypeError("budget: must be a number or one number per resource, got bool")
        b = np.atleast_1d(cv.as_array(np.atleast_1d(budget), "budget", nonnegative=True))
        self._m = len(b)
        if costs is not None:
            c = cv.as_array(costs, "costs", ndim=np.ndim(costs), nonnegative=True)
            if c.shape not in ((k,), (k, self._m)) or (c.ndim == 1 and self._m != 1):
                raise ValueError(
                    f"costs: expected shape ({k},) or ({k}, {self._m}), got {np.shape(costs)}"
                )
            self._costs = np.ascontiguousarray(c.reshape(k, self._m))
        else:
            self._costs = None
        horizon = cv.check_int(horizon, "horizon", minimum=1, maximum=cv.U64_MAX)  # u64 in the core
        step = cv.check_number(step, "step", minimum=0.0, strict_min=True)
        null_action = cv.check_int(null_action, "null_action", minimum=0, maximum=k - 1)
        self.charge = cv.check_choice(charge, "charge", ("choose", "update"))
        # max_ahead (a number >= 0, inf = off) is checked where it is read, by the core.
        self._pacer = RealtimePacer(k, b, horizon, step, null_action, max_ahead)

    # -- decisions --------------------------------------------------------------------------
    def _event_costs(self, costs: Any, n: int | None) -> np.ndarray:
        k, m = self.policy.n_actions, self._m
        if costs is None:
            if self._costs is None:
                raise ValueError("costs: required (the pacer was built with costs=None)")
            return self._costs
        c = cv.as_array(costs, "costs", ndim=np.ndim(costs), nonnegative=True)
        want = (k, m) if n is None else (n, k, m)
        if c.size != int(np.prod(want)):
            raise ValueError(f"costs: expected shape {want}, got {c.shape}")
        return np.ascontiguousarray(c.reshape(want if n is None else (n, k, m)))

    def choose(self, x: Any, costs: Any = None, action_features: Any = None) -> int:
        """One decision for context ``x``."""
        v = self.policy.scores(x, action_features)
        c = self._event_costs(costs, None)
        return int(self._pacer.decide(v, c, 1, self.charge == "choose")[0])

    def choose_batch(self, X: Any, costs: Any = None, action_features: Any = None) -> np.ndarray:
        """Decisions for the rows of ``X``, paced event by event in row order."""
        v = self.policy.scores_batch(X, action_features)
        c = self._event_costs(costs, len(v))
        return self._pacer.decide(v, c, len(v), self.charge == "choose")

    # -- learning ---------------------------------------------------------------------------
    def update(
        self, x: Any, action: int, reward: float, cost: Any = None, action_features: Any = None
    ) -> None:
        """Learns from one event; with ``charge="update"``, ``cost`` (one value per resource) is
        the revealed cost, spent now."""
        self.policy.update(x, action, reward, action_features)
        self._charge(cost, 1)

    def update_batch(
        self, X: Any, actions: Any, rewards: Any, costs: Any = None, action_features: Any = None
    ) -> None:
        self.policy.update_batch(X, actions, rewards, action_features)
        self._charge(costs, len(np.asarray(actions)), "costs")

    def _charge(self, cost: Any, n: int, name: str = "cost") -> None:
        if self.charge == "choose":
            if cost is not None:
                raise ValueError(f'{name}: only with charge="update" (costs are spent when chosen)')
            return
        if cost is None:
            raise ValueError(f'{name}: required with charge="update"')
        if isinstance(cost, (bool, np.bool_)):
            raise TypeError(f"{name}: must be a number or one per resource, got bool")
        c = cv.as_array(cost, name, ndim=np.ndim(cost), nonnegative=True, allow_empty=True)
        if c.size != n * self._m:
            raise ValueError(
                f"{name}: expected {n} x {self._m} costs (events x resources), got shape {c.shape}"
            )
        self._pacer.charge(np.ascontiguousarray(c.reshape(n, self._m)))

    # -- state ------------------------------------------------------------------------------
    @property
    def price_(self) -> np.ndarray:
        return self._pacer.price

    @property
    def spend_(self) -> np.ndarray:
        return self._pacer.spend

    @property
    def budget_(self) -> np.ndarray:
        return self._pacer.budget

    @property
    def n_events_(self) -> int:
        return self._pacer.n_events

    @property
    def horizon(self) -> int:
        return self._pacer.horizon

    def _get_state(self) -> dict[str, Any]:
        return {
            "policy_class": type(self.policy),
            "policy": self.policy._state_bytes(),
            "pacer": self._pacer._state_bytes(),
            "costs": self._costs,
            "m": self._m,
            "charge": self.charge,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        try:
            policy = restore(state["policy_class"], state["policy"])
            pacer = RealtimePacer._from_state_bytes(state["pacer"])
            costs, m, charge = state["costs"], state["m"], state["charge"]
        except (KeyError, TypeError) as e:
            raise StateError(f"realtime.BudgetPacer state is malformed: {e}") from None
        # the pieces must fit together as the constructor made them
        k = policy.n_actions
        if pacer.n_actions != k:
            raise StateError(f"realtime.BudgetPacer state: the pacer has {pacer.n_actions} "
                             f"actions, the policy {k}")  # fmt: skip
        if m != len(pacer.budget):
            raise StateError(f"realtime.BudgetPacer state: m={m!r} but the pacer has "
                             f"{len(pacer.budget)} resources")  # fmt: skip
        if costs is not None:
            costs = cv.as_array(costs, "costs", ndim=2, nonnegative=True)
            if costs.shape != (k, m) or costs[pacer.null_action].any():
                raise StateError(f"realtime.BudgetPacer state: costs of shape {costs.shape}, "
                                 f"expected ({k}, {m}) with zeros for the null action "
                                 f"{pacer.null_action}")  # fmt: skip
            costs = np.ascontiguousarray(costs)
        self.charge = cv.check_choice(charge, "charge", ("choose", "update"))
        self.policy, self._pacer, self._costs, self._m = policy, pacer, costs, m

    def __repr__(self) -> str:
        return (
            f"BudgetPacer({self.policy!r}, budget={self.budget_.tolist()}, horizon={self.horizon}, "
            f"spend={self.spend_.tolist()}, price={self.price_.tolist()})"
        )
