"""``score`` on Spark: a fitted model's in-process method applied to a Spark DataFrame, one Arrow
batch at a time.

The model crosses to the executors by pickle: its bytes are captured in the task function's
closure (Spark ships the closure with the job; classic PySpark broadcasts a closure larger than
``spark.broadcast.UDFCompressionThreshold``, 1 MiB by default), and each task unpickles it once. Rust-backed models pickle through their versioned state, so what runs on the
executors is the fitted model itself, and every row gets exactly what the in-process method gives
(the methods below are row-wise: a row's result does not depend on the other rows of the call).

Dispatch (model type -> method called per batch, default first; input columns; output column):

==================================  ====================================  =====================================  ===========================
model                               ``method``                            input columns (default)                output
==================================  ====================================  =====================================  ===========================
:class:`~growthmachine.insight.     ``"expected_purchases"`` (needs       ``frequency``, ``recency``, ``T``      double
BetaGeo`                            ``t=``: days ahead), ``"p_alive"``
:class:`~growthmachine.insight.     ``"expected_spend"``                  ``frequency``, ``monetary``            double
GammaGamma`
:class:`~growthmachine.planning.    ``"predict"``                         the levels it was fitted on            double (1 treatment),
uplift.CellUplift`                                                        (``levels_``)                          array<double> (T > 1)
other uplift models (``UpliftModel``: ``"predict"``                       ``columns=`` required: the             double (1 treatment),
``UpliftForest``, ``SLearner``,                                           ``n_features_in_`` features, in order  array<double> (T > 1)
``TLearner``, ``XLearner``,
``DRLearner``)
real-time policies (``LinUCB``,     ``"choose"`` (``choose_batch``),      ``columns=`` required: the             bigint (choose),
``LinTS``, ``LogisticTS``,          ``"scores"`` (``scores_batch``),      ``n_features`` context features,       array<double> (scores,
``EpsilonGreedy``)                  ``"probabilities"`` (``n_samples=``)  in order                               probabilities)
==================================  ====================================  =====================================  ===========================

``columns`` may rename the inputs (a list in the method's order, e.g. ``["freq", "rec", "age"]``
for a BetaGeo). Randomised policies (``LinTS``, ``LogisticTS``, ``EpsilonGreedy`` with
``epsilon > 0``) draw row ``i``'s randomness from the position of the row in the call and the
policy's decision counter: scoring batch by batch would reuse the same draws in every batch, so
``"choose"`` and ``"scores"`` are refused for them (``ValueError``) and ``"probabilities"`` is the
way to score them (exact for epsilon-greedy; for the Thompson samplers a Monte Carlo estimate
whose draws depend on the row's position within its batch, so it agrees with in-process only up
to the ``n_samples`` Monte Carlo error). Policies with per-action features
(``n_action_features > 0``) are not supported.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from .. import _convert as cv
from .._core import RealtimePolicy, StateError
from ..insight.value import BetaGeo, GammaGamma
from ..planning.uplift import CellUplift, UpliftModel
from . import _arrow as ar

__all__ = ["score"]

#: ``RealtimePolicy.algo`` of the policies whose decisions are random draws.
_RANDOMISED = ("LinTS", "LogisticTS")


@dataclass(frozen=True)
class _Call:
    """What one batch needs: the method, its inputs and its output type."""

    method: str
    columns: tuple[str, ...]
    kind: str  # "value": f(params, *columns), "matrix": f(X, **params)
    output: T.DataType
    params: tuple[tuple[str, Any], ...]


def _value_call(model, method, methods, defaults, columns, params) -> _Call:
    model._check_fitted()
    if method not in methods:
        raise ValueError(
            f"method: {type(model).__name__} scores with {', '.join(map(repr, methods))}, "
            f"got {method!r}"
        )
    allowed = {"t"} if method == "expected_purchases" else set()
    _check_params(params, allowed, method)
    if method == "expected_purchases":
        if "t" not in params:
            raise TypeError("t: BetaGeo.expected_purchases needs t= (the days ahead)")
        params = {"t": cv.check_number(params["t"], "t", minimum=0.0)}
    cols = _columns(columns, defaults, len(defaults))
    return _Call(method, cols, "value", T.DoubleType(), tuple(params.items()))


def _check_params(params: dict, allowed: set, method: str) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise TypeError(f"{unknown[0]}: not an argument of {method}")


def _columns(columns: Any, defaults: Sequence[str] | None, n: int) -> tuple[str, ...]:
    if columns is None:
        if defaults is None:
            raise TypeError(f"columns: required for this model (a list of the {n} feature columns)")
        return tuple(defaults)
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        raise TypeError(f"columns: must be a list of column names, got {type(columns).__name__}")
    cols = tuple(columns)
    for c in cols:
        if not isinstance(c, str):
            raise TypeError(f"columns: must hold column names (str), got {type(c).__name__}")
    if len(cols) != n:
        raise ValueError(f"columns: the model takes {n} input columns, got {len(cols)}")
    return cols


def _dispatch(model: Any, columns: Any, method: str | None, params: dict) -> _Call:
    """The dispatch table of the module docstring (checks the model is fitted: no job yet)."""
    if isinstance(model, BetaGeo):
        m = method or "expected_purchases"
        return _value_call(
            model,
            m,
            ("expected_purchases", "p_alive"),
            ("frequency", "recency", "T"),
            columns,
            params,
        )
    if isinstance(model, GammaGamma):
        m = method or "expected_spend"
        return _value_call(
            model, m, ("expected_spend",), ("frequency", "monetary"), columns, params
        )
    if isinstance(model, UpliftModel):
        model._check_fitted()
        if (method or "predict") != "predict":
            raise ValueError(f"method: uplift models score with 'predict', got {method!r}")
        _check_params(params, set(), "predict")
        defaults = list(model.levels_) if isinstance(model, CellUplift) else None
        cols = _columns(columns, defaults, int(model.n_features_in_))
        out = T.DoubleType() if model.n_treatments_ == 1 else T.ArrayType(T.DoubleType(), False)
        return _Call("predict", cols, "matrix", out, ())
    if isinstance(model, RealtimePolicy):
        m = method or "choose"
        if m not in ("choose", "scores", "probabilities"):
            raise ValueError(
                f"method: policies score with 'choose', 'scores' or 'probabilities', got {m!r}"
            )
        if model.n_action_features:
            raise ValueError(
                "model: policies with per-action features (n_action_features > 0) are not "
                "supported by growthmachine.spark.score"
            )
        randomised = model.algo in _RANDOMISED or (
            model.algo == "EpsilonGreedy" and model.get_params().get("epsilon", 0.0) > 0
        )
        if randomised and m != "probabilities":
            raise ValueError(
                f"method: {type(model).__name__} draws its randomness from each row's position "
                f"in the call, so {m!r} batch by batch would repeat the same draws in every "
                "batch; use method='probabilities'"
            )
        _check_params(params, {"n_samples"} if m == "probabilities" else set(), m)
        if "n_samples" in params:
            params = {"n_samples": cv.check_int(params["n_samples"], "n_samples", minimum=1)}
        cols = _columns(columns, None, int(model.n_features))
        out = T.LongType() if m == "choose" else T.ArrayType(T.DoubleType(), False)
        name = {"choose": "choose_batch", "scores": "scores_batch"}.get(m, m)
        return _Call(name, cols, "matrix", out, tuple(params.items()))
    raise TypeError(
        "model: expected a fitted growthmachine value model (BetaGeo, GammaGamma), uplift model "
        f"or real-time policy, got {type(model).__name__}"
    )


def score(
    df: DataFrame,
    model: Any,
    *,
    columns: Sequence[str] | None = None,
    output_col: str = "score",
    method: str | None = None,
    check: bool = True,
    **params: Any,
) -> DataFrame:
    """``df`` with one more column, ``output_col``: the model's in-process method on each row
    (the dispatch table of :mod:`growthmachine.spark._score` says which method and columns).

    Parameters
    ----------
    df
        A Spark DataFrame holding the model's input columns (numeric types).
    model
        A fitted :class:`~growthmachine.insight.BetaGeo` or
        :class:`~growthmachine.insight.GammaGamma`, an uplift model of
        :mod:`growthmachine.planning.uplift`, or a :mod:`growthmachine.realtime` policy.
    columns
        The input columns in the method's order (default: the names in the table; required for
        uplift models other than ``CellUplift`` and for policies).
    method
        Which method (default: the first of the table); ``params`` are its other arguments
        (``t=`` for ``expected_purchases``, ``n_samples=`` for ``probabilities``).
    check
        Run one aggregation first so that nulls, NaN or infinite values and an empty ``df``
        raise ``ValueError`` naming the column here, not inside a task (where the same message
        arrives wrapped in Spark's ``PythonException`` when an action runs). ``False`` skips
        that pass over the data.

    An unfitted model, an unknown column or a non-numeric one raise before any job. The result
    is lazy: the scoring runs when an action needs it, batch by batch (re-batched to
    :data:`~growthmachine.spark._arrow.ARROW_BATCH_ROWS` rows for the cores, whatever the
    session's Arrow batch size).
    """
    ar.check_dataframe(df, "df")
    if not isinstance(output_col, str) or not output_col:
        raise TypeError(f"output_col: must be a non-empty str, got {output_col!r}")
    if output_col in df.columns:
        raise ValueError(f"output_col: df already has a column {output_col!r}")
    if not isinstance(check, bool):
        raise TypeError(f"check: must be a bool, got {type(check).__name__}")
    call = _dispatch(model, columns, method, params)
    types = ar.check_columns(df, "df", dict.fromkeys(call.columns, ar.NUMERIC))
    if check:
        ar.check_values(df, "df", types, finite=call.columns)
    try:
        payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, StateError) as e:
        raise TypeError(f"model: cannot be pickled to the executors ({e})") from None
    schema = T.StructType([*df.schema.fields, T.StructField(output_col, call.output, True)])
    run = _score_batches(payload, call, output_col, ar.driver_task_cpus(df.sparkSession))
    return ar.map_in_arrow(df, run, schema)


def _score_batches(payload: bytes, call: _Call, output_col: str, cpus: int):
    """The task function: unpickle the model once, score every (re-batched) table."""

    def run(batches):
        ar.use_task_threads(cpus)
        model = pickle.loads(payload)
        fn = getattr(model, call.method)
        params = dict(call.params)
        for table in ar.rebatch(batches):
            arrays = [ar.numpy_column(table, c, f"df[{c!r}]", np.float64) for c in call.columns]
            if call.kind == "value":
                if call.method == "expected_purchases":
                    out = fn(params["t"], *arrays)
                else:
                    out = fn(*arrays)
            else:
                X = np.empty((table.num_rows, len(arrays)), dtype=np.float64)
                for j, a in enumerate(arrays):
                    X[:, j] = a
                out = fn(X, **params)
            table = table.append_column(output_col, _arrow_output(np.asarray(out), call.output))
            yield from table.to_batches(max_chunksize=ar.ARROW_BATCH_ROWS)

    return run


def _arrow_output(out: np.ndarray, dtype: T.DataType) -> pa.Array:
    if isinstance(dtype, T.ArrayType):
        n, k = out.shape
        values = pa.array(np.ascontiguousarray(out, dtype=np.float64).reshape(-1))
        offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, values)
    if isinstance(dtype, T.LongType):
        return pa.array(out.astype(np.int64, copy=False))
    return pa.array(out.astype(np.float64, copy=False))
