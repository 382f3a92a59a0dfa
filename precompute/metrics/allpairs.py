"""All pairs, all k, from neighbour caches built once per representation (the analysis stage uses these).

Every result carries the options used (preprocessing, k, seed, eps, backend) so a release can record them.
Cost per pair: O(N·k) for CKNNA and mutual kNN (the caches hold everything), O(N·Da·Db) for CKA, one shared
tiled pass over B for the information imbalance of every A -> B.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import combinations

import numpy as np

from ._checks import as_representation, check_k, check_not_constant
from ._torch_pairs import TorchPairKernels
from .cka import cka_features
from .cknna import masked_entries, self_hsic
from .hsic import sparse_hsic_unbiased
from .information_imbalance import imbalance_from_ranks, ranks_in
from .neighbours import Backend, NeighbourCache, build_neighbour_cache
from .preprocess import DEFAULT_PREPROCESSING, KernelPreprocessing, kernel_features


@dataclass(frozen=True)
class PairResult:
    metric: str
    k: int | None
    model_a: str
    model_b: str
    value: float
    n: int
    options: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def cosine_caches(
    features: Mapping[str, np.ndarray],
    k_max: int,
    prep: KernelPreprocessing = DEFAULT_PREPROCESSING,
    *,
    backend: Backend = "numpy",
    device: str = "cpu",
    duplicates: str = "raise",
    tile_bytes: int = 8 * 2**20,
) -> dict[str, NeighbourCache]:
    """One cosine neighbour cache per representation, after the recorded kernel preprocessing."""
    out = {}
    for name, X in features.items():
        Xp = kernel_features(as_representation(X, name), prep, name)
        cache = build_neighbour_cache(
            Xp, k_max, "cosine", backend=backend, device=device, name=name, duplicates=duplicates, tile_bytes=tile_bytes
        )
        out[name] = NeighbourCache(cache.indices, cache.scores, cache.kind, {**cache.options, **prep.as_dict()})
    return out


def knn_alignment_all_pairs(
    caches: Mapping[str, NeighbourCache],
    ks: Iterable[int],
    *,
    eps: float = 0.0,
    backend: Backend = "numpy",
    device: str = "cpu",
) -> list[PairResult]:
    """CKNNA for every ordered pair (it is not symmetric) and mutual kNN for every unordered pair, at every k.

    The mask M = M_A ∘ M_B is shared by both orders, so it is intersected once per unordered pair and k.
    backend "torch" runs the O(N·k) kernels on `device` (useful at N ~ 10^5 with a GPU).
    """
    names = list(caches)
    if not names:
        return []
    n = caches[names[0]].n
    if any(c.n != n for c in caches.values()):
        raise ValueError("all caches must hold the same samples")
    ks = [check_k(k, n) for k in ks]
    kernels = TorchPairKernels(dict(caches), device) if backend == "torch" else None
    opts = {**next(iter(caches.values())).options, "eps": eps, "pair_backend": backend}
    results: list[PairResult] = []
    for k in ks:
        if kernels is not None:
            self_terms = {m: kernels.self_hsic(m, k) for m in names}
        else:
            self_terms = {m: self_hsic(caches[m], k) for m in names}
        for m, h in self_terms.items():
            if h <= 0:
                raise ValueError(f"{m}: degenerate kernel, self-HSIC {h:.3g} at k = {k}; CKNNA is undefined")
        for a, b in combinations(names, 2):
            if kernels is not None:
                h_ab, h_ba, shared = kernels.pair(a, b, k)
            else:
                rows, cols, x, y = masked_entries(caches[a], caches[b], k)
                h_ab = sparse_hsic_unbiased(rows, cols, x, y, n)
                h_ba = sparse_hsic_unbiased(rows, cols, y, x, n)
                shared = rows.size
            denom = np.sqrt(self_terms[a] * self_terms[b]) + eps
            results.append(PairResult("cknna", k, a, b, float(h_ab / denom), n, opts))
            results.append(PairResult("cknna", k, b, a, float(h_ba / denom), n, opts))
            results.append(PairResult("mutual_knn", k, a, b, shared / (n * k), n, opts))
    return results


def cka_all_pairs(
    features: Mapping[str, np.ndarray],
    prep: KernelPreprocessing = DEFAULT_PREPROCESSING,
    *,
    unbiased: Iterable[bool] = (False, True),
) -> list[PairResult]:
    """Linear CKA (biased as "cka", unbiased as "cka_unbiased") for every unordered pair."""
    prepped = {}
    for name, X in features.items():
        X = as_representation(X, name)
        check_not_constant(X, name)
        prepped[name] = kernel_features(X, prep, name)
    results = []
    for a, b in combinations(prepped, 2):
        for ub in unbiased:
            v = cka_features(prepped[a], prepped[b], ub)
            metric = "cka_unbiased" if ub else "cka"
            results.append(PairResult(metric, None, a, b, float(v), prepped[a].shape[0], prep.as_dict()))
    return results


def information_imbalance_all_pairs(
    features: Mapping[str, np.ndarray],
    ks: Iterable[int],
    *,
    euclidean_caches: Mapping[str, NeighbourCache] | None = None,
    backend: Backend = "numpy",
    device: str = "cpu",
    duplicates: str = "raise",
    tile_bytes: int = 8 * 2**20,
) -> list[PairResult]:
    """Δ(A → B; k) for every ordered pair and every k, with one tiled pass over each B."""
    feats = {m: as_representation(X, m) for m, X in features.items()}
    names = list(feats)
    if not names:
        return []
    n = feats[names[0]].shape[0]
    ks = [check_k(k, n) for k in ks]
    k_max = max(ks)
    if euclidean_caches is None:
        euclidean_caches = {
            m: build_neighbour_cache(
                feats[m],
                k_max,
                "euclidean",
                backend=backend,
                device=device,
                name=m,
                duplicates=duplicates,
                tile_bytes=tile_bytes,
            )
            for m in names
        }
    results = []
    for b in names:
        lists = {a: euclidean_caches[a].prefix(k_max)[0] for a in names if a != b}
        ranks = ranks_in(feats[b], lists, backend=backend, device=device, tile_bytes=tile_bytes)
        for a in lists:
            for k in ks:
                v = imbalance_from_ranks(ranks[a], k)
                results.append(PairResult("information_imbalance", k, a, b, v, n, {"distance": "euclidean"}))
    return results
