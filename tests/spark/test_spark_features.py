"""gm.spark.features equals gm.insight.features row for row (issue 13), and bad input fails with
errors naming the column before the features pass (before any job where the schema suffices)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from spark_testing import to_spark

import growthmachine as gm
from growthmachine.spark import _features

SPARK_TYPES = {
    "user_id": "bigint",
    "is_prospect": "boolean",
    "n_transactions": "bigint",
    "n_categories": "bigint",
    "r_score": "tinyint",
    "f_score": "tinyint",
    "m_score": "tinyint",
    "rfm_score": "smallint",
}


def assert_same(got_df, expected: pd.DataFrame):
    """Same columns in the same order, Spark types of the in-process dtypes, same values."""
    assert got_df.columns == list(expected.columns)
    for f in got_df.schema.fields:
        assert f.dataType.simpleString() == SPARK_TYPES.get(f.name, "double"), f.name
    got = got_df.toArrow().to_pandas().sort_values("user_id", kind="stable").reset_index(drop=True)
    assert len(got) == len(expected)
    assert got["user_id"].is_unique
    for c in expected.columns:
        a, b = got[c].to_numpy(), expected[c].to_numpy()
        if b.dtype.kind == "f":
            np.testing.assert_array_equal(a, b, err_msg=c)  # exact, NaN where NaN
        else:
            assert a.dtype.kind == b.dtype.kind or b.dtype == np.uint8, (c, a.dtype, b.dtype)
            np.testing.assert_array_equal(a.astype(np.int64), b.astype(np.int64), err_msg=c)


def test_features_equal_in_process_on_a_world(spark, world):
    tx = world.transactions
    expected = gm.insight.features(tx, category="category")
    assert expected["is_prospect"].sum() == 0 and expected["r_score"].nunique() == 5
    sdf = to_spark(spark, tx, num_partitions=3)  # every user's rows start spread out
    got = gm.spark.features(sdf, category="category", num_partitions=4)
    assert_same(got, expected)
    # the users really are spread over the partitions of the features pass
    parts = got.select(F.spark_partition_id().alias("p")).distinct().count()
    assert parts == 4


def test_features_with_as_of_and_trend_window(spark, world):
    tx = world.transactions[["user_id", "day", "amount"]]
    as_of = int(tx["day"].max()) - 120  # drops rows, and users whose every row is later
    expected = gm.insight.features(tx, as_of, trend_window=30)
    assert len(expected) < tx["user_id"].nunique()
    got = gm.spark.features(to_spark(spark, tx, 2), as_of, trend_window=30, num_partitions=3)
    assert_same(got, expected)


def test_features_of_a_date_column_with_renamed_columns(spark, world):
    tx = world.transactions.iloc[:5000]
    dates = pd.Timestamp("2024-01-01") + pd.to_timedelta(tx["day"], unit="D")
    frame = pd.DataFrame(
        {"uid": tx["user_id"].astype(np.int32), "when": dates.dt.date, "spend": tx["amount"]}
    )
    expected = gm.insight.features(
        {"user_id": tx["user_id"], "day": dates.to_numpy(), "amount": tx["amount"]},
        pd.Timestamp("2024-10-01"),
    )
    got = gm.spark.features(
        to_spark(spark, frame), pd.Timestamp("2024-10-01"), user="uid", time="when", amount="spend"
    )
    assert dict(got.dtypes)["user_id"] == "bigint"
    assert_same(got, expected)


def test_quintile_thresholds_stay_exact_when_the_first_guesses_miss(spark, world, monkeypatch):
    # Guesses on the wrong side of every rank: the brackets must widen and still select exactly.
    monkeypatch.setattr(_features, "_GUESS_MARGIN", -0.1)
    tx = world.transactions.iloc[:8000]
    expected = gm.insight.features(tx)
    assert_same(gm.spark.features(to_spark(spark, tx), num_partitions=2), expected)


# -- bad input --------------------------------------------------------------------------------


def one_aggregation(sdf, count_jobs) -> list[int]:
    """The jobs one global aggregation of ``sdf`` takes (2 under adaptive execution: the
    shuffle-map stage and the final stage)."""
    with count_jobs() as jobs:
        sdf.agg(F.count(F.lit(1))).collect()
    return jobs


@pytest.fixture(scope="module")
def small(spark):
    return pd.DataFrame(
        {
            "user_id": np.array([1, 1, 2, 3], dtype=np.int64),
            "day": np.array([3, 5, 4, 9], dtype=np.int32),
            "amount": [10.0, 5.0, 7.5, 1.0],
            "category": ["a", "b", "a", "c"],
        }
    )


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"amount": "spend"}, ValueError, r"transactions: unknown column 'spend'"),
        ({"category": "cat"}, ValueError, r"transactions: unknown column 'cat'"),
        ({"user": "category"}, TypeError, r"transactions\['category'\]: must be an integer"),
        (
            {"time": "amount", "amount": "day"},
            TypeError,
            r"transactions\['amount'\]: must be integer day",
        ),
        ({"amount": "category"}, TypeError, r"transactions\['category'\]: must be numeric"),
        ({"trend_window": 0}, ValueError, r"trend_window: must be >= 1"),
        ({"num_partitions": 0}, ValueError, r"num_partitions: must be >= 1"),
        ({"as_of": "soon"}, TypeError, r"as_of: must be an int"),
    ],
)
def test_schema_errors_name_the_column_before_any_job(spark, small, count_jobs, kwargs, exc, match):
    sdf = to_spark(spark, small)
    with count_jobs() as jobs, pytest.raises(exc, match=match):
        gm.spark.features(sdf, **kwargs)
    assert jobs == [0]


def test_a_non_spark_table_is_a_type_error(small):
    with pytest.raises(TypeError, match="transactions: expected a Spark DataFrame"):
        gm.spark.features(small)


@pytest.mark.parametrize(
    "column, value, match",
    [
        ("amount", np.nan, r"transactions\['amount'\]: must be finite, found 1 NaN"),
        ("amount", np.inf, r"transactions\['amount'\]: must be finite, found 1 NaN or inf"),
        ("amount", -1.0, r"transactions\['amount'\]: must be >= 0, found 1 negative"),
        ("amount", None, r"transactions\['amount'\]: has 1 missing \(null\) values"),
        ("user_id", None, r"transactions\['user_id'\]: has 1 missing \(null\) values"),
        ("day", None, r"transactions\['day'\]: has 1 missing \(null\) values"),
        ("day", 2**40, r"transactions\['day'\]: day numbers must fit in int32"),
        ("category", None, r"transactions\['category'\]: has 1 missing \(null\) values"),
    ],
)
def test_bad_values_name_the_column_after_one_aggregation(
    spark, small, count_jobs, column, value, match
):
    frame = small.copy()
    if column == "day" and value is not None:
        frame["day"] = frame["day"].astype(np.int64)
    frame[column] = frame[column].astype(object if value is None else frame[column].dtype)
    frame.loc[2, column] = value
    if column in ("user_id", "day") and value is None:
        frame[column] = frame[column].astype("Int64")
    sdf = to_spark(spark, frame)
    with count_jobs() as jobs, pytest.raises(ValueError, match=match):
        gm.spark.features(sdf, category="category")
    assert jobs == one_aggregation(sdf, count_jobs)  # the check only, no features pass


def test_an_empty_log_is_an_error_naming_it(spark, small, count_jobs):
    sdf = to_spark(spark, small).limit(0)
    with count_jobs() as jobs, pytest.raises(ValueError, match=r"transactions: is empty"):
        gm.spark.features(sdf)
    assert jobs == one_aggregation(sdf, count_jobs)
