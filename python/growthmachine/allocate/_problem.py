"""The allocation problem: users' candidate actions in CSR form, their values and resource use,
and the constraints (resource bounds, per-user limits, exclusive groups), checked at construction;
and :func:`random_problem`, a seeded random instance generated in Rust."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core
from .._state import Versioned

__all__ = ["Problem", "random_problem"]


def usage_columns(usage: Any) -> dict[str, str]:
    """``usage`` of :meth:`Problem.from_frame` (a column, columns, or column -> resource) as
    column -> resource."""
    if usage is None:
        return {}
    if isinstance(usage, Mapping):
        return {str(k): str(v) for k, v in usage.items()}
    if isinstance(usage, str):
        return {usage: usage}
    return {str(c): str(c) for c in usage}


def _bounds(resources: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    if not isinstance(resources, Mapping) or not resources:
        raise TypeError(
            "resources: must be a non-empty mapping {name: upper or (lower, upper)}, got "
            f"{type(resources).__name__}"
        )
    names, lo, hi = [], [], []
    for name, b in resources.items():
        if isinstance(b, (tuple, list)):
            if len(b) != 2:
                raise ValueError(f"resources[{name!r}]: expected (lower, upper), got {b!r}")
            lower, upper = b
        else:
            lower, upper = 0.0, b
        lower = -np.inf if lower is None else lower
        upper = np.inf if upper is None else upper
        for what, v in (("lower", lower), ("upper", upper)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"resources[{name!r}]: {what} bound must be a number, got {v!r}")
            if np.isnan(v):
                raise ValueError(f"resources[{name!r}]: {what} bound is NaN")
        names.append(str(name))
        lo.append(float(lower))
        hi.append(float(upper))
    return names, np.asarray(lo), np.asarray(hi)


class Problem(Versioned):
    """An allocation problem: users' candidate actions (CSR), values, usage and constraints.

    Build it with :meth:`from_frame` (one row per (user, action) candidate) or :meth:`from_arrays`
    (CSR arrays). Validation happens at construction: NaN/inf values, negative usage, unknown
    resources and bounds that make the problem trivially infeasible raise ``ValueError`` or
    :class:`growthmachine.InfeasibleError` naming the argument or the resource.
    """

    _STATE_KIND = "allocate.Problem"

    def __init__(
        self,
        *,
        indptr: np.ndarray,
        action: np.ndarray,
        value: np.ndarray,
        usage: list[np.ndarray],
        usage_resource: list[int],
        action_usage: np.ndarray,
        actions: np.ndarray,
        groups: np.ndarray,
        per_user_limit: int | np.ndarray,
        resources: list[str],
        lower: np.ndarray,
        upper: np.ndarray,
        users: np.ndarray | None = None,
        order: np.ndarray | None = None,
        user_col: str = "user",
        action_col: str = "action",
    ):
        # Each argument converted and checked here, naming it (the core checks how they relate:
        # indptr against action and value, codes against the catalogue, bounds).
        self.indptr = cv.as_array(indptr, "indptr", np.int64)
        n_users = len(self.indptr) - 1
        self.action = _action_codes(action)
        self.value = cv.as_array(value, "value", _storage(value), allow_empty=True)
        nnz = len(self.value)
        self.usage = [
            cv.as_array(u, f"usage[{i}]", self.value.dtype, nonnegative=True, allow_empty=True)
            for i, u in enumerate(_list(usage, "usage"))
        ]
        self.usage_resource = cv.as_array(
            _list(usage_resource, "usage_resource"), "usage_resource", np.int64, allow_empty=True
        ).tolist()
        self.resources = _list(resources, "resources")
        bad = [r for r in self.resources if not isinstance(r, str)]
        if bad:
            raise TypeError(f"resources: must hold resource names (str), got {bad[0]!r}")
        n_res = len(self.resources)
        self.actions = _labels(actions, "actions")
        self.action_usage = cv.as_array(
            action_usage,
            "action_usage",
            np.float64,
            ndim=2,
            nonnegative=True,
            allow_empty=True,
            shape=(len(self.actions), n_res),
        )
        self.groups = cv.as_array(groups, "groups", np.int32, allow_empty=True)
        self.per_user_limit = _limit(per_user_limit, n_users)
        self.lower, self.upper = (
            cv.as_array(b, name, np.float64, finite=False, shape=(n_res,), allow_empty=True)
            for b, name in ((lower, "lower"), (upper, "upper"))
        )
        for name, b in (("lower", self.lower), ("upper", self.upper)):
            if np.isnan(b).any():
                raise ValueError(
                    f"{name}: must not hold NaN, found one at {np.argmax(np.isnan(b))}"
                )
        self.users = np.arange(n_users) if users is None else _labels(users, "users", n_users)
        self.order = None if order is None else _permutation(order, nnz)
        self.user_col = cv.check_instance(user_col, "user_col", str, "a column name (str)")
        self.action_col = cv.check_instance(action_col, "action_col", str, "a column name (str)")
        self._run("validate")

    # ----------------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def n_candidates(self) -> int:
        return len(self.value)

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    def __repr__(self) -> str:
        return (
            f"Problem({self.n_users:,} users, {self.n_candidates:,} candidates, "
            f"{self.n_actions} actions, resources={self.resources})"
        )

    def _run(self, method: str, **kw: Any):
        lim = self.per_user_limit
        per_user = None if isinstance(lim, (int, np.integer)) else lim
        return _core.allocate_run(
            self.indptr,
            self.action,
            self.value,
            self.usage,
            self.usage_resource,
            self.action_usage.reshape(-1),
            self.n_actions,
            self.groups,
            min(int(lim), _NO_LIMIT) if per_user is None else 0,
            per_user,
            [float(x) for x in self.lower],
            [float(x) for x in self.upper],
            list(self.resources),
            method,
            **kw,
        )

    def with_bounds(self, **resources: Any) -> Problem:
        """A copy with some resources' bounds replaced (``upper`` or ``(lower, upper)``)."""
        unknown = [r for r in resources if r not in self.resources]
        if unknown:
            raise ValueError(
                f"resources: unknown resource {unknown[0]!r} (known: {', '.join(self.resources)})"
            )
        _, lo, hi = _bounds(resources)
        lower, upper = self.lower.copy(), self.upper.copy()
        for j, name in enumerate(resources):
            r = self.resources.index(name)
            lower[r], upper[r] = lo[j], hi[j]
        kw = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        kw.update(lower=lower, upper=upper)
        return Problem(**kw)

    # ----------------------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        indptr: Any,
        action: Any,
        value: Any,
        *,
        resources: Mapping[str, Any],
        usage: Mapping[str, Any] | None = None,
        action_usage: Mapping[str, Any] | None = None,
        n_actions: int | None = None,
        per_user_limit: int | Any = 1,
        groups: Any = None,
        dtype: Any = np.float64,
    ) -> Problem:
        """A problem from CSR arrays.

        ``indptr`` (n_users + 1, starting at 0) delimits each user's candidates; ``action`` gives
        each candidate's action in ``0..n_actions``; ``value`` its value. ``usage`` maps a
        resource to its per-candidate use (length nnz); ``action_usage`` maps a resource to its
        per-action use (length n_actions). ``resources`` maps every resource to ``upper`` or
        ``(lower, upper)``. ``groups``: exclusive group per action (``-1``: none).
        ``per_user_limit``: an int or one int per user (limits of ``2**32 - 1`` or more mean no
        limit). ``dtype``: storage of values and usage (``float32`` halves memory; all
        arithmetic is float64). A user may list an action only once: a repeated (user, action)
        candidate raises ``ValueError`` naming the user and the action.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype: must be float32 or float64, got {dtype}")
        indptr = cv.as_array(indptr, "indptr", np.int64)
        action_i = _action_codes(action)
        value = cv.as_array(value, "value", dtype, allow_empty=True)
        nnz = len(value)
        cv.check_same_length({"value": value, "action": action_i})
        # the tables below have one row per action id: name what sized them
        arg = "n_actions" if n_actions is not None else "action (its largest id + 1 actions)"
        if n_actions is None:
            n_actions = int(action_i.max()) + 1 if nnz else 1
        n_actions = cv.check_int(n_actions, "n_actions", minimum=1, maximum=_MAX_ACTIONS)
        names, lo, hi = _bounds(resources)
        usage = dict(usage or {})
        action_usage = dict(action_usage or {})
        for src, what in ((usage, "usage"), (action_usage, "action_usage")):
            for r in src:
                if r not in names:
                    raise ValueError(
                        f"{what}: unknown resource {r!r} (resources: {', '.join(names)})"
                    )
        unused = [r for r in names if r not in usage and r not in action_usage]
        if unused:
            raise ValueError(
                f"resources: resource {unused[0]!r} has no usage (give it in usage or action_usage)"
            )
        cols, col_res = [], []
        for r, col in usage.items():
            a = cv.as_array(col, f"usage[{r!r}]", dtype, nonnegative=True, allow_empty=True)
            if len(a) != nnz:
                raise ValueError(
                    f"usage[{r!r}]: has length {len(a)}, expected {nnz} (the length of value)"
                )
            cols.append(a)
            col_res.append(names.index(r))
        au = cv.zeros((n_actions, len(names)), arg, "the per-action usage table")
        actions = cv.arange(n_actions, arg, "the table of action ids")
        for r, col in action_usage.items():
            au[:, names.index(r)] = cv.as_array(
                col, f"action_usage[{r!r}]", np.float64, nonnegative=True, shape=(n_actions,)
            )
        if groups is None:
            g = np.zeros(0, dtype=np.int32)
        else:
            g = cv.as_array(groups, "groups", np.int32, shape=(n_actions,))
        lim = _limit(per_user_limit, len(indptr) - 1)
        return cls(
            indptr=indptr,
            action=action_i,
            value=value,
            usage=cols,
            usage_resource=col_res,
            action_usage=np.ascontiguousarray(au),
            actions=actions,
            groups=g,
            per_user_limit=lim,
            resources=names,
            lower=lo,
            upper=hi,
        )

    @classmethod
    def from_frame(
        cls,
        df: Any,
        user: str = "user",
        action: str = "action",
        value: str = "value",
        usage: Sequence[str] | Mapping[str, str] | None = None,
        resources: Mapping[str, Any] | None = None,
        per_user_limit: int | Mapping[Any, int] | pd.Series = 1,
        groups: Mapping[Any, Any] | pd.Series | str | None = None,
        action_usage: pd.DataFrame | Mapping[str, Mapping[Any, float]] | None = None,
        dtype: Any = np.float64,
    ) -> Problem:
        """A problem from a table with one row per (user, action) candidate.

        ``usage``: the columns holding one resource's use per row (the column name is the
        resource; or a mapping column -> resource). ``action_usage``: per-action use of other
        resources (e.g. one push slot per push action), a DataFrame indexed by action with one
        column per resource, or ``{resource: {action: amount}}``. ``resources``: ``{name: upper
        or (lower, upper)}`` for every resource. ``per_user_limit``: an int or a mapping/Series
        user -> limit. ``groups``: exclusive groups, a mapping/Series action -> group or the
        name of a column of ``df`` (constant per action). Each (user, action) pair must appear
        in one row only: duplicates raise ``ValueError`` naming the first repeated pair and its
        rows (they are not merged, since summing or keeping one are both plausible; merge them
        first, e.g. with ``df.groupby([user, action], as_index=False).sum()``).
        """
        if resources is None:
            raise TypeError("resources: required, e.g. {'budget': 10_000}")
        cols = cv.columns(df, "df")
        n = cv.n_rows(df, "df")
        if n == 0:
            raise ValueError("df: is empty")
        u_codes, users = cv.as_codes(cv.column(df, "df", user), f"df[{user!r}]")
        a_codes, actions = cv.as_codes(cv.column(df, "df", action), f"df[{action!r}]")
        dup = pd.DataFrame({"u": u_codes, "a": a_codes}).duplicated().to_numpy()
        if dup.any():
            j = int(np.argmax(dup))
            i = int(np.flatnonzero((u_codes == u_codes[j]) & (a_codes == a_codes[j]))[0])
            u_lab, a_lab = (
                x.item() if isinstance(x, np.generic) else x
                for x in (users[u_codes[j]], actions[a_codes[j]])
            )
            raise ValueError(
                f"df: rows {i} and {j} are both user {u_lab!r} with action "
                f"{a_lab!r}; each (user, action) pair must appear once (merge "
                f"them first, e.g. df.groupby([{user!r}, {action!r}], as_index=False).sum())"
            )
        val = cv.as_array(cv.column(df, "df", value), f"df[{value!r}]", dtype)
        usage_map = usage_columns(usage)
        for c in usage_map:
            if c not in cols:
                raise ValueError(f"usage: unknown column {c!r} (available: {', '.join(cols)})")
        order = np.argsort(u_codes, kind="stable")
        counts = np.bincount(u_codes, minlength=len(users))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        per_res: dict[str, np.ndarray] = {}
        for c, r in usage_map.items():
            a = cv.as_array(cv.column(df, "df", c), f"df[{c!r}]", dtype, nonnegative=True)
            per_res[r] = per_res[r] + a if r in per_res else a
        au: dict[str, np.ndarray] = {}
        if action_usage is not None:
            if isinstance(action_usage, pd.DataFrame):
                items = {str(c): action_usage[c] for c in action_usage.columns}
            elif isinstance(action_usage, Mapping):
                items = {str(k): pd.Series(v) for k, v in action_usage.items()}
            else:
                raise TypeError(
                    "action_usage: must be a DataFrame indexed by action or a mapping "
                    f"{{resource: {{action: amount}}}}, got {type(action_usage).__name__}"
                )
            for r, s in items.items():
                s = pd.Series(s)
                au[r] = s.reindex(pd.Index(actions)).fillna(0.0).to_numpy(dtype=np.float64)
        g = None
        if groups is not None:
            if isinstance(groups, str):
                gcol = cv.column(df, "df", groups)
                gser = (
                    pd.Series(np.asarray(gcol))
                    .groupby(a_codes)
                    .agg(lambda s: s.iloc[0] if s.nunique(dropna=False) == 1 else "__conflict__")
                )
                if (gser == "__conflict__").any():
                    raise ValueError(f"groups: column {groups!r} must be constant per action")
                labels = gser.reindex(range(len(actions)))
            elif isinstance(groups, (Mapping, pd.Series)):
                labels = pd.Series(groups).reindex(pd.Index(actions))
            else:
                raise TypeError(
                    f"groups: must be a mapping action -> group, a Series or a column name, got "
                    f"{type(groups).__name__}"
                )
            codes, _ = pd.factorize(labels, use_na_sentinel=True)
            g = codes.astype(np.int32)
        if isinstance(per_user_limit, (Mapping, pd.Series)):
            lim_s = pd.Series(per_user_limit).reindex(pd.Index(users))
            if lim_s.isna().any():
                missing = lim_s.index[lim_s.isna()][0]
                raise ValueError(f"per_user_limit: no limit for user {missing!r}")
            lim: Any = lim_s.to_numpy()
        else:
            lim = per_user_limit
        prob = cls.from_arrays(
            indptr,
            a_codes[order],
            val[order],
            resources=resources,
            usage={r: a[order] for r, a in per_res.items()},
            action_usage=au or None,
            n_actions=len(actions),
            per_user_limit=lim,
            groups=g,
            dtype=dtype,
        )
        prob.users = users
        prob.actions = actions
        prob.order = order
        prob.user_col = user
        prob.action_col = action
        return prob

    def _get_state(self) -> dict[str, Any]:
        return dict(self.__dict__)


#: Limits are stored as uint32; a larger limit is no limit at all (no user has 2**32 candidates),
#: so it is stored as this value, which has the same meaning.
_NO_LIMIT = 2**32 - 1
#: Actions are stored as uint32, so the catalogue has at most this many actions.
_MAX_ACTIONS = 2**32 - 1


def _action_codes(action: Any) -> np.ndarray:
    """``action`` as uint32 codes (one per candidate), checked: integers in ``0.._MAX_ACTIONS``."""
    raw = cv.to_numpy_raw(action, "action")
    if raw.dtype == np.uint32:  # the stored form: no copy
        return cv.as_array(raw, "action", np.uint32, allow_empty=True)
    a = cv.as_array(raw, "action", np.int64, allow_empty=True)
    if a.size and a.min() < 0:
        raise ValueError(f"action: must be >= 0, found {a.min()}")
    if a.size and a.max() >= _MAX_ACTIONS:
        k = int(np.argmax(a))
        raise ValueError(
            f"action: must be < {_MAX_ACTIONS} (actions are codes 0..n_actions - 1, stored "
            f"as uint32), found {a[k]} at position {k}"
        )
    return a.astype(np.uint32)


def _storage(value: Any) -> type:
    """The storage dtype of values and usage: float32 if ``value`` is float32, else float64."""
    return np.float32 if getattr(value, "dtype", None) == np.float32 else np.float64


def _list(x: Any, name: str) -> list:
    if isinstance(x, (str, bytes, Mapping)) or not isinstance(x, (Sequence, np.ndarray)):
        raise TypeError(f"{name}: must be a list, got {type(x).__name__}")
    return list(x)


def _labels(x: Any, name: str, n: int | None = None) -> np.ndarray:
    """Labels (of users or actions: numbers or strings) as a 1-d array without missing values."""
    a = cv.to_numpy_raw(x, name)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of labels, got shape {a.shape}")
    if n is not None and len(a) != n:
        raise ValueError(f"{name}: has length {len(a)}, expected {n} (one per user of indptr)")
    if a.dtype == object and pd.isna(a).any():
        raise ValueError(f"{name}: has missing values (at {int(np.argmax(pd.isna(a)))})")
    if a.dtype.kind == "f" and np.isnan(a).any():
        raise ValueError(f"{name}: has NaN labels")
    return a


def _permutation(order: Any, n: int) -> np.ndarray:
    """``order`` checked to be a permutation of ``0..n`` (the rows of the table, sorted by user)."""
    o = cv.as_array(order, "order", np.int64, shape=(n,), allow_empty=True)
    if o.size and (o.min() < 0 or o.max() >= n or np.bincount(o, minlength=n).max() > 1):
        raise ValueError(f"order: must be a permutation of 0..{n - 1} (the table's rows)")
    return o


def _int_limit(x: int) -> int:
    """An int limit >= 0; any limit of ``2**32 - 1`` or more (2**64 too) means no limit."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"per_user_limit: must be an int, got {type(x).__name__}")
    return cv.check_int(min(int(x), _NO_LIMIT), "per_user_limit", minimum=0)


def _limit(per_user_limit: Any, n_users: int) -> int | np.ndarray:
    """``per_user_limit`` checked: an int >= 0 or one int >= 0 per user; limits above
    ``2**32 - 1`` are stored as ``2**32 - 1`` (the same meaning: no limit)."""
    if isinstance(per_user_limit, bool) or isinstance(per_user_limit, np.bool_):
        raise TypeError("per_user_limit: must be an int or one int per user, got bool")
    if isinstance(per_user_limit, (int, np.integer)):
        return _int_limit(per_user_limit)
    if np.ndim(per_user_limit) == 0:
        raise TypeError(
            "per_user_limit: must be an int or one int per user, got "
            f"{type(per_user_limit).__name__} {per_user_limit!r}"
        )
    # Float64 first: integers of any size (2**40, 2**64) compare exactly enough against the
    # uint32 range, and non-integral values are rejected by as_array.
    raw = np.asarray(cv.as_array(per_user_limit, "per_user_limit", np.float64, shape=(n_users,)))
    if raw.size and not np.array_equal(raw, np.floor(raw)):
        bad = int(np.flatnonzero(raw != np.floor(raw))[0])
        raise ValueError(f"per_user_limit: must hold integers, found {raw[bad]} at position {bad}")
    if raw.size and raw.min() < 0:
        raise ValueError(f"per_user_limit: must be >= 0, found {raw.min():g}")
    return np.ascontiguousarray(np.minimum(raw, _NO_LIMIT), dtype=np.uint32)


def random_problem(
    n_users: int,
    per_user: int = 20,
    n_actions: int = 60,
    n_pair: int = 2,
    n_action_res: int = 4,
    *,
    n_groups: int = 0,
    per_user_limit: int = 1,
    tightness: tuple[float, float] = (0.3, 0.9),
    seed: int = 0,
) -> Problem:
    """A seeded random problem (generated in Rust, float32 storage): ``n_pair`` per-candidate
    resources (costs correlated with value) and ``n_action_res`` per-action resources, upper
    bounds at a random share (``tightness``) of the unconstrained optimum's use."""
    d = _core.allocate_random_instance(
        cv.check_int(n_users, "n_users", minimum=1),
        cv.check_int(per_user, "per_user", minimum=1),
        cv.check_int(n_actions, "n_actions", minimum=1),
        cv.check_int(n_pair, "n_pair", minimum=0),
        cv.check_int(n_action_res, "n_action_res", minimum=0),
        cv.check_int(n_groups, "n_groups", minimum=0),
        _int_limit(per_user_limit),
        *_tightness(tightness),
        cv.check_int(seed, "seed", minimum=0),
    )
    r_n = len(d["names"])
    return Problem(
        indptr=d["indptr"],
        action=d["action"],
        value=d["value"],
        usage=list(d["usage"]),
        usage_resource=list(d["usage_resource"]),
        action_usage=np.asarray(d["action_usage"]).reshape(d["n_actions"], r_n),
        actions=np.arange(d["n_actions"]),
        groups=d["groups"],
        per_user_limit=per_user_limit,
        resources=list(d["names"]),
        lower=np.asarray(d["lower"]),
        upper=np.asarray(d["upper"]),
    )


def _tightness(t: Any) -> tuple[float, float]:
    """``tightness`` checked: a pair of finite numbers."""
    try:
        if isinstance(t, (str, bytes)):
            raise TypeError
        lo, hi = t
    except (TypeError, ValueError):
        raise TypeError(f"tightness: must be a pair (low, high) of numbers, got {t!r}") from None
    return (
        cv.check_number(lo, "tightness[0]", minimum=0.0),
        cv.check_number(hi, "tightness[1]", minimum=0.0),
    )
