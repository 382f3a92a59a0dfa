"""The calibration sections of `python -m backend.report`: every metric's permutation null and calibrated scores, and
the width check (issue 16.6: does embedding width inflate the null, as Gröger et al. 2026 report?).

`pairwise_null.null_q95` is the 95th percentile of the null for similarities but the 5th for information imbalance
(lower = more aligned): "beyond the null" is value > q95 for the first and value < q95 for the second
(`beyond_null`). Every line names the percentile it reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import queries as q
from .release import Release


def beyond_null(value, q95, metric: str) -> np.ndarray:
    """True where the raw value is more aligned than the null's 95th (information imbalance: 5th) percentile."""
    v, t = np.asarray(value, dtype=float), np.asarray(q95, dtype=float)
    return v > t if q.METRICS[metric].higher_is_aligned else v < t


def _k(k) -> str:
    return "" if k is None or pd.isna(k) else f" k = {int(k)}"


def null_report(r: Release, dataset: str) -> list[str]:
    """Per (metric, k) with a stored null: pairs, mean null mean, the most extreme critical percentile, pairs beyond
    it, and (where stored) the calibrated scores: how many are above 0, their mean, p at its floor."""
    combos = r.query("SELECT DISTINCT metric, k FROM pairwise_null WHERE dataset_id = ? ORDER BY metric, k", [dataset])
    out = [f"  permutation nulls and calibration on {dataset}"]
    if combos.empty:
        return [out[0] + ": not in this release (no pairwise_null rows)"]
    for metric, k in combos.itertuples(index=False):
        kk = None if pd.isna(k) else int(k)
        res = q.matrix(r, dataset, metric, kk)
        c = res.cells[res.cells["null_mean"].notna() & ~res.cells["mirrored"]]
        higher = q.METRICS[metric].higher_is_aligned
        pct, ext = ("95th", c["null_q95"].max()) if higher else ("5th", c["null_q95"].min())
        beyond = int(beyond_null(c["value"], c["null_q95"], metric).sum())
        line = (f"    {metric}{_k(kk)}: {len(c)} ordered pairs, null mean {c['null_mean'].mean():.4f}, "
                f"{'largest' if higher else 'smallest'} {pct} percentile {ext:.4f}, {beyond} of {len(c)} beyond "
                f"their {pct} percentile")  # fmt: skip
        cal = c[c["calibrated"].notna()]
        if len(cal):
            floor = int(cal["p_text"].str.startswith("p <").sum())
            line += (f"; calibrated: {int((cal['calibrated'] > 0).sum())} of {len(cal)} above 0, mean "
                     f"{cal['calibrated'].mean():.3f}, ")  # fmt: skip
            if int(cal["n_permutations"].max()) == 0:  # CKA's exact-moment null: a fitted tail, no floor
                line += f"p from exact moments (no floor; median {cal['p_value'].median():.2g})"
            else:
                line += f"{floor} at the p floor 1/(P+1) (P = {int(cal['n_permutations'].max())})"
        else:
            line += "; no calibrated scores"
        out.append(line)
    return out


def width_report(r: Release, dataset: str) -> list[str]:
    """The width check as a table: per (metric, k), Spearman rho of the null mean against log(dim_a * dim_b) and
    against min(dim_a, dim_b), and of the raw value against log(dim_a * dim_b)."""
    w = q.width_check(r, dataset)
    head = f"  width check on {dataset}: null mean against the two models' embedding dimensions (Spearman rho, p)"
    if w.empty:
        return [head + ": not in this release (no pairwise_null rows)"]
    out = [head, f"    {'metric':16s} {'k':>4s} {'pairs':>5s} {'null mean range':>19s} {'dims':>11s} "
                 f"{'rho(null, log da*db)':>22s} {'rho(null, min d)':>18s} {'rho(raw, log da*db)':>21s}"]  # fmt: skip

    def rp(rho, p) -> str:
        return "–" if pd.isna(rho) else f"{rho:+.2f} (p {p:.2g})"

    for x in w.itertuples(index=False):
        rng = f"{x.null_mean_min:.4f}..{x.null_mean_max:.4f}"
        dims = f"{int(x.dim_min)}..{int(x.dim_max)}"
        out.append(f"    {x.metric:16s} {'–' if pd.isna(x.k) else int(x.k):>4} {x.pairs:>5d} {rng:>19s} {dims:>11s} "
                   f"{rp(x.rho_null_logdim, x.p_null_logdim):>22s} {rp(x.rho_null_mindim, x.p_null_mindim):>18s} "
                   f"{rp(x.rho_value_logdim, x.p_value_logdim):>21s}")  # fmt: skip
    if (w["metric"] == "info_imbalance").any():
        out.append("    (information imbalance: lower = more aligned, so width inflation shows as a negative rho)")
    return out


def calibration_report(r: Release, dataset: str) -> list[str]:
    return [f"## {dataset}: nulls, calibration, width check", *null_report(r, dataset), *width_report(r, dataset)]
