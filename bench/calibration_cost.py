"""Cost of calibration: the calibrated analysis against the uncalibrated one on the same data, in one run (issue 16.7).

Data: `--models` structured synthetic representations of one shared latent at mixed widths (default 10, from 64 to
2,048; bench/_synthetic.py `mixed_width_views`), N = `--n` rows (default 10,000). Labelled synthetic; never shipped.
Both runs use `run_analysis` with the release defaults and differ only in the calibration settings:
    uncalibrated: null_permutations = 0, idcor_permutations = 0, resamples = 0 (values only)
    calibrated:   the defaults (100 permutations for every null, 100 for IDCor, 50 half-sampling resamples)
Tasks run serially in this process, each timed, so tracemalloc sees every host allocation (peak traced memory) and
the per-kind table shows what dominates. Wall time depends on the machine's load: the load average before and
after each run is printed, with the process CPU time (less sensitive to other jobs on the machine).
Target: calibrated / uncalibrated at most 3x time and 2x peak memory.

GPU variant (issue 16.7, seed scale): `--device cuda --n 130831 --models 30` runs the neighbour searches and the
information-imbalance rank passes on the GPU (torch backend) and adds torch's peak GPU memory; the permutation nulls
and resampling stay on the CPU's numpy code. Prepared, not yet run on a GPU; tests/test_bench_calibration_cost.py
runs the logic at a tiny size on the CPU, the torch path with `--backend torch --device cpu`.

    python bench/calibration_cost.py [--n 10000] [--models 10] [--device cpu|cuda] [--backend numpy|torch]
                                     [--only both|uncalibrated|calibrated]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._synthetic import mixed_width_views  # noqa: E402
from precompute.analyze.pipeline import collect_tables, run_analysis  # noqa: E402
from precompute.analyze.settings import AnalysisSettings  # noqa: E402

DEFAULTS = AnalysisSettings()


def settings_pair(permutations: int | None, resamples: int | None) -> tuple[AnalysisSettings, AnalysisSettings]:
    """(uncalibrated, calibrated): the release defaults, optionally fewer permutations / resamples (tests only)."""
    p = DEFAULTS.null_permutations if permutations is None else permutations
    r = DEFAULTS.resamples if resamples is None else resamples
    calibrated = replace(DEFAULTS, null_permutations=p, idcor_permutations=p, resamples=r)
    return replace(calibrated, null_permutations=0, idcor_permutations=0, resamples=0), calibrated


class TimedSerialExecutor(cf.Executor):
    """Runs each submitted task at once in this process and adds its wall / CPU seconds to its kind ("pairs", ...)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        fut: cf.Future = cf.Future()
        kind = fn.__name__.removeprefix("task_")
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # reported by run_tasks with the task's name
            fut.set_exception(exc)
        self.wall[kind] += time.perf_counter() - t0
        self.cpu[kind] += time.process_time() - c0
        self.count[kind] += 1
        return fut


def one_run(label: str, settings: AnalysisSettings, emb: dict, backend: str, device: str) -> dict:
    kw = {"backend": backend, "device": device}
    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    ex = TimedSerialExecutor()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tracemalloc.start()
        t0, c0 = time.perf_counter(), time.process_time()
        used = run_analysis(Path(tmp), emb, settings, executor=ex, **kw)
        tables = collect_tables(Path(tmp), "bench")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    pw = tables["pairwise"]
    out = {"label": label, "wall": wall, "cpu": cpu, "peak_mb": peak, "rows": len(pw), "load": (load0, os.getloadavg()[0]),
           "with_ci": int(pw.ci_low.notna().sum()), "nulls": len(tables["pairwise_null"]), "tasks": ex, "settings": used}  # fmt: skip
    if cuda:
        import torch

        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def report(r: dict) -> None:
    print(f"\n{r['label']}: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, peak traced {r['peak_mb']:.1f} MB"
          + (f", peak GPU {r['gpu_peak_mb']:.0f} MB" if "gpu_peak_mb" in r else "")
          + f"; {r['rows']} pairwise rows, {r['with_ci']} with a CI, {r['nulls']} nulls;"
          f" load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}")  # fmt: skip
    ex = r["tasks"]
    for kind in sorted(ex.wall, key=ex.wall.get, reverse=True):
        print(f"  {kind:<22} {ex.count[kind]:>4} tasks  wall {ex.wall[kind]:>8.1f} s  CPU {ex.cpu[kind]:>8.1f} s")


def main(argv: list[str] | None = None) -> dict[str, dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--models", type=int, default=10)
    p.add_argument("--min-width", type=int, default=64)
    p.add_argument("--max-width", type=int, default=2048)
    p.add_argument("--device", default="cpu", help="cpu, or cuda (GPU variant: implies --backend torch)")
    p.add_argument("--backend", choices=["numpy", "torch"], default=None, help="default numpy on cpu, torch on cuda")
    p.add_argument("--only", choices=["both", "uncalibrated", "calibrated"], default="both")
    p.add_argument("--permutations", type=int, default=None, help="every null's permutations (default: release's)")
    p.add_argument("--resamples", type=int, default=None, help="half-sampling resamples (default: the release's)")
    args = p.parse_args(argv)
    backend = args.backend or ("numpy" if args.device == "cpu" else "torch")
    if args.device.startswith("cuda"):
        import torch

        if backend != "torch":
            raise SystemExit(f"--device {args.device} needs --backend torch")
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: no CUDA device here (torch {torch.__version__})")
    views = mixed_width_views(args.n, args.models, args.min_width, args.max_width, seed=16)
    ids = [f"s{i}" for i in range(args.n)]
    emb = {m: (ids, X) for m, X in views.items()}
    print(f"calibration cost: N = {args.n}, {args.models} synthetic structured representations, widths "
          f"{[X.shape[1] for X in views.values()]}; backend {backend} on {args.device}; {platform.processor() or platform.machine()},"
          f" {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    uncalibrated, calibrated = settings_pair(args.permutations, args.resamples)
    print(f"calibrated settings: {calibrated.as_dict()}")
    print("uncalibrated: the same with null_permutations = 0, idcor_permutations = 0, resamples = 0", flush=True)
    runs = {}
    for label, settings in (("uncalibrated", uncalibrated), ("calibrated", calibrated)):
        if args.only in ("both", label):
            runs[label] = one_run(label, settings, emb, backend, args.device)
            report(runs[label])
            sys.stdout.flush()
    if len(runs) == 2:
        u, c = runs["uncalibrated"], runs["calibrated"]
        tr, cr, mr = c["wall"] / u["wall"], c["cpu"] / u["cpu"], c["peak_mb"] / u["peak_mb"]
        print(f"\ncalibrated / uncalibrated: wall time {tr:.2f}x, CPU time {cr:.2f}x, peak traced memory {mr:.2f}x "
              f"(target <= 3x time, <= 2x memory: time {'met' if cr <= 3 else 'MISSED'} by CPU time, "
              f"{'met' if tr <= 3 else 'MISSED'} by wall time; memory {'met' if mr <= 2 else 'MISSED'})")  # fmt: skip
    return runs


if __name__ == "__main__":
    main()
