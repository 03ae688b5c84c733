"""The machine: insight -> planning -> allocation -> touchpoints -> what users did -> learning,
period after period, scored against the baselines marketers use on the world's truth.

::

    import growthmachine as gm
    pop = gm.sim.Population.generate(200_000, seed=0)
    env = gm.sim.Environment(pop, seed=0)
    run = gm.Machine(config=gm.MachineConfig(seed=0)).run(env, periods=6, period_days=30)
    run.comparison          # KPIs per policy over the scored periods (exact expectations)
    run.history             # the machine's forecast vs the world, budget split, per period
"""

from __future__ import annotations

from ._baselines import BASELINES, AbWinner, NoMarketing, Oracle, RandomPolicy, RfmRule
from ._config import MachineConfig
from ._kpis import KPIS, kpis_of
from ._machine import Machine, MachineRun, policy_table
from ._stage import run_stage

__all__ = [
    "BASELINES",
    "KPIS",
    "AbWinner",
    "Machine",
    "MachineConfig",
    "MachineRun",
    "NoMarketing",
    "Oracle",
    "RandomPolicy",
    "RfmRule",
    "kpis_of",
    "policy_table",
    "run_stage",
]
