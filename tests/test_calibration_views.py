"""Calibration in the backend and the dashboard (issue 16.4-6, issue 15.1): raw / calibrated values, nulls, p-value
floors, intervals and ties recomputed from the tables of tests/_calibration_fixture.py (real permutation nulls and
half-sampling CIs on dataset qm9, none on offeq); the switch in the app, its URL round trip, the heatmap's marks, the
CSV columns and the "no calibration data" message on the shipped release."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend import Release
from backend import queries as q
from backend.report_calibration import beyond_null, calibration_report
from tests._calibration_fixture import PERMUTATIONS, build_calibrated_tables

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "app" / "main.py")
SHIPPED = ROOT / "data" / "releases"


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return build_calibrated_tables()


@pytest.fixture(scope="module")
def release_root(tmp_path_factory, tables) -> Path:
    from precompute.release.writer import write_release
    from tests._release_fixture import MANIFEST_EXTRA

    root = tmp_path_factory.mktemp("releases")
    write_release(tables, MANIFEST_EXTRA, root, None)
    return root


@pytest.fixture(scope="module")
def rel(release_root) -> Release:
    return Release.open(release_root / (release_root / "latest").read_text().strip())


def _stored(tables, metric, k):
    """(a, b) -> the pairwise row joined with its null and calibration rows, straight from the tables."""
    key = ["dataset_id", "metric", "k", "model_a", "model_b"]
    pw = tables["pairwise"].astype({"k": "float"})
    nl = tables["pairwise_null"].astype({"k": "float"})
    cal = tables["pairwise_calibration"].astype({"k": "float"}).rename(columns={"p_value": "p_cal"})
    cal = cal.drop(columns=["n_permutations", "seed"])
    m = pw.merge(nl.drop(columns=["n"]), on=key, how="left").merge(cal, on=key, how="left")
    kk = np.nan if k is None else float(k)
    sel = m[(m.dataset_id == "qm9") & (m.metric == metric) & ((m.k == kk) | (m.k.isna() & np.isnan(kk)))]
    return {(r.model_a, r.model_b): r for r in sel.itertuples()}


def _cal(x: float, tau: float, higher: bool) -> float:
    """Algorithm 1's transform at a fixed critical value, restated (s_max = 1; information imbalance on 1 - x)."""
    return float(np.clip((x - tau) / (1 - tau), 0, 1) if higher else np.clip((tau - x) / tau, 0, 1))


# ------------------------------------------------------------------------------------------------------------ backend
@pytest.mark.parametrize("metric, k", [("cknna", 5), ("info_imbalance", 1), ("cka", None), ("mutual_knn", 10)])
def test_matrix_raw_and_calibrated_equal_the_tables(rel, tables, metric, k):
    ref = _stored(tables, metric, k)
    raw = q.matrix(rel, "qm9", metric, k)
    cal = q.matrix(rel, "qm9", metric, k, scale="calibrated")
    assert raw.scale == "raw" and cal.scale == "calibrated"
    higher = q.METRICS[metric].higher_is_aligned
    for c in cal.cells.itertuples():
        key = (c.model_a, c.model_b) if (c.model_a, c.model_b) in ref else (c.model_b, c.model_a)  # mirrored cells
        r = ref[key]
        assert raw.matrix.at[c.model_a, c.model_b] == pytest.approx(r.value, abs=1e-12)
        assert c.value == pytest.approx(r.calibrated, abs=1e-12) and c.value_raw == pytest.approx(r.value, abs=1e-12)
        assert (c.null_mean, c.null_q95, c.null_q99) == pytest.approx((r.null_mean, r.null_q95, r.null_q99), abs=1e-12)
        # the calibrated interval is the raw one through the same transform (tau fixed)
        lo, hi = _cal(r.ci_low, r.tau, higher), _cal(r.ci_high, r.tau, higher)
        assert (c.ci_low, c.ci_high) == pytest.approx((lo, hi) if higher else (hi, lo), abs=1e-12)
        beyond = r.value > r.null_q95 if higher else r.value < r.null_q95
        assert bool(c.above_null_q95) == bool(beyond)
        floor = r.p_cal <= 1 / (PERMUTATIONS + 1) + 1e-12
        assert c.p_text == (f"p < 1/(P+1), P = {PERMUTATIONS}" if floor else f"p = {r.p_cal:.3g}")
        assert c.n_permutations == PERMUTATIONS
    # a cell above the null's critical value has a positive calibrated score, one not beyond its 95th percentile is 0
    assert (cal.cells.loc[cal.cells["above_null_q95"] == False, "value"] == 0).all()  # noqa: E712
    assert (cal.cells["value"] > 0).any() and (cal.cells["value"] == 0).any()


def test_calibrate_like_reproduces_the_stored_scores(tables):
    from backend.queries.calibration import calibrate_like

    cal = tables["pairwise_calibration"].merge(
        tables["pairwise"], on=["dataset_id", "metric", "k", "model_a", "model_b"]
    )
    for metric, g in cal.groupby("metric"):
        assert calibrate_like(metric, g["value"], g["tau"]) == pytest.approx(g["calibrated"].to_numpy(), abs=1e-12)


def test_calibrated_is_refused_where_the_release_has_none(rel):
    assert q.has_calibration(rel) and q.has_calibration(rel, "qm9", "cknna", 5)
    assert not q.has_calibration(rel, "offeq", "cknna", 5) and not q.has_calibration(rel, "qm9", "idcor", None)
    with pytest.raises(ValueError, match="no calibration data for offeq"):
        q.matrix(rel, "offeq", "cknna", 5, scale="calibrated")
    with pytest.raises(ValueError, match="unknown scale 'z'"):
        q.matrix(rel, "qm9", "cknna", 5, scale="z")
    raw = q.matrix(rel, "offeq", "cknna", 5)
    assert raw.cells["calibrated"].isna().all() and raw.cells["above_null_q95"].isna().all()
    assert (raw.cells["p_text"] == "–").all()


def test_p_value_text_floor_rule():
    assert q.p_value_text(1 / 101, 100) == "p < 1/(P+1), P = 100"
    assert q.p_value_text(2 / 101, 100) == "p = 0.0198"
    assert q.p_value_text(0.5, None) == "p = 0.5" and q.p_value_text(None, 100) == "–"


def test_ranked_partners_ties_are_overlapping_intervals(rel, tables):
    ref = _stored(tables, "cknna", 5)
    for scale in ("raw", "calibrated"):
        for model in ("mace_a", "soap"):
            rk = q.ranked_partners(rel, "qm9", "cknna", model, 5, scale=scale)
            col = "value" if scale == "raw" else "calibrated"
            rows = {b: r for (a, b), r in ref.items() if a == model}
            assert sorted(rk["other_model"]) == sorted(rows)
            assert list(rk["value"]) == sorted((getattr(rows[b], col) for b in rows), reverse=True)
            assert all(
                v == pytest.approx(getattr(rows[b], col), abs=1e-12)
                for b, v in zip(rk.other_model, rk.value, strict=True)
            )
            best = rk.iloc[0]
            for x in rk.itertuples():
                overlaps = x.ci_low <= best.ci_high and best.ci_low <= x.ci_high
                assert x.tied_with_nearest == overlaps
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        q.ranked_partners(rel, "qm9", "cknna", "nope", 5)
    ii = q.ranked_partners(rel, "qm9", "info_imbalance", "mace_a", 1)
    assert ii["value"].is_monotonic_increasing  # raw information imbalance: lower = more aligned, first
    iic = q.ranked_partners(rel, "qm9", "info_imbalance", "mace_a", 1, scale="calibrated")
    assert iic["value"].is_monotonic_decreasing  # calibrated: higher = more aligned for every metric


def test_summary_uses_calibrated_means_and_intervals(rel, tables):
    ref = _stored(tables, "cknna", 5)
    df = q.model_summary(rel, "qm9", "cknna", 5, scale="calibrated")
    assert (df["scale"] == "calibrated").all() and df["mean_alignment"].is_monotonic_decreasing
    cal = q.matrix(rel, "qm9", "cknna", 5, scale="calibrated").cells.set_index(["model_a", "model_b"])
    for r in df.itertuples():
        others = sorted({b for a, b in ref if a == r.model_id})
        sym = [(ref[(r.model_id, b)].calibrated + ref[(b, r.model_id)].calibrated) / 2 for b in others]
        assert r.mean_alignment == pytest.approx(np.mean(sym), abs=1e-12)
        lo = [(cal.at[(r.model_id, b), "ci_low"] + cal.at[(b, r.model_id), "ci_low"]) / 2 for b in others]
        assert r.mean_ci_low == pytest.approx(np.mean(lo), abs=1e-12)
        assert r.interval_kind == "mean of the pairs' CIs"
        assert r.nearest_model == others[int(np.argmax(sym))]


def test_profile_and_compare_carry_calibration(rel, tables):
    ref = _stored(tables, "cknna", 5)
    cmp_ = q.compare_models(rel, "mace_a", "bert_a")
    row = cmp_[(cmp_.dataset_id == "qm9") & (cmp_.metric == "cknna") & (cmp_.k == 5)].iloc[0]
    assert row.calibrated == pytest.approx(ref[("mace_a", "bert_a")].calibrated, abs=1e-12)
    assert row.calibrated_ba == pytest.approx(ref[("bert_a", "mace_a")].calibrated, abs=1e-12)
    assert row.null_q95 == pytest.approx(ref[("mace_a", "bert_a")].null_q95, abs=1e-12)
    off = cmp_[(cmp_.dataset_id == "offeq") & (cmp_.scope == "pair")]
    assert off["calibrated"].isna().all()


def test_information_imbalance_pairs_and_tree_carry_calibration(rel, tables):
    ref = _stored(tables, "info_imbalance", 1)
    ii = q.information_imbalance_pairs(rel, "qm9", 1)
    for r in ii.itertuples():
        assert r.calibrated_ab == pytest.approx(ref[(r.model_a, r.model_b)].calibrated, abs=1e-12)
        assert r.calibrated_ba == pytest.approx(ref[(r.model_b, r.model_a)].calibrated, abs=1e-12)
        assert r.null_q05_ab == pytest.approx(ref[(r.model_a, r.model_b)].null_q95, abs=1e-12)  # the 5th percentile
    assert q.information_imbalance_pairs(rel, "offeq", 1)["calibrated_ab"].isna().all()
    from Bio import Phylo

    nwk = q.tree_for_models(rel, "qm9", "cknna", 5, "upgma", scale="calibrated")
    leaves = {t.name for t in Phylo.read(io.StringIO(nwk), "newick").get_terminals()}
    assert leaves == set(q.matrix(rel, "qm9", "cknna", 5).order)
    assert nwk != q.tree_for_models(rel, "qm9", "cknna", 5, "upgma")  # other distances, other tree
    with pytest.raises(ValueError, match="no calibration data"):
        q.tree_for_models(rel, "offeq", "cknna", 5, scale="calibrated")


def test_pair_vs_k_raw_and_calibrated_equal_the_tables(rel, tables):
    """The compare page's plot against k: every (dataset, metric, k) of the pair, raw and calibrated with the
    interval mapped at tau; a mutual kNN row stored only as B -> A is used mirrored; offeq has no calibration."""
    raw = q.pair_vs_k(rel, "bert_a", "mace_a")
    cal = q.pair_vs_k(rel, "bert_a", "mace_a", scale="calibrated")
    assert raw["k"].notna().all() and set(raw["metric"]) == {"cknna", "mutual_knn", "info_imbalance"}
    assert list(raw[["dataset_id", "metric", "k"]].itertuples(index=False)) == list(
        cal[["dataset_id", "metric", "k"]].itertuples(index=False)
    )
    checked = 0
    for r, c in zip(raw.itertuples(), cal.itertuples(), strict=True):
        ref = _stored(tables, r.metric, int(r.k)) if r.dataset_id == "qm9" else None
        if ref is None:  # offeq: raw shown, no calibrated value
            assert np.isnan(c.value) and np.isnan(c.ci_low) and c.value_raw == r.value
            continue
        key = ("bert_a", "mace_a") if ("bert_a", "mace_a") in ref else ("mace_a", "bert_a")
        assert r.mirrored == (key == ("mace_a", "bert_a"))
        s = ref[key]
        higher = q.METRICS[r.metric].higher_is_aligned
        assert (r.value, r.ci_low, r.ci_high) == pytest.approx((s.value, s.ci_low, s.ci_high), abs=1e-12)
        assert c.value == pytest.approx(s.calibrated, abs=1e-12) and c.value_raw == pytest.approx(s.value)
        lo, hi = _cal(s.ci_low, s.tau, higher), _cal(s.ci_high, s.tau, higher)
        assert (c.ci_low, c.ci_high) == pytest.approx((lo, hi) if higher else (hi, lo), abs=1e-12)
        assert c.ci_low <= c.value <= c.ci_high and c.scale == "calibrated"
        checked += 1
    # qm9: 3 metrics x 2 k; mutual kNN is stored only as MACE A -> BERT A (both datasets, both k): mirrored
    assert checked == 6 and list(raw.loc[raw["mirrored"], "metric"]) == ["mutual_knn"] * 4
    with pytest.raises(ValueError, match="unknown scale"):
        q.pair_vs_k(rel, "bert_a", "mace_a", scale="z")


def test_pair_vs_k_and_cknna_vs_idcor_refuse_calibrated_without_calibration():
    import tempfile

    from precompute.release.writer import write_release
    from tests._release_fixture import MANIFEST_EXTRA, build_tables

    tables = build_tables()
    for t in ("pairwise_null", "pairwise_calibration"):
        tables.pop(t, None)
    with tempfile.TemporaryDirectory() as d:
        write_release(tables, MANIFEST_EXTRA, Path(d), None)
        bare = Release.open(Path(d) / (Path(d) / "latest").read_text().strip())
        assert not q.has_calibration(bare)
        with pytest.raises(ValueError, match="has no calibration data"):
            q.pair_vs_k(bare, "bert_a", "mace_a", scale="calibrated")
        with pytest.raises(ValueError, match="has no calibration data"):
            q.cknna_vs_idcor(bare, "qm9", scale="calibrated")
        assert len(q.pair_vs_k(bare, "bert_a", "mace_a")) == 12


def test_cknna_vs_idcor_calibrates_each_axis_where_the_release_can(rel, tables):
    """qm9 calibrates CKNNA at every k but not IDCor: CKNNA calibrated with its interval, IDCor raw, and each
    axis's scale says so; offeq: both raw."""
    raw = q.cknna_vs_idcor(rel, "qm9")
    cal = q.cknna_vs_idcor(rel, "qm9", scale="calibrated")
    assert len(cal) == len(raw) == 20
    assert (cal["cknna_scale"] == "calibrated").all() and (cal["idcor_scale"] == "raw").all()
    assert (raw["cknna_scale"] == "raw").all()
    for r, c in zip(raw.itertuples(), cal.itertuples(), strict=True):
        s = _stored(tables, "cknna", int(r.k))[(r.model_a, r.model_b)]
        assert r.cknna == pytest.approx(s.value, abs=1e-12) and c.cknna_raw == pytest.approx(s.value, abs=1e-12)
        assert c.cknna == pytest.approx(s.calibrated, abs=1e-12)
        lo, hi = _cal(s.ci_low, s.tau, True), _cal(s.ci_high, s.tau, True)
        assert (c.cknna_ci_low, c.cknna_ci_high) == pytest.approx((lo, hi), abs=1e-12)
        assert c.cknna_n_permutations == PERMUTATIONS and pd.isna(c.idcor_n_permutations)
        assert c.idcor == r.idcor == c.idcor_raw  # no IDCor calibration: the raw value on both scales
    off = q.cknna_vs_idcor(rel, "offeq", scale="calibrated")
    assert (off["cknna_scale"] == "raw").all() and np.allclose(off["cknna"], off["cknna_raw"])


def test_width_check_table(rel, tables):
    w = q.width_check(rel, "qm9")
    assert set(zip(w.metric, w.k.astype("float").fillna(-1), strict=True)) == {
        ("cka", -1), ("cknna", 5), ("cknna", 10), ("info_imbalance", 1), ("info_imbalance", 5), ("mutual_knn", 5),
        ("mutual_knn", 10)}  # fmt: skip
    from scipy.stats import spearmanr

    dims = tables["models"].set_index("model_id")["embedding_dim"]
    nl = tables["pairwise_null"]
    g = nl[(nl.metric == "cknna") & (nl.k == 5)]
    rho = spearmanr(np.log(g.model_a.map(dims) * g.model_b.map(dims)), g.null_mean).statistic
    assert w[(w.metric == "cknna") & (w.k == 5)].rho_null_logdim.iloc[0] == pytest.approx(rho, abs=1e-12)
    assert q.width_check(rel, "offeq").empty


def test_report_names_the_right_percentile_for_every_metric(rel, tables):
    text = "\n".join(calibration_report(rel, "qm9"))
    nl = tables["pairwise_null"].merge(tables["pairwise"], on=["dataset_id", "metric", "k", "model_a", "model_b"])
    g = nl[(nl.metric == "info_imbalance") & (nl.k == 1)]
    below = int((g.value < g.null_q95).sum())  # information imbalance: beyond = below its 5th percentile
    assert f"info_imbalance k = 1: {len(g)} ordered pairs" in text
    assert f"smallest 5th percentile {g.null_q95.min():.4f}, {below} of {len(g)} beyond their 5th percentile" in text
    g = nl[(nl.metric == "cka")]
    assert f"largest 95th percentile {g.null_q95.max():.4f}, {int((g.value > g.null_q95).sum())} of {len(g)}" in text
    assert list(beyond_null([0.1, 0.9], [0.5, 0.5], "info_imbalance")) == [True, False]
    assert "width check on qm9" in text and "rho(null, log da*db)" in text
    assert "not in this release" in "\n".join(calibration_report(rel, "offeq"))


# ------------------------------------------------------------------------------------------------------------ the app
@pytest.fixture
def app(release_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    def make(page: str, root: Path = release_root, **params):
        monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(root))
        at = AppTest.from_file(MAIN, default_timeout=60)
        for key, val in params.items():
            at.query_params[key] = val
        at.switch_page(f"pages_/{page}.py")
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    return make


def _charts(at) -> list[dict]:
    import json

    from tests.test_app import _decode

    return [_decode(json.loads(c.proto.spec)) for c in at.get("plotly_chart")]


def _heatmap_trace(at) -> dict:
    return next(t for t in _charts(at)[0]["data"] if t["type"] == "heatmap")


def _radio(at, key: str):
    return next(r for r in at.radio if r.key == key)


def test_switch_url_round_trip_and_marks(app, rel):
    at = app("heatmap", dataset="qm9", metric="cknna", k="5", scale="calibrated")
    assert _radio(at, "scale").value == "calibrated" and at.query_params["scale"] == "calibrated"
    res = q.matrix(rel, "qm9", "cknna", 5, order="family", scale="calibrated")
    z = np.array(_heatmap_trace(at)["z"], dtype=float)
    assert np.allclose(z, res.matrix.to_numpy(float), equal_nan=True)
    assert _heatmap_trace(at)["colorbar"]["title"]["text"] == "calibrated CKNNA"
    assert _charts(at)[0]["layout"]["title"]["text"].startswith("calibrated · QM9 · CKNNA · k = 5")
    marks = next(t for t in _charts(at)[0]["data"] if t.get("name", "").startswith("not above"))
    want = {(int(r), int(c)) for r, c in zip(res.cells.row, res.cells.col, strict=True)
            if res.cells.set_index(["row", "col"]).at[(r, c), "above_null_q95"] == False}  # noqa: E712  # fmt: skip
    assert set(zip(np.asarray(marks["y"]).astype(int), np.asarray(marks["x"]).astype(int), strict=True)) == want
    assert want and marks["name"] == "not above the null's 95th percentile"
    assert any("calibrated: " in t and "null (19 perm.)" in t for row in _heatmap_trace(at)["text"] for t in row)
    # switching back to raw: the URL drops the default, the matrix is the raw one
    _radio(at, "scale").set_value("raw").run()
    assert "scale" not in at.query_params
    raw = q.matrix(rel, "qm9", "cknna", 5, order="family")
    assert np.allclose(np.array(_heatmap_trace(at)["z"], dtype=float), raw.matrix.to_numpy(float), equal_nan=True)


def test_heatmap_csv_has_ci_null_and_calibrated(app, rel, monkeypatch):
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stores: list = []

    class Keep(MemoryMediaFileStorage):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            stores.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Keep)
    at = app("heatmap", dataset="qm9", metric="info_imbalance", k="1", scale="calibrated")
    btn = next(b for b in at.get("download_button") if "behind this figure" in b.proto.label)
    stored = stores[-1].get_file(btn.proto.url.rsplit("/", 1)[-1])
    assert stored.filename == f"matter-align_{rel.release_id}_matrix-calibrated_qm9_info_imbalance_k1.csv"
    data = stored.content
    csv = pd.read_csv(io.BytesIO(data))
    for col in ("value", "value_raw", "calibrated", "ci_low", "ci_high", "ci_low_raw", "ci_high_raw", "null_mean",
                "null_std", "null_q95", "null_q99", "p_text", "above_null_q95", "n_permutations", "scale", "z"):  # fmt: skip
        assert col in csv.columns, col
    res = q.matrix(rel, "qm9", "info_imbalance", 1, scale="calibrated")
    ref = res.cells.set_index(["model_a", "model_b"])
    for r in csv.itertuples():
        assert r.calibrated == pytest.approx(ref.at[(r.model_a, r.model_b), "calibrated"], abs=1e-9)
        assert r.value == pytest.approx(r.calibrated, abs=1e-12) and r.scale == "calibrated"


def test_summary_defaults_to_calibrated_where_present(app, rel):
    at = app("summary", dataset="qm9", metric="cknna", k="5")
    assert _radio(at, "scale").value == "calibrated" and "scale" not in at.query_params  # the default here
    ref = q.model_summary(rel, "qm9", "cknna", 5, scale="calibrated")
    shown = at.dataframe[0].value
    assert np.allclose(shown["mean_alignment"].to_numpy(float), ref["mean_alignment"].to_numpy(float))
    raw = app("summary", dataset="offeq", metric="cknna", k="10")  # no calibration on offeq: raw, and it says so
    assert _radio(raw, "scale").value == "raw"
    assert any("no calibration data for offeq · cknna · k = 10" in i.value for i in raw.info)


@pytest.mark.parametrize(
    "page", ["heatmap", "summary", "compare", "id_vs_ood", "convergence", "tree", "local_vs_global"]
)
def test_every_switch_page_runs_both_ways(app, page):
    for scale in ("raw", "calibrated"):
        at = app(page, dataset="qm9", metric="cknna", k="5", scale=scale)
        assert _radio(at, "scale").value == scale


def _chart(at, title_start: str) -> dict:
    return next(c for c in _charts(at) if c["layout"]["title"]["text"].startswith(title_start))


def _ys(chart: dict) -> dict[str, list]:
    return {t["name"]: [np.nan if v is None else v for v in t["y"]] for t in chart["data"] if "name" in t}


def test_compare_against_k_follows_the_switch(app, rel):
    """The pair against k: calibrated values and intervals where the release has them, the offeq lines left out
    with a note naming them; raw again after the switch, and `scale` in the URL."""
    at = app("compare", model_a="bert_a", model_b="mace_a", scale="calibrated")
    assert _radio(at, "scale").value == "calibrated" and at.query_params["scale"] == "calibrated"
    ch = _chart(at, "BERT A vs MACE A against k · calibrated · every dataset")
    ref = q.pair_vs_k(rel, "bert_a", "mace_a", scale="calibrated")
    ys = _ys(ch)
    assert set(ys) == {f"{n} · qm9" for n in ("CKNNA", "Mutual kNN", "Information imbalance")}, set(ys)
    for t in ch["data"]:
        mid = next(m for m, d in q.metric_definitions(rel).set_index("metric")["display_name"].items()
                   if f"{d} · qm9" == t["name"])  # fmt: skip
        g = ref[(ref.dataset_id == "qm9") & (ref.metric == mid)].sort_values("k")
        assert np.allclose(np.asarray(t["y"], dtype=float), g["value"].to_numpy(float))
        assert np.allclose(np.asarray(t["error_y"]["array"], dtype=float), (g["ci_high"] - g["value"]).to_numpy(float))
    assert "calibrated score" in ch["layout"]["yaxis"]["title"]["text"]
    off = q.list_datasets(rel).set_index("dataset_id").at["offeq", "display_name"]
    want = f"no calibration data for this pair on {off} · CKNNA; {off} · Information imbalance; {off} · Mutual kNN"
    assert any(want in i.value for i in at.info), [i.value for i in at.info]
    _radio(at, "scale").set_value("raw").run()
    assert "scale" not in at.query_params
    ch = _chart(at, "BERT A vs MACE A against k · every dataset")
    raw = q.pair_vs_k(rel, "bert_a", "mace_a")
    assert len(ch["data"]) == raw.groupby(["dataset_id", "metric"]).ngroups == 6
    assert sorted(v for t in ch["data"] for v in t["y"]) == pytest.approx(sorted(raw["value"]))


def test_cknna_vs_idcor_follows_the_switch(app, rel):
    at = app("local_vs_global", dataset="qm9", scale="calibrated")
    ch = _chart(at, "Calibrated · CKNNA (every k) vs IDCor · QM9")
    assert "null: 19 permutations" in ch["layout"]["title"]["text"]
    ref = q.cknna_vs_idcor(rel, "qm9", scale="calibrated")
    for t in ch["data"]:
        if t["name"] == "y = x":
            continue
        g = ref[ref.k == int(t["name"].removeprefix("k="))]
        assert np.allclose(np.asarray(t["y"], dtype=float), g["cknna"].to_numpy(float))
        assert np.allclose(np.asarray(t["x"], dtype=float), g["idcor"].to_numpy(float))  # IDCor: raw
    assert ch["layout"]["yaxis"]["title"]["text"] == "calibrated CKNNA (local)"
    assert ch["layout"]["xaxis"]["title"]["text"] == "IDCor (global)"
    assert any(i.value.startswith("IDCor: This release has no calibration data for qm9 · idcor") for i in at.info)
    _radio(at, "scale").set_value("raw").run()
    assert "scale" not in at.query_params
    ch = _chart(at, "CKNNA (every k) vs IDCor · QM9")
    raw = q.cknna_vs_idcor(rel, "qm9")
    ys = sorted(v for t in ch["data"] if t["name"] != "y = x" for v in t["y"])
    assert ys == pytest.approx(sorted(raw["cknna"]))


def test_shipped_release_says_it_has_no_calibration(app):
    if not (SHIPPED / "latest").is_file():
        pytest.skip("no shipped release")
    shipped = Release.open(SHIPPED / (SHIPPED / "latest").read_text().strip())
    assert not q.has_calibration(shipped)
    for page in ("heatmap", "summary", "compare", "convergence", "tree", "id_vs_ood", "local_vs_global"):
        at = app(page, root=SHIPPED, scale="calibrated")
        msgs = [i.value for i in at.info]
        assert any(f"This release ({shipped.release_id}) has no calibration data" in m for m in msgs), (page, msgs)


def test_model_card_nearest_models_mark_ties(app, rel):
    at = app("model_cards", model="mace_a")
    shown = next(d.value for d in at.dataframe if "tied_with_nearest" in d.value.columns)
    qm9 = shown[shown["dataset_id"] == "qm9"]
    ref = q.ranked_partners(rel, "qm9", "cknna", "mace_a", 10, scale="calibrated").head(5)
    assert (qm9["scale"] == "calibrated").all() and list(qm9["tied_with_nearest"]) == list(ref["tied_with_nearest"])
    assert np.allclose(qm9["value"].astype(float), ref["value"].astype(float))
    off = shown[shown["dataset_id"] == "offeq"]
    assert len(off) and (off["scale"] == "raw").all()  # no calibration there: raw, said in the column


def test_p_value_text_for_the_exact_moment_null():
    """P = 0 marks CKA's exact-moment null: a fitted tail, no permutation floor to print."""
    assert q.p_value_text(3.1e-12, 0) == "p ≈ 3.1e-12 (moments)"
    assert q.p_value_text(0.43, 0) == "p ≈ 0.43 (moments)"


def test_views_of_a_release_with_moment_nulls_for_cka(tmp_path, tables):
    """A release whose CKA rows carry n_permutations = 0 (exact moments) validates, and no view prints a floor."""
    from precompute.release.writer import write_release
    from tests._release_fixture import MANIFEST_EXTRA

    t = {name: df.copy() for name, df in tables.items()}
    for name in ("pairwise_null", "pairwise_calibration"):
        t[name].loc[t[name].metric.isin(["cka", "cka_unbiased"]), "n_permutations"] = 0
    write_release(t, MANIFEST_EXTRA, tmp_path, None)
    rel = Release.open(tmp_path / (tmp_path / "latest").read_text().strip())
    line = next(x for x in calibration_report(rel, "qm9") if x.strip().startswith("cka:"))
    assert "p from exact moments (no floor" in line and "1/(P+1)" not in line
    res = q.matrix(rel, "qm9", "cka", None)
    assert res.cells["p_text"].str.endswith("(moments)").all()
