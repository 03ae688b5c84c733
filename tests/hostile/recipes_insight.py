"""Recipes: gm.insight (a 150-user log of 180 days)."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from growthmachine import insight as ins

from .driver import Recipes
from .stages import stage_recipe
from .world import WorldCtx

R = Recipes()
#: Read into columns of this name (a message naming the column names the argument).
RFM = {"frequency": ("frequency",), "recency": ("recency",), "T": ("T",)}


class Ctx(WorldCtx):
    N_USERS, DAYS = 150, 180

    @cached_property
    def tx(self) -> pd.DataFrame:
        t = self.pop.transactions
        return pd.DataFrame(
            {
                "user_id": t["user_id"].to_numpy(),
                "day": t["day"].to_numpy(),
                "amount": t["amount"].to_numpy(),
            }
        )

    @cached_property
    def feats(self) -> pd.DataFrame:
        return ins.features(self.tx, as_of=180)

    @cached_property
    def rfm(self) -> dict[str, np.ndarray]:
        f = self.feats
        return {k: f[k].to_numpy(dtype=float) for k in ("frequency", "recency", "T")}

    @cached_property
    def buyers(self) -> dict[str, np.ndarray]:
        f = self.feats[self.feats["frequency"] > 0]
        return {
            "frequency": f["frequency"].to_numpy(dtype=float),
            "monetary": f["monetary"].to_numpy(dtype=float),
        }

    @cached_property
    def bg(self) -> ins.BetaGeo:
        return ins.BetaGeo().fit(**self.rfm)

    @cached_property
    def gg(self) -> ins.GammaGamma:
        return ins.GammaGamma().fit(**self.buyers)

    @cached_property
    def X(self) -> np.ndarray:
        return np.random.default_rng(0).normal(size=(40, 3))

    @cached_property
    def stages(self) -> pd.Series:
        return ins.lifecycle(self.feats, self.bg)

    @cached_property
    def cells(self) -> ins.Cells:
        n = len(self.feats)
        return ins.Cells(min_size=5).build(
            self.stages, np.arange(n) % 3, np.arange(n) % 5, min_size=5
        )


@R("insight.features", columns={"transactions": ("user_id", "day", "amount")})
def _(c):
    return ins.features, dict(
        transactions=c.tx, as_of=180, users=np.arange(150), trend_window=30, output="pandas"
    )


def fitted(cls, *args, **kw):
    """Estimators check their parameters when fitted (scikit-learn's convention): the
    constructor's recipe constructs and fits."""

    def run(**params):
        return cls(**params).fit(*args, **kw)

    return run


@R("insight.BetaGeo")
def _(c):
    return fitted(ins.BetaGeo, **c.rfm), dict(penalizer=0.1, max_iter=50)


@R("insight.GammaGamma")
def _(c):
    return fitted(ins.GammaGamma, **c.buyers), dict(penalizer=0.1, max_iter=50)


#: Standard errors of a fit the data do not identify are NaN, with a RuntimeWarning (documented in
#: growthmachine.insight.value): one value of 1e15 leaves the rest of the data without weight.
NO_SE = "standard errors are NaN with a RuntimeWarning when the data do not identify the model"


@R(
    "insight.BetaGeo.fit",
    names=RFM,
    allow={"T": {"huge": NO_SE}, "weights": {"huge": NO_SE}},
    nan_ok=("T=huge", "weights=huge"),
)
def _(c):
    return ins.BetaGeo(max_iter=50).fit, dict(**c.rfm, weights=np.ones(len(c.feats)))


@R("insight.BetaGeo.log_likelihood", names=RFM)
def _(c):
    return c.bg.log_likelihood, dict(**c.rfm, weights=np.ones(len(c.feats)))


@R("insight.BetaGeo.expected_purchases", names=RFM)
def _(c):
    return c.bg.expected_purchases, dict(t=30.0, **c.rfm)


@R("insight.BetaGeo.predict", names=RFM)
def _(c):
    return c.bg.predict, dict(t=30.0, **c.rfm)


@R("insight.BetaGeo.p_alive", names=RFM)
def _(c):
    return c.bg.p_alive, dict(**c.rfm)


@R("insight.BetaGeo.expected_purchases_new")
def _(c):
    return c.bg.expected_purchases_new, dict(t=np.array([10.0, 30.0]))


@R("insight.BetaGeo.simulate")
def _(c):
    return ins.BetaGeo.simulate, dict(params=c.bg.params_, T=np.full(20, 100.0), seed=0)


R("insight.BetaGeo.summary")(lambda c: (c.bg.summary, {}))
R("insight.GammaGamma.summary")(lambda c: (c.gg.summary, {}))


@R(
    "insight.GammaGamma.fit",
    names={"frequency": ("frequency",), "monetary": ("monetary",)},
    allow={"monetary": {"huge": NO_SE}, "weights": {"huge": NO_SE}},
    nan_ok=("monetary=huge", "weights=huge"),
)
def _(c):
    n = len(c.buyers["frequency"])
    return ins.GammaGamma(max_iter=50).fit, dict(**c.buyers, weights=np.ones(n))


@R("insight.GammaGamma.log_likelihood")
def _(c):
    return c.gg.log_likelihood, dict(**c.buyers)


@R("insight.GammaGamma.expected_spend")
def _(c):
    return c.gg.expected_spend, dict(**c.buyers)


@R("insight.clv")
def _(c):
    f = c.feats
    return ins.clv, dict(
        bgnbd=c.bg,
        gammagamma=c.gg,
        **c.rfm,
        monetary=f["monetary"].to_numpy(dtype=float),
        horizon=3,
        period=30.0,
        discount_rate=0.01,
    )


@R("insight.LifecycleRules")
def _(c):
    import dataclasses

    r = ins.LifecycleRules()
    return ins.LifecycleRules, {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}


R("insight.LifecycleRules.as_list")(lambda c: (ins.LifecycleRules().as_list, {}))
R("insight.LifecycleRules.to_json")(lambda c: (ins.LifecycleRules().to_json, {}))


MISSING = {
    "nan-": "NaN marks a missing feature (no purchase yet): read with finite=False by design",
    "inf-": "read with finite=False by design; the stage rules compare, inf is a valid extreme",
}


@R(
    "insight.lifecycle",
    allow={"features": MISSING},
    columns={
        "features": ("n_transactions", "T", "days_since_last", "trend", "frequency", "recency")
    },
)
def _(c):
    return ins.lifecycle, dict(features=c.feats, model=c.bg, rules=ins.LifecycleRules())


@R("insight.lifecycle_transitions", columns={"transactions": ("user_id", "day", "amount")})
def _(c):
    return ins.lifecycle_transitions, dict(transactions=c.tx, start=120, end=180, model=c.bg)


@R("insight.transition_matrix")
def _(c):
    s = c.stages
    return ins.transition_matrix, dict(before=s, after=s.sample(frac=1, random_state=0))


@R("insight.value_tiers")
def _(c):
    return ins.value_tiers, dict(values=np.linspace(0, 10, 50), n_tiers=5)


@R("insight.Cells")
def _(c):
    return ins.Cells, dict(min_size=5)


@R("insight.Cells.build")
def _(c):
    n = len(c.feats)
    return ins.Cells(min_size=5).build, dict(
        lifecycle=c.stages, clusters=np.arange(n) % 3, value_tier=np.arange(n) % 5, min_size=5
    )


R(
    "insight.Cells.profile",
    allow={
        "features": {
            **MISSING,
            "inf-": "means are over the finite values (documented)",
            "str-": "only numeric columns are profiled (documented)",
        }
    },
    columns={"features": ("frequency", "monetary")},
)(lambda c: (c.cells.profile, dict(features=c.feats)))


@R("insight.UserInsight")
def _(c):
    return fitted(ins.UserInsight, c.tx, as_of=180), dict(
        n_clusters=4,
        n_prospect_clusters=2,
        min_cell_size=5,
        n_tiers=3,
        penalizer=0.1,
        horizon=3,
        period=30.0,
        discount_rate=0.01,
        trend_window=30,
        seed=0,
        max_iter=20,
    )


def _ui():
    return ins.UserInsight(4, n_prospect_clusters=2, min_cell_size=5, max_iter=20, progress=False)


@R("insight.UserInsight.fit", columns={"transactions": ("user_id", "day", "amount")})
def _(c):
    return _ui().fit, dict(transactions=c.tx, as_of=180, users=c.pop.users)


R("insight.UserInsight.summary")(lambda c: (_ui().fit(c.tx, as_of=180).summary, {}))


def _maker(cls: str, kw: dict):
    return lambda: getattr(ins, cls)(**kw)


# k-means and the scaler: sklearn conventions, one recipe per method
for _cls, _kw in {
    "KMeans": dict(n_clusters=3, n_init=2, max_iter=20, tol=1e-4, seed=0),
    "MiniBatchKMeans": dict(n_clusters=3, batch_size=16, max_iter=5, tol=1e-4, seed=0),
    "StandardScaler": dict(with_mean=True, with_std=True),
}.items():
    _make = _maker(_cls, _kw)
    R(f"insight.{_cls}")(lambda c, _cls=_cls, _kw=_kw: (fitted(getattr(ins, _cls), c.X), dict(_kw)))
    for _m in ("fit", "fit_predict", "fit_transform", "partial_fit"):
        if hasattr(getattr(ins, _cls), _m):
            R(f"insight.{_cls}.{_m}", names={"X": ("n_samples", "rows")})(
                lambda c, _m=_m, _make=_make: (getattr(_make(), _m), dict(X=c.X))
            )
    for _m in ("predict", "transform", "score", "inverse_transform"):
        if hasattr(getattr(ins, _cls), _m):
            R(f"insight.{_cls}.{_m}")(
                lambda c, _m=_m, _make=_make: (getattr(_make().fit(c.X), _m), dict(X=c.X))
            )
    R(f"insight.{_cls}.get_params", skip={"deep": "scikit-learn's API: accepted, unused"})(
        lambda c, _make=_make: (_make().get_params, dict(deep=True))
    )
    R(f"insight.{_cls}.set_params")(
        lambda c, _make=_make, _kw=_kw: (
            lambda **p: _make().set_params(**p).fit(c.X),
            {k: v for k, v in _kw.items()},
        )
    )


R("insight.run_stage")(stage_recipe(ins.run_stage, "insight"))
