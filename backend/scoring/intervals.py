"""Half-sampling confidence intervals of a new embedding's CKNNA and mutual kNN, equal to the analysis' own.

The analysis (precompute.analyze.tasks._pair_intervals) draws R seeded subsets of ⌊fN⌋ rows per dataset, the same
for every pair, recomputes both models' k-lists among each subset's rows and takes the basic interval of the R
subset values (precompute.metrics.resampling). Restricting a row's exact (score, index) list to a subset keeps it
exact, so a release model's subset lists are the first k kept entries of its list, provided the list is deep
enough: the release ships each row's list exactly as deep as those subsets need (`neighbours_deep`, k <= 5 where
N > 5,000, else k <= 10; see precompute.analyze.scoring_tables.interval_k). The new embedding's subset lists come
from its own longer cache and features (resampling.subsample_cache). Information imbalance model -> new
(precompute.analyze.tasks.task_information_imbalance): each model's Euclidean subset lists from its lists continued
as deep as the subsets need (`neighbours_euclidean_deep`, at the largest II k <= 5), the new embedding's ranks on each
subset from its own rows, in resampling_ii's one pass. Larger k, CKA and IDCor get no interval: a note says why.
"""

from __future__ import annotations

import numpy as np

from precompute.analyze.settings import AnalysisSettings
from precompute.analyze.tasks import resample_subsets
from precompute.metrics.neighbours import NeighbourCache
from precompute.metrics.resampling import basic_interval, knn_subsample_values, subsample_cache
from precompute.metrics.resampling_ii import info_imbalance_subsample_values

from .fast import self_hsic_lists
from .zoo import DeepLists

II_SHORT_NOTE = (
    "no interval: Δ(model -> new) on the release's subsets needs the Euclidean lists as deep as each "
    "subset's k-th kept neighbour (neighbours_euclidean_deep), which this release does not ship"
)
II_SMALL_NOTE = "no interval: the subsets are too small for this k (the analysis gives none either)"


def interval_settings(settings: dict) -> AnalysisSettings | None:
    """The analysis settings behind the release's intervals, or None when it drew no subsets."""
    known = {k: v for k, v in settings.items() if k in AnalysisSettings.__dataclass_fields__}
    s = AnalysisSettings.from_dict(known)
    return s if "resamples" in settings and s.resamples > 0 else None


def subset_lists(deep: DeepLists, keep: np.ndarray, k: int) -> NeighbourCache:
    """A release model's exact k-lists among the rows `keep` (renumbered), from its deep lists."""
    n = deep.indices.shape[0]
    pos = np.full(n, -1, dtype=np.int64)
    pos[keep] = np.arange(keep.size)
    mapped = pos[deep.indices[keep]]
    valid = np.arange(deep.indices.shape[1])[None, :] < deep.depth[keep][:, None]
    kept = (mapped >= 0) & valid
    short = np.flatnonzero(kept.sum(axis=1) < k)
    if short.size:  # cannot happen for the subsets the lists were cut for: a mismatch, not a silent approximation
        raise ValueError(f"neighbours_deep is too shallow for row {int(keep[short[0]])} on this subset at k = {k}")
    first = np.argsort(~kept, axis=1, kind="stable")[:, :k]
    return NeighbourCache(np.take_along_axis(mapped, first, 1), np.take_along_axis(deep.similarity[keep], first, 1),
                          "cosine")  # fmt: skip


def pair_intervals(
    s: AnalysisSettings,
    user: NeighbourCache,
    features: np.ndarray,
    deep: dict[str, DeepLists],
    ks: tuple[int, ...],
    values: dict[tuple, float],
    name: str,
) -> dict[tuple, tuple[float, float]]:
    """(metric, k, model_a, model_b) -> (ci_low, ci_high) for the user's rows against every model in `deep`.

    user: the user's cosine cache (any length >= max(ks)); features: its kernel features; values: the full-N
    values of those rows (the interval is centred on them, as the analysis centres its own)."""
    n = user.n
    subs = resample_subsets(n, s)
    m = subs[0].size
    ks = tuple(k for k in ks if k + 1 < m - 1)
    if not ks or not deep:
        return {}
    kmax = max(ks)
    got: dict[tuple, list[float]] = {}
    for keep in subs:
        sub_u = subsample_cache(user, keep, kmax, features)
        # self terms by fast.self_hsic_lists (bit-identical to self_hsic): the user's once per subset
        own = {("a", k): self_hsic_lists(sub_u.indices, sub_u.scores, k) for k in ks}
        for model, d in deep.items():
            sub_m = subset_lists(d, keep, kmax)
            st = {**own, **{("b", k): self_hsic_lists(sub_m.indices, sub_m.scores, k) for k in ks}}
            kv = knn_subsample_values(sub_u, sub_m, ks, st)
            for q, k in enumerate(ks):
                got.setdefault(("cknna", k, name, model), []).append(kv["cknna_ab"][q])
                got.setdefault(("cknna", k, model, name), []).append(kv["cknna_ba"][q])
                got.setdefault(("mutual_knn", k, name, model), []).append(kv["mutual_knn"][q])
    return {
        key: basic_interval(values[key], np.asarray(v), n, m, s.ci_level) for key, v in got.items() if key in values
    }


def ii_intervals(
    s: AnalysisSettings,
    X: np.ndarray,
    deep: dict[str, DeepLists],
    ks: tuple[int, ...],
    values: dict[tuple, float],
    name: str,
) -> dict[tuple, tuple[float, float]]:
    """("info_imbalance", k, model, name) -> (ci_low, ci_high) of Δ(model -> new; k), the analysis' interval.

    X: the new embedding's raw rows (B of the analysis' pass); deep: each model's Euclidean lists as deep as the
    subsets need at k = max(ks) (scoring_tables.ii_interval_k)."""
    n = X.shape[0]
    subs = resample_subsets(n, s)
    m = subs[0].size
    if not deep or not ks or max(s.ks_ii) + 1 >= m - 1:  # the analysis' rule, at its own k_max: no interval
        return {}
    lists = {a: d.indices for a, d in deep.items()}
    sub = info_imbalance_subsample_values(X, lists, {a: None for a in deep}, subs, ks,
                                          depth={a: d.depth for a, d in deep.items()})  # fmt: skip
    out = {}
    for a, v in sub.items():
        for q, k in enumerate(ks):
            key = ("info_imbalance", k, a, name)
            if key in values:
                out[key] = basic_interval(values[key], v[:, q], n, m, s.ci_level)
    return out
