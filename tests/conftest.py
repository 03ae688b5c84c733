"""Helpers shared by the tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

#: Wraps a long call (``{call}``) in a child that reports when KeyboardInterrupt arrives.
_CHILD = """
import sys, time
print("start", flush=True)
try:
{call}
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    sys.exit(0)
print("finished", flush=True)
sys.exit(1)
"""


@pytest.fixture
def seconds_to_interrupt():
    """``seconds_to_interrupt(setup, call, after)``: runs ``setup`` then the long ``call`` in a
    child process, sends SIGINT ``after`` seconds into the call and returns the seconds until
    the child caught ``KeyboardInterrupt`` (fails if the call finished or the child did not
    exit cleanly)."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGINT semantics are POSIX")

    def run(setup: str, call: str, after: float) -> float:
        body = "\n".join("    " + line for line in call.strip().splitlines())
        code = setup + _CHILD.format(call=body)
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "start"
            time.sleep(after)
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
            line = child.stdout.readline().split()
            assert child.wait(timeout=10) == 0
        finally:
            child.kill()
        assert line and line[0] == "interrupted", line
        return float(line[1]) - sent

    return run
