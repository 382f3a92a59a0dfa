"""The claims sections of `python -m backend.report`: what docs/FINDINGS.md states, each number raw and calibrated
with its 95 % interval (issue 18.3).

Pairs are unordered: CKNNA's two orders (and information imbalance's two directions) are averaged, and so are their
interval bounds ("mean of the two orders' CIs"). A group's mean over its pairs carries the mean of the pairs'
interval bounds: the interval of the group mean if the pairs' sampling errors were perfectly correlated, and wider
than it otherwise (the pairs share the seeded half-samples, so they are strongly correlated; the release keeps only
the bounds, not the per-subset values). "Resolved above the null" counts pairs whose calibrated interval lies above 0,
i.e. whose raw interval clears the null's critical value (Gröger et al.'s τ). Spearman intervals use the Fisher z
transform with Fieller, Hartley and Pearson's (1957) standard error sqrt(1.06 / (n - 3)).
"""

from __future__ import annotations

from itertools import combinations_with_replacement

import numpy as np
import pandas as pd
from scipy import stats

from . import queries as q
from .release import Release

_COLS = ["value_raw", "ci_low_raw", "ci_high_raw", "calibrated", "calibrated_ci_low", "calibrated_ci_high"]


def _training(sets) -> str:
    sets = list(sets) if sets is not None and len(sets) else []
    return "+".join(sorted(sets)) if sets else "none"


def pair_table(r: Release, dataset: str, metric: str = "cknna", k: int | None = 10) -> pd.DataFrame:
    """One row per unordered pair (a < b): the two orders' mean of raw value, raw CI, calibrated value and calibrated
    CI; the larger null critical value (q95; for information imbalance the smaller 5th percentile); and each model's
    family, modality, training data and source."""
    res = q.matrix(r, dataset, metric, k, order="family")
    c = res.cells[(res.cells["model_a"] != res.cells["model_b"]) & ~res.cells["mirrored"].astype(bool)].copy()
    c["a"] = np.minimum(c["model_a"], c["model_b"])
    c["b"] = np.maximum(c["model_a"], c["model_b"])
    for col in _COLS + ["null_q95"]:
        c[col] = pd.to_numeric(c[col], errors="coerce")
    higher = q.METRICS[res.metric].higher_is_aligned
    g = c.groupby(["a", "b"], sort=True)
    out = g[_COLS].mean()
    out["null_q95"] = g["null_q95"].max() if higher else g["null_q95"].min()
    out["orders"] = g.size()
    out = out.reset_index()
    meta = q.list_models(r).set_index("model_id")
    for side in ("a", "b"):
        ids = out[side]
        out[f"family_{side}"] = ids.map(meta["family"])
        out[f"modality_{side}"] = ids.map(meta["modality"])
        out[f"source_{side}"] = ids.map(meta["source"])
        out[f"training_{side}"] = ids.map(meta["training_sets"].map(_training))
    out["relation"] = np.where(out.family_a == out.family_b, "same family",
                               np.where(out.modality_a == out.modality_b, "same modality", "cross modality"))  # fmt: skip
    out["resolved"] = out["calibrated_ci_low"] > 0
    return out


def _fmt(x: float, nd: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _ci(lo: float, hi: float) -> str:
    """' [lo, hi]', or ' (no CI)' where the release has none."""
    return " (no CI)" if lo is None or not (np.isfinite(lo) and np.isfinite(hi)) else f" [{_fmt(lo)}, {_fmt(hi)}]"


def _stat(g: pd.DataFrame) -> str:
    """'raw m [lo, hi]; calibrated m [lo, hi]; range a..b; R of P resolved above the null' for a group of pairs."""
    raw = f"raw {_fmt(g.value_raw.mean())}{_ci(g.ci_low_raw.mean(), g.ci_high_raw.mean())}"
    if g.calibrated.notna().any():
        cal = (f"calibrated {_fmt(g.calibrated.mean())}{_ci(g.calibrated_ci_low.mean(), g.calibrated_ci_high.mean())}, range {_fmt(g.calibrated.min())}..{_fmt(g.calibrated.max())}, "
               f"{int(g.resolved.sum())} of {len(g)} resolved above the null")  # fmt: skip
    else:
        cal = "not calibrated in this release"
    return f"{raw}; {cal} ({len(g)} pairs)"


def group_report(r: Release, dataset: str, by: str, metric: str = "cknna", k: int | None = 10) -> list[str]:
    """Per unordered pair of groups (by = modality, family, training, source or relation): the pairs' means."""
    pt = pair_table(r, dataset, metric, k)
    head = f"  {metric}{'' if k is None else f' k = {k}'} by {by} on {dataset}"
    if pt.empty:
        return [head + ": no pairs"]
    out = [head]
    if by == "relation":
        for rel in ("same family", "same modality", "cross modality"):
            g = pt[pt.relation == rel]
            if len(g):
                out.append(f"    {rel}: {_stat(g)}")
        return out
    ga, gb = pt[f"{by}_a"].astype(str), pt[f"{by}_b"].astype(str)
    lo, hi = np.minimum(ga, gb), np.maximum(ga, gb)
    for x, y in combinations_with_replacement(sorted(set(ga) | set(gb)), 2):
        g = pt[(lo == x) & (hi == y)]
        if len(g):
            out.append(f"    {x} ~ {y}: {_stat(g)}")
    return out


def pair_line(row) -> str:
    cal = ("" if not np.isfinite(row.calibrated) else
           f" / calibrated {_fmt(row.calibrated)}{_ci(row.calibrated_ci_low, row.calibrated_ci_high)}")  # fmt: skip
    return f"{row.a} ~ {row.b} {_fmt(row.value_raw)}{_ci(row.ci_low_raw, row.ci_high_raw)}{cal}"


def top_pairs_report(r: Release, dataset: str, metric: str = "cknna", k: int | None = 10, n: int = 5) -> list[str]:
    """The most aligned pairs (calibrated where the release has it), overall and across modalities, and the pairs
    tied with the top one (intervals overlapping its interval)."""
    pt = pair_table(r, dataset, metric, k)
    if pt.empty:
        return []
    cal = pt.calibrated.notna().any()
    col, lo, hi = ("calibrated", "calibrated_ci_low", "calibrated_ci_high") if cal else ("value_raw", "ci_low_raw",
                                                                                          "ci_high_raw")  # fmt: skip
    higher = cal or q.METRICS[metric].higher_is_aligned
    pt = pt.sort_values(col, ascending=not higher, kind="stable")
    out = [f"  most aligned pairs on {dataset} ({metric}{'' if k is None else f' k = {k}'}, "
           f"{'calibrated' if cal else 'raw'} order; raw [95% CI] / calibrated [CI]):"]  # fmt: skip
    out += [f"    {pair_line(x)}" for x in pt.head(n).itertuples()]
    best = pt.iloc[0]
    if np.isfinite(best[lo]):
        tied = pt.iloc[1:][(pt.iloc[1:][hi] >= best[lo]) & (pt.iloc[1:][lo] <= best[hi])]
        out.append(f"    tied with the top pair (overlapping intervals): {len(tied)}"
                   + (": " + "; ".join(f"{x.a} ~ {x.b}" for x in tied.head(8).itertuples()) if len(tied) else ""))  # fmt: skip
    for rel in ("cross modality", "same modality"):
        sub = pt[pt.relation == rel]
        if len(sub):
            out.append(f"    top {rel}: " + "; ".join(pair_line(x) for x in sub.head(3).itertuples()))
    return out


def spearman_ci(x, y) -> tuple[float, float, float, int]:
    """Spearman rho with its 95 % interval (Fisher z, Fieller et al. 1957 standard error); NaN below 5 points."""
    ok = np.isfinite(np.asarray(x, float)) & np.isfinite(np.asarray(y, float))
    n = int(ok.sum())
    if n < 5:
        return np.nan, np.nan, np.nan, n
    rho = float(stats.spearmanr(np.asarray(x, float)[ok], np.asarray(y, float)[ok]).statistic)
    z, se = np.arctanh(np.clip(rho, -0.999999, 0.999999)), np.sqrt(1.06 / (n - 3))
    return rho, float(np.tanh(z - 1.96 * se)), float(np.tanh(z + 1.96 * se)), n


def convergence_report(r: Release, dataset: str, metric: str = "cknna", k: int | None = 10) -> list[str]:
    """Spearman(energy MAE, alignment to the most accurate model), raw and calibrated, all models and trained only."""
    if q.energy(r, dataset).empty:
        return []
    out = [f"  convergence with accuracy on {dataset}: Spearman(MAE, {metric}{'' if k is None else f' k = {k}'} "
           "to the lowest-MAE model) [95% CI]"]  # fmt: skip
    for scale in ("raw", "calibrated"):
        if scale == "calibrated" and not q.has_calibration(r, dataset, metric, k):
            out.append("    calibrated: not in this release")
            continue
        t = q.alignment_vs_mae(r, dataset, metric, k, scale=scale)
        t = t[~t.is_best.astype(bool)]
        for label, sub in (("all models", t), ("without random-init", t[t.source != "random_init"])):
            rho, lo, hi, n = spearman_ci(sub.mae_per_atom, sub.alignment)
            out.append(f"    {scale}, {label}: {_fmt(rho)} [{_fmt(lo)}, {_fmt(hi)}] (n = {n})")
    return out


def calibration_effect_report(r: Release, dataset: str) -> list[str]:
    """Per metric at its dashboard k: mean raw against mean calibrated over unordered pairs, how far calibration
    reorders the pairs (Spearman raw vs calibrated), and the pairs resolved above the null."""
    out = [f"  what calibration changes on {dataset} (unordered pairs; Spearman of raw vs calibrated values)"]
    stored = set(r.query("SELECT DISTINCT metric FROM pairwise WHERE dataset_id = ?", [dataset])["metric"])
    for metric in [m for m in q.METRICS if m in stored]:
        ks = q.k_values(r, dataset, metric)
        k = 10 if 10 in ks else ks[0]
        if not q.has_calibration(r, dataset, metric, k):
            out.append(f"    {metric}{'' if k is None else f' k = {k}'}: not calibrated in this release")
            continue
        pt = pair_table(r, dataset, metric, k)
        rho = spearman_ci(pt.value_raw, pt.calibrated)[0]
        out.append(f"    {metric}{'' if k is None else f' k = {k}'}: raw mean {_fmt(pt.value_raw.mean())}, calibrated "
                   f"mean {_fmt(pt.calibrated.mean())}, Spearman {_fmt(rho)}, {int(pt.resolved.sum())} of {len(pt)} "
                   "resolved above the null")  # fmt: skip
    return out


def intrinsic_band_report(r: Release, dataset: str) -> list[str]:
    """TwoNN intrinsic dimension per modality: range of values and of the bootstrap intervals' bounds."""
    idd = q.intrinsic_dim(r, dataset, estimator="twonn")
    if idd.empty:
        return []
    meta = q.list_models(r).set_index("model_id")
    idd = idd.assign(modality=idd.model_id.map(meta["modality"]), source=idd.model_id.map(meta["source"]))
    out = [f"  TwoNN intrinsic dimension by modality on {dataset} (value range; interval bounds range)"]
    for (mod, src), g in idd.groupby(["modality", "source"]):
        out.append(f"    {mod} ({src}): {g.value.min():.2f}..{g.value.max():.2f} (median {g.value.median():.2f}; "
                   f"CIs {_fmt(g.ci_low.min(), 2)}..{_fmt(g.ci_high.max(), 2)}; {len(g)} models)")  # fmt: skip
    return out


def findings_report(r: Release, dataset: str, k: int = 10) -> list[str]:
    """Every claims section for one dataset (the groupings that the dataset's models make meaningful)."""
    out = [f"## {dataset}: claims with calibrated values and intervals"]
    out += group_report(r, dataset, "relation", k=k)
    out += group_report(r, dataset, "modality", k=k)
    models = q.list_models(r, dataset=dataset)
    if models["training_sets"].map(_training).nunique() > 1:
        out += group_report(r, dataset, "training", k=k)
    out += top_pairs_report(r, dataset, k=k)
    out += convergence_report(r, dataset, k=k)
    out += calibration_effect_report(r, dataset)
    out += intrinsic_band_report(r, dataset)
    return out
