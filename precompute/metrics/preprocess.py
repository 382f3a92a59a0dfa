"""Feature preprocessing, recorded with every result.

Kernel metrics (CKNNA, mutual kNN, CKA) use the cosine kernel: optional clipping of |x| at a quantile of the whole
representation (the Platonic-representation pipeline clips at 0.95), then L2 row normalisation, so K = A Aᵀ holds
cosine similarities. IDCor z-scores each feature. Information imbalance and TwoNN use raw Euclidean distances.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ._checks import centre_columns, pow2_scale


@dataclass(frozen=True)
class KernelPreprocessing:
    """clip_quantile: None for no clipping, else q in (0, 1]; normalize: L2-normalise rows (cosine kernel)."""

    clip_quantile: float | None = None
    normalize: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


def clip_threshold(X: np.ndarray, q: float) -> float:
    """t = the element at index floor(q · X.size) of the sorted |X| (the reference's exact form)."""
    if not 0.0 < q <= 1.0:
        raise ValueError(f"clip quantile must be in (0, 1], got {q}")
    flat = np.abs(X).ravel()
    i = min(int(q * flat.size), flat.size - 1)
    return float(np.partition(flat, i)[i])  # the same order statistic as a full sort, in O(size)


def clip_at_quantile(X: np.ndarray, q: float) -> np.ndarray:
    """Clamp X to [-t, t], t = clip_threshold(X, q).

    When t = 0 (at least a fraction q of the entries are zero, as in a sparse fingerprint) clipping would erase
    the representation, so X is returned unchanged; `kernel_features` records that choice.
    """
    t = clip_threshold(X, q)
    return X if t == 0.0 else np.clip(X, -t, t)


def l2_normalize_rows(X: np.ndarray, name: str = "X") -> np.ndarray:
    """Rows scaled to unit Euclidean norm; a zero row has no direction, so it is an error naming the row."""
    X, _ = pow2_scale(X, axis=1)  # exact per-row power-of-two scale: the norms neither overflow nor underflow
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise ValueError(
            f"{name}: row {zero[0]} has zero norm, so its cosine similarity is undefined ({zero.size} such rows)"
        )
    return X / norms[:, None]


def kernel_features(X: np.ndarray, prep: KernelPreprocessing, name: str = "X") -> np.ndarray:
    """Apply the recorded kernel preprocessing: clip (optional) then L2-normalise (optional)."""
    if prep.clip_quantile is not None:
        X = clip_at_quantile(X, prep.clip_quantile)
    if prep.normalize:
        X = l2_normalize_rows(X, name)
    else:
        X, _ = pow2_scale(X)  # exact; the kernel metrics are invariant to a common scale of the features
    return X


def zscore_columns(X: np.ndarray) -> np.ndarray:
    """(x - mean) / std per feature (population std). A constant feature carries no distance and becomes 0.

    The IDCorrelation reference divides by (std + 1e-9); for a non-constant feature the two differ by a common
    factor of at most 1 + 1e-9/std, and TwoNN is invariant to a common scale.
    """
    X, _ = pow2_scale(X, axis=0)  # exact per-feature scale: z-scores are scale-free, squares stay in range
    centred = centre_columns(X)  # first-row offset, then the mean of the residuals (shift-robust)
    std = np.sqrt(np.mean(centred * centred, axis=0))
    safe = np.where(std > 0, std, 1.0)
    return np.where(std > 0, centred / safe, 0.0)


DEFAULT_PREPROCESSING = KernelPreprocessing()
