"""The summary view: one row per model of a dataset, the numbers a reader starts from.

For model m with the other models p = 1..P of the dataset (values v(m, p) of one metric at one k, symmetrised as
(v(m, p) + v(p, m)) / 2 where both orders exist):

    mean alignment = (1/P) Σ_p v(m, p)
    interval       = the mean of the pairs' own CI bounds where every pair has one (the release's resampling CIs),
                     else mean ± t_{0.975, P-1} · sd_p / sqrt(P), the 95% t-interval over the other models (it says
                     how much m's alignment varies across partners, not sampling error); the `interval_kind` column says which
    nearest model  = argmax_p v(m, p) (argmin for information imbalance); models whose pair interval overlaps the
                     nearest pair's interval are tied with it (only with pair CIs; without them only exact ties)

plus the model's TwoNN intrinsic dimension with its bootstrap CI and its energy MAE (meV/atom) on this dataset.

scale "calibrated": v(m, p) is the pair's null-calibrated score (higher = more aligned for every metric, information
imbalance included) and its interval the pair's CI mapped through the calibration (backend.queries.calibration).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from backend.release import Release
from precompute.release.schema import METRICS

from .energy import energy
from .intrinsic import intrinsic_dim
from .matrix import matrix


def _symmetrised(v: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(v), v.T, np.where(np.isnan(v.T), v, (v + v.T) / 2))


def _pair_ci(res, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    n = len(ids)
    lo, hi = np.full((n, n), np.nan), np.full((n, n), np.nan)
    c = res.cells
    if len(c) and c["ci_low"].notna().any():
        pos = {m: i for i, m in enumerate(ids)}
        r, k = c["model_a"].map(pos).to_numpy(int), c["model_b"].map(pos).to_numpy(int)
        lo[r, k] = c["ci_low"].to_numpy(float)
        hi[r, k] = c["ci_high"].to_numpy(float)
    return _symmetrised(lo), _symmetrised(hi)


def model_summary(
    release: Release,
    dataset: str,
    metric: str = "cknna",
    k: int | None = None,
    models: Sequence[str] | None = None,
    scale: str = "raw",
) -> pd.DataFrame:
    """One row per model with values on (dataset, metric, k); see the module docstring. Sorted by mean alignment,
    most aligned first. scale: "raw" or "calibrated" (ValueError when the release has no calibration here)."""
    res = matrix(release, dataset, metric, k, order="family", models=models, scale=scale)
    ids = list(res.order)
    higher = scale == "calibrated" or METRICS[res.metric].higher_is_aligned
    v = _symmetrised(res.matrix.loc[ids, ids].to_numpy(dtype=float))
    np.fill_diagonal(v, np.nan)
    lo, hi = _pair_ci(res, ids)
    id_df = intrinsic_dim(release, dataset, estimator="twonn").set_index("model_id")
    en = energy(release, dataset).set_index("model_id")
    meta = res.cells.drop_duplicates("model_a").set_index("model_a")
    from .catalogue import list_models

    cat = list_models(release).set_index("model_id")
    rows = []
    for i, m in enumerate(ids):
        vals = v[i][~np.isnan(v[i])]
        p = vals.size
        if p == 0:
            continue
        mean = float(vals.mean())
        have_ci = np.isfinite(lo[i][~np.isnan(v[i])]).all()
        if have_ci:
            kind = "mean of the pairs' CIs"
            ci = (float(np.nanmean(lo[i])), float(np.nanmean(hi[i])))
        elif p >= 2:
            kind = "95% t-interval over the other models"
            half = float(stats.t.ppf(0.975, p - 1) * vals.std(ddof=1) / np.sqrt(p))
            ci = (mean - half, mean + half)
        else:
            kind, ci = "one partner: no interval", (None, None)
        row = v[i].copy()
        best = int(np.nanargmax(row) if higher else np.nanargmin(row))
        if have_ci:
            tied = [ids[j] for j in range(len(ids)) if j != best and not np.isnan(row[j])
                    and lo[i, j] <= hi[i, best] and hi[i, j] >= lo[i, best]]  # fmt: skip
        else:
            tied = [ids[j] for j in range(len(ids)) if j != best and row[j] == row[best]]
        rows.append({
            "model_id": m,
            "display_name": cat.at[m, "display_name"] if m in cat.index else meta.at[m, "display_name_a"],
            "family": cat.at[m, "family"] if m in cat.index else None,
            "modality": cat.at[m, "modality"] if m in cat.index else None,
            "source": cat.at[m, "source"] if m in cat.index else None,
            "mean_alignment": mean,
            "mean_ci_low": ci[0],
            "mean_ci_high": ci[1],
            "interval_kind": kind,
            "n_partners": p,
            "nearest_model": ids[best],
            "nearest_value": float(row[best]),
            "nearest_tied_with": ", ".join(tied) if tied else None,
            "twonn_id": float(id_df.at[m, "value"]) if m in id_df.index else None,
            "twonn_ci_low": float(id_df.at[m, "ci_low"]) if m in id_df.index and pd.notna(id_df.at[m, "ci_low"]) else None,
            "twonn_ci_high": float(id_df.at[m, "ci_high"]) if m in id_df.index and pd.notna(id_df.at[m, "ci_high"]) else None,
            "energy_mae_mev_per_atom": float(1000 * en.at[m, "mae_per_atom"]) if m in en.index else None,
        })  # fmt: skip
    out = pd.DataFrame(rows)
    if len(out):
        out = out.sort_values("mean_alignment", ascending=not higher, kind="stable").reset_index(drop=True)
    if len(out):
        out.insert(out.columns.get_loc("mean_alignment"), "scale", scale)
    out.attrs.update({"dataset_id": dataset, "metric": res.metric, "k": res.k, "scale": scale})
    return out
