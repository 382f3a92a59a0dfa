"""Scoring speed (issue 13.7): an upload of N x D rows scored against a release of M models at every shipped k,
server side (backend.scoring.score_embeddings), on a SYNTHETIC release (structured views of one latent; labelled
synthetic, never shipped).

    .venv/bin/python bench/score_speed.py                       # N = 10,000, D = 1,024, 30 models, 20 permutations
    .venv/bin/python bench/score_speed.py --n 2000 --models 10 --permutations 0
    .venv/bin/python bench/score_speed.py --keep /tmp/rel      # then --release /tmp/rel/<id> to time it again
    .venv/bin/python bench/score_speed.py --n 2000 --models 10 --intervals     # the release ships neighbours_deep

Builds the release once in a temp folder (exact neighbour caches of each synthetic model, the analysis' list
lengths: cosine k = 10 at N > 5,000, Euclidean k = 5), then times the score of a fresh N x D embedding (wall time
and peak memory of the process, tracemalloc for the Python heap). Target: <= 5 s and <= 1 GB with no permutations
(the raw scores); the null's cost is printed separately.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._synthetic import structured_views  # noqa: E402

CI_SETTINGS = {"resamples": 50, "resample_fraction": 0.5, "seed": 0, "ci_level": 0.95}  # the analysis' defaults


def build_release(root: Path, n: int, n_models: int, seed: int, intervals: bool = False) -> Path:
    from precompute.analyze.scoring_tables import (
        EUCLIDEAN_K,
        deep_euclidean_lists,
        deep_lists,
        deep_rows,
        interval_k,
        shipped_cosine_k,
    )
    from precompute.analyze.settings import AnalysisSettings
    from precompute.analyze.tasks import resample_subsets
    from precompute.metrics.neighbours import build_neighbour_cache
    from precompute.metrics.preprocess import KernelPreprocessing, kernel_features
    from precompute.metrics.resampling import subsample_list_length
    from precompute.release.writer import write_release

    views = structured_views(n, n_models, seed=seed, dim=64)
    k = shipped_cosine_k(n)
    prep = KernelPreprocessing(0.95, True)
    nb, sim, euc, models, pw, deep, deep_e = [], [], [], [], [], [], []
    k_ci = min(k, interval_k(n))
    subs = resample_subsets(n, AnalysisSettings.from_dict(CI_SETTINGS)) if intervals else []
    for m, X in views.items():
        F = kernel_features(X, prep, m)
        length = max(k, subsample_list_length(k_ci)) if intervals else k
        cos = build_neighbour_cache(F, length, "cosine", name=m, duplicates="keep")
        if intervals:  # the lists the seeded CI subsets need, as a release ships them (neighbours_deep)
            deep.append(deep_rows("synthetic", m, *deep_lists(cos.indices, cos.scores, F, subs, k_ci), k))
        cos = type(cos)(cos.indices[:, :k], cos.scores[:, :k], "cosine")
        e_len = subsample_list_length(EUCLIDEAN_K) if intervals else EUCLIDEAN_K  # the analysis' cache length
        e = build_neighbour_cache(X, e_len, "euclidean", name=m, duplicates="keep")
        if intervals:  # the II subsets' lists (neighbours_euclidean_deep, k = 5)
            deep_e.append(deep_rows("synthetic", m, *deep_euclidean_lists(e.indices, X, subs, EUCLIDEAN_K), None,
                                    EUCLIDEAN_K))  # fmt: skip
        e = type(e)(e.indices[:, :EUCLIDEAN_K], e.scores[:, :EUCLIDEAN_K], "euclidean")
        base = {"dataset_id": "synthetic", "model_id": m, "position": np.repeat(np.arange(n), k),
                "rank": np.tile(np.arange(1, k + 1), n)}  # fmt: skip
        nb.append(pd.DataFrame({**base, "neighbour": cos.indices.ravel()}))
        sim.append(pd.DataFrame({**base, "similarity": cos.scores.ravel().astype(np.float32)}))
        euc.append(pd.DataFrame({"dataset_id": "synthetic", "model_id": m, "position": np.repeat(np.arange(n), 5),
                                 "rank": np.tile(np.arange(1, 6), n), "neighbour": e.indices.ravel()}))  # fmt: skip
        models.append({"model_id": m, "display_name": m, "family": "synthetic", "architecture": "synthetic view",
                       "modality": "descriptor", "input_kind": "molecule", "training_sets": [],
                       "equivariance": "none", "force_head": "none", "params": None, "embedding_dim": X.shape[1],
                       "layer": "-", "pooling": "-", "source": "descriptor", "checkpoint": None, "citation": None})  # fmt: skip
    names = list(views)
    for a in names:
        for b in names:
            if a != b:
                pw.append({"dataset_id": "synthetic", "metric": "mutual_knn", "k": 10, "model_a": a, "model_b": b,
                           "value": 0.5, "ci_low": None, "ci_high": None, "p_value": None, "n": n})  # fmt: skip
    tables = {
        "models": pd.DataFrame(models),
        "datasets": pd.DataFrame(
            [
                {
                    "dataset_id": "synthetic",
                    "display_name": "synthetic (bench only)",
                    "domain": "molecules",
                    "n_samples": n,
                    "origin": "generated",
                    "recipe": "bench/_synthetic.structured_views",
                    "license": None,
                    "citation": None,
                    "in_distribution_for": [],
                }
            ]
        ),  # fmt: skip
        "pairwise": pd.DataFrame(pw).drop_duplicates(["model_a", "model_b"]),
        "intrinsic_dim": pd.DataFrame(
            columns=["dataset_id", "model_id", "estimator", "value", "ci_low", "ci_high", "n", "n_duplicates"]
        ),  # fmt: skip
        "energy": pd.DataFrame(columns=["dataset_id", "model_id", "mae_per_atom", "n_test"]),
        "trees": pd.DataFrame(columns=["dataset_id", "metric", "k", "method", "newick"]),
        "samples": pd.DataFrame(
            {
                "dataset_id": "synthetic",
                "position": np.arange(n),
                "sample_id": [f"s{i:06d}" for i in range(n)],
                "formula": None,
                "smiles": None,
                "n_atoms": None,
            }
        ),  # fmt: skip
        "neighbours": pd.concat(nb, ignore_index=True),
        "neighbour_similarity": pd.concat(sim, ignore_index=True),
        "neighbours_euclidean": pd.concat(euc, ignore_index=True),
        **(
            {
                "neighbours_deep": pd.concat(deep, ignore_index=True),
                "neighbours_euclidean_deep": pd.concat(deep_e, ignore_index=True),
            }
            if intervals
            else {}
        ),  # fmt: skip
    }
    settings = {"synthetic": {"ks_knn": [5, 10, 25, 50, 100], "ks_ii": [1, 5, 25], "clip_quantile": 0.95,
                              "normalize": True, **(CI_SETTINGS if intervals else {})}}  # fmt: skip
    return write_release(tables, {"inputs": [{"name": "synthetic", "recipe": "bench"}], "settings": settings}, root)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sample_rss(stop: threading.Event, peaks: list[int]) -> None:
    """The process's resident memory every 5 ms while the score runs (ru_maxrss would include the build)."""
    while not stop.wait(0.005):
        peaks.append(_rss())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--models", type=int, default=30)
    ap.add_argument("--permutations", type=int, default=20)
    ap.add_argument("--keep", type=Path, help="build the synthetic release into this folder and keep it")
    ap.add_argument("--release", type=Path, help="a synthetic release folder this script built before (--keep)")
    ap.add_argument("--intervals", action="store_true", help="ship neighbours_deep so the scores carry CIs")
    args = ap.parse_args()
    from backend import Release
    from backend.scoring import SCORING_TABLES, score_embeddings, warm
    from backend.scoring import zoo as zoo_mod

    with tempfile.TemporaryDirectory() as tmp:
        if args.release is None:
            t = time.perf_counter()
            root = args.keep if args.keep is not None else Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            folder = build_release(root, args.n, args.models, seed=0, intervals=args.intervals)
            print(f"synthetic release: {args.models} models x N = {args.n:,} built in {time.perf_counter() - t:.0f} s"
                  f" ({folder})")  # fmt: skip
        else:
            folder = args.release
        # the command line opens only the scoring tables' rows of its dataset; the dashboard opens the whole
        # release once and reads the scoring lists in the background (backend.scoring.warm)
        load = os.getloadavg()[0]
        t = time.perf_counter()
        part = Release.open(folder, only=SCORING_TABLES, dataset="synthetic")
        t_part = time.perf_counter() - t
        t = time.perf_counter()
        release = Release.open(folder)
        t_whole = time.perf_counter() - t
        print(f"open: whole release {t_whole:.2f} s (the dashboard, once per server), scoring tables of one dataset "
              f"{t_part:.2f} s (matter-align score); load average before {load:.1f} on {os.cpu_count()} cores")  # fmt: skip
        rng = np.random.default_rng(1)
        U = structured_views(args.n, 1, seed=0, dim=args.d)["view0"] + 0.1 * rng.normal(size=(args.n, args.d))
        runs = [("cold: lists read in the call (matter-align score)", 0, part)]
        runs += [("after warm(): the dashboard's first upload", 0, release)]
        runs += [("warm", args.permutations, release)] if args.permutations else []
        for label, perms, rel in runs:
            if rel is release and perms == 0:
                zoo_mod._CACHE.clear()  # what a fresh server holds: nothing, until its background warm() ran
                t, load = time.perf_counter(), os.getloadavg()[0]
                warm(release)
                print(f"warm(): the scoring lists read in {time.perf_counter() - t:.2f} s (background thread at server "
                      f"start, off every request); load average before {load:.1f}")  # fmt: skip
            load = os.getloadavg()
            base, stop, peaks = _rss(), threading.Event(), []
            sampler = threading.Thread(target=_sample_rss, args=(stop, peaks))
            sampler.start()
            tracemalloc.start()
            t, cpu = time.perf_counter(), time.process_time()
            res = score_embeddings(rel, "synthetic", U, "upload", permutations=perms)
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            stop.set()
            sampler.join()
            rss = max(peaks, default=base) / 2**30
            rows = int(res.table["value"].notna().sum())
            cis = int(res.table["ci_low"].notna().sum())
            print(f"score N = {args.n:,} x D = {args.d:,} vs {len(set(res.table.model_b.dropna()) - {'upload'})} "
                  f"models, k = {list(res.ks_knn)} (II k = {list(res.ks_ii)}), {perms} permutations, {label}: "
                  f"{wall:.2f} s wall ({cpu:.1f} CPU-s), {rows} values ({cis} with a CI), Python heap peak {peak / 2**30:.2f} GB, "
                  f"process RSS {base / 2**30:.2f} GB before and {rss:.2f} GB at most during the call; load average "
                  f"before the run {load[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
