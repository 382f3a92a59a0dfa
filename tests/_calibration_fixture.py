"""The fixture release (tests/_release_fixture.py) with real nulls, calibrated scores and intervals on one dataset.

On dataset "qm9", for CKNNA, mutual kNN, CKA and information imbalance at every k and every stored ordered pair:
P permutations of B's rows (seeded), the null's mean, sd, 95th and 99th percentiles (5th and 1st for information
imbalance), the +1-corrected p-value, the calibrated score of precompute.metrics.calibrated (Gröger et al. 2026)
and a half-sampling interval (R subsets of N/2 distinct rows, the basic interval centred on the subsets' mean, as
docs/METRICS.md describes). The metrics are the dense restatements of tests/metrics/dense.py. "offeq" and IDCor get
none, so the views' "no calibration data" paths are exercised on the same release. Never writes under data/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests._release_fixture import MANIFEST_EXTRA, N, build_tables, cka, cknna, embeddings, info_imbalance, mutual_knn

DATASET = "qm9"
PERMUTATIONS = 19
RESAMPLES = 10
SEED = 7

_FUNCS = {
    "cknna": lambda A, B, k: cknna(A, B, k),
    "mutual_knn": lambda A, B, k: mutual_knn(A, B, k),
    "cka": lambda A, B, k: cka(A, B),
    "info_imbalance": lambda A, B, k: info_imbalance(A, B, k),
}


def _one(metric: str, A: np.ndarray, B: np.ndarray, k, value: float, pair_seed: int) -> tuple[dict, tuple]:
    from precompute.metrics.calibrated import calibrated_score

    f = _FUNCS[metric]
    higher = metric != "info_imbalance"
    rng = np.random.default_rng(pair_seed)
    null = np.array([f(A, B[rng.permutation(N)], k) for _ in range(PERMUTATIONS)], dtype=float)
    subs = [rng.choice(N, N // 2, replace=False) for _ in range(RESAMPLES)]
    half = np.array([f(A[s], B[s], k) for s in subs], dtype=float)
    centred = half - half.mean()
    ci = (value - float(np.quantile(centred, 0.975)), value - float(np.quantile(centred, 0.025)))
    cal = calibrated_score(value, null, alpha=0.05, smax=1.0, higher_is_aligned=higher)
    q95, q99 = (np.quantile(null, 0.95), np.quantile(null, 0.99)) if higher else (np.quantile(null, 0.05),
                                                                                   np.quantile(null, 0.01))  # fmt: skip
    stats = {"null_mean": float(null.mean()), "null_std": float(null.std()), "null_q95": float(q95),
             "null_q99": float(q99), "p_value": cal.p_value, "calibrated": cal.value, "tau": cal.tau,
             "alpha": cal.alpha}  # fmt: skip
    return stats, ci


def build_calibrated_tables(permutations: int = PERMUTATIONS) -> dict[str, pd.DataFrame]:
    tables = build_tables()
    E = embeddings(0)[DATASET]
    pw = tables["pairwise"].copy()
    nulls, cals = [], []
    for i, r in pw.iterrows():
        if r["dataset_id"] != DATASET or r["metric"] not in _FUNCS:
            continue
        k = None if pd.isna(r["k"]) else int(r["k"])
        stats, ci = _one(r["metric"], E[r["model_a"]], E[r["model_b"]], k, float(r["value"]), SEED * 100_003 + i)
        pw.at[i, "ci_low"], pw.at[i, "ci_high"], pw.at[i, "p_value"] = ci[0], ci[1], stats["p_value"]
        key = {c: r[c] for c in ("dataset_id", "metric", "model_a", "model_b")} | {"k": k}
        nulls.append({**key, **{c: stats[c] for c in ("null_mean", "null_std", "null_q95")},
                      "n_permutations": permutations, "seed": SEED, "n": N})  # fmt: skip
        cals.append({**key, **{c: stats[c] for c in ("calibrated", "tau", "alpha", "null_q99", "p_value")},
                     "closed_form_mean": None, "n_permutations": permutations, "seed": SEED})  # fmt: skip
    tables["pairwise"] = pw
    tables["pairwise_null"] = pd.DataFrame(nulls)
    tables["pairwise_calibration"] = pd.DataFrame(cals)
    return tables


def write_calibrated_release(root: Path) -> Path:
    from precompute.release.writer import write_release

    return write_release(build_calibrated_tables(), MANIFEST_EXTRA, root, None)
