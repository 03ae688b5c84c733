"""The main job end to end: `growthmachine run` on the built-in synthetic population."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from growthmachine import pipeline

N_USERS = "20000"


def run_cli(out, threads):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "growthmachine",
            "run",
            "--users",
            N_USERS,
            "--seed",
            "3",
            "--threads",
            str(threads),
            "--out",
            str(out),
            "--no-progress",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("run")
    one, two = run_cli(base / "t1", 1), run_cli(base / "t2", 2)
    for r in (one, two):
        assert r.returncode == 0, r.stderr
    return base / "t1", base / "t2", two


def test_report_folder_is_complete(runs):
    _, out, proc = runs
    assert proc.stdout.strip() == str(out / "report.html")
    html = (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    stages = [name for name, _ in pipeline.available_stages()]
    assert stages[0] == "sim"
    # Every available stage ran, in order, and wrote its section.
    assert list(summary["meta"]["stage_seconds"]) == stages
    for name in summary["sections"]:
        assert f'<section id="{name}">' in html
    assert summary["meta"]["users"] == int(N_USERS)
    assert summary["sections"]["sim"]["kpis"]["users"] == int(N_USERS)
    # Self-contained: plots embedded, nothing fetched from elsewhere.
    assert re.search(r'src="data:image/png;base64,', html)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    # The touchpoint stage planned exposures and scored them on the world's truth.
    tk = summary["sections"]["touchpoint"]["kpis"]
    assert tk["users_reached"] > 0 and tk["gap"] <= 1e-3
    assert tk["x_uniform"] > 0 and tk["forecast_vs_truth"] > 0
    comp = pd.read_parquet(out / "tables" / "touchpoint_comparison.parquet")
    assert set(comp["policy"]) >= {"uniform 6 ads", "planner (fitted curves)", "planner + heights"}
    # The machine ran its periods against every baseline; its comparison opens the report.
    policies = {"machine", "rfm_rule", "ab_winner", "random", "none", "oracle"}
    assert set(summary["comparison"]) == policies
    keys = {"incremental_profit", "incremental_gmv", "new_buyers", "reactivated",
            "incentive_cost", "channel_cost", "spend", "opt_outs", "avg_offsite_touches"}  # fmt: skip
    for p in policies:
        assert set(summary["comparison"][p]) == keys
    assert summary["comparison"]["none"]["spend"] == 0.0
    assert summary["comparison"]["oracle"]["incremental_profit"] > 0
    assert len(summary["history"]) == summary["meta"]["periods"] == 6
    for h in summary["history"]:
        assert set(h["incremental_profit"]) == policies
    assert list(summary["sections"])[0] == "machine"
    assert html.index('<section id="machine">') < html.index('<section id="sim">')
    tables = sorted((out / "tables").glob("*.parquet"))
    assert tables, "no per-stage tables written"
    for t in tables:
        assert t.stem.split("_")[0] in summary["sections"] or t.stem.startswith(tuple(stages))
        assert len(pd.read_parquet(t)) > 0


def test_same_seed_same_report_whatever_the_threads(runs):
    a, b, _ = runs
    sa = json.loads((a / "summary.json").read_text())["sections"]
    sb = json.loads((b / "summary.json").read_text())["sections"]
    assert sa.keys() == sb.keys()
    for name in sa:
        ka, kb = sa[name]["kpis"], sb[name]["kpis"]
        assert ka.keys() == kb.keys()
        # Wall times (keys ending in _seconds) are the only KPIs allowed to differ.
        assert {k: v for k, v in ka.items() if not k.endswith("_seconds")} == {
            k: v for k, v in kb.items() if not k.endswith("_seconds")
        }, name
    ja = json.loads((a / "summary.json").read_text())
    jb = json.loads((b / "summary.json").read_text())
    assert ja["comparison"] == jb["comparison"]
    assert ja["history"] == jb["history"]
    for t in sorted((a / "tables").glob("*.parquet")):
        pd.testing.assert_frame_equal(pd.read_parquet(t), pd.read_parquet(b / "tables" / t.name))


def test_progress_false_reaches_every_stage(tmp_path, monkeypatch):
    from growthmachine import _progress

    # Pretend the session is interactive, so any call left on the default (None) would draw a bar.
    monkeypatch.setattr(_progress, "enabled", lambda p: True if p is None else bool(p))

    def no_bar():
        raise AssertionError("a progress bar was created although the run asked for none")

    monkeypatch.setattr(_progress, "_tqdm", no_bar)
    pipeline.run(3_000, seed=1, out=tmp_path, progress=False)
    assert (tmp_path / "report.html").exists()


@pytest.mark.parametrize("n_users", [1, 2, 1_500])
def test_tiny_worlds_complete_and_say_nothing_was_planned(tmp_path, n_users):
    """Too few users for one experiment over the plan's tasks: the run completes and the
    planning section says it planned nothing (this used to crash in allocate)."""
    res = pipeline.run(n_users, seed=1, out=tmp_path, progress=False)
    assert list(res.stages)[:4] == ["sim", "insight", "planning", "allocate"]
    html = (tmp_path / "report.html").read_text()
    assert "Nothing was planned" in html
    assert "No candidate tasks to allocate." in html
    assert set(res.summary["comparison"]) >= {"machine", "none", "oracle"}


def test_a_zero_budget_runs_without_spending(tmp_path):
    res = pipeline.run(4_000, seed=2, out=tmp_path, periods=3, budget=0.0, progress=False)
    comp = res.summary["comparison"]
    for p in ("machine", "rfm_rule", "ab_winner", "random", "oracle"):
        assert comp[p]["spend"] == 0.0, p
        assert comp[p]["incremental_profit"] == 0.0, p


def test_touchpoint_stage_plans_with_the_heights_when_asked(tmp_path, monkeypatch):
    """With ``HEIGHTS`` the touchpoint stage's plan scales each user's curve by the height the
    model fitted on the insight's features: its KPIs are the ``planner + heights`` row."""
    from growthmachine.touchpoint import _stage

    monkeypatch.setattr(_stage, "HEIGHTS", True)
    res = pipeline.run(4_000, seed=2, out=tmp_path, periods=1, progress=False)
    plan = res.summary["sections"]["touchpoint"]
    comp = pd.read_parquet(tmp_path / "tables" / "touchpoint_comparison.parquet")
    row = comp.set_index("policy").loc["planner + heights"]
    assert plan["kpis"]["x_uniform"] == pytest.approx(row["x uniform"], abs=1e-3)
    assert "with those heights" in (tmp_path / "report.html").read_text()
