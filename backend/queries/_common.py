"""Shared by every query module: vocabularies (cached on the immutable release), argument checks, the k of a
metric, model metadata maps."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from precompute.release.schema import METRICS, TABLES

from ..release import Release

ORDERS = ("family", "cluster", "given")

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
