"""The machine against today's marketing on the world's truth (issue 12, "What it must show").

One run per world config: ``gm.Machine`` for ``--periods`` periods of 30 days and every baseline
(``rfm_rule``, ``ab_winner``, ``random``, ``none``, ``oracle``), each on its own copy of the same
world, seed and budget per period (0.1 per user); every figure is the world's exact expectation
of what each policy sent (``Environment.expected_outcome``). The comparison sums periods 3..P (the
first two only learn); the oracle allocates the world's true per-user effects over the whole
catalogue with ``gm.allocate.solve`` at the machine's own true spend of each period.

Columns: ``incremental profit``, ``share of oracle``, ``spend``, ``opt-outs`` (expected),
``new buyers``, ``reactivated``; below each world's table, the machine's forecast of each scored
period's incremental profit against the world's, and the wall time of the whole run (machine
and baselines).

    python -m benchmarks machine --users 200000 --world default --world coupon_sensitive \\
        --world fatigued
    python -m benchmarks machine --cli --users 1000000    # the whole `growthmachine run`
    python -m benchmarks machine --ceiling --world default ...  # what the plan can reach

``--ceiling`` measures, per world, how much of the oracle the machine's plan (its actions) can
reach at all (:mod:`benchmarks.machine_ceiling`), and how much a plan can reach that knows
only what the machine's features tell of the true values, beside the machine's share from the
same world and seed.

``--cli`` times the main job end to end (``growthmachine run --users N``: every module's stage,
then the machine and the baselines) in a subprocess and tabulates its ``summary.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import Table, write_section

WORLDS = Path(__file__).with_name("worlds")


def _world(name: str):
    import growthmachine as gm

    if name == "default":
        return None
    p = Path(name)
    if not p.exists():
        p = WORLDS / f"{name}.yaml"
    return gm.sim.WorldConfig.from_yaml(p)


def run_world(n: int, world: str, periods: int, seed: int) -> tuple[str, dict]:
    import growthmachine as gm

    cfg = _world(world)
    pop = gm.sim.Population.generate(n, seed=seed, **({} if cfg is None else {"config": cfg}))
    env = gm.sim.Environment(pop, seed=seed)
    t0 = time.perf_counter()
    run = gm.Machine(config=gm.MachineConfig(seed=seed)).run(env, periods=periods)
    wall = time.perf_counter() - t0
    c = run.comparison
    o = float(c.loc["oracle", "incremental_profit"])
    t = Table(["policy", "incremental profit", "share of oracle", "spend", "opt-outs",
               "new buyers", "reactivated"])  # fmt: skip
    for p in ("machine", "rfm_rule", "ab_winner", "random", "none", "oracle"):
        r = c.loc[p]
        t.add(p, float(r["incremental_profit"]), float(r["incremental_profit"]) / o,
              float(r["spend"]), float(r["opt_outs"]), float(r["new_buyers"]),
              float(r["reactivated"]))  # fmt: skip
    h = run.history[run.history["period"].isin(run.scored_periods)]
    f = Table(["period", "forecast", "world", "forecast / world"])
    for _, r in h.iterrows():
        f.add(int(r["period"]) + 1, float(r["forecast_profit"]), float(r["true_profit"]),
              float(r["forecast_profit"] / r["true_profit"]))  # fmt: skip
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in run.seconds.items())
    body = (
        f"**World `{world}`**, {n:,} users, {periods} periods of 30 days, budget "
        f"{0.1 * n:,.0f} per period; scored periods {run.scored_periods[0] + 1}..{periods}.\n\n"
        + t.markdown()
        + "\n\nThe machine's forecast of each scored period's incremental profit:\n\n"
        + f.markdown()
        + f"\n\nWall time {wall:.0f} s ({secs})."
    )
    best = max(
        (p for p in c.index if p not in ("machine", "oracle")),
        key=lambda p: c.loc[p, "incremental_profit"],
    )
    ratio = (h["forecast_profit"] / h["true_profit"]).to_numpy()
    stats = {
        "share": float(c.loc["machine", "incremental_profit"]) / o,
        "best_baseline": best,
        "beats_all": bool(c.loc["machine", "incremental_profit"] > c.loc[best, "incremental_profit"]),
        "optouts_vs_rfm": float(c.loc["machine", "opt_outs"] / max(c.loc["rfm_rule", "opt_outs"], 1e-9)),
        "worst_forecast": float(np.max(np.abs(ratio - 1))),
        "wall": wall,
        "spend_per_period": float(c.loc["machine", "spend"]) / len(run.scored_periods),
    }  # fmt: skip
    return body, stats


def run_cli(n: int, seed: int, threads: int) -> str:
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "growthmachine", "run", "--users", str(n), "--seed", str(seed),
             "--threads", str(threads), "--out", tmp, "--no-progress", "-q"],
            check=True,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        s = json.loads((Path(tmp) / "summary.json").read_text())
    comp = s["comparison"]
    o = comp["oracle"]["incremental_profit"]
    t = Table(["policy", "incremental profit", "share of oracle", "spend", "opt-outs",
               "new buyers", "reactivated", "off-site touches / targeted user"])  # fmt: skip
    for p in ("machine", "rfm_rule", "ab_winner", "random", "none", "oracle"):
        c = comp[p]
        t.add(p, c["incremental_profit"], c["incremental_profit"] / o, c["spend"], c["opt_outs"],
              c["new_buyers"], c["reactivated"], c["avg_offsite_touches"])  # fmt: skip
    st = ", ".join(f"{k} {v:.0f} s" for k, v in s["meta"]["stage_seconds"].items())
    return (
        f"`growthmachine run --users {n:,}` end to end: **{wall:.0f} s** ({st}).\n\n" + t.markdown()
    )


def run_ceiling(n: int, worlds: list[str], periods: int, seed: int, write: bool) -> int:
    from benchmarks import machine_ceiling

    t = Table(["world", "machine (periods 3..6)", "oracle, plan's actions", "machine / that",
               "observables: cell means", "observables: trees", "oracle profit", "budget",
               "plan's actions"])  # fmt: skip
    for w in worlds:
        _, st = run_world(n, w, periods, seed)
        r = machine_ceiling.run(n, w, seed, budget=st["spend_per_period"])
        t.add(w, st["share"], r["oracle, plan's actions"], st["share"] / r["oracle, plan's actions"],
              r["observables, cells"], r["observables, trees"], r["oracle profit"], r["budget"],
              f"{r['plan actions']:.0f} of {r['actions']:.0f}")  # fmt: skip
        print(t.markdown(), flush=True)
    body = (
        f"{n:,} users, seed {seed}; shares of the oracle at the same budget (the machine's: its "
        "benchmark protocol above, periods 3..6; the rest: one 30-day window of the fresh world "
        "at a budget of the machine's mean spend per scored period). `observables`: the plan's "
        "actions allocated by each pair's true value and cost as far as the machine's planning "
        "features tell them (their conditional means, cross-fitted over halves of the users: per "
        "insight cell, or by boosted trees), at the same true spend: close to the most a model of "
        "the machine's information can reach. See `benchmarks/machine_ceiling.py`.\n\n"
        + t.markdown()
    )
    if write:
        write_section(f"machine_ceiling_{n}", f"Machine: how much of the oracle its plan can reach ({n:,} users)",
                      command=f"python -m benchmarks machine --ceiling --users {n} "
                      + " ".join(f"--world {w}" for w in worlds), body=body)  # fmt: skip
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks machine")
    ap.add_argument("--users", type=float, default=200_000)
    ap.add_argument("--world", action="append", default=None)
    ap.add_argument("--periods", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--cli", action="store_true", help="time the whole growthmachine run")
    ap.add_argument("--ceiling", action="store_true",
                    help="how much of the oracle the machine's plan can reach")  # fmt: skip
    args = ap.parse_args(argv)

    import growthmachine as gm

    gm.set_num_threads(args.threads)
    n = int(args.users)
    if args.cli:
        body = run_cli(n, args.seed, args.threads)
        print(body)
        if not args.no_write:
            write_section(f"machine_cli_{n}", f"Main job: growthmachine run, {n:,} users",
                          command=f"python -m benchmarks machine --cli --users {n}", body=body)  # fmt: skip
        return 0
    worlds = args.world or ["default"]
    if args.ceiling:
        return run_ceiling(n, worlds, args.periods, args.seed, not args.no_write)
    parts, summary = [], Table(["world", "share of oracle", "beats every baseline",
                                "opt-outs / RFM rule's", "worst forecast error", "wall s"])  # fmt: skip
    for w in worlds:
        body, st = run_world(n, w, args.periods, args.seed)
        print(body, flush=True)
        parts.append(body)
        summary.add(w, st["share"], "yes" if st["beats_all"] else f"no ({st['best_baseline']})",
                    st["optouts_vs_rfm"], st["worst_forecast"], st["wall"])  # fmt: skip
    text = (
        "The machine and five baselines, each on its own copy of the world, in one process.\n\n"
        + summary.markdown()
        + "\n\n"
        + "\n\n".join(parts)
    )
    if not args.no_write:
        key = f"machine_{n}_{'_'.join(worlds)}"
        write_section(key, f"Machine: closed loop vs today's marketing ({n:,} users)",
                      command="python -m benchmarks machine --users "
                      f"{n} " + " ".join(f"--world {w}" for w in worlds), body=text)  # fmt: skip
    return 0
