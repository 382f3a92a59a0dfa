"""Slow dense restatements of every metric, written from the formulas in DESIGN.md (N <= 500, float64).

They form full N x N matrices on purpose: they are the independent reading of the definitions that the
O(N·k) engine must equal.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist


def normalize(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def topk_mask(K, k):
    """M_ij = 1 if j is among the k largest K_ij, j != i; ties to the lower index (stable sort)."""
    n = K.shape[0]
    Kh = K.copy()
    np.fill_diagonal(Kh, -np.inf)
    idx = np.argsort(-Kh, axis=1, kind="stable")[:, :k]
    M = np.zeros((n, n))
    M[np.arange(n)[:, None], idx] = 1.0
    return M


def hsic_unbiased(X, Y):
    n = X.shape[0]
    Xt, Yt = X.copy(), Y.copy()
    np.fill_diagonal(Xt, 0.0)
    np.fill_diagonal(Yt, 0.0)
    value = np.sum(Xt * Yt.T) + Xt.sum() * Yt.sum() / ((n - 1) * (n - 2)) - 2.0 * np.sum(Xt @ Yt) / (n - 2)
    return value / (n * (n - 3))


def cknna(A, B, k):
    K, L = normalize(A) @ normalize(A).T, normalize(B) @ normalize(B).T
    MA, MB = topk_mask(K, k), topk_mask(L, k)
    M = MA * MB
    return hsic_unbiased(M * K, M * L) / np.sqrt(hsic_unbiased(MA * K, MA * K) * hsic_unbiased(MB * L, MB * L))


def mutual_knn(A, B, k):
    K, L = normalize(A) @ normalize(A).T, normalize(B) @ normalize(B).T
    return float(np.mean((topk_mask(K, k) * topk_mask(L, k)).sum(1) / k))


def cka(A, B, unbiased=False):
    K, L = normalize(A) @ normalize(A).T, normalize(B) @ normalize(B).T
    if unbiased:
        return hsic_unbiased(K, L) / np.sqrt(hsic_unbiased(K, K) * hsic_unbiased(L, L))
    n = K.shape[0]
    H = np.eye(n) - 1.0 / n
    kh, lh = K @ H, L @ H
    return np.trace(kh @ lh) / np.sqrt(np.trace(kh @ kh) * np.trace(lh @ lh))


def twonn(X, discard_fraction=0.1):
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    Ds = np.sort(D, axis=1)
    mu = Ds[:, 1] / Ds[:, 0]
    n = len(mu)
    n_eff = int(n * (1 - discard_fraction))
    x = np.sort(np.log(mu))[:n_eff]
    y = -np.log(1 - np.arange(1, n_eff + 1) / n)
    return float(np.sum(x * y) / np.sum(x * x))


def zscore(X):
    s = X.std(0)
    return np.where(s > 0, (X - X.mean(0)) / np.where(s > 0, s, 1), 0.0)


def idcor(A, B, permutations, seed):
    za, zb = zscore(A), zscore(B)
    ia, ib, ij = twonn(za), twonn(zb), twonn(np.hstack([za, zb]))
    rng = np.random.default_rng(seed)
    null = [twonn(np.hstack([za, zb[rng.permutation(len(A))]])) for _ in range(permutations)]
    p = (sum(v <= ij for v in null) + 1) / (permutations + 1) if permutations else None
    return (ia + ib - ij) / max(ia, ib), p


def information_imbalance(A, B, k):
    n = A.shape[0]
    DA, DB = cdist(A, A), cdist(B, B)
    np.fill_diagonal(DA, np.inf)
    np.fill_diagonal(DB, np.inf)
    nbr = np.argsort(DA, axis=1, kind="stable")[:, :k]
    total = 0.0
    for i in range(n):
        for j in nbr[i]:
            total += 1 + np.sum(DB[i] < DB[i, j])
    return 2.0 * total / (n * n * k)


def gride(X, n1):
    """Maximise the generalised-ratio log-likelihood directly (a different route from the engine's score root)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import betaln

    n2 = 2 * n1
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    Ds = np.sort(D, axis=1)
    mu = Ds[:, n2 - 1] / Ds[:, n1 - 1]
    n = len(mu)

    def neg_loglik(d):
        # (N - 1) log d: the unbiased form used by the estimator
        return -((n - 1) * np.log(d) + (n2 - n1 - 1) * np.sum(np.log(mu**d - 1)) - n * betaln(n2 - n1, n1)
                 - np.sum(((n2 - 1) * d + 1) * np.log(mu)))  # fmt: skip

    return minimize_scalar(neg_loglik, bounds=(0.01, 100), method="bounded", options={"xatol": 1e-10}).x
