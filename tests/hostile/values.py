"""The table of bad values: each valid argument gives its hostile variants, by kind.

A variant is ``(tag, value, expect)``:

- ``"same"``: the same data in another container or layout (list, pandas, polars, pyarrow,
  non-contiguous, read-only, Fortran order); the call must succeed with the valid call's result;
- ``"error"``: invalid (NaN, inf, wrong type or dtype, wrong ndim, missing values, bool for an
  int, a string for a number, 2**64); the call must raise ``ValueError``/``TypeError``/
  ``MemoryError`` naming the argument;
- ``"either"``: may be valid or not (0, -1, empty, one row, duplicates, huge sizes, wrong length
  when nothing else fixes it); the call must raise as above or succeed with a sane result.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

Variant = tuple[str, Any, str]

HUGE = 2**40  # a size no machine holds (x 8 bytes = 8 TiB)


def kind_of(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "real"
    if isinstance(v, str):
        return "str"
    if isinstance(v, np.ndarray):
        return "array"
    if isinstance(v, pd.DataFrame):
        return "frame"
    if isinstance(v, (list, tuple)) and v and all(kind_of(x) in ("int", "real") for x in v):
        return "numbers"
    if v is None or isinstance(v, (dict, list, tuple, type)) or callable(v):
        return "other"
    return "object"


def scalar_variants(v: Any, kind: str, default: Any = None) -> Iterator[Variant]:
    if kind == "bool":
        yield "str", "x", "error"
        yield "int-for-bool", 2, "error"
        yield "none", None, "either"
        return
    if kind in ("int", "real"):
        yield "nan", math.nan, "error"
        yield "inf", math.inf, "either" if default == math.inf else "error"
        yield "-inf", -math.inf, "error"
        yield "str", "x", "error"
        yield "bool", True, "error"
        yield "-1", type(v)(-1), "either"
        yield "0", type(v)(0), "either"
        yield "huge-size", type(v)(HUGE), "either"
        yield "numpy", (np.int64 if kind == "int" else np.float64)(v), "same"
        yield "list", [v], "error"
    if kind == "int":
        yield "1.5", 1.5, "error"
        yield "2**64", 2**64, "error"
        yield "-2**63-1", -(2**63) - 1, "error"
    if kind == "real":
        yield "1e308", 1e308, "either"
        yield "int", int(v) if float(v).is_integer() else None, "same"
    if kind == "str":
        yield "unknown", "no-such-value", "either"
        yield "int-for-str", 1, "either"
        yield "none", None, "either"


def _with(a: np.ndarray, value: Any, at: int = 0) -> np.ndarray:
    b = a.copy()
    b.reshape(-1)[at] = value
    return b


def array_variants(a: np.ndarray, *, shared_length: bool) -> Iterator[Variant]:
    """Variants of a valid array; ``shared_length``: another argument fixes its length."""
    n = len(a)
    if a.dtype.kind not in "biuf":  # labels (strings): containers, missing values, sizes
        yield "list", a.tolist(), "same"
        if a.ndim == 1:
            yield "pandas", pd.Series(a), "same"
            yield "polars", pl.Series(a.tolist()), "same"
            yield "arrow", pa.array(a.tolist()), "same"
            obj = a.astype(object)
            obj[0] = None
            yield "none-entry", obj, "error"
            yield "arrow-null", pa.array(obj.tolist()), "error"
        yield "empty", a[:0].copy(), "either"
        yield "wrong-length", a[:-1].copy(), "error" if shared_length and n > 1 else "either"
        return
    yield "list", a.tolist(), "same"
    yield "noncontiguous", np.repeat(a, 2, axis=0)[::2], "same"
    ro = a.copy()
    ro.flags.writeable = False
    yield "readonly", ro, "same"
    if a.ndim == 1:
        yield "pandas", pd.Series(a), "same"
        yield "polars", pl.Series(a), "same"
        yield "arrow", pa.array(a), "same"
    if a.ndim == 2:
        yield "fortran", np.asfortranarray(a), "same"
        yield "pandas", pd.DataFrame(a), "same"
        yield "polars", pl.DataFrame(a), "same"
        yield "wrong-width", a[:, :-1].copy(), "either"
        yield "1-d", a[:, 0].copy(), "error"
    else:
        yield "2-d", a.reshape(-1, 1).copy(), "error"
    # a scalar where an array goes is often broadcast by design (one action for every user)
    yield "scalar", a.reshape(-1)[0].item() if a.size else 0, "either"
    yield "str-dtype", a.astype(str), "error"
    if not a.size:
        yield "one-row", a[:1].copy(), "either"
        return
    obj = a.astype(object)
    obj.reshape(-1)[0] = None
    yield "object-none", obj, "error"
    if a.dtype.kind == "f":
        yield "nan", _with(a, np.nan), "error"
        yield "inf", _with(a, np.inf), "error"
        yield "huge", _with(a, 1e15), "either"
        if a.ndim == 1:
            yield (
                "pandas-NA",
                pd.Series(a, dtype="Float64").mask([True] + [False] * (n - 1)),
                "error",
            )
            yield "polars-null", pl.Series(a).scatter(0, None), "error"
            yield "arrow-null", pa.array(a, mask=np.arange(n) == 0), "error"
    if a.dtype.kind in "iu":
        yield "1.5", _with(a.astype(float), 1.5), "error"
        yield "int-as-float", a.astype(float), "same"
        yield "huge", _with(a, np.iinfo(a.dtype).max), "either"
        yield "duplicates", _with(a, a.reshape(-1)[-1]), "either"
        if a.ndim == 1:
            yield "pandas-NA", pd.Series(a, dtype="Int64").mask([True] + [False] * (n - 1)), "error"
            yield "arrow-null", pa.array(a, mask=np.arange(n) == 0), "error"
    if a.dtype.kind in "if":
        yield "negative", _with(a, -1), "either"
    yield "empty", a[:0].copy(), "either"
    yield "one-row", a[:1].copy(), "either"
    yield "wrong-length", a[:-1].copy(), "error" if shared_length and n > 1 else "either"


def _arrow(s: pd.Series) -> pa.Array:
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "biuf":
        return pa.array(s.to_numpy(), from_pandas=False)  # NaN stays NaN, not null
    if s.dtype == object:
        return pa.array(s.tolist())
    return pa.array(s)


def _set(f: pd.DataFrame, c: Any, col: pd.Series) -> pd.DataFrame:
    g = f.copy()
    g[c] = col
    return g


def frame_variants(f: pd.DataFrame, used: tuple[str, ...] | None = None) -> Iterator[Variant]:
    for tag, convert in (
        ("polars", lambda: pl.from_pandas(f, nan_to_null=False)),
        ("arrow", lambda: pa.table({c: _arrow(f[c]) for c in f.columns})),
    ):
        try:
            yield tag, convert(), "same"
        except (TypeError, ValueError, pa.ArrowException, pl.exceptions.PolarsError):
            pass  # a column neither library holds (e.g. mixed objects): nothing to compare
    yield "dict", {c: f[c].to_numpy() for c in f.columns}, "same"
    if not len(f):
        return
    # a column the call reads must be valid; another may hold anything (extra columns of a log)
    bad = "either" if used is None else "error"
    for c in f.columns if used is None else used:
        yield f"missing-{c}", f.drop(columns=[c]), "either"
        col = f[c]
        first = col.index == col.index[0]
        if col.dtype.kind == "f":
            yield f"nan-{c}", _set(f, c, col.mask(first, np.nan)), bad
            yield f"inf-{c}", _set(f, c, col.mask(first, np.inf)), bad
        if col.dtype.kind in "iuf":
            na = col.astype("Float64" if col.dtype.kind == "f" else "Int64")
            yield f"pandas-NA-{c}", _set(f, c, na.mask(first)), bad
            yield f"str-{c}", _set(f, c, col.astype(str)), bad
    yield "empty", f.iloc[:0].copy(), "either"
    yield "one-row", f.iloc[:1].copy(), "either"
    yield "duplicates", pd.concat([f, f], ignore_index=True), "either"
    yield "not-a-table", "x", "error"


def numbers_variants(v: list | tuple) -> Iterator[Variant]:
    yield "array", np.asarray(v), "same"
    yield "nan-entry", type(v)([math.nan, *v[1:]]), "error"
    yield "str-entry", type(v)(["x", *v[1:]]), "error"
    yield "empty", type(v)(), "either"
    yield "short", type(v)(v[:-1]), "either"


def object_variants(v: Any) -> Iterator[Variant]:
    yield "str", "x", "error"
    yield "int", 3, "error"


def variants(
    v: Any, *, shared_length: bool, default: Any = None, used: tuple[str, ...] | None = None
) -> Iterator[Variant]:
    """``used``: the columns of a table the call reads (default: all)."""
    k = kind_of(v)
    if k == "array":
        yield from array_variants(v, shared_length=shared_length)
    elif k == "frame":
        yield from frame_variants(v, used)
    elif k == "numbers":
        yield from numbers_variants(v)
    elif k == "object":
        yield from object_variants(v)
    elif isinstance(v, dict) and v and all(isinstance(x, str) for x in v):
        for key, x in v.items():  # a mapping of arrays or numbers: each entry bad in turn
            if kind_of(x) in ("array", "numbers", "int", "real"):
                for tag, bad, expect in variants(x, shared_length=shared_length):
                    yield f"{key}:{tag}", {**v, key: bad}, expect
    elif k in ("int", "real", "bool", "str"):
        for t in scalar_variants(v, k, default):
            if t[1] is not None or t[0] == "none":
                yield t
