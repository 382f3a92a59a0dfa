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


def mixed_width_views(
    n: int, n_models: int = 10, min_width: int = 64, max_width: int = 2048, seed: int = 0, latent: int = 8
) -> dict[str, np.ndarray]:
    """`n_models` views of one latent at widths spaced geometrically from min_width to max_width (the zoo's mix).

    Even views are tanh, odd views leaky ReLU of a random projection, with noise growing with the view's index.
    """
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, latent))
    widths = np.unique(np.round(np.geomspace(min_width, max_width, n_models)).astype(int))
    if widths.size < n_models:
        raise ValueError(f"{n_models} distinct widths do not fit between {min_width} and {max_width}")
    views = {}
    for m, dim in enumerate(widths):
        P = Z @ (rng.normal(size=(latent, dim)) / np.sqrt(latent))
        H = np.tanh(P) if m % 2 == 0 else np.maximum(P, 0.0) + 0.1 * P
        views[f"view{m}-d{dim}"] = H + 0.05 * (m + 1) * rng.normal(size=(n, dim))
    return views
