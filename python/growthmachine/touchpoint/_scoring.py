"""Scoring a frequency plan on the simulated world's truth, and the plans marketers use today.

- :func:`world_reachable`: which users each channel may reach (consent, app, opt-outs).
- :func:`true_curves`: the world's exact response of every user to every (channel, level), laid
  out as the planner lays exposures out (``Environment.expected_outcome``). **Scoring only**: a
  planner given these curves makes the *true-curve plan*, the ceiling a fitted model aims at.
- :func:`uniform_plan` (every targeted user gets the same number of exposures, 6 by the common
  rule) and :func:`max_caps_plan` (as many exposures as the caps allow, to as many random users as
  the budget covers): the baselines.
- :func:`world_covariates`: observable per-user features for the curves' height.
- :func:`score`: a plan's expected incremental conversions, GMV, opt-outs and spend, exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core
from ..sim._environment import check_environment as _env
from ._planner import FrequencyPlan, FrequencyPlanner, check_users
from ._summaries import empty_certificate


def _planner(planner: Any) -> FrequencyPlanner:
    return cv.check_instance(planner, "planner", FrequencyPlanner, "a touchpoint.FrequencyPlanner")


def _users_of(env: Any, users: Any) -> np.ndarray:
    """``users`` checked: ids of the world's users."""
    u = check_users(users)
    if u.size and (u.min() < 0 or u.max() >= env.n_users):
        bad = int(u[(u < 0) | (u >= env.n_users)][0])
        raise ValueError(f"users: {bad} is not a user id of the world (0 to {env.n_users - 1})")
    return u


def _reach(reachable: Any, n: int, c_n: int) -> np.ndarray:
    """``reachable`` checked: bool-like ``(n_users, n_channels)``."""
    r = cv.as_array(reachable, "reachable", np.float64, ndim=2, shape=(n, c_n), allow_empty=True)
    return r != 0


def _budget(budget: Any) -> float:
    if isinstance(budget, float) and budget == float("inf"):
        return budget  # no budget
    return cv.check_number(budget, "budget", minimum=0.0)


def world_reachable(env: Any, users: Any, channels: Any) -> np.ndarray:
    """Bool ``(n_users, n_channels)``: consent (and the app where the channel needs it) and no
    opt-out yet; the world's rules (:data:`growthmachine.sim.CONSENT`, ``NEEDS_APP``)."""
    from ..sim import CHANNELS, CONSENT, NEEDS_APP, OFFSITE

    u = _users_of(_env(env), users)
    names = [getattr(c, "name", c) for c in channels]
    pop = env.population.users
    opted = env.opted_out()
    out = np.ones((len(u), len(names)), dtype=bool)
    for j, c in enumerate(names):
        if c not in CHANNELS or not OFFSITE[CHANNELS.index(c)]:
            raise ValueError(f"channels: {c!r} is not an off-site channel of the world")
        if CONSENT[c] is not None:
            out[:, j] &= pop[CONSENT[c]].to_numpy()[u]
        if NEEDS_APP[c]:
            out[:, j] &= pop["has_app"].to_numpy()[u]
        out[:, j] &= ~opted[c].to_numpy()[u]
    return out


def world_segments(env: Any, users: Any) -> np.ndarray:
    """Lifecycle stage (customer and order recency) x recent contact pressure (from the
    platform's own contact log: no touch in 14 days, touched, touched at least 5 times recently)
    x age band: 45 segments, all observable by the platform. Finer segmentations (adding device
    and acquisition channel: ~800 segments) leave ~100 randomised rows per segment at 100k users,
    too few for the spread of the curves to be estimated: every segment then gets its channel's
    curve and the plans were worse (benchmarks/RESULTS.md, touchpoint world)."""
    users = _users_of(_env(env), users)
    p = env.population.users
    s = env.state()
    rec = env.day - s["last_order_day"].to_numpy()[users]
    cust = s["customer"].to_numpy()[users]
    stage = np.where(~cust, "prospect", np.where(rec < 90, "active", "lapsed"))
    last = s["last_touch_day"].to_numpy()[users]
    recent = (last >= 0) & (env.day - last <= 14)
    many = s["fatigue"].to_numpy()[users] >= 5
    press = np.where(~recent, "none", np.where(many, "heavy", "light"))
    out = np.char.add(np.char.add(stage.astype(str), "|"), press.astype(str))
    return np.char.add(np.char.add(out, "|"), p["age_band"].astype(str).to_numpy()[users])


def world_fatigue(env: Any, users: Any, *, halflife_days: float = 7.0) -> np.ndarray:
    """Each user's prior fatigue at the world's current day: the platform's decayed count of
    its own earlier touches of the user (from its contact log: the count at the last touch,
    halved every ``halflife_days`` since). What :meth:`FrequencyPlanner.plan` takes as
    ``fatigue``."""
    users = _users_of(_env(env), users)
    h = cv.check_number(halflife_days, "halflife_days", minimum=0.0, strict_min=True)
    s = env.state()
    last = s["last_touch_day"].to_numpy()[users]
    count = s["fatigue"].to_numpy()[users].astype(np.float64)
    age = np.maximum(env.day - last, 0).astype(np.float64)
    return np.where(last >= 0, count * 0.5 ** (age / h), 0.0)


def world_covariates(env: Any, users: Any) -> pd.DataFrame:
    """Numeric features of each user that the platform observes, at the world's current day,
    for :meth:`FrequencyPlanner.plan`'s ``covariates``: indicators of the acquisition channel,
    city tier, age band and device (the first level of each left out), the app and the three
    consents, whether the user is a customer, ``log(1 + orders)``, ``log(1 + days since the last
    order)`` (0 for prospects), ``log(1 + GMV)`` and ``log(1 + days since signup)``. Only
    observables (no archetype, responsiveness or affinity): what a platform's own tables hold."""
    users = _users_of(_env(env), users)
    p = env.population.users
    s = env.state()
    cols: dict[str, np.ndarray] = {}
    for c in ("acquisition_channel", "city_tier", "age_band", "device"):
        cat = pd.Categorical(p[c]).remove_unused_categories()
        codes = cat.codes[users]
        for j, level in enumerate(cat.categories[1:], start=1):
            cols[f"{c}={level}"] = (codes == j).astype(np.float64)
    for c in ("has_app", "push_opt_in", "email_opt_in", "sms_opt_in"):
        cols[c] = p[c].to_numpy(dtype=np.float64)[users]
    cust = s["customer"].to_numpy()[users]
    last = np.nan_to_num(s["last_order_day"].to_numpy(dtype=np.float64)[users], nan=env.day)
    cols["customer"] = cust.astype(np.float64)
    cols["log_orders"] = np.log1p(s["n_orders"].to_numpy(dtype=np.float64)[users])
    cols["log_recency"] = np.where(cust, np.log1p(np.maximum(env.day - last, 0.0)), 0.0)
    cols["log_gmv"] = np.log1p(np.maximum(s["gmv"].to_numpy(dtype=np.float64)[users], 0.0))
    tenure = env.day - p["signup_day"].to_numpy(dtype=np.float64)[users]
    cols["log_tenure"] = np.log1p(np.maximum(tenure, 0.0))
    return pd.DataFrame(cols, index=pd.RangeIndex(len(users)))


def fixed_plan(
    planner: FrequencyPlanner,
    users: Any,
    channel: Any,
    exposures: Any,
    *,
    start_day: int = 0,
    budget: float = float("inf"),
) -> FrequencyPlan:
    """A plan with given channel codes (``-1``: none) and exposure counts per user, laid out as
    the planner lays out its own (for baselines and truth curves)."""
    u = check_users(users)
    n = len(u)
    c_n = len(_planner(planner).channels)
    start_day = cv.check_int(start_day, "start_day", minimum=0)
    budget = _budget(budget)
    ch = cv.as_array(channel, "channel", np.int64, shape=(n,))
    lv = cv.as_array(exposures, "exposures", np.int64, shape=(n,), nonnegative=True)
    if ch.max(initial=-1) >= c_n or ch.min(initial=0) < -1:
        raise ValueError(f"channel: codes must be in -1..{c_n - 1}")
    ch8 = np.where((ch < 0) | (lv == 0), 255, ch).astype(np.uint8)
    lv32 = np.where(ch8 == 255, 0, lv).astype(np.uint32)
    off, cons, load = _core.touchpoint_lay_out(ch8, lv32, c_n, planner.horizon_days)
    names = [c.name for c in planner.channels]
    costs = np.array([c.unit_cost for c in planner.channels])
    spent = float((costs[np.minimum(ch8, c_n - 1)] * lv32).sum())
    cert = empty_certificate(planner.channels, budget)
    reached = lv32 > 0
    freq = pd.Series(lv32[reached].astype(np.int64)).value_counts().sort_index()
    return FrequencyPlan(
        assignment=pd.DataFrame(
            {
                "user_id": u,
                "segment": np.zeros(n, np.int64),
                "channel": pd.Categorical.from_codes(
                    np.where(ch8 == 255, -1, ch8).astype(np.int8), categories=names
                ),
                "exposures": lv32.astype(np.int64),
                "explore": np.zeros(n, dtype=bool),
                "value": np.zeros(n),
            }
        ),
        channels=tuple(names),
        horizon_days=planner.horizon_days,
        start_day=start_day,
        objective=float("nan"),
        dual_bound=float("nan"),
        gap=float("nan"),
        lp_gap=float("nan"),
        status="fixed",
        usage=cert["usage"],
        prices=cert["prices"],
        history=cert["history"],
        frequency=freq,
        reach=pd.Series(
            [int((lv32 >= k).sum()) for k in range(1, 11)],
            index=pd.Index(range(1, 11), name="k"),
            name="users",
        ),  # fmt: skip
        average_frequency=float(lv32[reached].mean()) if reached.any() else 0.0,
        marginal_roi=pd.DataFrame(columns=["segment", "channel", "users", "marginal_roi"]),
        attainable_average=float("nan"),
        message="fixed plan",
        daily_load=pd.DataFrame(
            np.asarray(load).reshape(c_n, planner.horizon_days),
            index=pd.Index(names, name="channel"),
        ),
        cost={"optimised": spent, "explore": 0.0, "total": spent},
        forecast={"conversions": float("nan"), "optouts": float("nan")},
        seconds=0.0,
        _layout=(np.asarray(off), np.asarray(cons)),
    )


def uniform_plan(
    planner: FrequencyPlanner, users: Any, *, exposures: int = 6, channel: str = "ads",
    reachable: Any = None, start_day: int = 0,
) -> FrequencyPlan:  # fmt: skip
    """Every targeted user who can be reached on ``channel`` gets ``exposures`` exposures."""
    u = check_users(users)
    c = _channel_code(planner, channel)
    exposures = cv.check_int(exposures, "exposures", minimum=0, maximum=2**32 - 1)
    c_n = len(planner.channels)
    ok = np.ones(len(u), bool) if reachable is None else _reach(reachable, len(u), c_n)[:, c]
    return fixed_plan(planner, u, np.where(ok, c, -1), np.where(ok, exposures, 0),
                      start_day=start_day)  # fmt: skip


def max_caps_plan(
    planner: FrequencyPlanner, users: Any, budget: float, *, channel: str = "ads",
    reachable: Any = None, start_day: int = 0, seed: int = 0,
) -> FrequencyPlan:  # fmt: skip
    """As many exposures as the caps allow on ``channel``, to random users until the budget
    is spent."""
    u = check_users(users)
    c = _channel_code(planner, channel)
    budget = cv.check_number(budget, "budget", minimum=0.0)
    seed = cv.check_int(seed, "seed", minimum=0)
    top = int(planner.levels[planner.allowed_[c]].max())
    cost = planner.channels[c].unit_cost * top
    c_n = len(planner.channels)
    ok = np.ones(len(u), bool) if reachable is None else _reach(reachable, len(u), c_n)[:, c]
    order = np.random.default_rng(seed).permutation(np.flatnonzero(ok))
    k = len(order) if cost == 0 else min(len(order), int(budget // cost))
    ch = np.full(len(u), -1)
    ch[order[:k]] = c
    return fixed_plan(planner, u, ch, np.where(ch >= 0, top, 0), start_day=start_day)


def _channel_code(planner: FrequencyPlanner, channel: str) -> int:
    names = [c.name for c in _planner(planner).channels]
    if channel not in names:
        raise ValueError(f"channel: {channel!r} is not one of the planner's channels {names}")
    return names.index(channel)


def score(
    env: Any, plan: FrequencyPlan, *, content: str | int = 0, progress: bool | None = None
) -> dict[str, float]:
    """Exact expected effect of the plan on the world (**scoring only**): incremental
    conversions and GMV, expected opt-outs, exposure spend, users reached."""
    _env(env)
    cv.check_instance(plan, "plan", FrequencyPlan, "a touchpoint.FrequencyPlan")
    rows = plan.schedule(content=content)
    days = plan.horizon_days
    if len(rows) == 0:
        return {"incremental_conversions": 0.0, "incremental_gmv": 0.0, "optouts": 0.0,
                "cost": 0.0, "reached": 0, "exposures": 0}  # fmt: skip
    e = env.expected_outcome(rows, start_day=plan.start_day, days=days, progress=progress)
    return {
        "incremental_conversions": float(e["incremental_conversion"].sum()),
        "incremental_gmv": float(e["incremental_gmv"].sum()),
        "optouts": float(e["expected_optouts"].sum()),
        "cost": float(e["channel_cost"].sum()),
        "reached": int(len(e)),
        "exposures": int(len(rows)),
    }


def true_curves(
    env: Any, planner: FrequencyPlanner, users: Any, *, start_day: int | None = None,
    reachable: Any = None, content: str | int = 0, progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The world's exact incremental conversion and opt-out probability of every user at every
    (channel, level) of the planner, shaped ``(n_users, n_channels, n_levels)``, each level laid
    out as the planner lays it out (**scoring only**). Unreachable pairs are 0."""
    u = _users_of(_env(env), users)
    n, c_n, l_n = len(u), len(_planner(planner).channels), len(planner.levels)
    start = env.day if start_day is None else cv.check_int(start_day, "start_day")
    reach = (
        world_reachable(env, u, planner.channels)
        if reachable is None
        else _reach(reachable, n, c_n)
    )
    inc = np.zeros((n, c_n, l_n))
    opt = np.zeros((n, c_n, l_n))
    for c in range(c_n):
        idx = np.flatnonzero(reach[:, c])
        if not len(idx):
            continue
        for j, level in enumerate(planner.levels):
            if not planner.allowed_[c, j]:
                continue
            p = fixed_plan(planner, u[idx], np.full(len(idx), c), np.full(len(idx), level),
                           start_day=start)  # fmt: skip
            e = env.expected_outcome(p.schedule(content=content), start_day=start,
                                     days=planner.horizon_days, progress=progress)  # fmt: skip
            pos = pd.Index(u).get_indexer(e["user_id"].to_numpy())
            inc[pos, c, j] = e["incremental_conversion"].to_numpy()
            opt[pos, c, j] = e["p_optout"].to_numpy()
    return inc, opt


def segment_curves(
    incremental: Any, optout: Any, segment: Any, reachable: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user curves (e.g. :func:`true_curves`) averaged over each segment's users who can be
    reached on the channel: ``(incremental, optout)`` shaped ``(n_segments, n_channels,
    n_levels)`` and each user's segment code (segments sorted). The world's *true segment
    curves*: what a perfect model of the same segmentation would know (**scoring only**)."""
    inc = cv.as_array(incremental, "incremental", ndim=3)
    opt = cv.as_array(optout, "optout", ndim=3, shape=inc.shape)
    codes, _ = cv.as_codes(segment, "segment")
    cv.check_same_length({"incremental": inc, "segment": codes})
    reach = _reach(reachable, inc.shape[0], inc.shape[1])
    g_n = int(codes.max()) + 1 if len(codes) else 0
    out_i = np.zeros((g_n, inc.shape[1], inc.shape[2]))
    out_o = np.zeros_like(out_i)
    for c in range(inc.shape[1]):
        w = reach[:, c].astype(np.float64)
        n_g = np.bincount(codes, weights=w, minlength=g_n)
        for j in range(inc.shape[2]):
            with np.errstate(invalid="ignore", divide="ignore"):
                out_i[:, c, j] = np.bincount(codes, weights=w * inc[:, c, j], minlength=g_n) / n_g
                out_o[:, c, j] = np.bincount(codes, weights=w * opt[:, c, j], minlength=g_n) / n_g
    return np.nan_to_num(out_i), np.nan_to_num(out_o), codes
