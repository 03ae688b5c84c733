"""Progress bars for long work (the conventions, implemented once).

Every long call takes ``progress: bool | None = None``: ``True`` shows a tqdm bar, ``False`` never
does, ``None`` (the default) shows one only in an interactive session (a terminal or Jupyter), so
scripts, pipelines and CI stay silent. Rust cores report ``(done, total)`` through the callback
:func:`bar` yields; the bindings call it from the Python thread while the core runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


def enabled(progress: bool | None) -> bool:
    if progress is not None:
        if not isinstance(progress, bool):
            raise TypeError(f"progress: must be True, False or None, got {type(progress).__name__}")
        return progress
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def bar(
    progress: bool | None, desc: str, unit: str = "it"
) -> Iterator[Callable[[int, int], None] | None]:
    """Yields a ``callback(done, total)`` driving a tqdm bar, or ``None`` when disabled."""
    if not enabled(progress):
        yield None
        return
    from tqdm.auto import tqdm

    t = tqdm(desc=desc, unit=unit, total=None, leave=False)

    def update(done: int, total: int) -> None:
        if total and t.total != total:
            t.total = total
        t.n = done
        t.refresh()

    try:
        yield update
    finally:
        t.close()
