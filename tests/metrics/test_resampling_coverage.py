"""Coverage by simulation: the 95 % subsampling interval on one data set covers the across-data-set mean of the
metric (the value it estimates at this N) in 95 % ± 5 points of data sets, for CKNNA and mutual kNN (half-sampling)
and CKA biased and unbiased (the delete-a-group jackknife over R groups, cka_jackknife.py).

Generator: a shared 3-d latent, view A = tanh(Z W_a) + noise (width 16), view B = Z W_b + noise (width 40).
Small N here (the seconds-long version); bench/ has none larger yet.
"""

from __future__ import annotations

import numpy as np

from precompute.metrics import resampling as rs
from precompute.metrics.cka import cka_features
from precompute.metrics.cka_jackknife import CkaGroupParts, cka_jackknife_values, jackknife_groups, jackknife_interval
from precompute.metrics.neighbours import build_neighbour_cache
from precompute.metrics.preprocess import KernelPreprocessing, kernel_features

N, K, R, DATASETS = 200, 10, 50, 200
PREP = KernelPreprocessing(None, True)


def _dataset(rng, wa, wb):
    z = rng.normal(size=(N, 3))
    a = np.tanh(z @ wa) + 0.4 * rng.normal(size=(N, 16))
    b = z @ wb + 1.0 * rng.normal(size=(N, 40))
    return kernel_features(a, PREP), kernel_features(b, PREP)


def _estimate_and_interval(fa, fb, seed):
    length = rs.subsample_list_length(K)
    ca, cb = build_neighbour_cache(fa, length, "cosine"), build_neighbour_cache(fb, length, "cosine")
    full = rs.knn_subsample_values(ca, cb, [K])
    full = {m: float(v[0]) for m, v in full.items()}
    sub = {m: [] for m in full}
    for keep in rs.subsets(N, R, seed):
        vals = rs.knn_subsample_values(rs.subsample_cache(ca, keep, K, fa), rs.subsample_cache(cb, keep, K, fb), [K])
        for m in sub:
            sub[m].append(float(vals[m][0]))
    out = {m: (full[m], *rs.basic_interval(full[m], np.array(sub[m]), N, N // 2)) for m in full}
    labels = jackknife_groups(N, R, seed)
    jack = cka_jackknife_values(CkaGroupParts(fa, labels), CkaGroupParts(fb, labels))
    for m, unbiased in (("cka", False), ("cka_unbiased", True)):
        value = float(cka_features(fa, fb, unbiased))
        out[m] = (value, *jackknife_interval(value, jack[m]))
    return out


def test_subsampling_interval_covers_the_across_dataset_mean():
    rng = np.random.default_rng(2026)
    wa, wb = rng.normal(size=(3, 16)), rng.normal(size=(3, 40))
    results = [_estimate_and_interval(*_dataset(rng, wa, wb), seed=d) for d in range(DATASETS)]
    for metric in ("cknna_ab", "cknna_ba", "mutual_knn", "cka", "cka_unbiased"):
        est = np.array([r[metric][0] for r in results])
        truth = est.mean()
        covered = np.mean([lo <= truth <= hi for _, lo, hi in (r[metric] for r in results)])
        assert est.std() > 0.005, metric  # a real spread to cover, not a degenerate metric
        assert 0.90 <= covered <= 1.00, f"{metric}: coverage {covered:.3f}"
