"""Confidence intervals for linear CKA (biased and unbiased) by a delete-a-group jackknife over seeded row groups.

Why not half-sampling (resampling.py, kept for the kNN metrics): each of R subsets costs its own cross product,
R·(N/2)·Da·Db per pair (50 x N/2 x 2,048² at the release's widths). CKA is a smooth function of a few means over
rows (the cross-covariance, the two self-covariances, and for the unbiased form the row norms and sums), so the
jackknife estimates its sampling variance consistently; the neighbourhood metrics are not smooth in that sense,
which is why they keep subsampling.

Scheme. The N rows are split into G seeded random groups of ⌊N/G⌋ or ⌈N/G⌉ rows (one partition per dataset, shared
by every pair). θ_(-g) is CKA on the rows outside group g, and

    Var_J = (G - 1)/G · Σ_g (θ_(-g) - θ̄)²,   interval θ̂ ± z_{(1+level)/2} · sqrt(Var_J).

Every θ_(-g) comes from totals minus group g's terms: C = ÃᵀB̃ (pass 1) and C_g = Ã_gᵀB̃_g (pass 2, one group at a
time), so a pair costs 2·N·Da·Db and O(Da·Db) memory. The biased form re-centres on the kept rows S (n_S = N - n_g):
C̃_S = C_S - s_S^A s_S^Bᵀ / n_S with C_S = C - C_g, s_S the column sums over S. HSIC_u is invariant to a shift of
the features, so the globally centred rows restricted to S give its exact value on S (Song et al. 2012 form, as in
cka.py, with Σ_S d_i e_i, ||s_S||² - Σ_S d_i and <K̃1, L̃1>_S = s_SᴬᵀC_S s_Sᴮ - s_Sᴮᵀ Σ_S d_i b̃_i - s_Sᴬᵀ Σ_S e_i ã_i
+ Σ_S d_i e_i). Tested against a direct recompute on each S; coverage checked by simulation
(tests/metrics/test_resampling_coverage.py).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from ._checks import centred_scaled


def jackknife_groups(n: int, groups: int, seed: int | np.random.SeedSequence) -> np.ndarray:
    """Group label (0..G-1) of each row: a seeded random partition into G groups of near-equal size."""
    if not 2 <= groups <= n:
        raise ValueError(f"the jackknife needs 2 <= groups <= N, got {groups} groups for N = {n}")
    labels = np.arange(n) % groups
    return np.random.default_rng(seed).permutation(labels)


def _hsic_u(m: int, trace: float, sk: float, sl: float, kl: float) -> float:
    return (trace + sk * sl / ((m - 1) * (m - 2)) - 2.0 * kl / (m - 2)) / (m * (m - 3))


def _subset_terms(m: int, c_s: np.ndarray, sa: np.ndarray, sb: np.ndarray, de: float, dsum_a: float,
                  dsum_b: float, db: np.ndarray, da: np.ndarray) -> tuple[float, float]:  # fmt: skip
    """(biased ||C̃_S||², unbiased HSIC_u) on the m kept rows S from their totals: C_S = Σ_S ã_i b̃_iᵀ, column
    sums sa, sb, de = Σ_S d_i e_i, dsum = Σ_S d_i, db = Σ_S d_i b̃_i, da = Σ_S e_i ã_i (see the module docstring)."""
    c_s = np.asarray(c_s, dtype=np.float64)
    biased = float(np.sum(np.square(c_s - np.outer(sa, sb) / m)))
    trace = float(np.sum(np.square(c_s))) - de
    sk, sl = float(sa @ sa) - dsum_a, float(sb @ sb) - dsum_b
    kl = float(sa @ c_s @ sb) - float(sb @ db) - float(sa @ da) + de
    return biased, _hsic_u(m, trace, sk, sl, kl)


class CkaGroupParts:
    """One model's centred features and, per left-out group, its biased and unbiased self terms."""

    def __init__(self, X: np.ndarray, labels: np.ndarray, dtype: type = np.float32, name: str = "X"):
        Xc, _ = centred_scaled(X, name)
        n = Xc.shape[0]
        if labels.shape != (n,):
            raise ValueError(f"{name}: {labels.size} group labels for {n} rows")
        self.n, self.labels, self.groups = n, labels, int(labels.max()) + 1
        self.rows = [np.flatnonzero(labels == g) for g in range(self.groups)]
        self.kept = n - np.array([r.size for r in self.rows])
        if self.kept.min() < 5:
            raise ValueError(f"{name}: N = {n} is too few rows for {self.groups} jackknife groups")
        self.X, self.Xd = Xc.astype(dtype), Xc
        self.diag = np.einsum("ij,ij->i", Xc, Xc)
        self.total = Xc.sum(axis=0)
        self.group_sums = np.stack([Xc[r].sum(axis=0) for r in self.rows])
        self.group_diag = np.array([self.diag[r].sum() for r in self.rows])
        gram = self.X.T @ self.X
        wx = Xc.T @ self.diag  # Σ_i d_i x̃_i
        self.self_biased, self.self_unbiased = np.empty(self.groups), np.empty(self.groups)
        for g, r in enumerate(self.rows):
            Xg, dg = self.X[r], self.diag[r]
            s_s = self.total - self.group_sums[g]
            w = wx - Xc[r].T @ dg
            self.self_biased[g], self.self_unbiased[g] = _subset_terms(
                int(self.kept[g]), gram - Xg.T @ Xg, s_s, s_s, float(self.diag @ self.diag - dg @ dg),
                float(self.diag.sum() - dg.sum()), float(self.diag.sum() - dg.sum()), w, w)  # fmt: skip


def cka_jackknife_values(a: CkaGroupParts, b: CkaGroupParts) -> dict[str, np.ndarray]:
    """θ_(-g) for g = 0..G-1 of biased ("cka") and unbiased ("cka_unbiased") CKA; see the module docstring."""
    if a.n != b.n or not np.array_equal(a.labels, b.labels):
        raise ValueError("both models' jackknife parts must hold the same rows and the same groups")
    cross = a.X.T @ b.X  # pass 1: the totals
    de, db, da = float(a.diag @ b.diag), b.Xd.T @ a.diag, a.Xd.T @ b.diag
    out = {"cka": np.empty(a.groups), "cka_unbiased": np.empty(a.groups)}
    for g, r in enumerate(a.rows):  # pass 2: one group's cross product at a time
        d_g, e_g = a.diag[r], b.diag[r]
        biased, unbiased = _subset_terms(
            int(a.kept[g]), cross - a.X[r].T @ b.X[r], a.total - a.group_sums[g], b.total - b.group_sums[g],
            de - float(d_g @ e_g), float(a.diag.sum()) - a.group_diag[g], float(b.diag.sum()) - b.group_diag[g],
            db - b.Xd[r].T @ d_g, da - a.Xd[r].T @ e_g)  # fmt: skip
        out["cka"][g] = biased / math.sqrt(a.self_biased[g] * b.self_biased[g])
        out["cka_unbiased"][g] = unbiased / math.sqrt(a.self_unbiased[g] * b.self_unbiased[g])
    return out


def jackknife_interval(full: float, values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """θ̂ ± z·sqrt((G-1)/G · Σ(θ_(-g) - θ̄)²)."""
    v = np.asarray(values, dtype=np.float64)
    g = v.size
    if g < 2:
        raise ValueError(f"the jackknife needs at least 2 groups, got {g}")
    sd = math.sqrt((g - 1) / g * float(np.sum((v - v.mean()) ** 2)))
    z = NormalDist().inv_cdf((1 + level) / 2)
    return float(full - z * sd), float(full + z * sd)
