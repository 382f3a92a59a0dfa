"""The dashboard in a real browser: Debian's chromium driven by Playwright.

Starts the app the way the README does (`.venv/bin/streamlit run app/main.py --server.headless true --server.port
<free port>`) on a fixture release built in a temp folder, visits every page, changes a filter, downloads a CSV and
checks its rows against the backend, saves screenshots to test-artifacts/ and fails on any exception shown on a page
(`[data-testid=stException]`) or any error in the browser console.

Needs /usr/bin/chromium (`tests/browser/install_chromium.sh`). Without it: skipped, unless $CI is set (then a failure).
Never runs `playwright install`.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("MATTER_ALIGN_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
STREAMLIT = Path(sys.executable).parent / "streamlit"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PAGES = [  # url path, title on the page, plotly charts expected at least
    ("", "Do scientific foundation models converge", 1),
    ("summary", "Summary: which models agree, how sure are we", 0),
    ("heatmap", "Alignment heatmap", 1),
    ("tree", "Model tree", 1),
    ("intrinsic_dimension", "Intrinsic dimension", 1),
    ("id_vs_ood", "In- vs out-of-distribution", 4),
    ("convergence", "Convergence", 1),
    ("local_vs_global", "Local vs global", 2),
    ("compare", "Compare two models", 1),
    ("model_cards", "Model cards", 0),
    ("dataset_cards", "Dataset cards", 0),
    ("score", "Score your model", 0),
]

TIMINGS: dict = {}
_PATHS = {p for p, _, _ in PAGES if p}
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _need_browser():
    missing = []
    if not Path(CHROMIUM).is_file():
        missing.append(f"{CHROMIUM} (Debian chromium: tests/browser/install_chromium.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the python package playwright")
    if missing:
        msg = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: a missing browser is a failure)")
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def release_root(tmp_path_factory):
    from tests._release_fixture import write_test_release

    root = tmp_path_factory.mktemp("releases")
    write_test_release(root)
    return root


@pytest.fixture(scope="module")
def server(release_root, tmp_path_factory):
    _need_browser()
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "MATTER_ALIGN_RELEASES": str(release_root), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(STREAMLIT), "run", "app/main.py", "--server.headless", "true", "--server.port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    t_launch = time.perf_counter()
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        TIMINGS["server_launch_to_health_s"] = round(time.perf_counter() - t_launch, 2)
        TIMINGS["_t_launch"] = t_launch
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            accept_downloads=True,
            viewport={"width": 1440, "height": 1800},
        )
        try:
            yield ctx
        finally:
            ctx.close()


# Streamlit's frontend, opened on a page's own URL (/heatmap), first probes the server under that path
# (/heatmap/_stcore/health, .../host-config), gets 404 and then uses the root. Only these exact probes are tolerated.
_PROBE = re.compile(r"^http://127\.0\.0\.1:\d+/[a-z_]+/_stcore/(health|host-config)$")


class Watch:
    """Console errors and page errors of one tab (Streamlit's base-path probes excepted, see _PROBE)."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda m: self._console(m))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def _console(self, m) -> None:
        if m.type == "error" and not (
            "404" in m.text and _PROBE.match(m.location.get("url", "")) and m.location["url"].split("/")[3] in _PATHS
        ):
            self.errors.append(f"console error: {m.text} at {m.location.get('url')}")


def _settle(page, title: str, charts: int) -> None:
    page.get_by_role("heading", name=title).first.wait_for(timeout=30_000)
    if charts:
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {charts}", timeout=30_000)
    # the script has finished when Streamlit's running indicator is gone
    page.wait_for_function(
        "!document.querySelector('[data-testid=stStatusWidget]') || "
        "!document.querySelector('[data-testid=stStatusWidget]').innerText.includes('Running')",
        timeout=30_000,
    )
    page.wait_for_timeout(400)


def _no_exception(page, where: str) -> None:
    n = page.locator("[data-testid=stException]").count()
    assert n == 0, f"{where}: {n} exception(s) shown: {page.locator('[data-testid=stException]').first.inner_text()}"


def test_every_page(server, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    watch = Watch(page)
    for i, (path, title, charts) in enumerate(PAGES):
        t = time.perf_counter()
        page.goto(f"{server}/{path}")
        _settle(page, title, charts)
        if i == 0:  # cold start: process launch -> first page drawn in the browser (Streamlit start included)
            TIMINGS["server_launch_to_first_page_incl_chromium_start_s"] = round(
                time.perf_counter() - TIMINGS["_t_launch"], 2
            )
        TIMINGS[f"load_{path or 'overview'}_s"] = round(time.perf_counter() - t, 2)
        _no_exception(page, path or "overview")
        assert page.locator(".js-plotly-plot").count() >= charts, path
        page.screenshot(path=str(ARTIFACTS / f"{path or 'overview'}.png"), full_page=True)
    (ARTIFACTS / "timings.json").write_text(
        json.dumps({k: v for k, v in TIMINGS.items() if not k.startswith("_")}, indent=2) + "\n"
    )
    (ARTIFACTS / "console_every_page.txt").write_text("\n".join(watch.errors) + "\n")
    assert not watch.errors, "\n".join(watch.errors)
    page.close()


def test_filter_url_and_csv(server, browser, release_root):
    import pandas as pd

    from backend import Release, queries

    r = Release.open(release_root / (release_root / "latest").read_text().strip())
    page = browser.new_page()
    watch = Watch(page)
    page.goto(f"{server}/heatmap")
    _settle(page, "Alignment heatmap", 1)
    sidebar = page.locator("[data-testid=stSidebar]")
    # change the dataset filter: qm9 (default, real) -> offeq (generated)
    sidebar.locator("[data-testid=stSelectbox]").filter(has_text="Dataset").first.click()
    page.get_by_role("option", name="OFFEQ (offeq)").click()
    page.wait_for_url("**dataset=offeq**", timeout=20_000)
    _settle(page, "Alignment heatmap", 1)
    page.get_by_text("on OFFEQ, k = 10").first.wait_for(timeout=20_000)
    _no_exception(page, "heatmap after filter")
    # hide one family through the model filter: the line says how many models are hidden
    sidebar.locator("[data-testid=stMultiSelect]").filter(has=page.get_by_text("Family", exact=True)).first.click()
    page.get_by_role("option", name="MACE").click()
    page.keyboard.press("Escape")
    page.wait_for_url("**family=MACE**", timeout=20_000)
    _settle(page, "Alignment heatmap", 1)
    page.get_by_text("3 hidden by the filters").first.wait_for(timeout=20_000)
    link = sidebar.locator("[data-testid=stCode]").last.inner_text()
    assert link.startswith(server) and "/heatmap?" in link and "dataset=offeq" in link and "family=MACE" in link, link
    page.screenshot(path=str(ARTIFACTS / "heatmap_filtered.png"), full_page=True)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download the table behind this figure (CSV)").first.click()
    d = dl.value
    got = Path(d.path()).read_bytes()
    k = 10
    res = queries.matrix(r, "offeq", "cknna", k, order="family", models=["mace_a", "mace_b"])
    # the file name carries the filter
    assert d.suggested_filename == queries.csv_filename(r.release_id, "offeq", "cknna", k, "matrix").replace(
        ".csv", "_family-MACE.csv"
    )
    assert got == queries.to_csv(queries.matrix_table(res))
    rows = pd.read_csv(io.BytesIO(got))
    assert set(rows["model_a"]) == {"mace_a", "mace_b"} and len(rows) == 2
    # the filters survive a page change through the sidebar navigation, and the URL keeps them
    page.locator("[data-testid=stSidebarNav]").get_by_text("Intrinsic dimension").click()
    page.wait_for_url("**/intrinsic_dimension?**", timeout=20_000)
    _settle(page, "Intrinsic dimension", 1)
    assert "dataset=offeq" in page.url and "family=MACE" in page.url, page.url
    page.get_by_text("3 hidden by the filters").first.wait_for(timeout=20_000)
    _no_exception(page, "intrinsic dimension after navigation")
    # a deep link restores the view; an invalid value is ignored with a visible warning
    page.goto(f"{server}/heatmap?dataset=qm9&metric=cka&order=cluster&family=NOPE")
    _settle(page, "Alignment heatmap", 1)
    page.get_by_text("not a known family").first.wait_for(timeout=20_000)
    page.get_by_text("CKA (linear, biased) on QM9").first.wait_for(timeout=20_000)
    _no_exception(page, "deep link")
    page.screenshot(path=str(ARTIFACTS / "heatmap_deeplink.png"), full_page=True)
    assert not watch.errors, watch.errors
    page.close()


def test_score_your_model_upload_in_the_browser(server, browser, tmp_path):
    """Upload a fixture model's embedding (.npy) on the score page: the ranked table puts the model itself first
    (CKNNA 1), and the heatmap, tree and intrinsic-dimension figures are drawn."""
    import numpy as np

    from tests._release_fixture import embeddings

    emb = embeddings()
    ds = sorted(emb)[0]
    model = sorted(emb[ds])[0]
    np.save(tmp_path / "mine.npy", emb[ds][model])
    page = browser.new_page()
    watch = Watch(page)
    page.goto(f"{server}/score")
    _settle(page, "Score your model", 0)
    page.get_by_text("Dataset", exact=True).first.wait_for()
    box = page.locator("[data-testid=stSelectbox]").filter(has_text="Dataset").first
    if ds not in box.inner_text():
        box.click()
        page.get_by_role("option").filter(has_text=f"({ds})").first.click()
        _settle(page, "Score your model", 0)
    page.locator("input[type=file]").set_input_files(str(tmp_path / "mine.npy"))
    page.get_by_role("heading", name="Nearest release models").wait_for(timeout=60_000)
    _settle(page, "Score your model", 3)
    _no_exception(page, "score")
    grid = page.locator("[data-testid=stDataFrame]").first
    assert model in grid.inner_text() or page.get_by_text(model).count() > 0
    assert page.locator(".js-plotly-plot").count() >= 3
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.screenshot(path=str(ARTIFACTS / "score-upload.png"), full_page=True)
    assert not watch.errors, watch.errors
    page.close()


def test_models_search_k_warning_and_exports(server, browser, release_root):
    """Issue 15: the model search lists only matches; the k warning is visible; a figure exports as SVG from its
    modebar (drawn by the browser, no kaleido) under the CSV's name; the tree downloads as .nwk."""
    from backend import Release, queries

    r = Release.open(release_root / (release_root / "latest").read_text().strip())
    page = browser.new_page()
    page.set_viewport_size({"width": 1600, "height": 1000})
    watch = Watch(page)
    page.goto(f"{server}/heatmap?dataset=qm9&metric=cknna&k=10")
    _settle(page, "Alignment heatmap", 1)
    page.get_by_text("k = 10 is large for n = 60").first.wait_for(timeout=20_000)
    sidebar = page.locator("[data-testid=stSidebar]")
    box = sidebar.locator("[data-testid=stMultiSelect]").filter(has_text="search by name").first
    box.click()
    page.keyboard.type("chembert")
    page.wait_for_timeout(300)
    opts = [o for o in page.get_by_role("option").all_inner_texts() if " · " in o]  # not "Select 2 matches"
    assert len(opts) == 2 and all("ChemBERTa" in o for o in opts), opts  # the family matched, nothing else
    page.get_by_role("option", name="BERT A · bert_a · ChemBERTa").click()
    page.keyboard.press("Escape")
    page.wait_for_url("**models=bert_a**", timeout=20_000)
    _settle(page, "Alignment heatmap", 0)
    page.get_by_text("1 of 5").first.wait_for(timeout=20_000)
    page.goto(f"{server}/heatmap?dataset=qm9&metric=cknna&k=10&models=bert_a&models=bert_b")
    _settle(page, "Alignment heatmap", 1)
    page.get_by_text("2 of 5").first.wait_for(timeout=20_000)
    # SVG through the modebar's camera, named like the CSV (with the filter)
    sidebar.get_by_text("svg", exact=True).click()
    _settle(page, "Alignment heatmap", 1)
    page.locator(".js-plotly-plot").first.hover()
    with page.expect_download() as dl:
        page.locator(".js-plotly-plot .modebar-btn[data-title^='Download plot']").first.click()
    d = dl.value
    want = queries.csv_filename(r.release_id, "qm9", "cknna", 10, "matrix").replace(
        ".csv", "_models-bert-a-bert-b.svg"
    )  # "_" separates parts
    assert d.suggested_filename == want, d.suggested_filename
    assert Path(d.path()).read_bytes().lstrip().startswith(b"<svg")
    # the tree as Newick
    page.goto(f"{server}/tree?dataset=qm9&metric=cknna&k=10")
    _settle(page, "Model tree", 1)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download the tree (Newick, .nwk)").click()
    assert dl.value.suggested_filename.endswith("_tree-nj_qm9_cknna_k10.nwk")
    assert Path(dl.value.path()).read_text().strip() == queries.tree(r, "qm9", "cknna", 10, "nj").strip()
    # every page at 1600 x 1000 for the eye (test-artifacts/browser/1600x1000_<page>.png)
    for path, title, charts in PAGES:
        page.goto(f"{server}/{path}")
        _settle(page, title, charts)
        _no_exception(page, path or "overview")
        page.screenshot(path=str(ARTIFACTS / f"1600x1000_{path or 'overview'}.png"))
    assert not watch.errors, watch.errors
    page.close()


def test_raw_calibrated_switch(server, browser, release_root):
    """Issue 16.5: the raw / calibrated switch redraws the heatmap with the calibrated scores, writes `scale` into
    the URL and back out; the cells not above the null's 95th percentile carry the × marker trace."""
    from backend import Release, queries

    r = Release.open(release_root / (release_root / "latest").read_text().strip())
    page = browser.new_page()
    page.set_viewport_size({"width": 1600, "height": 1000})
    watch = Watch(page)
    page.goto(f"{server}/heatmap?dataset=qm9&metric=cknna&k=5")
    _settle(page, "Alignment heatmap", 1)
    heat = "document.querySelector('.js-plotly-plot').data.find(t => t.type === 'heatmap')"
    assert page.evaluate(f"{heat}.colorbar.title.text") == "CKNNA"
    switch = page.locator("[data-testid=stRadio]").filter(has_text="Values").first
    switch.get_by_text("calibrated", exact=True).click()
    page.wait_for_url("**scale=calibrated**", timeout=20_000)
    _settle(page, "Alignment heatmap", 1)
    page.wait_for_function(f"{heat}.colorbar.title.text === 'calibrated CKNNA'", timeout=20_000)
    res = queries.matrix(r, "qm9", "cknna", 5, order="family", scale="calibrated")
    full = "document.querySelector('.js-plotly-plot')._fullData.find(t => t.type === 'heatmap')"  # decoded z
    z = page.evaluate(f"Array.from({full}.z, row => Array.from(row))")
    want = res.matrix.to_numpy(dtype=float)
    import numpy as np

    got = np.array([[np.nan if v is None else v for v in row] for row in z], dtype=float)
    assert got.shape == want.shape and np.allclose(got, want, equal_nan=True)
    names = page.evaluate("document.querySelector('.js-plotly-plot').data.map(t => t.name)")
    marked = int((res.cells["above_null_q95"] == False).sum())  # noqa: E712
    assert ("not above the null's 95th percentile" in names) == (marked > 0), names
    page.screenshot(path=str(ARTIFACTS / "1600x1000_heatmap_calibrated.png"))
    switch.get_by_text("raw", exact=True).click()
    page.wait_for_function("!location.search.includes('scale=')", timeout=20_000)
    _settle(page, "Alignment heatmap", 1)
    page.wait_for_function(f"{heat}.colorbar.title.text === 'CKNNA'", timeout=20_000)
    _no_exception(page, "heatmap")
    assert not watch.errors, watch.errors
    page.close()
