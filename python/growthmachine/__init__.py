"""growthmachine: an intelligent, data-driven user-growth machine with a Rust core.

Modules (imported lazily, ``import growthmachine as gm`` then ``gm.sim``, ``gm.insight``, ...):

- ``gm.sim``: the synthetic population and environment with known ground truth;
- ``gm.insight``: features, value models, lifecycle, clustering and user cells;
- ``gm.planning``: declarative plans, uplift models and the planner that turns a randomised
  campaign log into executable tasks with honest (calibrated, out-of-fold) values;
- ``gm.allocate``: the conflict decision engine (globally optimal allocation with a certificate);
- ``gm.touchpoint``: off-site exposure frequency planning (response curves, a certified
  per-user plan, the feedback loop);
- ``gm.realtime``: online learning, budget pacing and offline policy evaluation;
- ``gm.machine`` (``gm.Machine``, ``gm.MachineConfig``): the modules in one closed loop, period
  after period, scored against marketers' baselines on the world's truth;
- ``gm.spark`` (optional extra ``growthmachine[spark]``): features, scoring and allocation on
  Apache Spark with the same cores.

Conventions shared by every module are documented in ``growthmachine._convert`` (input tables and
arrays, validation), ``growthmachine._progress`` (progress bars) and ``growthmachine._state``
(versioned pickling). Threads: :func:`set_num_threads` or env ``GROWTHMACHINE_NUM_THREADS``;
results never depend on the thread count.
"""

from __future__ import annotations

import importlib
import numbers
from typing import TYPE_CHECKING

from . import _core
from ._core import InfeasibleError, InternalError, StateError

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "InfeasibleError",
    "InternalError",
    "StateError",
    "get_num_threads",
    "set_num_threads",
]

_SUBMODULES = (
    "sim",
    "insight",
    "planning",
    "allocate",
    "touchpoint",
    "realtime",
    "machine",
    "report",
    "pipeline",
)


def set_num_threads(n: int) -> None:
    """Sets the number of threads every growthmachine core uses (default: env
    ``GROWTHMACHINE_NUM_THREADS``, else the number of CPUs). Results do not depend on it.

    ``n`` must be at least 1 and at most 4 threads per CPU (at least 8); more only add switching
    (``ValueError`` otherwise). The same cap applies to ``GROWTHMACHINE_NUM_THREADS``: an invalid
    value makes ``import growthmachine`` fail with a ``ValueError`` naming the variable."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: must be an int, got {type(n).__name__}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """The number of threads growthmachine's cores use."""
    return _core.get_num_threads()


_MACHINE = ("Machine", "MachineConfig")

#: Modules that need an optional extra: reachable as ``gm.NAME`` but not listed by ``dir(gm)``,
#: so that introspection works without the extra installed.
_OPTIONAL = ("spark",)


def __getattr__(name: str):
    if name in _MACHINE:
        return getattr(importlib.import_module(f"{__name__}.machine"), name)
    if name in _SUBMODULES or name in _OPTIONAL:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'growthmachine' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES) | set(_MACHINE))


if TYPE_CHECKING:  # pragma: no cover
    from . import allocate, insight, machine, planning, realtime, sim, touchpoint  # noqa: F401
    from .machine import Machine, MachineConfig  # noqa: F401
