"""The project-wide hostile-input table (issue 15): every public callable has a recipe (a valid
call), and every substitution of one of its arguments by a bad value either raises
``ValueError``/``TypeError``/``MemoryError`` naming the argument or succeeds with a sane result
(see ``tests/hostile/``). Cases run in child interpreters: an abort or a hang fails one case."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hostile import driver  # noqa: E402

#: Public callables that take no data, so have nothing to substitute (name -> why).
NO_DATA = {
    "get_num_threads": "takes no argument",
    "planning.uplift.UpliftModel": "abstract base, takes no argument; fit and predict have recipes",
}

#: Defects the table finds in code another helper owns (case-id prefix -> owner and reason); the
#: lead empties this after merging their fixes.
KNOWN_ELSEWHERE: dict[str, str] = {}

#: Defects the table finds that are not fixed yet (case-id prefix -> what is wrong). Each entry
#: must still fail (a fixed one is reported as stale, so the list only shrinks).
OPEN: dict[str, str] = {}

MODULES = ["top", "sim", "insight", "planning", "allocate", "touchpoint", "realtime", "machine"]


def _recipes() -> dict[str, str]:
    out = {}
    for m in (*MODULES, "spark"):  # spark's cases run in tests/spark/test_spark_hostile.py
        for name in importlib.import_module(f"hostile.recipes_{m}").R:
            out[name] = m
    return out


def test_every_public_callable_has_a_recipe():
    public = driver.public_callables()
    recipes = _recipes()
    missing = sorted(n for n in public if n not in recipes and n not in NO_DATA)
    assert not missing, f"public callables without a hostile-input recipe: {missing}"
    stale = sorted(n for n in recipes if n not in public)
    assert not stale, f"recipes for names that are not public: {stale}"
    assert not set(NO_DATA) - set(public)


def _listed(case: str) -> str | None:
    return next((k for k in (*KNOWN_ELSEWHERE, *OPEN) if case.startswith(k)), None)


@pytest.mark.parametrize("module", MODULES)
def test_hostile_inputs(module):
    failures, n, seconds = driver.run_module(module)
    assert n > 0
    unexpected = {k: v for k, v in failures.items() if _listed(k) is None}
    shown = "\n".join(f"{k}: {v}" for k, v in sorted(unexpected.items()))
    assert not unexpected, f"{len(unexpected)} of {n} cases failed ({seconds:.0f} s):\n{shown}"
    prefix = "" if module == "top" else f"{module}."
    used = {_listed(k) for k in failures}
    stale = [k for k in (*KNOWN_ELSEWHERE, *OPEN) if k.startswith(prefix) and k not in used]
    if module == "top":
        stale = [k for k in stale if "." not in k.split("(")[0]]
    assert not stale, f"listed defects that no longer fail (remove them): {stale}"


# --- sizes set by a user's numbers -------------------------------------------------------

_LOG = (
    "import pandas as pd\nfrom growthmachine.touchpoint import ResponseModel\n"
    "def log(n_seg, n_ch, n=200_000):\n"
    "    i = np.arange(n)\n"
    "    return pd.DataFrame({'segment': i % n_seg, 'channel': i % n_ch, 'exposures': i % 15,\n"
    "        'converted': (i % 7 == 0).astype(float), 'opted_out': np.zeros(n)})\n"
)

#: Allocations whose size is the product of a user's numbers (issue 15's fallible-allocation
#: audit): name -> (the argument the error must name, or None where the call must succeed;
#: set-up; the call; the child's address-space limit in GiB). Each ran out of memory inside Rust
#: (an abort: `handle_alloc_error`) before its fix.
SIZED: dict[str, tuple[str | None, str, str, int]] = {
    # n_features=0: X of 2**40 rows holds no bytes, the chosen actions would take 8 TiB
    "realtime.LinUCB.choose_batch[X with no columns]": (
        "X",
        "pol = gm.realtime.LinUCB(3, 0, n_action_features=2)\n",
        "pol.choose_batch(np.empty((2**40, 0)), action_features=np.zeros((3, 2)))",
        12,
    ),
    # 200k segments x 2,000 channels x 15 levels of counts: 5.6 TB from a 200k-row log
    "touchpoint.ResponseModel.fit[segments x channels]": (
        "log",
        _LOG,
        "ResponseModel().fit(log(200_000, 2_000))",
        12,
    ),
    # 2,000 segments x 2 channels x 10M levels of 4 curves: 1.3 TB from an 80 MB array
    "touchpoint.ResponseModel.curves[cells x levels]": (
        "levels",
        _LOG + "m = ResponseModel().fit(log(2_000, 2))\n",
        "m.curves(np.arange(10_000_000, dtype=float))",
        12,
    ),
    # 20M rows x 20,000 centers of distances: 3.2 TB from a 160 MB X
    "insight.KMeans.transform[rows x n_clusters]": (
        "X",
        "X = np.random.default_rng(0).normal(size=(20_000, 1))\n"
        "km = gm.insight.KMeans(20_000, init=X, max_iter=1).fit(X)\n",
        "km.transform(np.zeros((20_000_000, 1)))",
        12,
    ),
    # 400k users whose action ids reach 5M: per-chunk tables of n_actions counts (64 x 40 MB
    # in flight per price vector) made the solve abort within 3 GiB; the chunks now hand over
    # the actions they chose
    "allocate.solve[sparse action ids]": (
        None,
        "n = 400_000\nact = np.where(np.arange(n) % 2 == 0, 0, 5_000_000)\n"
        "p = gm.allocate.Problem.from_arrays(np.arange(n + 1), act, np.ones(n),\n"
        "    resources={'budget': 1000.0}, usage={'budget': np.ones(n)})\n",
        "s = gm.allocate.solve(p)\nassert 0 < s.usage['used'].iloc[0] <= 1000.0, s.usage",
        3,
    ),
    # one candidate whose action id is 2**31: the per-action tables (16 GiB of action ids)
    # came from np.arange, whose MemoryError named nothing
    "allocate.Problem.from_arrays[largest action id]": (
        "action",
        "",
        "gm.allocate.Problem.from_arrays(np.array([0, 1]), np.array([2**31]), np.ones(1),\n"
        "    resources={'budget': 1.0}, usage={'budget': np.ones(1)})",
        3,
    ),
    # 2M users on 2 channels x 255 concave levels: every level is a hull point (255 per user,
    # 8 bytes each: 4 GB of candidates within 3 GiB); the candidates grew by pushes
    "touchpoint.FrequencyPlanner.plan[hull candidates]": (
        "users",
        "from growthmachine.touchpoint import Channel, FrequencyPlanner\n"
        "fp = FrequencyPlanner([Channel('ads', 0.001, daily_cap=10),\n"
        "    Channel('sms', 0.001, daily_cap=10)], 30, levels=range(1, 256))\n"
        "inc = np.broadcast_to(np.sqrt(np.arange(1, 256)) / 20.0, (1, 2, 255)).copy()\n"
        "n = 2_000_000\n",
        "fp.plan(np.arange(n), 1e9, segment=np.zeros(n, np.int64),\n"
        "    curves=(inc, np.zeros((1, 2, 255))))",
        3,
    ),
    # a CellUplift of 255 treatments scoring 2M rows: 2 x 3.8 GiB of estimates from a 16 MB
    # groups array (the estimates came from vec![0.0; n x t], which aborted)
    "planning.uplift.CellUplift.predict[rows x treatments]": (
        "X",
        "t = np.repeat(np.arange(256), 2)\n"
        "m = gm.planning.uplift.CellUplift().fit(np.zeros((len(t), 1), np.int64), t,\n"
        "    np.ones(len(t)))\n",
        "m.predict(np.zeros((2_000_000, 1), np.int64))",
        3,
    ),
    # Yinyang's gaps between 22,000 centers: no k x k matrix (3.9 GB), within 3 GiB
    "insight.KMeans.fit[k x k gaps]": (
        None,
        "X = np.random.default_rng(0).normal(size=(22_000, 1))\n",
        "gm.insight.KMeans(22_000, init=X, max_iter=2, algorithm='yinyang').fit(X)",
        3,
    ),
}

_SIZED_CHILD = """
import resource
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
import numpy as np, growthmachine as gm
{setup}
try:
{call}
except (MemoryError, ValueError) as e:
    print("raised", type(e).__name__, e)
else:
    print("succeeded")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_AS is POSIX")
@pytest.mark.parametrize("name", sorted(SIZED))
def test_sizes_from_a_users_numbers_are_checked(name):
    arg, setup, call, gib = SIZED[name]
    body = "\n".join("    " + line for line in call.splitlines())
    code = _SIZED_CHILD.format(limit=gib * 2**30, setup=setup, call=body)
    env = dict(os.environ, GROWTHMACHINE_NUM_THREADS="2")
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    out = r.stdout.strip().splitlines()[-1:] or [""]
    assert r.returncode == 0, f"{name}: exit {r.returncode}: {r.stderr[-1500:]}"
    if arg is None:
        assert out == ["succeeded"], f"{name}: {out}"
    else:
        assert out[0].startswith("raised"), f"{name}: {out}"
        assert driver.names_arg(out[0], (arg,)), f"{name}: does not name {arg!r}: {out[0]}"
