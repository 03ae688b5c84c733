"""The hostile-input table (``tests/hostile``) for ``gm.spark``: here, where pyspark is known to be
installed, rather than in ``tests/test_hostile_table.py``; the same driver and judgement."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hostile import driver  # noqa: E402
from test_hostile_table import _listed  # noqa: E402


def test_hostile_inputs_spark():
    failures, n, seconds = driver.run_module("spark")
    assert n > 0
    unexpected = {k: v for k, v in failures.items() if _listed(k) is None}
    shown = "\n".join(f"{k}: {v}" for k, v in sorted(unexpected.items()))
    assert not unexpected, f"{len(unexpected)} of {n} cases failed ({seconds:.0f} s):\n{shown}"
