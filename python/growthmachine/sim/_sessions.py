"""``SessionBatch``: a vectorised batch of multi-step site visits (the real-time engine's world)."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from .. import _convert as cv
from .. import _core
from .._state import Versioned
from ._config import WorldConfig

__all__ = ["SessionBatch", "StepResult"]

StepResult = namedtuple("StepResult", ["reward", "cost", "stage", "done"])


class SessionBatch(Versioned):
    """``n`` site visits, each a multi-step session: 0 browse -> 1 cart -> 3 purchased, with 2
    exit intent on the way out and 4 left (3 and 4 are final).

    Actions (``action_names``): 0 none, 1 guide (on-site guidance: raises the chance of reaching
    the cart for most users, annoys some), 2 coupon_5, 3 coupon_10, 4 free_shipping (held until the
    end of the session, paid only if it ends in a purchase), 5 exit_coupon (fires only on exit
    intent). ``context`` holds observable features (``feature_names``); the response depends on
    hidden archetype, price sensitivity and intent, and sleeping dogs respond negatively to
    coupons. Sessions end within three steps.
    """

    _STATE_KIND = "growthmachine.sim.SessionBatch"
    _STATE_VERSION = 1

    #: Names of the stage codes.
    stage_names = ("browse", "cart", "exit_intent", "purchased", "left")

    def __init__(self, core: Any, config: WorldConfig):
        cv.check_instance(core, "core", _core.SimSessions, "a batch from Environment.sessions")
        cv.check_instance(config, "config", WorldConfig, "a WorldConfig")
        self._core = core
        self._config = config
        self._context: np.ndarray | None = None

    def _get_state(self) -> dict[str, Any]:
        return {"config": self._config, "core": self._core.to_bytes()}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._config = state["config"]
        self._core = _core.SimSessions.from_bytes(self._config._json_compact(), state["core"])
        self._context = None

    @property
    def n(self) -> int:
        return int(self._core.n)

    @property
    def n_features(self) -> int:
        return int(self._core.n_features)

    @property
    def feature_names(self) -> list[str]:
        return list(self._core.feature_names)

    @property
    def action_names(self) -> list[str]:
        return list(self._core.action_names)

    @property
    def user_id(self) -> np.ndarray:
        return self._core.user_id

    @property
    def context(self) -> np.ndarray:
        """(n, n_features) float64 observable context (fixed for the session; read-only)."""
        if self._context is None:
            ctx = self._core.context
            ctx.setflags(write=False)
            self._context = ctx
        return self._context

    @property
    def stage(self) -> np.ndarray:
        return self._core.stage

    @property
    def active(self) -> np.ndarray:
        return self._core.stage < 3

    @property
    def steps(self) -> int:
        return int(self._core.steps)

    def __repr__(self) -> str:
        return f"SessionBatch(n={self.n:,}, active={int(self.active.sum()):,}, steps={self.steps})"

    def _actions(self, actions: Any) -> np.ndarray:
        a = cv.as_array(actions, "actions", np.int64, shape=(self.n,))
        return a

    def step(self, actions: Any) -> StepResult:
        """Takes ``actions`` (n,) ints (0 for inactive sessions, else ValueError); returns
        ``StepResult(reward, cost, stage, done)``: GMV realised at this step, incentive actually
        paid at this step, the new stage and whether each session is done."""
        r, c = self._core.step(self._actions(actions))
        st = self._core.stage
        return StepResult(r, c, st, st >= 3)

    def expected_value(self, actions: Any) -> np.ndarray:
        """(n,) expected net value (GMV - cost) of the rest of each session if ``actions`` are
        taken now and ``none`` afterwards. **Scoring only.**"""
        return self._core.expected_value(self._actions(actions))
