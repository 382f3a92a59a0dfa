"""Structured synthetic representations for benchmarks: ten views of one shared latent, like ten models of one dataset.

Labelled synthetic everywhere they are used; never shipped as data.
"""

from __future__ import annotations

import numpy as np


def structured_views(
    n: int, n_models: int = 10, seed: int = 0, latent: int = 8, dim: int = 128
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, latent))
    views = {}
    for m in range(n_models):
        W1 = rng.normal(size=(latent, dim)) / np.sqrt(latent)
        H = np.tanh(Z @ W1) if m % 2 else np.maximum(Z @ W1, 0.0) + 0.1 * (Z @ W1)
        noise = 0.05 * (m + 1)
        W2 = rng.normal(size=(dim, dim)) / np.sqrt(dim)
        views[f"view{m}"] = (H @ W2 + noise * rng.normal(size=(n, dim))).astype(np.float64)
    return views
