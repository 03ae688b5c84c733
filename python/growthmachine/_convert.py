"""Input conversion and validation shared by every module (the conventions, implemented once).

Arrays
    Anything array-like is accepted: numpy arrays of any numeric dtype (bool, int, uint, float),
    lists, pandas/polars Series, pyarrow arrays. :func:`as_array` converts it **once** to a
    C-contiguous array of the dtype the core needs (float64 for values, int64 for ids, ...): an
    input that already has that dtype and layout is passed through without a copy. Integer targets
    accept floats only when every value is integral. Strings and objects give ``TypeError``.

Tables
    Where a table is expected, a pandas DataFrame, a polars DataFrame, a pyarrow Table or a mapping
    of column name -> array-like are accepted. Columns are read with :func:`column` (no copy where
    the source allows). Unknown column names give ``ValueError`` listing the available columns.

Validation
    Every failure names the argument and what was wrong: ``TypeError`` for a wrong type,
    ``ValueError`` for NaN/inf, negative values where not allowed, shape mismatches, empty input,
    unknown columns or out-of-range parameters.

Outputs
    Tables come back as pandas DataFrames by default; ``output="polars"`` or ``output="arrow"``
    returns a polars DataFrame or a pyarrow Table instead (:func:`to_output`).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from . import _core

Output = Literal["pandas", "polars", "arrow"]
OUTPUTS = ("pandas", "polars", "arrow")

__all__ = [
    "as_array",
    "as_codes",
    "as_pandas",
    "check_choice",
    "check_instance",
    "check_int",
    "check_number",
    "check_same_length",
    "arange",
    "check_fits",
    "zeros",
    "column",
    "columns",
    "is_polars",
    "is_table",
    "n_rows",
    "to_numpy_raw",
    "to_output",
]


def is_polars(x: Any) -> bool:
    """Whether ``x`` is a polars object (checked by module name: polars need not be installed)."""
    return type(x).__module__.split(".")[0] == "polars"


def to_numpy_raw(x: Any, name: str) -> np.ndarray:
    """Array-like -> numpy without choosing a dtype (no copy where possible)."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (pd.Series, pd.Index)):
        if isinstance(x.dtype, pd.CategoricalDtype):
            return np.asarray(x)
        if not isinstance(x.dtype, np.dtype) and x.hasnans:  # nullable extension dtypes
            raise ValueError(f"{name}: has missing values")
        try:
            return x.to_numpy()
        except (TypeError, ValueError) as e:  # e.g. nullable ints holding NA
            raise ValueError(f"{name}: has missing values ({e})") from None
    if isinstance(x, (pa.Array, pa.ChunkedArray)):
        if x.null_count:
            raise ValueError(f"{name}: has {x.null_count} missing (null) values")
        return x.to_numpy(zero_copy_only=False)
    if is_polars(x) and hasattr(x, "to_numpy"):
        # A Series' null_count() is an int, a DataFrame's a one-row frame of per-column counts.
        nulls = getattr(x, "null_count", lambda: 0)()
        if int(np.sum(nulls.to_numpy() if hasattr(nulls, "to_numpy") else nulls)):
            raise ValueError(f"{name}: has missing (null) values")
        return x.to_numpy()
    if isinstance(x, (str, bytes)) or x is None or isinstance(x, Mapping):
        raise TypeError(f"{name}: expected an array-like, got {type(x).__name__}")
    try:
        return np.asarray(x)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{name}: cannot be read as an array ({e})") from None


def as_array(
    x: Any,
    name: str,
    dtype: Any = np.float64,
    *,
    ndim: int = 1,
    allow_empty: bool = False,
    finite: bool = True,
    nonnegative: bool = False,
    shape: tuple[int | None, ...] | None = None,
) -> np.ndarray:
    """Converts ``x`` once to a C-contiguous array of ``dtype`` and validates it.

    ``finite`` rejects NaN/inf (float targets), ``nonnegative`` rejects values < 0, ``shape``
    checks dimensions (``None`` entries match anything), ``allow_empty=False`` rejects size 0.
    """
    dtype = np.dtype(dtype)
    raw = to_numpy_raw(x, name)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{name}: must be numeric, got dtype {raw.dtype}")
    if raw.ndim != ndim:
        if raw.ndim == 0 and ndim == 1:
            raise TypeError(f"{name}: expected a 1-d array, got a scalar")
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {raw.shape}")
    if shape is not None:
        for axis, (got, want) in enumerate(zip(raw.shape, shape, strict=True)):
            if want is not None and got != want:
                raise ValueError(
                    f"{name}: expected shape {_fmt_shape(shape)}, got {raw.shape} (axis {axis})"
                )
    if raw.size == 0 and not allow_empty:
        raise ValueError(f"{name}: is empty")
    if dtype.kind in "iu" and raw.dtype.kind == "f":
        if raw.size and not np.all(np.isfinite(raw)):
            raise ValueError(f"{name}: must be finite integers, found NaN or inf")
        if raw.size and not np.array_equal(raw, np.floor(raw)):
            raise ValueError(f"{name}: must hold integers, found non-integral values")
    if dtype.kind == "u" and raw.dtype.kind == "i" and raw.size and raw.min() < 0:
        raise ValueError(f"{name}: must be >= 0, found {raw.min()}")
    out = np.ascontiguousarray(raw, dtype=dtype)
    if out.size:
        if dtype.kind == "f" and finite:
            flat = out.reshape(-1)
            ok = _core.all_finite(flat) if dtype == np.float64 else bool(np.isfinite(flat).all())
            if not ok:
                bad = int(np.flatnonzero(~np.isfinite(flat))[0])
                raise ValueError(
                    f"{name}: must be finite, found {flat[bad]} at flat position {bad}"
                )
        if nonnegative and dtype.kind in "if":
            m = out.min()
            if m < 0:
                bad = int(np.flatnonzero(out.reshape(-1) < 0)[0])
                raise ValueError(f"{name}: must be >= 0, found {m} (first at flat position {bad})")
    return out


def _fmt_shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"


def as_codes(x: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Categorical-like values -> (int32 codes, sorted unique categories). Missing -> ValueError."""
    raw = to_numpy_raw(x, name)
    if raw.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {raw.shape}")
    codes, uniques = pd.factorize(raw, sort=True, use_na_sentinel=True)
    if codes.size and codes.min() < 0:
        raise ValueError(f"{name}: has missing values")
    return np.ascontiguousarray(codes, dtype=np.int32), np.asarray(uniques)


def is_table(x: Any) -> bool:
    return isinstance(x, (pd.DataFrame, pa.Table, Mapping)) or (
        is_polars(x) and hasattr(x, "get_column")
    )


def columns(table: Any, name: str) -> list[str]:
    """Column names of a table, or ``TypeError`` naming ``name`` if it is not a table."""
    if isinstance(table, pd.DataFrame):
        return [str(c) for c in table.columns]
    if isinstance(table, pa.Table):
        return list(table.column_names)
    if is_polars(table) and hasattr(table, "get_column"):
        return list(table.columns)
    if isinstance(table, Mapping):
        return [str(c) for c in table.keys()]
    raise TypeError(
        f"{name}: expected a table (pandas DataFrame, polars DataFrame, pyarrow Table or a "
        f"mapping of column -> array), got {type(table).__name__}"
    )


def as_pandas(table: Any, name: str) -> pd.DataFrame:
    """Any table of the conventions (pandas, polars, pyarrow, mapping of column -> array) as a
    pandas DataFrame (no copy for pandas), or ``TypeError`` naming ``name``."""
    columns(table, name)  # TypeError naming the argument if it is not a table
    if isinstance(table, pd.DataFrame):
        return table
    if isinstance(table, pa.Table) or is_polars(table):
        return table.to_pandas()
    try:
        return pd.DataFrame({c: table[c] for c in table})
    except ValueError as e:
        raise ValueError(f"{name}: columns of different lengths ({e})") from None


def n_rows(table: Any, name: str) -> int:
    cols = columns(table, name)
    if isinstance(table, Mapping):
        return len(to_numpy_raw(table[cols[0]], name)) if cols else 0
    return int(table.shape[0]) if not isinstance(table, pa.Table) else table.num_rows


def column(table: Any, name: str, col: str) -> np.ndarray:
    """One column of a table as a numpy array (no copy where the source allows)."""
    available = columns(table, name)
    if col not in available:
        raise ValueError(f"{name}: unknown column {col!r} (available: {', '.join(available)})")
    if isinstance(table, pd.DataFrame):  # names are str(label): find the label (0, not "0")
        label = next(c for c in table.columns if str(c) == col)
        return to_numpy_raw(table[label], f"{name}[{col!r}]")
    if isinstance(table, pa.Table):
        return to_numpy_raw(table.column(col), f"{name}[{col!r}]")
    if is_polars(table):
        return to_numpy_raw(table.get_column(col), f"{name}[{col!r}]")
    return to_numpy_raw(table[col], f"{name}[{col!r}]")


def check_same_length(arrays: Mapping[str, np.ndarray]) -> int:
    """All arrays share their first dimension; returns it, or ``ValueError`` naming the mismatch."""
    items = list(arrays.items())
    first_name, first = items[0]
    for n, a in items[1:]:
        if len(a) != len(first):
            raise ValueError(
                f"{n}: has length {len(a)}, expected {len(first)} (the length of {first_name})"
            )
    return len(first)


#: Largest seed (seeds are 64-bit, unsigned).
U64_MAX = 2**64 - 1
#: Largest count or size argument the cores take (int64).
I64_MAX = 2**63 - 1


def check_int(x: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``x`` as a Python int (a Python or numpy integer, not a bool) in ``[minimum, maximum]``.

    ``maximum`` defaults to what the cores can take: :data:`U64_MAX` for a ``seed``,
    :data:`I64_MAX` for anything else (so 2**64 is a ``ValueError`` naming the argument here,
    never an ``OverflowError`` from the extension)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{name}: must be an int, got {type(x).__name__}")
    x = int(x)
    if maximum is None:
        maximum = U64_MAX if name == "seed" else I64_MAX
    if minimum is not None and x < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {x}")
    if maximum is not None and x > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {x}")
    return x


def check_instance(x: Any, name: str, cls: type | tuple[type, ...], what: str) -> Any:
    """``x`` if it is an instance of ``cls``, else ``TypeError`` naming ``name`` and ``what``
    it must be (never an ``AttributeError`` from deep inside the call)."""
    if not isinstance(x, cls):
        raise TypeError(f"{name}: must be {what}, got {type(x).__name__}")
    return x


def check_fits(need: int, arg: str, what: str, shape: tuple[int, ...]) -> None:
    """A ``MemoryError`` naming ``arg`` when ``need`` bytes (``what``, of ``shape``) exceed this
    machine's memory."""
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        have = None
    if have is not None and need > have:
        raise MemoryError(
            f"{arg}: {what} needs {need / 2**30:,.1f} GiB (shape {shape}), more than this "
            f"machine's {have / 2**30:,.1f} GiB of memory"
        )


def zeros(shape: tuple[int, ...], arg: str, what: str, dtype: Any = np.float64) -> np.ndarray:
    """``np.zeros(shape, dtype)``, or a ``MemoryError`` naming ``arg`` when it does not fit in
    this machine's memory (numpy would raise one naming nothing, or promise lazily zeroed pages
    that are touched later)."""
    need = np.dtype(dtype).itemsize * int(np.prod(shape, dtype=object))
    check_fits(need, arg, what, shape)
    try:
        return np.zeros(shape, dtype)
    except (MemoryError, ValueError):
        raise MemoryError(
            f"{arg}: {what} needs {need / 2**30:,.1f} GiB (shape {shape}), more than can be "
            "allocated"
        ) from None


def arange(n: int, arg: str, what: str) -> np.ndarray:
    """``np.arange(n)`` (int64), or a ``MemoryError`` naming ``arg`` as :func:`zeros` does."""
    check_fits(8 * n, arg, what, (n,))
    try:
        return np.arange(n, dtype=np.int64)
    except (MemoryError, ValueError):
        raise MemoryError(
            f"{arg}: {what} needs {8 * n / 2**30:,.1f} GiB (shape ({n},)), more than can be "
            "allocated"
        ) from None


def check_number(
    x: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_min: bool = False,
) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name}: must be a number, got {type(x).__name__}")
    try:
        x = float(x)
    except OverflowError:  # an int too large for a float
        raise ValueError(
            f"{name}: must be finite, got an int of {int(x).bit_length()} bits"
        ) from None
    if not np.isfinite(x):
        raise ValueError(f"{name}: must be finite, got {x}")
    if minimum is not None and (x <= minimum if strict_min else x < minimum):
        raise ValueError(f"{name}: must be {'>' if strict_min else '>='} {minimum}, got {x}")
    if maximum is not None and x > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {x}")
    return x


def check_choice(x: Any, name: str, choices: Sequence[str]) -> str:
    if x not in choices:
        raise ValueError(f"{name}: must be one of {', '.join(map(repr, choices))}, got {x!r}")
    return x


def to_output(cols: Mapping[str, Any], output: Output = "pandas"):
    """A table from columns: pandas (default), polars or pyarrow."""
    check_choice(output, "output", OUTPUTS)
    if output == "pandas":
        return pd.DataFrame(dict(cols), copy=False)
    if output == "arrow":
        return pa.table({k: pa.array(v) for k, v in cols.items()})
    try:
        import polars as pl
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("output='polars' needs polars: pip install polars") from None
    return pl.DataFrame(dict(cols))
