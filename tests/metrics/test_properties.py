"""Property tests (hypothesis): identities, invariances and null behaviour that must hold for any input."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import special_ortho_group

from precompute.metrics import cka, cknna, information_imbalance, mutual_knn, twonn_id

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True)


def structured(seed: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 4))
    A = np.tanh(Z @ rng.normal(size=(4, d)))
    B = Z @ rng.normal(size=(4, d + 3)) + 0.2 * rng.normal(size=(n, d + 3))
    return A, B


seeds = st.integers(0, 10_000)
sizes = st.integers(60, 160)
dims = st.integers(3, 12)
ks = st.integers(1, 20)


@SETTINGS
@given(seeds, sizes, dims, ks)
def test_cknna_of_a_representation_with_itself_is_one(seed, n, d, k):
    A, _ = structured(seed, n, d)
    assert abs(cknna(A, A, k) - 1.0) < 1e-9
    assert mutual_knn(A, A, k) == 1.0


@SETTINGS
@given(seeds, sizes, dims, ks, st.floats(0.01, 100.0))
def test_invariance_to_rotation_and_scaling(seed, n, d, k, scale):
    A, B = structured(seed, n, d)
    Q = special_ortho_group.rvs(d, random_state=seed)
    A2 = scale * A @ Q
    assert abs(cknna(A2, B, k) - cknna(A, B, k)) < 1e-8
    assert mutual_knn(A2, B, k) == mutual_knn(A, B, k)
    assert abs(cka(A2, B) - cka(A, B)) < 1e-9
    assert abs(cka(A2, B, True) - cka(A, B, True)) < 1e-9
    assert abs(twonn_id(A2) - twonn_id(A)) < 1e-6
    kk = min(k, 5)
    assert information_imbalance(A2, B, kk) == information_imbalance(A, B, kk)


@SETTINGS
@given(seeds, st.integers(200, 300), st.integers(8, 16))
def test_permuting_rows_of_b_alone_gives_a_near_null_score(seed, n, d):
    A, B = structured(seed, n, d)
    perm = np.random.default_rng(seed + 1).permutation(n)
    k = 10
    aligned = cknna(A, B, k)
    shuffled = cknna(A, B[perm], k)
    assert aligned > 0.3
    assert abs(shuffled) < 0.15  # the null is about k/N = 0.03-0.05
    assert mutual_knn(A, B[perm], k) < 0.15
    assert information_imbalance(A, B[perm], 1) > 0.7  # ≈ 1 when A says nothing about B


@SETTINGS
@given(seeds, sizes, dims, ks)
def test_mutual_knn_is_a_fraction(seed, n, d, k):
    A, B = structured(seed, n, d)
    v = mutual_knn(A, B, k)
    assert 0.0 <= v <= 1.0
    assert abs(v * n * k - round(v * n * k)) < 1e-9  # a count of shared neighbours over N·k
