"""Hostile input to the realtime module: huge sizes, wrong scalar types, Ctrl-C (issue 15).

Every case must raise ``ValueError``/``TypeError`` naming the argument, or ``MemoryError`` when a
size is valid but too large for the machine; never abort the interpreter (the size cases run in a
child process, where an abort cannot take the test run down) or raise a ``BaseException``.
"""

from __future__ import annotations

import os
import subprocess
import sys

_SIZES = """
import growthmachine as gm, numpy as np
from growthmachine.realtime import LinUCB, LinTS, SessionPolicy, ope

def show(f):
    try:
        f()
        print("ok")
    except BaseException as e:
        print(type(e).__name__, str(e).split(":")[0], flush=True)

show(lambda: LinUCB(4, 2**20))
show(lambda: LinUCB(2**40, 5))
show(lambda: LinUCB(2, 3, n_action_features=2**32))
show(lambda: LinTS(2, 2**32))
show(lambda: SessionPolicy(4, 10**6))
show(lambda: LinUCB(1, 2**16))
k = dict(actions=np.zeros(4, dtype=int), rewards=np.ones(4), propensities=np.full(4, 0.5),
         action_probs=np.full((4, 2), 0.5))
show(lambda: ope.evaluate(**k, ci="bootstrap", n_bootstrap=2**40))
"""


def test_huge_sizes_raise_value_or_memory_error_naming_the_argument():
    run = subprocess.run([sys.executable, "-c", _SIZES], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    got = run.stdout.splitlines()
    want = [
        "MemoryError n_features",  # 4 x (2^20)^2 doubles: 32 TiB
        "MemoryError n_actions",  # 2^40 x 25 doubles
        "ValueError n_action_features",  # (2^32 + 3)^2 overflows: cannot exist
        "ValueError n_features",
        "MemoryError n_features",  # 3 stages x 4 x (10^6)^2 doubles
    ]
    assert got[:5] == want
    # 2^32 doubles (x2 buffers, 64 GiB): too large only where there is less memory
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert got[5] == ("MemoryError n_features" if memory < 2**36 else "ok")
    assert got[6] == "MemoryError n_bootstrap"  # 2^40 x 5 doubles


def test_ctrl_c_interrupts_thompson_probabilities(seconds_to_interrupt):
    setup = (
        "import numpy as np\n"
        "from growthmachine.realtime import LinTS\n"
        "pol = LinTS(5, 4)\n"
        "X = np.random.default_rng(0).normal(size=(2000, 4))\n"
    )
    # 2000 rows x 200,000 draws x 5 actions: well over a minute of work
    delay = seconds_to_interrupt(setup, "pol.probabilities(X, n_samples=200_000)", after=0.5)
    assert delay < 1.0
