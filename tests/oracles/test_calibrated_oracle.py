"""Oracle: our calibrated score and null against the reference package calibrated-similarity 0.1.1 (`calibrate`),
with the same permutations fed to it through `perm_fn`, on small N (the package works in float32)."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.metrics import nulls as nl
from precompute.metrics.calibrated import calibrated_score
from precompute.metrics.cka import cka_features
from precompute.metrics.cknna import cknna_from_caches
from precompute.metrics.information_imbalance import information_imbalance
from precompute.metrics.mutual_knn import mutual_knn_from_caches
from precompute.metrics.neighbours import build_neighbour_cache
from precompute.metrics.preprocess import KernelPreprocessing, kernel_features
from tests.metrics.data import views

cs = pytest.importorskip("calibrated_similarity", reason="make env installs calibrated-similarity==0.1.1")
torch = pytest.importorskip("torch")

N, K, SEED, KNN = 80, 60, 11, 8


def _reference(A, B, sim):
    stream = nl.permutations(A.shape[0], K, SEED)
    perm_fn = lambda n, device: torch.as_tensor(next(stream))  # noqa: E731
    s, p, tau = cs.calibrate(torch.as_tensor(A), torch.as_tensor(B), lambda x, y: sim(x.numpy(), y.numpy()),
                             K=K, perm_fn=perm_fn)  # fmt: skip
    return float(s), float(p), float(tau)


def _cos(X):
    return build_neighbour_cache(X, KNN, "cosine")


@pytest.mark.parametrize("metric", ["cknna", "mutual_knn", "cka", "cka_unbiased", "info_imbalance"])
def test_calibrated_matches_reference_package(metric):
    v = views(N, seed=3)
    prep = KernelPreprocessing(None, True)
    A, B = kernel_features(v["linear"], prep), kernel_features(v["noisy"], prep)
    if metric in ("cknna", "mutual_knn"):
        f = cknna_from_caches if metric == "cknna" else mutual_knn_from_caches
        sim = lambda x, y: f(_cos(x), _cos(y), KNN)  # noqa: E731
        ours_null = nl.knn_null_values(_cos(A), _cos(B), [KNN], K, SEED)["cknna_ab" if metric == "cknna" else metric]
    elif metric.startswith("cka"):
        sim = lambda x, y: cka_features(x, y, metric == "cka_unbiased")  # noqa: E731
        ours_null = nl.cka_null_values(A, B, K, SEED, dtype=np.float64)[metric]
    else:
        A, B = v["linear"], v["partial"]
        sim = lambda x, y: 1.0 - information_imbalance(x, y, KNN)  # noqa: E731  (the package wants higher = better)
        lists = build_neighbour_cache(A, KNN, "euclidean").indices
        ours_null = nl.info_imbalance_null_values(B, {"A": lists}, [KNN], K, {"A": SEED})[0]["A"]
    obs = sim(A, B)
    ref_s, ref_p, ref_tau = _reference(A, B, sim)
    if metric == "info_imbalance":
        ours = calibrated_score(1.0 - obs, ours_null.ravel(), higher_is_aligned=False)
        assert 1.0 - ours.tau == pytest.approx(ref_tau, abs=1e-6)
    else:
        ours = calibrated_score(obs, ours_null.ravel())
        assert ours.tau == pytest.approx(ref_tau, abs=1e-6)
    assert ours.value == pytest.approx(ref_s, abs=1e-5)
    assert ours.p_value == pytest.approx(ref_p, abs=1e-6)
    assert 0.0 < ours.value < 1.0  # a real, non-degenerate calibration: the branch that divides
