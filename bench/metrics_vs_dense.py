"""Our metric engine against the dense formula computed the way the reference code does (full N x N kernels).

For all 45 pairs of 10 structured representations at N in {1000, 2000, 4000}: CKNNA and mutual kNN at k = 10.
Prints, per N: wall time of each approach, the speed-up, the peak traced memory of each (tracemalloc; NumPy
reports its buffers to it), the memory ratio, and the largest absolute difference between the two.
Then the time of one exact neighbour cache at N = 50,000, D = 256.

Targets at N = 4000: >= 20x faster, <= 1/20 of the dense peak memory, equal to 1e-9.

    python bench/metrics_vs_dense.py [--sizes 1000 2000 4000] [--k 10] [--skip-50k]
    python bench/metrics_vs_dense.py --gpu   # on a CUDA machine: N = 130,831 (all of QM9) x 10 models
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._synthetic import structured_views  # noqa: E402
from precompute.metrics import cosine_caches, knn_alignment_all_pairs  # noqa: E402
from precompute.metrics.neighbours import build_neighbour_cache  # noqa: E402


def dense_reference_pair(A: np.ndarray, B: np.ndarray, k: int) -> tuple[float, float]:
    """CKNNA and mutual kNN the way platonic-rep's metrics.py does it: full N x N kernels, masks and products."""
    n = A.shape[0]
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    K, L = A @ A.T, B @ B.T

    def topk_mask(S):
        Sh = S.copy()
        np.fill_diagonal(Sh, -np.inf)
        idx = np.argsort(-Sh, axis=1, kind="stable")[:, :k]
        M = np.zeros((n, n))
        M[np.arange(n)[:, None], idx] = 1.0
        return M

    def hsic_u(X, Y):
        Xt, Yt = X.copy(), Y.copy()
        np.fill_diagonal(Xt, 0.0)
        np.fill_diagonal(Yt, 0.0)
        v = np.sum(Xt * Yt.T) + Xt.sum() * Yt.sum() / ((n - 1) * (n - 2)) - 2.0 * np.sum(Xt @ Yt) / (n - 2)
        return v / (n * (n - 3))

    MK, ML = topk_mask(K), topk_mask(L)
    M = MK * ML
    cknna = hsic_u(M * K, M * L) / np.sqrt(hsic_u(MK * K, MK * K) * hsic_u(ML * L, ML * L))
    mknn = float(np.mean(M.sum(1) / k))
    return float(cknna), mknn


def ours(views: dict[str, np.ndarray], k: int) -> dict[tuple[str, str, str], float]:
    caches = cosine_caches(views, k)
    out = {}
    for r in knn_alignment_all_pairs(caches, [k]):
        out[(r.metric, r.model_a, r.model_b)] = r.value
    return out


def dense_all(views: dict[str, np.ndarray], k: int) -> dict[tuple[str, str, str], float]:
    out = {}
    for a, b in combinations(views, 2):
        c, m = dense_reference_pair(views[a], views[b], k)
        out[("cknna", a, b)] = c
        out[("mutual_knn", a, b)] = m
    return out


def peak_mb(fn, *args) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak / 2**20


def run_size(n: int, k: int) -> dict:
    views = structured_views(n, seed=n)
    t0 = time.perf_counter()
    ours_vals = ours(views, k)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    dense_vals = dense_all(views, k)
    t_dense = time.perf_counter() - t0
    diff = max(abs(ours_vals[key] - dense_vals[key]) for key in dense_vals)
    mem_ours = peak_mb(ours, views, k)
    first_two = dict(list(views.items())[:2])
    mem_dense = peak_mb(dense_all, first_two, k)  # the dense peak is per pair: one pair shows it
    return {
        "n": n,
        "pairs": len(dense_vals) // 2,
        "t_ours_s": t_ours,
        "t_dense_s": t_dense,
        "speedup": t_dense / t_ours,
        "mem_ours_mb": mem_ours,
        "mem_dense_mb": mem_dense,
        "mem_ratio": mem_dense / mem_ours,
        "max_abs_diff": diff,
    }


def time_cache(n: int, d: int, k: int, backend: str = "numpy", device: str = "cpu") -> float:
    X = np.random.default_rng(0).normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    t0 = time.perf_counter()
    build_neighbour_cache(X, k, "cosine", backend=backend, device=device, tile_bytes=256 * 2**20)
    return time.perf_counter() - t0


def gpu_run(n: int, n_models: int, ks: list[int]) -> None:
    import torch

    from precompute.metrics import information_imbalance_all_pairs

    views = structured_views(n, n_models=n_models, seed=1, dim=256)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    caches = cosine_caches(views, max(ks), backend="torch", device="cuda", tile_bytes=2**30)
    torch.cuda.synchronize()
    t_cache = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = knn_alignment_all_pairs(caches, ks, backend="torch", device="cuda")
    torch.cuda.synchronize()
    t_pairs = time.perf_counter() - t0
    gpu_gb = torch.cuda.max_memory_allocated() / 2**30
    print(f"GPU {torch.cuda.get_device_name()}: N = {n}, {n_models} models x D = 256, k in {ks}")
    print(f"  cosine caches (k_max = {max(ks)}): {t_cache:.1f} s total, {t_cache / n_models:.2f} s per model")
    print(
        f"  all pairs CKNNA (ordered) + mutual kNN at every k: {len(res)} values in {t_pairs:.1f} s (GPU, O(N·k) per pair)"
    )
    print(
        f"  peak GPU memory: {gpu_gb:.2f} GiB (a dense N x N float32 kernel alone would be {n * n * 4 / 2**30:.1f} GiB)"
    )
    sub = dict(list(views.items())[:4])
    t0 = time.perf_counter()
    ii = information_imbalance_all_pairs(sub, [1, 5, 25], backend="torch", device="cuda", tile_bytes=2**30)
    torch.cuda.synchronize()
    print(
        f"  exact information imbalance at full N, 4 models (12 ordered pairs x 3 k): {time.perf_counter() - t0:.1f} s"
    )
    print(f"  peak GPU memory after II: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; e.g. {ii[0].as_dict()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--skip-50k", action="store_true")
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--gpu-n", type=int, default=130_831)
    args = p.parse_args()
    if args.gpu:
        gpu_run(args.gpu_n, 10, [5, 10, 25, 50, 100])
        return
    print(f"10 structured representations (D = 128), 45 pairs, CKNNA + mutual kNN at k = {args.k}, float64")
    print(
        f"{'N':>6} {'ours s':>8} {'dense s':>9} {'speed-up':>9} {'ours MB':>8} {'dense MB':>9} {'mem ratio':>10} {'max |diff|':>11}"
    )
    for n in args.sizes:
        r = run_size(n, args.k)
        print(
            f"{r['n']:>6} {r['t_ours_s']:>8.2f} {r['t_dense_s']:>9.2f} {r['speedup']:>8.1f}x {r['mem_ours_mb']:>8.1f} "
            f"{r['mem_dense_mb']:>9.1f} {r['mem_ratio']:>9.1f}x {r['max_abs_diff']:>11.2e}",
            flush=True,
        )
    if not args.skip_50k:
        t = time_cache(50_000, 256, 100)
        print(f"one exact cosine neighbour cache, N = 50,000, D = 256, k_max = 100, numpy, this CPU: {t:.1f} s")


if __name__ == "__main__":
    main()
