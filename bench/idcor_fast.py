"""IDCor: the Gram path (d²_A, d²_B built once, O(N²) per permutation) against the direct path (a full TwoNN
neighbour search on [za | zb[p]] per permutation), on synthetic data labelled as such.

Shapes: N = 2,000 with D = 2048 + 2325 (a Morgan fingerprint and a SOAP descriptor's widths) and D = 128 + 96,
10 permutations. A is a sparse 0/1 matrix ("fingerprint-like") or Gaussian, B a noisy nonlinear function of a latent
shared with A. Prints the wall time of each path, the speed-up, the largest |difference| of IDCor, of every ID and
whether the p-values are identical.

    OMP_NUM_THREADS=1 python bench/idcor_fast.py [--n 2000] [--permutations 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from precompute.metrics.idcor import _idcor_direct, _idcor_gram  # noqa: E402
from precompute.metrics.preprocess import zscore_columns  # noqa: E402


def synthetic_pair(n: int, da: int, db: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A: fingerprint-like 0/1 bits driven by an 8-d latent (when da >= 1024) else Gaussian; B: tanh of the latent."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 8))
    logits = z @ rng.normal(size=(8, da)) - 2.5
    A = (rng.random((n, da)) < 1 / (1 + np.exp(-logits))).astype(float) if da >= 1024 else logits
    B = np.tanh(z @ rng.normal(size=(8, db)) / 2) + 0.1 * rng.normal(size=(n, db))
    return A, B


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--permutations", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"# N = {args.n}, permutations = {args.permutations}, synthetic data")
    for da, db in [(2048, 2325), (128, 96)]:
        A, B = synthetic_pair(args.n, da, db, args.seed)
        za, zb = zscore_columns(A), zscore_columns(B)
        t0 = time.perf_counter()
        old = _idcor_direct(za, zb, args.permutations, args.seed, 0.1, "numpy", "cpu")
        t1 = time.perf_counter()
        new = _idcor_gram(za, zb, args.permutations, args.seed, 0.1)
        t2 = time.perf_counter()
        ids_old = np.array([old.id_a, old.id_b, old.id_joint, *old.null_ids])
        ids_new = np.array([new.id_a, new.id_b, new.id_joint, *new.null_ids])
        print(
            f"D = {da} + {db}: direct {t1 - t0:.2f} s, gram {t2 - t1:.2f} s, speed-up {(t1 - t0) / (t2 - t1):.1f}x; "
            f"IDCor {old.value:.6f} vs {new.value:.6f}, max |diff| IDCor {abs(old.value - new.value):.2e}, "
            f"IDs {np.abs(ids_old - ids_new).max():.2e} (rel {np.max(np.abs(ids_old - ids_new) / ids_old):.2e}), "
            f"p {old.p_value} vs {new.p_value} ({'identical' if old.p_value == new.p_value else 'DIFFERENT'})"
        )


if __name__ == "__main__":
    main()
