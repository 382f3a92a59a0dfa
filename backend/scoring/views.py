"""What the dashboard shows of a score: which datasets can be scored, the ranked table, the heatmap row and column,
the tree with the new model inserted, its intrinsic dimension beside the release's."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd

from backend import queries as q
from backend.queries.matrix import _distance_matrix
from backend.release import Release
from precompute.metrics.resampling import mark_ties

from .compute import ScoreResult


def scorable_datasets(release: Release) -> pd.DataFrame:
    """Per dataset: N, the shipped list lengths and which metrics a new embedding can be scored on."""
    df = release.query(
        "SELECT d.dataset_id, d.display_name, d.n_samples, "
        "(SELECT max(rank) FROM neighbours n WHERE n.dataset_id = d.dataset_id) AS k_cosine, "
        "(SELECT count(*) FROM neighbour_similarity s WHERE s.dataset_id = d.dataset_id) > 0 AS has_similarity, "
        "(SELECT max(rank) FROM neighbours_euclidean e WHERE e.dataset_id = d.dataset_id) AS k_euclidean, "
        "(SELECT count(*) FROM samples s WHERE s.dataset_id = d.dataset_id) AS n_listed "
        "FROM datasets d ORDER BY d.dataset_id"
    )
    df = df[df["k_cosine"].notna() & (df["n_listed"] > 0)].reset_index(drop=True)

    def what(r) -> str:
        parts = [f"mutual kNN (k <= {int(r.k_cosine)})"]
        if r.has_similarity:
            parts.insert(0, f"CKNNA both orders (k <= {int(r.k_cosine)})")
        if pd.notna(r.k_euclidean):
            parts.append(f"information imbalance model -> yours (k <= {int(r.k_euclidean)})")
        return ", ".join(parts)

    df["scorable"] = [what(r) for r in df.itertuples()]
    return df


def p_text(p: float | None, n_permutations: float | None) -> str:
    """A p-value as text; at its floor 1/(P+1) it reads 'p < 1/(P+1)' (the permutations bound it, not the data)."""
    if p is None or pd.isna(p):
        return ""
    floor = 1.0 / (int(n_permutations) + 1)
    return f"< 1/{int(n_permutations) + 1}" if p <= floor + 1e-15 else f"{p:.3g}"


def ranked(release: Release, result: ScoreResult, k: int) -> pd.DataFrame:
    """The release models ranked by CKNNA(new -> model; k) (mutual kNN where a release has no similarities)."""
    t = result.table
    name = result.name
    meta = q.list_models(release).set_index("model_id")
    ck = t[(t.metric == "cknna") & (t.k == k)]
    mk = t[(t.metric == "mutual_knn") & (t.k == k)].set_index("model_b")
    ii = t[(t.metric == "info_imbalance") & (t.k == min(result.ks_ii, default=1)) & (t.model_b == name)]
    ii = ii.set_index("model_a")
    ii_col = f"info_imbalance_model_to_yours_k{min(result.ks_ii, default=1)}"
    rows = []
    for m in mk.index:
        fwd = ck[(ck.model_a == name) & (ck.model_b == m)]
        back = ck[(ck.model_a == m) & (ck.model_b == name)]
        f = fwd.iloc[0] if len(fwd) else None
        rows.append({
            "model_id": m,
            "model": meta.at[m, "display_name"] if m in meta.index else m,
            "family": meta.at[m, "family"] if m in meta.index else None,
            "cknna": None if f is None else f.value,
            "cknna_reverse": back.value.iloc[0] if len(back) else None,
            "cknna_ci_low": None if f is None else f.ci_low,
            "cknna_ci_high": None if f is None else f.ci_high,
            "cknna_calibrated": None if f is None else f.calibrated,
            "null_q95": None if f is None else f.null_q95,
            "above_null_q95": None if f is None or pd.isna(f.null_q95) else bool(f.value > f.null_q95),
            "p_value": p_text(None if f is None else f.p_value, None if f is None else f.n_permutations),
            "mutual_knn": mk.at[m, "value"],
            "mutual_knn_null_mean": mk.at[m, "null_mean"],
            ii_col: ii.at[m, "value"] if m in ii.index else None,
            f"{ii_col}_ci_low": ii.at[m, "ci_low"] if m in ii.index else None,
            f"{ii_col}_ci_high": ii.at[m, "ci_high"] if m in ii.index else None,
        })  # fmt: skip
    df = pd.DataFrame(rows)
    key = "cknna" if df["cknna"].notna().any() else "mutual_knn"
    df = df.sort_values(key, ascending=False, na_position="last").reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    if key == "cknna" and df["cknna_ci_low"].notna().any():  # ties: overlapping intervals (resampling.mark_ties)
        df.insert(1, "tie_group", mark_ties(df["cknna"], df["cknna_ci_low"], df["cknna_ci_high"]) + 1)
    return df


def matrix_with_user(release: Release, result: ScoreResult, k: int) -> pd.DataFrame:
    """The release's CKNNA matrix at k (row = A, column = B) with the new model's row and column added."""
    res = q.matrix(release, result.dataset_id, "cknna", k)
    order = [*res.order, result.name]
    M = res.matrix.reindex(index=order, columns=order)
    t = result.table
    ck = t[(t.metric == "cknna") & (t.k == k)]
    for r in ck.itertuples():
        if r.model_a in M.index and r.model_b in M.columns:
            M.loc[r.model_a, r.model_b] = r.value
    M.loc[result.name, result.name] = 1.0
    return M


def tree_with_user(release: Release, result: ScoreResult, k: int, method: str = "nj") -> str:
    """A Newick tree (Biopython) over the release models and the new one: distance 1 - mean(CKNNA both orders)."""
    from Bio import Phylo
    from Bio.Phylo.TreeConstruction import DistanceMatrix, DistanceTreeConstructor

    M = matrix_with_user(release, result, k)
    d = _distance_matrix(M, higher_is_aligned=True).to_numpy()
    names = list(M.index)
    dm = DistanceMatrix(names, [[float(d[i, j]) for j in range(i + 1)] for i in range(len(names))])
    tree = getattr(DistanceTreeConstructor(), method)(dm)
    buf = StringIO()
    Phylo.write(tree, buf, "newick")
    return buf.getvalue().strip()


def intrinsic_dim_with_user(release: Release, result: ScoreResult, bootstrap: int = 200, seed: int = 0) -> pd.DataFrame:
    """TwoNN of the new embedding (seeded bootstrap CI, as the analysis) beside the release models' TwoNN."""
    from precompute.metrics.twonn import twonn_bootstrap_ci, twonn_from_ratios, twonn_ratios

    zoo = q.intrinsic_dim(release, result.dataset_id, estimator="twonn")
    mu, n_dup = twonn_ratios(result.features, name=result.name)
    lo, hi = twonn_bootstrap_ci(mu, bootstrap, seed)
    mine = {"model_id": result.name, "estimator": "twonn", "value": twonn_from_ratios(mu), "ci_low": lo,
            "ci_high": hi, "n": int(mu.size), "n_duplicates": n_dup, "yours": True}  # fmt: skip
    out = pd.concat([zoo.assign(yours=False), pd.DataFrame([mine])], ignore_index=True)
    return out
