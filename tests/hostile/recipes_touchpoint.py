"""Recipes: gm.touchpoint (a 300-user world, ads/sms/email, a 7-day horizon)."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pandas as pd

from growthmachine import touchpoint as tp

from .driver import Recipes
from .recipes_planning import DICT_USERS
from .stages import stage_recipe
from .world import WorldCtx

R = Recipes()
N = 300
CH = ("ads", "sms", "email")


class Ctx(WorldCtx):
    N_USERS, DAYS = N, 120

    @cached_property
    def users(self) -> np.ndarray:
        return np.arange(N)

    @cached_property
    def ui(self):
        from growthmachine import insight

        p = self.pop
        return insight.UserInsight(4, n_prospect_clusters=2, min_cell_size=5, max_iter=20).fit(
            p.transactions, as_of=p.days, users=p.users
        )

    @cached_property
    def reach(self) -> np.ndarray:
        return tp.world_reachable(self.env0, self.users, CH)

    @cached_property
    def seg(self) -> np.ndarray:
        return tp.world_segments(self.env0, self.users)

    def planner(self) -> tp.FrequencyPlanner:
        return tp.FrequencyPlanner.for_world(
            self.env0, CH, optout_cost=1.0, horizon_days=7, model=tp.ResponseModel(forget=0.5)
        )

    @cached_property
    def plan0(self) -> tp.FrequencyPlan:
        return self.planner().plan(
            self.users, 3.0, value=10.0, segment=self.seg, reachable=self.reach, start_day=120
        )

    @cached_property
    def outcomes(self) -> pd.DataFrame:
        return self.env().apply(self.plan0.schedule(), start_day=120, days=7)

    @cached_property
    def fitted(self) -> tp.FrequencyPlanner:
        return self.planner().observe(self.outcomes, self.plan0)

    @cached_property
    def log(self) -> pd.DataFrame:
        rng = np.random.default_rng(0)
        n = 240
        return pd.DataFrame(
            {
                "segment": np.arange(n) % 3,
                "channel": np.array(CH)[np.arange(n) % 3],
                "exposures": rng.integers(0, 8, n),
                "converted": (rng.random(n) < 0.2).astype(float),
                "opted_out": (rng.random(n) < 0.02).astype(float),
                "w": np.ones(n),
            }
        )

    @cached_property
    def model(self) -> tp.ResponseModel:
        return tp.ResponseModel().fit(self.log, weight="w")

    @cached_property
    def model_cov(self) -> tp.ResponseModel:
        i = np.arange(len(self.log))
        log = self.log.assign(x1=(i % 5) * 1.0, x2=(i % 3 == 0) * 1.0)
        return tp.ResponseModel().fit(log, weight="w", covariates=["x1", "x2"])


@R("touchpoint.Channel")
def _(c):
    return tp.Channel, dict(
        name="ads", unit_cost=0.01, daily_cap=3, weekly_cap=10, capacity=100.0, optout_cost=1.0
    )


@R("touchpoint.Curves", stores=True)
def _(c):
    cu = c.model.curves([1, 2, 4])
    return tp.Curves, dict(cu._asdict())


@R("touchpoint.FrequencyPlan", stores=True, deterministic=False)
def _(c):
    p = c.plan0
    return tp.FrequencyPlan, {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}


R(
    "touchpoint.FrequencyPlan.schedule",
    allow={"content": {"str": "a content name (a code is an int)"}},
)(lambda c: (c.plan0.schedule, dict(benefit="none", content=0)))


@R("touchpoint.FrequencyPlanner")
def _(c):
    def run(**kw):
        return tp.FrequencyPlanner(**kw).plan(c.users, 3.0, value=10.0, segment=c.seg,
                                              reachable=c.reach, start_day=120)  # fmt: skip

    return run, dict(
        channels=[tp.Channel("ads", 0.01, 3), tp.Channel("sms", 0.03, 1),
                  tp.Channel("email", 0.001, 1)],
        horizon_days=7, levels=[1, 2, 4, 7], min_frequency=0, explore_share=0.1,
        control_share=0.5, explore_levels="full", tol=1e-4, max_iter=50, seed=0,
    )  # fmt: skip


@R("touchpoint.FrequencyPlanner.for_world")
def _(c):
    return tp.FrequencyPlanner.for_world, dict(
        world=c.env0, channels=CH, optout_cost=1.0, weekly_caps={"ads": 5},
        capacity={"sms": 50.0}, horizon_days=7,
    )  # fmt: skip


R("touchpoint.FrequencyPlanner.is_fitted")(lambda c: (c.planner().is_fitted, {}))


@R("touchpoint.FrequencyPlanner.observe")
def _(c):
    return c.planner().observe, dict(outcomes=c.outcomes, plan=c.plan0)


@R("touchpoint.FrequencyPlanner.plan", deterministic=True)
def _(c):
    return c.fitted.plan, dict(
        users=c.users, budget=3.0, value=np.full(N, 10.0), segment=c.seg, reachable=c.reach,
        start_day=127, explore=False, max_optouts=5.0, optout_z=0.5,
    )  # fmt: skip


@R("touchpoint.ResponseModel")
def _(c):
    def run(**kw):
        return tp.ResponseModel(**kw).fit(c.log)

    return run, dict(tau=1.0, interval=0.9, forget=0.5, channels=list(CH), fatigue_halflife=7.0,
                     slope_prior=(1.0, 1.0))  # fmt: skip


LOG = {k: (k,) for k in ("segment", "channel", "exposures", "converted", "opted_out")}
for _m in ("fit", "partial_fit"):
    R(
        f"touchpoint.ResponseModel.{_m}",
        columns={"log": (*LOG, "w")},
        # the weight column is read as "weight"; an unknown column name is the log's
        names={"log": ("weight",), "weight": ("log",)},
        allow={"log": {"str-segment": "segments are labels: strings are valid"}},
    )(
        lambda c, _m=_m: (
            getattr(tp.ResponseModel(), _m),
            dict(log=c.log, weight="w", horizon_days=14),
        )
    )
#: The curves are continuous in the number of exposures: fractions are documented as allowed.
FRACTIONS = {"1.5": "fractions of exposures are allowed (documented: the curves are continuous)"}
R("touchpoint.ResponseModel.curves", allow={"levels": FRACTIONS})(
    lambda c: (c.model.curves, dict(levels=np.array([1, 2, 4])))
)
R("touchpoint.ResponseModel.pooled_curves", allow={"levels": FRACTIONS})(
    lambda c: (c.model.pooled_curves, dict(levels=np.array([1, 2, 4])))
)
R("touchpoint.ResponseModel.get_params", skip={"deep": "scikit-learn's API: unused"})(
    lambda c: (tp.ResponseModel().get_params, dict(deep=True))
)
R("touchpoint.ResponseModel.set_params")(
    lambda c: (lambda **kw: tp.ResponseModel().set_params(**kw).fit(c.log),
               dict(forget=0.5, interval=0.8))
)  # fmt: skip


@R("touchpoint.ResponseModel.predict", allow={"exposures": FRACTIONS})
def _(c):
    return c.model.predict, dict(
        segment=np.arange(9) % 3, channel=np.array(CH)[np.arange(9) % 3],
        exposures=np.arange(9), return_opt_out=True,
    )  # fmt: skip


@R("touchpoint.fixed_plan")
def _(c):
    return tp.fixed_plan, dict(
        planner=c.planner(), users=np.arange(20), channel=np.zeros(20, dtype=np.int64),
        exposures=np.full(20, 2), start_day=120, budget=10.0,
    )  # fmt: skip


@R("touchpoint.uniform_plan")
def _(c):
    return tp.uniform_plan, dict(
        planner=c.planner(), users=c.users, exposures=2, channel="ads", reachable=c.reach,
        start_day=120,
    )  # fmt: skip


@R("touchpoint.max_caps_plan")
def _(c):
    return tp.max_caps_plan, dict(
        planner=c.planner(), users=c.users, budget=2.0, channel="ads", reachable=c.reach,
        start_day=120, seed=0,
    )  # fmt: skip


R("touchpoint.score")(lambda c: (tp.score, dict(env=c.env(), plan=c.plan0, content=0)))


@R("touchpoint.true_curves")
def _(c):
    return tp.true_curves, dict(
        env=c.env0, planner=c.planner(), users=np.arange(30), start_day=120,
        reachable=c.reach[:30], content=0,
    )  # fmt: skip


@R("touchpoint.segment_curves")
def _(c):
    inc, opt = tp.true_curves(c.env0, c.planner(), np.arange(30), start_day=120)
    return tp.segment_curves, dict(
        incremental=inc, optout=opt, segment=c.seg[:30], reachable=c.reach[:30]
    )


R("touchpoint.world_reachable")(
    lambda c: (tp.world_reachable, dict(env=c.env0, users=np.arange(20), channels=list(CH)))
)
R("touchpoint.world_segments")(lambda c: (tp.world_segments, dict(env=c.env0, users=np.arange(20))))
R("touchpoint.world_covariates")(
    lambda c: (tp.world_covariates, dict(env=c.env0, users=np.arange(20)))
)
R("touchpoint.user_covariates", allow={"users": DICT_USERS})(
    lambda c: (tp.user_covariates, dict(insight=c.ui, users=c.pop.users, user_ids=np.arange(20)))
)
R("touchpoint.ResponseModel.height")(
    lambda c: (c.model_cov.height,
               dict(covariates=pd.DataFrame({"x1": [0.0, 1.0, 4.0], "x2": [1.0, 0.0, 1.0]})))
)  # fmt: skip
R("touchpoint.world_fatigue")(
    lambda c: (tp.world_fatigue, dict(env=c.env0, users=np.arange(20), halflife_days=7.0))
)


R("touchpoint.run_stage")(stage_recipe(tp.run_stage, "touchpoint"))
