"""The analysis tasks: each reads files from the dataset's work folder and writes one output file atomically.

Work folder layout (one per dataset key):
    features/ids.json, features/<model>.npy   aligned float64 rows (the samples every model embedded)
    caches/<model>.cosine.npz, .euclid.npz   neighbour caches (reused across pairs and k)
    pairs/block-<i>.json                     CKNNA (both orders), mutual kNN, CKA, CKNNA null, per block of pairs
    idcor/block-<i>.json                     IDCor with permutation p-values, per block of pairs
    ii/<model>.json                          information imbalance A -> this model, for every A and k
    models/<model>.json                      TwoNN with bootstrap CI, duplicates
All inputs are plain .npy/.npz/.json (no pickle); outputs are written to a temporary file and renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np

from precompute.metrics import NeighbourCache, build_neighbour_cache, idcor_details, prepare_idcor
from precompute.metrics.cka import cka_features
from precompute.metrics.cknna import masked_entries, self_hsic
from precompute.metrics.gride import gride_from_ratios, gride_ratios
from precompute.metrics.hsic import sparse_hsic_unbiased
from precompute.metrics.idcor import FAST_MAX_N
from precompute.metrics.information_imbalance import imbalance_from_ranks, ranks_in
from precompute.metrics.preprocess import KernelPreprocessing, clip_threshold, kernel_features
from precompute.metrics.twonn import ratio_bootstrap_ci, twonn_bootstrap_ci, twonn_from_ratios, twonn_ratios

from .settings import AnalysisSettings


def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, allow_nan=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_npz_atomic(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_features(work: Path, model: str) -> np.ndarray:
    return np.load(work / "features" / f"{model}.npy", allow_pickle=False)


def cache_path(work: Path, model: str, kind: str) -> Path:
    return work / "caches" / f"{model}.{'cosine' if kind == 'cosine' else 'euclid'}.npz"


def load_cache(work: Path, model: str, kind: str) -> NeighbourCache:
    with np.load(cache_path(work, model, kind), allow_pickle=False) as z:
        options = json.loads(str(z["options"]))
        return NeighbourCache(z["indices"], z["scores"], kind, options)


def _prep(settings: AnalysisSettings) -> KernelPreprocessing:
    return KernelPreprocessing(settings.clip_quantile, settings.normalize)


# ------------------------------------------------------------------------------------------------- per model
def task_caches(work: str, model: str, settings: dict, backend: str = "numpy", device: str = "cpu") -> None:
    """Cosine cache (after the kernel preprocessing) at max(ks_knn) and Euclidean cache at max(ks_ii)."""
    work, s = Path(work), AnalysisSettings.from_dict(settings)
    X = load_features(work, model)
    kw = {"backend": backend, "device": device, "name": model, "duplicates": "keep"}
    euclid = build_neighbour_cache(X, max(s.ks_ii), "euclidean", **kw)
    write_npz_atomic(
        cache_path(work, model, "euclid"),
        indices=euclid.indices,
        scores=euclid.scores,
        options=np.array(json.dumps(euclid.options)),
    )
    cos = build_neighbour_cache(kernel_features(X, _prep(s), model), max(s.ks_knn), "cosine", **kw)
    options = {**cos.options, **_prep(s).as_dict()}
    if s.clip_quantile is not None:  # 0 means clipping was skipped (sparse features): recorded, not hidden
        options["clip_threshold"] = clip_threshold(X, s.clip_quantile)
    write_npz_atomic(
        cache_path(work, model, "cosine"), indices=cos.indices, scores=cos.scores, options=np.array(json.dumps(options))
    )


def task_model_stats(work: str, model: str, settings: dict) -> None:
    """TwoNN and GRIDE intrinsic dimension with seeded bootstrap CIs; the number of duplicate rows removed."""
    work, s = Path(work), AnalysisSettings.from_dict(settings)
    X = load_features(work, model)
    mu, n_dup = twonn_ratios(X, name=model)
    lo, hi = twonn_bootstrap_ci(mu, s.bootstrap, s.seed)
    rows = [{"model_id": model, "estimator": "twonn", "value": twonn_from_ratios(mu), "ci_low": lo, "ci_high": hi,
             "n": int(mu.size), "n_duplicates": n_dup}]  # fmt: skip
    skipped = None
    if mu.size > 2 * s.gride_n1 + 1:
        mu_g, _ = gride_ratios(X, s.gride_n1, name=model)
        fit = lambda m: gride_from_ratios(m, s.gride_n1)  # noqa: E731
        try:
            value = fit(mu_g)
            lo, hi = ratio_bootstrap_ci(mu_g, fit, s.bootstrap, s.seed)
            rows.append({"model_id": model, "estimator": "gride", "value": value, "ci_low": lo, "ci_high": hi,
                         "n": int(mu_g.size), "n_duplicates": n_dup})  # fmt: skip
        except ValueError as exc:  # discrete representations (fingerprints): tied distances at that scale
            skipped = f"gride not reported: {exc}"
    write_json_atomic(work / "models" / f"{model}.json", {"rows": rows, "bootstrap": s.bootstrap, "seed": s.seed,
                                                           "gride_n1": s.gride_n1, "skipped": skipped})  # fmt: skip


# ------------------------------------------------------------------------------------------------- per pair block
def pair_seed(seed: int, a: str, b: str) -> np.random.SeedSequence:
    """A seed per (run seed, pair), independent of block layout and order of execution."""
    return np.random.SeedSequence([seed, zlib.crc32(f"{a}\x00{b}".encode())])


def permuted_cache(cache: NeighbourCache, perm: np.ndarray) -> NeighbourCache:
    """The cache of B[perm], by re-indexing: row i of B[perm] is row perm[i] of B, neighbour j -> inv[j]."""
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    return NeighbourCache(inv[cache.indices[perm]], cache.scores[perm], cache.kind, cache.options)


def task_pair_block(work: str, block: int, pairs: list[list[str]], settings: dict) -> None:
    """For each unordered pair: CKNNA both orders and mutual kNN at every k, CKA (biased, unbiased), CKNNA null."""
    work, s = Path(work), AnalysisSettings.from_dict(settings)
    models = sorted({m for p in pairs for m in p})
    caches = {m: load_cache(work, m, "cosine") for m in models}
    n = next(iter(caches.values())).n
    self_terms = {(m, k): self_hsic(caches[m], k) for m in models for k in s.ks_knn}
    feats = {m: kernel_features(load_features(work, m), _prep(s), m) for m in models}
    rows, nulls = [], []
    for a, b in pairs:
        for k in s.ks_knn:
            r, c, x, y = masked_entries(caches[a], caches[b], k)
            denom = float(np.sqrt(self_terms[(a, k)] * self_terms[(b, k)]))
            for ma, mb, val in (
                (a, b, sparse_hsic_unbiased(r, c, x, y, n)),
                (b, a, sparse_hsic_unbiased(r, c, y, x, n)),
            ):
                rows.append({"metric": "cknna", "k": k, "model_a": ma, "model_b": mb, "value": val / denom, "n": n})
            rows.append({"metric": "mutual_knn", "k": k, "model_a": a, "model_b": b, "value": r.size / (n * k), "n": n})
        for unbiased in (False, True):
            rows.append(
                {
                    "metric": "cka_unbiased" if unbiased else "cka",
                    "k": None,
                    "model_a": a,
                    "model_b": b,
                    "value": float(cka_features(feats[a], feats[b], unbiased)),
                    "n": n,
                }  # fmt: skip
            )
        rng = np.random.default_rng(pair_seed(s.seed, a, b))
        for k in s.null_ks:
            null_ab, null_ba = [], []
            denom = float(np.sqrt(self_terms[(a, k)] * self_terms[(b, k)]))
            for _ in range(s.null_permutations):
                cb = permuted_cache(caches[b], rng.permutation(n))
                r, c, x, y = masked_entries(caches[a], cb, k)
                null_ab.append(sparse_hsic_unbiased(r, c, x, y, n) / denom)
                null_ba.append(sparse_hsic_unbiased(r, c, y, x, n) / denom)
            for ma, mb, null in ((a, b, null_ab), (b, a, null_ba)):
                nulls.append(
                    {
                        "metric": "cknna",
                        "k": k,
                        "model_a": ma,
                        "model_b": mb,
                        "null_mean": float(np.mean(null)),
                        "null_std": float(np.std(null)),
                        "null_q95": float(np.quantile(null, 0.95)),
                        "null_values": [float(v) for v in null],
                        "n_permutations": s.null_permutations,
                        "seed": s.seed,
                        "n": n,
                    }  # fmt: skip
                )
    write_json_atomic(work / "pairs" / f"block-{block:04d}.json", {"rows": rows, "nulls": nulls})


def idcor_subsample(n: int, settings: AnalysisSettings) -> np.ndarray:
    """The seeded subsample (sorted row positions) shared by every IDCor pair of a dataset."""
    if n <= settings.idcor_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(settings.seed).choice(n, settings.idcor_n, replace=False))


def task_idcor_block(work: str, block: int, pairs: list[list[str]], settings: dict) -> None:
    work, s = Path(work), AnalysisSettings.from_dict(settings)
    rows = []
    sub = None
    prepared: dict[str, object] = {}  # each model's z-scored subsample and its distances, shared by its pairs

    def block_of(m: str, X: np.ndarray):
        if m not in prepared and X.shape[0] <= FAST_MAX_N:
            prepared[m] = prepare_idcor(X, m)
        return prepared.get(m)

    for a, b in pairs:
        A, B = load_features(work, a), load_features(work, b)
        sub = idcor_subsample(A.shape[0], s) if sub is None else sub
        seed = int(pair_seed(s.seed, a, b).generate_state(1)[0])
        prep = (block_of(a, A[sub]), block_of(b, B[sub]))
        res = idcor_details(A[sub], B[sub], s.idcor_permutations, seed, prepared=prep)
        rows.append(
            {
                "metric": "idcor",
                "k": None,
                "model_a": a,
                "model_b": b,
                "value": res.value,
                "p_value": res.p_value,
                "n": int(sub.size),
                "id_a": res.id_a,
                "id_b": res.id_b,
                "id_joint": res.id_joint,
                "seed": seed,
            }  # fmt: skip
        )
    write_json_atomic(work / "idcor" / f"block-{block:04d}.json", {"rows": rows})


def task_information_imbalance(work: str, model_b: str, models: list[str], settings: dict) -> None:
    """Δ(A → B; k) for every other model A and every k, in one tiled pass over B."""
    work, s = Path(work), AnalysisSettings.from_dict(settings)
    k_max = max(s.ks_ii)
    lists = {a: load_cache(work, a, "euclid").prefix(k_max)[0] for a in models if a != model_b}
    B = load_features(work, model_b)
    ranks = ranks_in(B, lists)
    rows = [
        {
            "metric": "info_imbalance",
            "k": k,
            "model_a": a,
            "model_b": model_b,
            "value": imbalance_from_ranks(r, k),
            "n": int(B.shape[0]),
        }  # fmt: skip
        for a, r in ranks.items()
        for k in s.ks_ii
    ]
    write_json_atomic(work / "ii" / f"{model_b}.json", {"rows": rows})
