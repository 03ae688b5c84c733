"""``Planner``: a plan + a randomised campaign log -> honest per-user values -> tasks.

``Planner(plan, model=...).fit(log, insight, users)``:

1. composes the plan over the insight's users (who may receive which task);
2. fits the uplift model for each outcome the plan needs (GMV, redeemed incentive cost,
   conversion) by cross-fitting over ``n_folds`` folds of users: every user's estimates come from
   models that never saw that user (out-of-fold);
3. calibrates each estimate on the log itself (``_calibrate``): raw scores become the realised
   effects of pairs with that score, so the values handed to the optimiser, and the plan's
   forecast, are honest.

``candidates()`` builds the :class:`growthmachine.allocate.Problem` (value: the goals' weighted
calibrated effects net of cost; usage: the budget, per-benefit budgets, channel capacities and
goal floors as lower-bounded resources); ``allocate()`` solves it and returns a :class:`TaskPlan`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .._state import Versioned
from ._calibrate import (
    Calibration,
    ControlPool,
    LinearCalibration,
    ScaledCalibration,
    fit_calibration,
    fit_linear_calibrations,
    fit_scaled_calibrations,
    interp_columns,
    ridge_baseline,
    shrink_to_mean,
)
from ._candidates import build_problem
from ._crossfit import (
    check_center,
    check_pool_tasks,
    crossfit,
    order_value,
    pseudo_tasks,
    task_features,
)
from ._features import planning_features
from ._plan import Plan
from ._taskplan import TaskPlan

__all__ = ["Planner", "TaskPlan"]

#: Outcomes of the log the planner models, and the log column each is read from.
#: Most quantile bins of the honest-value map (more than the users of any log are meaningless).
_MAX_BINS = 10**6
OUTCOMES = {
    "gmv": "gmv",
    "cost": "incentive_cost",
    "conversion": "converted",
    "orders": "orders",
}


def _default_model(progress: bool | None = None, pooled: bool = False) -> Any:
    """The Rust forest (no optional dependency), with the larger leaves and stronger shrinkage
    that noisy business outcomes (30-day GMV and cost) need: leaves of >= 400 rows, leaf
    effects shrunk toward the parent with a prior of 50 rows; depth 6 with one arm per task;
    pooled over tasks (one treatment, task features beside the user's), depth 8 and half the
    features per split, since the trees must split on the task's features as well."""
    from .uplift import UpliftForest

    if pooled:
        return UpliftForest(
            min_samples_leaf=400, max_depth=8, shrinkage=50.0, max_features=0.5, progress=progress
        )
    # max_features pinned to the rule the planner was measured with (UpliftForest's default
    # became "sqrt+20" later; the planner's settings are chosen on its own benchmark)
    return UpliftForest(
        min_samples_leaf=400, max_depth=6, shrinkage=50.0, max_features="sqrt", progress=progress
    )


class Planner(Versioned):
    """Estimates every task's incremental effect per user and plans under the plan's budget.

    ``plan``: a :class:`growthmachine.planning.Plan`; ``model``: any uplift model with the
    ``fit(X, treatment, y)`` / ``predict(X, return_se=True)`` interface of
    :class:`growthmachine.planning.uplift.UpliftModel` (cloned per outcome and fold; default the
    Rust :class:`~growthmachine.planning.uplift.UpliftForest`); ``margin``: contribution margin on
    GMV (profit = margin x GMV - incentive and channel costs); ``n_folds``: cross-fitting folds;
    ``calibration_bins``: quantile bins of the honest-value map (at most 10**6); ``shrink``: shrink the map's
    bin effects toward their stratum's mean, and each stratum's mean toward 0, by their noise
    (empirical Bayes; ``False``: the raw isotonic map; the scaled map's levels toward 0), so that a log too small to tell an
    effect from noise mostly plans nothing; what noise survives the shrinkage is inside the
    forecast's standard error (``TaskPlan.forecast['profit_se']``); ``winsorize``: the GMV
    outcomes (net of their baseline) are clipped at this two-sided quantile before calibration,
    so that a few very large baskets do not decide a bin's effect (measured over six worlds and
    seeds at 100k users: 28.5 % of the oracle on average, 27.2 % without); ``pool_tasks``: the
    outcomes (of ``gmv``, ``cost``, ``conversion``, ``orders``; ``True``: all, ``False``: none;
    ``"auto"``: cost and orders if the model has ``predict_pairs``, else none)
    whose uplift model learns from (user, task) pairs described by the task's features as well
    as the user's (:mod:`._crossfit`), so that tasks sharing a benefit, channel or content share
    their rows, instead of one arm per task; ``gmv_from``: ``"orders"`` scores a pair's GMV
    effect as its uplift in orders times the user's predicted value of an order (a count is far
    less noisy than a basket's value), ``"gmv"`` models the GMV itself, ``"auto"`` takes
    ``"orders"`` when the log has an ``orders`` column. Either score is then calibrated on the
    realised GMV, as before. Measured with ``python -m benchmarks planning dq`` at 1M users
    (seed 0; default, coupon-sensitive, fatigued worlds): 37.0 / 37.3 / 27.8 % of the oracle
    with one arm per task and the GMV modelled; 41.0 / 39.7 / 38.7 % with the cost pooled and
    the GMV from orders (forecast / true 1.06 / 1.09 / 0.74); 40.0 / 40.4 / 38.6 % with cost
    and orders pooled (0.84 / 0.96 / 0.80, the defaults). On logs of 100k users the defaults
    are worse on the fatigued world (18.9 % against 29.6 %, three seeds): see
    ``benchmarks/RESULTS.md``; pass ``pool_tasks=False, gmv_from="gmv"`` for the former way.
    ``calibration``: ``"scaled"`` (the default, below), ``"isotonic"``, the binned
    non-decreasing map of
    :func:`~growthmachine.planning._calibrate.fit_calibration` (flat beyond its first and
    last bins), or ``"linear"``, a line per stratum fitted on the log by treatment-score
    interaction, slopes shrunk across strata
    (:func:`~growthmachine.planning._calibrate.fit_linear_calibrations`). The line is an
    option, not the default: with ``python -m benchmarks planning dq`` (seed 0 unless said) it
    gave 36.0 / 35.5 / 25.7 % of the oracle at 100k users (default / coupon-sensitive /
    fatigued, mean of seeds 0-2; the binned map 26.2 / 34.7 / 18.9 %), but at 20k users it
    planned free messages for everyone on a noisy positive effect (-21 / 40 / -53 %; binned 22
    / 26 / 17 %), and at 1M users on the fatigued world an earlier version of it (slopes
    shrunk toward their mean, no clipping) gave 35.9 % against the binned map's 38.6 %.
    ``"scaled"`` (the default): the GMV (and conversion) maps keep the model's own score and
    only set its
    level per stratum from the log (:func:`~growthmachine.planning._calibrate.
    fit_scaled_calibrations`: the stratum's measured effect, shrunk toward 0, spread over its
    pairs in proportion to their scores; the effect is its treated rows against every control
    of the log eligible for its tasks, :class:`~growthmachine.planning._calibrate.ControlPool`,
    which cut the machine's worst forecast error at 200k users on five world/seed runs, e.g.
    0.455 -> 0.172 on the default world, seed 1); the cost keeps the binned map. Why: with the
    world's true effects in place of the log's realised outcomes, binned maps of the same
    scores would earn 0.39-0.41 of the oracle on the fatigued world at 100k users (planner
    seeds 0-2; the log's own maps 0.18-0.30) and 0.39-0.43 at 1M (0.31-0.39): the bins'
    noise, not the scores, decides most of the loss. Measured with the dq protocol against
    the binned map: at 100k users over 4 worlds x seeds 0-2 (default, coupon-sensitive,
    fatigued and a fourth, heterogeneous world) 0.324 of the oracle on average against 0.266,
    better in 11 of 12; at 1M users (seed-0 worlds and logs, planner seeds 0-2) see
    ``benchmarks/RESULTS.md``: 0.401 / 0.406 / 0.366 of the oracle on average (default /
    coupon-sensitive / fatigued; binned 0.362 / 0.378 / 0.345), forecasts within 25 % of the
    truth in 8 of 9 draws (binned 6 of 9); at 20k users both are noise. The level is the one
    thing the log must tell, and a 20k log cannot.
    ``level_alpha``: with the scaled map, a stratum whose effect the log cannot tell from 0
    (two-sided test at this level on its raw, unshrunk effect) is valued at 0, not at its
    shrunk estimate (``None``: no test). A shrunk level keeps its estimate's sign, and a task
    without incentive costs almost nothing, so a small positive level of no significance made
    free messages worth sending to most users: on the fatigued world at 1M users (planner
    seed 1) the no-incentive stratum came out at +0.02 ± 0.15 and the plan sent it to 385k
    users, who lost 17k of profit (its true effect is about -0.05 per pair on the default
    world). Measured with the dq protocol, 0.05 against no test: at 1M users (seed-0 worlds
    and logs, planner seeds 0-2) 0.430 / 0.426 / 0.399 of the oracle on average (default /
    coupon-sensitive / fatigued; no test 0.401 / 0.406 / 0.367), never lower, forecasts
    within 25 % of the truth in 9 of 9 draws (no test 8 of 9); at 100k users (4 worlds x
    seeds 0-2) 0.354 against 0.324, never lower, forecasts within 25 % in 10 of 12 runs (no
    test 3 of 12); at 20k users both are noise (0.044 against 0.013).
    ``center``: the outcomes (of ``orders``, ``gmv``, ``cost``, ``conversion``) whose uplift
    model learns from the outcome less a prediction of it from the user's features
    (:func:`~growthmachine.planning._crossfit.centring_baseline`, fitted out-of-sample within
    the fold's training rows), so that the spread between heavy and light buyers in one leaf is
    not noise in its effect. The default centres the orders, whose spread is mostly each
    user's baseline rate. Measured with the dq protocol (seed 0 at 1M users; default /
    coupon-sensitive / fatigued): 42.0 / 40.8 / 38.8 % of the oracle (none centred: 40.0 /
    40.4 / 38.6 %); at 100k users, mean of seeds 0-2, 30.6 / 32.5 / 22.3 % (26.2 / 34.7 /
    18.9 %). Not centred by default: the cost, which no control pays, so centring it only adds
    the prediction's spread to the controls (32.0 % at 1M on the fatigued world); the GMV of
    ``gmv_from="gmv"``, heavy-tailed, which centring did not help (100k, seeds 0-2: 28.6 / 30.2
    / 25.3 % against 28.9 / 30.0 / 29.6 %).

    Fitted attributes: ``composition_`` (tasks and eligibility), ``feature_names_``,
    ``task_feature_names_`` (when a model is pooled),
    ``estimates_`` (raw out-of-fold estimates per outcome, (n_users, n_tasks) float32),
    ``calibration_`` (per outcome, a :class:`Calibration`, :class:`LinearCalibration` or
    :class:`ScaledCalibration` per stratum), ``log_summary_``.
    """

    _STATE_KIND = "planning.Planner"

    def __init__(
        self,
        plan: Plan,
        model: Any = "auto",
        *,
        margin: float = 0.3,
        n_folds: int = 2,
        calibration_bins: int = 5,
        calibrate_by: str | None = "benefit",
        shrink: bool = True,
        winsorize: float = 0.005,
        pool_tasks: bool | tuple[str, ...] | str = "auto",
        gmv_from: str = "auto",
        calibration: str = "scaled",
        level_alpha: float | None = 0.05,
        center: tuple[str, ...] = ("orders",),
        seed: int = 0,
        progress: bool | None = None,
    ):
        if not isinstance(plan, Plan):
            raise TypeError(
                f"plan: must be a growthmachine.planning.Plan, got {type(plan).__name__}"
            )
        if not (isinstance(model, str) and model == "auto") and not (
            hasattr(model, "fit") and hasattr(model, "predict")
        ):
            raise TypeError(
                "model: must be 'auto' or an uplift model with fit(X, treatment, y) and "
                f"predict(X, return_se=...), got {model!r}"
            )
        self.plan = plan
        self.model = model
        self.margin = cv.check_number(margin, "margin", minimum=0.0, maximum=1.0)
        self.n_folds = cv.check_int(n_folds, "n_folds", minimum=2, maximum=20)
        self.calibration_bins = cv.check_int(
            calibration_bins, "calibration_bins", minimum=1, maximum=_MAX_BINS
        )
        self.seed = cv.check_int(seed, "seed", minimum=0)
        self.progress = progress
        task_cols = ("audience", "benefit", "channel", "content", "benefit_kind")
        if calibrate_by is not None:
            cv.check_choice(calibrate_by, "calibrate_by", task_cols)
        self.calibrate_by = calibrate_by
        if not isinstance(shrink, bool):
            raise TypeError(f"shrink: must be True or False, got {shrink!r}")
        self.shrink = shrink
        self.winsorize = cv.check_number(winsorize, "winsorize", minimum=0.0, maximum=0.25)
        pool_tasks = check_pool_tasks(pool_tasks, model, tuple(OUTCOMES))
        self.pool_tasks = pool_tasks
        self.gmv_from = cv.check_choice(gmv_from, "gmv_from", ("auto", "gmv", "orders"))
        self.calibration = cv.check_choice(
            calibration, "calibration", ("isotonic", "linear", "scaled")
        )
        if level_alpha is not None:
            level_alpha = cv.check_number(level_alpha, "level_alpha", minimum=0.0, maximum=1.0)
            if not 0.0 < level_alpha < 1.0:
                raise ValueError(f"level_alpha: must be in (0, 1) or None, got {level_alpha}")
        self.level_alpha = level_alpha
        self.center = check_center(center, tuple(OUTCOMES))

    # -- fitting ----------------------------------------------------------------------------
    def _pooled(self) -> set[str]:
        # states saved before the option existed estimated one arm per task
        pool = getattr(self, "pool_tasks", False)
        return set(OUTCOMES) if pool is True else set(pool or ())

    def _by_orders(self, cols: list[str]) -> bool:
        how = getattr(self, "gmv_from", "gmv")  # states saved before the option: "gmv"
        return how == "orders" or (how == "auto" and OUTCOMES["orders"] in cols)

    def _outcomes(self, cols: list[str]) -> list[str]:
        need = {"gmv", "cost"}
        if any(g.metric == "conversion" for g in self.plan.goals):
            need.add("conversion")
        if self._by_orders(cols):
            need.add("orders")
        return [k for k in OUTCOMES if k in need]

    def _read_log(self, log: Any, row_of: pd.Index, n_tasks: int, stacked: bool = False):
        name = "log"
        cols = cv.columns(log, name)
        need = ["user_id", "action_id"] + [OUTCOMES[k] for k in self._outcomes(cols)]
        for c in need:
            if c not in cols:
                raise ValueError(f"{name}: missing column {c!r} (has: {', '.join(cols)})")
        user = cv.as_array(cv.column(log, name, "user_id"), "log['user_id']", np.int64)
        action = cv.as_array(cv.column(log, name, "action_id"), "log['action_id']", np.int64)
        rows = row_of.get_indexer(user)
        if (rows < 0).any():
            bad = int(np.flatnonzero(rows < 0)[0])
            raise ValueError(
                f"log['user_id']: user {user[bad]} (row {bad}) is not among the insight's users"
            )
        if not stacked and len(np.unique(rows)) != len(rows):
            raise ValueError(
                "log['user_id']: a user appears twice; one row per user (or pass features= "
                "with one row of features per log row, e.g. several periods' logs)"
            )
        if action.min() < -1 or action.max() >= n_tasks:
            bad = int(np.flatnonzero((action < -1) | (action >= n_tasks))[0])
            raise ValueError(
                f"log['action_id']: {action[bad]} (row {bad}) is neither -1 (control) nor a task "
                f"id of the plan (0..{n_tasks - 1})"
            )
        ys = {
            k: cv.as_array(cv.column(log, name, OUTCOMES[k]), f"log[{OUTCOMES[k]!r}]", np.float64)
            for k in self._outcomes(cols)
        }
        chc = (
            cv.as_array(cv.column(log, name, "channel_cost"), "log['channel_cost']", np.float64)
            if "channel_cost" in cols
            else None
        )
        delivered = (
            cv.as_array(cv.column(log, name, "delivered"), "log['delivered']", np.bool_)
            if "delivered" in cols
            else np.ones(len(user), dtype=bool)
        )
        return rows, action, ys, chc, delivered

    def fit(
        self,
        log: Any,
        insight: Any,
        users: Any = None,
        *,
        opted_out: Any = None,
        features: Any = None,
        user_features: tuple[np.ndarray, list[str], np.ndarray] | None = None,
    ) -> Planner:
        """Fits on a randomised campaign ``log`` (one row per user: ``user_id``, ``action_id``
        = the plan's task id or -1 for control, ``gmv``, ``incentive_cost``, ``converted`` and
        optionally ``delivered``, ``channel_cost``) for the users of the fitted ``insight``.

        ``features`` (optional): the log rows' own features, one row per log row with the
        columns of :func:`planning_features` for this ``insight`` (``feature_names_``), e.g. the
        stacked randomised rows of several periods, each described as the user was at the
        time; users may then appear once per period. Without it each user's row is described
        by the current ``insight``. Estimates are always made for the users as ``insight``
        sees them now; ``user_features``: :func:`planning_features` of this ``insight`` and
        ``users`` if already computed (not recomputed).

        Treated rows with ``delivered=False`` (the task broke a channel rule and reached nobody)
        are left out of the estimation: the plan only sends eligible tasks, and controls are
        compared on eligible pseudo-tasks. Their count is in ``log_summary_``."""
        comp = self.plan.compose(insight, users, opted_out)
        X, names, ids = (
            planning_features(insight, users) if user_features is None else user_features
        )
        T = comp.n_tasks
        row_of = pd.Index(ids)
        rows, action, ys, chc, delivered = self._read_log(
            log, row_of, T, stacked=features is not None
        )
        if features is not None:
            Xlog = cv.as_array(
                features, "features", np.float64, ndim=2, shape=(len(rows), len(names))
            )
        else:
            Xlog = None
        treated = action >= 0
        keep = ~treated | delivered
        counts = np.bincount(action[keep & treated], minlength=T)
        if (~treated).sum() == 0:
            raise ValueError("log['action_id']: has no control rows (-1); uplift needs controls")
        if (counts == 0).any():
            missing = comp.tasks["name"].to_numpy()[counts == 0]
            raise ValueError(
                f"log['action_id']: {len(missing)} task(s) of the plan have no delivered rows, "
                f"e.g. {', '.join(map(str, missing[:3]))}; test them or remove them from the plan"
            )
        action_all = action
        rows, action = rows[keep], action[keep]
        Xtr = X[rows] if Xlog is None else Xlog[keep]
        ys = {k: v[keep] for k, v in ys.items()}
        t = action + 1
        n = len(ids)
        rng = np.random.default_rng(self.seed)
        fold_of_user = rng.permutation(np.arange(n) % self.n_folds)
        fold = fold_of_user[rows]
        ctrl = t == 0
        # pseudo-task of each control: drawn like the treated users' tasks were (the log's
        # assignment shares), kept if eligible, as the treated were kept if delivered; the
        # calibration compares treated and controls at these tasks, the pooled model learns
        # from them
        pseudo, ok = pseudo_tasks(rng, comp.eligible[rows], ctrl, action_all[treated], T)
        task_of = np.where(ctrl, pseudo, action)
        used = task_of >= 0
        pooled = self._pooled()
        Z: dict[str, np.ndarray | None] = {}
        models = {}
        if pooled:
            Zt, self.task_feature_names_ = task_features(comp.tasks)
        by_orders = "orders" in ys
        fit_ys = {k: v for k, v in ys.items() if not (by_orders and k == "gmv")}
        for name in fit_ys:
            p = name in pooled
            Z[name] = Zt if p else None
            models[name] = (
                _default_model(self.progress, p) if isinstance(self.model, str) else self.model
            )
        centre = getattr(self, "center", ())  # states saved before the option: none
        est, se, at = crossfit(
            models, X, Xtr, t, task_of, fit_ys, fold, fold_of_user, self.n_folds, T, Z,
            score_rows=Xlog is not None,
            center=frozenset(centre),
            seed=self.seed,
        )  # fmt: skip
        if by_orders:
            aov, aov_rows = order_value(X, Xtr, ys, Xlog is not None)
            est["gmv"] = _times(est.pop("orders"), aov)
            se["gmv"] = _times(se.pop("orders"), aov)
            at["gmv"] = (at.pop("orders") * aov_rows).astype(np.float32)
        # baseline of the realised outcome for variance reduction (controls of other folds);
        # the orders only feed the GMV score, which is calibrated on the GMV
        ys.pop("orders", None)
        base = {k: np.zeros(len(rows)) for k in ys}
        for k in range(self.n_folds):
            fit_rows = fold != k
            for name, y in ys.items():
                base[name][~fit_rows] = ridge_baseline(Xtr, y, fit_rows & ctrl)[~fit_rows]
        self.composition_ = comp
        self.goal_masks_ = {
            g.name: aud.select(insight, users)
            for g in self.plan.goals
            if (aud := self.plan.goal_audience(g)) is not None
        }
        self.feature_names_ = names
        self.user_ids_ = ids
        self.estimates_ = est
        self.standard_errors_ = se
        cpt = comp.tasks["cost_per_touch"].to_numpy()
        r_used, j_used = rows[used], task_of[used]
        tr = ~ctrl[used]
        profit_real = self.margin * ys["gmv"] - ys["cost"] - (chc[keep] if chc is not None else 0.0)
        profit_base = self.margin * base["gmv"] - base["cost"]
        if Xlog is None:
            score = {k: v[r_used, j_used] for k, v in est.items()}
        else:
            score = {k: v[used] for k, v in at.items()}
        raw_value = self.margin * score["gmv"] - score["cost"] - cpt[j_used]
        targets = {
            "profit": (raw_value, (profit_real - profit_base)[used]),
            "cost": (score["cost"], (ys["cost"] - base["cost"])[used]),
            "gmv": (score["gmv"], (ys["gmv"] - base["gmv"])[used]),
        }
        if "conversion" in ys:
            targets["conversion"] = (
                score["conversion"],
                (ys["conversion"] - base["conversion"])[used],
            )
        self._cal_data = {
            "task": j_used,
            "treated": tr,
            "targets": targets,
            # every control row, for the scaled map's levels (ControlPool)
            "controls": {
                "eligible": comp.eligible[rows[ctrl]],
                "y": {k: (ys[k] - base[k])[ctrl] for k in ys},
                "treated_counts": np.bincount(action[~ctrl], minlength=T),
            },
        }
        self._fit_calibration()
        self.log_summary_ = {
            "rows": int(len(keep)),
            "control": int((~treated).sum()),
            "treated_delivered": int((treated & delivered).sum()),
            "treated_not_delivered_left_out": int((treated & ~delivered).sum()),
            "controls_with_eligible_pseudo_task": int(ok.sum()),
            "tasks": int(T),
        }
        return self

    def _strata(self, task: np.ndarray) -> np.ndarray:
        """Calibration stratum of each task: its value of ``calibrate_by`` (a task column)."""
        if self.calibrate_by is None:
            return np.zeros(len(task), dtype=np.int64)
        col = self.composition_.tasks[self.calibrate_by].astype(str).to_numpy()
        codes = pd.Index(sorted(set(col))).get_indexer(col)
        return codes[task]

    def _fit_calibration(self) -> None:
        d = self._cal_data
        strata = self._strata(d["task"])
        tr = d["treated"]
        self.calibration_: dict[str, list[Calibration | LinearCalibration | ScaledCalibration]] = {}
        pool = d.get("controls")  # fitted before the pool: controls at their pseudo-tasks
        for key, (score, y) in d["targets"].items():
            if key == "profit":  # profit = margin x GMV - cost, from their own maps
                continue
            clip = None
            if key == "gmv" and self.winsorize > 0:
                clip = np.quantile(y, [self.winsorize, 1.0 - self.winsorize])
                y = np.clip(y, *clip)
            how = getattr(self, "calibration", "isotonic")
            if how == "linear":
                self.calibration_[key] = fit_linear_calibrations(
                    score, y, tr, strata, shrink=self.shrink, shrink_mean=key != "cost"
                )
                continue
            if how == "scaled" and key != "cost":
                controls = None
                if pool is not None and key in pool["y"]:
                    yc = pool["y"][key] if clip is None else np.clip(pool["y"][key], *clip)
                    controls = ControlPool(pool["eligible"], yc,
                                           self._strata(np.arange(pool["eligible"].shape[1])),
                                           pool["treated_counts"])  # fmt: skip
                self.calibration_[key] = fit_scaled_calibrations(
                    score, y, tr, strata, shrink=self.shrink,
                    alpha=getattr(self, "level_alpha", None),  # states saved before: None
                    controls=controls,
                )  # fmt: skip
                continue
            maps = []
            for s in range(int(strata.max()) + 1):
                m = strata == s
                maps.append(
                    fit_calibration(
                        score[m & tr], y[m & tr], score[m & ~tr], y[m & ~tr],
                        bins=self.calibration_bins, shrink=self.shrink,
                    )
                )  # fmt: skip
            if key != "cost" and self.shrink:
                _shrink_strata(maps)
            self.calibration_[key] = maps

    def _apply(self, key: str, scores: np.ndarray, strata: Any = None) -> np.ndarray:
        """Calibrated (n_users, n_tasks) values from raw scores, task by task (``strata``: of
        each task, if known)."""
        strata = self._strata(np.arange(scores.shape[1])) if strata is None else strata
        maps = self.calibration_[key]
        if all(isinstance(m, Calibration) for m in maps):  # every column in one pass
            return interp_columns(scores, maps, strata)
        out = np.empty(scores.shape, dtype=np.float64)
        for j in range(scores.shape[1]):
            out[:, j] = maps[strata[j]](scores[:, j])
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "calibration_"):
            raise ValueError("Planner: not fitted; call fit(log, insight, users) first")

    # -- honest values ----------------------------------------------------------------------
    def values(self) -> dict[str, np.ndarray]:
        """Calibrated expectations per (user, task), (n_users, n_tasks) float64 each:
        ``gmv``, ``cost`` (expected incentive + channel cost), ``profit`` = ``margin`` x ``gmv``
        - ``cost``, and ``conversion`` when a goal needs it.

        GMV and incentive cost are calibrated apart, each by its own map: the cost is measured
        far more precisely than the GMV, so its map keeps telling users apart where a single
        profit map (one noisy outcome) would be flat, and a flat map gives a whole stratum one
        value, so a cheap task goes to everyone on the strength of one noisy mean. Measured with
        ``python -m benchmarks planning dq`` (default, coupon-sensitive and fatigued worlds):
        29 / 30 / 30 % of the oracle at 100k users (mean of three seeds) and 37 / 37 / 28 % at
        1M, against 22 / 23 / 17 % and 30 / 36 / 25 % with one profit map."""
        self._check_fitted()
        return self._values_rows(slice(None))

    def _values_rows(self, rows: slice) -> dict[str, np.ndarray]:
        """:meth:`values` of a block of users (``rows``: a slice of ``user_ids_``)."""
        e = self.estimates_
        cpt = self.composition_.tasks["cost_per_touch"].to_numpy()
        st = self._strata(np.arange(len(cpt)))
        out = {
            "gmv": self._apply("gmv", e["gmv"][rows], st),
            "cost": np.maximum(self._apply("cost", e["cost"][rows], st), 0.0) + cpt[None, :],
        }
        out["profit"] = self.margin * out["gmv"] - out["cost"]
        if "conversion" in self.calibration_:
            out["conversion"] = self._apply("conversion", e["conversion"][rows], st)
        return out

    def pair_profit(self, user_ids: Any, task_ids: Any) -> np.ndarray:
        """The calibrated profit of given (user, task) pairs (as in :meth:`values`, without
        computing every user's every task)."""
        self._check_fitted()
        u = cv.as_array(user_ids, "user_ids", np.int64, allow_empty=True)
        j = cv.as_array(task_ids, "task_ids", np.int64, allow_empty=True, shape=(len(u),))
        r = pd.Index(self.user_ids_).get_indexer(u)
        if (r < 0).any():
            raise ValueError(f"user_ids: user {u[r < 0][0]} is not among the fitted users")
        T = self.composition_.n_tasks
        if len(j) and (j.min() < 0 or j.max() >= T):
            raise ValueError(f"task_ids: must be in 0..{T - 1}")
        e = self.estimates_
        cpt = self.composition_.tasks["cost_per_touch"].to_numpy()
        strata = self._strata(np.arange(T))
        gmv, cost = self.calibration_["gmv"], self.calibration_["cost"]
        out = np.empty(len(u))
        for t in np.unique(j):
            m = j == t
            s = strata[t]
            c = np.maximum(cost[s](e["cost"][r[m], t]), 0.0) + cpt[t]
            out[m] = self.margin * gmv[s](e["gmv"][r[m], t]) - c
        return out

    def _goal_value(self, vals: dict[str, np.ndarray], rows: slice = slice(None)) -> np.ndarray:
        """The goals' weighted value of each pair of the users ``rows`` (-inf: not eligible)."""
        total = np.zeros_like(vals["profit"])
        for g in self.plan.goals:
            v = vals[g.metric] * g.weight
            mask = self.goal_masks_.get(g.name)
            if mask is not None:
                v = v * mask[rows, None]
            total += v
        return np.where(self.composition_.eligible[rows], total, -np.inf)

    # -- the allocation problem -------------------------------------------------------------
    def candidates(self, budget: float | None = None):
        """The allocation problem: eligible (user, task) pairs whose goal value is positive (a
        pair of value <= 0 can never raise the objective; with a goal floor every eligible pair
        is kept), value = the goals' weighted calibrated effects, usage ``budget`` = expected
        cost, one resource per benefit budget (``budget:<benefit>``), channel capacity
        (``capacity:<channel>``, touches over the horizon) and goal floor (``goal:<name>``,
        lower bound). ``budget`` overrides ``plan.budget`` (``None``: no overall budget)."""
        self._check_fitted()
        return self._candidates(budget, self._values_rows)

    def _allowed(self, users: Any) -> np.ndarray | None:
        """Bool mask over ``user_ids_`` of the users that may receive a task (``None``: all)."""
        if users is None:
            return None
        ids = cv.as_array(users, "users", np.int64, allow_empty=True)
        pos = pd.Index(self.user_ids_).get_indexer(ids)
        if (pos < 0).any():
            bad = ids[pos < 0][0]
            raise ValueError(f"users: user {bad} is not among the fitted insight's users")
        mask = np.zeros(len(self.user_ids_), dtype=bool)
        mask[pos] = True
        return mask

    def design_experiment(
        self,
        n_users: int,
        tasks: Any = None,
        *,
        users: Any = None,
        control_share: float = 0.5,
        uniform_share: float = 0.5,
        seed: int = 0,
    ) -> pd.DataFrame:
        """A randomised experiment that spends its rows where the fitted models are least sure
        of a value that could change the plan.

        ``n_users`` users are drawn at random from ``users`` (default: every fitted user); each
        is a control (``task_id`` -1) with probability ``control_share``, otherwise gets task
        ``j`` of ``tasks`` (default: all) with probability ``p_j``: a ``uniform_share`` spread
        evenly, the rest in proportion to the task's *decision-relevant variance*, the mean over
        its eligible users of the variance of their estimated profit (``margin``^2 x the GMV
        model's s.e.^2 + the cost model's s.e.^2), counting only the users whose estimate is
        within two standard errors of being worth planning (``value + 2 s.e. > 0``): more rows
        where a task might be good but the log cannot yet tell, none for tasks that are clearly
        bad for everyone (uncertainty sampling, Lewis & Gale 1994, "A sequential algorithm for
        training text classifiers", applied to decisions). Users drawn for a task they are not eligible for leave
        the experiment (as the world's own experiment leaves them undelivered), so treated and
        control users of a task are alike and the log fits :meth:`fit` as it is. A model
        without standard errors (all 0) gives the uniform design.

        Returns one row per user in the experiment: ``user_id``, ``task_id`` and
        ``propensity`` (the probability of the arm the user got); ``attrs['task_shares']``
        holds ``p`` (indexed by task id) and ``attrs['not_eligible']`` the users who left."""
        self._check_fitted()
        T = self.composition_.n_tasks
        ids = self.user_ids_
        n_users = cv.check_int(n_users, "n_users", minimum=1)
        control_share = cv.check_number(control_share, "control_share", minimum=0.0, maximum=1.0)
        if not 0.0 < control_share < 1.0:
            raise ValueError(
                f"control_share: must be strictly between 0 and 1, got {control_share}"
            )
        uniform_share = cv.check_number(uniform_share, "uniform_share", minimum=0.0, maximum=1.0)
        seed = cv.check_int(seed, "seed", minimum=0)
        if tasks is None:
            task_ids = np.arange(T)
        else:
            task_ids = cv.as_array(tasks, "tasks", np.int64)
            if task_ids.min() < 0 or task_ids.max() >= T:
                bad = task_ids[(task_ids < 0) | (task_ids >= T)][0]
                raise ValueError(f"tasks: {bad} is not a task id of the plan (0 to {T - 1})")
            if len(np.unique(task_ids)) != len(task_ids):
                raise ValueError("tasks: holds a task id twice")
        pool = np.arange(len(ids)) if users is None else np.flatnonzero(self._allowed(users))
        if n_users > len(pool):
            raise ValueError(f"n_users: {n_users} is more than the {len(pool)} users to draw from")
        vals = self.values()["profit"][pool][:, task_ids]
        se = self.standard_errors_
        var = (self.margin**2) * se["gmv"][pool][:, task_ids].astype(np.float64) ** 2
        var += se["cost"][pool][:, task_ids].astype(np.float64) ** 2
        elig = self.composition_.eligible[pool][:, task_ids]
        open_ = elig & (vals + 2.0 * np.sqrt(var) > 0)
        v = (var * open_).sum(axis=0) / np.maximum(elig.sum(axis=0), 1)
        k = len(task_ids)
        p = np.full(k, 1.0 / k)
        if v.sum() > 0:
            p = uniform_share * p + (1.0 - uniform_share) * v / v.sum()
        rng = np.random.default_rng(seed)
        drawn = rng.choice(pool, size=n_users, replace=False)
        ctrl = rng.random(n_users) < control_share
        pick = rng.choice(k, size=n_users, p=p)
        task = np.where(ctrl, -1, task_ids[pick])
        ok = ctrl | self.composition_.eligible[drawn, np.maximum(task, 0)]
        out = pd.DataFrame(
            {
                "user_id": ids[drawn][ok],
                "task_id": task[ok].astype(np.int64),
                "propensity": np.where(ctrl, control_share, (1.0 - control_share) * p[pick])[ok],
            }
        )
        out.attrs["task_shares"] = pd.Series(p, index=pd.Index(task_ids, name="task_id"))
        out.attrs["not_eligible"] = int((~ok).sum())
        return out

    def _candidates(self, budget, vals, allowed=None, extra=None, task_resources=None):
        """:func:`._candidates.build_problem` (``vals``: full matrices, or a function of a
        block of rows giving theirs)."""
        return build_problem(self, budget, vals, allowed, extra, task_resources)

    def allocate(
        self,
        budget: float | None = None,
        *,
        start_day: int | None = None,
        users: Any = None,
        profit_offset: Any = None,
        profit_scale: Any = None,
        extra: Any = None,
        extra_budget: float | None = None,
        extra_name: str = "outside",
        task_resources: Any = None,
        **solve_kw: Any,
    ) -> TaskPlan:
        """Solves :meth:`candidates` with :func:`growthmachine.allocate.solve` and returns the
        :class:`TaskPlan`; ``users`` (ids, default all) are the users that may receive a task
        (e.g. all but a period's exploration group). ``profit_offset`` (one number per task):
        subtracted from every user's calibrated profit of that task before planning, e.g. the
        bias a previous plan showed against its randomised hold-out (the selection among a
        user's tasks that calibration cannot see); ``profit_scale`` (one number per task)
        multiplies it first (e.g. the ratio of realised to forecast profit the task's planned
        users showed). ``extra``: an outside option competing for
        the same users (a table with ``user_id``, ``value`` and ``cost``, e.g. another module's
        per-user plan), paid from its own ``extra_budget`` (resource ``budget:<extra_name>``):
        each user gets a task, the outside option or nothing, whichever the allocation finds
        best; the users given it are ``TaskPlan.extra``. ``task_resources``: further resources,
        ``{name: (use per task, upper bound)}`` (e.g. expected opt-outs per delivered task and
        an intrusion budget); a column ``name`` of ``extra`` gives the outside option's use.
        Infeasible goal floors raise
        ``growthmachine.InfeasibleError`` naming the goal's resource."""
        from .. import allocate

        self._check_fitted()
        day = None if start_day is None else cv.check_int(start_day, "start_day", minimum=0)
        vals = self.values()
        if profit_scale is not None:
            sc = cv.as_array(
                profit_scale, "profit_scale", np.float64, shape=(self.composition_.n_tasks,)
            )
            vals["profit"] = vals["profit"] * sc[None, :]
        if profit_offset is not None:
            off = cv.as_array(
                profit_offset, "profit_offset", np.float64, shape=(self.composition_.n_tasks,)
            )
            vals["profit"] = vals["profit"] - off[None, :]
        ex = None
        if extra is not None:
            cols = cv.columns(extra, "extra")
            for c in ("user_id", "value", "cost"):
                if c not in cols:
                    raise ValueError(f"extra: needs a {c!r} column (columns: {', '.join(cols)})")
            ex = {
                "user": cv.as_array(cv.column(extra, "extra", "user_id"), "extra['user_id']",
                                    np.int64, allow_empty=True),
                "value": cv.as_array(cv.column(extra, "extra", "value"), "extra['value']",
                                     allow_empty=True),
                "cost": cv.as_array(cv.column(extra, "extra", "cost"), "extra['cost']",
                                    nonnegative=True, allow_empty=True),
                "name": str(extra_name),
                "budget": np.inf if extra_budget is None
                else cv.check_number(extra_budget, "extra_budget", minimum=0.0),
            }  # fmt: skip
            cv.check_same_length({"extra['user_id']": ex["user"], "extra['value']": ex["value"],
                                  "extra['cost']": ex["cost"]})  # fmt: skip
            ex["usage"] = {
                c: cv.as_array(cv.column(extra, "extra", c), f"extra[{c!r}]", nonnegative=True,
                               allow_empty=True)
                for c in (task_resources or {}) if c in cols
            }  # fmt: skip
        tr = None
        if task_resources is not None:
            tr = {}
            for name, (per_task, bound) in dict(task_resources).items():
                tr[str(name)] = (
                    cv.as_array(per_task, f"task_resources[{name!r}]", nonnegative=True,
                                shape=(self.composition_.n_tasks,)),
                    cv.check_number(bound, f"task_resources[{name!r}] bound", minimum=0.0),
                )  # fmt: skip
        prob = self._candidates(budget, vals, self._allowed(users), ex, tr)
        tasks = self.composition_.tasks
        if prob is None:
            empty = pd.DataFrame(
                {"user_id": np.zeros(0, np.int64), "task_id": np.zeros(0, np.int64)}
                | {c: np.zeros(0, object) for c in ("task", "benefit", "channel", "content")}
                | {f"expected_{k}": np.zeros(0) for k in vals}
            )
            if day is not None:
                empty.insert(6, "day", np.zeros(0, np.int64))
            zero = {k: 0.0 for k in ("profit", "profit_se", "gmv", "cost", "conversion")}
            return TaskPlan(empty, pd.DataFrame(), zero, None, None)
        sol = allocate.solve(prob, progress=self.progress, **solve_kw)
        a = sol.assignment
        is_extra = a["action"].to_numpy() == len(tasks)
        chosen_extra = pd.DataFrame(
            {"user_id": a["user"].to_numpy()[is_extra].astype(np.int64),
             "value": a["value"].to_numpy()[is_extra]}
        )  # fmt: skip
        a = a[~is_extra]
        u = a["user"].to_numpy()
        j = a["action"].to_numpy()
        r = pd.Index(self.user_ids_).get_indexer(u)
        out = pd.DataFrame(
            {
                "user_id": u,
                "task_id": j,
                "task": tasks["name"].to_numpy()[j],
                "benefit": tasks["benefit"].to_numpy()[j],
                "channel": tasks["channel"].to_numpy()[j],
                "content": tasks["content"].to_numpy()[j],
            }
        )
        if day is not None:
            out["day"] = day
        for k in ("profit", "gmv", "cost", "conversion"):
            if k in vals:
                out[f"expected_{k}"] = vals[k][r, j]
        price = float(sol.prices.get("cost", 0.0)) if hasattr(sol.prices, "get") else 0.0
        g = out.groupby("task_id", sort=True)
        summ = pd.DataFrame(
            {
                "task": g["task"].first(),
                "audience": tasks["audience"].to_numpy()[g["task"].first().index.to_numpy()],
                "users": g.size(),
                "expected_profit": g["expected_profit"].sum(),
                "expected_gmv": g["expected_gmv"].sum(),
                "expected_cost": g["expected_cost"].sum(),
            }
        )
        if "expected_conversion" in out:
            summ["expected_conversions"] = g["expected_conversion"].sum()
        summ["roi"] = summ["expected_profit"] / summ["expected_cost"].where(
            summ["expected_cost"] > 0
        )
        summ["budget_shadow_price"] = price
        summ = summ.reset_index()
        fc = {
            "profit": float(out["expected_profit"].sum()),
            "profit_se": self._forecast_se(j, r),
            "gmv": float(out["expected_gmv"].sum()),
            "cost": float(out["expected_cost"].sum()),
            "users": float(len(out)),
        }
        if "expected_conversion" in out:
            fc["conversion"] = float(out["expected_conversion"].sum())
        return TaskPlan(out, summ, fc, sol, prob, chosen_extra)

    def _forecast_se(self, task: np.ndarray, rows: np.ndarray) -> float:
        """Standard error of the forecast profit (``margin`` x GMV - cost) of the pairs (``rows``
        of the users, ``task``): each map's own uncertainty (``forecast_var``), independent
        between strata and between the GMV and the cost maps."""
        if not len(task):
            return 0.0
        strata = self._strata(task)
        var = 0.0
        for key, weight in (("gmv", self.margin), ("cost", 1.0)):
            score = self.estimates_[key][rows, task]
            for s, cal in enumerate(self.calibration_[key]):
                m = strata == s
                if m.any():
                    var += weight**2 * cal.forecast_var(score[m])
        return float(np.sqrt(var))


def _times(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(a * v[:, None]).astype(float32)`` of a float32 ``a``, in place: the same float64
    products rounded once, without an (n x k) float64 temporary."""
    return np.multiply(a, v[:, None], out=a, casting="same_kind")


def _shrink_strata(maps: list[Calibration]) -> None:
    """Shrinks each stratum's mean effect toward 0 (no effect) by its noise, the spread between
    strata estimated by DerSimonian-Laird: a stratum whose effect the log cannot tell from 0 is
    planned as if it had none (its bins keep their differences). In place."""
    mu, se = [], []
    for c in maps:
        n = c.counts.sum(axis=1).astype(np.float64)
        w = n / max(n.sum(), 1.0)
        mu.append(float((w * c.knots_y).sum()))
        se.append(float(np.sqrt(((w * c.se) ** 2).sum())))
    mu_a, se_a = np.asarray(mu), np.asarray(se)
    post, _ = shrink_to_mean(mu_a, se_a, mean=0.0)
    for c, m, p in zip(maps, mu_a, post, strict=True):
        c.knots_y = c.knots_y + (p - m)
