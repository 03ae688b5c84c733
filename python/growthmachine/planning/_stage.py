"""``growthmachine run`` stage ``planning``: experiment -> planner -> candidates for allocate.

Runs one randomised experiment over the default plan's tasks in the simulated world, fits the
:class:`~growthmachine.planning.Planner` (cross-fitted, calibrated values), plans at the budget,
and hands the candidate problem to the ``allocate`` stage (``ctx.state.planning_problem``).
The report section compares the plan's forecast with the world's exact expectation
(``env.true_uplift``, scoring only) and with ``env.oracle_allocation`` at the same true spend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..pipeline import check_context
from ._plan import ROWS_PER_TASK, experiment_plan
from ._planner import Planner
from ._world import run_experiment, world_actions

#: Default planning budget per user of the world (expected incentive + channel cost).
BUDGET_PER_USER = 0.1


#: Below this many delivered rows for some task the stage plans nothing: the estimates and the
#: calibration would be noise.
MIN_ROWS_PER_TASK = 50


def _scores(env: Any, tasks: pd.DataFrame) -> dict[str, float]:
    if not len(tasks):
        return {"true_profit": 0.0, "true_spend": 0.0, "oracle_profit": 0.0}
    tu = env.true_uplift(tasks["user_id"].to_numpy(), tasks["action_id"].to_numpy())
    spend = float(tu["expected_cost"].sum())
    n_pairs = env.n_users * len(env.actions)
    if n_pairs > 20_000_000:  # the oracle's dense table would not fit: scored in chunks later
        oracle = float("nan")
    else:
        oracle = float(env.oracle_allocation(budget=spend).attrs["total_value"])
    return {
        "true_profit": float(tu["incremental_profit"].sum()),
        "true_gmv": float(tu["incremental_gmv"].sum()),
        "true_spend": spend,
        "oracle_profit": oracle,
    }


def run_stage(ctx: Any) -> None:
    check_context(ctx)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import metrics

    env = ctx.state.environment
    insight = ctx.state.insight
    pop = ctx.state.population
    sec = ctx.report.section("planning", "Operation planning: tasks and their incremental effects")
    if env is None or insight is None or pop is None:
        sec.text("No simulated world or insight to plan on: nothing to do.")
        ctx.log("[planning] no environment or insight: skipped")
        return
    budget = BUDGET_PER_USER * env.n_users
    plan = experiment_plan(env, budget)
    tasks = plan.tasks()
    log = run_experiment(env, plan, share=0.5, seed=ctx.seed_of("planning", "experiment"),
                         progress=False)  # fmt: skip
    treated = log["action_id"].to_numpy() >= 0
    delivered = log["delivered"].to_numpy() & treated
    counts = np.bincount(log["action_id"].to_numpy()[delivered], minlength=len(tasks))
    if (log["action_id"].to_numpy() < 0).sum() < MIN_ROWS_PER_TASK or (
        counts < MIN_ROWS_PER_TASK
    ).any():
        sec.text(
            f"The world has {env.n_users:,} users: too few for one experiment over the plan's "
            f"{len(tasks)} tasks (every task needs at least {MIN_ROWS_PER_TASK} delivered rows, "
            f"the thinnest got {int(counts.min())}). Nothing was planned."
        )
        ctx.log("[planning] too few users for the experiment: skipped")
        return
    planner = Planner(
        plan, margin=float(env.config.response.margin), seed=ctx.seed_of("planning", "planner")
    )
    planner.progress = ctx.progress
    planner.fit(log, insight, pop.users, opted_out=env.opted_out())
    tp = planner.allocate(start_day=env.day)
    task_actions = world_actions(env, tasks)
    tp.tasks["action_id"] = task_actions[tp.tasks["task_id"].to_numpy()]
    ctx.state.task_actions = task_actions
    ctx.state.plan_spec = plan
    ctx.state.planner = planner
    ctx.state.task_plan = tp
    ctx.state.planning_problem = tp.problem
    sc = _scores(env, tp.tasks)
    s = planner.log_summary_
    sec.text(
        f"Plan: the world's catalogue as {len(tasks)} tasks (benefit x channel x content; "
        f"{len(plan.contents)} of {len(env.config.response.contents)} content variants, as many "
        f"as one experiment can measure with ~{ROWS_PER_TASK:,} delivered rows per task), "
        f"budget {budget:,.0f} of expected cost over {plan.horizon_days} days. One randomised "
        f"experiment ({s['control']:,} controls, {s['treated_delivered']:,} delivered "
        f"treatments; {s['treated_not_delivered_left_out']:,} treated users whose task broke a "
        "channel rule reached nobody and are left out) fitted the uplift forest on GMV and "
        "redeemed cost, cross-fitted over 2 folds of users; each estimate was then calibrated on "
        "the log (per benefit, the effect measured against every control its tasks could reach, "
        "valued at 0 when the log cannot tell it from 0, shrunk by its noise and spread over the "
        "pairs by their out-of-fold scores; the cost by randomised bins of its score), so that "
        "the values handed to the allocator are realised effects, not raw model scores."
    )
    sec.kpi("tasks_planned", len(tp.tasks), "users given a task")
    sec.kpi("forecast_profit", tp.forecast["profit"], "the plan's own forecast")
    sec.kpi("forecast_profit_se", tp.forecast["profit_se"])
    sec.kpi("forecast_cost", tp.forecast["cost"])
    sec.kpi("true_profit", sc["true_profit"], "world's exact expectation (scoring)")
    sec.kpi("true_spend", sc["true_spend"])
    sec.kpi("oracle_profit_same_spend", sc["oracle_profit"], "true per-user effects, same spend")
    share = sc["true_profit"] / sc["oracle_profit"] if sc["oracle_profit"] > 0 else float("nan")
    ratio = tp.forecast["profit"] / sc["true_profit"] if sc["true_profit"] else float("nan")
    sec.kpi("share_of_oracle", share)
    sec.kpi("forecast_over_true", ratio)
    sec.text(
        f"Scored on the world's truth: the plan earns {sc['true_profit']:,.0f} of incremental "
        f"profit at a true spend of {sc['true_spend']:,.0f}, {share:.1%} of the oracle's "
        f"{sc['oracle_profit']:,.0f} at the same spend. It forecast {tp.forecast['profit']:,.0f} "
        f"+- {tp.forecast['profit_se']:,.0f} ({ratio:.2f}x the truth): calibration removes most "
        "of the winner's curse of the raw scores, not the part due to choosing each user's best "
        "of many tasks."
    )
    sec.table("tasks", tp.summary, "Tasks used by the plan, with their expected effects.")
    # estimated vs true effect per task (over the planned users)
    if len(tp.tasks):
        tu = env.true_uplift(tp.tasks["user_id"].to_numpy(), tp.tasks["action_id"].to_numpy())
        cmp = pd.DataFrame(
            {
                "task": tp.tasks["task"].to_numpy(),
                "expected_profit": tp.tasks["expected_profit"].to_numpy(),
                "true_profit": tu["incremental_profit"].to_numpy(),
            }
        )
        by = cmp.groupby("task").agg(
            users=("task", "size"),
            expected_profit=("expected_profit", "sum"),
            true_profit=("true_profit", "sum"),
        )
        by = by.sort_values("users", ascending=False).reset_index()
        sec.table("estimated_vs_true", by, "Forecast and true incremental profit per task.")
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.scatter(by["expected_profit"], by["true_profit"], s=np.sqrt(by["users"]) + 4)
        lim = [
            min(by[["expected_profit", "true_profit"]].min()),
            by[["expected_profit", "true_profit"]].max().max(),
        ]
        ax.plot(lim, lim, "k--", lw=1)
        ax.set_xlabel("forecast incremental profit")
        ax.set_ylabel("true incremental profit (world)")
        ax.set_title("Forecast vs truth per task")
        sec.figure(fig, "Each task's forecast against the world's exact expectation.")
    # Qini of the profit score on the experiment (treated at their task vs controls)
    d = planner._cal_data
    score, y = d["targets"]["profit"]
    qx, qy = metrics.qini_curve(y, score, d["treated"].astype(int))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(qx, qy, label="calibrated planner (out-of-fold)")
    ax.plot([0, qx[-1]], [0, qy[-1]], "k--", lw=1, label="random")
    ax.set_xlabel("pairs targeted (by score)")
    ax.set_ylabel("incremental profit (Qini)")
    ax.legend()
    ax.set_title("Qini curve on the experiment")
    sec.figure(fig, "Qini curve of the out-of-fold profit score on the experiment's log.")
    names = (
        sorted(set(tasks[planner.calibrate_by].astype(str))) if planner.calibrate_by else ["all"]
    )
    for key in ("gmv", "cost"):
        tab = pd.concat(
            [c.table().assign(stratum=nm) for nm, c in zip(names, planner.calibration_[key],
                                                            strict=True)]
        )  # fmt: skip
        sec.table(f"calibration_{key}", tab,
                  f"Score -> realised effect map ({key}), per stratum; the planned profit is "
                  "margin x GMV - cost.")  # fmt: skip
    ctx.log(f"[planning] {tp!r}; true profit {sc['true_profit']:,.0f} ({share:.1%} of oracle)")
