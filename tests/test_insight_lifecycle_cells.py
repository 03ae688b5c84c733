"""Lifecycle rules and transitions, Cells, UserInsight end to end."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from demo_transactions import simulate_transactions

import growthmachine as gm
from growthmachine.insight import (
    STAGES,
    BetaGeo,
    Cells,
    LifecycleRules,
    UserInsight,
    features,
    lifecycle,
    lifecycle_transitions,
    transition_matrix,
    value_tiers,
)


@pytest.fixture(scope="module")
def log():
    return simulate_transactions(6000, 300, seed=7)


def test_lifecycle_rules_are_applied_in_order(log):
    tx, users = log
    f = features(tx, 300, users=users)
    bg = BetaGeo().fit(f)
    s = lifecycle(f, bg)
    assert list(s.cat.categories) == list(STAGES) and s.index.name == "user_id"
    pa = bg.p_alive(f)
    r = LifecycleRules()
    st = s.to_numpy().astype(str)
    prospect = f["is_prospect"].to_numpy()
    assert (st[prospect] == "prospect").all() and (st[~prospect] != "prospect").all()
    dsl = f["days_since_last"].to_numpy()
    churned = ~prospect & ((pa < r.churned_p_alive) | (dsl > r.churned_days))
    assert (st[churned] == "churned").all()
    new = st == "new"
    assert (f["T"].to_numpy()[new] <= r.new_days).all()
    growing = st == "growing"
    assert (f["trend"].to_numpy()[growing] >= r.growing_trend).all()
    assert len(set(st)) >= 6
    # configurable: a stricter churn rule moves users from dormant to churned
    s2 = lifecycle(f, bg, {"churned_p_alive": 0.3, "dormant_p_alive": 0.3})
    assert (s2 == "churned").sum() > (s == "churned").sum()
    with pytest.raises(ValueError, match="unknown keys"):
        lifecycle(f, bg, {"churn": 1})
    with pytest.raises(ValueError, match="rules"):
        LifecycleRules(churned_p_alive=0.9)


def test_transition_matrix_counts(log):
    tx, users = log
    m = lifecycle_transitions(tx, 200, 300, users=users)
    assert m.shape == (7, 7)
    f1 = features(tx, 300, users=users)
    assert m.to_numpy().sum() == len(f1)
    # nobody goes back to prospect once they bought
    assert m.loc[[s for s in STAGES if s != "prospect"], "prospect"].sum() == 0
    a = pd.Series(pd.Categorical(["new", "mature"], categories=STAGES), index=[1, 2])
    b = pd.Series(["mature", "churned", "new"], index=[1, 2, 3])
    t = transition_matrix(a, b)
    assert t.loc["new", "mature"] == 1 and t.loc["mature", "churned"] == 1
    assert t.loc["prospect", "new"] == 1
    tn = transition_matrix(a, b, normalize=True)
    assert tn.loc["new"].sum() == pytest.approx(1.0)


def test_cells_min_size_labels_and_stability():
    rng = np.random.default_rng(3)
    n = 30_000
    stage = pd.Series(pd.Categorical.from_codes(rng.integers(0, 7, n), categories=STAGES))
    cl = rng.integers(0, 40, n)
    tier = value_tiers(rng.lognormal(size=n), 5)
    centers = rng.normal(size=(40, 3))
    c = Cells.build(stage, cl, tier, min_size=30, cluster_centers=centers)
    sizes = np.bincount(c.labels_, minlength=c.n_cells_)
    assert (sizes >= 30).all() and sizes.sum() == n
    np.testing.assert_array_equal(sizes, c.cells_["size"].to_numpy())
    assert c.n_cells_ > 300
    assert c.cells_["label"].str.count(" / ").eq(2).all()
    again = Cells.build(stage, cl, tier, min_size=30, cluster_centers=centers)
    np.testing.assert_array_equal(again.labels_, c.labels_)
    assert again.cells_["key"].tolist() == c.cells_["key"].tolist()
    prof = c.profile(pd.DataFrame({"x": np.arange(n, dtype=float)}), clv=np.ones(n))
    assert (prof["mean_clv"] == 1).all()
    assert np.allclose(prof.filter(like="stage_").sum(axis=1), 1.0)
    back = pickle.loads(pickle.dumps(c))
    np.testing.assert_array_equal(back.labels_, c.labels_)
    # degenerate: the whole population below min_size -> a single cell
    one = Cells.build(["new", "churned"], [0, 1], [0, 4], min_size=10)
    assert one.n_cells_ == 1
    with pytest.raises(ValueError, match="unknown stage"):
        Cells.build(["nope"], [0], [0])
    with pytest.raises(ValueError, match="clusters"):
        Cells.build(["new"], [-1], [0])


def test_value_tiers_ties_share_a_tier():
    t = value_tiers([1, 1, 1, 1, 5, 6, 7, 8, 9, 10], 5)
    assert len(set(t[:4])) == 1 and t.max() == 4 and t.min() == 0


def test_user_insight_end_to_end(log):
    tx, users = log
    ui = UserInsight(n_clusters=16, min_cell_size=15, max_iter=30).fit(
        tx, as_of=300, users=users, category="category"
    )
    n = len(ui.features_)
    assert n == len(users)
    assert (
        len(ui.users_) == n and (ui.users_["user_id"].to_numpy() == ui.features_["user_id"]).all()
    )
    assert (ui.cells_["size"] >= 15).all() and ui.cells_["size"].sum() == n
    assert ui.cell_model_.n_cells_ > 20
    pros = ui.features_["is_prospect"].to_numpy()
    assert (ui.clv_[pros] == 0).all() and (ui.clv_[~pros] >= 0).all()
    assert ui.users_.loc[pros, "cluster_name"].str.startswith("prospects").all()
    assert ui.bgnbd_ is not None and ui.gammagamma_ is not None
    s = ui.summary()
    assert s["n_cells"] == ui.cell_model_.n_cells_ and s["bgnbd_r"] > 0
    back = pickle.loads(pickle.dumps(ui))
    pd.testing.assert_frame_equal(back.users_, ui.users_)
    # deterministic across thread counts
    gm.set_num_threads(1)
    ui1 = UserInsight(n_clusters=16, min_cell_size=15, max_iter=30).fit(tx, 300, users)
    gm.set_num_threads(2)
    ui2 = UserInsight(n_clusters=16, min_cell_size=15, max_iter=30).fit(tx, 300, users)
    pd.testing.assert_frame_equal(ui1.users_, ui2.users_)


def test_user_insight_cells_is_a_warning_alias_of_cell_model_and_old_states_load():
    ui = UserInsight().fit({"user_id": [9], "day": [0], "amount": [3.0]}, as_of=5)
    assert isinstance(ui.cell_model_, Cells)
    with pytest.warns(FutureWarning, match="cell_model_"):
        assert ui.cells is ui.cell_model_
    # a state written before the rename (format version 2, the Cells under "cells") still loads
    # (states of that version did not record their keys under "__gm_keys__", nor their types)
    state = {k: v for k, v in ui.__getstate__().items() if k not in ("__gm_keys__", "__gm_types__")}
    inner = dict(state["state"])
    inner["cells"] = inner.pop("cell_model_")
    old = UserInsight.__new__(UserInsight)
    old.__setstate__({**state, "__gm_version__": 2, "state": inner})
    assert "cells" not in vars(old)
    np.testing.assert_array_equal(old.cell_model_.labels_, ui.cell_model_.labels_)
    pd.testing.assert_frame_equal(old.users_, ui.users_)


def test_user_insight_all_prospects_and_tiny_inputs():
    empty = {
        "user_id": np.array([], np.int64),
        "day": np.array([], np.int32),
        "amount": np.array([]),
    }
    ui = UserInsight().fit(empty, as_of=10, users=[1, 2, 3])
    assert ui.bgnbd_ is None and ui.cell_model_.n_cells_ == 1
    assert (ui.users_["stage"] == "prospect").all()
    one = UserInsight().fit({"user_id": [9], "day": [0], "amount": [3.0]}, as_of=5)
    assert one.cell_model_.n_cells_ == 1 and one.users_["stage"].iloc[0] == "new"
    with pytest.raises(gm.StateError):
        UserInsight().summary()


def test_default_population_gives_thousands_of_labelled_cells():
    # the default world of `growthmachine run`: 100,000 users, 365 days, seed 0
    from growthmachine.sim import Population

    pop = Population.generate(100_000, days=365, seed=0, progress=False)
    ui = UserInsight(seed=0).fit(
        pop.transactions, as_of=pop.days, users=pop.users, category="category"
    )
    cells = ui.cells_
    assert ui.cell_model_.n_cells_ >= 2000 and len(cells) == ui.cell_model_.n_cells_
    assert ui.min_cell_size >= 20 and (cells["size"] >= ui.min_cell_size).all()
    assert cells["size"].sum() == 100_000
    assert cells["label"].str.len().min() > 0 and cells["label"].nunique() > 1000
    # prospects (no purchase) are split by their profile, buyers by behaviour x value
    pros = ui.features_["is_prospect"].to_numpy()
    assert ui.n_prospect_clusters_ > 100 and ui.n_clusters_ > 100
    assert len(np.unique(ui.cell_[pros])) > 500 and len(np.unique(ui.cell_[~pros])) > 1000
    # profiles: CLV, P(alive) and a stage mix per cell
    assert np.isfinite(cells["mean_clv"]).all() and (cells["mean_clv"] > 0).sum() > 1000
    assert cells["mean_p_alive"].between(0, 1).all()
    mix = cells[[c for c in cells.columns if c.startswith("stage_")]].sum(axis=1)
    np.testing.assert_allclose(mix, 1.0)
