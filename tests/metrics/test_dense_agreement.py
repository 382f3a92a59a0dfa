"""Every metric equals its dense restatement (tests/metrics/dense.py) to 1e-9 in float64."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from precompute.metrics import (
    build_neighbour_cache,
    cka,
    cknna,
    cknna_from_caches,
    idcor,
    information_imbalance,
    mutual_knn,
    twonn_id,
)
from precompute.metrics.preprocess import clip_at_quantile, l2_normalize_rows

from . import dense
from .data import views

TOL = 1e-9
PAIRS = [("linear", "tanh"), ("tanh", "noisy"), ("noisy", "partial"), ("linear", "unrelated"), ("partial", "linear")]


@pytest.fixture(scope="module")
def reps():
    return views(240, seed=3)


@pytest.mark.parametrize("a,b", PAIRS)
@pytest.mark.parametrize("k", [1, 5, 10, 40])
def test_cknna_equals_dense(reps, a, b, k):
    assert abs(cknna(reps[a], reps[b], k) - dense.cknna(reps[a], reps[b], k)) < TOL


@pytest.mark.parametrize("a,b", PAIRS)
def test_cknna_is_not_symmetric_but_each_order_is_exact(reps, a, b):
    ab, ba = cknna(reps[a], reps[b], 10), cknna(reps[b], reps[a], 10)
    assert abs(ba - dense.cknna(reps[b], reps[a], 10)) < TOL
    assert abs(ab - dense.cknna(reps[a], reps[b], 10)) < TOL


@pytest.mark.parametrize("a,b", PAIRS)
@pytest.mark.parametrize("k", [1, 10, 40])
def test_mutual_knn_equals_dense(reps, a, b, k):
    assert abs(mutual_knn(reps[a], reps[b], k) - dense.mutual_knn(reps[a], reps[b], k)) < TOL


@pytest.mark.parametrize("a,b", PAIRS)
@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_equals_dense(reps, a, b, unbiased):
    assert abs(cka(reps[a], reps[b], unbiased) - dense.cka(reps[a], reps[b], unbiased)) < TOL


@pytest.mark.parametrize("name", ["linear", "tanh", "noisy", "partial", "unrelated"])
def test_twonn_equals_dense(reps, name):
    assert abs(twonn_id(reps[name]) - dense.twonn(reps[name])) < TOL


@pytest.mark.parametrize("a,b", PAIRS[:3])
def test_idcor_equals_dense(reps, a, b):
    value, p = idcor(reps[a][:120], reps[b][:120], permutations=4, seed=7)
    d_value, d_p = dense.idcor(reps[a][:120], reps[b][:120], 4, 7)
    assert abs(value - d_value) < TOL
    assert p == d_p


def test_idcor_without_permutations_has_no_p_value(reps):
    value, p = idcor(reps["linear"], reps["tanh"], permutations=0)
    assert p is None and np.isfinite(value)


@pytest.mark.parametrize("a,b", list(itertools.permutations(["linear", "noisy", "unrelated"], 2)))
@pytest.mark.parametrize("k", [1, 5, 25])
def test_information_imbalance_equals_dense(reps, a, b, k):
    assert abs(information_imbalance(reps[a], reps[b], k) - dense.information_imbalance(reps[a], reps[b], k)) < TOL


def test_clipping_option_matches_dense_on_clipped_input(reps):
    A, B = reps["tanh"], reps["noisy"]
    expected = dense.cknna(clip_at_quantile(A, 0.95), clip_at_quantile(B, 0.95), 10)
    assert abs(cknna(A, B, 10, clip_quantile=0.95) - expected) < TOL
    assert abs(cknna(A, B, 10, clip_quantile=0.95) - cknna(A, B, 10)) > 1e-6  # the option does something


def test_clip_threshold_is_the_reference_element():
    X = np.arange(-10.0, 10.0).reshape(4, 5)
    flat = np.sort(np.abs(X), axis=None)
    t = flat[int(0.95 * X.size)]
    assert np.array_equal(clip_at_quantile(X, 0.95), np.clip(X, -t, t))


def test_reference_epsilon_flag_lowers_scores(reps):
    A, B = reps["linear"], reps["tanh"]
    exact = cknna(A, B, 10)
    ref = cknna(A, B, 10, eps=1e-6)
    assert ref < exact
    cache_a = build_neighbour_cache(l2_normalize_rows(A), 10)
    from precompute.metrics.cknna import self_hsic

    s = np.sqrt(self_hsic(cache_a, 10) * self_hsic(build_neighbour_cache(l2_normalize_rows(B), 10), 10))
    assert abs(ref - exact * s / (s + 1e-6)) < TOL


@pytest.mark.parametrize("tile_bytes", [8 * 240, 8 * 240 * 7, 2**25])
def test_tiling_does_not_change_neighbours(reps, tile_bytes):
    X = l2_normalize_rows(reps["tanh"])
    ref = build_neighbour_cache(X, 30)
    tiled = build_neighbour_cache(X, 30, tile_bytes=tile_bytes)
    assert np.array_equal(ref.indices, tiled.indices)
    assert np.array_equal(ref.scores, tiled.scores)


def test_neighbour_cache_prefix_equals_smaller_cache(reps):
    X = l2_normalize_rows(reps["noisy"])
    big, small = build_neighbour_cache(X, 40), build_neighbour_cache(X, 7)
    assert np.array_equal(big.prefix(7)[0], small.indices)
    A, B = reps["noisy"], reps["linear"]
    ca = build_neighbour_cache(l2_normalize_rows(A), 40)
    cb = build_neighbour_cache(l2_normalize_rows(B), 40)
    assert abs(cknna_from_caches(ca, cb, 7) - dense.cknna(A, B, 7)) < TOL


def test_exact_ties_go_to_the_lower_index():
    # points on a circle: 0 has two neighbours at exactly the same angle (3 and 5), plus a duplicate (7 of 2)
    angles = np.array([0.0, 3.0, 1.0, 0.5, 2.0, -0.5, 2.5, 1.0])
    X = np.c_[np.cos(angles), np.sin(angles)]
    cache = build_neighbour_cache(X, 3, "cosine", duplicates="keep")
    assert list(cache.indices[0][:2]) == [3, 5]  # tie at distance 0.5: lower index first
    assert list(cache.indices[2][:1]) == [7]  # the duplicate is the nearest
    euc = build_neighbour_cache(X, 3, "euclidean", duplicates="keep")
    assert list(euc.indices[0][:2]) == [3, 5]
    assert np.array_equal(euc.indices, dense_order(X, 3))


def dense_order(X, k):
    from scipy.spatial.distance import cdist

    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    return np.argsort(D, axis=1, kind="stable")[:, :k]


def test_ties_beyond_the_candidate_margin_are_resolved_exactly():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 6))
    X = np.vstack([base, np.repeat(base[:1], 25, axis=0)])  # 26 copies of row 0: ties far wider than the margin
    cache = build_neighbour_cache(X, 12, "euclidean", duplicates="keep")
    assert np.array_equal(cache.indices, dense_order(X, 12))
    assert cache.options["rows_redone_for_ties"] > 0


def test_torch_backend_equals_numpy(reps):
    pytest.importorskip("torch")
    X = l2_normalize_rows(reps["tanh"])
    a = build_neighbour_cache(X, 20, backend="numpy")
    b = build_neighbour_cache(X, 20, backend="torch", tile_bytes=8 * 240 * 9)
    assert np.array_equal(a.indices, b.indices) and np.allclose(a.scores, b.scores, atol=1e-12)
    e1 = build_neighbour_cache(reps["noisy"], 20, "euclidean")
    e2 = build_neighbour_cache(reps["noisy"], 20, "euclidean", backend="torch")
    assert np.array_equal(e1.indices, e2.indices)


@pytest.mark.parametrize("name", ["linear", "tanh", "noisy"])
@pytest.mark.parametrize("n1", [1, 4, 16])
def test_gride_equals_dense_likelihood_maximum(reps, name, n1):
    from precompute.metrics.gride import gride_id

    assert abs(gride_id(reps[name], n1) - dense.gride(reps[name], n1)) < 1e-6
