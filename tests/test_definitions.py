"""Defaults and constants defined once, in the core, and read by the Python API (issue 14)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

import growthmachine as gm
from growthmachine import _core
from growthmachine.insight.lifecycle import STAGES, LifecycleRules


def test_world_defaults_are_the_cores():
    assert gm.sim.WorldConfig().to_dict() == json.loads(_core.sim_default_config())
    # fresh lists: editing one default config never changes another
    a, b = gm.sim.WorldConfig(), gm.sim.WorldConfig()
    a.seasonality.weekly[0] = 9.0
    a.archetypes[0].channel_affinity[0] = 0.0
    assert b.seasonality.weekly[0] != 9.0 and b.archetypes[0].channel_affinity[0] != 0.0


def test_channels_are_the_cores():
    info = _core.sim_channels()
    assert gm.sim.CHANNELS == tuple(c["name"] for c in info)
    assert gm.sim.OFFSITE == tuple(c["offsite"] for c in info)
    assert gm.sim.CONSENT["push"] == "push_opt_in" and gm.sim.CONSENT["ads"] is None
    assert gm.sim.NEEDS_APP["in_app"] and not gm.sim.NEEDS_APP["email"]
    pop = gm.sim.Population.generate(300, days=60, seed=1)
    env = gm.sim.Environment(pop, seed=0)
    plan = gm.planning.Plan.default(env)
    for c, off in zip(gm.sim.CHANNELS, gm.sim.OFFSITE, strict=True):
        ch = next(x for x in plan.channels if x.name == c)
        assert (ch.offsite, ch.consent, ch.requires_app) == (
            off,
            gm.sim.CONSENT[c],
            gm.sim.NEEDS_APP[c],
        )
    # eligibility (the core's channel rules) agrees with the world's reachability table
    users = np.arange(pop.n_users)
    reach = gm.touchpoint.world_reachable(env, users, ["ads", "sms", "email", "push"])
    for j, c in enumerate(["ads", "sms", "email", "push"]):
        a = int(env.actions.loc[env.actions["channel"] == c, "action_id"].iloc[0])
        np.testing.assert_array_equal(env.eligible(users, a), reach[:, j])
    with pytest.raises(ValueError, match="in_app is on-site"):
        gm.touchpoint.FrequencyPlanner.for_world(env, ["in_app"])


def test_feature_columns_and_lifecycle_are_the_cores():
    cols = gm.insight.FEATURE_COLUMNS
    core = tuple(_core.insight_feature_columns())
    assert cols[2 : 2 + len(core)] == core
    assert STAGES == tuple(_core.insight_lifecycle_stages())
    assert asdict(LifecycleRules()) == json.loads(_core.insight_lifecycle_default_rules())
    with pytest.raises(ValueError, match="rules"):
        _core.insight_lifecycle(
            np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1), np.zeros(1), '{"new_days": 1}'
        )
