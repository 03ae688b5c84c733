"""Touchpoint benchmarks (issue 11): the response model's refit, the frequency planner at scale,
and decision quality on the world's truth.

    python -m benchmarks touchpoint                   # fit plan world
    python -m benchmarks touchpoint fit --rows 1e7    # refit from 10M log rows (target <= 5 s)
    python -m benchmarks touchpoint plan --users 1e7  # 10M x 3 channels x 14 days (<= 30 s,
                                                      #   gap <= 1e-4, peak <= 4 GB)
    python -m benchmarks touchpoint world --users 100000
    python -m benchmarks touchpoint height --users 100000  # what a curve height can add

``fit`` times the whole call (reading the columns, encoding segments and channels, aggregating
the counts, fitting every segment x channel); ``partial_fit`` adds a second 10M-row window to the
counts and refits. The log is a dict of numpy columns with integer segment codes and a pandas
categorical of channel names. ``plan`` fits a ResponseModel on a 10M-row log over 2,000 segments
and plans 10M users (values from a Gamma, reachability 100 / 35 / 60 % for ads / sms / email)
through ``FrequencyPlanner.plan`` (the whole call: curves, candidates, solve, layout, summaries),
then expands the schedule. ``world``: see ``benchmarks/touchpoint_world.py``; ``height``:
``benchmarks/touchpoint_height.py`` (not in the default cases). Each case rewrites
its section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import pickle
import time

import numpy as np
import pandas as pd

from benchmarks.harness import Table, measure, write_section


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


def run_fit(rows: int, n_segments: int, repeat: int) -> str:
    import growthmachine as gm

    channels = ["ads", "email", "push", "sms"]
    log = make_log(rows, n_segments, channels, seed=0)
    log2 = make_log(rows, n_segments, channels, seed=1)
    t = Table(["case", "median s", "peak MB", "target", "meets"])
    m = measure(lambda: gm.touchpoint.ResponseModel().fit(log), repeat=repeat)
    model = m.result
    ok = "yes" if m.median <= 5 else "NO"
    t.add(f"fit {rows / 1e6:g}M rows", m.median, m.peak_mb, "<= 5 s", ok)
    blob = pickle.dumps(model)
    times = []
    for _ in range(repeat):
        fresh = pickle.loads(blob)
        t0 = time.perf_counter()
        fresh.partial_fit(log2)
        times.append(time.perf_counter() - t0)
    refit = float(np.median(times))
    t.add(f"partial_fit +{rows / 1e6:g}M rows", refit, "-", "<= 5 s",
          "yes" if refit <= 5 else "NO")  # fmt: skip
    return (
        f"{n_segments} segments x {len(channels)} channels, "
        f"{model.converged_.mean():.1%} of the cells converged.\n\n" + t.markdown()
    )


def run_plan(n_users: int, n_segments: int) -> str:
    import growthmachine as gm

    tp = gm.touchpoint
    rng = np.random.default_rng(0)
    log = make_log(10_000_000, n_segments, ["ads", "sms", "email"], seed=2)
    model = tp.ResponseModel().fit(log)
    planner = tp.FrequencyPlanner(
        [tp.Channel("ads", 0.01, 10, capacity=0.8 * n_users), tp.Channel("sms", 0.03, 1),
         tp.Channel("email", 0.001, 1)],
        14, model=model, explore_share=0.05,
    )  # fmt: skip
    seg = rng.integers(0, n_segments, n_users)
    reach = rng.random((n_users, 3)) < [1.0, 0.35, 0.6]
    value = rng.gamma(2.0, 5.0, n_users)
    users = np.arange(n_users)
    budget = 0.06 * n_users
    m = measure(
        lambda: planner.plan(users, budget, value=value, segment=seg, reachable=reach),
        repeat=1,
    )
    p = m.result
    t0 = time.perf_counter()
    rows = len(p.schedule())
    t_sched = time.perf_counter() - t0
    t = Table(["case", "seconds", "peak MB", "gap", "status", "target", "meets"])
    ok = m.median <= 30 and p.gap <= 1e-4 and m.peak_mb <= 4096
    t.add(f"plan {n_users / 1e6:g}M users x 3 channels x 14 days", m.median, m.peak_mb,
          f"{p.gap:.1e}", p.status, "<= 30 s, gap <= 1e-4, <= 4 GB", "yes" if ok else "NO")  # fmt: skip
    t.add(f"schedule: {rows:,} exposure rows", t_sched, "-", "-", "-", "-", "-")
    return (
        f"{n_segments} segments, {len(planner.levels)} levels per channel; "
        f"{int((p.assignment['exposures'] > 0).sum()):,} users reached, average frequency "
        f"{p.average_frequency:.2f}, spend {p.cost['total']:,.0f} of {budget:,.0f}; "
        f"{p.usage.loc[0, 'share_of_upper']:.1%} of the budget used.\n\n" + t.markdown()
    )


def run_world(n_users: int, seed: int) -> str:
    from benchmarks import touchpoint_world as tw

    cols = ["incremental_conversions", "optouts", "cost", "value", "reached",
            "average_frequency", "x uniform", "x max caps", "share of true segment plan",
            "forecast", "optouts forecast", "gap"]  # fmt: skip
    parts = []
    for world in tw.WORLDS:
        t0 = time.perf_counter()
        for df in tw.run(n_users, world, seed=seed):
            t = Table(["policy", *cols])
            for name, r in df.iterrows():
                t.add(name, *[r.get(c, float("nan")) for c in cols])
            a = df.attrs
            parts.append(
                f"**{tw.world_name(world)} world, {a['tag']}** (budget {a['budget']:,.0f}, "
                f"{a['segments']} segments; true curves {a['truth_s']:.1f} s)\n\n" + t.markdown()
            )
        parts.append(f"({tw.world_name(world)} world: {time.perf_counter() - t0:.0f} s in all)")
    return "\n\n".join(parts)


def run_height(n_users: int, seeds: tuple[int, ...] = (0, 1)) -> str:
    from benchmarks import touchpoint_height as th
    from benchmarks import touchpoint_world as tw

    cols = ["R2", "x uniform", "share of true segment plan", "optouts / uniform's"]
    parts = []
    for world in tw.WORLDS:
        for seed in seeds:
            t0 = time.perf_counter()
            df = th.run(n_users, world, seed=seed)
            t = Table(["height", *cols])
            for name, r in df.iterrows():
                t.add(name, *[r[c] for c in cols])
            parts.append(
                f"**{tw.world_name(world)} world, seed {seed}, round 1** ({df.attrs['features']} "
                f"features; sd of the true height {df.attrs['sd_true']:.2f}; "
                f"{time.perf_counter() - t0:.0f} s)\n\n" + t.markdown()
            )
    return "\n\n".join(parts)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks touchpoint")
    ap.add_argument("cases", nargs="*", default=["fit", "plan", "world"])  # and "height"
    ap.add_argument("--rows", type=float, default=10e6)
    ap.add_argument("--segments", type=int, default=200)
    ap.add_argument("--users", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import growthmachine as gm

    gm.set_num_threads(args.threads)
    if "fit" in args.cases:
        body = run_fit(int(args.rows), args.segments, args.repeat)
        print(body)
        write_section("touchpoint_fit", "Touchpoint: ResponseModel refit from 10M exposure-log rows",
                      command=f"python -m benchmarks touchpoint fit --rows {args.rows:g}",
                      body=body)  # fmt: skip
    if "plan" in args.cases:
        n = int(args.users or 10_000_000)
        body = run_plan(n, 2000)
        print(body)
        write_section(f"touchpoint_plan_{n}", f"Touchpoint: frequency planning, {n:,} users",
                      command=f"python -m benchmarks touchpoint plan --users {n:g}", body=body)  # fmt: skip
    if "height" in args.cases:
        n = int(args.users or 100_000)
        body = run_height(n) + "\n\n" + HEIGHT_NOTE
        print(body)
        write_section(f"touchpoint_height_{n}",
                      f"Touchpoint: what a per-user curve height can add ({n:,} users)",
                      command=f"python -m benchmarks touchpoint height --users {n}", body=body)  # fmt: skip
    if "world" in args.cases:
        n = int(args.users or 100_000)
        body = run_world(n, args.seed) + "\n\n" + WORLD_NOTE
        print(body)
        write_section(f"touchpoint_world_{n}",
                      f"Touchpoint: decision quality on the world's truth ({n:,} users)",
                      command=f"python -m benchmarks touchpoint world --users {n}", body=body)  # fmt: skip
    return 0


HEIGHT_NOTE = (
    "The planner's conversions plan at round 1 (as `planner [conversions]` in the touchpoint "
    "world section: fitted segment curves, the uniform rule's budget, opt-outs capped at the "
    "model's estimate of the uniform plan's) with each user's curve height scaled by a "
    "multiplier from: nothing; the model's fitted linear height (`planner+height`); the least "
    "squares of the true height on the features, and gradient-boosted trees of it (without and "
    "with the segment), cross-fitted over two folds, i.e. the best a linear and a bending "
    "height can do given the truth; the true height. Features: `user_covariates` of a "
    "UserInsight fitted on the world's transactions. `R2`: of the multiplier against the true "
    "one. See `benchmarks/touchpoint_height.py`."
)

WORLD_NOTE = (
    "Exact expectations (`Environment.expected_outcome`) of every plan at the same state of the "
    "world, same users, same budget (the uniform rule's spend). Round 0 is the experiment "
    "from flat priors (every user on a randomised frequency); round 1 plans from the curves "
    "fitted on it; round 3 after three observe -> re-plan rounds. `value` = 10 x conversions - "
    "opt-outs - cost. `forecast` and `optouts forecast`: the planner's own expected conversions "
    "and opt-outs (its fitted curves), beside the true ones. `planner+height`: the same planner "
    "and curves with each user's curve height scaled from its observable features "
    "(`world_covariates`, the model's height multipliers fitted on the randomised users' "
    "features, which the loop logs; the loop's own plans do not use them). The planner's "
    "`[conversions]` plans cap their expected opt-outs at the model's estimate of the uniform "
    "plan's less 1.645 standard errors of the model's uncertainty in the difference "
    "(`plan(max_optouts=uniform, optout_z=1.645)`). The loop's randomised users (10 %) get a "
    'uniformly random level of their channel (`explore_levels="full"`) and the curves\' Hill '
    "slope has a weak prior centred on 1 (`slope_prior=(1, 1)`). Worlds: the default, "
    "`benchmarks/worlds/fatigued.yaml` (stronger fatigue) and `benchmarks/worlds/concave.yaml` "
    "(exposures work early: Hill slope 1.2). "
    "See `benchmarks/touchpoint_world.py` for every policy."
)
