"""Trees of models from a similarity matrix: distance 1 - S, S symmetrised by averaging the two orders.

Neighbour joining and UPGMA with Biopython's DistanceTreeConstructor; Newick out with leaves named by model id.
"""

from __future__ import annotations

from io import StringIO

import numpy as np


def trees_from_similarity(names: list[str], S: np.ndarray) -> dict[str, str]:
    """{"nj": newick, "upgma": newick} for the square similarity matrix S (rows/cols in `names` order)."""
    from Bio import Phylo
    from Bio.Phylo.TreeConstruction import DistanceMatrix, DistanceTreeConstructor

    if len(names) < 3:
        raise ValueError(f"a tree needs at least 3 models, got {len(names)}")
    S = np.asarray(S, dtype=float)
    if not np.isfinite(S[~np.eye(len(names), dtype=bool)]).all():
        raise ValueError("similarity matrix has missing or non-finite off-diagonal entries")
    D = 1.0 - (S + S.T) / 2.0
    np.fill_diagonal(D, 0.0)
    lower = [[float(D[i, j]) for j in range(i + 1)] for i in range(len(names))]
    dm = DistanceMatrix(list(names), lower)
    out = {}
    for method in ("nj", "upgma"):
        tree = getattr(DistanceTreeConstructor(), method)(dm)
        buf = StringIO()
        Phylo.write(tree, buf, "newick")
        out[method] = buf.getvalue().strip()
    return out
