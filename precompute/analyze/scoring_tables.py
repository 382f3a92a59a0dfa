"""The release tables that let a new embedding be scored without the release models' embeddings.

`neighbours` (pipeline.neighbours_table) holds each model's cosine k-lists; here are their similarities
(`neighbour_similarity`, float32) and each model's Euclidean lists on the raw embeddings (`neighbours_euclidean`).
List lengths: cosine k = 25 where N <= 5,000 and 10 above (QM9: about 35 MB for ~36 models, within the 100 MB
budget of data/), Euclidean k = 5. backend/scoring reads them back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COSINE_K_LARGE, COSINE_K_SMALL, SMALL_N = 10, 25, 5000
EUCLIDEAN_K = 5


def shipped_cosine_k(n: int) -> int:
    """How many cosine neighbours per sample a release ships for a dataset of N samples."""
    return COSINE_K_SMALL if n <= SMALL_N else COSINE_K_LARGE


def long_lists(dataset_id: str, model: str, values: np.ndarray, column: str) -> pd.DataFrame:
    """(N, k) per-sample lists as release rows: dataset_id, model_id, position, rank (1 = nearest), `column`."""
    n, k = values.shape
    return pd.DataFrame({"dataset_id": dataset_id, "model_id": model,
                         "position": np.repeat(np.arange(n, dtype=np.int64), k),
                         "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), n),
                         column: values.ravel()})  # fmt: skip


def neighbour_similarity_table(work: Path, dataset_id: str, models: list[str], k: int) -> pd.DataFrame:
    """K_ij (float32) of each model's first k cosine neighbours: the `neighbours` entries' kernel values."""
    from .tasks import load_cache

    parts = []
    for m in models:
        c = load_cache(Path(work), m, "cosine")
        parts.append(long_lists(dataset_id, m, c.scores[:, : min(k, c.k_max)].astype(np.float32), "similarity"))
    return pd.concat(parts, ignore_index=True)


def neighbours_euclidean_table(work: Path, dataset_id: str, models: list[str], k: int = EUCLIDEAN_K) -> pd.DataFrame:
    """Each model's first k Euclidean neighbours on its raw embedding (the information-imbalance lists)."""
    from .tasks import load_cache

    parts = []
    for m in models:
        c = load_cache(Path(work), m, "euclid")
        parts.append(long_lists(dataset_id, m, c.indices[:, : min(k, c.k_max)].astype(np.int64), "neighbour"))
    return pd.concat(parts, ignore_index=True)
