"""GRIDE intrinsic dimension (Denti, Doimo, Laio, Mira 2022, Sci. Rep. 12, 20005): TwoNN generalised to a scale.

For each distinct point, mu = r_{n2} / r_{n1} with r_n the distance to its n-th nearest neighbour (n2 = 2·n1).
Under local uniformity mu has density f(mu) = d (mu^d - 1)^{n2-n1-1} / (B(n2-n1, n1) mu^{(n2-1)d + 1}), so
the maximum-likelihood d solves

    (N - 1)/d + (n2 - n1 - 1) Σ_i log(mu_i) / (1 - mu_i^{-d}) - (n2 - 1) Σ_i log(mu_i) = 0,

(the (N - 1) form is the unbiased one, as in DADApy's `return_id_scaling_gride`; at n1 = 1 it is the TwoNN MLE
(N - 1) / Σ log mu). Larger n1 probes the manifold at a larger scale and is less sensitive to noise.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from ._checks import as_representation
from .neighbours import Backend, build_neighbour_cache


def gride_from_ratios(mu: np.ndarray, n1: int, n2: int | None = None) -> float:
    """Maximum-likelihood GRIDE dimension from the ratios mu = r_{n2}/r_{n1} (all > 1)."""
    n2 = 2 * n1 if n2 is None else n2
    log_mu = np.log(mu)
    if (log_mu <= 0).any():
        raise ValueError("GRIDE needs r_{n2} > r_{n1} for every point (ties at that scale)")
    n = log_mu.size
    s = log_mu.sum()

    def score(d: float) -> float:
        return (n - 1) / d + (n2 - n1 - 1) * np.sum(log_mu / -np.expm1(-d * log_mu)) - (n2 - 1) * s

    return float(brentq(score, 1e-3, 1e3, xtol=1e-12, rtol=1e-13))


def gride_ratios(
    X: np.ndarray, n1: int = 8, *, backend: Backend = "numpy", device: str = "cpu", name: str = "X"
) -> tuple[np.ndarray, int]:
    """(mu_i = r_{2·n1} / r_{n1} for every distinct point, number of duplicate rows removed)."""
    X = as_representation(X, name)
    distinct = np.unique(X, axis=0)
    cache = build_neighbour_cache(distinct, 2 * n1, "euclidean", backend=backend, device=device, name=name)
    return cache.scores[:, 2 * n1 - 1] / cache.scores[:, n1 - 1], int(X.shape[0] - distinct.shape[0])


def gride_id(X: np.ndarray, n1: int = 8) -> float:
    """GRIDE intrinsic dimension of X at scale n1 (neighbours n1 and 2·n1); see the module docstring."""
    mu, _ = gride_ratios(X, n1)
    return gride_from_ratios(mu, n1)
