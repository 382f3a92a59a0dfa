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


# ------------------------------------------------------------------------------------- lists for the intervals
CI_K_LARGE, CI_K_SMALL = 5, 10  # intervals are scorable for k <= this (N > SMALL_N, N <= SMALL_N)


def interval_k(n: int) -> int:
    """The largest k whose half-sampling interval a release makes scorable for a dataset of N samples.

    Each seeded subset keeps about half of a row's list, so the k-th kept neighbour sits near rank 2k and, over the
    ~R/2 subsets holding a row, as deep as ~3k-5k: QM9 (N = 9,848, 36 models, R = 50) needs ~2.7 M extra entries
    at k = 5 (~20 MB as zstd Parquet) but ~7.2 M at k = 10 (~55 MB), which the 100 MB budget of data/ cannot
    hold next to the other tables.
    """
    return CI_K_SMALL if n <= SMALL_N else CI_K_LARGE


def resample_depth(
    indices: np.ndarray, subsets: list[np.ndarray], k: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """Per row, the list depth that holds its first k neighbours kept by every subset containing it (0 for rows in
    no subset); the list length + 1 where some subset keeps fewer than k of it. indices[q] is the list of row
    rows[q] (default: row q of all N)."""
    m, length = indices.shape
    n = m if rows is None else int(max(indices.max(), rows.max())) + 1
    rows = np.arange(m) if rows is None else np.asarray(rows)
    where = np.full(n, -1, dtype=np.int64)
    where[rows] = np.arange(m)
    depth = np.zeros(m, dtype=np.int64)
    inside = np.zeros(n, dtype=bool)
    for keep in subsets:
        inside[:] = False
        inside[keep] = True
        q = where[keep[keep < n]]
        q = q[q >= 0]
        kept = np.cumsum(inside[indices[q]], axis=1)
        pos = np.where(kept[:, -1] >= k, np.argmax(kept >= k, axis=1) + 1, length + 1)
        depth[q] = np.maximum(depth[q], pos)
    return depth


def deep_lists(
    indices: np.ndarray, scores: np.ndarray, features: np.ndarray, subsets: list[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(depth per row, indices, scores): each row's exact cosine list as deep as the seeded subsets need at k.

    features: the model's kernel features (the cache's input). A row whose cached list is too short is ordered
    exactly over all N, as resampling.subsample_cache would recompute it on each subset (restricting an exact
    (score, index) order to a subset keeps it exact)."""
    from precompute.metrics._checks import pow2_scale
    from precompute.metrics.neighbours import _exact_row

    depth = resample_depth(indices, subsets, k)
    short = np.flatnonzero(depth > indices.shape[1])
    if not short.size:
        return depth, indices, scores
    n = indices.shape[0]
    X, scale_exp = pow2_scale(np.ascontiguousarray(features, dtype=np.float64))
    full = [_exact_row(X, int(i), n - 1, "cosine") for i in short]
    full_i = np.stack([f[0] for f in full])
    depth[short] = resample_depth(full_i, subsets, k, rows=short)
    width = int(depth.max())
    out_i = np.zeros((n, width), dtype=np.int64)
    out_s = np.zeros((n, width))
    out_i[:, : indices.shape[1]], out_s[:, : indices.shape[1]] = indices, scores
    out_i[short] = full_i[:, :width]
    out_s[short] = np.ldexp(np.stack([f[1] for f in full])[:, :width], 2 * scale_exp)
    return depth, out_i, out_s


def neighbours_deep_table(
    work: Path, dataset_id: str, models: list[str], settings: dict, shipped_k: int
) -> pd.DataFrame:
    """Each model's cosine list entries beyond rank shipped_k, as deep as each row needs for the analysis' seeded
    half-sampling subsets at k <= interval_k(N) (`neighbours_deep`): with them a new embedding's interval equals the
    one the analysis would give it. Empty when the analysis drew no subsets."""
    from precompute.metrics.preprocess import kernel_features

    from .settings import AnalysisSettings
    from .tasks import _prep, load_cache, load_features, resample_subsets

    cols = ["dataset_id", "model_id", "position", "rank", "neighbour", "similarity"]
    s = AnalysisSettings.from_dict(settings)
    parts = []
    for m in models:
        c = load_cache(Path(work), m, "cosine")
        ks = [k for k in s.ks_knn if k <= min(interval_k(c.n), shipped_k)]
        if s.resamples <= 0 or not ks:
            break
        subs = resample_subsets(c.n, s)
        feats = kernel_features(load_features(Path(work), m), _prep(s), m)
        parts.append(deep_rows(dataset_id, m, *deep_lists(c.indices, c.scores, feats, subs, max(ks)), shipped_k))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def deep_rows(
    dataset_id: str, model: str, depth: np.ndarray, indices: np.ndarray, scores: np.ndarray | None, shipped_k: int
) -> pd.DataFrame:
    """`neighbours_deep` rows: ranks shipped_k + 1 .. depth[i] of each row i (similarities as float32; scores None:
    the `neighbours_euclidean_deep` rows, indices only)."""
    pos, rank = np.nonzero(np.arange(1, indices.shape[1] + 1)[None, :] <= depth[:, None])
    sel = rank >= shipped_k  # 0-based rank
    pos, rank = pos[sel], rank[sel]
    out = pd.DataFrame({"dataset_id": dataset_id, "model_id": model, "position": pos.astype(np.int64),
                        "rank": (rank + 1).astype(np.int64), "neighbour": indices[pos, rank].astype(np.int64)})  # fmt: skip
    if scores is not None:
        out["similarity"] = scores[pos, rank].astype(np.float32)
    return out


# ------------------------------------------------------------------- Euclidean lists for the II intervals
def ii_interval_k(ks_ii: list[int] | tuple[int, ...], m: int, shipped_k: int = EUCLIDEAN_K) -> int | None:
    """The k the Euclidean subset lists are shipped for: the largest analysed II k a new embedding can be scored at
    (<= the shipped list length); None when the analysis gives no II interval (task_information_imbalance: its
    k_max + 1 must be < m - 1, m the subset size). A subset's first k kept neighbours do not depend on the k_max the
    analysis cut at, so the intervals at k <= this equal the analysis' (its k = 25 needs no list: not scorable)."""
    if not ks_ii or max(ks_ii) + 1 >= m - 1:
        return None
    ks = [k for k in ks_ii if k <= shipped_k]
    return max(ks) if ks else None


def deep_euclidean_lists(
    indices: np.ndarray, features: np.ndarray, subsets: list[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(depth per row, indices): each row's exact Euclidean list (raw features) as deep as the seeded subsets need
    for its first k kept neighbours: exactly the lists resampling_ii takes on each subset (the cache's first k kept
    entries; a row whose cache is too short is ordered exactly over all N, as _exact_short_row orders it on S)."""
    from precompute.metrics.neighbours import _exact_row

    depth = resample_depth(indices, subsets, k)
    short = np.flatnonzero(depth > indices.shape[1])
    if not short.size:
        return depth, indices
    n = indices.shape[0]
    X = np.ascontiguousarray(features, dtype=np.float64)  # as _exact_short_row: raw rows, no scaling
    full_i = np.stack([_exact_row(X, int(i), n - 1, "euclidean")[0] for i in short])
    depth[short] = resample_depth(full_i, subsets, k, rows=short)
    out = np.zeros((n, int(depth.max())), dtype=np.int64)
    out[:, : indices.shape[1]] = indices[:, : out.shape[1]]
    out[short] = full_i[:, : out.shape[1]]
    return depth, out


def neighbours_euclidean_deep_table(
    work: Path, dataset_id: str, models: list[str], settings: dict, shipped_k: int = EUCLIDEAN_K
) -> pd.DataFrame:
    """Each model's Euclidean list entries beyond rank shipped_k, as deep as each row needs for the analysis' seeded
    subsets at k = ii_interval_k (`neighbours_euclidean_deep`): with them a new embedding's information-imbalance
    intervals (model -> new) equal the analysis'. Empty when the analysis gave II no interval."""
    from .settings import AnalysisSettings
    from .tasks import load_cache, load_features, resample_subsets

    cols = ["dataset_id", "model_id", "position", "rank", "neighbour"]
    s = AnalysisSettings.from_dict(settings)
    parts = []
    for m in models:
        c = load_cache(Path(work), m, "euclid")
        subs = resample_subsets(c.n, s) if s.resamples > 0 else []
        k = ii_interval_k(s.ks_ii, subs[0].size, shipped_k) if subs else None
        if k is None:
            break
        depth, idx = deep_euclidean_lists(c.indices, load_features(Path(work), m), subs, k)
        parts.append(deep_rows(dataset_id, m, depth, idx, None, shipped_k))
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
