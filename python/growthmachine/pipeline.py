"""The main job: run every module that exists on the built-in synthetic population.

Stages run in the data's one-way order (``STAGES``). A module takes part by defining
``run_stage(ctx: RunContext) -> None`` in ``growthmachine.<module>``; it reads what earlier stages
left in ``ctx.state`` (e.g. ``ctx.state["population"]``), writes its own results there, and adds its
section to ``ctx.report``. A module that does not exist yet is skipped.

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

STAGES = ("sim", "insight", "planning", "allocate", "touchpoint", "realtime")


@dataclass
class RunContext:
    n_users: int
    seed: int
    days: int
    out: Path
    progress: bool | None
    report: Report
    log: Callable[[str], None]
    #: Results handed from stage to stage (population, environment, insight, plan, ...).
    state: dict[str, Any] = field(default_factory=dict)


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
    n_users: int = 100_000,
    *,
    seed: int = 0,
    days: int = 365,
    out: str | Path = "gm-report",
    threads: int | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Runs every available stage and writes the report folder ``out``."""
    from . import __version__, get_num_threads, set_num_threads

    n_users = cv.check_int(n_users, "n_users", minimum=1)
    seed = cv.check_int(seed, "seed", minimum=0)
    days = cv.check_int(days, "days", minimum=30)
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
        },
    )
    ctx = RunContext(n_users, seed, days, out, progress, report, log)
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
