"""The project-wide hostile-input table (issue 15): every public callable has a recipe (a valid
call), and every substitution of one of its arguments by a bad value either raises
``ValueError``/``TypeError``/``MemoryError`` naming the argument or succeeds with a sane result
(see ``tests/hostile/``). Cases run in child interpreters: an abort or a hang fails one case."""

from __future__ import annotations

import importlib
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hostile import driver  # noqa: E402

#: Public callables that take no data, so have nothing to substitute (name -> why).
NO_DATA = {
    "get_num_threads": "takes no argument",
    "planning.uplift.UpliftModel": "abstract base, takes no argument; fit and predict have recipes",
}

#: Defects the table finds in code another helper owns (case-id prefix -> owner and reason); the
#: lead empties this after merging their fixes.
KNOWN_ELSEWHERE: dict[str, str] = {}

#: Defects the table finds that are not fixed yet (case-id prefix -> what is wrong). Each entry
#: must still fail (a fixed one is reported as stale, so the list only shrinks).
OPEN: dict[str, str] = {}

MODULES = ["top", "sim", "insight", "planning", "allocate", "touchpoint", "realtime", "machine"]


def _recipes() -> dict[str, str]:
    out = {}
    for m in (*MODULES, "spark"):  # spark's cases run in tests/spark/test_spark_hostile.py
        for name in importlib.import_module(f"hostile.recipes_{m}").R:
            out[name] = m
    return out


def test_every_public_callable_has_a_recipe():
    public = driver.public_callables()
    recipes = _recipes()
    missing = sorted(n for n in public if n not in recipes and n not in NO_DATA)
    assert not missing, f"public callables without a hostile-input recipe: {missing}"
    stale = sorted(n for n in recipes if n not in public)
    assert not stale, f"recipes for names that are not public: {stale}"
    assert not set(NO_DATA) - set(public)


def _listed(case: str) -> str | None:
    return next((k for k in (*KNOWN_ELSEWHERE, *OPEN) if case.startswith(k)), None)


@pytest.mark.parametrize("module", MODULES)
def test_hostile_inputs(module):
    failures, n, seconds = driver.run_module(module)
    assert n > 0
    unexpected = {k: v for k, v in failures.items() if _listed(k) is None}
    shown = "\n".join(f"{k}: {v}" for k, v in sorted(unexpected.items()))
    assert not unexpected, f"{len(unexpected)} of {n} cases failed ({seconds:.0f} s):\n{shown}"
    prefix = "" if module == "top" else f"{module}."
    used = {_listed(k) for k in failures}
    stale = [k for k in (*KNOWN_ELSEWHERE, *OPEN) if k.startswith(prefix) and k not in used]
    if module == "top":
        stale = [k for k in stale if "." not in k.split("(")[0]]
    assert not stale, f"listed defects that no longer fail (remove them): {stale}"
