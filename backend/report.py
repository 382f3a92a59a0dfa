"""The numbers behind docs/FINDINGS.md, read from a release: `python -m backend.report [RELEASE_DIR]`.

For each dataset: mean CKNNA within a family, within a modality (across families) and across modalities; the
seed-variation control (pairs of ANI-1x ensemble members) against the permutation null; intrinsic-dimension bands
per modality; the nearest neighbour of every model in the tree's distance (1 - symmetrised CKNNA); and, for datasets
sharing models, how each pair's CKNNA moves from one dataset to the other. Every number is a query of the release.
"""

from __future__ import annotations

import sys
from itertools import combinations

import numpy as np
import pandas as pd

from . import queries as q
from .release import Release


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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    r = Release.open(argv[0] if argv else None)
    print(f"release {r.release_id} ({r.created})")
    datasets = list(q.list_datasets(r).dataset_id)
    for d in datasets:
        print("\n".join(dataset_report(r, d)))
    for d1, d2 in combinations(datasets, 2):
        lines = shift_report(r, d1, d2)
        if lines:
            print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
