"""Stored Newick trees and trees computed now over a chosen subset of models."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from precompute.release.schema import METRICS

from ..release import Release
from ._common import _dataset
from .matrix import _distance_matrix, matrix


def list_trees(release: Release, dataset: str | None = None) -> pd.DataFrame:
    """Stored trees: dataset_id, metric, k, method, newick, n_leaves."""
    params, sql = [], "SELECT dataset_id, metric, k, method, newick FROM trees"
    if dataset is not None:
        sql += " WHERE dataset_id = ?"
        params.append(_dataset(release, dataset))
    df = release.query(sql + " ORDER BY dataset_id, metric, k, method", params)
    df["n_leaves"] = [s.count(",") + 1 for s in df["newick"]]
    return df


def tree(release: Release, dataset: str, metric: str = "cknna", k: int | None = None, method: str = "nj") -> str:
    """The stored Newick tree for (dataset, metric, k, method); k None = the smallest stored k. ValueError if absent."""
    _dataset(release, dataset)
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    if method not in ("nj", "upgma"):
        raise ValueError(f"unknown tree method {method!r}; use 'nj' or 'upgma'")
    t = list_trees(release, dataset)
    t = t[(t["metric"] == metric) & (t["method"] == method)]
    if t.empty:
        raise ValueError(f"no {method!r} tree for metric {metric!r} on dataset {dataset!r}")
    if k is None:
        row = t.sort_values("k").iloc[0]
    else:
        hit = t[t["k"] == k]
        if hit.empty:
            raise ValueError(
                f"unknown k {k!r} for {method!r} tree of {metric!r} on {dataset!r}; available: "
                f"{[None if pd.isna(x) else int(x) for x in t['k']]}"
            )
        row = hit.iloc[0]
    return str(row["newick"])


def tree_for_models(
    release: Release,
    dataset: str,
    metric: str = "cknna",
    k: int | None = None,
    method: str = "nj",
    models: Sequence[str] | None = None,
    scale: str = "raw",
) -> str:
    """A Newick tree computed now (Biopython) over the chosen models: distance as in `matrix(order='cluster')`.

    For a filtered subset of models, or on the calibrated scale (distance 1 - symmetrised calibrated score; the
    stored `tree()` covers all models of the release, raw).
    """
    from io import StringIO

    from Bio import Phylo
    from Bio.Phylo.TreeConstruction import DistanceMatrix, DistanceTreeConstructor

    if method not in ("nj", "upgma"):
        raise ValueError(f"unknown tree method {method!r}; use 'nj' or 'upgma'")
    res = matrix(release, dataset, metric, k, order="family", models=models, scale=scale)
    if len(res.order) < 3:
        raise ValueError(f"a tree needs at least 3 models with values, got {len(res.order)}")
    d = _distance_matrix(res.matrix, scale == "calibrated" or METRICS[res.metric].higher_is_aligned).to_numpy()
    lower = [[float(d[i, j]) for j in range(i + 1)] for i in range(len(res.order))]
    dm = DistanceMatrix(list(res.order), lower)
    t = getattr(DistanceTreeConstructor(), method)(dm)
    buf = StringIO()
    Phylo.write(t, buf, "newick")
    return buf.getvalue().strip()
