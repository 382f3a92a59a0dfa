"""Typed queries over a release: everything the dashboard shows, as pandas DataFrames.

Rules every function follows:
- Pure function of (release, arguments): no hidden state, so results may be cached on `release.cache_key` + args.
- Parameterised SQL only: user values are bound as parameters, never formatted into SQL; the only identifiers in
  SQL are fixed table names.
- Every name is checked first: an unknown model, dataset, metric, family, modality, training set, source,
  estimator, method or k raises `ValueError` naming it (never an empty result). A known model that has no value on
  the chosen dataset is simply absent (e.g. a protein model on QM9): model filters from the dashboard are sets of
  known ids.
- Model filters: `models=None` means all models; otherwise a list of model ids (e.g. from `list_models(...)`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from precompute.release.schema import METRICS, TABLES

from .release import Release

PAIR_CLASSES = ("both_id", "mixed", "both_ood")
ORDERS = ("family", "cluster", "given")
LINKAGE_METHODS = ("average", "complete", "single", "weighted")

_MODEL_COLS = [c.name for c in TABLES["models"].columns]
_DATASET_COLS = [c.name for c in TABLES["datasets"].columns]
_LIST_COLS = ("training_sets", "in_distribution_for", "modalities", "sources", "metrics", "k_values")


# ----------------------------------------------------------------------------------------------------------------
# helpers: vocabularies and argument checks
# ----------------------------------------------------------------------------------------------------------------
def _fix_lists(df: pd.DataFrame) -> pd.DataFrame:
    for c in _LIST_COLS:
        if c in df.columns:
            df[c] = [list(v) if v is not None and not (isinstance(v, float) and np.isnan(v)) else [] for v in df[c]]
    return df


def _vocab(release: Release, name: str) -> tuple:
    cache = release._vocab_cache
    if name not in cache:
        q = {
            "model": "SELECT DISTINCT model_id FROM models",
            "dataset": "SELECT DISTINCT dataset_id FROM datasets",
            "family": "SELECT DISTINCT family FROM models",
            "modality": "SELECT DISTINCT modality FROM models",
            "source": "SELECT DISTINCT source FROM models",
            "training_set": "SELECT DISTINCT unnest(training_sets) FROM models",
            "domain": "SELECT DISTINCT domain FROM datasets",
            "origin": "SELECT DISTINCT origin FROM datasets",
            "estimator": "SELECT DISTINCT estimator FROM intrinsic_dim",
        }[name]
        cache[name] = tuple(sorted(v for (v,) in release.cursor().execute(q).fetchall() if v is not None))
    return cache[name]


def _names(value: str | Iterable[str] | None, what: str) -> list[str] | None:
    """None -> None; a string -> [it]; an iterable of strings -> list. Anything else is a ValueError."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    try:
        out = list(value)
    except TypeError:
        raise ValueError(f"{what}: expected a string or a list of strings, got {value!r}") from None
    for v in out:
        if not isinstance(v, str):
            raise ValueError(f"{what}: expected strings, got {v!r}")
    return out


def _check_in(release: Release, what: str, values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    known = _vocab(release, what)
    for v in values:
        if v not in known:
            raise ValueError(f"unknown {what} {v!r}; known: {list(known)}")
    return values


def _model(release: Release, model_id: str) -> str:
    if not isinstance(model_id, str):
        raise ValueError(f"model id must be a string, got {model_id!r}")
    _check_in(release, "model", [model_id])
    return model_id


def _dataset(release: Release, dataset: str) -> str:
    if not isinstance(dataset, str):
        raise ValueError(f"dataset id must be a string, got {dataset!r}")
    _check_in(release, "dataset", [dataset])
    return dataset


def _models_arg(release: Release, models: Iterable[str] | None) -> list[str] | None:
    return _check_in(release, "model", _names(models, "models"))


def _metric_k(release: Release, dataset: str, metric: str, k: int | None) -> tuple[str, int | None]:
    """Check metric (known and computed on dataset) and k (available for it); default k = smallest available."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    ks = k_values(release, dataset, metric)
    if METRICS[metric].has_k:
        if k is None:
            return metric, ks[0]
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise ValueError(f"k must be an integer, got {k!r}")
        if int(k) not in ks:
            raise ValueError(f"unknown k {k!r} for metric {metric!r} on dataset {dataset!r}; available: {ks}")
        return metric, int(k)
    if k is not None:
        raise ValueError(f"metric {metric!r} has no k (got k={k!r})")
    return metric, None


def _meta_maps(release: Release) -> tuple[dict[str, str], dict[str, str]]:
    """model_id -> display_name and model_id -> family (cached on the immutable release)."""
    if "_meta_maps" not in release._vocab_cache:
        df = release.query("SELECT model_id, display_name, family FROM models")
        release._vocab_cache["_meta_maps"] = (
            dict(zip(df["model_id"], df["display_name"], strict=True)),
            dict(zip(df["model_id"], df["family"], strict=True)),
        )
    return release._vocab_cache["_meta_maps"]


def _model_meta(release: Release) -> pd.DataFrame:
    df = release.query("SELECT model_id, display_name, family, source, modality, training_sets FROM models")
    return _fix_lists(df).set_index("model_id")


# ----------------------------------------------------------------------------------------------------------------
# models, datasets, families, metrics
# ----------------------------------------------------------------------------------------------------------------
def list_models(
    release: Release,
    family: str | Sequence[str] | None = None,
    modality: str | Sequence[str] | None = None,
    training_set: str | Sequence[str] | None = None,
    source: str | Sequence[str] | None = None,
    dataset: str | None = None,
) -> pd.DataFrame:
    """Models passing every given filter (each filter: one value or a list, OR within a filter, AND across filters).

    training_set keeps models trained on any of the given tags. dataset keeps models with any result (pairwise,
    intrinsic dimension or energy) on that dataset.
    Columns: every `models` column (model_id, display_name, family, architecture, modality, input_kind,
    training_sets, equivariance, force_head, params, embedding_dim, layer, pooling, source, checkpoint, citation,
    license, card_hash; see docs/RELEASE_FORMAT.md) plus `in_distribution` (bool: training_sets intersect the dataset's in_distribution_for; null without dataset).
    Sorted by family, display_name, model_id.
    """
    where, params = [], []
    for col, what, val in (
        ("family", "family", family),
        ("modality", "modality", modality),
        ("source", "source", source),
    ):
        vals = _check_in(release, what, _names(val, what))
        if vals is not None:
            where.append(f"list_contains(?, m.{col})")  # col from the fixed tuple above
            params.append(vals)
    ts = _check_in(release, "training_set", _names(training_set, "training_set"))
    if ts is not None:
        where.append("list_has_any(m.training_sets, ?)")
        params.append(ts)
    if dataset is not None:
        _dataset(release, dataset)
        select_id = "list_has_any(m.training_sets, (SELECT in_distribution_for FROM datasets WHERE dataset_id = ?))"
        where.append(
            "m.model_id IN (SELECT model_a FROM pairwise WHERE dataset_id = ? UNION SELECT model_b FROM pairwise "
            "WHERE dataset_id = ? UNION SELECT model_id FROM intrinsic_dim WHERE dataset_id = ? "
            "UNION SELECT model_id FROM energy WHERE dataset_id = ?)"
        )
        params = [dataset, *params, dataset, dataset, dataset, dataset]
    else:
        select_id = "CAST(NULL AS BOOLEAN)"
    sql = f"SELECT m.*, {select_id} AS in_distribution FROM models m"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY m.family, m.display_name, m.model_id"
    return _fix_lists(release.query(sql, params))


def model_card(release: Release, model_id: str) -> pd.DataFrame:
    """One row: every `models` column of model_id, plus `datasets` (list of dataset ids with results)."""
    _model(release, model_id)
    df = release.query(
        "SELECT m.*, (SELECT list(DISTINCT d ORDER BY d) FROM (SELECT dataset_id AS d FROM pairwise WHERE model_a = ? "
        "OR model_b = ? UNION SELECT dataset_id FROM intrinsic_dim WHERE model_id = ? UNION SELECT dataset_id FROM "
        "energy WHERE model_id = ?)) AS datasets FROM models m WHERE m.model_id = ?",
        [model_id] * 5,
    )
    df = _fix_lists(df)
    df["datasets"] = [list(v) if v is not None else [] for v in df["datasets"]]
    return df


def list_datasets(
    release: Release, domain: str | Sequence[str] | None = None, origin: str | Sequence[str] | None = None
) -> pd.DataFrame:
    """Datasets, optionally filtered by domain (molecules|materials|proteins) and origin (real|generated).

    Columns: every `datasets` column (dataset_id, display_name, domain, n_samples, origin, recipe, license,
    citation, in_distribution_for) plus n_models (models with any result on it) and metrics (list of metric ids).
    """
    where, params = [], []
    for col, val in (("domain", domain), ("origin", origin)):
        vals = _check_in(release, col, _names(val, col))
        if vals is not None:
            where.append(f"list_contains(?, d.{col})")  # col from the fixed tuple above
            params.append(vals)
    sql = (
        "SELECT d.*, "
        "(SELECT count(*) FROM (SELECT model_a AS m FROM pairwise p WHERE p.dataset_id = d.dataset_id UNION "
        "SELECT model_b FROM pairwise p WHERE p.dataset_id = d.dataset_id UNION SELECT model_id FROM intrinsic_dim i "
        "WHERE i.dataset_id = d.dataset_id UNION SELECT model_id FROM energy e WHERE e.dataset_id = d.dataset_id)) "
        "AS n_models, "
        "(SELECT list(DISTINCT metric ORDER BY metric) FROM pairwise p WHERE p.dataset_id = d.dataset_id) AS metrics "
        "FROM datasets d"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY d.domain, d.dataset_id"
    return _fix_lists(release.query(sql, params))


def dataset_card(release: Release, dataset: str) -> pd.DataFrame:
    """One row of `list_datasets` for dataset."""
    _dataset(release, dataset)
    df = list_datasets(release)
    return df[df["dataset_id"] == dataset].reset_index(drop=True)


def list_families(
    release: Release, modality: str | Sequence[str] | None = None, source: str | Sequence[str] | None = None
) -> pd.DataFrame:
    """Families with columns family, n_models, modalities (list), sources (list); filters as in list_models."""
    models = list_models(release, modality=modality, source=source)
    if models.empty:
        return pd.DataFrame(columns=["family", "n_models", "modalities", "sources"])
    rows = [
        {
            "family": fam,
            "n_models": len(g),
            "modalities": sorted(set(g["modality"])),
            "sources": sorted(set(g["source"])),
        }
        for fam, g in models.groupby("family", sort=True)
    ]
    return pd.DataFrame(rows, columns=["family", "n_models", "modalities", "sources"])


def filter_options(release: Release) -> dict[str, list[str]]:
    """Every valid value of every filter, e.g. to validate URL parameters before calling a query.

    Keys: model, family, modality, training_set, source, dataset, domain, origin, metric (with values in the
    release), estimator, method (tree methods stored), order.
    """
    out = {
        name: list(_vocab(release, name))
        for name in (
            "model",
            "family",
            "modality",
            "training_set",
            "source",
            "dataset",
            "domain",
            "origin",
            "estimator",
        )
    }
    out["metric"] = [m for m in METRICS if m in set(release.query("SELECT DISTINCT metric FROM pairwise")["metric"])]
    out["method"] = sorted(release.query("SELECT DISTINCT method FROM trees")["method"])
    out["order"] = list(ORDERS)
    return out


def metric_definitions(release: Release) -> pd.DataFrame:
    """metric, display_name, has_k, symmetric, mirror_fill, higher_is_aligned, value_min, value_max, description."""
    df = release.query("SELECT * FROM metric_definitions ORDER BY metric")
    if df.empty:  # a release written without the optional table: the code's definitions
        from precompute.release.schema import metric_definitions_table

        df = metric_definitions_table()
    return df


def available_metrics(release: Release, dataset: str | None = None) -> pd.DataFrame:
    """Which (metric, k) exist per dataset.

    Columns: dataset_id, metric, k (nullable Int64), n_pairs (rows), n_models, n (largest sample count),
    has_ci, has_p_value, higher_is_aligned, value_min, value_max. Sorted by dataset, metric, k.
    """
    params: list = []
    where = ""
    if dataset is not None:
        _dataset(release, dataset)
        where = " WHERE dataset_id = ?"
        params = [dataset, dataset]
    sql = (
        "SELECT p.dataset_id, p.metric, p.k, count(*) AS n_pairs, any_value(u.n_models) AS n_models, max(p.n) AS n, "
        "bool_or(p.ci_low IS NOT NULL) AS has_ci, bool_or(p.p_value IS NOT NULL) AS has_p_value FROM pairwise p "
        "JOIN (SELECT dataset_id, metric, k, count(DISTINCT m) AS n_models FROM (SELECT dataset_id, metric, k, "
        f"model_a AS m FROM pairwise{where} UNION ALL SELECT dataset_id, metric, k, model_b FROM pairwise{where}) "
        "GROUP BY ALL) u ON u.dataset_id = p.dataset_id AND u.metric = p.metric AND u.k IS NOT DISTINCT FROM p.k"
    )
    sql += " GROUP BY p.dataset_id, p.metric, p.k ORDER BY p.dataset_id, p.metric, p.k"
    df = release.query(sql, params)
    df["higher_is_aligned"] = [METRICS[m].higher_is_aligned for m in df["metric"]]
    df["value_min"] = [METRICS[m].value_min for m in df["metric"]]
    df["value_max"] = [METRICS[m].value_max for m in df["metric"]]
    return df


def k_values(release: Release, dataset: str, metric: str) -> list[int | None]:
    """Available k for (dataset, metric), ascending; [None] for metrics without k. ValueError if none stored."""
    _dataset(release, dataset)
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    rows = (
        release.cursor()
        .execute("SELECT DISTINCT k FROM pairwise WHERE dataset_id = ? AND metric = ? ORDER BY k", [dataset, metric])
        .fetchall()
    )
    if not rows:
        raise ValueError(f"metric {metric!r} has no values on dataset {dataset!r}")
    return [None if r[0] is None else int(r[0]) for r in rows]


# ----------------------------------------------------------------------------------------------------------------
# matrices
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class MatrixResult:
    """A square (dataset, metric, k) matrix.

    order: model ids in row/column order. matrix: DataFrame (index = columns = order) of values, row = model_a,
    column = model_b (NaN where nothing is stored). cells: long form, one row per ordered pair in the matrix, columns
    model_a, model_b, value, ci_low, ci_high, p_value, n, k, mirrored (value taken from the (b, a) row of a
    mirror_fill metric), display_name_a, display_name_b, family_a, family_b, row, col.
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


def _pair_rows(release: Release, dataset: str, metric: str, k: int | None) -> pd.DataFrame:
    return release.query(
        "SELECT model_a, model_b, value, ci_low, ci_high, p_value, n, k FROM pairwise "
        "WHERE dataset_id = ? AND metric = ? AND k IS NOT DISTINCT FROM ?",
        [dataset, metric, k],
    )


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
) -> MatrixResult:
    """The square matrix of (dataset, metric, k) over models (default all with values), ordered.

    order: "family" (family, display name, id), "cluster" (scipy hierarchical clustering of the symmetrised distance
    1 - value, or value for information imbalance, with optimal leaf ordering; linkage returned for a dendrogram),
    or "given" (the order of `models`). k: None = the smallest available k for metrics with k.
    """
    _dataset(release, dataset)
    metric, k = _metric_k(release, dataset, metric, k)
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; use one of {list(ORDERS)}")
    if linkage_method not in LINKAGE_METHODS:
        raise ValueError(f"unknown linkage method {linkage_method!r}; use one of {list(LINKAGE_METHODS)}")
    wanted = _models_arg(release, models)
    if order == "given" and wanted is None:
        raise ValueError("order='given' needs a list of models")
    cells = _cells(release, dataset, metric, k, wanted)
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
        dist = _distance_matrix(values, METRICS[metric].higher_is_aligned)
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
    return MatrixResult(dataset, metric, k, ids, values, cells, link, dist, missing)


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
) -> MatrixDifference:
    """Side-by-side matrices of one (metric, k) on two datasets (e.g. in- vs out-of-distribution) and b - a.

    Only models with values on both datasets are kept. k None = the smallest k stored on both.
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
    ra = matrix(release, dataset_a, metric, k, order="family", models=models)
    rb = matrix(release, dataset_b, metric, k, order="family", models=models)
    shared = [m for m in ra.order if m in set(rb.order)]
    if order == "given":
        if models is None:
            raise ValueError("order='given' needs a list of models")
        shared = [m for m in dict.fromkeys(models) if m in set(shared)]
        ra = matrix(release, dataset_a, metric, k, order="given", models=shared) if shared else ra
    else:
        ra = matrix(release, dataset_a, metric, k, order=order, models=shared) if shared else ra
    ids = ra.order if shared else []
    rb = matrix(release, dataset_b, metric, k, order="given", models=ids) if ids else rb
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
    release: Release, dataset: str, metric: str, k: int | None = None, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Family x family averages of the (dataset, metric, k) matrix over ordered pairs of distinct models.

    Columns: family_a, family_b, value_mean, value_std (NaN for a single pair), value_min, value_max, n_pairs,
    n_models_a, n_models_b. Every family pair appears; value_mean is NaN where no pair of distinct models exists
    (a one-model family's diagonal block).
    """
    res = matrix(release, dataset, metric, k, order="family", models=models)
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


# ----------------------------------------------------------------------------------------------------------------
# intrinsic dimension, energy
# ----------------------------------------------------------------------------------------------------------------
def intrinsic_dim(
    release: Release,
    dataset: str | None = None,
    estimator: str | None = None,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Intrinsic dimension rows with model metadata.

    Columns: dataset_id, model_id, display_name, family, modality, source, estimator, value, ci_low, ci_high, n,
    n_duplicates. Sorted by dataset, family, display name.
    """
    where, params = [], []
    if dataset is not None:
        where.append("i.dataset_id = ?")
        params.append(_dataset(release, dataset))
    if estimator is not None:
        _check_in(release, "estimator", _names(estimator, "estimator"))
        where.append("i.estimator = ?")
        params.append(estimator)
    ms = _models_arg(release, models)
    if ms is not None:
        where.append("list_contains(?, i.model_id)")
        params.append(ms)
    sql = (
        "SELECT i.dataset_id, i.model_id, m.display_name, m.family, m.modality, m.source, i.estimator, i.value, "
        "i.ci_low, i.ci_high, i.n, i.n_duplicates FROM intrinsic_dim i JOIN models m USING (model_id)"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY i.dataset_id, i.estimator, m.family, m.display_name, i.model_id"
    return release.query(sql, params)


def energy(release: Release, dataset: str | None = None, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Energy MAE rows: dataset_id, model_id, display_name, family, source, mae_per_atom, n_test (by MAE)."""
    where, params = [], []
    if dataset is not None:
        where.append("e.dataset_id = ?")
        params.append(_dataset(release, dataset))
    ms = _models_arg(release, models)
    if ms is not None:
        where.append("list_contains(?, e.model_id)")
        params.append(ms)
    sql = (
        "SELECT e.dataset_id, e.model_id, m.display_name, m.family, m.source, e.mae_per_atom, e.n_test "
        "FROM energy e JOIN models m USING (model_id)"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY e.dataset_id, e.mae_per_atom, e.model_id"
    return release.query(sql, params)


def alignment_vs_mae(
    release: Release,
    dataset: str,
    metric: str = "cknna",
    k: int | None = None,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Each model's energy MAE against its alignment to the best model (lowest MAE on the dataset, over all models).

    Columns: model_id, display_name, family, source, mae_per_atom, n_test, best_model, is_best, alignment (value of
    the pair (model, best): row model_a = model, or the mirrored row for mirror_fill metrics; NaN for the best model
    itself unless a diagonal is stored), ci_low, ci_high, p_value, n, metric, k. Sorted by MAE.
    ValueError if the dataset has no energy values.
    """
    _dataset(release, dataset)
    metric, k = _metric_k(release, dataset, metric, k)
    ms = _models_arg(release, models)
    e = energy(release, dataset)
    if e.empty:
        raise ValueError(f"dataset {dataset!r} has no energy values")
    best = e.sort_values(["mae_per_atom", "model_id"]).iloc[0]["model_id"]
    cells = _cells(release, dataset, metric, k, None)
    to_best = cells[cells["model_b"] == best].set_index("model_a")
    if ms is not None:
        e = e[e["model_id"].isin(ms)]
    out = e.drop(columns=["dataset_id"]).reset_index(drop=True)
    out["best_model"] = best
    out["is_best"] = out["model_id"] == best
    for col in ("value", "ci_low", "ci_high", "p_value", "n"):
        out["alignment" if col == "value" else col] = [
            to_best.at[m, col] if m in to_best.index else np.nan for m in out["model_id"]
        ]
    out["n"] = pd.array([None if pd.isna(v) else int(v) for v in out["n"]], dtype="Int64")
    out["metric"] = metric
    out["k"] = pd.array([k] * len(out), dtype="Int64")
    return out


# ----------------------------------------------------------------------------------------------------------------
# in- vs out-of-distribution
# ----------------------------------------------------------------------------------------------------------------
def _in_dist(release: Release, dataset: str) -> dict[str, bool]:
    rows = release.query(
        "SELECT m.model_id, list_has_any(m.training_sets, d.in_distribution_for) AS id FROM models m, datasets d "
        "WHERE d.dataset_id = ?",
        [dataset],
    )
    return dict(zip(rows["model_id"], rows["id"].astype(bool), strict=True))


def _pair_class(a: bool, b: bool) -> str:
    return "both_id" if a and b else ("both_ood" if not a and not b else "mixed")


def id_ood_pairs(
    release: Release, dataset: str, metric: str, k: int | None = None, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Each pair's value on one dataset with its in/out-of-distribution class.

    A model is in-distribution (ID) on a dataset when its card's training_sets intersect the dataset's
    in_distribution_for. pair_class: both_id | mixed | both_ood. Pairs of distinct models; for mirror_fill metrics
    each unordered pair once (model_a < model_b).
    Columns: model_a, model_b, value, ci_low, ci_high, p_value, n, k, mirrored, a_in_distribution,
    b_in_distribution, pair_class, family_a, family_b.
    """
    res = matrix(release, dataset, metric, k, models=models)
    c = res.cells[res.cells["model_a"] != res.cells["model_b"]]
    if METRICS[res.metric].mirror_fill:
        c = c[c["model_a"] < c["model_b"]]
    idd = _in_dist(release, dataset)
    c = c.assign(
        a_in_distribution=[idd[m] for m in c["model_a"]],
        b_in_distribution=[idd[m] for m in c["model_b"]],
    )
    c["pair_class"] = [_pair_class(a, b) for a, b in zip(c["a_in_distribution"], c["b_in_distribution"], strict=True)]
    cols = ["model_a", "model_b", "value", "ci_low", "ci_high", "p_value", "n", "k", "mirrored"]
    cols += ["a_in_distribution", "b_in_distribution", "pair_class", "family_a", "family_b"]
    return c[cols].reset_index(drop=True)


def id_vs_ood(
    release: Release,
    id_dataset: str,
    ood_dataset: str,
    metric: str = "cknna",
    k: int | None = None,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The same pairs on two datasets (e.g. OMat24 in-distribution vs OMol25 out-of-distribution).

    Columns: model_a, model_b, family_a, family_b, value_id, value_ood, difference (value_ood - value_id), n_id,
    n_ood, pair_class_id, pair_class_ood. Only pairs with a value on both datasets. k must exist on both (default:
    the smallest k common to both).
    """
    _dataset(release, id_dataset)
    _dataset(release, ood_dataset)
    if k is None and isinstance(metric, str) and metric in METRICS and METRICS[metric].has_k:
        common = sorted(set(k_values(release, id_dataset, metric)) & set(k_values(release, ood_dataset, metric)))
        if not common:
            raise ValueError(f"metric {metric!r} has no k common to {id_dataset!r} and {ood_dataset!r}")
        k = common[0]
    a = id_ood_pairs(release, id_dataset, metric, k, models)
    b = id_ood_pairs(release, ood_dataset, metric, k, models)
    m = a.merge(b, on=["model_a", "model_b"], suffixes=("_id", "_ood"))
    out = pd.DataFrame(
        {
            "model_a": m["model_a"],
            "model_b": m["model_b"],
            "family_a": m["family_a_id"],
            "family_b": m["family_b_id"],
            "value_id": m["value_id"],
            "value_ood": m["value_ood"],
            "difference": m["value_ood"] - m["value_id"],
            "n_id": m["n_id"],
            "n_ood": m["n_ood"],
            "pair_class_id": m["pair_class_id"],
            "pair_class_ood": m["pair_class_ood"],
        }
    )
    return out.reset_index(drop=True)


def id_ood_summary(
    release: Release, metric: str = "cknna", k: int | None = None, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per dataset (where metric/k exist) and pair class: dataset_id, pair_class, n_pairs, value_mean, value_median."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    avail = available_metrics(release)
    avail = avail[avail["metric"] == metric]
    if k is not None:
        if METRICS[metric].has_k and int(k) not in set(avail["k"].dropna().astype(int)):
            raise ValueError(f"unknown k {k!r} for metric {metric!r}; available: {sorted(set(avail['k'].dropna()))}")
        avail = avail[avail["k"] == k] if METRICS[metric].has_k else avail
    rows = []
    for ds in sorted(set(avail["dataset_id"])):
        ks = k_values(release, ds, metric)
        kk = k if k is not None else ks[0]
        p = id_ood_pairs(release, ds, metric, kk, models)
        for cls in PAIR_CLASSES:
            v = p.loc[p["pair_class"] == cls, "value"]
            rows.append(
                {
                    "dataset_id": ds,
                    "k": kk,
                    "pair_class": cls,
                    "n_pairs": len(v),
                    "value_mean": float(v.mean()) if len(v) else np.nan,
                    "value_median": float(v.median()) if len(v) else np.nan,
                }
            )
    out = pd.DataFrame(rows, columns=["dataset_id", "k", "pair_class", "n_pairs", "value_mean", "value_median"])
    out["k"] = pd.array(out["k"].tolist(), dtype="Int64")
    return out


# ----------------------------------------------------------------------------------------------------------------
# local vs global: information imbalance, CKNNA, IDCor
# ----------------------------------------------------------------------------------------------------------------
def _pair_lookup(release: Release, dataset: str, metric: str, k: int | None) -> dict[tuple[str, str], pd.Series]:
    cells = _cells(release, dataset, metric, k, None)
    return {(a, b): row for a, b, (_, row) in zip(cells["model_a"], cells["model_b"], cells.iterrows(), strict=True)}


def information_imbalance_pairs(
    release: Release,
    dataset: str,
    k: int | None = None,
    cknna_k: int | None = None,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Information imbalance in both directions per unordered pair, with the pair's CKNNA and IDCor.

    k: information-imbalance k (default smallest). cknna_k: CKNNA's k (default: k if CKNNA has it, else the smallest
    CKNNA k). Columns: model_a, model_b (model_a < model_b), family_a, family_b, k, delta_ab (A -> B), delta_ba
    (B -> A), cknna, cknna_k, idcor, idcor_p_value, n. cknna/idcor are NaN where not computed.
    """
    _dataset(release, dataset)
    _, k = _metric_k(release, dataset, "info_imbalance", k)
    ms = _models_arg(release, models)
    ii = _cells(release, dataset, "info_imbalance", k, ms)
    fwd = {(a, b): v for a, b, v in zip(ii["model_a"], ii["model_b"], ii["value"], strict=True)}
    nn = {(a, b): v for a, b, v in zip(ii["model_a"], ii["model_b"], ii["n"], strict=True)}
    ck, ck_k = {}, None
    try:
        cks = k_values(release, dataset, "cknna")
    except ValueError:
        cks = []
    if cknna_k is not None:
        _, ck_k = _metric_k(release, dataset, "cknna", cknna_k)
    elif cks:
        ck_k = k if k in cks else cks[0]
    if ck_k is not None:
        c = _cells(release, dataset, "cknna", ck_k, ms)
        ck = {(a, b): v for a, b, v in zip(c["model_a"], c["model_b"], c["value"], strict=True)}
    idc, idp = {}, {}
    try:
        k_values(release, dataset, "idcor")
        c = _cells(release, dataset, "idcor", None, ms)
        idc = {(a, b): v for a, b, v in zip(c["model_a"], c["model_b"], c["value"], strict=True)}
        idp = {(a, b): v for a, b, v in zip(c["model_a"], c["model_b"], c["p_value"], strict=True)}
    except ValueError:
        pass
    _, fam = _meta_maps(release)
    pairs = sorted({tuple(sorted(p)) for p in fwd if p[0] != p[1]})
    rows = []
    for a, b in pairs:
        rows.append(
            {
                "model_a": a,
                "model_b": b,
                "family_a": fam[a],
                "family_b": fam[b],
                "k": k,
                "delta_ab": fwd.get((a, b), np.nan),
                "delta_ba": fwd.get((b, a), np.nan),
                "cknna": ck.get((a, b), np.nan),
                "cknna_k": ck_k,
                "idcor": idc.get((a, b), np.nan),
                "idcor_p_value": idp.get((a, b), np.nan),
                "n": nn.get((a, b), nn.get((b, a))),
            }
        )
    cols = ["model_a", "model_b", "family_a", "family_b", "k", "delta_ab", "delta_ba", "cknna", "cknna_k", "idcor"]
    out = pd.DataFrame(rows, columns=[*cols, "idcor_p_value", "n"])
    for c in ("k", "cknna_k", "n"):
        out[c] = pd.array([None if v is None or pd.isna(v) else int(v) for v in out[c]], dtype="Int64")
    return out


def cknna_vs_idcor(release: Release, dataset: str, models: Sequence[str] | None = None) -> pd.DataFrame:
    """CKNNA at every stored k against IDCor, per unordered pair (model_a < model_b).

    Columns: model_a, model_b, family_a, family_b, k, cknna, idcor, idcor_p_value, n.
    """
    _dataset(release, dataset)
    ms = _models_arg(release, models)
    ks = k_values(release, dataset, "cknna")
    k_values(release, dataset, "idcor")
    ic = _cells(release, dataset, "idcor", None, ms)
    idc = {(a, b): (v, p) for a, b, v, p in zip(ic["model_a"], ic["model_b"], ic["value"], ic["p_value"], strict=True)}
    _, fam = _meta_maps(release)
    rows = []
    for kk in ks:
        c = _cells(release, dataset, "cknna", kk, ms)
        c = c[c["model_a"] < c["model_b"]]
        for a, b, v, n in zip(c["model_a"], c["model_b"], c["value"], c["n"], strict=True):
            iv, ip = idc.get((a, b), (np.nan, np.nan))
            rows.append(
                {
                    "model_a": a,
                    "model_b": b,
                    "family_a": fam[a],
                    "family_b": fam[b],
                    "k": kk,
                    "cknna": v,
                    "idcor": iv,
                    "idcor_p_value": ip,
                    "n": int(n),
                }
            )
    cols = ["model_a", "model_b", "family_a", "family_b", "k", "cknna", "idcor", "idcor_p_value", "n"]
    return pd.DataFrame(rows, columns=cols)


def pairwise_null(
    release: Release, dataset: str, metric: str, k: int | None = None, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Permutation-null baselines joined with the observed value (empty if the release has no pairwise_null).

    Columns: model_a, model_b, value, null_mean, null_std, null_q95, z (= (value - null_mean) / null_std),
    n_permutations, seed, n, k.
    """
    _dataset(release, dataset)
    metric, k = _metric_k(release, dataset, metric, k)
    ms = _models_arg(release, models)
    params: list = [dataset, metric, k]
    sql = (
        "SELECT z.model_a, z.model_b, p.value, z.null_mean, z.null_std, z.null_q95, "
        "CASE WHEN z.null_std > 0 THEN (p.value - z.null_mean) / z.null_std END AS z, z.n_permutations, z.seed, z.n, "
        "z.k FROM pairwise_null z LEFT JOIN pairwise p ON p.dataset_id = z.dataset_id AND p.metric = z.metric AND "
        "p.k IS NOT DISTINCT FROM z.k AND p.model_a = z.model_a AND p.model_b = z.model_b "
        "WHERE z.dataset_id = ? AND z.metric = ? AND z.k IS NOT DISTINCT FROM ?"
    )
    if ms is not None:
        sql += " AND list_contains(?, z.model_a) AND list_contains(?, z.model_b)"
        params += [ms, ms]
    return release.query(sql + " ORDER BY z.model_a, z.model_b", params)


# ----------------------------------------------------------------------------------------------------------------
# trees
# ----------------------------------------------------------------------------------------------------------------
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
) -> str:
    """A Newick tree computed now (Biopython) over the chosen models: distance as in `matrix(order='cluster')`.

    For a filtered subset of models; the stored `tree()` covers all models of the release.
    """
    from io import StringIO

    from Bio import Phylo
    from Bio.Phylo.TreeConstruction import DistanceMatrix, DistanceTreeConstructor

    if method not in ("nj", "upgma"):
        raise ValueError(f"unknown tree method {method!r}; use 'nj' or 'upgma'")
    res = matrix(release, dataset, metric, k, order="family", models=models)
    if len(res.order) < 3:
        raise ValueError(f"a tree needs at least 3 models with values, got {len(res.order)}")
    d = _distance_matrix(res.matrix, METRICS[res.metric].higher_is_aligned).to_numpy()
    lower = [[float(d[i, j]) for j in range(i + 1)] for i in range(len(res.order))]
    dm = DistanceMatrix(list(res.order), lower)
    t = getattr(DistanceTreeConstructor(), method)(dm)
    buf = StringIO()
    Phylo.write(t, buf, "newick")
    return buf.getvalue().strip()


# ----------------------------------------------------------------------------------------------------------------
# one model, two models
# ----------------------------------------------------------------------------------------------------------------
_PROFILE_COLS = ["dataset_id", "metric", "k", "scope", "other_model", "value", "ci_low", "ci_high", "p_value", "n"]


def model_profile(release: Release, model_id: str) -> pd.DataFrame:
    """Every number about one model on every dataset.

    scope "pair": one row per pairwise row where the model is model_a (other_model = model_b; for directional
    metrics, e.g. information imbalance, value = model -> other) plus mirrored rows of mirror_fill metrics where only
    the other orientation is stored. scope "model": intrinsic dimension (metric = "intrinsic_dim:<estimator>") and
    energy (metric = "energy_mae_per_atom", n = n_test), other_model null.
    Columns: dataset_id, metric, k, scope, other_model, value, ci_low, ci_high, p_value, n.
    """
    _model(release, model_id)
    pair = release.query(
        "SELECT dataset_id, metric, k, model_b AS other_model, value, ci_low, ci_high, p_value, n FROM pairwise "
        "WHERE model_a = ?",
        [model_id],
    )
    mirr = release.query(
        "SELECT p.dataset_id, p.metric, p.k, p.model_a AS other_model, p.value, p.ci_low, p.ci_high, p.p_value, p.n "
        "FROM pairwise p WHERE p.model_b = ? AND list_contains(?, p.metric) AND NOT EXISTS (SELECT 1 FROM pairwise q "
        "WHERE q.dataset_id = p.dataset_id AND q.metric = p.metric AND q.k IS NOT DISTINCT FROM p.k AND "
        "q.model_a = p.model_b AND q.model_b = p.model_a)",
        [model_id, [m for m, d in METRICS.items() if d.mirror_fill]],
    )
    ids = release.query(
        "SELECT dataset_id, 'intrinsic_dim:' || estimator AS metric, value, ci_low, ci_high, n FROM intrinsic_dim "
        "WHERE model_id = ?",
        [model_id],
    )
    en = release.query(
        "SELECT dataset_id, 'energy_mae_per_atom' AS metric, mae_per_atom AS value, n_test AS n FROM energy "
        "WHERE model_id = ?",
        [model_id],
    )
    parts = [pair.assign(scope="pair"), mirr.assign(scope="pair"), ids.assign(scope="model"), en.assign(scope="model")]
    out = pd.concat([p.reindex(columns=_PROFILE_COLS) for p in parts if not p.empty], ignore_index=True)
    out = out.reindex(columns=_PROFILE_COLS)
    out["k"] = pd.array([None if pd.isna(v) else int(v) for v in out["k"]], dtype="Int64")
    out["n"] = pd.array([None if pd.isna(v) else int(v) for v in out["n"]], dtype="Int64")
    return out.sort_values(["dataset_id", "scope", "metric", "k", "other_model"], na_position="first").reset_index(
        drop=True
    )


def compare_models(release: Release, model_a: str, model_b: str) -> pd.DataFrame:
    """Two models side by side on every dataset.

    scope "pair": every pairwise metric of the pair: value_ab (row model_a -> model_b), value_ba (the reverse row;
    the same number for mirror_fill metrics when only one orientation is stored), ci_low, ci_high, p_value, n of the
    a -> b row. scope "model": intrinsic dimension per estimator and energy MAE, value_a and value_b.
    Columns: dataset_id, metric, k, scope, value_ab, value_ba, value_a, value_b, ci_low, ci_high, p_value, n.
    """
    _model(release, model_a)
    _model(release, model_b)
    pa_ = model_profile(release, model_a)
    pb_ = model_profile(release, model_b)
    ab = pa_[(pa_["scope"] == "pair") & (pa_["other_model"] == model_b)]
    ba = pb_[(pb_["scope"] == "pair") & (pb_["other_model"] == model_a)]
    key = ["dataset_id", "metric", "k"]
    pair = ab.merge(ba[[*key, "value"]].rename(columns={"value": "value_ba"}), on=key, how="outer")
    pair = pair.rename(columns={"value": "value_ab"}).assign(scope="pair")
    ma = pa_[pa_["scope"] == "model"][[*key, "value"]].rename(columns={"value": "value_a"})
    mb = pb_[pb_["scope"] == "model"][[*key, "value"]].rename(columns={"value": "value_b"})
    per = ma.merge(mb, on=key, how="outer").assign(scope="model")
    cols = ["dataset_id", "metric", "k", "scope", "value_ab", "value_ba", "value_a", "value_b"]
    cols += ["ci_low", "ci_high", "p_value", "n"]
    out = pd.concat([pair.reindex(columns=cols), per.reindex(columns=cols)], ignore_index=True)
    out["k"] = pd.array([None if pd.isna(v) else int(v) for v in out["k"]], dtype="Int64")
    out["n"] = pd.array([None if pd.isna(v) else int(v) for v in out["n"]], dtype="Int64")
    return out.sort_values(["dataset_id", "scope", "metric", "k"], na_position="first").reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# release summary, samples
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class ReleaseSummary:
    """release_id, created (UTC ISO), code_version, settings, n_models, n_datasets; datasets: dataset_id,
    display_name, domain, origin, n_samples, n (largest n of any pairwise value), n_models, metrics;
    model_counts: family, source, n_models."""

    release_id: str
    created: str
    code_version: str
    settings: dict
    n_models: int
    n_datasets: int
    datasets: pd.DataFrame
    model_counts: pd.DataFrame


def model_counts(release: Release) -> pd.DataFrame:
    """Counts of models by family and source: family, source, n_models."""
    return release.query(
        "SELECT family, source, count(*) AS n_models FROM models GROUP BY family, source ORDER BY family, source"
    )


def release_summary(release: Release) -> ReleaseSummary:
    """Id, date, code version, settings, n per dataset and model counts by family and source."""
    ds = list_datasets(release)
    n = release.query("SELECT dataset_id, max(n) AS n FROM pairwise GROUP BY dataset_id")
    ds = ds.merge(n, on="dataset_id", how="left")
    ds["n"] = pd.array([None if pd.isna(v) else int(v) for v in ds["n"]], dtype="Int64")
    ds = ds[["dataset_id", "display_name", "domain", "origin", "n_samples", "n", "n_models", "metrics"]]
    m = release.manifest
    return ReleaseSummary(
        release_id=release.release_id,
        created=release.created,
        code_version=str(m.get("code_version", "")),
        settings=dict(m.get("settings") or {}),
        n_models=len(_vocab(release, "model")),
        n_datasets=len(_vocab(release, "dataset")),
        datasets=ds,
        model_counts=model_counts(release),
    )


_MAX_ROWS = 2**53  # within DuckDB's signed 64-bit LIMIT/OFFSET


def list_samples(release: Release, dataset: str, limit: int = 100, offset: int = 0) -> pd.DataFrame:
    """Analysed samples of a dataset in embedding order (empty if the release has no samples table).

    Columns: dataset_id, position, sample_id, formula, smiles, n_atoms.
    """
    _dataset(release, dataset)
    for name, v in (("limit", limit), ("offset", offset)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 0 <= int(v) <= _MAX_ROWS:
            raise ValueError(f"{name} must be a non-negative integer at most {_MAX_ROWS:,}, got {v!r}")
    return release.query(
        "SELECT * FROM samples WHERE dataset_id = ? ORDER BY position LIMIT ? OFFSET ?",
        [dataset, int(limit), int(offset)],
    )


# ----------------------------------------------------------------------------------------------------------------
# CSV export
# ----------------------------------------------------------------------------------------------------------------
def to_csv(df: pd.DataFrame) -> bytes:
    """UTF-8 CSV bytes of df without the index; list cells are joined with ';'."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object and any(isinstance(v, list | tuple | np.ndarray) for v in out[c]):
            out[c] = [";".join(map(str, v)) if isinstance(v, list | tuple | np.ndarray) else v for v in out[c]]
    return out.to_csv(index=False, lineterminator="\n").encode("utf-8")


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def csv_filename(
    release_id: str,
    dataset: str | None = None,
    metric: str | None = None,
    k: int | None = None,
    kind: str | None = None,
) -> str:
    """`matter-align_<release>[_<kind>][_<dataset>][_<metric>][_k<k>].csv`, every part reduced to [A-Za-z0-9._-]."""
    parts = ["matter-align", release_id, kind, dataset, metric, None if k is None else f"k{int(k)}"]
    clean = [_SAFE.sub("-", str(p)).strip("-.") for p in parts if p not in (None, "")]
    return "_".join(p for p in clean if p) + ".csv"
