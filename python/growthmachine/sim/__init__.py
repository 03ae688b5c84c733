"""The world: a synthetic population and environment with known ground truth.

::

    import growthmachine as gm

    pop = gm.sim.Population.generate(100_000, days=365, seed=0)   # users, transactions, truth
    env = gm.sim.Environment(pop, seed=0)                          # env.day == pop.days
    out = env.apply({"user_id": [1, 2], "benefit": "coupon_10", "channel": "ads"}, days=30)
    log = env.run_experiment(actions=[12, 30], share=0.5, days=30, seed=1)
    truth = env.true_uplift(log.user_id, 12)                        # scoring only
    sb = env.sessions(10_000, seed=0)                              # real-time visit stream

* :class:`WorldConfig` sets every parameter (documented with its reasoning; YAML/JSON);
* :class:`Population` holds ``users``, ``transactions`` and the hidden ``truth``;
* :class:`Environment` responds to actions (heterogeneous uplift, sleeping dogs, fatigue, Hill
  saturation of off-site exposures, opt-outs, channel rules) and knows the true uplift;
* :class:`SessionBatch` is a vectorised stream of multi-step site visits.

The population, environment and sessions are built in Rust (``src/sim/``); every user draws from
its own random streams, so results never depend on the thread count.
"""

from ._channels import CHANNELS, CONSENT, NEEDS_APP, OFFSITE
from ._config import (
    Archetype,
    Benefit,
    ChannelConfig,
    ChannelsConfig,
    ObservablesConfig,
    PopulationConfig,
    PurchaseConfig,
    ResponseConfig,
    SeasonalityConfig,
    SessionConfig,
    SpendConfig,
    WorldConfig,
)
from ._environment import Environment, SessionBatch, StepResult
from ._population import MAX_DAYS, Population
from ._stage import run_stage

__all__ = [
    "CHANNELS",
    "CONSENT",
    "MAX_DAYS",
    "NEEDS_APP",
    "OFFSITE",
    "Archetype",
    "Benefit",
    "ChannelConfig",
    "ChannelsConfig",
    "Environment",
    "ObservablesConfig",
    "Population",
    "PopulationConfig",
    "PurchaseConfig",
    "ResponseConfig",
    "SeasonalityConfig",
    "SessionBatch",
    "SessionConfig",
    "SpendConfig",
    "StepResult",
    "WorldConfig",
    "run_stage",
]
