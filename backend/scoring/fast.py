"""The upload's exact cosine cache with a float32 candidate pass: the same lists and scores as
precompute.metrics.neighbours.build_neighbour_cache(F, k, "cosine", duplicates="keep"), about twice as fast on a CPU.

Why it is exact. For rows scaled as build_neighbour_cache scales them, the float32 product s32_ij differs from the
float64 score s_ij that orders the lists by at most δ_i = c · |x_i| · max_j |x_j|, with c = (D + 4) · 2⁻²⁴ (the
worst-case bound of a float32 dot product of length D, input rounding included, with 1% slack) plus the float64
round-off. Let L_i be any value with at least k entries j != i having s32_ij >= L_i (here: the k-th largest of
strided column-group maxima, each a distinct entry). Then the k-th best exact score is >= L_i - δ_i, so every
member of the exact top k, ties at the k-th score included, has s32_ij >= L_i - 2δ_i: that candidate set is a
superset of the answer, never a heuristic margin. The candidates are re-scored with the same float64 formula as
build_neighbour_cache and ordered by (score, index), ties to the lower index. Rows with too many candidates (massive
ties, e.g. a discrete representation) take the exact full-row path. Tested equal, indices and scores, to
build_neighbour_cache in tests/test_scoring_fast.py.
"""

from __future__ import annotations

import numpy as np

from precompute.metrics._checks import as_representation, check_k, check_not_constant, pow2_scale
from precompute.metrics.information_imbalance import gram_block, rank_space
from precompute.metrics.neighbours import NeighbourCache, _exact_row, _exact_scores, _order

_BLOCK_BYTES = 48 * 2**20  # one (rows x N) float32 similarity block
_RESCORE_BYTES = 32 * 2**20  # one (rows x candidates x D) float64 gather
_MAX_CANDIDATES = 2048  # beyond this a row is redone exactly over all N


def _bound_factor(d: int) -> float:
    g = (d + 4) * 2.0**-24
    return 1.01 * g / (1.0 - g)


def cosine_cache(F: np.ndarray, k: int, *, name: str = "X", block_bytes: int = _BLOCK_BYTES) -> NeighbourCache:
    """Exact top-k cosine neighbours of the rows of F (kernel features, already preprocessed), self excluded."""
    X = as_representation(F, name)
    n, d = X.shape
    k = check_k(k, n, "k_max")
    check_not_constant(X, name)
    X, scale_exp = pow2_scale(X)  # as build_neighbour_cache: exact, so the float64 scores are the same numbers
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    delta = _bound_factor(d) * norms * norms.max() + d * 2.0**-120  # + float32 underflow of tiny products
    groups = min(n - 1, 4 * k)  # strided column groups: group g holds columns g, g + G, g + 2G, ...
    width = -(-n // groups)
    X32 = np.zeros((width * groups, d), dtype=np.float32)
    X32[:n] = X
    t = int(max(1, min(n, block_bytes // (4 * X32.shape[0]))))
    indices = np.empty((n, k), dtype=np.int64)
    scores = np.empty((n, k), dtype=np.float64)
    redo: list[int] = []
    for start in range(0, n, t):
        stop = min(n, start + t)
        S = X32[start:stop] @ X32.T
        S[:, n:] = -np.inf
        r = np.arange(stop - start)
        S[r, r + start] = -np.inf
        grid = S.reshape(stop - start, width, groups)
        gmax = grid.max(axis=1)  # (t, G): each a distinct entry of its row
        low = np.partition(gmax, groups - k, axis=1)[:, groups - k]  # k-th largest group maximum <= k-th largest
        cut = (low.astype(np.float64) - 2.0 * delta[start:stop]).astype(np.float32)
        cut = np.where(cut.astype(np.float64) > low - 2.0 * delta[start:stop], np.nextafter(cut, -np.inf), cut)
        pr, pg = np.nonzero(gmax >= cut[:, None])  # groups holding at least one candidate
        vals = grid[pr, :, pg]  # (P, width)
        hit_p, hit_w = np.nonzero(vals >= cut[pr, None])
        rows_c = pr[hit_p]
        cols_c = hit_w * groups + pg[hit_p]
        # rows_c is non-decreasing (both nonzero passes are row-major): the candidates come grouped by row
        counts = np.bincount(rows_c, minlength=stop - start)
        big = counts > _MAX_CANDIDATES
        redo.extend((np.flatnonzero(big) + start).tolist())
        _rescore_block(X, start, rows_c, cols_c, counts, big, k, indices, scores)
    for i in redo:
        indices[i], scores[i] = _exact_row(X, i, k, "cosine")
    scores = np.ldexp(scores, 2 * scale_exp)
    options = {"kind": "cosine", "k_max": k, "backend": "numpy-float32-candidates", "tile_rows": t,
               "rows_redone_for_ties": len(redo)}  # fmt: skip
    return NeighbourCache(indices=indices, scores=scores, kind="cosine", options=options)


def _rescore_block(X, start, rows_c, cols_c, counts, big, k, indices, scores) -> None:
    """Exact float64 scores of each row's candidates, (score, index) order, first k written out."""
    offsets = np.r_[0, np.cumsum(counts)]
    ok = np.flatnonzero(~big)
    d = X.shape[1]
    i = 0
    while i < ok.size:
        c_max = int(counts[ok[i : i + 64]].max())
        step = int(max(1, min(64, _RESCORE_BYTES // (8 * max(c_max, 1) * d))))
        sel = ok[i : i + step]
        c = int(counts[sel].max())
        cand = np.zeros((sel.size, c), dtype=np.int64)
        valid = np.arange(c)[None, :] < counts[sel][:, None]
        src = offsets[sel][:, None] + np.arange(c)[None, :]
        cand[valid] = cols_c[src[valid]]
        s = _exact_scores(X, sel + start, cand, "cosine")
        s[~valid] = -np.inf
        cand[~valid] = np.iinfo(np.int64).max  # never chosen: at least k valid candidates per row
        o = _order(s, cand, "cosine")[:, :k]
        indices[sel + start] = np.take_along_axis(cand, o, 1)
        scores[sel + start] = np.take_along_axis(s, o, 1)
        i += step


def self_hsic_lists(indices: np.ndarray, values: np.ndarray, k: int) -> float:
    """HSIC_u(M∘K, M∘K) of one model's k-lists: the same number as precompute.metrics.cknna.self_hsic.

    The reverse entry (j, i) of each list entry (i, j) is found by comparing row j's k entries with i (an (N, k, k)
    test) instead of sorting all N·k keys; the sums then run over the same values in the same order as
    hsic.sparse_hsic_unbiased, so the result is bit-identical (tested)."""
    idx, v = indices[:, :k], values[:, :k]
    n = idx.shape[0]
    if n < 4:
        raise ValueError(f"unbiased HSIC needs N >= 4, got N = {n}")
    match = idx[idx] == np.arange(n)[:, None, None]  # [i, a, b]: row j = idx[i, a] lists i at rank b
    hit = match.any(axis=2).ravel()
    back = v[idx, match.argmax(axis=2)].ravel()
    x = v.ravel()
    trace = float(np.dot(x[hit], back[hit]))
    total = float(x.sum())
    colsum = np.bincount(idx.ravel(), weights=x, minlength=n)
    rowsum = np.bincount(np.repeat(np.arange(n, dtype=np.int64), k), weights=x, minlength=n)
    one = float(np.dot(colsum, rowsum))
    return (trace + total * total / ((n - 1) * (n - 2)) - 2.0 * one / (n - 2)) / (n * (n - 3))


def euclidean_ranks(B: np.ndarray, neighbour_lists: dict[str, np.ndarray], tile_bytes: int = 16 * 2**20) -> dict:
    """rank_B(i, j) for every (i, j) of each (N, k) list: the same numbers as information_imbalance.ranks_in.

    The same float64 Gram form, tile size and row sort as ranks_in (so the same distances and counts); the ranks
    are read by one vectorised binary search per tile instead of a search per row, and the distance block is
    formed with one temporary less."""
    n = B.shape[0]
    names = list(neighbour_lists)
    widths = [neighbour_lists[m].shape[1] for m in names]
    stacked = np.hstack([neighbour_lists[m] for m in names]).astype(np.int64)
    out = np.empty(stacked.shape, dtype=np.int64)
    B, sq, BT = rank_space(B)
    t = int(max(1, min(n, tile_bytes // (8 * n))))
    steps = int(np.ceil(np.log2(n + 1))) + 1
    for start in range(0, n, t):
        stop = min(n, start + t)
        G = gram_block(B, BT, start, stop)  # ranks_in's product (rank_space, sq_distance_block)
        G *= 2.0  # exact: d2 below is ranks_in's (sq_i + sq_j) - 2 g_ij
        d2 = sq[start:stop, None] + sq[None, :]
        d2 -= G
        del G
        np.maximum(d2, 0.0, out=d2)
        r = np.arange(stop - start)
        d2[r, r + start] = np.inf  # self never counts
        thr = np.take_along_axis(d2, stacked[start:stop], 1)
        d2.sort(axis=1)
        # count of entries < thr per (row, threshold), as searchsorted(side="left"): a vectorised binary search
        flat = d2.ravel()
        base = (np.arange(stop - start, dtype=np.int64) * n)[:, None]
        lo = np.zeros(thr.shape, dtype=np.int64)
        hi = np.full(thr.shape, n, dtype=np.int64)
        for _ in range(steps):
            mid = (lo + hi) >> 1
            below = flat[base + np.minimum(mid, n - 1)] < thr
            active = lo < hi
            lo = np.where(below & active, mid + 1, lo)
            hi = np.where(~below & active, mid, hi)
        out[start:stop] = lo + 1
    result, col = {}, 0
    for name, w in zip(names, widths, strict=True):
        result[name] = out[:, col : col + w]
        col += w
    return result
