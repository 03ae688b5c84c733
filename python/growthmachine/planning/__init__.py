"""Operation planning: declarative plans, incremental-effect (uplift) models, executable tasks.

An operator states what they want in a :class:`Plan` (goals, audiences, benefits, channels,
contents, horizon, budget; YAML or Python); :meth:`Plan.compose` turns it into candidate tasks and
the users each may reach; a :class:`Planner` estimates every task's incremental effect per user
from a randomised campaign log (cross-fitted, calibrated on the log so that values are honest)
and hands the conflicting candidates to :mod:`growthmachine.allocate`, which returns a
:class:`TaskPlan` of executable tasks with a certificate::

    import growthmachine as gm
    plan = gm.planning.Plan.default(env, budget=10_000)      # or Plan.from_yaml("plan.yaml")
    log = env.run_experiment(plan.tasks()["task_id"], share=0.5, days=30)
    planner = gm.planning.Planner(plan, margin=env.config.response.margin).fit(log, insight, users)
    tp = planner.allocate()                                   # tp.tasks -> env.apply(tp.tasks)

Submodules: :mod:`.uplift` (models), :mod:`.metrics` (Qini and uplift curves, as scikit-uplift).
"""

from __future__ import annotations

from . import metrics, uplift
from ._calibrate import Calibration, LinearCalibration, ScaledCalibration
from ._features import planning_features
from ._plan import Audience, Benefit, Channel, Composition, Content, Goal, Plan, experiment_plan
from ._planner import Planner, TaskPlan
from ._segments import plan_from_environment
from ._stage import run_stage
from ._world import run_experiment, world_actions

__all__ = [
    "Audience",
    "Benefit",
    "Calibration",
    "Channel",
    "Composition",
    "Content",
    "Goal",
    "LinearCalibration",
    "ScaledCalibration",
    "Plan",
    "Planner",
    "experiment_plan",
    "TaskPlan",
    "metrics",
    "plan_from_environment",
    "planning_features",
    "run_experiment",
    "run_stage",
    "world_actions",
    "uplift",
]
