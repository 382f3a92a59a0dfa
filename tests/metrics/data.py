"""Structured test representations: several views of one shared latent, plus unrelated controls."""

from __future__ import annotations

import numpy as np


def views(n: int, seed: int = 0, latent: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, latent))
    return {
        "linear": Z @ rng.normal(size=(latent, 24)),
        "tanh": np.tanh(Z @ rng.normal(size=(latent, 32))),
        "noisy": Z @ rng.normal(size=(latent, 16)) + 0.3 * rng.normal(size=(n, 16)),
        "partial": np.hstack([Z[:, :2], rng.normal(size=(n, 6))]),
        "unrelated": rng.normal(size=(n, 12)),
    }
