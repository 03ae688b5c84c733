"""Pipeline stage ``touchpoint``: off-site exposure frequencies for the users the allocation
targets off-site (everyone when it targets nobody off-site), learned on the world and scored on
its truth.

1. An experiment from flat priors: every audience user gets a randomised channel and frequency
   (0 included) within the budget; the world applies it; the response model is fitted on it.
2. The plan: the FrequencyPlanner on the fitted curves (10 % of the users keep exploring), under
   the budget and the world's caps; scored with ``Environment.expected_outcome`` against the
   uniform rule (6 ads each), "as many as the caps allow", and the same planner on the world's
   true curves (per segment and per user), on a sample of the audience (true curves cost one
   exact evaluation per user, channel and level).
3. The plan is applied and observed: the curves are updated for the next period.

Each user's features (:func:`user_covariates`: the run's fitted insight and the users table, one
source describing a user for every stage) are logged with the outcomes, so the response model
fits the curves' height per user (``ResponseModel.height``); with :data:`HEIGHTS` the plan uses
them, and the comparison shows the planner with and without them either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..pipeline import check_context
from ._features import user_covariates
from ._planner import FrequencyPlanner
from ._response import ResponseModel
from ._scoring import (
    max_caps_plan,
    score,
    segment_curves,
    true_curves,
    uniform_plan,
    world_fatigue,
    world_reachable,
    world_segments,
)

CHANNELS = ("ads", "sms", "email")
#: Value of one incremental conversion in the stage's plans and cost of one opt-out.
VALUE = 10.0
OPTOUT_COST = 1.0
#: Budget: the uniform rule's spend (6 ads to every audience user ads can reach).
UNIFORM_EXPOSURES = 6
#: Users whose true curves are computed for the comparison.
SCORING_SAMPLE = 10_000
#: Fewest audience users for an experiment worth fitting.
MIN_USERS = 2_000
#: Whether the stage's plan scales each user's curve height from its features (the heights are
#: fitted and compared either way; see benchmarks/RESULTS.md, touchpoint world).
HEIGHTS = False


def _covariates(ctx: Any, env: Any, users: np.ndarray) -> pd.DataFrame | None:
    """The users' features from the run's insight (None without one)."""
    insight = ctx.state.insight
    if insight is None:
        return None
    return user_covariates(insight, env.population.users, user_ids=users)


def _audience(ctx: Any, env: Any) -> tuple[np.ndarray, str]:
    sol = ctx.state.allocation
    if sol is not None and len(sol.assignment):
        acts = sol.assignment["action"].to_numpy()
        task_actions = ctx.state.task_actions
        if task_actions is not None:
            acts = task_actions[acts]
        ch = env.actions["channel"].astype(str).to_numpy()[acts]
        users = np.unique(sol.assignment["user"].to_numpy()[np.isin(ch, CHANNELS)])
        if len(users) >= MIN_USERS:
            return users.astype(np.int64), "the users the allocation targets off-site"
    return np.arange(
        env.n_users, dtype=np.int64
    ), "every user (the allocation targets too few off-site)"


def _budget(planner: FrequencyPlanner, reach: np.ndarray) -> float:
    return UNIFORM_EXPOSURES * planner.channels[0].unit_cost * float(reach[:, 0].sum())


def run_stage(ctx: Any) -> None:
    check_context(ctx)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = ctx.state.environment
    sec = ctx.report.section("touchpoint", "External touchpoints: exposure frequency planning")
    if env is None:
        sec.text("No simulated world: nothing to plan.")
        ctx.log("[touchpoint] no environment: skipped")
        return
    users, who = _audience(ctx, env)
    if len(users) < MIN_USERS:
        sec.text(
            f"The world has {len(users):,} users: too few for a frequency experiment (at least "
            f"{MIN_USERS:,}). Nothing was planned."
        )
        ctx.log("[touchpoint] too few users: skipped")
        return
    model = ResponseModel(forget=0.5, progress=ctx.progress)
    planner = FrequencyPlanner.for_world(
        env,
        CHANNELS,
        optout_cost=OPTOUT_COST,
        model=model,
        seed=ctx.seed_of("touchpoint"),
        progress=ctx.progress,
    )
    # 1. The experiment from flat priors.
    reach = world_reachable(env, users, planner.channels)
    budget = _budget(planner, reach)
    seg = world_segments(env, users)
    cov = _covariates(ctx, env, users)
    exp = planner.plan(users, budget, value=VALUE, segment=seg, reachable=reach, start_day=env.day,
                       fatigue=world_fatigue(env, users), covariates=cov)  # fmt: skip
    out = env.apply(
        exp.schedule(), start_day=env.day, days=planner.horizon_days, progress=ctx.progress
    )
    planner.observe(out)  # with the plan's covariates
    # 2. The plan from the fitted curves.
    reach = world_reachable(env, users, planner.channels)
    budget = _budget(planner, reach)
    seg = world_segments(env, users)
    start = env.day
    use = cov if HEIGHTS else None
    plan = planner.plan(users, budget, value=VALUE, segment=seg, reachable=reach, start_day=start,
                        fatigue=world_fatigue(env, users), covariates=use)  # fmt: skip
    ctx.state.touchpoint_planner = planner
    ctx.state.touchpoint_plan = plan
    ctx.log(f"[touchpoint] {plan!r}")
    sec.text(
        f"Audience: {who}, {len(users):,} users; channels {', '.join(CHANNELS)} over "
        f"{planner.horizon_days} days; budget {budget:,.0f} (the uniform rule's spend: "
        f"{UNIFORM_EXPOSURES} ads to every user ads can reach). An experiment from flat priors "
        f"({int((exp.assignment['exposures'] > 0).sum()):,} users on randomised frequencies, the "
        f"rest randomised controls) fitted the response curves per segment and channel "
        f"({len(model.segments_):,} segments: lifecycle stage x recent contact pressure x age "
        "band), pooled across segments"
        + (
            ""
            if cov is None
            else f", and each user's curve height from {cov.shape[1]} features of the run's "
            "insight and users table"
        )
        + f". The planner then chose each user's channel and frequency ("
        f"{planner.explore_share:.0%} keep exploring)"
        + (", with those heights. " if use is not None else ". ")
        + plan.message
        + "."
    )
    for k in ("status", "objective", "dual_bound", "gap"):
        sec.kpi(k, getattr(plan, k))
    sec.kpi("users_reached", int((plan.assignment["exposures"] > 0).sum()))
    sec.kpi("average_frequency", plan.average_frequency, "of the reached users")
    sec.kpi("attainable_average", plan.attainable_average, "highest average the budget buys")
    sec.kpi("spend", plan.cost["total"])
    sec.table("resources", plan.usage, "Budget and channel capacities with shadow prices.")
    sec.table("reach", plan.reach.to_frame(), "Users reached with at least k exposures.")
    roi = plan.marginal_roi.sort_values("users", ascending=False).head(15)
    sec.table("marginal_roi", roi, "Marginal ROI of one more level step, largest segments.")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    f = plan.frequency
    axes[0].bar(f.index.astype(int).astype(str), f.to_numpy())
    axes[0].set(xlabel="exposures over the horizon", ylabel="users", title="frequency")
    axes[0].tick_params(axis="x", labelrotation=90)
    axes[1].plot(plan.reach.index, plan.reach.to_numpy(), marker="o")
    axes[1].set(xlabel="k", ylabel="users with >= k exposures", title="reach curve")
    fig.tight_layout()
    sec.figure(fig, "Frequency distribution and reach curve of the plan.")
    plt.close(fig)
    # 3. Scored on the world's truth (a sample of the audience for the true curves).
    try:
        _compare(ctx, sec, env, planner, users, plan, plt, cov)
    except Exception as e:  # noqa: BLE001 - scoring is optional
        ctx.log(f"[touchpoint] scoring skipped: {e}")
    # 4. Applied and observed: the curves learn from what users did.
    out = env.apply(
        plan.schedule(), start_day=start, days=planner.horizon_days, progress=ctx.progress
    )
    planner.observe(out, plan, covariates=cov)
    sec.kpi("conversions_observed", int(out["converted"].to_numpy()[users].sum()),
            "audience users who ordered in the window (baseline included)")  # fmt: skip


def _compare(ctx, sec, env, planner, users, plan, plt, cov=None) -> None:
    rng = np.random.default_rng(ctx.seed_of("touchpoint", "sample"))
    pick = np.sort(rng.choice(len(users), size=min(SCORING_SAMPLE, len(users)), replace=False))
    sample = users[pick]
    reach = world_reachable(env, sample, planner.channels)
    budget = _budget(planner, reach)
    start = plan.start_day
    seg = world_segments(env, sample)
    inc, opt = true_curves(env, planner, sample, reachable=reach, start_day=start,
                           progress=ctx.progress)  # fmt: skip
    rows = {}
    uni = uniform_plan(planner, sample, reachable=reach, start_day=start)
    rows["uniform 6 ads"] = score(env, uni, progress=ctx.progress)
    mx = max_caps_plan(planner, sample, budget, reachable=reach, start_day=start,
                         seed=ctx.seed_of("touchpoint", "max_caps"))  # fmt: skip
    rows["max caps ads"] = score(env, mx, progress=ctx.progress)
    ours = planner.plan(sample, budget, value=VALUE, segment=seg, reachable=reach,
                        start_day=start, explore=False,
                        fatigue=world_fatigue(env, sample))  # fmt: skip
    rows["planner (fitted curves)"] = score(env, ours, progress=ctx.progress)
    main = "planner (fitted curves)"  # the row of the stage's own plan
    if cov is not None and planner.model.covariates_ is not None:
        x = cov.iloc[pick].reset_index(drop=True)
        ours_h = planner.plan(sample, budget, value=VALUE, segment=seg, reachable=reach,
                              start_day=start, explore=False,
                              fatigue=world_fatigue(env, sample), covariates=x)  # fmt: skip
        rows["planner + heights"] = score(env, ours_h, progress=ctx.progress)
        if HEIGHTS:
            ours, main = ours_h, "planner + heights"
    g_inc, g_opt, codes = segment_curves(inc, opt, seg, reach)
    tru_g = planner.plan(sample, budget, value=VALUE, segment=codes, reachable=reach,
                         curves=(g_inc, g_opt), start_day=start)  # fmt: skip
    rows["true segment curves"] = score(env, tru_g, progress=ctx.progress)
    tru = planner.plan(sample, budget, value=VALUE, segment=np.arange(len(sample)),
                       reachable=reach, curves=(inc, opt), start_day=start)  # fmt: skip
    rows["true per-user curves"] = score(env, tru, progress=ctx.progress)
    df = pd.DataFrame(rows).T
    df["value"] = VALUE * df["incremental_conversions"] - OPTOUT_COST * df["optouts"] - df["cost"]
    conv = df["incremental_conversions"]
    df["x uniform"] = conv / conv["uniform 6 ads"]
    df["value share of true segment plan"] = df["value"] / df.loc["true segment curves", "value"]
    forecast = ours.forecast["conversions"]
    sec.table(
        "comparison",
        df.round(3).rename_axis("policy").reset_index(),
        f"Exact expected outcomes on the world's truth, {len(sample):,} audience users sampled, "
        f"same budget ({budget:,.0f}); the planner here without exploration (`planner + "
        "heights`: each user's curve height scaled from its features). The stage's plan is "
        f"`{main}`; its own forecast: {forecast:,.1f} incremental conversions, the world says "
        f"{conv[main]:,.1f}.",
    )
    sec.kpi("x_uniform", float(df.loc[main, "x uniform"]),
            f"incremental conversions vs the uniform rule (truth; {main})")  # fmt: skip
    sec.kpi("value_share_of_true_segment_plan",
            float(df.loc[main, "value share of true segment plan"]))  # fmt: skip
    sec.kpi("forecast_vs_truth", forecast / max(conv[main], 1e-9))
    # Fitted vs true curves per channel (pooled over the sample's reachable users).
    p_inc, _ = planner.model.pooled_curves(planner.levels)
    names = list(planner.model.channels_)
    fig, axes = plt.subplots(1, len(planner.channels), figsize=(11, 3.0))
    for ci, ch in enumerate(planner.channels):
        ok = planner.allowed_[ci]
        lv = planner.levels[ok]
        r = reach[:, ci]
        ax = axes[ci]
        ax.plot(lv, inc[r][:, ci, ok].mean(0), label="true (mean of users)")
        if ch.name in names:
            ax.plot(lv, p_inc[names.index(ch.name), ok], "--", label="fitted (pooled)")
        ax.set(title=ch.name, xlabel="exposures", ylabel="incremental conversion")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    sec.figure(fig, "Fitted vs true response curves per channel.")
    plt.close(fig)
