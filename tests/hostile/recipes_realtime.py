"""Recipes: gm.realtime (3 actions, 3 context features, one action feature)."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from growthmachine import realtime as rt
from growthmachine.realtime import ope

from .driver import Recipes
from .stages import stage_recipe

R = Recipes()
K, D = 3, 3
POLICIES = {
    "LinUCB": dict(alpha=1.0),
    "LinTS": dict(v=1.0),
    "LogisticTS": dict(v=1.0),
    "EpsilonGreedy": dict(epsilon=0.1),
}


class Ctx:
    @cached_property
    def X(self) -> np.ndarray:
        return np.random.default_rng(0).normal(size=(8, D))

    @cached_property
    def AF(self) -> np.ndarray:
        return np.random.default_rng(1).normal(size=(K, 1))

    @cached_property
    def data(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(2)
        return {
            "actions": np.arange(8) % K,
            "rewards": (rng.random(8) < 0.5).astype(float),
        }

    def policy(self, name: str):
        p = getattr(rt, name)(K, D, seed=0, n_action_features=1, **POLICIES[name])
        p.update_batch(self.X, self.data["actions"], self.data["rewards"], action_features=self.AF)
        return p

    def saved(self, name: str) -> str:
        import tempfile

        path = tempfile.mktemp(suffix=".gm")
        self.policy(name).save(path)
        return path

    @cached_property
    def logged(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(3)
        n = 40
        probs = rng.dirichlet(np.ones(K), n)
        return {
            "actions": np.arange(n) % K,
            "rewards": rng.random(n),
            "propensities": np.full(n, 1 / K),
            "action_probs": probs,
            "q_hat": rng.random((n, K)),
        }


for _name, _params in POLICIES.items():
    R(f"realtime.{_name}")(
        lambda c, _name=_name, _params=_params: (
            getattr(rt, _name),
            dict(n_actions=K, n_features=D, **_params, ridge=1.0, seed=0, n_action_features=1),
        )
    )
    R(f"realtime.{_name}.choose")(
        lambda c, _name=_name: (c.policy(_name).choose, dict(x=c.X[0], action_features=c.AF))
    )
    R(f"realtime.{_name}.choose_batch")(
        lambda c, _name=_name: (
            c.policy(_name).choose_batch,
            dict(X=c.X, action_features=c.AF, hallucinate=True),
        )
    )
    R(f"realtime.{_name}.scores")(
        lambda c, _name=_name: (c.policy(_name).scores, dict(x=c.X[0], action_features=c.AF))
    )
    R(f"realtime.{_name}.scores_batch")(
        lambda c, _name=_name: (c.policy(_name).scores_batch, dict(X=c.X, action_features=c.AF))
    )
    R(
        f"realtime.{_name}.probabilities",
        skip={
            "n_samples=huge-size": "a number of draws, not a size: 2**40 draws run as long as "
            "asked (Ctrl-C stops them, tests/test_realtime_hostile.py)"
        },
    )(
        lambda c, _name=_name: (
            c.policy(_name).probabilities,
            dict(X=c.X, action_features=c.AF, n_samples=20),
        )
    )
    R(f"realtime.{_name}.update")(
        lambda c, _name=_name: (
            c.policy(_name).update,
            dict(x=c.X[0], action=1, reward=1.0, action_features=c.AF),
        )
    )
    R(f"realtime.{_name}.update_batch")(
        lambda c, _name=_name: (
            c.policy(_name).update_batch,
            dict(X=c.X, **c.data, action_features=c.AF),
        )
    )
    R(f"realtime.{_name}.get_params")(lambda c, _name=_name: (c.policy(_name).get_params, {}))
    R(f"realtime.{_name}.save")(
        lambda c, _name=_name: (
            c.policy(_name).save,
            dict(path=__import__("tempfile").mktemp(suffix=".gm")),
        )
    )
    R(f"realtime.{_name}.load")(
        lambda c, _name=_name: (getattr(rt, _name).load, dict(path=c.saved(_name)))
    )


def _pacer(c, charge="choose"):
    return rt.BudgetPacer(rt.LinUCB(K, D, seed=0), costs=np.array([0.0, 1.0, 2.0]), budget=10.0,
                          horizon=20, charge=charge)  # fmt: skip


@R(
    "realtime.BudgetPacer",
    allow={
        "budget": {"list": "one budget per resource (documented)"},
        "costs": {"2-d": "read in C order: (3, 1) is one cost per action for one resource"},
    },
)
def _(c):
    return rt.BudgetPacer, dict(
        policy=rt.LinUCB(K, D, seed=0), costs=np.array([0.0, 1.0, 2.0]), budget=10.0,
        horizon=20, step=0.05, null_action=0, charge="choose", max_ahead=1.0,
    )  # fmt: skip


R(
    "realtime.BudgetPacer.choose",
    allow={"costs": {"2-d": "read in C order: (3, 1) is one cost per action, one resource"}},
)(lambda c: (_pacer(c).choose, dict(x=c.X[0], costs=np.array([0.0, 1.0, 2.0]))))
R("realtime.BudgetPacer.choose_batch")(
    lambda c: (_pacer(c).choose_batch, dict(X=c.X, costs=np.tile([0.0, 1.0, 2.0], (8, 1))))
)


def _awaiting(c, n):
    """A pacer charging on update, with ``n`` decisions awaiting their cost."""
    p = _pacer(c, "update")
    p.choose_batch(c.X[:n])
    return p


R("realtime.BudgetPacer.update", allow={"cost": {"list": "one cost per resource"}})(
    lambda c: (_awaiting(c, 1).update, dict(x=c.X[0], action=1, reward=1.0, cost=1.0))
)
R(
    "realtime.BudgetPacer.update_batch",
    allow={"costs": {"2-d": "read in C order: (8, 1) is one cost per event, one resource"}},
)(lambda c: (_awaiting(c, 8).update_batch, dict(X=c.X, **c.data, costs=np.ones(8))))


def _session(c):
    s = rt.SessionPolicy(K, D, seed=0)
    s.begin(8)
    return s


@R(
    "realtime.SessionPolicy",
    allow={"max_ahead": {"inf": "inf turns the look-ahead cap off (documented)"}},
    # with allowed given, its shape (n_stages, n_actions) is checked first and named
    names={"n_actions": ("allowed",), "n_stages": ("allowed",)},
)
def _(c):
    return rt.SessionPolicy, dict(
        n_actions=K, n_features=D, n_stages=3, allowed=np.ones((3, K), dtype=bool), gamma=0.9,
        max_steps=4, policy="lints", param=1.0, ridge=1.0, seed=0,
        costs=np.array([0.0, 1.0, 1.0]), budget=10.0, horizon=100, step=0.05, max_ahead=0.1,
    )  # fmt: skip


R("realtime.SessionPolicy.begin")(lambda c: (rt.SessionPolicy(K, D, seed=0).begin, dict(n=8)))
R("realtime.SessionPolicy.act")(
    lambda c: (_session(c).act, dict(context=c.X, stage=np.zeros(8, dtype=np.int64),
                                     active=np.ones(8, dtype=bool)))
)  # fmt: skip


@R("realtime.SessionPolicy.observe")
def _(c):
    s = _session(c)
    s.act(c.X, np.zeros(8, dtype=np.int64))
    return s.observe, dict(reward=np.ones(8), cost=np.zeros(8), done=np.zeros(8, dtype=bool))


@R("realtime.ope.Estimate", stores=True)
def _(c):
    return ope.Estimate, dict(value=1.0, ci_lower=0.5, ci_upper=1.5, std_error=0.25)


R("realtime.ope.evaluate")(
    lambda c: (ope.evaluate, dict(c.logged, clip=10.0, switch_threshold=5.0, ci="bootstrap",
                                  alpha=0.05, n_bootstrap=50, seed=0))
)  # fmt: skip
for _f in ("dm", "dr", "switch_dr"):
    R(f"realtime.ope.{_f}")(lambda c, _f=_f: (getattr(ope, _f), dict(c.logged)))
for _f in ("ips", "snips"):
    R(f"realtime.ope.{_f}")(
        lambda c, _f=_f: (getattr(ope, _f), {k: v for k, v in c.logged.items() if k != "q_hat"})
    )


@R("realtime.ope.fit_reward_model")
def _(c):
    return ope.fit_reward_model, dict(
        contexts=np.random.default_rng(4).normal(size=(40, D)), actions=c.logged["actions"],
        rewards=c.logged["rewards"], n_actions=K, ridge=1.0,
    )  # fmt: skip


R("realtime.run_stage")(stage_recipe(rt.run_stage, "realtime"))
