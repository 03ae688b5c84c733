"""The frequency planner: how many off-site exposures each targeted user gets, on which channel
and day, under a budget, channel capacities and per-user caps, with a certificate.

Each user is a multiple-choice item over ``(channel, level)`` (a level is a number of exposures
over the horizon), valued by the response curves: ``value * incremental(level) - optout_cost *
P(opt-out | level) - unit_cost * level``. The allocation core's Lagrangian solver prices the
budget and the channels' daily capacities (``src/touchpoint/plan.rs`` builds the problem from
the curves' upper concave hulls and lays the exposures out over the days; see its docs).

The feedback loop: a share of the users (``explore_share``) is randomised: half of them
(``control_share``) get no exposure, the others a uniformly random level of their planned
channel (``explore_levels="full"``: every window observes the whole range, so the curve's
shape stays identified as the plans concentrate on few levels) or one between half and twice
their planned level (``"local"``: cheaper, the curves are learned along the plans' path only;
on the fatigued world that path let the fitted curve turn S-shaped);
:meth:`FrequencyPlanner.observe` joins the world's outcomes to those users and updates the
response model, and the next :meth:`FrequencyPlanner.plan` uses it. Only the
randomised users update the curves (their levels are random given their segment and planned
level): the optimised users' levels were chosen for their expected response, so their outcomes
would bias the fit (documented and tested). Without a fitted model every user explores:
a random reachable channel and a uniformly random level (or none) within the budget.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core, _progress
from .._state import Versioned
from ..allocate import certificate
from ._optout_cap import CAP_TOL, _OptoutError, _price_optouts, _reference
from ._response import _plan_covariates
from ._summaries import attainable_average, empty_certificate, marginal_roi

#: Levels (exposures over the horizon) the planner chooses from by default: dense where the
#: curves bend, sparse where they saturate; the caps remove what a channel cannot carry.
DEFAULT_LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 17, 20, 24, 28, 34,
                                   40, 48, 56, 70, 84, 98, 112, 126, 140)  # fmt: skip

#: Share of the opt-out cap left unused when the plans on both sides of the bisection's price
#: are mixed (:meth:`FrequencyPlanner._mix`).
MIX_MARGIN = CAP_TOL / 4

#: The reach curve's thresholds (users with at least k exposures).
REACH_K = tuple(range(1, 11))


@dataclass(frozen=True)
class Channel:
    """One off-site channel's rules: cost per exposure, per-user caps (per day, per any 7
    days), capacity (exposures per day over all users; ``None``: unlimited) and the expected
    cost of one opt-out (the value of the reach it loses)."""

    name: str
    unit_cost: float
    daily_cap: int
    weekly_cap: int | None = None
    capacity: float | None = None
    optout_cost: float = 0.0

    def __post_init__(self) -> None:
        arg = f"channels[{self.name!r}]"
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"channels: a channel name must be a non-empty str, got {self.name!r}")
        cv.check_number(self.unit_cost, f"{arg}.unit_cost", minimum=0.0)
        cv.check_int(self.daily_cap, f"{arg}.daily_cap", minimum=1, maximum=10_000)
        if self.weekly_cap is not None:
            cv.check_int(self.weekly_cap, f"{arg}.weekly_cap", minimum=1, maximum=70_000)
        if self.capacity is not None:
            cv.check_number(self.capacity, f"{arg}.capacity", minimum=0.0, strict_min=True)
        cv.check_number(self.optout_cost, f"{arg}.optout_cost", minimum=0.0)

    def _core(self) -> tuple:
        cap = float("inf") if self.capacity is None else float(self.capacity)
        return (self.name, float(self.unit_cost), int(self.daily_cap), self.weekly_cap, cap,
                float(self.optout_cost))  # fmt: skip


@dataclass(repr=False)
class FrequencyPlan(Versioned):
    """A planned exposure frequency per targeted user and its certificate.

    ``assignment``: one row per targeted user: ``user_id``, ``segment``, ``channel`` (``None``:
    no exposure), ``exposures`` (over the horizon), ``explore`` (randomised for learning),
    ``value`` (the option's expected value under the curves used), ``expected_conversions`` and
    ``expected_optouts`` (under the curves used; NaN before the model is fitted). The certificate of the
    optimised users' plan: ``objective``, ``dual_bound``, ``gap``, ``lp_gap``, ``status``,
    ``usage`` (budget and capacities), ``prices``. Summaries: ``frequency`` (users per number of
    exposures, reached users), ``reach`` (users with at least k exposures, k = 1..10),
    ``average_frequency`` (of the reached users), ``marginal_roi`` (per segment and channel: the
    expected value of one more level step per unit of cost, at the chosen levels),
    ``attainable_average`` (the highest average frequency over the targeted users that the
    budget buys at each user's cheapest reachable channel within the caps) and ``message``
    (says when an average of 6 is not attainable and what is), ``daily_load`` (exposures per
    channel and day), ``cost`` (planned spend: optimised and exploration).
    """

    _STATE_KIND = "touchpoint.FrequencyPlan"

    assignment: pd.DataFrame
    channels: tuple[str, ...]
    horizon_days: int
    start_day: int
    objective: float
    dual_bound: float
    gap: float
    lp_gap: float
    status: str
    usage: pd.DataFrame
    prices: pd.Series
    history: pd.DataFrame
    frequency: pd.Series
    reach: pd.Series
    average_frequency: float
    marginal_roi: pd.DataFrame
    attainable_average: float
    message: str
    daily_load: pd.DataFrame
    cost: dict[str, float]
    forecast: dict[str, float]
    seconds: float
    _layout: tuple[np.ndarray, np.ndarray] = field(repr=False)
    #: The covariates the plan was given (names, ``(n_users, k)`` array), logged by ``observe``.
    _covariates: tuple[tuple[str, ...], np.ndarray] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        reached = int((self.assignment["exposures"] > 0).sum())
        return (
            f"FrequencyPlan(users={len(self.assignment):,}, reached={reached:,}, "
            f"average_frequency={self.average_frequency:.2f}, cost={self.cost['total']:,.2f}, "
            f"status={self.status!r}, gap={self.gap:.1e})"
        )

    def schedule(self, *, benefit: str = "none", content: str | int = 0) -> pd.DataFrame:
        """One row per exposure, ready for ``Environment.apply`` / ``expected_outcome``:
        ``user_id``, ``channel``, ``day`` (absolute), ``benefit``, ``content``."""
        a = self.assignment
        codes = a["channel"].cat.codes.to_numpy()
        ch = np.where(codes < 0, 255, codes).astype(np.uint8)
        lv = a["exposures"].to_numpy(np.uint32)
        off, cons = self._layout
        u, c, d = _core.touchpoint_schedule(ch, lv, off, cons, self.horizon_days)

        def const(x: str | int, name: str) -> Any:  # a name as one category, a code as ints
            if isinstance(x, str):
                return pd.Categorical.from_codes(np.zeros(len(u), np.int8), categories=[x])
            return np.full(len(u), cv.check_int(x, name, minimum=0, maximum=255), np.int64)

        return pd.DataFrame(
            {
                "user_id": a["user_id"].to_numpy()[u],
                "channel": pd.Categorical.from_codes(c.astype(np.int8), categories=self.channels),
                "day": d.astype(np.int64) + self.start_day,
                "benefit": const(benefit, "benefit"),
                "content": const(content, "content"),
            }
        )


def check_users(users: Any) -> np.ndarray:
    u = cv.as_array(users, "users", np.int64)
    if (u < 0).any():
        raise ValueError(f"users: must be >= 0, found {u.min()}")
    if len(u) > 1 and not (np.diff(u) > 0).all():
        s = np.sort(u)
        dup = np.flatnonzero(s[1:] == s[:-1])
        if len(dup):
            raise ValueError(f"users: has duplicate user ids (e.g. {s[dup[0]]})")
    return u


class FrequencyPlanner:
    """Plans off-site exposure frequencies per user (see the module docs).

    ``channels``: :class:`Channel` rules (or use :meth:`for_world`); ``horizon_days``: the
    planning window; ``model``: a :class:`ResponseModel` (fitted or not; :meth:`observe` updates
    it); ``levels``: the exposure counts to choose from (default :data:`DEFAULT_LEVELS`, cut by
    the caps); ``min_frequency``: fewest exposures of a reached user (levels below are not
    offered; ``InfeasibleError`` when no channel's caps allow it); ``explore_share``: share of
    users randomised around the plan once the model is fitted (all users explore before it is);
    ``control_share``: share of the randomised users held at 0 exposures (each window's own
    baseline); ``explore_levels``: the other randomised users' levels, ``"full"`` (default) a
    uniformly random allowed level of their channel (the whole 0..cap range stays observed
    every window, so the curve's shape stays identified while the plans concentrate) or
    ``"local"`` between half and twice their planned level (cheaper, but the shape is then
    learned along the plans' path only);
    ``tol``: the solver's relative gap target.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        horizon_days: int = 14,
        *,
        model: Any = None,
        levels: Sequence[int] | None = None,
        min_frequency: int = 0,
        explore_share: float = 0.1,
        control_share: float = 0.5,
        explore_levels: str = "full",
        tol: float = 1e-4,
        max_iter: int = 500,
        seed: int = 0,
        progress: bool | None = None,
    ):
        if isinstance(channels, Channel) or not isinstance(channels, Sequence) or not channels:
            raise TypeError("channels: must be a non-empty sequence of Channel")
        for c in channels:
            if not isinstance(c, Channel):
                raise TypeError(f"channels: must hold Channel objects, got {type(c).__name__}")
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channels: names must be unique, got {names}")
        if len(channels) > 8:
            raise ValueError(f"channels: at most 8 channels, got {len(channels)}")
        self.channels = tuple(channels)
        self.horizon_days = cv.check_int(horizon_days, "horizon_days", minimum=1, maximum=366)
        lv = DEFAULT_LEVELS if levels is None else levels
        lv = cv.as_array(list(lv), "levels", np.int64)
        if lv.min() < 1 or np.any(np.diff(lv) <= 0):
            raise ValueError("levels: must be positive and strictly increasing")
        self.levels = lv.astype(np.uint32)
        self.min_frequency = cv.check_int(min_frequency, "min_frequency", minimum=0,
                                          maximum=2**32 - 1)  # fmt: skip
        self.explore_share = cv.check_number(explore_share, "explore_share", minimum=0.0,
                                             maximum=1.0)  # fmt: skip
        self.control_share = cv.check_number(control_share, "control_share", minimum=0.0,
                                             maximum=1.0)  # fmt: skip
        if not isinstance(explore_levels, str):
            raise TypeError(
                f"explore_levels: must be 'full' or 'local', got {type(explore_levels).__name__}"
            )
        if explore_levels not in ("full", "local"):
            raise ValueError(f"explore_levels: must be 'full' or 'local', got {explore_levels!r}")
        self.explore_levels = explore_levels
        self.tol = cv.check_number(tol, "tol", minimum=0.0, strict_min=True)
        self.max_iter = cv.check_int(max_iter, "max_iter", minimum=1, maximum=100_000)
        self.seed = cv.check_int(seed, "seed", minimum=0)
        self.progress = progress
        self.model = model
        self.allowed_ = np.asarray(
            _core.touchpoint_allowed_levels(
                self.levels.tolist(), [c._core() for c in self.channels], self.horizon_days,
                self.min_frequency,
            )
        ).reshape(len(self.channels), len(self.levels))  # fmt: skip
        if not self.allowed_.any():
            raise _core.InfeasibleError(
                f"min_frequency {self.min_frequency} exceeds what the caps allow over "
                f"{self.horizon_days} days on every channel"
            )
        self.last_plan_: FrequencyPlan | None = None
        self.rounds_ = 0

    @classmethod
    def for_world(
        cls,
        world: Any,
        channels: Sequence[str] = ("ads", "sms", "email"),
        *,
        optout_cost: float = 1.0,
        weekly_caps: dict[str, int] | None = None,
        capacity: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> FrequencyPlanner:
        """A planner with a world's channel costs and daily caps (``world``: an
        ``Environment`` or ``WorldConfig``)."""
        from ..sim import CHANNELS, OFFSITE, Environment, WorldConfig

        cv.check_instance(world, "world", (Environment, WorldConfig),
                          "a growthmachine.sim.Environment or WorldConfig")  # fmt: skip
        cfg = getattr(world, "config", world)
        rc = cfg.response.channels
        out = []
        for name in channels:
            if name in CHANNELS and not OFFSITE[CHANNELS.index(name)]:
                raise ValueError(f"channels: {name} is on-site; plan it with gm.realtime")
            spec = getattr(rc, name, None)
            if spec is None:
                raise ValueError(f"channels: unknown channel {name!r}")
            out.append(
                Channel(
                    name,
                    spec.unit_cost,
                    spec.daily_cap,
                    (weekly_caps or {}).get(name),
                    (capacity or {}).get(name),
                    optout_cost,
                )
            )
        return cls(out, **kwargs)

    # -- curves --------------------------------------------------------------------------
    def _model_curves(
        self, segment: np.ndarray, fatigue: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(incremental, optout) shaped (groups, channels, levels) from the model, and each
        user's group; segments the model has not seen use its pooled (channel-level) curve.
        With ``fatigue`` (per user) a group is a segment and a class of prior fatigue
        (:func:`fatigue_classes`), whose curves are the model's at the class's mean fatigue. ``group_segment_`` maps the groups to the model's segment codes (the last:
        unseen)."""
        m = self.model
        names = list(m.channels_)
        missing = [c.name for c in self.channels if c.name not in names]
        if missing:
            raise ValueError(
                f"model: has no curve for channel(s) {missing} (fitted channels: {names})"
            )
        idx = [names.index(c.name) for c in self.channels]
        seg = pd.Index(m.segments_)
        group = seg.get_indexer(segment)
        group = np.where(group < 0, len(seg), group).astype(np.int64)

        def at(f: float) -> tuple[np.ndarray, np.ndarray]:
            cur = m.curves(self.levels, fatigue=f)
            p_inc, p_opt = m.pooled_curves(self.levels, fatigue=f)
            inc = np.concatenate([np.asarray(cur.incremental)[:, idx], p_inc[None, idx]])
            opt = np.concatenate([np.asarray(cur.opt_out)[:, idx], p_opt[None, idx]])
            return np.clip(inc, 0.0, 1.0), np.clip(opt, 0.0, 1.0)

        if fatigue is None:
            inc, opt = at(0.0)
            self.group_segment_ = np.arange(len(seg) + 1)
            return inc, opt, group.astype(np.uint32)
        cls, mean = fatigue_classes(fatigue)
        pairs, user_group = np.unique(group * len(mean) + cls, return_inverse=True)
        p_seg, p_cls = pairs // len(mean), pairs % len(mean)
        shape = (len(pairs), len(self.channels), len(self.levels))
        inc, opt = np.empty(shape), np.empty(shape)
        for k in np.unique(p_cls):
            sel = p_cls == k
            i_k, o_k = at(float(mean[k]))
            inc[sel], opt[sel] = i_k[p_seg[sel]], o_k[p_seg[sel]]
        self.group_segment_ = p_seg
        return inc, opt, user_group.astype(np.uint32)

    def is_fitted(self) -> bool:
        """The model has curves for every channel of the planner (until then, everyone
        explores)."""
        m = self.model
        if m is None or getattr(m, "n_obs_", 0) <= 0:
            return False
        have = {str(c) for c in m.channels_}
        return all(c.name in have for c in self.channels)

    # -- planning ------------------------------------------------------------------------
    def plan(
        self,
        users: Any,
        budget: float,
        *,
        value: Any = 1.0,
        segment: Any = None,
        reachable: Any = None,
        curves: tuple[Any, Any] | None = None,
        start_day: int = 0,
        explore: bool | None = None,
        max_optouts: float | FrequencyPlan | None = None,
        fatigue: Any = None,
        covariates: Any = None,
        optout_z: float = 0.0,
    ) -> FrequencyPlan:
        """Plans the exposures of ``users`` over ``[start_day, start_day + horizon_days)``.

        ``budget``: most spend on exposures; ``value``: value of one incremental conversion
        (scalar or per user); ``segment``: each user's segment label (the model's grouping;
        default one segment); ``reachable``: bool ``(n_users, n_channels)`` (consent, device,
        opt-outs; default all); ``curves``: explicit ``(incremental, optout)`` arrays shaped
        ``(n_groups, n_channels, n_levels)`` with ``segment`` the group codes (e.g. the world's
        true curves per user, for scoring) instead of the model's; ``explore``: keep
        ``explore_share`` of the users on randomised frequencies (default: when planning from
        the model); ``max_optouts``: most expected opt-outs (under the curves used) over all the
        planned users: an extra price per opt-out is found by bisection so that the plan meets
        it (the Lagrangian of that constraint); the certificate's bound adds price x cap. A
        :class:`FrequencyPlan` of the same users (e.g. :func:`uniform_plan`): its expected
        opt-outs under the same curves are the cap;
        ``optout_z``: the cap holds with a margin of ``optout_z`` standard errors of the model's
        uncertainty (``0``: none): of the plan's expected opt-outs, or with a reference plan as
        ``max_optouts``, of the difference between the two (what the comparison is about: the
        model's errors common to both plans cancel). The standard error is the delta method's
        on the Laplace posteriors of the segments' opt-out parameters (``log a``, ``log d``;
        segments taken as independent); the bound of the certificate is that of the cap less
        the margin at the final plan. Only with the model's curves;
        ``fatigue``: each user's prior fatigue (decayed number of earlier touches, >= 0; e.g.
        :func:`world_fatigue`): the model's curves are taken at it (users already tired opt out
        sooner and, once the model has learned it, need more exposures), and :meth:`observe`
        logs it with the outcomes. Not with ``curves``;
        ``covariates``: a table of numeric per-user features (one row per user, e.g.
        :func:`world_covariates`): with a model fitted on them, each user's curve height is
        scaled by the model's multiplier (:meth:`ResponseModel.height`; the assignment's
        ``height`` column), so users of one segment are told apart; :meth:`observe` logs them,
        so the model learns them from the randomised users (before, the plan only logs them).
        Not with ``curves``.
        """
        t0 = time.perf_counter()
        u = check_users(users)
        n = len(u)
        c_n = len(self.channels)
        budget = cv.check_number(budget, "budget", minimum=0.0)
        ref = None
        if isinstance(max_optouts, FrequencyPlan):
            ref = _reference(max_optouts, u, self)
        elif max_optouts is not None:
            max_optouts = cv.check_number(max_optouts, "max_optouts", minimum=0.0)
        optout_z = cv.check_number(optout_z, "optout_z", minimum=0.0)
        if optout_z > 0 and max_optouts is None:
            raise ValueError("optout_z: applies to a cap; give max_optouts")
        if optout_z > 0 and curves is not None:
            raise ValueError("optout_z: the model's uncertainty; not with explicit curves")
        start_day = cv.check_int(start_day, "start_day", minimum=0)
        if np.ndim(value) == 0:
            v = np.full(n, cv.check_number(value, "value"))
        else:
            v = cv.as_array(value, "value", shape=(n,))
        if reachable is None:
            reach = np.ones((n, c_n), dtype=bool)
        else:
            reach = cv.as_array(reachable, "reachable", np.bool_, ndim=2, shape=(n, c_n))
        bits = (reach.astype(np.uint8) << np.arange(c_n, dtype=np.uint8)).sum(1).astype(np.uint8)
        fat = None
        if fatigue is not None:
            if curves is not None:
                raise ValueError("fatigue: applies to the model's curves, not to explicit curves")
            fat = cv.as_array(fatigue, "fatigue", np.float64, shape=(n,), nonnegative=True)
        cov = None
        if covariates is not None:
            if curves is not None:
                raise ValueError("covariates: apply to the model's curves, not to explicit curves")
            cov = _plan_covariates(covariates, n, self.model)
        if curves is not None:
            inc = cv.as_array(curves[0], "curves[0]", ndim=3)
            opt = cv.as_array(curves[1], "curves[1]", ndim=3, shape=inc.shape)
            if inc.shape[1:] != (c_n, len(self.levels)):
                raise ValueError(
                    f"curves: expected shape (n_groups, {c_n}, {len(self.levels)}), got {inc.shape}"
                )
            if segment is None:
                raise ValueError("segment: the group code of each user is needed with curves")
            group = cv.as_array(segment, "segment", np.int64, shape=(n,))
            if group.min() < 0 or group.max() >= inc.shape[0]:
                raise ValueError(f"segment: codes must be in 0..{inc.shape[0] - 1}")
            group = group.astype(np.uint32)
            seg_labels = group
            group_labels = np.arange(inc.shape[0])
            label_of = None
            fitted = True
        else:
            seg_labels = (
                np.zeros(n, np.int64) if segment is None else cv.to_numpy_raw(segment, "segment")
            )
            if seg_labels.ndim != 1 or len(seg_labels) != n:
                raise ValueError(f"segment: has shape {seg_labels.shape}, expected ({n},)")
            if seg_labels.dtype.kind in "fO" and pd.isna(seg_labels).any():
                k = int(np.flatnonzero(pd.isna(seg_labels))[0])
                raise ValueError(f"segment: has a missing label (at position {k})")
            fitted = self.is_fitted()
            if fitted:
                inc, opt, group = self._model_curves(seg_labels, fat)
                group_labels = [*self.model.segments_, "(unseen: pooled)"]
                label_of = self.group_segment_
        if ref is not None:
            if not fitted:
                raise ValueError("max_optouts: a reference plan needs curves (fit the model first)")
            max_optouts = _on_curves(opt, group, ref[0], ref[1], self.levels)
        # Each user's height multiplier scales the value of its conversions (the conversion
        # curve is w x the segment's); the values below and the forecast are at the user's curve.
        height = np.ones(n)
        if cov is not None and fitted and getattr(self.model, "covariates_", None) is not None:
            height = self.model.height(cov[1])
        v = v * height
        rng = np.random.default_rng([self.seed, self.rounds_])
        share = self.explore_share if fitted else 1.0
        if explore is not None and not isinstance(explore, (bool, np.bool_)):
            raise TypeError(f"explore: must be a bool or None, got {type(explore).__name__}")
        if explore is False and not fitted:
            raise ValueError("explore: cannot be False without curves (fit the model first)")
        if explore is False or (explore is None and curves is not None):
            share = 0.0
        is_explore = rng.random(n) < share if share < 1.0 else np.ones(n, dtype=bool)
        ch = np.full(n, 255, np.uint8)
        lv = np.zeros(n, np.uint32)
        val = np.zeros(n)
        costs = np.array([c.unit_cost for c in self.channels])
        # Before the curves are fitted every user explores: a random reachable channel and a
        # uniformly random allowed level, or 0 for the control share (each window's baseline),
        # random users falling back to 0 until the budget holds. Once fitted, see _perturb.
        ex = np.flatnonzero(is_explore & reach.any(1))
        if len(ex) and not fitted:
            pick = _random_true(reach[ex], rng)
            n_opts = self.allowed_.sum(1)[pick]
            k = 1 + (rng.random(len(ex)) * n_opts).astype(np.int64)
            k[rng.random(len(ex)) < self.control_share] = 0
            lv_ex = np.zeros(len(ex), np.uint32)
            for c in range(c_n):
                sel = (pick == c) & (k > 0)
                lv_ex[sel] = self.levels[self.allowed_[c]][k[sel] - 1]
            spend = costs[pick] * lv_ex
            order = rng.permutation(len(ex))
            over = np.cumsum(spend[order]) > budget
            lv_ex[order[over]] = 0
            ch[ex], lv[ex] = pick.astype(np.uint8), lv_ex
        # Once fitted, every user is optimised; the randomised ones are perturbed afterwards.
        opt_idx = np.arange(n) if fitted else np.zeros(0, np.int64)
        cert: dict[str, Any]
        optout_price = 0.0
        if fitted and len(opt_idx):
            inc_flat = np.ascontiguousarray(inc, np.float64).reshape(-1)
            opt_flat = np.ascontiguousarray(opt, np.float64).reshape(-1)
            g_o, v_o = np.ascontiguousarray(group[opt_idx]), np.ascontiguousarray(v[opt_idx])
            b_o = np.ascontiguousarray(bits[opt_idx])

            def solve(extra: float, cb: Any) -> dict:
                chans = [c._core()[:5] + (c.optout_cost + extra,) for c in self.channels]
                return _core.touchpoint_plan(
                    self.levels, inc_flat, opt_flat, inc.shape[0], g_o, v_o, b_o, chans,
                    self.horizon_days, budget, self.min_frequency, self.tol, self.max_iter,
                    self.seed, cb,
                )  # fmt: skip

            se = None
            if optout_z > 0:
                se = _OptoutError(self, inc, opt, group, ref)

            def optouts(o: dict) -> float:
                total = _on_curves(opt, g_o, o["channel"], o["level"], self.levels)
                return total if se is None else total + optout_z * se(o["channel"], o["level"])

            with _progress.bar(self.progress, "planning exposures", unit="it") as cb:
                out = solve(0.0, cb)
                if max_optouts is not None:
                    cap = max_optouts
                    if optouts(out) > cap:
                        out, optout_price, above = _price_optouts(solve, optouts, cap, v_o, cb,
                                                                  out)  # fmt: skip
                        # The mix is linear in the users' opt-outs: the margin is the larger
                        # of the two plans' (the mix lies between them).
                        mix_cap = cap
                        if se is not None:
                            worst = max(se(out["channel"], out["level"]),
                                        se(above["channel"], above["level"]))  # fmt: skip
                            mix_cap -= optout_z * worst
                        self._mix(out, above, (inc, opt), g_o, v_o, optout_price, budget,
                                  mix_cap)  # fmt: skip
                    if se is not None:
                        # The cap less the final plan's margin: what the certificate and the
                        # exploration's fallback hold to.
                        cap = max(cap - optout_z * se(out["channel"], out["level"]), 0.0)
                        max_optouts = cap
            ch[opt_idx] = out["channel"]
            lv[opt_idx] = out["level"]
            val[opt_idx] = out["value"]
            names, upper = list(out["names"]), list(out["upper"])
            cert = certificate(out, names, np.zeros(len(names)), upper)
            if optout_price > 0:
                # Values at the stated opt-out costs; the bound of the opt-out-constrained
                # problem is the priced problem's bound plus price x cap (weak duality).
                on = out["channel"] != 255
                li = np.searchsorted(self.levels, out["level"][on])
                p_oo = opt[g_o[on], out["channel"][on].astype(np.int64), li]
                val[opt_idx[on]] += optout_price * p_oo
                obj = float(val[opt_idx].sum())
                bound = cert["dual_bound"] + optout_price * cap
                scale = max(abs(bound), 1e-12)
                cert.update(objective=obj, dual_bound=bound, gap=(bound - obj) / scale,
                            lp_gap=(bound - (cert["lp_value"] + optout_price * p_oo.sum()))
                            / scale)  # fmt: skip
        else:
            cert = empty_certificate(self.channels, budget)
        if fitted and len(ex):
            self._perturb(rng, ex, ch, lv, val, reach, inc, opt, group, v, budget, max_optouts)
        forecast = {"conversions": float("nan"), "optouts": float("nan")}
        conv_u = np.full(n, np.nan)
        oo_u = np.full(n, np.nan)
        if fitted:
            conv_u = height * _per_user(inc, group, ch, lv, self.levels)
            oo_u = _per_user(opt, group, ch, lv, self.levels)
            forecast = {"conversions": float(conv_u.sum()), "optouts": float(oo_u.sum())}
        off, cons, load = _core.touchpoint_lay_out(ch, lv, c_n, self.horizon_days)
        names = [c.name for c in self.channels]
        chan = pd.Categorical.from_codes(
            np.where(ch == 255, -1, ch).astype(np.int8), categories=names
        )
        assignment = pd.DataFrame(
            {
                "user_id": u,
                "segment": seg_labels,
                "channel": chan,
                "exposures": lv.astype(np.int64),
                "explore": is_explore,
                "value": val,
                "expected_conversions": conv_u,
                "expected_optouts": oo_u,
            }
        )
        if fat is not None:
            assignment["fatigue"] = fat
        if cov is not None:
            assignment["height"] = height
        spent = costs[np.minimum(ch, c_n - 1)] * lv
        reached = lv > 0
        freq = pd.Series(lv[reached]).value_counts().sort_index()
        freq.index.name, freq.name = "exposures", "users"
        reach_s = pd.Series([int((lv >= k).sum()) for k in REACH_K], index=pd.Index(REACH_K, name="k"),
                            name="users")  # fmt: skip
        avg = float(lv[reached].mean()) if reached.any() else 0.0
        attainable = attainable_average(reach, costs, self.allowed_, self.levels, budget)
        msg = (
            f"an average of 6 exposures per targeted user is not attainable under the budget "
            f"{budget:,.2f}: at most {attainable:.2f} (cheapest reachable channel within the caps)"
            if attainable < 6
            else f"an average of 6 exposures is attainable (up to {attainable:.2f})"
        )
        roi = (
            marginal_roi(
                inc, opt, group, v, ch, lv, self.levels, self.channels, group_labels, label_of
            )  # fmt: skip
            if fitted
            else pd.DataFrame(columns=["segment", "channel", "users", "marginal_roi"])
        )
        plan = FrequencyPlan(
            assignment=assignment,
            channels=tuple(names),
            horizon_days=self.horizon_days,
            start_day=start_day,
            objective=cert["objective"],
            dual_bound=cert["dual_bound"],
            gap=cert["gap"],
            lp_gap=cert["lp_gap"],
            status=cert["status"],
            usage=cert["usage"],
            prices=cert["prices"],
            history=cert["history"],
            frequency=freq,
            reach=reach_s,
            average_frequency=avg,
            marginal_roi=roi,
            attainable_average=attainable,
            message=msg,
            daily_load=pd.DataFrame(
                np.asarray(load).reshape(c_n, self.horizon_days),
                index=pd.Index(names, name="channel"),
                columns=pd.RangeIndex(start_day, start_day + self.horizon_days, name="day"),
            ),
            forecast=forecast,
            cost={
                "optimised": float(spent[~is_explore].sum()),
                "explore": float(spent[is_explore].sum()),
                "total": float(spent.sum()),
            },
            seconds=time.perf_counter() - t0,
            _layout=(np.asarray(off), np.asarray(cons)),
            _covariates=cov,
        )
        if curves is None:
            # Plans from explicit curves (what-ifs, scoring) are not the ones observe() learns from.
            self.last_plan_ = plan
            self.rounds_ += 1
        return plan

    def _mix(self, out, above, curves, group, v, price, budget, cap) -> None:
        """Mixes the plan that meets the opt-out cap (``out``, at ``price``) with the last plan
        above it (``above``), in place: users whose choices differ take their choice in
        ``above``, most value per extra expected opt-out first (values at the stated opt-out
        costs), while the cap, the budget and the channels' capacities hold. Users of one
        segment are identical under segment curves and all switch level at the same price, so
        the bisection alone leaves up to a segment's share of the cap unused (a plan on one
        curve per channel stopped at 77 % of the cap and 0.79x the uniform rule's conversions);
        the mix is the usual rounding of the LP between two prices. The bound stays that of
        ``price`` (weak duality), so the certificate holds. The mix stops :data:`MIX_MARGIN`
        below the cap: curves made for one layout differ from the final layout's days by a
        fraction of a percent."""
        inc, opt = curves
        c_n, days = len(self.channels), self.horizon_days
        costs = np.array([c.unit_cost for c in self.channels])
        oc = np.array([c.optout_cost for c in self.channels])
        caps = np.array([np.inf if c.capacity is None else c.capacity for c in self.channels])

        def per_user(o: dict) -> tuple[np.ndarray, ...]:
            ch, lv = o["channel"], o["level"]
            on = (ch != 255) & (lv > 0)
            c = np.where(on, ch, 0).astype(np.int64)
            p_inc = _per_user(inc, group, ch, lv, self.levels)
            p_oo = _per_user(opt, group, ch, lv, self.levels)
            spend = np.where(on, costs[c] * lv, 0.0)
            load = np.zeros((len(ch), c_n))
            load[np.flatnonzero(on), c[on]] = lv[on] / days
            return v * p_inc - oc[c] * p_oo - spend, p_oo, spend, load

        v_hi, o_hi, b_hi, l_hi = per_user(out)
        v_lo, o_lo, b_lo, l_lo = per_user(above)
        dv, do, db, dl = v_lo - v_hi, o_lo - o_hi, b_lo - b_hi, l_lo - l_hi
        cand = np.flatnonzero(
            ((out["channel"] != above["channel"]) | (out["level"] != above["level"])) & (dv > 0)
        )
        if not len(cand):
            return
        ratio = np.where(do[cand] > 0, dv[cand] / np.maximum(do[cand], 1e-300), np.inf)
        order = cand[np.lexsort((cand, -ratio))]
        ok = (
            (np.cumsum(do[order]) <= (1.0 - MIX_MARGIN) * cap - o_hi.sum())
            & (np.cumsum(db[order]) <= budget - b_hi.sum() + 1e-9)
            & np.all(np.cumsum(dl[order], axis=0) <= caps - l_hi.sum(0) + 1e-9, axis=1)
        )
        take = order[: int(np.argmin(ok)) if not ok.all() else len(order)]
        for key in ("channel", "level"):
            out[key] = out[key].copy()
            out[key][take] = above[key][take]
        out["value"] = np.asarray(out["value"], dtype=np.float64).copy()
        out["value"][take] = v_lo[take] - price * o_lo[take]  # priced, as the solver reports
        switched = np.zeros(len(v), dtype=bool)
        switched[take] = True
        used = np.where(switched, b_lo, b_hi).sum()
        load = np.where(switched[:, None], l_lo, l_hi).sum(0)
        out["usage"] = np.concatenate([[used], load])
        out["objective"] = float(out["value"].sum())

    def _perturb(self, rng, ex, ch, lv, val, reach, inc, opt, group, v, budget, max_optouts):
        """Exploration of the randomised users ``ex`` after the optimisation (in place):
        ``control_share`` of them get 0 exposures on their channel (each window's baseline); the
        others a uniformly random allowed level of their planned channel (``explore_levels=
        "full"``) or within [half, twice] their planned level (``"local"``; a user the plan
        leaves out: a random reachable channel and a level up to two a day). Random perturbed
        users fall back to 0 until the plan is within the budget and ``max_optouts`` again.
        Their values are re-computed on the curves."""
        c_n = len(self.channels)
        levels = self.levels.astype(np.float64)
        costs = np.array([c.unit_cost for c in self.channels])
        oc = np.array([c.optout_cost for c in self.channels])
        planned = (ch[ex] != 255) & (lv[ex] > 0)
        new_ch = ch[ex].astype(np.int64)
        if (~planned).any():
            new_ch[~planned] = _random_true(reach[ex[~planned]], rng)
        ctrl = rng.random(len(ex)) < self.control_share
        # Planners saved before explore_levels explored locally.
        full = getattr(self, "explore_levels", "local") == "full"
        new_lv = np.zeros(len(ex), np.uint32)
        for c in range(c_n):
            a = levels[self.allowed_[c]]
            sel = np.flatnonzero((new_ch == c) & ~ctrl)
            if not len(a) or not len(sel):
                continue
            base = lv[ex[sel]].astype(np.float64)
            if full:
                lo, hi = np.ones(len(sel)), np.full(len(sel), float(a[-1]))
            else:
                lo = np.where(planned[sel], base / 2.0, 1.0)
                hi = np.where(planned[sel], base * 2.0, 2.0 * self.horizon_days)
            i0 = np.minimum(np.searchsorted(a, lo, side="left"), len(a) - 1)
            i1 = np.maximum(np.searchsorted(a, hi, side="right"), i0 + 1)
            k = i0 + (rng.random(len(sel)) * (i1 - i0)).astype(np.int64)
            new_lv[sel] = a[k].astype(np.uint32)
        ch[ex] = new_ch.astype(np.uint8)
        lv[ex] = new_lv
        li = np.searchsorted(self.levels, np.maximum(lv[ex], 1))
        on = lv[ex] > 0
        g = group[ex]
        p_oo = np.where(on, opt[g, new_ch, li], 0.0)
        val[ex] = np.where(on, v[ex] * inc[g, new_ch, li] - oc[new_ch] * opt[g, new_ch, li]
                           - costs[new_ch] * lv[ex], 0.0)  # fmt: skip
        # Back within the budget and the opt-out cap: drop random perturbed users.
        order = rng.permutation(np.flatnonzero(on))
        spend = costs[np.minimum(ch, c_n - 1)] * lv
        excess = float(spend.sum()) - budget
        drop = np.zeros(len(ex), dtype=bool)
        if excess > 1e-9:
            cut = np.searchsorted(np.cumsum(spend[ex[order]]), excess) + 1
            drop[order[:cut]] = True
        if max_optouts is not None:
            total = _on_curves(opt, group, ch, lv, self.levels)
            excess = total - max_optouts
            if excess > 1e-9:
                cut = np.searchsorted(np.cumsum(p_oo[order]), excess) + 1
                drop[order[:cut]] = True
        lv[ex[drop]] = 0
        val[ex[drop]] = 0.0

    # -- feedback ------------------------------------------------------------------------
    def observe(
        self, outcomes: Any, plan: FrequencyPlan | None = None, *, covariates: Any = None
    ) -> FrequencyPlanner:
        """Updates the response model with what the randomised users of ``plan`` (default the
        last plan made from the model) did: ``outcomes`` is ``Environment.apply`` output (or any table with
        ``user_id``, ``converted`` and ``opted_out``). ``covariates``: the users' features
        (one row per user of the plan, as :meth:`plan` takes them), logged so the model learns
        the curves' heights from them; default those the plan was given (none: no height
        model). Returns self."""
        plan = plan if plan is not None else self.last_plan_
        if plan is None:
            raise ValueError("plan: nothing was planned yet; call plan() first")
        cv.check_instance(plan, "plan", FrequencyPlan, "a FrequencyPlan")
        if self.model is None:
            raise ValueError("model: the planner has no ResponseModel to update")
        cols = cv.columns(outcomes, "outcomes")
        for c in ("user_id", "converted", "opted_out"):
            if c not in cols:
                raise ValueError(f"outcomes: needs a {c!r} column (columns: {', '.join(cols)})")
        uid = cv.as_array(cv.column(outcomes, "outcomes", "user_id"), "outcomes['user_id']",
                          np.int64)  # fmt: skip
        dup = pd.Index(uid).duplicated()
        if dup.any():
            raise ValueError(
                f"outcomes: user_id {uid[np.argmax(dup)]} has more than one row (one row per user)"
            )
        conv = cv.as_array(cv.column(outcomes, "outcomes", "converted"), "outcomes['converted']")
        oo = cv.as_array(cv.column(outcomes, "outcomes", "opted_out"), "outcomes['opted_out']")
        a = plan.assignment
        ex = a[a["explore"] & a["channel"].notna()]
        pos = pd.Index(uid).get_indexer(ex["user_id"].to_numpy())
        if (pos < 0).any():
            missing = ex["user_id"].to_numpy()[pos < 0][:5].tolist()
            raise ValueError(f"outcomes: has no row for planned user(s) {missing}")
        if not len(ex):
            raise ValueError(
                "plan: has no randomised users to learn from (explore_share is 0 or the plan "
                "was made from explicit curves)"
            )
        log = pd.DataFrame(
            {
                "segment": ex["segment"].to_numpy(),
                "channel": ex["channel"].astype(str).to_numpy(),
                "exposures": ex["exposures"].to_numpy(),
                "converted": conv[pos],
                "opted_out": oo[pos],
            }
        )
        fatigue = None
        if "fatigue" in ex:
            log["fatigue"] = ex["fatigue"].to_numpy()
            fatigue = "fatigue"
        cov = plan._covariates
        if covariates is not None:
            cov = _plan_covariates(covariates, len(a), self.model)
        covariates = None
        if cov is not None:
            names, x = cov
            rows = x[ex.index.to_numpy()]
            covariates = list(names)
            for j, c in enumerate(covariates):
                log[c] = rows[:, j]
        # The exposures were laid out over the plan's horizon: the opt-out follows that layout.
        days = plan.horizon_days
        if getattr(self.model, "n_obs_", 0) > 0:
            self.model.partial_fit(log, fatigue=fatigue, covariates=covariates, horizon_days=days)
        else:
            self.model.fit(log, fatigue=fatigue, covariates=covariates, horizon_days=days)
        return self


#: Classes of prior fatigue in the planner: 0 below the first edge, then widths growing by
#: this ratio (the opt-out curve is taken at each class's mean fatigue).
FATIGUE_EDGE, FATIGUE_RATIO = 0.1, 1.2


def fatigue_classes(fatigue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's class of prior fatigue and the mean fatigue of every class (0 for empty
    ones): class 0 below :data:`FATIGUE_EDGE`, then geometric classes of ratio
    :data:`FATIGUE_RATIO` (relative spread within a class under 20 %)."""
    f = np.asarray(fatigue, dtype=np.float64)
    cls = np.zeros(len(f), np.int64)
    pos = f >= FATIGUE_EDGE
    cls[pos] = 1 + np.floor(np.log(f[pos] / FATIGUE_EDGE) / np.log(FATIGUE_RATIO)).astype(np.int64)
    k = int(cls.max(initial=0)) + 1
    cnt = np.bincount(cls, minlength=k)
    mean = np.bincount(cls, weights=f, minlength=k) / np.maximum(cnt, 1)
    return cls, mean


def _per_user(curve, group, ch, lv, levels) -> np.ndarray:
    """``curve[group, channel, level]`` of each user given exposures (0 for the others): a
    plan's expected conversions or opt-outs per user under the curves."""
    out = np.zeros(len(ch))
    on = (ch != 255) & (lv > 0)
    li = np.searchsorted(levels, lv[on])
    out[on] = curve[group[on], ch[on].astype(np.int64), li]
    return out


def _on_curves(curve, group, ch, lv, levels) -> float:
    """Sum of :func:`_per_user` over the users: a plan's expected conversions or opt-outs."""
    return float(_per_user(curve, group, ch, lv, levels).sum())


def _random_true(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random True column per row (rows have at least one)."""
    w = mask * rng.random(mask.shape)
    return w.argmax(1)
