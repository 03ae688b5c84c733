"""One-stop user insight: features, value models, lifecycle, clusters and cells in one ``fit``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .. import _convert as cv
from .._core import StateError
from .._state import Versioned
from .cells import TIER_NAMES, Cells, value_tiers
from .features import features as _features
from .kmeans import KMeans
from .lifecycle import LifecycleRules, as_rules, lifecycle
from .scaler import StandardScaler
from .value import BetaGeo, GammaGamma, clv

__all__ = ["UserInsight", "CLUSTER_FEATURES"]

#: Behaviour features the clusters are built on (buyers only; log1p for counts and amounts), with
#: the words used to name a cluster whose centre is high / low on it. Recency and trend are left
#: out on purpose: they drive the lifecycle stage, and cells cross stage with cluster.
CLUSTER_FEATURES = {
    "frequency": ("frequent buyers", "one-off buyers"),
    "avg_spend": ("big spenders", "bargain hunters"),
    "T": ("veterans", "newcomers"),
    "regularity": ("irregular", "regular"),
    "n_categories": ("explorers", "specialists"),
}


def _cluster_matrix(f: pd.DataFrame, buyers: np.ndarray) -> tuple[np.ndarray, list[str]]:
    cols: dict[str, np.ndarray] = {}
    fb = f.loc[buyers]
    cols["frequency"] = np.log1p(fb["frequency"].to_numpy())
    cols["avg_spend"] = np.log1p(fb["total_spend"].to_numpy() / fb["n_transactions"].to_numpy())
    cols["T"] = np.log1p(fb["T"].to_numpy())
    # coefficient of variation of the gaps between purchase days (0 without repeats)
    ipt_m = fb["ipt_mean"].to_numpy()
    ipt_s = fb["ipt_std"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["regularity"] = np.where(ipt_m > 0, ipt_s / ipt_m, 0.0)
    if "n_categories" in fb.columns:
        cols["n_categories"] = np.log1p(fb["n_categories"].to_numpy().astype(float))
    names = list(cols)
    return np.ascontiguousarray(np.column_stack([cols[c] for c in names])), names


#: Most categories a users-table column may have to describe prospects (one-hot encoded).
MAX_CATEGORIES = 50


def _prospect_matrix(
    users: Any, user: str, ids: np.ndarray
) -> tuple[np.ndarray, list[str], dict[str, tuple[str, str]]] | None:
    """Profile matrix of the prospects (``ids``) from the attribute columns of the users table:
    numbers (e.g. ``signup_day``) as they are, booleans as 0/1, categories one-hot (columns with
    at most :data:`MAX_CATEGORIES` values). None when the table has no usable attribute."""
    if users is None or not cv.is_table(users):
        return None
    u = pd.DataFrame({c: cv.column(users, "users", c) for c in cv.columns(users, "users")})
    if user not in u.columns:
        return None
    u = u.drop_duplicates(user).set_index(user).reindex(ids)
    cols: dict[str, np.ndarray] = {}
    words: dict[str, tuple[str, str]] = {}
    for c in u.columns:
        v = u[c]
        if pd.api.types.is_bool_dtype(v):
            cols[c] = v.fillna(False).to_numpy(dtype=float)
            words[c] = (c.replace("_", " "), f"no {c.replace('_', ' ')}")
        elif pd.api.types.is_numeric_dtype(v):
            x = v.to_numpy(dtype=float)
            if not np.isfinite(x).any():
                continue
            cols[c] = np.where(np.isfinite(x), x, np.nanmedian(x))
            words[c] = (
                ("recent sign-ups", "early sign-ups")
                if c == "signup_day"
                else (f"high {c}", f"low {c}")
            )
        else:
            cat = v.astype("category")
            if len(cat.cat.categories) > MAX_CATEGORIES:
                continue
            for val in cat.cat.categories:
                name = f"{c}={val}"
                cols[name] = (cat == val).to_numpy(dtype=float)
                words[name] = (f"{val} {c.replace('_', ' ')}", f"not {val}")
    cols = {c: x for c, x in cols.items() if np.ptp(x) > 0}
    if not cols:
        return None
    names = list(cols)
    X = np.ascontiguousarray(np.column_stack([cols[c] for c in names]))
    return X, names, words


def _name_clusters(
    centers: np.ndarray, names: list[str], vocab: dict[str, tuple[str, str]] | None = None
) -> list[str]:
    """A readable name per cluster from its most distinctive (standardised) features."""
    vocab = CLUSTER_FEATURES if vocab is None else vocab
    out: list[str] = []
    ranked = []
    for c in centers:
        order = np.argsort(-np.abs(c), kind="stable")
        words = [vocab[names[j]][0 if c[j] >= 0 else 1] for j in order]
        ranked.append(words)
        out.append(words[0])
    for depth in (2, 3):
        seen: dict[str, int] = {}
        for n in out:
            seen[n] = seen.get(n, 0) + 1
        out = [", ".join(ranked[i][:depth]) if seen[n] > 1 else n for i, n in enumerate(out)]
    seen2: dict[str, int] = {}
    final = []
    for n in out:
        seen2[n] = seen2.get(n, 0) + 1
        final.append(n if seen2[n] == 1 else f"{n} #{seen2[n]}")
    return final


class UserInsight(Versioned):
    """Features, BG/NBD + Gamma-Gamma value models, CLV, lifecycle, KMeans clusters and cells.

    ``UserInsight(...).fit(transactions, as_of=None, users=None)`` returns self with:

    - ``features_``: :func:`features` table (one row per user, sorted by ``user_id``);
    - ``bgnbd_``, ``gammagamma_``: fitted :class:`BetaGeo` / :class:`GammaGamma` (None when there
      are too few buyers to fit them);
    - ``p_alive_``, ``expected_purchases_`` (next ``horizon * period`` days), ``clv_`` (discounted,
      :func:`clv`; 0 for prospects): arrays aligned with ``features_``;
    - ``lifecycle_``: stage per user (categorical Series indexed by user id);
    - ``scaler_``, ``kmeans_``: the scaler and KMeans model on the buyers' behaviour features
      (``cluster_features_``; ``n_clusters_`` clusters);
    - ``prospect_scaler_``, ``prospect_kmeans_``: the same for the prospects (users who never
      bought: no behaviour to cluster) on their profile in the ``users`` table, when it is a table
      with attribute columns (``prospect_features_``: numbers such as ``signup_day`` as they are,
      booleans 0/1, categories one-hot); ``n_prospect_clusters_`` clusters (1, "prospects", without
      such a table);
    - ``labels_``: cluster per user (prospects' clusters are numbered after the buyers', from
      ``n_clusters_``); ``cluster_names_``: readable names (prospects': "prospects: ...");
    - ``value_tier_``: CLV quantile tier per user within its lifecycle stage (prospects 0);
    - ``cell_model_``: the fitted :class:`Cells` (``labels_``, ``cells_``, ``n_cells_``); ``cell_``:
      cell id per user; ``cells_``: the cell profile table (size, feature means, CLV, P(alive),
      stage mix);
    - ``users_``: one table with user_id, stage, cluster, cluster_name, value_tier, cell_id,
      cell_label, p_alive, expected_purchases, clv.

    Defaults: 512 buyer clusters, 1,024 prospect clusters, 5 CLV tiers, cells of at least 20 users:
    the default 100,000-user simulated population gives over 2,000 cells (``growthmachine run``).
    """

    _STATE_KIND = "insight.UserInsight"
    # 2: prospect clusters (n_prospect_clusters, prospect_* attributes)
    # 3: the fitted Cells is ``cell_model_`` (was ``cells``, without the trailing ``_``)
    _STATE_VERSION = 3
    _STATE_READS = (2,)

    def __init__(
        self,
        n_clusters: int = 512,
        *,
        n_prospect_clusters: int = 1024,
        min_cell_size: int = 20,
        n_tiers: int = 5,
        rules: LifecycleRules | dict | None = None,
        penalizer: float = 0.0,
        horizon: int = 12,
        period: float = 30.0,
        discount_rate: float = 0.01,
        trend_window: int = 90,
        seed: int = 0,
        max_iter: int = 50,
        progress: bool | None = None,
    ):
        self.n_clusters = cv.check_int(n_clusters, "n_clusters", minimum=1)
        self.n_prospect_clusters = cv.check_int(
            n_prospect_clusters, "n_prospect_clusters", minimum=1
        )
        self.min_cell_size = cv.check_int(
            min_cell_size, "min_cell_size", minimum=1, maximum=cv.I64_MAX
        )
        self.n_tiers = cv.check_int(n_tiers, "n_tiers", minimum=1, maximum=255)
        self.rules = as_rules(rules)
        self.penalizer = cv.check_number(penalizer, "penalizer", minimum=0.0)
        self.horizon = cv.check_int(horizon, "horizon", minimum=1, maximum=cv.I64_MAX)
        self.period = cv.check_number(period, "period", minimum=0.0, strict_min=True)
        if not np.isfinite(self.horizon * self.period):
            raise ValueError(
                f"period: horizon x period must be a finite number of days, got {horizon} x {period}"
            )
        self.discount_rate = cv.check_number(
            discount_rate, "discount_rate", minimum=-1.0, strict_min=True
        )
        self.trend_window = cv.check_int(trend_window, "trend_window", minimum=1, maximum=2**31 - 1)
        self.seed = cv.check_int(seed, "seed", minimum=0, maximum=cv.U64_MAX)
        self.max_iter = cv.check_int(max_iter, "max_iter", minimum=1, maximum=cv.I64_MAX)
        self.progress = progress

    def fit(
        self,
        transactions: Any,
        as_of: Any = None,
        users: Any = None,
        *,
        user: str = "user_id",
        time: str = "day",
        amount: str = "amount",
        category: str | None = None,
    ) -> UserInsight:
        f = _features(
            transactions,
            as_of,
            user=user,
            time=time,
            amount=amount,
            category=category,
            users=users,
            trend_window=self.trend_window,
            progress=self.progress,
        )
        self.features_ = f
        n = len(f)
        buyers = ~f["is_prospect"].to_numpy()
        self.n_buyers_ = int(buyers.sum())
        self.bgnbd_: BetaGeo | None = None
        self.gammagamma_: GammaGamma | None = None
        p_alive = np.ones(n)
        exp_p = np.zeros(n)
        clv_v = np.zeros(n)
        if self.n_buyers_ > 0 and f.loc[buyers, "T"].max() > 0:
            pg = self.progress
            self.bgnbd_ = BetaGeo(self.penalizer).fit(f, progress=pg)
            p_alive = self.bgnbd_.p_alive(f)
            exp_p = self.bgnbd_.expected_purchases(self.horizon * self.period, f, progress=pg)
            if (f["frequency"].to_numpy() > 0).any():
                gg = GammaGamma(self.penalizer).fit(f, progress=pg)
                if gg.params_["q"] <= 1.0:  # expected spend needs q > 1: regularise
                    gg = GammaGamma(max(self.penalizer, 1e-3)).fit(f, progress=pg)
                if gg.params_["q"] > 1.0:
                    self.gammagamma_ = gg
                    clv_v = clv(
                        self.bgnbd_,
                        gg,
                        f,
                        horizon=self.horizon,
                        period=self.period,
                        discount_rate=self.discount_rate,
                        progress=pg,
                    )
        exp_p = np.where(buyers, exp_p, 0.0)
        clv_v = np.where(buyers, clv_v, 0.0)
        self.p_alive_ = p_alive
        self.expected_purchases_ = exp_p
        self.clv_ = clv_v
        self.lifecycle_ = lifecycle(f, rules=self.rules, p_alive=p_alive)

        # clusters of buyers' behaviour
        labels = np.zeros(n, dtype=np.int64)
        if self.n_buyers_ > 0:
            X, names = _cluster_matrix(f, buyers)
            self.cluster_features_ = names
            self.scaler_ = StandardScaler().fit(X)
            Xs = self.scaler_.transform(X)
            n_distinct = (
                len(np.unique(Xs, axis=0))
                if self.n_buyers_ <= 4 * self.n_clusters
                else self.n_buyers_
            )
            k = max(1, min(self.n_clusters, n_distinct))
            self.kmeans_ = KMeans(
                k, seed=self.seed, max_iter=self.max_iter, progress=self.progress
            ).fit(Xs)
            labels[buyers] = self.kmeans_.labels_
            centers = np.asarray(self.kmeans_.cluster_centers_, dtype=np.float64)
            self.cluster_names_ = _name_clusters(centers, names)
        else:
            self.cluster_features_ = []
            self.scaler_ = None
            self.kmeans_ = None
            k = 0
            centers = np.zeros((0, 1))
            self.cluster_names_ = []
        self.n_clusters_ = k

        # clusters of prospects' profiles (users-table attributes), numbered after the buyers'
        pros = ~buyers
        n_pros = int(pros.sum())
        self.prospect_features_: list[str] = []
        self.prospect_scaler_ = None
        self.prospect_kmeans_ = None
        p_centers = np.zeros((1, 0))
        p_names = ["prospects"]
        pm = None
        if self.n_prospect_clusters > 1 and n_pros > 1:
            pm = _prospect_matrix(users, user, f["user_id"].to_numpy()[pros])
        if pm is not None:
            Xp, pnames, vocab = pm
            self.prospect_scaler_ = StandardScaler().fit(Xp)
            Xps = self.prospect_scaler_.transform(Xp)
            n_distinct = (
                len(np.unique(Xps, axis=0)) if n_pros <= 4 * self.n_prospect_clusters else n_pros
            )
            kp = min(self.n_prospect_clusters, n_distinct)
            if kp > 1:
                self.prospect_features_ = pnames
                self.prospect_kmeans_ = KMeans(
                    kp, seed=self.seed, max_iter=self.max_iter, progress=self.progress
                ).fit(Xps)
                labels[pros] = k + self.prospect_kmeans_.labels_
                p_centers = np.asarray(self.prospect_kmeans_.cluster_centers_, dtype=np.float64)
                p_names = [f"prospects: {nm}" for nm in _name_clusters(p_centers, pnames, vocab)]
        if self.prospect_kmeans_ is None:
            labels[pros] = k
        self.n_prospect_clusters_ = len(p_names)
        self.cluster_names_ = self.cluster_names_ + p_names
        self.labels_ = labels
        # one space for both kinds of centres (buyers' and prospects' coordinates side by side,
        # prospects far away on an extra axis): merges only ever join clusters of one stage
        kp, db, dp = len(p_names), centers.shape[1], p_centers.shape[1]
        all_centers = np.vstack(
            [
                np.hstack([centers, np.zeros((k, dp + 1))]),
                np.hstack([np.zeros((kp, db)), p_centers, np.full((kp, 1), 1e6)]),
            ]
        )

        # CLV tiers within each stage (a stage's own top value is "top value" there)
        tiers = np.zeros(n, dtype=np.uint8)
        stage_codes = self.lifecycle_.cat.codes.to_numpy()
        for st in np.unique(stage_codes[buyers]):
            m = buyers & (stage_codes == st)
            tiers[m] = value_tiers(clv_v[m], self.n_tiers)
        self.value_tier_ = tiers
        tier_names = (
            TIER_NAMES
            if self.n_tiers == 5
            else tuple(f"value tier {i + 1}" for i in range(self.n_tiers))
        )
        self.cell_model_ = Cells.build(
            self.lifecycle_,
            labels,
            tiers,
            self.min_cell_size,
            cluster_names=self.cluster_names_,
            cluster_centers=all_centers,
            tier_names=tier_names,
        )
        self.cell_ = self.cell_model_.labels_.astype(np.int64)
        self.cells_ = self.cell_model_.profile(
            f, clv=clv_v, p_alive=p_alive, expected_purchases=exp_p
        )
        names_arr = np.asarray(self.cluster_names_, dtype=object)
        self.users_ = pd.DataFrame(
            {
                "user_id": f["user_id"].to_numpy(),
                "stage": self.lifecycle_.to_numpy(),
                "cluster": labels,
                "cluster_name": names_arr[labels],
                "value_tier": tiers,
                "cell_id": self.cell_,
                "cell_label": self.cell_model_.cells_["label"].to_numpy()[self.cell_],
                "p_alive": p_alive,
                "expected_purchases": exp_p,
                "clv": clv_v,
            }
        )
        return self

    @property
    def cells(self) -> Cells:
        """Deprecated alias of :attr:`cell_model_` (a fitted attribute ends in ``_``)."""
        warnings.warn(
            "UserInsight.cells is deprecated: use UserInsight.cell_model_ (the fitted Cells; "
            "cells_ is the cell profile table)",
            FutureWarning,
            stacklevel=2,
        )
        return self.cell_model_

    def _upgrade_state(self, version: int, state: dict[str, Any]) -> dict[str, Any]:
        if version == 2 and "cells" in state:
            state = dict(state)
            state["cell_model_"] = state.pop("cells")
        return state

    def _check(self) -> None:
        if not hasattr(self, "features_"):
            raise StateError("UserInsight is not fitted yet: call fit() first")

    def summary(self) -> dict[str, Any]:
        """Headline numbers: users, buyers, cells, clusters, fitted parameters, total CLV."""
        self._check()
        out: dict[str, Any] = {
            "n_users": len(self.features_),
            "n_buyers": self.n_buyers_,
            "n_cells": self.cell_model_.n_cells_,
            "n_clusters": self.n_clusters_,
            "n_prospect_clusters": self.n_prospect_clusters_,
            "total_clv": float(self.clv_.sum()),
            "mean_p_alive_buyers": float(
                self.p_alive_[~self.features_["is_prospect"].to_numpy()].mean()
            )
            if self.n_buyers_
            else float("nan"),
        }
        if self.bgnbd_ is not None:
            out.update({f"bgnbd_{k}": v for k, v in self.bgnbd_.params_.items()})
        if self.gammagamma_ is not None:
            out.update({f"gammagamma_{k}": v for k, v in self.gammagamma_.params_.items()})
        return out
