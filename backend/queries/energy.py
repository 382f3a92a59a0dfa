"""Energy MAE per (dataset, model) and each model's alignment to the lowest-MAE model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..release import Release
from ._common import _dataset, _metric_k, _models_arg
from .calibration import add_scale, calibration_note, check_scale
from .matrix import _cells


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
    scale: str = "raw",
) -> pd.DataFrame:
    """Each model's energy MAE against its alignment to the best model (lowest MAE on the dataset, over all models).

    Columns: model_id, display_name, family, source, mae_per_atom, n_test, best_model, is_best, alignment (value of
    the pair (model, best): row model_a = model, or the mirrored row for mirror_fill metrics; NaN for the best model
    itself unless a diagonal is stored), ci_low, ci_high, p_value, n, metric, k, and with scale "calibrated" the
    pair's calibrated score and mapped interval in alignment / ci_low / ci_high (raw value in alignment_raw).
    Sorted by MAE. ValueError if the dataset has no energy values (or, calibrated, no calibration data).
    """
    _dataset(release, dataset)
    metric, k = _metric_k(release, dataset, metric, k)
    ms = _models_arg(release, models)
    e = energy(release, dataset)
    if e.empty:
        raise ValueError(f"dataset {dataset!r} has no energy values")
    best = e.sort_values(["mae_per_atom", "model_id"]).iloc[0]["model_id"]
    check_scale(scale)
    if scale == "calibrated" and (note := calibration_note(release, dataset, metric, k)) is not None:
        raise ValueError(note)
    cells = add_scale(_cells(release, dataset, metric, k, None), metric, scale)
    to_best = cells[cells["model_b"] == best].set_index("model_a")
    if ms is not None:
        e = e[e["model_id"].isin(ms)]
    out = e.drop(columns=["dataset_id"]).reset_index(drop=True)
    out["best_model"] = best
    out["is_best"] = out["model_id"] == best
    for col in ("value", "ci_low", "ci_high", "p_value", "n", "value_raw", "p_text"):
        out[{"value": "alignment", "value_raw": "alignment_raw"}.get(col, col)] = [
            to_best.at[m, col] if m in to_best.index else np.nan for m in out["model_id"]
        ]
    out["n"] = pd.array([None if pd.isna(v) else int(v) for v in out["n"]], dtype="Int64")
    out["metric"] = metric
    out["k"] = pd.array([k] * len(out), dtype="Int64")
    out["scale"] = scale
    return out
