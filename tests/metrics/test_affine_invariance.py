"""Metrics are exact under the affine maps they are invariant to (issue 12, point 1).

Data live on a dyadic grid (multiples of 2^-10, |x| < 8), so x + c with integer |c| <= 1e8 is exact in float64:
a shift of 1e8 x the spread loses nothing in the input, and the metric must not lose it either. Scales a from
1e-150 to 1e150 round each entry by at most 1 ulp, which moves no metric by more than ~1e-15 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from precompute.metrics import (
    KernelPreprocessing,
    build_neighbour_cache,
    cka,
    cka_all_pairs,
    cknna,
    cosine_caches,
    gride_id,
    idcor,
    information_imbalance,
    information_imbalance_all_pairs,
    knn_alignment_all_pairs,
    mutual_knn,
    twonn_id,
)
from precompute.metrics.preprocess import kernel_features

N = 48
REL = 1e-9
SETTINGS = settings(max_examples=8, deadline=None, derandomize=True)


def _grid(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 1024.0), -8191, 8191) / 1024.0


def pair(seed: int = 0, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 4))
    A = _grid(Z @ rng.normal(size=(4, 6)) / 2)
    B = _grid(np.tanh(Z @ rng.normal(size=(4, 5))) + 0.3 * rng.normal(size=(n, 5)))
    return A, B


scales = st.tuples(st.sampled_from([-1.0, 1.0]), st.floats(-150.0, 150.0)).map(lambda t: t[0] * 10.0 ** t[1])
pos_scales = st.floats(-150.0, 150.0).map(lambda u: 10.0**u)
pow2 = st.integers(-480, 480).map(lambda e: math.ldexp(1.0, e))
seeds = st.integers(0, 2**16)
shift_mag = st.sampled_from([1e2, 1e4, 1e6, 1e8])


def shift_of(X: np.ndarray, seed: int, mag: float) -> np.ndarray:
    c = np.random.default_rng(seed + 1).integers(-int(mag), int(mag), size=X.shape[1]).astype(np.float64)
    out = X + c
    assert np.array_equal(out - c, X)  # the shift itself is exact
    return out


def close(x: float, y: float) -> None:
    assert x == pytest.approx(y, rel=REL, abs=1e-12)


# ---------------------------------------------------------------- Euclidean / ID metrics: scale and shift
@SETTINGS
@given(seed=seeds, a=scales, b=scales, mag=shift_mag, k=st.integers(1, 4))
def test_information_imbalance_affine(seed, a, b, mag, k):
    A, B = pair(seed)
    ref = information_imbalance(A, B, k)
    close(information_imbalance(a * A, b * B, k), ref)
    close(information_imbalance(shift_of(A, seed, mag), shift_of(B, seed + 7, mag), k), ref)


@SETTINGS
@given(seed=seeds, a=scales, mag=shift_mag, e=pow2)
def test_twonn_and_gride_affine(seed, a, mag, e):
    A, _ = pair(seed)
    ref_t, ref_g = twonn_id(A), gride_id(A, 2)
    close(twonn_id(a * A), ref_t)
    close(gride_id(a * A, 2), ref_g)
    close(twonn_id(shift_of(A, seed, mag)), ref_t)
    close(gride_id(shift_of(A, seed, mag), 2), ref_g)
    close(twonn_id(e * shift_of(A, seed, mag)), ref_t)


@SETTINGS
@given(seed=seeds, mag=shift_mag, u=st.lists(st.floats(-150.0, 150.0), min_size=6, max_size=6))
def test_idcor_affine_per_feature(seed, mag, u):
    A, B = pair(seed)
    ref = idcor(A, B, 3, seed=1)
    col = 10.0 ** np.asarray(u)
    got = idcor(A * col, shift_of(B, seed, mag), 3, seed=1)
    close(got[0], ref[0])
    assert got[1] == ref[1]


# ---------------------------------------------------------------- CKA: shift (unnormalised) and isotropic scale
@SETTINGS
@given(seed=seeds, a=scales, b=scales, mag=shift_mag, unbiased=st.booleans())
def test_cka_affine(seed, a, b, mag, unbiased):
    A, B = pair(seed)
    ref = cka(A, B, unbiased, normalize=False)
    close(cka(a * A, b * B, unbiased, normalize=False), ref)
    close(cka(shift_of(A, seed, mag), shift_of(B, seed, mag), unbiased, normalize=False), ref)
    ref_n = cka(A, B, unbiased)
    close(cka(a * A, b * B, unbiased), ref_n)  # cosine kernel: scale-invariant, not shift-invariant


# ---------------------------------------------------------------- cosine kNN metrics: scale only
@SETTINGS
@given(seed=seeds, a=pos_scales, b=pos_scales, k=st.integers(1, 5), normalize=st.booleans())
def test_knn_metrics_scale(seed, a, b, k, normalize):
    A, B = pair(seed)
    close(cknna(a * A, b * B, k, normalize=normalize), cknna(A, B, k, normalize=normalize))
    close(mutual_knn(a * A, b * B, k, normalize=normalize), mutual_knn(A, B, k, normalize=normalize))


# ---------------------------------------------------------------- all-pairs forms
def _values(results):
    return {(r.metric, r.k, r.model_a, r.model_b): r.value for r in results}


def _same(got, ref):
    assert got.keys() == ref.keys()
    for key in ref:
        close(got[key], ref[key])


@SETTINGS
@given(seed=seeds, a=scales, mag=shift_mag)
def test_all_pairs_affine(seed, a, mag):
    A, B = pair(seed)
    feats = {"a": A, "b": B}
    scaled = {"a": a * A, "b": B * 1e-160}
    shifted = {"a": shift_of(A, seed, mag), "b": shift_of(B, seed, mag)}
    ref = _values(information_imbalance_all_pairs(feats, [1, 3]))
    _same(_values(information_imbalance_all_pairs(scaled, [1, 3])), ref)
    _same(_values(information_imbalance_all_pairs(shifted, [1, 3])), ref)
    raw = KernelPreprocessing(normalize=False)
    ref = _values(cka_all_pairs(feats, raw))
    _same(_values(cka_all_pairs(scaled, raw)), ref)
    _same(_values(cka_all_pairs(shifted, raw)), ref)
    ref = _values(knn_alignment_all_pairs(cosine_caches(feats, 4), [1, 4]))
    _same(_values(knn_alignment_all_pairs(cosine_caches({"a": abs(a) * A, "b": B * 1e160}, 4), [1, 4])), ref)


def test_torch_paths_affine():
    torch = pytest.importorskip("torch")
    del torch
    A, B = pair(3)
    feats = {"a": A, "b": B}
    shifted = {"a": A * 1e-150 + 0.0, "b": shift_of(B, 3, 1e8)}
    ref = _values(information_imbalance_all_pairs(feats, [1, 3]))
    _same(_values(information_imbalance_all_pairs(shifted, [1, 3], backend="torch")), ref)
    c = build_neighbour_cache(shift_of(A, 3, 1e8) * 1e150, 2, "euclidean", backend="torch")
    ref_c = build_neighbour_cache(A, 2, "euclidean")
    assert np.array_equal(c.indices, ref_c.indices)


# ---------------------------------------------------------------- regression cases, against brute force
def ii_brute(A: np.ndarray, B: np.ndarray, k: int) -> float:
    """Δ(A → B; k) from full cdist matrices, ties in A to the lower index."""
    n = A.shape[0]
    da, db = cdist(A, A), cdist(B, B)
    np.fill_diagonal(da, np.inf)
    np.fill_diagonal(db, np.inf)
    total = 0
    for i in range(n):
        nbrs = np.lexsort((np.arange(n), da[i]))[:k]
        total += sum(int((db[i] < db[i, j]).sum()) + 1 for j in nbrs)
    return 2.0 * total / (n * n * k)


def cka_unbiased_dense(A: np.ndarray, B: np.ndarray) -> float:
    def hsic(X, Y):
        n = X.shape[0]
        K, L = X @ X.T, Y @ Y.T
        np.fill_diagonal(K, 0.0)
        np.fill_diagonal(L, 0.0)
        one = np.ones(n)
        return (
            np.trace(K @ L) + one @ K @ one * (one @ L @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ K @ L @ one
        ) / (n * (n - 3))

    A = A - A.mean(axis=0)
    B = B - B.mean(axis=0)
    return hsic(A, B) / np.sqrt(hsic(A, A) * hsic(B, B))


def test_regression_information_imbalance_shift_1e8():
    A, B = pair(11, 60)
    ref = ii_brute(A, B + 1e8, 1)
    assert ref == pytest.approx(ii_brute(A, B, 1), rel=REL)
    close(information_imbalance(A, B + 1e8, 1), ref)


def test_regression_information_imbalance_all_pairs_shift_1e7():
    A, B = pair(12, 60)
    vals = _values(information_imbalance_all_pairs({"a": A, "b": B + 1e7}, [1, 2]))
    for k in (1, 2):
        close(vals[("information_imbalance", k, "a", "b")], ii_brute(A, B + 1e7, k))
        close(vals[("information_imbalance", k, "b", "a")], ii_brute(B + 1e7, A, k))


def test_regression_information_imbalance_tiny_scale():
    A, B = pair(13, 60)
    close(information_imbalance(A * 1e-162, B * 1e-162, 1), ii_brute(A, B, 1))


@pytest.mark.parametrize("shift", [1e3, 1e4])
def test_regression_cka_unbiased_shift(shift):
    A, B = pair(14, 60)
    ref = cka_unbiased_dense(
        kernel_features(A + shift, KernelPreprocessing()), kernel_features(B, KernelPreprocessing())
    )
    assert cka(A + shift, B, unbiased=True) == pytest.approx(ref, rel=1e-6)
    ref_raw = cka_unbiased_dense(A, B)
    close(cka(A + shift, B, unbiased=True, normalize=False), ref_raw)


def test_regression_twonn_huge_scale():
    A, _ = pair(15, 60)
    d = twonn_id(A * 1e154)
    assert np.isfinite(d)
    close(d, twonn_id(A))


@pytest.mark.parametrize("scale", [1e-162, 1e-200, 1e154, 1e200])
def test_regression_knn_metrics_extreme_scale(scale):
    A, B = pair(16, 60)
    close(cknna(A * scale, B * scale, 3), cknna(A, B, 3))
    close(mutual_knn(A * scale, B * scale, 3), mutual_knn(A, B, 3))
    caches = cosine_caches({"a": A * scale, "b": B}, 3)
    ref = cosine_caches({"a": A, "b": B}, 3)
    assert np.array_equal(caches["a"].indices, ref["a"].indices)


def test_constant_after_shift_names_the_cause():
    A, B = pair(17)
    with pytest.raises(ValueError, match="spread below float64 resolution"):
        information_imbalance(A * 1e-20 + 1.0, B, 1)
