"""Per-pair cost of CKA's calibration before and after issue 16.7: the permutation null (P = 100 cross products) and
half-sampling CIs (50 subsets of N/2) against the exact-moment null and the delete-a-group jackknife (50 groups).

Synthetic features (a shared 8-d latent through random tanh maps plus noise, L2-normalised rows: labelled
synthetic, never shipped) at real widths, N = 10,000 by default. Slow parts of "before" are timed on a few
permutations / subsets and scaled to 100 / 50 (printed as such). Per-model terms (shared by a model's pairs) and
per-pair terms are timed separately.

    python bench/cka_calibration_cost.py [--n 10000] [--pairs 512x96,2325x2048] [--perms 5] [--subsets 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from precompute.metrics.cka import cka_features
from precompute.metrics.cka_jackknife import CkaGroupParts, cka_jackknife_values, jackknife_groups
from precompute.metrics.cka_moments import CkaMomentParts, cka_moment_nulls
from precompute.metrics.nulls import cka_null_values
from precompute.metrics.preprocess import KernelPreprocessing, kernel_features
from precompute.metrics.resampling import CkaParts, cka_pair, subsets


def _view(rng: np.random.Generator, z: np.ndarray, width: int) -> np.ndarray:
    x = np.tanh(z @ rng.normal(size=(z.shape[1], width))) + 0.3 * rng.normal(size=(z.shape[0], width))
    return kernel_features(x, KernelPreprocessing(None, True))


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _measure(A: np.ndarray, B: np.ndarray, args: argparse.Namespace) -> None:
    da, db = A.shape[1], B.shape[1]
    _, t_raw = _timed(lambda: (cka_features(A, B), cka_features(A, B, True)))
    _, t_perm = _timed(lambda: cka_null_values(A, B, args.perms, 1))
    subs = subsets(args.n, args.subsets, 2)

    def half():
        for keep in subs:
            cka_pair(CkaParts(A[keep]), CkaParts(B[keep]))

    _, t_half = _timed(half)
    (pa, pb), t_mom_model = _timed(lambda: (CkaMomentParts.of(A), CkaMomentParts.of(B)))
    _, t_mom_pair = _timed(lambda: cka_moment_nulls(pa, pb))
    labels = jackknife_groups(args.n, 50, 3)
    (ga, gb), t_jk_model = _timed(lambda: (CkaGroupParts(A, labels), CkaGroupParts(B, labels)))
    _, t_jk_pair = _timed(lambda: cka_jackknife_values(ga, gb))
    before = t_perm * 100 / args.perms + t_half * 50 / args.subsets
    after = t_mom_model + t_mom_pair + t_jk_model + t_jk_pair
    print(f"\n{da} x {db}: uncalibrated CKA (biased + unbiased) {t_raw:.2f} s")
    print(f"  before: permutation null {t_perm / args.perms:.3f} s/perm -> {t_perm * 100 / args.perms:.1f} s for "
          f"100 (scaled from {args.perms}); half-sampling {t_half / args.subsets:.3f} s/subset -> "
          f"{t_half * 50 / args.subsets:.1f} s for 50 (scaled from {args.subsets}); total {before:.1f} s")  # fmt: skip
    print(f"  after:  moment null {t_mom_model:.2f} s per-model terms (both) + {t_mom_pair * 1e3:.2f} ms per pair; "
          f"jackknife {t_jk_model:.2f} s per-model terms (both) + {t_jk_pair:.2f} s per pair; total {after:.1f} s")  # fmt: skip
    print(f"  calibration / uncalibrated CKA: before {before / t_raw:.1f}x, after {after / t_raw:.1f}x; "
          f"speed-up {before / after:.1f}x")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--pairs", default="512x96,2325x2048")
    ap.add_argument("--perms", type=int, default=5, help="permutations timed (scaled to 100)")
    ap.add_argument("--subsets", type=int, default=3, help="half-sampling subsets timed (scaled to 50)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(args.n, 8))
    print(f"N = {args.n}, OMP_NUM_THREADS = {os.environ.get('OMP_NUM_THREADS')}, load average "
          f"{os.getloadavg()[0]:.1f} (shared machine: wall times are loaded-machine figures)")  # fmt: skip
    for spec in args.pairs.split(","):
        da, db = (int(x) for x in spec.split("x"))
        _measure(_view(rng, z, da), _view(rng, z, db), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
