"""Fuzzing of the Rust cores' state decoders (``src/state.rs`` and each core's ``from_bytes``).

Not collected by pytest on its own (the name does not start with ``test_``):
``test_fuzz_parsers.py::test_core_state_decoders_in_a_child`` runs this file in a child process,
so that an abort (an allocation a corrupt state asked for, a panic that does not unwind) fails
that test instead of killing the test run.

Each core's valid state bytes (taken from a fitted object through its public pickling) are
corrupted at three levels: the raw bytes (truncated, bytes flipped or inserted), the envelope
(kind, version) and the JSON payload itself, resealed with a valid checksum so that the core's
own structure checks are what is tested (a value replaced by a huge, negative, fractional or
non-numeric one, a list emptied, shortened or grown, a key removed). Loading must then either
raise ``ValueError``/``TypeError`` (``StateError`` is one) or give an object on which one cheap
call works.

The pickle streams of every public picklable object are truncated or have bytes flipped here too:
errors raised by growthmachine's own code (loading a state, or the one call on what loaded) must
be ``ValueError``/``TypeError``; what the pickle machinery, numpy or pandas raise on a corrupt
stream is theirs. Bytes are flipped only in pickles that hold no pandas/Arrow data: pyarrow's
unpickling trusts its buffers (a flipped string offset crashed the interpreter when the strings
were read), which is not this package's to fix. numpy's own array pickling is not fuzzed for the
same reason (one changed byte of an ordinary array's pickle crashes numpy 2.4's unpickler, see
``fuzz_objects._CheckedPickler``): the streams write numpy arrays, scalars and dtypes as calls of
numpy's checked constructors on their dtype string, shape and bytes, so a flipped byte there still
reaches growthmachine as an array of another dtype, shape or content. The address space of this
child is capped so that a flipped length the pickle machinery believes is a ``MemoryError``, not
the OOM killer.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import resource
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fuzz_objects as fo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import growthmachine as gm
from growthmachine.realtime._base import restore

EXPECTED = (ValueError, TypeError)
_CAP = 8 << 30
resource.setrlimit(resource.RLIMIT_AS, (_CAP, max(_CAP, resource.getrlimit(resource.RLIMIT_AS)[1])))
SETTINGS = settings(
    max_examples=int(os.environ.get("GM_FUZZ_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- where each core's bytes live in the pickled state -----------------------------------------


def _in_state(key: str) -> tuple[Callable[[Any], bytes], Callable[[Any, bytes], Any]]:
    """Bytes at ``state[key]`` of a ``Versioned`` object: (get, load a copy with other bytes)."""

    def get(obj):
        return obj.__getstate__()["state"][key]

    def load(obj, b):
        st = obj.__getstate__()
        st = {**st, "state": {**st["state"], key: b}}
        new = type(obj).__new__(type(obj))
        new.__setstate__(st)
        return new

    return get, load


def _policy() -> tuple[Callable[[Any], bytes], Callable[[Any, bytes], Any]]:
    def get(obj):
        return obj.__reduce__()[1][1]

    def load(obj, b):
        return restore(type(obj), b)

    return get, load


def _session_model() -> tuple[Callable[[Any], bytes], Callable[[Any, bytes], Any]]:
    def get(obj):
        return obj.__getstate__()["state"]["models"][0][1]

    def load(obj, b):
        st = obj.__getstate__()
        models = list(st["state"]["models"])
        models[0] = (models[0][0], b)
        new = type(obj).__new__(type(obj))
        new.__setstate__({**st, "state": {**st["state"], "models": models}})
        return new

    return get, load


#: core -> (fixture name, (get bytes, load with bytes))
CORES: dict[str, tuple[str, tuple]] = {
    "forest": ("UpliftForest", _in_state("_forest")),
    "cell": ("CellUplift", _in_state("_model")),
    "response": ("ResponseModel", _in_state("_core")),
    "height": ("ResponseModel+height", _in_state("_height")),
    "pacer": ("BudgetPacer", _in_state("pacer")),
    "pacer_policy": ("BudgetPacer", _in_state("policy")),
    "session_pacer": ("SessionPolicy", _in_state("pacer")),
    "session_model": ("SessionPolicy", _session_model()),
    "sim_sessions": ("SessionBatch", _in_state("core")),
    **{c: (c, _policy()) for c in fo.POLICIES},
}


def _load_and_use(core: str, data: bytes) -> None:
    name, (_, load) = CORES[core]
    obj = fo.fitted(name)
    try:
        new = load(obj, data)
    except EXPECTED:
        return
    fo.CASES[name][1](new)  # a state that loads must give a working object
    pickle.loads(pickle.dumps(new))


def _valid(core: str) -> bytes:
    name, (get, _) = CORES[core]
    return bytes(get(fo.fitted(name)))


# ---- the envelope and the payload ----------------------------------------------------------------


def _fnv64(b: bytes) -> int:
    h = 0xCBF29CE484222325
    for x in b:
        h = ((h ^ x) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _open(data: bytes) -> tuple[dict, Any, bool]:
    """(envelope, payload, sealed)."""
    env = json.loads(data)
    d = env["data"]
    if isinstance(d, dict) and set(d) == {"payload", "fnv64"}:
        return env, json.loads(d["payload"]), True
    return env, d, False


def _close(env: dict, payload: Any, sealed: bool) -> bytes:
    env = dict(env)
    if sealed:
        text = json.dumps(payload, separators=(",", ":"))
        env["data"] = {"payload": text, "fnv64": _fnv64(text.encode())}
    else:
        env["data"] = payload
    return json.dumps(env, separators=(",", ":")).encode()


REPLACEMENTS = st.one_of(
    st.sampled_from([0, 1, -1, 2, 3, 255, 256, 2**31, 2**32, 2**53, 2**60, 2**64 - 1, 2**64]),
    st.sampled_from([0.5, -0.5, 1e308, -1e308, 1e-308, 1.5]),
    st.sampled_from([None, True, "", "x", [], {}, [0], [1.0, 2.0], [[]], {"a": 1}]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _mutate(payload: Any, path: tuple, how: str, new: Any) -> Any:
    p = copy.deepcopy(payload)
    if not path:
        return new
    parent = p
    for k in path[:-1]:
        parent = parent[k]
    k = path[-1]
    old = parent[k]
    if how == "replace":
        parent[k] = new
    elif how == "delete":
        if isinstance(parent, dict):
            del parent[k]
        else:
            parent.pop(k)
    elif how == "shorten" and isinstance(old, list):
        parent[k] = old[: len(old) // 2]
    elif how == "grow" and isinstance(old, list):
        parent[k] = old + old[:1] * 3 if old else [0]
    elif how == "empty":
        parent[k] = type(old)() if isinstance(old, (list, dict, str)) else 0
    else:
        parent[k] = new
    return p


# ---- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("core", list(CORES))
def test_valid_state_loads_and_works(core):
    _load_and_use(core, _valid(core))
    name, (_, load) = CORES[core]
    load(fo.fitted(name), _valid(core))  # and it really loads (no expected error swallowed)


@pytest.mark.parametrize("core", list(CORES))
@SETTINGS
@given(data=st.data())
def test_raw_bytes(core, data):
    b = bytearray(_valid(core))
    op = data.draw(st.sampled_from(["truncate", "flip", "insert", "garbage"]))
    if op == "truncate":
        b = b[: data.draw(st.integers(0, len(b) - 1))]
    elif op == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] ^= data.draw(st.integers(1, 255))
    elif op == "insert":
        i = data.draw(st.integers(0, len(b)))
        b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    else:
        b = bytearray(data.draw(st.binary(max_size=64)))
    _load_and_use(core, bytes(b))


@pytest.mark.parametrize("core", list(CORES))
@SETTINGS
@given(data=st.data())
def test_envelope(core, data):
    env, payload, sealed = _open(_valid(core))
    key = data.draw(st.sampled_from(["kind", "version", "data"]))
    env[key] = data.draw(REPLACEMENTS)
    _load_and_use(core, _close(env, payload, sealed) if key != "data" else json.dumps(env).encode())


@pytest.mark.parametrize("core", list(CORES))
@SETTINGS
@given(data=st.data())
def test_payload_resealed(core, data):
    env, payload, sealed = _open(_valid(core))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(fo.tree_paths(payload, first=4)))
        how = data.draw(st.sampled_from(["replace", "delete", "shorten", "grow", "empty"]))
        payload = _mutate(payload, path, how, data.draw(REPLACEMENTS))
    _load_and_use(core, _close(env, payload, sealed))


def test_a_state_claiming_huge_sizes_is_an_error_not_an_allocation():
    """Every integer of every payload set to 2**60 in turn: an error (or a working object),
    never an attempt to allocate that much."""
    for core in CORES:
        env, payload, sealed = _open(_valid(core))
        for path in fo.tree_paths(payload, first=4):
            v = payload
            for k in path:
                v = v[k]
            if isinstance(v, int) and not isinstance(v, bool):
                _load_and_use(core, _close(env, _mutate(payload, path, "replace", 2**60), sealed))


# ---- pickle streams of every public picklable object ---------------------------------------------


def _ours(e: BaseException) -> bool:
    """Whether ``e`` was raised inside growthmachine's code (not by pickle, numpy or pandas)."""
    frames = traceback.extract_tb(e.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(str(Path(gm.__file__).parent))


@pytest.mark.parametrize("name", list(fo.CASES))
@SETTINGS
@given(data=st.data())
def test_corrupt_pickle_streams(name, data):
    b = bytearray(fo.checked_dumps(fo.fitted(name)))
    flippable = b"pandas" not in b and b"pyarrow" not in b
    # no numpy pickling left where bytes are flipped (an object array would fall back to it)
    assert not flippable or b"numpy._core" not in b
    if not flippable or data.draw(st.booleans()):
        b = b[: data.draw(st.integers(0, len(b) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 3))):
            b[data.draw(st.integers(0, len(b) - 1))] ^= data.draw(st.integers(1, 255))
    try:
        fo.CASES[name][1](pickle.loads(bytes(b)))  # load, then the one call on what loaded
    except EXPECTED:
        pass
    except Exception as e:
        if _ours(e):
            raise
