"""Mutual k-nearest-neighbour alignment (Huh et al. 2024).

    mutual_knn(A, B; k) = mean_i |N_k^A(i) ∩ N_k^B(i)| / k

with N_k the cosine-similarity neighbours (self excluded, ties to the lower index) after the recorded
preprocessing. In [0, 1]; about k/N for unrelated representations.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_k
from .neighbours import NeighbourCache, cosine_pair_caches
from .preprocess import KernelPreprocessing


def mutual_knn_from_caches(cache_a: NeighbourCache, cache_b: NeighbourCache, k: int) -> float:
    """mutual_knn from two neighbour caches of the same samples (k <= both k_max)."""
    if cache_a.n != cache_b.n:
        raise ValueError(f"caches hold {cache_a.n} and {cache_b.n} samples: they must be the same samples")
    n = cache_a.n
    k = check_k(k, n)
    ia, _ = cache_a.prefix(k)
    ib, _ = cache_b.prefix(k)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    common = np.intersect1d(rows * n + ia.reshape(-1), rows * n + ib.reshape(-1), assume_unique=True)
    return common.size / (n * k)


def mutual_knn(
    A: np.ndarray,
    B: np.ndarray,
    k: int,
    *,
    clip_quantile: float | None = None,
    normalize: bool = True,
    duplicates: str = "raise",
) -> float:
    """mutual_knn(A, B; k) for embeddings of the same N samples; see the module docstring."""
    prep = KernelPreprocessing(clip_quantile, normalize)
    cache_a, cache_b, k = cosine_pair_caches(A, B, k, prep, duplicates)
    return float(mutual_knn_from_caches(cache_a, cache_b, k))
