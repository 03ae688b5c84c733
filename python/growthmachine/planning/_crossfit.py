"""Out-of-fold uplift estimates for every (user, task) pair: the planner's estimation step.

An uplift model can see the plan's tasks in two ways (``Planner(pool_tasks=...)``):

- **by task** (multi-treatment): arm ``t`` of the model is task ``t - 1``; each task's effect is
  learned from the rows that received that task (and the controls);
- **pooled over tasks**: every log row becomes one (user, task) pair: a treated row at the task
  it received, a control row at its *pseudo-task* (a task drawn for it from the log's assignment
  shares among the tasks it was eligible for, the draw the calibration makes too). A pair is
  described by the user's features and the task's own (:func:`task_features`: its benefit,
  channel, content and audience as indicators, face value, costs), and the model sees one
  treatment: treated or not. By randomisation the treated and control pairs with the same
  description are alike, so the model's effect for a description is the task's effect for such
  a user (the S-learner of Kunzel et al. 2019, "Metalearners for estimating heterogeneous
  treatment effects using machine learning", PNAS, with the treatment described by features
  instead of one arm per task). Tasks that share a benefit, a channel or a content share their
  rows wherever the data do not tell them apart, so a catalogue of 120 tasks is not 120 small
  experiments.

Either way each user's estimates come from models that never saw that user (``n_folds``
folds of users); the calibration maps each log row's out-of-fold score at its (pseudo-)task to
realised effects. :func:`order_value` is the value of one order that turns an uplift in
orders into a GMV score (``Planner(gmv_from="orders")``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from ._calibrate import ridge_fit
from .uplift.meta import clone_estimator as _clone

__all__ = [
    "TASK_COLUMNS",
    "check_center",
    "check_pool_tasks",
    "crossfit",
    "order_value",
    "pseudo_tasks",
    "task_features",
]

#: Task columns described by indicators (one per level) and by their value.
TASK_COLUMNS = (
    ("audience", "benefit", "channel", "content", "benefit_kind"),
    ("face_value", "benefit_cost", "cost_per_touch", "is_offsite"),
)


def task_features(tasks: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """(n_tasks, q) features of the plan's tasks and their names: an indicator per level of
    each categorical task column, and the numeric ones as they are; columns constant over the
    tasks (nothing to tell apart) are left out."""
    cats, nums = TASK_COLUMNS
    cols, names = [], []
    for c in cats:
        v = tasks[c].astype(str).to_numpy()
        for level in sorted(set(v)):
            cols.append((v == level).astype(np.float64))
            names.append(f"{c}={level}")
    for c in nums:
        cols.append(tasks[c].to_numpy(np.float64))
        names.append(c)
    Z = np.column_stack(cols) if cols else np.zeros((len(tasks), 0))
    varies = (Z != Z[:1]).any(axis=0)
    return np.ascontiguousarray(Z[:, varies]), [n for n, k in zip(names, varies, strict=True) if k]


def crossfit(
    models: dict[str, Any],
    X: np.ndarray,
    Xrows: np.ndarray,
    t: np.ndarray,
    task_of: np.ndarray,
    ys: dict[str, np.ndarray],
    fold: np.ndarray,
    fold_of_user: np.ndarray,
    n_folds: int,
    n_tasks: int,
    Z: dict[str, np.ndarray | None],
    score_rows: bool = False,
    center: frozenset[str] = frozenset(),
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Out-of-fold estimates per outcome.

    ``models[name]``: the uplift model of outcome ``name`` (cloned per fold); ``X``: the users'
    features (n_users, p); ``Xrows``: each log row's features; ``t``: the row's arm (0 control,
    task + 1); ``task_of``: the row's task, or its pseudo-task for a control (-1: no eligible
    pseudo-task; such a control is used by the by-task model only); ``fold`` /
    ``fold_of_user``: the fold of each row and user; ``Z[name]``: task features
    (:func:`task_features`) if the outcome's model is pooled over tasks, ``None`` for one arm
    per task; ``center``: the outcomes whose model learns from the outcome less
    :func:`centring_baseline` of the fold's training rows (``seed`` + fold: its halves).

    Returns ``est`` and ``se`` ((n_users, n_tasks) float32 per outcome) and ``score_at`` (per
    outcome, each row's out-of-fold score at ``task_of``, from the row's own features; 0 where
    it is -1, and everywhere unless ``score_rows``: when the rows are the users as ``X``
    describes them, that score is ``est[user, task]``)."""
    n = len(X)
    est = {k: np.zeros((n, n_tasks), np.float32) for k in ys}
    se = {k: np.zeros((n, n_tasks), np.float32) for k in ys}
    at = {k: np.zeros(len(t), np.float32) for k in ys}
    used = task_of >= 0
    Xc = None  # X checked once (float64, C-contiguous, finite) for the forests' own scoring
    for k in range(n_folds):
        fit_rows = fold != k
        target = np.flatnonzero(fold_of_user == k)
        # rows scored out of fold: their own features matter only if they are not the user's
        own = np.flatnonzero(~fit_rows & used) if score_rows else np.zeros(0, np.int64)
        Xt = None  # X[target]: once per fold, for the outcomes that need the copy
        for name, y_all in ys.items():
            m = _clone(models[name])
            z = Z.get(name)
            y = y_all
            if name in center:
                y = y_all.astype(np.float64, copy=True)
                sel = fit_rows if z is None else fit_rows & used
                y[sel] -= centring_baseline(Xrows[sel], y_all[sel], seed + k)
            if z is None:
                m.fit(Xrows[fit_rows], t[fit_rows], y[fit_rows])
                Xt = X[target] if Xt is None else Xt
                e, s = m.predict(Xt, return_se=True)
                e, s = e.reshape(len(target), n_tasks), s.reshape(len(target), n_tasks)
                if len(own):
                    sc = m.predict(Xrows[own]).reshape(len(own), n_tasks)
                    at[name][own] = sc[np.arange(len(own)), task_of[own]]
            else:
                sel = fit_rows & used
                pairs = np.column_stack([Xrows[sel], z[task_of[sel]]])
                m.fit(pairs, (t[sel] > 0).astype(np.int64), y[sel])
                if len(own):
                    at[name][own] = m.predict(np.column_stack([Xrows[own], z[task_of[own]]]))
                if hasattr(m, "_predict_pairs_into"):
                    # the forest writes its float32 estimates into the fold's rows, from X
                    # itself (no copy of X[target], no float64 matrices): the same numbers
                    if Xc is None:
                        Xc = cv.as_array(X, "X", np.float64, ndim=2)
                    m._predict_pairs_into(Xc, target, z, est[name], se[name])
                    continue
                Xt = X[target] if Xt is None else Xt
                e, s = m.predict_pairs(Xt, z, return_se=True)
            est[name][target] = e
            se[name][target] = s
    return est, se, at


def centring_baseline(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Each row's predicted outcome E[y | x] from a ridge regression fitted on the other half
    of the rows (two random halves), whatever their arm: the uplift model learns from ``y``
    less this prediction. By randomisation the prediction is independent of the arm given
    ``x``, so the effect to learn is unchanged, while the spread of the outcome between
    users (heavy and light buyers in one leaf) leaves the noise of every estimate. This is the
    centring of the outcome in generalised random forests (Athey, Tibshirani and Wager 2019,
    "Generalized random forests", Annals of Statistics; Nie and Wager 2021, "Quasi-oracle
    estimation of heterogeneous treatment effects", Biometrika), done out-of-sample within
    the training rows, so that no row is centred by a fit on its own outcome and no user of
    the fold being scored is seen."""
    half = np.random.default_rng(seed).permutation(len(y)) % 2
    out = np.empty(len(y))
    for h in (0, 1):
        fit = half != h
        if fit.sum() < 2:
            return np.full(len(y), float(y.mean()) if len(y) else 0.0)
        out[~fit] = ridge_fit(X[fit], y[fit])(X[~fit])
    return out


def check_center(center: Any, outcomes: tuple[str, ...]) -> tuple[str, ...]:
    """``Planner(center=)``: a tuple of outcome names (sorted, without repeats)."""
    if isinstance(center, str) or not isinstance(center, (tuple, list, set, frozenset)):
        raise TypeError(f"center: must be a tuple of outcome names, got {center!r}")
    bad = sorted(str(k) for k in center if k not in outcomes)
    if bad:
        raise ValueError(f"center: unknown outcome {bad[0]!r} (outcomes: {', '.join(outcomes)})")
    return tuple(sorted(set(center)))


def check_pool_tasks(pool_tasks: Any, model: Any, outcomes: tuple[str, ...]) -> bool | tuple:
    """``Planner(pool_tasks=)``: True, False, a tuple of outcome names or "auto" (cost and
    orders when the model can predict pairs, else none)."""
    if isinstance(pool_tasks, str) and pool_tasks == "auto":
        can = isinstance(model, str) or hasattr(model, "predict_pairs")
        return ("cost", "orders") if can else False
    if isinstance(pool_tasks, (bool, np.bool_)):
        pool_tasks = bool(pool_tasks)
    elif isinstance(pool_tasks, (tuple, list, set, frozenset)) and all(
        isinstance(k, str) for k in pool_tasks
    ):
        bad = sorted(set(pool_tasks) - set(outcomes))
        if bad:
            raise ValueError(
                f"pool_tasks: unknown outcome {bad[0]!r} (outcomes: {', '.join(outcomes)})"
            )
        pool_tasks = tuple(sorted(pool_tasks))
    else:
        raise TypeError(
            f"pool_tasks: must be 'auto', True, False or a tuple of outcome names, got "
            f"{pool_tasks!r}"
        )
    if pool_tasks and not (isinstance(model, str) or hasattr(model, "predict_pairs")):
        raise TypeError(
            "pool_tasks: pooling needs a model with predict_pairs(X, Z) (every "
            "growthmachine.planning.uplift model has it); pass pool_tasks=False to give "
            f"{type(model).__name__} one arm per task"
        )
    return pool_tasks


def pseudo_tasks(
    rng: np.random.Generator,
    eligible: np.ndarray,
    ctrl: np.ndarray,
    assigned_tasks: np.ndarray,
    n_tasks: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Each control row's pseudo-task: drawn like the treated rows' tasks were (the shares of
    ``assigned_tasks``), kept if the row's user is ``eligible`` (rows x tasks) for it, as the
    treated were kept if delivered; -1 for treated rows and controls whose draw is not
    eligible. Returns (pseudo, ok): ``ok`` marks the controls whose draw was kept."""
    pseudo = np.full(len(ctrl), -1)
    c_idx = np.flatnonzero(ctrl)
    assigned = np.bincount(assigned_tasks, minlength=n_tasks).astype(np.float64)
    draws = rng.choice(n_tasks, size=len(c_idx), p=assigned / assigned.sum())
    ok = eligible[c_idx, draws]
    pseudo[c_idx[ok]] = draws[ok]
    return pseudo, ok


def order_value(
    X: np.ndarray, Xrows: np.ndarray, ys: dict[str, np.ndarray], score_rows: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The predicted value of one order for each user (``X``) and, if ``score_rows``, each log
    row (``Xrows``; else zeros): a ridge regression of GMV per order on the features of the log
    rows that ordered, clipped to the 1-99 % quantiles of those values (and to at least 1e-9).
    With ``Planner(gmv_from="orders")`` a (user, task)'s GMV score is its uplift in orders
    times this value."""
    buy = ys["orders"] > 0
    if buy.sum() < 2:
        raise ValueError(
            "log['orders']: fewer than 2 rows with an order, so the value of an order is "
            "unknown; pass gmv_from='gmv'"
        )
    per_order = ys["gmv"][buy] / ys["orders"][buy]
    predict = ridge_fit(Xrows[buy], per_order)
    lo, hi = np.quantile(per_order, [0.01, 0.99])
    lo, hi = max(lo, 1e-9), max(hi, 1e-9)
    rows = np.clip(predict(Xrows), lo, hi) if score_rows else np.zeros(len(Xrows))
    return np.clip(predict(X), lo, hi), rows
