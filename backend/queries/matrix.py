"""Square (dataset, metric, k) matrices: ordering (family, clustering, given), two datasets' difference,
family x family blocks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from precompute.release.schema import METRICS

from ..release import Release
from ._common import ORDERS, _dataset, _meta_maps, _metric_k, _model_meta, _models_arg, k_values
from .calibration import add_scale, calibration_note, check_scale, pair_rows

LINKAGE_METHODS = ("average", "complete", "single", "weighted")


@dataclass
class MatrixResult:
    """A square (dataset, metric, k) matrix.

    order: model ids in row/column order. matrix: DataFrame (index = columns = order) of values, row = model_a,
    column = model_b (NaN where nothing is stored). cells: long form, one row per ordered pair in the matrix, columns
    model_a, model_b, value, ci_low, ci_high (on `scale`), p_value, n, k, mirrored (value taken from the (b, a) row
    of a mirror_fill metric), display_name_a, display_name_b, family_a, family_b, row, col, and the pair's null and
    calibration (`calibration.CALIBRATION_COLUMNS`, NaN where the release has none). scale: "raw" or "calibrated".
    linkage: scipy linkage (order == "cluster") for a dendrogram, else None. distance: the condensed-to-square
    distance used for clustering (None otherwise). missing_models: requested models without values here.
    """

    dataset_id: str
    metric: str
    k: int | None
    order: list[str]
    matrix: pd.DataFrame
    cells: pd.DataFrame
    linkage: np.ndarray | None = None
    distance: pd.DataFrame | None = None
    missing_models: list[str] = field(default_factory=list)
    scale: str = "raw"


def _pair_rows(release: Release, dataset: str, metric: str, k: int | None) -> pd.DataFrame:
    return pair_rows(release, dataset, metric, k)  # with the pair's null and calibration columns (NaN without)


def _cells(release: Release, dataset: str, metric: str, k: int | None, models: list[str] | None) -> pd.DataFrame:
    """Ordered-pair rows including mirrored fills, restricted to models."""
    rows = _pair_rows(release, dataset, metric, k)
    rows["mirrored"] = False
    if METRICS[metric].mirror_fill:
        have = set(zip(rows["model_a"], rows["model_b"], strict=True))
        flip = rows[[(b, a) not in have for a, b in zip(rows["model_a"], rows["model_b"], strict=True)]].copy()
        flip = flip.rename(columns={"model_a": "model_b", "model_b": "model_a"})
        flip["mirrored"] = True
        rows = pd.concat([rows, flip[rows.columns]], ignore_index=True)
    if models is not None:
        keep = set(models)
        rows = rows[rows["model_a"].isin(keep) & rows["model_b"].isin(keep)]
    return rows.reset_index(drop=True)


def _family_order(meta: pd.DataFrame, ids: Iterable[str]) -> list[str]:
    sub = meta.loc[list(ids)].reset_index()
    return sub.sort_values(["family", "display_name", "model_id"])["model_id"].tolist()


def _distance_matrix(values: pd.DataFrame, higher_is_aligned: bool) -> pd.DataFrame:
    """Symmetric distance for clustering: 1 - mean(S_ab, S_ba) for similarities, mean(D_ab, D_ba) otherwise;
    pairs with no value get the largest finite distance; zero diagonal."""
    v = values.to_numpy(dtype=float)
    both = np.where(np.isnan(v), v.T, np.where(np.isnan(v.T), v, (v + v.T) / 2))
    d = 1.0 - both if higher_is_aligned else both.copy()
    finite = d[np.isfinite(d)]
    fill = float(finite.max()) if finite.size else 1.0
    d = np.where(np.isfinite(d), d, fill)
    d = np.clip(d, 0.0, None)
    np.fill_diagonal(d, 0.0)
    return pd.DataFrame(d, index=values.index, columns=values.columns)


def matrix(
    release: Release,
    dataset: str,
    metric: str,
    k: int | None = None,
    order: str = "family",
    models: Sequence[str] | None = None,
    linkage_method: str = "average",
    scale: str = "raw",
) -> MatrixResult:
    """The square matrix of (dataset, metric, k) over models (default all with values), ordered.

    order: "family" (family, display name, id), "cluster" (scipy hierarchical clustering of the symmetrised distance
    1 - value, or value for information imbalance, with optimal leaf ordering; linkage returned for a dendrogram),
    or "given" (the order of `models`). k: None = the smallest available k for metrics with k. scale "calibrated":
    the null-calibrated scores (ValueError when the release has none for this selection; NaN for a pair without).
    """
    _dataset(release, dataset)
    metric, k = _metric_k(release, dataset, metric, k)
    check_scale(scale)
    if scale == "calibrated" and (note := calibration_note(release, dataset, metric, k)) is not None:
        raise ValueError(note)
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; use one of {list(ORDERS)}")
    if linkage_method not in LINKAGE_METHODS:
        raise ValueError(f"unknown linkage method {linkage_method!r}; use one of {list(LINKAGE_METHODS)}")
    wanted = _models_arg(release, models)
    if order == "given" and wanted is None:
        raise ValueError("order='given' needs a list of models")
    cells = add_scale(_cells(release, dataset, metric, k, wanted), metric, scale)
    present = set(cells["model_a"]) | set(cells["model_b"])
    meta = _model_meta(release)
    if wanted is not None:
        missing = [m for m in wanted if m not in present]
        ids = list(dict.fromkeys(m for m in wanted if m in present))
    else:
        missing, ids = [], sorted(present)
    ids = ids if order == "given" else _family_order(meta, ids)
    arr = np.full((len(ids), len(ids)), np.nan)
    p0 = {m: i for i, m in enumerate(ids)}
    arr[cells["model_a"].map(p0).to_numpy(int), cells["model_b"].map(p0).to_numpy(int)] = cells["value"].to_numpy(float)
    values = pd.DataFrame(arr, index=pd.Index(ids, name="model_a"), columns=pd.Index(ids, name="model_b"))
    link, dist = None, None
    if order == "cluster" and len(ids) >= 2:
        dist = _distance_matrix(values, scale == "calibrated" or METRICS[metric].higher_is_aligned)
        link = linkage(squareform(dist.to_numpy(), checks=False), method=linkage_method, optimal_ordering=True)
        ids = [ids[i] for i in leaves_list(link)]
        values = values.loc[ids, ids]
        dist = dist.loc[ids, ids]
    pos = {m: i for i, m in enumerate(ids)}
    names, fams = _meta_maps(release)
    cells = cells.assign(
        display_name_a=cells["model_a"].map(names),
        display_name_b=cells["model_b"].map(names),
        family_a=cells["model_a"].map(fams),
        family_b=cells["model_b"].map(fams),
        row=cells["model_a"].map(pos).astype("int64"),
        col=cells["model_b"].map(pos).astype("int64"),
    )
    cells = cells.sort_values(["row", "col"]).reset_index(drop=True)
    cells["k"] = pd.array([k] * len(cells), dtype="Int64")
    return MatrixResult(dataset, metric, k, ids, values, cells, link, dist, missing, scale)


def matrix_table(result: MatrixResult) -> pd.DataFrame:
    """The long table behind a matrix figure, for CSV export: dataset_id, metric, k and the cells' columns."""
    out = result.cells.drop(columns=["row", "col"]).copy()
    out.insert(0, "dataset_id", result.dataset_id)
    out.insert(1, "metric", result.metric)
    return out


@dataclass
class MatrixDifference:
    """Two datasets' matrices on the models both have, in one order, and their difference (b - a).

    order: shared model order (family or clustering of dataset_a's matrix); a, b: the two MatrixResults restricted
    to that order; difference: DataFrame b.matrix - a.matrix (index = columns = order); cells: long form with
    model_a, model_b, value_a, value_b, difference.
    """

    dataset_a: str
    dataset_b: str
    metric: str
    k: int | None
    order: list[str]
    a: MatrixResult
    b: MatrixResult
    difference: pd.DataFrame
    cells: pd.DataFrame


def matrix_difference(
    release: Release,
    dataset_a: str,
    dataset_b: str,
    metric: str,
    k: int | None = None,
    order: str = "family",
    models: Sequence[str] | None = None,
    scale: str = "raw",
) -> MatrixDifference:
    """Side-by-side matrices of one (metric, k) on two datasets (e.g. in- vs out-of-distribution) and b - a.

    Only models with values on both datasets are kept. k None = the smallest k stored on both. scale as in matrix
    (both datasets need calibration data for "calibrated").
    """
    _dataset(release, dataset_a)
    _dataset(release, dataset_b)
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    if k is None and METRICS[metric].has_k:
        common = sorted(set(k_values(release, dataset_a, metric)) & set(k_values(release, dataset_b, metric)))
        if not common:
            raise ValueError(f"metric {metric!r} has no k common to {dataset_a!r} and {dataset_b!r}")
        k = common[0]
    ra = matrix(release, dataset_a, metric, k, order="family", models=models, scale=scale)
    rb = matrix(release, dataset_b, metric, k, order="family", models=models, scale=scale)
    shared = [m for m in ra.order if m in set(rb.order)]
    if order == "given":
        if models is None:
            raise ValueError("order='given' needs a list of models")
        shared = [m for m in dict.fromkeys(models) if m in set(shared)]
        ra = matrix(release, dataset_a, metric, k, order="given", models=shared, scale=scale) if shared else ra
    else:
        ra = matrix(release, dataset_a, metric, k, order=order, models=shared, scale=scale) if shared else ra
    ids = ra.order if shared else []
    rb = matrix(release, dataset_b, metric, k, order="given", models=ids, scale=scale) if ids else rb
    va, vb = ra.matrix.loc[ids, ids].to_numpy(float), rb.matrix.loc[ids, ids].to_numpy(float)
    diff = pd.DataFrame(vb - va, index=pd.Index(ids, name="model_a"), columns=pd.Index(ids, name="model_b"))
    m = len(ids)
    cells = pd.DataFrame(
        {
            "model_a": np.repeat(np.asarray(ids, dtype=object), m),
            "model_b": np.tile(np.asarray(ids, dtype=object), m),
            "value_a": va.ravel(),
            "value_b": vb.ravel(),
            "difference": (vb - va).ravel(),
        },
        columns=["model_a", "model_b", "value_a", "value_b", "difference"],
    )
    return MatrixDifference(dataset_a, dataset_b, metric, ra.k, ids, ra, rb, diff, cells)


def family_block_matrix(
    release: Release,
    dataset: str,
    metric: str,
    k: int | None = None,
    models: Sequence[str] | None = None,
    scale: str = "raw",
) -> pd.DataFrame:
    """Family x family averages of the (dataset, metric, k) matrix over ordered pairs of distinct models.

    Columns: family_a, family_b, value_mean, value_std (NaN for a single pair), value_min, value_max, n_pairs,
    n_models_a, n_models_b. Every family pair appears; value_mean is NaN where no pair of distinct models exists
    (a one-model family's diagonal block).
    """
    res = matrix(release, dataset, metric, k, order="family", models=models, scale=scale)
    cells = res.cells[res.cells["model_a"] != res.cells["model_b"]]
    meta = _model_meta(release).loc[res.order]
    fams = list(dict.fromkeys(meta["family"]))
    sizes = meta.groupby("family").size()
    g = cells.groupby(["family_a", "family_b"])["value"]
    stats = pd.DataFrame(
        {"value_mean": g.mean(), "value_std": g.std(), "value_min": g.min(), "value_max": g.max(), "n_pairs": g.size()}
    )
    rows = []
    for fa in fams:
        for fb in fams:
            s = stats.loc[(fa, fb)] if (fa, fb) in stats.index else None
            rows.append(
                {
                    "family_a": fa,
                    "family_b": fb,
                    "value_mean": float(s["value_mean"]) if s is not None else np.nan,
                    "value_std": float(s["value_std"]) if s is not None else np.nan,
                    "value_min": float(s["value_min"]) if s is not None else np.nan,
                    "value_max": float(s["value_max"]) if s is not None else np.nan,
                    "n_pairs": int(s["n_pairs"]) if s is not None else 0,
                    "n_models_a": int(sizes[fa]),
                    "n_models_b": int(sizes[fb]),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "family_a",
            "family_b",
            "value_mean",
            "value_std",
            "value_min",
            "value_max",
            "n_pairs",
            "n_models_a",
            "n_models_b",
        ],
    )
