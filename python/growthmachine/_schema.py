"""Declarative configuration dataclasses: typed, validated, loaded from and saved to YAML/JSON.

A configuration class is a ``@dataclass`` mixing in :class:`Schema` and naming its root
(``_root = "config"``, ``"plan"``, ...). It then

- validates on construction and on :meth:`Schema.validate`: every field against its type hint,
  recursively, then the class's own rules in ``_check_values(path)``; every error is a
  ``TypeError`` (wrong type) or ``ValueError`` (wrong value) whose message starts with the field
  path, ``config.purchase.r: must be a finite number > 0, got -1`` or
  ``plan.benefits[2].cost: must be >= 0, got -1``;
- loads with :meth:`Schema.from_dict` (a possibly partial nested mapping: missing fields keep their
  defaults, unknown keys are errors), :meth:`Schema.from_json` and :meth:`Schema.from_yaml` (text or
  a path), and saves with :meth:`Schema.to_dict`, :meth:`Schema.to_json`, :meth:`Schema.to_yaml`.

Supported field types: ``float`` (finite; ints are accepted and converted), ``int`` (>= 0 and
< 2**64: counts, sizes and ids; loaded data may write one as an integral float, ``2.0``),
``str``, ``bool``, ``Literal[...]`` (one of the choices), ``list[X]``, ``dict[str, X]``,
``X | None`` / ``Optional[X]``, unions of these (``int | str``: the first member the value's type
matches decides), nested dataclasses, and ``Any`` (not checked).

Paths are exact even for nested objects built while loading: :func:`from_dict` builds the whole
tree first (nested objects skip their own validation meanwhile) and validates it once from the
root, so a bad cost in the third benefit is reported as ``plan.benefits[2].cost``, not as
``benefit.cost``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

__all__ = [
    "Schema",
    "check_types",
    "check_value",
    "from_dict",
    "from_value",
    "hints",
    "read_json",
    "read_yaml",
    "write_json",
    "write_yaml",
]

T = TypeVar("T", bound="Schema")

#: True while :func:`from_dict` builds nested objects: their own validation waits for the root's.
_BUILDING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "gm_schema_building", default=False
)


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass (cached)."""
    return typing.get_type_hints(cls)


# ---- type structure ---------------------------------------------------------------------------


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    """The members of ``X | Y`` / ``Optional[X]``, or None if ``tp`` is not a union."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


def _describe(tp: Any) -> str:
    """``a number``, ``an int``, ``a list``... for error messages."""
    if tp is float:
        return "a number"
    if tp is int:
        return "an int"
    if tp is str:
        return "a str"
    if tp is bool:
        return "a bool"
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    if dataclasses.is_dataclass(tp):
        return f"a {tp.__name__}"
    return str(tp)


def _matches(v: Any, tp: Any, raw: bool) -> bool:
    """Whether ``v`` has the outer shape of ``tp`` (which member of a union it is meant for);
    ``raw``: ``v`` is loaded data (a mapping stands for a dataclass)."""
    if tp is Any:
        return True
    if tp is type(None):
        return v is None
    if tp is float:
        return isinstance(v, numbers.Real) and not isinstance(v, bool)
    if tp is int:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)
    if tp in (str, bool):
        return isinstance(v, tp)
    origin = typing.get_origin(tp)
    if origin is list:
        return isinstance(v, (list, tuple))
    if origin is dict:
        return isinstance(v, Mapping)
    if origin is Literal:
        return v in typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return isinstance(v, tp) or (raw and isinstance(v, Mapping))
    return isinstance(v, tp) if isinstance(tp, type) else True


def _pick(v: Any, members: tuple[Any, ...], path: str, raw: bool) -> Any:
    """The union member ``v`` is meant for, or ``TypeError`` listing the accepted types."""
    for m in members:
        if _matches(v, m, raw):
            return m
    if v is None:  # e.g. ``float | str``: None is not allowed
        raise TypeError(f"{path}: must be {' or '.join(map(_describe, members))}, got null")
    others = [m for m in members if m is not type(None)]
    if len(others) == 1:
        return others[0]  # its own check gives the precise message
    raise TypeError(
        f"{path}: must be {' or '.join(map(_describe, members))}, got {type(v).__name__} {_show(v)}"
    )


# ---- validation -------------------------------------------------------------------------------

#: Ints of every field are below this (the cores read them as 64-bit unsigned integers).
INT_LIMIT = 2**64


def _show(v: Any) -> str:
    """``repr(v)`` for messages, shortened (a huge int: its size)."""
    try:
        r = repr(v)
    except ValueError:  # an int beyond Python's digit limit for str()
        return f"an int of {v.bit_length()} bits"
    return r if len(r) <= 80 else r[:77] + "..."


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


def check_value(v: Any, tp: Any, path: str) -> None:
    """Checks ``v`` against the type hint ``tp``; ``TypeError``/``ValueError`` naming ``path``."""
    members = _union_args(tp)
    if members is not None:
        m = _pick(v, members, path, raw=False)
        if m is not type(None):
            check_value(v, m, path)
        return
    origin = typing.get_origin(tp)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(v, (list, tuple)):
            raise TypeError(f"{path}: must be a list, got {type(v).__name__}")
        for i, x in enumerate(v):
            check_value(x, inner, f"{path}[{i}]")
        return
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(v, Mapping):
            raise TypeError(f"{path}: must be a mapping, got {type(v).__name__}")
        for k, x in v.items():
            if not _matches(k, kt, raw=False):
                raise TypeError(
                    f"{path}: keys must be {_describe(kt)}, got {type(k).__name__} {k!r}"
                )
            check_value(x, vt, f"{path}[{k!r}]")
        return
    if origin is Literal:
        choices = typing.get_args(tp)
        if v not in choices:
            raise ValueError(
                f"{path}: must be one of {', '.join(map(repr, choices))}, got {_show(v)}"
            )
        return
    if dataclasses.is_dataclass(tp):
        if not isinstance(v, tp):
            raise TypeError(f"{path}: must be a {tp.__name__}, got {type(v).__name__}")
        check_types(v, path)
        return
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{path}: must be a number, got {type(v).__name__} {_show(v)}")
        if not _finite(v):
            raise ValueError(f"{path}: must be finite, got {_show(v)}")
    elif tp is int:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{path}: must be an int, got {type(v).__name__} {_show(v)}")
        if not 0 <= v < INT_LIMIT:
            raise ValueError(f"{path}: must be >= 0 and < 2**64, got {_show(v)}")
    elif tp is str:
        if not isinstance(v, str):
            raise TypeError(f"{path}: must be a str, got {type(v).__name__}")
    elif tp is bool:
        if not isinstance(v, bool):
            raise TypeError(
                f"{path}: must be a bool (true/false), got {type(v).__name__} {_show(v)}"
            )


def check_types(obj: Any, path: str) -> None:
    """Checks every field of the dataclass ``obj`` against its type hint, recursively, then the
    object's own rules (``obj._check_values(path)``, where defined)."""
    h = hints(type(obj))
    for f in dataclasses.fields(obj):
        check_value(getattr(obj, f.name), h[f.name], f"{path}.{f.name}")
    rules = getattr(obj, "_check_values", None)
    if rules is not None:
        rules(path)


# ---- loading ----------------------------------------------------------------------------------


def from_value(tp: Any, v: Any, path: str) -> Any:
    """Loaded data -> the value of a field of type ``tp`` (nested dataclasses built, ints of
    float fields converted); the checks themselves are :func:`check_value`'s."""
    members = _union_args(tp)
    if members is not None:
        m = _pick(v, members, path, raw=True)
        return None if m is type(None) else from_value(m, v, path)
    origin = typing.get_origin(tp)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(v, (list, tuple)):
            raise TypeError(f"{path}: must be a list, got {type(v).__name__}")
        return [from_value(inner, x, f"{path}[{i}]") for i, x in enumerate(v)]
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(v, Mapping):
            raise TypeError(f"{path}: must be a mapping, got {type(v).__name__}")
        return {k: from_value(vt, x, f"{path}[{k!r}]") for k, x in v.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, v, path)
    if tp is float and isinstance(v, numbers.Real) and not isinstance(v, bool):
        if isinstance(v, numbers.Integral) and not _finite(v):  # too large for a float
            raise ValueError(f"{path}: must be finite, got {_show(v)}")
        return float(v)
    if tp is int and isinstance(v, numbers.Real) and not isinstance(v, (bool, numbers.Integral)):
        # Loaded data may write an int as 2.0 (JSON writers, YAML by hand): accept integral
        # values; 2.5 is of the wrong type, as for every other field (TypeError naming it).
        if not (math.isfinite(v) and float(v).is_integer()):
            raise TypeError(f"{path}: must be an int, got {type(v).__name__} {_show(v)}")
        return int(v)
    return v


def validate(obj: Any, path: str) -> None:
    """Validates a dataclass tree from ``path`` (its :meth:`Schema.validate` where it has one)."""
    if isinstance(obj, Schema):
        obj.validate(path)
    else:
        check_types(obj, path)


def from_dict(cls: type, d: Any, path: str) -> Any:
    """The dataclass ``cls`` from a (possibly partial) nested mapping; missing fields keep their
    defaults, unknown keys and missing required fields are errors naming ``path``."""
    if isinstance(d, cls):
        return d
    if not isinstance(d, Mapping):
        raise TypeError(f"{path}: must be a mapping, got {type(d).__name__}")
    h = hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    unknown = sorted(set(d) - names, key=str)
    if unknown:
        raise ValueError(f"{path}.{unknown[0]}: unknown field (known: {', '.join(sorted(names))})")
    missing = [
        f.name
        for f in fields
        if f.name not in d
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{path}.{missing[0]}: missing (required)")
    token = _BUILDING.set(True)
    try:
        obj = cls(**{k: from_value(h[k], v, f"{path}.{k}") for k, v in d.items()})
    finally:
        _BUILDING.reset(token)
    if not _BUILDING.get():  # the root: validate the whole tree once, with exact paths
        validate(obj, path)
    return obj


# ---- text and files ---------------------------------------------------------------------------


def _text(text_or_path: Any, root: str, kind: str) -> str | Path:
    """``text_or_path`` as text or a Path (bytes are UTF-8 text); ``TypeError`` naming ``root``
    for anything else."""
    if isinstance(text_or_path, (bytes, bytearray, memoryview)):
        try:
            return bytes(text_or_path).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{root}: not UTF-8 {kind} text ({e})") from None
    if isinstance(text_or_path, (str, Path)):
        return text_or_path
    raise TypeError(
        f"{root}: must be {kind} text (str or bytes) or a path, got {type(text_or_path).__name__}"
    )


def _is_file(s: str) -> bool:
    try:
        return Path(s).is_file()
    except (OSError, ValueError):  # a name too long for the system, a NUL character
        return False


def _read(
    text_or_path: Any,
    root: str,
    kind: str,
    is_text: Callable[[str], bool],
    parse: Callable[[str, str], Any],
) -> Any:
    """The data of ``text_or_path``: bytes are text; a ``Path`` is a file; a str is text if
    ``is_text(s)``, else the file it names, else (one line naming no file) text again, which must
    then hold a mapping. ``parse(text, source)`` turns text into data, raising ``ValueError``
    naming ``source``; every error names ``root`` (and the file)."""
    src = _text(text_or_path, root, kind)
    text = isinstance(text_or_path, (bytes, bytearray, memoryview)) or (
        isinstance(src, str) and is_text(src)
    )
    if text or (isinstance(src, str) and not _is_file(src)):
        d = parse(src, root)
        if not (text or isinstance(d, Mapping)):
            short = src if len(src) <= 80 else src[:77] + "..."
            raise ValueError(
                f"{root}: {short!r} is neither an existing file nor {kind} text of a mapping"
            )
        return d
    path = Path(src)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{root} ({path}): not UTF-8 {kind} text ({e})") from None
    return parse(text, f"{root} ({path})")


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, too many digits, deep nesting
        raise ValueError(f"{source}: not valid JSON ({e})") from None


def _parse_yaml(text: str, source: str) -> Any:
    import yaml

    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(e, "problem", None) or " ".join(str(e).split())
        raise ValueError(f"{source}: not valid YAML ({where}{what})") from None
    except (ValueError, OverflowError, RecursionError) as e:
        # a scalar yaml's resolver matched but cannot build (2001-13-45, an int of 5000
        # digits), or nesting too deep
        raise ValueError(f"{source}: not valid YAML ({type(e).__name__}: {e})") from None
    return {} if d is None else d


def read_json(text_or_path: str | bytes | Path, root: str) -> Any:
    """Data from JSON text (starting with ``{``; str or UTF-8 bytes) or a path to a JSON file (a
    one-line str naming no file is read as JSON text)."""
    return _read(text_or_path, root, "JSON", lambda s: s.lstrip().startswith("{"), _parse_json)


def read_yaml(text_or_path: str | bytes | Path, root: str) -> Any:
    """Data from a YAML file path or YAML text (containing a newline; a one-line str naming no
    file is read as YAML text); str or UTF-8 bytes; empty -> ``{}``."""
    return _read(text_or_path, root, "YAML", lambda s: "\n" in s, _parse_yaml)


def write_json(d: Any, path: str | Path | None = None, *, indent: int | None = 2) -> str:
    text = json.dumps(d, indent=indent)
    if path is not None:
        Path(path).write_text(text)
    return text


def write_yaml(d: Any, path: str | Path | None = None) -> str:
    import yaml

    text = yaml.safe_dump(d, sort_keys=False, default_flow_style=None)
    if path is not None:
        Path(path).write_text(text)
    return text


# ---- the mixin --------------------------------------------------------------------------------


class Schema:
    """Mixin of a configuration dataclass: validation on construction, dict/JSON/YAML I/O.

    Subclasses set ``_root`` (the first element of error paths) and may define
    ``_check_values(self, path)`` for rules beyond the field types (ranges, cross-references),
    raising errors that start with ``f"{path}.field"``.
    """

    _root: ClassVar[str] = "config"

    def __post_init__(self) -> None:
        if not _BUILDING.get():
            self.validate()

    def validate(self: T, path: str | None = None) -> T:
        """Checks types and values; raises ``TypeError``/``ValueError`` naming the field."""
        check_types(self, self._root if path is None else path)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], d: Any) -> T:
        """From a (possibly partial) nested dict: missing fields keep their defaults."""
        return from_dict(cls, d, cls._root)

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 2) -> str:
        """JSON text; also written to ``path`` if given."""
        return write_json(self.to_dict(), path, indent=indent)

    @classmethod
    def from_json(cls: type[T], text_or_path: str | bytes | Path) -> T:
        """From JSON text (str or UTF-8 bytes) or a path to a JSON file; a str not starting with
        ``{`` is the file it names if there is one, else JSON text."""
        return cls.from_dict(read_json(text_or_path, cls._root))

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text; also written to ``path`` if given."""
        return write_yaml(self.to_dict(), path)

    @classmethod
    def from_yaml(cls: type[T], text_or_path: str | bytes | Path) -> T:
        """From YAML text (str or UTF-8 bytes) or a path to a YAML file; a one-line str is the
        file it names if there is one, else YAML text."""
        return cls.from_dict(read_yaml(text_or_path, cls._root))
