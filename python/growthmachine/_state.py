"""Versioned pickling for fitted objects (the conventions, implemented once).

Python objects mix in :class:`Versioned` and set ``_STATE_KIND``/``_STATE_VERSION``; their pickled
state carries both and the inner state's keys, and unpickling rejects another kind, an unknown
version or keys other than the ones written (a lost or renamed key) with
:class:`growthmachine.StateError`. Values stored under a constructor argument's name (the
convention) must have the type its annotation names (``n_features: int`` holds an int, not
``"x"``): a wrongly typed state is a ``StateError`` on loading, not an object failing at first use.
Objects wrapping a Rust core pickle the core's own versioned bytes (see ``src/state.rs``) inside
this envelope.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

from ._core import StateError
from ._schema import _describe, _matches, _show, _union_args

_KEY_SEP = "\n"
_TYPE_SEP = "="


class Versioned:
    _STATE_KIND: ClassVar[str]
    _STATE_VERSION: ClassVar[int] = 1
    #: Older versions this build can still read (``_upgrade_state`` migrates them).
    _STATE_READS: ClassVar[tuple[int, ...]] = ()

    def __getstate__(self) -> dict[str, Any]:
        inner = self._get_state()
        return {
            "__gm_kind__": self._STATE_KIND,
            "__gm_version__": self._STATE_VERSION,
            "state": inner,
            # the inner state's keys, written apart (one new string, not shared with the keys by
            # pickle's memo): a key lost or renamed by corruption is an error, not an object
            # missing an attribute
            "__gm_keys__": _KEY_SEP.join(sorted(inner)),
            # and the type of each value: a fitted array turned into a tuple by corruption is an
            # error on loading, not an AttributeError at first use
            "__gm_types__": _KEY_SEP.join(
                f"{k}{_TYPE_SEP}{_type_name(inner[k])}" for k in sorted(inner)
            ),
        }

    def __getattr__(self, name: str) -> Any:
        # Reached only when the normal lookup failed. An instance with no attributes at all was
        # neither constructed nor loaded: ``cls.__new__(cls)`` alone, which is what a pickle
        # stream ending right after the object's creation (a byte turned into STOP) gives. Its
        # use is a StateError saying so, not an AttributeError from whichever attribute a method
        # reads first. Any other instance re-raises the lookup's own AttributeError.
        if not name.startswith("__") and not vars(self):
            raise StateError(
                f"this {type(self).__name__} has no state: it was neither constructed nor "
                "loaded (a pickle stream that ends before the object's state?)"
            )
        return object.__getattribute__(self, name)

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "__gm_kind__" not in state:
            raise StateError(f"not a growthmachine {self._STATE_KIND} state")
        kind, version = state["__gm_kind__"], state.get("__gm_version__")
        if kind != self._STATE_KIND:
            raise StateError(f"expected a {self._STATE_KIND} state, found a {kind} state")
        readable = (self._STATE_VERSION, *self._STATE_READS)
        if version not in readable:
            raise StateError(
                f"{kind} state has format version {version}, this build reads versions "
                f"{list(readable)}; upgrade growthmachine to read it"
            )
        inner = state.get("state")
        if not isinstance(inner, dict):
            raise StateError(f"{kind} state: the inner state is not a dict")
        keys = state.get("__gm_keys__")  # absent in states written before it was added
        if keys is not None:
            want = set(keys.split(_KEY_SEP)) - {""} if isinstance(keys, str) else None
            if want != set(inner):
                have = set(inner)
                raise StateError(
                    f"{kind} state is corrupt: its keys are not the ones written (missing "
                    f"{sorted(map(str, (want or set()) - have))}, unexpected "
                    f"{sorted(map(str, have - (want or set())))})"
                )
        _check_written_types(type(self), inner, state.get("__gm_types__"), kind)
        try:
            inner = self._upgrade_state(version, inner)
            _check_types(type(self), inner, kind)
            self._set_state(inner)
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
            # A state missing fields or holding wrong ones: an error, never a broken object.
            raise StateError(
                f"{kind} state is incomplete or corrupt ({type(e).__name__}: {e})"
            ) from e

    # Overridable hooks ---------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def _set_state(self, state: dict[str, Any]) -> None:
        # The default state is the instance's __dict__, which holds every constructor argument.
        missing = [k for k in _init_params(type(self)) if k not in state]
        if missing:
            raise StateError(f"{self._STATE_KIND} state: missing {', '.join(missing)}")
        self.__dict__.update(state)

    def _upgrade_state(self, version: int, state: dict[str, Any]) -> dict[str, Any]:
        return state


def core_bytes(state: dict[str, Any], key: str, kind: str) -> bytes | None:
    """Pops ``state[key]``, the state bytes of a Rust core in a ``kind`` state: ``None`` if absent
    (an unfitted object), else it must be bytes (``StateError`` for anything else: ``None``
    would leave a fitted object without its core, ``bytes(n)`` of an int allocate ``n`` bytes)."""
    if key not in state:
        return None
    v = state.pop(key)
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise StateError(f"{kind} state: {key} must be bytes, got {type(v).__name__}")
    return bytes(v)


def _init_params(cls: type) -> list[str]:
    """Names of ``cls.__init__``'s named parameters (stored as attributes by convention)."""
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in list(sig.parameters.values())[1:] if p.kind in kinds]


@functools.cache
def _init_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of each of ``cls.__init__``'s named parameters (those that do not
    resolve at run time, e.g. names imported for type checking only, are left out)."""
    init = cls.__init__
    try:
        params = list(inspect.signature(init).parameters.values())[1:]
    except (TypeError, ValueError):
        return {}
    ns = getattr(init, "__globals__", {})
    out = {}
    for p in params:
        a = p.annotation
        if a is inspect.Parameter.empty:
            continue
        if isinstance(a, str):
            try:
                a = eval(a, ns)  # noqa: S307 - the class's own annotation, in its own module
            except Exception:  # noqa: BLE001 - not resolvable here: not checked
                continue
        out[p.name] = a
    return out


def _fits(v: Any, tp: Any) -> bool:
    members = _union_args(tp)
    if members is not None:
        return any(_fits(v, m) for m in members)
    try:
        return _matches(v, tp, raw=False)
    except TypeError:  # an annotation isinstance cannot check (a parametrised generic)
        return True


def _check_types(cls: type, state: dict[str, Any], kind: str) -> None:
    """``StateError`` if a value stored under a constructor argument's name does not have the
    type of that argument's annotation."""
    for name, tp in _init_types(cls).items():
        if name in state and not _fits(state[name], tp):
            v = state[name]
            raise StateError(
                f"{kind} state: {name} must be {_describe(tp)}, got {type(v).__name__} {_show(v)}"
            )


def _type_name(v: Any) -> str:
    t = type(v)
    return f"{t.__module__}.{t.__qualname__}"


def _check_written_types(cls: type, inner: dict[str, Any], types: Any, kind: str) -> None:
    """``StateError`` if a value's type is not the one recorded when the state was written
    (``types``: ``key=module.qualname`` lines; absent in states written before it was added).
    Values stored under a constructor argument's name are left to :func:`_check_types`, whose
    message names the annotation."""
    if types is None:
        return
    written = None
    if isinstance(types, str):
        pairs = [line.partition(_TYPE_SEP) for line in types.split(_KEY_SEP) if line]
        written = {k: t for k, sep, t in pairs if sep}
        if len(written) != len(pairs) or set(written) != set(inner):
            written = None
    if written is None:
        raise StateError(f"{kind} state is corrupt: its record of the values' types is unreadable")
    annotated = _init_types(cls)
    for k, v in inner.items():
        if k not in annotated and _type_name(v) != written[k]:
            raise StateError(
                f"{kind} state is corrupt: {k} was written as a {written[k]}, read as a "
                f"{_type_name(v)} (or it was written with other versions of the libraries "
                "that define these types)"
            )
