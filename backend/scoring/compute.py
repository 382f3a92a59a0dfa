"""Score a new embedding against every model of a release, exactly as the analysis would.

For a user embedding U of the dataset's N samples (rows in `samples.position` order) and each release model M:

- CKNNA(U, M; k) and CKNNA(M, U; k) (docs/METRICS.md): M's side is its cosine k-lists with their similarities
  K_ij from `neighbours` + `neighbour_similarity`; U's side is U's own exact cosine cache after the same kernel
  preprocessing as the release (its manifest's clip quantile and normalisation). Sparse unbiased HSIC needs only
  the entries inside the k-lists, so both orders are exact for every k <= the shipped list length.
- mutual kNN(U, M; k) from the two index lists.
- information imbalance Δ(M -> U; k) = 2/(N² k) Σ_i Σ_{j in N_k^M(i)} rank_U(i, j), from M's Euclidean lists
  (`neighbours_euclidean`) and U's raw Euclidean distances. Δ(U -> M) needs M's distances: not computable.
- CKA, unbiased CKA, IDCor: need M's embeddings: not computable from a release; a row says so, nothing is
  approximated.

Null: the rows of U permuted (seeded), by re-indexing U's cache (O(N·k) per permutation) for the kNN metrics and in
one tiled pass over U for information imbalance; p-value (1 + #{null at least as aligned}) / (P + 1); calibrated
score and critical value as precompute.metrics.calibrated (Gröger et al. 2026, Algorithm 1).
Confidence intervals (intervals.py): the analysis' half-sampling CIs of CKNNA and mutual kNN, equal to its own, at
the k the release's `neighbours_deep` lists cover (k <= 5 where N > 5,000, else k <= 10), and of Δ(M -> U) at every
shipped II k where the release has `neighbours_euclidean_deep`; every other scored row has empty ci_low / ci_high
and a note saying why. Δ(U -> M) has no value, hence no interval.

Speed (fast.py): the upload's cosine cache takes its candidates from a float32 product with a rigorous error bound
(exact result), its Euclidean ranks use one vectorised search per tile, every k comes from one intersection, and
the release's lists and self terms are read once per release; each fast path is tested equal to the analysis' own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend.release import Release
from precompute.analyze.scoring_tables import interval_k
from precompute.analyze.tasks import permuted_cache
from precompute.metrics.calibrated import calibrated_metric_score
from precompute.metrics.hsic import sparse_hsic_unbiased
from precompute.metrics.information_imbalance import imbalance_from_ranks
from precompute.metrics.neighbours import NeighbourCache
from precompute.metrics.nulls import info_imbalance_null_values
from precompute.metrics.preprocess import KernelPreprocessing, kernel_features
from precompute.metrics.resampling import subsample_list_length

from .fast import cosine_cache, euclidean_ranks, self_hsic_lists
from .inputs import ScoringInputError, align_to_samples, duplicate_rows
from .intervals import II_SHORT_NOTE, II_SMALL_NOTE, ii_intervals, interval_settings, pair_intervals
from .zoo import ScoringDataError, deep_euclidean_lists, deep_lists, zoo_lists

NOT_COMPUTABLE = {
    "cka": "needs the release model's embeddings, which a release does not hold",
    "cka_unbiased": "needs the release model's embeddings, which a release does not hold",
    "idcor": "needs the release model's embeddings, which a release does not hold",
}
II_REVERSE_NOTE = "Δ(new -> model) needs the release model's distances, which a release does not hold"
COLUMNS = ["dataset_id", "metric", "k", "model_a", "model_b", "value", "ci_low", "ci_high", "p_value", "n",
           "null_mean", "null_std", "null_q95", "n_permutations", "seed", "calibrated", "critical_value", "null_q99", "note"]  # fmt: skip


@dataclass(frozen=True)
class ScoreResult:
    """The score table and what went into it."""

    table: pd.DataFrame
    dataset_id: str
    name: str
    n: int
    n_duplicates: int
    ks_knn: tuple[int, ...]
    ks_ii: tuple[int, ...]
    seconds: float
    features: np.ndarray = field(repr=False)  # the embedding, rows in sample order (as scored)
    cosine: NeighbourCache | None = field(default=None, repr=False)  # its cosine cache after the preprocessing


def dataset_samples(release: Release, dataset: str) -> list[str]:
    """The dataset's sample ids in embedding order (`samples.position`)."""
    df = release.query("SELECT position, sample_id FROM samples WHERE dataset_id = ? ORDER BY position", [dataset])
    if not len(df):
        raise ScoringDataError(f"release {release.release_id} has no samples table rows for dataset {dataset!r}")
    if not np.array_equal(df["position"].to_numpy(), np.arange(len(df))):
        raise ScoringDataError(f"samples of {dataset!r} do not cover positions 0..{len(df) - 1}")
    return df["sample_id"].tolist()


def _settings(release: Release, dataset: str) -> dict:
    s = (release.manifest.get("settings") or {}).get(dataset)
    if not isinstance(s, dict) or "ks_knn" not in s:
        raise ScoringDataError(f"release {release.release_id}: no analysis settings recorded for {dataset!r}")
    return s


def _pair_values(u: NeighbourCache, m: NeighbourCache, ks: tuple[int, ...], h_u: dict, h_m: dict | None) -> np.ndarray:
    """(len(ks), 3): CKNNA(U, M), CKNNA(M, U), mutual kNN at each k, from one intersection of the k_max lists
    (the entries of a smaller k are those with both ranks < k, in the same order: the same sums as per k).
    The CKNNAs are NaN when M has no similarities (h_m None)."""
    n, kmax = u.n, max(ks)
    ia, va = u.prefix(kmax)
    ib, vb = m.prefix(kmax)
    # the entries of both lists, as np.intersect1d of the keys i·N + j would give them (sorted by key), from one
    # (N, k, k) comparison instead of sorting 2·N·k keys
    i, ra, rb = np.nonzero(ia[:, :, None] == ib[:, None, :])
    c = ia[i, ra]
    order = np.argsort(i * n + c, kind="stable")
    r, c, ra, rb = i[order], c[order], ra[order], rb[order]
    x, y = va[r, ra], vb[r, rb]
    out = np.full((len(ks), 3), np.nan)
    for q, k in enumerate(ks):
        sel = (ra < k) & (rb < k)
        out[q, 2] = np.count_nonzero(sel) / (n * k)
        if h_m is not None:
            denom = np.sqrt(h_u[k] * h_m[k])
            out[q, 0] = sparse_hsic_unbiased(r[sel], c[sel], x[sel], y[sel], n) / denom
            out[q, 1] = sparse_hsic_unbiased(r[sel], c[sel], y[sel], x[sel], n) / denom
    return out


def score_embeddings(
    release: Release,
    dataset: str,
    X: np.ndarray,
    name: str,
    *,
    sample_ids: list[str] | None = None,
    label: str = "embeddings",
    permutations: int = 20,
    seed: int = 0,
    models: list[str] | None = None,
    intervals: bool = True,
    imbalance_intervals: bool | None = None,
) -> ScoreResult:
    """Score X (N rows; with `sample_ids`, any order) against every model of `dataset` in the release.

    intervals: the half-sampling CIs where the release ships the lists they need; imbalance_intervals (default: as
    intervals) the information-imbalance ones among them, whose single pass over the upload costs more than all
    the other values together at QM9 size (docs/SCORING.md): the dashboard asks for them with a checkbox."""
    t0 = time.perf_counter()
    if not isinstance(name, str) or not name.strip():
        raise ScoringInputError("the model needs a name")
    if permutations < 0:
        raise ScoringInputError(f"permutations must be >= 0, got {permutations}")
    order = dataset_samples(release, dataset)
    n = len(order)
    X = align_to_samples(np.asarray(X, dtype=np.float64), sample_ids, order, label, dataset)
    zoo = zoo_lists(release, dataset, n)
    if models is not None:
        unknown = sorted(set(models) - set(zoo))
        if unknown:
            raise ScoringInputError(f"model(s) {unknown} have no scoring data on {dataset!r}")
        zoo = {m: zoo[m] for m in models}
    if name in zoo:
        raise ScoringInputError(f"name {name!r} is already a model of the release; choose another")
    s = _settings(release, dataset)
    prep = KernelPreprocessing(s.get("clip_quantile"), bool(s.get("normalize", True)))
    k_cos = min(z.cosine_indices.shape[1] for z in zoo.values())
    ks_knn = tuple(k for k in s["ks_knn"] if k <= k_cos and n > k + 1)
    if not ks_knn:
        raise ScoringInputError(f"dataset {dataset!r} (N = {n}) has no k the release's lists allow")
    ci = interval_settings(s) if intervals else None
    ks_ci = tuple(k for k in ks_knn if k <= min(interval_k(n), k_cos)) if ci is not None else ()
    deep = deep_lists(release, dataset, zoo) if ks_ci else {}
    length = min(n - 2, max(max(ks_knn), subsample_list_length(max(ks_ci)))) if deep else max(ks_knn)
    with_euclid = {m: z.euclidean_indices for m, z in zoo.items() if z.euclidean_indices is not None}
    ks_ii: tuple[int, ...] = ()
    if with_euclid:
        k_euc = min(e.shape[1] for e in with_euclid.values())
        ks_ii = tuple(k for k in s.get("ks_ii", ()) if k <= k_euc and n > k + 1)
    lists = {m: e[:, : max(ks_ii)].astype(np.int64) for m, e in with_euclid.items()} if ks_ii else {}
    feats = kernel_features(X, prep, name)
    user = cosine_cache(feats, length, name=name)  # = build_neighbour_cache(..., duplicates="keep"), faster
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n) for _ in range(permutations)]
    rows: list[dict] = []
    base = {"dataset_id": dataset, "n": n, "ci_low": None, "ci_high": None}
    caches = {
        m: NeighbourCache(
            z.cosine_indices,
            z.cosine_similarity if z.cosine_similarity is not None else np.zeros(z.cosine_indices.shape),
            "cosine",
        )
        for m, z in zoo.items()
    }
    # a permutation relabels rows: the self term of U[perm] is U's
    h_u = {k: self_hsic_lists(user.indices, user.scores, k) for k in ks_knn}
    permuted = [permuted_cache(user, p) for p in perms]
    for m, z in zoo.items():
        h_m = None
        if z.cosine_similarity is not None:  # depends on the release only: kept with its cached lists
            for k in ks_knn:
                if k not in z.self_terms:
                    z.self_terms[k] = self_hsic_lists(z.cosine_indices, caches[m].scores, k)
            h_m = {k: z.self_terms[k] for k in ks_knn}
        obs = _pair_values(user, caches[m], ks_knn, h_u, h_m)
        null = np.array([_pair_values(pc, caches[m], ks_knn, h_u, h_m) for pc in permuted]).reshape(-1, len(ks_knn), 3)
        for q, k in enumerate(ks_knn):
            ab, ba, mutual = obs[q]
            if h_m is not None:
                for a, b, v, col in ((name, m, ab, 0), (m, name, ba, 1)):
                    rows.append({**base, "metric": "cknna", "k": k, "model_a": a, "model_b": b, "value": float(v),
                                 **_null(v, null[:, q, col], seed, "cknna")})  # fmt: skip
            rows.append({**base, "metric": "mutual_knn", "k": k, "model_a": name, "model_b": m,
                         "value": float(mutual), **_null(mutual, null[:, q, 2], seed, "mutual_knn")})  # fmt: skip
    if deep:
        values = {(r["metric"], r["k"], r["model_a"], r["model_b"]): r["value"] for r in rows}
        iv = pair_intervals(ci, user, feats, deep, ks_ci, values, name)
        for r in rows:
            r["ci_low"], r["ci_high"] = iv.get((r["metric"], r["k"], r["model_a"], r["model_b"]), (None, None))
    if ks_ii:
        ranks = euclidean_ranks(X, lists)  # = ranks_in, faster
        ii_null = {}
        if permutations:  # rows of U permuted: the same permutations for every model, one pass over U
            ii_null, _ = info_imbalance_null_values(X, lists, ks_ii, permutations, {m: seed for m in lists})
        ii_rows = []
        for m, r in ranks.items():
            for j, k in enumerate(ks_ii):
                v = imbalance_from_ranks(r, k)
                null = ii_null[m][:, j] if m in ii_null else np.zeros(0)
                ii_rows.append({**base, "metric": "info_imbalance", "k": k, "model_a": m, "model_b": name,
                                "value": v, **_null(v, null, seed, "info_imbalance")})  # fmt: skip
        # the analysis' II intervals, from the lists continued as deep as its subsets need
        want_ii = intervals if imbalance_intervals is None else imbalance_intervals
        if ci is not None and want_ii:
            deep_euc = deep_euclidean_lists(release, dataset, {m: zoo[m] for m in lists})
            values = {(r["metric"], r["k"], r["model_a"], r["model_b"]): r["value"] for r in ii_rows}
            iv = ii_intervals(ci, X, deep_euc, ks_ii, values, name)
            for r in ii_rows:
                r["ci_low"], r["ci_high"] = iv.get((r["metric"], r["k"], r["model_a"], r["model_b"]), (None, None))
                if r["ci_low"] is None and r["note"] is None:
                    r["note"] = II_SHORT_NOTE if r["model_a"] not in deep_euc else II_SMALL_NOTE
        elif ci is not None:
            for r in ii_rows:
                r["note"] = r["note"] or "no interval: imbalance_intervals=False (not asked for: the slowest part)"
        rows.extend(ii_rows)
    for r in rows:
        if r["ci_low"] is None and r["note"] is None:
            r["note"] = _no_interval_note(r["metric"], r["k"], ks_ci, ci is not None, intervals, bool(deep))
    for metric, why in NOT_COMPUTABLE.items():
        rows.append({**base, "metric": metric, "k": None, "model_a": name, "model_b": None, "value": None,
                     **_no_null(), "note": why})  # fmt: skip
    rows.append({**base, "metric": "info_imbalance", "k": None, "model_a": name, "model_b": None, "value": None,
                 **_no_null(), "note": II_REVERSE_NOTE})  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["k"] = table["k"].astype("Int64")
    seconds = time.perf_counter() - t0
    return ScoreResult(table, dataset, name, n, duplicate_rows(X), ks_knn, ks_ii, seconds, X, user)


def _null(value: float, null: np.ndarray, seed: int, metric: str) -> dict:
    """The null summary (critical value and q95 on the aligned side), +1 p-value and the calibrated score."""
    if null.size == 0:
        return {**_no_null(), "note": None}
    # float32 similarities can put a self-like CKNNA a few ulps above 1: that is round-off, calibrated at 1
    higher_is_aligned = metric != "info_imbalance"
    v_cal = min(value, 1.0) if higher_is_aligned and value <= 1.0 + 1e-6 else value
    cal = calibrated_metric_score(v_cal, null, metric)  # the analysis' rule (values above 1: the effect size)
    return {
        "p_value": cal.p_value,
        "null_mean": float(null.mean()),
        "null_std": float(null.std()),
        "null_q95": float(np.quantile(null, 0.95 if higher_is_aligned else 0.05)),
        "n_permutations": int(null.size),
        "seed": seed,
        "calibrated": cal.value,
        "critical_value": cal.tau,
        "null_q99": float(np.quantile(null, 0.99 if higher_is_aligned else 0.01)),
        "note": None,
    }


def _no_interval_note(metric: str, k: int, ks_ci: tuple, drawn: bool, asked: bool, shipped: bool) -> str:
    """Why a scored row has no confidence interval (every such row says so)."""
    if not asked:
        return "no interval: intervals=False"
    if not drawn:
        return "no interval: the release's analysis drew no half-sampling subsets"
    if metric == "info_imbalance":  # not reached: the II rows get their own note (above)
        return II_SHORT_NOTE
    if not shipped:
        return "no interval: the release has no neighbours_deep lists (written by later versions of the release)"
    return (f"no interval at k = {k}: the release ships the subset-deep lists for k <= {max(ks_ci)} only "
            "(data/ budget; docs/RELEASE_FORMAT.md)") if ks_ci else "no interval: no k small enough for the shipped lists"  # fmt: skip


def _no_null() -> dict:
    return {"p_value": None, "null_mean": None, "null_std": None, "null_q95": None, "n_permutations": None,
            "seed": None, "calibrated": None, "critical_value": None, "null_q99": None}  # fmt: skip
