"""Hostile input to growthmachine.sim (issue 15): sizes too large for any machine or this one,
misleading messages, valid input that was rejected, duplicates that were silently accepted, and
state that loaded into a broken object."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pandas as pd
import pytest

from growthmachine import StateError
from growthmachine.sim import Environment, Population, WorldConfig


@pytest.fixture(scope="module")
def pop() -> Population:
    return Population.generate(1_000, days=120, seed=5)


@pytest.fixture()
def env(pop) -> Environment:
    return Environment(pop, seed=1)


def _last_error_line(code: str) -> tuple[int, str]:
    """Runs ``code`` in a fresh interpreter (an abort there cannot take the tests down) and
    returns its exit status and the last line of its stderr."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    return r.returncode, lines[-1] if lines else ""


_ENV = "import growthmachine as gm; e = gm.sim.Environment(gm.sim.Population.generate(50)); "


@pytest.mark.parametrize(
    "code, error",
    [
        # possible sizes, too large for this machine: MemoryError before any work (an abort
        # in handle_alloc_error before)
        ("import growthmachine as gm; gm.sim.Population.generate(10**10)", "MemoryError: n_users:"),
        (_ENV + "e.sessions(2**40)", "MemoryError: n:"),
        # impossible sizes: ValueError naming the argument (InternalError 'capacity overflow'
        # and a bare OverflowError before)
        (_ENV + "e.sessions(2**62)", "ValueError: n:"),
        (_ENV + "e.sessions(2**64)", "ValueError: n:"),
        ("import growthmachine as gm; gm.sim.Population.generate(2**62)", "ValueError: n_users:"),
        ("import growthmachine as gm; gm.sim.Population.generate(2**64)", "ValueError: n_users:"),
    ],
)
def test_huge_sizes_raise_instead_of_aborting(code, error):
    status, last = _last_error_line(code)
    assert status == 1, (status, last)  # an exception, not a signal
    assert last.startswith(error), last


def test_apply_names_the_column_whose_length_differs(env):
    with pytest.raises(ValueError, match=r"treatments\['action_id'\]: has length 2, expected 3"):
        env.apply({"user_id": [1, 2, 3], "action_id": [16, 16]})


def test_ranges_in_messages_are_inclusive(env):
    with pytest.raises(ValueError, match=r"is not a user id \(0 to 999\)"):
        env.apply({"user_id": [1_000], "action_id": [16]})
    with pytest.raises(ValueError, match=r"is not a user id \(0 to 999\)"):
        env.true_uplift([1_000], 0)
    n = len(env.actions)
    with pytest.raises(ValueError, match=rf"is not an action id \(0 to {n - 1}\)"):
        env.true_uplift([0], n)
    with pytest.raises(ValueError, match=r"start_weekday: must be in 0 to 6"):
        WorldConfig.from_dict({"seasonality": {"start_weekday": 7}})
    s = env.sessions(3)
    with pytest.raises(ValueError, match=r"is not an action \(0 to 5\)"):
        s.step([6, 0, 0])


@pytest.mark.parametrize("empty", [pd.DataFrame(), {}, pd.DataFrame({"user_id": []})])
def test_apply_of_an_empty_table_runs_the_world_untouched(env, pop, empty):
    ref = env.copy()
    out = env.apply(empty, days=10)
    assert env.day == pop.days + 10
    assert len(out) == env.n_users and out["touches"].sum() == 0
    pd.testing.assert_frame_equal(out, ref.apply(None, days=10))


def test_run_experiment_takes_a_single_action_id(env):
    log = env.run_experiment(actions=12, share=0.5, days=5, seed=2)
    assert set(log["action_id"].unique()) <= {-1, 12}
    assert (log["action_id"] == 12).any()
    with pytest.raises(TypeError):
        env.run_experiment(actions=True)


def test_oracle_rejects_a_repeated_user(env):
    for f in (env.oracle_allocation, env.oracle_candidates):
        with pytest.raises(ValueError, match="user_ids: user 1 appears more than once"):
            f(user_ids=[1, 1, 1])
    with pytest.raises(ValueError, match="user_ids: user 4 appears more than once"):
        env.run_experiment([12], user_ids=[3, 4, 5, 4], days=5)


def test_world_config_loading_accepts_bytes_and_integral_floats():
    assert WorldConfig.from_json(b"{}") == WorldConfig()
    assert WorldConfig.from_yaml(b"{}\n") == WorldConfig()
    c = WorldConfig.from_json(json.dumps({"seasonality": {"start_weekday": 2.0}}))
    assert c.seasonality.start_weekday == 2 and type(c.seasonality.start_weekday) is int
    with pytest.raises(
        TypeError, match=r"config\.seasonality\.start_weekday: must be an int, got float 2\.5"
    ):
        WorldConfig.from_json(json.dumps({"seasonality": {"start_weekday": 2.5}}))
    sms = {"unit_cost": 0.03, "daily_cap": 3.0}
    c = WorldConfig.from_dict({"response": {"channels": {"sms": sms}}})
    assert c.response.channels.sms.daily_cap == 3


@pytest.mark.parametrize("bad", [123, 1.5, None, ["{}"]])
def test_world_config_from_json_of_a_non_text_names_the_config(bad):
    with pytest.raises(TypeError, match=r"^config: must be JSON text"):
        WorldConfig.from_json(bad)


def test_an_empty_inner_state_is_a_state_error(env, pop):
    for obj in (env, pop, env.sessions(3)):
        state = obj.__getstate__()
        blank = type(obj).__new__(type(obj))
        with pytest.raises(StateError, match="state"):
            blank.__setstate__({**state, "state": {}})
    state = env.__getstate__()
    arrays = dict(state["state"]["arrays"])
    del arrays["gmv"]
    blank = Environment.__new__(Environment)
    with pytest.raises(StateError, match="gmv"):
        blank.__setstate__({**state, "state": {**state["state"], "arrays": arrays}})
    # a complete state still loads
    again = pickle.loads(pickle.dumps(env))
    assert again.day == env.day and again.n_users == env.n_users
