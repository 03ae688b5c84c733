"""Decision quality of the planner on the world's truth (the benchmark's protocol at 100k users,
default world, seed 0): one 30-day experiment over the plan's tasks, the planner's allocation
scored with ``env.true_uplift`` and compared with ``env.oracle_allocation`` at the plan's own true
spend. ``python -m benchmarks planning dq`` measures the same at 1M users and on other worlds
(benchmarks/RESULTS.md); this test keeps the 100k figure from sliding back."""

from __future__ import annotations

import numpy as np

import growthmachine as gm
from growthmachine.planning import experiment_plan
from growthmachine.planning._stage import BUDGET_PER_USER


def test_planner_earns_a_share_of_the_oracle_and_forecasts_it():
    n, seed = 100_000, 0
    pop = gm.sim.Population.generate(n, days=365, seed=seed)
    env = gm.sim.Environment(pop, seed=seed)
    ui = gm.insight.UserInsight(seed=seed, progress=False).fit(
        pop.transactions, as_of=pop.days, users=pop.users, category="category"
    )
    plan = experiment_plan(env, BUDGET_PER_USER * n)
    log = gm.planning.run_experiment(env, plan, share=0.5, seed=seed, progress=False)
    pl = gm.planning.Planner(plan, margin=env.config.response.margin, seed=seed, progress=False)
    tp = pl.fit(log, ui, pop.users, opted_out=env.opted_out()).allocate()
    actions = gm.planning.world_actions(env, plan.tasks())[tp.tasks["task_id"].to_numpy()]
    truth = env.true_uplift(tp.tasks["user_id"].to_numpy(), actions)
    profit = float(truth["incremental_profit"].sum())
    spend = float(truth["expected_cost"].sum())
    oracle = float(env.oracle_allocation(budget=spend).attrs["total_value"])
    # measured (the benchmark's default row, seed 0): 36.9 % of the oracle, forecast 0.92 x the
    # truth (before the control pool of a9a968e: 36.0 %, 0.85 x; the scaled map without its
    # level test: 32.6 %, 1.63 x; the former plan: 5.1 %, 15.5 x)
    assert profit >= 0.3 * oracle, (profit, oracle)
    assert 0.75 <= tp.forecast["profit"] / profit <= 1.25, (tp.forecast["profit"], profit)
    # within the plan's budget in truth, up to the forecast's own error
    assert spend <= 1.25 * BUDGET_PER_USER * n
    assert np.isfinite(tp.forecast["profit_se"])
