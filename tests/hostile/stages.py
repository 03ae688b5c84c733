"""A tiny pipeline context for the ``run_stage`` recipes: the stages before the one asked for
have run on a 400-user world, one period of 30 days."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

from growthmachine import pipeline
from growthmachine.report import Report


@cache
def _ran_until(stage: str) -> pipeline.RunContext:
    ctx = pipeline.RunContext(
        400, 0, 120, Path(tempfile.mkdtemp(prefix="gm-hostile-")), False,
        Report("hostile", meta={}), lambda _msg: None, periods=1, period_days=30,
    )  # fmt: skip
    for name, fn in pipeline.available_stages():
        if name == stage:
            return ctx
        fn(ctx)
    raise ValueError(stage)


def context(stage: str) -> pipeline.RunContext:
    return _ran_until(stage)


def stage_recipe(run_stage, stage: str):
    """The recipe of a module's ``run_stage``: called on the context the stages before it left."""
    return lambda c: (run_stage, dict(ctx=context(stage)))
