"""IDCor: intrinsic-dimension correlation (Basile et al. 2024, arXiv 2406.15812).

Each feature of A and B is z-scored; the joint representation is the column concatenation [A | B], so
d²_joint = d²_A + d²_B. With ID the TwoNN estimate (twonn.py):

    IDCor(A, B) = (ID(A) + ID(B) - ID([A | B])) / max(ID(A), ID(B))

1 when B is a function of A of no larger dimension, about 0 when unrelated (it can be slightly negative through
estimator noise). Significance: the rows of B are permuted P times (seeded) and
p = (#{p : ID([A | B_p]) <= ID([A | B])} + 1) / (P + 1), so the smallest attainable p is 1/(P + 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import as_pair
from .neighbours import Backend
from .preprocess import zscore_columns
from .twonn import twonn_details


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


def idcor_details(
    A: np.ndarray,
    B: np.ndarray,
    permutations: int = 100,
    seed: int = 0,
    *,
    discard_fraction: float = 0.1,
    backend: Backend = "numpy",
    device: str = "cpu",
) -> IDCorResult:
    """IDCor with the IDs and the permutation null; see the module docstring."""
    A, B = as_pair(A, B)
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < 0:
        raise ValueError(f"permutations must be a non-negative integer, got {permutations!r}")
    za, zb = zscore_columns(A), zscore_columns(B)
    kw = {"discard_fraction": discard_fraction, "backend": backend, "device": device}
    id_a = twonn_details(za, name="A", **kw).dimension
    id_b = twonn_details(zb, name="B", **kw).dimension
    id_joint = twonn_details(np.hstack([za, zb]), name="[A|B]", **kw).dimension
    value = (id_a + id_b - id_joint) / max(id_a, id_b)
    rng = np.random.default_rng(seed)
    null_ids = []
    for _ in range(int(permutations)):
        perm = rng.permutation(A.shape[0])
        null_ids.append(twonn_details(np.hstack([za, zb[perm]]), name="[A|B perm]", **kw).dimension)
    p_value = None
    if permutations:
        p_value = (sum(v <= id_joint for v in null_ids) + 1) / (permutations + 1)
    return IDCorResult(float(value), p_value, id_a, id_b, id_joint, int(permutations), int(seed), null_ids)


def idcor(A: np.ndarray, B: np.ndarray, permutations: int = 100, seed: int = 0) -> tuple[float, float | None]:
    """(IDCor(A, B), permutation p-value); p-value is None when permutations = 0."""
    res = idcor_details(A, B, permutations, seed)
    return res.value, res.p_value
