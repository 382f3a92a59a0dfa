"""Compiled shared-entry search for the kNN permutation nulls (numba): O(N·k_max) per permutation, no N² bitset.

For a permutation π, row i of B[π] has the neighbours π⁻¹(N^B(π(i))) (nulls.knn_null_values). The null statistics
need only the entries (i, j) that are in both A's list of row i and that re-indexed list, with their ranks in both
lists. This kernel stamps A's list of row i into an N-long marker array, then walks the re-indexed B list and
keeps the hits: 2·k_max memory touches per row, where the NumPy path builds N·k_max flat keys and tests them
against an N² bitset. The hits come out in the NumPy path's order (row, then rank in B's list), so every sum
downstream is formed in the same order and the null values are bit-identical (tested). numba is imported on first
use; without it the NumPy path in nulls.py runs.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _compiled():
    import numba

    @numba.njit(cache=True, nogil=True)
    def shared(ia, ib, perm, inv, mark, rank_of, out_row, out_col, out_ra, out_rb):  # pragma: no cover - compiled
        n, kmax = ia.shape
        count = 0
        for i in range(n):
            stamp = i + 1  # marks are never cleared: a row's stamp is unique
            for t in range(kmax):
                j = ia[i, t]
                mark[j] = stamp
                rank_of[j] = t
            src = perm[i]
            for t in range(kmax):
                j = inv[ib[src, t]]
                if mark[j] == stamp:
                    out_row[count] = i
                    out_col[count] = j
                    out_ra[count] = rank_of[j]
                    out_rb[count] = t
                    count += 1
        return count

    return shared


class SharedEntries:
    """Reusable buffers for `find`: one instance per (A, B) pair, so a permutation allocates nothing of size N·k."""

    def __init__(self, ia: np.ndarray, ib: np.ndarray):
        if ia.shape != ib.shape:
            raise ValueError(f"neighbour lists differ in shape: {ia.shape} and {ib.shape}")
        self.ia = np.ascontiguousarray(ia, dtype=np.int64)
        self.ib = np.ascontiguousarray(ib, dtype=np.int64)
        n, kmax = ia.shape
        self.mark = np.zeros(n, dtype=np.int64)
        self.rank_of = np.zeros(n, dtype=np.int64)
        self.buf = np.empty((4, n * kmax), dtype=np.int64)

    def find(self, perm: np.ndarray, inv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, rank in A's list, rank in B[π]'s list) of the shared entries, in (row, rank in B) order."""
        self.mark[:] = 0
        row, col, ra, rb = self.buf
        count = _compiled()(self.ia, self.ib, np.ascontiguousarray(perm, dtype=np.int64),
                            np.ascontiguousarray(inv, dtype=np.int64), self.mark, self.rank_of, row, col, ra, rb)  # fmt: skip
        return row[:count].copy(), col[:count].copy(), ra[:count].copy(), rb[:count].copy()
