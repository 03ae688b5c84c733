"""``growthmachine run`` stage ``allocate``: the conflicts of the planning stage's candidates
resolved with a certificate, and the value frontier of the binding resource."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..pipeline import check_context
from ._problem import Problem
from ._solution import Solution
from ._solve import solve

__all__ = ["run_stage"]


def _frontier(problem: Problem, resource: str, base: Solution, factors: Sequence[float]):
    rows, prev = [], base
    r = problem.resources.index(resource)
    for f in factors:
        p = problem.with_bounds(**{resource: (problem.lower[r], problem.upper[r] * f)})
        s = solve(p, warm_start=prev, progress=False)
        prev = s
        rows.append(
            {
                "factor": f,
                resource: problem.upper[r] * f,
                "objective": s.objective,
                "dual_bound": s.dual_bound,
                "gap": s.gap,
                "price": float(s.prices[resource]),
                "passes": s.passes,
            }
        )
    return pd.DataFrame(rows)


def run_stage(ctx: Any) -> None:
    """Pipeline stage ``allocate``: resolves the conflicts of the planning stage's candidates
    (``ctx.state.planning_problem``); with no candidates the section says so."""
    check_context(ctx)
    import matplotlib.pyplot as plt

    env = ctx.state.environment
    problem = ctx.state.planning_problem
    if problem is not None:
        source = (
            "the planning stage's candidates (calibrated out-of-fold uplift estimates of every "
            "task for every eligible user, net of expected cost)"
        )
    else:
        ctx.log("[allocate] no candidates: skipped")
        ctx.report.section("allocate", "Allocation: conflicts resolved").text(
            "No candidate tasks to allocate."
        )
        return
    sol = solve(problem, progress=ctx.progress)
    ctx.state.allocation = sol
    ctx.log(f"[allocate] {sol!r}")
    sec = ctx.report.section("allocate", "Allocation: conflicts resolved")
    sec.text(
        f"Input: {source}. {problem.n_users:,} users with {problem.n_candidates:,} candidate "
        f"(user, action) pairs over {problem.n_actions} actions compete for "
        f"{len(problem.resources)} resources ({', '.join(problem.resources)}). The dual "
        "decomposition prices the resources, lets every user pick its best action at those "
        "prices, and certifies the result: no plan can beat the dual bound."
    )
    sec.kpi("status", sol.status)
    sec.kpi("objective", sol.objective, "plan value")
    sec.kpi("dual_bound", sol.dual_bound, "upper bound on any plan")
    sec.kpi("gap", sol.gap, "plan gap to the bound")
    sec.kpi("lp_gap", sol.lp_gap, "certified LP gap")
    sec.kpi("assigned_users", len(sol.assignment), "users given an action")
    sec.kpi("solve_seconds", sol.seconds)
    if env is not None and len(sol.assignment):
        try:
            acts = sol.assignment["action"].to_numpy()
            task_actions = ctx.state.task_actions  # planning task id -> world action
            if task_actions is not None:
                acts = task_actions[acts]
            tu = env.true_uplift(sol.assignment["user"].to_numpy(), acts)
            sec.kpi("true_profit", float(tu["incremental_profit"].sum()), "true value (scoring)")
        except Exception as e:  # noqa: BLE001 - scoring is optional
            ctx.log(f"[allocate] scoring skipped: {e}")
    sec.table("resources", sol.usage, "Budget and capacity use with shadow prices.")
    # Frontier on the first resource that has a positive price (else the first).
    priced = [r for r in problem.resources if sol.prices[r] > 0]
    key = priced[0] if priced else problem.resources[0]
    front = _frontier(problem, key, sol, [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0])
    ctx.state.allocation_frontier = front
    # the candidate problem has served its purpose (at 1M users it holds tens of millions of
    # candidates, which the machine's stage would otherwise carry in memory)
    ctx.state.planning_problem = None
    if ctx.state.task_plan is not None:
        ctx.state.task_plan.problem = None
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
    ax[0].plot(front[key], front["objective"], "o-", label="plan value")
    ax[0].plot(front[key], front["dual_bound"], "k--", lw=1, label="dual bound")
    ax[0].set_xlabel(key)
    ax[0].set_ylabel("value")
    ax[0].legend()
    ax[0].set_title("Value frontier")
    ax[1].bar(sol.usage["resource"], sol.usage["share_of_upper"])
    ax[1].set_ylabel("used / upper bound")
    ax[1].set_title("Resource use")
    ax[1].tick_params(axis="x", rotation=30)
    sec.figure(fig, f"Value as the {key} bound varies (warm-started re-solves) and resource use.")
    sec.table("frontier", front, f"Value frontier over {key}.")
    h = sol.history
    if len(h):
        fig, ax = plt.subplots(figsize=(6, 3.4))
        ax.plot(np.arange(len(h)), h["bound"], label="dual bound")
        lp = h["lp_value"].where(np.isfinite(h["lp_value"]))
        ax.plot(np.arange(len(h)), lp, label="certified primal (LP)")
        ax.set_xlabel("iteration")
        ax.legend()
        ax.set_title("Certificate: bound and primal converge")
        sec.figure(fig, "Dual bound and certified primal value per iteration.")
