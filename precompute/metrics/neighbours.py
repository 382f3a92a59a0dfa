"""Exact k-nearest-neighbour caches, tiled so memory is O(N·k_max + tile), never N x N.

For a tile of t query rows the similarity (or squared-distance) block S = X_t Xᵀ (t x N) is computed with one
matrix product, the self entries are excluded, and the best c = k_max + margin candidates are kept. The candidates
are then re-scored with an exact per-pair formula (dot product, or the norm of the difference of the uncentred
inputs, in float64, summed in a fixed order so exact ties such as fingerprint overlaps give identical scores) and
ordered by (score, index): ties go to the lower index. If the k_max-th score equals the last candidate's score,
an exact tie may extend past the candidate set, so that row is re-scored over every point whose matrix-product key
lies within a round-off bound of that score (over all N points with the torch backend). The result does
not depend on the tile size or the backend, apart from float64 round-off in the matrix product used only to
choose candidates.

Backends: "numpy" (default) or "torch" (CPU or CUDA, float64 by default) for the O(N²·D) matrix products and the
candidate selection; the exact re-scoring always runs in float64 on the CPU (tests/metrics/test_ties_exact.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._checks import (
    as_pair,
    as_representation,
    centred_scaled,
    check_k,
    check_not_constant,
    first_duplicate_pair,
    pow2_scale,
)
from .preprocess import KernelPreprocessing, kernel_features

Kind = Literal["cosine", "euclidean"]
Backend = Literal["numpy", "torch"]

_MARGIN = 8  # extra candidates re-scored exactly, so round-off in the matrix product cannot change the top k_max
_DEFAULT_TILE_BYTES = 8 * 2**20


@dataclass(frozen=True)
class NeighbourCache:
    """Top-k_max neighbours of every row, self excluded.

    indices: (N, k_max) int64, row i lists its neighbours best first (ties: lower index first).
    scores: (N, k_max) float64; cosine similarity K_ij (kind "cosine", descending) or Euclidean distance d_ij
        (kind "euclidean", ascending).
    The prefix [:, :k] is the exact k-neighbour list for every k <= k_max.
    """

    indices: np.ndarray
    scores: np.ndarray
    kind: Kind
    options: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.indices.shape[0])

    @property
    def k_max(self) -> int:
        return int(self.indices.shape[1])

    def prefix(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k-neighbour lists (indices, scores) for k <= k_max."""
        if k > self.k_max:
            raise ValueError(
                f"k = {k} exceeds this cache's k_max = {self.k_max}; rebuild the cache with a larger k_max"
            )
        return self.indices[:, :k], self.scores[:, :k]


def _tile_rows(n: int, d: int, c: int, tile_bytes: int) -> int:
    """Rows per tile so that the (t x N) block and the (t x c x D) candidate gather each fit in tile_bytes."""
    return int(max(1, min(n, tile_bytes // (8 * max(n, 1)), tile_bytes // (8 * max(c * d, 1)))))


def _exact_scores(
    X: np.ndarray, rows: np.ndarray, cand: np.ndarray, kind: Kind, raw: np.ndarray | None = None
) -> np.ndarray:
    """Float64 score of each (row, candidate) pair: dot product or Euclidean distance, tie-exact.

    The terms are summed strictly left to right (np.add.accumulate), never by SIMD lanes or pairwise blocks whose
    grouping depends on where the nonzero terms sit: pairs with the same terms up to zeros (binary fingerprints
    with equal overlaps) get bit-identical scores, so exact ties stay ties and the lower-index rule decides. For
    kind "euclidean", `raw` (the uncentred rows at X's scale) supplies the differences: a difference of inputs is
    rounded once, where centring rounds each column's offset differently and would split ties.
    """
    src = raw if raw is not None and kind == "euclidean" else X
    c = src[cand]
    if kind == "cosine":
        c *= X[rows][:, None, :]
    else:
        c -= src[rows][:, None, :]
        c *= c
    s = np.add.accumulate(c, axis=-1, out=c)[..., -1]
    return s if kind == "cosine" else np.sqrt(s)


def _order(scores: np.ndarray, cand: np.ndarray, kind: Kind) -> np.ndarray:
    """Permutation sorting each row by score (desc for cosine, asc for euclidean), ties by lower index."""
    key = -scores if kind == "cosine" else scores
    return np.lexsort((cand, key), axis=-1)


def _exact_row(
    X: np.ndarray, i: int, k: int, kind: Kind, raw: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Slow exact path for one row: score all N points, drop self, stable order."""
    others = np.delete(np.arange(X.shape[0]), i)
    s = _exact_scores(X, np.array([i]), others[None, :], kind, raw)[0]
    order = _order(s[None, :], others[None, :], kind)[0][:k]
    return others[order], s[order]


def _candidates_numpy(
    X: np.ndarray, sq: np.ndarray, start: int, stop: int, c: int, kind: Kind
) -> tuple[np.ndarray, np.ndarray]:
    key = X[start:stop] @ X.T  # becomes the ranking key in place: smaller is better
    rows = np.arange(stop - start)
    if kind == "cosine":
        np.negative(key, out=key)
    else:
        key *= -2.0
        key += sq[start:stop, None]
        key += sq[None, :]
    key[rows, rows + start] = np.inf
    if c >= X.shape[0] - 1:
        return np.argsort(key, axis=1, kind="stable")[:, :c], key
    return np.argpartition(key, c - 1, axis=1)[:, :c], key


def _widen(X, raw, key, start, tied, bound, kind: Kind, k: int, slack: np.ndarray, indices, scores) -> None:
    """Rows whose k-th exact score ties the last candidate's: re-score every point whose matrix-product key is
    within the round-off bound `slack` of that score (a superset of the tie group), not all N points."""
    lim = (-bound if kind == "cosine" else bound * bound) + slack[tied]
    for r, row_lim in zip(tied, lim, strict=True):
        sup = np.flatnonzero(key[r] <= row_lim)  # self is +inf, never in
        i = start + r
        sc = _exact_scores(X, np.array([i]), sup[None, :], kind, raw)[0]
        o = _order(sc[None, :], sup[None, :], kind)[0][:k]
        indices[i], scores[i] = sup[o], sc[o]


def _candidates_torch(Xt, sqt, start: int, stop: int, c: int, kind: Kind) -> np.ndarray:
    """Candidates on the torch device; the re-scoring runs on the CPU (_exact_scores), whose fixed summation order
    keeps exact ties tied (a device reduction's order is not fixed)."""
    import torch  # optional backend: imported only when asked for

    key = Xt[start:stop] @ Xt.T
    if kind == "cosine":
        key.neg_()
    else:
        key.mul_(-2.0).add_(sqt[start:stop, None]).add_(sqt[None, :])
    rows = torch.arange(stop - start, device=Xt.device)
    key[rows, rows + start] = torch.inf
    return torch.topk(key, c, dim=1, largest=False, sorted=False).indices.cpu().numpy()


def build_neighbour_cache(
    X: np.ndarray,
    k_max: int,
    kind: Kind = "cosine",
    *,
    backend: Backend = "numpy",
    device: str = "cpu",
    tile_bytes: int = _DEFAULT_TILE_BYTES,
    name: str = "X",
    torch_dtype: str = "float64",
    duplicates: Literal["raise", "keep"] = "raise",
) -> NeighbourCache:
    """Exact top-k_max neighbours of each row of X (already preprocessed), self excluded.

    kind "cosine": rows must already be L2-normalised (see preprocess.kernel_features); score = x_i·x_j, largest
    first. kind "euclidean": score = ||x_i - x_j||, smallest first. Memory: the (N, k_max) result plus one
    (tile x N) block of at most `tile_bytes` (float64).

    duplicates: identical rows are exact ties, so which of them is "the" neighbour would depend only on the sample
    order. "raise" (default) refuses them, naming the first pair; "keep" applies the lower-index rule.
    """
    X = as_representation(X, name)
    n = X.shape[0]
    k_max = check_k(k_max, n, "k_max")
    check_not_constant(X, name)
    if duplicates == "raise":
        pair = first_duplicate_pair(X)
        if pair is not None:
            raise ValueError(
                f"{name}: rows {pair[0]} and {pair[1]} are identical{' after preprocessing' if kind == 'cosine' else ''}"
                "; neighbour order among duplicates is arbitrary. Deduplicate the samples or pass duplicates='keep'"
            )
    elif duplicates != "keep":
        raise ValueError(f"duplicates must be 'raise' or 'keep', got {duplicates!r}")
    if kind == "euclidean":
        # distances do not change under translation, but the Gram form |x|² + |y|² - 2x·y that picks the candidates
        # loses precision when the data sit far from the origin; careful centring keeps it near the exact distance,
        # and an exact power-of-two rescale keeps squared distances from overflowing or underflowing (the distances
        # are scaled back at the end)
        X0 = X
        X, scale_exp = centred_scaled(X, name)
        raw = np.ldexp(X0, -scale_exp)  # exact (a power of two) unless the offset dwarfs the spread by ~2^1000
        if not np.isfinite(raw).all():
            raw = None
    else:
        raw = None
        # cosine scores are dot products; an exact power-of-two rescale keeps them finite for tiny or huge rows
        X, scale_exp = pow2_scale(X)
    c = min(k_max + _MARGIN, n - 1)
    t = _tile_rows(n, X.shape[1], c, tile_bytes)
    sq = np.einsum("ij,ij->i", X, X)
    if backend == "torch":
        import torch

        tdtype = getattr(torch, torch_dtype)
        Xt = torch.as_tensor(X, dtype=tdtype, device=device)
        sqt = torch.as_tensor(sq, dtype=tdtype, device=device)
    elif backend != "numpy":
        raise ValueError(f"unknown backend {backend!r}; use 'numpy' or 'torch'")
    indices = np.empty((n, k_max), dtype=np.int64)
    scores = np.empty((n, k_max), dtype=np.float64)
    redo: list[int] = []
    widened = 0
    # bound on |matrix-product key - exact score| (both float64 sums of D products, plus centring round-off), with
    # a wide safety factor: it only sizes the superset re-scored for tied rows
    norms = np.sqrt(sq)
    u = (X.shape[1] + 8) * 2.0**-53
    slack = 8 * u * norms * norms.max() if kind == "cosine" else 32 * u * (norms + norms.max()) ** 2
    slack = slack + 2.0**-1000
    for start in range(0, n, t):
        stop = min(n, start + t)
        rows = np.arange(start, stop)
        if backend == "torch":
            cand = _candidates_torch(Xt, sqt, start, stop, c, kind)
        else:
            cand, key = _candidates_numpy(X, sq, start, stop, c, kind)
        s = _exact_scores(X, rows, cand, kind, raw)
        order = _order(s, cand, kind)
        cand = np.take_along_axis(cand, order, 1)
        s = np.take_along_axis(s, order, 1)
        indices[start:stop] = cand[:, :k_max]
        scores[start:stop] = s[:, :k_max]
        if c < n - 1:  # an exact tie at the boundary may continue outside the candidate set
            tied = np.flatnonzero(s[:, k_max - 1] == s[:, -1])
            if backend == "numpy":
                _widen(X, raw, key, start, tied, s[tied, k_max - 1], kind, k_max, slack[start:stop], indices, scores)
                widened += tied.size
            else:
                redo.extend((rows[tied]).tolist())
    for i in redo:
        indices[i], scores[i] = _exact_row(X, i, k_max, kind, raw)
    scores = np.ldexp(scores, scale_exp if kind == "euclidean" else 2 * scale_exp)
    options = {
        "kind": kind,
        "k_max": k_max,
        "backend": backend,
        "tile_rows": t,
        "rows_redone_for_ties": len(redo) + widened,
    }
    return NeighbourCache(indices=indices, scores=scores, kind=kind, options=options)


def cosine_pair_caches(
    A: np.ndarray, B: np.ndarray, k: int, prep: KernelPreprocessing, duplicates: str = "raise"
) -> tuple[NeighbourCache, NeighbourCache, int]:
    """Validate a pair of representations and build both cosine caches at k (the single-pair kNN metrics' setup)."""
    A, B = as_pair(A, B, constant_ok=True)  # a constant representation is refused by build_neighbour_cache
    k = check_k(k, A.shape[0])
    cache_a = build_neighbour_cache(kernel_features(A, prep, "A"), k, "cosine", name="A", duplicates=duplicates)
    cache_b = build_neighbour_cache(kernel_features(B, prep, "B"), k, "cosine", name="B", duplicates=duplicates)
    return cache_a, cache_b, k
