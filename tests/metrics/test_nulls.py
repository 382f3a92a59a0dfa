"""Permutation nulls: same numbers as the metrics on B[π], and the closed-form means against permutations."""

from __future__ import annotations

from itertools import permutations as all_permutations

import numpy as np
import pytest

from precompute.metrics import idcor_details
from precompute.metrics import nulls as nl
from precompute.metrics.cka import cka_features
from precompute.metrics.cknna import cknna_from_caches
from precompute.metrics.information_imbalance import information_imbalance
from precompute.metrics.mutual_knn import mutual_knn_from_caches
from precompute.metrics.neighbours import NeighbourCache, build_neighbour_cache
from precompute.metrics.preprocess import KernelPreprocessing, kernel_features

from .data import views

PREP = KernelPreprocessing(None, True)


def _permuted(cache: NeighbourCache, perm: np.ndarray) -> NeighbourCache:
    inv = nl.inverse(perm)
    return NeighbourCache(inv[cache.indices[perm]], cache.scores[perm], cache.kind, cache.options)


def _caches(A, B, k):
    fa, fb = kernel_features(A, PREP), kernel_features(B, PREP)
    return build_neighbour_cache(fa, k, "cosine"), build_neighbour_cache(fb, k, "cosine"), fa, fb


@pytest.mark.parametrize("path", ["compiled", "bitset", "search"])
def test_knn_nulls_equal_metrics_on_permuted_rows(monkeypatch, path):
    if path == "compiled" and not nl._knn_null_kernel.available():
        pytest.skip("numba (the 'fast' extra) is not installed")
    if path == "search":
        monkeypatch.setattr(nl, "_BITSET_MAX_BYTES", 0)
    v = views(150, seed=1)
    ca, cb, _, _ = _caches(v["linear"], v["tanh"], 12)
    ks = [3, 7, 12]
    got = nl.knn_null_values(ca, cb, ks, 6, seed=5, use_kernel=path == "compiled")
    for p, perm in enumerate(nl.permutations(150, 6, 5)):
        cbp = _permuted(cb, perm)
        for q, k in enumerate(ks):
            assert got["mutual_knn"][p, q] == mutual_knn_from_caches(ca, cbp, k)
            assert got["cknna_ab"][p, q] == pytest.approx(cknna_from_caches(ca, cbp, k), abs=1e-12)
            assert got["cknna_ba"][p, q] == pytest.approx(cknna_from_caches(cbp, ca, k), abs=1e-12)


def test_compiled_knn_null_is_bit_identical_to_the_numpy_path_with_ties():
    """Integer features: many tied similarities, so the caches' tie order matters; both paths must agree exactly."""
    if not nl._knn_null_kernel.available():
        pytest.skip("numba (the 'fast' extra) is not installed")
    rng = np.random.default_rng(4)
    A = rng.integers(0, 4, size=(220, 9)).astype(float) + 1.0
    A = A[np.unique(A, axis=0, return_index=True)[1]]  # distinct rows (the caches refuse duplicates)
    B = A @ rng.integers(-1, 2, size=(9, 5)).astype(float) + 0.5 * A[:, :5]
    ca, cb, _, _ = _caches(A, B, 20)
    ks = [1, 5, 20]
    fast = nl.knn_null_values(ca, cb, ks, 8, seed=9)
    slow = nl.knn_null_values(ca, cb, ks, 8, seed=9, use_kernel=False)
    for m in fast:
        np.testing.assert_array_equal(fast[m], slow[m])
    with pytest.raises(ValueError, match="differ in shape"):
        nl._knn_null_kernel.SharedEntries(ca.indices, cb.indices[:, :5])


def test_mutual_knn_closed_form_mean_exact_over_all_permutations():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(7, 3)), rng.normal(size=(7, 4))
    ca, cb, _, _ = _caches(A, B, 2)
    vals = [mutual_knn_from_caches(ca, _permuted(cb, np.array(p)), 2) for p in all_permutations(range(7))]
    assert np.mean(vals) == pytest.approx(nl.mutual_knn_null_mean(7, 2), abs=1e-12)


def test_mutual_knn_closed_form_mean_against_seeded_permutations():
    v = views(400, seed=2)
    ca, cb, _, _ = _caches(v["linear"], v["noisy"], 20)
    vals = nl.knn_null_values(ca, cb, [5, 20], 200, seed=3)["mutual_knn"]
    for q, k in enumerate([5, 20]):
        se = vals[:, q].std() / np.sqrt(200)
        assert abs(vals[:, q].mean() - nl.mutual_knn_null_mean(400, k)) < 4 * se


def test_cka_nulls_equal_cka_on_permuted_rows_and_closed_forms():
    v = views(120, seed=3)
    fa, fb = kernel_features(v["linear"], PREP), kernel_features(v["tanh"], PREP)
    got = nl.cka_null_values(fa, fb, 5, seed=9, dtype=np.float64)
    for p, perm in enumerate(nl.permutations(120, 5, 9)):
        assert got["cka"][p] == pytest.approx(cka_features(fa, fb[perm], False), rel=1e-10)
        assert got["cka_unbiased"][p] == pytest.approx(cka_features(fa, fb[perm], True), rel=1e-9, abs=1e-12)
    many = nl.cka_null_values(fa, fb, 400, seed=1)
    mean = nl.cka_null_mean(fa, fb)
    assert abs(many["cka"].mean() - mean) < 4 * many["cka"].std() / 20
    assert abs(many["cka_unbiased"].mean()) < 4 * many["cka_unbiased"].std() / 20
    assert mean > 0.01  # the width-driven baseline is visible at N = 120, not a vacuous zero


def test_hsic_and_cka_permutation_means_exact_over_all_permutations():
    rng = np.random.default_rng(4)
    A, B = rng.normal(size=(6, 3)), rng.normal(size=(6, 5))
    perms = [np.array(p) for p in all_permutations(range(6))]
    Ac, Bc = A - A.mean(0), B - B.mean(0)
    hsic = [np.sum((Ac.T @ Bc[p]) ** 2) for p in perms]  # tr(K̃ Π L̃ Πᵀ)
    assert np.mean(hsic) == pytest.approx(nl.hsic_biased_null_mean(A, B), rel=1e-12)
    assert np.mean([cka_features(A, B[p], False) for p in perms]) == pytest.approx(nl.cka_null_mean(A, B), rel=1e-12)
    assert np.mean([cka_features(A, B[p], True) for p in perms]) == pytest.approx(0.0, abs=1e-12)


def test_information_imbalance_null_equals_metric_and_mean_is_one():
    v = views(90, seed=5)
    A, B = v["linear"], v["partial"]
    lists = build_neighbour_cache(A, 4, "euclidean").indices
    vals, mean_rank = nl.info_imbalance_null_values(B, {"A": lists}, [1, 4], 5, {"A": 7}, tile_bytes=8 * 90 * 16)
    for p, perm in enumerate(nl.permutations(90, 5, 7)):
        for q, k in enumerate([1, 4]):
            assert vals["A"][p, q] == pytest.approx(information_imbalance(A, B[perm], k), abs=1e-14)
    assert mean_rank == pytest.approx(45.0, abs=1e-12)  # N/2: no tied distances
    assert nl.info_imbalance_null_mean(mean_rank, 90) == pytest.approx(1.0, abs=1e-12)


def test_information_imbalance_closed_form_mean_exact_over_all_permutations_with_ties():
    A = np.array([[0.0], [1.0], [3.0], [6.0], [10.0], [15.0]])
    B = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])  # evenly spaced: tied distances
    perms = [np.array(p) for p in all_permutations(range(6))]
    _, mean_rank = nl.info_imbalance_null_values(B, {"A": np.zeros((6, 1), dtype=int) + 1}, [1], 1, {"A": 0})
    for k in (1, 2):
        exact = np.mean([information_imbalance(A, B[p], k, duplicates="keep") for p in perms])
        assert exact == pytest.approx(nl.info_imbalance_null_mean(mean_rank, 6), abs=1e-12)
    assert nl.info_imbalance_null_mean(mean_rank, 6) < 1.0  # ties lower the ranks


def test_summary_p_values_and_direction():
    null = np.linspace(0.0, 1.0, 99)
    hi = nl.summarize_null(2.0, null, seed=3)
    assert hi.p_value == pytest.approx(1 / 100) and hi.n_permutations == 99 and hi.seed == 3
    assert hi.q95 == pytest.approx(np.quantile(null, 0.95)) and hi.q99 > hi.q95
    assert nl.summarize_null(0.505, null, seed=0).p_value == pytest.approx((1 + 49) / 100)  # i/98 >= 0.505: i >= 50
    lo = nl.summarize_null(-1.0, null, seed=0, higher_is_aligned=False)
    assert lo.p_value == pytest.approx(1 / 100) and lo.q95 == pytest.approx(np.quantile(null, 0.05))
    assert nl.summarize_null(-1.0, null, seed=0).p_value == 1.0
    with pytest.raises(ValueError, match="at least one"):
        nl.summarize_null(0.0, [], seed=0)


def test_idcor_null_values_reproduce_its_p_value():
    v = views(200, seed=6)
    res = idcor_details(v["linear"], v["tanh"], 9, 4)
    null = nl.idcor_null_values(res.id_a, res.id_b, res.null_ids)
    assert nl.null_p_value(res.value, null) == pytest.approx(res.p_value)
