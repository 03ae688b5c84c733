"""The generic driver: recipes, discovery of the public surface, cases, outcomes, the child.

A recipe is a function ``ctx -> (callable, kwargs)`` giving one *valid* call (small sizes),
registered under the callable's qualified name (``"insight.KMeans.fit"``). For each keyword
argument in turn, each variant of :mod:`.values` replaces the valid value and the call is judged:

- raised ``ValueError``/``TypeError``/``MemoryError`` (or a subclass: ``gm.InfeasibleError``,
  ``gm.StateError``) whose message names the argument: ok unless the variant was the same data
  in another container (``"same"``);
- succeeded: ok for ``"same"`` if the result equals the valid call's, for ``"either"`` if the
  result has no NaN/inf the valid result did not have; never ok for ``"error"``;
- anything else (another exception, ``PanicException``, ``InternalError``, an abort, a hang) fails.

``python driver.py MODULE START`` runs the cases of ``recipes_MODULE`` from number ``START`` in
this interpreter and prints one JSON line per case; :func:`run_module` runs that child, restarts
it after the case that aborted or hung, and returns the failures.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import pickle
import re
import selectors
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
#: Seconds a single case may take before it counts as a hang.
HANG_SECONDS = 20.0
#: Seconds a child may take to build its fixtures and run one recipe's valid call.
SETUP_SECONDS = 120.0
#: Address-space limit of the child: a huge allocation fails there instead of starving the host.
CHILD_MEMORY = 12 * 2**30

Make = Callable[[Any], tuple[Callable, dict[str, Any]]]


@dataclasses.dataclass
class Recipe:
    name: str
    make: Make
    #: arg -> {variant tag (or its start): reason}: variants that may succeed ("either").
    allow: dict[str, dict[str, str]]
    #: arg (or "arg=tag": one variant) -> why it is not substituted.
    skip: dict[str, str]
    #: arg -> other words that name it in a message (e.g. the column it is read into).
    names: dict[str, tuple[str, ...]]
    #: False where the result depends on more than the input (timings, memory addresses).
    deterministic: bool = True
    #: arg -> the columns of that table the call reads (default: all of them).
    columns: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: "arg=tag" cases whose result may hold NaN/inf by design (the reason in ``allow``).
    nan_ok: tuple[str, ...] = ()
    #: A record of results (``Solution``, ``TaskPlan``, ...): it stores what it is given, so a
    #: call succeeds correctly when the attribute holds the value given.
    stores: bool = False


class Recipes(dict):
    """The recipes of one module: ``@R("insight.KMeans.fit", allow=..., skip=...)``."""

    def __call__(
        self,
        name: str,
        *,
        allow=None,
        skip=None,
        names=None,
        deterministic=True,
        stores=False,
        columns=None,
        nan_ok=(),
    ):
        def register(make: Make) -> Make:
            assert name not in self, f"two recipes for {name}"
            self[name] = Recipe(
                name, make, allow or {}, skip or {}, names or {}, deterministic,
                columns=columns or {}, stores=stores, nan_ok=tuple(nan_ok),
            )  # fmt: skip
            return make

        return register


# --- discovery ---------------------------------------------------------------------------


def _public_modules() -> list[str]:
    import growthmachine as gm

    return ["", *gm._SUBMODULES, *gm._OPTIONAL]


def public_callables() -> dict[str, str]:
    """Qualified name -> module key (the recipes file) of every public callable: functions and
    classes in each module's ``__all__`` (and in public submodules it lists), and every public
    method of those classes, inherited ones included. Exceptions take no data and are left out."""
    out: dict[str, str] = {}
    seen: set[int] = set()

    def walk(modname: str, key: str) -> None:
        mod = importlib.import_module("growthmachine" + (f".{modname}" if modname else ""))
        for name in getattr(mod, "__all__", None) or []:
            obj = getattr(mod, name)
            qual = f"{modname}.{name}" if modname else name
            if inspect.ismodule(obj):
                if obj.__name__.startswith("growthmachine."):
                    walk(obj.__name__.removeprefix("growthmachine."), key)
                continue
            if id(obj) in seen or not callable(obj):
                continue
            seen.add(id(obj))
            if inspect.isclass(obj):
                if issubclass(obj, BaseException):
                    continue
                out[qual] = key
                for m in _public_methods(obj):
                    out[f"{qual}.{m}"] = key
            else:
                out[qual] = key

    for m in _public_modules():
        walk(m, m.split(".")[0] or "top")
    return out


def _public_methods(cls: type) -> list[str]:
    names = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not (owner.__module__ or "").startswith("growthmachine"):
            continue  # object's, a pandas base's or a named tuple's
        attr = vars(owner)[name]
        if isinstance(attr, property) or not (
            callable(attr) or isinstance(attr, (classmethod, staticmethod))
        ):
            continue
        names.append(name)
    return names


# --- cases -------------------------------------------------------------------------------


def _defaults(fn: Callable) -> dict[str, Any]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in sig.parameters.values() if p.default is not p.empty}


def cases(recipe: Recipe, ctx: Any) -> Iterator[tuple[str, str, str, Any, str]]:
    """(argument, variant tag, expectation, bad value, kind) for every substitution."""
    from . import values

    fn, kw = recipe.make(ctx)
    defaults = _defaults(fn)
    lengths = [len(v) for v in kw.values() if values.kind_of(v) in ("array", "frame")]
    for arg, valid in kw.items():
        if arg in recipe.skip:
            continue
        shared = values.kind_of(valid) == "array" and lengths.count(len(valid)) > 1
        for tag, bad, expect in values.variants(
            valid, shared_length=shared, default=defaults.get(arg), used=recipe.columns.get(arg)
        ):
            if f"{arg}={tag}" in recipe.skip:
                continue
            if any(tag.startswith(k) for k in recipe.allow.get(arg, {})):
                expect = "either"
            yield arg, tag, expect, bad, values.kind_of(valid)


# --- outcomes ----------------------------------------------------------------------------

SKIP_FIELDS = {"seconds", "history", "message", "solution", "problem"}


def fingerprint(x: Any, depth: int = 0) -> Any:
    """A comparable summary of a result: arrays, columns and fitted attributes, no timings."""
    import numpy as np
    import pandas as pd

    if depth > 5:
        return None
    if x is None or isinstance(x, (bool, str, bytes)):
        return x
    if isinstance(x, (int, float, np.floating, np.integer, np.bool_)):
        return np.asarray(x)
    if isinstance(x, np.ndarray):
        return x.astype(str) if x.dtype == object else x
    if type(x).__module__.split(".")[0] in ("polars", "pyarrow") and hasattr(x, "to_pandas"):
        x = x.to_pandas()
    if isinstance(x, pd.DataFrame):
        cols = [c for c in x.columns if str(c) not in SKIP_FIELDS]
        return ("df", tuple(map(str, cols)), tuple(fingerprint(x[c], depth + 1) for c in cols))
    if isinstance(x, (pd.Series, pd.Index)):
        return ("s", fingerprint(np.asarray(x), depth + 1))
    if isinstance(x, (list, tuple)):
        return tuple(fingerprint(v, depth + 1) for v in x)
    if isinstance(x, dict):
        return tuple(
            (str(k), fingerprint(v, depth + 1)) for k, v in x.items() if k not in SKIP_FIELDS
        )
    if dataclasses.is_dataclass(x):
        return tuple(
            (f.name, fingerprint(getattr(x, f.name), depth + 1))
            for f in dataclasses.fields(x)
            if f.name not in SKIP_FIELDS and not f.name.startswith("_")
        )
    if hasattr(x, "__dict__") and type(x).__module__.startswith("growthmachine"):
        public = {k: v for k, v in vars(x).items() if not k.startswith("_")}
        fitted = {k: v for k, v in public.items() if k.endswith("_")}
        if fitted or public:
            return fingerprint(fitted or public, depth + 1)
    try:
        return ("pickle", pickle.dumps(x))
    except Exception:
        return ("type", type(x).__name__)


def equal(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" and b.dtype.kind in "fc":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def nonfinite(a: Any) -> bool:
    import numpy as np

    if isinstance(a, np.ndarray):
        return a.dtype.kind == "f" and bool((~np.isfinite(a)).any())
    if isinstance(a, tuple):
        return any(nonfinite(x) for x in a)
    return False


def names_arg(msg: str, words: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(w)}(?![A-Za-z0-9_])", msg) for w in words)


def words(arg: str, tag: str) -> tuple[str, ...]:
    """What a message may name for the case: the argument, the mapping key or the column."""
    extra = tag.split(":")[:-1]
    for prefix in ("missing-", "nan-", "inf-", "pandas-NA-", "str-"):
        if tag.startswith(prefix) and ":" not in tag:
            extra.append(tag.removeprefix(prefix))
    return (arg, *extra)


#: Variants that break a relation between arguments (lengths, widths): a message may name
#: any argument of the call.
RELATIONAL = ("wrong-length", "one-row", "wrong-width", "empty", "short")


def judge(
    recipe: Recipe,
    arg: str,
    tag: str,
    expect: str,
    run: Callable[[], Any],
    base: Any,
    bad: Any,
    others: tuple[str, ...] = (),
) -> str | None:
    """None if the outcome is acceptable, else why not."""
    try:
        result = run()
    except (ValueError, TypeError, MemoryError) as e:
        msg = f"{type(e).__name__}: {e}"
        if expect == "same":
            return f"raised on the same data in another container: {msg[:300]}"
        named = (*words(arg, tag), *recipe.names.get(arg, ()))
        if tag.split(":")[-1] in RELATIONAL:
            named += others
        if not names_arg(str(e), named):
            return f"message does not name {arg!r}: {msg[:300]}"
        return None
    except BaseException as e:  # noqa: BLE001 - judging every outcome is the point
        if isinstance(e, (KeyboardInterrupt, SystemExit)) and type(e).__module__ != "builtins":
            raise
        return f"raised {type(e).__module__}.{type(e).__name__}: {str(e)[:300]}"
    if recipe.stores:
        return None if getattr(result, arg) is bad else f"{arg} does not hold the value given"
    if expect == "error":
        return "succeeded on an invalid value"
    got = fingerprint(result)
    if expect == "same" and recipe.deterministic and not equal(got, base):
        return "succeeded with a result different from the valid call's"
    quiet = tag in ("huge-size", "1e308") or tag.endswith("inf")  # inf given, inf kept
    quiet = quiet or f"{arg}={tag}" in recipe.nan_ok
    if expect == "either" and not quiet and nonfinite(got) > nonfinite(base):
        return "succeeded with NaN/inf in the result"
    return None


def _result(fn: Callable, kw: dict[str, Any]) -> Any:
    r = fn(**kw)
    if r is None and inspect.ismethod(fn):
        return fn.__self__  # a method that updates its object: the object is the result
    return r


# --- the child ---------------------------------------------------------------------------


def child(module: str, start: int) -> None:
    import warnings

    warnings.simplefilter("ignore")
    sys.path.insert(0, os.path.dirname(HERE))
    global _OUT
    _OUT = os.fdopen(os.dup(1), "w")  # the protocol; anything else printed goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.chdir(
        tempfile.mkdtemp(prefix="gm-hostile-")
    )  # a case may write a file ("x", "no-such-value")
    rec = importlib.import_module(f"hostile.recipes_{module}")
    ctx = rec.Ctx()
    i = -1
    for name, recipe in rec.R.items():
        try:
            all_cases = list(cases(recipe, ctx))
            if i + 1 + len(all_cases) <= start:  # ran before a restart
                i += max(len(all_cases), 1)
                continue
            fn, kw = recipe.make(ctx)
            base = fingerprint(_result(fn, kw))
        except BaseException as e:  # noqa: BLE001
            i += 1
            if i >= start:
                tb = "".join(
                    f"{f.filename.split('/')[-1]}:{f.lineno} "
                    for f in traceback.extract_tb(e.__traceback__)
                    if "growthmachine" in f.filename or "hostile" in f.filename
                )
                _emit(i, name, "", "valid", f"the valid call failed: {type(e).__name__}: {e}\n{tb}")
            continue
        if not all_cases:
            i += 1
            continue
        for arg, tag, expect, bad, _kind in all_cases:
            i += 1
            if i < start:
                continue
            _say({"start": i, "id": f"{name}({arg}={tag})"})

            def run(recipe=recipe, arg=arg, bad=bad):
                fn, kw = recipe.make(ctx)
                kw[arg] = bad
                return _result(fn, kw)

            t = time.perf_counter()
            why = judge(recipe, arg, tag, expect, run, base, bad, tuple(kw))
            _emit(i, name, arg, tag, why, time.perf_counter() - t)
    _say({"done": i})


_OUT: Any = None


def _say(msg: dict) -> None:
    _OUT.write(json.dumps(msg) + "\n")
    _OUT.flush()


def _emit(i: int, name: str, arg: str, tag: str, why: str | None, seconds: float = 0.0) -> None:
    _say({"i": i, "id": f"{name}({arg}={tag})", "why": why, "s": seconds})


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


#: Seconds spent per recipe in the last runs (to keep the table fast).
SECONDS: dict[str, float] = {}


def run_module(module: str) -> tuple[dict[str, str], int, float]:
    """Runs every case of ``recipes_<module>`` in child interpreters; returns (case id -> why it
    failed, number of cases, seconds)."""
    failures: dict[str, str] = {}
    start, n, t0 = 0, 0, time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1", GROWTHMACHINE_NUM_THREADS="2")
    while True:
        err = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen(
            [sys.executable, __file__, module, str(start)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            preexec_fn=_limit_memory if sys.platform != "win32" else None,
        )
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        current, finished, hung = None, False, False
        while True:
            if not sel.select(timeout=HANG_SECONDS if current else SETUP_SECONDS):
                hung = True
                proc.kill()
                break
            line = proc.stdout.readline()
            if not line:
                break
            msg = json.loads(line)
            if "start" in msg:
                current = msg
            elif "done" in msg:
                finished = True
                n = max(n, msg["done"] + 1)
            else:
                current = None
                n = max(n, msg["i"] + 1)
                SECONDS[msg["id"].split("(")[0]] = SECONDS.get(
                    msg["id"].split("(")[0], 0
                ) + msg.get("s", 0)
                if msg["why"]:
                    failures[msg["id"]] = msg["why"]
        proc.wait()
        err.seek(0)
        stderr = err.read()
        err.close()
        if finished:
            return failures, n, time.monotonic() - t0
        if current is None:  # died outside a case: in set-up
            failures[f"{module}(set-up)"] = f"child exited {proc.returncode}: {stderr[-1500:]}"
            return failures, n, time.monotonic() - t0
        why = (
            f"hung (> {HANG_SECONDS:.0f} s)"
            if hung
            else f"aborted the interpreter (exit {proc.returncode}): {stderr[-600:]}"
        )
        failures[current["id"]] = why
        start = current["start"] + 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(HERE))
    from hostile import driver

    driver.child(sys.argv[1], int(sys.argv[2]))
