"""What every bandit policy shares: construction checks, pickling, save/load.

The policies are Python subclasses of the Rust class ``_core.RealtimePolicy``: their hot methods
(``choose``, ``choose_batch``, ``scores``, ``scores_batch``, ``probabilities``, ``update``,
``update_batch``) are the Rust methods themselves, with no Python layer in between. Each object
holds its state behind a mutex, so one policy may be shared by threads serving requests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from .. import _convert as cv
from .._core import RealtimePolicy, StateError


def restore(cls: type, data: bytes) -> Any:
    """Rebuilds a policy of class ``cls`` from its versioned state bytes (pickle, load)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise StateError(f"not a growthmachine {cls.__name__} state")
    obj = RealtimePolicy.__new__(cls, cls._ALGO, 1, 1)
    obj._set_state_bytes(bytes(data))
    return obj


#: The name pickles written before ``restore`` became public refer to (pickle stores the function
#: by its module and name): keep it so they still load.
_restore = restore


class PolicyMixin:
    """Public methods shared by :class:`LinUCB`, :class:`LinTS`, :class:`LogisticTS` and
    :class:`EpsilonGreedy` (the rest of their API is documented on each class)."""

    _ALGO: ClassVar[str]

    @staticmethod
    def _check(n_actions: Any, n_features: Any, n_action_features: Any, ridge: Any, seed: Any):
        return (
            cv.check_int(n_actions, "n_actions", minimum=1),
            cv.check_int(n_features, "n_features", minimum=0),
            cv.check_int(n_action_features, "n_action_features", minimum=0),
            cv.check_number(ridge, "ridge", minimum=0.0, strict_min=True),
            cv.check_int(seed, "seed", minimum=0, maximum=cv.U64_MAX),
        )

    def __reduce__(self):
        return (restore, (type(self), self._state_bytes()))

    def save(self, path: str | os.PathLike) -> None:
        """Writes the policy's versioned state to ``path`` (read it back with ``load``)."""
        path = _path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self._state_bytes())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Reads a policy written by :meth:`save`; a corrupt, truncated or foreign file raises
        :class:`growthmachine.StateError`."""
        return restore(cls, _path(path).read_bytes())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def _path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)
