"""``growthmachine plan``: the modules on tables exported from the world, no world given."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import growthmachine as gm
from growthmachine.machine._tables import plan_from_tables
from growthmachine.planning import Plan


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("tables")
    pop = gm.sim.Population.generate(20_000, seed=4)
    env = gm.sim.Environment(pop, seed=4)
    full = Plan.default(env, budget=2_000.0)
    plan = Plan.from_dict(
        {
            **full.to_dict(),
            "benefits": [b.to_dict() for b in full.benefits if b.name in ("none", "free_shipping")],
            "contents": [full.contents[0].to_dict()],
        }
    )
    log = gm.planning.run_experiment(env, plan, share=0.6, seed=4, progress=False)
    pop.transactions.to_parquet(d / "tx.parquet", index=False)
    pop.users.to_csv(d / "users.csv", index=False)
    log.to_parquet(d / "log.parquet", index=False)
    plan.to_yaml(d / "plan.yaml")
    return d, pop, plan, log


def test_plan_command_writes_tasks_that_match_the_python_api(tables, tmp_path):
    d, pop, plan, log = tables
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "growthmachine", "plan", "--transactions", str(d / "tx.parquet"),
         "--users", str(d / "users.csv"), "--campaign-log", str(d / "log.parquet"),
         "--plan", str(d / "plan.yaml"), "--as-of", str(pop.days), "--out", str(out), "-q"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out / "report.html")
    tasks = pd.read_parquet(out / "tasks.parquet")
    exposures = pd.read_parquet(out / "exposures.parquet")
    # the same computation through the Python API on the same tables
    users = pd.read_csv(d / "users.csv")
    api = plan_from_tables(pop.transactions, users, log, plan, as_of=pop.days, progress=False)
    pd.testing.assert_frame_equal(
        tasks.reset_index(drop=True), api.tasks.reset_index(drop=True), check_dtype=False
    )
    assert len(exposures) == len(api.exposures)
    # exposures go to users without a task, on the plan's off-site channels, in the window
    assert not set(exposures["user_id"]) & set(tasks["user_id"])
    offsite = {c.name for c in plan.channels if c.offsite}
    assert set(exposures["channel"]) <= offsite
    assert exposures["day"].between(pop.days, pop.days + plan.horizon_days - 1).all()
    # without an exposure log every planned frequency is a randomised experiment
    assert api.frequency_plan.assignment["explore"].all()
    summary = (out / "summary.json").read_text()
    assert '"planning"' in summary and '"touchpoint"' in summary


def test_plan_command_bad_inputs_exit_2_with_one_line(tables, tmp_path):
    d, pop, plan, log = tables
    bad = log.drop(columns=["gmv"])
    bad.to_parquet(tmp_path / "bad.parquet", index=False)
    (tmp_path / "notes.txt").write_text("hello")
    base = ["--transactions", str(d / "tx.parquet"), "--users", str(d / "users.csv"),
            "--plan", str(d / "plan.yaml")]  # fmt: skip
    for args, msg in (
        (base + ["--campaign-log", str(tmp_path / "bad.parquet")], "gmv"),
        (base + ["--campaign-log", str(tmp_path / "nope.parquet")], "no such file"),
        (base + ["--campaign-log", str(tmp_path / "notes.txt")], "must be .parquet or .csv"),
    ):
        r = subprocess.run([sys.executable, "-m", "growthmachine", "plan", *args,
                            "--out", str(tmp_path / "o")], capture_output=True, text=True,
                           timeout=600)  # fmt: skip
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], r.stderr


def test_an_exposure_log_fits_the_curves_first(tables):
    d, pop, plan, log = tables
    rng = np.random.default_rng(0)
    n = 6000
    ex = pd.DataFrame({
        "segment": rng.choice(["active", "prospect"], n),
        "channel": rng.choice(["ads", "email"], n),
        "exposures": rng.integers(0, 12, n),
    })  # fmt: skip
    ex["converted"] = rng.random(n) < 0.05 + 0.01 * ex["exposures"]
    ex["opted_out"] = rng.random(n) < 0.001 * ex["exposures"]
    res = plan_from_tables(pop.transactions, pop.users, log, plan, as_of=pop.days,
                           exposure_log=ex, progress=False)  # fmt: skip
    fp = res.frequency_plan
    assert fp is not None and not fp.assignment["explore"].all()
    assert set(fp.channels) == {"ads", "email"}
