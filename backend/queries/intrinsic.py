"""Intrinsic dimension per (dataset, model, estimator), with model metadata."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..release import Release
from ._common import _check_in, _dataset, _models_arg, _names


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
