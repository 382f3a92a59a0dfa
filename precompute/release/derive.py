"""A derived release: a parent release plus one user-scored model, written as a new release (the parent untouched).

The user's model gets a `models` row (source `user`), its scored `pairwise` rows (CKNNA both orders, mutual kNN,
information imbalance model -> user) with their permutation nulls, its own neighbour lists (so the derived release
can be scored against in turn), its TwoNN intrinsic dimension, and trees recomputed with it where the parent's tree
k is among the scored k. CKA, IDCor and Δ(user -> model) stay absent: a release cannot compute them. The manifest
names the parent release and the SHA-256 of the uploaded file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from backend.release import Release
from backend.scoring import ScoreResult
from precompute.analyze.scoring_tables import EUCLIDEAN_K, long_lists
from precompute.metrics.neighbours import build_neighbour_cache
from precompute.metrics.twonn import twonn_bootstrap_ci, twonn_from_ratios, twonn_ratios

from .schema import MODALITIES, TABLES
from .writer import write_release

MODEL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def user_model_id(name: str) -> str:
    """A model id from a display name: lower case, runs of other characters to '-'."""
    mid = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("-.")[:64]
    if not MODEL_ID_RE.match(mid):
        raise ValueError(f"cannot make a model id from the name {name!r}; use letters and digits")
    return mid


def _deep_rows(result: ScoreResult, settings: dict, k_ship: int) -> pd.DataFrame:
    """`neighbours_deep` rows of the user's model: its cosine list beyond rank k_ship, as deep as each row needs."""
    from precompute.analyze.scoring_tables import deep_lists, deep_rows, interval_k
    from precompute.analyze.settings import AnalysisSettings
    from precompute.analyze.tasks import resample_subsets
    from precompute.metrics.preprocess import KernelPreprocessing, kernel_features

    cols = TABLES["neighbours_deep"].column_names
    known = {k: v for k, v in settings.items() if k in AnalysisSettings.__dataclass_fields__}
    s = AnalysisSettings.from_dict(known)
    ks = [k for k in s.ks_knn if k <= min(interval_k(result.n), k_ship)]
    if "resamples" not in settings or s.resamples <= 0 or not ks or result.cosine is None:
        return pd.DataFrame(columns=cols)
    feats = kernel_features(result.features, KernelPreprocessing(s.clip_quantile, s.normalize), result.name)
    subs = resample_subsets(result.n, s)
    deep = deep_lists(result.cosine.indices, result.cosine.scores, feats, subs, max(ks))
    return deep_rows(result.dataset_id, result.name, *deep, k_ship)[cols]


def _euclidean_deep_rows(result: ScoreResult, settings: dict) -> pd.DataFrame:
    """`neighbours_euclidean_deep` rows of the user's model, as scoring_tables.neighbours_euclidean_deep_table."""
    from precompute.analyze.scoring_tables import deep_euclidean_lists, deep_rows, ii_interval_k
    from precompute.analyze.settings import AnalysisSettings
    from precompute.analyze.tasks import resample_subsets
    from precompute.metrics.resampling import subsample_list_length

    cols = TABLES["neighbours_euclidean_deep"].column_names
    known = {k: v for k, v in settings.items() if k in AnalysisSettings.__dataclass_fields__}
    s = AnalysisSettings.from_dict(known)
    if "resamples" not in settings or s.resamples <= 0:
        return pd.DataFrame(columns=cols)
    subs = resample_subsets(result.n, s)
    k = ii_interval_k(s.ks_ii, subs[0].size)
    if k is None:
        return pd.DataFrame(columns=cols)
    length = max(EUCLIDEAN_K, min(result.n - 2, subsample_list_length(k)))  # the analysis' Euclidean cache length
    euc = build_neighbour_cache(result.features, length, "euclidean", name=result.name, duplicates="keep")
    depth, idx = deep_euclidean_lists(euc.indices, result.features, subs, k)
    return deep_rows(result.dataset_id, result.name, depth, idx, None, EUCLIDEAN_K)[cols]


def _parent_tables(release: Release) -> dict[str, pd.DataFrame]:
    return {t: pd.read_parquet(release.path / f"{t}.parquet") for t in release.tables}


def derive_release(
    release: Release,
    result: ScoreResult,
    out_root: Path,
    *,
    upload_sha256: str,
    modality: str,
    display_name: str | None = None,
) -> Path:
    """Write the parent release plus the scored model into `out_root`; return the new release folder."""
    if release.partial is not None:
        raise ValueError(f"release {release.release_id} was opened in part ({release.partial}); derive needs it whole")
    if modality not in MODALITIES:
        raise ValueError(f"modality {modality!r} is not one of {list(MODALITIES)}")
    ds, mid = result.dataset_id, result.name
    if not MODEL_ID_RE.match(mid):
        raise ValueError(f"model id {mid!r}: lower-case letters, digits, '.', '_', '-' only")
    tables = _parent_tables(release)
    settings = (release.manifest.get("settings") or {}).get(ds, {})
    kinds = tables["models"].set_index("model_id")["input_kind"]
    on_ds = set(tables["pairwise"].loc[tables["pairwise"].dataset_id == ds, "model_a"])
    input_kind = kinds[kinds.index.isin(on_ds)].mode().iloc[0]
    tables["models"] = pd.concat([tables["models"], pd.DataFrame([{
        "model_id": mid, "display_name": display_name or mid, "family": "user", "architecture": "user-provided embedding",
        "modality": modality, "input_kind": input_kind, "training_sets": [], "equivariance": "none", "force_head": "none",
        "params": None, "embedding_dim": int(result.features.shape[1]), "layer": "user-provided",
        "pooling": "user-provided", "source": "user", "checkpoint": None, "citation": None, "license": None,
        "card_hash": None}])], ignore_index=True)  # fmt: skip
    scored = result.table.dropna(subset=["value"])
    pw_cols = TABLES["pairwise"].column_names
    tables["pairwise"] = pd.concat([tables["pairwise"], scored[pw_cols]], ignore_index=True)
    null_cols = TABLES["pairwise_null"].column_names
    with_null = scored.dropna(subset=["null_mean"]).copy()
    if len(with_null):
        with_null["n_permutations"] = with_null["n_permutations"].astype("int64")
        with_null["seed"] = with_null["seed"].astype("int64")
        tables["pairwise_null"] = pd.concat([tables.get("pairwise_null"), with_null[null_cols]], ignore_index=True)
        if "pairwise_calibration" in tables:  # the parent carries calibration: the user's rows get theirs
            cal = with_null.rename(columns={"critical_value": "tau"}).assign(alpha=0.05)
            cal["closed_form_mean"] = [k / (result.n - 1) if m == "mutual_knn" else None
                                       for m, k in zip(cal["metric"], cal["k"], strict=True)]  # fmt: skip
            cols = TABLES["pairwise_calibration"].column_names
            tables["pairwise_calibration"] = pd.concat([tables["pairwise_calibration"], cal[cols]], ignore_index=True)
    cos = result.cosine
    k_ship = int(tables["neighbours"].loc[tables["neighbours"].dataset_id == ds, "rank"].max())
    k_cos = min(k_ship, cos.k_max)
    tables["neighbours"] = pd.concat(
        [tables["neighbours"], long_lists(ds, mid, cos.indices[:, :k_cos].astype(np.int64), "neighbour")],
        ignore_index=True,
    )
    if "neighbour_similarity" in tables:
        sim = long_lists(ds, mid, cos.scores[:, :k_cos].astype(np.float32), "similarity")
        tables["neighbour_similarity"] = pd.concat([tables["neighbour_similarity"], sim], ignore_index=True)
    if "neighbours_deep" in tables:  # the user's lists as deep as the parent's CI subsets need (scoring_tables)
        tables["neighbours_deep"] = pd.concat([tables["neighbours_deep"], _deep_rows(result, settings, k_ship)],
                                              ignore_index=True)  # fmt: skip
    if "neighbours_euclidean" in tables:
        euc = build_neighbour_cache(result.features, EUCLIDEAN_K, "euclidean", name=mid, duplicates="keep")
        tables["neighbours_euclidean"] = pd.concat(
            [tables["neighbours_euclidean"], long_lists(ds, mid, euc.indices.astype(np.int64), "neighbour")],
            ignore_index=True,
        )
    if "neighbours_euclidean_deep" in tables:  # the user's Euclidean lists as deep as the II CI subsets need
        tables["neighbours_euclidean_deep"] = pd.concat(
            [tables["neighbours_euclidean_deep"], _euclidean_deep_rows(result, settings)], ignore_index=True
        )
    mu, n_dup = twonn_ratios(result.features, name=mid)
    lo, hi = twonn_bootstrap_ci(mu, int(settings.get("bootstrap", 200)), int(settings.get("seed", 0)))
    tables["intrinsic_dim"] = pd.concat([tables["intrinsic_dim"], pd.DataFrame([{
        "dataset_id": ds, "model_id": mid, "estimator": "twonn", "value": twonn_from_ratios(mu), "ci_low": lo,
        "ci_high": hi, "n": int(mu.size), "n_duplicates": n_dup}])], ignore_index=True)  # fmt: skip
    tree_note = _retree(tables, ds, settings.get("tree_k"))
    manifest = release.manifest
    extra = {
        "inputs": [
            *manifest.get("inputs", []),
            {"name": f"{ds}/{mid}", "sha256": upload_sha256, "source": "user upload, scored by matter-align score"},
        ],  # fmt: skip
        "settings": manifest.get("settings", {}),
        "parent_release": release.release_id,
        "derived": {
            "model_id": mid,
            "dataset_id": ds,
            "upload_sha256": upload_sha256,
            "trees": tree_note,
            "not_computed": ["cka", "cka_unbiased", "idcor", "info_imbalance (user -> model)"],
        },  # fmt: skip
    }
    return write_release(tables, extra, Path(out_root), update_latest=False)


def _retree(tables: dict[str, pd.DataFrame], ds: str, tree_k: int | None) -> str:
    """Rebuild the dataset's CKNNA trees with every model, where the tree's k was scored."""
    from precompute.analyze.trees import trees_from_similarity

    pw = tables["pairwise"]
    ck = pw[(pw.dataset_id == ds) & (pw.metric == "cknna") & (pw.k == tree_k)]
    models = sorted(set(ck.model_a) | set(ck.model_b))
    S = ck.pivot(index="model_a", columns="model_b", values="value").reindex(index=models, columns=models)
    S = S.to_numpy(dtype=float, copy=True)
    np.fill_diagonal(S, 1.0)
    if tree_k is None or len(models) < 3 or np.isnan(S).any():
        return f"trees of {ds!r} kept from the parent: CKNNA at the tree's k = {tree_k} was not scored"
    trees = tables["trees"]
    keep = trees[~((trees.dataset_id == ds) & (trees.metric == "cknna") & (trees.k == tree_k))]
    new = [{"dataset_id": ds, "metric": "cknna", "k": tree_k, "method": m, "newick": nw}
           for m, nw in trees_from_similarity(models, S).items()]  # fmt: skip
    tables["trees"] = pd.concat([keep, pd.DataFrame(new)], ignore_index=True)
    return f"trees of {ds!r} rebuilt with the user's model (CKNNA, k = {tree_k})"
