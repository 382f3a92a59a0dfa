"""Confidence intervals for pairwise metrics by subsampling without replacement, and ties in rankings.

Why not the bootstrap: a bootstrap sample repeats rows, and a repeated row is its own nearest neighbour at
similarity 1 in both representations, which inflates every neighbourhood metric. Subsampling keeps distinct rows.

Scheme (half-sampling). R seeded subsets S_1..S_R of m = ⌊N/2⌋ distinct rows; θ*_r is the metric on S_r (its
k-neighbour lists recomputed among S_r's rows, see `subsample_cache`). For a statistic that behaves like a mean of
row contributions with variance σ², sampling m of N rows without replacement gives
    Var(θ*_r - θ̂_N) = σ² (1/m - 1/N) = σ²/N · (N - m)/m,
so sqrt(m / (N - m)) · (θ*_r - θ̄*) has the sampling spread of θ̂_N (factor 1 at m = N/2; the Politis-Romano
factor sqrt(m/N) is its m << N limit). The subsample values are centred at their own mean θ̄*, not at θ̂_N: a
neighbourhood metric at fixed k on half the points looks at twice the neighbourhood scale, so E[θ*] ≠ E[θ̂_N] and
only the spread carries over. The interval is the basic (reverse-percentile) one:
    [θ̂_N - c·q_{1-α/2}, θ̂_N - c·q_{α/2}],  q the quantiles of θ*_r - θ̄*, c = sqrt(m / (N - m)).
Coverage is checked by simulation (tests/metrics/test_resampling_coverage.py).

Neighbours on a subsample. A full cache lists each row's top-L neighbours in exact (score, index) order;
restricted to the kept rows it is still in exact order, so its first k kept entries are the exact k-NN within the
subset whenever at least k of the L survive (ties keep the lower-index rule: subset indices are increasing in the
full ones). About L/2 survive, so a cache with L >= 2k + 6·sqrt(k) + 8 (`subsample_list_length`) leaves a
handful of rows short; those rows are recomputed exactly over the subset's features. Tested against a dense
recompute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ._checks import centred_scaled
from .cknna import self_hsic
from .hsic import sparse_hsic_unbiased_both
from .idcor import FAST_MAX_N, idcor_details, prepare_idcor
from .neighbours import NeighbourCache, _exact_row


def subsample_list_length(k: int) -> int:
    """Cache length L so that, on a half subsample, fewer than k of L survive with probability ~1e-4 per row."""
    return int(2 * k + math.ceil(6 * math.sqrt(k)) + 8)


def subsets(n: int, count: int, seed: int | np.random.SeedSequence, m: int | None = None) -> list[np.ndarray]:
    """`count` seeded sorted subsets of m = ⌊n/2⌋ distinct rows (the same for every pair of a dataset)."""
    m = n // 2 if m is None else int(m)
    if not 1 <= m < n:
        raise ValueError(f"subsample size must be in [1, N), got m = {m} for N = {n}")
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n, m, replace=False)) for _ in range(count)]


def subsample_cache(cache: NeighbourCache, keep: np.ndarray, k: int, features: np.ndarray) -> NeighbourCache:
    """The exact k-neighbour cache of features[keep] (rows renumbered 0..m-1), from the full cache.

    features: the rows the cache was built on (kernel features for "cosine", raw for "euclidean"); used only for
    rows where fewer than k of the cached neighbours were kept. options["rows_recomputed"] counts them.
    """
    n, m = cache.n, keep.size
    if k >= m - 1:
        raise ValueError(f"k = {k} needs more than {k + 1} rows in the subsample, got {m}")
    pos = np.full(n, -1, dtype=np.int64)
    pos[keep] = np.arange(m)
    mapped = pos[cache.indices[keep]]
    kept = mapped >= 0
    first = np.argsort(~kept, axis=1, kind="stable")[:, :k]  # kept entries first, in list order
    idx = np.take_along_axis(mapped, first, 1)
    scores = np.take_along_axis(cache.scores[keep], first, 1)
    short = np.flatnonzero(kept.sum(axis=1) < k)
    if short.size:
        X = np.ascontiguousarray(features[keep], dtype=np.float64)
        for r in short:
            idx[r], scores[r] = _exact_row(X, int(r), k, cache.kind)
    return NeighbourCache(idx, scores, cache.kind, {**cache.options, "rows_recomputed": int(short.size)})


def basic_interval(full: float, sub_values: np.ndarray, n: int, m: int, level: float = 0.95) -> tuple[float, float]:
    """[θ̂ - c·q_hi, θ̂ - c·q_lo] from the centred subsample values, c = sqrt(m / (N - m)); see the docstring."""
    d = np.asarray(sub_values, dtype=np.float64) - np.mean(sub_values)
    c = math.sqrt(m / (n - m))
    q_lo, q_hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    return float(full - c * q_hi), float(full - c * q_lo)


# ------------------------------------------------------------------------------------------------ per subset
def knn_subsample_values(
    sub_a: NeighbourCache, sub_b: NeighbourCache, ks: Sequence[int], self_terms: dict | None = None
) -> dict[str, np.ndarray]:
    """CKNNA both orders and mutual kNN at each k on one subsample, from the two subsample caches.

    self_terms: {("a", k): self_hsic(sub_a, k), ("b", k): ...} when the caller has them (one model's, per subset).
    """
    n = sub_a.n
    ks = [int(k) for k in ks]
    kmax = max(ks)
    ia, va = sub_a.prefix(kmax)
    ib, vb = sub_b.prefix(kmax)
    rows = np.repeat(np.arange(n, dtype=np.int64), kmax)
    common, pa, pb = np.intersect1d(rows * n + ia.ravel(), rows * n + ib.ravel(), assume_unique=True,
                                    return_indices=True)  # fmt: skip
    r, c, x, y = common // n, common % n, va.ravel()[pa], vb.ravel()[pb]
    ra, rb = pa % kmax, pb % kmax
    out = {m: np.empty(len(ks)) for m in ("cknna_ab", "cknna_ba", "mutual_knn")}
    st = self_terms if self_terms is not None else {}
    for q, k in enumerate(ks):
        sel = (ra < k) & (rb < k)
        haa = st[("a", k)] if ("a", k) in st else self_hsic(sub_a, k)
        hbb = st[("b", k)] if ("b", k) in st else self_hsic(sub_b, k)
        denom = math.sqrt(haa * hbb)
        out["mutual_knn"][q] = np.count_nonzero(sel) / (n * k)
        h_ab, h_ba = sparse_hsic_unbiased_both(r[sel], c[sel], x[sel], y[sel], n, keys_sorted=True)
        out["cknna_ab"][q], out["cknna_ba"][q] = h_ab / denom, h_ba / denom
    return out


def idcor_subsample_values(
    features: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]], subsets_: Sequence[np.ndarray]
) -> dict[tuple[str, str], np.ndarray]:
    """IDCor of each pair on each subset, recomputed on the subset's rows (z-scoring included, no permutations).

    Each model's subset distances are built once per subset and shared by its pairs (prepare_idcor).
    """
    out = {(a, b): np.empty(len(subsets_)) for a, b in pairs}
    models = sorted({x for p in pairs for x in p})
    for r, keep in enumerate(subsets_):
        prep = {x: prepare_idcor(features[x][keep], x) if keep.size <= FAST_MAX_N else None for x in models}
        for a, b in pairs:
            res = idcor_details(features[a][keep], features[b][keep], 0, prepared=(prep[a], prep[b]))
            out[(a, b)][r] = res.value
    return out


class CkaParts:
    """One model's CKA terms on one set of rows (centred there), so each pair costs one cross product."""

    def __init__(self, X: np.ndarray, dtype: type = np.float32):
        Xc, _ = centred_scaled(X, "X")
        self.n = Xc.shape[0]
        self.X = Xc.astype(dtype)
        self.self_biased = float(np.sum((Xc.T @ Xc) ** 2))
        self.diag = np.einsum("ij,ij->i", Xc, Xc)
        s = Xc.sum(axis=0)
        self.total = float(s @ s - self.diag.sum())
        self.k1 = Xc @ s - self.diag
        self.self_unbiased = self._hsic_u(self.self_biased, self, self)

    def _hsic_u(self, cross: float, a: CkaParts, b: CkaParts) -> float:
        n = self.n
        trace = cross - float(a.diag @ b.diag)
        return (trace + a.total * b.total / ((n - 1) * (n - 2)) - 2.0 * float(a.k1 @ b.k1) / (n - 2)) / (n * (n - 3))


def cka_pair(a: CkaParts, b: CkaParts) -> dict[str, float]:
    """Biased and unbiased linear CKA from two models' parts on the same rows."""
    cross = float(np.sum(np.square(a.X.T @ b.X, dtype=np.float64)))
    return {"cka": cross / math.sqrt(a.self_biased * b.self_biased),
            "cka_unbiased": a._hsic_u(cross, a, b) / math.sqrt(a.self_unbiased * b.self_unbiased)}  # fmt: skip


# ------------------------------------------------------------------------------------------------ rankings
def mark_ties(
    values: Sequence[float],
    ci_low: Sequence[float | None],
    ci_high: Sequence[float | None],
    *,
    higher_is_better: bool = True,
) -> np.ndarray:
    """Tie groups for an ordering of pairs: group[i] = 0 for the best group, 1 for the next, ...

    Items are ordered by value (best first). Each group is led by its best item; the next item joins the group
    when its interval overlaps the leader's interval, else it starts a new group. Pairs in one group are tied
    (their order is not supported by the intervals). An item without an interval (null or NaN) overlaps only
    an item of exactly equal value.
    """
    v = np.asarray(values, dtype=np.float64)
    lo = np.array([np.nan if x is None else x for x in ci_low], dtype=np.float64)
    hi = np.array([np.nan if x is None else x for x in ci_high], dtype=np.float64)
    if not (v.shape == lo.shape == hi.shape):
        raise ValueError(f"values, ci_low, ci_high differ in length: {v.size}, {lo.size}, {hi.size}")
    missing = np.isnan(lo) | np.isnan(hi)
    lo, hi = np.where(missing, v, lo), np.where(missing, v, hi)
    if np.any(lo > hi):
        raise ValueError(f"ci_low > ci_high at position {int(np.flatnonzero(lo > hi)[0])}")
    order = np.argsort(-v if higher_is_better else v, kind="stable")
    group = np.empty(v.size, dtype=np.int64)
    g, leader = -1, None
    for i in order:
        if leader is None or not (lo[i] <= hi[leader] and lo[leader] <= hi[i]):
            g, leader = g + 1, i
        group[i] = g
    return group
