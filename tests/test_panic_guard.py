"""No Rust panic reaches Python as ``pyo3_runtime.PanicException`` (a ``BaseException`` that
``except Exception`` misses): work in the bindings runs through ``run_long`` (long calls) or
``guarded`` (short ones), both in ``src/python/mod.rs``, which turn a panic into
``gm.InternalError``. This test reads the bindings' sources: releasing the GIL (``.detach(``) or
entering the pool (``parallel::install(``) anywhere else bypasses both, and fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import growthmachine as gm

SRC = Path(__file__).resolve().parents[1] / "src" / "python"

#: (file, the line's text) allowed to release the GIL: waiting for a policy's mutex (no work).
ALLOWED = {("realtime/policy.rs", "SendGuard(self.inner.lock()")}


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


def test_a_panic_is_an_internal_error():
    with pytest.raises(gm.InternalError, match="deliberate panic"):
        gm._core._debug_panic()
    assert issubclass(gm.InternalError, Exception)
