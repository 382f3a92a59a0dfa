"""Server time of the dashboard: a rerun of each page, and cold start to the first page.

    .venv/bin/python bench/app_latency.py                      # the shipped release (data/releases/latest)
    .venv/bin/python bench/app_latency.py --fixture            # the small test release, built in a temp folder
    .venv/bin/python bench/app_latency.py --releases DIR --reruns 30 --check

Rerun: each page is opened with streamlit.testing.v1.AppTest (the real script, the real caches), run once to warm
the caches, then rerun `--reruns` times; the time of `AppTest.run()` is the server-side time of a rerun plus
AppTest's own bookkeeping (so an upper bound; the browser's drawing is not included).
Cold start: a fresh Python process that imports the app's stack, opens and verifies the release and runs the first
page, timed from process launch to the first page's script finishing.
Targets: p95 of a rerun <= 300 ms per page; cold start <= 3 s. `--check` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.page_list import PAGE_SLUGS  # noqa: E402

MAIN = ROOT / "app" / "main.py"
PAGES = PAGE_SLUGS
TARGET_P95_MS = 300.0
TARGET_COLD_S = 3.0

_COLD = r"""
import time, os, sys
t0 = float(sys.argv[1])
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[2], default_timeout=120).run()
assert not at.exception, [e.message for e in at.exception]
assert not at.error, [e.value for e in at.error]
print(time.time() - t0)
"""


def synthetic_tables(n_models: int, n_datasets: int = 5, seed: int = 0) -> dict:
    """A release-shaped table set of the shipped release's size with SYNTHETIC numbers (latency only; written to a
    temp folder, never under data/). Families share a latent, so matrices have block structure like real ones."""
    from io import StringIO

    import pandas as pd
    from Bio import Phylo
    from Bio.Phylo.TreeConstruction import DistanceMatrix, DistanceTreeConstructor

    rng = np.random.default_rng(seed)
    fams = [f"Family{i:02d}" for i in range(max(2, n_models // 5))]
    srcs = ["pretrained", "random_init", "trained_here", "descriptor"]
    tsets = ["mptrj", "omat24", "qm9", "omol25", "pdb", "zinc"]
    mids = [f"m{i:03d}" for i in range(n_models)]
    fam_of = {m: fams[i % len(fams)] for i, m in enumerate(mids)}
    models = pd.DataFrame(
        [
            {
                "model_id": m, "display_name": f"Synthetic {m}", "family": fam_of[m], "architecture": "synthetic",
                "modality": "structure", "input_kind": "molecule",
                "training_sets": [tsets[i % len(tsets)], tsets[(i + 2) % len(tsets)]], "equivariance": "none",
                "force_head": "none", "params": 1000 + i, "embedding_dim": 64, "layer": "last", "pooling": "mean",
                "source": srcs[i % len(srcs)], "checkpoint": None, "citation": None,
            }
            for i, m in enumerate(mids)
        ]
    )  # fmt: skip
    dids = [f"set{j}" for j in range(n_datasets)]
    datasets = pd.DataFrame(
        [
            {
                "dataset_id": d, "display_name": f"Synthetic {d}", "domain": "molecules", "n_samples": 5000,
                "origin": "generated", "recipe": f"synthetic numbers for a latency benchmark, seed={seed}",
                "license": None, "citation": None, "in_distribution_for": [tsets[j % len(tsets)]],
            }
            for j, d in enumerate(dids)
        ]
    )  # fmt: skip
    lat = {f: rng.normal(size=8) for f in fams}
    vec = {m: lat[fam_of[m]] + 0.7 * rng.normal(size=8) for m in mids}
    base = np.array(
        [[np.dot(vec[a], vec[b]) / np.linalg.norm(vec[a]) / np.linalg.norm(vec[b]) for b in mids] for a in mids]
    )
    base = (base + 1) / 2
    pair, ids, energy, trees = [], [], [], []
    n = len(mids)
    ia, ib = np.triu_indices(n, 1)
    oa, ob = np.where(~np.eye(n, dtype=bool))
    for d in dids:

        def rows(metric, k, a_idx, b_idx, vals, p=None, d=d):
            ci = 0.02
            return pd.DataFrame({
                "dataset_id": d, "metric": metric, "k": k, "model_a": [mids[i] for i in a_idx],
                "model_b": [mids[i] for i in b_idx], "value": vals, "ci_low": vals - ci, "ci_high": vals + ci,
                "p_value": p, "n": 5000,
            })  # fmt: skip

        for k in (5, 10, 20, 50, 100):
            v = np.clip(base[oa, ob] * (0.6 + 0.05 * np.log(k)) + 0.03 * rng.normal(size=len(oa)), 0, 1)
            pair.append(rows("cknna", k, oa, ob, v))
            pair.append(rows("mutual_knn", k, ia, ib, np.clip(base[ia, ib] * 0.5, 0, 1)))
        pair.append(rows("cka", None, ia, ib, np.clip(base[ia, ib], 0, 1)))
        pair.append(rows("idcor", None, ia, ib, np.clip(base[ia, ib] * 0.8, 0, 1), p=np.full(len(ia), 0.01)))
        for k in (1, 5, 10):
            pair.append(rows("info_imbalance", k, oa, ob, np.clip(1 - base[oa, ob], 0, 1)))
        for m in mids:
            v = float(rng.uniform(5, 40))
            ids.append({"dataset_id": d, "model_id": m, "estimator": "twonn", "value": v, "ci_low": v - 1,
                        "ci_high": v + 1, "n": 5000, "n_duplicates": 0})  # fmt: skip
            energy.append({"dataset_id": d, "model_id": m, "mae_per_atom": float(rng.uniform(0.01, 0.5)),
                           "n_test": 1000})  # fmt: skip
        dm = 1 - base
        dmat = DistanceMatrix(mids, [[float(dm[i, j]) if i != j else 0.0 for j in range(i + 1)] for i in range(n)])
        for method in ("nj", "upgma"):
            buf = StringIO()
            Phylo.write(getattr(DistanceTreeConstructor(), method)(dmat), buf, "newick")
            for k in (5, 10, 20, 50, 100):
                trees.append({"dataset_id": d, "metric": "cknna", "k": k, "method": method,
                              "newick": buf.getvalue().strip()})  # fmt: skip
    pw = pd.concat(pair, ignore_index=True)
    pw["k"] = pw["k"].astype("Int64")
    pw.loc[pw["metric"] != "idcor", "p_value"] = None
    return {
        "models": models, "datasets": datasets, "pairwise": pw, "intrinsic_dim": pd.DataFrame(ids),
        "energy": pd.DataFrame(energy), "trees": pd.DataFrame(trees),
    }  # fmt: skip


def rerun_times(page: str, reruns: int, params: dict) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(MAIN), default_timeout=120)
    for k, v in params.items():
        at.query_params[k] = v
    if page != "overview":
        at.switch_page(f"pages_/{page}.py")
    at.run()
    if at.exception or at.error:
        raise RuntimeError(f"{page}: {[e.message for e in at.exception] or [e.value for e in at.error]}")
    out = []
    for _ in range(reruns):
        t = time.perf_counter()
        at.run()
        out.append(time.perf_counter() - t)
    return out


def cold_start(repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.time()
        r = subprocess.run(
            [sys.executable, "-c", _COLD, str(t0), str(MAIN)], capture_output=True, text=True, env=os.environ.copy()
        )
        if r.returncode:
            raise RuntimeError(f"cold start failed:\n{r.stderr[-3000:]}")
        out.append(float(r.stdout.strip().splitlines()[-1]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--releases", type=Path, help="releases folder holding `latest` (default: data/releases)")
    g.add_argument("--fixture", action="store_true", help="build the small test release in a temp folder")
    g.add_argument(
        "--synthetic",
        type=int,
        metavar="N_MODELS",
        help="a release of N models x 5 datasets with "
        "SYNTHETIC numbers (size of the shipped release), in a temp folder",
    )
    p.add_argument("--reruns", type=int, default=20)
    p.add_argument("--cold", type=int, default=3, help="cold starts to time")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    tmp = None
    if a.fixture:
        from tests._release_fixture import write_test_release

        tmp = tempfile.TemporaryDirectory(prefix="matter-align-bench-")
        write_test_release(Path(tmp.name))
        os.environ["MATTER_ALIGN_RELEASES"] = tmp.name
    elif a.synthetic:
        from precompute.release.writer import write_release

        tmp = tempfile.TemporaryDirectory(prefix="matter-align-bench-")
        extra = {"inputs": [{"name": "synthetic", "recipe": "bench/app_latency.py synthetic_tables", "seed": 0}],
                 "settings": {"synthetic": True}, "code_version": "bench"}  # fmt: skip
        write_release(synthetic_tables(a.synthetic), extra, Path(tmp.name))
        os.environ["MATTER_ALIGN_RELEASES"] = tmp.name
    elif a.releases:
        os.environ["MATTER_ALIGN_RELEASES"] = str(a.releases.resolve())
    from backend import Release, queries, releases_root

    try:
        release = Release.open()
    except ValueError as e:
        print(f"no release to measure: {e}\n(use --fixture or --synthetic 60, or --releases DIR)", file=sys.stderr)
        return 2
    s = queries.release_summary(release)
    print(f"release {s.release_id} at {release.path}: {s.n_models} models, {s.n_datasets} datasets")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; reruns per page: {a.reruns}; root {releases_root()}"
    )
    params: dict = {}
    rows = []
    print(f"\n{'page':<22}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  target p95 <= {TARGET_P95_MS:.0f} ms")
    ok = True
    for page in PAGES:
        t = np.array(rerun_times(page, a.reruns, params)) * 1000
        p50, p95 = float(np.percentile(t, 50)), float(np.percentile(t, 95))
        good = p95 <= TARGET_P95_MS
        ok &= good
        rows.append({"page": page, "p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "max_ms": round(t.max(), 1)})
        print(f"{page:<22}{p50:>9.1f}{p95:>9.1f}{t.max():>9.1f}  {'ok' if good else 'MISSED'}")
    cold = cold_start(a.cold)
    cold_med = float(np.median(cold))
    good = cold_med <= TARGET_COLD_S
    ok &= good
    print(
        f"\ncold start to first page (fresh process: imports, open + verify release, overview): median "
        f"{cold_med:.2f} s over {len(cold)} (all: {', '.join(f'{c:.2f}' for c in cold)}); target <= "
        f"{TARGET_COLD_S:.0f} s: {'ok' if good else 'MISSED'}"
    )
    if a.json:
        a.json.write_text(
            json.dumps({"release": s.release_id, "pages": rows, "cold_start_s": cold, "ok": ok}, indent=2) + "\n"
        )
    if tmp is not None:
        tmp.cleanup()
    return 0 if (ok or not a.check) else 1


if __name__ == "__main__":
    sys.exit(main())
