"""One small fitted instance of every public picklable class, and a cheap call that must work on
it (or on a copy unpickled from a mutated state), and the paths into a JSON-like tree the
mutations pick from. Shared by ``test_fuzz_parsers.py`` and by ``fuzz_core_states.py``, which
that test runs in a child process."""

from __future__ import annotations

import functools
import io
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

import growthmachine as gm
from growthmachine.planning.uplift import CellUplift, TLearner, UpliftForest


def _xty(n: int = 600, p: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    t = rng.integers(0, 2, n)
    y = X[:, 0] + t * (X[:, 1] > 0) + rng.normal(size=n)
    return X, t, y


class _Ridge:
    """A picklable least-squares estimator (sklearn-like), so the fixtures need no scikit-learn."""

    def fit(self, X, y, sample_weight=None):
        A = np.column_stack([np.ones(len(X)), X])
        self.coef_ = np.linalg.lstsq(A, y, rcond=None)[0]
        return self

    def predict(self, X):
        return self.coef_[0] + np.asarray(X) @ self.coef_[1:]


@functools.cache
def _world():
    pop = gm.sim.Population.generate(400, days=120, seed=1)
    env = gm.sim.Environment(pop, seed=1)
    return pop, env


@functools.cache
def _insight():
    pop, _ = _world()
    return gm.insight.UserInsight(
        n_clusters=4, n_prospect_clusters=4, min_cell_size=5, max_iter=10, progress=False
    ).fit(pop.transactions, as_of=pop.days, users=pop.users)


def _policy(cls):
    X = np.random.default_rng(0).normal(size=(200, 3))
    pol = cls(3, 3, seed=1)
    a = pol.choose_batch(X)
    pol.update_batch(X, a, (X[:, 0] * (a - 1) > 0).astype(float))
    return pol


def _response_log():
    rng = np.random.default_rng(0)
    n = rng.choice([0, 1, 2, 4, 8], size=4000)
    return pd.DataFrame(
        {
            "segment": rng.integers(0, 2, 4000),
            "channel": rng.choice(["email", "sms"], 4000),
            "exposures": n,
            "converted": (rng.random(4000) < 0.02 + 0.01 * np.sqrt(n)).astype(float),
            "opted_out": (rng.random(4000) < 0.002 * n).astype(np.int8),
        }
    )


def _problem():
    rows = [(u, a, float((u * 7 + a * 3) % 5), 1.0 + a) for u in range(20) for a in range(3)]
    df = pd.DataFrame(rows, columns=["user", "action", "value", "budget"])
    return gm.allocate.Problem.from_frame(df, usage=["budget"], resources={"budget": 15.0})


def _frequency_plan():
    from growthmachine.touchpoint import Channel, FrequencyPlanner

    pl = FrequencyPlanner([Channel("ads", 0.01, 10), Channel("email", 0.001, 1)], 14)
    k = len(pl.levels)
    lv = np.asarray(pl.levels, float)
    inc = np.broadcast_to(0.05 * lv / (lv + 5), (2, 2, k)).copy()
    opt = np.broadcast_to(1 - np.exp(-0.001 * lv), (2, 2, k)).copy()
    rng = np.random.default_rng(0)
    n = 50
    return pl.plan(
        np.arange(n), 3.0, value=rng.uniform(2, 20, n), segment=rng.integers(0, 2, n),
        reachable=rng.random((n, 2)) < 0.8, curves=(inc, opt),
    )  # fmt: skip


def _planner():
    pop, env = _world()
    full = gm.planning.Plan.default(env, n_contents=1)
    plan = gm.planning.Plan(
        goals=full.goals,
        audiences=full.audiences,
        benefits=[b for b in full.benefits if b.name == "coupon_10"],
        channels=[c for c in full.channels if c.name == "email"],
        contents=full.contents,
        budget=50.0,
    )
    log = gm.planning.run_experiment(env, plan, share=0.8, seed=1, progress=False)
    return gm.planning.Planner(plan, TLearner(_Ridge(), n_folds=1), seed=0, progress=False).fit(
        log, _insight(), pop.users, opted_out=env.opted_out()
    )


def _session_policy():
    import toy_sessions as toy

    obj = gm.realtime.SessionPolicy(
        6, 6, allowed=toy.ALLOWED, param=5.0, costs=toy.FACE, budget=1e3, horizon=10**4
    )
    sb = toy.sessions(200, seed=1)
    obj.begin(200)
    while sb.active.any():
        r, c, _, d = sb.step(obj.act(sb.context, sb.stage, sb.active))
        obj.observe(r, c, d)
    return obj


def _pacer():
    X = np.random.default_rng(0).normal(size=(100, 4))
    p = gm.realtime.BudgetPacer(gm.realtime.LinTS(3, 4, seed=1), [0.0, 1.0, 2.0], 50.0, 1000)
    for x in X:
        a = p.choose(x)
        p.update(x, a, float(x[0] > 0))
    return p


#: The bandit policies (pickled by ``__reduce__`` as their core's bytes, not ``Versioned``).
POLICIES = ("LinUCB", "LinTS", "LogisticTS", "EpsilonGreedy")

#: name -> (build, check): ``check(obj)`` is one cheap call that must work on a loaded object.
CASES: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
    "Population": (lambda: _world()[0], lambda o: o.users.shape),
    "Environment": (lambda: _world()[1].copy(), lambda o: o.opted_out().shape),
    "SessionBatch": (lambda: _world()[1].sessions(50, seed=1), lambda o: o.context.shape),
    "UserInsight": (_insight, lambda o: o.users_.shape),
    "Cells": (lambda: _insight().cell_model_, lambda o: o.profile().shape),
    "BetaGeo": (
        lambda: _insight().bgnbd_,
        lambda o: o.p_alive(np.array([1.0]), np.array([10.0]), np.array([30.0])),
    ),
    "GammaGamma": (
        lambda: _insight().gammagamma_,
        lambda o: o.expected_spend(np.array([2.0]), np.array([30.0])),
    ),
    "KMeans": (
        lambda: gm.insight.KMeans(3, seed=0).fit(_xty()[0]),
        lambda o: o.predict(_xty()[0][:5]),
    ),
    "MiniBatchKMeans": (
        lambda: gm.insight.MiniBatchKMeans(3, seed=0, batch_size=100).fit(_xty()[0]),
        lambda o: o.predict(_xty()[0][:5]),
    ),
    "StandardScaler": (
        lambda: gm.insight.StandardScaler().fit(_xty()[0]),
        lambda o: o.transform(_xty()[0][:5]),
    ),
    "CellUplift": (
        lambda: CellUplift().fit(np.abs(_xty()[0][:, :1]).astype(np.int64) % 3, *_xty()[1:]),
        lambda o: o.predict(np.array([[0], [1]])),
    ),
    "TLearner": (
        lambda: TLearner(_Ridge(), n_folds=1).fit(*_xty()),
        lambda o: o.predict(_xty()[0][:5]),
    ),
    "UpliftForest": (
        lambda: UpliftForest(n_estimators=3, min_samples_leaf=20, seed=1).fit(*_xty()),
        lambda o: o.predict(_xty()[0][:5]),
    ),
    "Planner": (_planner, lambda o: o.allocate(start_day=0).tasks.shape),
    "Problem": (_problem, lambda o: o.n_users),
    "Solution": (lambda: gm.allocate.solve(_problem()), lambda o: o.assignment.shape),
    "FrequencyPlan": (_frequency_plan, lambda o: o.assignment.shape),
    "ResponseModel": (
        lambda: gm.touchpoint.ResponseModel().fit(_response_log()),
        lambda o: o.curves([0, 1, 2]).incremental.shape,
    ),
    "ResponseModel+height": (
        lambda: gm.touchpoint.ResponseModel().fit(
            _response_log().assign(x=np.arange(4000) % 3 * 1.0), covariates=["x"]
        ),
        lambda o: o.height(pd.DataFrame({"x": [0.0, 2.0]})).shape,
    ),
    "BudgetPacer": (_pacer, lambda o: o.choose(np.zeros(4))),
    "SessionPolicy": (_session_policy, lambda o: o.begin(10)),
    **{
        c: (functools.partial(_policy, getattr(gm.realtime, c)), lambda o: o.choose(np.zeros(3)))
        for c in POLICIES
    },
}


@functools.cache
def fitted(name: str) -> Any:
    """The fitted instance ``name`` (built once per process)."""
    return CASES[name][0]()


def tree_paths(v: Any, first: int | None = None, at: tuple = ()) -> list[tuple]:
    """Every path (dict keys and list indices) into the tree ``v`` of dicts and lists, the root
    ``()`` included; ``first``: only the first elements of each list (they stand for the rest)."""
    out = [at]
    if isinstance(v, dict):
        for k, x in v.items():
            out += tree_paths(x, first, (*at, k))
    elif isinstance(v, list):
        for i, x in enumerate(v[:first]):
            out += tree_paths(x, first, (*at, i))
    return out


# ---- pickle streams whose numpy parts load through numpy's checked constructors -----------------


def _array(dtype: str, shape: tuple, fortran: bool, data: bytes) -> np.ndarray:
    """An array rebuilt from its dtype string, shape, order and bytes by numpy's public
    constructors, which check all four against each other."""
    a = np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape, order="F" if fortran else "C")
    return a.copy(order="K")  # writeable, like an unpickled array


def _scalar(dtype: str, data: bytes) -> np.generic:
    return np.frombuffer(data, dtype=np.dtype(dtype))[0]


class _CheckedPickler(pickle.Pickler):
    """Writes numpy arrays, scalars and dtypes (without objects or fields) as calls of
    ``_array``/``_scalar``/``np.dtype`` on plain values instead of numpy's own pickling, whose
    loading trusts its input: in numpy 2.4 one changed byte of an ordinary array's pickle crashes
    the interpreter (a ``None`` of the dtype's state tuple made another opcode gives a 6-item
    tuple, for which ``dtype.__setstate__`` dereferences a NULL ``names``; ``'f8'`` made ``'M8'``
    a datetime dtype whose state has no metadata, dereferenced too; ``'i8'`` made ``'O8'`` an
    object array whose raw integers are read as pointers). Everything else is pickled as usual,
    so the stream's growthmachine parts are the object's real pickle."""

    def reducer_override(self, obj):
        if isinstance(obj, np.dtype) and not obj.hasobject and obj.fields is None:
            return np.dtype, (obj.str,)
        if type(obj) is np.ndarray and not obj.dtype.hasobject and obj.dtype.fields is None:
            fortran = bool(obj.flags.f_contiguous and not obj.flags.c_contiguous)
            order = "F" if fortran else "C"
            return _array, (obj.dtype.str, obj.shape, fortran, obj.tobytes(order=order))
        if isinstance(obj, np.generic) and not obj.dtype.hasobject and obj.dtype.fields is None:
            return _scalar, (obj.dtype.str, obj.tobytes())
        return NotImplemented


def checked_dumps(obj: Any) -> bytes:
    """``pickle.dumps(obj)`` with numpy's parts written by :class:`_CheckedPickler`."""
    f = io.BytesIO()
    _CheckedPickler(f, protocol=pickle.DEFAULT_PROTOCOL).dump(obj)
    return f.getvalue()
