"""Conventions implemented in the extension itself: errors, Ctrl-C, GIL, threads, progress."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

import growthmachine as gm
from growthmachine import _core, _progress


def test_panic_becomes_an_exception_not_an_abort():
    with pytest.raises(gm.InternalError, match="deliberate panic for testing"):
        _core._debug_panic()
    assert issubclass(gm.InternalError, RuntimeError)
    # The interpreter and the pool still work afterwards.
    assert _core._debug_long(1, 4, 1000) > 0


def test_results_do_not_depend_on_thread_count():
    try:
        gm.set_num_threads(1)
        assert gm.get_num_threads() == 1
        one = _core._debug_long(42, 64, 5000)
        gm.set_num_threads(2)
        assert gm.get_num_threads() == 2
        two = _core._debug_long(42, 64, 5000)
    finally:
        gm.set_num_threads(os.cpu_count() or 1)
    assert one == two
    assert _core._debug_long(43, 64, 5000) != one


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="n: must be a positive integer, got 0"):
        gm.set_num_threads(0)
    with pytest.raises(TypeError, match="n: must be an int, got bool"):
        gm.set_num_threads(True)
    with pytest.raises(TypeError, match="n: must be an int, got float"):
        gm.set_num_threads(2.0)


def test_env_var_sets_default_thread_count():
    out = subprocess.run(
        [sys.executable, "-c", "import growthmachine as gm; print(gm.get_num_threads())"],
        env={**os.environ, "GROWTHMACHINE_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1"


def test_long_calls_release_the_gil():
    counter = 0
    th = threading.Thread(target=lambda: _core._debug_long(1, 300, 200_000))
    th.start()
    while th.is_alive():
        counter += 1
    th.join()
    # With the GIL held for the whole call this loop could not run while the thread works.
    assert counter > 1000


def test_progress_callback_reaches_the_total():
    seen: list[tuple[int, int]] = []
    _core._debug_long(1, 200, 200_000, progress=lambda d, t: seen.append((d, t)))
    assert seen, "progress callback was never called"
    assert seen[-1] == (200, 200)
    dones = [d for d, _ in seen]
    assert dones == sorted(dones)


def test_progress_callback_errors_propagate():
    def boom(done, total):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        _core._debug_long(1, 400, 200_000, progress=boom)


def test_progress_is_silent_unless_interactive(capsys):
    assert _progress.enabled(True) and not _progress.enabled(False)
    # pytest captures stderr, so this session is not interactive.
    assert not _progress.enabled(None)
    with _progress.bar(None, "quiet") as cb:
        assert cb is None
    with _progress.bar(True, "quick") as cb:
        cb(5, 10)
    assert "quick" not in capsys.readouterr().err  # work shorter than the delay shows nothing
    with _progress.bar(True, "loud") as cb:
        time.sleep(_progress.DELAY + 0.1)
        cb(5, 10)
    assert "loud" in capsys.readouterr().err
    with pytest.raises(TypeError, match="progress: must be True, False or None"):
        _progress.enabled("yes")


def test_ctrl_c_interrupts_a_long_call_within_a_second(seconds_to_interrupt):
    delay = seconds_to_interrupt(
        "import growthmachine as gm\n", "gm._core._debug_long(1, 10**9, 200_000)", after=0.5
    )
    assert delay < 1.0


def test_progress_stays_silent_when_ipykernel_is_merely_imported():
    # pyspark imports IPython and ipykernel wherever they are installed; that is no kernel.
    code = (
        "import sys\n"
        "try:\n"
        "    import IPython, ipykernel  # noqa: F401\n"
        "except ImportError:\n"
        "    sys.exit(3)\n"
        "from growthmachine import _progress\n"
        "assert 'ipykernel' in sys.modules\n"
        "assert not _progress.enabled(None)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if r.returncode == 3:
        pytest.skip("IPython/ipykernel not installed")
    assert r.returncode == 0, r.stderr
