"""Versioned pickling of Python-side fitted objects."""

from __future__ import annotations

import pickle

import pytest

import growthmachine as gm
from growthmachine._state import Versioned


class Model(Versioned):
    _STATE_KIND = "TestModel"
    _STATE_VERSION = 2
    _STATE_READS = (1,)

    def __init__(self, a=1.0):
        self.a = a
        self.params_ = {"x": a / 3}

    def _upgrade_state(self, version, state):
        if version == 1:
            state = {**state, "params_": {"x": state["a"] / 3}}
        return state


def test_round_trip_exact():
    m = Model(0.1)
    back = pickle.loads(pickle.dumps(m))
    assert back.a == m.a and back.params_ == m.params_


def test_old_version_is_migrated_and_unknown_rejected():
    m = Model(3.0)
    v1 = {"__gm_kind__": "TestModel", "__gm_version__": 1, "state": {"a": 3.0}}
    fresh = Model.__new__(Model)
    fresh.__setstate__(v1)
    assert fresh.params_ == m.params_
    future = {"__gm_kind__": "TestModel", "__gm_version__": 99, "state": {}}
    with pytest.raises(gm.StateError, match="format version 99, this build reads versions"):
        Model.__new__(Model).__setstate__(future)
    other = {"__gm_kind__": "Other", "__gm_version__": 2, "state": {}}
    with pytest.raises(gm.StateError, match="expected a TestModel state, found a Other state"):
        Model.__new__(Model).__setstate__(other)
    with pytest.raises(gm.StateError, match="not a growthmachine TestModel state"):
        Model.__new__(Model).__setstate__({"a": 1})
    assert issubclass(gm.StateError, ValueError)
