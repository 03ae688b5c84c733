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
import inspect
import json
import os
import pickle
import pickletools
import re
import subprocess
import sys
from pathlib import Path

import fuzz_objects as fo
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import growthmachine as gm
from growthmachine.insight.lifecycle import LifecycleRules, as_rules
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


@st.composite
def mutated(draw, base):
    d = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = fo.tree_paths(d)
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
    # the same data as JSON (non-finite numbers as NaN/Infinity) and as YAML text
    try:
        text = json.dumps(d, allow_nan=True)
    except (TypeError, ValueError):  # keys JSON cannot write
        return
    _load_config(cls, root, lambda: cls.from_json(text.encode("utf-8", "surrogatepass")))
    _load_config(cls, root, lambda: cls.from_json(text))
    _load_config(cls, root, lambda: cls.from_yaml(yaml.safe_dump(d) + "\n"))


_YAML_BITS = st.sampled_from(
    ["a: 1\n", "purchase:\n  r: 0.5\n", "- x\n", "? [a, b]\n: 1\n", "&a [*a]\n", "!!binary x\n",
     "r: 2001-13-45\n", "x: !!float abc\n", "{", "[", "'", '"\\u', "\t", "%YAML 1.1\n", "---\n",
     "...\n", "r: 1e400\n", "r: " + "1" * 5000 + "\n", "goals: []\n", "*x\n", "!!python/name:os\n",
     "seasonality: {start_weekday: 99999999999999999999}\n", "[" * 200, "{\"a\": NaN}"]
)  # fmt: skip


@pytest.mark.parametrize("name", list(CONFIGS))
@_settings(80)
@given(data=st.data())
def test_raw_text_and_bytes(name, data):
    cls, root, _ = CONFIGS[name]
    raw = data.draw(
        st.one_of(
            st.text(max_size=60),
            st.binary(max_size=60),
            st.lists(_YAML_BITS | st.text(max_size=5), max_size=6).map("".join),
        )
    )
    for load in (cls.from_json, cls.from_yaml):
        _load_config(cls, root, lambda load=load: load(raw))


@pytest.mark.parametrize(
    "call, match",
    [
        # regressions the fuzzing found
        (lambda: WorldConfig.from_yaml("purchase:\n  r: 2001-13-45\n"), r"^config: not valid YAML"),
        (lambda: WorldConfig.from_json('{"x": ' + "1" * 5000 + "}"), r"^config: not valid JSON"),
        (lambda: WorldConfig.from_json('{"a": ' + "[" * 10**5 + "]" * 10**5 + "}"),
         r"^config: not valid JSON"),
        (lambda: WorldConfig.from_yaml("a: " + "[" * 5000 + "]" * 5000 + "\n"),
         r"^config: not valid YAML"),
        (lambda: WorldConfig.from_yaml("x" * 5000), r"^config: 'x{77}\.\.\.' is neither an existing"),
        (lambda: WorldConfig.from_yaml("x\x00y"), r"^config: not valid YAML"),
        (lambda: Plan.from_json("[1]"), r"^plan: '\[1\]' is neither an existing file nor JSON"),
        (lambda: WorldConfig.from_dict({"seasonality": {"start_weekday": 2**40}}),
         r"^config\.seasonality\.start_weekday: must be in 0 to 6"),
        (lambda: WorldConfig.from_dict({"seasonality": {"start_weekday": 2**64}}),
         r"^config\.seasonality\.start_weekday: must be >= 0 and < 2\*\*64"),
        (lambda: WorldConfig.from_dict({"purchase": {"r": 10**400}}),
         r"^config\.purchase\.r: must be finite, got 1000"),
        (lambda: WorldConfig.from_dict({"purchase": {"r": 10**5000}}),
         r"^config\.purchase\.r: must be finite, got an int of 16610 bits"),
        (lambda: as_rules({"new_days": 10**400}), r"^rules\.new_days: must be finite, got an int"),
        (lambda: as_rules({0: 1.0, "x": 1.0}), r"^rules: unknown keys \['x', 0\]"),
        # and the defects issue 15 listed
        (lambda: WorldConfig.from_json(123), r"^config: must be JSON text"),
    ],
)  # fmt: skip
def test_config_errors_name_the_source(call, match):
    with pytest.raises(EXPECTED, match=match):
        call()


def test_config_text_forms_that_are_valid():
    # bytes, one-line YAML, an int given as 2.0, a file given as a one-line str
    assert WorldConfig.from_json(b"{}") == WorldConfig()
    assert WorldConfig.from_yaml("purchase: {r: 0.5}").purchase.r == 0.5
    assert WorldConfig.from_yaml("").purchase == WorldConfig().purchase
    c = WorldConfig.from_dict({"seasonality": {"start_weekday": 2.0}})
    assert c.seasonality.start_weekday == 2 and isinstance(c.seasonality.start_weekday, int)


def test_a_one_line_str_naming_a_file_is_read_as_the_file(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text("purchase:\n  r: 0.25\n", encoding="utf-8")
    assert WorldConfig.from_yaml(str(p)).purchase.r == 0.25
    assert WorldConfig.from_yaml(p).purchase.r == 0.25
    p.write_bytes(b"purchase:\n  r: \xff\n")
    with pytest.raises(ValueError, match=r"^config \(.*w\.yaml\): not UTF-8 YAML text"):
        WorldConfig.from_yaml(p)


@_settings(60)
@given(
    rules=st.dictionaries(
        st.sampled_from(list(LifecycleRules.__dataclass_fields__)) | st.text(max_size=4)
        | st.integers(),
        GARBAGE,
        max_size=4,
    )
)  # fmt: skip
def test_lifecycle_rules_from_a_dict(rules):
    try:
        r = as_rules(rules)
    except EXPECTED as e:
        assert str(e).startswith("rules"), e
        return
    assert len(r.as_list()) == len(LifecycleRules.__dataclass_fields__)


# ---- pickled states (the Python side) ------------------------------------------------------------

VERSIONED = [n for n in fo.CASES if n not in fo.POLICIES]  # the rest pickle via Versioned


@pytest.mark.parametrize("name", VERSIONED)
def test_broken_inner_states_are_state_errors(name):
    obj = fo.fitted(name)
    st_ = obj.__getstate__()
    inner = st_["state"]
    bad = [
        {**st_, "state": {}},
        {**st_, "state": None},
        {**st_, "state": [1, 2]},
        {**st_, "__gm_version__": 10**6},
        {**st_, "__gm_version__": None},
        {**st_, "__gm_kind__": "growthmachine.Other"},
        {k: v for k, v in st_.items() if k != "__gm_kind__"},
        "not a dict",
        *({**st_, "state": {k: v for k, v in inner.items() if k != key}} for key in inner),
        # a key renamed (a flipped byte in its name): the keys written apart disagree
        *(
            {**st_, "state": {(k + "x" if k == key else k): v for k, v in inner.items()}}
            for key in inner
        ),
        {**st_, "__gm_keys__": 7},
        # ints no core takes (an OverflowError converting them is a StateError)
        *({**st_, "state": {**inner, key: 2**70}} for key in ("day", "epoch") if key in inner),
        # a Rust core's bytes replaced by something else (an int would be bytes(n): n bytes)
        *(
            {**st_, "state": {**inner, key: junk}}
            for key, v in inner.items()
            if isinstance(v, bytes)
            for junk in (2**62, 10**30, "x", None, b"", b"{}")
        ),
    ]
    for state in bad:
        blank = type(obj).__new__(type(obj))
        try:
            blank.__setstate__(state)
        except EXPECTED as e:
            assert isinstance(e, gm.StateError) or "state" in str(e), e
            continue
        # a key some states may lack (an optional attribute): the object must still work
        fo.CASES[name][1](blank)


@pytest.mark.parametrize("name", VERSIONED)
def test_a_pickle_stream_ending_before_the_state_is_a_state_error(name):
    """A stream whose byte after the object's creation became STOP (the fuzz of pickle streams
    found it: ``pickle.loads`` then returns ``cls.__new__(cls)``, never given its state): using
    that object is a ``StateError``, not an ``AttributeError`` from inside a method."""
    b = pickle.dumps(fo.fitted(name))
    made = next(pos for op, _, pos in pickletools.genops(b) if op.name == "NEWOBJ")
    blank = pickle.loads(b[: made + 1] + pickle.STOP + b[made + 2 :])  # one byte changed
    assert type(blank) is type(fo.fitted(name)) and not vars(blank)
    with pytest.raises(gm.StateError, match="has no state"):
        fo.CASES[name][1](blank)


@pytest.mark.parametrize("name", VERSIONED)
def test_a_fitted_value_of_another_type_than_written_is_a_state_error(name):
    """Each value not stored under a constructor argument's name (those have their annotation's
    check) replaced by one of another type, as a corrupt stream gives (the fuzz of pickle streams
    turned KMeans's and StandardScaler's fitted arrays into a tuple, a function or a memoryview,
    which loaded and failed at first use with an AttributeError): a StateError naming it."""
    obj = fo.fitted(name)
    st_ = obj.__getstate__()
    args = set(inspect.signature(type(obj).__init__).parameters)
    for key, v in st_["state"].items():
        if key in args:
            continue
        junk = [1, 2] if isinstance(v, tuple) else (1, 2)
        bad = {**st_, "state": {**st_["state"], key: junk}}
        with pytest.raises(gm.StateError, match=rf"\b{re.escape(key)}\b"):
            type(obj).__new__(type(obj)).__setstate__(bad)


def test_a_meta_learner_with_a_fold_model_replaced_or_lost_is_a_state_error():
    """The fold models are nested past the recorded types: one replaced by a tuple, an arm's model
    or a fold lost (what the fuzz of pickle streams made of a TLearner, which then failed inside
    predict with AttributeError or IndexError) is a StateError on loading."""
    obj = fo.fitted("TLearner")
    st_ = obj.__getstate__()
    models = st_["state"]["models_"]
    assert len(models) == obj.n_folds and all(len(fold) == 2 for fold in models)  # control, 1 arm
    for bad in (
        [[(1, 2), fold[1]] for fold in models],
        [fold[:1] for fold in models],
        models + models,
        [*models[:-1], "x"],
    ):
        state = {**st_, "state": {**st_["state"], "models_": bad}}
        with pytest.raises(gm.StateError, match="models_"):
            gm.planning.uplift.TLearner.__new__(gm.planning.uplift.TLearner).__setstate__(state)


# ---- the Rust cores' state decoders, in a child process ------------------------------------------


def test_core_state_decoders_in_a_child():
    here = Path(__file__).parent
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         str(here / "fuzz_core_states.py")],
        cwd=here, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    # a crash's stack (faulthandler's, before its list of extension modules) is in the message
    crash = r.stderr.split("Extension modules:")[0][-6000:]
    assert r.returncode == 0, (r.returncode, r.stdout[-6000:], crash, r.stderr[-3000:])
    assert " passed" in r.stdout and "failed" not in r.stdout


#: Plain constructor annotations and a value of another type for each.
_WRONG = {"int": "x", "float": "x", "str": 7, "bool": "yes"}


def _plain_arguments(cls: type) -> dict[str, str]:
    """Constructor arguments annotated with a plain type (or an optional one) -> that type."""
    out = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        a = str(p.annotation).removesuffix(" | None")
        if a in _WRONG:
            out[p.name] = a
    return out


@pytest.mark.parametrize("name", VERSIONED)
def test_wrongly_typed_state_values_are_state_errors(name):
    """A value stored under a constructor argument's name with the wrong type (a SessionPolicy
    state with ``n_features="x"``) fails on loading, naming it, not at first use."""
    obj = fo.fitted(name)
    st_ = obj.__getstate__()
    plain = _plain_arguments(type(obj))
    keys = [k for k in st_["state"] if k in plain]
    for key in keys:
        bad = {**st_, "state": {**st_["state"], key: _WRONG[plain[key]]}}
        with pytest.raises(gm.StateError, match=rf"\b{key}\b"):
            type(obj).__new__(type(obj)).__setstate__(bad)


def test_a_wrongly_typed_session_policy_state():
    p = gm.realtime.SessionPolicy(4, 3)
    st_ = p.__getstate__()
    st_["state"]["n_features"] = "x"
    with pytest.raises(gm.StateError, match="n_features must be an int"):
        gm.realtime.SessionPolicy.__new__(gm.realtime.SessionPolicy).__setstate__(st_)


def test_a_state_written_before_the_keys_were_recorded_still_loads():
    obj = fo.fitted("KMeans")
    state = obj.__getstate__()
    assert "__gm_keys__" in state
    del state["__gm_keys__"]
    old = type(obj).__new__(type(obj))
    old.__setstate__(state)
    assert (old.predict(fo._xty()[0][:5]) == obj.predict(fo._xty()[0][:5])).all()
    # nor their types (recorded since session 13)
    del state["__gm_types__"]
    old = type(obj).__new__(type(obj))
    old.__setstate__(state)
    assert (old.predict(fo._xty()[0][:5]) == obj.predict(fo._xty()[0][:5])).all()


def test_a_corrupt_record_of_the_types_is_a_state_error():
    state = fo.fitted("KMeans").__getstate__()
    types = state["__gm_types__"]
    for bad in (
        7,
        "",
        types.replace("=", "", 1),
        types + "\nx=builtins.int",
        types.replace("numpy.ndarray", "builtins.tuple", 1),
    ):
        with pytest.raises(gm.StateError, match="types|written as"):
            gm.insight.KMeans.__new__(gm.insight.KMeans).__setstate__(
                {**state, "__gm_types__": bad}
            )
