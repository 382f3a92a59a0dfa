"""Information imbalance and IDCor on half subsamples equal the metric recomputed densely on the subsample's rows."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.metrics import idcor_details
from precompute.metrics import resampling as rs
from precompute.metrics.neighbours import build_neighbour_cache
from precompute.metrics.resampling_ii import info_imbalance_subsample_values

from .data import views


def _dense_imbalance(A: np.ndarray, B: np.ndarray, k: int) -> float:
    """Δ(A → B; k) by the definition: full distance matrices, stable k-NN in A, strict ranks in B."""
    n = A.shape[0]
    da = np.sqrt(((A[:, None, :] - A[None, :, :]) ** 2).sum(-1))
    db = ((B[:, None, :] - B[None, :, :]) ** 2).sum(-1)
    total = 0
    for i in range(n):
        others = np.delete(np.arange(n), i)
        nbrs = others[np.lexsort((others, da[i, others]))[:k]]
        for j in nbrs:
            total += 1 + np.count_nonzero(db[i, others] < db[i, j])
    return 2.0 * total / (n * n * k)


@pytest.mark.parametrize("length", [None, 7])  # the recommended list length, and one so short most rows are redone
def test_subsample_imbalance_equals_the_dense_recompute(length):
    v = views(90, seed=5)
    ks = [1, 3, 6]
    models = {"linear": v["linear"], "partial": v["partial"], "unrelated": v["unrelated"]}
    lists = {a: build_neighbour_cache(X, length or rs.subsample_list_length(6), "euclidean").indices
             for a, X in models.items()}  # fmt: skip
    subs = rs.subsets(90, 3, seed=9)
    got = info_imbalance_subsample_values(v["tanh"], lists, models, subs, ks, tile_bytes=40_000)
    for a, X in models.items():
        for r, keep in enumerate(subs):
            for q, k in enumerate(ks):
                dense = _dense_imbalance(X[keep], v["tanh"][keep], k)
                assert got[a][r, q] == pytest.approx(dense, rel=1e-12), (a, r, k)


def test_subsample_imbalance_refuses_mismatched_inputs():
    v = views(40, seed=1)
    lists = {"a": build_neighbour_cache(v["linear"], 3, "euclidean").indices}
    subs = rs.subsets(40, 2, seed=0)
    with pytest.raises(ValueError, match="need"):
        info_imbalance_subsample_values(v["tanh"], lists, {"a": v["linear"]}, subs, [5])
    with pytest.raises(ValueError, match="same size"):
        info_imbalance_subsample_values(v["tanh"], lists, {"a": v["linear"]}, [subs[0], subs[1][:-1]], [1])


def test_subsample_idcor_equals_idcor_on_the_subsample():
    v = views(120, seed=2)
    pairs = [("linear", "tanh"), ("noisy", "unrelated")]
    subs = rs.subsets(120, 3, seed=4)
    got = rs.idcor_subsample_values(v, pairs, subs)
    for a, b in pairs:
        for r, keep in enumerate(subs):
            assert got[(a, b)][r] == pytest.approx(idcor_details(v[a][keep], v[b][keep], 0).value, rel=1e-12)
