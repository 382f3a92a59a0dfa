"""Linear CKA (Kornblith et al. 2019), biased and unbiased, computed in feature space: O(N·Da·Db), never N x N.

With K = A Aᵀ and L = B Bᵀ (after the recorded preprocessing: by default L2-normalised rows, the cosine kernel)
and H = I - 11ᵀ/N:

    biased:    CKA = tr(KHLH) / sqrt(tr(KHKH) · tr(LHLH)) = ||ÃᵀB̃||²_F / (||ÃᵀÃ||_F · ||B̃ᵀB̃||_F),
               Ã, B̃ the column-centred features;
    unbiased:  CKA_u = HSIC_u(K, L) / sqrt(HSIC_u(K, K) · HSIC_u(L, L)), HSIC_u of Song et al. (2012) on
               K̃ = K - diag(K):  tr(K̃L̃) = ||AᵀB||²_F - Σ_i ||a_i||²||b_i||²,  1ᵀK̃1 = ||Aᵀ1||² - Σ_i ||a_i||²,
               K̃1 = A(Aᵀ1) - diag(K),  1ᵀK̃L̃1 = <K̃1, L̃1>.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_pair, centred_scaled
from .preprocess import KernelPreprocessing, kernel_features


def _biased_terms(A: np.ndarray, B: np.ndarray) -> float:
    return float(np.sum((A.T @ B) ** 2))


def _unbiased_hsic(A: np.ndarray, B: np.ndarray) -> float:
    n = A.shape[0]
    if n < 4:
        raise ValueError(f"unbiased CKA needs N >= 4, got N = {n}")
    diag_k = np.einsum("ij,ij->i", A, A)
    diag_l = np.einsum("ij,ij->i", B, B)
    trace = float(np.sum((A.T @ B) ** 2) - np.dot(diag_k, diag_l))
    sum_a = A.sum(axis=0)
    sum_b = B.sum(axis=0)
    sum_k = float(sum_a @ sum_a - diag_k.sum())
    sum_l = float(sum_b @ sum_b - diag_l.sum())
    k1 = A @ sum_a - diag_k
    l1 = B @ sum_b - diag_l
    return (trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 * float(k1 @ l1) / (n - 2)) / (n * (n - 3))


def cka_features(A: np.ndarray, B: np.ndarray, unbiased: bool = False) -> float:
    """CKA of already-preprocessed features (see the module docstring)."""
    # both forms are invariant to a shift of the features (HSIC_u mathematically, the biased form by centring) and
    # to an isotropic scale: compute on carefully centred features rescaled by a power of two (exact)
    try:
        Ac, _ = centred_scaled(A, "A")
        Bc, _ = centred_scaled(B, "B")
    except ValueError as err:
        raise ValueError(f"degenerate kernel: {err}; CKA is undefined") from None
    if unbiased:
        hab, haa, hbb = _unbiased_hsic(Ac, Bc), _unbiased_hsic(Ac, Ac), _unbiased_hsic(Bc, Bc)
    else:
        hab, haa, hbb = _biased_terms(Ac, Bc), _biased_terms(Ac, Ac), _biased_terms(Bc, Bc)
    if haa <= 0 or hbb <= 0:
        raise ValueError(f"degenerate kernel: self-HSIC is {haa:.3g} (A) and {hbb:.3g} (B); CKA is undefined")
    return hab / np.sqrt(haa * hbb)


def cka(
    A: np.ndarray,
    B: np.ndarray,
    unbiased: bool = False,
    *,
    clip_quantile: float | None = None,
    normalize: bool = True,
) -> float:
    """Linear CKA of (N, Da) and (N, Db) embeddings of the same N samples; see the module docstring."""
    A, B = as_pair(A, B)
    prep = KernelPreprocessing(clip_quantile, normalize)
    return float(cka_features(kernel_features(A, prep, "A"), kernel_features(B, prep, "B"), unbiased))
