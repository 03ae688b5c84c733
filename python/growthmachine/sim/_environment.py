"""``Environment``: what happens when the machine acts on the population.

Response model (one user, one window ``[start_day, start_day + days)``, touches ``i``):

- strength ``s_i = affinity[channel] * content_fit[archetype, content] / (1 + fatigue_rate F_i)``,
  ``F_i`` the number of earlier touches decayed with half-life ``fatigue_halflife_days``
  (fatigue: repeated touches work less and less);
- offer response ``o_i = min(offer_cap, offer_scale * appeal[benefit] * (0.4 + 1.2 ps) *
  responsiveness * lifecycle_mult * s_i)`` (``ps`` the hidden price sensitivity);
- off-site exposures (push, sms, email, ads) saturate along a Hill curve:
  ``x = exposure_max * responsiveness * lifecycle_mult * E^h / (E^h + ec50^h)``, ``E = sum s_i``
  over off-site touches (``ec50 = 6``: the effective frequency);
- incremental conversion probability ``q = 1 - prod(1 - o_i) (1 - x)``: one extra order on the
  first touch day, worth a Gamma-Gamma order value x (1 + basket_lift);
- sleeping dogs: ``q = 0`` and their baseline purchase rate falls by
  ``sleeping_dog_penalty * min(1, sum s_i)`` (negative uplift), with more opt-outs;
- baseline orders continue the buy-till-you-die process (active users), a first-order hazard
  (prospects) or nothing (lapsed users); an incremental order converts a prospect and wins back a
  lapsed user from the next window on;
- coupons cost only when redeemed: always by an incremental order, with probability
  ``redemption_rate`` by the first later order the user would have placed anyway (cannibalisation);
- each off-site touch opts the user out of that channel with probability
  ``optout_base * (1 + optout_per_fatigue F_i)`` (x ``sleeping_dog_optout_mult`` for dogs).

Channel rules (violations raise ``ValueError`` naming the column and the first bad row, nothing is
dropped silently): push needs the app and push consent, sms and email need consent, in_app needs
the app, opted-out channels are closed, at most ``daily_cap`` touches per user, channel and day,
days inside the window, and the window cannot start before ``env.day``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core, _progress
from .._state import Versioned
from ._channels import CHANNELS, OFFSITE
from ._config import WorldConfig
from ._oracle import OracleMixin
from ._population import Population
from ._sessions import SessionBatch, StepResult

__all__ = ["CHANNELS", "OFFSITE", "Environment", "SessionBatch", "StepResult"]


def _codes(values: Any, name: str, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Names (str/Categorical) or integer codes -> uint8 codes, ValueError naming the column."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.array
    if isinstance(values, pd.Categorical):
        remap = pd.Index(list(names)).get_indexer(values.categories.astype(object))
        cats = np.asarray(values.codes)
        if (cats < 0).any():
            raise ValueError(f"{name}: has missing values")
        codes = remap[cats]
        if codes.size and codes.min() < 0:
            bad = int(np.flatnonzero(codes < 0)[0])
            raise ValueError(
                f"{name}: row {bad}: {values[bad]!r} is not one of {', '.join(map(repr, names))}"
            )
        return codes.astype(np.uint8)
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() >= len(names)):
            bad = int(np.flatnonzero((arr < 0) | (arr >= len(names)))[0])
            raise ValueError(
                f"{name}: row {bad}: code {arr[bad]} is not one of 0 to {len(names) - 1} "
                f"({', '.join(names)})"
            )
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        raise TypeError(f"{name}: must hold names or integer codes, got floats")
    codes = pd.Index(list(names)).get_indexer(pd.Series(arr).astype(object))
    if codes.size and codes.min() < 0:
        bad = int(np.flatnonzero(codes < 0)[0])
        raise ValueError(
            f"{name}: row {bad}: {arr[bad]!r} is not one of {', '.join(map(repr, names))}"
        )
    return codes.astype(np.uint8)


def _length(v: Any) -> int:
    """Rows of a column given as a sequence or array (1 for a scalar)."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return 1
    return len(v) if hasattr(v, "__len__") and not isinstance(v, (str, bytes)) else 1


def _raw_column(table: Any, name: str, col: str) -> Any:
    """A column keeping pandas Categoricals (fast name -> code mapping)."""
    if isinstance(table, pd.DataFrame) and col in table.columns:
        return table[col]
    if isinstance(table, Mapping) and col in table:
        v = table[col]
        if isinstance(v, (pd.Categorical, pd.Series)):
            return v
    return cv.column(table, name, col)


class Environment(OracleMixin, Versioned):
    """The world's response to actions, for a :class:`Population`.

    ``env.day`` starts at ``pop.days`` (the day after the history) and each :meth:`apply` or
    :meth:`run_experiment` advances it to the end of its window. ``env.actions`` is the catalogue
    of (benefit, channel, content) actions.
    """

    _STATE_KIND = "growthmachine.sim.Environment"
    _STATE_VERSION = 2
    _STATE_READS = (1,)

    def __init__(self, pop: Population, seed: int = 0):
        if not isinstance(pop, Population):
            raise TypeError(f"pop: must be a Population, got {type(pop).__name__}")
        self.seed = cv.check_int(seed, "seed", minimum=0, maximum=cv.U64_MAX)
        self.population = pop
        # built in Rust from the population's static truth (no tables cross the boundary)
        self._core = _core.SimEnv(pop._core, self.seed)
        #: orders of each applied window: (user_id, day, amount) arrays
        self._windows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._build_catalogue()

    # -- pickling: the population, the seed and the dynamic state as numpy arrays ------------
    def _get_state(self) -> dict[str, Any]:
        return {
            "population": self.population,
            "seed": self.seed,
            "day": int(self._core.day),
            "epoch": int(self._core.epoch),
            "arrays": dict(self._core.state()),
            "windows": list(self._windows),
        }

    def _upgrade_state(self, version: int, state: dict[str, Any]) -> dict[str, Any]:
        if version == 1:  # before the windows' transactions were kept
            state = {**state, "windows": []}
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        self.__init__(state["population"], state["seed"])
        a = state["arrays"]
        self._core.set_state(
            state["day"], state["epoch"], a["alive"], a["customer"], a["optout"], a["fatigue"],
            a["last_touch"], a["n_orders"], a["last_order"], a["gmv"],
        )  # fmt: skip
        self._windows = list(state["windows"])

    def copy(self, seed: int | None = None) -> Environment:
        """An independent copy of the world in its current state (day, lifecycles, fatigue,
        opt-outs, counters), sharing the population; ``seed`` (default: this one) seeds the
        copy's future randomness. Built from the same state as pickling."""
        state = self._get_state()
        if seed is not None:
            state["seed"] = cv.check_int(seed, "seed", minimum=0, maximum=cv.U64_MAX)
        new = type(self).__new__(type(self))
        new._set_state(state)
        return new

    def _build_catalogue(self) -> None:
        r = self.config.response
        rows = []
        for b in r.benefits:
            for ci, c in enumerate(CHANNELS):
                ch = getattr(r.channels, c)
                for k in r.contents:
                    rows.append((b.name, c, k, b.face_value, b.cost, ch.unit_cost, OFFSITE[ci]))
        df = pd.DataFrame(
            rows,
            columns=[
                "benefit",
                "channel",
                "content",
                "face_value",
                "incentive_cost",
                "unit_cost",
                "is_offsite",
            ],
        )
        df.insert(0, "action_id", np.arange(len(df), dtype=np.int64))
        df.insert(1, "name", df["benefit"] + "|" + df["channel"] + "|" + df["content"])
        for col, names in (
            ("benefit", [b.name for b in r.benefits]),
            ("channel", list(CHANNELS)),
            ("content", list(r.contents)),
        ):
            df[col] = pd.Categorical(df[col], categories=names)
        self.actions = df
        self._a_benefit = df["benefit"].cat.codes.to_numpy().astype(np.uint8)
        self._a_channel = df["channel"].cat.codes.to_numpy().astype(np.uint8)
        self._a_content = df["content"].cat.codes.to_numpy().astype(np.uint8)

    # -- basic properties ----------------------------------------------------------------------
    @property
    def config(self) -> WorldConfig:
        return self.population.config

    @property
    def day(self) -> int:
        """The current day: the next window may start here or later."""
        return int(self._core.day)

    @property
    def n_users(self) -> int:
        return int(self._core.n_users)

    def __repr__(self) -> str:
        return f"Environment(n_users={self.n_users:,}, day={self.day}, seed={self.seed})"

    def state(self) -> pd.DataFrame:
        """The per-user dynamic state (hidden; for scoring and debugging): lifecycle, fatigue,
        opt-outs (one bool column per channel), order counters."""
        s = self._core.state()
        df = pd.DataFrame(
            {
                "user_id": np.arange(self.n_users, dtype=np.int64),
                "customer": s["customer"],
                "alive": s["alive"],
                "fatigue": s["fatigue"],
                "last_touch_day": np.where(
                    s["last_touch"] == np.iinfo(np.int32).min, -1, s["last_touch"]
                ),
                "n_orders": s["n_orders"].astype(np.int64),
                "last_order_day": s["last_order"],
                "gmv": s["gmv"],
            }
        )
        for i, c in enumerate(CHANNELS):
            df[f"opted_out_{c}"] = (s["optout"] >> i) & 1 == 1
        return df

    def transactions(self, *, history: bool = True) -> pd.DataFrame:
        """Every order the platform has seen, as a transaction table (``user_id``, ``day``,
        ``amount``, ``category``): the population's history (when ``history``) followed by the
        orders of every window applied since (:meth:`apply`, :meth:`run_experiment`), each
        window by user then time, its category not recorded (missing). This is the observable
        log a period's insight is refitted on."""
        if not isinstance(history, (bool, np.bool_)):
            raise TypeError(f"history: must be a bool, got {type(history).__name__}")
        h = self.population.transactions
        parts = [h] if history else []
        cats = h["category"].cat.categories if "category" in h.columns else None
        for u, d, a in self._windows:
            w = pd.DataFrame({"user_id": u, "day": d.astype(np.int32), "amount": a})
            if cats is not None:
                w["category"] = pd.Categorical.from_codes(np.full(len(u), -1), categories=cats)
            parts.append(w)
        if not parts:
            return h.iloc[:0].copy()
        return pd.concat(parts, ignore_index=True)

    def opted_out(self) -> pd.DataFrame:
        """One bool column per channel: the user has opted out of it (observable)."""
        s = self._core.optout()
        return pd.DataFrame({c: (s >> i) & 1 == 1 for i, c in enumerate(CHANNELS)})

    def eligible(self, user_ids: Any, action_ids: Any) -> np.ndarray:
        """Whether each (user, action) pair passes the channel rules (consent, app, opt-outs)."""
        u = self._user_ids(user_ids, "user_ids")
        a = self._action_ids(action_ids, "action_ids", len(u))
        ch = self._a_channel[a]
        if len(ch) == 1 and len(u) != 1:  # one action for every user
            ch = np.full(len(u), ch[0], np.uint8)
        cv.check_same_length({"user_ids": u, "action_ids": ch})
        return self._core.eligible(u, ch)

    # -- input helpers ------------------------------------------------------------------------
    def _user_ids(self, x: Any, name: str, *, unique: bool = False) -> np.ndarray:
        u = cv.as_array(x, name, np.int64)
        if u.min() < 0 or u.max() >= self.n_users:
            bad = int(np.flatnonzero((u < 0) | (u >= self.n_users))[0])
            raise ValueError(
                f"{name}: {u[bad]} at position {bad} is not a user id (0 to {self.n_users - 1})"
            )
        if unique:
            dup = np.zeros(len(u), dtype=bool)
            order = np.argsort(u, kind="stable")
            su = u[order]
            dup[order[1:]] = su[1:] == su[:-1]
            if dup.any():
                bad = int(np.flatnonzero(dup)[0])
                raise ValueError(
                    f"{name}: user {u[bad]} appears more than once (first repeat at position "
                    f"{bad}); each user may be listed once"
                )
        return u

    def _action_ids(self, x: Any, name: str, n: int | None = None) -> np.ndarray:
        if np.isscalar(x):
            x = np.full(n if n is not None else 1, x)
        a = cv.as_array(x, name, np.int64)
        if a.min() < 0 or a.max() >= len(self.actions):
            bad = int(np.flatnonzero((a < 0) | (a >= len(self.actions)))[0])
            raise ValueError(
                f"{name}: {a[bad]} at position {bad} is not an action id (0 to {len(self.actions) - 1})"
            )
        return a

    def _window(self, start_day: Any, days: Any) -> tuple[int, int]:
        start = self.day if start_day is None else cv.check_int(start_day, "start_day")
        if start < self.day:
            raise ValueError(
                f"start_day: must be >= the environment's current day {self.day} (the past "
                f"cannot be changed), got {start}"
            )
        days = cv.check_int(days, "days", minimum=1, maximum=100_000)
        return start, days

    def _treatment_columns(self, treatments: Any, start: int) -> tuple[np.ndarray, ...]:
        name = "treatments"
        if treatments is None:
            e8 = np.zeros(0, np.uint8)
            return np.zeros(0, np.int64), e8, e8, e8, np.zeros(0, np.int64)
        cols = cv.columns(treatments, name)
        if isinstance(treatments, Mapping) and "user_id" in cols:
            # A dict may give scalars for every column but user_id: broadcast them.
            n0 = len(np.atleast_1d(np.asarray(treatments["user_id"])))
            treatments = {
                k: (
                    pd.Categorical.from_codes(np.zeros(n0, np.int8), categories=[v])
                    if isinstance(v, str)
                    else np.full(n0, v)
                    if np.ndim(v) == 0 and k != "user_id"
                    else v
                )
                for k, v in treatments.items()
            }
        n = cv.n_rows(treatments, name)
        if isinstance(treatments, Mapping) and cols:  # a dict's columns may differ in length
            ref = "user_id" if "user_id" in cols else cols[0]
            n = _length(treatments[ref])
            for c in cols:
                m = _length(treatments[c])
                if m != n:
                    raise ValueError(
                        f"{name}[{c!r}]: has length {m}, expected {n} (the length of "
                        f"{name}[{ref!r}])"
                    )
        if n == 0:  # an empty table (even one without columns): the world runs untouched
            e8 = np.zeros(0, np.uint8)
            return np.zeros(0, np.int64), e8, e8, e8, np.zeros(0, np.int64)
        if "user_id" not in cols:
            raise ValueError(f"{name}: needs a 'user_id' column (columns: {', '.join(cols)})")
        user = cv.as_array(cv.column(treatments, name, "user_id"), f"{name}['user_id']", np.int64)
        r = self.config.response
        if "action_id" in cols:
            clash = [c for c in ("benefit", "channel", "content") if c in cols]
            if clash:
                raise ValueError(
                    f"{name}: give either 'action_id' or benefit/channel/content, not both "
                    f"(found 'action_id' and {clash[0]!r})"
                )
            a = self._action_ids(cv.column(treatments, name, "action_id"), f"{name}['action_id']")
            benefit, channel, content = self._a_benefit[a], self._a_channel[a], self._a_content[a]
        else:
            for c in ("benefit", "channel"):
                if c not in cols:
                    raise ValueError(
                        f"{name}: needs an 'action_id' column or 'benefit' and 'channel' columns "
                        f"(missing {c!r}; columns: {', '.join(cols)})"
                    )
            benefit = _codes(
                _raw_column(treatments, name, "benefit"),
                f"{name}['benefit']",
                [b.name for b in r.benefits],
            )
            channel = _codes(
                _raw_column(treatments, name, "channel"), f"{name}['channel']", CHANNELS
            )
            if "content" in cols:
                content = _codes(
                    _raw_column(treatments, name, "content"), f"{name}['content']", r.contents
                )
            else:
                content = np.zeros(n, np.uint8)
        if "day" in cols:
            day = cv.as_array(cv.column(treatments, name, "day"), f"{name}['day']", np.int64)
        else:
            day = np.full(n, start, np.int64)
        return user, benefit, channel, content, day

    # -- acting -------------------------------------------------------------------------------
    def apply(
        self,
        treatments: Any,
        start_day: int | None = None,
        days: int = 30,
        *,
        progress: bool | None = None,
        output: cv.Output = "pandas",
    ):
        """Applies ``treatments`` over the window ``[start_day, start_day + days)``.

        ``treatments``: a table with ``user_id`` and either ``action_id`` or ``benefit``,
        ``channel`` (and optionally ``content``, default the first content) as names or codes,
        and optionally ``day`` (default ``start_day``); ``None`` or an empty table lets the world
        run untouched. ``start_day`` defaults to :attr:`day`.

        Returns one row per user (all users, sorted by user_id): ``user_id``, ``converted``,
        ``orders``, ``gmv``, ``incentive_cost`` (coupons actually redeemed), ``channel_cost``,
        ``exposures`` (off-site touches), ``touches``, ``opted_out`` (opted out of a channel in
        this window), ``redeemed``. Advances :attr:`day` to ``start_day + days``; the window's
        orders join :meth:`transactions`.
        """
        start, days = self._window(start_day, days)
        user, benefit, channel, content, day = self._treatment_columns(treatments, start)
        with _progress.bar(progress, "applying treatments", unit="user") as cb:
            o = self._core.apply(user, benefit, channel, content, day, start, days, cb)
        self._windows.append(
            (o["tx_user"].astype(np.int64), o["tx_day"], np.asarray(o["tx_amount"]))
        )
        cols = {"user_id": np.arange(self.n_users, dtype=np.int64)}
        for k in ("converted", "orders", "gmv", "incentive_cost", "channel_cost", "exposures",
                  "touches", "opted_out", "redeemed"):  # fmt: skip
            v = o[k]
            cols[k] = v.astype(np.int64) if v.dtype == np.uint32 else v
        return cv.to_output(cols, output)

    def expected_outcome(
        self,
        treatments: Any,
        start_day: int | None = None,
        days: int = 30,
        *,
        progress: bool | None = None,
        output: cv.Output = "pandas",
    ):
        """The expected outcome of :meth:`apply` with ``treatments`` over ``[start_day, start_day
        + days)``, given the current state, **without** advancing the world. **Scoring only.**

        ``treatments`` and ``start_day`` as in :meth:`apply` (several touches per user, on several
        days and channels), checked by the same channel rules with the same errors.
        :meth:`true_uplift` is the special case of one action per user on ``start_day``.

        Returns one row per user with at least one touch, sorted by ``user_id``: ``touches``,
        ``exposures`` (off-site touches), ``incremental_conversion`` (P(convert) with the touches
        minus without), ``incremental_orders``, ``incremental_gmv``, ``expected_incentive_cost``
        (coupons paid), ``channel_cost``, ``expected_cost`` (both), ``incremental_profit``
        (margin * incremental_gmv - expected_cost), ``p_optout`` (probability of opting out of at
        least one channel in this window), ``expected_optouts`` (sum over channels of the
        probability of opting out of it), ``baseline_conversion``, ``baseline_gmv``.

        Exact (the model's expectation, order values at their mean before cent rounding):
        everything, including the incentive cost of a user with at most one costed coupon in the
        window. For a user with several costed coupons, which one a later order redeems depends
        on the whole order path, so ``expected_incentive_cost`` averages 256 replicate order
        paths drawn from the user's own stream (the incremental order and the redemption coin
        are integrated exactly): deterministic for a given world (seed and window count) and
        thread count, but not exact.
        """
        start, days = self._window(start_day, days)
        user, benefit, channel, content, day = self._treatment_columns(treatments, start)
        with _progress.bar(progress, "expected outcome", unit="user") as cb:
            e = self._core.expected_outcome(user, benefit, channel, content, day, start, days, cb)
        margin = self.config.response.margin
        cost = e["expected_incentive_cost"] + e["channel_cost"]
        cols = {
            "user_id": e["user_id"],
            "touches": e["touches"].astype(np.int64),
            "exposures": e["exposures"].astype(np.int64),
            "incremental_conversion": e["incremental_conversion"],
            "incremental_orders": e["incremental_orders"],
            "incremental_gmv": e["incremental_gmv"],
            "expected_incentive_cost": e["expected_incentive_cost"],
            "channel_cost": e["channel_cost"],
            "expected_cost": cost,
            "incremental_profit": margin * e["incremental_gmv"] - cost,
            "p_optout": e["p_optout"],
            "expected_optouts": e["expected_optouts"],
            "baseline_conversion": e["baseline_conversion"],
            "baseline_gmv": e["baseline_gmv"],
        }
        return cv.to_output(cols, output)

    def _features(self, users: np.ndarray) -> dict[str, np.ndarray]:
        """Observable history summaries at the current day (recency, frequency, monetary)."""
        s = self._core.state()
        n_orders = s["n_orders"][users].astype(np.int64)
        last = s["last_order"][users]
        gmv = s["gmv"][users]
        with np.errstate(invalid="ignore", divide="ignore"):
            recency = np.where(np.isnan(last), np.nan, self.day - last)
        su = self.population.users["signup_day"].to_numpy()[users]
        return {
            "tenure_days": (self.day - su).astype(np.int64),
            "orders_to_date": n_orders,
            "days_since_last_order": recency,
            "gmv_window": gmv,
            "customer": s["customer"][users],
        }

    def run_experiment(
        self,
        actions: Any,
        share: float = 0.5,
        start_day: int | None = None,
        days: int = 30,
        seed: int = 0,
        *,
        user_ids: Any = None,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """A randomised campaign with a control group; returns its log.

        Each user of ``user_ids`` (default all) is treated with probability ``share``, with an
        action drawn uniformly from ``actions`` (action ids), else is in control (``action_id``
        -1). Randomisation uses ``numpy.random.default_rng(seed)``. A user whose assigned action
        breaks a channel rule (no consent, no app, opted out) is logged with ``delivered=False``
        and receives nothing (intent to treat; :meth:`true_uplift` is 0 for such pairs).
        The world advances by the window, exactly like :meth:`apply`.

        Log columns: ``user_id``, ``action_id`` (-1 = control), ``delivered``, ``orders``,
        ``gmv``, ``incentive_cost``, ``channel_cost``, ``converted``, ``opted_out``, the
        observable user attributes (signup_day, acquisition_channel, city_tier, age_band,
        device, has_app, push/email/sms opt-ins) and history summaries at the start
        (tenure_days, orders_to_date, days_since_last_order, gmv_window, customer).
        """
        if np.ndim(actions) == 0 and not isinstance(actions, bool):  # one action id
            actions = [actions]
        acts = cv.as_array(actions, "actions", np.int64)
        self._action_ids(acts, "actions")
        share = cv.check_number(share, "share", minimum=0.0, maximum=1.0)
        seed = cv.check_int(seed, "seed", minimum=0)
        start, days = self._window(start_day, days)
        users = (
            np.arange(self.n_users, dtype=np.int64)
            if user_ids is None
            else self._user_ids(user_ids, "user_ids", unique=True)
        )
        rng = np.random.default_rng(seed)
        treated = rng.random(len(users)) < share
        arm = rng.integers(0, len(acts), len(users))
        action_id = np.where(treated, acts[arm], -1)
        delivered = np.zeros(len(users), dtype=bool)
        if treated.any():
            delivered[treated] = self.eligible(users[treated], action_id[treated])
        feats = self._features(users)
        sel = np.flatnonzero(delivered)
        a = action_id[sel]
        tr = {
            "user_id": users[sel],
            "action_id": a,
            "day": np.full(len(sel), start, np.int64),
        }
        out = self.apply(tr, start, days, progress=progress)
        u = self.population.users.iloc[users].reset_index(drop=True)
        log = pd.DataFrame(
            {
                "user_id": users,
                "action_id": action_id,
                "delivered": delivered,
                "orders": out["orders"].to_numpy()[users],
                "gmv": out["gmv"].to_numpy()[users],
                "incentive_cost": out["incentive_cost"].to_numpy()[users],
                "channel_cost": out["channel_cost"].to_numpy()[users],
                "converted": out["converted"].to_numpy()[users],
                "opted_out": out["opted_out"].to_numpy()[users],
            }
        )
        for c in u.columns:
            if c != "user_id":
                log[c] = (
                    u[c].to_numpy()
                    if not isinstance(u[c].dtype, pd.CategoricalDtype)
                    else u[c].values
                )
        for k, v in feats.items():
            log[k] = v
        log.attrs.update({"start_day": start, "days": days, "share": share, "seed": seed})
        return log

    # -- ground truth (scoring only) ----------------------------------------------------------
    def true_uplift(
        self,
        user_ids: Any,
        action_ids: Any,
        start_day: int | None = None,
        days: int = 30,
        *,
        product: bool = False,
        output: cv.Output = "pandas",
    ):
        """Exact expected effects of delivering one action on ``start_day`` for ``days`` days,
        given the current state (fatigue, lifecycle, opt-outs). **Scoring only.**

        Pairs ``(user_ids[i], action_ids[i])`` (a single action id is broadcast); with
        ``product=True`` every user is paired with every action (users outer, actions inner).
        Columns: ``user_id``, ``action_id``, ``eligible``, ``incremental_conversion`` (probability
        points), ``incremental_orders``, ``incremental_gmv``, ``expected_incentive_cost``,
        ``channel_cost``, ``expected_cost`` (both), ``incremental_profit`` (margin *
        incremental_gmv - expected_cost), ``baseline_conversion``, ``baseline_gmv``.
        Ineligible pairs (channel rules) have zero effect and zero cost.
        """
        start, days = self._window(start_day, days)
        u = self._user_ids(user_ids, "user_ids")
        if product:
            a0 = self._action_ids(action_ids, "action_ids")
            a = np.tile(a0, len(u))
            u = np.repeat(u, len(a0))
        else:
            a = self._action_ids(action_ids, "action_ids", len(u))
            if len(a) == 1 and len(u) > 1:
                a = np.full(len(u), a[0])
            if len(a) != len(u):
                raise ValueError(
                    f"action_ids: has length {len(a)}, expected {len(u)} (the length of "
                    f"user_ids) or 1; use product=True for every combination"
                )
        e = self._core.true_uplift(
            u, self._a_benefit[a], self._a_channel[a], self._a_content[a], start, days
        )
        margin = self.config.response.margin
        cost = e["expected_incentive_cost"] + e["channel_cost"]
        cols = {
            "user_id": u,
            "action_id": a,
            "eligible": e["eligible"],
            "incremental_conversion": e["incremental_conversion"],
            "incremental_orders": e["incremental_orders"],
            "incremental_gmv": e["incremental_gmv"],
            "expected_incentive_cost": e["expected_incentive_cost"],
            "channel_cost": e["channel_cost"],
            "expected_cost": cost,
            "incremental_profit": margin * e["incremental_gmv"] - cost,
            "baseline_conversion": e["baseline_conversion"],
            "baseline_gmv": e["baseline_gmv"],
        }
        return cv.to_output(cols, output)

    # -- sessions -----------------------------------------------------------------------------
    def sessions(self, n: int, seed: int = 0) -> SessionBatch:
        """A vectorised batch of ``n`` site visits (see :class:`SessionBatch`); ``MemoryError``
        (before any work) if ``n`` sessions do not fit in this machine's memory."""
        n = cv.check_int(n, "n", minimum=1, maximum=cv.I64_MAX)
        seed = cv.check_int(seed, "seed", minimum=0, maximum=cv.U64_MAX)
        return SessionBatch(self._core.sessions(n, seed), self.config)


def check_environment(env: Any, name: str = "env") -> Environment:
    """``env`` if it is a simulated world, else ``TypeError`` naming ``name``: the one check
    every function taking a world makes before reading it."""
    return cv.check_instance(env, name, Environment, "a growthmachine.sim.Environment")
