"""Ctrl-C in every long public call (issue 15): each call in :data:`LONG` runs in a child process at
a size that takes several seconds, gets SIGINT about a second in, and must raise
``KeyboardInterrupt`` within :data:`LIMIT` seconds, after which the interpreter still works.

The inventory is checked against the package: every public callable (every name in a module's
``__all__``, every public method of every exported class) is either in :data:`LONG` (with a case
here) or in :data:`BOUNDED` / :func:`_bounded_by_rule` with the reason it cannot run long. A new
public call that is in neither fails :func:`test_every_public_call_is_classified`.

The children run a few at a time in parallel (the suite's added time is about the slowest case
times the number of batches); each case reports its measured latency.
"""

from __future__ import annotations

import importlib
import inspect
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import growthmachine as gm

#: Seconds from SIGINT to ``KeyboardInterrupt`` allowed (the target is 0.5 s; the rest is slack
#: for a loaded 2-core CI machine running several children at once).
LIMIT = 2.0
#: Seconds after the call starts before SIGINT is sent (short: on a quiet machine some calls of
#: these sizes take under a second).
AFTER = 0.3
#: Children run at once.
PARALLEL = 3

_POP = """
pop = gm.sim.Population.generate(20_000, days=365, seed=0, progress=False)
env = gm.sim.Environment(pop, seed=0)
"""
_POP_BIG = _POP.replace("20_000", "1_000_000")
_TREAT = (
    "import numpy as np\nu = np.arange(env.n_users)\n"
    "a = next(a for a in range(500) if env.eligible(u[:1000], np.full(1000, a)).all())\n"
    "tr = {'user_id': u, 'action_id': np.full(len(u), a)}\n"
)
_RNG = "import numpy as np\nrng = np.random.default_rng(0)\n"
_BG = (
    _RNG
    + "n = 2_000_000\nf = rng.poisson(2.0, n).astype(float)\n"
    + "T = rng.uniform(50, 365, n)\nr = np.where(f > 0, T * rng.uniform(0, 1, n), 0.0)\n"
    + "m = rng.gamma(4.0, 10.0, n) + 1\n"
)
_BG_FIT = (
    _BG
    + "d = gm.insight.BetaGeo.simulate(dict(r=0.8, alpha=10.0, a=0.7, b=3.0), T[:20_000])\n"
    + "bg = gm.insight.BetaGeo().fit(d['frequency'], d['recency'], d['T'], progress=False)\n"
    + "gg = gm.insight.GammaGamma().fit(d['frequency'] + 1, m[:20_000], progress=False)\n"
    + "f, r, T, m = np.tile(f, 4), np.tile(r, 4), np.tile(T, 4), np.tile(m, 4)\n"
)
_KM = _RNG + "X = rng.normal(size=(1_000_000, 16))\n"
_KM_FIT = _KM + "km = gm.insight.KMeans(64, seed=0, max_iter=2).fit(X[:50_000])\n"
_FOREST = (
    _RNG
    + "n = 400_000\nX = rng.normal(size=(n, 20))\nt = rng.integers(0, 3, n)\n"
    + "y = X[:, 0] * (t == 1) + rng.normal(size=n)\n"
    + "from growthmachine.planning.uplift import UpliftForest, CellUplift\n"
)
_POLICY = (
    _RNG
    + "X = rng.normal(size=(200_000, 64))\na = rng.integers(0, 20, len(X))\n"
    + "y = rng.random(len(X))\n"
)
_PROBLEM = "p = gm.allocate.random_problem({n}, per_user=8, n_groups=3, seed=2)\n"
_TOUCH = """
import numpy as np, pandas as pd
from growthmachine.touchpoint import Channel, FrequencyPlanner, ResponseModel
rng = np.random.default_rng(0)
n = 2_000_000
levels = np.array([0, 1, 2, 3, 4, 6, 9, 14])
log = pd.DataFrame({"segment": rng.integers(0, 400, n), "channel": rng.choice(["email", "sms"], n),
    "exposures": rng.choice(levels, n), "converted": (rng.random(n) < 0.05).astype(float),
    "opted_out": (rng.random(n) < 0.01).astype(np.int8)})
CH = [Channel("ads", 0.01, 10), Channel("sms", 0.03, 1), Channel("email", 0.001, 1)]
"""
_SCHEDULE = """
import dataclasses
import numpy as np, pandas as pd
from growthmachine.touchpoint import Channel, FrequencyPlanner
rng = np.random.default_rng(0)
CH = [Channel("ads", 0.01, 10), Channel("sms", 0.03, 1), Channel("email", 0.001, 1)]
small = FrequencyPlanner(CH, 366).plan(np.arange(100), 1.0)
n_u = 20_000_000
ch = rng.integers(0, 3, n_u).astype(np.uint8)
lv = rng.integers(1, 4, n_u).astype(np.uint32)
off, cons, _ = gm._core.touchpoint_lay_out(ch, lv, 3, 366)
a = pd.DataFrame({"user_id": np.arange(n_u), "exposures": lv.astype(np.int64),
    "channel": pd.Categorical.from_codes(ch.astype(np.int8), categories=small.channels)})
plan = dataclasses.replace(small, assignment=a, _layout=(off, cons))
"""

#: Every long public call: name -> (set-up code, the call). Sizes make each call take several
#: seconds on 2 cores.
LONG: dict[str, tuple[str, str]] = {
    # sim
    "sim.Population.generate": ("", "gm.sim.Population.generate(30_000_000, progress=False)"),
    "sim.Environment.apply": (_POP_BIG, "env.apply(None, days=3000, progress=False)"),
    "sim.Environment.expected_outcome": (
        _POP.replace("20_000", "200_000") + _TREAT,
        "env.expected_outcome(tr, days=3000, progress=False)",
    ),
    "sim.Environment.run_experiment": (
        _POP_BIG,
        "env.run_experiment(list(range(40)), days=3000, progress=False)",
    ),
    "sim.Environment.true_uplift": (
        _POP,
        "import numpy as np\n"
        "env.true_uplift(np.arange(20_000), np.arange(60), days=3000, product=True)",
    ),
    "sim.Environment.sessions": (_POP, "env.sessions(5_000_000)"),
    "sim.SessionBatch.step": (
        _POP + "import numpy as np\nb = env.sessions(5_000_000)\na = np.zeros(b.n, np.int64)\n",
        "for _ in range(100):\n    b.step(a)",
    ),
    "sim.Environment.oracle_candidates": (_POP, "env.oracle_candidates(days=3000)"),
    "sim.Environment.oracle_allocation": (_POP, "env.oracle_allocation(1e9, days=3000)"),
    # insight
    "insight.features": (
        _RNG + "import pandas as pd\nn = 20_000_000\n"
        "tx = pd.DataFrame({'user_id': rng.integers(0, 2_000_000, n), "
        "'day': rng.integers(0, 365, n), 'amount': rng.gamma(2.0, 20.0, n)})\n",
        "gm.insight.features(tx, as_of=365, progress=False)",
    ),
    "insight.BetaGeo.fit": (_BG, "gm.insight.BetaGeo().fit(f, r, T, progress=False)"),
    "insight.BetaGeo.log_likelihood": (_BG_FIT, "bg.log_likelihood(f, r, T)"),
    "insight.BetaGeo.predict": (_BG_FIT, "bg.predict(365, f, r, T)"),
    "insight.BetaGeo.expected_purchases": (_BG_FIT, "bg.expected_purchases(365, f, r, T)"),
    "insight.BetaGeo.p_alive": (_BG_FIT, "bg.p_alive(f, r, T)"),
    "insight.BetaGeo.simulate": (
        _BG_FIT,
        "gm.insight.BetaGeo.simulate(dict(r=0.5, alpha=10.0, a=0.5, b=2.0), np.tile(T, 4))",
    ),
    "insight.GammaGamma.fit": (
        _BG + "f, m = np.tile(f, 4), np.tile(m, 4)\n",
        "gm.insight.GammaGamma().fit(f + 1, m, progress=False)",
    ),
    "insight.GammaGamma.log_likelihood": (_BG_FIT, "gg.log_likelihood(f + 1, m)"),
    "insight.clv": (_BG_FIT, "gm.insight.clv(bg, gg, f, r, T, m, horizon=120, progress=False)"),
    "insight.KMeans.fit": (_KM, "gm.insight.KMeans(64, seed=0, max_iter=300, tol=0).fit(X)"),
    "insight.KMeans.fit_predict": (_KM, "gm.insight.KMeans(64, seed=0, tol=0).fit_predict(X)"),
    "insight.KMeans.fit_transform": (_KM, "gm.insight.KMeans(64, seed=0, tol=0).fit_transform(X)"),
    "insight.KMeans.predict": (_KM_FIT + "X = np.tile(X, (2, 1))\n", "km.predict(X)"),
    "insight.KMeans.transform": (_KM_FIT, "km.transform(X)"),
    "insight.KMeans.score": (_KM_FIT + "X = np.tile(X, (2, 1))\n", "km.score(X)"),
    "insight.MiniBatchKMeans.fit": (
        _KM,
        "gm.insight.MiniBatchKMeans(64, seed=0, max_iter=1000, tol=0).fit(X)",
    ),
    "insight.MiniBatchKMeans.fit_predict": (
        _KM,
        "gm.insight.MiniBatchKMeans(64, seed=0, max_iter=1000, tol=0).fit_predict(X)",
    ),
    "insight.MiniBatchKMeans.partial_fit": (
        _KM + "X = np.tile(X, (4, 1))\n",
        "gm.insight.MiniBatchKMeans(64, seed=0).partial_fit(X)",
    ),
    "insight.MiniBatchKMeans.predict": (
        _KM + "km = gm.insight.MiniBatchKMeans(64, seed=0, max_iter=2).fit(X[:50_000])\n"
        "X = np.tile(X, (2, 1))\n",
        "km.predict(X)",
    ),
    "insight.MiniBatchKMeans.transform": (
        _KM + "km = gm.insight.MiniBatchKMeans(64, seed=0, max_iter=2).fit(X[:50_000])\n"
        "X = np.tile(X, (2, 1))\n",
        "km.transform(X)",
    ),
    "insight.MiniBatchKMeans.score": (
        _KM + "km = gm.insight.MiniBatchKMeans(64, seed=0, max_iter=2).fit(X[:50_000])\n"
        "X = np.tile(X, (2, 1))\n",
        "km.score(X)",
    ),
    # planning
    "planning.uplift.UpliftForest.fit": (
        _FOREST,
        "UpliftForest(n_estimators=500, seed=0).fit(X, t, y)",
    ),
    "planning.uplift.UpliftForest.predict": (
        _FOREST + "m = UpliftForest(n_estimators=50, seed=0).fit(X[:20_000], t[:20_000], "
        "y[:20_000])\nX = np.tile(X, (20, 1))\n",
        "m.predict(X)",
    ),
    "planning.uplift.UpliftForest.predict_pairs": (
        _FOREST + "m = UpliftForest(n_estimators=50, seed=0).fit(X[:20_000], t[:20_000] > 0, "
        "y[:20_000])\nZ = X[:120, 15:]\nX = np.tile(X[:, :15], (2, 1))\n",
        "m.predict_pairs(X, Z)",
    ),
    "planning.uplift.CellUplift.predict_pairs": (
        _FOREST + "g = rng.integers(0, 1000, (n, 6))\nm = CellUplift().fit(g, t > 0, y)\n"
        "Z = g[:100, 5:]\ng = np.tile(g[:, :5], (10, 1))\n",
        "m.predict_pairs(g, Z)",
    ),
    "planning.uplift.CellUplift.fit": (
        _FOREST + "g = rng.integers(0, 1000, (10 * n, 6))\nt = np.tile(t, 10)\n"
        "y = np.tile(y, 10)\n",
        "CellUplift().fit(g, t, y)",
    ),
    "planning.uplift.CellUplift.predict": (
        _FOREST + "g = rng.integers(0, 1000, (n, 6))\nm = CellUplift().fit(g, t, y)\n"
        "g = np.tile(g, (100, 1))\n",
        "m.predict(g)",
    ),
    # allocate
    "allocate.solve[dual]": (_PROBLEM.format(n=3_000_000), "gm.allocate.solve(p, method='dual')"),
    "allocate.solve[lp]": (_PROBLEM.format(n=20_000), "gm.allocate.solve(p, method='lp')"),
    "allocate.solve[exact]": (_PROBLEM.format(n=300), "gm.allocate.solve(p, method='exact')"),
    "allocate.solve[highs]": (
        "import highspy\n" + _PROBLEM.format(n=300),
        "gm.allocate.solve(p, method='highs')",
    ),
    "allocate.solve[highs-large]": (
        # highspy imported before the clock: a SIGINT inside its first import (lazy, in the
        # call) surfaced as the ImportError "needs highspy" once in CI
        "import highspy\n" + _PROBLEM.format(n=100_000),
        "gm.allocate.solve(p, method='highs')",
    ),
    "allocate.highs_lp": (
        "import highspy\n" + _PROBLEM.format(n=300_000),
        "gm.allocate.highs_lp(p, solver='simplex')",
    ),
    # 30M users x 8 candidates: 3.9 GB if it ran to the end (about 6 s on 2 cores)
    "allocate.random_problem": ("", "gm.allocate.random_problem(30_000_000, per_user=8)"),
    # touchpoint
    "touchpoint.ResponseModel.predict": (
        _TOUCH + "m = ResponseModel().fit(log[:200_000])\nlog = pd.concat([log] * 10)\n",
        "m.predict(log['segment'], log['channel'], log['exposures'], return_opt_out=True)",
    ),
    "touchpoint.FrequencyPlanner.plan": (
        _TOUCH + "pl = FrequencyPlanner(CH, 14)\nL = len(pl.levels)\nn_u = 3_000_000\n"
        "x = (np.asarray(pl.levels, float) / 8.0) ** 2\n"
        "inc = np.broadcast_to(0.1 * x / (1 + x), (400, 3, L)).copy()\n"
        "opt = np.broadcast_to(1 - np.exp(-0.001 * np.asarray(pl.levels, float)), (400, 3, L)).copy()\n"
        "seg = rng.integers(0, 400, n_u)\nval = rng.uniform(2, 20, n_u)\n",
        "pl.plan(np.arange(n_u), 1e5, value=val, segment=seg, curves=(inc, opt))",
    ),
    # 2,000 segments x 2 channels x 12,000 levels: 48M points of the four curves (1.5 GB)
    "touchpoint.ResponseModel.curves": (
        "import numpy as np, pandas as pd\nfrom growthmachine.touchpoint import ResponseModel\n"
        "i = np.arange(200_000)\nlog = pd.DataFrame({'segment': i % 2000, 'channel': i % 2, "
        "'exposures': i % 15, 'converted': (i % 7 == 0) * 1.0, 'opted_out': i * 0.0})\n"
        "m = ResponseModel().fit(log)\n",
        "m.curves(np.arange(12_000.0))",
    ),
    # 20M users over 366 days (40M exposures): the core walks 7.3e9 user-days
    "touchpoint.FrequencyPlan.schedule": (_SCHEDULE, "plan.schedule()"),
    # realtime
    "realtime.LinTS.probabilities": (
        _POLICY
        + "pol = gm.realtime.LinTS(20, 64)\npol.update_batch(X[:1000], a[:1000], y[:1000])\n",
        "pol.probabilities(X[:20_000], n_samples=200_000)",
    ),
    "realtime.LogisticTS.probabilities": (
        _POLICY + "pol = gm.realtime.LogisticTS(20, 64)\n"
        "pol.update_batch(X[:1000], a[:1000], (y[:1000] < 0.5).astype(float))\n",
        "pol.probabilities(X[:20_000], n_samples=200_000)",
    ),
    "realtime.LinUCB.update_batch": (
        _POLICY + "X, a, y = np.tile(X, (4, 1)), np.tile(a, 4), np.tile(y, 4)\n"
        "pol = gm.realtime.LinUCB(20, 64)\n",
        "pol.update_batch(X, a, y)",
    ),
    "realtime.LinTS.update_batch": (
        _POLICY + "X, a, y = np.tile(X, (4, 1)), np.tile(a, 4), np.tile(y, 4)\n"
        "pol = gm.realtime.LinTS(20, 64)\n",
        "pol.update_batch(X, a, y)",
    ),
    "realtime.LogisticTS.update_batch": (
        _POLICY + "X, a, y = np.tile(X, (4, 1)), np.tile(a, 4), np.tile(y, 4)\n"
        "pol = gm.realtime.LogisticTS(20, 64)\n",
        "pol.update_batch(X, a, (y < 0.5).astype(float))",
    ),
    "realtime.EpsilonGreedy.update_batch": (
        _POLICY + "X, a, y = np.tile(X, (4, 1)), np.tile(a, 4), np.tile(y, 4)\n"
        "pol = gm.realtime.EpsilonGreedy(20, 64)\n",
        "pol.update_batch(X, a, y)",
    ),
    "realtime.LinUCB.choose_batch": (
        _POLICY + "X = np.tile(X, (4, 1))\npol = gm.realtime.LinUCB(20, 64)\n",
        "pol.choose_batch(X)",
    ),
    "realtime.LinTS.choose_batch": (
        _POLICY + "X = np.tile(X, (4, 1))\npol = gm.realtime.LinTS(20, 64)\n",
        "pol.choose_batch(X)",
    ),
    "realtime.LinUCB.scores_batch": (
        _POLICY + "X = np.tile(X, (4, 1))\npol = gm.realtime.LinUCB(20, 64)\n",
        "pol.scores_batch(X)",
    ),
    "realtime.BudgetPacer.choose_batch": (
        _POLICY + "X = np.tile(X, (4, 1))\npol = gm.realtime.LinUCB(20, 64)\n"
        "pc = gm.realtime.BudgetPacer(pol, np.ones(20), 1e6, 10**9)\n",
        "pc.choose_batch(X)",
    ),
    "realtime.BudgetPacer.update_batch": (
        _POLICY + "X, a, y = np.tile(X, (4, 1)), np.tile(a, 4), np.tile(y, 4)\n"
        "pol = gm.realtime.LinUCB(20, 64)\n"
        "pc = gm.realtime.BudgetPacer(pol, np.ones(20), 1e12, 10**9)\n",
        "pc.update_batch(X, a, y)",
    ),
    "realtime.ope.evaluate": (
        _RNG + "n = 2_000_000\na = rng.integers(0, 5, n)\np = np.full(n, 0.2)\n"
        "pi = np.full((n, 5), 0.2)\nr = rng.random(n)\nq = rng.random((n, 5))\n",
        "gm.realtime.ope.evaluate(actions=a, rewards=r, propensities=p, action_probs=pi, "
        "q_hat=q, ci='bootstrap', n_bootstrap=100_000)",
    ),
}


#: Public calls that cannot run long, by rule: the method names of configuration, persistence and
#: single-event calls (their work is bounded by the object's own size, or by one row).
_BOUNDED_NAMES = {
    "get_params": "configuration",
    "set_params": "configuration",
    "to_dict": "configuration",
    "to_json": "configuration",
    "to_yaml": "configuration",
    "from_dict": "configuration",
    "from_json": "configuration",
    "from_yaml": "configuration",
    "validate": "configuration",
    "as_list": "configuration",
    "summary": "a table of the fitted parameters",
    "save": "the state's bytes (the size of the model)",
    "load": "the state's bytes (the size of the model)",
    "is_fitted": "a flag",
    "choose": "one row",
    "scores": "one row",
    "observe": "one row per policy decision, Python bookkeeping",
    "begin": "one session batch (SessionPolicy, Python over the session rows)",
    "act": "one session batch (SessionPolicy, Python over the session rows)",
}

#: Other public calls that are not in LONG, with the reason.
BOUNDED: dict[str, str] = {
    # Python sequences of the long calls in LONG: Python checks for Ctrl-C between them.
    **dict.fromkeys(
        [
            "allocate.run_stage",
            "insight.run_stage",
            "planning.run_stage",
            "touchpoint.run_stage",
            "realtime.run_stage",
            "sim.run_stage",
            "machine.run_stage",
            "machine.Machine.run",
            "machine.Machine.what_if",
            "insight.UserInsight.fit",
            "planning.Planner.fit",
            "planning.Planner.allocate",
            "planning.Planner.design_experiment",
            "planning.Planner.pair_profit",
            "planning.run_experiment",
            "planning.plan_from_environment",
            "touchpoint.user_covariates",
            "touchpoint.FrequencyPlanner.observe",
            "touchpoint.score",
            "touchpoint.true_curves",
            "touchpoint.uniform_plan",
            "touchpoint.max_caps_plan",
            "touchpoint.fixed_plan",
            "machine.Oracle.treatments",
            "machine.AbWinner.treatments",
            "machine.RandomPolicy.treatments",
            "machine.RfmRule.treatments",
            "machine.RfmRule.scores",
            "machine.NoMarketing.treatments",
            "machine.kpis_of",
            "machine.policy_table",
            "realtime.ope.ips",
            "realtime.ope.snips",
            "realtime.ope.dm",
            "realtime.ope.dr",
            "realtime.ope.switch_dr",
            "realtime.ope.fit_reward_model",
            "touchpoint.FrequencyPlanner.for_world",
            "touchpoint.ResponseModel.pooled_curves",
            "insight.Cells.profile",
            "planning.Plan.default",
        ],
        "made of the calls in LONG (and vectorised numpy/pandas steps)",
    ),
    # The same Rust method (RealtimePolicy) as the case in LONG for another algorithm.
    **{
        f"realtime.{cls}.{m}": "the same binding as the LONG case of another policy"
        for cls in ("LinUCB", "LinTS", "LogisticTS", "EpsilonGreedy")
        for m in ("choose_batch", "scores_batch", "probabilities", "update_batch")
        if f"realtime.{cls}.{m}" not in LONG
    },
    # One linear pass over the rows (vectorised numpy or a Rust loop of a few ns per row).
    **dict.fromkeys(
        [
            "allocate.Problem.from_arrays",
            "allocate.Problem.from_frame",
            "allocate.Problem.with_bounds",
            "insight.Cells.build",
            "insight.StandardScaler.fit",
            "insight.StandardScaler.fit_transform",
            "insight.StandardScaler.inverse_transform",
            "insight.StandardScaler.transform",
            "insight.lifecycle",
            "insight.lifecycle_transitions",
            "insight.transition_matrix",
            "insight.value_tiers",
            "planning.uplift.CellUplift.predict_level",
            "sim.Environment.eligible",
            "sim.Environment.opted_out",
            "sim.Environment.state",
            "sim.Environment.transactions",
            "sim.Population.kpis",
            "sim.SessionBatch.expected_value",
            "touchpoint.segment_curves",
            "touchpoint.world_covariates",
            "touchpoint.world_fatigue",
            "touchpoint.world_reachable",
            "touchpoint.ResponseModel.height",
            "touchpoint.world_segments",
            "planning.Audience.select",
            "planning.Calibration.table",
            "planning.Calibration.forecast_var",
            "planning.LinearCalibration.table",
            "planning.LinearCalibration.forecast_var",
            "planning.ScaledCalibration.table",
            "planning.ScaledCalibration.forecast_var",
        ],
        "one linear pass over the rows",
    ),
    # One Rust pass over arrays already in memory, through run_long (Ctrl-C checked between
    # chunks of users): 4.0 s (candidates) and 3.1 s (features) at 10M users x 20 tasks.
    **dict.fromkeys(
        ["planning.Planner.candidates", "planning.planning_features"],
        "one Rust pass over the users in chunks (run_long checks Ctrl-C between them)",
    ),
    # Sorting-based numpy (scikit-uplift's definitions): Ctrl-C between numpy operations.
    **{
        f"planning.metrics.{m}": "vectorised numpy: a sort and cumulative sums"
        for m in __import__("growthmachine.planning.metrics").planning.metrics.__all__
    },
    # The user's scikit-learn estimators do the work: Ctrl-C is as they honour it.
    **{
        f"planning.uplift.{p}{c}.{m}": "runs the user's scikit-learn estimator"
        for p in ("", "meta.")
        for c in ("SLearner", "TLearner", "XLearner", "DRLearner", "UpliftModel")
        for m in ("fit", "predict", "predict_pairs")
        if not (p and c == "UpliftModel")
    },
    # Sized by the plan (tasks, goals), not by the users.
    **dict.fromkeys(
        [
            "planning.Composition.pairs",
            "planning.Plan.compose",
            "planning.Plan.goal_audience",
            "planning.Plan.tasks",
            "planning.experiment_plan",
            "planning.world_actions",
            "machine.MachineConfig.period_budget",
            "machine.MachineRun.share_of_oracle",
            "insight.BetaGeo.expected_purchases_new",
        ],
        "sized by the plan or a few scalars",
    ),
    **dict.fromkeys(
        ["touchpoint.ResponseModel.fit", "touchpoint.ResponseModel.partial_fit"],
        "aggregates the log to (segment, channel, exposures) cells, then fits per cell: "
        "8M rows in 1.05 s on 2 cores (the cases with 2M rows finished before SIGINT)",
    ),
    **dict.fromkeys(
        ["insight.GammaGamma.expected_spend"],
        "a closed form per row: one linear pass (8M rows well under a second)",
    ),
}


def _selected(request) -> list[str]:
    names = []
    for item in request.session.items:
        cs = getattr(item, "callspec", None)
        if (
            cs is not None
            and item.originalname == "test_ctrl_c_stops_the_call"
            and "name" in cs.params
        ):
            names.append(cs.params["name"])
    return names


_CHILD = """
import sys, time
import growthmachine as gm
gm.{module}  # the lazily imported module, before the clock starts
{setup}
print("start", flush=True)
try:
{call}
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    # The interpreter and the core still work after the interrupt.
    assert gm._core._debug_long(1, 4, 1_000) > 0
    print("usable", flush=True)
    sys.exit(0)
print("finished", flush=True)
sys.exit(1)
"""


def _interrupt(name: str) -> tuple[float | None, str]:
    """Runs case ``name``; returns (seconds from SIGINT to KeyboardInterrupt, or None; what
    went wrong)."""
    setup, call = LONG[name]
    body = "\n".join("    " + line for line in call.strip().splitlines())
    # a SIGINT that lands in the module's first import (pandas under load) is not what is
    # tested, and Python's import machinery does not turn it into a KeyboardInterrupt
    code = _CHILD.format(module=name.split(".")[0], setup=setup, call=body)
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    t0 = time.monotonic()
    try:
        first = child.stdout.readline().strip()
        setup_s = time.monotonic() - t0
        if first != "start":
            child.kill()
            return None, f"set-up failed: {first} {child.stderr.read()[-2000:]}"
        time.sleep(AFTER)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        try:
            out, err = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            return None, "no KeyboardInterrupt within 30 s"
    finally:
        if child.poll() is None:
            child.kill()
    lines = out.split("\n")
    got = [line.split() for line in lines if line.startswith("interrupted")]
    if not got:
        return None, f"exit {child.returncode}, stdout {out!r}, stderr {err[-2000:]}"
    if child.returncode != 0 or "usable" not in out:
        return None, f"unusable after the interrupt: exit {child.returncode}: {err[-2000:]}"
    return float(got[0][1]) - sent, f"set-up {setup_s:.1f} s, total {time.monotonic() - t0:.1f} s"


@pytest.fixture(scope="module")
def latencies(request):
    """Runs every selected case, PARALLEL at a time; name -> (latency, problem)."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGINT semantics are POSIX")
    names = _selected(request)
    with ThreadPoolExecutor(PARALLEL) as ex:
        return dict(zip(names, ex.map(_interrupt, names), strict=True))


#: Cases known to miss the limit, with why (strict: the test fails once they pass, so the entry
#: goes when the fix comes).
KNOWN_SLOW: dict[str, str] = {}
#: Cases that miss the limit when SIGINT lands in a phase without checks (which phase depends on
#: the machine's speed): not strict, as the phase is hit only some of the time.
SOMETIMES_SLOW: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_SLOW[n], strict=True))
        if n in KNOWN_SLOW
        else pytest.param(n, marks=pytest.mark.xfail(reason=SOMETIMES_SLOW[n], strict=False))
        if n in SOMETIMES_SLOW
        else n
        for n in sorted(LONG)
    ],
)
def test_ctrl_c_stops_the_call(latencies, name):
    if "highs" in name:
        pytest.importorskip("highspy")
    took, problem = latencies[name]
    assert took is not None, f"{name}: {problem}"
    print(f"{name}: KeyboardInterrupt {took:.3f} s after SIGINT ({problem})")
    assert took < LIMIT, f"{name}: KeyboardInterrupt {took:.2f} s after SIGINT"


def _public_calls() -> set[str]:
    """Every public callable: ``module.name`` for functions, ``module.Class.method`` for the
    public methods of exported classes (inherited ones too), through nested public modules."""
    out: set[str] = set()

    def walk(prefix: str, module) -> None:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            q = f"{prefix}.{name}"
            if inspect.ismodule(obj):
                walk(q, obj)
            elif inspect.isclass(obj):
                for k in dir(obj):
                    if k.startswith("_") or any(k in vars(b) for b in (object, int, str, dict)):
                        continue
                    a = inspect.getattr_static(obj, k)
                    if isinstance(a, (classmethod, staticmethod)) or (
                        callable(a) and not isinstance(a, type)
                    ):
                        out.add(f"{q}.{k}")
            elif callable(obj):
                out.add(q)

    for sub in gm._SUBMODULES:
        if sub != "spark":  # runs inside Spark tasks: tests/spark
            walk(sub, importlib.import_module(f"growthmachine.{sub}"))
    return out


def _base(name: str) -> str:
    return name.split("[")[0]


def test_every_public_call_is_classified():
    calls = _public_calls()
    long = {_base(n) for n in LONG}
    unclassified = sorted(
        c
        for c in calls
        if c not in long and c not in BOUNDED and c.rsplit(".", 1)[1] not in _BOUNDED_NAMES
    )
    assert not unclassified, (
        "public calls with no Ctrl-C case in LONG and no reason in BOUNDED: "
        + ", ".join(unclassified)
    )
    stale = sorted((long | set(BOUNDED)) - calls)
    assert not stale, f"classified names that are not public calls: {stale}"
    # LONG and BOUNDED do not overlap: a call is either tested or explained.
    assert not long & set(BOUNDED)
