"""Information imbalance on half subsamples (for its confidence interval), exact, in one tiled pass over B.

On a subset S (m rows) the statistic is Δ_S(A → B; k) = 2/(m² k) Σ_{i∈S} Σ_{j∈N_k^{A,S}(i)} rank_B^S(i, j) with
N_k^{A,S}(i) the k nearest A-neighbours of i among S and rank_B^S(i, j) = 1 + #{l ∈ S, l != i : d_B(i, l) <
d_B(i, j)}: the information imbalance recomputed on S's rows, nothing approximated.

A's lists on S come from its full Euclidean cache exactly as `resampling.subsample_cache` takes them (the first k
kept entries of the top-L list; a row with fewer than k kept is recomputed over S's features). The B ranks on S come
from the full rows of B: with row i's distances sorted once, pos = #{l : d_B(i, l) < thr} is a binary search, and
the number of S-members among those pos nearest rows is a prefix count of S's membership along that sorted order.
One pass therefore serves every A and all R subsets; its cost beyond `ranks_in` is O(N · p_max · R) per B, p_max
the largest position a threshold reaches in a tile (small when A predicts B, up to N when it does not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .information_imbalance import rank_space, sq_distance_block
from .neighbours import _exact_row

_DEFAULT_TILE_BYTES = 64 * 2**20


def _exact_short_row(
    features: np.ndarray, keep: np.ndarray, local_row: int, k_max: int, d2_row: np.ndarray
) -> np.ndarray:
    """Ranks in B (among `keep`) of the exact k_max A-neighbours of one subset row, as subsample_cache would list them."""
    X = np.ascontiguousarray(features[keep], dtype=np.float64)
    idx, _ = _exact_row(X, local_row, k_max, "euclidean")
    thr = d2_row[keep[idx]]
    return 1 + np.count_nonzero(d2_row[keep][None, :] < thr[:, None], axis=1)


def info_imbalance_subsample_values(
    B: np.ndarray,
    lists: Mapping[str, np.ndarray],
    features: Mapping[str, np.ndarray | None],
    subsets: Sequence[np.ndarray],
    ks: Sequence[int],
    *,
    tile_bytes: int = _DEFAULT_TILE_BYTES,
    depth: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Δ_S(A → B; k) (R, len(ks)) for each A on each subset S_r (sorted row positions, all of one size m).

    lists: A's full (N, L) Euclidean neighbour lists in exact order (L >= max(ks); resampling.subsample_list_length
    makes rows left short rare). features: A's rows the cache was built on (used for the short rows only).
    Ranks as in information_imbalance.ranks_in (Gram form on carefully centred B, strict "nearer").
    depth: per A, row i's list is valid up to depth[a][i] (the rest is padding, never a neighbour): a release's
    `neighbours_euclidean_deep` lists, deep enough by construction; with features[a] None a row left short raises.
    """
    n = B.shape[0]
    ks = [int(k) for k in ks]
    kmax, R = max(ks), len(subsets)
    m = int(subsets[0].size)
    if any(s.size != m for s in subsets):
        raise ValueError("every subset must have the same size")
    if kmax >= m - 1:
        raise ValueError(f"k = {kmax} needs more than {kmax + 1} rows in each subset, got {m}")
    names = list(lists)
    for a in names:
        if lists[a].shape[0] != n or lists[a].shape[1] < kmax:
            raise ValueError(f"{a}: neighbour lists of shape {lists[a].shape}; need ({n}, >= {kmax})")
    member = np.zeros((n, R), dtype=bool)
    local = np.full((R, n), -1, dtype=np.int64)
    for r, s in enumerate(subsets):
        member[s, r] = True
        local[r, s] = np.arange(m)
    Bc, sq, BcT = rank_space(B)
    count_dtype = np.int16 if m < 2**15 else np.int32
    t = int(max(1, min(n, tile_bytes // (max(n, 1) * (8 + 2 * R * np.dtype(count_dtype).itemsize)))))
    sums = {a: np.zeros((R, len(ks))) for a in names}
    for start in range(0, n, t):
        stop = min(n, start + t)
        u = np.arange(start, stop)
        d2 = sq_distance_block(Bc, sq, BcT, start, stop)
        d2[u - start, u] = np.inf  # self never counts
        order = np.argsort(d2, axis=1, kind="stable")
        srt = np.take_along_axis(d2, order, 1)
        full = {a: lists[a][start:stop] for a in names}
        thr = np.hstack([np.take_along_axis(d2, full[a], 1) for a in names])
        pos = np.empty(thr.shape, dtype=np.int64)
        for r in range(stop - start):
            pos[r] = np.searchsorted(srt[r], thr[r], side="left")
        p_max = int(pos.max())
        # prefix[i, p, r] = #{members of S_r among row i's p nearest rows in B}
        prefix = np.zeros((stop - start, p_max + 1, R), dtype=count_dtype)
        np.cumsum(member[order[:, :p_max]], axis=1, dtype=count_dtype, out=prefix[:, 1:])
        in_r = member[start:stop]  # (t, R)
        col = 0
        for a in names:
            L = full[a].shape[1]
            ranks = 1 + np.take_along_axis(prefix, pos[:, col : col + L, None], axis=1).astype(np.int64)  # (t, L, R)
            col += L
            kept = member[full[a]]  # (t, L, R): neighbour in S_r
            if depth is not None and a in depth:
                kept &= (np.arange(L)[None, :] < depth[a][start:stop, None])[:, :, None]
            seen = np.cumsum(kept, axis=1, dtype=np.int32)
            ok = in_r & (seen[:, -1, :] >= kmax)  # rows of S_r whose k_max list comes from the cache
            ranks *= kept & ok[:, None, :]
            for q, k in enumerate(ks):
                sums[a][:, q] += np.sum(ranks * (seen <= k), axis=(0, 1))
            for i, r in zip(*np.nonzero(in_r & ~ok), strict=True):
                if features[a] is None:
                    raise ValueError(f"{a}: the neighbour list of row {start + i} is too short for subset {r} at "
                                     f"k = {kmax} and no features were given to recompute it")  # fmt: skip
                rk = _exact_short_row(features[a], subsets[r], int(local[r, start + i]), kmax, d2[i])
                csum = np.cumsum(rk)
                for q, k in enumerate(ks):
                    sums[a][r, q] += csum[k - 1]
    return {a: 2.0 * sums[a] / (m * m * np.asarray(ks, dtype=np.float64)) for a in names}
