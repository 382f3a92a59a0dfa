"""What a release holds for scoring: each model's neighbour lists, read back into arrays.

Per (dataset, model): the cosine lists of `neighbours` with the similarities of `neighbour_similarity` (everything
CKNNA and mutual kNN need on the model's side) and the Euclidean lists of `neighbours_euclidean` (what information
imbalance model -> new embedding needs). CKA, unbiased CKA, IDCor and information imbalance new embedding -> model
need the model's embeddings, which a release does not hold: they are never approximated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.release import Release


class ScoringDataError(ValueError):
    """The release lacks (or holds inconsistent) scoring data for this dataset."""


@dataclass(frozen=True)
class ZooLists:
    """One model's lists on one dataset: (N, k) arrays, rows in `samples.position` order, best first."""

    model_id: str
    cosine_indices: np.ndarray
    cosine_similarity: np.ndarray | None  # None: the release has no `neighbour_similarity` for this model
    euclidean_indices: np.ndarray | None


def _lists(release: Release, table: str, column: str, dataset: str, n: int) -> dict[str, np.ndarray]:
    cur = release.cursor()
    try:
        got = cur.execute(
            f"SELECT model_id, position, rank, {column} FROM {table} WHERE dataset_id = ? "  # names from code only
            "ORDER BY model_id, position, rank",
            [dataset],
        ).fetchnumpy()
    finally:
        cur.close()
    out: dict[str, np.ndarray] = {}
    models = np.asarray(got["model_id"], dtype=object)
    if models.size == 0:
        return out
    starts = np.flatnonzero(np.r_[True, models[1:] != models[:-1]])
    for s, e in zip(starts, np.r_[starts[1:], models.size], strict=True):
        m = str(models[s])
        size = e - s
        if size % n:
            raise ScoringDataError(f"{table}: model {m!r} on {dataset!r} has {size} rows, not a multiple of N = {n}")
        k = size // n
        pos = np.asarray(got["position"][s:e]).reshape(n, k)
        rank = np.asarray(got["rank"][s:e]).reshape(n, k)
        if not (np.array_equal(pos[:, 0], np.arange(n)) and (rank == np.arange(1, k + 1)).all()):
            raise ScoringDataError(f"{table}: model {m!r} on {dataset!r} does not list ranks 1..{k} for every sample")
        out[m] = np.asarray(got[column][s:e]).reshape(n, k)
    return out


def zoo_lists(release: Release, dataset: str, n: int) -> dict[str, ZooLists]:
    """Every model of `dataset` with cosine lists, in model-id order."""
    cos = _lists(release, "neighbours", "neighbour", dataset, n)
    if not cos:
        raise ScoringDataError(
            f"release {release.release_id} has no neighbour lists for dataset {dataset!r}: it cannot be scored against"
        )
    sim = _lists(release, "neighbour_similarity", "similarity", dataset, n)
    euc = _lists(release, "neighbours_euclidean", "neighbour", dataset, n)
    out = {}
    for m, idx in cos.items():
        s = sim.get(m)
        if s is not None and s.shape != idx.shape:
            raise ScoringDataError(
                f"neighbour_similarity: model {m!r} has {s.shape[1]} ranks, neighbours {idx.shape[1]}"
            )
        out[m] = ZooLists(m, idx.astype(np.int64), None if s is None else s.astype(np.float64), euc.get(m))
    return out
