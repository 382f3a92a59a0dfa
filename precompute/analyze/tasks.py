"""The analysis tasks: each reads files from the dataset's work folder and writes one output file atomically.

Work folder layout (one per dataset key):
    features/ids.json, features/<model>.npy   aligned float64 rows (the samples every model embedded)
    caches/<model>.cosine.npz, .euclid.npz   neighbour caches (reused across pairs and k)
    pairs/block-<i>.json                     CKNNA (both orders), mutual kNN, CKA with CIs; their nulls, per block
    idcor/block-<i>.json                     IDCor with permutation p-values, null and CI, per block of pairs
    ii/<model>.json                          information imbalance A -> this model, every A and k, its null and CIs
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
from precompute.metrics.calibrated import calibrated_from_critical, calibrated_metric_score
from precompute.metrics.cka import cka_features
from precompute.metrics.cka_jackknife import CkaGroupParts, cka_jackknife_values, jackknife_groups, jackknife_interval
from precompute.metrics.cka_moments import CkaMomentParts, MomentNull, cka_moment_nulls
from precompute.metrics.cknna import masked_entries, self_hsic
from precompute.metrics.gride import gride_from_ratios, gride_ratios
from precompute.metrics.hsic import sparse_hsic_unbiased
from precompute.metrics.idcor import FAST_MAX_N
from precompute.metrics.information_imbalance import imbalance_from_ranks, ranks_in
from precompute.metrics.nulls import (
    cka_null_mean,
    cka_null_values,
    idcor_null_values,
    info_imbalance_null_mean,
    info_imbalance_null_values,
    knn_null_values,
    mutual_knn_null_mean,
    summarize_null,
)
from precompute.metrics.preprocess import KernelPreprocessing, clip_threshold, kernel_features
from precompute.metrics.resampling import (
    basic_interval,
    idcor_subsample_values,
    knn_subsample_values,
    subsample_cache,
    subsample_list_length,
    subsets,
)
from precompute.metrics.resampling_ii import info_imbalance_subsample_values
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
    # with resampling, enough neighbours that the subsample lists come from the cache (resampling.py)
    n_ii = max(s.ks_ii) if s.resamples <= 0 else min(X.shape[0] - 2, subsample_list_length(max(s.ks_ii)))
    euclid = build_neighbour_cache(X, max(n_ii, max(s.ks_ii)), "euclidean", **kw)
    write_npz_atomic(
        cache_path(work, model, "euclid"),
        indices=euclid.indices,
        scores=euclid.scores,
        options=np.array(json.dumps(euclid.options)),
    )
    # with resampling, enough neighbours that a half subsample's k_max lists come from the cache (resampling.py)
    length = max(s.ks_knn) if s.resamples <= 0 else min(X.shape[0] - 2, subsample_list_length(max(s.ks_knn)))
    cos = build_neighbour_cache(kernel_features(X, _prep(s), model), max(length, max(s.ks_knn)), "cosine", **kw)
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


def _null_record(metric: str, k, a: str, b: str, observed: float, values, s: AnalysisSettings, n: int,
                 closed_form_mean: float | None = None, higher: bool = True) -> dict:  # fmt: skip
    """One pairwise_null / calibration record: the null summary and the calibrated score of one ordered pair."""
    summ = summarize_null(observed, values, seed=s.seed, higher_is_aligned=higher, closed_form_mean=closed_form_mean)
    try:  # each metric's bound (IDCor and values above 1: the effect size): the rule the scoring shares
        cal = calibrated_metric_score(observed, values, metric, alpha=s.calibration_alpha)
    except ValueError as exc:
        raise ValueError(f"{metric} k={k} {a} ~ {b} (N = {n}): {exc}") from exc
    return {"metric": metric, "k": k, "model_a": a, "model_b": b, "null_mean": summ.mean, "null_std": summ.sd,
            "null_q95": summ.q95, "null_q99": summ.q99, "n_permutations": summ.n_permutations, "seed": s.seed,
            "p_value": summ.p_value, "calibrated": cal.value, "tau": cal.tau, "alpha": cal.alpha,
            "closed_form_mean": closed_form_mean, "n": n}  # fmt: skip


def _moment_null_record(metric: str, a: str, b: str, observed: float, null: MomentNull, s: AnalysisSettings,
                        n: int) -> dict:  # fmt: skip
    """A CKA null record from the exact-moment null: fitted quantiles, n_permutations = 0 (cka_moments.py)."""
    tau = null.quantile(1.0 - s.calibration_alpha)
    p = null.p_value(observed)
    try:
        cal = calibrated_from_critical(observed, tau, p, metric, alpha=s.calibration_alpha)
    except ValueError as exc:
        raise ValueError(f"{metric} {a} ~ {b} (N = {n}): {exc}") from exc
    return {"metric": metric, "k": None, "model_a": a, "model_b": b, "null_mean": null.mean, "null_std": null.sd,
            "null_q95": null.quantile(0.95), "null_q99": null.quantile(0.99), "n_permutations": 0, "seed": s.seed,
            "p_value": p, "calibrated": cal.value, "tau": cal.tau, "alpha": cal.alpha, "closed_form_mean": null.mean,
            "n": n}  # fmt: skip


def cka_groups(n: int, s: AnalysisSettings) -> np.ndarray:
    """The seeded row groups of CKA's jackknife intervals (one partition per dataset, shared by every pair)."""
    return jackknife_groups(n, min(s.resamples, n), np.random.SeedSequence([s.seed, 0x1ACC]))


def _cka_intervals(pairs, s: AnalysisSettings, feats, n: int) -> dict:
    """(metric, None, a, b) -> the θ_(-g) of CKA biased and unbiased, from the delete-a-group jackknife."""
    labels = cka_groups(n, s)
    parts = {x: CkaGroupParts(feats[x], labels, name=x) for x in sorted({x for p in pairs for x in p})}
    out = {}
    for a, b in pairs:
        for metric, v in cka_jackknife_values(parts[a], parts[b]).items():
            out[(metric, None, a, b)] = v
    return out


def resample_subsets(n: int, s: AnalysisSettings) -> list[np.ndarray]:
    """The seeded subsets behind every confidence interval of a dataset (shared by all pairs and blocks)."""
    return subsets(n, s.resamples, np.random.SeedSequence([s.seed, 0x5EB5]), m=int(n * s.resample_fraction))


def _pair_intervals(pairs, s: AnalysisSettings, caches, feats, n: int) -> tuple[dict, int]:
    """(metric, k, model_a, model_b) -> the half-sample values of the kNN metrics (resampling.py)."""
    subs = resample_subsets(n, s)
    m = subs[0].size
    ks = [k for k in s.ks_knn if k + 1 < m - 1]
    models = sorted({x for p in pairs for x in p})
    values: dict[tuple, list[float]] = {}
    for keep in subs:
        sub = {x: subsample_cache(caches[x], keep, max(ks), feats[x]) for x in models} if ks else {}
        own = {(x, k): self_hsic(sub[x], k) for x in sub for k in ks}  # one model's term, shared by its pairs
        for a, b in pairs:
            if ks:
                st = {(w, k): own[(x, k)] for w, x in (("a", a), ("b", b)) for k in ks}
                kv = knn_subsample_values(sub[a], sub[b], ks, st)
                for q, k in enumerate(ks):
                    values.setdefault(("cknna", k, a, b), []).append(kv["cknna_ab"][q])
                    values.setdefault(("cknna", k, b, a), []).append(kv["cknna_ba"][q])
                    values.setdefault(("mutual_knn", k, a, b), []).append(kv["mutual_knn"][q])
    return {key: np.asarray(v) for key, v in values.items()}, m


def task_pair_block(work: str, block: int, pairs: list[list[str]], settings: dict) -> None:
    """For each unordered pair: CKNNA both orders and mutual kNN at every k, CKA (biased, unbiased); their nulls
    and calibrated scores (null_permutations > 0; CKA's from exact moments unless cka_null = "permutations") and
    CIs (resamples > 0: half-sampling for the kNN metrics, the delete-a-group jackknife for CKA)."""
    work, s = Path(work), AnalysisSettings.from_dict(settings)
    models = sorted({m for p in pairs for m in p})
    caches = {m: load_cache(work, m, "cosine") for m in models}
    n = next(iter(caches.values())).n
    self_terms = {(m, k): self_hsic(caches[m], k) for m in models for k in s.ks_knn}
    feats = {m: kernel_features(load_features(work, m), _prep(s), m) for m in models}
    rows, nulls = [], []
    moments: dict[str, CkaMomentParts] = {}

    def moment_parts(m: str) -> CkaMomentParts:  # one model's O(N·D²) terms, shared by its pairs in the block
        if m not in moments:
            moments[m] = CkaMomentParts.of(feats[m], m)
        return moments[m]

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
    observed = {(r["metric"], r["k"], r["model_a"], r["model_b"]): r["value"] for r in rows}
    if s.null_permutations > 0:
        for a, b in pairs:
            seed = pair_seed(s.seed, a, b)
            if s.null_ks:
                st = {(w, k): self_terms[(m, k)] for w, m in (("a", a), ("b", b)) for k in s.null_ks}
                kn = knn_null_values(caches[a], caches[b], s.null_ks, s.null_permutations, seed, self_terms=st)
                for q, k in enumerate(s.null_ks):
                    for metric, ma, mb, vals, mean in (
                        ("cknna", a, b, kn["cknna_ab"][:, q], None),
                        ("cknna", b, a, kn["cknna_ba"][:, q], None),
                        ("mutual_knn", a, b, kn["mutual_knn"][:, q], mutual_knn_null_mean(n, k)),
                    ):
                        nulls.append(_null_record(metric, k, ma, mb, observed[(metric, k, ma, mb)], vals, s, n, mean))
            if s.cka_null == "moments":  # O(1) per pair from each model's terms
                fit = cka_moment_nulls(moment_parts(a), moment_parts(b))
                for metric in ("cka", "cka_unbiased"):
                    nulls.append(_moment_null_record(metric, a, b, observed[(metric, None, a, b)], fit[metric], s, n))
            else:
                cn = cka_null_values(feats[a], feats[b], s.null_permutations, seed)
                for metric, mean in (("cka", cka_null_mean(feats[a], feats[b])), ("cka_unbiased", 0.0)):
                    obs = observed[(metric, None, a, b)]
                    nulls.append(_null_record(metric, None, a, b, obs, cn[metric], s, n, mean))
    if s.resamples > 0:
        sub_values, m = _pair_intervals(pairs, s, caches, feats, n)
        for r in rows:
            vals = sub_values.get((r["metric"], r["k"], r["model_a"], r["model_b"]))
            if vals is not None:
                r["ci_low"], r["ci_high"] = basic_interval(r["value"], vals, n, m, s.ci_level)
        jack = _cka_intervals(pairs, s, feats, n)
        for r in rows:
            vals = jack.get((r["metric"], r["k"], r["model_a"], r["model_b"]))
            if vals is not None:
                r["ci_low"], r["ci_high"] = jackknife_interval(r["value"], vals, s.ci_level)
    write_json_atomic(work / "pairs" / f"block-{block:04d}.json", {"rows": rows, "nulls": nulls})


def idcor_subsample(n: int, settings: AnalysisSettings) -> np.ndarray:
    """The seeded subsample (sorted row positions) shared by every IDCor pair of a dataset."""
    if n <= settings.idcor_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(settings.seed).choice(n, settings.idcor_n, replace=False))


def task_idcor_block(work: str, block: int, pairs: list[list[str]], settings: dict) -> None:
    work, s = Path(work), AnalysisSettings.from_dict(settings)
    rows, nulls = [], []
    sub = None
    prepared: dict[str, object] = {}  # each model's z-scored subsample and its distances, shared by its pairs

    def block_of(m: str, X: np.ndarray):
        if m not in prepared and X.shape[0] <= FAST_MAX_N:
            prepared[m] = prepare_idcor(X, m)
        return prepared.get(m)

    feats: dict[str, np.ndarray] = {}  # each model's rows on the IDCor subsample, for the CIs
    for a, b in pairs:
        A, B = load_features(work, a), load_features(work, b)
        sub = idcor_subsample(A.shape[0], s) if sub is None else sub
        feats[a], feats[b] = A[sub], B[sub]
        seed = int(pair_seed(s.seed, a, b).generate_state(1)[0])
        prep = (block_of(a, A[sub]), block_of(b, B[sub]))
        res = idcor_details(A[sub], B[sub], s.idcor_permutations, seed, prepared=prep)
        if res.null_ids:
            null = idcor_null_values(res.id_a, res.id_b, res.null_ids)
            nulls.append({**_null_record("idcor", None, a, b, res.value, null, s, int(sub.size)), "seed": seed})
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
    if s.resamples > 0 and rows:
        # half-sampling on the IDCor subsample (its value is an estimate at that size); subsets seeded per dataset
        n_sub = int(sub.size)
        subs = subsets(n_sub, s.resamples, np.random.SeedSequence([s.seed, 0x1DC0]), m=int(n_sub * s.resample_fraction))
        values = idcor_subsample_values(feats, [(r["model_a"], r["model_b"]) for r in rows], subs)
        for r in rows:
            r["ci_low"], r["ci_high"] = basic_interval(r["value"], values[(r["model_a"], r["model_b"])], n_sub,
                                                       subs[0].size, s.ci_level)  # fmt: skip
    write_json_atomic(work / "idcor" / f"block-{block:04d}.json", {"rows": rows, "nulls": nulls})


def task_information_imbalance(work: str, model_b: str, models: list[str], settings: dict) -> None:
    """Δ(A → B; k) for every other model A and every k, in one tiled pass over B."""
    work, s = Path(work), AnalysisSettings.from_dict(settings)
    k_max = max(s.ks_ii)
    full = {a: load_cache(work, a, "euclid").indices for a in models if a != model_b}
    lists = {a: f[:, :k_max] for a, f in full.items()}
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
    nulls = []
    if s.null_permutations > 0 and lists:
        seeds = {a: pair_seed(s.seed, a, model_b) for a in lists}
        null, mean_rank = info_imbalance_null_values(B, lists, s.ks_ii, s.null_permutations, seeds)
        n = int(B.shape[0])
        mean = info_imbalance_null_mean(mean_rank, n)
        for r in rows:
            q = s.ks_ii.index(r["k"])
            nulls.append(_null_record("info_imbalance", r["k"], r["model_a"], model_b, r["value"],
                                      null[r["model_a"]][:, q], s, n, mean, higher=False))  # fmt: skip
    if s.resamples > 0 and lists:
        subs = resample_subsets(int(B.shape[0]), s)  # the same subsets as the pair metrics' intervals
        if max(s.ks_ii) + 1 < subs[0].size - 1:
            feats = {a: load_features(work, a) for a in lists}
            sub_values = info_imbalance_subsample_values(B, full, feats, subs, s.ks_ii)
            for r in rows:
                vals = sub_values[r["model_a"]][:, s.ks_ii.index(r["k"])]
                r["ci_low"], r["ci_high"] = basic_interval(r["value"], vals, r["n"], subs[0].size, s.ci_level)
    write_json_atomic(work / "ii" / f"{model_b}.json", {"rows": rows, "nulls": nulls})
