"""Versioned pickling for fitted objects (the conventions, implemented once).

Python objects mix in :class:`Versioned` and set ``_STATE_KIND``/``_STATE_VERSION``; their pickled
state carries both, and unpickling rejects another kind or an unknown version with
:class:`growthmachine.StateError`. Objects wrapping a Rust core pickle the core's own versioned
bytes (see ``src/state.rs``) inside this envelope.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from ._core import StateError


class Versioned:
    _STATE_KIND: ClassVar[str]
    _STATE_VERSION: ClassVar[int] = 1
    #: Older versions this build can still read (``_upgrade_state`` migrates them).
    _STATE_READS: ClassVar[tuple[int, ...]] = ()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "__gm_kind__": self._STATE_KIND,
            "__gm_version__": self._STATE_VERSION,
            "state": self._get_state(),
        }

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
        try:
            self._set_state(self._upgrade_state(version, inner))
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
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


def _init_params(cls: type) -> list[str]:
    """Names of ``cls.__init__``'s named parameters (stored as attributes by convention)."""
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in list(sig.parameters.values())[1:] if p.kind in kinds]
