"""Frequency planning scored on the world's truth (issue 11, "What it must show").

One run per world: the targeted users are every user; each round plans ``horizon`` days under a
budget equal to the uniform rule's spend (6 ads to every user ads can reach), applies the plan to
the world and feeds the randomised users' outcomes back (``observe``). Round 0 starts from flat
priors (no curves: every user gets a randomised frequency, the experiment); rounds 1 and 3 are
scored before they are applied, all plans at the same state of the world, with
``Environment.expected_outcome`` (exact), same users, same budget:

- ``uniform 6 ads``: every reachable user gets 6 ads (the common rule); its spend is the budget;
- ``max caps ads``: 140 ads (10 a day) to random users until the budget is spent;
- ``planner [value]``: the FrequencyPlanner on its fitted ResponseModel (segments:
  ``world_segments``; opt-outs at each user's prior fatigue, ``world_fatigue``), as deployed
  (10 % of the users explore, at uniformly random levels), maximising value: 10 per
  incremental conversion, 1 per opt-out, net of exposure cost;
- ``planner [conversions]``: the same curves, maximising conversions under the budget with
  expected opt-outs capped at the model's own estimate of the uniform plan's less
  ``OPTOUT_Z`` standard errors of the model's uncertainty in the difference (the issue's
  comparison: conversions at equal budget, opt-outs no higher than the uniform plan's), without
  exploration (a what-if on the same curves: the comparison of the optimisation itself);
- ``planner+height [...]``: the same, each user's curve height scaled from its observable
  features (``world_covariates``; the model's height multipliers, fitted on the randomised
  users' features, which the loop logs with ``observe(covariates=...)``). With
  ``covariates="plan"`` the loop's own plans (rounds 0-2) use them too (the world then follows
  another path; see RESULTS);
- ``true segment curves [...]``: the same planner and objective given the world's true curves
  averaged per segment (what a perfect model of the same segmentation knows; for
  ``conversions`` capped at the uniform plan's true opt-outs): the issue's "plan made with the
  world's true curves by the same planner";
- ``true per-user curves [...]``: given every user's own true curve (a ceiling no segment model
  reaches).

``value`` = 10 x conversions - opt-outs - cost (the value objective, scored on the truth);
``share of true segment plan``: value for the value objective, conversions for the other;
``forecast`` and ``optouts forecast``: the planner's own expected conversions and opt-outs (its
fitted curves), to read beside the true ones.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

CHANNELS = ("ads", "sms", "email")
#: The worlds scored: the default, the stronger fatigue of the issue, and a concave response mix
#: (exposures work early; the planner's slope prior is centred on S-shapes).
WORLDS = (None, "benchmarks/worlds/fatigued.yaml", "benchmarks/worlds/concave.yaml")
VALUE = 10.0
OPTOUT = 1.0
#: Value per conversion of the conversions objective: large enough that every exposure that
#: adds a conversion is worth its cost, so the plan maximises conversions under the budget.
CONV_VALUE = 1000.0
#: The conversions objective's opt-out cap holds with this many standard errors of the model's
#: uncertainty in the plan-minus-uniform difference (one-sided 95 %).
OPTOUT_Z = 1.645


def covariates_of(env, users, features: str = "world", seed: int = 0) -> pd.DataFrame:
    """Each user's observable features at the world's current day: ``"world"``,
    ``world_covariates``; ``"insight"``, ``user_covariates`` of a ``UserInsight`` fitted on the
    world's transactions up to today (what the pipeline's touchpoint stage passes)."""
    import growthmachine as gm

    tp = gm.touchpoint
    if features == "world":
        return tp.world_covariates(env, users)
    if features != "insight":
        raise ValueError(f"features: must be 'world' or 'insight', got {features!r}")
    ui = gm.insight.UserInsight(seed=seed, progress=False).fit(
        env.transactions(), as_of=env.day, users=env.population.users
    )
    return tp.user_covariates(ui, env.population.users, user_ids=users)


def evaluate(env, pl, users, tag, fatigue: bool = True, covariates: bool = True,
             features: str = "world", seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Every policy at the current state of the world, scored exactly (see the module docs)."""
    import growthmachine as gm

    tp = gm.touchpoint
    reach = tp.world_reachable(env, users, pl.channels)
    budget = 0.06 * reach[:, 0].sum()
    start = env.day
    seg = tp.world_segments(env, users)
    fat = tp.world_fatigue(env, users) if fatigue else None
    cov = covariates_of(env, users, features, seed) if covariates else None
    t0 = time.perf_counter()
    inc, opt = tp.true_curves(env, pl, users, reachable=reach)
    t_truth = time.perf_counter() - t0
    rows = []

    def add(name, plan, **extra):
        s = tp.score(env, plan)
        s["value"] = VALUE * s["incremental_conversions"] - OPTOUT * s["optouts"] - s["cost"]
        rows.append({"policy": name, **s, **extra})

    uniform = tp.uniform_plan(pl, users, reachable=reach, start_day=start)
    add("uniform 6 ads", uniform)
    cap_true = rows[0]["optouts"]
    add("max caps ads", tp.max_caps_plan(pl, users, budget, reachable=reach, start_day=start))
    t_plan = {}
    # Two objectives: value (10 per conversion, opt-out cost 1) and conversions under the
    # budget with opt-outs capped at the uniform plan's (the model's estimate of them, less
    # OPTOUT_Z standard errors of the model's uncertainty in the difference).
    objectives = {"value": (VALUE, OPTOUT, None), "conversions": (CONV_VALUE, 0.0, "cap")}
    for obj, (v, oc, cap) in objectives.items():
        plo = tp.FrequencyPlanner(
            [tp.Channel(c.name, c.unit_cost, c.daily_cap, c.weekly_cap, c.capacity, oc)
             for c in pl.channels],
            pl.horizon_days, model=pl.model, levels=pl.levels, explore_share=pl.explore_share,
            explore_levels=pl.explore_levels, seed=pl.seed,
        )  # fmt: skip
        plo.rounds_ = pl.rounds_
        with_height = ("", None), ("+height", cov)
        for suffix, x in with_height if cov is not None else with_height[:1]:
            name = f"planner{suffix} [{obj}]"
            t0 = time.perf_counter()
            ours = plo.plan(users, budget, value=v, segment=seg, reachable=reach, start_day=start,
                            max_optouts=uniform if cap else None, fatigue=fat, covariates=x,
                            explore=None if obj == "value" else False,
                            optout_z=OPTOUT_Z if cap else 0.0)  # fmt: skip
            plo.rounds_ = pl.rounds_
            t_plan[name] = time.perf_counter() - t0
            add(name, ours, forecast=ours.forecast["conversions"],
                **{"optouts forecast": ours.forecast["optouts"]},
                average_frequency=ours.average_frequency, gap=ours.gap)  # fmt: skip
        g_inc, g_opt, codes = tp.segment_curves(inc, opt, seg, reach)
        for truth, curves, sg in (
            ("true segment curves", (g_inc, g_opt), codes),
            ("true per-user curves", (inc, opt), np.arange(len(users))),
        ):
            p = plo.plan(users, budget, value=v, segment=sg, reachable=reach, curves=curves,
                         start_day=start, max_optouts=cap_true if cap else None)  # fmt: skip
            add(f"{truth} [{obj}]", p, average_frequency=p.average_frequency, gap=p.gap)
    df = pd.DataFrame(rows).set_index("policy")
    conv = df["incremental_conversions"]
    df["x uniform"] = conv / conv["uniform 6 ads"]
    df["x max caps"] = conv / conv["max caps ads"]
    share = pd.Series(np.nan, index=df.index)
    for obj, col in (("value", "value"), ("conversions", "incremental_conversions")):
        ref = df.loc[f"true segment curves [{obj}]", col]
        for k in df.index:
            if k.endswith(f"[{obj}]"):
                share[k] = df.loc[k, col] / ref
    df["share of true segment plan"] = share
    df.attrs.update(tag=tag, budget=budget, truth_s=t_truth, plan_s=t_plan,
                    segments=len(np.unique(seg)))  # fmt: skip
    return df


def run(n_users: int, config: str | None = None, seed: int = 0, rounds: int = 3,
        explore_share: float = 0.1, optout_cost: float = 1.0, forget: float = 0.5,
        fatigue: bool = True, covariates: str | None = "observe", features: str = "world",
) -> list[pd.DataFrame]:  # fmt: skip
    """The loop (see the module docs). ``covariates``: ``"observe"`` logs each user's observable
    features with the outcomes (the model fits the curves' heights; the loop's plans do not use
    them; ``planner+height`` rows do), ``"plan"`` also plans the loop's rounds with them,
    ``None`` neither. ``features``: ``"world"`` (``world_covariates``) or ``"insight"``
    (``user_covariates`` of an insight fitted each round; see :func:`covariates_of`)."""
    if covariates not in ("observe", "plan", None):
        raise ValueError(f"covariates: must be 'observe', 'plan' or None, got {covariates!r}")
    import growthmachine as gm

    tp = gm.touchpoint
    world = gm.sim.WorldConfig.from_yaml(config) if config else gm.sim.WorldConfig()
    pop = gm.sim.Population.generate(n_users, seed=seed, config=world)
    env = gm.sim.Environment(pop, seed=seed)
    users = np.arange(n_users)
    pl = tp.FrequencyPlanner.for_world(env, CHANNELS, optout_cost=optout_cost, seed=seed,
                                       explore_share=explore_share, model=tp.ResponseModel(forget=forget))  # fmt: skip
    out = []
    for r in range(rounds + 1):
        if r in (1, rounds):
            out.append(evaluate(env, pl, users, f"round {r}", fatigue, covariates is not None,
                                features, seed))  # fmt: skip
        if r == rounds:
            break
        reach = tp.world_reachable(env, users, pl.channels)
        budget = 0.06 * reach[:, 0].sum()
        fat = tp.world_fatigue(env, users) if fatigue else None
        cov = covariates_of(env, users, features, seed) if covariates else None
        p = pl.plan(users, budget, value=VALUE, segment=tp.world_segments(env, users), reachable=reach,
                    start_day=env.day, fatigue=fat,
                    covariates=cov if covariates == "plan" else None)  # fmt: skip
        o = env.apply(p.schedule(), start_day=env.day, days=pl.horizon_days)
        pl.observe(o, covariates=cov)
    return out


def world_name(path: str | None) -> str:
    return "default" if path is None else Path(path).stem
