"""The insight stage of ``growthmachine run`` on the simulated population."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import growthmachine as gm
from growthmachine.pipeline import RunContext
from growthmachine.report import Report


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> RunContext:
    out = tmp_path_factory.mktemp("run")
    c = RunContext(4000, 0, 365, Path(out), False, Report("test"), lambda _m: None)
    gm.sim.run_stage(c)
    gm.insight.run_stage(c)
    return c


def test_stage_fills_state_and_report(ctx):
    ui = ctx.state.insight
    assert isinstance(ui, gm.insight.UserInsight)
    pop = ctx.state.population
    assert len(ui.users_) == len(pop.users)  # every registered user, prospects included
    sec = next(s for s in ctx.report.sections if s.name == "insight")
    for k in ("n_cells", "n_buyers", "bgnbd_r", "gammagamma_q", "total_clv", "p_alive_auc"):
        assert k in sec.kpis
    assert sec.kpis["n_cells"] == ui.cell_model_.n_cells_ > 10
    assert 0.5 < sec.kpis["p_alive_auc"] <= 1.0  # P(alive) is informative about the truth
    assert {"cells", "lifecycle", "bgnbd", "gammagamma"} <= set(sec.tables)
    out = ctx.report.write(ctx.out)
    assert (out / "tables" / "insight_cells.parquet").exists()
    assert "User insight" in (out / "report.html").read_text()


def test_features_on_population_are_consistent(ctx):
    ui = ctx.state.insight
    pop = ctx.state.population
    f = ui.features_
    tx = pop.transactions
    assert f["n_transactions"].sum() == (tx["day"] <= pop.days).sum()
    assert np.isclose(f["total_spend"].sum(), tx["amount"].sum())
    assert (f.loc[f["is_prospect"], "tenure"] >= 0).all()
