"""Progress bars for long work (the conventions, implemented once).

Every long call takes ``progress: bool | None = None``: ``True`` shows a tqdm bar, ``False`` never
does, ``None`` (the default) shows one only in an interactive session (a terminal or Jupyter), so
scripts, pipelines and CI stay silent; a bar appears only once the work has run for
:data:`DELAY` seconds. Rust cores report ``(done, total)`` through the callback
:func:`bar` yields; the bindings call it from the Python thread while the core runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


def _in_kernel() -> bool:
    """True inside a running Jupyter kernel. Imported modules alone do not say it: pyspark, for
    one, imports IPython and ipykernel wherever they are installed (to name notebook cells in its
    errors), in scripts and in Spark's Python workers too."""
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return getattr(shell, "kernel", None) is not None


def enabled(progress: bool | None) -> bool:
    if progress is not None:
        if not isinstance(progress, bool):
            raise TypeError(f"progress: must be True, False or None, got {type(progress).__name__}")
        return progress
    if _in_kernel():
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


#: Seconds before a bar appears: work that ends sooner shows nothing.
DELAY = 0.5


def _tqdm():
    """tqdm's notebook bar in a kernel where ipywidgets is installed, its text bar elsewhere."""
    if _in_kernel():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm


@contextlib.contextmanager
def bar(
    progress: bool | None, desc: str, unit: str = "it"
) -> Iterator[Callable[[int, int], None] | None]:
    """Yields a ``callback(done, total)`` driving a tqdm bar, or ``None`` when disabled."""
    if not enabled(progress):
        yield None
        return
    t = _tqdm()(desc=desc, unit=unit, total=None, leave=False, delay=DELAY)

    def update(done: int, total: int) -> None:
        if total and t.total != total:
            t.total = total
        if done > t.n:
            t.update(done - t.n)  # update() honours the display delay; refresh() would not

    try:
        yield update
    finally:
        t.close()
