"""What a release holds for scoring: each model's neighbour lists, read back into arrays.

Per (dataset, model): the cosine lists of `neighbours` with the similarities of `neighbour_similarity` (everything
CKNNA and mutual kNN need on the model's side) and the Euclidean lists of `neighbours_euclidean` (what information
imbalance model -> new embedding needs). CKA, unbiased CKA, IDCor and information imbalance new embedding -> model
need the model's embeddings, which a release does not hold: they are never approximated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from backend.release import Release


class ScoringDataError(ValueError):
    """The release lacks (or holds inconsistent) scoring data for this dataset."""


# what score_embeddings reads: a command scoring one dataset opens only these, only that dataset's rows
# (Release.open(path, only=SCORING_TABLES, dataset=...))
SCORING_TABLES = ("models", "datasets", "samples", "neighbours", "neighbour_similarity", "neighbours_euclidean",
                  "neighbours_deep", "neighbours_euclidean_deep")  # fmt: skip


@dataclass(frozen=True)
class ZooLists:
    """One model's lists on one dataset: (N, k) arrays, rows in `samples.position` order, best first."""

    model_id: str
    cosine_indices: np.ndarray
    cosine_similarity: np.ndarray | None  # None: the release has no `neighbour_similarity` for this model
    euclidean_indices: np.ndarray | None
    self_terms: dict = field(default_factory=dict, compare=False, repr=False)  # k -> HSIC_u(M∘K, M∘K), filled once


def _lists(release: Release, table: str, column: str, dataset: str, n: int) -> dict[str, np.ndarray]:
    # one query per model: no string column to fetch and a small sort each (about 3x faster than one big query)
    cur = release.cursor()
    out: dict[str, np.ndarray] = {}
    try:
        models = cur.execute(
            f"SELECT DISTINCT model_id FROM {table} WHERE dataset_id = ? ORDER BY model_id",  # names from code only
            [dataset],
        ).fetchall()
        for (m,) in models:
            got = cur.execute(
                f"SELECT position, rank, {column} FROM {table} WHERE dataset_id = ? AND model_id = ? "
                "ORDER BY position, rank",
                [dataset, m],
            ).fetchnumpy()
            size = len(got["position"])
            if size % n:
                raise ScoringDataError(
                    f"{table}: model {m!r} on {dataset!r} has {size} rows, not a multiple of N = {n}"
                )
            k = size // n
            pos = np.asarray(got["position"]).reshape(n, k)
            rank = np.asarray(got["rank"]).reshape(n, k)
            if not (np.array_equal(pos[:, 0], np.arange(n)) and (rank == np.arange(1, k + 1)).all()):
                raise ScoringDataError(
                    f"{table}: model {m!r} on {dataset!r} does not list ranks 1..{k} for every sample"
                )
            out[str(m)] = np.asarray(got[column]).reshape(n, k)
    finally:
        cur.close()
    return out


# (release folder, release id, dataset, N, what) -> lists: a server scores many uploads. One lock: a score that
# arrives while warm() reads its dataset waits for that read instead of reading it a second time.
_CACHE: dict[tuple, dict] = {}
_LOCK = threading.RLock()
_MAX_ENTRIES = 12  # 4 datasets x (zoo, deep cosine, deep Euclidean)


def _cached(key: tuple, read) -> dict:
    with _LOCK:
        if key not in _CACHE:
            if len(_CACHE) >= _MAX_ENTRIES:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = read()
        return _CACHE[key]


def _key(release: Release, dataset: str, what: str) -> tuple:
    # a partial open (one dataset's rows) holds the same lists for that dataset: the same key
    return (str(release.path), release.release_id, dataset, what)


def zoo_lists(release: Release, dataset: str, n: int) -> dict[str, ZooLists]:
    """Every model of `dataset` with cosine lists, in model-id order (read once per release and dataset)."""
    return dict(_cached((*_key(release, dataset, "zoo"), n), lambda: _read_zoo(release, dataset, n)))


def warm(release: Release, datasets: list[str] | None = None) -> list[str]:
    """Read every scorable dataset's lists (zoo and deep) into the cache, so a server's first score is a warm one.
    Returns the datasets read. Safe to run in a background thread (cursors per query, one lock)."""
    if "neighbours" not in release.tables:
        return []
    rows = release.query(
        "SELECT dataset_id, count(*) AS n FROM samples WHERE dataset_id IN (SELECT DISTINCT dataset_id FROM neighbours) "
        "GROUP BY dataset_id ORDER BY n DESC, dataset_id"
    )
    done = []
    for ds, n in zip(rows["dataset_id"], rows["n"], strict=True):
        if datasets is not None and ds not in datasets:
            continue
        zoo = zoo_lists(release, ds, int(n))
        deep_lists(release, ds, zoo)
        deep_euclidean_lists(release, ds, zoo)
        done.append(str(ds))
    return done


def _read_zoo(release: Release, dataset: str, n: int) -> dict[str, ZooLists]:
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
        for a in (out[m].cosine_indices, out[m].cosine_similarity, out[m].euclidean_indices):
            if a is not None:
                a.flags.writeable = False  # shared by every later score of this release (the cache above)
    return out


@dataclass(frozen=True)
class DeepLists:
    """One model's cosine lists as deep as the release's seeded subsets need (`neighbours` + `neighbours_deep`).

    indices / similarity: (N, W), row i valid up to depth[i] (the rest is padding); W >= the shipped k."""

    indices: np.ndarray
    similarity: np.ndarray | None  # None for the Euclidean lists (only their order matters)
    depth: np.ndarray


def deep_lists(release: Release, dataset: str, zoo: dict[str, ZooLists]) -> dict[str, DeepLists]:
    """The models of `zoo` with resampling lists in the release (none for a release without `neighbours_deep`)."""
    full = _cached(_key(release, dataset, "deep"), lambda: _deep_cosine(release, dataset))
    return {m: full[m] for m in zoo if m in full}


def deep_euclidean_lists(release: Release, dataset: str, zoo: dict[str, ZooLists]) -> dict[str, DeepLists]:
    """The models of `zoo` with Euclidean lists as deep as the II interval subsets need (`neighbours_euclidean_deep`);
    similarity None. Padding entries repeat the row's last valid neighbour (ranks of a padding entry are never
    counted; repeating a real entry keeps resampling_ii's search as short as without padding)."""
    full = _cached(_key(release, dataset, "deep_euclidean"), lambda: _deep_euclidean(release, dataset))
    return {m: full[m] for m in zoo if m in full}


def _all_zoo(release: Release, dataset: str) -> dict[str, ZooLists]:
    n = int(release.query("SELECT count(*) AS n FROM samples WHERE dataset_id = ?", [dataset]).n.iloc[0])
    return zoo_lists(release, dataset, n)


def _deep_cosine(release: Release, dataset: str) -> dict[str, DeepLists]:
    zoo = _all_zoo(release, dataset)
    base = {m: (z.cosine_indices, z.cosine_similarity) for m, z in zoo.items() if z.cosine_similarity is not None}
    return _deep(release, "neighbours_deep", dataset, base)


def _deep_euclidean(release: Release, dataset: str) -> dict[str, DeepLists]:
    zoo = _all_zoo(release, dataset)
    base = {m: (z.euclidean_indices.astype(np.int64), None) for m, z in zoo.items() if z.euclidean_indices is not None}
    return _deep(release, "neighbours_euclidean_deep", dataset, base)


def _deep(release: Release, table: str, dataset: str, base: dict[str, tuple]) -> dict[str, DeepLists]:
    """`base` (model -> shipped (N, k) indices, similarities or None) continued by `table`'s ranks k+1, k+2, ..."""
    if table not in release.tables:
        return {}
    with_sim = table == "neighbours_deep"
    cur = release.cursor()
    try:
        got = cur.execute(
            f"SELECT model_id, position, rank, neighbour{', similarity' if with_sim else ''} FROM {table} "  # names
            "WHERE dataset_id = ? ORDER BY model_id, position, rank",  # from code only; the value is bound
            [dataset],
        ).fetchnumpy()
    finally:
        cur.close()
    models = np.asarray(got["model_id"], dtype=object)
    out: dict[str, DeepLists] = {}
    starts = np.flatnonzero(np.r_[True, models[1:] != models[:-1]]) if models.size else np.zeros(0, dtype=int)
    for s, e in zip(starts, np.r_[starts[1:], models.size].astype(int), strict=True):
        m = str(models[s])
        if m not in base:
            continue
        shipped_i, shipped_s = base[m]
        n, k = shipped_i.shape
        pos = np.asarray(got["position"][s:e], dtype=np.int64)
        rank = np.asarray(got["rank"][s:e], dtype=np.int64)
        depth = np.full(n, k, dtype=np.int64)
        np.maximum.at(depth, pos, rank)
        width = int(depth.max())
        idx = np.zeros((n, width), dtype=np.int64)
        sim = np.zeros((n, width)) if with_sim else None
        idx[:, :k] = shipped_i
        idx[pos, rank - 1] = np.asarray(got["neighbour"][s:e])
        if sim is not None:
            sim[:, :k] = shipped_s
            sim[pos, rank - 1] = np.asarray(got["similarity"][s:e], dtype=np.float64)
        if sim is None:  # Euclidean: padding repeats the row's last valid entry (see deep_euclidean_lists)
            last = np.take_along_axis(idx, (depth - 1)[:, None], 1)
            pad = np.arange(width)[None, :] >= depth[:, None]
            idx[pad] = np.broadcast_to(last, idx.shape)[pad]
        counts = np.bincount(pos, minlength=n)
        if (rank <= k).any() or not np.array_equal(counts[counts > 0], (depth - k)[counts > 0]):
            raise ScoringDataError(f"{table}: model {m!r} on {dataset!r} does not continue ranks {k + 1}.. "
                                   "without gaps")  # fmt: skip
        for a in (idx, sim, depth):
            if a is not None:
                a.flags.writeable = False  # cached and shared by every later score (padding is filled before)
        out[m] = DeepLists(idx, sim, depth)
    return out
