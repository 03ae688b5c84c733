"""Uplift evaluation metrics: the Qini and uplift curves, their normalised areas and uplift at k.

The definitions, signatures and return types are those of ``sklift.metrics`` in scikit-uplift
0.5.1 (``sklift/metrics/metrics.py``), checked against it to 1e-9 by
``tests/test_planning_metrics.py``; the computation is different: one sort of the scores and
cumulative sums (scikit-uplift sorts twice, once more for the perfect curve, which here comes
from four counts), O(n log n) time and O(n) memory. With binary outcomes that one sort is a
radix sort in the core (O(n): ``planning::rank``) carrying each row's (treatment, outcome)
category, counted per tie group. Uplift at k needs no sort: a partition finds the k-th score
(O(n)).

Ranking and ties
    Rows are ranked by predicted uplift, highest first. Rows that share a score enter the curve
    together: a curve has one point per *distinct* score (after the rows holding it), plus the
    origin ``(0, 0)``, exactly like scikit-learn's ``_binary_clf_curve``. The order of the rows
    inside a tie therefore never matters for the curves.

Qini curve (Radcliffe 2007, "Using control groups to target on predicted lift: building and
assessing uplift models", Direct Marketing Analytics Journal 3:14-21)
    After the top ``n`` rows, with ``N_T(n), N_C(n)`` treated and control rows among them and
    ``Y_T(n), Y_C(n)`` their summed outcomes::

        Q(n) = Y_T(n) - Y_C(n) * N_T(n) / N_C(n)        (the ratio is 0 while N_C(n) = 0)

    the incremental responses among the treated of the top ``n``, the control response scaled
    to the number treated.

Uplift curve (Devriendt, Guns & Verbeke 2020, "Learning to rank for uplift modeling")
    ``U(n) = (Y_T(n) / N_T(n) - Y_C(n) / N_C(n)) * n`` (each rate is 0 while its group is
    empty): the difference of response rates, scaled to the ``n`` rows targeted.

Perfect curves (binary outcomes)
    The curve of an oracle score. Qini, ``negative_effect=True``: the score ``y*t - y*(1-t)``,
    i.e. treated responders first, then all non-responders, then control responders.
    Qini, ``negative_effect=False``: the three points ``(0, 0), (r, r), (N, r)`` with
    ``r = Y_T - N_T * Y_C / N_C`` over all rows (note: ``r`` is used as an x coordinate too, as
    scikit-uplift does). Uplift curve: the score ``2*(y == t) + s`` with ``s = y`` if the
    control responders outnumber the treated non-responders and ``s = t`` otherwise, i.e.
    treated responders, control non-responders, then the two "negative" groups.

Scores
    ``qini_auc_score`` and ``uplift_auc_score`` are ``(A_model - A_random) / (A_perfect -
    A_random)`` where ``A`` is the trapezoidal area under a curve and the random curve is the
    straight line from the origin to the perfect curve's last point. A perfect model scores 1,
    a random one about 0. When the perfect curve is that straight line (e.g. a single treated
    row, a responder, and no control responder) the score is undefined.

Uplift at k
    ``strategy="overall"``: the treated minus the control response rate among the first ``k``
    rows of the ranking (``k`` rows if an int, ``int(N * k)`` if a float). ``"by_group"``: the
    same with the first ``k`` treated rows and the first ``k`` control rows ranked separately
    (``int(N_T * k)`` and ``int(N_C * k)`` for a float). Inside a tie at the cut, rows later in
    the input come first (scikit-uplift's reversed stable argsort); this is the one metric where
    the order inside a tie matters.

Multiple treatments
    ``*_per_treatment`` take ``uplift`` of shape ``(n, T)`` and ``treatment`` coded 0 (control)
    or ``1..T``; for each treatment ``t`` they evaluate column ``t - 1`` on the rows with
    treatment 0 or ``t`` (treated = ``treatment == t``) and return an array of ``T`` values.

Differences from scikit-uplift 0.5.1
    * ``qini_curve``, ``uplift_curve`` and ``uplift_at_k`` accept real-valued outcomes (scikit-
      uplift requires binary ones but its formulas are sums and means; the perfect curves and the
      two scores keep the binary requirement, with both outcomes present).
    * Where scikit-uplift returns ``nan`` (uplift at k with no treated or no control row in the
      top k) or fails with ``ZeroDivisionError`` (a perfect curve with zero area), these
      functions raise ``ValueError`` naming the argument. ``negative_effect=False`` with a
      negative overall effect raises ``ValueError`` in both (scikit-learn's ``auc`` rejects the
      non-monotonic x of that perfect curve).
    * ``k`` may be any integer type (scikit-uplift rejects unsigned numpy ints) and
      ``negative_effect`` a numpy bool.
    * Scores are converted once to float64: integer scores beyond 2**53 that differ may then tie
      (scikit-uplift sorts them as integers).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import _convert as cv
from .. import _core

__all__ = [
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "qini_auc_score",
    "qini_auc_score_per_treatment",
    "qini_curve",
    "uplift_at_k",
    "uplift_at_k_per_treatment",
    "uplift_auc_score",
    "uplift_auc_score_per_treatment",
    "uplift_curve",
]

STRATEGIES = ("overall", "by_group")


# --------------------------------------------------------------------------------------------
# validation


def _first_bad(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


def _treated(t: np.ndarray) -> np.ndarray:
    """float treatment -> bool "treated", with both groups present."""
    treated = t == 1
    n_t = int(np.count_nonzero(treated))
    n_c = int(np.count_nonzero(t == 0))
    if n_t + n_c != t.size:
        i = _first_bad((t != 0) & (t != 1))
        raise ValueError(
            f"treatment: must hold only 0 (control) and 1 (treated), found {t[i]:g} at position {i}"
        )
    if n_t == 0:
        raise ValueError("treatment: has no treated rows (treatment == 1)")
    if n_c == 0:
        raise ValueError("treatment: has no control rows (treatment == 0)")
    return treated


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.count_nonzero(y == 0) + np.count_nonzero(y == 1) == y.size)


def _check_binary_y(y: np.ndarray, fn: str, where: str = "") -> None:
    """Binary outcomes with both values present (scikit-uplift's ``check_is_binary``)."""
    ones = int(np.count_nonzero(y == 1))
    zeros = int(np.count_nonzero(y == 0))
    if ones + zeros != y.size:
        i = _first_bad((y != 0) & (y != 1))
        raise ValueError(
            f"y_true: {fn} needs binary outcomes (0 or 1), found {y[i]:g} at position {i} "
            "(the perfect curve is defined for binary outcomes only)"
        )
    if ones == 0 or zeros == 0:
        raise ValueError(
            f"y_true: {fn} needs both outcomes 0 and 1, found only {1 if ones else 0}s{where} "
            "(the perfect curve is then undefined)"
        )


def _inputs(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, ...]:
    y = cv.as_array(y_true, "y_true", np.float64)
    u = cv.as_array(uplift, "uplift", np.float64)
    t = cv.as_array(treatment, "treatment", np.float64)
    cv.check_same_length({"y_true": y, "uplift": u, "treatment": t})
    return y, u, _treated(t)


def _check_negative_effect(negative_effect: Any) -> bool:
    if not isinstance(negative_effect, (bool, np.bool_)):
        raise TypeError(f"negative_effect: must be a bool, got {type(negative_effect).__name__}")
    return bool(negative_effect)


def _check_k(k: Any) -> bool:
    """Type of ``k``: True for a float (a fraction of rows), False for an int (a number)."""
    if isinstance(k, (bool, np.bool_)):
        raise TypeError("k: must be an int (a number of rows) or a float in (0, 1), got bool")
    if isinstance(k, numbers.Integral):
        return False
    if isinstance(k, numbers.Real):
        if not np.isfinite(float(k)):
            raise ValueError(f"k: must be finite, got {k}")
        return True
    raise TypeError(
        f"k: must be an int (a number of rows) or a float in (0, 1), got {type(k).__name__}"
    )


# --------------------------------------------------------------------------------------------
# curves from cumulative sums


def _ends(us: np.ndarray) -> np.ndarray:
    """Last position of every run of equal values in sorted ``us`` (one point per distinct score)."""
    change = np.empty(us.size, dtype=bool)
    np.not_equal(us[1:], us[:-1], out=change[:-1])
    change[-1] = True
    return np.flatnonzero(change)


def _cum_at(values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """float64 cumulative sum of ``values`` at ``ends``: counts (bool) are summed as integers,
    exactly; real values in float64, in rank order."""
    if values.dtype == bool:
        c = np.cumsum(values, dtype=np.int32 if values.size < 2**31 else np.int64)
    else:
        c = np.cumsum(values, dtype=np.float64)
    c = c if ends.size == c.size else c[ends]
    return c.astype(np.float64, copy=False)


def _code(y: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Binary outcomes: category per row, 2 * treated + outcome (0 CN, 1 CR, 2 TN, 3 TR)."""
    return treated.view(np.uint8) * np.uint8(2) + (y == 1).view(np.uint8)


def _cumulative(
    y: np.ndarray, u: np.ndarray, treated: np.ndarray, code: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows ranked by ``u`` descending (one sort); at the end of each tie group: rows so far
    (int64), treated rows, treated outcome and control outcome so far (float64).

    The order inside a tie group never matters (only whole groups are summed), so the sort need
    not be stable. Binary outcomes: the core's radix sort and integer counts.
    Otherwise: one argsort and float sums. ``code``: :func:`_code` when already known.
    """
    if code is None and _is_binary(y):
        code = _code(y, treated)
    if code is not None:
        rows, n_t, y_t, y_c = _core.planning_ranked_counts(
            np.ascontiguousarray(u, dtype=np.float64), np.ascontiguousarray(code, dtype=np.uint8)
        )
        f = np.float64
        return rows, n_t.astype(f), y_t.astype(f), y_c.astype(f)
    else:
        order = np.argsort(u)[::-1]
        ends = _ends(u[order])
        ts = treated[order]
        ys = y[order]
        n_t = _cum_at(ts, ends)
        y_t = _cum_at(np.where(ts, ys, 0.0), ends)
        y_c = _cum_at(np.where(ts, 0.0, ys), ends)
    return ends + 1, n_t, y_t, y_c


def _grouped(groups: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, ...]:
    """Cumulative sums over score groups given highest score first as (rows, treated, treated
    outcome, control outcome); empty groups have no point, as with ``_cumulative``."""
    g = np.array([grp for grp in groups if grp[0] > 0], dtype=np.int64).reshape(-1, 4)
    c = np.cumsum(g, axis=0)
    f = c[:, 1:].astype(np.float64)
    return c[:, 0], f[:, 0], f[:, 1], f[:, 2]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, 0 where ``den == 0``; ``den`` is a non-decreasing count along the curve, so
    its zeros are a prefix (same values as ``np.divide(..., where=den != 0)``, without a mask)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    r[: int(np.searchsorted(den, 0.0, side="right"))] = 0.0
    return r


def _qini_values(n_all: np.ndarray, n_t: np.ndarray, y_t: np.ndarray, y_c: np.ndarray):
    return y_t - y_c * _ratio(n_t, n_all - n_t)


def _uplift_values(n_all: np.ndarray, n_t: np.ndarray, y_t: np.ndarray, y_c: np.ndarray):
    return (_ratio(y_t, n_t) - _ratio(y_c, n_all - n_t)) * n_all


def _with_origin(n_all: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # every point has n_all >= 1, so the origin is always added (as scikit-uplift does then)
    x = np.empty(n_all.size + 1, dtype=np.int64)
    x[0] = 0
    x[1:] = n_all
    v = np.empty(values.size + 1, dtype=np.float64)
    v[0] = 0.0
    v[1:] = values
    return x, v


def _counts(code: np.ndarray) -> tuple[int, int, int, int]:
    """(treated responders, treated non-responders, control responders, control non-resp.)"""
    cn, cr, tn, tr = (int(c) for c in np.bincount(code, minlength=4))
    return tr, tn, cr, cn


def _perfect_qini(code: np.ndarray, negative_effect: bool):
    tr, tn, cr, cn = _counts(code)
    if negative_effect:
        # score y*t - y*(1-t): treated responders (1), non-responders (0), control responders (-1)
        n_all, n_t, y_t, y_c = _grouped([(tr, tr, tr, 0), (tn + cn, tn, 0, 0), (cr, 0, 0, cr)])
        return _with_origin(n_all, _qini_values(n_all, n_t, y_t, y_c))
    n_t, n_c = tr + tn, cr + cn
    r = tr - n_t * cr / n_c
    return (
        np.array([0, r, code.size], dtype=np.float64),
        np.array([0, r, r], dtype=np.float64),
    )


def _perfect_uplift(code: np.ndarray):
    tr, tn, cr, cn = _counts(code)
    # score 2*(y == t) + (y if cr > tn else t): TR 3, CN 2, then CR/TN or TN/CR
    g_cr, g_tn = (cr, 0, 0, cr), (tn, tn, 0, 0)
    lower = [g_cr, g_tn] if cr > tn else [g_tn, g_cr]
    n_all, n_t, y_t, y_c = _grouped([(tr, tr, tr, 0), (cn, 0, 0, 0), *lower])
    return _with_origin(n_all, _uplift_values(n_all, n_t, y_t, y_c))


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's ``auc`` for an increasing ``x`` (numpy's trapezoidal rule)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _normalised(actual: float, perfect: float, x_end: float, v_end: float, what: str) -> float:
    """(actual - random) / (perfect - random); the random curve is the line to the perfect
    curve's last point ``(x_end, v_end)``."""
    baseline = x_end * v_end / 2.0
    perfect -= baseline
    if perfect == 0:
        raise ValueError(
            f"y_true: with this treatment the perfect {what} curve has zero area above the "
            "random one, so the normalised area is undefined (scikit-uplift divides by zero)"
        )
    return (actual - baseline) / perfect


def _qini_auc(y, u, treated, negative_effect: bool) -> float:
    code = _code(y, treated)
    xp, vp = _perfect_qini(code, negative_effect)
    if not negative_effect and vp[-1] <= 0:
        raise ValueError(
            "negative_effect: with negative_effect=False the perfect Qini curve needs a "
            f"positive overall incremental response, got {vp[-1]:g} (scikit-uplift fails too)"
        )
    actual = _core.planning_ranked_area(np.ascontiguousarray(u, dtype=np.float64), code, "qini")
    return _normalised(actual, _trapezoid(xp, vp), float(xp[-1]), float(vp[-1]), "Qini")


def _uplift_auc(y, u, treated) -> float:
    code = _code(y, treated)
    actual = _core.planning_ranked_area(np.ascontiguousarray(u, dtype=np.float64), code, "uplift")
    xp, vp = _perfect_uplift(code)
    return _normalised(actual, _trapezoid(xp, vp), float(xp[-1]), float(vp[-1]), "uplift")


# --------------------------------------------------------------------------------------------
# public: binary treatment


def qini_curve(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Points of the Qini curve: ``(x, q)`` with ``x`` the number of rows targeted (int64,
    starting at 0, one point per distinct score) and ``q`` the Qini value there (float64).

    ``y_true``: outcomes (real-valued; scikit-uplift requires 0/1); ``uplift``: predicted
    uplift; ``treatment``: 0 (control) or 1 (treated), both present. See the module docstring.
    """
    y, u, treated = _inputs(y_true, uplift, treatment)
    n_all, n_t, y_t, y_c = _cumulative(y, u, treated)
    return _with_origin(n_all, _qini_values(n_all, n_t, y_t, y_c))


def uplift_curve(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Points of the uplift curve: ``(x, v)`` with ``x`` the number of rows targeted (int64,
    starting at 0, one point per distinct score) and ``v = (rate_T - rate_C) * x`` (float64).

    Arguments as for :func:`qini_curve`.
    """
    y, u, treated = _inputs(y_true, uplift, treatment)
    n_all, n_t, y_t, y_c = _cumulative(y, u, treated)
    return _with_origin(n_all, _uplift_values(n_all, n_t, y_t, y_c))


def perfect_qini_curve(
    y_true: ArrayLike, treatment: ArrayLike, negative_effect: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Points of the perfect (oracle) Qini curve for binary ``y_true``.

    ``negative_effect=True``: the Qini curve of the score ``y*t - y*(1-t)`` (int64 x).
    ``negative_effect=False``: the three points ``(0, 0), (r, r), (N, r)`` with ``r`` the
    overall incremental response (float64 x), as scikit-uplift.
    """
    y = cv.as_array(y_true, "y_true", np.float64)
    t = cv.as_array(treatment, "treatment", np.float64)
    cv.check_same_length({"y_true": y, "treatment": t})
    treated = _treated(t)
    _check_binary_y(y, "perfect_qini_curve")
    return _perfect_qini(_code(y, treated), _check_negative_effect(negative_effect))


def perfect_uplift_curve(y_true: ArrayLike, treatment: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Points of the perfect (oracle) uplift curve for binary ``y_true``: the uplift curve of the
    score ``2*(y == t) + (y if control responders > treated non-responders else t)``."""
    y = cv.as_array(y_true, "y_true", np.float64)
    t = cv.as_array(treatment, "treatment", np.float64)
    cv.check_same_length({"y_true": y, "treatment": t})
    treated = _treated(t)
    _check_binary_y(y, "perfect_uplift_curve")
    return _perfect_uplift(_code(y, treated))


def qini_auc_score(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, negative_effect: bool = True
) -> float:
    """Normalised area under the Qini curve (the Qini coefficient of scikit-uplift): the area
    between the model's curve and the random line over that of the perfect curve
    (:func:`perfect_qini_curve` with ``negative_effect``). Binary ``y_true``; a float.
    """
    y, u, treated = _inputs(y_true, uplift, treatment)
    _check_binary_y(y, "qini_auc_score")
    return _qini_auc(y, u, treated, _check_negative_effect(negative_effect))


def uplift_auc_score(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> float:
    """Normalised area under the uplift curve: the area between the model's curve and the
    random line over that of :func:`perfect_uplift_curve`. Binary ``y_true``; a float."""
    y, u, treated = _inputs(y_true, uplift, treatment)
    _check_binary_y(y, "uplift_auc_score")
    return _uplift_auc(y, u, treated)


def _top(u: np.ndarray, m: int) -> np.ndarray:
    """Mask of the first ``m`` rows of ``argsort(u, kind="stable")[::-1]`` in O(n) (a partition,
    no sort): every row above the m-th largest value, then the latest rows holding that value."""
    n = u.size
    if m >= n:
        return np.ones(n, dtype=bool)
    v = np.partition(u, n - m)[n - m]
    mask = u > v
    short = m - int(np.count_nonzero(mask))
    eq = np.flatnonzero(u == v)
    mask[eq[eq.size - short :]] = True
    return mask


def _uplift_at_k(y, u, treated, strategy: str, k: Any, where: str = "") -> np.float64:
    n = y.size
    is_float = _check_k(k)
    if is_float and not 0 < k < 1:
        raise ValueError(f"k: must be in (0, 1) when a float (a fraction of rows), got {k}")
    if not is_float and not 0 < k < n:
        raise ValueError(
            f"k: must be > 0 and < the number of rows ({n}{where}) when an int, got {k}"
        )
    n_trt = int(np.count_nonzero(treated))
    n_ctl = n - n_trt
    if strategy == "overall":
        size = int(n * k) if is_float else int(k)
        if size == 0:
            raise ValueError(f"k: int({n} * {k}) selects no rows{where}")
        top = _top(u, size)
        top_t = top & treated
        top_c = top & ~treated
        for mask, group in ((top_t, "treated"), (top_c, "control")):
            if not mask.any():
                raise ValueError(
                    f"k: the first {size} rows by uplift{where} hold no {group} rows, so the "
                    "uplift at k is undefined (scikit-uplift returns nan)"
                )
        return np.float64(y[top_t].mean() - y[top_c].mean())
    if is_float:
        size_c = int(np.int64(n_ctl) * k)
        size_t = int(np.int64(n_trt) * k)
    else:
        size_c = size_t = int(k)
    for size, total, group in ((size_c, n_ctl, "control"), (size_t, n_trt, "treated")):
        if size > total:
            raise ValueError(
                f"k: {k} is more than the {total} {group} rows{where} (strategy='by_group')"
            )
        if size == 0:
            raise ValueError(
                f"k: int({total} * {k}) selects no {group} rows{where} (strategy='by_group'), "
                "so the uplift at k is undefined (scikit-uplift returns nan)"
            )
    u_c, y_c = u[~treated], y[~treated]
    u_t, y_t = u[treated], y[treated]
    score_c = y_c[_top(u_c, size_c)].mean()
    score_t = y_t[_top(u_t, size_t)].mean()
    return np.float64(score_t - score_c)


def uplift_at_k(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, strategy: str, k: float = 0.3
) -> np.float64:
    """Treated minus control response rate among the top ``k`` rows by predicted uplift.

    ``k``: a float in (0, 1) (a fraction of the rows) or an int in [1, n) (a number of rows).
    ``strategy``: ``"overall"`` (the first ``k`` rows of the whole ranking) or ``"by_group"``
    (the first ``k`` rows of each group, ranked separately; a float ``k`` is then a fraction of
    each group). Ties at the cut: later rows first, as scikit-uplift. Returns ``numpy.float64``.
    Raises ``ValueError`` where scikit-uplift would return ``nan`` (an empty group in the top k).
    """
    y, u, treated = _inputs(y_true, uplift, treatment)
    cv.check_choice(strategy, "strategy", STRATEGIES)
    return _uplift_at_k(y, u, treated, strategy, k)


# --------------------------------------------------------------------------------------------
# public: several treatments


def _multi_inputs(y_true: Any, uplift: Any, treatment: Any):
    y = cv.as_array(y_true, "y_true", np.float64)
    u = cv.as_array(uplift, "uplift", np.float64, ndim=2)
    t = cv.as_array(treatment, "treatment", np.int64)
    cv.check_same_length({"y_true": y, "uplift": u, "treatment": t})
    n_treat = u.shape[1]
    if n_treat == 0:
        raise ValueError("uplift: has no columns, expected one per treatment")
    bad = (t < 0) | (t > n_treat)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(
            f"treatment: must hold 0 (control) or 1..{n_treat} (one per column of uplift), "
            f"found {t[i]} at position {i}"
        )
    counts = np.bincount(t, minlength=n_treat + 1)
    if counts[0] == 0:
        raise ValueError("treatment: has no control rows (treatment == 0)")
    missing = np.flatnonzero(counts[1:] == 0)
    if missing.size:
        raise ValueError(
            f"treatment: has no rows with treatment {int(missing[0]) + 1} "
            f"(uplift has {n_treat} columns, one per treatment 1..{n_treat})"
        )
    return y, u, t, n_treat


def _per_treatment(y_true, uplift, treatment, fn, binary_y: str | None) -> np.ndarray:
    y, u, t, n_treat = _multi_inputs(y_true, uplift, treatment)
    if binary_y:
        _check_binary_y(y, binary_y)
    out = np.empty(n_treat, dtype=np.float64)
    for j in range(n_treat):
        rows = (t == 0) | (t == j + 1)
        ys = y[rows]
        where = f" among the rows with treatment 0 or {j + 1}"
        if binary_y:
            _check_binary_y(ys, binary_y, where)
        out[j] = fn(ys, u[rows, j], t[rows] == j + 1, where)
    return out


def qini_auc_score_per_treatment(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, negative_effect: bool = True
) -> np.ndarray:
    """:func:`qini_auc_score` of each treatment against control: ``uplift`` of shape (n, T),
    ``treatment`` in 0..T; value ``t - 1`` scores column ``t - 1`` on the rows with treatment
    0 or ``t``. Returns a float64 array of length T."""
    neg = _check_negative_effect(negative_effect)
    return _per_treatment(
        y_true,
        uplift,
        treatment,
        lambda y, u, tr, _w: _qini_auc(y, u, tr, neg),
        "qini_auc_score_per_treatment",
    )


def uplift_auc_score_per_treatment(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike
) -> np.ndarray:
    """:func:`uplift_auc_score` of each treatment against control (as
    :func:`qini_auc_score_per_treatment`). Returns a float64 array of length T."""
    return _per_treatment(
        y_true,
        uplift,
        treatment,
        lambda y, u, tr, _w: _uplift_auc(y, u, tr),
        "uplift_auc_score_per_treatment",
    )


def uplift_at_k_per_treatment(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, strategy: str, k: float = 0.3
) -> np.ndarray:
    """:func:`uplift_at_k` of each treatment against control (as
    :func:`qini_auc_score_per_treatment`; an int ``k`` counts rows of each subset). Returns a
    float64 array of length T."""
    cv.check_choice(strategy, "strategy", STRATEGIES)
    _check_k(k)
    return _per_treatment(
        y_true,
        uplift,
        treatment,
        lambda y, u, tr, w: _uplift_at_k(y, u, tr, strategy, k, w),
        None,
    )
