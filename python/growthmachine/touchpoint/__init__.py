"""External Touchpoint Engine: off-site exposure frequency planning with a feedback loop.

- :class:`ResponseModel`: conversion and opt-out curves in the number of exposures, per segment
  and channel, fitted from logs with randomised frequency arms and pooled across segments
  (``partial_fit`` adds the next window's outcomes).
- :class:`FrequencyPlanner` (``src/touchpoint/plan.rs``): how many exposures each targeted user
  gets, on which channel and day, under a budget, channel capacities and per-user caps, priced
  by the allocation core's Lagrangian solver, with a certificate; :meth:`~FrequencyPlanner.observe`
  feeds what users did back into the curves.
- Scoring on the simulated world (**scoring only**): :func:`true_curves`, :func:`score`, and the
  baselines :func:`uniform_plan` and :func:`max_caps_plan`; the world's observable segments
  (:func:`world_segments`), reachability, prior fatigue (:func:`world_fatigue`) and
  covariates of the curves' height (:func:`world_covariates`).
- :func:`user_covariates`: the covariates of the curves' height from a fitted insight
  (:func:`growthmachine.planning.planning_features`), what the pipeline's stage passes.
"""

from ._features import user_covariates
from ._planner import DEFAULT_LEVELS, Channel, FrequencyPlan, FrequencyPlanner
from ._response import Curves, ResponseModel
from ._scoring import (
    fixed_plan,
    max_caps_plan,
    score,
    segment_curves,
    true_curves,
    uniform_plan,
    world_covariates,
    world_fatigue,
    world_reachable,
    world_segments,
)
from ._stage import run_stage

__all__ = [
    "DEFAULT_LEVELS",
    "Channel",
    "Curves",
    "FrequencyPlan",
    "FrequencyPlanner",
    "ResponseModel",
    "fixed_plan",
    "run_stage",
    "max_caps_plan",
    "score",
    "segment_curves",
    "true_curves",
    "uniform_plan",
    "user_covariates",
    "world_covariates",
    "world_fatigue",
    "world_reachable",
    "world_segments",
]
