"""Fuzzing of every parser of outside text or bytes, bounded in time (issue 15).

- configuration text: ``WorldConfig`` and ``Plan`` from dicts (valid ones mutated: fields removed,
  wrong types, huge, negative or non-finite numbers, nested garbage, unknown keys, unicode), from
  JSON and YAML text of those, and from arbitrary text and bytes;
- pickled states of every public picklable class: the inner state emptied, keys removed, the Rust
  cores' bytes replaced, kinds and versions changed, the pickle stream truncated or flipped;
- the Rust cores' state decoders, fuzzed in a child process (``fuzz_core_states.py``) so that an
  abort would fail a test instead of the run.

The contract: each case gives a valid object (on which one cheap call works) or raises
``ValueError`` (``StateError`` is one) / ``TypeError`` whose message names the root (``config``,
``plan``) or the state; never another exception type from growthmachine's code, never an abort.
Examples are bounded (``max_examples``; env ``GM_FUZZ_EXAMPLES`` scales them for a longer run)
and no example database is written.
"""

from __future__ import annotations

import copy
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from growthmachine.planning import Plan
from growthmachine.sim import WorldConfig

EXPECTED = (ValueError, TypeError)
SCALE = float(os.environ.get("GM_FUZZ_EXAMPLES", "60")) / 60


def _settings(n: int):
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- configuration text --------------------------------------------------------------------------

PLAN = {
    "name": "spring",
    "horizon_days": 30,
    "budget": 5000.0,
    "goals": [
        {"name": "new buyers", "kind": "acquisition", "metric": "conversion", "floor": 20.0,
         "audience": "prospects"},
        {"name": "profit", "kind": "arpu"},
    ],
    "audiences": [
        {"name": "prospects", "stages": ["prospect"]},
        {"name": "big", "features": {"clv": [200.0, None]}, "clusters": [1, "a"]},
    ],
    "benefits": [
        {"name": "none", "kind": "none", "face_value": 0.0, "cost": 0.0},
        {"name": "welcome", "kind": "coupon", "face_value": 20.0, "cost": 20.0,
         "eligibility": "prospects", "budget": 100.0},
    ],
    "channels": [
        {"name": "email", "offsite": True, "cost_per_touch": 0.001, "consent": "email_opt_in",
         "weekly_cap": 2},
        {"name": "push", "offsite": True, "cost_per_touch": 0.0005, "requires_app": True},
    ],
    "contents": [{"name": "discount"}],
}  # fmt: skip

#: (class, root, a valid dict)
CONFIGS = {
    "world": (WorldConfig, "config", WorldConfig().to_dict()),
    "plan": (Plan, "plan", PLAN),
}

GARBAGE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([-1, 0, 2**31, 2**32, 2**63, 2**64 - 1, 2**64, -(2**64), 10**400]),
        st.floats(),
        st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 2.0, 0.5]),
        st.text(max_size=12),
        st.sampled_from(["", " ", "|", "a:b", "prospect", "none", "ünï😀", "\x00", "\ud800"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),  # fmt: skip
    max_leaves=8,
)


def _paths(v, at=()):
    out = [at]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, (*at, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _paths(x, (*at, i))
    return out


@st.composite
def mutated(draw, base):
    d = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(d)
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["replace", "remove", "add_key", "empty", "duplicate"]))
        if not path:
            if how == "replace":
                return draw(GARBAGE)
            continue
        parent = d
        for k in path[:-1]:
            parent = parent[k]
        k = path[-1]
        if how == "replace":
            parent[k] = draw(GARBAGE)
        elif how == "remove":
            del parent[k]
        elif how == "add_key" and isinstance(parent[k], dict):
            parent[k][draw(st.text(max_size=8))] = draw(GARBAGE)
        elif how == "empty":
            parent[k] = type(parent[k])() if isinstance(parent[k], (list, dict, str)) else 0
        elif how == "duplicate" and isinstance(parent[k], list) and parent[k]:
            parent[k] = parent[k] + parent[k][:1]
    return d


def _load_config(cls, root: str, load) -> None:
    """``load()`` gives a valid config or raises ValueError/TypeError naming ``root``."""
    try:
        obj = load()
    except EXPECTED as e:
        assert str(e).startswith(root), f"{type(e).__name__} not naming {root}: {e}"
        return
    assert isinstance(obj, cls)
    obj.validate()
    assert type(obj).from_json(obj.to_json()) == obj


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_valid_configs_load(name):
    cls, _, d = CONFIGS[name]
    obj = cls.from_dict(d)
    assert cls.from_yaml(obj.to_yaml()) == obj == cls.from_json(obj.to_json())


@pytest.mark.parametrize("name", list(CONFIGS))
@_settings(60)
@given(data=st.data())
def test_mutated_configs(name, data):
    cls, root, base = CONFIGS[name]
    d = data.draw(mutated(base))
    _load_config(cls, root, lambda: cls.from_dict(d))


@pytest.mark.parametrize(
    "call, match",
    [
        # regressions the fuzzing found
        (lambda: WorldConfig.from_dict({"seasonality": {"start_weekday": 2**40}}),
         r"^config\.seasonality\.start_weekday: must be in 0 to 6"),
        (lambda: WorldConfig.from_dict({"seasonality": {"start_weekday": 2**64}}),
         r"^config\.seasonality\.start_weekday: must be >= 0 and < 2\*\*64"),
        (lambda: WorldConfig.from_dict({"purchase": {"r": 10**400}}),
         r"^config\.purchase\.r: must be finite, got 1000"),
        (lambda: WorldConfig.from_dict({"purchase": {"r": 10**5000}}),
         r"^config\.purchase\.r: must be finite, got an int of 16610 bits"),
    ],
)  # fmt: skip
def test_config_errors_name_the_source(call, match):
    with pytest.raises(EXPECTED, match=match):
        call()
