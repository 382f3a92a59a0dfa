"""Unbiased HSIC (Song et al. 2012, JMLR 13, eq. 5) of two matrices supported on a sparse set of entries.

For N x N matrices X, Y with zero diagonal:

    HSIC_u(X, Y) = [ tr(XY) + (1ᵀX1)(1ᵀY1) / ((N-1)(N-2)) - 2/(N-2) · 1ᵀXY1 ] / (N(N-3))

with tr(XY) = Σ_ij X_ij Y_ji (note the transpose: masked kernels are not symmetric) and
1ᵀXY1 = Σ_j colsum(X)_j · rowsum(Y)_j. Given the (at most N·k) non-zero entries as (row, col, x, y), every term is
O(N·k), so no N x N matrix is ever formed.
"""

from __future__ import annotations

import numpy as np


def sparse_hsic_unbiased(rows: np.ndarray, cols: np.ndarray, x: np.ndarray, y: np.ndarray, n: int) -> float:
    """HSIC_u of X and Y that share the support {(rows[m], cols[m])} with values x[m] = X_ij and y[m] = Y_ij.

    The support entries must be unique and off the diagonal. Sums are taken in float64.
    """
    if n < 4:
        raise ValueError(f"unbiased HSIC needs N >= 4, got N = {n}")
    key = rows * n + cols
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    key_t = cols * n + rows
    pos = np.searchsorted(key_sorted, key_t)
    pos = np.minimum(pos, key_sorted.size - 1)
    hit = key_sorted[pos] == key_t if key_sorted.size else np.zeros(0, dtype=bool)
    y_sorted = y[order]
    trace_xy = float(np.dot(x[hit], y_sorted[pos[hit]]))
    sum_x = float(x.sum())
    sum_y = float(y.sum())
    colsum_x = np.bincount(cols, weights=x, minlength=n)
    rowsum_y = np.bincount(rows, weights=y, minlength=n)
    one_xy_one = float(np.dot(colsum_x, rowsum_y))
    return (trace_xy + sum_x * sum_y / ((n - 1) * (n - 2)) - 2.0 * one_xy_one / (n - 2)) / (n * (n - 3))


def sparse_hsic_unbiased_both(
    rows: np.ndarray, cols: np.ndarray, x: np.ndarray, y: np.ndarray, n: int, *, keys_sorted: bool = False
) -> tuple[float, float]:
    """(HSIC_u(X, Y), HSIC_u(Y, X)) in one pass: CKNNA's two orders share the support, tr(XY) = tr(YX) and the
    sums; only 1ᵀXY1 differs. keys_sorted: the entries are already in increasing rows·N + cols order (as
    np.intersect1d returns them), so the sort is skipped. Same numbers as two sparse_hsic_unbiased calls (tested).
    """
    if n < 4:
        raise ValueError(f"unbiased HSIC needs N >= 4, got N = {n}")
    key = rows * n + cols
    if keys_sorted:
        key_sorted, y_s = key, y
    else:
        order = np.argsort(key, kind="stable")
        key_sorted, y_s = key[order], y[order]
    key_t = cols * n + rows
    pos = np.minimum(np.searchsorted(key_sorted, key_t), max(key_sorted.size - 1, 0))
    hit = key_sorted[pos] == key_t if key_sorted.size else np.zeros(0, dtype=bool)
    trace = float(np.dot(x[hit], y_s[pos[hit]]))
    sums = float(x.sum()) * float(y.sum()) / ((n - 1) * (n - 2))
    xy = float(np.dot(np.bincount(cols, weights=x, minlength=n), np.bincount(rows, weights=y, minlength=n)))
    yx = float(np.dot(np.bincount(cols, weights=y, minlength=n), np.bincount(rows, weights=x, minlength=n)))
    scale = n * (n - 3)
    return (trace + sums - 2.0 * xy / (n - 2)) / scale, (trace + sums - 2.0 * yx / (n - 2)) / scale
