"""Confidence intervals for linear CKA (biased and unbiased) by a delete-a-group jackknife over seeded row groups.

Why not half-sampling (resampling.py, kept for the kNN metrics): each of R subsets costs its own cross product,
R·(N/2)·Da·Db per pair (50 x N/2 x 2,048² at the release's widths). CKA is a smooth function of a few means over
rows (the cross-covariance, the two self-covariances, and for the unbiased form the row norms and sums), so the
jackknife estimates its sampling variance consistently; the neighbourhood metrics are not smooth in that sense,
which is why they keep subsampling.

Scheme. The N rows are split into G seeded random groups of ⌊N/G⌋ or ⌈N/G⌉ rows (one partition per dataset, shared
by every pair). θ_(-g) is CKA on the rows outside group g, and

    Var_J = (G - 1)/G · Σ_g (θ_(-g) - θ̄)²,   interval θ̂ ± z_{(1+level)/2} · sqrt(Var_J).

Every θ_(-g) comes from totals minus group g's terms: C = ÃᵀB̃ (pass 1) and, per group, Ã_g C (pass 2), so a pair
costs 2·N·Da·Db and O(Da·Db) memory; nothing of size Da·Db is formed per group (see `_leave_group_out`). The biased form re-centres on the kept rows S (n_S = N - n_g):
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


def _leave_group_out(a: CkaGroupParts, b: CkaGroupParts, cross: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(biased ||C̃_S||², unbiased HSIC_u) for every S = rows outside one group, C = ÃᵀB̃ given (`cross`).

    Nothing of size Da·Db is formed per group: with P_g = Ã_g C (n_g x Db, the second pass),
        ||C_S||² = ||C||² - 2<C, C_g> + ||C_g||²,  <C, C_g> = Σ_{i∈g} (P_g ∘ B̃_g),  ||C_g||² = <Ã_gÃ_gᵀ, B̃_gB̃_gᵀ>,
        s_Sᴬᵀ C_S s_Sᴮ = s_Sᴬᵀ C s_Sᴮ - (Ã_g s_Sᴬ)·(B̃_g s_Sᴮ),
    and every s_Sᴬᵀ C s_Sᴮ from one small product [t; Σ_g]ᴬ C [t; Σ_g]ᴮᵀ (t the column totals, Σ_g the group sums).
    """
    c = np.asarray(cross, dtype=np.float64)
    sums_a, sums_b = np.vstack([a.total, a.group_sums]), np.vstack([b.total, b.group_sums])
    m_all = sums_a @ c @ sums_b.T  # (G+1, G+1)
    total_sq = float(np.sum(np.square(c)))
    de_tot, dsum_a, dsum_b = float(a.diag @ b.diag), float(a.diag.sum()), float(b.diag.sum())
    db_tot, da_tot = b.Xd.T @ a.diag, a.Xd.T @ b.diag  # Σ_i d_i b̃_i, Σ_i e_i ã_i
    cx = cross.astype(a.X.dtype, copy=False)
    biased, unbiased = np.empty(a.groups), np.empty(a.groups)
    for g, r in enumerate(a.rows):
        xa, xb = a.X[r], b.X[r]
        m = int(a.kept[g])
        inner = float(np.sum(xa @ cx * xb, dtype=np.float64))
        own = float(np.sum((xa @ xa.T) * (xb @ xb.T), dtype=np.float64))
        sq = total_sq - 2.0 * inner + own  # ||C_S||²
        sa, sb = a.total - a.group_sums[g], b.total - b.group_sums[g]
        j = g + 1
        quad = m_all[0, 0] - m_all[j, 0] - m_all[0, j] + m_all[j, j]  # s_Sᴬᵀ C s_Sᴮ
        quad -= float((a.Xd[r] @ sa) @ (b.Xd[r] @ sb))  # minus s_Sᴬᵀ C_g s_Sᴮ
        d_g, e_g = a.diag[r], b.diag[r]
        de = de_tot - float(d_g @ e_g)  # Σ_S d_i e_i
        biased[g] = sq - 2.0 * quad / m + float(sa @ sa) * float(sb @ sb) / (m * m)
        sk, sl = float(sa @ sa) - (dsum_a - float(d_g.sum())), float(sb @ sb) - (dsum_b - float(e_g.sum()))
        db, da = db_tot - b.Xd[r].T @ d_g, da_tot - a.Xd[r].T @ e_g
        kl = quad - float(sb @ db) - float(sa @ da) + de
        unbiased[g] = _hsic_u(m, sq - de, sk, sl, kl)
    return biased, unbiased


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
        self.self_biased, self.self_unbiased = _leave_group_out(self, self, self.X.T @ self.X)


def cka_jackknife_values(a: CkaGroupParts, b: CkaGroupParts) -> dict[str, np.ndarray]:
    """θ_(-g) for g = 0..G-1 of biased ("cka") and unbiased ("cka_unbiased") CKA; see the module docstring."""
    if a.n != b.n or not np.array_equal(a.labels, b.labels):
        raise ValueError("both models' jackknife parts must hold the same rows and the same groups")
    biased, unbiased = _leave_group_out(a, b, a.X.T @ b.X)  # pass 1: C; pass 2 inside: Ã_g C per group
    return {"cka": biased / np.sqrt(a.self_biased * b.self_biased),
            "cka_unbiased": unbiased / np.sqrt(a.self_unbiased * b.self_unbiased)}  # fmt: skip


def jackknife_interval(full: float, values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """θ̂ ± z·sqrt((G-1)/G · Σ(θ_(-g) - θ̄)²)."""
    v = np.asarray(values, dtype=np.float64)
    g = v.size
    if g < 2:
        raise ValueError(f"the jackknife needs at least 2 groups, got {g}")
    sd = math.sqrt((g - 1) / g * float(np.sum((v - v.mean()) ** 2)))
    z = NormalDist().inv_cdf((1 + level) / 2)
    return float(full - z * sd), float(full + z * sd)
