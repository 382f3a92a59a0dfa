"""The cached all-pairs forms equal the single-pair functions, for every pair and k, and record their options."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.metrics import (
    KernelPreprocessing,
    cka,
    cka_all_pairs,
    cknna,
    cosine_caches,
    information_imbalance,
    information_imbalance_all_pairs,
    knn_alignment_all_pairs,
    mutual_knn,
)

from .data import views

KS = [1, 5, 10, 25]


@pytest.fixture(scope="module")
def reps():
    return {m: X for m, X in views(150, seed=21).items() if m != "partial"}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_knn_all_pairs_equal_single_calls(reps, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    caches = cosine_caches(reps, max(KS))
    results = knn_alignment_all_pairs(caches, KS, backend=backend)
    m = len(reps)
    assert len(results) == len(KS) * (m * (m - 1) + m * (m - 1) // 2)
    for r in results:
        single = cknna if r.metric == "cknna" else mutual_knn
        assert abs(r.value - single(reps[r.model_a], reps[r.model_b], r.k)) < 1e-12, r
        assert r.n == 150 and r.options["normalize"] is True and r.options["clip_quantile"] is None
        assert r.options["eps"] == 0.0 and r.options["k_max"] == max(KS)


def test_clipping_is_recorded_and_applied(reps):
    prep = KernelPreprocessing(clip_quantile=0.95)
    caches = cosine_caches(reps, 10, prep)
    r = knn_alignment_all_pairs(caches, [10])[0]
    assert r.options["clip_quantile"] == 0.95
    assert abs(r.value - cknna(reps[r.model_a], reps[r.model_b], 10, clip_quantile=0.95)) < 1e-12


def test_cka_all_pairs(reps):
    for r in cka_all_pairs(reps):
        assert abs(r.value - cka(reps[r.model_a], reps[r.model_b], r.metric == "cka_unbiased")) < 1e-12


def test_information_imbalance_all_pairs(reps):
    results = information_imbalance_all_pairs(reps, [1, 5])
    assert len(results) == 2 * len(reps) * (len(reps) - 1)
    for r in results:
        assert r.value == information_imbalance(reps[r.model_a], reps[r.model_b], r.k)


def test_information_imbalance_torch_backend(reps):
    pytest.importorskip("torch")
    a = {(r.model_a, r.model_b, r.k): r.value for r in information_imbalance_all_pairs(reps, [1, 5])}
    b = information_imbalance_all_pairs(reps, [1, 5], backend="torch")
    assert all(abs(a[(r.model_a, r.model_b, r.k)] - r.value) < 1e-12 for r in b)


def test_aligned_pairs_score_above_unrelated(reps):
    vals = {
        (r.model_a, r.model_b): r.value
        for r in knn_alignment_all_pairs(cosine_caches(reps, 10), [10])
        if r.metric == "cknna"
    }
    assert vals[("linear", "noisy")] > 5 * abs(vals[("linear", "unrelated")])
    assert np.isfinite(list(vals.values())).all()
