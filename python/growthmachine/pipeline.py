"""The main job: the whole machine on a synthetic world, every module's section, one report.

Stages run in the data's one-way order (``STAGES``). A module takes part by defining
``run_stage(ctx: RunContext) -> None`` in ``growthmachine/<module>/_stage.py`` (exported by the
package); it reads only what earlier stages wrote in the typed run state ``ctx.state``
(:class:`RunState`), writes its own fields, and adds its section to ``ctx.report``. A module that
does not exist yet is skipped. Every random stream derives from the run's seed through
``ctx.seed_of(<stage>, ...)`` (:func:`growthmachine._seeds.derive_seed`).

The module stages show the first period in detail on the generated world; the ``machine`` stage
then runs the closed loop for ``periods`` periods on a fresh copy of that world, with the
baselines each on their own copy, and its comparison opens the report.

Given the seed, a run's report is the same whatever the thread count, except for wall times,
whose KPI names end in ``_seconds``.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _convert as cv
from .report import Report

STAGES = ("sim", "insight", "planning", "allocate", "touchpoint", "realtime", "machine")
#: Bounds of :func:`run`'s ``periods`` and ``period_days`` (the command line checks them too).
MAX_PERIODS = 1000
MAX_PERIOD_DAYS = 3650


@dataclass
class RunState:
    """What the stages hand to each other, in the order they write it (each stage reads only
    fields written before it)."""

    # sim
    population: Any = None
    environment: Any = None
    #: The world as generated, before any stage acted on it (the machine starts from a copy).
    world_start: Any = None
    # insight
    insight: Any = None
    # planning
    plan_spec: Any = None
    planner: Any = None
    task_plan: Any = None
    #: Planning task id -> world action id.
    task_actions: Any = None
    planning_problem: Any = None
    # allocate
    allocation: Any = None
    allocation_frontier: Any = None
    # touchpoint
    touchpoint_planner: Any = None
    touchpoint_plan: Any = None
    # realtime
    realtime: Any = None
    # machine
    machine: Any = None


@dataclass
class RunContext:
    n_users: int
    seed: int
    days: int
    out: Path
    progress: bool | None
    report: Report
    log: Callable[[str], None]
    #: Results handed from stage to stage.
    state: RunState = field(default_factory=RunState)
    #: The machine's settings: periods, days per period, budget per period (None: default),
    #: world config (None: default) and planning Plan (None: the world's catalogue).
    periods: int = 6
    period_days: int = 30
    budget: float | None = None
    world: Any = None
    plan: Any = None

    def seed_of(self, *path: int | str) -> int:
        """The seed of the random stream named ``path`` (e.g. ``ctx.seed_of("planning")``)."""
        from ._seeds import derive_seed

        return derive_seed(self.seed, *path)


def check_context(ctx: Any) -> RunContext:
    """``ctx`` if it is a run's context, else ``TypeError`` naming it: the first line of every
    module's ``run_stage``."""
    if not isinstance(ctx, RunContext):
        raise TypeError(
            f"ctx: must be a growthmachine.pipeline.RunContext, got {type(ctx).__name__}"
        )
    return ctx


@dataclass
class RunResult:
    out: Path
    stages: dict[str, float]
    report: Report

    @property
    def summary(self) -> dict[str, Any]:
        return self.report.summary()


def available_stages() -> list[tuple[str, Callable[[RunContext], None]]]:
    found = []
    for name in STAGES:
        full = f"growthmachine.{name}"
        if importlib.util.find_spec(full) is None:
            continue
        stage = getattr(importlib.import_module(full), "run_stage", None)
        if stage is not None:
            found.append((name, stage))
    return found


def run(
    n_users: int = 200_000,
    *,
    seed: int = 0,
    days: int = 365,
    periods: int = 6,
    period_days: int = 30,
    budget: float | None = None,
    world: Any = None,
    plan: Any = None,
    out: str | Path = "gm-report",
    threads: int | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Runs every available stage and writes the report folder ``out``. ``periods`` periods of
    ``period_days`` days for the machine, ``budget`` per period (``None``: 0.1 per user),
    ``world``: a ``growthmachine.sim.WorldConfig`` (``None``: the default world), ``plan``: a
    ``growthmachine.planning.Plan`` for the machine (``None``: the world's catalogue)."""
    from . import __version__, get_num_threads, set_num_threads

    n_users = cv.check_int(n_users, "n_users", minimum=1)
    seed = cv.check_int(seed, "seed", minimum=0)
    days = cv.check_int(days, "days", minimum=30)
    periods = cv.check_int(periods, "periods", minimum=1, maximum=MAX_PERIODS)
    period_days = cv.check_int(period_days, "period_days", minimum=1, maximum=MAX_PERIOD_DAYS)
    if budget is not None:
        budget = cv.check_number(budget, "budget", minimum=0.0)
    if threads is not None:
        set_num_threads(cv.check_int(threads, "threads", minimum=1))
    log = log or (lambda _msg: None)
    out = Path(out)
    report = Report(
        "growthmachine run",
        meta={
            "version": __version__,
            "users": n_users,
            "days": days,
            "seed": seed,
            "threads": get_num_threads(),
            "periods": periods,
            "period_days": period_days,
        },
    )
    ctx = RunContext(
        n_users, seed, days, out, progress, report, log,
        periods=periods, period_days=period_days, budget=budget, world=world, plan=plan,
    )  # fmt: skip
    stages = available_stages()
    if not stages:
        raise RuntimeError("no pipeline stage is available (growthmachine.sim is missing)")
    timings: dict[str, float] = {}
    for name, stage in stages:
        log(f"[{name}] running")
        t0 = time.perf_counter()
        stage(ctx)
        timings[name] = time.perf_counter() - t0
        log(f"[{name}] done in {timings[name]:.1f} s")
    report.meta["stage_seconds"] = {k: round(v, 3) for k, v in timings.items()}
    report.meta["total_seconds"] = round(sum(timings.values()), 3)
    report.write(out)
    return RunResult(out, timings, report)
