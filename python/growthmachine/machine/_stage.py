"""``growthmachine run`` stage ``machine``: the closed loop against today's marketing.

Runs :class:`~growthmachine.machine.Machine` for ``ctx.periods`` periods on a fresh copy of the
generated world (``ctx.state.world_start``) and every baseline on its own copy, with the same
budget per period; its section opens the report (comparison by policy, cumulative incremental
profit by period, the machine's forecast against the world, the budget split) and
``summary.json`` gets ``comparison[policy]`` and ``history``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..pipeline import check_context
from ._baselines import BASELINES
from ._config import MachineConfig
from ._kpis import KPIS
from ._machine import Machine

__all__ = ["run_stage", "COMPARISON_KEYS"]

#: The KPIs ``summary.json`` carries per policy (all but the count of users treated).
COMPARISON_KEYS = tuple(k for k in KPIS if k != "users_treated")

_LABEL = {
    "machine": "the machine",
    "rfm_rule": "RFM rule (top tiers: largest coupon, 6 ads)",
    "ab_winner": "A/B winner rolled out",
    "random": "random users, random actions",
    "none": "no marketing",
    "oracle": "oracle (true effects; scoring only)",
}


def run_stage(ctx: Any) -> None:
    check_context(ctx)
    start = ctx.state.world_start
    sec = ctx.report.section("machine", "The machine against today's marketing", first=True)
    if start is None:
        sec.text("No simulated world: nothing to run.")
        ctx.log("[machine] no world: skipped")
        return
    env = start.copy()
    cfg = MachineConfig(budget=ctx.budget, seed=ctx.seed_of("machine"))
    machine = Machine(ctx.plan, cfg, progress=ctx.progress)
    ctx.log(
        f"[machine] {ctx.periods} periods of {ctx.period_days} days, {len(BASELINES)} baselines"
    )
    run = machine.run(env, ctx.periods, ctx.period_days, progress=ctx.progress)
    ctx.state.machine = run
    _report(ctx, sec, run, cfg.period_budget(env.n_users))


def _report(ctx: Any, sec: Any, run: Any, budget: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = run.comparison
    per = run.periods
    hist = run.history
    scored = run.scored_periods
    share = run.share_of_oracle()
    ctx.report.data["comparison"] = {
        p: {k: float(comp.loc[p, k]) for k in COMPARISON_KEYS} for p in comp.index
    }
    prof = per.pivot(index="period", columns="policy", values="incremental_profit")
    spend = per.pivot(index="period", columns="policy", values="spend")
    hrows = []
    for _, h in hist.iterrows():
        p = int(h["period"])
        row = {k: (float(v) if isinstance(v, (int, float, np.number)) else v)
               for k, v in h.items()}  # fmt: skip
        row["period"] = p
        row["incremental_profit"] = {c: float(prof.loc[p, c]) for c in prof.columns}
        row["spend"] = {c: float(spend.loc[p, c]) for c in spend.columns}
        hrows.append(row)
    ctx.report.data["history"] = hrows
    m = comp.loc["machine"]
    base = [b for b in comp.index if b not in ("machine", "oracle")]
    best_base = max(base, key=lambda b: comp.loc[b, "incremental_profit"]) if base else None
    sec.text(
        f"The five modules in one loop for {len(per['period'].unique())} periods of "
        f"{ctx.period_days} days, with a budget of {budget:,.0f} per period (expected incentive "
        f"and channel cost): each period insight is refitted on every order so far, the uplift "
        "models on every randomised row so far (hold-out controls and exploration), the "
        "allocation core chooses the tasks, the touchpoint planner the off-site frequencies of "
        "the users given no task, and what users did becomes the next period's log. The same "
        "world, seed and budget run today's marketing, each policy on its own copy of the "
        "world: the RFM rule, an A/B winner rolled out, random targeting and no marketing, and "
        "the oracle (the world's true per-user effects, allocated by the same optimiser at the "
        "machine's own true spend; scoring only). Every figure is the world's exact expectation "
        "of what each policy sent (Environment.expected_outcome), never a noisy draw and never "
        f"a policy's own forecast. The comparison sums periods {scored[0] + 1}..{scored[-1] + 1} "
        "(the first periods only learn: all their campaign budget goes to randomised tasks)."
    )
    sec.kpi("machine_incremental_profit", float(m["incremental_profit"]),
            "machine, incremental profit (scored periods)")  # fmt: skip
    sec.kpi("oracle_incremental_profit", float(comp.loc["oracle", "incremental_profit"])
            if "oracle" in comp.index else float("nan"), "oracle at the same spend")  # fmt: skip
    sec.kpi("share_of_oracle", share, "machine / oracle")
    if best_base is not None:
        sec.kpi("best_baseline", best_base, "best of today's policies")
        sec.kpi(
            "best_baseline_incremental_profit", float(comp.loc[best_base, "incremental_profit"])
        )
    sec.kpi("machine_spend", float(m["spend"]), "machine, true spend (scored periods)")
    sec.kpi("machine_opt_outs", float(m["opt_outs"]), "machine, expected opt-outs")
    fc = hist[hist["period"].isin(scored)]
    err = np.abs(fc["forecast_profit"] / fc["true_profit"].where(fc["true_profit"] != 0) - 1)
    err = err[np.isfinite(err)]
    sec.kpi("forecast_error_worst", float(err.max()) if len(err) else float("nan"),
            "largest |forecast / truth - 1| over scored periods")  # fmt: skip
    if "session_incremental_value" in hist:
        sv = float(hist["session_incremental_value"].sum())
        ss = float(hist["session_spend"].sum())
        sec.kpi("session_incremental_value", sv, "on-site sessions: net value over no intervention")
        sec.kpi("session_spend", ss, "on-site sessions: incentive spend")
        sec.text(
            f"On site, the real-time session policy served {int(hist['sessions'].sum()):,} "
            f"visits over the run with its own incentive budget, learning across periods: "
            f"{sv:,.0f} of net value (GMV minus incentives) over no intervention on the same "
            f"visits, for {ss:,.0f} of incentives. It is not in the comparison below, which "
            "covers what each policy sent to users (the baselines have no on-site policy)."
        )
    table = comp.copy()
    table.insert(0, "policy", [_LABEL.get(p, p) for p in table.index])
    table["share_of_oracle"] = table["incremental_profit"] / float(
        comp.loc["oracle", "incremental_profit"] if "oracle" in comp.index else np.nan
    )
    sec.table("comparison", table.reset_index(names="key"),
              "KPIs per policy over the scored periods (exact expectations).")  # fmt: skip
    # cumulative profit by period and policy
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    cum = prof.cumsum()
    for c in cum.columns:
        axes[0].plot(cum.index + 1, cum[c], marker="o", ms=3, label=_LABEL.get(c, c),
                     lw=2.2 if c == "machine" else 1.2, ls="--" if c == "oracle" else "-")  # fmt: skip
    axes[0].axhline(0, color="k", lw=0.6)
    axes[0].set_xlabel("period")
    axes[0].set_ylabel("cumulative incremental profit")
    axes[0].set_title("Cumulative incremental profit (truth)")
    axes[0].legend(fontsize=7)
    axes[1].plot(hist["period"] + 1, hist["true_profit"], marker="o", label="world (truth)")
    axes[1].plot(hist["period"] + 1, hist["forecast_profit"], marker="s", ls="--",
                 label="machine's forecast")  # fmt: skip
    axes[1].axhline(0, color="k", lw=0.6)
    axes[1].set_xlabel("period")
    axes[1].set_ylabel("incremental profit")
    axes[1].set_title("The machine's forecast vs the world")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    sec.figure(fig, "Cumulative incremental profit per policy, and each period's forecast against "
                    "the world's exact expectation.")  # fmt: skip
    plt.close(fig)
    cols = ["period", "start_day", "forecast_profit", "true_profit", "forecast_campaign",
            "true_campaign", "forecast_explore", "true_explore", "forecast_touchpoint",
            "true_touchpoint"]  # fmt: skip
    h = hist[cols].copy()
    h["period"] += 1
    sec.table("forecast_vs_truth", h, "The machine per period: its forecast (its own calibrated "
              "estimates) against the world's expectation, by part of the plan.")  # fmt: skip
    bcols = ["period", "budget", "budget_campaign", "budget_explore", "budget_touchpoint",
             "users_planned", "users_explored", "users_held_out", "users_touchpoint",
             "log_rows"] + [c for c in hist.columns if c.startswith(("channel_cost_", "touches_",
                                                                     "optouts_", "session"))]  # fmt: skip
    b = hist[bcols].copy()
    b["period"] += 1
    sec.table("budget_split", b, "Budget split, group sizes and channel use per period.")
    sec.table("by_period", per.assign(period=per["period"] + 1),
              "Every policy's KPIs per period.", max_rows=60)  # fmt: skip
    if "ab_winner" in comp.index:
        arms = getattr(run.state.get("baselines", {}).get("ab_winner"), "arms_", None)
        if isinstance(arms, pd.DataFrame):
            sec.table("ab_test", arms.reset_index(), "The A/B test's arms (mean profit lift).")
    ctx.log(f"[machine] share of oracle {share:.1%}; machine {m['incremental_profit']:,.0f}")
