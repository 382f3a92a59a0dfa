"""Time and peak memory of the analysis stage for 10 models at N in {1000, 4000, 16000} on this CPU.

Runs `precompute.analyze.pipeline.run_analysis` in-process and serially (jobs = 1, so tracemalloc sees every
allocation) on 10 structured synthetic representations (D = 128; bench/_synthetic.py), with the release defaults
except the permutation counts, which are printed. Prints wall time, peak traced memory, and their growth factors per
4x N; a second sweep at fixed N varies the number of models. Memory should grow close to linearly in N (caches are
O(N·k); no N x N array), time about quadratically (the exact neighbour searches and information-imbalance passes
are O(N²·D)).

    python bench/analyze_scaling.py [--sizes 1000 4000 16000] [--models 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._synthetic import structured_views  # noqa: E402
from precompute.analyze.pipeline import collect_tables, run_analysis  # noqa: E402
from precompute.analyze.settings import AnalysisSettings  # noqa: E402

SETTINGS = AnalysisSettings(idcor_permutations=5, null_permutations=5, bootstrap=100)


def one_run(n: int, n_models: int) -> tuple[float, float, int]:
    views = structured_views(n, n_models=n_models, seed=n)
    emb = {m: ([f"s{i}" for i in range(n)], X) for m, X in views.items()}
    with tempfile.TemporaryDirectory() as tmp:
        tracemalloc.start()
        t0 = time.perf_counter()
        run_analysis(Path(tmp), emb, SETTINGS, jobs=1)
        rows = len(collect_tables(Path(tmp), "bench")["pairwise"])
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return elapsed, peak, rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    p.add_argument("--models", type=int, default=10)
    args = p.parse_args()
    print(f"analysis settings: {SETTINGS.as_dict()}")
    print(f"{'N':>6} {'models':>6} {'time s':>8} {'peak MB':>8} {'rows':>7} {'time x':>7} {'mem x':>6}")
    prev = None
    for n in args.sizes:
        t, m, rows = one_run(n, args.models)
        grow = f"{t / prev[0]:>7.1f} {m / prev[1]:>6.1f}" if prev else f"{'':>7} {'':>6}"
        print(f"{n:>6} {args.models:>6} {t:>8.1f} {m:>8.1f} {rows:>7} {grow}", flush=True)
        prev = (t, m)
    n = args.sizes[min(1, len(args.sizes) - 1)]
    for models in (max(2, args.models // 2), args.models):
        t, m, rows = one_run(n, models)
        print(f"{n:>6} {models:>6} {t:>8.1f} {m:>8.1f} {rows:>7}", flush=True)


if __name__ == "__main__":
    main()
