"""The scoring fast paths (backend/scoring/fast.py) give the same numbers as the analysis' own functions, bit for bit,
on continuous data, data with duplicate and collinear rows, and a heavily tied discrete representation."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.fast import cosine_cache, euclidean_ranks, self_hsic_lists
from precompute.metrics._checks import pow2_scale
from precompute.metrics.cknna import self_hsic
from precompute.metrics.information_imbalance import ranks_in
from precompute.metrics.neighbours import _exact_row, build_neighbour_cache
from precompute.metrics.preprocess import KernelPreprocessing, kernel_features


def _continuous(n: int = 700, d: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.tanh(rng.normal(size=(n, 6)) @ rng.normal(size=(6, d))) + 0.1 * rng.normal(size=(n, d))
    X[5] = X[7]  # an exact duplicate, a collinear row (same cosine direction) and a far offset
    X[100] = X[7]
    X[11] = 3.0 * X[12]
    return X + 1e3


def _discrete(n: int = 900, d: int = 10, seed: int = 1) -> np.ndarray:
    X = np.random.default_rng(seed).integers(0, 2, size=(n, d)).astype(float)
    X[:, 0] = 1.0  # no zero rows
    return X


@pytest.mark.parametrize("k", [1, 10, 31])
def test_cosine_cache_equals_build_neighbour_cache_on_continuous_data(k):
    F = kernel_features(_continuous(), KernelPreprocessing(0.95, True))
    ref = build_neighbour_cache(F, k, "cosine", duplicates="keep")
    got = cosine_cache(F, k)
    assert np.array_equal(got.indices, ref.indices) and np.array_equal(got.scores, ref.scores)


def test_cosine_cache_is_exact_where_ties_abound():
    """Every row equals the exact full-row order (score, then lower index), ties included."""
    F = kernel_features(_discrete(), KernelPreprocessing(None, True))
    got = cosine_cache(F, 10)
    X, e = pow2_scale(F)
    for i in range(F.shape[0]):
        idx, s = _exact_row(X, i, 10, "cosine")
        assert np.array_equal(got.indices[i], idx) and np.array_equal(got.scores[i], np.ldexp(s, 2 * e)), i


def test_cosine_cache_redoes_rows_with_too_many_candidates(monkeypatch):
    import backend.scoring.fast as fast

    monkeypatch.setattr(fast, "_MAX_CANDIDATES", 12)  # forces the exact full-row path on tied rows
    F = kernel_features(_discrete(), KernelPreprocessing(None, True))
    got = fast.cosine_cache(F, 10)
    assert got.options["rows_redone_for_ties"] > 0
    X, e = pow2_scale(F)
    for i in range(0, F.shape[0], 7):
        assert np.array_equal(got.indices[i], _exact_row(X, i, 10, "cosine")[0]), i


@pytest.mark.parametrize("make", [_continuous, _discrete])
def test_self_hsic_lists_equals_self_hsic(make):
    F = kernel_features(make(), KernelPreprocessing(None, True))
    cache = build_neighbour_cache(F, 25, "cosine", duplicates="keep")
    for k in (5, 10, 25):
        assert self_hsic_lists(cache.indices, cache.scores, k) == self_hsic(cache, k)


@pytest.mark.parametrize("tile_bytes", [2**16, 2**24])  # several tiles (gemm); one tile of all rows (numpy: syrk)
@pytest.mark.parametrize("make", [_continuous, _discrete])
def test_euclidean_ranks_equal_ranks_in(make, tile_bytes):
    """Equal ranks also among the many tied distances of a binary representation, whose order depends on the
    rounding of the product (syrk and gemm differ), so the same product must be formed."""
    X = make() if tile_bytes == 2**16 else make()[:119]
    rng = np.random.default_rng(3)
    other = build_neighbour_cache(rng.normal(size=X.shape), 5, "euclidean").indices  # far neighbours too
    own = build_neighbour_cache(X, 5, "euclidean", duplicates="keep").indices
    lists = {"other": other, "own": own}
    ref, got = ranks_in(X, lists, tile_bytes=tile_bytes), euclidean_ranks(X, lists, tile_bytes=tile_bytes)
    assert ref.keys() == got.keys()
    for m in lists:
        assert np.array_equal(ref[m], got[m]), m


def test_pair_values_equal_the_analysis_per_k():
    """CKNNA both orders and mutual kNN at every k from one (N, k, k) comparison: the numbers of the analysis'
    knn_subsample_values (np.intersect1d of the keys), bit for bit."""
    from backend.scoring.compute import _pair_values
    from precompute.metrics.resampling import knn_subsample_values

    prep = KernelPreprocessing(0.95, True)
    a = build_neighbour_cache(kernel_features(_continuous(), prep), 25, "cosine", duplicates="keep")
    b = build_neighbour_cache(kernel_features(_continuous(seed=4), prep), 25, "cosine", duplicates="keep")
    ks = (5, 10, 25)
    got = _pair_values(a, b, ks, {k: self_hsic(a, k) for k in ks}, {k: self_hsic(b, k) for k in ks})
    ref = knn_subsample_values(a, b, ks)
    assert np.array_equal(got, np.stack([ref["cknna_ab"], ref["cknna_ba"], ref["mutual_knn"]], axis=1))
