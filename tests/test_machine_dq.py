"""Decision quality of the machine on the world's truth at 200k users (issue 12's test scale):
six periods of 30 days with the default config on the default world and two others
(``benchmarks/worlds``), periods 3..6 scored with the world's exact expectations.

What it keeps from sliding back (measured at seed 0 with the defaults: 0.431 / 0.424 / 0.412 of
the oracle on the default / coupon-sensitive / fatigued worlds, every scored period's forecast
within 18 % of the world's figure, opt-outs 0.47-0.97 of the RFM rule's): the machine beats
every baseline, causes no more opt-outs than the RFM rule, forecasts each scored period within
25 %, and earns at least 35 % of the oracle. Issue 12 asks for 55 % on the default world and
45 % on the others; that target is not reached, and this floor does not claim it."""

from __future__ import annotations

from pathlib import Path

import pytest

import growthmachine as gm

WORLDS = Path(__file__).resolve().parents[1] / "benchmarks" / "worlds"
N = 200_000


@pytest.mark.parametrize("world", ["default", "coupon_sensitive", "fatigued"])
def test_the_machine_beats_every_baseline_and_forecasts_each_period(world):
    kw = (
        {}
        if world == "default"
        else {"config": gm.sim.WorldConfig.from_yaml(WORLDS / f"{world}.yaml")}
    )
    pop = gm.sim.Population.generate(N, seed=0, **kw)
    env = gm.sim.Environment(pop, seed=0)
    run = gm.Machine(config=gm.MachineConfig(seed=0), progress=False).run(env, periods=6)
    c = run.comparison
    machine = c.loc["machine", "incremental_profit"]
    for p in ("rfm_rule", "ab_winner", "random", "none"):
        assert machine > c.loc[p, "incremental_profit"], (world, p, c["incremental_profit"])
    assert c.loc["machine", "opt_outs"] <= c.loc["rfm_rule", "opt_outs"], c["opt_outs"]
    h = run.history.set_index("period").loc[run.scored_periods]
    ratio = h["forecast_profit"] / h["true_profit"]
    assert ratio.between(0.75, 1.25).all(), ratio
    assert run.share_of_oracle() >= 0.35, run.share_of_oracle()
