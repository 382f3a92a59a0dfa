"""Information imbalance (Glielmo, Zeni, Cheng, Csányi, Laio 2022, PNAS Nexus 1, pgac039).

With N_k^A(i) the k nearest neighbours of i in A (Euclidean, self excluded, ties to the lower index) and
rank_B(i, j) = 1 + #{l != i : d_B(i, l) < d_B(i, j)} (1 = nearest in B):

    Δ(A → B; k) = (2/N) · mean_{i, j in N_k^A(i)} rank_B(i, j) = 2 / (N² k) · Σ_i Σ_{j in N_k^A(i)} rank_B(i, j)

≈ 0 when A predicts B's neighbourhoods, ≈ 1 when A says nothing about B. Computed exactly at full N: for a tile of
rows, the distances in B to all N points are formed, the thresholds d_B(i, j) of A's neighbours gathered, and the
points below each threshold counted (row sort + binary search); no N x N array exists. One pass over B serves any
number of A's (their neighbour lists are counted together). DADApy's `return_inf_imb_two_selected_coords` agrees
only with maxk = N - 1 (with a smaller maxk it draws random ranks for far neighbours).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._checks import as_pair, centred_scaled, check_k
from .neighbours import Backend, build_neighbour_cache

_DEFAULT_TILE_BYTES = 16 * 2**20
_EXACT_INTEGER_SUM = 2.0**52  # below this, sums of products of integers are exact in float64 in any order


def rank_space(B: np.ndarray, name: str = "B") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B', |b'_i|², B'ᵀ as its own array) on which every rank computation forms squared distances.

    Integer data (fingerprints, counts) stay as they are when 2·D·max|b|² < 2^52: every Gram entry and distance is
    then an exact integer, so exact ties stay tied whatever the tiling or BLAS. Otherwise B is carefully centred and
    rescaled by a power of two (ranks do not change under translation and scale) so the Gram form neither loses the
    spread to a large offset nor overflows / underflows. Bᵀ is a separate copy so numpy always calls gemm: for one
    all-row tile, B @ B.T would be a syrk, which rounds differently and moved ranks with the tile size (as did gemv
    for one-row tiles: see gram_block).
    """
    peak = float(np.max(np.abs(B))) if B.size else 0.0
    if np.array_equal(B, np.round(B)) and 2.0 * B.shape[1] * peak * peak < _EXACT_INTEGER_SUM:
        B = np.array(B, dtype=np.float64, order="C")
    else:
        B, _ = centred_scaled(B, name)
    return B, np.einsum("ij,ij->i", B, B), np.ascontiguousarray(B.T)


def gram_block(B: np.ndarray, BT: np.ndarray, start: int, stop: int) -> np.ndarray:
    """B[start:stop] @ Bᵀ, always by gemm: a one-row block is computed as two rows, since numpy would call gemv,
    which rounds unlike gemm (both tested equal across tile sizes)."""
    if stop - start == 1:
        return (B[[start, start]] @ BT)[:1]
    return B[start:stop] @ BT


def sq_distance_block(B: np.ndarray, sq: np.ndarray, BT: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Squared distances (clamped at 0) of rows start:stop to all N rows: the one formula every rank uses."""
    d2 = sq[start:stop, None] + sq[None, :] - 2.0 * gram_block(B, BT, start, stop)
    return np.maximum(d2, 0.0, out=d2)


def ranks_in(
    B: np.ndarray,
    neighbour_lists: Mapping[str, np.ndarray],
    *,
    tile_bytes: int = _DEFAULT_TILE_BYTES,
    backend: Backend = "numpy",
    device: str = "cpu",
) -> dict[str, np.ndarray]:
    """rank_B(i, j) for every (i, j) in each (N, k) neighbour list, in one tiled pass over B."""
    n = B.shape[0]
    names = list(neighbour_lists)
    widths = [neighbour_lists[m].shape[1] for m in names]
    stacked = np.hstack([neighbour_lists[m] for m in names]).astype(np.int64)
    out = np.empty(stacked.shape, dtype=np.int64)
    B, sq, BT = rank_space(B)
    t = int(max(1, min(n, tile_bytes // (8 * n))))
    if backend == "torch":
        import torch

        Bt = torch.as_tensor(B, dtype=torch.float64, device=device)
        BTt = torch.as_tensor(BT, dtype=torch.float64, device=device)
        sqt = torch.as_tensor(sq, dtype=torch.float64, device=device)
    for start in range(0, n, t):
        stop = min(n, start + t)
        rows = np.arange(start, stop)
        if backend == "torch":
            G = (Bt[[start, start]] @ BTt)[:1] if stop - start == 1 else Bt[start:stop] @ BTt  # as gram_block
            d2 = (sqt[start:stop, None] + sqt[None, :] - 2.0 * G).clamp_min_(0.0)
            r = torch.arange(stop - start, device=Bt.device)
            d2[r, r + start] = torch.inf
            idx = torch.as_tensor(stacked[start:stop], device=Bt.device)
            thr = torch.gather(d2, 1, idx)
            d2_sorted, _ = torch.sort(d2, dim=1)
            counts = torch.searchsorted(d2_sorted, thr.contiguous(), side="left")
            out[start:stop] = counts.cpu().numpy() + 1
            continue
        d2 = sq_distance_block(B, sq, BT, start, stop)
        d2[rows - start, rows] = np.inf  # self never counts
        thr = np.take_along_axis(d2, stacked[start:stop], 1)
        d2.sort(axis=1)
        for r in range(stop - start):
            out[start + r] = np.searchsorted(d2[r], thr[r], side="left") + 1
    result, col = {}, 0
    for name, w in zip(names, widths, strict=True):
        result[name] = out[:, col : col + w]
        col += w
    return result


def imbalance_from_ranks(ranks: np.ndarray, k: int) -> float:
    """Δ at k from the (N, k_max) ranks of the k_max nearest A-neighbours (prefix k)."""
    n = ranks.shape[0]
    return float(2.0 * ranks[:, :k].sum(dtype=np.float64) / (n * n * k))


def information_imbalance(A: np.ndarray, B: np.ndarray, k: int = 1, *, duplicates: str = "raise") -> float:
    """Δ(A → B; k) for (N, Da), (N, Db) embeddings of the same samples (Euclidean, no preprocessing)."""
    A, B = as_pair(A, B)
    k = check_k(k, A.shape[0])
    nbrs = build_neighbour_cache(A, k, "euclidean", name="A", duplicates=duplicates).indices
    return imbalance_from_ranks(ranks_in(B, {"A": nbrs})["A"], k)
