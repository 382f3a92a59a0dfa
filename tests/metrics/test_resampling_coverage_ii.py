"""Coverage by simulation for information imbalance (both directions) and IDCor: the 95 % half-sampling interval on
one data set covers the across-data-set mean in 95 % ± 5 points of data sets (as test_resampling_coverage.py does
for CKNNA, mutual kNN and CKA). Same generator: a shared 3-d latent, A = tanh(Z W_a) + noise (16 wide), B = Z W_b +
noise (40 wide).
"""

from __future__ import annotations

import numpy as np

from precompute.metrics import idcor_details
from precompute.metrics import resampling as rs
from precompute.metrics.information_imbalance import imbalance_from_ranks, ranks_in
from precompute.metrics.neighbours import build_neighbour_cache
from precompute.metrics.resampling_ii import info_imbalance_subsample_values

N, KS, R, DATASETS = 200, (1, 5), 50, 200
N_IDCOR, DATASETS_IDCOR = 120, 120


def _dataset(rng, wa, wb, n):
    z = rng.normal(size=(n, 3))
    return np.tanh(z @ wa) + 0.4 * rng.normal(size=(n, 16)), z @ wb + 1.0 * rng.normal(size=(n, 40))


def _covered(results: list[tuple[float, float, float]]) -> tuple[float, float]:
    est = np.array([r[0] for r in results])
    truth = est.mean()
    return float(np.mean([lo <= truth <= hi for _, lo, hi in results])), float(est.std())


def _ii_intervals(a, b, seed):
    out = {}
    subs = rs.subsets(N, R, seed)
    for name, (X, Y) in {"ab": (a, b), "ba": (b, a)}.items():
        lists = build_neighbour_cache(X, rs.subsample_list_length(max(KS)), "euclidean").indices
        full = ranks_in(Y, {"x": lists[:, : max(KS)]})["x"]
        sub = info_imbalance_subsample_values(Y, {"x": lists}, {"x": X}, subs, KS)["x"]
        for q, k in enumerate(KS):
            value = imbalance_from_ranks(full, k)
            out[(name, k)] = (value, *rs.basic_interval(value, sub[:, q], N, N // 2))
    return out


def test_information_imbalance_interval_covers_the_across_dataset_mean():
    rng = np.random.default_rng(2027)
    wa, wb = rng.normal(size=(3, 16)), rng.normal(size=(3, 40))
    results = [_ii_intervals(*_dataset(rng, wa, wb, N), seed=d) for d in range(DATASETS)]
    for key in results[0]:
        covered, spread = _covered([r[key] for r in results])
        assert spread > 0.005, key  # a real spread to cover
        assert 0.90 <= covered <= 1.00, f"information imbalance {key}: coverage {covered:.3f}"


def test_idcor_interval_covers_the_across_dataset_mean():
    rng = np.random.default_rng(2028)
    wa, wb = rng.normal(size=(3, 16)), rng.normal(size=(3, 40))
    results = []
    for d in range(DATASETS_IDCOR):
        a, b = _dataset(rng, wa, wb, N_IDCOR)
        value = idcor_details(a, b, 0).value
        sub = rs.idcor_subsample_values({"a": a, "b": b}, [("a", "b")], rs.subsets(N_IDCOR, R, d))[("a", "b")]
        results.append((value, *rs.basic_interval(value, sub, N_IDCOR, N_IDCOR // 2)))
    covered, spread = _covered(results)
    assert spread > 0.005
    assert 0.90 <= covered <= 1.00, f"IDCor: coverage {covered:.3f}"
