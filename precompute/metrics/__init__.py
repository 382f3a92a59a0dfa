"""The metric engine: exact alignment metrics and intrinsic dimension in O(N·k) memory.

Public functions take (N, D) float arrays of the same N samples in the same order:

    cknna(A, B, k)                       -> float
    mutual_knn(A, B, k)                  -> float
    cka(A, B, unbiased=False)            -> float
    twonn_id(X)                          -> float
    idcor(A, B, permutations=P, seed=s)  -> (value, p_value)
    information_imbalance(A, B, k)       -> float   (A -> B)

Kernel metrics default to L2 row normalisation (cosine kernel) and no clipping; `clip_quantile=0.95` reproduces
the Platonic-representation preprocessing. The exact definitions are in each module's docstring and in
docs/METRICS.md. The cached forms in `allpairs` compute every pair and every k from one neighbour cache per
representation.
"""

from .allpairs import (
    PairResult,
    cka_all_pairs,
    cosine_caches,
    information_imbalance_all_pairs,
    knn_alignment_all_pairs,
)
from .cka import cka
from .cknna import cknna, cknna_from_caches
from .gride import gride_id
from .idcor import IDCorResult, idcor, idcor_details, prepare_idcor
from .information_imbalance import information_imbalance
from .mutual_knn import mutual_knn, mutual_knn_from_caches
from .neighbours import NeighbourCache, build_neighbour_cache
from .preprocess import KernelPreprocessing
from .twonn import TwoNNResult, twonn_details, twonn_id

__all__ = [
    "IDCorResult",
    "KernelPreprocessing",
    "NeighbourCache",
    "PairResult",
    "TwoNNResult",
    "build_neighbour_cache",
    "cka",
    "cka_all_pairs",
    "cknna",
    "cknna_from_caches",
    "cosine_caches",
    "gride_id",
    "idcor",
    "idcor_details",
    "prepare_idcor",
    "information_imbalance",
    "information_imbalance_all_pairs",
    "knn_alignment_all_pairs",
    "mutual_knn",
    "mutual_knn_from_caches",
    "twonn_details",
    "twonn_id",
]
