"""Exact ties (binary fingerprints): the neighbour caches and information imbalance follow the documented rules.

The references are slow dense restatements over the full row in exact integer arithmetic: overlaps m_ij and
Hamming distances h_ij of 0/1 rows. Popcounts are distinct primes, so m_ij / sqrt(n_i n_j) ties exactly when
(n_j, m_ij) agree and never across popcounts (a ratio of primes is not a square): the float features tie exactly
where the integers do."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.metrics.information_imbalance import imbalance_from_ranks, ranks_in
from precompute.metrics.neighbours import build_neighbour_cache
from precompute.metrics.preprocess import KernelPreprocessing, kernel_features

POPCOUNTS = (7, 11, 13)


def _fingerprints(n: int = 1500, d: int = 64, seed: int = 3) -> np.ndarray:
    """Morgan-like 0/1 rows, each with a prime number of bits set: many identical similarities."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, d))
    for i, p in enumerate(rng.choice(POPCOUNTS, size=n)):
        X[i, rng.choice(d, size=p, replace=False)] = 1.0
    return X


def _dense_order(key: np.ndarray, i: int, k: int) -> np.ndarray:
    """np.lexsort on (key, index) over row i's full row, self excluded (smaller key is better)."""
    others = np.delete(np.arange(key.shape[0]), i)
    return others[np.lexsort((others, key[i, others]))][:k]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_cosine_cache_keeps_lower_index_ties(backend):
    X = _fingerprints()
    m = X @ X.T  # exact integers
    pop = X.sum(axis=1)
    key = -(m * m) / pop[None, :]  # exact order of m_ij / sqrt(n_i n_j) within row i: equal rationals, equal floats
    F = kernel_features(X, KernelPreprocessing(None, True))
    if backend == "torch":
        pytest.importorskip("torch")
    cache = build_neighbour_cache(F, 10, "cosine", duplicates="keep", backend=backend)
    assert cache.options["rows_redone_for_ties"] > 0  # the widened (numpy) or full-row (torch) path ran
    bad = [i for i in range(X.shape[0]) if not np.array_equal(cache.indices[i], _dense_order(key, i, 10))]
    assert not bad, f"{len(bad)} rows differ from the dense order, first {bad[:5]}"
    # tied pairs carry bit-identical scores
    same = key[np.arange(X.shape[0])[:, None], cache.indices]
    s = cache.scores
    assert np.array_equal(same[:, 1:] == same[:, :-1], s[:, 1:] == s[:, :-1])


@pytest.mark.parametrize("tile_bytes", [2**16, 2**30])
def test_euclidean_cache_keeps_lower_index_ties(tile_bytes):
    X = _fingerprints(seed=4)
    h = X @ (1 - X).T + (1 - X) @ X.T  # Hamming distances, exact integers
    cache = build_neighbour_cache(X, 10, "euclidean", duplicates="keep", tile_bytes=tile_bytes)
    assert cache.options["rows_redone_for_ties"] > 0
    bad = [i for i in range(X.shape[0]) if not np.array_equal(cache.indices[i], _dense_order(h, i, 10))]
    assert not bad, f"{len(bad)} rows differ from the dense order, first {bad[:5]}"
    rows = np.arange(X.shape[0])[:, None]
    assert np.array_equal(cache.scores, np.sqrt(h[rows, cache.indices]))


def test_information_imbalance_ranks_are_exact_and_tile_independent():
    A, B = _fingerprints(600, seed=5), _fingerprints(600, seed=6)
    A[:, :5] += np.random.default_rng(7).normal(size=(600, 5))  # a continuous A; B keeps its ties
    lists = build_neighbour_cache(A, 5, "euclidean", duplicates="keep").indices
    h = B @ (1 - B).T + (1 - B) @ B.T
    np.fill_diagonal(h, np.inf)
    rows = np.arange(B.shape[0])[:, None]
    expected = 1 + (h[:, None, :] < h[rows, lists][:, :, None]).sum(axis=2)
    one_tile = ranks_in(B, {"a": lists}, tile_bytes=2**30)["a"]  # one all-row tile: numpy would use syrk
    for tile_bytes in (2**30, 8 * 600 * 7, 8 * 600):
        got = ranks_in(B, {"a": lists}, tile_bytes=tile_bytes)["a"]
        assert np.array_equal(got, expected), tile_bytes
    assert imbalance_from_ranks(one_tile, 5) == imbalance_from_ranks(expected, 5)


@pytest.mark.parametrize("scale", [0.3, 1.0])
def test_information_imbalance_values_do_not_depend_on_tiling(scale):
    """Non-integer tied data (a scaled fingerprint) go through the centred Gram form: its ranks must not depend on
    the tile size either (one row: numpy's gemv; all rows: syrk; both used to round unlike the other tiles)."""
    A, B = _fingerprints(600, seed=5), scale * _fingerprints(600, seed=6)
    lists = build_neighbour_cache(A, 5, "euclidean", duplicates="keep").indices
    ref = ranks_in(B, {"a": lists}, tile_bytes=2**30)["a"]
    for tile_bytes in (8 * 600, 8 * 600 * 7, 8 * 600 * 64):
        got = ranks_in(B, {"a": lists}, tile_bytes=tile_bytes)["a"]
        assert np.array_equal(got, ref), tile_bytes
        assert imbalance_from_ranks(got, 5) == imbalance_from_ranks(ref, 5)
