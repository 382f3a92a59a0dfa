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
MAIN = ROOT / "app" / "main.py"
PAGES = [
    "overview",
    "heatmap",
    "tree",
    "intrinsic_dimension",
    "id_vs_ood",
    "convergence",
    "local_vs_global",
    "compare",
    "model_cards",
    "dataset_cards",
]
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
    elif a.releases:
        os.environ["MATTER_ALIGN_RELEASES"] = str(a.releases.resolve())
    from backend import Release, queries, releases_root

    release = Release.open()
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
