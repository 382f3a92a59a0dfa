"""Subsample neighbour caches are exact; CKA parts equal cka_features; the interval and the tie marks."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.metrics import resampling as rs
from precompute.metrics.cka import cka_features
from precompute.metrics.cknna import cknna_from_caches
from precompute.metrics.mutual_knn import mutual_knn_from_caches
from precompute.metrics.neighbours import build_neighbour_cache
from precompute.metrics.preprocess import KernelPreprocessing, kernel_features

from .data import views

PREP = KernelPreprocessing(None, True)


@pytest.mark.parametrize("kind", ["cosine", "euclidean"])
@pytest.mark.parametrize("length", [None, 6])  # the recommended length, and one so short most rows are recomputed
def test_subsample_cache_is_exact_against_a_dense_recompute(kind, length):
    X = views(160, seed=1)["tanh"]
    if kind == "cosine":
        X = kernel_features(X, PREP)
    k = 5
    full = build_neighbour_cache(X, length or rs.subsample_list_length(k), kind)
    for keep in rs.subsets(160, 4, seed=2):
        sub = rs.subsample_cache(full, keep, k, X)
        dense = build_neighbour_cache(X[keep], k, kind)
        np.testing.assert_array_equal(sub.indices, dense.indices)
        np.testing.assert_allclose(sub.scores, dense.scores, rtol=1e-12, atol=1e-12)
        if length is None:
            assert sub.options["rows_recomputed"] < 3
        else:
            assert sub.options["rows_recomputed"] > 20  # the fallback path really ran


def test_subsample_metrics_equal_the_metrics_on_the_subsample():
    v = views(140, seed=3)
    fa, fb = kernel_features(v["linear"], PREP), kernel_features(v["noisy"], PREP)
    ks = [3, 8]
    ca = build_neighbour_cache(fa, rs.subsample_list_length(8), "cosine")
    cb = build_neighbour_cache(fb, rs.subsample_list_length(8), "cosine")
    keep = rs.subsets(140, 1, seed=4)[0]
    sa, sb = rs.subsample_cache(ca, keep, 8, fa), rs.subsample_cache(cb, keep, 8, fb)
    got = rs.knn_subsample_values(sa, sb, ks)
    da, db = build_neighbour_cache(fa[keep], 8, "cosine"), build_neighbour_cache(fb[keep], 8, "cosine")
    for q, k in enumerate(ks):
        assert got["mutual_knn"][q] == mutual_knn_from_caches(da, db, k)
        assert got["cknna_ab"][q] == pytest.approx(cknna_from_caches(da, db, k), abs=1e-12)
        assert got["cknna_ba"][q] == pytest.approx(cknna_from_caches(db, da, k), abs=1e-12)
    parts = rs.cka_pair(rs.CkaParts(fa[keep], np.float64), rs.CkaParts(fb[keep], np.float64))
    assert parts["cka"] == pytest.approx(cka_features(fa[keep], fb[keep], False), rel=1e-10)
    assert parts["cka_unbiased"] == pytest.approx(cka_features(fa[keep], fb[keep], True), rel=1e-9)


def test_subsets_are_seeded_distinct_and_half():
    a, b = rs.subsets(101, 3, seed=7), rs.subsets(101, 3, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(x.size == 50 and np.unique(x).size == 50 for x in a)
    assert not np.array_equal(a[0], a[1])
    with pytest.raises(ValueError, match="subsample size"):
        rs.subsets(10, 1, seed=0, m=10)


def test_basic_interval_scale_and_centring():
    sub = np.array([0.0, 1.0, 2.0, 3.0, 4.0]) + 10.0  # shifted: only the spread matters
    lo, hi = rs.basic_interval(0.5, sub, n=100, m=50, level=0.5)
    d = np.quantile(sub - sub.mean(), [0.25, 0.75])
    assert (lo, hi) == pytest.approx((0.5 - d[1], 0.5 - d[0]))  # factor sqrt(50/50) = 1
    lo2, hi2 = rs.basic_interval(0.5, sub, n=100, m=20, level=0.5)
    assert hi2 - lo2 == pytest.approx((hi - lo) * np.sqrt(20 / 80))


def test_mark_ties_groups_overlapping_intervals():
    values = [0.9, 0.5, 0.85, 0.2, 0.6]
    lo = [0.8, 0.4, 0.7, 0.1, 0.55]
    hi = [1.0, 0.58, 0.95, 0.3, 0.72]
    group = rs.mark_ties(values, lo, hi)
    # order 0.9, 0.85 (overlaps 0.9), 0.6 (0.55-0.72 vs 0.8-1.0: no), 0.5 (0.4-0.58 overlaps 0.55-0.72), 0.2
    assert group.tolist() == [0, 1, 0, 2, 1]
    # lower is better (information imbalance): the order reverses
    assert rs.mark_ties(values, lo, hi, higher_is_better=False).tolist() == [2, 1, 2, 0, 1]
    # no interval: tied only with an equal value
    assert rs.mark_ties([0.5, 0.5, 0.4], [None, None, None], [None, None, None]).tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="ci_low > ci_high"):
        rs.mark_ties([0.5], [0.6], [0.4])


def test_hsic_both_orders_equals_two_single_calls():
    from precompute.metrics.cknna import masked_entries
    from precompute.metrics.hsic import sparse_hsic_unbiased, sparse_hsic_unbiased_both

    v = views(120, seed=8)
    ca = build_neighbour_cache(kernel_features(v["linear"], PREP), 12, "cosine")
    cb = build_neighbour_cache(kernel_features(v["noisy"], PREP), 12, "cosine")
    r, c, x, y = masked_entries(ca, cb, 12)
    assert r.size > 100  # a real shared support, with transposed pairs
    single = (sparse_hsic_unbiased(r, c, x, y, 120), sparse_hsic_unbiased(r, c, y, x, 120))
    assert single[0] != single[1]  # the orders differ, so the test can tell them apart
    shuffled = np.random.default_rng(0).permutation(r.size)
    for keys_sorted, idx in ((True, np.arange(r.size)), (False, shuffled)):
        got = sparse_hsic_unbiased_both(r[idx], c[idx], x[idx], y[idx], 120, keys_sorted=keys_sorted)
        assert got == pytest.approx(single, rel=1e-12, abs=1e-15)
