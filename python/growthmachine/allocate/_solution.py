"""The result of :func:`~growthmachine.allocate.solve`: the plan and its certificate, built from
the core's output dict (:func:`certificate` is shared with the touchpoint planner)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._state import Versioned

if TYPE_CHECKING:  # pragma: no cover
    from ._problem import Problem

__all__ = ["Solution", "certificate", "solution_of"]


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


def solution_of(problem: Problem, out: dict, method: str, seconds: float) -> Solution:
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
