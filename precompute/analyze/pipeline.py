"""`analyze` for one dataset: aligned features -> neighbour caches -> pair blocks -> tables.

Phase 1 (per model): neighbour caches and TwoNN. Phase 2 (per block of pairs, per model for the information
imbalance): everything else, from the caches. Each task writes its own file, so the run is resumable and the
tasks can go to any executor. `collect_tables` turns the task files into the release tables of this dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from .executor import Task, run_tasks
from .scoring_tables import (
    neighbour_similarity_table,
    neighbours_deep_table,
    neighbours_euclidean_deep_table,
    neighbours_euclidean_table,
    shipped_cosine_k,
)
from .settings import AnalysisSettings
from .tasks import (
    task_caches,
    task_idcor_block,
    task_information_imbalance,
    task_model_stats,
    task_pair_block,
    write_json_atomic,
)
from .trees import trees_from_similarity

PAIRWISE_COLUMNS = ["dataset_id", "metric", "k", "model_a", "model_b", "value", "ci_low", "ci_high", "p_value", "n"]


def prepare_features(
    work: Path,
    embeddings: Mapping[str, tuple[Sequence[str], np.ndarray]],
    *,
    min_samples: int = 8,
    limit: int | None = None,
) -> list[str]:
    """Write the rows every model embedded, in the first model's order, as float64 .npy; returns the shared ids.

    Samples a model could not embed are dropped for every model (so all pairs compare the same samples); the
    counts are recorded in features/meta.json. A model whose rows differ from a previous run's, or a different model
    list, is an error: delete the work folder to start over.
    """
    work = Path(work)
    models = list(embeddings)
    if len(models) < 2:
        raise ValueError(f"analysis needs at least 2 models, got {models}")
    first_ids = list(embeddings[models[0]][0])
    shared = set(first_ids)
    for m in models[1:]:
        shared &= set(embeddings[m][0])
    ids = [s for s in first_ids if s in shared]
    if limit is not None:  # the first `limit` shared samples, in dataset order (a seeded prefix stays seeded)
        ids = ids[:limit]
    if len(ids) < min_samples:
        raise ValueError(f"only {len(ids)} samples were embedded by every model ({models}); need >= {min_samples}")
    feat = work / "features"
    feat.mkdir(parents=True, exist_ok=True)
    ids_file = feat / "ids.json"
    if ids_file.exists() and json.loads(ids_file.read_text()) != ids:
        raise ValueError(f"{work}: the shared samples differ from the previous run's; use a new work folder")
    meta_file = feat / "meta.json"
    if meta_file.exists() and sorted(before := json.loads(meta_file.read_text())["models"]) != sorted(models):
        # the pair blocks and information-imbalance tasks are planned for one model set and resumed by file: a
        # changed set would silently keep the old blocks and miss the new pairs (the same set reordered is complete)
        raise ValueError(f"{work}: the previous run analysed models {before}, this run asks for {models}; "
                         "use a new work folder (--work) for a different model set")  # fmt: skip
    meta = {"models": models, "n_shared": len(ids), "per_model": {}}
    for m in models:
        mids, X = embeddings[m]
        pos = {s: i for i, s in enumerate(mids)}
        rows = np.asarray([pos[s] for s in ids], dtype=np.intp)
        arr = np.ascontiguousarray(np.asarray(X, dtype=np.float64)[rows])
        if not np.isfinite(arr).all():
            r = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise ValueError(f"{m}: embedding of sample {ids[r]} is not finite")
        path = feat / f"{m}.npy"
        if path.exists():
            if not np.array_equal(np.load(path, allow_pickle=False), arr):
                raise ValueError(f"{work}: embeddings of {m} changed since the previous run; use a new work folder")
        else:
            np.save(path, arr)
        meta["per_model"][m] = {"embedded": len(mids), "dim": int(arr.shape[1]), "dropped": len(mids) - len(ids),
                                **repeated_rows(arr, ids)}  # fmt: skip
    if not ids_file.exists():
        write_json_atomic(ids_file, ids)
        write_json_atomic(feat / "meta.json", meta)
    return ids


def repeated_rows(X: np.ndarray, ids: Sequence[str]) -> dict[str, object]:
    """How many rows repeat an earlier row exactly (a composition-only model on polymorphs, a fingerprint on
    stereoisomers), in how many groups, and the first such pair of sample ids. The analysis keeps them: their
    neighbour order is the lower-index rule (precompute/metrics/neighbours.py), TwoNN drops them and counts them."""
    _, first, inverse = np.unique(X, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    later = np.flatnonzero(first[inverse] != np.arange(X.shape[0]))
    if later.size == 0:
        return {"repeated_rows": 0, "repeated_groups": 0, "repeated_example": None}
    j = int(later[0])
    groups = int(np.unique(inverse[later]).size)
    return {"repeated_rows": int(later.size), "repeated_groups": groups,
            "repeated_example": [ids[int(first[inverse[j]])], ids[j]]}  # fmt: skip


def repeated_rows_notes(work: Path) -> list[str]:
    """One line per model of this analysis whose rows repeat (from features/meta.json), for the CLI."""
    meta = json.loads((Path(work) / "features" / "meta.json").read_text())
    out = []
    for m, info in meta["per_model"].items():
        if info.get("repeated_rows"):
            a, b = info["repeated_example"]
            out.append(f"note: {m}: {info['repeated_rows']} of {meta['n_shared']} rows repeat an earlier row "
                       f"({info['repeated_groups']} groups; e.g. {b} = {a}); kept: ties among them are broken by "
                       "sample order (lower index first), TwoNN counts them as duplicates")  # fmt: skip
    return out


def plan_tasks(
    work: Path, models: list[str], settings: AnalysisSettings, *, block_size: int = 40, backend: str = "numpy",
    device: str = "cpu",
) -> tuple[list[Task], list[Task]]:  # fmt: skip
    work = Path(work)
    sd = settings.as_dict()
    phase1 = []
    for m in models:
        phase1.append(Task(f"caches:{m}", task_caches, {"work": str(work), "model": m, "settings": sd, "backend": backend,
                                                          "device": device}, work / "caches" / f"{m}.cosine.npz"))  # fmt: skip
        phase1.append(Task(f"twonn:{m}", task_model_stats, {"work": str(work), "model": m, "settings": sd},
                           work / "models" / f"{m}.json"))  # fmt: skip
    pairs = [list(p) for p in combinations(models, 2)]
    blocks = [pairs[i : i + block_size] for i in range(0, len(pairs), block_size)]
    phase2 = []
    for i, block in enumerate(blocks):
        phase2.append(Task(f"pairs:{i}", task_pair_block, {"work": str(work), "block": i, "pairs": block, "settings": sd},
                           work / "pairs" / f"block-{i:04d}.json"))  # fmt: skip
        if settings.idcor_permutations >= 0:
            phase2.append(Task(f"idcor:{i}", task_idcor_block, {"work": str(work), "block": i, "pairs": block,
                                                                 "settings": sd}, work / "idcor" / f"block-{i:04d}.json"))  # fmt: skip
    for m in models:
        phase2.append(Task(f"ii:{m}", task_information_imbalance, {"work": str(work), "model_b": m, "models": models,
                                                                    "settings": sd}, work / "ii" / f"{m}.json"))  # fmt: skip
    return phase1, phase2


def run_analysis(
    work: Path,
    embeddings: Mapping[str, tuple[Sequence[str], np.ndarray]],
    settings: AnalysisSettings | None = None,
    *,
    jobs: int = 1,
    executor=None,
    progress: bool = False,
    backend: str = "numpy",
    device: str = "cpu",
    limit: int | None = None,
) -> AnalysisSettings:
    """Prepare features and run every task not yet done. Returns the settings actually used (k values valid at N).

    limit: analyse only the first `limit` samples that every model embedded (in dataset order).
    """
    work = Path(work)
    ids = prepare_features(work, embeddings, limit=limit)
    settings = (settings or AnalysisSettings()).clipped_to(len(ids))
    settings_file = work / "settings.json"
    if settings_file.exists():
        if json.loads(settings_file.read_text()) != settings.as_dict():
            raise ValueError(f"{work}: settings differ from the previous run's; use a new work folder")
    else:
        write_json_atomic(settings_file, settings.as_dict())
    models = list(embeddings)
    phase1, phase2 = plan_tasks(work, models, settings, backend=backend, device=device)
    run_tasks(phase1, jobs, executor, progress)
    run_tasks(phase2, jobs, executor, progress)
    return settings


def _json_rows(folder: Path, key: str) -> list[dict]:
    rows = []
    for f in sorted(folder.glob("*.json")):
        rows.extend(json.loads(f.read_text())[key])
    return rows


def collect_tables(work: Path, dataset_id: str) -> dict[str, pd.DataFrame]:
    """pairwise, pairwise_null, intrinsic_dim and trees for this dataset, from the task outputs."""
    work = Path(work)
    settings = AnalysisSettings.from_dict(json.loads((work / "settings.json").read_text()))
    models = json.loads((work / "features" / "meta.json").read_text())["models"]
    rows = _json_rows(work / "pairs", "rows") + _json_rows(work / "ii", "rows")
    idcor = _json_rows(work / "idcor", "rows") if (work / "idcor").exists() else []
    nulls = _json_rows(work / "pairs", "nulls") + _json_rows(work / "ii", "nulls")
    if (work / "idcor").exists():
        nulls += _json_rows(work / "idcor", "nulls")
    idcor_cols = ("metric", "k", "model_a", "model_b", "value", "p_value", "n", "ci_low", "ci_high")
    pairwise = pd.DataFrame(rows + [{k: r[k] for k in idcor_cols if k in r} for r in idcor])
    pairwise["dataset_id"] = dataset_id
    for col in ("ci_low", "ci_high", "p_value"):
        if col not in pairwise:
            pairwise[col] = None
    # p-value of every value with a null: (1 + #{null at least as aligned}) / (P + 1), from the task's summary
    norm_k = lambda k: None if k is None or pd.isna(k) else int(k)  # noqa: E731  (CKA's k reads back as NaN)
    null_index = {(r["metric"], norm_k(r["k"]), r["model_a"], r["model_b"]): r for r in nulls}
    pairwise["p_value"] = [
        null_index[key]["p_value"] if key in null_index else p
        for key, p in zip(
            zip(pairwise.metric, map(norm_k, pairwise.k), pairwise.model_a, pairwise.model_b, strict=True),
            pairwise.p_value,
            strict=True,
        )  # fmt: skip
    ]
    pairwise["k"] = pairwise["k"].astype("Int64")
    pairwise = pairwise[PAIRWISE_COLUMNS]
    null_cols = [
        "metric",
        "k",
        "model_a",
        "model_b",
        "null_mean",
        "null_std",
        "null_q95",
        "n_permutations",
        "seed",
        "n",
    ]
    cal_cols = ["metric", "k", "model_a", "model_b", "calibrated", "tau", "alpha", "null_q99", "p_value",
                "closed_form_mean", "n_permutations", "seed"]  # fmt: skip
    null_df = pd.DataFrame([{c: r[c] for c in null_cols} for r in nulls], columns=null_cols)
    calibration = pd.DataFrame([{c: r[c] for c in cal_cols} for r in nulls], columns=cal_cols)
    for df in (null_df, calibration):
        df.insert(0, "dataset_id", dataset_id)
        df["k"] = df["k"].astype("Int64")
    intrinsic = pd.DataFrame(_json_rows(work / "models", "rows"))
    intrinsic["dataset_id"] = dataset_id
    intrinsic = intrinsic[["dataset_id", "model_id", "estimator", "value", "ci_low", "ci_high", "n", "n_duplicates"]]
    trees = []
    if len(models) >= 3:
        ck = pairwise[(pairwise.metric == "cknna") & (pairwise.k == settings.tree_k)]
        S = ck.pivot(index="model_a", columns="model_b", values="value").reindex(index=models, columns=models)
        S = S.to_numpy(dtype=float, copy=True)
        np.fill_diagonal(S, 1.0)
        for method, newick in trees_from_similarity(models, S).items():
            trees.append({"dataset_id": dataset_id, "metric": "cknna", "k": settings.tree_k, "method": method,
                          "newick": newick})  # fmt: skip
    k_ship = shipped_cosine_k(int(pairwise["n"].max()))
    return {"pairwise": pairwise, "pairwise_null": null_df, "pairwise_calibration": calibration, "intrinsic_dim": intrinsic, "trees": pd.DataFrame(trees),
            "neighbours": neighbours_table(work, dataset_id, models, k_ship),
            "neighbour_similarity": neighbour_similarity_table(work, dataset_id, models, k_ship),
            "neighbours_euclidean": neighbours_euclidean_table(work, dataset_id, models),
            "neighbours_deep": neighbours_deep_table(work, dataset_id, models, settings.as_dict(), k_ship),
            "neighbours_euclidean_deep": neighbours_euclidean_deep_table(work, dataset_id, models, settings.as_dict())}  # fmt: skip


SHIPPED_NEIGHBOURS_K = 10


def neighbours_table(work: Path, dataset_id: str, models: list[str], k: int = SHIPPED_NEIGHBOURS_K) -> pd.DataFrame:
    """Each model's k nearest neighbours (cosine cache, the one behind CKNNA and mutual kNN) in long form, so that a
    release carries enough to recompute mutual kNN at any k' <= k without the embeddings."""
    from .tasks import load_cache

    parts = []
    for m in models:
        idx = load_cache(Path(work), m, "cosine").indices
        kk = min(k, idx.shape[1])
        n = idx.shape[0]
        parts.append(pd.DataFrame({"dataset_id": dataset_id, "model_id": m,
                                   "position": np.repeat(np.arange(n, dtype=np.int64), kk),
                                   "rank": np.tile(np.arange(1, kk + 1, dtype=np.int64), n),
                                   "neighbour": idx[:, :kk].astype(np.int64).ravel()}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)
