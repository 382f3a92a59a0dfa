"""TwoNN intrinsic dimension (Facco, d'Errico, Rodriguez, Laio 2017, Sci. Rep. 7, 12140).

For each point, r1 < r2 are the Euclidean distances to its two nearest distinct neighbours and mu = r2 / r1.
Under local uniformity mu follows F(mu) = 1 - mu^(-d). With the mu sorted ascending, the largest
`discard_fraction` of them dropped (n_eff = floor(N · (1 - discard_fraction)) kept) and the empirical CDF
F(mu_(i)) = i / N over all N points, d is the least-squares slope through the origin of
y_i = -log(1 - i/N) against x_i = log mu_(i):  d = Σ x_i y_i / Σ x_i².
This is DADApy's `compute_id_2NN` (mu_fraction = 0.9) and scikit-dimension's `TwoNN` (discard_fraction = 0.1).
Duplicate rows have r1 = 0; they are removed first and their number is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._checks import as_representation
from .neighbours import Backend, build_neighbour_cache


@dataclass(frozen=True)
class TwoNNResult:
    dimension: float
    n: int  # distinct points used
    n_duplicates: int  # rows removed because they repeat an earlier row
    discard_fraction: float


def twonn_from_ratios(mu: np.ndarray, discard_fraction: float = 0.1) -> float:
    """The TwoNN fit on the ratios mu = r2 / r1 of N points (all > 1 or = 1)."""
    if not 0.0 <= discard_fraction < 1.0:
        raise ValueError(f"discard_fraction must be in [0, 1), got {discard_fraction}")
    n = mu.size
    # F(mu) = i / N reaches 1 at the largest ratio, where -log(1 - F) is infinite: that point is never fitted
    n_eff = min(int(n * (1.0 - discard_fraction)), n - 1)
    if n_eff < 2:
        raise ValueError(f"TwoNN needs at least 2 ratios after discarding, got {n_eff} of N = {n}")
    x = np.sort(np.log(mu))[:n_eff]
    y = -np.log(1.0 - np.arange(1, n_eff + 1) / n)
    sxx = float(np.dot(x, x))
    if sxx == 0.0:
        raise ValueError("TwoNN is undefined: every kept ratio r2/r1 equals 1 (equidistant neighbours)")
    return float(np.dot(x, y) / sxx)


def twonn_ratios(
    X: np.ndarray, *, backend: Backend = "numpy", device: str = "cpu", name: str = "X"
) -> tuple[np.ndarray, int]:
    """(mu_i = r2/r1 for every distinct point, number of duplicate rows removed)."""
    X = as_representation(X, name)
    distinct = np.unique(X, axis=0)
    n_dup = X.shape[0] - distinct.shape[0]
    if distinct.shape[0] < 4:
        raise ValueError(f"{name}: only {distinct.shape[0]} distinct rows (of {X.shape[0]}); TwoNN needs at least 4")
    cache = build_neighbour_cache(distinct, 2, "euclidean", backend=backend, device=device, name=name)
    return cache.scores[:, 1] / cache.scores[:, 0], int(n_dup)


def twonn_details(
    X: np.ndarray, discard_fraction: float = 0.1, *, backend: Backend = "numpy", device: str = "cpu", name: str = "X"
) -> TwoNNResult:
    """TwoNN on the rows of X (Euclidean, no preprocessing), duplicates removed first and counted."""
    mu, n_dup = twonn_ratios(X, backend=backend, device=device, name=name)
    dim = twonn_from_ratios(mu, discard_fraction)
    return TwoNNResult(dimension=dim, n=int(mu.size), n_duplicates=n_dup, discard_fraction=discard_fraction)


def ratio_bootstrap_ci(
    mu: np.ndarray, fit: Callable[[np.ndarray], float], replicates: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of an estimator fitted on per-point ratios (TwoNN, GRIDE): the ratios mu_i are
    resampled with replacement and refitted.

    Resampling the ratios (not the points) keeps every replicate free of duplicate points, which would otherwise
    distort the neighbour distances.
    """
    if replicates < 2:
        raise ValueError(f"replicates must be >= 2, got {replicates}")
    rng = np.random.default_rng(seed)
    est = [fit(mu[rng.integers(0, mu.size, mu.size)]) for _ in range(replicates)]
    lo, hi = np.quantile(est, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def twonn_bootstrap_ci(
    mu: np.ndarray, replicates: int = 200, seed: int = 0, discard_fraction: float = 0.1, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of TwoNN (see ratio_bootstrap_ci)."""
    return ratio_bootstrap_ci(mu, lambda m: twonn_from_ratios(m, discard_fraction), replicates, seed, level)


def twonn_id(X: np.ndarray, discard_fraction: float = 0.1) -> float:
    """TwoNN intrinsic dimension of the (N, D) representation X; see the module docstring."""
    return twonn_details(X, discard_fraction).dimension
