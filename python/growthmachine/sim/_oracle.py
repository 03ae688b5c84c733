"""The oracle (**scoring only**): every user's best options under the true effects, and the best
budgeted allocation among them. Methods of :class:`~growthmachine.sim.Environment`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _progress

__all__ = ["OracleMixin"]


class OracleMixin:
    """:meth:`oracle_candidates` and :meth:`oracle_allocation` of an :class:`Environment`."""

    def oracle_candidates(
        self,
        action_ids: Any = None,
        user_ids: Any = None,
        start_day: int | None = None,
        days: int = 30,
        *,
        objective: str = "profit",
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """Every user's options under the **true** effects (scoring only): for each user, the
        actions on the upper concave hull of its ``(expected_cost, value)`` points (``value``:
        true incremental profit, or GMV with ``objective="gmv"``); a budgeted best choice at any
        price is among them, so an optimiser given these rows finds the oracle's plan. Computed
        in Rust over chunks of users: no users x actions table is built. ``user_ids`` (default
        all) must not repeat a user (``ValueError``).

        Columns: ``user_id``, ``action_id``, ``value``, ``expected_cost``, ``incremental_gmv``,
        ``incremental_profit``, ``incremental_conversion``; sorted by user, then cost."""
        cv.check_choice(objective, "objective", ("profit", "gmv"))
        start, days = self._window(start_day, days)
        users = (
            np.arange(self.n_users, dtype=np.int64)
            if user_ids is None
            else self._user_ids(user_ids, "user_ids", unique=True)
        )
        acts = (
            np.arange(len(self.actions), dtype=np.int64)
            if action_ids is None
            else self._action_ids(action_ids, "action_ids")
        )
        with _progress.bar(progress, "oracle", unit="user") as cb:
            o = self._core.oracle_candidates(
                users, self._a_benefit[acts], self._a_channel[acts], self._a_content[acts],
                start, days, objective, cb,
            )  # fmt: skip
        cols = {k: np.asarray(v) for k, v in o.items()}
        cols["action_id"] = acts[cols.pop("action").astype(np.int64)]
        order = ["user_id", "action_id", "value", "expected_cost", "incremental_gmv",
                 "incremental_profit", "incremental_conversion"]  # fmt: skip
        return pd.DataFrame({k: cols[k] for k in order})

    def oracle_allocation(
        self,
        budget: float | None = None,
        action_ids: Any = None,
        user_ids: Any = None,
        start_day: int | None = None,
        days: int = 30,
        *,
        objective: str = "profit",
    ) -> pd.DataFrame:
        """The best allocation under the true uplift (**scoring only**): at most one action per
        user, maximising the expected ``objective`` (``"profit"``: incremental profit;
        ``"gmv"``: incremental GMV) with total expected cost (incentives + channel) <= ``budget``.

        Solved by the Lagrangian relaxation of this multiple-choice knapsack over
        :meth:`oracle_candidates`: each user takes ``argmax(value - mu * cost)`` if positive, with
        the smallest ``mu >= 0`` meeting the budget (bisection); its value is within one user's
        value of the optimum. Returns the chosen pairs: ``user_id``, ``action_id``, ``value``,
        ``expected_cost``, ``incremental_gmv``, ``incremental_profit``,
        ``incremental_conversion``; totals and ``mu`` in ``.attrs``.
        """
        if budget is not None:
            budget = cv.check_number(budget, "budget", minimum=0.0)
        c = self.oracle_candidates(action_ids, user_ids, start_day, days, objective=objective)
        value = c["value"].to_numpy()
        cost = c["expected_cost"].to_numpy()
        uid = c["user_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]]) if len(uid) else np.zeros(0, int)
        group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(uid)]))

        def pick(mu: float) -> np.ndarray:
            """Rows chosen at price ``mu``: each user's first best option, if positive."""
            if not len(uid):
                return np.zeros(0, dtype=np.int64)
            score = value - mu * cost
            best = np.maximum.reduceat(score, starts)
            hit = np.flatnonzero((score == best[group]) & (score > 0))
            first = np.r_[True, group[hit][1:] != group[hit][:-1]] if len(hit) else hit
            return hit[first.astype(bool)] if len(hit) else hit

        mu = 0.0
        rows = pick(0.0)
        if budget is not None and cost[rows].sum() > budget:
            lo, hi = 0.0, 1.0
            while cost[pick(hi)].sum() > budget and hi < 1e12:
                hi *= 4
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                if cost[pick(mid)].sum() > budget:
                    lo = mid
                else:
                    hi = mid
            mu = hi
            rows = pick(mu)
        res = c.iloc[rows].reset_index(drop=True)
        res.attrs.update(
            {
                "objective": objective,
                "budget": budget,
                "mu": mu,
                "total_value": float(res["value"].sum()),
                "total_cost": float(res["expected_cost"].sum()),
                "total_incremental_gmv": float(res["incremental_gmv"].sum()),
            }
        )
        return res
