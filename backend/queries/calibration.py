"""Raw or null-calibrated pairwise values, with the permutation null, the p-value and the interval of each pair.

A release may carry two optional tables next to `pairwise`: `pairwise_null` (null mean, sd, 95th percentile; the
5th for information imbalance, where lower is more aligned) and `pairwise_calibration` (the calibrated score of
Gröger, Wen and Brbić 2026, its critical value tau, the 99th/1st percentile, the p-value and the permutations P).
Releases written before them have neither: every query here then says so (`has_calibration`, `calibration_note`)
instead of returning zeros.

Calibrated scale: value = `pairwise_calibration.calibrated`. Its interval is the raw interval mapped through the
same transform with tau held fixed (clip((x - tau) / (1 - tau), 0, 1); IDCor max(x - tau, 0); information imbalance
clip((tau - x) / tau, 0, 1), which turns the raw upper bound into the lower one): the transform is monotone, so the
mapped interval holds the calibrated value whenever the raw one holds the raw value (tau's own permutation noise is
not in it).

p-values: (1 + #{null at least as aligned}) / (P + 1) can be no smaller than 1 / (P + 1); at that floor every view
says "p < 1/(P+1)" (`p_value_text`) instead of a number that only reflects P.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from precompute.metrics.resampling import mark_ties
from precompute.release.schema import METRICS

from ..release import Release
from ._common import _dataset, _metric_k, _model

SCALES = ("raw", "calibrated")
# the columns the calibration adds to every long table of pairwise values (matrix cells, CSV)
CALIBRATION_COLUMNS = ["value_raw", "ci_low_raw", "ci_high_raw", "calibrated", "calibrated_ci_low",
                       "calibrated_ci_high", "tau", "alpha", "null_mean", "null_std", "null_q95", "null_q99",
                       "n_permutations", "seed", "p_text", "above_null_q95", "z"]  # fmt: skip


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; use one of {list(SCALES)}")
    return scale


def has_calibration(release: Release, dataset: str | None = None, metric: str | None = None, k=None) -> bool:
    """True when the release holds calibrated scores (for `dataset`, `metric` and `k` when given)."""
    sql, params = "SELECT count(*) FROM pairwise_calibration WHERE TRUE", []
    if dataset is not None:
        sql, params = sql + " AND dataset_id = ?", [*params, _dataset(release, dataset)]
    if metric is not None:
        sql, params = sql + " AND metric = ? AND k IS NOT DISTINCT FROM ?", [*params, metric, k]
    return bool(release.cursor().execute(sql, params).fetchone()[0])


def calibration_note(release: Release, dataset: str | None = None, metric: str | None = None, k=None) -> str | None:
    """None when calibrated scores exist for the selection, else the sentence every view shows instead."""
    if has_calibration(release, dataset, metric, k):
        return None
    if not has_calibration(release):
        return (
            f"This release ({release.release_id}) has no calibration data: no calibrated scores, no critical values "
            "(it predates the `pairwise_calibration` table). Raw values are shown."
        )
    what = " · ".join(str(x) for x in (dataset, metric, None if k is None else f"k = {k}") if x is not None)
    return f"This release has no calibration data for {what}. Raw values are shown."


def p_value_text(p, n_permutations) -> str:
    """The p-value as every view prints it: 'p < 1/(P+1), P = 100' at the floor 1/(P+1), else 'p = 0.0312';
    P = 0 (CKA's exact-moment null, fitted tail, no floor): 'p ≈ 3.1e-12 (moments)'."""
    if p is None or pd.isna(p):
        return "–"
    if n_permutations is not None and not pd.isna(n_permutations):
        P = int(n_permutations)
        if P == 0:
            return f"p ≈ {float(p):.2g} (moments)"
        if float(p) <= 1.0 / (P + 1) * (1 + 1e-9):
            return f"p < 1/(P+1), P = {P}"
    return f"p = {float(p):.3g}"


def calibrate_like(metric: str, x, tau) -> np.ndarray:
    """The calibrated score's transform of a raw value x at critical value tau (see the module docstring)."""
    x, tau = np.asarray(x, dtype=float), np.asarray(tau, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not METRICS[metric].higher_is_aligned:
            return np.clip((tau - x) / np.maximum(tau, 1e-12), 0.0, 1.0)
        if metric == "idcor":  # no attainable maximum: the unnormalised effect size
            return np.maximum(x - tau, 0.0)
        return np.clip((x - tau) / np.maximum(1.0 - tau, 1e-12), 0.0, 1.0)


_ON = ("{t}.dataset_id = p.dataset_id AND {t}.metric = p.metric AND {t}.k IS NOT DISTINCT FROM p.k AND "
       "{t}.model_a = p.model_a AND {t}.model_b = p.model_b")  # fmt: skip
_JOINED = (
    "p.model_a, p.model_b, p.value, p.ci_low, p.ci_high, coalesce(c.p_value, p.p_value) AS p_value, p.n, p.k, "
    "z.null_mean, z.null_std, z.null_q95, c.null_q99, c.calibrated, c.tau, c.alpha, "
    "coalesce(c.n_permutations, z.n_permutations) AS n_permutations, coalesce(c.seed, z.seed) AS seed "
    f"FROM pairwise p LEFT JOIN pairwise_null z ON {_ON.format(t='z')} "
    f"LEFT JOIN pairwise_calibration c ON {_ON.format(t='c')} "
)


def pair_rows(release: Release, dataset: str, metric: str, k: int | None) -> pd.DataFrame:
    """Stored rows of (dataset, metric, k) with their null and calibration (NaN where a table has no row)."""
    return release.query(
        f"SELECT {_JOINED} WHERE p.dataset_id = ? AND p.metric = ? AND p.k IS NOT DISTINCT FROM ?",
        [dataset, metric, k],
    )


def pair_rows_of(release: Release, model_a: str, model_b: str) -> pd.DataFrame:
    """Every stored row of the pair in either orientation (a -> b and b -> a), on every dataset, metric and k, with
    its null and calibration; columns dataset_id, metric, then those of `pair_rows`."""
    return release.query(
        f"SELECT p.dataset_id, p.metric, {_JOINED} WHERE (p.model_a = ? AND p.model_b = ?) OR "
        "(p.model_a = ? AND p.model_b = ?) ORDER BY p.dataset_id, p.metric, p.k",
        [model_a, model_b, model_b, model_a],
    )


def add_scale(cells: pd.DataFrame, metric: str, scale: str) -> pd.DataFrame:
    """Derived columns of a long table from `pair_rows` (value_raw, calibrated interval, p_text, above_null_q95,
    z = (raw - null mean) / null sd, scale) and `value` / `ci_low` / `ci_high` on the chosen scale."""
    check_scale(scale)
    out = cells.copy()
    higher = METRICS[metric].higher_is_aligned
    out["value_raw"], out["ci_low_raw"], out["ci_high_raw"] = out["value"], out["ci_low"], out["ci_high"]
    a = calibrate_like(metric, pd.to_numeric(out["ci_low"], errors="coerce"), out["tau"])
    b = calibrate_like(metric, pd.to_numeric(out["ci_high"], errors="coerce"), out["tau"])
    out["calibrated_ci_low"], out["calibrated_ci_high"] = (a, b) if higher else (b, a)
    q95 = pd.to_numeric(out["null_q95"], errors="coerce").to_numpy(float)
    raw = out["value"].to_numpy(float)
    above = raw > q95 if higher else raw < q95
    out["above_null_q95"] = pd.array([None if np.isnan(t) else bool(v) for t, v in zip(q95, above, strict=True)],
                                     dtype="boolean")  # fmt: skip
    out["p_text"] = [p_value_text(p, n) for p, n in zip(out["p_value"], out["n_permutations"], strict=True)]
    sd = pd.to_numeric(out["null_std"], errors="coerce")
    out["z"] = (raw - pd.to_numeric(out["null_mean"], errors="coerce")) / sd.where(sd > 0)
    if scale == "calibrated":
        out["value"] = out["calibrated"].astype(float)
        out["ci_low"], out["ci_high"] = out["calibrated_ci_low"], out["calibrated_ci_high"]
    out["scale"] = scale
    return out


def ranked_partners(
    release: Release,
    dataset: str,
    metric: str,
    model: str,
    k: int | None = None,
    scale: str = "raw",
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every partner of `model`, most aligned first, with tie groups: `tie_group` 0 is the nearest model and every
    partner whose interval overlaps its interval (`precompute.metrics.resampling.mark_ties`); without intervals
    only exactly equal values tie. Values are model -> partner (the stored orientation; a mirror_fill metric's
    single stored orientation is used both ways). Columns: other_model, value, ci_low, ci_high, p_text,
    above_null_q95, rank, tie_group, tied_with_nearest, scale."""
    from .matrix import matrix

    _model(release, model)
    _, k = _metric_k(release, dataset, metric, k)
    res = matrix(release, dataset, metric, k, models=models, scale=scale)
    c = res.cells[(res.cells["model_a"] == model) & (res.cells["model_b"] != model)].dropna(subset=["value"])
    cols = ["other_model", "value", "ci_low", "ci_high", "p_text", "above_null_q95", "rank", "tie_group",
            "tied_with_nearest", "scale"]  # fmt: skip
    if c.empty:
        return pd.DataFrame(columns=cols)
    higher = scale == "calibrated" or METRICS[metric].higher_is_aligned  # calibrated: higher = more aligned, always
    c = c.sort_values("value", ascending=not higher, kind="stable").reset_index(drop=True)
    groups = mark_ties(c["value"].to_numpy(float), c["ci_low"].tolist(), c["ci_high"].tolist(),
                       higher_is_better=higher)  # fmt: skip
    out = c.rename(columns={"model_b": "other_model"}).assign(
        rank=np.arange(1, len(c) + 1), tie_group=groups, tied_with_nearest=groups == 0
    )
    return out[cols]


def null_vs_width(release: Release, dataset: str, metric: str, k: int | None = None) -> pd.DataFrame:
    """The width check (issue 16.6): every stored null of (dataset, metric, k) with the two models' embedding
    dimensions. Columns: model_a, model_b, dim_a, dim_b, dim_min, dim_max, log_dim_product (natural log of
    dim_a * dim_b), null_mean, null_q95, value (raw), n_permutations. Empty when the release has no null here."""
    _dataset(release, dataset)
    metric, k = _metric_k(release, dataset, metric, k)
    df = release.query(
        "SELECT z.model_a, z.model_b, ma.embedding_dim AS dim_a, mb.embedding_dim AS dim_b, z.null_mean, z.null_q95, "
        "p.value, z.n_permutations FROM pairwise_null z "
        "JOIN models ma ON ma.model_id = z.model_a JOIN models mb ON mb.model_id = z.model_b "
        "LEFT JOIN pairwise p ON p.dataset_id = z.dataset_id AND p.metric = z.metric AND p.k IS NOT DISTINCT FROM z.k "
        "AND p.model_a = z.model_a AND p.model_b = z.model_b "
        "WHERE z.dataset_id = ? AND z.metric = ? AND z.k IS NOT DISTINCT FROM ? ORDER BY z.model_a, z.model_b",
        [dataset, metric, k],
    )
    da, db = df["dim_a"].astype(float), df["dim_b"].astype(float)
    df.insert(4, "dim_min", np.minimum(da, db))
    df.insert(5, "dim_max", np.maximum(da, db))
    df.insert(6, "log_dim_product", np.log(da * db))
    return df


def width_check(release: Release, dataset: str) -> pd.DataFrame:
    """Does width inflate the null on this dataset? Per (metric, k) with a stored null: pairs, the null mean's range,
    Spearman rho of the null mean against log(dim_a * dim_b) and against min(dim_a, dim_b) (with p-values; NaN for
    fewer than 3 pairs or constant widths), and rho of the raw value against log(dim_a * dim_b). For information
    imbalance a width effect shows as a negative rho (lower = more aligned)."""
    from scipy.stats import spearmanr

    combos = release.query(
        "SELECT DISTINCT metric, k FROM pairwise_null WHERE dataset_id = ? ORDER BY metric, k",
        [_dataset(release, dataset)],
    )
    rows = []
    for metric, k in combos.itertuples(index=False):
        kk = None if pd.isna(k) else int(k)
        d = null_vs_width(release, dataset, metric, kk)
        rec = {"metric": metric, "k": kk, "pairs": len(d), "null_mean_min": d["null_mean"].min(),
               "null_mean_max": d["null_mean"].max(), "dim_min": d["dim_min"].min(), "dim_max": d["dim_max"].max()}  # fmt: skip
        for name, x, y in (("rho_null_logdim", "log_dim_product", "null_mean"), ("rho_null_mindim", "dim_min",
                           "null_mean"), ("rho_value_logdim", "log_dim_product", "value")):  # fmt: skip
            ok = d[[x, y]].dropna()
            if len(ok) >= 3 and ok[x].nunique() > 1 and ok[y].nunique() > 1:
                res = spearmanr(ok[x], ok[y])
                rec[name], rec[name.replace("rho", "p")] = float(res.statistic), float(res.pvalue)
            else:
                rec[name], rec[name.replace("rho", "p")] = np.nan, np.nan
        rows.append(rec)
    cols = ["metric", "k", "pairs", "null_mean_min", "null_mean_max", "dim_min", "dim_max", "rho_null_logdim",
            "p_null_logdim", "rho_null_mindim", "p_null_mindim", "rho_value_logdim", "p_value_logdim"]  # fmt: skip
    out = pd.DataFrame(rows, columns=cols)
    out["k"] = pd.array(out["k"].tolist(), dtype="Int64")
    return out
