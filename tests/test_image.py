"""The hosted image, built and served: the Dockerfile built with podman, run, its health checked, pages opened.

No container registry is reachable here, so the base is a local Debian bookworm + python3 image
(tests/image/make_base.sh, debootstrap from apt's mirror, cached), RUN steps reach the package registries with
`--network host` and the host's pip configuration mounted read-only, and the container runs under
tests/image/runc-no-rlimits (runc may not set rlimits in this sandbox). Then: /_stcore/health is 200, the image's own
HEALTHCHECK passes (`podman healthcheck run`), and chromium shows the overview and the heatmap of the shipped release.

Needs podman, debootstrap and runc (`make image-tools`; skipped without them unless $CI is set) and root.
MATTER_ALIGN_IMAGE_BASE names another base image (then make_base.sh is not run).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.image import podman_build as pb

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "image"
TIMINGS: dict[str, float] = {}
pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _need_tools() -> None:
    missing = [t for t in ("podman", "debootstrap", "runc") if shutil.which(t) is None]
    if missing:
        msg = f"image test needs {', '.join(missing)} (make image-tools)"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: missing tools are a failure)")
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    _need_tools()
    base = os.environ.get("MATTER_ALIGN_IMAGE_BASE", pb.BASE_IMAGE)
    if base == pb.BASE_IMAGE:
        TIMINGS["base_s"] = round(pb.make_base(base), 1)
    tag = f"localhost/matter-align-test:{os.getpid()}"
    t = time.perf_counter()
    r = subprocess.run(
        pb.build_command(tag, base, tmp_path_factory.mktemp("pip")), capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, f"podman build failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    TIMINGS["build_s"] = round(time.perf_counter() - t, 1)
    try:
        yield tag
    finally:  # the tag only: the layers stay as the build cache of the next run
        subprocess.run(["podman", "untag", tag], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def served(image):
    port, name = _free_port(), f"matter-align-test-{os.getpid()}"
    subprocess.run(["podman", "rm", "-f", name], capture_output=True, timeout=60)
    r = subprocess.run(pb.run_command(name, image, port), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"podman run failed: {r.stderr[-3000:]}"
    url = f"http://127.0.0.1:{port}"
    try:
        t, deadline = time.perf_counter(), time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            state = subprocess.run(["podman", "inspect", "-f", "{{.State.Running}}", name], capture_output=True)
            if state.stdout.strip() != b"true" or time.time() > deadline:
                logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True).stdout
                pytest.fail(f"the container did not become healthy on {url}:\n{logs[-3000:]}")
            time.sleep(0.5)
        TIMINGS["run_to_health_s"] = round(time.perf_counter() - t, 1)
        yield url, name
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, timeout=120)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.json").write_text(json.dumps(TIMINGS, indent=1))


def _shipped() -> tuple[str, pd.DataFrame]:
    root = ROOT / "data" / "releases"
    rid = (root / "latest").read_text().strip()
    return rid, pd.read_parquet(root / rid / "models.parquet", columns=["model_id", "display_name"])


def test_health_and_the_images_healthcheck(served):
    url, name = served
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as resp:
        assert resp.status == 200 and resp.read().strip() == b"ok"
    r = subprocess.run(["podman", "healthcheck", "run", name], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"the Dockerfile's HEALTHCHECK failed: {r.stdout}{r.stderr}"
    r = subprocess.run(["podman", "exec", name, "sh", "-c", "id -un; python -c 'import torch'"], capture_output=True)
    assert r.stdout.split()[0] == b"app" and b"No module named 'torch'" in r.stderr


def test_overview_and_heatmap_in_chromium(served):
    from tests.test_browser import ARGS, CHROMIUM, _need_browser, _no_exception, _settle

    _need_browser()
    from playwright.sync_api import sync_playwright

    url, _ = served
    rid, models = _shipped()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            t = time.perf_counter()
            page.goto(url)
            _settle(page, "Do scientific foundation models converge", 1)
            TIMINGS["overview_s"] = round(time.perf_counter() - t, 1)
            _no_exception(page, "overview")
            assert rid in page.inner_text("body"), f"the overview does not name the shipped release {rid}"
            page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

            t = time.perf_counter()
            page.goto(f"{url}/heatmap")
            _settle(page, "Alignment heatmap", 1)
            TIMINGS["heatmap_s"] = round(time.perf_counter() - t, 1)
            _no_exception(page, "heatmap")
            page.screenshot(path=str(ARTIFACTS / "heatmap.png"), full_page=True)
            assert page.locator(".js-plotly-plot .heatmaplayer").count() >= 1, "no heatmap drawn"
            ticks = page.eval_on_selector_all(".js-plotly-plot .xtick text", "es => es.map(e => e.textContent.trim())")
        finally:
            browser.close()
    # every column of the heatmap is a model of the shipped release (labels: display name, maybe tagged or cut)
    prefixes = [n[:10] for n in models["display_name"]] + list(models["model_id"])
    unknown = [t for t in ticks if not any(t.startswith(x) or x in t for x in prefixes)]
    assert len(ticks) >= 3 and not unknown, f"heatmap columns {ticks}: not models of {rid}: {unknown}"
