"""gm.spark.score equals the in-process predictions (value models, uplift models, policies), and
bad input or an unfitted model fails with an error naming it before any job."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from pyspark.errors import PythonException
from pyspark.sql import functions as F
from spark_testing import to_spark

import growthmachine as gm
from growthmachine.planning.uplift import CellUplift, UpliftForest
from growthmachine.realtime import EpsilonGreedy, LinTS, LinUCB


@pytest.fixture(scope="module")
def feats(world):
    return gm.insight.features(world.transactions)


@pytest.fixture(scope="module")
def value_models(feats):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bg = gm.insight.BetaGeo().fit(feats)
        buyers = feats[feats["frequency"] > 0]
        gg = gm.insight.GammaGamma().fit(buyers)
    return bg, gg


def scored(sdf, key="user_id", col="score") -> np.ndarray:
    got = sdf.select(key, col).toArrow().to_pandas().sort_values(key, kind="stable")
    return np.stack(got[col].to_numpy()) if got[col].dtype == object else got[col].to_numpy()


def test_value_models_equal_in_process(spark, feats, value_models):
    bg, gg = value_models
    sdf = to_spark(spark, feats[["user_id", "frequency", "recency", "T", "monetary"]], 3)
    np.testing.assert_array_equal(
        scored(gm.spark.score(sdf, bg, t=30.0)), bg.expected_purchases(30.0, feats)
    )
    np.testing.assert_array_equal(
        scored(gm.spark.score(sdf, bg, method="p_alive", output_col="alive"), col="alive"),
        bg.p_alive(feats),
    )
    np.testing.assert_array_equal(scored(gm.spark.score(sdf, gg)), gg.expected_spend(feats))


def test_columns_rename_the_inputs_and_other_columns_pass_through(spark, feats, value_models):
    bg, _ = value_models
    frame = feats[["user_id", "frequency", "recency", "T"]].rename(
        columns={"frequency": "x", "recency": "tx", "T": "age"}
    )
    out = gm.spark.score(to_spark(spark, frame, 2), bg, columns=["x", "tx", "age"], t=7)
    assert out.columns == ["user_id", "x", "tx", "age", "score"]
    assert dict(out.dtypes)["score"] == "double"
    np.testing.assert_array_equal(scored(out), bg.expected_purchases(7, feats))


def uplift_data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = rng.integers(0, 3, n)
    y = X[:, 0] + (t == 1) * (0.5 + X[:, 1]) + (t == 2) * 0.3 + rng.normal(size=n)
    return X, t, y


def test_uplift_models_equal_in_process(spark):
    X, t, y = uplift_data()
    forest = UpliftForest(n_estimators=20, seed=1).fit(X, t, y)  # 2 treatments: (n, 2)
    frame = pd.DataFrame({"id": np.arange(len(X)), "a": X[:, 0], "b": X[:, 1], "c": X[:, 2]})
    sdf = to_spark(spark, frame, 3)
    out = gm.spark.score(sdf, forest, columns=["a", "b", "c"], output_col="uplift")
    assert dict(out.dtypes)["uplift"] == "array<double>"
    np.testing.assert_array_equal(scored(out, "id", "uplift"), forest.predict(X))

    groups = np.column_stack([(X[:, 0] > 0).astype(int), (X[:, 1] > 0).astype(int)])
    cell = CellUplift(levels=["g1", "g2"]).fit(groups, (t > 0).astype(int), y)  # 1 treatment
    cells = to_spark(
        spark, pd.DataFrame({"id": np.arange(len(X)), "g1": groups[:, 0], "g2": groups[:, 1]}), 2
    )
    got = scored(gm.spark.score(cells, cell), "id")  # default columns: the fitted levels
    np.testing.assert_array_equal(got, cell.predict(groups))


def test_policies_equal_in_process(spark):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 4))
    pol = LinUCB(n_actions=3, n_features=4, alpha=0.5)
    pol.update_batch(X[:500], rng.integers(0, 3, 500), rng.normal(size=500))
    frame = pd.DataFrame({"id": np.arange(len(X)), **{f"x{j}": X[:, j] for j in range(4)}})
    sdf = to_spark(spark, frame, 3)
    cols = [f"x{j}" for j in range(4)]
    out = gm.spark.score(sdf, pol, columns=cols, output_col="action")
    assert dict(out.dtypes)["action"] == "bigint"
    expected = pol.choose_batch(X)
    assert len(np.unique(expected)) > 1
    np.testing.assert_array_equal(scored(out, "id", "action"), expected)
    np.testing.assert_array_equal(
        scored(gm.spark.score(sdf, pol, columns=cols, method="scores"), "id"), pol.scores_batch(X)
    )
    eg = EpsilonGreedy(n_actions=3, n_features=4, epsilon=0.2)
    eg.update_batch(X[:500], rng.integers(0, 3, 500), rng.normal(size=500))
    np.testing.assert_array_equal(
        scored(gm.spark.score(sdf, eg, columns=cols, method="probabilities"), "id"),
        eg.probabilities(X),
    )


# -- errors before any job ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(spark):
    frame = pd.DataFrame(
        {
            "frequency": [1.0, 0.0, 3.0],
            "recency": [2.0, 0.0, 5.0],
            "T": [9.0, 4.0, 8.0],
            "label": ["a", "b", "c"],
        }
    )
    return to_spark(spark, frame)


@pytest.mark.parametrize(
    "model, kwargs, exc, match",
    [
        (gm.insight.BetaGeo(), {"t": 1}, gm.StateError, "BetaGeo is not fitted"),
        (UpliftForest(), {"columns": ["frequency"]}, ValueError, "UpliftForest: not fitted"),
        (
            "fitted",
            {"t": 1, "columns": ["frequency", "recency", "Tx"]},
            ValueError,
            r"df: unknown column 'Tx'",
        ),
        (
            "fitted",
            {"t": 1, "columns": ["frequency", "recency", "label"]},
            TypeError,
            r"df\['label'\]: must be numeric",
        ),
        (
            "fitted",
            {"t": 1, "columns": ["frequency", "recency"]},
            ValueError,
            r"columns: the model takes 3 input columns, got 2",
        ),
        ("fitted", {}, TypeError, r"t: BetaGeo.expected_purchases needs t="),
        ("fitted", {"t": 1, "output_col": "T"}, ValueError, r"output_col: df already has"),
        ("fitted", {"method": "predict_spend"}, ValueError, r"method: BetaGeo scores with"),
        ("fitted", {"t": 1, "alpha": 2}, TypeError, r"alpha: not an argument"),
        (
            LinTS(n_actions=2, n_features=1),
            {"columns": ["frequency"]},
            ValueError,
            r"method: LinTS draws its randomness",
        ),
        (LinUCB(n_actions=2, n_features=2), {}, TypeError, r"columns: required"),
        ("a string", {}, TypeError, r"model: expected a fitted growthmachine"),
    ],
)
def test_errors_name_the_argument_before_any_job(
    small, value_models, count_jobs, model, kwargs, exc, match
):
    if model == "fitted":
        model = value_models[0]
    with count_jobs() as jobs, pytest.raises(exc, match=match):
        gm.spark.score(small, model, **kwargs)
    assert jobs == [0]


@pytest.mark.parametrize(
    "value, match",
    [
        (np.nan, r"df\['recency'\]: must be finite, found 1 NaN"),
        (None, r"df\['recency'\]: has 1 missing \(null\) values"),
    ],
)
def test_bad_values_name_the_column(spark, value_models, value, match):
    frame = pd.DataFrame({"frequency": [1.0, 0.0], "recency": [2.0, 0.0], "T": [9.0, 4.0]})
    frame["recency"] = frame["recency"].astype(object)
    frame.loc[1, "recency"] = value
    frame["recency"] = frame["recency"].astype(float) if value is not None else frame["recency"]
    sdf = to_spark(spark, frame)
    with pytest.raises(ValueError, match=match):
        gm.spark.score(sdf, value_models[0], t=1)
    # without the checking pass the task raises the same message when an action runs
    lazy = gm.spark.score(sdf, value_models[0], t=1, check=False)
    with pytest.raises(PythonException, match=r"df\['recency'\]"):
        lazy.collect()


def test_an_empty_dataframe_is_an_error(small, value_models):
    with pytest.raises(ValueError, match=r"df: is empty"):
        gm.spark.score(small.where(F.lit(False)), value_models[0], t=1)
