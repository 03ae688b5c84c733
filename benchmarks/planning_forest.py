"""Benchmarks of the planning uplift models: UpliftForest against CausalML, scale, CellUplift.

    python -m benchmarks.planning_forest                  # every case at the sizes of the issue
    python -m benchmarks.planning_forest --quick          # small sizes (a smoke run)
    python -m benchmarks.planning_forest --cases causalml --n 200000 --causalml-trees 4

Cases (each a function returning table rows, so that a ``bench_planning.py`` can call them):

- :func:`case_vs_causalml`: binary outcome, 20 features, 3 treatments, trained on ``n`` rows
  (1M), Qini on a held-out sample of 200k rows; growthmachine's ``UpliftForest`` (defaults, and
  with as many trees as CausalML) against CausalML 0.18's ``UpliftRandomForestClassifier`` (KL
  criterion, depth 8, min leaf 100, 10 features per split, ``n_jobs`` = our thread count). CausalML
  fits trees at a constant cost each, so its time for 100 trees is extrapolated from the trees it
  fitted (reported as such in the notes).
- :func:`case_scale`: 10M rows x 20 features x 12 treatments, ``UpliftForest`` defaults.
- :func:`case_cell`: ``CellUplift`` on 10M log rows, three grouping levels, 3 treatments.

Qini: the normalised Qini coefficient (``qini_auc_score``, scikit-uplift's definition) per
treatment on the rows of that treatment and control, averaged over treatments; from
``growthmachine.planning.metrics`` when present, else from scikit-uplift. Peak MB is the resident
memory above the level before the fit (``benchmarks.harness.measure``); the input's size is in the
notes.
"""

from __future__ import annotations

import argparse
import resource
import sys
import warnings
from typing import Any

import numpy as np

import growthmachine as gm
from benchmarks.harness import Table, measure
from growthmachine.planning.uplift import CellUplift, UpliftForest

COLUMNS = ["case", "implementation", "seconds", "peak MB", "Qini", "notes"]


def make_data(n: int, p: int = 20, n_treatments: int = 3, seed: int = 0):
    """Binary-outcome uplift data with a known effect: X (n, p) standard normal, treatment
    uniform over 0..T, P(y=1) = base(x) + tau_t(x), and tau (n, T).

    ``tau_k(x) = s_k * 1[x_j > q_k] - 0.02 * 1[x_j' < -1]`` with ``j = k mod 3``,
    ``j' = (k + 1) mod 3``, ``s_k = 0.04 + 0.02 (k mod 3)``, ``q_k = -0.5 + 0.5 (k mod 3)``: each
    treatment helps a different segment and hurts another (sleeping dogs); the base rate depends
    on features 3..5, which carry no effect."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    t = rng.integers(0, n_treatments + 1, n)
    base = 1 / (1 + np.exp(-(-1.2 + 0.6 * X[:, 3] - 0.4 * X[:, 4] + 0.3 * X[:, 5])))
    tau = np.empty((n, n_treatments))
    for k in range(n_treatments):
        j, j2 = k % 3, (k + 1) % 3
        s, q = 0.04 + 0.02 * (k % 3), -0.5 + 0.5 * (k % 3)
        tau[:, k] = s * (X[:, j] > q) - 0.02 * (X[:, j2] < -1)
    eff = np.where(t > 0, tau[np.arange(n), np.maximum(t - 1, 0)], 0.0)
    y = (rng.random(n) < np.clip(base + eff, 0.001, 0.999)).astype(np.float64)
    return X, t, y, tau


def qini(y: np.ndarray, uplift: np.ndarray, t: np.ndarray) -> float:
    """Mean over treatments of the normalised Qini coefficient (binary y)."""
    uplift = uplift.reshape(len(y), -1)
    warnings.simplefilter("ignore", FutureWarning)  # scikit-uplift on recent scikit-learn
    try:
        from growthmachine.planning.metrics import qini_auc_score_per_treatment

        return float(np.mean(qini_auc_score_per_treatment(y, uplift, t)))
    except ImportError:
        from sklift.metrics import qini_auc_score

        vals = []
        for k in range(uplift.shape[1]):
            m = (t == 0) | (t == k + 1)
            vals.append(qini_auc_score(y[m], uplift[m, k], (t[m] == k + 1).astype(int)))
        return float(np.mean(vals))


def _measured(fn):
    """``measure(fn, repeat=1)`` and the process CPU seconds it used: CPU / wall near the thread
    count means the cores were ours; near 1 on 2 threads, other work had one of them."""
    c0 = resource.getrusage(resource.RUSAGE_SELF)
    m = measure(fn, repeat=1)
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    return m, (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)


def _row(case, impl, seconds, peak, q, notes) -> dict[str, Any]:
    return {
        "case": case,
        "implementation": impl,
        "seconds": seconds,
        "peak MB": peak,
        "Qini": q,
        "notes": notes,
    }


def case_vs_causalml(
    n: int = 1_000_000,
    n_test: int = 200_000,
    n_treatments: int = 3,
    causalml_trees: int = 10,
    trees: int = 100,
    seed: int = 0,
) -> list[dict[str, Any]]:
    X, t, y, _ = make_data(n, n_treatments=n_treatments, seed=seed)
    Xt, tt, yt, taut = make_data(n_test, n_treatments=n_treatments, seed=seed + 1)
    case = f"{n / 1e6:g}M x 20, {n_treatments} treatments, binary y"
    mb_x = X.nbytes / 2**20
    rows = [_row(case, "true effect (oracle ranking)", None, None, qini(yt, taut, tt), "")]
    for b in sorted({trees, causalml_trees}):
        m, cpu = _measured(
            lambda b=b: UpliftForest(n_estimators=b, seed=seed, progress=False).fit(X, t, y)
        )
        q = qini(yt, m.result.predict(Xt), tt)
        rows.append(
            _row(
                case,
                f"growthmachine UpliftForest ({b} trees)",
                m.median,
                m.peak_mb,
                q,
                f"X is {mb_x:.0f} MB; peak {m.peak_mb / mb_x:.2f}x X; CPU {cpu:.1f} s",
            )
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from causalml.inference.tree import UpliftRandomForestClassifier
    except ImportError as e:
        rows.append(_row(case, "CausalML 0.18", None, None, None, f"not installed ({e})"))
        return rows
    # zero-padded names: CausalML orders its output columns by name
    names = np.array(["control"] + [f"t{k:02d}" for k in range(1, n_treatments + 1)])
    yi = y.astype(int)

    def fit_causalml():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return UpliftRandomForestClassifier(
                control_name="control",
                n_estimators=causalml_trees,
                max_depth=8,
                min_samples_leaf=100,
                min_samples_treatment=10,
                max_features=10,
                random_state=seed,
                n_jobs=gm.get_num_threads(),
            ).fit(X, names[t], yi)

    m, cpu = _measured(fit_causalml)
    model = m.result
    pred = model.predict(Xt)
    q = qini(yt, np.asarray(pred, dtype=np.float64), tt)
    per_tree = m.median / causalml_trees
    rows.append(
        _row(
            case,
            f"CausalML 0.18 UpliftRandomForestClassifier ({causalml_trees} trees)",
            m.median,
            m.peak_mb,
            q,
            f"KL, depth 8, 10 features/split; {per_tree:.1f} s per tree; CPU {cpu:.0f} s",
        )
    )
    if trees != causalml_trees:
        rows.append(
            _row(
                case,
                f"CausalML 0.18 ({trees} trees, extrapolated)",
                per_tree * trees,
                None,
                None,
                f"{trees} x the measured time per tree (not run)",
            )
        )
    return rows


def case_scale(
    n: int = 10_000_000, p: int = 20, n_treatments: int = 12, seed: int = 0
) -> list[dict[str, Any]]:
    X, t, y, _ = make_data(n, p=p, n_treatments=n_treatments, seed=seed)
    Xt, tt, yt, _ = make_data(200_000, p=p, n_treatments=n_treatments, seed=seed + 1)
    m, cpu = _measured(lambda: UpliftForest(seed=seed, progress=False).fit(X, t, y))
    q = qini(yt, m.result.predict(Xt), tt)
    mb_x = X.nbytes / 2**20
    return [
        _row(
            f"{n / 1e6:g}M x {p}, {n_treatments} treatments, binary y",
            "growthmachine UpliftForest (100 trees)",
            m.median,
            m.peak_mb,
            q,
            f"target <= 60 s; X is {mb_x:.0f} MB, peak {m.peak_mb / mb_x:.2f}x X; CPU {cpu:.1f} s",
        )
    ]


def case_cell(n: int = 10_000_000, n_treatments: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    cell = rng.integers(0, 1000, n)
    groups = np.column_stack([cell, cell // 20, cell % 5])  # cell -> cluster, stage
    t = rng.integers(0, n_treatments + 1, n)
    eff = np.where(t > 0, 0.02 * ((cell // 20) % 4) * t / n_treatments, 0.0)
    y = (rng.random(n) < 0.1 + eff).astype(np.float64)
    m = measure(lambda: CellUplift().fit(groups, t, y), repeat=3)
    return [
        _row(
            f"{n / 1e6:g}M log rows, 1000 cells / 50 clusters / 5 stages, {n_treatments} treatments",
            "growthmachine CellUplift",
            m.median,
            m.peak_mb,
            None,
            "target <= 2 s; median of 3 fits",
        )
    ]


def table(rows: list[dict[str, Any]]) -> str:
    t = Table(COLUMNS)
    for r in rows:
        t.add(*(r[c] for c in COLUMNS))
    return t.markdown()


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.planning_forest")
    ap.add_argument("--cases", default="causalml,scale,cell", help="comma-separated cases")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--n", type=int, default=None, help="training rows of the CausalML case")
    ap.add_argument("--causalml-trees", type=int, default=10)
    a = ap.parse_args(argv)
    cases = a.cases.split(",")
    rows: list[dict[str, Any]] = []
    if "causalml" in cases:
        n = a.n or (50_000 if a.quick else 1_000_000)
        rows += case_vs_causalml(
            n=n,
            n_test=min(200_000, n),
            causalml_trees=2 if a.quick else a.causalml_trees,
            trees=20 if a.quick else 100,
        )
    if "scale" in cases:
        rows += case_scale(n=200_000 if a.quick else 10_000_000)
    if "cell" in cases:
        rows += case_cell(n=200_000 if a.quick else 10_000_000)
    print()
    print(table(rows))
    return rows


if __name__ == "__main__":
    run(sys.argv[1:])
