"""The real-time section of the main job (``growthmachine run``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..pipeline import check_context
from . import world as _world


def run_stage(ctx: Any) -> None:
    """Pipeline stage ``realtime``: learns a budgeted session policy on the environment's visit
    stream (``ctx.state.environment.sessions``; without one, a ``gm.sim`` world of its own with as
    many users as sessions per round, seeded from the run's seed), compares it
    with no intervention and with "exit offer to all" on the same sessions, and reports the
    learning curve and spend against the budget."""
    check_context(ctx)
    env = ctx.state.environment
    n = int(min(20_000, max(2_000, ctx.n_users // 5)))
    rounds = 20
    if env is not None and hasattr(env, "sessions"):
        world = "the environment's session stream"
    else:
        from .. import sim

        pop = sim.Population.generate(
            n, days=ctx.days, seed=ctx.seed_of("realtime", "population"), progress=False
        )
        env = sim.Environment(pop, seed=ctx.seed_of("realtime", "environment"))
        world = f"a simulated world of {n:,} users of its own (no environment was available)"

    def make_batch(sd: int) -> Any:
        return env.sessions(n, seed=ctx.seed_of("realtime", "sessions", sd))

    ctx.log(f"[realtime] {rounds} rounds of {n:,} sessions on {world}")
    summary, runs, sp = _world.compare(
        make_batch, n=n, rounds=rounds, seed=ctx.seed_of("realtime", "policy")
    )
    ctx.state.realtime = {"summary": summary, "runs": runs, "policy": sp}

    sec = ctx.report.section("realtime", "Real-time strategy engine")
    learned = runs["session policy (budgeted)"]
    rule = runs["exit offer to all"]
    base = runs["no intervention"]
    budget = float(summary["budget"].iloc[2])
    sec.text(
        f"At every step of a visit (browse, cart, exit intent) the session policy chooses an "
        f"intervention (none, guidance, coupons, free shipping, exit coupon) from the visit's "
        f"context and funnel stage. One linear value model per stage (Thompson sampling) learns "
        f"the net value (GMV minus incentive cost) of the rest of the session after each "
        f"action, so guidance that pays off at checkout is credited. Incentives are paced to a "
        f"budget equal to what the fixed rule 'exit coupon to everyone at exit intent' spends "
        f"on the same sessions ({budget:,.0f}): dual pacing raises the price of spend when it "
        f"runs ahead and never exceeds the budget. {rounds} rounds of {n:,} sessions on {world}; "
        f"the three policies see the same sessions."
    )
    late = slice(rounds // 2, None)
    sec.kpi(
        "net_value_session_policy",
        float(learned["net_value"].iloc[late].mean()),
        "net value / session, session policy (2nd half)",
    )
    sec.kpi(
        "net_value_exit_rule",
        float(rule["net_value"].iloc[late].mean()),
        "net value / session, exit offer to all",
    )
    sec.kpi(
        "net_value_no_intervention",
        float(base["net_value"].iloc[late].mean()),
        "net value / session, no intervention",
    )
    sec.kpi("spend", float(sp.spend_), "incentive spend, session policy")
    sec.kpi("budget", budget, "budget")
    sec.kpi(
        "spend_over_budget",
        float(sp.spend_) / budget if budget > 0 else float("nan"),
        "spend / budget",
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, r in runs.items():
        axes[0].plot(r["round"] + 1, r["net_value"], marker="o", ms=3, label=name)
    axes[0].set_xlabel(f"round ({n:,} sessions each)")
    axes[0].set_ylabel("net value / session")
    axes[0].set_title("Learning curve")
    axes[0].legend(fontsize=8)
    cum = np.cumsum(learned["cost"].to_numpy() * n)
    axes[1].plot(learned["round"] + 1, cum, marker="o", ms=3, label="spend (session policy)")
    axes[1].plot(
        learned["round"] + 1,
        np.cumsum(rule["cost"].to_numpy() * n),
        ls=":",
        label="spend (exit offer to all)",
    )
    axes[1].axhline(budget, color="k", lw=1, label="budget")
    axes[1].set_xlabel("round")
    axes[1].set_ylabel("cumulative incentive spend")
    axes[1].set_title("Spend vs budget")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    sec.figure(fig, "Net value per session by round, and cumulative spend against the budget.")
    plt.close(fig)
    sec.table("policies", summary, "Policies compared on the same sessions.")
    sec.table("session_policy_rounds", learned, "The budgeted session policy, round by round.")
