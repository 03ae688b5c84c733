"""Hostile input to the realtime module: huge sizes, wrong scalar types, Ctrl-C (issue 15).

Every case must raise ``ValueError``/``TypeError`` naming the argument, or ``MemoryError`` when a
size is valid but too large for the machine; never abort the interpreter (the size cases run in a
child process, where an abort cannot take the test run down) or raise a ``BaseException``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from growthmachine.realtime import BudgetPacer, EpsilonGreedy, LinTS, LinUCB, SessionPolicy, ope

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


X = np.random.default_rng(0).normal(size=(8, 3))


@pytest.mark.parametrize(
    "call, exc, start",
    [
        (lambda p: p.update(X[0], 1.5, 1.0), TypeError, "action: must be an int, got float"),
        (lambda p: p.update(X[0], True, 1.0), TypeError, "action: must be an int, got bool"),
        (lambda p: p.update(X[0], np.True_, 1.0), TypeError, "action: must be an int, got bool"),
        (lambda p: p.update(X[0], 2**64, 1.0), ValueError, "action: must be in [0, 3), got 2**64"),
        (lambda p: p.update(X[0], -1, 1.0), ValueError, "action: must be in [0, 3), found -1"),
        (lambda p: p.update(X[0], 1, "1"), TypeError, "reward: must be a number, got str"),
        (lambda p: p.update(X[0], 1, 10**400), ValueError, "reward: too large for a float"),
        (lambda p: p.probabilities(X, n_samples=-1), ValueError, "n_samples: must be >= 1, got -1"),
        (lambda p: p.probabilities(X, n_samples=2.0), TypeError, "n_samples: must be an int"),
        (lambda p: p.choose_batch(X, hallucinate="yes"), TypeError, "hallucinate: must be a bool"),
        (lambda p: p.choose_batch(X, hallucinate=1), TypeError, "hallucinate: must be a bool"),
    ],
)
def test_scalar_arguments_are_checked_and_named(call, exc, start):
    pol = LinTS(3, 3)
    start = start.replace("2**64", str(2**64))
    with pytest.raises(exc) as e:
        call(pol)
    assert str(e.value).startswith(start), str(e.value)
    assert pol.n_updates_ == 0


def test_valid_scalars_of_every_kind_still_work():
    pol = LinUCB(3, 3)
    pol.update(X[0], np.int64(2), np.float32(0.5))
    pol.update(X[1], 1, 1)
    assert pol.counts_.tolist() == [0, 1, 1]
    assert pol.choose_batch(X, hallucinate=np.bool_(True)).shape == (8,)
    assert LinTS(3, 3).probabilities(X, n_samples=np.uint8(10)).shape == (8, 3)


@pytest.mark.parametrize(
    "make, exc, start",
    [
        (
            lambda: BudgetPacer(LinUCB(3, 3), np.zeros(3), 10, horizon=2**64),
            ValueError,
            "horizon: must be <= 18446744073709551615, got 18446744073709551616",
        ),
        (
            lambda: SessionPolicy(3, 3, costs=[0, 1, 1], budget=10, horizon=2**64),
            ValueError,
            "horizon: must be <=",
        ),
        (
            lambda: BudgetPacer(LinUCB(3, 3), np.zeros(3), 10, horizon=5, max_ahead="x"),
            TypeError,
            "max_ahead: must be a number, got str",
        ),
        (
            lambda: BudgetPacer(LinUCB(3, 3), np.zeros(3), 10, horizon=5, max_ahead=-1),
            ValueError,
            "max_ahead: must be >= 0",
        ),
        (
            lambda: SessionPolicy(3, 3, costs=[0, 1, 1], budget=1, horizon=5, max_ahead="x"),
            TypeError,
            "max_ahead: must be a number, got str",
        ),
        (lambda: LinUCB(2**64, 3), ValueError, "n_actions: must be <="),
        (lambda: EpsilonGreedy(3, 3, seed=2**64), ValueError, "seed: must be <="),
    ],
)
def test_constructor_scalars_are_checked_and_named(make, exc, start):
    with pytest.raises(exc) as e:
        make()
    assert str(e.value).startswith(start), str(e.value)


def test_bindings_check_their_own_scalars():
    # The Rust classes check what they extract, whatever the Python layer passed on.
    from growthmachine._core import RealtimePacer, RealtimePolicy

    with pytest.raises(ValueError, match=r"^n_features: must be <="):
        RealtimePolicy("linucb", 2, 2**64)
    with pytest.raises(TypeError, match=r"^ridge: must be a number, got str"):
        RealtimePolicy("linucb", 2, 2, ridge="1")
    with pytest.raises(TypeError, match=r"^null_action: must be an int, got bool"):
        RealtimePacer(2, np.array([1.0]), 10, 0.1, False)
    with pytest.raises(TypeError, match=r"^step: must be a number, got bytes"):
        RealtimePacer(2, np.array([1.0]), 10, b"0.1", 0)


@pytest.mark.parametrize(
    "kw, exc, start",
    [
        (dict(clip="x"), TypeError, "clip: must be a number, got str"),
        (dict(clip=0), ValueError, "clip: must be > 0"),
        (dict(switch_threshold=-1.0), ValueError, "switch_threshold: must be >= 0"),
        (dict(ci="bootstrap", seed=2**64), ValueError, "seed: must be <="),
        (dict(ci="bootstrap", seed=True), TypeError, "seed: must be an int, got bool"),
    ],
)
def test_ope_scalars_are_checked_and_named(kw, exc, start):
    k = dict(
        actions=np.zeros(4, dtype=int),
        rewards=np.ones(4),
        propensities=np.full(4, 0.5),
        action_probs=np.full((4, 2), 0.5),
    )
    with pytest.raises(exc) as e:
        ope.evaluate(**k, **kw)
    assert str(e.value).startswith(start), str(e.value)


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


@pytest.mark.parametrize("hallucinate", [False, True])
def test_ctrl_c_interrupts_choose_batch(seconds_to_interrupt, hallucinate):
    k, d, n = (10, 256, 20_000) if hallucinate else (100, 128, 60_000)
    setup = (
        "import numpy as np\n"
        "from growthmachine.realtime import LinUCB\n"
        f"pol = LinUCB({k}, {d})\n"
        f"X = np.random.default_rng(0).normal(size=({n}, {d}))\n"
    )
    # tens of Gflop: seconds of work (the hallucinated batch is sequential)
    call = f"pol.choose_batch(X, hallucinate={hallucinate})"
    delay = seconds_to_interrupt(setup, call, after=0.5)
    assert delay < 1.0
