"""Real-time engine benchmark: throughput and latency of the policies (d=32, 10 actions) side by
side with MABWiser, River and Vowpal Wabbit; regret cost of batching; budget pacing over 1M
events; offline evaluation of 10M x 10 logged rounds; the budgeted session policy on the world.

    python -m benchmarks realtime [--quick]
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

import growthmachine as gm
from benchmarks.harness import Table, measure, write_section
from growthmachine.realtime import BudgetPacer, LinTS, LinUCB, ope

D, K = 32, 10


def linear_stream(n, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(K, D)) / np.sqrt(D)
    X = rng.normal(size=(n, D))
    return X, theta, rng


class BlasLoad:
    """numpy matmuls in another thread (its BLAS uses its own threads)."""

    def __enter__(self):
        self.stop = threading.Event()
        m = np.random.default_rng(0).normal(size=(600, 600))

        def run():
            a = m
            while not self.stop.is_set():
                a = np.tanh(a @ m / 600)

        self.t = threading.Thread(target=run, daemon=True)
        self.t.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()


def latencies(fn, n):
    ts = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn()
        ts[i] = time.perf_counter_ns() - t0
    return np.percentile(ts, 50) / 1e3, np.percentile(ts, 99) / 1e3


def _cpu_rate(fn, n):
    """Events per second of process CPU time (all our threads): a contention-free measure of
    efficiency; on an idle machine the wall-clock rate with 2 threads approaches 2x per core."""
    t0 = time.process_time()
    fn()
    return n / (time.process_time() - t0)


def _throughput_rows(t, X, A, R, n_events, tag):
    pol = LinUCB(K, D)
    if not tag:
        cpu_u = _cpu_rate(lambda: LinUCB(K, D).update_batch(X, A, R), n_events)
    m = measure(lambda: pol.update_batch(X, A, R), repeat=3)
    t.add(
        f"update_batch d={D} K={K}{tag}",
        "growthmachine LinUCB",
        n_events / m.median,
        None,
        None,
        f"{n_events:,} events per call (target >= 3M/s)"
        + ("" if tag else f"; {cpu_u:,.0f} events per CPU-second"),
    )
    if not tag:
        cpu_c = _cpu_rate(lambda: pol.choose_batch(X), n_events)
    m = measure(lambda: pol.choose_batch(X), repeat=3)
    t.add(
        f"choose_batch{tag}",
        "growthmachine LinUCB",
        n_events / m.median,
        None,
        None,
        f"{n_events:,} rows per call (target >= 2M/s)"
        + ("" if tag else f"; {cpu_c:,.0f} rows per CPU-second"),
    )
    ts = LinTS(K, D, seed=1)
    ts.update_batch(X, A, R)
    m = measure(lambda: ts.choose_batch(X), repeat=3)
    t.add(f"choose_batch{tag}", "growthmachine LinTS", n_events / m.median, None, None, "")
    x = X[0]
    p50, p99 = latencies(lambda: pol.choose(x), 20_000)
    t.add(
        f"single choose{tag}",
        "growthmachine LinUCB",
        1e6 / p50,
        p50,
        p99,
        "from Python (target p50 <= 3 us, p99 <= 10 us)",
    )
    i = [0]

    def one_update():
        j = i[0] % 1000
        pol.update(X[j], int(A[j]), float(R[j]))
        i[0] += 1

    p50, p99 = latencies(one_update, 20_000)
    t.add(f"single update{tag}", "growthmachine LinUCB", 1e6 / p50, p50, p99, "")


def throughput(n_events, quick):
    t = Table(["case", "implementation", "events/s", "p50 us", "p99 us", "notes"])
    X, theta, rng = linear_stream(n_events)
    A = rng.integers(0, K, n_events)
    R = np.einsum("nd,nd->n", X, theta[A]) + 0.1 * rng.normal(size=n_events)
    for load in (False, True):
        ctx = BlasLoad() if load else None
        tag = " + numpy matmul thread" if load else ""
        if ctx:
            ctx.__enter__()
        try:
            _throughput_rows(t, X, A, R, n_events, tag)
        finally:
            if ctx:
                ctx.__exit__()
    peers(t, X, A, R, quick)
    return t


def peers(t, X, A, R, quick):
    # MABWiser LinUCB, batches of 1000 and one at a time.
    try:
        from mabwiser.mab import MAB, LearningPolicy

        nb = 5 if quick else 20
        mab = MAB(
            arms=list(range(K)), learning_policy=LearningPolicy.LinUCB(alpha=1.0, l2_lambda=1.0)
        )
        mab.fit(A[:1000], R[:1000], X[:1000])
        t0 = time.perf_counter()
        for b in range(1, nb + 1):
            mab.partial_fit(
                A[b * 1000 : (b + 1) * 1000],
                R[b * 1000 : (b + 1) * 1000],
                X[b * 1000 : (b + 1) * 1000],
            )
        upd = nb * 1000 / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for b in range(1, nb + 1):
            mab.predict(X[b * 1000 : (b + 1) * 1000])
        dec = nb * 1000 / (time.perf_counter() - t0)
        t.add(
            "update_batch (batches of 1000)",
            "MABWiser LinUCB",
            upd,
            None,
            None,
            "default BLAS threads",
        )
        t.add(
            "choose_batch (batches of 1000)",
            "MABWiser LinUCB",
            dec,
            None,
            None,
            "default BLAS threads",
        )
        n1 = 200
        t0 = time.perf_counter()
        for j in range(n1):
            mab.predict(X[j : j + 1])
            mab.partial_fit(A[j : j + 1], R[j : j + 1], X[j : j + 1])
        t.add(
            "one event at a time (choose + update)",
            "MABWiser LinUCB",
            n1 / (time.perf_counter() - t0),
            None,
            None,
            "",
        )
    except Exception as e:  # noqa: BLE001
        t.add("-", "MABWiser", None, None, None, f"failed: {e}")
    # River LinUCBDisjoint.
    try:
        from river import bandit

        pol = bandit.LinUCBDisjoint(alpha=1.0, seed=0)
        arms = list(range(K))
        n1 = 300 if quick else 1000
        ctxs = [{f"x{i}": float(v) for i, v in enumerate(row)} for row in X[:n1]]
        t0 = time.perf_counter()
        for j in range(n1):
            a = pol.pull(arms, context=ctxs[j])
            pol.update(a, ctxs[j], float(R[j]))
        t.add(
            "one event at a time (choose + update)",
            "River LinUCBDisjoint",
            n1 / (time.perf_counter() - t0),
            None,
            None,
            "",
        )
    except Exception as e:  # noqa: BLE001
        t.add("-", "River", None, None, None, f"failed: {e}")
    # Vowpal Wabbit contextual bandit (cb_explore_adf) driven from Python.
    try:
        import vowpalwabbit

        vw = vowpalwabbit.Workspace("--cb_explore_adf -q sa --epsilon 0.05 --quiet")
        n1 = 1000 if quick else 3000
        t0 = time.perf_counter()
        for j in range(n1):
            shared = "shared |s " + " ".join(f"f{i}:{v:.4f}" for i, v in enumerate(X[j]))
            ex = [shared] + [f"|a a{a}" for a in range(K)]
            p = vw.predict(ex)
            a = int(np.argmax(p))
            lab = [shared] + [
                f"{'0:' + format(-R[j], '.4f') + ':' + format(p[a], '.4f') + ' ' if b == a else ''}|a a{b}"
                for b in range(K)
            ]
            vw.learn(lab)
        t.add(
            "one event at a time (choose + update)",
            "Vowpal Wabbit cb_explore_adf",
            n1 / (time.perf_counter() - t0),
            None,
            None,
            "text examples from Python",
        )
        vw.finish()
    except Exception as e:  # noqa: BLE001
        t.add("-", "Vowpal Wabbit", None, None, None, f"failed: {e}")


def regret(n, quick):
    """Cumulative regret of exact LinUCB (update after every event) and batched LinUCB."""
    t = Table(["stream", "policy", "batch size", "cumulative regret", "regret / exact", "notes"])
    X, theta, rng = linear_stream(n, seed=3)
    mean = X @ theta.T
    noise = 0.1 * rng.normal(size=n)
    best = mean.max(axis=1)
    exact = None
    for bs, hall in [
        (1, False),
        (10, False),
        (100, False),
        (1000, False),
        (10_000, False),
        (100, True),
        (1000, True),
        (10_000, True),
    ]:
        pol = LinUCB(K, D, alpha=1.0, ridge=1.0)
        reg = 0.0
        if bs == 1:
            for j in range(n):
                a = pol.choose(X[j])
                pol.update(X[j], a, mean[j, a] + noise[j])
                reg += best[j] - mean[j, a]
        else:
            for s in range(0, n, bs):
                xb = X[s : s + bs]
                a = pol.choose_batch(xb, hallucinate=hall)
                idx = np.arange(s, s + len(a))
                pol.update_batch(xb, a, mean[idx, a] + noise[idx])
                reg += np.sum(best[idx] - mean[idx, a])
        exact = reg if bs == 1 else exact
        t.add(
            f"linear d={D} K={K}, {n:,} events",
            "growthmachine LinUCB (alpha 1, ridge 1)",
            bs,
            reg,
            reg / exact,
            "exact = textbook decisions"
            if bs == 1
            else "choose_batch(hallucinate=True) then update_batch"
            if hall
            else "choose_batch then update_batch",
        )
    # Vowpal Wabbit on a prefix (it runs ~3k events/s from Python).
    try:
        import vowpalwabbit

        n_vw = min(n, 5000 if quick else 20_000)
        for args in (
            "--cb_explore_adf -q sa --epsilon 0.02 --quiet",
            "--cb_explore_adf -q sa --squarecb --quiet",
        ):
            vw = vowpalwabbit.Workspace(args)
            reg = 0.0
            for j in range(n_vw):
                shared = "shared |s " + " ".join(f"f{i}:{v:.4f}" for i, v in enumerate(X[j]))
                p = vw.predict([shared] + [f"|a a{a}" for a in range(K)])
                a = int(np.random.default_rng(j).choice(K, p=np.asarray(p) / np.sum(p)))
                r = mean[j, a] + noise[j]
                vw.learn(
                    [shared]
                    + [(f"0:{-r:.4f}:{p[a]:.4f} " if b == a else "") + f"|a a{b}" for b in range(K)]
                )
                reg += best[j] - mean[j, a]
            vw.finish()
            pol = LinUCB(K, D)
            ours = 0.0
            for j in range(n_vw):
                a = pol.choose(X[j])
                pol.update(X[j], a, mean[j, a] + noise[j])
                ours += best[j] - mean[j, a]
            t.add(
                f"same stream, first {n_vw:,} events",
                f"Vowpal Wabbit {args.replace(' --quiet', '')}",
                1,
                reg,
                reg / ours,
                "ratio to exact LinUCB on the same prefix",
            )
    except Exception as e:  # noqa: BLE001
        t.add("-", "Vowpal Wabbit", None, None, None, f"failed: {e}")
    return t


def pacing(n):
    t = Table(
        [
            "stream",
            "policy",
            "events",
            "budget",
            "spend",
            "spend / budget",
            "max overshoot",
            "final price",
        ]
    )
    rng = np.random.default_rng(5)
    d = 8
    theta = rng.normal(size=(4, d)) / np.sqrt(d)
    costs = np.array([0.0, 1.0, 2.0, 5.0])
    budget = 0.5 * n
    pacer = BudgetPacer(LinTS(4, d, seed=2), costs, budget, horizon=n)
    bs = 1000
    over = 0.0
    for s in range(0, n, bs):
        X = rng.normal(size=(bs, d))
        # drifting traffic: value of the offers swings over the horizon
        drift = 1.0 + 0.8 * np.sin(2 * np.pi * 3 * s / n)
        mean = drift * (X @ theta.T + np.array([0.0, 1.0, 2.0, 4.0]))
        a = pacer.choose_batch(X)
        pacer.update_batch(X, a, mean[np.arange(bs), a] + rng.normal(size=bs))
        over = max(over, pacer.spend_[0] - budget)
    t.add(
        "drifting traffic, 4 actions (costs 0, 1, 2, 5)",
        "BudgetPacer(LinTS)",
        n,
        budget,
        pacer.spend_[0],
        f"{pacer.spend_[0] / budget:.5f}",
        over,
        pacer.price_[0],
    )
    return t


def offline_eval(n, quick):
    t = Table(["case", "implementation", "median s", "peak MB", "rounds/s", "notes"])
    rng = np.random.default_rng(7)
    k = 10
    a = rng.integers(0, k, n)
    r = rng.random(n)
    ps = np.full(n, 1 / k)
    pi = rng.random((n, k))
    pi /= pi.sum(1, keepdims=True)
    q = rng.random((n, k))
    m = measure(
        lambda: ope.evaluate(actions=a, rewards=r, propensities=ps, action_probs=pi, q_hat=q),
        repeat=3,
    )
    t.add(
        f"{n:,} rounds x {k} actions, 5 estimators + CIs",
        "growthmachine ope.evaluate",
        m.median,
        m.peak_mb,
        n / m.median,
        "one parallel pass, no (n, actions) temporaries",
    )

    def numpy_ref():
        idx = np.arange(n)
        iw = pi[idx, a] / ps
        qf = q[idx, a]
        dm = np.average(q, weights=pi, axis=1)
        out = [
            r * iw,
            r * iw / iw.mean(),
            dm,
            dm + iw * (r - qf),
            dm + (iw <= np.inf) * iw * (r - qf),
        ]
        return [(v.mean(), v.std(ddof=1)) for v in out]

    if not quick or n <= 2_000_000:
        p = measure(numpy_ref, repeat=1)
        t.add(
            "same",
            "numpy (obp's formulas)",
            p.median,
            p.peak_mb,
            n / p.median,
            "obp installs only on Python < 3.11",
        )
    return t


def world_table(quick):
    """Item 7: the budgeted SessionPolicy vs no intervention and "exit offer to all" on the
    session stream of growthmachine.sim (same sessions for all three)."""
    from growthmachine.realtime import world as _world

    t = Table(
        [
            "world",
            "budget",
            "policy",
            "net value / session",
            "2nd half",
            "cost / session",
            "spend / budget",
        ]
    )
    n, rounds = (5000, 10) if quick else (20_000, 20)
    pop = gm.sim.Population.generate(20_000, days=120, seed=0, progress=False)
    env = gm.sim.Environment(pop, seed=0)
    for share in (1.0, 2.0):
        summary, runs, sp = _world.compare(
            lambda sd: env.sessions(n, seed=sd), n=n, rounds=rounds, budget_share=share
        )
        for _, row in summary.iterrows():
            b = row["budget"]
            t.add(
                f"gm.sim sessions, {rounds} x {n:,}",
                f"{share:g} x rule's spend",
                row["policy"],
                row["net value / session"],
                row["net value / session (2nd half)"],
                row["cost / session"],
                "-" if b != b else f"{row['total cost'] / b:.3f}",
            )
    return t


def main(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks realtime")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = ap.parse_args(argv)
    q = args.quick
    gm.set_num_threads(2)
    parts = []
    t1 = throughput(200_000 if q else 1_000_000, q)
    parts.append("### Throughput and latency (d=32, 10 actions, 2 threads)\n\n" + t1.markdown())
    t2 = regret(100_000 if q else 1_000_000, q)
    parts.append("### Regret cost of batching (linear stream)\n\n" + t2.markdown())
    t3 = pacing(100_000 if q else 1_000_000)
    parts.append("### Budget pacing\n\n" + t3.markdown())
    t4 = offline_eval(1_000_000 if q else 10_000_000, q)
    parts.append("### Offline policy evaluation\n\n" + t4.markdown())
    parts.append(
        "### Budgeted session policy on the synthetic world\n\n" + world_table(q).markdown()
    )
    note = (
        "The load average above says how much other work shared the 2 cores: wall-clock rates "
        "drop with it, the per-CPU-second rates in the notes do not. Peers ran in the same "
        "process (pip install -e '.[bench]': MABWiser, River, Vowpal Wabbit)."
    )
    write_section(
        "realtime",
        "Real-time strategy engine",
        command="python -m benchmarks realtime" + (" --quick" if q else ""),
        body=note + "\n\n" + "\n\n".join(parts),
    )
    return 0
