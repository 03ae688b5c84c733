"""The input conventions of growthmachine._convert."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from growthmachine import _convert as cv


@pytest.mark.parametrize(
    "values",
    [
        [1, 2, 3],
        np.array([1, 2, 3], dtype=np.int8),
        np.array([1, 2, 3], dtype=np.uint16),
        np.array([1, 2, 3], dtype=np.float32),
        pd.Series([1, 2, 3]),
        pl.Series([1, 2, 3]),
        pa.array([1, 2, 3]),
        pa.chunked_array([[1], [2, 3]]),
    ],
)
def test_as_array_accepts_array_likes_and_converts_once(values):
    out = cv.as_array(values, "x")
    assert out.dtype == np.float64 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])
    ids = cv.as_array(values, "ids", np.int64)
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [1, 2, 3])


def test_as_array_passes_through_without_copy():
    x = np.arange(10, dtype=np.float64)
    assert cv.as_array(x, "x") is x
    strided = np.arange(20, dtype=np.float64)[::2]
    out = cv.as_array(strided, "x")
    assert out.flags.c_contiguous and not np.shares_memory(out, strided)
    np.testing.assert_array_equal(out, strided)


@pytest.mark.parametrize(
    "values, kwargs, exc, message",
    [
        ([1.0, np.nan], {}, ValueError, "x: must be finite, found nan at flat position 1"),
        ([1.0, np.inf], {}, ValueError, "x: must be finite, found inf"),
        ([1.0, -2.0], {"nonnegative": True}, ValueError, "x: must be >= 0"),
        ([], {}, ValueError, "x: is empty"),
        (["a", "b"], {}, TypeError, "x: must be numeric"),
        ("abc", {}, TypeError, "x: expected an array-like"),
        (None, {}, TypeError, "x: expected an array-like"),
        (np.zeros((2, 2)), {}, ValueError, "x: expected a 1-d array, got shape (2, 2)"),
        (np.zeros((2, 3)), {"ndim": 2, "shape": (None, 4)}, ValueError, "expected shape (n, 4)"),
        (3.0, {}, TypeError, "x: expected a 1-d array, got a scalar"),
        (pd.Series([1, None], dtype="Int64"), {}, ValueError, "x: has missing values"),
        (pa.array([1, None]), {}, ValueError, "x: has 1 missing (null) values"),
    ],
)
def test_as_array_errors_name_the_argument(values, kwargs, exc, message):
    with pytest.raises(exc) as e:
        cv.as_array(values, "x", **kwargs)
    assert message in str(e.value)


def test_integer_targets_reject_fractional_and_negative_unsigned():
    np.testing.assert_array_equal(cv.as_array([1.0, 2.0], "ids", np.int64), [1, 2])
    with pytest.raises(ValueError, match="ids: must hold integers"):
        cv.as_array([1.5, 2.0], "ids", np.int64)
    with pytest.raises(ValueError, match="ids: must be finite integers"):
        cv.as_array([np.nan], "ids", np.int64)
    with pytest.raises(ValueError, match="ids: must be >= 0"):
        cv.as_array([-1, 2], "ids", np.uint32)


def test_float32_target_checks_finiteness():
    with pytest.raises(ValueError, match="must be finite"):
        cv.as_array(np.array([1, np.nan], dtype=np.float32), "x", np.float32)


TABLE = {"user": [3, 1, 2], "amount": [1.5, 2.5, 3.5]}


@pytest.mark.parametrize(
    "table",
    [pd.DataFrame(TABLE), pl.DataFrame(TABLE), pa.table(TABLE), TABLE],
    ids=["pandas", "polars", "arrow", "dict"],
)
def test_tables_of_every_kind(table):
    assert cv.is_table(table)
    assert cv.columns(table, "t") == ["user", "amount"]
    assert cv.n_rows(table, "t") == 3
    np.testing.assert_array_equal(cv.column(table, "t", "user"), [3, 1, 2])
    with pytest.raises(ValueError, match=r"t: unknown column 'usr' \(available: user, amount\)"):
        cv.column(table, "t", "usr")


def test_not_a_table():
    assert not cv.is_table([1, 2])
    with pytest.raises(TypeError, match="transactions: expected a table"):
        cv.columns([1, 2], "transactions")


def test_as_codes():
    codes, cats = cv.as_codes(pd.Series(["b", "a", "b"]), "cat")
    np.testing.assert_array_equal(codes, [1, 0, 1])
    assert list(cats) == ["a", "b"] and codes.dtype == np.int32
    with pytest.raises(ValueError, match="cat: has missing values"):
        cv.as_codes(pd.Series(["a", None]), "cat")


@pytest.mark.parametrize(
    "output, kind", [("pandas", pd.DataFrame), ("polars", pl.DataFrame), ("arrow", pa.Table)]
)
def test_to_output(output, kind):
    out = cv.to_output({"a": np.arange(3), "b": np.ones(3)}, output)
    assert isinstance(out, kind)
    assert cv.columns(out, "out") == ["a", "b"]
    with pytest.raises(
        ValueError, match="output: must be one of 'pandas', 'polars', 'arrow', got 'csv'"
    ):
        cv.to_output({"a": [1]}, "csv")


def test_scalar_checks():
    assert cv.check_int(np.int32(4), "n", minimum=1) == 4
    with pytest.raises(TypeError, match="n: must be an int, got bool"):
        cv.check_int(True, "n")
    with pytest.raises(ValueError, match="n: must be >= 1, got 0"):
        cv.check_int(0, "n", minimum=1)
    with pytest.raises(ValueError, match="tol: must be > 0"):
        cv.check_number(0.0, "tol", minimum=0, strict_min=True)
    with pytest.raises(ValueError, match="tol: must be finite"):
        cv.check_number(float("nan"), "tol")
    with pytest.raises(ValueError, match="x: has length 2, expected 3 \\(the length of a\\)"):
        cv.check_same_length({"a": np.zeros(3), "x": np.zeros(2)})


def test_polars_dataframe_reads_as_a_2d_array_and_nulls_are_refused():
    frame = pl.DataFrame({"a": [1.0, 2.0], "b": [3, 4]})
    np.testing.assert_array_equal(cv.as_array(frame, "X", ndim=2), [[1.0, 3.0], [2.0, 4.0]])
    with pytest.raises(ValueError, match=r"^X: has missing \(null\) values"):
        cv.as_array(pl.DataFrame({"a": [1.0, None], "b": [3, 4]}), "X", ndim=2)
    with pytest.raises(ValueError, match=r"^x: has missing \(null\) values"):
        cv.as_array(pl.Series([1.0, None]), "x")
