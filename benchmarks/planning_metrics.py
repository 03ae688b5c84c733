"""Uplift metrics benchmark: growthmachine.planning.metrics vs scikit-uplift 0.5.1 (sklift.metrics).

Same data for both: ``n_rows`` users, binary treatment (half treated), binary outcome (10% control
response, 12% treated), continuous float64 uplift scores (a noisy copy of the true effect, so
almost all distinct: the worst case for the number of curve points). Timed: ``qini_auc_score``
and ``uplift_auc_score`` (the target: each <= 1 s at 14M rows on 2 cores), ``uplift_at_k``, and,
for reference, numpy's argsort and value sort of the same scores (the floor of any sort-based
implementation in numpy) and our sort stage alone. scikit-uplift runs on the same data (one
repeat: 10-16 s and 2.5 GB at 14M rows on a busy 2-CPU machine); above ``sklift_max_rows`` it runs on the first ``sklift_max_rows`` rows and its time
at ``n_rows`` is extrapolated as n log n (labelled as such). The two results are compared.

    python -m benchmarks.planning_metrics [--rows N] [--sklift-max-rows N]
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings

import numpy as np

from benchmarks.harness import Table, measure


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y_true int8, uplift float64, treatment int8) for ``n`` users."""
    rng = np.random.default_rng(seed)
    treatment = (rng.random(n) < 0.5).astype(np.int8)
    effect = rng.random(n) < 0.5  # half the users respond to the treatment
    p = 0.10 + 0.04 * (effect & (treatment == 1))
    y = (rng.random(n) < p).astype(np.int8)
    uplift = 0.04 * effect + rng.normal(0.0, 0.03, n)
    return y, uplift, treatment


def _load() -> str:
    one, _, _ = os.getloadavg()
    return f"load {one:.1f} on {os.cpu_count()} CPUs"


def _fmt_n(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n:,}"


def run(n_rows: int = 14_000_000, *, sklift_max_rows: int = 14_000_000) -> list[dict]:
    """Rows {case, implementation, seconds, notes}: ours (median of 3) and sklift (1 run)."""
    from growthmachine import _core, get_num_threads
    from growthmachine.planning import metrics as gm

    y, uplift, treatment = data(n_rows)
    rows: list[dict] = []
    size = _fmt_n(n_rows)

    def add(case: str, impl: str, seconds: float, notes: str) -> None:
        rows.append({"case": case, "implementation": impl, "seconds": seconds, "notes": notes})

    m = measure(lambda: np.argsort(uplift), repeat=3)
    add(f"argsort {size} float64", "numpy", m.median, f"reference: the sort alone; {_load()}")
    m = measure(lambda: np.sort(uplift), repeat=3)
    add(f"sort {size} float64", "numpy", m.median, f"reference: value sort; {_load()}")

    code = gm._code(y == 1, treatment == 1)
    m = measure(lambda: _core.planning_ranked_counts(uplift, code), repeat=3)
    add(
        f"sort stage of the scores {size}",
        "growthmachine",
        m.median,
        f"the one sort inside both scores (radix sort carrying the category, counts per tie "
        f"group); {_load()}",
    )

    cases = (
        ("qini_auc_score", gm.qini_auc_score, "qini_auc_score"),
        ("uplift_auc_score", gm.uplift_auc_score, "uplift_auc_score"),
        (
            "uplift_at_k overall k=0.3",
            lambda yy, uu, tt: gm.uplift_at_k(yy, uu, tt, "overall", 0.3),
            "uplift_at_k",
        ),
    )
    ours: dict[str, float] = {}
    for name, fn, _ in cases:
        m = measure(lambda fn=fn: fn(y, uplift, treatment), repeat=3, warmup=1)
        ours[name] = float(m.result)
        add(
            f"{name} {size}",
            "growthmachine",
            m.median,
            f"median of 3, {get_num_threads()} threads, peak +{m.peak_mb:.0f} MB; {_load()}",
        )

    import sklift.metrics as sk

    n_sk = min(n_rows, sklift_max_rows)
    ys, us, ts = y[:n_sk], uplift[:n_sk], treatment[:n_sk]
    scale = (n_rows * math.log(n_rows)) / (n_sk * math.log(n_sk)) if n_sk > 1 else 1.0
    for name, fn, sk_name in cases:
        sk_fn = getattr(sk, sk_name)
        args = (ys, us, ts, "overall", 0.3) if sk_name == "uplift_at_k" else (ys, us, ts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's stable_cumsum deprecation
            t0 = time.perf_counter()
            value = float(sk_fn(*args))
            seconds = time.perf_counter() - t0
        mine = ours[name] if n_sk == n_rows else float(fn(ys, us, ts))
        agree = f"|ours - sklift| = {abs(mine - value):.1e}"
        if n_sk == n_rows:
            add(f"{name} {size}", "scikit-uplift 0.5.1", seconds, f"1 run; {agree}; {_load()}")
        else:
            add(
                f"{name} {size}",
                "scikit-uplift 0.5.1",
                seconds * scale,
                f"EXTRAPOLATED (n log n) from {seconds:.2f} s measured on {_fmt_n(n_sk)} rows; "
                f"{agree} at {_fmt_n(n_sk)}; {_load()}",
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.planning_metrics")
    ap.add_argument("--rows", type=int, default=14_000_000)
    ap.add_argument("--sklift-max-rows", type=int, default=14_000_000)
    args = ap.parse_args(argv)
    table = Table(["case", "implementation", "seconds", "notes"])
    for r in run(args.rows, sklift_max_rows=args.sklift_max_rows):
        table.add(r["case"], r["implementation"], r["seconds"], r["notes"])
    print()
    print(table.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
