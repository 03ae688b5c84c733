"""Scale and speed of the synthetic world (issue "The world"), against the issue's targets.

    python -m benchmarks sim            # 1M and 10M users (needs ~4 GB of memory, ~2 minutes)
    python -m benchmarks sim --quick    # 1M users only

Targets (2 cores): 1M users x 365 days < 10 s; 10M users < 100 s with peak memory < 6 GB;
``Environment.apply`` over 10M treatments < 10 s. There is no peer library that generates such a
world, so the table shows our figures next to the targets.
"""

from __future__ import annotations

import argparse
import gc

import numpy as np

from benchmarks.harness import Table, _rss, measure, write_section


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks sim")
    ap.add_argument("--quick", action="store_true", help="1M users only")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import growthmachine as gm

    gm.set_num_threads(args.threads)
    t = Table(["case", "median s", "peak MB", "target", "meets", "notes"])

    def generate(n: int):
        """A population with its tables built (they are views of the Rust-held truth)."""
        pop = gm.sim.Population.generate(n, days=365, seed=0)
        pop.users, pop.transactions, pop.truth  # noqa: B018
        return pop

    m = measure(lambda: generate(1_000_000), repeat=3)
    pop = m.result
    t.add(
        "generate 1M users x 365 days",
        m.median,
        m.peak_mb,
        "< 10 s",
        "yes" if m.median < 10 else "NO",
        f"{len(pop.transactions):,} transactions; DataFrames included",
    )
    env = gm.sim.Environment(pop, seed=0)
    ok = np.flatnonzero(env.eligible(np.arange(pop.n_users), 56))
    tr = {"user_id": ok, "action_id": 56}
    m = measure(lambda: gm.sim.Environment(pop, seed=0).apply(tr, days=30), repeat=3)
    t.add(f"apply {len(ok) / 1e6:.1f}M treatments, 1M users, 30 days", m.median, m.peak_mb, "-", "-",
          "includes building the Environment")  # fmt: skip
    m = measure(lambda: env.sessions(1_000_000, seed=0), repeat=3)
    t.add("sessions(1M)", m.median, m.peak_mb, "-", "-", "draw 1M visits with context")

    def run_sessions(sb=m.result):
        while sb.active.any():
            sb.step(np.where(sb.active, 3, 0))

    m = measure(run_sessions, repeat=1)
    t.add("step 1M sessions to the end", m.median, m.peak_mb, "-", "-", "3 steps")
    del pop, env, tr
    gc.collect()

    if not args.quick:
        base = _rss() / 2**20
        m = measure(lambda: generate(10_000_000), repeat=1)
        pop = m.result
        peak = base + m.peak_mb
        t.add(
            "generate 10M users x 365 days",
            m.median,
            m.peak_mb,
            "< 100 s, < 6 GB",
            "yes" if m.median < 100 and peak < 6144 else "NO",
            f"{len(pop.transactions):,} transactions; process peak {peak:,.0f} MB",
        )
        m = measure(lambda: gm.sim.Environment(pop, seed=0), repeat=1)
        env = m.result
        t.add("Environment(10M)", m.median, m.peak_mb, "-", "-", "copies the truth it needs")
        n = 10_000_000
        rng = np.random.default_rng(0)
        # 10M off-site ad exposures on 5M users (2 each, on different days): allowed for all.
        users = rng.choice(pop.n_users, n // 2, replace=False)
        tr = {
            "user_id": np.repeat(users, 2),
            "action_id": 56,
            "day": np.tile([env.day, env.day + 1], n // 2),
        }
        m = measure(lambda: env.apply(tr, days=30), repeat=1)
        peak = _rss() / 2**20
        t.add(
            "apply 10M treatments (10M users, 30 days)",
            m.median,
            m.peak_mb,
            "< 10 s",
            "yes" if m.median < 10 else "NO",
            f"validation, channel rules, every user's window; process at {peak:,.0f} MB after",
        )
        del pop, env, tr
        gc.collect()

    write_section(
        "sim",
        "The world (growthmachine.sim)",
        command="python -m benchmarks sim" + (" --quick" if args.quick else ""),
        body=t.markdown()
        + "\n\nNo peer library generates this world; figures are compared with the issue's "
        "targets. Peak MB is the resident-memory increase during the call (sampled every 2 ms). "
        "The load average in the header says how much other work shared the machine.",
    )
    return 0
