"""Uplift per group with empirical-Bayes shrinkage toward coarser groups (Rust core).

The effect of each treatment in a group (a user cell, say) is its difference in means, shrunk
toward the estimate of the coarser group that contains it (cell -> cluster -> stage -> all users):
``w * raw + (1 - w) * parent`` with ``w = n_e / (n_e + k)``, ``n_e = (1/n_treated +
1/n_control)^-1``. ``k`` is given or estimated per level and treatment by the method of moments
(between-group variance of the effects against their sampling variance: the parametric empirical
Bayes of Morris 1983, "Parametric empirical Bayes inference: theory and applications", JASA). One
pass over the log in Rust; details in ``src/planning/cell.rs``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ... import _convert as cv
from ... import _core
from ..._core import StateError
from ..._state import core_bytes
from ._base import UpliftModel, check_fit_inputs

__all__ = ["CellUplift"]


class CellUplift(UpliftModel):
    """Difference in means per (group, treatment), shrunk along a hierarchy of groupings.

    Parameters
    ----------
    levels : names of the grouping columns, finest first (e.g. ``["cell", "cluster", "stage"]``).
        With a table as ``groups`` they select its columns (``None``: every column, in order);
        with an array they name its columns. An implicit global level sits above the last one.
    prior_strength : ``"auto"`` (estimated per level and treatment by the method of moments) or a
        number ``k >= 0`` of rows: a group's own estimate gets the weight ``n_e / (n_e + k)``; 0
        keeps every raw difference in means.
    min_count : rows needed in a group's treated arm and in its control arm for it to have its own
        estimate; a group below takes its parent's.

    ``fit(groups, treatment, y, sample_weight=None)``: ``groups`` is an (n, L) array (or table) of
    integer group codes in 0..2^31-1, finest level first. Level ``l``'s group of a row is the
    combination of its codes at levels ``l..L-1``, so levels need not be nested.
    ``predict(groups, return_se=False)``: each row gets the estimate of its finest group seen in
    the fit; unseen codes fall back to the last coarser level found (the global effect if the
    coarsest code is new); ``return_se`` adds the posterior standard error.

    Fitted attributes: ``levels_`` (names), ``n_groups_`` (groups per level), ``prior_strength_``
    ((L, T) array of the ``k`` used; ``inf`` means full pooling), ``global_effect_`` ((T,)),
    ``n_features_in_`` (L), ``n_treatments_``.
    """

    _STATE_KIND = "growthmachine.planning.CellUplift"
    _STATE_VERSION = 1
    _PARAMS = ("levels", "prior_strength", "min_count")

    def __init__(
        self,
        levels: Sequence[str] | None = None,
        *,
        prior_strength: str | float = "auto",
        min_count: int = 1,
    ):
        self.levels = levels
        self.prior_strength = prior_strength
        self.min_count = min_count

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self._PARAMS}

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._PARAMS)
        return f"CellUplift({args})"

    def _codes(self, groups: Any, name: str, n_levels: int | None) -> tuple[np.ndarray, list]:
        """(n, L) C-contiguous int64 codes and the level names."""
        levels = None if self.levels is None else [str(v) for v in self.levels]
        if not isinstance(groups, np.ndarray) and cv.is_table(groups):
            cols = levels if levels is not None else cv.columns(groups, name)
            if not cols:
                raise ValueError(f"{name}: has no columns")
            g = np.column_stack(
                [cv.as_array(cv.column(groups, name, c), f"{name}[{c!r}]", np.int64) for c in cols]
            )
            names = list(cols)
        else:
            if isinstance(groups, Mapping):
                raise TypeError(f"{name}: expected an array or a table")
            g = cv.as_array(groups, name, np.int64, ndim=2)
            if n_levels is not None and g.shape[1] != n_levels:
                raise ValueError(
                    f"{name}: has {g.shape[1]} levels (columns), but CellUplift was fitted with "
                    f"{n_levels}"
                )
            if levels is not None and len(levels) != g.shape[1]:
                raise ValueError(
                    f"{name}: has {g.shape[1]} columns, but levels names {len(levels)}"
                )
            names = levels if levels is not None else [f"level{i}" for i in range(g.shape[1])]
        if n_levels is not None and g.shape[1] != n_levels:
            raise ValueError(
                f"{name}: has {g.shape[1]} levels (columns), but CellUplift was fitted with "
                f"{n_levels}"
            )
        return np.ascontiguousarray(g), names

    def fit(self, groups: Any, treatment: Any, y: Any, sample_weight: Any = None) -> CellUplift:
        """Fits on group codes (an (n, L) array or table, finest level first); returns self."""
        g, names = self._codes(groups, "groups", None)
        ps = self.prior_strength
        if isinstance(ps, str):
            cv.check_choice(ps, "prior_strength", ("auto",))
            k = None
        else:
            k = cv.check_number(ps, "prior_strength", minimum=0.0)
        min_count = cv.check_int(self.min_count, "min_count", minimum=1)
        # The shared checks of treatment, y and weights (one validation path; the finest code
        # column stands in for X).
        _, t, y, w, n_t = check_fit_inputs(g[:, :1], treatment, y, sample_weight)
        self.n_features_in_ = g.shape[1]
        self.n_treatments_ = n_t
        self._fit_codes(g, t, y, w, k, min_count)
        self.levels_ = names
        return self

    def _fit_codes(self, g, t, y, w, k, min_count) -> None:
        self._model = _core.PlanningCell.fit(g, t, y, w, self.n_treatments_, k, min_count)
        self._read_model()

    def _read_model(self) -> None:
        """The fitted attributes the core holds, read from it (after fitting and loading)."""
        self.n_features_in_ = self._model.n_levels
        self.n_treatments_ = self._model.n_treatments
        self.n_groups_ = list(self._model.n_groups)
        self.prior_strength_ = self._model.prior_strength
        self.global_effect_ = np.asarray(self._model.global_effect[0])

    def predict(self, X: Any, *, return_se: bool = False):
        """Estimated uplift of each row's finest known group: (n,) for one treatment, (n, T)."""
        est, se, _ = self._lookup(X)
        if self.n_treatments_ == 1:
            est, se = est[:, 0], se[:, 0]
        return (est, se) if return_se else est

    def predict_level(self, X: Any) -> np.ndarray:
        """The level each row's estimate comes from: 0 = finest, ..., L = global (unseen)."""
        return self._lookup(X)[2].astype(np.int64)

    def _lookup(self, X: Any):
        self._check_fitted()
        g, _ = self._codes(X, "X", self.n_features_in_)
        return self._model.predict(g)

    def _predict(self, X: np.ndarray, return_se: bool) -> tuple[np.ndarray, np.ndarray | None]:
        est, se, _ = self._lookup(X)
        return est, (se if return_se else None)

    def _get_state(self) -> dict[str, Any]:
        s = dict(self.__dict__)
        if "_model" in s:
            s["_model"] = s["_model"]._state_bytes()
        return s

    def _set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        raw = core_bytes(state, "_model", self._STATE_KIND)
        self.__dict__.update(state)
        if raw is not None:
            self._model = _core.PlanningCell._from_state_bytes(raw)
            self._read_model()
            if len(self.levels_) != self.n_features_in_:
                raise StateError(
                    f"{self._STATE_KIND} state: {len(self.levels_)} level names for "
                    f"{self.n_features_in_} levels"
                )
