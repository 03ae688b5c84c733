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


@pytest.mark.parametrize(
    "flag, text, message",
    [
        ("--world", "response:\n  margin: 2.5\n", "response.margin"),
        ("--world", "populaton: {}\n", "populaton: unknown field"),
        ("--world", "response:\n  margin: high\n", "response.margin"),
        ("--plan", {"budget": -3}, "plan.budget"),
        ("--plan", {"horizon_days": [1, 2]}, "plan.horizon_days"),
        ("--plan", {"colour": "red"}, "plan.colour: unknown field"),
        ("--plan", "not: [valid\n", "not valid YAML"),
    ],
)
def test_bad_world_and_plan_files_name_the_field(tmp_path, flag, text, message):
    import yaml

    if isinstance(text, dict):  # a valid plan with one field changed
        env = gm.sim.Environment(gm.sim.Population.generate(200, seed=0))
        text = yaml.safe_dump({**gm.planning.Plan.default(env).to_dict(), **text})
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    out = run("run", "--users", "1000", flag, str(f), "--out", str(tmp_path / "o"), "-q")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0] and flag in lines[0]
    assert not (tmp_path / "o").exists()


def test_missing_file_and_plan_outside_the_catalogue(tmp_path):
    out = run("run", "--world", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "no such file" in out.stderr
    import yaml

    env = gm.sim.Environment(gm.sim.Population.generate(500, seed=0))
    d = gm.planning.Plan.default(env).to_dict()
    d["contents"][0]["name"] = "poetry"
    f = tmp_path / "plan.yaml"
    f.write_text(yaml.safe_dump(d))
    out = run("run", "--users", "1000", "--plan", str(f), "-q")
    assert out.returncode == 2
    assert "content 'poetry' is not in the world's catalogue" in out.stderr


@pytest.mark.parametrize("flag", ["--periods", "--period-days"])
def test_machine_flags_are_checked(flag):
    out = run("run", flag, "0")
    assert out.returncode == 2 and "must be a positive integer" in out.stderr
    out = run("run", "--budget", "-1")
    assert out.returncode == 2 and "must be a non-negative" in out.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--seed", str(2**64)], "argument --seed: must be at most 18446744073709551615"),
        (["run", "--users", str(10**20)], "argument --users: must be at most 9223372036854775807"),
        (["run", "--users", "1e20"], "argument --users: must be a positive integer, got '1e20'"),
        (["run", "--days", str(10**8)], "argument --days: must be at most 100000"),
        (["run", "--periods", "1001"], "argument --periods: must be at most 1000"),
        (["run", "--period-days", "3651"], "argument --period-days: must be at most 3650"),
        (["plan", "--seed", str(2**64)], "argument --seed: must be at most"),
    ],
)
def test_out_of_range_numbers_are_parser_errors(args, message):
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0]


def _unwritable(tmp_path, kind):
    if kind == "file":
        (tmp_path / "f").write_text("x")
        return str(tmp_path / "f")
    if kind == "file/sub":
        (tmp_path / "f").write_text("x")
        return str(tmp_path / "f" / "sub")
    return "/proc/x"


@pytest.mark.parametrize("kind", ["file", "file/sub", "/proc/x"])
def test_an_unwritable_out_is_found_before_any_stage(tmp_path, kind):
    out_dir = _unwritable(tmp_path, kind)
    # no -q: a stage that ran would log "[sim] running" to stderr
    out = run("run", "--users", "300", "--out", out_dir)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"--out {out_dir}" in lines[0]


def test_a_population_too_large_for_memory_is_one_line(tmp_path):
    out = run("run", "--users", str(10**12), "--out", str(tmp_path / "o"))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "--users" in lines[0] and "memory" in lines[0]
