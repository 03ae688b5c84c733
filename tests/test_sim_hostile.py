"""Hostile input to growthmachine.sim (issue 15): sizes too large for any machine or this one,
misleading messages, valid input that was rejected, duplicates that were silently accepted, and
state that loaded into a broken object."""

from __future__ import annotations

import subprocess
import sys

import pytest

from growthmachine.sim import Environment, Population


@pytest.fixture(scope="module")
def pop() -> Population:
    return Population.generate(1_000, days=120, seed=5)


@pytest.fixture()
def env(pop) -> Environment:
    return Environment(pop, seed=1)


def _last_error_line(code: str) -> tuple[int, str]:
    """Runs ``code`` in a fresh interpreter (an abort there cannot take the tests down) and
    returns its exit status and the last line of its stderr."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    return r.returncode, lines[-1] if lines else ""


_ENV = "import growthmachine as gm; e = gm.sim.Environment(gm.sim.Population.generate(50)); "


@pytest.mark.parametrize(
    "code, error",
    [
        # possible sizes, too large for this machine: MemoryError before any work (an abort
        # in handle_alloc_error before)
        ("import growthmachine as gm; gm.sim.Population.generate(10**10)", "MemoryError: n_users:"),
        (_ENV + "e.sessions(2**40)", "MemoryError: n:"),
        # impossible sizes: ValueError naming the argument (InternalError 'capacity overflow'
        # and a bare OverflowError before)
        (_ENV + "e.sessions(2**62)", "ValueError: n:"),
        (_ENV + "e.sessions(2**64)", "ValueError: n:"),
        ("import growthmachine as gm; gm.sim.Population.generate(2**62)", "ValueError: n_users:"),
        ("import growthmachine as gm; gm.sim.Population.generate(2**64)", "ValueError: n_users:"),
    ],
)
def test_huge_sizes_raise_instead_of_aborting(code, error):
    status, last = _last_error_line(code)
    assert status == 1, (status, last)  # an exception, not a signal
    assert last.startswith(error), last
