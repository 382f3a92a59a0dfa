"""Screenshots of every dashboard page at 1600 x 1000 on a release, for the eye (issue 15.10).

    .venv/bin/python -m tests.browser.screens [--releases data/releases] [--out test-artifacts/screens]

Starts the app as the README does on the releases folder (default: the shipped one, data/releases/latest), opens
every page of app/page_list.py plus a few deep links (family blocks, a large k, calibrated switch) in Debian's
chromium through Playwright, waits for the script to finish and writes `<name>.png` (the top of the page) and
`<name>_2.png`, ... (one screen further each, to the bottom) under --out (ignored by git). Fails on an exception shown on a page. Reuses the
browser test's chromium arguments and settle logic (tests/test_browser.py); never runs `playwright install`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from app.page_list import PAGE_SLUGS
from tests.test_browser import ARGS, CHROMIUM, PAGES, ROOT, STREAMLIT, _free_port, _no_exception, _settle

TITLES = {path or "overview": (title, charts) for path, title, charts in PAGES}
EXTRA = [  # (name, url path and query, page slug): views the default URLs do not reach
    ("heatmap_family_block", "heatmap?view=family_block", "heatmap"),
    ("heatmap_cluster", "heatmap?order=cluster", "heatmap"),
    ("heatmap_calibrated", "heatmap?scale=calibrated", "heatmap"),
    ("local_vs_global_calibrated", "local_vs_global?scale=calibrated", "local_vs_global"),
    ("compare_calibrated", "compare?scale=calibrated", "compare"),
    ("intrinsic_dimension_all", "intrinsic_dimension?scope=all", "intrinsic_dimension"),
    ("heatmap_pdb_k100", "heatmap?dataset=pdb&metric=cknna&k=100", "heatmap"),
]


def _wait_health(base: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"streamlit did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


# Streamlit scrolls an inner container, not the document: a full-page screenshot is only the viewport
_SCROLLER = """() => {
  const els = [...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer], section')];
  return els.find(e => e.scrollHeight > e.clientHeight + 4 && getComputedStyle(e).overflowY !== 'visible') || null;
}"""


def _finished(page, timeout_ms: int = 90_000) -> None:
    """Until the script run is over: this Streamlit shows 'Stop' (not 'Running') in its status widget while it runs,
    which `_settle` does not catch on a page without charts (the summary table came later)."""
    page.wait_for_function(
        "!document.querySelector('[data-testid=stStatusWidget]') || "
        "!/Running|Stop/.test(document.querySelector('[data-testid=stStatusWidget]').innerText)",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(600)


def _scroll_shots(page, out: Path, name: str, max_parts: int = 12) -> list[Path]:
    """The page at 1600 x 1000 as the reader scrolls it: `<name>.png` (top), then `<name>_2.png`, ... one screen
    (minus 100 px of overlap) further each, until the bottom."""
    el = page.evaluate_handle(_SCROLLER)
    height = page.evaluate("e => e ? e.scrollHeight : 0", el)
    step = 900
    written = []
    for i in range(max_parts):
        if i and i * step >= height - 1000 + step:
            break
        page.evaluate(f"e => {{ if (e) e.scrollTop = {i * step}; }}", el)
        page.wait_for_timeout(250)
        path = out / (f"{name}.png" if i == 0 else f"{name}_{i + 1}.png")
        page.screenshot(path=str(path))
        written.append(path)
    page.evaluate("e => { if (e) e.scrollTop = 0; }", el)
    return written


def shoot(releases: Path, out: Path, extra_query: str = "", only: list[str] | None = None) -> list[Path]:
    """Every page (and EXTRA) of the app on `releases` to PNGs under `out`; returns the files written."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"{CHROMIUM} missing: tests/browser/install_chromium.sh")
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = out / "server.log"
    env = {**os.environ, "MATTER_ALIGN_RELEASES": str(releases), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    cmd = [str(STREAMLIT), "run", "app/main.py", "--server.headless", "true", "--server.port", str(port)]
    written: list[Path] = []
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_health(base, proc, log)
        shots = [(s, "" if s == "overview" else s, s) for s in PAGE_SLUGS] + EXTRA
        shots = [t for t in shots if not only or t[0] in only]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            for name, url, slug in shots:
                title, charts = TITLES[slug]
                sep = "&" if "?" in url else "?"
                page.goto(f"{base}/{url}" + (f"{sep}{extra_query}" if extra_query else ""))
                _settle(page, title, charts)
                _finished(page)
                _no_exception(page, name)
                written += _scroll_shots(page, out, name)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--releases", type=Path, default=ROOT / "data" / "releases", help="folder holding `latest`")
    ap.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "screens")
    ap.add_argument("--query", default="", help="appended to every URL, e.g. 'dataset=pdb'")
    ap.add_argument("--only", nargs="*", help="shot names to take (default: all), e.g. heatmap compare")
    a = ap.parse_args(argv)
    for path in shoot(a.releases.resolve(), a.out.resolve(), a.query, a.only):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    sys.exit(main())
