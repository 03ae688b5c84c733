"""The conflict decision engine: globally optimal allocation of actions to users, with a certificate.

Many campaigns want the same users; budgets and channel capacities are finite. Given every user's
candidate actions (a value each, possibly negative, and resource use), :func:`solve` picks at most
``L`` actions per user, at most one per exclusive group, within every resource's lower and upper
bound, maximising the total value, and proves how close to optimal the plan is::

    import growthmachine as gm
    prob = gm.allocate.Problem.from_frame(
        cands, user="user", action="action", value="uplift",
        usage=["coupon_cost"], resources={"coupon_cost": 50_000, "push": 200_000},
        action_usage=pushes_per_action, per_user_limit=1, groups={"c10": "coupon", "c20": "coupon"},
    )
    sol = gm.allocate.solve(prob)          # dual decomposition in Rust, certified gap
    sol.assignment, sol.objective, sol.dual_bound, sol.gap, sol.prices, sol.usage

Methods: ``"dual"`` (Lagrangian decomposition over the users: a level bundle method on the
resource prices, on a sample of users first when there are 100,000 or more; then Newton steps on
the full problem with a Jacobian estimated from the users near switching; the integer plan by
rounding, repair and fill; the certified LP gap from the aggregated primal or the integer plan
itself: 10M users x 20 candidates x 50 resources in about 6 s on 2 cores), ``"exact"`` (the MIP through good_lp/microlp, small instances;
``"lp"``: the LP relaxation through clarabel), ``"highs"`` (the MIP through HiGHS, if ``highspy``
is installed), ``"auto"`` (exact for tiny problems, else dual).

Every method honours ``time_limit`` and Ctrl-C (``KeyboardInterrupt`` within about half a
second), except that ``highs`` stops only where HiGHS checks: on large instances (hundreds of
thousands of candidates) its presolve and root phases can run for minutes past both. Every
method claims only what it proved: ``exact`` and ``lp`` report the Lagrangian bound at the LP
solver's prices (a bound whatever state the solver stopped in), ``highs`` HiGHS's own dual bound
or none (``dual_bound=inf``, ``gap=inf``); the empty plan is ``optimal`` with gap 0 only when the
bound is 0. When a time limit leaves no plan and the empty plan misses a lower bound,
``ValueError`` names ``time_limit``. Values must keep ``max |value| x candidates <= 1e300``
(``ValueError`` otherwise), so no sum overflows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .. import _core, _progress
from .._core import InfeasibleError
from .._state import Versioned

__all__ = ["Problem", "Solution", "solve", "highs_lp", "random_problem", "run_stage"]

METHODS = ("auto", "dual", "exact", "lp", "highs")


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
        self.indptr = indptr
        self.action = action
        self.value = value
        self.usage = usage
        self.usage_resource = usage_resource
        self.action_usage = action_usage
        self.actions = actions
        self.groups = groups
        self.per_user_limit = per_user_limit
        self.resources = resources
        self.lower = lower
        self.upper = upper
        self.users = users if users is not None else np.arange(len(indptr) - 1)
        self.order = order
        self.user_col = user_col
        self.action_col = action_col
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
        action_i = cv.as_array(action, "action", np.int64, allow_empty=True)
        value = cv.as_array(value, "value", dtype, allow_empty=True)
        nnz = len(value)
        cv.check_same_length({"value": value, "action": action_i})
        if action_i.size and action_i.min() < 0:
            raise ValueError(f"action: must be >= 0, found {action_i.min()}")
        if action_i.size and action_i.max() >= _MAX_ACTIONS:
            k = int(np.argmax(action_i))
            raise ValueError(
                f"action: must be < {_MAX_ACTIONS} (actions are codes 0..n_actions - 1, stored "
                f"as uint32), found {action_i[k]} at position {k}"
            )
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
        au = _zeros((n_actions, len(names)), "n_actions", "the per-action usage table")
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
            action=np.ascontiguousarray(action_i, dtype=np.uint32),
            value=value,
            usage=cols,
            usage_resource=col_res,
            action_usage=np.ascontiguousarray(au),
            actions=np.arange(n_actions),
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
        if usage is None:
            usage_map: dict[str, str] = {}
        elif isinstance(usage, Mapping):
            usage_map = {str(k): str(v) for k, v in usage.items()}
        elif isinstance(usage, str):
            usage_map = {usage: usage}
        else:
            usage_map = {str(c): str(c) for c in usage}
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


def _zeros(shape: tuple[int, ...], arg: str, what: str) -> np.ndarray:
    """``np.zeros(shape)`` (float64), or a ``MemoryError`` naming ``arg`` when it does not fit in
    this machine's memory (numpy would raise one naming nothing, or promise lazily zeroed pages
    that the core then touches)."""
    need = 8 * int(np.prod(shape, dtype=object))
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        have = None
    if have is not None and need > have:
        raise MemoryError(
            f"{arg}: {what} needs {need / 2**30:,.1f} GiB (shape {shape}), more than this "
            f"machine's {have / 2**30:,.1f} GiB of memory"
        )
    try:
        return np.zeros(shape)
    except (MemoryError, ValueError):
        raise MemoryError(
            f"{arg}: {what} needs {need / 2**30:,.1f} GiB (shape {shape}), more than can be "
            "allocated"
        ) from None


#: Limits are stored as uint32; a larger limit is no limit at all (no user has 2**32 candidates),
#: so it is stored as this value, which has the same meaning.
_NO_LIMIT = 2**32 - 1
#: Actions are stored as uint32, so the catalogue has at most this many actions.
_MAX_ACTIONS = 2**32 - 1


def _limit(per_user_limit: Any, n_users: int) -> int | np.ndarray:
    """``per_user_limit`` checked: an int >= 0 or one int >= 0 per user; limits above
    ``2**32 - 1`` are stored as ``2**32 - 1`` (the same meaning: no limit)."""
    if isinstance(per_user_limit, bool) or isinstance(per_user_limit, np.bool_):
        raise TypeError("per_user_limit: must be an int or one int per user, got bool")
    if isinstance(per_user_limit, (int, np.integer)):
        return min(cv.check_int(per_user_limit, "per_user_limit", minimum=0), _NO_LIMIT)
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


@dataclass
class Solution(Versioned):
    """The result of :func:`solve`.

    ``assignment``: the chosen (user, action) rows (the input's column names, plus ``value`` and
    the per-row usage); ``objective``: the plan's value; ``dual_bound``: an upper bound on every
    plan's value (the LP relaxation's, certified by duality); ``gap``: ``(dual_bound -
    objective) / |dual_bound|``; ``lp_value``/``lp_gap``: the value of the best certified feasible
    plan (the aggregated fractional primal, or the integer plan itself) and its gap to the bound
    (how well the LP relaxation is solved); ``usage``:
    used, lower, upper, price per resource; ``prices``: shadow prices; ``status``: ``optimal``
    (gap <= tol), ``feasible`` (LP solved to tol, integrality gap above it), ``time_limit``,
    ``iteration_limit`` or ``infeasible`` (``message`` names the constraints); ``history``: per
    iteration (``phase``: ``sample``, ``newton``, ``full`` or ``exact``) dual value, best bound,
    certified primal, choices' value and largest violation.
    """

    _STATE_KIND = "allocate.Solution"

    assignment: pd.DataFrame
    objective: float
    dual_bound: float
    gap: float
    lp_value: float
    lp_gap: float
    usage: pd.DataFrame
    prices: pd.Series
    status: str
    message: str
    history: pd.DataFrame
    method: str
    passes: int
    seconds: float
    chosen: np.ndarray = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"Solution(status={self.status!r}, objective={self.objective:,.6g}, "
            f"dual_bound={self.dual_bound:,.6g}, gap={self.gap:.2e}, lp_gap={self.lp_gap:.2e}, "
            f"assigned={len(self.assignment):,}, method={self.method!r}, "
            f"seconds={self.seconds:.3f})"
        )

    @property
    def certificate(self) -> dict[str, Any]:
        """The optimality certificate in numbers."""
        return {
            "status": self.status,
            "objective": self.objective,
            "lp_value": self.lp_value,
            "dual_bound": self.dual_bound,
            "gap": self.gap,
            "lp_gap": self.lp_gap,
            "max_relative_violation": float(
                np.max(
                    np.maximum(
                        (self.usage["used"] - self.usage["upper"]) / self.usage["upper"].abs(),
                        0,
                    ).fillna(0)
                )
            )
            if len(self.usage)
            else 0.0,
        }


def _prices_of(warm_start: Any, problem: Problem) -> list[float] | None:
    if warm_start is None:
        return None
    if isinstance(warm_start, Solution):
        p = warm_start.prices
    elif isinstance(warm_start, (Mapping, pd.Series)):
        p = pd.Series(warm_start)
    else:
        a = cv.as_array(warm_start, "warm_start", np.float64, shape=(len(problem.resources),))
        return [float(x) for x in a]
    p = pd.Series(p).reindex(problem.resources).fillna(0.0)
    return [float(x) for x in p.to_numpy(dtype=np.float64)]


def solve(
    problem: Problem,
    method: str = "auto",
    tol: float = 1e-4,
    time_limit: float | None = None,
    warm_start: Solution | Mapping[str, float] | Any = None,
    progress: bool | None = None,
    *,
    max_iter: int = 500,
    seed: int = 0,
) -> Solution:
    """Solves ``problem``; see the module docs for the methods. ``warm_start``: a previous
    :class:`Solution` (or prices by resource) to start the dual method from."""
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: must be an allocate.Problem, got {type(problem).__name__}")
    cv.check_choice(method, "method", METHODS)
    tol = cv.check_number(tol, "tol", minimum=0, strict_min=True)
    if time_limit is not None:
        time_limit = cv.check_number(time_limit, "time_limit", minimum=0)
    max_iter = cv.check_int(max_iter, "max_iter", minimum=1)
    seed = cv.check_int(seed, "seed", minimum=0)
    if method == "auto":
        method = "exact" if problem.n_candidates <= 200 else "dual"
    t0 = time.perf_counter()
    if method == "highs":
        out = _solve_highs(problem, integer=True, time_limit=time_limit)
    else:
        with _progress.bar(progress, f"allocate ({method})") as cb:
            out = problem._run(
                method,
                tol=tol,
                max_iter=max_iter,
                time_limit=time_limit,
                warm_start=_prices_of(warm_start, problem),
                seed=seed,
                progress=cb,
            )
    return _solution(problem, out, method, time.perf_counter() - t0)


def _solution(problem: Problem, out: dict, method: str, seconds: float) -> Solution:
    chosen = np.asarray(out["chosen"], dtype=np.int64)
    if "chosen_user" in out:
        users_idx = np.asarray(out["chosen_user"], dtype=np.int64)
    else:
        users_idx = np.searchsorted(problem.indptr, chosen, side="right") - 1
    cols: dict[str, Any] = {
        problem.user_col: np.asarray(problem.users)[users_idx],
        problem.action_col: np.asarray(problem.actions)[problem.action[chosen]],
        "value": problem.value[chosen].astype(np.float64),
    }
    for a, r in zip(problem.usage, problem.usage_resource, strict=True):
        name = problem.resources[r]
        prev = cols.get(name)
        col = a[chosen].astype(np.float64)
        cols[name] = col if prev is None else prev + col
    assignment = pd.DataFrame(cols, copy=False)
    return Solution(
        assignment=assignment,
        **certificate(out, problem.resources, problem.lower, problem.upper),
        method=method,
        seconds=seconds,
        chosen=chosen,
    )


def certificate(out: dict, resources: list[str], lower: Any, upper: Any) -> dict[str, Any]:
    """The dual solver's certificate as :class:`Solution` fields (``objective``, ``dual_bound``,
    ``gap``, ``lp_value``, ``lp_gap``, ``usage``, ``prices``, ``status``, ``message``,
    ``history``, ``passes``) from the core's output dict; shared with the touchpoint planner."""
    prices = pd.Series(np.asarray(out["prices"], dtype=np.float64), index=resources, name="price")
    usage = pd.DataFrame(
        {
            "resource": resources,
            "used": np.asarray(out["usage"], dtype=np.float64),
            "lower": np.maximum(np.asarray(lower, dtype=np.float64), 0.0),
            "upper": np.asarray(upper, dtype=np.float64),
            "price": prices.to_numpy(),
        }
    )
    usage["share_of_upper"] = usage["used"] / usage["upper"].replace(0, np.nan)
    obj, bound, lp = float(out["objective"]), float(out["dual_bound"]), float(out["lp_value"])
    scale = max(abs(bound), 1e-12) if np.isfinite(bound) else 1.0
    hist = pd.DataFrame({k: np.asarray(v) for k, v in out["history"].items()})
    if len(hist):
        hist["phase"] = hist["phase"].map({0: "sample", 1: "full", 2: "exact", 3: "newton"})
    return {
        "objective": obj,
        "dual_bound": bound,
        "gap": (bound - obj) / scale,
        "lp_value": lp,
        "lp_gap": (bound - lp) / scale if np.isfinite(lp) else float("inf"),
        "usage": usage,
        "prices": prices,
        "status": str(out["status"]),
        "message": str(out["message"]),
        "history": hist,
        "passes": int(out["passes"]),
    }


# ----- HiGHS (optional: the independent oracle) --------------------------------------------------


def _objective_scale(value: np.ndarray) -> float:
    """The power of two that brings the largest |value| to [1, 2) (exact): HiGHS sees values of
    order 1 whatever the units (it treats costs of 1e20 or more as infinite)."""
    most = float(np.max(np.abs(value))) if value.size else 0.0
    return float(2.0 ** -np.floor(np.log2(most))) if most > 0 else 1.0


def _highs_model(problem: Problem, integer: bool):
    """The model as a HiGHS LP/MIP (columns = candidates), its objective scaled by
    ``_objective_scale`` (returned last: divide HiGHS's objective, bound and duals by it)."""
    try:
        import highspy
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("method='highs' needs highspy: pip install highspy") from None
    import scipy.sparse as sp

    nnz, n, r_n = problem.n_candidates, problem.n_users, len(problem.resources)
    k = np.arange(nnz)
    rows, cols, vals = [], [], []
    # Resource rows.
    u = problem.action_usage[problem.action.astype(np.int64)]  # nnz x R
    u = np.array(u, dtype=np.float64)
    for a, r in zip(problem.usage, problem.usage_resource, strict=True):
        u[:, r] += a
    for r in range(r_n):
        nzk = np.flatnonzero(u[:, r])
        rows.append(np.full(len(nzk), r))
        cols.append(nzk)
        vals.append(u[nzk, r])
    row_lo = list(np.where(problem.lower > 0, problem.lower, -np.inf))
    row_hi = list(problem.upper)
    # Per-user limits.
    user = np.repeat(np.arange(n), np.diff(problem.indptr))
    lim = problem.per_user_limit
    lim_arr = np.full(n, lim) if isinstance(lim, (int, np.integer)) else np.asarray(lim)
    rows.append(r_n + user)
    cols.append(k)
    vals.append(np.ones(nnz))
    row_lo += [-np.inf] * n
    row_hi += list(lim_arr.astype(np.float64))
    n_rows = r_n + n
    if problem.groups.size and (problem.groups >= 0).any():
        g = problem.groups[problem.action.astype(np.int64)]
        m = g >= 0
        key = pd.factorize(pd.MultiIndex.from_arrays([user[m], g[m]]))[0]
        rows.append(n_rows + key)
        cols.append(k[m])
        vals.append(np.ones(int(m.sum())))
        n_g = int(key.max()) + 1 if key.size else 0
        row_lo += [-np.inf] * n_g
        row_hi += [1.0] * n_g
        n_rows += n_g
    A = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, nnz),
    )
    A.sort_indices()
    lp = highspy.HighsLp()
    lp.num_col_ = nnz
    lp.num_row_ = n_rows
    lp.sense_ = highspy.ObjSense.kMaximize
    scale = _objective_scale(problem.value)
    lp.col_cost_ = problem.value.astype(np.float64) * scale
    lp.col_lower_ = np.zeros(nnz)
    lp.col_upper_ = np.ones(nnz)
    lp.row_lower_ = np.asarray(row_lo, dtype=np.float64)
    lp.row_upper_ = np.asarray(row_hi, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data
    lp.a_matrix_.num_col_ = nnz
    lp.a_matrix_.num_row_ = n_rows
    if integer:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * nnz
    return highspy, lp, r_n, scale


def _run_highs(h: Any) -> None:
    """Runs HiGHS on a worker thread (highspy's ``startSolve``), polling for Ctrl-C every 0.1 s:
    on ``KeyboardInterrupt`` HiGHS is told to stop through its interrupt callbacks
    (``HandleUserInterrupt``/``cancelSolve``), the thread is joined, and the interrupt re-raised."""
    h.HandleUserInterrupt = True
    h.startSolve()
    try:
        while not h.wait(0.1)[0]:
            pass
    except KeyboardInterrupt:
        h.cancelSolve()
        while not h.wait(0.1)[0]:
            pass
        raise


def highs_lp(
    problem: Problem,
    solver: str = "ipm",
    crossover: bool = False,
    time_limit: float | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The LP relaxation solved by HiGHS (``solver="ipm"``: interior point; crossover off by
    default). Returns objective, status, seconds (solve only) and the resource duals. Stops on
    Ctrl-C (``KeyboardInterrupt``) and at ``time_limit``."""
    highspy, lp, r_n, scale = _highs_model(problem, integer=False)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("solver", solver)
    if solver == "ipm":
        h.setOptionValue("run_crossover", "on" if crossover else "off")
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    if threads is not None:
        h.setOptionValue("threads", int(threads))
    h.passModel(lp)
    t0 = time.perf_counter()
    _run_highs(h)
    secs = time.perf_counter() - t0
    info = h.getInfo()
    sol = h.getSolution()
    return {
        "objective": float(info.objective_function_value) / scale,
        "status": h.modelStatusToString(h.getModelStatus()),
        "seconds": secs,
        "prices": np.asarray(sol.row_dual[:r_n]) / scale,
        "x": np.asarray(sol.col_value),
    }


def _solve_highs(problem: Problem, integer: bool, time_limit: float | None) -> dict:
    """The MIP through HiGHS. Claims only what HiGHS proved: ``optimal`` when HiGHS says so; at
    the time limit its best plan (or the empty plan, if that meets every bound) with HiGHS's dual
    bound, or an infinite bound (gap ``inf``) when it has none. The shadow-price LP runs in the
    time left. Ctrl-C stops either solve (``KeyboardInterrupt``)."""
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + time_limit
    highspy, lp, r_n, scale = _highs_model(problem, integer=integer)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 1e-6)
    # HiGHS 1.16's feasibility-jump heuristic checks neither the time limit nor the interrupt
    # callbacks (a 400,000-column instance ran for minutes past a 5 s limit and past Ctrl-C);
    # without it the search proves the same optimum.
    h.setOptionValue("mip_heuristic_run_feasibility_jump", False)
    if time_limit is not None:
        h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 0.0))
    h.passModel(lp)
    _run_highs(h)
    model_status = h.getModelStatus()
    status = h.modelStatusToString(model_status)
    if "nfeasible" in status:
        raise InfeasibleError(
            f"HiGHS: no plan meets the bounds of the resources {problem.resources} together "
            "with the per-user and group limits"
        )
    info = h.getInfo()
    optimal = model_status == highspy.HighsModelStatus.kOptimal
    x = np.asarray(h.getSolution().col_value)
    has_plan = int(info.primal_solution_status) == 2 and x.size == problem.n_candidates
    chosen = np.flatnonzero(x > 0.5) if has_plan else np.zeros(0, dtype=np.int64)
    u = problem.action_usage[problem.action[chosen].astype(np.int64)].sum(axis=0)
    u = np.array(u, dtype=np.float64).reshape(-1)
    if u.size != r_n:
        u = np.zeros(r_n)
    for a, r in zip(problem.usage, problem.usage_resource, strict=True):
        u[r] += a[chosen].astype(np.float64).sum()
    if not has_plan and (problem.lower > 0).any():
        raise ValueError(
            f"time_limit: HiGHS found no plan meeting the lower bounds within {time_limit} s "
            f"(HiGHS status: {status}); give more time or use method='dual'"
        )
    obj = float(problem.value[chosen].astype(np.float64).sum())
    # HiGHS's proof (its dual bound, scaled back), else the plan itself when HiGHS proved it
    # optimal, else no bound at all.
    raw = float(getattr(info, "mip_dual_bound", np.inf))
    bound = raw / scale if np.isfinite(raw) else (obj if optimal else np.inf)
    left = None if deadline is None else deadline - time.perf_counter()
    lp_res = None
    if problem.n_candidates <= 200_000 and (left is None or left > 0):
        lp_res = highs_lp(problem, solver="simplex", time_limit=left)
        if lp_res["status"] != "Optimal":
            lp_res = None
    if optimal:
        state = "optimal"
    elif "Time limit" in status:
        state = "time_limit"
    else:
        state = "feasible"
    return {
        "chosen": chosen,
        "objective": obj,
        "dual_bound": bound,
        "lp_value": obj,
        "usage": u,
        "prices": lp_res["prices"] if lp_res else np.full(r_n, np.nan),
        "status": state,
        "message": "" if optimal else f"HiGHS: {status}",
        "passes": 0,
        "history": {
            "phase": np.array([2]),
            "iteration": np.array([0]),
            "dual": np.array([bound]),
            "bound": np.array([bound]),
            "lp_value": np.array([lp_res["objective"] if lp_res else np.nan]),
            "value": np.array([obj]),
            "max_violation": np.array([0.0]),
            "seconds": np.array([time.perf_counter() - t0]),
        },
    }


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
        min(cv.check_int(per_user_limit, "per_user_limit", minimum=0), _NO_LIMIT),
        float(tightness[0]),
        float(tightness[1]),
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


from ._stage import run_stage  # noqa: E402  (the stage uses solve)
