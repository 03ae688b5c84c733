"""``growthmachine run`` stage ``insight``: the user insight of the generated world's history,
with its accuracy against the world's hidden truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from ..pipeline import check_context
from .user_insight import UserInsight

__all__ = ["run_stage"]


def run_stage(ctx: Any) -> None:
    """``growthmachine run`` stage: fits :class:`UserInsight` on the simulated population at
    as_of = its last day, stores it in ``ctx.state.insight`` and adds the report section."""
    check_context(ctx)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pop = ctx.state.population
    if pop is None:
        ctx.log("[insight] no population: skipped")
        return
    tx = pop.transactions
    users = getattr(pop, "users", None)
    has_cat = "category" in cv.columns(tx, "transactions")
    ui = UserInsight(seed=ctx.seed_of("insight"), progress=ctx.progress).fit(
        tx, as_of=int(pop.days), users=users, category="category" if has_cat else None
    )
    ctx.state.insight = ui
    sec = ctx.report.section("insight", "User insight")
    s = ui.summary()
    sec.text(
        f"{s['n_users']:,} users ({s['n_buyers']:,} buyers) turned into {s['n_cells']:,} cells "
        f"(lifecycle stage x {s['n_clusters']} behaviour clusters x {ui.n_tiers} CLV tiers for "
        f"buyers, {s['n_prospect_clusters']} profile clusters for prospects; every cell "
        f">= {ui.min_cell_size} users). Value models: BG/NBD and Gamma-Gamma by maximum likelihood; "
        f"CLV over {ui.horizon} periods of {ui.period:g} days at {ui.discount_rate:.1%} per period."
    )
    for key in (
        "n_users",
        "n_buyers",
        "n_cells",
        "n_clusters",
        "n_prospect_clusters",
        "total_clv",
        "mean_p_alive_buyers",
    ):
        sec.kpi(key, s[key])
    for key, v in s.items():
        if key.startswith(("bgnbd_", "gammagamma_")):
            sec.kpi(key, round(float(v), 6))
    scored = _truth_paragraph(pop, ui)
    if scored:
        sec.text(scored[0])
        for k, v in scored[1].items():
            sec.kpi(k, round(float(v), 6))
    # lifecycle funnel
    counts = ui.lifecycle_.value_counts(sort=False)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh([str(i) for i in counts.index][::-1], counts.to_numpy()[::-1], color="#4a6fa5")
    ax.set_xlabel("users")
    ax.set_title("Lifecycle stages")
    sec.figure(fig, caption="Lifecycle funnel: users per stage at as_of")
    # CLV distribution
    fig, ax = plt.subplots(figsize=(7, 3))
    b = ui.clv_[~ui.features_["is_prospect"].to_numpy()]
    if b.size:
        ax.hist(np.log10(1 + b), bins=60, color="#6a9f58")
    ax.set_xlabel("log10(1 + CLV)")
    ax.set_ylabel("buyers")
    ax.set_title("CLV distribution")
    sec.figure(fig, caption="Distribution of discounted CLV over buyers")
    # cell map: size vs mean CLV, coloured by stage
    cells = ui.cells_
    fig, ax = plt.subplots(figsize=(7, 4))
    stage_of = ui.cell_model_.cells_["stage"].str.split("+").str[0]
    for st in stage_of.unique():
        m = (stage_of == st).to_numpy()
        ax.scatter(cells["size"][m], cells["mean_clv"][m] + 1, s=8, label=st, alpha=0.7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cell size (users)")
    ax.set_ylabel("mean CLV + 1")
    ax.legend(fontsize=7, markerscale=2)
    ax.set_title("Cell map")
    sec.figure(
        fig, caption="Cell map: every cell by size and mean CLV, coloured by lifecycle stage"
    )
    sec.table(
        "cells",
        cells.sort_values("size", ascending=False).reset_index(drop=True),
        caption="Cell profiles (largest first)",
    )
    stage_tab = (
        ui.users_.groupby("stage", observed=False)
        .agg(users=("user_id", "size"), mean_clv=("clv", "mean"), mean_p_alive=("p_alive", "mean"))
        .reset_index()
    )
    stage_tab["stage"] = stage_tab["stage"].astype(str)
    sec.table("lifecycle", stage_tab, caption="Lifecycle stages")
    if ui.bgnbd_ is not None:
        sec.table(
            "bgnbd", ui.bgnbd_.summary().reset_index(names="param"), caption="BG/NBD parameters"
        )
    if ui.gammagamma_ is not None:
        sec.table(
            "gammagamma",
            ui.gammagamma_.summary().reset_index(names="param"),
            caption="Gamma-Gamma parameters",
        )


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (rank formula, ties averaged)."""
    label = label.astype(bool)
    n1, n0 = int(label.sum()), int((~label).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _truth_paragraph(pop: Any, ui: UserInsight) -> tuple[str, dict[str, float]] | None:
    """Scoring only (never used for fitting): fitted heterogeneity vs the simulator's truth."""
    truth = getattr(pop, "truth", None)
    if not isinstance(truth, pd.DataFrame) or ui.bgnbd_ is None or "user_id" not in truth:
        return None
    t = truth.set_index("user_id").reindex(ui.features_["user_id"].to_numpy())
    buyers = ~ui.features_["is_prospect"].to_numpy()
    parts, kpis = [], {}
    p = ui.bgnbd_.params_
    if "purchase_rate" in t:
        true_rate = float(np.nanmean(t["purchase_rate"].to_numpy()[buyers]))
        kpis["truth_purchase_rate"] = true_rate
        kpis["fitted_purchase_rate"] = p["r"] / p["alpha"]
        parts.append(
            f"mean purchase rate of buyers: fitted r/alpha = {p['r'] / p['alpha']:.4f} per day, "
            f"true {true_rate:.4f}"
        )
    if "dropout_p" in t:
        true_drop = float(np.nanmean(t["dropout_p"].to_numpy()[buyers]))
        kpis["truth_dropout_p"] = true_drop
        kpis["fitted_dropout_p"] = p["a"] / (p["a"] + p["b"])
        parts.append(
            f"mean dropout chance after a purchase: fitted a/(a+b) = "
            f"{p['a'] / (p['a'] + p['b']):.4f}, true {true_drop:.4f}"
        )
    if "alive_at_end" in t:
        alive = t["alive_at_end"].to_numpy()[buyers].astype(bool)
        auc = _auc(ui.p_alive_[buyers], alive)
        kpis["p_alive_auc"] = auc
        parts.append(
            f"P(alive) ranks buyers truly alive at the end above the dead with AUC {auc:.3f} "
            f"(mean P(alive) {ui.p_alive_[buyers].mean():.3f} vs true alive share {alive.mean():.3f})"
        )
    if not parts:
        return None
    text = (
        "Scoring against the simulator's hidden truth (not used for fitting; BG/NBD assumes "
        "homogeneous-form heterogeneity, the simulator mixes archetypes): " + "; ".join(parts) + "."
    )
    return text, kpis
