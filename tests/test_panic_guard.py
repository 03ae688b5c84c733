"""No Rust panic reaches Python as ``pyo3_runtime.PanicException`` (a ``BaseException`` that
``except Exception`` misses): work in the bindings runs through ``run_long`` (long calls) or
``guarded`` / ``guarded_pool`` / ``guarded_gil`` (short ones), all in ``src/python/mod.rs``,
which turn a panic into ``gm.InternalError``. This test reads the bindings' sources and fails on
the two ways around them:

- releasing the GIL (``.detach(``) or entering the pool (``parallel::install(``) elsewhere;
- calling into a core (a function or associated function of ``crate::{sim, insight, allocate,
  planning, realtime, touchpoint}``, by path or through a ``use``) outside the arguments of
  ``run_long`` / ``guarded`` / ``guarded_pool``, with the GIL held (``PanicException``).
  Helpers taking a ``&Control`` are exempt: a ``Control`` exists only inside ``run_long``.
  Method calls on a core object held by a binding (``self.inner.x()``) are seen only for
  serialisation (:data:`METHODS`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import growthmachine as gm

SRC = Path(__file__).resolve().parents[1] / "src" / "python"

#: (file, the line's text) allowed to release the GIL: waiting for a policy's mutex (no work).
ALLOWED = {("realtime/policy.rs", "SendGuard(self.inner.lock()")}

#: The core modules: calls into them from a binding must be guarded.
CORES = ("sim", "insight", "allocate", "planning", "realtime", "touchpoint")
GUARDS = ("run_long", "guarded", "guarded_pool", "guarded_gil")
#: Methods of core objects held by a binding that do real work (the scan sees them too).
METHODS = ("to_bytes", "from_bytes")
#: (file, core call) allowed outside a guard, with the reason.
ALLOWED_CALLS = {
    ("sim.rs", "PopulationData::default"): "an empty struct (no input)",
    ("sim.rs", "PopulationData::affinity_name"): "a column name: format!(affinity_{c})",
}


def _bypasses() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.rs")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "mod.rs":
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("//"):
                continue
            if re.search(r"\.detach\(|parallel::install\(", line) and not any(
                rel == f and text in line for f, text in ALLOWED
            ):
                found.append(f"{rel}:{no}: {line.strip()}")
    return found


def test_bindings_run_their_work_through_run_long_or_guarded():
    if not SRC.is_dir():  # pragma: no cover - an installed wheel without sources
        pytest.skip("the Rust sources are not beside the tests")
    assert not _bypasses(), "work outside run_long/guarded:\n" + "\n".join(_bypasses())


def _close(text: str, i: int, opening: str, closing: str) -> int:
    """Index of the bracket closing the one at ``i``."""
    depth = 0
    for j in range(i, len(text)):
        depth += (text[j] == opening) - (text[j] == closing)
        if depth == 0:
            return j
    return len(text)


def _code(text: str) -> str:
    """``text`` with string literals and comments blanked (same offsets)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', lambda m: '"' + " " * (len(m.group()) - 2) + '"', text)
    return re.sub(r"//[^\n]*", lambda m: " " * len(m.group()), text)


def _core_names(text: str) -> set[str]:
    """The names a file's ``use crate::<core>...`` statements bring in (modules, types,
    functions, aliases; ``self`` in braces is the module)."""
    names = set()
    for m in re.finditer(
        r"use crate::((?:" + "|".join(CORES) + r")\b[\w:]*?)(?:::\{([^}]*)\})?;", text
    ):
        path, items = m.group(1), m.group(2)
        if items is None:
            path, _, items = path.rpartition("::")
        for item in (i.strip() for i in items.split(",")):
            if " as " in item:
                names.add(item.split(" as ")[1].strip())
            elif item == "self":
                names.add(path.rsplit("::", 1)[-1])
            elif item:
                names.add(item.rsplit("::", 1)[-1])
    for m in re.finditer(r"use crate::((?:" + "|".join(CORES) + r")\b[\w:]*) as (\w+);", text):
        names.add(m.group(2))
    return names


def _unguarded_calls(rel: str, source: str) -> list[str]:
    """``file:line: fn name: core::call(`` for every core call outside a guard's arguments."""
    text = _code(source)
    names = _core_names(text)
    spans = [
        (m.end() - 1, _close(text, m.end() - 1, "(", ")"))
        for m in re.finditer(r"\b(?:" + "|".join(GUARDS) + r")\s*\(", text)
    ]
    found = []
    for f in re.finditer(r"\bfn\s+(\w+)([^{;]*)\{", text):
        if re.search(r":\s*&Control\b", f.group(2)):
            continue
        start = f.end() - 1
        body = text[start : _close(text, start, "{", "}")]
        for c in re.finditer(r"(?<![\w:.])((?:crate::)?\w+)((?:::\w+)*)\s*\(", body):
            call = c.group(1) + c.group(2)
            parts = call.removeprefix("crate::").split("::")
            core = call.startswith("crate::") and parts[0] in CORES and len(parts) > 1
            # An enum variant or tuple struct (`Limit::All(`) is data, not a call.
            if not (core or c.group(1) in names) or parts[-1][:1].isupper():
                continue
            pos = start + c.start()
            if any(a <= pos <= b for a, b in spans) or (rel, call) in ALLOWED_CALLS:
                continue
            found.append(f"{rel}:{text.count(chr(10), 0, pos) + 1}: fn {f.group(1)}: {call}(")
        for c in re.finditer(r"\.(" + "|".join(METHODS) + r")\s*\(", body):
            pos = start + c.start()
            if not any(a <= pos <= b for a, b in spans):
                line = text.count(chr(10), 0, pos) + 1
                found.append(f"{rel}:{line}: fn {f.group(1)}: .{c.group(1)}(")
    return found


def test_bindings_call_the_cores_only_inside_a_guard():
    if not SRC.is_dir():  # pragma: no cover - an installed wheel without sources
        pytest.skip("the Rust sources are not beside the tests")
    found = [
        x
        for path in sorted(SRC.rglob("*.rs"))
        if path.name not in ("mod.rs", "args.rs") or path.parent != SRC
        for x in _unguarded_calls(path.relative_to(SRC).as_posix(), path.read_text())
    ]
    assert not found, (
        "core calls with the GIL held and no guard (a panic would be a PanicException):\n"
        + "\n".join(found)
    )


def test_the_scan_sees_an_unguarded_call():
    src = """
use crate::touchpoint::plan::{self, Layout};
use crate::insight::value;
use crate::sim::env::Env as E;
#[pyfunction]
fn a(py: Python<'_>, c: &[u8]) -> PyResult<()> {
    let x = plan::lay_out(c, "plan::x(");  // plan::y(
    let y = guarded(py, || Ok(plan::lay_out(c, 1)))?;
    let z = run_long(py, None, None, |ctl| value::fit(c, ctl))?;
    let w = Layout::Some(1);
    let v = crate::realtime::pacer::Pacer::from_bytes(c);
    let u = E::new(c);
    let b = self.inner.to_bytes();
    let b = guarded_gil(|| self.inner.to_bytes())?;
    Ok(())
}
fn helper(c: &[u8], ctl: &Control) -> Result<u8> {
    plan::lay_out(c, ctl)
}
"""
    assert _unguarded_calls("x.rs", src) == [
        "x.rs:7: fn a: plan::lay_out(",
        "x.rs:11: fn a: crate::realtime::pacer::Pacer::from_bytes(",
        "x.rs:12: fn a: E::new(",
        "x.rs:13: fn a: .to_bytes(",
    ]


def test_a_panic_is_an_internal_error():
    with pytest.raises(gm.InternalError, match="deliberate panic"):
        gm._core._debug_panic()
    assert issubclass(gm.InternalError, Exception)


def test_numpy_api_is_loaded_when_the_extension_loads():
    # rust-numpy imports NumPy's C API on first use and panics if that import fails (a Ctrl-C
    # landing during it did, in the interrupt suite): the extension loads it at import, so a
    # later failing import of it cannot turn an array argument into a PanicException
    code = (
        "import sys, types, numpy as np\n"
        "import growthmachine as gm\n"
        "for name in ('numpy.core.multiarray', 'numpy._core.multiarray',\n"
        "             'numpy._core._multiarray_umath', 'numpy.core._multiarray_umath'):\n"
        "    sys.modules[name] = types.ModuleType(name)\n"
        "print(gm._core.all_finite(np.ones(3)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr[-2000:]
