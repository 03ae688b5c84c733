"""Honest multi-treatment uplift forest (Rust core): the fast default uplift model of gm.planning.

Each tree grows on a random subsample of the rows, split in two halves (Wager & Athey 2018,
"Estimation and inference of heterogeneous treatment effects using random forests", JASA): one
half chooses the splits, the other estimates the leaf effects, so the estimates are not biased by
the search for large effects. Splits maximise the sum over treatments of the squared difference of
the children's effects, standardised by its variance (Athey & Imbens 2016, "Recursive partitioning
for heterogeneous causal effects", PNAS; the squared interaction t-statistic of Su et al. 2009;
summed over treatments as in Rzepakowski & Jaroszewicz 2012), on features cut once into at most
``max_bins`` quantile bins. A leaf's effect is the difference of weighted means of the treated arm
and control, shrunk toward its parent node's effect when an arm has few rows. The method and its
proofs are documented in ``src/planning/forest.rs``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ... import _convert as cv
from ... import _core, _progress
from ..._state import core_bytes
from ._base import UpliftModel

__all__ = ["UpliftForest", "MIN_LEAF_EVENTS", "auto_leaf_size"]

#: Events of the rarer outcome a leaf should expect under ``min_samples_leaf="auto"``.
MIN_LEAF_EVENTS = 10

#: Leaf size of ``min_samples_leaf="auto"`` for continuous and common binary outcomes.
DEFAULT_LEAF = 100


def auto_leaf_size(y: np.ndarray, w: np.ndarray | None = None) -> int:
    """``min_samples_leaf="auto"``: :data:`DEFAULT_LEAF`, or for a binary ``y`` (every value 0
    or 1) ``max(DEFAULT_LEAF, ceil(MIN_LEAF_EVENTS / min(p, 1 - p)))`` with ``p`` the mean of
    ``y`` weighted by ``w``; an outcome that never varies keeps :data:`DEFAULT_LEAF` (no split
    can gain on it). At most ``len(y)``."""
    if len(y) == 0 or not np.all((y == 0.0) | (y == 1.0)):
        return DEFAULT_LEAF
    p = float(np.average(y, weights=w)) if w is not None else float(y.mean())
    rare = min(p, 1.0 - p)
    if rare <= 0.0:
        return DEFAULT_LEAF
    return int(max(DEFAULT_LEAF, min(math.ceil(MIN_LEAF_EVENTS / rare), len(y))))


class UpliftForest(UpliftModel):
    """Honest uplift random forest for one control and T treatments (binary or continuous y).

    Parameters
    ----------
    n_estimators : number of trees.
    max_depth : maximum depth of a tree (<= 64).
    min_samples_leaf : rows of the structure half each side of a split keeps: an int, or
        ``"auto"`` (the default): 100, or for a binary outcome (``y`` in {0, 1}) enough rows that a
        leaf expects :data:`MIN_LEAF_EVENTS` (10) of the rarer outcome,
        ``max(100, ceil(10 / min(p, 1 - p)))`` with ``p`` the (weighted) mean of ``y``, so that
        rare events are not split into leaves that hold none (the events-per-variable rule of
        thumb for regression on binary outcomes, Peduzzi et al. 1996, "A simulation study of the
        number of events per variable in logistic regression analysis", J Clin Epidemiol). A
        conversion rate of 0.9 % (the Hillstrom campaign's) gives leaves of 1,112 rows; rates
        from 10 % to 90 % keep 100. The value used is ``min_samples_leaf_``.
    min_samples_treatment : rows of every arm (control and each treatment) each side keeps.
    max_features : candidate features per node: ``"sqrt+20"`` (``min(ceil(sqrt(p) + 20), p)``,
        the default ``mtry`` of grf's causal forest, Athey, Tibshirani & Wager 2019: every
        feature up to p = 25), ``"sqrt"`` (``ceil(sqrt(p))``, the classification forests' rule), a
        float share of the features in (0, 1] or an int count. Uplift signals are weak: a node
        that tries only a few features often has none of the effect modifiers among them and
        splits on noise (on the Hillstrom campaign, 11 features, the ``"sqrt"`` rule's 4 per
        node rank below the peers' median on all four visit figures, every feature above it on
        all four; on the synthetic forest benchmark, 20 features, every feature raises the Qini;
        see ``benchmarks/RESULTS.md``). Not a free lunch: trying every feature also lets the
        many thresholds of continuous noise columns compete with a weak binary modifier, where
        ``"sqrt"`` can rank better, and on the small conversion log of
        ``notebooks/05_planning.ipynb`` (54 features, 13k rows, 9 tasks) ``"sqrt"`` ranked
        slightly better (mean Qini over 5 random halves 0.0085 against 0.0069, within the
        noise).
    max_bins : quantile bins per feature, 2..256.
    honest : split each tree's subsample into a half that chooses the splits and a half that
        estimates the leaves (``False``: both from the whole subsample).
    subsample : share of the rows each tree draws, without replacement.
    shrinkage : prior strength, in rows, of a node's effect toward its parent's: the weight of a
        node's own difference of means is ``n_e / (n_e + shrinkage)`` with
        ``n_e = (1/n_treated + 1/n_control)^-1`` (0: no shrinkage; an empty arm always takes the
        parent's effect).
    seed : random seed (int >= 0); results depend on it only, never on the thread count.
    progress : show a progress bar (``None``: only in interactive sessions).

    Fitted attributes: ``feature_importances_`` (criterion gain per feature, summing to 1),
    ``min_samples_leaf_`` (the leaf size used), ``n_features_in_``, ``n_treatments_``.

    ``predict(X, return_se=True)`` also returns a standard error per estimate: the root mean of
    the trees' leaf standard errors (the sampling variance of each leaf's difference of means).
    The forest averages correlated trees, whose mean has at most the mean variance, so this is a
    conservative (upper) bound on the sampling error of the estimate.
    """

    _STATE_KIND = "growthmachine.planning.UpliftForest"
    _STATE_VERSION = 1
    _PARAMS = (
        "n_estimators",
        "max_depth",
        "min_samples_leaf",
        "min_samples_treatment",
        "max_features",
        "max_bins",
        "honest",
        "subsample",
        "shrinkage",
        "seed",
        "progress",
    )

    def __init__(
        self,
        n_estimators: int = 100,
        *,
        max_depth: int = 8,
        min_samples_leaf: int | str = "auto",
        min_samples_treatment: int = 10,
        max_features: str | float | int = "sqrt+20",
        max_bins: int = 64,
        honest: bool = True,
        subsample: float = 0.5,
        shrinkage: float = 10.0,
        seed: int = 0,
        progress: bool | None = None,
    ):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.min_samples_treatment = min_samples_treatment
        self.max_features = max_features
        self.max_bins = max_bins
        self.honest = honest
        self.subsample = subsample
        self.shrinkage = shrinkage
        self.seed = seed
        self.progress = progress

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params: Any) -> UpliftForest:
        for k, v in params.items():
            if k not in self._PARAMS:
                raise ValueError(f"{k}: unknown parameter of UpliftForest")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._PARAMS)
        return f"UpliftForest({args})"

    def _fit(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> None:
        # Types here; ranges are checked by the core (one definition of each limit).
        ints = {
            p: cv.check_int(getattr(self, p), p, minimum=0)
            for p in ("n_estimators", "max_depth", "min_samples_treatment", "max_bins")
        }
        leaf = self.min_samples_leaf
        if isinstance(leaf, str):
            if leaf != "auto":
                raise ValueError(f"min_samples_leaf: must be an int >= 1 or 'auto', got {leaf!r}")
            leaf = auto_leaf_size(y, w)
        ints["min_samples_leaf"] = cv.check_int(leaf, "min_samples_leaf", minimum=0)
        mf = self.max_features
        if not isinstance(mf, (str, numbers.Real)) or isinstance(mf, bool):
            raise TypeError(
                f"max_features: must be 'sqrt', 'sqrt+20', a float or an int, got "
                f"{type(mf).__name__}"
            )
        if isinstance(mf, numbers.Integral):
            mf = cv.check_int(mf, "max_features", minimum=1)
        elif not isinstance(mf, str):
            mf = cv.check_number(mf, "max_features", minimum=0.0)
        if not isinstance(self.honest, (bool, np.bool_)):
            raise TypeError(f"honest: must be True or False, got {type(self.honest).__name__}")
        subsample = cv.check_number(self.subsample, "subsample")
        shrinkage = cv.check_number(self.shrinkage, "shrinkage")
        seed = cv.check_int(self.seed, "seed", minimum=0, maximum=cv.U64_MAX)
        with _progress.bar(self.progress, "UpliftForest", unit="tree") as cb:
            self._forest = _core.PlanningForest.fit(
                X,
                t,
                y,
                w,
                self.n_treatments_,
                ints["n_estimators"],
                ints["max_depth"],
                ints["min_samples_leaf"],
                ints["min_samples_treatment"],
                mf,
                ints["max_bins"],
                bool(self.honest),
                subsample,
                shrinkage,
                seed,
                progress=cb,
            )
        self.feature_importances_ = self._forest.feature_importances
        self.min_samples_leaf_ = ints["min_samples_leaf"]

    def _predict(self, X: np.ndarray, return_se: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if not hasattr(self, "_forest"):  # the last fit was interrupted or failed
            raise ValueError("UpliftForest: not fitted; call fit(X, treatment, y) first")
        est, se = self._forest.predict(X)
        return est, (se if return_se else None)

    def _predict_pairs(self, X: np.ndarray, Z: np.ndarray, return_se: bool):
        if not hasattr(self, "_forest"):
            raise ValueError("UpliftForest: not fitted; call fit(X, treatment, y) first")
        est, se = self._forest.predict_pairs(X, Z)
        return (est, se) if return_se else est

    def _predict_pairs_into(
        self, X: np.ndarray, rows: np.ndarray, Z: np.ndarray, est: np.ndarray, se: np.ndarray
    ) -> None:
        """``predict_pairs(X[rows], Z, return_se=True)`` written into ``est[rows]`` and
        ``se[rows]`` (float32, (len(X), len(Z)) each; the same numbers as that call's, rounded
        to float32), without copying the rows of ``X`` (``rows``: strictly increasing). For the
        planner's cross-fitting (``X`` checked by the caller: float64, C-contiguous, finite)."""
        if not hasattr(self, "_forest"):
            raise ValueError("UpliftForest: not fitted; call fit(X, treatment, y) first")
        if self.n_treatments_ != 1:
            raise ValueError(
                f"predict_pairs: needs a model fitted with one treatment, this one has "
                f"{self.n_treatments_}"
            )
        Z = cv.as_array(Z, "Z", np.float64, ndim=2, allow_empty=True)
        self._forest.predict_pairs_into(X, rows, Z, est, se)

    def _get_state(self) -> dict[str, Any]:
        s = dict(self.__dict__)
        if "_forest" in s:
            s["_forest"] = s["_forest"]._state_bytes()
        return s

    def _set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        raw = core_bytes(state, "_forest", self._STATE_KIND)
        self.__dict__.update(state)
        if raw is not None:
            self._forest = _core.PlanningForest._from_state_bytes(raw)
            # the sizes the core holds, not copies that could disagree with it
            self.n_features_in_ = self._forest.n_features
            self.n_treatments_ = self._forest.n_treatments
            self.feature_importances_ = self._forest.feature_importances
            if "min_samples_leaf_" not in state:  # saved before "auto": it was the int itself
                self.min_samples_leaf_ = self.min_samples_leaf
