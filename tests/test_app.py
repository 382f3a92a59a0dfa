"""The dashboard under streamlit.testing.v1.AppTest, on the fixture release (tests/_release_fixture.py).

Every page runs without exception; deep links restore the view and invalid URL values are ignored with a visible
warning; the numbers inside the charts and the CSV downloads are the backend's numbers under the current filters.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.page_list import PAGE_SLUGS
from backend import Release, queries

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "app" / "main.py")
PAGES = PAGE_SLUGS


@pytest.fixture(scope="module")
def release_root(tmp_path_factory) -> Path:
    from tests._release_fixture import write_test_release

    root = tmp_path_factory.mktemp("releases")
    write_test_release(root)
    return root


@pytest.fixture(scope="module")
def release(release_root) -> Release:
    return Release.open(release_root / (release_root / "latest").read_text().strip())


@pytest.fixture
def media(monkeypatch):
    """Keep the media storage of each AppTest run, so download buttons' bytes can be read back."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stores: list = []

    class Keep(MemoryMediaFileStorage):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            stores.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Keep)
    return stores


@pytest.fixture
def app(release_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(release_root))

    def make(page: str = "overview", **params) -> AppTest:
        at = AppTest.from_file(MAIN, default_timeout=60)
        for key, val in params.items():
            at.query_params[key] = val
        if page != "overview":
            at.switch_page(f"pages_/{page}.py")
        return at.run()

    return make


def _ok(at) -> None:
    assert not at.exception, [e.message for e in at.exception]


def _decode(v):
    """Plotly's JSON stores arrays as {dtype, bdata (base64), shape}: back to NumPy, recursively."""
    if isinstance(v, dict):
        if "bdata" in v and "dtype" in v:
            arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
            shape = v.get("shape")
            return arr.reshape([int(x) for x in str(shape).split(",")]) if shape else arr
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def _charts(at) -> list[dict]:
    return [_decode(json.loads(c.proto.spec)) for c in at.get("plotly_chart")]


def _trace(fig: dict, kind: str) -> dict:
    return next(t for t in fig["data"] if t.get("type") == kind)


def _download(at, media, label_contains: str = "behind this figure", index: int = 0) -> tuple[str, bytes]:
    btns = [b for b in at.get("download_button") if label_contains in b.proto.label]
    b = btns[index]
    file_id = b.proto.url.rsplit("/", 1)[-1]
    data = media[-1].get_file(file_id).content
    return b.proto.url, data


def _warnings(at) -> list[str]:
    return [w.value for w in at.warning]


# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs(app, page):
    at = app(page)
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    assert at.title, f"{page}: no title"


def test_every_page_with_filters_and_other_settings(app):
    """A second pass over every page with a model filter and a k-less metric (other code paths)."""
    for page in PAGES:
        at = app(page, dataset="offeq", metric="cka", source=["pretrained", "random_init", "descriptor"])
        _ok(at)
        assert not _warnings(at) or page in ("model_cards", "dataset_cards"), (page, _warnings(at))


def test_no_release_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(tmp_path))
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    _ok(at)
    assert at.error and "No release found" in at.error[0].value
    at.switch_page("pages_/heatmap.py").run()
    _ok(at)
    assert "No release found" in at.error[0].value


def test_broken_release_is_a_message(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests._release_fixture import write_test_release

    folder = write_test_release(tmp_path)
    (folder / "energy.parquet").write_bytes(b"not parquet")
    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(tmp_path))
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    _ok(at)
    assert at.error and "cannot be opened" in at.error[0].value


# ----------------------------------------------------------------------------------------------------------------
def test_deep_link_restores_the_view(app):
    at = app("heatmap", dataset="offeq", metric="mutual_knn", k="5", family=["MACE", "SOAP"], order="cluster")
    _ok(at)
    assert not _warnings(at)
    assert at.selectbox(key="dataset").value == "offeq"
    assert at.selectbox(key="metric").value == "mutual_knn"
    assert at.selectbox(key="k").value == 5
    assert at.multiselect(key="family").value == ["MACE", "SOAP"]
    assert at.radio(key="order").value == "cluster"
    # the URL written back holds the same state (defaults left out)
    assert at.query_params["dataset"] == "offeq" and at.query_params["order"] == "cluster"
    assert at.query_params["family"] == ["MACE", "SOAP"]
    assert any("2 hidden by the filters" in c.value for c in at.caption)
    # the sidebar's "link to this view" carries the same state
    link = at.sidebar.code[0].value
    assert "dataset=offeq" in link and "family=MACE&family=SOAP" in link and "order=cluster" in link


def test_invalid_url_values_are_ignored_with_a_warning(app):
    at = app("heatmap", dataset="nope", metric="zzz", family=["MACE", "NOPE"], order="sideways", bogus="1")
    _ok(at)
    w = " ".join(_warnings(at))
    for bad in ("“nope”", "“zzz”", "“NOPE”", "“sideways”", "“bogus”"):
        assert bad in w, (bad, w)
    assert at.selectbox(key="dataset").value == "qm9"  # the default: a real dataset
    assert at.selectbox(key="metric").value == "cknna"
    assert at.multiselect(key="family").value == ["MACE"]
    assert at.radio(key="order").value == "family"
    assert "bogus" not in at.query_params and at.query_params.get("family") in (["MACE"], "MACE")
    # k not stored for the metric on this dataset: ignored, the default k shown
    at2 = app("heatmap", dataset="qm9", metric="cknna", k="7")
    assert "“7”" in " ".join(_warnings(at2)) and at2.selectbox(key="k").value == 10


def test_changing_a_filter_updates_the_url_and_the_hidden_line(app):
    at = app("heatmap")
    assert any("no model filter active" in c.value for c in at.caption)
    at.multiselect(key="source").set_value(["pretrained"]).run()
    _ok(at)
    assert at.query_params["source"] in (["pretrained"], "pretrained")
    assert any("2 of 5" in c.value and "3 hidden by the filters" in c.value for c in at.caption)
    at.selectbox(key="metric").set_value("cka").run()
    assert "k" not in at.query_params and at.query_params["metric"] == "cka"


# ----------------------------------------------------------------------------------------------------------------
def test_heatmap_values_and_csv_are_the_backends(app, media, release):
    at = app("heatmap", dataset="qm9", metric="cknna", k="5", family=["MACE", "ChemBERTa"])
    _ok(at)
    models = list(queries.list_models(release, family=["MACE", "ChemBERTa"], dataset="qm9")["model_id"])
    res = queries.matrix(release, "qm9", "cknna", 5, order="family", models=models)
    hm = _trace(_charts(at)[0], "heatmap")
    z = np.array([[np.nan if v is None else v for v in row] for row in hm["z"]], dtype=float)
    np.testing.assert_array_equal(z, res.matrix.to_numpy(dtype=float))
    # the colour range fits the data by default; `range=fixed` gives CKNNA's own [0, 1]
    assert (hm["zmin"], hm["zmax"]) == (np.nanmin(z), np.nanmax(z)) and hm["zmax"] - hm["zmin"] < 1
    title = _charts(at)[0]["layout"]["title"]["text"]
    n = int(res.cells["n"].iloc[0])
    assert title == f"QM9 · CKNNA · k = 5 · n = {n:,} samples · null: 5 permutations", title
    fixed = app("heatmap", dataset="qm9", metric="cknna", k="5", family=["MACE", "ChemBERTa"], range="fixed")
    hmf = _trace(_charts(fixed)[0], "heatmap")
    assert (hmf["zmin"], hmf["zmax"]) == (0, 1) and fixed.radio(key="range").value == "fixed"
    # the permutation null (stored for CKNNA at k = 5) is in the hover and in the CSV
    null = queries.pairwise_null(release, "qm9", "cknna", 5, models=models)
    assert len(null) and any("null (5 perm.)" in t for row in hm["text"] for t in row)
    want = queries.matrix_table(res)  # the cells carry the null (and calibration) columns, z included
    z_null = null.set_index(["model_a", "model_b"])["z"]
    both = want.dropna(subset=["null_mean"]).set_index(["model_a", "model_b"])["z"]
    assert np.allclose(both.to_numpy(float), z_null.reindex(both.index).to_numpy(float))
    _, data = _download(at, media)
    assert data == queries.to_csv(want)
    assert len(pd.read_csv(io.BytesIO(data))) == len(res.cells)
    # without a stored null (k = 10) the CSV is exactly matrix_table, its null columns empty
    at = app("heatmap", dataset="qm9", metric="cknna", k="10")
    res10 = queries.matrix(release, "qm9", "cknna", 10, order="family")
    assert _download(at, media)[1] == queries.to_csv(queries.matrix_table(res10))
    assert queries.matrix_table(res10)["null_mean"].isna().all()


def test_clustered_heatmap_has_a_dendrogram(app, release):
    at = app("heatmap", dataset="qm9", metric="cka", order="cluster")
    _ok(at)
    fig = _charts(at)[0]
    res = queries.matrix(release, "qm9", "cka", order="cluster")
    hm = _trace(fig, "heatmap")
    np.testing.assert_allclose(np.array(hm["z"], dtype=float), res.matrix.to_numpy(dtype=float))
    assert hm["xaxis"] == "x2" or "dendrogram" in [t.get("name") for t in fig["data"]]
    assert "dendrogram" in [t.get("name") for t in fig["data"]]


def test_family_block_view(app, media, release):
    at = app("heatmap", dataset="qm9", metric="cknna", k="10", view="family_block")
    _ok(at)
    fb = queries.family_block_matrix(release, "qm9", "cknna", 10)
    hm = _trace(_charts(at)[0], "heatmap")
    fams = list(dict.fromkeys(fb["family_a"]))
    want = fb.pivot(index="family_a", columns="family_b", values="value_mean").reindex(index=fams, columns=fams)
    got = np.array([[np.nan if v is None else v for v in row] for row in hm["z"]], dtype=float)
    np.testing.assert_allclose(got, want.to_numpy(dtype=float))
    assert _download(at, media)[1] == queries.to_csv(fb)


def test_intrinsic_dimension_bars(app, media, release):
    at = app("intrinsic_dimension", dataset="qm9")
    _ok(at)
    df = queries.intrinsic_dim(release, "qm9", "twonn")
    bars = [t for t in _charts(at)[0]["data"] if t["type"] == "bar"]
    got = sorted(v for t in bars for v in t["y"])
    np.testing.assert_allclose(got, sorted(df["value"]))
    assert _download(at, media)[1] == queries.to_csv(df)


def test_tree_leaves_are_the_models(app, release):
    at = app("tree", dataset="qm9", metric="cknna", k="10", method="upgma", colour="source")
    _ok(at)
    fig = _charts(at)[0]
    names = {str(t["name"]) for t in fig["data"][1:]}
    assert names == set(queries.list_models(release)["source"])
    leaves = {x for t in fig["data"][1:] for x in t["text"]}
    assert len(leaves) == 5
    # with a model filter the tree is computed over the kept models
    at = app("tree", dataset="qm9", metric="cknna", k="10", family=["MACE", "ChemBERTa"])
    _ok(at)
    assert sum(len(t["x"]) for t in _charts(at)[0]["data"][1:]) == 4
    assert any("computed now" in c.value for c in at.caption)


def test_convergence_and_missing_energy(app, media, release):
    from app.data import labels, short_labels

    at = app("convergence", dataset="qm9", metric="cknna", k="10")
    _ok(at)
    df = queries.alignment_vs_mae(release, "qm9", "cknna", 10)
    traces = _charts(at)[0]["data"]
    star = next(t for t in traces if str(t.get("name", "")).startswith("★ best:"))  # drawn on the plot, at the top
    assert star["marker"]["symbol"] == "star" and star["y"][0] > df["alignment"].max()
    assert star["x"][0] == df.loc[df["is_best"], "mae_per_atom"].iloc[0]
    traces = [t for t in traces if not str(t.get("name", "")).startswith("★")]
    xs = sorted(v for t in traces if not str(t.get("name", "")).startswith("best:") for v in t["x"])
    np.testing.assert_allclose(xs, sorted(df["mae_per_atom"]))
    best = next(t for t in traces if str(t.get("name", "")).startswith("best:"))
    assert best["x"][0] == df.loc[df["is_best"], "mae_per_atom"].iloc[0]
    assert _download(at, media)[1] == queries.to_csv(df)
    points = [t for t in traces if not str(t.get("name", "")).startswith("best:")]
    short = short_labels(release)  # ids by default, tagged when not the published weights
    drawn = df.loc[df["alignment"].notna(), "model_id"]  # the best model has no point (no alignment to itself)
    assert sorted(v for t in points for v in t["text"] if v) == sorted(short[m] for m in drawn)
    sources = queries.list_models(release).set_index("model_id")["source"]
    assert all(("[" in short[m]) == (sources[m] in ("random_init", "trained_here")) for m in sources.index)
    assert all(t["mode"] == "markers+text" and t["cliponaxis"] is False for t in points)
    at.radio(key="convergence_labels").set_value("name").run()
    points = [t for t in _charts(at)[0]["data"] if not str(t.get("name", "")).startswith(("best:", "★"))]
    assert sorted(v for t in points for v in t["text"] if v) == sorted(labels(release)[m] for m in drawn)
    at.radio(key="convergence_labels").set_value("none").run()
    points = [t for t in _charts(at)[0]["data"] if not str(t.get("name", "")).startswith(("best:", "★"))]
    assert points and all(t["mode"] == "markers" for t in points)
    assert sorted(v for t in points for v in t["hovertext"]) == sorted(labels(release)[m] for m in df["model_id"])
    at = app("convergence", dataset="offeq")
    _ok(at)
    assert any("no rows in the energy table" in i.value for i in at.info)


def test_id_vs_ood_and_local_vs_global(app, media, release):
    at = app("id_vs_ood", dataset="qm9", dataset_b="offeq", metric="cknna", k="5")
    _ok(at)
    md = queries.matrix_difference(release, "qm9", "offeq", "cknna", 5)
    figs = _charts(at)
    np.testing.assert_allclose(
        np.array(_trace(figs[2], "heatmap")["z"], dtype=float), md.difference.to_numpy(dtype=float)
    )
    pairs = queries.id_vs_ood(release, "qm9", "offeq", "cknna", 5)
    assert sum(len(t["x"]) for t in figs[3]["data"] if t.get("mode") == "markers") == len(pairs)
    assert _download(at, media, index=3)[1] == queries.to_csv(pairs)
    at = app("local_vs_global", dataset="qm9", ii_k="5", ii_colour="idcor")
    _ok(at)
    ii = queries.information_imbalance_pairs(release, "qm9", 5, cknna_k=10)
    plane = _charts(at)[1]["data"][0]
    np.testing.assert_allclose(plane["x"], ii["delta_ab"])
    np.testing.assert_allclose(plane["marker"]["color"], ii["idcor"])
    assert _download(at, media, index=1)[1] == queries.to_csv(ii)


def test_compare_two_models(app, media, release):
    at = app("compare", model_a="mace_a", model_b="soap")
    _ok(at)
    df = queries.compare_models(release, "mace_a", "soap")
    # similarities (higher = more aligned) and information imbalance (lower = more aligned) in separate figures
    sims = df[(df["scope"] == "model") | ((df["scope"] == "pair") & (df["metric"] != "info_imbalance"))]
    assert _download(at, media)[1] == queries.to_csv(sims)
    assert _download(at, media, index=1)[1] == queries.to_csv(df[df["metric"] == "info_imbalance"])
    figs = _charts(at)
    assert "higher = more aligned" not in figs[0]["layout"]["yaxis"]["title"]["text"]
    assert "lower = more aligned" in figs[1]["layout"]["yaxis"]["title"]["text"]
    assert {t["x"][0].split()[0] for t in figs[1]["data"]} == {"info_imbalance"}
    assert "info_imbalance" not in {x.split()[0] for t in figs[0]["data"] for x in t["x"]}
    # the pair against k: one line per (metric with k, dataset), the values the backend's
    vs_k = figs[2]
    pk = df[(df["scope"] == "pair") & df["k"].notna()]
    assert len(vs_k["data"]) == pk.groupby(["metric", "dataset_id"]).ngroups
    np.testing.assert_allclose(sorted(v for t in vs_k["data"] for v in t["y"]), sorted(pk["value_ab"]))
    assert at.selectbox(key="model_a").value == "mace_a"
    # how A and B see the other models on the sidebar's dataset/metric/k (qm9, cknna, k = 10 by default)
    res = queries.matrix(release, "qm9", "cknna", 10)
    pts = [t for t in _charts(at)[3]["data"] if t.get("mode") == "markers"]
    xs = sorted(v for t in pts for v in t["x"])
    want = sorted(res.matrix.at["mace_a", m] for m in res.order if m not in ("mace_a", "soap"))
    np.testing.assert_allclose(xs, want)
    rows = pd.read_csv(io.BytesIO(_download(at, media, index=3)[1]))
    assert sorted(rows["other_model"]) == ["bert_a", "bert_b", "mace_b"]


def test_cards_label_the_source_and_generated_data(app):
    at = app("model_cards", model="mace_b")
    _ok(at)
    assert any("Random initialisation" in w.value and "not" in w.value for w in at.warning)
    assert any("[random init]" in h.value for h in at.header)
    at = app("model_cards", model="mace_a")
    assert any("Pretrained" in s.value for s in at.success)
    at = app("dataset_cards", dataset="offeq")
    _ok(at)
    assert any("Generated dataset" in w.value for w in at.warning)
    at = app("dataset_cards", dataset="qm9")
    assert any("Real data" in s.value for s in at.success)


def test_release_picker_and_csv_name(app, release_root, release):
    at = app("heatmap", release="not-a-release")
    _ok(at)
    assert any("“not\\-a\\-release”" in w for w in _warnings(at))
    assert at.selectbox(key="release").value == release.release_id
    assert queries.csv_filename(release.release_id, "qm9", "cknna", 10, "matrix") == (
        f"matter-align_{release.release_id}_matrix_qm9_cknna_k10.csv"
    )


def test_sparse_release_every_page(tmp_path, monkeypatch):
    """A release where one dataset has no pairwise rows, no trees, no energy, and the optional tables are absent."""
    from streamlit.testing.v1 import AppTest

    from precompute.release.writer import write_release
    from tests._release_fixture import MANIFEST_EXTRA, build_tables

    t = build_tables()
    t["pairwise"] = t["pairwise"][t["pairwise"]["dataset_id"] == "qm9"].reset_index(drop=True)
    t["trees"] = t["trees"].iloc[0:0]
    for name in ("pairwise_null", "samples"):
        t.pop(name)
    write_release(t, MANIFEST_EXTRA, tmp_path)
    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(tmp_path))
    for dataset in ("offeq", "qm9"):
        for page in PAGES:
            at = AppTest.from_file(MAIN, default_timeout=60)
            at.query_params["dataset"] = dataset
            if page != "overview":
                at.switch_page(f"pages_/{page}.py")
            at.run()
            _ok(at)
            assert not at.error, (dataset, page, [e.value for e in at.error])
    # qm9's tree is computed now (no stored tree)
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["dataset"] = "qm9"
    at.switch_page("pages_/tree.py").run()
    assert any("computed now" in c.value for c in at.caption)


def test_release_option_opens_one_folder(release_root, release, tmp_path, monkeypatch):
    """`streamlit run app/main.py -- --release <folder>`: one release folder, wherever MATTER_ALIGN_RELEASES points."""
    import sys

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(tmp_path))  # empty: would be "no release"
    monkeypatch.setattr(sys, "argv", ["app/main.py", "--release", str(release.path)])
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    _ok(at)
    assert not at.error
    assert at.selectbox(key="release").value == release.release_id
    monkeypatch.setattr(sys, "argv", ["app/main.py", "--release", str(release_root)])  # a releases folder
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    _ok(at)
    assert at.selectbox(key="release").value == release.release_id


def test_release_picker_opens_another_release(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests._release_fixture import write_test_release

    write_test_release(tmp_path)
    write_test_release(tmp_path, release_id="older-release", update_latest=False)
    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(tmp_path))
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["release"] = "older-release"
    at.run()
    _ok(at)
    assert not _warnings(at)
    assert at.selectbox(key="release").value == "older-release"
    assert any("older-release" in c.value for c in at.sidebar.caption)
    assert at.query_params["release"] == "older-release"


def test_figure_labels_tag_the_source_once_on_the_shipped_release():
    """Cards name some controls "... (random init)" / "... (trained here)"; the figure label carries one tag."""
    from app.data import labels, short_labels

    root = Path(__file__).resolve().parents[1] / "data" / "releases"
    shipped = Release.open(root / (root / "latest").read_text().strip())
    models = queries.list_models(shipped).set_index("model_id")
    got = labels(shipped)
    tagged = {"random_init": "[random init]", "trained_here": "[trained here]"}
    assert {"esm2-35m-random-init", "orb-v3-conservative-inf-random-init", "mace-qm9-n200-c16"} <= set(got)
    for mid, label in got.items():
        tag = tagged.get(models.at[mid, "source"])
        assert "(random init)" not in label and "(trained here)" not in label, label
        if tag:
            assert label.endswith(tag) and label.count(tag) == 1, label
        else:  # the display name as it is (with the id only where two models share a name)
            assert label in (models.at[mid, "display_name"], f"{models.at[mid, 'display_name']} ({mid})"), label
    assert got["orb-v3-conservative-inf-random-init"] == "Orb v3-conservative-inf [random init]"
    assert got["mace-qm9-n200-c16"] == "MACE QM9 n=200 C=16 [trained here]"
    short = short_labels(shipped)  # the convergence scatter's compact text: the id, tagged unless it says so already
    assert short["orb-v3-conservative-inf-random-init"] == "orb-v3-conservative-inf-random-init"
    assert short["mace-qm9-n200-c16"] == "mace-qm9-n200-c16 [trained here]" and short["ani1x"] == "ani1x"


# ---------------------------------------------------------------------------------------------- issue 15
def test_models_picked_one_by_one(app, release):
    at = app("heatmap", dataset="qm9", metric="cka", models=["mace_a", "soap"])
    _ok(at)
    assert not _warnings(at)
    ms = at.multiselect(key="models")
    assert ms.value == ["mace_a", "soap"]
    # the label is "name · id · family": the multiselect's search finds a model by any of the three
    meta = queries.list_models(release).set_index("model_id")
    assert f"{meta.at['soap', 'display_name']} · soap · SOAP" in ms.options
    assert len(ms.options) == len(meta)
    res = queries.matrix(release, "qm9", "cka", models=["mace_a", "soap"])
    z = np.array(_trace(_charts(at)[0], "heatmap")["z"], dtype=float)
    assert z.shape == (2, 2) and sorted(res.order) == ["mace_a", "soap"]
    assert any("2 of 5" in c.value and "3 hidden by the filters" in c.value and "models" in c.value for c in at.caption)
    assert at.query_params["models"] == ["mace_a", "soap"]
    # combined with a family filter (AND), and an unknown id is ignored with a warning
    at = app("heatmap", dataset="qm9", metric="cka", models=["mace_a", "soap", "nope"], family=["MACE"])
    assert any("“nope”" in w and "model id" in w for w in _warnings(at))
    assert any("1 of 5" in c.value for c in at.caption)


def test_controls_that_do_nothing_are_hidden_but_kept(app):
    at = app("overview", dataset="offeq", metric="cka", family=["MACE"])
    _ok(at)
    keys = {s.key for s in at.sidebar.selectbox} | {m.key for m in at.sidebar.multiselect}
    assert not keys & {"dataset", "metric", "k", "family", "models"}, keys
    # the hidden values stay in the URL and the session: the next page shows them
    assert at.query_params["dataset"] == "offeq" and at.query_params["family"] in (["MACE"], "MACE")
    at.switch_page("pages_/heatmap.py").run()
    _ok(at)
    assert at.selectbox(key="dataset").value == "offeq" and at.multiselect(key="family").value == ["MACE"]
    at.switch_page("pages_/intrinsic_dimension.py").run()
    keys = {s.key for s in at.sidebar.selectbox}
    assert "dataset" in keys and "metric" not in keys and "k" not in keys
    at = app("model_cards")
    assert "dataset" not in {s.key for s in at.sidebar.selectbox} and at.multiselect(key="family") is not None


def test_dataset_cards_have_their_own_picker(app):
    at = app("dataset_cards", dataset="offeq")
    _ok(at)
    assert "dataset" not in {s.key for s in at.sidebar.selectbox}
    pick = at.selectbox(key="dataset_card_pick")
    assert pick.value == "offeq" and "OFFEQ" in at.header[0].value
    pick.set_value("qm9").run()
    _ok(at)
    assert at.header[0].value.startswith("QM9") and "dataset" not in at.query_params  # the default
    at.selectbox(key="dataset_card_pick").set_value("offeq").run()
    assert "OFFEQ" in at.header[0].value and at.query_params["dataset"] == "offeq"


def _score_upload(app, release, tmp_path, X, name="upload.npy"):
    import io

    at = app("score")
    _ok(at)
    buf = io.BytesIO()
    np.save(buf, X)
    at.file_uploader(key="score_file").upload(name, buf.getvalue()).run()
    return at


def test_score_page_ranks_an_upload_like_the_backend(app, media, release, tmp_path):
    """A release model's own embedding, uploaded as new, is ranked first with CKNNA 1 against itself, and the table
    shown is backend.scoring's; the page says the file stays in memory."""
    from backend import scoring
    from tests._release_fixture import embeddings

    emb = embeddings()
    ds = scoring.scorable_datasets(release)["dataset_id"].iloc[0]
    model = sorted(emb[ds])[0]
    at = _score_upload(app, release, tmp_path, emb[ds][model])
    _ok(at)
    assert any("never written to disk" in i.value for i in at.info)
    shown = at.dataframe[0].value
    ref = scoring.ranked(release, scoring.score_embeddings(release, ds, emb[ds][model], "my-model"), 10)
    assert shown["model_id"].tolist() == ref["model_id"].tolist()
    assert shown["model_id"].iloc[0] == model and shown["cknna"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    assert len(_charts(at)) == 3  # heatmap with your row and column, the tree, the intrinsic-dimension bars


def test_score_page_keeps_one_score_per_upload_and_asks_before_the_slow_intervals(app, release, tmp_path, monkeypatch):
    """The score is held in the session per (file, name, dataset, options): a rerun does not recompute it; the
    information-imbalance intervals are off until the checkbox asks for them (backend.scoring's
    imbalance_intervals; its effect is tested in tests/test_scoring.py)."""
    from backend import scoring
    from tests._release_fixture import embeddings

    calls, real = [], scoring.score_embeddings
    monkeypatch.setattr(scoring, "score_embeddings", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    emb = embeddings()
    at = _score_upload(app, release, tmp_path, emb["qm9"][sorted(emb["qm9"])[0]])
    _ok(at)
    assert len(calls) == 1 and calls[0]["imbalance_intervals"] is False
    first = at.session_state["score_result"][1]
    at.run()
    assert len(calls) == 1 and at.session_state["score_result"][1] is first  # not recomputed
    at.checkbox(key="score_ii_ci").check().run()
    assert len(calls) == 2 and calls[1]["imbalance_intervals"] is True
    assert at.session_state["score_result"][1].table.value.equals(first.table.value)


def test_score_page_names_a_bad_upload(app, release, tmp_path):
    at = _score_upload(app, release, tmp_path, np.ones((7, 3)))
    _ok(at)
    assert any("rows, but dataset" in e.value for e in at.error), [e.value for e in at.error]


def _colours_by_name(fig: dict) -> dict[str, str]:
    return {
        str(t["name"]): t["marker"]["color"] for t in fig["data"] if isinstance(t.get("marker", {}).get("color"), str)
    }


def test_one_colour_per_family_on_every_view(app, release):
    from app.figures import family_colours

    want = family_colours(queries.filter_options(release)["family"])
    assert len(set(want.values())) == len(want)  # distinct families, distinct colours
    views = {
        "id one dataset": _charts(app("intrinsic_dimension", dataset="qm9"))[0],
        "id every dataset": _charts(app("intrinsic_dimension", scope="all"))[0],
        "id, MACE only": _charts(app("intrinsic_dimension", dataset="qm9", family=["MACE"]))[0],
        "convergence": _charts(app("convergence", dataset="qm9", metric="cka"))[0],
        "tree": _charts(app("tree", dataset="qm9", metric="cka"))[0],
        "compare (others)": _charts(app("compare", model_a="bert_a", model_b="soap", metric="cka"))[3],
    }
    for view, fig in views.items():
        got = {k: v for k, v in _colours_by_name(fig).items() if k in want}
        assert got, view
        assert all(want[fam] == col for fam, col in got.items()), (view, got)
    assert _colours_by_name(views["id, MACE only"])["MACE"] == _colours_by_name(views["tree"])["MACE"]
    # the legend is a horizontal band at the top of the figure: every family visible, none scrolled away
    legend = views["id every dataset"]["layout"]["legend"]
    assert legend["orientation"] == "h" and legend["yref"] == "container"


def test_k_large_for_n_is_warned(app):
    at = app("heatmap", dataset="qm9", metric="cknna", k="10")  # the fixture: n = 60, so k = 10 > n/10
    assert any("k = 10 is large for n = 60" in w for w in _warnings(at))
    assert not any("is large for n" in w for w in _warnings(app("heatmap", dataset="qm9", metric="cknna", k="5")))
    assert not any("is large for n" in w for w in _warnings(app("overview", k="10")))  # k does nothing there


def test_k_warning_on_the_shipped_pdb_chains(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(ROOT / "data" / "releases"))
    at = AppTest.from_file(MAIN, default_timeout=60)
    for key, val in {"dataset": "pdb", "metric": "cknna", "k": "100"}.items():
        at.query_params[key] = val
    at.switch_page("pages_/heatmap.py").run()
    _ok(at)
    assert any("k = 100 is large for n = 111" in w.value for w in at.warning)
    title = _charts(at)[0]["layout"]["title"]["text"]
    assert "RCSB PDB chains · CKNNA · k = 100 · n = 111 samples" in title


def test_score_page_points_to_the_shipped_releases_that_carry_scoring_data(monkeypatch):
    """On a release without CKNNA's scoring data the score page names the releases that have it (the manifests'
    table lists, backend.releases_with_tables), or none when there is none."""
    from streamlit.testing.v1 import AppTest

    from backend import releases_with_tables

    root = ROOT / "data" / "releases"
    latest = (root / "latest").read_text().strip()
    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(root))
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.switch_page("pages_/score.py").run()
    _ok(at)
    others = [x for x in releases_with_tables({"neighbour_similarity", "neighbours_euclidean", "samples"}, root)
              if x != latest]  # fmt: skip
    notes = [w.value for w in at.warning if "only mutual kNN can be scored" in w.value]
    if "neighbour_similarity" in Release.open(root / latest).manifest["tables"]:
        assert not notes
    else:
        assert len(notes) == 1 and all(f"`{x}`" in notes[0] for x in others)
        assert ("Releases here that carry it" in notes[0]) == bool(others)


def test_score_page_on_the_shipped_qm9_release_ranks_with_intervals(monkeypatch):
    """A real upload to a shipped release with scoring data: the Coulomb-matrix spectrum (precompute's descriptor) of
    the release's own QM9 samples, computed from the page's extended-XYZ download, is ranked at the largest k <= 10
    whose rows carry intervals (k = 5 on QM9's shipped lists), with those intervals in the table."""
    from ase.io import read
    from streamlit.testing.v1 import AppTest

    from backend import releases_with_tables, scoring
    from precompute.adapters.descriptors import coulomb_spectrum

    root = ROOT / "data" / "releases"
    have = releases_with_tables({"neighbour_similarity", "neighbours_deep", "samples", "sample_structures"}, root)
    rid = next((x for x in have if "qm9" in Release.open(root / x).manifest["settings"]), None)
    if rid is None:
        pytest.fail(f"no release under {root} carries QM9 with the scoring data")
    release = Release.open(root / rid)
    atoms = read(io.StringIO(scoring.samples_file(release, "qm9", "extxyz").decode()), index=":", format="extxyz")
    X = np.stack([coulomb_spectrum(a.numbers, a.positions, 29) for a in atoms])
    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(root))
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.query_params["release"] = rid
    at.switch_page("pages_/score.py").run()
    _ok(at)
    buf = io.BytesIO()
    np.save(buf, X)
    at.file_uploader(key="score_file").upload("coulomb.npy", buf.getvalue()).run()
    _ok(at)
    assert any("(CKNNA, k = 5, n = 9,848)" in h.value for h in at.subheader), [h.value for h in at.subheader]
    shown = at.dataframe[0].value
    assert shown["cknna_ci_low"].notna().all() and (shown["cknna_ci_low"] <= shown["cknna"]).all()


def test_releases_with_tables_reads_the_manifests(tmp_path):
    from backend import releases_with_tables

    for rid, tables in {"a": ["pairwise", "samples"], "b": ["pairwise"], "c": ["samples", "pairwise", "x"]}.items():
        (tmp_path / rid).mkdir()
        (tmp_path / rid / "manifest.json").write_text(json.dumps({"tables": {t: {} for t in tables}}))
    (tmp_path / "d").mkdir()  # no manifest: not a release
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "manifest.json").write_text("{not json")  # unreadable: skipped, not an error
    assert releases_with_tables({"samples", "pairwise"}, tmp_path) == ["a", "c"]
    assert releases_with_tables({"nothing"}, tmp_path) == []


def test_idcor_above_one_is_shown_and_explained(app, release):
    from app.state import metric_help
    from app.ui import zrange

    md = queries.metric_definitions(release).set_index("metric")
    assert zrange([0.2, 1.12], md.loc["idcor"], "fixed") == (0.0, 1.12)  # widened, not clipped at 1
    assert zrange([0.2, 0.65], md.loc["cknna"], "data") == (0.2, 0.65)
    assert zrange([0.2, 0.65], md.loc["cknna"], "fixed") == (0.0, 1.0)
    assert "exceed 1" in metric_help(md.loc[["idcor"]])
    at = app("heatmap", dataset="qm9", metric="idcor")
    assert "exceed 1" in at.selectbox(key="metric").help


def test_difference_map_blank_diagonal_is_grey_and_tables_show_no_none(app):
    from app.figures import NAN_COLOUR

    at = app("id_vs_ood", dataset="qm9", dataset_b="offeq", metric="cknna", k="5")
    diff = _charts(at)[2]
    z = diff["data"][0]["z"]
    assert all(z[i][i] is None or np.isnan(z[i][i]) for i in range(len(z)))
    assert diff["layout"]["plot_bgcolor"] == NAN_COLOUR
    assert "Grey: no value" in " ".join(c.value for c in at.caption)
    # "N models shown" counts the models a page really shows (here: those with values on both datasets)
    from app.state import Filters, hidden_line

    f = Filters([], [], [], [], "qm9", "cknna", 5, ["a", "b", "c", "d"], 5, ["family"])
    line = hidden_line(f, "QM9", 3, " (with values on both QM9 and OFFEQ)")
    assert "**3 of 5**" in line and "1 hidden by the filters (family)" in line and "1 without values here" in line
    seen_dash = False
    for page in ("compare", "dataset_cards", "model_cards", "id_vs_ood"):
        at = app(page)
        assert at.dataframe, page
        for d in at.dataframe:
            assert not d.value.isna().any().any(), (page, d.value.columns[d.value.isna().any()].tolist())
            cells = {str(v) for v in d.value.to_numpy().ravel()}
            assert not cells & {"None", "nan", "<NA>", "NaN"}, (page, cells & {"None", "nan", "<NA>", "NaN"})
            seen_dash |= "–" in cells
    assert seen_dash  # missing values (e.g. a model's CI not computed) are there, shown as '–'


def test_downloads_keep_their_context(app, media, release):
    from app.data import _zip

    at = app("heatmap", dataset="qm9", metric="cka", family=["MACE", "SOAP"], source=["pretrained", "descriptor"])
    url, _ = _download(at, media)
    name = media[-1].get_file(url.rsplit("/", 1)[-1]).filename
    want = f"matter-align_{release.release_id}_matrix_qm9_cka_family-MACE-SOAP_source-pretrained-descriptor.csv"
    assert name == want, name
    cfg = json.loads(at.get("plotly_chart")[0].proto.config)
    assert cfg["toImageButtonOptions"]["format"] == "png" and cfg["toImageButtonOptions"]["filename"] == name[:-4]
    at.radio(key="_image_format").set_value("svg").run()
    assert json.loads(at.get("plotly_chart")[0].proto.config)["toImageButtonOptions"]["format"] == "svg"
    # the tree as Newick (.nwk), the stored one byte for byte
    at = app("tree", dataset="qm9", metric="cknna", k="10")
    url, data = _download(at, media, label_contains="Newick")
    assert media[-1].get_file(url.rsplit("/", 1)[-1]).filename.endswith("_tree-nj_qm9_cknna_k10.nwk")
    assert data.decode().strip() == queries.tree(release, "qm9", "cknna", 10, "nj").strip()
    # the whole release as one archive: every file of the folder
    import zipfile

    z = zipfile.ZipFile(io.BytesIO(_zip(str(release.path), release.cache_key)))
    want = sorted(str(p.relative_to(release.path.parent)) for p in release.path.rglob("*") if p.is_file())
    assert sorted(z.namelist()) == want and f"{release.release_id}/manifest.json" in want
    assert any("whole release" in b.proto.label for b in app("overview").get("download_button"))


def test_family_block_cells_show_value_and_pairs(app, release):
    at = app("heatmap", dataset="qm9", metric="cknna", k="10", view="family_block")
    hm = _trace(_charts(at)[0], "heatmap")
    fb = queries.family_block_matrix(release, "qm9", "cknna", 10)
    fams = list(dict.fromkeys(fb["family_a"]))
    row = fb[(fb["family_a"] == "MACE") & (fb["family_b"] == "ChemBERTa")].iloc[0]
    i, j = fams.index("MACE"), fams.index("ChemBERTa")
    assert hm["text"][i][j] == f"{row['value_mean']:.3f}<br>{int(row['n_pairs'])} pairs"
    assert hm["texttemplate"] == "%{text}"
