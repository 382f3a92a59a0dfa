"""The Dask cluster's overhead on the analysis stage: the same analysis through the local process pool (2 processes)
and through `--cluster local:2` (a LocalCluster of 2 worker processes over TCP), in one run, on this CPU.

10 structured synthetic representations (bench/_synthetic.py, D = 128) at N = 4,000, the settings of
bench/analyze_scaling.py. Both sides get one BLAS thread per process (set below, before NumPy loads; LocalCluster
workers set it too), so the difference is scheduling and serialisation, not threading. The cluster's start-up
(its processes, the shared-folder check, the workers' first imports, which forked pool workers inherit) is timed
apart. Prints the wall times, the ratios and whether the results are equal.

    python bench/cluster_overhead.py [--n 4000] [--models 10] [--repeats 1]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._synthetic import structured_views  # noqa: E402
from precompute.analyze.pipeline import collect_tables, run_analysis  # noqa: E402
from precompute.analyze.settings import AnalysisSettings  # noqa: E402

SETTINGS = AnalysisSettings(idcor_permutations=5, null_permutations=5, bootstrap=100)


def local_pool(work: Path, emb: dict) -> float:
    t0 = time.perf_counter()
    run_analysis(work, emb, SETTINGS, jobs=2)
    return time.perf_counter() - t0


def dask_local2(work: Path, emb: dict) -> tuple[float, float]:
    """(start-up: cluster, shared-folder check, the workers' first imports; the analysis itself)."""
    from precompute.cluster import DaskSession, parse_spec

    t0 = time.perf_counter()
    with DaskSession(parse_spec("local:2"), out=io.StringIO()) as session:
        session.check_shared(work.parent)
        session.client.run(importlib.import_module, "precompute.analyze.tasks")  # forked pool workers have it
        t1 = time.perf_counter()
        with session.executor() as ex:
            run_analysis(work, emb, SETTINGS, executor=ex)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--models", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1, help="alternate the two this many times; the best of each")
    args = p.parse_args()
    views = structured_views(args.n, n_models=args.models, seed=args.n)
    emb = {m: ([f"s{i}" for i in range(args.n)], X) for m, X in views.items()}
    print(f"N = {args.n}, {args.models} models, D = 128, cpus = {os.cpu_count()}; settings {SETTINGS.as_dict()}")
    local, start, run = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            local.append(local_pool(Path(tmp) / f"local-{r}" / "work", emb))
            print(f"  local pool (jobs=2)  run {r + 1}: {local[-1]:8.1f} s", flush=True)
            t_start, t_run = dask_local2(Path(tmp) / f"dask-{r}" / "work", emb)
            start.append(t_start)
            run.append(t_run)
            print(f"  dask local:2         run {r + 1}: {t_run:8.1f} s (+ {t_start:.1f} s start-up)", flush=True)
        a = collect_tables(Path(tmp) / "local-0" / "work", "bench")["pairwise"]
        b = collect_tables(Path(tmp) / "dask-0" / "work", "bench")["pairwise"]
        equal = a.equals(b)
    t_local, t_run, t_start = min(local), min(run), min(start)
    print(f"analysis: local pool {t_local:.1f} s, dask local:2 {t_run:.1f} s: ratio {t_run / t_local:.3f} "
          f"(overhead {100 * (t_run / t_local - 1):+.1f}%); with the cluster's start-up {t_start:.1f} s: ratio "
          f"{(t_run + t_start) / t_local:.3f}; pairwise tables identical: {equal}")  # fmt: skip


if __name__ == "__main__":
    main()
