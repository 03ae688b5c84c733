"""Recipes: gm.sim (a 120-user world of 90 days)."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pandas as pd

from growthmachine import sim

from .driver import Recipes
from .stages import stage_recipe
from .world import WorldCtx

R = Recipes()
N = 120


class Ctx(WorldCtx):
    N_USERS, DAYS = N, 90

    @cached_property
    def env(self) -> sim.Environment:
        """Shared by the calls that do not change the world."""
        return self.fresh_env()

    def fresh_env(self) -> sim.Environment:
        return super().env()

    @cached_property
    def config(self) -> sim.WorldConfig:
        return sim.WorldConfig()

    @cached_property
    def treatments(self) -> pd.DataFrame:
        users = np.arange(0, N, 4)
        ok = np.stack([self.env.eligible(users, np.full(len(users), a)) for a in range(7)], 1)
        keep = ok.any(1)
        return pd.DataFrame({"user_id": users[keep], "action_id": ok[keep].argmax(1)})

    def batch(self) -> sim.SessionBatch:
        return self.env.sessions(6, seed=0)


def _fields(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


# configs: each built from the default world's values
for _name, _get in {
    "Archetype": lambda c: c.config.archetypes[0],
    "Benefit": lambda c: c.config.response.benefits[0],
    "ChannelConfig": lambda c: c.config.response.channels.push,
    "ChannelsConfig": lambda c: c.config.response.channels,
    "ObservablesConfig": lambda c: c.config.observables,
    "PopulationConfig": lambda c: c.config.population,
    "PurchaseConfig": lambda c: c.config.purchase,
    "ResponseConfig": lambda c: c.config.response,
    "SeasonalityConfig": lambda c: c.config.seasonality,
    "SessionConfig": lambda c: c.config.sessions,
    "SpendConfig": lambda c: c.config.spend,
    "WorldConfig": lambda c: c.config,
}.items():
    R(f"sim.{_name}")(lambda c, _name=_name, _get=_get: (getattr(sim, _name), _fields(_get(c))))

R("sim.WorldConfig.validate")(lambda c: (sim.WorldConfig().validate, {}))
R("sim.WorldConfig.to_dict")(lambda c: (c.config.to_dict, {}))
R("sim.WorldConfig.to_json")(lambda c: (c.config.to_json, {}))
R("sim.WorldConfig.to_yaml")(lambda c: (c.config.to_yaml, {}))
R("sim.WorldConfig.from_dict")(lambda c: (sim.WorldConfig.from_dict, dict(d=c.config.to_dict())))
R("sim.WorldConfig.from_json", names={"text_or_path": ("config",)})(
    lambda c: (sim.WorldConfig.from_json, dict(text_or_path=c.config.to_json()))
)
R("sim.WorldConfig.from_yaml", names={"text_or_path": ("config",)})(
    lambda c: (sim.WorldConfig.from_yaml, dict(text_or_path=c.config.to_yaml()))
)


@R("sim.Population.generate")
def _(c):
    return sim.Population.generate, dict(n_users=40, days=60, seed=0, config=c.config)


@R("sim.Population")
def _(c):
    p = c.pop
    return sim.Population, dict(
        users=p.users,
        transactions=p.transactions,
        truth=p.truth,
        days=p.days,
        seed=p.seed,
        config=p.config,
    )


R("sim.Population.kpis")(lambda c: (c.pop.kpis, {}))


@R("sim.Environment")
def _(c):
    return sim.Environment, dict(pop=c.pop, seed=0)


R("sim.Environment.copy")(lambda c: (c.env.copy, dict(seed=1)))
R("sim.Environment.state")(lambda c: (c.env.state, {}))
R("sim.Environment.transactions")(lambda c: (c.env.transactions, dict(history=True)))
R("sim.Environment.opted_out")(lambda c: (c.env.opted_out, {}))


@R("sim.Environment.eligible")
def _(c):
    return c.env.eligible, dict(user_ids=np.arange(10), action_ids=np.arange(10) % 5)


@R("sim.Environment.apply", columns={"treatments": ("user_id", "action_id")})
def _(c):
    return c.fresh_env().apply, dict(treatments=c.treatments, start_day=90, days=7)


@R("sim.Environment.expected_outcome", columns={"treatments": ("user_id", "action_id")})
def _(c):
    return c.env.expected_outcome, dict(treatments=c.treatments, start_day=90, days=7)


@R("sim.Environment.run_experiment")
def _(c):
    return c.fresh_env().run_experiment, dict(
        actions=np.arange(4), share=0.5, start_day=90, days=7, seed=0, user_ids=np.arange(60)
    )


@R("sim.Environment.true_uplift")
def _(c):
    return c.env.true_uplift, dict(
        user_ids=np.arange(10), action_ids=np.arange(10) % 5, start_day=90, days=7
    )


@R("sim.Environment.oracle_candidates")
def _(c):
    return c.env.oracle_candidates, dict(
        action_ids=np.arange(5), user_ids=np.arange(20), start_day=90, days=7, objective="profit"
    )


@R("sim.Environment.oracle_allocation")
def _(c):
    return c.env.oracle_allocation, dict(
        budget=5.0, action_ids=np.arange(5), user_ids=np.arange(20), start_day=90, days=7
    )


R("sim.Environment.sessions")(lambda c: (c.env.sessions, dict(n=6, seed=0)))
R("sim.SessionBatch.step")(lambda c: (c.batch().step, dict(actions=np.arange(6) % 3)))
R("sim.SessionBatch.expected_value")(
    lambda c: (c.batch().expected_value, dict(actions=np.arange(6) % 3))
)


@R("sim.SessionBatch")
def _(c):
    b = c.batch()
    return sim.SessionBatch, dict(core=b._core, config=c.config)


@R("sim.StepResult", stores=True)
def _(c):
    r = c.batch().step(np.zeros(6, dtype=int))
    return sim.StepResult, dict(reward=r.reward, cost=r.cost, stage=r.stage, done=r.done)


R("sim.run_stage")(stage_recipe(sim.run_stage, "sim"))
