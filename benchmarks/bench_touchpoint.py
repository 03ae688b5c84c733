"""Speed of the touchpoint response model against the issue's target (issue 11, item 1).

    python -m benchmarks touchpoint              # 10M log rows, 2 threads
    python -m benchmarks touchpoint --rows 1e6

Target (2 cores, release build): a refit from 10M log rows <= 5 s. ``fit`` times the whole call
(reading the columns, encoding segments and channels, aggregating the counts, fitting every
segment x channel); ``partial_fit`` adds a second 10M-row window to the counts and refits. The
log is a dict of numpy columns with integer segment codes and a pandas categorical of channel
names (string channels add pandas' factorisation of 10M strings, about 1 s). Prints a table; does
not write RESULTS.md.
"""

from __future__ import annotations

import argparse
import pickle
import time

import numpy as np
import pandas as pd

from benchmarks.harness import Table, measure


def make_log(rows: int, n_segments: int, channels: list[str], seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    arms = np.array([0, 1, 2, 3, 4, 6, 9, 14], dtype=np.int64)
    seg = rng.integers(0, n_segments, rows)
    ch = rng.integers(0, len(channels), rows)
    n = arms[rng.integers(0, len(arms), rows)]
    k = 1.5 + (seg % 7) * 0.5 + ch
    p = 0.03 + 0.08 * n**1.5 / (n**1.5 + k**1.5)
    q = 1.0 - np.exp(-(0.005 * n + 0.0005 * n * n))
    return {
        "segment": seg,
        "channel": pd.Categorical.from_codes(ch, categories=channels),
        "exposures": n,
        "converted": (rng.random(rows) < p).astype(np.float64),
        "opted_out": (rng.random(rows) < q).astype(np.float64),
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks touchpoint")
    ap.add_argument("--rows", type=float, default=10e6)
    ap.add_argument("--segments", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    import growthmachine as gm

    gm.set_num_threads(args.threads)
    rows = int(args.rows)
    channels = ["ads", "email", "push", "sms"]
    log = make_log(rows, args.segments, channels, seed=0)
    log2 = make_log(rows, args.segments, channels, seed=1)
    t = Table(["case", "median s", "peak MB", "target", "meets"])

    m = measure(lambda: gm.touchpoint.ResponseModel().fit(log), repeat=args.repeat)
    model = m.result
    ok = "yes" if m.median <= 5 else "NO"
    t.add(f"fit {rows / 1e6:g}M rows", m.median, m.peak_mb, "<= 5 s", ok)
    blob = pickle.dumps(model)
    times = []
    for _ in range(args.repeat):
        fresh = pickle.loads(blob)
        t0 = time.perf_counter()
        fresh.partial_fit(log2)
        times.append(time.perf_counter() - t0)
    refit = float(np.median(times))
    t.add(f"partial_fit +{rows / 1e6:g}M rows", refit, "-", "<= 5 s",
          "yes" if refit <= 5 else "NO")  # fmt: skip
    print(
        f"{args.segments} segments x {len(channels)} channels, {args.threads} threads, "
        f"{model.converged_.mean():.1%} of the cells converged"
    )
    print(t.markdown())
    return 0
