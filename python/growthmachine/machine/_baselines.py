"""What marketers do today, run on their own copy of the world with the machine's budget.

Every baseline is a small class with ``treatments(env, period, start, days, budget)`` (the
period's treatment table) and ``observe(env, treatments, outcomes)`` (what it learns from the
period, if anything). To fit the budget, the rules are given the world's *true* expected cost of
what they send (an advantage the machine, which must estimate its costs, does not have); the
oracle is given the true effects too and is used for scoring only.

- :class:`NoMarketing` (``none``): nothing.
- :class:`RandomPolicy` (``random``): random users, each a random action it is eligible for.
- :class:`RfmRule` (``rfm_rule``): RFM tiers from the order history (recency, frequency and
  monetary quintiles, summed); the best tiers first get the largest coupon on their best
  reachable channel (push, e-mail, SMS, in-app), and the top tier also a uniform burst of 6 ads.
- :class:`AbWinner` (``ab_winner``): one A/B test over the plan's actions in the first period
  (random users, uniform random action, the rest as controls), then the winner (highest mean
  profit over controls) rolled out to random eligible users each period.
- :class:`Oracle` (``oracle``): the world's true per-user effects over the whole catalogue,
  allocated by :func:`growthmachine.allocate.solve` at the spend it is given (the machine's own
  true spend of the period); candidates are computed in Rust in chunks of users
  (``Environment.oracle_candidates``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .._seeds import derive_rng
from ..sim._environment import check_environment as _env
from ._kpis import eligible, empty_treatments

__all__ = ["BASELINES", "AbWinner", "NoMarketing", "Oracle", "RandomPolicy", "RfmRule"]


#: Users whose true cost is computed at a time while a rule fills its budget in priority order.
CHUNK = 50_000


def _cut_to_budget(env: Any, users: np.ndarray, actions: np.ndarray, start: int, days: int,
                   budget: float) -> np.ndarray:  # fmt: skip
    """The leading ordered (user, action) pairs that fit the budget at their true expected
    cost (computed chunk by chunk until the budget is spent)."""
    if not len(users) or budget <= 0:
        return np.zeros(0, dtype=np.int64)
    spent = 0.0
    for lo in range(0, len(users), CHUNK):
        hi = min(lo + CHUNK, len(users))
        cost = env.true_uplift(users[lo:hi], actions[lo:hi], start_day=start,
                               days=days)["expected_cost"].to_numpy()  # fmt: skip
        cum = spent + np.cumsum(cost)
        if cum[-1] > budget:
            return np.arange(lo + int(np.searchsorted(cum, budget, side="right")))
        spent = float(cum[-1])
    return np.arange(len(users))


def _table(env: Any, users: np.ndarray, actions: np.ndarray, start: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": users.astype(np.int64),
            "action_id": actions.astype(np.int64),
            "day": np.full(len(users), start, np.int64),
        }
    )


def _start(env: Any, start: Any, name: str = "start") -> int:
    start = cv.check_int(start, name, minimum=-(2**31) + 1, maximum=2**31 - 1)
    if start < env.day:
        raise ValueError(
            f"{name}: must be >= the environment's current day {env.day} (the past cannot be "
            f"changed), got {start}"
        )
    return start


class NoMarketing:
    """The protocol every baseline follows: :meth:`treatments` and :meth:`observe` check their
    arguments (errors name them) and call the baseline's ``_treatments`` / ``_observe``."""

    name = "none"

    def treatments(self, env: Any, period: int, start: int, days: int, budget: float):
        """The baseline's treatment table for ``period`` (from day ``start``, ``days`` long,
        spending at most ``budget``)."""
        _env(env)
        period = cv.check_int(period, "period", minimum=0)
        start = _start(env, start)
        days = cv.check_int(days, "days", minimum=1, maximum=100_000)
        budget = cv.check_number(budget, "budget", minimum=0.0)
        return self._treatments(env, period, start, days, budget)

    def observe(self, env: Any, treatments: pd.DataFrame, outcomes: pd.DataFrame) -> None:
        """Learns from a period's ``outcomes`` of its ``treatments`` (tables)."""
        _env(env)
        treatments = cv.as_pandas(treatments, "treatments")
        outcomes = cv.as_pandas(outcomes, "outcomes")
        self._observe(env, treatments, outcomes)

    def _treatments(self, env: Any, period: int, start: int, days: int, budget: float):
        return empty_treatments()

    def _observe(self, env: Any, treatments: pd.DataFrame, outcomes: pd.DataFrame) -> None:
        pass


class RandomPolicy(NoMarketing):
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = cv.check_int(seed, "seed", minimum=0)

    def _treatments(self, env: Any, period: int, start: int, days: int, budget: float):
        rng = derive_rng(self.seed, "baseline", self.name, period)
        users = rng.permutation(env.n_users).astype(np.int64)
        acts = rng.integers(0, len(env.actions), len(users))
        ok = eligible(env, users, acts)
        users, acts = users[ok], acts[ok]
        take = _cut_to_budget(env, users, acts, start, days, budget)
        return _table(env, users[take], acts[take], start)


class RfmRule(NoMarketing):
    """The classic rule: RFM score = recency + frequency + monetary quintile (1..5 each, from the
    history at the start of the period; prospects have no score)."""

    name = "rfm_rule"
    #: Exposures of the top tier's ads burst, spread over the period.
    BURST = 6

    def __init__(self, seed: int = 0):
        self.seed = cv.check_int(seed, "seed", minimum=0)

    @staticmethod
    def scores(env: Any, start: int) -> np.ndarray:
        s = _env(env).state()
        start = cv.check_int(start, "start", minimum=-(2**31) + 1, maximum=2**31 - 1)
        cust = s["customer"].to_numpy()
        rec = start - s["last_order_day"].to_numpy()
        freq = s["n_orders"].to_numpy().astype(float)
        mon = s["gmv"].to_numpy()
        out = np.zeros(env.n_users)
        idx = np.flatnonzero(cust & np.isfinite(rec))
        for v, sign in ((rec, -1.0), (freq, 1.0), (mon, 1.0)):
            x = sign * v[idx]
            rank = np.argsort(np.argsort(x, kind="stable"), kind="stable")
            out[idx] += 1 + (5 * rank) // max(len(idx), 1)
        return out

    def _treatments(self, env: Any, period: int, start: int, days: int, budget: float):
        acts = env.actions
        coupons = acts[acts["incentive_cost"] > 0]
        top_cost = coupons["incentive_cost"].max()
        benefit = str(coupons.loc[coupons["incentive_cost"] == top_cost, "benefit"].iloc[0])
        content = str(acts["content"].cat.categories[0])
        score = self.scores(env, start)
        rng = derive_rng(self.seed, "baseline", self.name, period)
        order = np.lexsort((rng.random(env.n_users), -score))  # best tiers first, ties random
        order = order[score[order] > 0]
        # best reachable channel per user
        aid = {}
        for ch in ("push", "email", "sms", "in_app"):
            a = acts[(acts["benefit"] == benefit) & (acts["channel"] == ch)]
            aid[ch] = int(a.loc[a["content"] == content, "action_id"].iloc[0])
        chosen = np.full(len(order), -1, np.int64)
        for ch in ("push", "email", "sms", "in_app"):
            left = chosen < 0
            if not left.any():
                break
            ok = eligible(env, order[left], np.full(int(left.sum()), aid[ch]))
            idx = np.flatnonzero(left)[ok]
            chosen[idx] = aid[ch]
        users, a = order[chosen >= 0].astype(np.int64), chosen[chosen >= 0]
        top = score[users] >= 13  # top tier: 13..15 of 15
        ads = acts[(acts["benefit"] == "none") & (acts["channel"] == "ads")]
        ads_id = int(ads.loc[ads["content"] == content, "action_id"].iloc[0])
        burst_ok = top & eligible(env, users, np.full(len(users), ads_id))
        t = _table(env, users, a, start)
        b_users = users[burst_ok]
        if len(b_users):
            step = max(days // self.BURST, 1)
            offs = (np.arange(self.BURST) * step) % days
            burst = pd.DataFrame(
                {
                    "user_id": np.repeat(b_users, self.BURST),
                    "action_id": np.full(len(b_users) * self.BURST, ads_id, np.int64),
                    "day": np.tile(start + offs, len(b_users)).astype(np.int64),
                }
            )
            t = pd.concat([t, burst], ignore_index=True)
        if not len(t) or budget <= 0:
            return t.iloc[:0]
        # each user's coupon and burst at their joint true cost, in tier order, up to the budget
        # (chunk by chunk until it is spent)
        keep, spent = [], 0.0
        for lo in range(0, len(users), CHUNK):
            chunk = users[lo : lo + CHUNK]
            tc = t[t["user_id"].isin(chunk)]
            e = env.expected_outcome(tc, start_day=start, days=days, progress=False)
            cost = pd.Series(e["expected_cost"].to_numpy(), index=e["user_id"].to_numpy())
            cum = spent + np.cumsum(cost.reindex(chunk).fillna(0.0).to_numpy())
            keep.append(chunk[cum <= budget])
            if cum[-1] > budget:
                break
            spent = float(cum[-1])
        keep_a = np.concatenate(keep) if keep else np.zeros(0, np.int64)
        return t[t["user_id"].isin(keep_a)].reset_index(drop=True)


class AbWinner(NoMarketing):
    """One A/B test in the first period over ``action_ids``, then the winner rolled out."""

    name = "ab_winner"

    def __init__(self, action_ids: Any, seed: int = 0):
        self.action_ids = cv.as_array(action_ids, "action_ids", np.int64, nonnegative=True)
        self.seed = cv.check_int(seed, "seed", minimum=0)
        self.winner_: int | None = None
        self.arms_: pd.DataFrame | None = None

    def _treatments(self, env: Any, period: int, start: int, days: int, budget: float):
        rng = derive_rng(self.seed, "baseline", self.name, period)
        users = rng.permutation(env.n_users).astype(np.int64)
        if self.winner_ is None:  # the test: random users, a uniform random arm each
            acts = self.action_ids[rng.integers(0, len(self.action_ids), len(users))]
        else:
            acts = np.full(len(users), self.winner_, np.int64)
        ok = eligible(env, users, acts)
        users, acts = users[ok], acts[ok]
        take = _cut_to_budget(env, users, acts, start, days, budget)
        return _table(env, users[take], acts[take], start)

    def _observe(self, env: Any, treatments: pd.DataFrame, outcomes: pd.DataFrame) -> None:
        if self.winner_ is not None or not len(treatments):
            return
        margin = env.config.response.margin
        o = outcomes
        profit = margin * o["gmv"] - o["incentive_cost"] - o["channel_cost"]
        treated = np.zeros(env.n_users, bool)
        treated[treatments["user_id"].to_numpy()] = True
        base = float(profit[~treated].mean())
        arms = (
            pd.DataFrame({"action_id": treatments["action_id"].to_numpy(),
                          "lift": profit.to_numpy()[treatments["user_id"].to_numpy()] - base})
            .groupby("action_id")["lift"].agg(["mean", "size"])
        )  # fmt: skip
        if (~treated).sum() == 0 or not np.isfinite(arms["mean"]).any():
            return  # no control to compare with: test again next period
        self.arms_ = arms
        self.winner_ = int(arms["mean"].idxmax())


class Oracle(NoMarketing):
    name = "oracle"

    def __init__(self, seed: int = 0):
        self.seed = cv.check_int(seed, "seed", minimum=0)

    def _treatments(self, env: Any, period: int, start: int, days: int, budget: float):
        from .. import allocate

        c = env.oracle_candidates(start_day=start, days=days, progress=False)
        if not len(c) or budget <= 0:
            return empty_treatments()
        uid = c["user_id"].to_numpy()
        first = np.r_[True, uid[1:] != uid[:-1]]
        indptr = np.r_[np.flatnonzero(first), len(uid)]
        prob = allocate.Problem.from_arrays(
            indptr,
            c["action_id"].to_numpy(),
            c["value"].to_numpy(),
            resources={"budget": budget},
            usage={"budget": c["expected_cost"].to_numpy()},
            n_actions=len(env.actions),
        )
        sol = allocate.solve(prob, seed=self.seed, progress=False)
        a = sol.assignment
        users = uid[first][a["user"].to_numpy()]
        return _table(env, users, a["action"].to_numpy(), start)


#: Baseline names in the order reports show them.
BASELINES = ("rfm_rule", "ab_winner", "random", "none", "oracle")
