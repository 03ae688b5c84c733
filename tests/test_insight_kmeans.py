"""KMeans, MiniBatchKMeans and StandardScaler: scikit-learn agreement, invariants, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans as SKKMeans
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler as SKScaler

import growthmachine as gm
from growthmachine.insight import KMeans, MiniBatchKMeans, StandardScaler


def blobs(n=3000, d=5, centers=12, seed=0, dtype=np.float64):
    X, _ = make_blobs(n, n_features=d, centers=centers, cluster_std=1.5, random_state=seed)
    return X.astype(dtype)


@pytest.fixture(autouse=True)
def _threads():
    before = gm.get_num_threads()
    yield
    gm.set_num_threads(before)


@pytest.mark.parametrize("algorithm", ["lloyd", "yinyang"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_init_same_result_as_sklearn(algorithm, dtype):
    X = blobs(4000, 6, 20, seed=1, dtype=dtype)
    init = X[::200][:20].astype(np.float64)
    ours = KMeans(20, init=init, max_iter=15, tol=0, algorithm=algorithm).fit(X)
    sk = SKKMeans(20, init=init.astype(dtype), n_init=1, max_iter=15, tol=0, algorithm="lloyd")
    sk.fit(X)
    assert ours.n_iter_ == sk.n_iter_
    assert (ours.labels_ == sk.labels_).mean() > 0.999
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=rtol)
    np.testing.assert_allclose(
        ours.cluster_centers_, sk.cluster_centers_, rtol=rtol, atol=rtol * 10
    )
    assert ours.cluster_centers_.dtype == dtype


@pytest.mark.parametrize(
    "seed,d,centers,k", [(0, 2, 5, 5), (1, 8, 30, 30), (2, 16, 50, 40), (3, 3, 10, 25)]
)
def test_final_inertia_not_worse_than_sklearn(seed, d, centers, k):
    X = blobs(6000, d, centers, seed=seed)
    # mean over seeds: single runs of both land in different local minima
    ours = np.mean([KMeans(k, seed=s).fit(X).inertia_ for s in range(5)])
    sk = np.mean([SKKMeans(k, n_init=1, random_state=s).fit(X).inertia_ for s in range(5)])
    assert ours <= sk * 1.02


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 300),
    d=st.integers(1, 6),
    k=st.integers(1, 20),
    seed=st.integers(0, 2**32),
    algorithm=st.sampled_from(["lloyd", "yinyang", "auto"]),
    init=st.sampled_from(["k-means||", "k-means++", "random"]),
)
def test_invariants(n, d, k, seed, algorithm, init):
    k = min(k, n)
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n, d)) * 3, 1)  # rounding makes ties and duplicates
    m = KMeans(k, init=init, seed=seed % 1000, algorithm=algorithm, max_iter=50).fit(X)
    C = m.cluster_centers_
    D = ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1)
    # labels are nearest centers (up to ties) of the final centers
    assert np.all(D[np.arange(n), m.labels_] <= D.min(1) + 1e-9 * (1 + D.min(1)))
    # inertia equals the recomputed sum
    np.testing.assert_allclose(m.inertia_, D[np.arange(n), m.labels_].sum(), rtol=1e-9, atol=1e-9)
    # with tol=0 the loop stops early only when no label changes: the centers are then the
    # means of their points. (With tol > 0 it may stop on a small center shift and relabel
    # against the final centers, as scikit-learn does; tied points on a boundary can then
    # move, so a center need not be its points' mean: seed 41949, n=211, d=1, k=9.)
    s = KMeans(k, init=init, seed=seed % 1000, algorithm=algorithm, max_iter=50, tol=0.0).fit(X)
    if s.n_iter_ < 50:
        for c in np.unique(s.labels_):
            np.testing.assert_allclose(
                s.cluster_centers_[c], X[s.labels_ == c].mean(0), rtol=1e-9, atol=1e-9
            )
    assert m.labels_.dtype == np.int32 and m.labels_.min() >= 0 and m.labels_.max() < k
    # predict agrees with labels_ (up to ties between equally near centers)
    pred = m.predict(X)
    np.testing.assert_allclose(
        D[np.arange(n), pred], D[np.arange(n), m.labels_], rtol=1e-9, atol=1e-9
    )


def test_determinism_threads_and_seeds():
    X = blobs(60_000, 8, 40, seed=5, dtype=np.float32)
    outs = []
    for threads in (1, 2):
        gm.set_num_threads(threads)
        m = KMeans(40, seed=7, tol=0, max_iter=30).fit(X)
        outs.append((m.cluster_centers_.copy(), m.labels_.copy(), m.inertia_, m.n_iter_))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    assert outs[0][2] == outs[1][2] and outs[0][3] == outs[1][3]
    a = KMeans(40, seed=7).fit(X)
    b = KMeans(40, seed=7).fit(X)
    c = KMeans(40, seed=8).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)
    for init in ("k-means||", "k-means++", "random"):
        gm.set_num_threads(1)
        i1 = KMeans(40, init=init, seed=3, max_iter=1).fit(X).cluster_centers_
        gm.set_num_threads(2)
        i2 = KMeans(40, init=init, seed=3, max_iter=1).fit(X).cluster_centers_
        np.testing.assert_array_equal(i1, i2)


def test_float32_kept_and_close_to_float64():
    X = blobs(5000, 6, 15, seed=2)
    m64 = KMeans(15, seed=0).fit(X)
    m32 = KMeans(15, seed=0).fit(X.astype(np.float32))
    assert m32.cluster_centers_.dtype == np.float32 and m64.cluster_centers_.dtype == np.float64
    assert isinstance(m32.inertia_, float)
    np.testing.assert_allclose(m32.inertia_, m64.inertia_, rtol=1e-3)
    assert (
        KMeans(15, dtype="float64").fit(X.astype(np.float32)).cluster_centers_.dtype == np.float64
    )
    assert KMeans(15, dtype="float32").fit(X).cluster_centers_.dtype == np.float32
    # predict on float64 input of a float32 model works (converted once)
    assert m32.predict(X).shape == (5000,)


def test_transform_score_fit_predict_and_tables():
    import pandas as pd
    import polars as pl

    X = blobs(500, 3, 4)
    m = KMeans(4, seed=1)
    labels = m.fit_predict(X)
    T = m.transform(X)
    assert T.shape == (500, 4)
    np.testing.assert_allclose(
        T, np.sqrt(((X[:, None] - m.cluster_centers_[None]) ** 2).sum(-1)), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(T.argmin(1), labels)
    np.testing.assert_allclose(-m.score(X), m.inertia_, rtol=1e-12)
    df = pd.DataFrame(X, columns=list("abc"))
    np.testing.assert_array_equal(KMeans(4, seed=1).fit(df).labels_, labels)
    np.testing.assert_array_equal(KMeans(4, seed=1).fit(pl.from_pandas(df)).labels_, labels)
    assert m.get_params()["n_clusters"] == 4
    assert m.set_params(n_clusters=3).n_clusters == 3


def test_empty_clusters_are_reseeded():
    # Two tight groups, one far-away init center that attracts nothing.
    X = np.vstack([np.zeros((50, 2)), np.ones((50, 2)) * 10, [[5.0, 5.0]]])
    init = np.array([[0.0, 0.0], [10.0, 10.0], [1000.0, 1000.0]])
    m = KMeans(3, init=init, max_iter=10).fit(X)
    assert sorted(np.bincount(m.labels_, minlength=3)) == [1, 50, 50]
    assert m.inertia_ == pytest.approx(0.0, abs=1e-9)


def test_errors():
    X = blobs(100, 3, 3)
    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(101).fit(X)
    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(0).fit(X)
    Xn = X.copy()
    Xn[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"X: must be finite.*row 5, column 1"):
        KMeans(3).fit(Xn)
    Xi = X.astype(np.float32)
    Xi[7, 2] = np.inf
    with pytest.raises(ValueError, match="X: must be finite"):
        KMeans(3).fit(Xi)
    with pytest.raises(ValueError, match="X: is empty"):
        KMeans(3).fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="X: expected a 2-d"):
        KMeans(3).fit(np.zeros(10))
    with pytest.raises(ValueError, match="init"):
        KMeans(3, init="kmeans").fit(X)
    with pytest.raises(ValueError, match="init"):
        KMeans(3, init=np.zeros((2, 3))).fit(X)
    with pytest.raises(ValueError, match="init"):
        KMeans(3, init=np.full((3, 3), np.nan)).fit(X)
    with pytest.raises(ValueError, match="algorithm"):
        KMeans(3, algorithm="fast").fit(X)
    with pytest.raises(ValueError, match="tol"):
        KMeans(3, tol=-1).fit(X)
    with pytest.raises(ValueError, match="max_iter"):
        KMeans(3, max_iter=0).fit(X)
    with pytest.raises(TypeError, match="n_clusters"):
        KMeans(2.5).fit(X)
    with pytest.raises(TypeError, match="X"):
        KMeans(3).fit(np.array([["a", "b"]]))
    with pytest.raises(gm.StateError, match="not fitted"):
        KMeans(3).predict(X)
    m = KMeans(3).fit(X)
    with pytest.raises(ValueError, match="X: has 2 features"):
        m.predict(X[:, :2])


def test_single_sample_and_k_equals_n():
    X = np.array([[1.0, 2.0]])
    m = KMeans(1).fit(X)
    assert m.inertia_ == 0 and m.labels_.tolist() == [0]
    X = blobs(20, 2, 3)
    m = KMeans(20, init="random").fit(X)
    assert m.inertia_ == pytest.approx(0.0, abs=1e-12)
    m = KMeans(5).fit(np.ones((30, 2)))  # fewer distinct points than clusters
    assert m.inertia_ == 0.0


def test_pickle_round_trip():
    X = blobs(800, 4, 5, dtype=np.float32)
    for model in (KMeans(5, seed=3), MiniBatchKMeans(5, batch_size=100), StandardScaler()):
        model.fit(X)
        back = pickle.loads(pickle.dumps(model))
        if isinstance(model, StandardScaler):
            np.testing.assert_array_equal(back.transform(X), model.transform(X))
        else:
            np.testing.assert_array_equal(back.cluster_centers_, model.cluster_centers_)
            np.testing.assert_array_equal(back.predict(X), model.predict(X))
    state = KMeans(5).fit(X).__getstate__()
    state["__gm_version__"] = 99
    with pytest.raises(gm.StateError, match="format version 99"):
        KMeans().__setstate__(state)


def test_minibatch():
    X = blobs(20_000, 6, 10, seed=4)
    full = KMeans(10, seed=0).fit(X)
    mb = MiniBatchKMeans(10, batch_size=2048, seed=0).fit(X)
    assert mb.inertia_ <= full.inertia_ * 1.05
    np.testing.assert_array_equal(mb.predict(X), mb.labels_)
    # streaming over chunks
    st_ = MiniBatchKMeans(10, seed=0)
    for _ in range(3):
        for s in range(0, 20_000, 4000):
            st_.partial_fit(X[s : s + 4000])
    assert -st_.score(X) <= full.inertia_ * 1.1
    assert KMeans(10, algorithm="minibatch").fit(X).inertia_ <= full.inertia_ * 1.05
    with pytest.raises(ValueError, match="X: has 2 features"):
        st_.partial_fit(X[:, :2])


def test_standard_scaler_matches_sklearn():
    X = blobs(1000, 5, 3) * np.array([1, 10, 100, 0.1, 1])
    X[:, 3] = 7.0  # constant column
    ours = StandardScaler().fit(X)
    sk = SKScaler().fit(X)
    np.testing.assert_allclose(ours.mean_, sk.mean_, rtol=1e-12)
    np.testing.assert_allclose(ours.var_, sk.var_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.scale_, sk.scale_, rtol=1e-10)
    np.testing.assert_allclose(ours.transform(X), sk.transform(X), atol=1e-10)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(X)), X, rtol=1e-12, atol=1e-12)
    x32 = X.astype(np.float32)
    assert StandardScaler().fit_transform(x32).dtype == np.float32
    no = StandardScaler(with_mean=False).fit(X)
    np.testing.assert_allclose(no.transform(X), X / sk.scale_, rtol=1e-12)
    with pytest.raises(ValueError, match="X: has 4 features"):
        ours.transform(X[:, :4])
    with pytest.raises(ValueError, match="must be finite"):
        ours.transform(np.full((2, 5), np.nan))
    with pytest.raises(gm.StateError):
        StandardScaler().transform(X)
