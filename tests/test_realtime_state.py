"""Persistence (pickle, save/load, corrupt files) and sharing a policy between threads."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

import growthmachine as gm
from growthmachine.realtime import EpsilonGreedy, LinTS, LinUCB, LogisticTS

ALL = [LinUCB, LinTS, LogisticTS, EpsilonGreedy]


def trained(cls, n=2000, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    pol = cls(k, d, seed=3)
    a = pol.choose_batch(X)
    r = (X[:, 0] * (a - 1) > 0).astype(float)
    pol.update_batch(X, a, r)
    return pol, X


@pytest.mark.parametrize("cls", ALL)
def test_pickle_and_save_load_round_trip_exactly(cls, tmp_path):
    pol, X = trained(cls)
    for how in ("pickle", "file"):
        clone = pickle.loads(pickle.dumps(pol)) if how == "pickle" else _save_load(pol, tmp_path)
        assert type(clone) is cls
        assert clone.get_params() == pol.get_params()
        assert np.array_equal(clone.theta_, pol.theta_)
        assert np.array_equal(clone.a_inv_, pol.a_inv_)
        assert np.array_equal(clone.counts_, pol.counts_)
        assert clone.n_decisions_ == pol.n_decisions_
        # the clone continues exactly as the original (same random stream position)
        assert np.array_equal(clone.choose_batch(X[:300]), pol.choose_batch(X[:300]))
        pol = clone


def _save_load(pol, tmp_path):
    path = tmp_path / "policy.gm"
    pol.save(path)
    return type(pol).load(path)


@pytest.mark.parametrize("cls", ALL)
def test_truncated_and_bit_flipped_files_raise_state_error(cls, tmp_path):
    pol, _ = trained(cls, n=200)
    path = tmp_path / "p.gm"
    pol.save(path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    for cut in [0, 1, 10, len(data) // 2, len(data) - 1]:
        path.write_bytes(data[:cut])
        with pytest.raises(gm.StateError):
            cls.load(path)
    n_err = 0
    for pos in rng.integers(0, len(data), 200):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(flipped))
        try:
            back = cls.load(path)
        except gm.StateError:
            n_err += 1
            continue
        # a flip that still loads must have changed nothing that matters (e.g. JSON whitespace)
        assert np.array_equal(back.theta_, pol.theta_) and np.array_equal(back.a_inv_, pol.a_inv_)
    assert n_err >= 190
    fn, (klass, state) = pol.__reduce__()
    with pytest.raises(gm.StateError):
        fn(klass, state[:-5] + b"garbage")
    other = LinUCB if cls is not LinUCB else LinTS
    path.write_bytes(data)
    with pytest.raises(gm.StateError, match="expected a"):
        other.load(path)


@pytest.mark.parametrize("cls", [LinUCB, LinTS])
def test_threads_sharing_a_policy_lose_no_update(cls):
    """Each thread owns one action (so per-action event order is fixed) and also calls choose
    concurrently: the final state must equal the sequential run's, bit for bit."""
    k, d, per = 6, 8, 3000
    rng = np.random.default_rng(1)
    X = rng.normal(size=(k, per, d))
    R = rng.normal(size=(k, per))
    shared = cls(k, d, seed=5)
    errors = []

    def worker(a):
        try:
            for i in range(per):
                shared.choose(X[a, i])
                if i % 100 == 99:
                    shared.update_batch(
                        X[a, i - 99 : i + 1][:50], np.full(50, a), R[a, i - 99 : i - 49]
                    )
                    for j in range(i - 49, i + 1):
                        shared.update(X[a, j], a, R[a, j])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(a,)) for a in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    seq = cls(k, d, seed=5)
    for a in range(k):
        for i in range(99, per, 100):
            seq.update_batch(X[a, i - 99 : i + 1][:50], np.full(50, a), R[a, i - 99 : i - 49])
            for j in range(i - 49, i + 1):
                seq.update(X[a, j], a, R[a, j])
    assert shared.n_updates_ == seq.n_updates_ == k * per
    assert shared.n_decisions_ == k * per
    assert np.array_equal(shared.counts_, seq.counts_)
    assert np.array_equal(shared.theta_, seq.theta_)
    assert np.array_equal(shared.a_inv_, seq.a_inv_)


def test_big_batches_from_threads_while_numpy_runs():
    """Large batches release the GIL; concurrent batch updates and BLAS work stay correct."""
    k, d = 4, 16
    rng = np.random.default_rng(2)
    X = rng.normal(size=(8, 20_000, d))
    R = rng.normal(size=(8, 20_000))
    pol = LinUCB(k, d)
    stop = threading.Event()

    def blas():
        m = rng.normal(size=(300, 300))
        while not stop.is_set():
            m = np.tanh(m @ m / 300)

    bt = threading.Thread(target=blas)
    bt.start()

    def worker(i):
        pol.update_batch(X[i], np.full(20_000, i % k), R[i])
        pol.choose_batch(X[i][:5000])

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    bt.join()
    assert pol.n_updates_ == 8 * 20_000
    assert np.array_equal(pol.counts_, np.full(k, 2 * 20_000))
