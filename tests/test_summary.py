"""The summary view (issue 15.1): backend.queries.model_summary against a direct computation from the pairwise
table, and the dashboard page showing exactly it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from backend import Release
from backend import queries as q

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def release_root(tmp_path_factory) -> Path:
    from tests._release_fixture import write_test_release

    root = tmp_path_factory.mktemp("releases")
    write_test_release(root)
    return root


@pytest.fixture(scope="module")
def release(release_root) -> Release:
    return Release.open(release_root / (release_root / "latest").read_text().strip())


def _direct(release, ds, metric, k):
    pw = release.query("SELECT model_a, model_b, value FROM pairwise WHERE dataset_id = ? AND metric = ? AND k = ?",
                       [ds, metric, k])  # fmt: skip
    val = {(a, b): v for a, b, v in pw.itertuples(index=False)}
    models = sorted(set(pw.model_a) | set(pw.model_b))
    out = {}
    for m in models:
        sym = {}
        for p in models:
            if p == m:
                continue
            both = [val[x] for x in ((m, p), (p, m)) if x in val]
            if both:
                sym[p] = sum(both) / len(both)
        out[m] = sym
    return out


@pytest.mark.parametrize("metric, k", [("cknna", 10), ("info_imbalance", 1)])
def test_model_summary_equals_a_direct_computation(release, metric, k):
    ds = q.list_datasets(release)["dataset_id"].iloc[0]
    df = q.model_summary(release, ds, metric, k)
    direct = _direct(release, ds, metric, k)
    higher = metric != "info_imbalance"
    assert set(df.model_id) == set(direct)
    means = df.mean_alignment.to_numpy()
    assert (np.diff(means) <= 1e-12).all() if higher else (np.diff(means) >= -1e-12).all()  # most aligned first
    for r in df.itertuples():
        vals = np.array(list(direct[r.model_id].values()))
        assert r.mean_alignment == pytest.approx(vals.mean(), abs=1e-12)
        half = stats.t.ppf(0.975, vals.size - 1) * vals.std(ddof=1) / np.sqrt(vals.size)
        assert (r.mean_ci_low, r.mean_ci_high) == pytest.approx((vals.mean() - half, vals.mean() + half), abs=1e-12)
        best = max(direct[r.model_id], key=direct[r.model_id].get) if higher else min(
            direct[r.model_id], key=direct[r.model_id].get)  # fmt: skip
        assert r.nearest_model == best and r.n_partners == vals.size
        assert r.interval_kind == "95% t-interval over the other models"


def test_model_summary_uses_pair_cis_and_marks_overlapping_pairs_as_ties(release_root, tmp_path):
    from precompute.release.writer import write_release
    from tests._release_fixture import MANIFEST_EXTRA, build_tables

    tables = build_tables()
    pw = tables["pairwise"]
    pw["ci_low"] = pw["value"] - 0.5  # wide intervals: every partner overlaps the nearest one
    pw["ci_high"] = pw["value"] + 0.5
    r = Release.open(write_release(tables, MANIFEST_EXTRA, tmp_path))
    ds = q.list_datasets(r)["dataset_id"].iloc[0]
    df = q.model_summary(r, ds, "cknna", 10)
    assert (df.interval_kind == "mean of the pairs' CIs").all()
    for row in df.itertuples():
        assert row.mean_ci_low == pytest.approx(row.mean_alignment - 0.5, abs=1e-9)
        others = set(df.model_id) - {row.model_id, row.nearest_model}
        assert set(row.nearest_tied_with.split(", ")) == others


def test_summary_page_shows_the_backends_table(release_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(release_root))
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60)
    at.switch_page("pages_/summary.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    release = Release.open(release_root / (release_root / "latest").read_text().strip())
    ds = at.query_params.get("dataset") or at.session_state["dataset"]
    shown = at.dataframe[0].value
    ref = q.model_summary(release, ds, at.session_state["metric"], int(at.session_state["k"]))
    from app.data import labels

    shown_labels = labels(release)  # the app's labels: display names with a source tag ("[trained here]")
    assert shown["model"].tolist() == [shown_labels[m] for m in ref.model_id]
    assert shown["card"].str.startswith("model_cards?model=").all()
    assert shown["compare"].str.contains("model_b=").all()
