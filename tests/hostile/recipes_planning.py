"""Recipes: gm.planning (a 600-user world, a two-task plan, a T-learner over ridge)."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, Ridge

from growthmachine import insight as ins
from growthmachine import planning as pn
from growthmachine import sim
from growthmachine.planning import metrics, uplift

from .driver import Recipes
from .stages import stage_recipe
from .world import WorldCtx

R = Recipes()
N = 600


class Ctx(WorldCtx):
    N_USERS, DAYS = N, 180

    @cached_property
    def env(self) -> sim.Environment:  # one shared world: no recipe here changes it
        return super().env()

    @cached_property
    def ui(self) -> ins.UserInsight:
        p = self.pop
        return ins.UserInsight(4, n_prospect_clusters=2, min_cell_size=5, max_iter=20).fit(
            p.transactions, as_of=p.days, users=p.users
        )

    @cached_property
    def plan(self) -> pn.Plan:
        full = pn.Plan.default(self.env)
        return pn.Plan(
            goals=full.goals,
            audiences=full.audiences,
            benefits=[b for b in full.benefits if b.name in ("coupon_10", "free_shipping")],
            channels=[c for c in full.channels if c.name in ("in_app",)],
            contents=full.contents[:1],
            budget=50.0,
        )

    @cached_property
    def log(self) -> pd.DataFrame:
        return pn.run_experiment(sim.Environment(self.pop, seed=0), self.plan, share=0.6, seed=0)

    def planner(self, **kw) -> pn.Planner:
        return pn.Planner(self.plan, uplift.TLearner(Ridge(alpha=1.0), n_folds=1), seed=0, **kw)

    def fit(self, pl: pn.Planner) -> pn.Planner:
        return pl.fit(self.log, self.ui, self.pop.users, opted_out=self.env.opted_out())

    @cached_property
    def fitted(self) -> pn.Planner:
        return self.fit(self.planner())

    @cached_property
    def calibration(self) -> pn.Calibration:
        return next(iter(self.fitted.calibration_.values()))[0]

    @cached_property
    def linear_calibration(self) -> pn.LinearCalibration:
        pl = self.fit(self.planner(calibration="linear"))
        return next(iter(pl.calibration_.values()))[0]

    @cached_property
    def scaled_calibration(self) -> pn.ScaledCalibration:
        pl = self.fit(self.planner(calibration="scaled"))
        return pl.calibration_["gmv"][0]

    @cached_property
    def tp(self) -> pn.TaskPlan:
        return self.fitted.allocate(start_day=self.env.day)

    @cached_property
    def Xty(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(200, 3))
        t = (np.arange(200) % 2).astype(np.int64)
        y = X[:, 0] + t * (1 + X[:, 1]) + rng.normal(size=200)
        return {"X": X, "treatment": t, "y": y}

    @cached_property
    def scores(self) -> dict[str, np.ndarray]:
        d = self.Xty
        return {"y_true": (d["y"] > 0.5).astype(float), "uplift": d["X"][:, 1],
                "treatment": d["treatment"]}  # fmt: skip

    @cached_property
    def scores2(self) -> dict[str, np.ndarray]:
        """Two treatments: one uplift column each, treatment codes 0 (control), 1, 2."""
        s = self.scores
        return dict(s, uplift=np.stack([s["uplift"], -s["uplift"]], 1),
                    treatment=np.arange(len(s["y_true"])) % 3)  # fmt: skip


# ---- the plan's schema: every class with its YAML/JSON/dict round trips ----------------------
def _spec(c, cls):
    p = c.plan
    return {
        "Audience": p.audiences[0],
        "Benefit": p.benefits[0],
        "Channel": p.channels[0],
        "Content": p.contents[0],
        "Goal": p.goals[0],
        "Plan": p,
    }[cls]


def _fields(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


_FROM = {
    f: next(iter(__import__("inspect").signature(getattr(pn.Plan, f"from_{f}")).parameters))
    for f in ("dict", "json", "yaml")
}

for _cls in ("Audience", "Benefit", "Channel", "Content", "Goal", "Plan"):
    _C = getattr(pn, _cls)
    R(f"planning.{_cls}")(lambda c, _cls=_cls: (getattr(pn, _cls), _fields(_spec(c, _cls))))
    R(f"planning.{_cls}.validate")(lambda c, _cls=_cls: (_spec(c, _cls).validate, {}))
    for _fmt in ("dict", "json", "yaml"):
        R(f"planning.{_cls}.to_{_fmt}")(
            lambda c, _cls=_cls, _fmt=_fmt: (getattr(_spec(c, _cls), f"to_{_fmt}"), {})
        )
        R(
            f"planning.{_cls}.from_{_fmt}",
            # the schema names the document it reads ("plan: must be JSON text ... got int")
            names={"text_or_path": (_cls.lower(),)},
        )(
            lambda c, _cls=_cls, _fmt=_fmt: (
                getattr(getattr(pn, _cls), f"from_{_fmt}"),
                {_FROM[_fmt]: getattr(_spec(c, _cls), f"to_{_fmt}")()},
            )
        )


@R("planning.Audience.select")
def _(c):
    return pn.Audience("a", stages=["at-risk", "new"]).select, dict(insight=c.ui, users=c.pop.users)


R("planning.Plan.default")(lambda c: (pn.Plan.default, dict(env=c.env, budget=10.0, n_contents=1)))
R("planning.Plan.tasks")(lambda c: (c.plan.tasks, {}))
R("planning.Plan.goal_audience")(lambda c: (c.plan.goal_audience, dict(goal=c.plan.goals[0])))


@R("planning.Plan.compose")
def _(c):
    return c.plan.compose, dict(insight=c.ui, users=c.pop.users, opted_out=c.env.opted_out())


@R("planning.Composition", stores=True)
def _(c):
    comp = c.plan.compose(c.ui, c.pop.users)
    return pn.Composition, dict(tasks=comp.tasks, user_ids=comp.user_ids, eligible=comp.eligible)


R("planning.Composition.pairs")(lambda c: (c.plan.compose(c.ui, c.pop.users).pairs, {}))


@R("planning.Calibration", stores=True)
def _(c):
    return pn.Calibration, _fields(c.calibration)


R("planning.Calibration.table")(lambda c: (c.calibration.table, {}))
R("planning.Calibration.forecast_var")(
    lambda c: (c.calibration.forecast_var, {"score": np.linspace(-1.0, 1.0, 5)})
)


@R("planning.LinearCalibration", stores=True)
def _(c):
    return pn.LinearCalibration, _fields(c.linear_calibration)


R("planning.LinearCalibration.table")(lambda c: (c.linear_calibration.table, {}))
R("planning.LinearCalibration.forecast_var")(
    lambda c: (c.linear_calibration.forecast_var, {"score": np.linspace(-1.0, 1.0, 5)})
)


@R("planning.ScaledCalibration", stores=True)
def _(c):
    return pn.ScaledCalibration, _fields(c.scaled_calibration)


R("planning.ScaledCalibration.table")(lambda c: (c.scaled_calibration.table, {}))
R("planning.ScaledCalibration.forecast_var")(
    lambda c: (c.scaled_calibration.forecast_var, {"score": np.linspace(-1.0, 1.0, 5)})
)


@R("planning.TaskPlan", stores=True)
def _(c):
    return pn.TaskPlan, _fields(c.tp)


@R("planning.Planner")
def _(c):
    def run(**kw):
        return pn.Planner(**kw).fit(c.log, c.ui, c.pop.users)

    return run, dict(
        plan=c.plan, model=uplift.TLearner(Ridge(alpha=1.0), n_folds=1), margin=0.3, n_folds=2,
        calibration_bins=3, calibrate_by="benefit", shrink=True, winsorize=0.005, seed=0,
        level_alpha=0.05,
    )  # fmt: skip


DICT_USERS = {
    "dict": "plain arrays have no category order: one-hot columns come sorted",
    "polars": "polars categoricals convert without their order: one-hot columns come sorted",
}


@R("planning.Planner.fit", allow={"users": DICT_USERS})
def _(c):
    return c.planner().fit, dict(
        log=c.log, insight=c.ui, users=c.pop.users, opted_out=c.env.opted_out()
    )


R("planning.Planner.values")(lambda c: (c.fitted.values, {}))
R("planning.Planner.candidates")(lambda c: (c.fitted.candidates, dict(budget=50.0)))


@R("planning.Planner.pair_profit")
def _(c):
    return c.fitted.pair_profit, dict(user_ids=np.arange(10), task_ids=np.arange(10) % 2)


@R("planning.Planner.allocate")
def _(c):
    return c.fitted.allocate, dict(budget=50.0, start_day=c.env.day, users=np.arange(N))


@R("planning.Planner.design_experiment")
def _(c):
    return c.fitted.design_experiment, dict(
        n_users=100, users=np.arange(N), control_share=0.5, uniform_share=0.5, seed=0
    )


R("planning.experiment_plan")(
    lambda c: (pn.experiment_plan, dict(env=c.env, budget=20.0, share=0.5))
)


@R("planning.run_experiment")
def _(c):
    return pn.run_experiment, dict(
        env=sim.Environment(c.pop, seed=0), plan=c.plan, share=0.5, days=7, seed=0
    )


R("planning.world_actions", columns={"tasks": ("benefit", "channel", "content")})(
    lambda c: (pn.world_actions, dict(env=c.env, tasks=c.plan.tasks()))
)
R("planning.planning_features", allow={"users": DICT_USERS})(
    lambda c: (pn.planning_features, dict(insight=c.ui, users=c.pop.users))
)


@R("planning.plan_from_environment")
def _(c):
    env = sim.Environment(sim.Population.generate(2000, days=180, seed=0), seed=0)
    return pn.plan_from_environment, dict(env=env, n_actions=4, days=7, seed=0)


R("planning.run_stage")(stage_recipe(pn.run_stage, "planning"))


# ---- metrics --------------------------------------------------------------------------------
def _sc(c, f):
    return c.scores2 if f.endswith("per_treatment") else c.scores


for _f in ("qini_curve", "uplift_curve", "qini_auc_score", "uplift_auc_score",
           "qini_auc_score_per_treatment", "uplift_auc_score_per_treatment"):  # fmt: skip
    R(f"planning.metrics.{_f}")(lambda c, _f=_f: (getattr(metrics, _f), dict(_sc(c, _f))))
for _f in ("uplift_at_k", "uplift_at_k_per_treatment"):
    R(f"planning.metrics.{_f}")(
        lambda c, _f=_f: (getattr(metrics, _f), dict(_sc(c, _f), strategy="overall", k=0.3))
    )
R("planning.metrics.perfect_qini_curve")(
    lambda c: (
        metrics.perfect_qini_curve,
        dict(y_true=c.scores["y_true"], treatment=c.scores["treatment"], negative_effect=True),
    )  # fmt: skip
)
R("planning.metrics.perfect_uplift_curve")(
    lambda c: (
        metrics.perfect_uplift_curve,
        dict(y_true=c.scores["y_true"], treatment=c.scores["treatment"]),
    )  # fmt: skip
)


LEVEL_NAMES = {
    "pandas": "a table's column names become the level names (level0 for an array)",
    "polars": "a table's column names become the level names (level0 for an array)",
}


# ---- uplift models --------------------------------------------------------------------------
def _models():
    return {
        "UpliftForest": lambda: uplift.UpliftForest(
            n_estimators=4, max_depth=3, min_samples_leaf=10, seed=0
        ),
        "CellUplift": lambda: uplift.CellUplift(),
        "SLearner": lambda: uplift.SLearner(LinearRegression()),
        "TLearner": lambda: uplift.TLearner(LinearRegression()),
        "XLearner": lambda: uplift.XLearner(LinearRegression()),
        "DRLearner": lambda: uplift.DRLearner(LinearRegression()),
        "UpliftModel": lambda: uplift.TLearner(LinearRegression()),
    }


def _fit_args(c, name):
    d = c.Xty
    if name == "CellUplift":
        return dict(groups=_predict_X(c, name), treatment=d["treatment"], y=d["y"])
    return dict(d, sample_weight=np.ones(len(d["y"])))


def _predict_X(c, name):
    X = c.Xty["X"]
    return (X[:, :2] > 0).astype(np.int64) if name == "CellUplift" else X


def _pairs_args(c, name):
    """predict_pairs: the fitted columns split into a user part and a task part (4 tasks)."""
    P = _predict_X(c, name)
    return dict(X=P[:, :-1], Z=P[:4, -1:])


for _name, _new in _models().items():
    if _name == "UpliftModel":
        R("planning.uplift.UpliftModel.predict_pairs")(
            lambda c, _new=_new: (
                uplift.UpliftModel.predict_pairs.__get__(_new().fit(**_fit_args(c, "TLearner"))),
                _pairs_args(c, "TLearner"),
            )
        )
        R("planning.uplift.UpliftModel.fit")(
            lambda c, _new=_new: (
                uplift.UpliftModel.fit.__get__(_new()),
                _fit_args(c, "UpliftModel"),
            )
        )
        R("planning.uplift.UpliftModel.predict")(
            lambda c, _new=_new: (
                uplift.UpliftModel.predict.__get__(_new().fit(**_fit_args(c, "TLearner"))),
                dict(X=c.Xty["X"]),
            )
        )
        continue
    R(
        f"planning.uplift.{_name}.fit",
        allow={"groups": LEVEL_NAMES} if _name == "CellUplift" else None,
    )(lambda c, _name=_name, _new=_new: (_new().fit, _fit_args(c, _name)))
    R(f"planning.uplift.{_name}.predict")(
        lambda c, _name=_name, _new=_new: (
            _new().fit(**_fit_args(c, _name)).predict,
            dict(X=_predict_X(c, _name)),
        )
    )
    R(f"planning.uplift.{_name}.predict_pairs")(
        lambda c, _name=_name, _new=_new: (
            _new().fit(**_fit_args(c, _name)).predict_pairs,
            _pairs_args(c, _name),
        )
    )


def _params_fitted(cls, c, name):
    def run(**kw):
        return cls(**kw).fit(**_fit_args(c, name))

    return run


R("planning.uplift.UpliftForest")(
    lambda c: (_params_fitted(uplift.UpliftForest, c, "UpliftForest"), dict(
        n_estimators=4, max_depth=3, min_samples_leaf=10, min_samples_treatment=5,
        max_features=2, max_bins=16, honest=True, subsample=0.5, shrinkage=10.0, seed=0))
)  # fmt: skip
R("planning.uplift.UpliftForest.get_params", skip={"deep": "scikit-learn's API: unused"})(
    lambda c: (uplift.UpliftForest().get_params, dict(deep=True))
)
R("planning.uplift.UpliftForest.set_params")(
    lambda c: (lambda **kw: uplift.UpliftForest().set_params(**kw).fit(**_fit_args(c, "x")),
               dict(n_estimators=4, max_depth=3, min_samples_leaf=10, seed=0))
)  # fmt: skip
R("planning.uplift.CellUplift")(
    lambda c: (_params_fitted(uplift.CellUplift, c, "CellUplift"),
               dict(prior_strength=1.0, min_count=1))
)  # fmt: skip
R("planning.uplift.CellUplift.get_params", skip={"deep": "scikit-learn's API: unused"})(
    lambda c: (uplift.CellUplift().get_params, dict(deep=True))
)
R("planning.uplift.CellUplift.predict_level")(
    lambda c: (uplift.CellUplift().fit(**_fit_args(c, "CellUplift")).predict_level,
               dict(X=_predict_X(c, "CellUplift")))
)  # fmt: skip
for _name in ("SLearner", "TLearner", "XLearner", "DRLearner"):
    R(f"planning.uplift.{_name}")(
        lambda c, _name=_name: (_params_fitted(getattr(uplift, _name), c, _name),
                                dict(estimator=LinearRegression(), n_folds=2, seed=0))
    )  # fmt: skip
