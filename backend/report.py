"""The numbers behind docs/FINDINGS.md, read from a release: `python -m backend.report [RELEASE_DIR]`.

For each dataset: mean CKNNA within a family, within a modality (across families) and across modalities; the
seed-variation control (pairs of ANI-1x ensemble members) against the permutation null; intrinsic-dimension bands
per modality; the nearest neighbour of every model in the tree's distance (1 - symmetrised CKNNA); and, for datasets
sharing models, how each pair's CKNNA moves from one dataset to the other.
Then, per dataset: the models by source; energy MAE against alignment to the lowest-MAE model (Spearman rho, over
all models and within the trained-here family; CKNNA and mutual kNN); the random-init controls against pretrained
pairs, the permutation null and the pretrained models' TwoNN ID; the trained-here grid (mace-qm9-n{N}-c{C}) across
training-set size N and width C and against the pretrained structure models; and whether the models sharing a first
training-set tag form a clade of the stored UPGMA tree; every metric's permutation null (its 95th percentile, the 5th
for information imbalance), calibrated scores and the width check (backend/report_calibration.py). Every number is
a query of the release.
"""

from __future__ import annotations

import argparse
import re
import sys
from io import StringIO
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from . import queries as q
from .release import Release
from .report_calibration import beyond_null, calibration_report
from .report_findings import findings_report

SOURCES = ("pretrained", "random_init", "trained_here", "descriptor")
_GRID_ID = re.compile(r"-n(\d+)-c(\d+)$")  # trained-here ids: <name>-n{training-set size}-c{channels}


def _pairs(r: Release, dataset: str, k: int) -> pd.DataFrame:
    """Unordered pairs with the symmetrised CKNNA (mean of both orders) and the models' family and modality."""
    mat = q.matrix(r, dataset, "cknna", k, order="family").matrix
    meta = q.list_models(r).set_index("model_id")
    rows = []
    for a, b in combinations(mat.index, 2):
        v = (mat.at[a, b] + mat.at[b, a]) / 2
        rows.append({"a": a, "b": b, "cknna": v, "fam_a": meta.at[a, "family"], "fam_b": meta.at[b, "family"],
                     "mod_a": meta.at[a, "modality"], "mod_b": meta.at[b, "modality"]})  # fmt: skip
    df = pd.DataFrame(rows)
    df["relation"] = np.where(df.fam_a == df.fam_b, "same family",
                              np.where(df.mod_a == df.mod_b, "same modality", "cross modality"))  # fmt: skip
    return df


def dataset_report(r: Release, dataset: str, k: int = 10) -> list[str]:
    out = [f"## {dataset} (CKNNA at k = {k}, symmetrised)"]
    df = _pairs(r, dataset, k)
    for rel, g in df.groupby("relation"):
        out.append(f"  {rel:15s}: mean {g.cknna.mean():.3f}, median {g.cknna.median():.3f}, "
                   f"range {g.cknna.min():.3f}..{g.cknna.max():.3f} ({len(g)} pairs)")  # fmt: skip
    ani = df[df.a.str.match(r"ani1x-m\d") & df.b.str.match(r"ani1x-m\d")]
    if len(ani):
        out.append(f"  ANI-1x member pairs (seed variation): mean {ani.cknna.mean():.3f}, "
                   f"range {ani.cknna.min():.3f}..{ani.cknna.max():.3f} ({len(ani)} pairs)")  # fmt: skip
    null = q.pairwise_null(r, dataset, "cknna", k)
    if len(null):
        out.append(f"  permutation null of CKNNA (k = {int(null.k.iloc[0])}): mean {null.null_mean.mean():.4f}, "
                   f"largest 95th percentile {null.null_q95.max():.4f} ({len(null)} ordered pairs)")  # fmt: skip
    else:
        out.append(f"  permutation null: not in this release at k = {k}")
    top = df.sort_values("cknna", ascending=False)
    out.append("  most aligned pairs: " + "; ".join(f"{x.a}~{x.b} {x.cknna:.3f}" for x in top.head(5).itertuples()))
    cross = top[top.relation == "cross modality"]
    if len(cross):
        out.append("  most aligned cross-modality pairs: "
                   + "; ".join(f"{x.a}~{x.b} {x.cknna:.3f}" for x in cross.head(3).itertuples()))  # fmt: skip
    idd = q.intrinsic_dim(r, dataset)
    meta = q.list_models(r).set_index("model_id")
    for est, g in idd.groupby("estimator"):
        g = g.assign(modality=[meta.at[m, "modality"] for m in g.model_id])
        for mod, h in g.groupby("modality"):
            out.append(f"  {est} ID, {mod}: {h.value.min():.1f}..{h.value.max():.1f} "
                       f"(median {h.value.median():.1f}, {len(h)} models)")  # fmt: skip
    nearest = {}
    for m in set(df.a) | set(df.b):
        sub = df[(df.a == m) | (df.b == m)].sort_values("cknna", ascending=False).iloc[0]
        nearest[m] = sub.b if sub.a == m else sub.a
    out.append("  nearest model (highest CKNNA): " + "; ".join(f"{m}->{nearest[m]}" for m in sorted(nearest)))
    return out


def shift_report(r: Release, d1: str, d2: str, k: int = 10) -> list[str]:
    a, b = _pairs(r, d1, k), _pairs(r, d2, k)
    m = a.merge(b, on=["a", "b"], suffixes=(f"_{d1}", f"_{d2}"))
    if m.empty:
        return []
    diff = m[f"cknna_{d2}"] - m[f"cknna_{d1}"]
    corr = np.corrcoef(m[f"cknna_{d1}"], m[f"cknna_{d2}"])[0, 1]
    out = [f"## {d1} -> {d2}: {len(m)} shared pairs, mean change {diff.mean():+.3f}, Pearson r {corr:.3f}"]
    for rel, g in m.groupby(f"relation_{d1}"):
        dd = g[f"cknna_{d2}"] - g[f"cknna_{d1}"]
        out.append(f"  {rel:15s}: {g[f'cknna_{d1}'].mean():.3f} -> {g[f'cknna_{d2}'].mean():.3f} ({dd.mean():+.3f})")
    return out


# ---------------------------------------------------------------------------------------------------------------
# per-dataset sections for the release with random-init controls, trained-here models and energies
# ---------------------------------------------------------------------------------------------------------------
def _on(r: Release, dataset: str) -> pd.DataFrame:
    """Models with any result on dataset, indexed by model_id."""
    return q.list_models(r, dataset=dataset).set_index("model_id")


def _rho(x, y) -> tuple[float, int]:
    """Spearman rho over the finite (x, y) pairs and their number; NaN below 3 pairs."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan"), n
    return float(spearmanr(x[ok], y[ok]).statistic), n


def _rho_text(rho: float, n: int) -> str:
    return f"rho {rho:+.3f} (n = {n})" if np.isfinite(rho) else f"undefined (n = {n})"


def source_report(r: Release, dataset: str) -> list[str]:
    """Models with results on dataset, counted by card source (pretrained, random_init, trained_here, descriptor)."""
    counts = _on(r, dataset)["source"].value_counts()
    parts = [f"{s} {int(counts.get(s, 0))}" for s in SOURCES]
    parts += [f"{s} {int(n)}" for s, n in counts.items() if s not in SOURCES]
    return [f"  models by source: {', '.join(parts)} ({int(counts.sum())} models)"]


_METRIC_LABEL = {"cknna": "CKNNA", "mutual_knn": "mutual kNN"}


def energy_alignment_report(r: Release, dataset: str, k: int = 10) -> list[str]:
    """Energy MAE (meV/atom) of each model against its alignment to the lowest-MAE model (`alignment_vs_mae`: the
    stored value of the pair (model, best)), and Spearman rho of MAE vs alignment over the models other than the
    best: all of them, the trained_here ones, and the trained_here ones against their own lowest-MAE member."""
    head = f"  energy vs alignment (k = {k})"
    if q.energy(r, dataset).empty:
        return [f"{head}: not in this release (no energy rows on {dataset})"]
    tables, missing = {}, []
    for metric in _METRIC_LABEL:
        try:
            tables[metric] = q.alignment_vs_mae(r, dataset, metric, k)
        except ValueError:
            missing.append(_METRIC_LABEL[metric])
    if not tables:
        return [f"{head}: not in this release ({' and '.join(missing)} at k = {k} absent)"]
    base = next(iter(tables.values()))
    best = str(base["best_model"].iloc[0])
    out = [
        f"{head}: best model (lowest MAE) {best}, {1000 * base['mae_per_atom'].min():.1f} meV/atom; "
        f"alignment = value of the pair (model, best) as stored; {len(base)} models with an energy MAE"
    ]
    out += [f"  {m} at k = {k}: not in this release" for m in missing]
    for i, row in enumerate(base.itertuples()):
        vals = ", ".join(
            f"{_METRIC_LABEL[m]} to best {t['alignment'].iloc[i]:.3f}" for m, t in tables.items() if not row.is_best
        )
        out.append(f"    {row.model_id} [{row.source}]: MAE {1000 * row.mae_per_atom:.1f} meV/atom"
                   + (f", {vals}" if vals else " (best)"))  # fmt: skip
    for metric, t in tables.items():
        label = _METRIC_LABEL[metric]
        rest = t[~t["is_best"]]
        out.append(f"  Spearman(MAE, {label} to best), all models but the best: "
                   + _rho_text(*_rho(rest["mae_per_atom"], rest["alignment"])))  # fmt: skip
        th = rest[rest["source"] == "trained_here"]
        fam = t[t["source"] == "trained_here"].sort_values(["mae_per_atom", "model_id"])
        if fam.empty:
            out.append(f"  Spearman(MAE, {label} to best), trained_here: not in this release")
            continue
        out.append(f"  Spearman(MAE, {label} to best), trained_here: "
                   + _rho_text(*_rho(th["mae_per_atom"], th["alignment"])))  # fmt: skip
        fbest = str(fam["model_id"].iloc[0])
        mat = q.matrix(r, dataset, metric, k).matrix
        others = fam.iloc[1:]
        to_fbest = [mat.at[m, fbest] if m in mat.index and fbest in mat.columns else np.nan for m in others["model_id"]]
        out.append(f"  Spearman(MAE, {label} to the family's best {fbest}), trained_here: "
                   + _rho_text(*_rho(others["mae_per_atom"], to_fbest)))  # fmt: skip
    return out


def random_init_report(r: Release, dataset: str, k: int = 10) -> list[str]:
    """Each random_init model's symmetrised CKNNA with every other model (mean, max) against the mean over
    pretrained-pretrained pairs and the permutation null of its pairs; its TwoNN ID against the pretrained models of
    its modality."""
    on = _on(r, dataset)
    rand = sorted(m for m in on.index if on.at[m, "source"] == "random_init")
    head = f"  random-init controls (CKNNA at k = {k}, symmetrised)"
    if not rand:
        return [f"{head}: not in this release (no random_init model on {dataset})"]
    try:
        df = _pairs(r, dataset, k)
    except ValueError:
        return [f"{head}: not in this release (no CKNNA at k = {k} on {dataset})"]
    src = on["source"]
    pp = df[df.a.map(src).eq("pretrained") & df.b.map(src).eq("pretrained")]
    null = q.pairwise_null(r, dataset, "cknna", k)
    pp_text = f"mean {pp.cknna.mean():.3f} ({len(pp)} pairs)" if len(pp) else "none"
    null_text = f"mean {null.null_mean.mean():.4f} ({len(null)} ordered pairs)" if len(null) else "not in this release"
    out = [f"{head}: pretrained-pretrained pairs {pp_text}; permutation null {null_text}"]
    idd = q.intrinsic_dim(r, dataset)
    idd = idd[idd["estimator"] == "twonn"].set_index("model_id")["value"]
    for m in rand:
        sub = df[(df.a == m) | (df.b == m)].dropna(subset=["cknna"])
        if sub.empty:
            out.append(f"    {m}: no CKNNA at k = {k}")
        else:
            top = sub.loc[sub.cknna.idxmax()]
            partner = top.b if top.a == m else top.a
            line = (f"    {m}: with the other {len(sub)} models mean {sub.cknna.mean():.3f}, "
                    f"max {top.cknna:.3f} ({partner})")  # fmt: skip
            nm = null[(null.model_a == m) | (null.model_b == m)]
            if len(nm):
                above = int(beyond_null(nm["value"], nm["null_q95"], "cknna").sum())
                line += (f"; null on its pairs mean {nm.null_mean.mean():.4f}, largest 95th percentile "
                         f"{nm.null_q95.max():.4f}, {above} of {len(nm)} ordered pairs above their 95th percentile")  # fmt: skip
            out.append(line)
        mod = on.at[m, "modality"]
        peers = [p for p in on.index if on.at[p, "source"] == "pretrained" and on.at[p, "modality"] == mod]
        pv = idd.reindex(peers).dropna()
        own = f"{idd[m]:.1f}" if m in idd.index else "not in this release"
        band = (f"{pv.min():.1f}..{pv.max():.1f} (median {pv.median():.1f}, {len(pv)} models)" if len(pv)
                else "none in this release")  # fmt: skip
        out.append(f"    {m}: TwoNN ID {own}; pretrained {mod} models {band}")
    return out


def _grid(model_id: str) -> tuple[int, int] | None:
    hit = _GRID_ID.search(model_id)
    return (int(hit.group(1)), int(hit.group(2))) if hit else None


def trained_here_report(r: Release, dataset: str, k: int = 10) -> list[str]:
    """The trained_here models (ids ...-n{N}-c{C}): symmetrised CKNNA between members sharing C across N and sharing
    N across C; each member's MAE and mean CKNNA to the pretrained structure models (overall and per family), and
    Spearman rho between the two over members."""
    on = _on(r, dataset)
    fam = sorted(m for m in on.index if on.at[m, "source"] == "trained_here")
    head = f"  trained-here family (CKNNA at k = {k}, symmetrised)"
    if not fam:
        return [f"{head}: not in this release (no trained_here model on {dataset})"]
    try:
        df = _pairs(r, dataset, k)
    except ValueError:
        return [f"{head}: not in this release (no CKNNA at k = {k} on {dataset})"]
    sym = {}
    for x in df.itertuples():
        sym[(x.a, x.b)] = sym[(x.b, x.a)] = x.cknna
    grid = {m: g for m in fam if (g := _grid(m)) is not None}
    out = [f"{head}: {len(fam)} models, {len(grid)} with N (training-set size) and C (channels) in the id"]
    for what, key, other in (("C", 1, 0), ("N", 0, 1)):
        for val in sorted({g[key] for g in grid.values()}):
            members = sorted((g[other], m) for m, g in grid.items() if g[key] == val)
            pairs = [(x, y, sym.get((ma, mb), np.nan)) for (x, ma), (y, mb) in combinations(members, 2)]
            if not pairs:
                continue
            vary = "N" if what == "C" else "C"
            body = "; ".join(f"{vary}={x}~{vary}={y} {v:.3f}" for x, y, v in pairs)
            mean = np.nanmean([v for *_, v in pairs])
            out.append(f"    same {what} = {val} (across {vary}): {body}; mean {mean:.3f} ({len(pairs)} pairs)")
    ps = [m for m in on.index if on.at[m, "source"] == "pretrained" and on.at[m, "modality"] == "structure"]
    mae = q.energy(r, dataset).set_index("model_id")["mae_per_atom"]
    rows = {}
    for m in fam:
        vals = pd.Series({p: sym.get((m, p), np.nan) for p in ps}, dtype=float).dropna()
        by_fam = vals.groupby(on["family"].reindex(vals.index)).mean()
        rows[m] = {"mae": mae.get(m, np.nan), "mean": vals.mean() if len(vals) else np.nan, **by_fam.to_dict()}
        fam_text = ", ".join(f"{f} {v:.3f}" for f, v in by_fam.items())
        e = f"MAE {1000 * mae[m]:.1f} meV/atom" if m in mae.index else "no energy MAE"
        ck = f"CKNNA to pretrained structure models mean {vals.mean():.3f} over models ({fam_text})" if len(vals) else (
            "no pretrained structure model")  # fmt: skip
        out.append(f"    {m}: {e}; {ck}")
    tab = pd.DataFrame.from_dict(rows, orient="index")
    label = "  Spearman(MAE, mean CKNNA to pretrained structure models), trained_here: "
    out.append(label + _rho_text(*_rho(tab["mae"], tab["mean"])))
    for f in sorted(c for c in tab.columns if c not in ("mae", "mean")):
        out.append(
            f"  Spearman(MAE, mean CKNNA to pretrained {f}), trained_here: " + _rho_text(*_rho(tab["mae"], tab[f]))
        )
    return out


def _tree_k(r: Release, dataset: str, stored: list[int], k: int) -> int:
    """The release's tree k (manifest settings.<dataset>.tree_k) when stored, else k when stored, else the smallest."""
    settings = (r.manifest.get("settings") or {}).get(dataset)
    tk = settings.get("tree_k") if isinstance(settings, dict) else None
    if tk in stored:
        return int(tk)
    return k if k in stored else min(stored)


def tree_clade_report(r: Release, dataset: str, k: int = 10) -> list[str]:
    """Models grouped by their first training-set tag; for each tag with >= 2 models in the stored UPGMA tree of
    CKNNA at the release's tree k: whether they form a clade (their smallest common clade holds no other model)."""
    from Bio import Phylo

    t = q.list_trees(r, dataset)
    t = t[(t["metric"] == "cknna") & (t["method"] == "upgma")]
    head = "  tree clusters by first training-set tag"
    if t.empty:
        return [f"{head}: not in this release (no UPGMA CKNNA tree on {dataset})"]
    tk = _tree_k(r, dataset, [int(v) for v in t["k"]], k)
    tree = Phylo.read(StringIO(q.tree(r, dataset, "cknna", tk, "upgma")), "newick")
    leaves = [c.name for c in tree.get_terminals()]
    tags = q.list_models(r).set_index("model_id")["training_sets"]
    groups: dict[str, list[str]] = {}
    for m in leaves:
        if len(tags[m]):
            groups.setdefault(tags[m][0], []).append(m)
    untagged = sum(1 for m in leaves if not len(tags[m]))
    out = [f"{head} (UPGMA, CKNNA k = {tk}): {len(leaves)} leaves, {untagged} without a training set"]
    for tag, ms in sorted(groups.items()):
        if len(ms) < 2:
            continue
        inside = {c.name for c in tree.common_ancestor(*ms).get_terminals()}
        extra = sorted(inside - set(ms))
        verdict = "a clade" if not extra else f"not a clade (their smallest clade also holds {', '.join(extra)})"
        out.append(f"    {tag} ({len(ms)} models): {verdict}")
    single = sorted(tag for tag, ms in groups.items() if len(ms) == 1)
    if single:
        out.append(f"    tags with one model: {', '.join(single)}")
    return out


def extra_report(r: Release, dataset: str, k: int = 10) -> list[str]:
    """The per-dataset sections on sources, energy, random-init controls, the trained-here family and tree clades."""
    out = [f"## {dataset}: sources, energy, controls, trained-here family, tree clusters"]
    out += source_report(r, dataset)
    out += energy_alignment_report(r, dataset, k)
    out += random_init_report(r, dataset, k)
    out += trained_here_report(r, dataset, k)
    out += tree_clade_report(r, dataset, k)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backend.report",
        description="Print every section of the release report (the numbers docs/FINDINGS.md quotes) as Markdown.",
    )
    parser.add_argument("release", nargs="?", help="release folder or id (default: the shipped latest)")
    parser.add_argument("--dataset", action="append", help="only this dataset (repeatable; default: every one)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    r = Release.open(args.release)
    print(f"release {r.release_id} ({r.created})")
    datasets = list(q.list_datasets(r).dataset_id)
    unknown = sorted(set(args.dataset or []) - set(datasets))
    if unknown:
        parser.error(f"dataset(s) {', '.join(unknown)} not in release {r.release_id} (it has {', '.join(datasets)})")
    datasets = [d for d in datasets if not args.dataset or d in args.dataset]
    for d in datasets:
        print("\n".join(dataset_report(r, d)))
        print("\n".join(extra_report(r, d)))
        print("\n".join(calibration_report(r, d)))
        print("\n".join(findings_report(r, d)))
    for d1, d2 in combinations(datasets, 2):
        lines = shift_report(r, d1, d2)
        if lines:
            print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
