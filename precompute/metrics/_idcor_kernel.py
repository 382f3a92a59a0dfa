"""Compiled candidate search for IDCor's joint TwoNN (numba): one pass over each row, no N x N temporaries.

`_idcor_fast._top2` needs, for each distinct joint point r, the c smallest Gram-form joint distances
    v_j = Σ_b d2_b[sel_b[r], sel_b[j]]      (j != r, over the m distinct points)
and the (c+1)-th smallest value (the certificate's s_next). The NumPy path gathers an (rows x m) matrix per block,
adds them and runs argpartition: three full passes over memory per permutation. This kernel streams each row once
and keeps the c + 1 smallest in a sorted buffer, so a permutation of IDCor's null costs one read of each block's
row (for N = 2,000 about 20x less time than the NumPy path on one core). The same sums are formed in the same order
(block 0 + block 1 + ...), so the candidate values, s_next and therefore the certified r1, r2 are identical; only
which of several exactly tied candidates is listed may differ, and only r1, r2 enter TwoNN (tested against the
NumPy path). numba is imported on first use, so importing the metrics (e.g. from the app) does not compile.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _compiled():
    import numba

    @numba.njit(cache=True, nogil=True)
    def candidates(d2a, d2b, sa, sb, rows, c):  # pragma: no cover - compiled; exercised through top_candidates
        t, m = rows.size, sa.size
        cand = np.empty((t, c), dtype=np.int64)
        s_next = np.empty(t, dtype=np.float64)
        buf_v = np.empty(c + 1, dtype=np.float64)
        buf_i = np.empty(c + 1, dtype=np.int64)
        for q in range(t):
            r = rows[q]
            ra, rb = d2a[sa[r]], d2b[sb[r]]
            filled = 0
            for j in range(m):
                if j == r:
                    continue
                v = 0.0 + ra[sa[j]]  # the NumPy path's order: zeros + block 0 + block 1
                v += rb[sb[j]]
                if filled < c + 1:
                    pos = filled
                    filled += 1
                elif v < buf_v[c]:
                    pos = c  # drops the largest kept value
                else:
                    continue
                while pos > 0 and buf_v[pos - 1] > v:  # sorted insertion; an equal value stays after the earlier j
                    buf_v[pos], buf_i[pos] = buf_v[pos - 1], buf_i[pos - 1]
                    pos -= 1
                buf_v[pos], buf_i[pos] = v, j
            cand[q, :] = buf_i[:c]
            s_next[q] = buf_v[c]
        return cand, s_next

    return candidates


@functools.cache
def available() -> bool:
    """True when numba can be imported (it is a core dependency; the NumPy path remains the reference)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def top_candidates(
    d2s: tuple[np.ndarray, ...], sels: np.ndarray, rows: np.ndarray, c: int
) -> tuple[np.ndarray, np.ndarray]:
    """(cand (t, c) indices of the c smallest joint values per row, s_next (t,) the (c+1)-th smallest value).

    d2s: the two blocks' (N, N) float64 Gram-form squared-distance matrices (IDCor joins two representations); sels: (blocks, m) int64 rows of each block for the m
    distinct joint points; rows: (t,) int64 positions in 0..m-1; needs c + 1 <= m - 1.
    """
    if len(d2s) != 2:
        raise ValueError(f"the compiled search joins exactly 2 blocks, got {len(d2s)}")
    if not 1 <= c <= sels.shape[1] - 2:
        raise ValueError(f"need 1 <= c <= m - 2, got c = {c} for m = {sels.shape[1]}")
    sa, sb = (np.ascontiguousarray(x, dtype=np.int64) for x in sels)
    return _compiled()(d2s[0], d2s[1], sa, sb, np.ascontiguousarray(rows, dtype=np.int64), int(c))
