"""Which raw statements of a release survive calibration: `python -m bench.calibrated_reanalysis NEW [SHIPPED]`.

NEW is a release written from a calibrated analysis (pairwise_null, pairwise_calibration and CIs present); SHIPPED
an older release of the same dataset whose raw values the statements were made from. For one dataset it prints:
- the raw check: every (metric, k, pair) row both releases hold, their largest |difference| per metric (the raw
  values must not move when only the nulls and CIs were added), and the same for TwoNN IDs and energy MAEs;
- CKNNA at k (default 10; CKA and mutual kNN too) by relation (same family / same modality / cross modality): raw
  and calibrated means, how many pairs are not above their null's critical value, the largest null 95th percentile;
- the ANI-1x members' band (seed variation) raw and calibrated, with the half-sampling CI half-widths;
- alignment to the lowest-MAE model against MAE (Spearman), raw and calibrated;
- the UPGMA clades by first training-set tag, on 1 - raw and 1 - calibrated symmetrised CKNNA at the tree k;
- each graph-modality model's place: its calibrated CKNNA per modality of the other model and its nearest models;
- a CKNNA matrix of the graph models next to the SMILES and 3D models.

A symmetrised value is the mean of the two orders (CKNNA); its "CI" is the mean of the two orders' bounds. The
calibrated CI maps the raw CI's bounds through the same calibration, clip((s - tau) / (1 - tau), 0, 1), with the
full-sample critical value tau held fixed: it shows the sampling spread of s, not that of tau. Reads the release
only through backend (no analysis code runs here).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import linkage, to_tree
from scipy.spatial.distance import squareform
from scipy.stats import spearmanr

from backend.release import Release

RELATIONS = ("same family", "same modality", "cross modality")


def pair_table(r: Release, dataset: str, metric: str, k: int | None) -> pd.DataFrame:
    """Ordered rows: value, CI, null q95, calibrated, tau, p_value, n_permutations (NaN where not stored)."""
    has_null = "pairwise_null" in r.tables
    has_cal = "pairwise_calibration" in r.tables
    sel = ["p.model_a", "p.model_b", "p.value", "p.ci_low", "p.ci_high", "p.n"]
    sql = "FROM pairwise p"
    for ok, alias, table, cols in (
        (has_null, "z", "pairwise_null", ["z.null_mean", "z.null_q95"]),
        (has_cal, "c", "pairwise_calibration", ["c.calibrated", "c.tau", "c.p_value AS cal_p", "c.n_permutations"]),
    ):
        if ok:
            sel += cols
            sql += (f" LEFT JOIN {table} {alias} ON {alias}.dataset_id = p.dataset_id AND {alias}.metric = p.metric"
                    f" AND {alias}.k IS NOT DISTINCT FROM p.k AND {alias}.model_a = p.model_a"
                    f" AND {alias}.model_b = p.model_b")  # fmt: skip
    q = f"SELECT {', '.join(sel)} {sql} WHERE p.dataset_id = ? AND p.metric = ? AND p.k IS NOT DISTINCT FROM ?"
    df = r.query(q, [dataset, metric, k])
    for col in ("null_mean", "null_q95", "calibrated", "tau", "cal_p", "n_permutations"):
        if col not in df:
            df[col] = np.nan
    return df


def calibrate_bound(s: pd.Series, tau: pd.Series) -> pd.Series:
    """A raw bound through the calibration map with tau fixed (higher-is-aligned metrics, s_max = 1)."""
    return ((s - tau) / np.maximum(1.0 - tau, 1e-12)).clip(0.0, 1.0)


def symmetrised(df: pd.DataFrame) -> pd.DataFrame:
    """Unordered pairs (a < b): the mean of both orders where both are stored, else the one row."""
    d = df.copy()
    d["cal_low"] = calibrate_bound(d["ci_low"], d["tau"])
    d["cal_high"] = calibrate_bound(d["ci_high"], d["tau"])
    d["below"] = (d["calibrated"] <= 0).astype(float).where(d["calibrated"].notna())
    swap = d["model_a"] > d["model_b"]
    d.loc[swap, ["model_a", "model_b"]] = d.loc[swap, ["model_b", "model_a"]].to_numpy()
    cols = ["value", "ci_low", "ci_high", "calibrated", "cal_low", "cal_high", "null_q95", "below"]
    return d.groupby(["model_a", "model_b"], as_index=False)[cols].mean()


def with_relation(pairs: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    fam, mod = meta["family"].to_dict(), meta["modality"].to_dict()
    out = pairs.copy()
    same_f = out["model_a"].map(fam) == out["model_b"].map(fam)
    same_m = out["model_a"].map(mod) == out["model_b"].map(mod)
    out["relation"] = np.where(same_f, RELATIONS[0], np.where(same_m, RELATIONS[1], RELATIONS[2]))
    return out


def _fmt(x: float, nd: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _count(flags: pd.Series, orders: int) -> str:
    """Ordered rows flagged, from per-pair means of `orders` flags; n/a where nothing was calibrated."""
    return "n/a" if flags.isna().all() else str(int(round(orders * flags.sum())))


def raw_check(new: Release, old: Release, dataset: str) -> list[str]:
    out = ["## raw values: this release against the shipped one (same rows)"]
    q = "SELECT metric, k, model_a, model_b, value, n FROM pairwise WHERE dataset_id = ?"
    a, b = new.query(q, [dataset]), old.query(q, [dataset])
    a["k"], b["k"] = a["k"].fillna(-1), b["k"].fillna(-1)
    m = a.merge(b, on=["metric", "k", "model_a", "model_b"], suffixes=("_new", "_old"))
    m["diff"] = (m["value_new"] - m["value_old"]).abs()
    differ = int((m["n_new"] != m["n_old"]).sum())
    m = m[m["n_new"] == m["n_old"]]  # a raw value is only comparable on the same samples
    if differ:
        out.append(f"  {differ} shared rows have a different N (not comparable, left out)")
    if m.empty:
        out.append("  no shared row at the same N: the raw values cannot be checked against this release")
        return out
    out.append(f"  N here {sorted(a['n'].unique().tolist())}, shipped {sorted(b['n'].unique().tolist())}; "
               f"{len(m)} shared rows of {len(a)} here")  # fmt: skip
    for metric, g in m.groupby("metric"):
        worst = g.loc[g["diff"].idxmax()]
        out.append(f"  {metric:15s} {len(g):5d} rows, max |diff| {g['diff'].max():.3g}"
                   + (f" ({worst.model_a} ~ {worst.model_b}, k {int(worst.k)})" if g["diff"].max() > 0 else ""))  # fmt: skip
    for table, key, col in (
        ("intrinsic_dim", ["model_id", "estimator"], "value"),
        ("energy", ["model_id"], "mae_per_atom"),
    ):
        q2 = f"SELECT {', '.join(key)}, {col} AS v FROM {table} WHERE dataset_id = ?"
        t = new.query(q2, [dataset]).merge(old.query(q2, [dataset]), on=key, suffixes=("_new", "_old"))
        diff = (t["v_new"] - t["v_old"]).abs().max() if len(t) else float("nan")
        out.append(f"  {table:15s} {len(t):5d} rows, max |diff| {diff:.3g}")
    return out


def relation_report(r: Release, dataset: str, meta: pd.DataFrame, models: list[str], k: int) -> list[str]:
    out = [f"## by relation ({len(models)} models)"]
    for metric, mk in (("cknna", k), ("mutual_knn", k), ("cka", None), ("cka_unbiased", None)):
        p = symmetrised(pair_table(r, dataset, metric, mk))
        p = with_relation(p[p.model_a.isin(models) & p.model_b.isin(models)], meta)
        label = f"{metric}" + (f" k={mk}" if mk is not None else "")
        for rel in RELATIONS:
            g = p[p.relation == rel]
            if g.empty:
                continue
            out.append(f"  {label:14s} {rel:15s} {len(g):4d} pairs: raw mean {_fmt(g.value.mean())} "
                       f"({_fmt(g.value.min())}-{_fmt(g.value.max())}); calibrated mean {_fmt(g.calibrated.mean())} "
                       f"({_fmt(g.calibrated.min())}-{_fmt(g.calibrated.max())}); orders not above the critical "
                       f"value {_count(g.below, 2 if metric == 'cknna' else 1)}; "
                       f"null q95 max {_fmt(g.null_q95.max(), 4)}")  # fmt: skip
    return out


def ani_band(r: Release, dataset: str, k: int) -> list[str]:
    p = symmetrised(pair_table(r, dataset, "cknna", k))
    g = p[p.model_a.str.match(r"ani1x-m\d") & p.model_b.str.match(r"ani1x-m\d")]
    if g.empty:
        return []
    half = (g.ci_high - g.ci_low) / 2
    return ["## ANI-1x members (seed variation)",
            f"  {len(g)} pairs, CKNNA k={k}: raw {_fmt(g.value.min())}-{_fmt(g.value.max())} (mean "
            f"{_fmt(g.value.mean())}); calibrated {_fmt(g.calibrated.min())}-{_fmt(g.calibrated.max())} (mean "
            f"{_fmt(g.calibrated.mean())}); CI half-width {_fmt(half.min())}-{_fmt(half.max())}; null q95 max "
            f"{_fmt(g.null_q95.max(), 4)}"]  # fmt: skip


def convergence(r: Release, dataset: str, models: list[str], k: int) -> list[str]:
    e = r.query("SELECT model_id, mae_per_atom FROM energy WHERE dataset_id = ?", [dataset])
    e = e[e.model_id.isin(models)].sort_values(["mae_per_atom", "model_id"])
    if len(e) < 4:
        return []
    best = e.iloc[0].model_id
    out = [f"## alignment to the lowest-MAE model ({best}, {1000 * e.iloc[0].mae_per_atom:.1f} meV/atom) against MAE"]
    for metric in ("cknna", "mutual_knn"):
        d = pair_table(r, dataset, metric, k)
        if metric == "mutual_knn":  # stored once per unordered pair
            flip = d.rename(columns={"model_a": "model_b", "model_b": "model_a"})
            d = pd.concat([d, flip], ignore_index=True)
        d = d[d.model_b == best].set_index("model_a")
        m = e[e.model_id != best].set_index("model_id").join(d, how="inner")
        m["cal_low"], m["cal_high"] = calibrate_bound(m.ci_low, m.tau), calibrate_bound(m.ci_high, m.tau)
        raw, cal = spearmanr(m.mae_per_atom, m.value)[0], spearmanr(m.mae_per_atom, m.calibrated)[0]
        out.append(f"  {metric} k={k}: Spearman(MAE, raw) {raw:.3f}, (MAE, calibrated) {cal:.3f} (n = {len(m)})")
        for mid, row in m.iterrows():
            out.append(f"    {mid:22s} MAE {1000 * row.mae_per_atom:5.1f}  raw {_fmt(row.value)} "
                       f"[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]  calibrated {_fmt(row.calibrated)} "
                       f"[{_fmt(row.cal_low)}, {_fmt(row.cal_high)}]  q95 {_fmt(row.null_q95, 4)}")  # fmt: skip
    return out


def _clades(labels: list[str], dist: np.ndarray) -> set[frozenset]:
    root = to_tree(linkage(squareform(dist, checks=False), method="average"))
    found, stack = set(), [root]
    while stack:
        node = stack.pop()
        found.add(frozenset(labels[i] for i in node.pre_order()))
        stack += [c for c in (node.left, node.right) if c is not None]
    return found


def tree_report(r: Release, dataset: str, meta: pd.DataFrame, models: list[str], k: int) -> list[str]:
    p = symmetrised(pair_table(r, dataset, "cknna", k))
    p = p[p.model_a.isin(models) & p.model_b.isin(models)]
    ids = sorted(set(p.model_a) | set(p.model_b))
    groups: dict[str, list[str]] = {}
    for mid in ids:
        t = meta.at[mid, "training_sets"] if mid in meta.index else None
        if isinstance(t, (list, tuple, np.ndarray)) and len(t):
            groups.setdefault(str(t[0]), []).append(mid)
    out = [f"## UPGMA clades by first training-set tag (1 - symmetrised CKNNA, k = {k}, {len(ids)} models)"]
    for col in ("value", "calibrated"):
        mat = p.pivot(index="model_a", columns="model_b", values=col).reindex(index=ids, columns=ids)
        sim = mat.fillna(mat.T)
        dist = 1.0 - sim.to_numpy(dtype=float)
        np.fill_diagonal(dist, 0.0)
        clades = _clades(ids, dist)
        res = [f"{tag} ({len(g)}): {'clade' if frozenset(g) in clades else 'not a clade'}"
               for tag, g in sorted(groups.items()) if len(g) > 1]  # fmt: skip
        out.append(f"  {'raw' if col == 'value' else 'calibrated':10s} " + "; ".join(res))
    return out


def graph_report(r: Release, dataset: str, meta: pd.DataFrame, models: list[str], k: int) -> list[str]:
    graphs = [m for m in models if meta.at[m, "modality"] == "graph"]
    if not graphs:
        return []
    d = pair_table(r, dataset, "cknna", k)
    d = d[d.model_a.isin(models) & d.model_b.isin(models)]
    p = symmetrised(d)
    out = [f"## graph models (CKNNA k = {k}, symmetrised)"]
    for g in graphs:
        rows = p[(p.model_a == g) | (p.model_b == g)].copy()
        rows["other"] = np.where(rows.model_a == g, rows.model_b, rows.model_a)
        rows["modality"] = rows.other.map(meta["modality"])
        by = rows.groupby("modality").agg(n=("value", "size"), raw=("value", "mean"), cal=("calibrated", "mean"),
                                          cal_min=("calibrated", "min"), cal_max=("calibrated", "max"))  # fmt: skip
        out.append(f"  {g}: " + "; ".join(f"{mod} ({int(x.n)}) raw {_fmt(x.raw)}, calibrated {_fmt(x.cal)} "
                                           f"({_fmt(x.cal_min)}-{_fmt(x.cal_max)})" for mod, x in by.iterrows()))  # fmt: skip
        for _, x in rows.sort_values("calibrated", ascending=False).head(5).iterrows():
            out.append(f"    {x.other:22s} raw {_fmt(x.value)} [{_fmt(x.ci_low)}, {_fmt(x.ci_high)}]  calibrated "
                       f"{_fmt(x.calibrated)} [{_fmt(x.cal_low)}, {_fmt(x.cal_high)}]  q95 {_fmt(x.null_q95, 4)}")  # fmt: skip
    cols = [m for m in models if meta.at[m, "modality"] in ("smiles", "text", "structure", "descriptor")]
    out.append(f"  CKNNA matrix (k = {k}, row -> column, raw / calibrated):")
    out.append("    " + " " * 22 + " ".join(f"{c[:13]:>13s}" for c in cols))
    cell = d.set_index(["model_a", "model_b"])
    for g in graphs:
        vals = [f"{cell.at[(g, c), 'value']:.3f}/{cell.at[(g, c), 'calibrated']:.3f}" if (g, c) in cell.index
                else "-" for c in cols]  # fmt: skip
        out.append(f"    {g:22s}" + " ".join(f"{v:>13s}" for v in vals))
    return out


def report(new: Release, old: Release | None, dataset: str, k: int = 10, tree_k: int = 25) -> str:
    meta = new.query("SELECT model_id, family, modality, training_sets FROM models").set_index("model_id")
    models = sorted(new.query("SELECT DISTINCT model_a FROM pairwise WHERE dataset_id = ?", [dataset]).model_a)
    models = sorted(set(models) | set(new.query("SELECT DISTINCT model_b FROM pairwise WHERE dataset_id = ?",
                                                [dataset]).model_b))  # fmt: skip
    cal = (
        new.query("SELECT min(n_permutations) AS p FROM pairwise_calibration")
        if "pairwise_calibration" in new.tables
        else None
    )
    out = [f"# {dataset}: {len(models)} models, release {new.release_id}"
           + (f", permutations >= {int(cal.p.iloc[0])}" if cal is not None else ", no calibration stored")]  # fmt: skip
    if old is not None:
        out += raw_check(new, old, dataset)
        shipped = set(old.query("SELECT DISTINCT model_a FROM pairwise WHERE dataset_id = ?", [dataset]).model_a)
        common = [m for m in models if m in shipped]
        if common != models:
            out += relation_report(new, dataset, meta, common, k)
    out += relation_report(new, dataset, meta, models, k)
    out += ani_band(new, dataset, k)
    out += convergence(new, dataset, models, k)
    out += tree_report(new, dataset, meta, models, tree_k)
    out += graph_report(new, dataset, meta, models, k)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("release", help="release folder written from a calibrated analysis")
    ap.add_argument("shipped", nargs="?", default=None, help="release the raw statements came from")
    ap.add_argument("--dataset", default="qm9")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tree-k", type=int, default=25)
    a = ap.parse_args(argv)
    new = Release.open(a.release)
    old = Release.open(a.shipped) if a.shipped else None
    print(report(new, old, a.dataset, a.k, a.tree_k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
