"""TwoNN ratios of column-joined representations from per-block squared-distance matrices (IDCor's fast path).

For the joint representation [Z_1 | Z_2 | ...] with the rows of block k re-indexed by r_k (identity, or a
permutation of B's rows), d²_joint(i, j) = Σ_k d²_k(r_k(i), r_k(j)). So each block's N x N squared-distance
matrix is built once (Gram form, O(N²·D_k)) and every joint TwoNN afterwards costs O(N²) plus O(N·c·D) re-scoring.

The result equals twonn.twonn_ratios on the explicitly joined matrix up to float64 rounding:
- Duplicates: joint rows i, j are identical iff every block's rows r_k(i), r_k(j) are identical (exact equality,
  the ids of np.unique(Z_k, axis=0)); one row per distinct joint point is kept, the rest are counted.
- Candidates: the Gram form has rounding error, so it only picks c = 2 + 2 candidates per row (the c smallest
  entries); their squared distances are re-scored exactly from the features, Σ_k ||Z_k[a] - Z_k[b]||², and r1 <= r2
  are the square roots of the two smallest. Only the values r1, r2 enter TwoNN, so which of several tied neighbours
  is chosen does not matter.
- Certificate: every Gram entry is within E_ij = Σ_k g_k (sq_k,i + sq_k,j), g_k = 4 (D_k + 4) u of its exact value
  (u = 2^-53; the standard dot-product bound γ_D Σ|x_l y_l| for any summation order, used with a factor-2 margin).
  A row is accepted when r2² (1 + 2 (D + 2) u) <= s_next - E_i, s_next its smallest Gram entry outside the
  candidates and E_i the bound with the largest sq_k,j of each block: then no point outside the candidates is
  nearer than r2. A row that fails (a near-tie at the candidate boundary) is retried with 64 candidates, and if it
  fails again it is redone exactly over all distinct points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import _idcor_kernel

_U = float(np.finfo(np.float64).eps) / 2.0
_MARGIN = 2  # extra candidates re-scored exactly: c = 2 + _MARGIN at the first level
_WIDE = 64  # candidates for the rows the first level cannot certify
_TILE_BYTES = 16 * 2**20


@dataclass(frozen=True)
class DistanceBlock:
    """One representation's rows, squared norms, Gram-form squared distances and row-identity ids."""

    Z: np.ndarray  # (N, D) float64 features
    sq: np.ndarray  # (N,) squared row norms
    d2: np.ndarray  # (N, N) squared distances, Gram form: used only to choose candidates
    ids: np.ndarray  # (N,) int64: equal iff the rows are identical
    n_ids: int
    g: float  # |d2_ij - exact| <= g (sq_i + sq_j)
    sq_max: float
    # this block's own results keyed by their settings (its TwoNN ID): a model in many pairs pays for them once
    memo: dict = field(default_factory=dict, compare=False, repr=False)


def distance_block(Z: np.ndarray) -> DistanceBlock:
    """The squared-distance matrix of the rows of Z (float64, C-contiguous) and its error bound."""
    sq = np.einsum("ij,ij->i", Z, Z)
    d2 = Z @ Z.T
    d2 *= -2.0
    d2 += sq[:, None]
    d2 += sq[None, :]
    ids = row_ids(Z)
    g = 4.0 * (Z.shape[1] + 4) * _U
    return DistanceBlock(Z, sq, d2, ids, int(ids.max()) + 1, g, float(sq.max()))


def row_ids(Z: np.ndarray) -> np.ndarray:
    """ids[i] == ids[j] iff rows i and j are equal element by element (the equality np.unique(axis=0) uses).

    Rows are compared as bytes after adding 0.0, which turns -0.0 into +0.0 (finite input: no NaN to worry about);
    hashing the bytes is O(N·D), where np.unique(axis=0) sorts the wide rows.
    """
    seen: dict[bytes, int] = {}
    canonical = np.ascontiguousarray(Z, dtype=np.float64) + 0.0
    return np.array([seen.setdefault(row.tobytes(), len(seen)) for row in canonical], dtype=np.int64)


def _exact_d2(blocks: Sequence[DistanceBlock], sel: Sequence[np.ndarray], rows: np.ndarray, cols: np.ndarray):
    """Exact squared joint distances, Σ_k ||Z_k[sel_k[row]] - Z_k[sel_k[col]]||², cols shaped (t, c)."""
    total = np.zeros(cols.shape)
    for b, s in zip(blocks, sel, strict=True):
        diff = b.Z[s[cols]]
        diff -= b.Z[s[rows]][:, None, :]
        total += np.einsum("tcd,tcd->tc", diff, diff)
    return total


def _top2(
    blocks: Sequence[DistanceBlock],
    sel: Sequence[np.ndarray],
    ident: Sequence[bool],
    rows: np.ndarray,
    c: int,
    use_kernel: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(exact r1², r2² of the distinct points `rows` from their c best Gram candidates, certified mask).

    use_kernel: the compiled candidate search when numba is there (else, and for c >= m - 2, the NumPy path)."""
    m = sel[0].size
    if (
        c < m - 2 and len(blocks) == 2 and use_kernel and _idcor_kernel.available()
    ):  # one streamed pass per row (same sums, same s_next): _idcor_kernel.py
        cand, s_next = _idcor_kernel.top_candidates(tuple(b.d2 for b in blocks), np.stack(sel), rows, c)
    else:
        fast = np.zeros((rows.size, m))
        for b, s, same in zip(blocks, sel, ident, strict=True):
            fast += b.d2[rows] if same else b.d2[s[rows]][:, s]
        fast[np.arange(rows.size), rows] = np.inf
        if c >= m - 1:  # every other point is a candidate: nothing to certify
            cand = np.argsort(fast, axis=1)[:, : m - 1]
            return np.sort(_exact_d2(blocks, sel, rows, cand), axis=1)[:, :2], np.ones(rows.size, dtype=bool)
        part = np.argpartition(fast, c, axis=1)
        cand, s_next = part[:, :c], fast[np.arange(rows.size), part[:, c]]
    exact = np.sort(_exact_d2(blocks, sel, rows, cand), axis=1)[:, :2]
    err = sum(b.g * (b.sq[s[rows]] + b.sq_max) for b, s in zip(blocks, sel, strict=True))
    rescore_rel = 2.0 * (sum(b.Z.shape[1] for b in blocks) + 2) * _U
    return exact, exact[:, 1] * (1.0 + rescore_rel) <= s_next - err


def joint_ratios(
    blocks: Sequence[DistanceBlock], index: Sequence[np.ndarray | None], name: str = "X"
) -> tuple[np.ndarray, int, int]:
    """(mu_i = r2/r1 for every distinct joint point, duplicate rows removed, rows not certified at the first level).

    Joint row i is the concatenation of blocks[k].Z[index[k][i]] (index[k] None: the identity). Rows whose
    candidates are not certified are retried with _WIDE candidates, then exactly over all distinct points.
    """
    n = blocks[0].Z.shape[0]
    index = [np.arange(n) if r is None else np.asarray(r, dtype=np.int64) for r in index]
    key = np.zeros(n, dtype=np.int64)
    for b, r in zip(blocks, index, strict=True):
        key = key * b.n_ids + b.ids[r]
    first = np.sort(np.unique(key, return_index=True)[1])  # first occurrence of each distinct joint row
    m = int(first.size)
    if m < 4:
        raise ValueError(f"{name}: only {m} distinct rows (of {n}); TwoNN needs at least 4")
    sel = [r[first] for r in index]
    ident = [bool(np.array_equal(s, np.arange(n))) for s in sel]
    d_max = max(b.Z.shape[1] for b in blocks)
    r2 = np.empty((m, 2))
    todo = np.arange(m)
    n_uncertified = 0
    for level, c in enumerate(sorted({min(2 + _MARGIN, m - 1), min(_WIDE, m - 1), m - 1})):
        t = int(max(1, _TILE_BYTES // (8 * max(m, c * d_max))))
        failed = []
        for start in range(0, todo.size, t):
            rows = todo[start : start + t]
            r2[rows], ok = _top2(blocks, sel, ident, rows, c)
            failed.append(rows[~ok])
        todo = np.concatenate(failed)
        if level == 0:
            n_uncertified = int(todo.size)
        if todo.size == 0:
            break
    r = np.sqrt(r2)
    return r[:, 1] / r[:, 0], n - m, n_uncertified
