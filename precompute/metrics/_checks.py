"""Input validation shared by every metric: a clear ValueError that names the problem and the row, never a NaN."""

from __future__ import annotations

import numpy as np


def as_representation(X: object, name: str = "X") -> np.ndarray:
    """Return X as a C-contiguous float64 (N, D) array, or raise ValueError naming what is wrong.

    Rejected: non-numeric dtypes (object, string, bool, complex), not 2-D, no rows, zero columns, NaN or inf
    (the message gives the first bad row and column).
    """
    arr = np.asarray(X)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name}: non-numeric array (dtype {arr.dtype}); expected an (N, D) array of real numbers")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (N, D) array, got shape {arr.shape}")
    n, d = arr.shape
    if n == 0:
        raise ValueError(f"{name}: has no rows")
    if d == 0:
        raise ValueError(f"{name}: has zero columns (shape {arr.shape})")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(f"{name}: row {row} column {col} is {arr[row, col]} (NaN or inf are not allowed)")
    return arr


def check_same_samples(A: np.ndarray, B: np.ndarray, names: tuple[str, str] = ("A", "B")) -> None:
    """A and B must hold the same samples in the same order, so the same number of rows."""
    if A.shape[0] != B.shape[0]:
        raise ValueError(
            f"{names[0]} has {A.shape[0]} rows and {names[1]} has {B.shape[0]}: both must hold the same samples "
            "in the same order"
        )


def check_k(k: object, n: int, name: str = "k") -> int:
    """k must be a positive integer with N > k + 1 (a point, its k neighbours and at least one non-neighbour)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}")
    if n <= k + 1:
        raise ValueError(f"N = {n} samples is too few for {name} = {k}: N must exceed {name} + 1 = {k + 1}")
    return k


def check_not_constant(X: np.ndarray, name: str = "X") -> None:
    """A representation whose rows are all identical carries no neighbourhood structure."""
    if X.shape[0] > 1 and not (X != X[0]).any():
        raise ValueError(
            f"{name}: all {X.shape[0]} rows are identical (a constant representation; if the data were shifted, "
            "the representation becomes constant after shift: spread below float64 resolution)"
        )


def first_duplicate_pair(X: np.ndarray) -> tuple[int, int] | None:
    """Return (i, j), i < j, the first pair of identical rows, or None."""
    _, first, inverse = np.unique(X, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    dup = np.flatnonzero(first[inverse] != np.arange(X.shape[0]))
    if dup.size == 0:
        return None
    j = int(dup[0])
    return int(first[inverse[j]]), j


def as_pair(A: object, B: object, *, constant_ok: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate two representations of the same samples (see as_representation); refuse constant ones."""
    A = as_representation(A, "A")
    B = as_representation(B, "B")
    check_same_samples(A, B)
    if not constant_ok:
        check_not_constant(A, "A")
        check_not_constant(B, "B")
    return A, B


def pow2_scale(X: np.ndarray, axis: int | None = None) -> tuple[np.ndarray, np.ndarray | int]:
    """(X · 2^-e, e) with e chosen so the largest |x| (overall, or per slice along `axis`) lies in [0.5, 1).

    Multiplying by a power of two is exact (no rounding), so scale-invariant metrics give the same value while
    squares and products neither overflow (|x| ~ 1e154) nor underflow (|x| ~ 1e-162). All-zero slices keep e = 0.
    """
    m = np.max(np.abs(X), axis=axis, keepdims=axis is not None)
    _, e = np.frexp(m)
    e = np.where(m > 0, e, 0)
    out = np.ldexp(X, -e)
    return out, (int(e) if axis is None else e)


def centre_columns(X: np.ndarray) -> np.ndarray:
    """Column-centred X, computed carefully so a shift of up to ~1e8 x the spread costs no more than it must.

    X is first scaled by a power of two (exact; no overflow in the differences), then the first row is subtracted
    (exact for nearby floats) and only then the mean of the residuals, which are of the order of the spread, so
    the rounding of the mean is relative to the spread, not to the shift. The result is scaled back exactly.
    """
    Xs, e = pow2_scale(X)
    R = Xs - Xs[0]
    R -= R.mean(axis=0)
    return np.ldexp(R, e)


def centred_scaled(X: np.ndarray, name: str = "X") -> tuple[np.ndarray, int]:
    """(centred X scaled by 2^-e into [0.5, 1), e); refuses a representation that is constant after centring."""
    R, e1 = pow2_scale(X)
    R = R - R[0]
    R -= R.mean(axis=0)
    if not R.any():
        raise ValueError(
            f"{name}: representation becomes constant after shift: spread below float64 resolution "
            "(all rows are identical)"
        )
    R, e2 = pow2_scale(R)
    return R, e1 + e2
