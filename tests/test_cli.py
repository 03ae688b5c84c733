"""The command line: version, help, one-line errors on bad arguments."""

from __future__ import annotations

import subprocess
import sys

import pytest

import growthmachine as gm
from growthmachine import cli


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "growthmachine", *args], capture_output=True, text=True, timeout=120
    )


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"growthmachine {gm.__version__}"


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_help(args):
    out = run(*args)
    assert out.returncode == 0 and "usage: growthmachine" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--users", "-5"], "argument --users: must be a positive integer, got -5"),
        (["run", "--users", "ten"], "argument --users: must be a positive integer, got 'ten'"),
        (["run", "--threads", "0"], "argument --threads: must be a positive integer, got 0"),
        (["run", "--seed", "-1"], "argument --seed: must be a non-negative integer, got -1"),
        (["run", "--days", "7"], "argument --days: must be at least 30, got 7"),
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(args, message):
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    assert e.value.code == 2
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0]


def test_no_command_prints_help_and_fails():
    out = run()
    assert out.returncode == 2 and "usage: growthmachine" in out.stdout
