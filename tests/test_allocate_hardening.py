"""Hostile input for growthmachine.allocate and the thread count (issue 15): every case raises a
ValueError/TypeError/MemoryError naming the argument, or succeeds with an honest certificate."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import growthmachine as gm

# ----- thread count ---------------------------------------------------------------------------


def _cap() -> int:
    return 4 * max(os.cpu_count() or 1, 2)


def test_set_num_threads_rejects_counts_above_the_cap():
    before = gm.get_num_threads()
    cap = _cap()
    with pytest.raises(ValueError, match=rf"^n: must be at most {cap} .*got 10000$"):
        gm.set_num_threads(10_000)
    with pytest.raises(ValueError, match=r"^n: must be at most .*got 18446744073709551616$"):
        gm.set_num_threads(2**64)
    with pytest.raises(ValueError, match=r"^n: must be a positive integer, got -3$"):
        gm.set_num_threads(-3)
    with pytest.raises(ValueError, match=r"^n: must be a positive integer, got -\d+$"):
        gm.set_num_threads(-(2**200))
    assert gm.get_num_threads() == before
    try:
        gm.set_num_threads(cap)
        assert gm.get_num_threads() == cap
    finally:
        gm.set_num_threads(before)


@pytest.mark.parametrize("value", ["100000", "0", "-1", "two", "1e3"])
def test_env_thread_count_is_checked_at_import(value):
    out = subprocess.run(
        [sys.executable, "-c", "import growthmachine"],
        env={**os.environ, "GROWTHMACHINE_NUM_THREADS": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: GROWTHMACHINE_NUM_THREADS: must be"), last
    assert repr(value).replace("'", '"') in last, last


def test_env_thread_count_blank_means_unset():
    out = subprocess.run(
        [sys.executable, "-c", "import growthmachine as gm; print(gm.get_num_threads())"],
        env={**os.environ, "GROWTHMACHINE_NUM_THREADS": " "},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(out.stdout) == (os.cpu_count() or 1)


@pytest.mark.parametrize("command", ["run", "plan"])
def test_cli_threads_above_the_cap_is_a_one_line_error(command):
    args = [sys.executable, "-m", "growthmachine", command, "--threads", "100000"]
    if command == "plan":
        args += ["--transactions", "t", "--users", "u", "--campaign-log", "c", "--plan", "p"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert f"argument --threads: must be at most {_cap()}" in last and "got 100000" in last, last
    assert "Traceback" not in out.stderr
