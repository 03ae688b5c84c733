"""``growthmachine plan``: the modules on a user's own tables, with no world.

Insight on the transactions, the planner on a randomised campaign log (cross-fitted, calibrated
values), the allocation of tasks under the plan's budget, and off-site exposure frequencies for
the users given no task (response curves fitted on an exposure log when one is given; without
one, a randomised frequency experiment is planned, which is how the curves are first learned).
Written to ``out``: ``tasks.parquet`` (the executable task table), ``exposures.parquet`` (one row
per exposure), ``report.html`` and ``summary.json`` (no truth-based sections: there is no world).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._seeds import derive_seed

__all__ = ["TablePlan", "plan_from_tables", "read_table"]

#: Users-table column telling whether a user has the app (channels with ``requires_app``).
APP_COLUMN = "has_app"


def read_table(path: str | Path, flag: str) -> pd.DataFrame:
    """A Parquet (``.parquet``/``.pq``) or CSV file as a DataFrame; ``ValueError`` naming
    ``flag`` when it is missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{flag} {path}: no such file")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if p.suffix.lower() == ".csv":
            return pd.read_csv(p)
    except Exception as e:  # noqa: BLE001 - any reader error becomes one line naming the flag
        raise ValueError(f"{flag} {path}: cannot be read ({' '.join(str(e).split())})") from None
    raise ValueError(f"{flag} {path}: must be .parquet or .csv")


@dataclass
class TablePlan:
    """What :func:`plan_from_tables` made: the task table, the exposure schedule, and the
    fitted objects behind them."""

    tasks: pd.DataFrame
    exposures: pd.DataFrame
    insight: Any
    planner: Any
    task_plan: Any
    frequency_plan: Any
    report: Any


def _reachable(plan: Any, channels: list[Any], users: pd.DataFrame, ids: np.ndarray) -> np.ndarray:
    u = users.set_index("user_id").loc[ids]
    out = np.ones((len(ids), len(channels)), dtype=bool)
    for j, c in enumerate(channels):
        spec = next(ch for ch in plan.channels if ch.name == c.name)
        if spec.consent is not None and spec.consent in u.columns:
            out[:, j] &= u[spec.consent].to_numpy().astype(bool)
        if spec.requires_app and APP_COLUMN in u.columns:
            out[:, j] &= u[APP_COLUMN].to_numpy().astype(bool)
    return out


def plan_from_tables(
    transactions: pd.DataFrame,
    users: pd.DataFrame,
    campaign_log: pd.DataFrame,
    plan: Any,
    *,
    as_of: int | None = None,
    margin: float = 0.3,
    touchpoint_budget: float | None = None,
    exposure_log: pd.DataFrame | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> TablePlan:
    """Runs insight, planning, allocation and touchpoint planning on tables (see the module
    docs). ``as_of``: the first day of the plan (default: the day after the last transaction);
    ``margin``: contribution margin on GMV; ``touchpoint_budget``: spend on off-site exposures
    (default a tenth of the plan's budget, 0 without one); ``exposure_log``: one row per user
    and channel of a past frequency experiment (``segment``, ``channel``, ``exposures``,
    ``converted``, ``opted_out``; segments are lifecycle stages)."""
    from .. import _convert as cv
    from ..insight import UserInsight
    from ..planning import Planner
    from ..report import Report
    from ..touchpoint import Channel, FrequencyPlanner, ResponseModel

    if as_of is None:
        as_of = int(np.max(cv.as_array(transactions["day"], "transactions['day']"))) + 1
    has_cat = "category" in transactions.columns
    insight = UserInsight(seed=derive_seed(seed, "insight"), progress=progress).fit(
        transactions, as_of=as_of, users=users, category="category" if has_cat else None
    )
    planner = Planner(plan, margin=margin, seed=derive_seed(seed, "planner"), progress=progress)
    planner.fit(campaign_log, insight, users)
    tp = planner.allocate(start_day=as_of)
    tasks = tp.tasks
    # off-site frequencies for the users given no task
    budget = touchpoint_budget
    if budget is None:
        budget = 0.1 * plan.budget if plan.budget is not None else 0.0
    budget = cv.check_number(budget, "touchpoint_budget", minimum=0.0)
    chans = [
        Channel(c.name, c.cost_per_touch, c.daily_cap, c.weekly_cap, c.capacity_per_day)
        for c in plan.channels
        if c.offsite
    ]
    fplan = None
    exposures = pd.DataFrame({"user_id": np.zeros(0, np.int64), "channel": [], "day": []})
    ids = insight.users_["user_id"].to_numpy()
    if chans and budget > 0:
        model = ResponseModel(progress=progress)
        if exposure_log is not None:
            model.fit(exposure_log)
            have = {str(c) for c in model.channels_}
            chans = [c for c in chans if c.name in have] or chans
        fp = FrequencyPlanner(chans, horizon_days=plan.horizon_days, model=model,
                              seed=derive_seed(seed, "touchpoint"), progress=progress)  # fmt: skip
        audience = np.setdiff1d(ids, tasks["user_id"].to_numpy())
        if len(audience):
            stage = insight.users_.set_index("user_id").loc[audience, "stage"].astype(str)
            aov = float(transactions["amount"].mean()) if len(transactions) else 0.0
            fplan = fp.plan(audience, budget, value=margin * aov, segment=stage.to_numpy(),
                            reachable=_reachable(plan, chans, users, audience),
                            start_day=as_of)  # fmt: skip
            exposures = fplan.schedule(content=plan.contents[0].name)
    report = Report("growthmachine plan", meta={"users": len(ids), "as_of": as_of})
    s = insight.summary()
    sec = report.section("insight", "User insight")
    for k in ("n_users", "n_buyers", "n_cells", "total_clv"):
        sec.kpi(k, s[k])
    sec = report.section("planning", "Tasks and their incremental effects")
    sec.text(
        f"{len(tasks):,} users given a task; the forecast is the planner's calibrated "
        "(out-of-fold) values, with no world to check it against."
    )
    for k, v in tp.forecast.items():
        sec.kpi(f"forecast_{k}", v)
    if len(tp.summary):
        sec.table("tasks", tp.summary, "Tasks used by the plan, with their expected effects.")
    if tp.solution is not None:
        for k in ("status", "objective", "dual_bound", "gap"):
            sec.kpi(k, tp.certificate[k])
    sec = report.section("touchpoint", "Off-site exposure frequencies")
    if fplan is None:
        sec.text("No off-site channel or no touchpoint budget: no exposures planned.")
    else:
        sec.text(fplan.message + ".")
        sec.kpi("users_reached", int((fplan.assignment["exposures"] > 0).sum()))
        sec.kpi("average_frequency", fplan.average_frequency)
        sec.kpi("cost", fplan.cost["total"])
        sec.kpi("explored", bool(fplan.assignment["explore"].all()))
    return TablePlan(tasks, exposures, insight, planner, tp, fplan, report)


def write(result: TablePlan, out: str | Path) -> Path:
    out = Path(out)
    result.report.write(out)
    result.tasks.to_parquet(out / "tasks.parquet", index=False)
    ex = result.exposures.copy()
    for c in ex.columns:
        if isinstance(ex[c].dtype, pd.CategoricalDtype):
            ex[c] = ex[c].astype(str)
    ex.to_parquet(out / "exposures.parquet", index=False)
    return out
