"""``TaskPlan``: the executable result of :meth:`growthmachine.planning.Planner.allocate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TaskPlan"]


@dataclass
class TaskPlan:
    """The executable result of :meth:`Planner.allocate`.

    ``tasks``: one row per (user, task) to execute: user_id, task_id, task, benefit, channel,
    content (and day when a start day was given), with the calibrated expectations of each row
    (``expected_profit``, ``expected_gmv``, ``expected_conversion``, ``expected_cost``);
    ``env.apply(plan.tasks)`` accepts it as it is. ``summary``: one row per task used (audience,
    users, expected incremental conversions, GMV, profit, cost, ROI, the budget's shadow price).
    ``forecast``: totals with standard errors; ``solution``: the allocation (certificate)."""

    tasks: pd.DataFrame
    summary: pd.DataFrame
    forecast: dict[str, float]
    solution: Any = field(repr=False)
    problem: Any = field(repr=False)
    #: Users given the competing outside option of :meth:`Planner.allocate` (``extra=``):
    #: ``user_id`` and its ``value``.
    extra: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"user_id": np.zeros(0, np.int64), "value": []}),
        repr=False,
    )

    @property
    def certificate(self) -> dict[str, Any]:
        return self.solution.certificate

    def __repr__(self) -> str:
        f = self.forecast
        return (
            f"TaskPlan({len(self.tasks):,} tasks, expected profit {f['profit']:,.0f} "
            f"+- {f['profit_se']:,.0f}, expected cost {f['cost']:,.0f}, gap {self.solution.gap:.1e})"
        )
