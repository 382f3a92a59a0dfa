"""IDCor: intrinsic-dimension correlation (Basile et al. 2024, arXiv 2406.15812).

Each feature of A and B is z-scored; the joint representation is the column concatenation [A | B], so
d²_joint = d²_A + d²_B. With ID the TwoNN estimate (twonn.py):

    IDCor(A, B) = (ID(A) + ID(B) - ID([A | B])) / max(ID(A), ID(B))

1 when B is a function of A of no larger dimension, about 0 when unrelated (it can be slightly negative through
estimator noise). Significance: the rows of B are permuted P times (seeded) and
p = (#{p : ID([A | B_p]) <= ID([A | B])} + 1) / (P + 1), so the smallest attainable p is 1/(P + 1).

Two paths, equal up to float64 rounding: for N <= FAST_MAX_N with the numpy backend, the squared-distance matrices
of A and B are built once and each permutation's joint distances are d²_A(i, j) + d²_B(p(i), p(j)), O(N²) per
permutation (_idcor_fast.py states the exactness rule). Otherwise (larger N, or backend "torch") every TwoNN is a
full neighbour search on the joined features, O(N²·(Da + Db)) per permutation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import as_pair, as_representation
from ._idcor_fast import DistanceBlock, distance_block, joint_ratios
from .neighbours import Backend
from .preprocess import zscore_columns
from .twonn import twonn_details, twonn_from_ratios

FAST_MAX_N = 5000  # two N x N float64 matrices (400 MB at 5,000) are kept per pair on the fast path


@dataclass(frozen=True)
class IDCorResult:
    value: float
    p_value: float | None  # None when permutations = 0
    id_a: float
    id_b: float
    id_joint: float
    permutations: int
    seed: int
    null_ids: list[float] = field(default_factory=list)


def _check_permutations(permutations: object) -> int:
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < 0:
        raise ValueError(f"permutations must be a non-negative integer, got {permutations!r}")
    return int(permutations)


def _result(id_a: float, id_b: float, id_joint: float, null_ids: list[float], seed: int) -> IDCorResult:
    value = (id_a + id_b - id_joint) / max(id_a, id_b)
    p_value = (sum(v <= id_joint for v in null_ids) + 1) / (len(null_ids) + 1) if null_ids else None
    return IDCorResult(float(value), p_value, id_a, id_b, id_joint, len(null_ids), int(seed), null_ids)


def _idcor_direct(
    za: np.ndarray, zb: np.ndarray, permutations: int, seed: int, discard_fraction: float, backend: Backend, device: str
) -> IDCorResult:
    """Every TwoNN by a neighbour search on the explicitly joined features (the reference path)."""
    kw = {"discard_fraction": discard_fraction, "backend": backend, "device": device}
    id_a = twonn_details(za, name="A", **kw).dimension
    id_b = twonn_details(zb, name="B", **kw).dimension
    id_joint = twonn_details(np.hstack([za, zb]), name="[A|B]", **kw).dimension
    rng = np.random.default_rng(seed)
    null_ids = []
    for _ in range(permutations):
        perm = rng.permutation(za.shape[0])
        null_ids.append(twonn_details(np.hstack([za, zb[perm]]), name="[A|B perm]", **kw).dimension)
    return _result(id_a, id_b, id_joint, null_ids, seed)


def prepare_idcor(X: np.ndarray, name: str = "X") -> DistanceBlock:
    """The z-scored features of X and their N x N squared distances, for `idcor_details(..., prepared=...)`: a model
    that enters several pairs on the same samples pays the O(N²·D) part once."""
    return distance_block(zscore_columns(as_representation(X, name)))


def _block(z: np.ndarray, given: DistanceBlock | None, name: str) -> DistanceBlock:
    if given is None:
        return distance_block(z)
    if given.Z.shape != z.shape or not np.array_equal(given.Z, z):
        raise ValueError(f"prepared block for {name} was not built from these rows (prepare_idcor({name}) expected)")
    return given


def _idcor_gram(
    za: np.ndarray,
    zb: np.ndarray,
    permutations: int,
    seed: int,
    discard_fraction: float,
    prepared: tuple[DistanceBlock | None, DistanceBlock | None] = (None, None),
) -> IDCorResult:
    """The same numbers from d²_A and d²_B built once (see _idcor_fast.py)."""
    if not 0.0 <= discard_fraction < 1.0:  # before the O(N²·D) work, as the direct path fails at its first fit
        raise ValueError(f"discard_fraction must be in [0, 1), got {discard_fraction}")
    a, b = _block(za, prepared[0], "A"), _block(zb, prepared[1], "B")

    def twonn(blocks, index, name):
        return twonn_from_ratios(joint_ratios(blocks, index, name)[0], discard_fraction)

    def own(block, name):  # a block's own ID does not depend on its partner: computed once per prepared block
        key = ("twonn", discard_fraction)
        if key not in block.memo:
            block.memo[key] = twonn([block], [None], name)
        return block.memo[key]

    id_a, id_b = own(a, "A"), own(b, "B")
    id_joint = twonn([a, b], [None, None], "[A|B]")
    rng = np.random.default_rng(seed)
    null_ids = [twonn([a, b], [None, rng.permutation(za.shape[0])], "[A|B perm]") for _ in range(permutations)]
    return _result(id_a, id_b, id_joint, null_ids, seed)


def idcor_details(
    A: np.ndarray,
    B: np.ndarray,
    permutations: int = 100,
    seed: int = 0,
    *,
    discard_fraction: float = 0.1,
    backend: Backend = "numpy",
    device: str = "cpu",
    prepared: tuple[DistanceBlock | None, DistanceBlock | None] = (None, None),
) -> IDCorResult:
    """IDCor with the IDs and the permutation null; see the module docstring.

    prepared: optional (prepare_idcor(A), prepare_idcor(B)) reused across pairs (either may be None); checked against
    the z-scored A and B, used on the fast path only.
    """
    A, B = as_pair(A, B)
    permutations = _check_permutations(permutations)
    za, zb = zscore_columns(A), zscore_columns(B)
    if backend == "numpy" and A.shape[0] <= FAST_MAX_N:
        return _idcor_gram(za, zb, permutations, seed, discard_fraction, prepared)
    return _idcor_direct(za, zb, permutations, seed, discard_fraction, backend, device)


def idcor(A: np.ndarray, B: np.ndarray, permutations: int = 100, seed: int = 0) -> tuple[float, float | None]:
    """(IDCor(A, B), permutation p-value); p-value is None when permutations = 0."""
    res = idcor_details(A, B, permutations, seed)
    return res.value, res.p_value
