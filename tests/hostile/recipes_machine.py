"""Recipes: gm.machine (a 400-user world, one or two periods of 14 days)."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np

from growthmachine import machine as mc

from .driver import Recipes
from .stages import stage_recipe
from .world import WorldCtx

R = Recipes()
N = 400
BASE = ("NoMarketing", "Oracle", "RandomPolicy", "RfmRule", "AbWinner")


class Ctx(WorldCtx):
    N_USERS, DAYS = N, 120

    @cached_property
    def config(self) -> mc.MachineConfig:
        return mc.MachineConfig(insight_clusters=(4, 4), sessions_per_period=200, seed=0)

    def machine(self) -> mc.Machine:
        return mc.Machine(config=self.config, progress=False)

    @cached_property
    def run(self) -> mc.MachineRun:
        return self.machine().run(self.env(), periods=2, period_days=14, baselines=("none",),
                                  scored_from=1)  # fmt: skip

    def baseline(self, name: str):
        return mc.AbWinner(np.arange(4), seed=0) if name == "AbWinner" else (
            mc.NoMarketing() if name == "NoMarketing" else getattr(mc, name)(seed=0))  # fmt: skip

    @cached_property
    def treated(self):
        env = self.env()
        t = self.baseline("RandomPolicy").treatments(env, 0, 120, 14, 5.0)
        return env, t, env.apply(t, start_day=120, days=14)


@R("machine.MachineConfig")
def _(c):
    def run(**kw):
        return mc.MachineConfig(**kw).period_budget(N)

    cfg = c.config
    return run, {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


R("machine.MachineConfig.period_budget")(lambda c: (c.config.period_budget, dict(n_users=N)))


@R("machine.Machine")
def _(c):
    return mc.Machine, dict(plan=None, config=c.config, model="auto")


@R("machine.Machine.run")
def _(c):
    return c.machine().run, dict(
        env=c.env(), periods=1, period_days=14, baselines=("none",), scored_from=0
    )


@R("machine.Machine.what_if")
def _(c):
    env = c.env()
    t = c.baseline("RandomPolicy").treatments(env, 0, 120, 14, 5.0)
    return c.machine().what_if, dict(env=env, treatments=t, start_day=120, days=14)


@R("machine.MachineRun", stores=True)
def _(c):
    r = c.run
    return mc.MachineRun, {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}


R("machine.MachineRun.share_of_oracle")(lambda c: (c.run.share_of_oracle, {}))

for _b in BASE:
    if _b == "AbWinner":
        R("machine.AbWinner")(lambda c: (mc.AbWinner, dict(action_ids=np.arange(4), seed=0)))
    elif _b == "NoMarketing":
        R("machine.NoMarketing")(lambda c: (mc.NoMarketing, {}))
    else:
        R(f"machine.{_b}")(lambda c, _b=_b: (getattr(mc, _b), dict(seed=0)))
    R(f"machine.{_b}.treatments")(
        lambda c, _b=_b: (c.baseline(_b).treatments,
                          dict(env=c.env(), period=0, start=120, days=14, budget=5.0))
    )  # fmt: skip
    R(f"machine.{_b}.observe")(
        lambda c, _b=_b: (c.baseline(_b).observe,
                          dict(env=c.treated[0], treatments=c.treated[1], outcomes=c.treated[2]))
    )  # fmt: skip
R("machine.RfmRule.scores")(lambda c: (mc.RfmRule.scores, dict(env=c.env0, start=120)))


@R("machine.kpis_of")
def _(c):
    env = c.env()
    t = c.baseline("RandomPolicy").treatments(env, 0, 120, 14, 5.0)
    return mc.kpis_of, dict(env=env, expected=env.expected_outcome(t, 120, 14), start=120)


R("machine.policy_table")(lambda c: (mc.policy_table, dict(periods=c.run.periods, scored=[1])))


R("machine.run_stage")(stage_recipe(mc.run_stage, "machine"))
