"""The standard inputs of operation planning and their composition into candidate tasks.

A :class:`Plan` declares what the operator wants and what the platform can do:

- **goals** (:class:`Goal`): acquisition (first orders of prospects), ARPU (incremental GMV or
  profit of customers) or retention (reactivation of at-risk and dormant users), each with a metric,
  a weight and an optional floor on its expected total;
- **audiences** (:class:`Audience`): selectors over the users (insight cells, lifecycle stages,
  clusters, feature ranges, explicit ids; the criteria given are ANDed, none = everyone);
- **benefits** (:class:`Benefit`): coupons, free shipping, points or none, with their cost to the
  platform, an optional budget and an optional audience they are restricted to;
- **channels** (:class:`Channel`): cost per touch, frequency caps, capacity, consent and app rules;
- **contents** (:class:`Content`): the creative variants;
- a horizon (days) and an optional total budget.

``plan.tasks()`` lists the candidate tasks, audience x benefit x channel x content (a benefit
restricted to an audience pairs only with it), and ``plan.compose(insight, users, opted_out)``
resolves them over the users: which user may receive which task (audience, consent, app, opt-outs),
as a dense boolean matrix. ``Plan.default(env)`` is the simulated world's own catalogue; its tasks
are exactly ``env.actions`` (``task_id == action_id``).

A plan loads from YAML (or JSON)::

    name: spring
    horizon_days: 30
    budget: 50000
    goals:
      - {name: new buyers, kind: acquisition, metric: conversion, floor: 2000, audience: prospects}
      - {name: profit, kind: arpu}
    audiences:
      - {name: prospects, stages: [prospect]}
      - {name: big spenders, features: {clv: [200, null]}}
    benefits:
      - {name: none, kind: none, face_value: 0, cost: 0}
      - {name: coupon_10, kind: coupon, face_value: 10, cost: 10, budget: 20000}
      - {name: welcome_20, kind: coupon, face_value: 20, cost: 20, eligibility: prospects}
    channels:
      - {name: push, offsite: true, cost_per_touch: 0.0005, consent: push_opt_in, requires_app: true}
      - {name: email, offsite: true, cost_per_touch: 0.001, consent: email_opt_in, weekly_cap: 2}
    contents:
      - {name: discount}

Every error names the field path (``plan.benefits[2].cost: must be >= 0, got -1``); the types,
loading and saving are :mod:`growthmachine._schema`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from .. import _convert as cv
from .._schema import Schema
from ..insight.lifecycle import STAGES
from ..sim._environment import check_environment as check_env

__all__ = [
    "APP_COLUMN",
    "Audience",
    "Benefit",
    "Channel",
    "Composition",
    "Content",
    "Goal",
    "Plan",
]

BenefitKind = Literal["coupon", "free_shipping", "points", "none"]
GoalKind = Literal["acquisition", "arpu", "retention"]
Metric = Literal["profit", "gmv", "conversion"]

#: Users-table column telling whether a user has the app (channels with ``requires_app``).
APP_COLUMN = "has_app"

# ---- small rule helpers (messages start with the field path) ----------------------------------


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _at_least(v: float | None, path: str, minimum: float, strict: bool = False) -> None:
    if v is not None and (v <= minimum if strict else v < minimum):
        raise ValueError(
            f"{path}: must be {'>' if strict else '>='} {_num(minimum)}, got {_num(v)}"
        )


def _name(name: str, path: str, forbidden: str = "|") -> None:
    if not name.strip():
        raise ValueError(f"{path}: must not be empty")
    for ch in forbidden:
        if ch in name:
            raise ValueError(
                f"{path}: must not contain {ch!r} (task names join names with it), got {name!r}"
            )


def _not_empty(v: list | dict | None, path: str, hint: str = "") -> None:
    if v is not None and len(v) == 0:
        raise ValueError(f"{path}: must not be empty{hint}")


# ---- the inputs --------------------------------------------------------------------------------


@dataclass
class Audience(Schema):
    """A selector over the users; the criteria given are ANDed, none given selects everyone.

    - ``cells``: insight cell ids (``insight.users_['cell_id']``);
    - ``stages``: lifecycle stages (``growthmachine.insight.lifecycle.STAGES``);
    - ``clusters``: cluster ids (ints, ``insight.users_['cluster']``) or names
      (``insight.cluster_names_``), mixed freely;
    - ``features``: column -> ``[low, high]``, inclusive, either bound may be null (unbounded); the
      column is looked up in ``insight.users_``, then ``insight.features_``, then the users table
      (booleans count as 0/1); a missing value (NaN) never matches;
    - ``user_ids``: explicit user ids (each must be one of the users).
    """

    name: str
    cells: list[int] | None = None
    stages: list[str] | None = None
    clusters: list[int | str] | None = None
    features: dict[str, list[float | None]] | None = None
    user_ids: list[int] | None = None
    description: str = ""

    _root = "audience"
    _omit = " (omit it to select everyone)"

    def _check_values(self, path: str) -> None:
        _name(self.name, f"{path}.name", "|:")
        for k in ("cells", "stages", "clusters", "features", "user_ids"):
            _not_empty(getattr(self, k), f"{path}.{k}", self._omit)
        for i, s in enumerate(self.stages or []):
            if s not in STAGES:
                raise ValueError(
                    f"{path}.stages[{i}]: must be one of {', '.join(map(repr, STAGES))}, got {s!r}"
                )
        for col, bounds in (self.features or {}).items():
            p = f"{path}.features[{col!r}]"
            if not col:
                raise ValueError(f"{p}: the column name must not be empty")
            if len(bounds) != 2:
                raise ValueError(f"{p}: must be [low, high] (null = unbounded), got {bounds!r}")
            lo, hi = bounds
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{p}: low {_num(lo)} is above high {_num(hi)}")

    @property
    def is_everyone(self) -> bool:
        return all(
            getattr(self, k) is None
            for k in ("cells", "stages", "clusters", "features", "user_ids")
        )

    def select(self, insight: Any = None, users: Any = None) -> np.ndarray:
        """Boolean mask over the users, in the row order of ``insight.users_`` (or of ``users``
        without an insight). ``users``: the users table (``user_id`` and attribute columns)."""
        return self._mask(_Users(insight, users), f"audience {self.name!r}")

    def _mask(self, u: _Users, path: str) -> np.ndarray:
        m = np.ones(u.n, dtype=bool)
        if self.cells is not None:
            m &= u.in_codes(u.cells(f"{path}.cells"), self.cells, f"{path}.cells", "cell")
        if self.stages is not None:
            codes, names = u.stages(f"{path}.stages")
            want = [i for i, s in enumerate(names) if s in self.stages]
            m &= u.in_codes(codes, want, f"{path}.stages", "stage", check=False)
        if self.clusters is not None:
            m &= u.clusters(self.clusters, f"{path}.clusters")
        for col, (lo, hi) in (self.features or {}).items():
            x = u.feature(col, f"{path}.features[{col!r}]")
            fm = ~np.isnan(x)
            if lo is not None:
                fm &= x >= lo
            if hi is not None:
                fm &= x <= hi
            m &= fm
        if self.user_ids is not None:
            m &= u.among(self.user_ids, f"{path}.user_ids")
        return m


@dataclass
class Benefit(Schema):
    """An incentive: ``cost`` to the platform per redemption, ``face_value`` shown to the user,
    an optional ``budget`` (expected cost) and an optional audience it is restricted to."""

    name: str
    kind: BenefitKind
    face_value: float
    cost: float
    budget: float | None = None
    eligibility: str | None = None

    _root = "benefit"

    def _check_values(self, path: str) -> None:
        _name(self.name, f"{path}.name")
        _at_least(self.face_value, f"{path}.face_value", 0.0)
        _at_least(self.cost, f"{path}.cost", 0.0)
        _at_least(self.budget, f"{path}.budget", 0.0, strict=True)


@dataclass
class Channel(Schema):
    """A way to reach users: off-site (push, sms, email, ads) or on-site (in-app), its cost per
    touch, caps per user (``daily_cap``, ``weekly_cap``), total touches per day
    (``capacity_per_day``), the users-table boolean column that must be True (``consent``) and
    whether the app is needed (``requires_app``: column :data:`APP_COLUMN`)."""

    name: str
    offsite: bool
    cost_per_touch: float
    daily_cap: int = 1
    weekly_cap: int | None = None
    capacity_per_day: int | None = None
    consent: str | None = None
    requires_app: bool = False

    _root = "channel"

    def _check_values(self, path: str) -> None:
        _name(self.name, f"{path}.name")
        _at_least(self.cost_per_touch, f"{path}.cost_per_touch", 0.0)
        _at_least(self.daily_cap, f"{path}.daily_cap", 1)
        _at_least(self.weekly_cap, f"{path}.weekly_cap", 1)
        _at_least(self.capacity_per_day, f"{path}.capacity_per_day", 1)
        if self.consent is not None and not self.consent.strip():
            raise ValueError(f"{path}.consent: must be a users-table column name or null")


@dataclass
class Content(Schema):
    """A creative variant."""

    name: str
    description: str = ""

    _root = "content"

    def _check_values(self, path: str) -> None:
        _name(self.name, f"{path}.name")


#: The users a goal of each kind counts when it names no audience (lifecycle stages of
#: ``growthmachine.insight.lifecycle.STAGES``); a kind not listed counts everyone.
GOAL_STAGES: dict[str, tuple[str, ...]] = {
    "acquisition": ("prospect",),
    "retention": ("at-risk", "dormant"),
}


@dataclass
class Goal(Schema):
    """What the operation aims at: ``kind`` acquisition (first orders of prospects), arpu
    (incremental GMV or profit per user, everyone) or retention (reactivation of at-risk and
    dormant users), measured by ``metric``, weighted by ``weight`` in the objective; ``floor``:
    optional lower bound on the goal's expected total over its users (e.g. at least 2,000 new
    buyers); ``audience``: the audience the goal counts, by name; without one, the kind's users
    (:data:`GOAL_STAGES`: prospects for acquisition, at-risk and dormant users for retention,
    everyone for arpu)."""

    name: str
    kind: GoalKind
    metric: Metric = "profit"
    weight: float = 1.0
    floor: float | None = None
    audience: str | None = None

    _root = "goal"

    def _check_values(self, path: str) -> None:
        _name(self.name, f"{path}.name", "")
        _at_least(self.weight, f"{path}.weight", 0.0)


@dataclass
class Plan(Schema):
    """Goals, audiences, benefits, channels and contents of an operation (see the module docs)."""

    goals: list[Goal]
    audiences: list[Audience]
    benefits: list[Benefit]
    channels: list[Channel]
    contents: list[Content]
    horizon_days: int = 30
    budget: float | None = None
    name: str = "plan"

    _root = "plan"

    def goal_audience(self, goal: Goal) -> Audience | None:
        """The audience ``goal`` counts: its named audience, else its kind's users
        (:data:`GOAL_STAGES`), else ``None`` (everyone)."""
        cv.check_instance(goal, "goal", Goal, "a planning.Goal")
        if goal.audience is not None:
            return next(a for a in self.audiences if a.name == goal.audience)
        stages = GOAL_STAGES.get(goal.kind)
        if stages is None:
            return None
        return Audience(f"{goal.kind} users", stages=list(stages))

    def _check_values(self, path: str) -> None:
        _name(self.name, f"{path}.name", "")
        _at_least(self.horizon_days, f"{path}.horizon_days", 1)
        _at_least(self.budget, f"{path}.budget", 0.0, strict=True)
        for k in ("goals", "audiences", "benefits", "channels", "contents"):
            items = getattr(self, k)
            _not_empty(items, f"{path}.{k}")
            seen: dict[str, int] = {}
            for i, x in enumerate(items):
                if x.name in seen:
                    raise ValueError(
                        f"{path}.{k}[{i}].name: duplicate name {x.name!r} (also {k}[{seen[x.name]}])"
                    )
                seen[x.name] = i
        known = [a.name for a in self.audiences]
        for k, attr in (("goals", "audience"), ("benefits", "eligibility")):
            for i, x in enumerate(getattr(self, k)):
                ref = getattr(x, attr)
                if ref is not None and ref not in known:
                    raise ValueError(
                        f"{path}.{k}[{i}].{attr}: unknown audience {ref!r} "
                        f"(audiences: {', '.join(map(repr, known))})"
                    )

    # -- the simulated world's catalogue -------------------------------------------------------
    @classmethod
    def default(
        cls, env: Any, *, budget: float | None = None, n_contents: int | None = None
    ) -> Plan:
        """The catalogue of a :class:`growthmachine.sim.Environment` as a plan: its benefits,
        channels (consent and app rules of the world) and contents, one audience "everyone", one
        goal (profit, arpu), 30 days. Its tasks are ``env.actions`` in order
        (``task_id == action_id``). ``n_contents``: keep only the first ``n_contents`` content
        variants (fewer tasks, each better measured by one experiment; task ids then differ
        from action ids: map them with :func:`growthmachine.planning.world_actions`)."""
        from ..sim import CHANNELS, CONSENT, NEEDS_APP, OFFSITE, Environment

        if not isinstance(env, Environment):
            raise TypeError(
                f"env: must be a growthmachine.sim.Environment, got {type(env).__name__}"
            )
        r = env.config.response
        if n_contents is not None:
            cv.check_int(n_contents, "n_contents", minimum=1, maximum=len(r.contents))
        benefits = [
            Benefit(
                b.name,
                _benefit_kind(b.name, f"env.config.response.benefits[{i}].name"),
                b.face_value,
                b.cost,
            )
            for i, b in enumerate(r.benefits)
        ]
        channels = []
        for c, off in zip(CHANNELS, OFFSITE, strict=True):
            consent, app = CONSENT[c], NEEDS_APP[c]
            ch = getattr(r.channels, c)
            channels.append(
                Channel(
                    c,
                    offsite=bool(off),
                    cost_per_touch=ch.unit_cost,
                    daily_cap=ch.daily_cap,
                    consent=consent,
                    requires_app=app,
                )
            )
        return cls(
            goals=[Goal("profit", kind="arpu", metric="profit")],
            audiences=[Audience("everyone", description="every user")],
            benefits=benefits,
            channels=channels,
            contents=[Content(k) for k in r.contents][:n_contents],
            horizon_days=30,
            budget=budget,
        )

    # -- candidate tasks -----------------------------------------------------------------------
    def tasks(self) -> pd.DataFrame:
        """Candidate tasks, audience x benefit x channel x content (in that nesting order; a
        benefit restricted to an audience pairs only with it): task_id, name, audience, benefit,
        channel, content, benefit_kind, face_value, benefit_cost, cost_per_touch, is_offsite."""
        rows = []
        for a in self.audiences:
            for b in self.benefits:
                if b.eligibility is not None and b.eligibility != a.name:
                    continue
                for c in self.channels:
                    for k in self.contents:
                        rows.append(
                            (a.name, b.name, c.name, k.name, b.kind, float(b.face_value),
                             float(b.cost), float(c.cost_per_touch), bool(c.offsite))
                        )  # fmt: skip
        cols = ["audience", "benefit", "channel", "content", "benefit_kind", "face_value",
                "benefit_cost", "cost_per_touch", "is_offsite"]  # fmt: skip
        df = pd.DataFrame(rows, columns=cols)
        df["is_offsite"] = df["is_offsite"].astype(bool)
        name = df["benefit"] + "|" + df["channel"] + "|" + df["content"]
        if len(self.audiences) > 1:
            name = df["audience"] + ":" + name
        df.insert(0, "task_id", np.arange(len(df), dtype=np.int64))
        df.insert(1, "name", name)
        return df

    def compose(self, insight: Any = None, users: Any = None, opted_out: Any = None) -> Composition:
        """Which user may receive which task.

        ``insight``: a fitted :class:`growthmachine.insight.UserInsight` (the users are its
        ``users_`` rows, in order); ``users``: the users table (``user_id``, the channels' consent
        columns and ``has_app``), required when a channel has a consent or app rule, and the users
        themselves without an insight; ``opted_out``: optional table with one bool column per
        channel name, rows in the order of ``users`` (else of ``insight.users_``), e.g.
        ``env.opted_out()``. A user is eligible for a task when the task's audience selects it,
        the channel's consent column is True, it has the app if the channel needs it and it has
        not opted out of the channel. An audience that selects nobody raises ``ValueError``.
        """
        u = _Users(insight, users)
        tasks = self.tasks()
        aud = [
            a._mask(u, f"{self._root}.audiences[{i}] ({a.name!r})")
            for i, a in enumerate(self.audiences)
        ]
        for i, (a, m) in enumerate(zip(self.audiences, aud, strict=True)):
            if not m.any():
                raise ValueError(
                    f"{self._root}.audiences[{i}] ({a.name!r}): selects no user "
                    f"(of {u.n:,}); widen its criteria or remove it"
                )
        out = u.opted_out_columns(opted_out, [c.name for c in self.channels])
        chan: list[np.ndarray | None] = []
        for i, c in enumerate(self.channels):
            m = None
            p = f"{self._root}.channels[{i}] ({c.name!r})"
            if c.consent is not None:
                m = u.flag(c.consent, f"consent column of {p}")
            if c.requires_app:
                app = u.flag(APP_COLUMN, f"app column of {p} (requires_app)")
                m = app if m is None else m & app
            if out[c.name] is not None:
                m = ~out[c.name] if m is None else m & ~out[c.name]
            chan.append(m)
        eligible = np.empty((u.n, len(tasks)), dtype=bool)
        a_code = pd.Index([a.name for a in self.audiences]).get_indexer(tasks["audience"])
        c_code = pd.Index([c.name for c in self.channels]).get_indexer(tasks["channel"])
        for (ai, ci), cols in pd.Series(tasks.index).groupby([a_code, c_code]):
            m = aud[ai] if chan[ci] is None else aud[ai] & chan[ci]
            eligible[:, cols.to_numpy()] = m[:, None]
        return Composition(tasks=tasks, user_ids=u.user_ids, eligible=eligible)


def _benefit_kind(name: str, path: str) -> str:
    if name == "none":
        return "none"
    if name.startswith("free_shipping"):
        return "free_shipping"
    for kind in ("coupon", "points"):
        if name.startswith(kind):
            return kind
    raise ValueError(
        f"{path}: cannot tell the kind of benefit {name!r} (coupon_*, free_shipping, points_*, none)"
    )


@dataclass
class Composition:
    """A plan resolved over the users: ``eligible[i, j]`` says user ``user_ids[i]`` may receive
    task ``tasks.task_id[j]`` (``j``)."""

    tasks: pd.DataFrame
    user_ids: np.ndarray
    eligible: np.ndarray
    n_pairs: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_pairs = int(np.count_nonzero(self.eligible))

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(user_id, task_id) of the eligible pairs, user-major (by row, then task)."""
        rows, task = np.nonzero(self.eligible)
        return self.user_ids[rows], task.astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"Composition(n_users={self.n_users:,}, n_tasks={self.n_tasks}, "
            f"n_pairs={self.n_pairs:,})"
        )


# ---- the users a plan is composed for ------------------------------------------------------------


class _Users:
    """The users (rows of ``insight.users_``, or of ``users`` without an insight) and their
    columns, aligned to that row order once; every lookup names the argument it reads."""

    def __init__(self, insight: Any, users: Any):
        if insight is None and users is None:
            raise ValueError("insight, users: give a fitted UserInsight or a users table")
        self.insight = insight
        self.users = users
        self._perm: np.ndarray | None = None  # universe row -> users-table row (None: identity)
        self._cache: dict[str, np.ndarray] = {}
        if insight is not None:
            t = getattr(insight, "users_", None)
            if not isinstance(t, pd.DataFrame) or "user_id" not in t.columns:
                raise TypeError(
                    "insight: must be a fitted growthmachine.insight.UserInsight (with users_), "
                    f"got {type(insight).__name__}"
                )
            self.table = t
            self.user_ids = cv.as_array(t["user_id"], "insight.users_['user_id']", np.int64)
        if users is not None:
            cols = cv.columns(users, "users")
            if "user_id" not in cols:
                raise ValueError(f"users: has no 'user_id' column (columns: {', '.join(cols)})")
            uid = cv.as_array(cv.column(users, "users", "user_id"), "users['user_id']", np.int64)
            if insight is None:
                _check_unique(uid, "users")
                self.user_ids = uid
            else:
                self._perm = _align(self.user_ids, uid)
        self.n = len(self.user_ids)
        self.n_users_rows = None if users is None else cv.n_rows(users, "users")

    # -- insight columns -------------------------------------------------------------------------
    def _need_insight(self, path: str) -> pd.DataFrame:
        if self.insight is None:
            raise ValueError(f"{path}: needs insight (a fitted growthmachine.insight.UserInsight)")
        return self.table

    def cells(self, path: str) -> np.ndarray:
        t = self._need_insight(path)
        return cv.as_array(t["cell_id"], "insight.users_['cell_id']", np.int64)

    def stages(self, path: str) -> tuple[np.ndarray, list[str]]:
        t = self._need_insight(path)
        lc = getattr(self.insight, "lifecycle_", None)
        if (
            isinstance(lc, pd.Series)
            and isinstance(lc.dtype, pd.CategoricalDtype)
            and len(lc) == self.n
        ):
            return lc.cat.codes.to_numpy().astype(np.int64), [str(c) for c in lc.cat.categories]
        codes, names = pd.factorize(t["stage"])
        return codes.astype(np.int64), [str(c) for c in names]

    def clusters(self, wanted: Iterable[int | str], path: str) -> np.ndarray:
        t = self._need_insight(path)
        labels = cv.as_array(t["cluster"], "insight.users_['cluster']", np.int64)
        names = getattr(self.insight, "cluster_names_", None)
        if names is None:
            names = (
                t[["cluster", "cluster_name"]].drop_duplicates("cluster").set_index("cluster")
                ["cluster_name"].reindex(range(int(labels.max()) + 1)).tolist()
            )  # fmt: skip
        ids = []
        for i, w in enumerate(wanted):
            if isinstance(w, str):
                hit = [j for j, nm in enumerate(names) if nm == w]
                if not hit:
                    raise ValueError(f"{path}[{i}]: {w!r} is not a cluster name of insight")
                ids.extend(hit)
            else:
                if w >= len(names):
                    raise ValueError(
                        f"{path}[{i}]: {w} is not a cluster id of insight (0..{len(names) - 1})"
                    )
                ids.append(int(w))
        return self.in_codes(labels, ids, path, "cluster", check=False)

    def in_codes(
        self, codes: np.ndarray, wanted: Iterable[int], path: str, what: str, check: bool = True
    ) -> np.ndarray:
        """``codes`` (small non-negative ints) in ``wanted``, by a lookup table; ``check``: each
        wanted code must occur."""
        wanted = list(wanted)
        size = max(int(codes.max(initial=-1)), *wanted, -1) + 1
        if check:
            present = np.bincount(codes, minlength=size) > 0
            for i, w in enumerate(wanted):
                if not present[w]:
                    raise ValueError(f"{path}[{i}]: {w} is not a {what} of insight")
        lut = np.zeros(size, dtype=bool)
        lut[wanted] = True
        return lut[codes]

    # -- any column ----------------------------------------------------------------------------
    def _users_column(self, col: str) -> np.ndarray:
        v = cv.column(self.users, "users", col)
        return v if self._perm is None else v[self._perm]

    def feature(self, col: str, path: str) -> np.ndarray:
        """A numeric column as float64 (booleans 0/1) from insight.users_, insight.features_ or
        users, in that order of preference."""
        key = "feature:" + col
        if key in self._cache:
            return self._cache[key]
        sources = []
        raw = None
        if self.insight is not None:
            sources.append(("insight.users_", list(self.table.columns)))
            if col in self.table.columns:
                raw = self.table[col].to_numpy()
            f = getattr(self.insight, "features_", None)
            if raw is None and isinstance(f, pd.DataFrame):
                sources.append(("insight.features_", list(f.columns)))
                if col in f.columns:
                    if len(f) != self.n or not np.array_equal(
                        f["user_id"].to_numpy(), self.user_ids
                    ):
                        raise ValueError("insight: features_ and users_ rows differ")
                    raw = f[col].to_numpy()
        if raw is None and self.users is not None:
            cols = cv.columns(self.users, "users")
            sources.append(("users", cols))
            if col in cols:
                raw = self._users_column(col)
        if raw is None:
            where = "; ".join(f"{s}: {', '.join(map(str, c))}" for s, c in sources)
            raise ValueError(f"{path}: unknown feature column {col!r} ({where})")
        raw = np.asarray(raw)
        if raw.dtype.kind not in "biuf":
            raise TypeError(f"{path}: column {col!r} is not numeric (dtype {raw.dtype})")
        x = raw.astype(np.float64, copy=False)
        self._cache[key] = x
        return x

    def flag(self, col: str, what: str) -> np.ndarray:
        """A boolean users-table column (bool, or integers 0/1), aligned."""
        key = "flag:" + col
        if key in self._cache:
            return self._cache[key]
        if self.users is None:
            raise ValueError(f"users: required (the {what} is {col!r})")
        cols = cv.columns(self.users, "users")
        if col not in cols:
            raise ValueError(
                f"users: has no column {col!r} (the {what}; columns: {', '.join(cols)})"
            )
        x = _as_bool(self._users_column(col), f"users[{col!r}]")
        self._cache[key] = x
        return x

    def among(self, ids: list[int], path: str) -> np.ndarray:
        """Rows whose user id is in ``ids``; each id must be one of the users."""
        want = np.asarray(ids, dtype=np.int64)
        known = np.isin(want, self.user_ids)
        if not known.all():
            i = int(np.flatnonzero(~known)[0])
            raise ValueError(f"{path}[{i}]: user id {want[i]} is not one of the users")
        return np.isin(self.user_ids, want)

    def opted_out_columns(
        self, opted_out: Any, channels: list[str]
    ) -> dict[str, np.ndarray | None]:
        if opted_out is None:
            return dict.fromkeys(channels)
        cols = cv.columns(opted_out, "opted_out")
        rows = cv.n_rows(opted_out, "opted_out")
        expect = self.n if self.n_users_rows is None else self.n_users_rows
        if rows != expect:
            of = "users" if self.n_users_rows is not None else "insight.users_"
            raise ValueError(
                f"opted_out: has {rows:,} rows, expected {expect:,} (one per row of {of})"
            )
        out: dict[str, np.ndarray | None] = {}
        for c in channels:
            if c not in cols:
                raise ValueError(
                    f"opted_out: has no column for channel {c!r} (columns: {', '.join(cols)})"
                )
            x = _as_bool(cv.column(opted_out, "opted_out", c), f"opted_out[{c!r}]")
            out[c] = x if self._perm is None else x[self._perm]
        return out


def _as_bool(v: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(v)
    if v.dtype == bool:
        return v
    if v.dtype.kind in "iu" and (v.size == 0 or (v.min() >= 0 and v.max() <= 1)):
        return v.astype(bool)
    raise TypeError(f"{name}: must be bool (or 0/1), got dtype {v.dtype}")


def _check_unique(ids: np.ndarray, name: str) -> None:
    if ids.size < 2 or bool((ids[1:] > ids[:-1]).all()):
        return
    s = np.sort(ids, kind="stable")
    dup = np.flatnonzero(s[1:] == s[:-1])
    if dup.size:
        raise ValueError(f"{name}: user id {s[dup[0]]} appears more than once")


def _align(target: np.ndarray, ids: np.ndarray) -> np.ndarray | None:
    """Row of ``ids`` (the users table) for each of ``target`` (insight's users); both must hold
    the same users. None when they are already in the same order."""
    if len(ids) == len(target) and np.array_equal(ids, target):
        return None
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    dup = np.flatnonzero(s[1:] == s[:-1])
    if dup.size:
        raise ValueError(f"users: user id {s[dup[0]]} appears more than once")
    pos = np.searchsorted(s, target)
    posc = np.minimum(pos, max(len(s) - 1, 0))
    found = (pos < len(s)) & (s[posc] == target) if len(s) else np.zeros(len(target), bool)
    if not found.all():
        i = int(np.flatnonzero(~found)[0])
        raise ValueError(f"users: has no row for user id {target[i]} of insight")
    if len(ids) > len(target):
        extra = ~np.isin(ids, target)
        r = int(np.flatnonzero(extra)[0])
        raise ValueError(f"users: user id {ids[r]} (row {r}) is not in insight")
    return order[pos]


#: Delivered treated rows each task of one experiment should get (sizes :func:`experiment_plan`).
ROWS_PER_TASK = 1000


def experiment_plan(env: Any, budget: float, share: float = 0.5) -> Plan:
    """The world's catalogue (:meth:`Plan.default`) with as many content variants per
    (benefit, channel) as one experiment can learn: each task should get about
    ``ROWS_PER_TASK`` delivered treated rows (one variant at 100k users, all four at 1M). Fewer,
    better-measured tasks beat many unmeasurable ones; the oracle it is scored against still
    chooses among the whole catalogue."""
    check_env(env)
    share = cv.check_number(share, "share", minimum=0.0, maximum=1.0)
    n_bc = len(env.config.response.benefits) * len(env.actions["channel"].cat.categories)
    # about 2/3 of drawn tasks reach the user (consent and app rules)
    k = int(env.n_users * share * (2 / 3) // (ROWS_PER_TASK * n_bc))
    k = min(max(k, 1), len(env.config.response.contents))
    return Plan.default(env, budget=budget, n_contents=k)
