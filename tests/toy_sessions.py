"""Test helper: a small multi-step session world (browse -> cart -> exit intent ->
purchase/leave) with the contract of ``growthmachine.sim``'s ``env.sessions(n, seed)``, whose
rules are simple enough for tests to state what a policy must learn (formerly
``growthmachine.realtime.toy``; the package itself uses ``gm.sim``).

Interventions: ``guide`` at browse helps users who need guidance reach the cart (its payoff
arrives two steps later, at checkout); coupons in the cart and an exit coupon raise conversion
for price-sensitive users and cost their face value when the user buys.
"""

from __future__ import annotations

import numpy as np

ACTIONS = ("none", "guide", "coupon_5", "coupon_10", "free_shipping", "exit_coupon")
FACE = np.array([0.0, 0.0, 5.0, 10.0, 6.0, 8.0])
#: Allowed actions per stage (browse, cart, exit intent).
ALLOWED = np.array(
    [
        [1, 1, 0, 0, 0, 0],
        [1, 0, 1, 1, 1, 0],
        [1, 0, 0, 0, 0, 1],
    ],
    dtype=bool,
)


def _sig(t):
    return 1.0 / (1.0 + np.exp(-t))


class ToySessions:
    """``n`` sessions stepping in lockstep. Context features: intercept, needs-guidance,
    engagement, price sensitivity, basket size, noise."""

    action_names = ACTIONS
    n_features = 6

    def __init__(self, n: int, seed: int = 0, drift: float = 0.0):
        self.n = int(n)
        self._rng = np.random.default_rng(seed)
        r = self._rng
        self.user_id = np.arange(self.n, dtype=np.int64)
        z = r.normal(size=(self.n, 5))
        self.context = np.column_stack([np.ones(self.n), z])
        self.context[:, 3] += drift
        self.stage = np.zeros(self.n, dtype=np.int8)
        self.active = np.ones(self.n, dtype=bool)
        self._basket = 40.0 * np.exp(0.3 * self.context[:, 4])

    # probabilities of the next stage given the action, per stage
    def _probs(self, actions):
        x = self.context
        need, eng, price = np.maximum(x[:, 1], 0), x[:, 2], np.maximum(x[:, 3], 0)
        guide = actions == 1
        to_cart = _sig(-0.6 + 0.5 * eng - 0.8 * need + guide * (0.3 + 1.6 * need))
        coupon = ((actions == 2) * 0.6 + (actions == 3) * 1.1 + (actions == 4) * 0.8) * price - (
            actions >= 2
        ) * 0.25
        buy_cart = _sig(-0.9 + 0.3 * eng - 0.6 * price + coupon)
        buy_exit = _sig(-2.2 + (actions == 5) * (1.8 * price - 0.3))
        return to_cart, buy_cart, buy_exit

    def expected_value(self, actions) -> np.ndarray:
        """Expected net value of this step's action for active sessions assuming no intervention
        afterwards (an oracle for scoring only)."""
        actions = np.asarray(actions)
        to_cart, buy_cart, buy_exit = self._probs(actions)
        none = np.zeros(self.n, dtype=int)
        _, bc0, be0 = self._probs(none)
        v_cart0 = bc0 * self._basket + (1 - bc0) * 0.7 * be0 * self._basket
        out = np.where(
            self.stage == 0,
            to_cart * v_cart0,
            np.where(
                self.stage == 1,
                buy_cart * (self._basket - FACE[actions])
                + (1 - buy_cart) * 0.7 * be0 * self._basket,
                buy_exit * (self._basket - FACE[actions]),
            ),
        )
        return np.where(self.active, out, 0.0)

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (self.n,):
            raise ValueError(f"actions: expected shape ({self.n},), got {actions.shape}")
        if np.any(actions[~self.active] != 0):
            raise ValueError("actions: must be 0 for inactive sessions")
        # Actions out of place (e.g. a coupon at browse) simply have no effect, as in the sim.
        to_cart, buy_cart, buy_exit = self._probs(actions)
        u = self._rng.random(self.n)
        u2 = self._rng.random(self.n)
        reward = np.zeros(self.n)
        cost = np.zeros(self.n)
        new = self.stage.copy()
        a = self.active
        s0, s1, s2 = a & (self.stage == 0), a & (self.stage == 1), a & (self.stage == 2)
        new[s0] = np.where(u[s0] < to_cart[s0], 1, 4)
        buy1 = s1 & (u < buy_cart)
        buy2 = s2 & (u < buy_exit)
        buy = buy1 | buy2
        reward[buy] = self._basket[buy]
        cost[buy] = FACE[actions[buy]]
        new[buy] = 3
        nb1 = s1 & ~buy1
        new[nb1] = np.where(u2[nb1] < 0.7, 2, 4)
        new[s2 & ~buy2] = 4
        self.stage = new.astype(np.int8)
        done = a & (self.stage >= 3)
        self.active = a & ~done
        return reward, cost, self.stage.copy(), done


def sessions(n: int, seed: int = 0, drift: float = 0.0) -> ToySessions:
    """``n`` fresh sessions at the browse stage."""
    return ToySessions(n, seed, drift)
