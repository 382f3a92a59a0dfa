"""Permutation nulls for every pairwise metric: rows of B permuted (seeded), B's structure kept, correspondence broken.

For a permutation π, B' = B[π] (row i of B' is row π(i) of B). The null distribution of a metric is its value on
(A, B') over P seeded permutations; it is summarised by its mean, sd, the 95th / 99th percentiles and the
+1-corrected p-value

    p = (1 + #{null >= observed}) / (P + 1)         (higher is more aligned)
    p = (1 + #{null <= observed}) / (P + 1)         (information imbalance: lower is more aligned)

so the smallest attainable p is 1 / (P + 1). For a "lower is more aligned" metric q95 / q99 are the 5th / 1st
percentiles (the critical values on the aligned side).

Cost per permutation:
    CKNNA (both orders) and mutual kNN, every k at once: O(N·k_max). B's cache is re-indexed (neighbour j of row
        π(i) becomes π⁻¹(j)); membership in A's lists is a bit test in an N² bitset (N ≤ 40,000; else a binary
        search). Only the few shared entries (about k² in all under the null) reach the sparse HSIC.
    CKA (biased and unbiased): O(N·Da·Db) in feature space: ||Ãᵀ B̃[π]||²_F is the only term that changes.
    Information imbalance: one tiled pass over B (O(N²·D) + row sorts) serves all P permutations: rank_{B'}(i, j)
        = rank_B(π(i), π(j)), so row u = π(i) of B is searched for the thresholds of π(N_k^A(π⁻¹(u))).
    IDCor: the permuted joint IDs that `idcor_details` already draws (O(N²) each on the fast path).

Closed forms (each tested against permutations in tests/metrics/test_nulls.py):
    mutual kNN:  π⁻¹(N_k^B(π(i))) is a uniform k-subset of the N - 1 other rows, so the overlap with N_k^A(i) is
        hypergeometric with mean k²/(N-1):  E[mutual_knn] = k / (N - 1).
    information imbalance: π(j) is uniform over the rows other than π(i), so E[rank] = r̄, the mean of
        rank_B(u, v) over all ordered pairs u != v (= N/2 without tied distances, ranks 1..N-1 each once):
        E[Δ] = 2/(N² k) · N·k·r̄ = 2 r̄ / N  (= 1 without ties, for every k).
    linear HSIC (biased), K̃ = HKH, L̃ = HLH (zero row sums): E[Σ_ij K̃_ij L̃_π(i)π(j)]
        = tr K̃ tr L̃ / N + (0 - tr K̃)(0 - tr L̃) / (N(N-1)) = tr K̃ · tr L̃ / (N - 1),
        tr K̃ = ||Ã||²_F; the CKA denominator does not change under π, so
        E[CKA] = ||Ã||²_F ||B̃||²_F / ((N - 1) ||ÃᵀÃ||_F ||B̃ᵀB̃||_F)  (the RV coefficient's permutation mean).
    unbiased HSIC: the U-statistic kernel averages k_tu l_tu + k_tu l_vw - 2 k_tu l_tv over distinct indices; with
        B's indices drawn without replacement independently of A's every term has mean κλ, so E[HSIC_u] = 0 and
        E[CKA_u] = 0 exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from . import _knn_null_kernel
from ._checks import centred_scaled
from .cknna import self_hsic
from .hsic import sparse_hsic_unbiased
from .information_imbalance import rank_space, sq_distance_block
from .neighbours import NeighbourCache

_BITSET_MAX_BYTES = 2**28  # N <= ~46,000: membership by bit test, else by binary search
_DEFAULT_TILE_BYTES = 16 * 2**20


@dataclass(frozen=True)
class NullSummary:
    """Summary of one metric's permutation null for one ordered pair (and k)."""

    observed: float
    mean: float
    sd: float
    q95: float
    q99: float
    n_permutations: int
    seed: int
    p_value: float
    higher_is_aligned: bool = True
    closed_form_mean: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def null_p_value(observed: float, values: np.ndarray, higher_is_aligned: bool = True) -> float:
    """(1 + #{null at least as aligned as observed}) / (P + 1)."""
    values = np.asarray(values, dtype=np.float64)
    hits = np.count_nonzero(values >= observed if higher_is_aligned else values <= observed)
    return float((1 + hits) / (values.size + 1))


def summarize_null(
    observed: float,
    values: np.ndarray,
    *,
    seed: int,
    higher_is_aligned: bool = True,
    closed_form_mean: float | None = None,
) -> NullSummary:
    """Mean, sd (ddof 0), critical values at 5 % and 1 % on the aligned side, +1-corrected p-value."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("a null summary needs at least one permutation")
    if higher_is_aligned:
        q95, q99 = np.quantile(values, [0.95, 0.99])
    else:
        q95, q99 = np.quantile(values, [0.05, 0.01])
    return NullSummary(
        observed=float(observed),
        mean=float(values.mean()),
        sd=float(values.std()),
        q95=float(q95),
        q99=float(q99),
        n_permutations=int(values.size),
        seed=int(seed),
        p_value=null_p_value(observed, values, higher_is_aligned),
        higher_is_aligned=higher_is_aligned,
        closed_form_mean=None if closed_form_mean is None else float(closed_form_mean),
    )


def permutations(n: int, count: int, seed: int | np.random.SeedSequence) -> Iterator[np.ndarray]:
    """`count` seeded permutations of range(n), always the same for the same seed."""
    if count < 1:
        raise ValueError(f"permutations must be >= 1, got {count}")
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield rng.permutation(n)


def inverse(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size, dtype=perm.dtype)
    return inv


# ------------------------------------------------------------------------------------------------ closed forms
def mutual_knn_null_mean(n: int, k: int) -> float:
    """E[mutual_knn] under a uniform permutation of B's rows: k / (N - 1)."""
    return k / (n - 1)


def info_imbalance_null_mean(mean_rank: float, n: int) -> float:
    """E[Δ] under permutation: 2 r̄ / N, r̄ the mean rank over ordered pairs (N/2, so E[Δ] = 1, without ties)."""
    return 2.0 * mean_rank / n


def hsic_biased_null_mean(A: np.ndarray, B: np.ndarray) -> float:
    """E over π of tr(K̃ Π L̃ Πᵀ) = ||Ã||²_F ||B̃||²_F / (N - 1) for linear kernels (Ã, B̃ column-centred)."""
    Ac, Bc = A - A.mean(axis=0), B - B.mean(axis=0)
    return float(np.sum(Ac * Ac) * np.sum(Bc * Bc) / (A.shape[0] - 1))


def cka_null_mean(A: np.ndarray, B: np.ndarray) -> float:
    """E[biased CKA] under permutation (features already preprocessed); see the module docstring."""
    Ac, _ = centred_scaled(A, "A")
    Bc, _ = centred_scaled(B, "B")
    num = hsic_biased_null_mean(Ac, Bc)
    return float(num / np.sqrt(np.sum((Ac.T @ Ac) ** 2) * np.sum((Bc.T @ Bc) ** 2)))


# ------------------------------------------------------------------------------------------------ kNN metrics
class _Membership:
    """Which keys i·N + j are in a fixed set, and where: a bitset when N² bits fit, else a sorted array."""

    def __init__(self, keys: np.ndarray, n: int):
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]
        self.bits = None
        if n * n // 8 + 1 <= _BITSET_MAX_BYTES:
            self.bits = np.zeros(n * n // 8 + 1, dtype=np.uint8)
            np.bitwise_or.at(self.bits, keys >> 3, (1 << (keys & 7)).astype(np.uint8))

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `keys` that are members, their flat positions in the original key array)."""
        if self.bits is not None:
            cand = np.flatnonzero(self.bits[keys >> 3] & (1 << (keys & 7)).astype(np.uint8))
        else:
            cand = np.arange(keys.size)
        pos = np.minimum(np.searchsorted(self.sorted, keys[cand]), self.sorted.size - 1)
        hit = self.sorted[pos] == keys[cand]
        return cand[hit], self.order[pos[hit]]


def knn_null_values(
    cache_a: NeighbourCache,
    cache_b: NeighbourCache,
    ks: Sequence[int],
    n_permutations: int,
    seed: int | np.random.SeedSequence,
    *,
    self_terms: Mapping[tuple[str, int], float] | None = None,
    use_kernel: bool = True,
) -> dict[str, np.ndarray]:
    """Null values (P, len(ks)) of "cknna_ab" = CKNNA(A, B'), "cknna_ba" = CKNNA(B', A), "mutual_knn".

    Same numbers as cknna_from_caches / mutual_knn_from_caches on the re-indexed cache of B[π] (tested).
    self_terms: {("a", k): HSIC_u(M_A∘K, M_A∘K), ("b", k): ...} when the caller has them (invariant under π).
    use_kernel: find the shared entries with the compiled search (_knn_null_kernel.py) when numba is there; the
    NumPy path (flat keys against an N² bitset) gives bit-identical values.
    """
    n, ks = cache_a.n, [int(k) for k in ks]
    kmax = max(ks)
    ia, va = cache_a.prefix(kmax)
    ib, vb = cache_b.prefix(kmax)
    rows = np.repeat(np.arange(n, dtype=np.int64), kmax)
    ia_flat, va_flat = ia.reshape(-1), va.reshape(-1)
    compiled = use_kernel and _knn_null_kernel.available()
    members = _knn_null_kernel.SharedEntries(ia, ib) if compiled else _Membership(rows * n + ia_flat, n)
    st = dict(self_terms or {})
    denom = {}
    for k in ks:
        haa = st.get(("a", k), None)
        hbb = st.get(("b", k), None)
        haa = self_hsic(cache_a, k) if haa is None else haa
        hbb = self_hsic(cache_b, k) if hbb is None else hbb
        denom[k] = float(np.sqrt(haa * hbb))
    out = {m: np.empty((n_permutations, len(ks))) for m in ("cknna_ab", "cknna_ba", "mutual_knn")}
    for p, perm in enumerate(permutations(n, n_permutations, seed)):
        inv = inverse(perm)
        if compiled:
            r, c, rank_a, rank_b = members.find(perm, inv)
            x, y = va[r, rank_a], vb[perm[r], rank_b]
        else:
            jb = inv[ib[perm]].reshape(-1)  # neighbours of row i in B[π]
            pos_b, pos_a = members.find(rows * n + jb)
            r, c = rows[pos_a], ia_flat[pos_a]
            x = va_flat[pos_a]
            y = vb[perm].reshape(-1)[pos_b]
            rank_a, rank_b = pos_a % kmax, pos_b % kmax
        for q, k in enumerate(ks):
            sel = (rank_a < k) & (rank_b < k)
            rs, cs, xs, ys = r[sel], c[sel], x[sel], y[sel]
            out["mutual_knn"][p, q] = rs.size / (n * k)
            out["cknna_ab"][p, q] = sparse_hsic_unbiased(rs, cs, xs, ys, n) / denom[k]
            out["cknna_ba"][p, q] = sparse_hsic_unbiased(rs, cs, ys, xs, n) / denom[k]
    return out


# ------------------------------------------------------------------------------------------------ CKA
def cka_null_values(
    A: np.ndarray,
    B: np.ndarray,
    n_permutations: int,
    seed: int | np.random.SeedSequence,
    *,
    dtype: type = np.float32,
) -> dict[str, np.ndarray]:
    """Null values (P,) of biased and unbiased linear CKA of preprocessed features A, B[π], in feature space.

    Only ||Acᵀ Bc[π]||²_F, Σ_i diag_K(i) diag_L(π(i)) and <K̃1, (L̃1)[π]> change with π (cka.py's forms). The
    cross product runs in `dtype` (float32 by default: twice as fast, and ~1e-6 relative is far below the null's
    spread); the invariant terms are float64.
    """
    Ac, _ = centred_scaled(A, "A")
    Bc, _ = centred_scaled(B, "B")
    n = Ac.shape[0]
    haa_b, hbb_b = float(np.sum((Ac.T @ Ac) ** 2)), float(np.sum((Bc.T @ Bc) ** 2))
    dk, dl = np.einsum("ij,ij->i", Ac, Ac), np.einsum("ij,ij->i", Bc, Bc)
    sa, sb = Ac.sum(axis=0), Bc.sum(axis=0)
    sum_k, sum_l = float(sa @ sa - dk.sum()), float(sb @ sb - dl.sum())
    k1, l1 = Ac @ sa - dk, Bc @ sb - dl

    def hsic_u(trace_full: float, dd: float, s1: float, s2: float, kl: float) -> float:
        trace = trace_full - dd
        return (trace + s1 * s2 / ((n - 1) * (n - 2)) - 2.0 * kl / (n - 2)) / (n * (n - 3))

    haa_u = hsic_u(haa_b, float(dk @ dk), sum_k, sum_k, float(k1 @ k1))
    hbb_u = hsic_u(hbb_b, float(dl @ dl), sum_l, sum_l, float(l1 @ l1))
    At, Bt = np.ascontiguousarray(Ac.T, dtype=dtype), Bc.astype(dtype)
    biased, unbiased = np.empty(n_permutations), np.empty(n_permutations)
    for p, perm in enumerate(permutations(n, n_permutations, seed)):
        cross = float(np.sum(np.square(At @ Bt[perm], dtype=np.float64)))
        biased[p] = cross / np.sqrt(haa_b * hbb_b)
        unbiased[p] = hsic_u(cross, float(dk @ dl[perm]), sum_k, sum_l, float(k1 @ l1[perm])) / np.sqrt(haa_u * hbb_u)
    return {"cka": biased, "cka_unbiased": unbiased}


# ------------------------------------------------------------------------------------------------ info imbalance
def info_imbalance_null_values(
    B: np.ndarray,
    neighbour_lists: Mapping[str, np.ndarray],
    ks: Sequence[int],
    n_permutations: int,
    seeds: Mapping[str, int | np.random.SeedSequence],
    *,
    tile_bytes: int = _DEFAULT_TILE_BYTES,
) -> tuple[dict[str, np.ndarray], float]:
    """Null values (P, len(ks)) of Δ(A → B[π]) for each A's (N, k_max) Euclidean lists, in one pass over B.

    Returns (values per A name, r̄ the mean rank over ordered pairs of B for the closed-form mean). Ranks as in
    information_imbalance.ranks_in (1 + #{strictly nearer}, Gram form on carefully centred features).
    """
    n = B.shape[0]
    ks = [int(k) for k in ks]
    kmax = max(ks)
    names = list(neighbour_lists)
    perms = {m: np.stack(list(permutations(n, n_permutations, seeds[m]))) for m in names}
    invs = {m: np.stack([inverse(p) for p in perms[m]]) for m in names}
    sums = {m: np.zeros((n_permutations, kmax)) for m in names}
    Bc, sq, BcT = rank_space(B)
    t = int(max(1, min(n, tile_bytes // (40 * n))))  # d2, order, sorted values, tie starts, ranks
    p_index = np.arange(n_permutations)[None, :, None]
    rank_total = 0.0
    for start in range(0, n, t):
        stop = min(n, start + t)
        u = np.arange(start, stop)
        d2 = sq_distance_block(Bc, sq, BcT, start, stop)
        d2[u - start, u] = np.inf
        # rank table: rank[u, v] = 1 + #{l != u : d2(u, l) < d2(u, v)}, the first position of v's tie group in
        # row u's sorted order (the self entry, inf, sorts last); every null rank is then one lookup
        order = np.argsort(d2, axis=1)
        srt = np.take_along_axis(d2, order, 1)
        new_value = np.ones(srt.shape, dtype=bool)
        new_value[:, 1:] = srt[:, 1:] != srt[:, :-1]
        left = np.maximum.accumulate(np.where(new_value, np.arange(n), 0), axis=1)
        rank_total += float(left[:, :-1].sum(dtype=np.int64) + (stop - start) * (n - 1))
        rank = np.empty(d2.shape, dtype=np.int32 if n < 2**31 - 1 else np.int64)
        np.put_along_axis(rank, order, left + 1, axis=1)
        del order, srt, new_value, left
        rows_t = np.arange(stop - start)[:, None, None]
        for m in names:  # row u asks for the ranks of π(N_k^A(π⁻¹(u))), in list order
            i = invs[m][:, start:stop].T  # (t, P): row-major, so each B row's lookups stay in one cached row
            j = perms[m][p_index, neighbour_lists[m][i, :kmax]]  # (t, P, kmax)
            sums[m] += rank[rows_t, j].sum(axis=0, dtype=np.int64)  # (P, kmax)
    out = {}
    for m in names:
        csum = np.cumsum(sums[m], axis=1)
        out[m] = np.stack([2.0 * csum[:, k - 1] / (n * n * k) for k in ks], axis=1)
    return out, rank_total / (n * (n - 1))


def idcor_null_values(id_a: float, id_b: float, null_ids: Sequence[float]) -> np.ndarray:
    """IDCor on each permuted joint: (ID(A) + ID(B) - ID([A | B[π]])) / max(ID(A), ID(B))."""
    return (id_a + id_b - np.asarray(null_ids, dtype=np.float64)) / max(id_a, id_b)
