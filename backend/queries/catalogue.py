"""What a release holds: models, datasets, families, metrics and their k, filter vocabularies, the release
summary and the analysed samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.release.schema import METRICS

from ..release import Release
from ._common import ORDERS, _check_in, _dataset, _fix_lists, _model, _names, _vocab


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
