"""The backend over a small release written in tmp by the real writer: verification, every query, injection."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import leaves_list

from backend import Release, ReleaseError
from backend import queries as q
from backend.release import expected_release_id, resolve_latest
from tests._release_fixture import MANIFEST_EXTRA, build_tables

ROOT = Path(__file__).resolve().parents[1]
INJECTIONS = [
    "x' OR '1'='1",
    "qm9; DROP TABLE models",
    "qm9'; DROP TABLE models; --",
    'MACE" OR "1"="1',
    "') OR 1=1 --",
    "%",
    "*",
    "",
]


@pytest.fixture(scope="module")
def tables():
    return build_tables()


@pytest.fixture(scope="module")
def release_path(tables, tmp_path_factory) -> Path:
    from precompute.release.writer import write_release

    root = tmp_path_factory.mktemp("releases")
    return write_release({k: v.copy() for k, v in tables.items()}, MANIFEST_EXTRA, root)


@pytest.fixture(scope="module")
def rel(release_path) -> Release:
    return Release.open(release_path)


def copy_release(release_path: Path, tmp_path: Path) -> Path:
    dst = tmp_path / release_path.name
    shutil.copytree(release_path, dst)
    return dst


# ---------------------------------------------------------------------------------------------------- opening
def test_open_and_tables(rel, tables):
    assert rel.release_id == rel.path.name
    assert rel.created.endswith("Z")
    for name, df in tables.items():
        assert rel.query(f"SELECT count(*) AS n FROM {name}")["n"][0] == len(df)  # noqa: S608 - fixed names


def test_open_default_follows_latest(release_path, monkeypatch):
    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(release_path.parent))
    assert resolve_latest() == release_path
    r = Release.open()
    assert r.release_id == release_path.name
    r.close()


def test_latest_pointer_errors(tmp_path):
    with pytest.raises(ReleaseError, match="latest"):
        resolve_latest(tmp_path)
    (tmp_path / "latest").write_text("../../etc\n")
    with pytest.raises(ReleaseError, match="valid release id"):
        resolve_latest(tmp_path)
    (tmp_path / "latest").write_text("nope\n")
    with pytest.raises(ReleaseError, match="not found"):
        Release.open(resolve_latest(tmp_path))


def test_truncated_parquet_refused(release_path, tmp_path):
    bad = copy_release(release_path, tmp_path)
    f = bad / "pairwise.parquet"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ReleaseError, match="pairwise.parquet"):
        Release.open(bad)


def test_checksum_mismatch_refused(release_path, tmp_path):
    bad = copy_release(release_path, tmp_path)
    f = bad / "energy.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    f.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match=r"energy\.parquet.*SHA-256"):
        Release.open(bad)


def test_missing_file_refused(release_path, tmp_path):
    bad = copy_release(release_path, tmp_path)
    (bad / "trees.parquet").unlink()
    with pytest.raises(ReleaseError, match=r"trees\.parquet.*missing"):
        Release.open(bad)


def test_missing_manifest_refused(release_path, tmp_path):
    bad = copy_release(release_path, tmp_path)
    (bad / "manifest.json").unlink()
    with pytest.raises(ReleaseError, match="manifest.json"):
        Release.open(bad)


def test_corrupt_manifest_refused(release_path, tmp_path):
    bad = copy_release(release_path, tmp_path)
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(ReleaseError, match="manifest"):
        Release.open(bad)


def test_row_count_mismatch_refused(release_path, tmp_path):
    bad = copy_release(release_path, tmp_path)
    m = json.loads((bad / "manifest.json").read_text())
    m["files"]["models.parquet"]["rows"] += 1
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ReleaseError, match=r"models\.parquet.*rows"):
        Release.open(bad)


def test_required_table_unlisted_refused(release_path, tmp_path):
    bad = copy_release(release_path, tmp_path)
    m = json.loads((bad / "manifest.json").read_text())
    del m["files"]["intrinsic_dim.parquet"]
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ReleaseError, match="intrinsic_dim"):
        Release.open(bad)


def test_stray_parquet_refused(release_path, tmp_path):
    bad = copy_release(release_path, tmp_path)
    shutil.copy(bad / "models.parquet", bad / "models_old.parquet")
    with pytest.raises(ReleaseError, match="models_old.parquet"):
        Release.open(bad)


def test_optional_tables_may_be_absent(release_path, tmp_path):
    ok = copy_release(release_path, tmp_path)
    m = json.loads((ok / "manifest.json").read_text())
    for name in ("pairwise_null", "samples", "metric_definitions"):
        del m["files"][f"{name}.parquet"]
        (ok / f"{name}.parquet").unlink()
    m["release_id"] = expected_release_id(m)  # a changed release gets a new id (and folder)
    (ok / "manifest.json").write_text(json.dumps(m))
    ok = ok.rename(ok.with_name(m["release_id"]))
    r = Release.open(ok)
    assert q.pairwise_null(r, "qm9", "cknna", 5).empty
    assert q.list_samples(r, "qm9").empty
    assert list(q.metric_definitions(r)["metric"]) == list(q.METRICS)


def test_no_file_access_from_sql(rel, release_path):
    with pytest.raises(duckdb.Error):
        rel.query("SELECT * FROM read_parquet(?)", [str(release_path / "models.parquet")])
    with pytest.raises(duckdb.Error):
        rel.query("COPY models TO '/tmp/matter_align_should_not_exist.csv'")
    with pytest.raises(duckdb.Error):
        rel.query("SET enable_external_access = true")


# ---------------------------------------------------------------------------------------------------- listing
def test_list_models_filters(rel, tables):
    m = tables["models"]
    assert list(q.list_models(rel)["model_id"]) == list(
        m.sort_values(["family", "display_name", "model_id"])["model_id"]
    )
    assert set(q.list_models(rel, family="MACE")["model_id"]) == set(m.loc[m.family == "MACE", "model_id"])
    assert set(q.list_models(rel, family=["MACE", "SOAP"])["model_id"]) == set(
        m.loc[m.family.isin(["MACE", "SOAP"]), "model_id"]
    )
    assert set(q.list_models(rel, modality="smiles")["model_id"]) == set(m.loc[m.modality == "smiles", "model_id"])
    assert set(q.list_models(rel, source="pretrained")["model_id"]) == set(m.loc[m.source == "pretrained", "model_id"])
    ts = q.list_models(rel, training_set=["qm9", "omat24"])
    assert set(ts["model_id"]) == {r.model_id for r in m.itertuples() if {"qm9", "omat24"} & set(r.training_sets)}
    both = q.list_models(rel, family="ChemBERTa", source="pretrained")
    assert list(both["model_id"]) == ["bert_a"]
    assert q.list_models(rel, family="MACE", modality="smiles").empty  # known values, no match: empty, not error
    # in_distribution derived from the cards' training sets and the dataset's in_distribution_for
    d = q.list_models(rel, dataset="qm9")
    idf = set(tables["datasets"].set_index("dataset_id").at["qm9", "in_distribution_for"])
    expect = {r.model_id: bool(idf & set(r.training_sets)) for r in m.itertuples()}
    assert dict(zip(d["model_id"], d["in_distribution"], strict=True)) == expect
    assert q.list_models(rel)["in_distribution"].isna().all()
    assert all(isinstance(x, list) for x in q.list_models(rel)["training_sets"])


def test_list_datasets_families_metrics(rel, tables):
    ds = q.list_datasets(rel)
    assert set(ds["dataset_id"]) == set(tables["datasets"]["dataset_id"])
    assert (ds["n_models"] == 5).all()
    assert list(q.list_datasets(rel, origin="generated")["dataset_id"]) == ["offeq"]
    assert list(q.list_datasets(rel, domain="molecules")["dataset_id"]) == sorted(ds["dataset_id"])
    assert q.dataset_card(rel, "qm9")["in_distribution_for"][0] == ["qm9"]
    fam = q.list_families(rel)
    assert dict(zip(fam["family"], fam["n_models"], strict=True)) == tables["models"]["family"].value_counts().to_dict()
    assert list(q.list_families(rel, modality="smiles")["family"]) == ["ChemBERTa"]
    am = q.available_metrics(rel, "qm9")
    p = tables["pairwise"][tables["pairwise"]["dataset_id"] == "qm9"]
    assert len(am) == len(p.groupby(["metric", "k"], dropna=False))
    assert (am["n_models"] == 5).all() and (am["n"] == 60).all()
    assert q.k_values(rel, "qm9", "cknna") == [5, 10]
    assert q.k_values(rel, "qm9", "cka") == [None]
    md = q.metric_definitions(rel)
    assert set(md["metric"]) == set(q.METRICS)


def test_model_and_dataset_cards(rel):
    c = q.model_card(rel, "soap")
    assert len(c) == 1 and c["source"][0] == "descriptor" and c["datasets"][0] == ["offeq", "qm9"]


# ---------------------------------------------------------------------------------------------------- matrices
def _raw(tables, ds, metric, k):
    p = tables["pairwise"]
    sel = (p.dataset_id == ds) & (p.metric == metric) & ((p.k == k) if k is not None else p.k.isna())
    return {(r.model_a, r.model_b): r.value for r in p[sel].itertuples()}


@pytest.mark.parametrize("metric, k", [("cknna", 5), ("cknna", 10), ("cka", None), ("info_imbalance", 1)])
def test_matrix_values(rel, tables, metric, k):
    raw = _raw(tables, "qm9", metric, k)
    res = q.matrix(rel, "qm9", metric, k)
    assert res.k == k and res.metric == metric
    assert res.matrix.shape == (5, 5)
    assert list(res.matrix.index) == res.order == list(res.matrix.columns)
    for a in res.order:
        for b in res.order:
            v = res.matrix.at[a, b]
            if (a, b) in raw:
                assert v == raw[(a, b)]
            elif (b, a) in raw and q.METRICS[metric].mirror_fill:
                assert v == raw[(b, a)]
            else:
                assert np.isnan(v)
    c = res.cells
    assert set(c.columns) >= {"model_a", "model_b", "value", "n", "ci_low", "ci_high", "p_value", "k", "mirrored"}
    assert c["mirrored"].sum() == (len(raw) if metric == "cka" else 0)
    assert (c["n"] == 60).all()


def test_matrix_orders(rel, tables):
    fam = q.matrix(rel, "qm9", "cknna", 10, order="family")
    meta = tables["models"].set_index("model_id")
    fams = [meta.at[m, "family"] for m in fam.order]
    assert fams == sorted(fams) and fam.linkage is None
    cl = q.matrix(rel, "qm9", "cknna", 10, order="cluster")
    assert sorted(cl.order) == sorted(fam.order)
    assert cl.linkage.shape == (4, 4)
    # the linkage's leaves are the returned order (indices into the family order)
    assert [fam.order[i] for i in leaves_list(cl.linkage)] == cl.order
    # the pure-noise descriptor is the outlier: it joins last
    assert cl.order[0] == "soap" or cl.order[-1] == "soap"
    d = cl.distance
    assert np.allclose(d.to_numpy(), d.to_numpy().T) and np.allclose(np.diag(d.to_numpy()), 0)
    given = q.matrix(rel, "qm9", "cknna", 10, order="given", models=["soap", "mace_a", "bert_b"])
    assert given.order == ["soap", "mace_a", "bert_b"] and given.matrix.shape == (3, 3)
    sub = q.matrix(rel, "qm9", "cknna", 10, models=["mace_a", "mace_b"])
    assert sub.order == ["mace_a", "mace_b"]
    ii = q.matrix(rel, "qm9", "info_imbalance", 5, order="cluster")
    assert ii.linkage is not None and len(ii.order) == 5
    assert q.matrix(rel, "qm9", "cknna").k == 5  # default: the smallest k


def test_matrix_table_for_csv(rel):
    res = q.matrix(rel, "qm9", "cknna", 5)
    t = q.matrix_table(res)
    assert len(t) == 20 and (t["dataset_id"] == "qm9").all() and (t["metric"] == "cknna").all()
    back = pd.read_csv(io.BytesIO(q.to_csv(t)))
    assert len(back) == len(t)
    np.testing.assert_allclose(back["value"].to_numpy(), t["value"].to_numpy())


def test_family_block_matrix(rel, tables):
    fb = q.family_block_matrix(rel, "qm9", "cknna", 10)
    raw = _raw(tables, "qm9", "cknna", 10)
    fam = tables["models"].set_index("model_id")["family"]
    for r in fb.itertuples():
        vals = [v for (a, b), v in raw.items() if a != b and fam[a] == r.family_a and fam[b] == r.family_b]
        assert r.n_pairs == len(vals)
        if vals:
            assert r.value_mean == pytest.approx(np.mean(vals))
        else:
            assert np.isnan(r.value_mean)
    assert len(fb) == fam.nunique() ** 2
    only = q.family_block_matrix(rel, "qm9", "cka", models=["mace_a", "mace_b", "soap"])
    assert set(only["family_a"]) == {"MACE", "SOAP"}


def test_matrix_difference(rel, tables):
    d = q.matrix_difference(rel, "qm9", "offeq", "cknna", 10, order="cluster")
    assert sorted(d.order) == sorted(tables["models"]["model_id"]) and d.a.linkage is not None
    assert d.a.order == d.order == d.b.order
    qa, qb = _raw(tables, "qm9", "cknna", 10), _raw(tables, "offeq", "cknna", 10)
    for r in d.cells.itertuples():
        if r.model_a != r.model_b:
            assert r.difference == pytest.approx(qb[(r.model_a, r.model_b)] - qa[(r.model_a, r.model_b)])
    assert d.k == 10 and q.matrix_difference(rel, "qm9", "offeq", "cknna").k == 5
    g = q.matrix_difference(rel, "qm9", "offeq", "idcor", order="given", models=["soap", "bert_a"])
    assert g.order == ["soap", "bert_a"] and g.difference.shape == (2, 2)


def test_filter_options(rel, tables):
    o = q.filter_options(rel)
    assert o["model"] == sorted(tables["models"]["model_id"])
    assert o["family"] == sorted(set(tables["models"]["family"]))
    assert o["training_set"] == sorted({t for ts in tables["models"]["training_sets"] for t in ts})
    assert set(o["metric"]) == set(tables["pairwise"]["metric"]) and o["method"] == ["nj", "upgma"]
    assert o["order"] == list(q.ORDERS)


# ---------------------------------------------------------------------------------------------------- per model
def test_intrinsic_dim(rel, tables):
    idd = q.intrinsic_dim(rel, "qm9")
    src = tables["intrinsic_dim"].query("dataset_id == 'qm9'").set_index("model_id")
    assert len(idd) == len(src)
    for r in idd.itertuples():
        assert r.value == src.at[r.model_id, "value"] and r.ci_low == src.at[r.model_id, "ci_low"]
    assert len(q.intrinsic_dim(rel)) == len(tables["intrinsic_dim"])
    assert list(q.intrinsic_dim(rel, "qm9", "twonn", models=["soap"])["model_id"]) == ["soap"]


def test_alignment_vs_mae(rel, tables):
    e = tables["energy"]
    best = e.sort_values("mae_per_atom").iloc[0]["model_id"]
    out = q.alignment_vs_mae(rel, "qm9", "cknna", 5)
    assert (out["best_model"] == best).all()
    assert out.loc[out["is_best"], "model_id"].tolist() == [best]
    raw = _raw(tables, "qm9", "cknna", 5)
    for r in out.itertuples():
        if r.model_id == best:
            assert np.isnan(r.alignment)
        else:
            assert r.alignment == raw[(r.model_id, best)]
    # the best model is found over all models, even when the filter hides it
    hidden = q.alignment_vs_mae(rel, "qm9", "cka", models=["soap", "bert_b"])
    assert set(hidden["model_id"]) == {"soap", "bert_b"} and (hidden["best_model"] == best).all()
    assert hidden["alignment"].notna().all()  # cka stored once per pair, mirrored
    with pytest.raises(ValueError, match="no energy"):
        q.alignment_vs_mae(rel, "offeq")
    assert len(q.energy(rel)) == len(e)


# ---------------------------------------------------------------------------------------------------- ID / OOD
def test_id_ood(rel, tables):
    m = tables["models"].set_index("model_id")
    for ds in ("qm9", "offeq"):
        idf = set(tables["datasets"].set_index("dataset_id").at[ds, "in_distribution_for"])
        p = q.id_ood_pairs(rel, ds, "cknna", 5)
        for r in p.itertuples():
            a_in, b_in = (
                bool(idf & set(m.at[r.model_a, "training_sets"])),
                bool(idf & set(m.at[r.model_b, "training_sets"])),
            )
            assert (r.a_in_distribution, r.b_in_distribution) == (a_in, b_in)
            assert r.pair_class == ("both_id" if a_in and b_in else "both_ood" if not (a_in or b_in) else "mixed")
        assert len(p) == 10  # unordered pairs (CKNNA is mirror_fill)
    v = q.id_vs_ood(rel, "qm9", "offeq", "idcor")
    assert len(v) == 10
    np.testing.assert_allclose(v["difference"], v["value_ood"] - v["value_id"])
    assert set(v["pair_class_id"]) <= set(q.PAIR_CLASSES)
    s = q.id_ood_summary(rel, "cknna", 10)
    assert set(s["dataset_id"]) == {"qm9", "offeq"} and (s["k"] == 10).all()
    p10 = q.id_ood_pairs(rel, "qm9", "cknna", 10)
    for r in s[s.dataset_id == "qm9"].itertuples():
        assert r.n_pairs == (p10["pair_class"] == r.pair_class).sum()


# ---------------------------------------------------------------------------------------------------- local/global
def test_information_imbalance_pairs(rel, tables):
    ii = q.information_imbalance_pairs(rel, "qm9", 5)
    raw = _raw(tables, "qm9", "info_imbalance", 5)
    ck = _raw(tables, "qm9", "cknna", 5)
    idc = _raw(tables, "qm9", "idcor", None)
    assert len(ii) == 10 and (ii["model_a"] < ii["model_b"]).all()
    for r in ii.itertuples():
        assert r.delta_ab == raw[(r.model_a, r.model_b)] and r.delta_ba == raw[(r.model_b, r.model_a)]
        assert r.cknna == ck[(r.model_a, r.model_b)] and r.cknna_k == 5
        assert r.idcor == idc.get((r.model_a, r.model_b), idc.get((r.model_b, r.model_a)))
    assert (q.information_imbalance_pairs(rel, "qm9", 1)["cknna_k"] == 5).all()  # k=1 has no CKNNA: smallest
    assert (q.information_imbalance_pairs(rel, "qm9", 1, cknna_k=10)["cknna_k"] == 10).all()
    cv = q.cknna_vs_idcor(rel, "qm9")
    assert len(cv) == 20 and set(cv["k"]) == {5, 10} and cv["idcor"].notna().all()


def test_pairwise_null(rel, tables):
    z = q.pairwise_null(rel, "qm9", "cknna", 5)
    src = tables["pairwise_null"].query("dataset_id == 'qm9'")
    assert len(z) == len(src)
    np.testing.assert_allclose(z["z"], (z["value"] - z["null_mean"]) / z["null_std"])


# ---------------------------------------------------------------------------------------------------- trees
def test_trees(rel, tables):
    from Bio import Phylo

    t = q.list_trees(rel, "qm9")
    assert len(t) == 4 and (t["n_leaves"] == 5).all()
    nwk = q.tree(rel, "qm9", "cknna", 10, "upgma")
    src = tables["trees"].query("dataset_id == 'qm9' and k == 10 and method == 'upgma'")["newick"].iloc[0]
    assert nwk == src
    leaves = {c.name for c in Phylo.read(io.StringIO(nwk), "newick").get_terminals()}
    assert leaves == set(tables["models"]["model_id"])
    sub = q.tree_for_models(rel, "qm9", "cknna", 5, "nj", ["mace_a", "mace_b", "bert_a", "soap"])
    assert {c.name for c in Phylo.read(io.StringIO(sub), "newick").get_terminals()} == {
        "mace_a",
        "mace_b",
        "bert_a",
        "soap",
    }
    with pytest.raises(ValueError, match="cka"):
        q.tree(rel, "qm9", "cka")
    with pytest.raises(ValueError, match="unknown k"):
        q.tree(rel, "qm9", "cknna", 7)


# ---------------------------------------------------------------------------------------------------- profiles
def test_model_profile_and_compare(rel, tables):
    prof = q.model_profile(rel, "mace_a")
    p = tables["pairwise"]
    direct = p[p.model_a == "mace_a"]
    mirrored = p[(p.model_b == "mace_a") & p.metric.isin(["cka", "idcor", "mutual_knn"])]
    assert (prof["scope"] == "pair").sum() == len(direct) + len(mirrored)
    assert (prof["scope"] == "model").sum() == 2 + 1  # twonn on two datasets + energy on qm9
    cmp_ = q.compare_models(rel, "mace_a", "bert_a")
    pair = cmp_[cmp_.scope == "pair"]
    ii = pair[(pair.metric == "info_imbalance") & (pair.dataset_id == "qm9") & (pair.k == 5)].iloc[0]
    raw = _raw(tables, "qm9", "info_imbalance", 5)
    assert ii.value_ab == raw[("mace_a", "bert_a")] and ii.value_ba == raw[("bert_a", "mace_a")]
    assert len(pair) == len(p[(p.model_a == "mace_a") & (p.model_b == "bert_a")]) + len(
        p[(p.model_a == "bert_a") & (p.model_b == "mace_a") & p.metric.isin(["cka", "idcor", "mutual_knn"])]
    )
    model = cmp_[cmp_.scope == "model"]
    assert set(model["metric"]) == {"intrinsic_dim:twonn", "energy_mae_per_atom"}
    assert model["value_a"].notna().all() and model["value_b"].notna().all()


def test_release_summary_and_samples(rel, tables):
    s = q.release_summary(rel)
    assert s.release_id == rel.release_id and s.created == rel.created and s.code_version == "test"
    assert s.n_models == 5 and s.n_datasets == 2
    assert (s.datasets["n"] == 60).all() and set(s.datasets["dataset_id"]) == {"qm9", "offeq"}
    assert s.model_counts["n_models"].sum() == 5
    assert s.settings == MANIFEST_EXTRA["settings"]
    sm = q.list_samples(rel, "qm9", limit=5, offset=10)
    assert list(sm["position"]) == list(range(10, 15)) and sm["sample_id"].iloc[0] == "qm9:0010"


# ---------------------------------------------------------------------------------------------------- csv
def test_csv_helpers(rel):
    df = q.list_models(rel)
    back = pd.read_csv(io.BytesIO(q.to_csv(df)))
    assert list(back["model_id"]) == list(df["model_id"])
    assert back["training_sets"].fillna("").tolist() == [";".join(x) for x in df["training_sets"]]
    assert (
        q.csv_filename("2026.11.24-abcd1234", "qm9", "cknna", 10)
        == "matter-align_2026.11.24-abcd1234_qm9_cknna_k10.csv"
    )
    assert q.csv_filename("r", kind="models") == "matter-align_r_models.csv"
    name = q.csv_filename("../../etc", "a/b c", "x' OR '1'='1")
    assert "/" not in name and " " not in name and "'" not in name and name.endswith(".csv")


# ---------------------------------------------------------------------------------------------------- errors
CALLS_WITH_NAMES = {
    "model": [
        lambda r, v: q.model_card(r, v),
        lambda r, v: q.model_profile(r, v),
        lambda r, v: q.compare_models(r, v, "mace_a"),
        lambda r, v: q.compare_models(r, "mace_a", v),
        lambda r, v: q.matrix(r, "qm9", "cknna", 5, models=[v]),
        lambda r, v: q.matrix(r, "qm9", "cknna", 5, models=["mace_a", v]),
        lambda r, v: q.family_block_matrix(r, "qm9", "cknna", 5, models=[v]),
        lambda r, v: q.intrinsic_dim(r, "qm9", models=[v]),
        lambda r, v: q.energy(r, models=v),
        lambda r, v: q.alignment_vs_mae(r, "qm9", models=[v]),
        lambda r, v: q.id_ood_pairs(r, "qm9", "cknna", 5, models=[v]),
        lambda r, v: q.id_vs_ood(r, "qm9", "offeq", "cknna", 5, models=[v]),
        lambda r, v: q.id_ood_summary(r, "cknna", models=[v]),
        lambda r, v: q.information_imbalance_pairs(r, "qm9", 5, models=[v]),
        lambda r, v: q.cknna_vs_idcor(r, "qm9", models=[v]),
        lambda r, v: q.pairwise_null(r, "qm9", "cknna", 5, models=[v]),
        lambda r, v: q.tree_for_models(r, "qm9", "cknna", 5, "nj", models=["mace_a", "soap", v]),
        lambda r, v: q.matrix_difference(r, "qm9", "offeq", "cknna", 5, models=[v]),
    ],
    "dataset": [
        lambda r, v: q.list_models(r, dataset=v),
        lambda r, v: q.dataset_card(r, v),
        lambda r, v: q.available_metrics(r, v),
        lambda r, v: q.k_values(r, v, "cknna"),
        lambda r, v: q.matrix(r, v, "cknna", 5),
        lambda r, v: q.family_block_matrix(r, v, "cknna", 5),
        lambda r, v: q.intrinsic_dim(r, v),
        lambda r, v: q.energy(r, v),
        lambda r, v: q.alignment_vs_mae(r, v),
        lambda r, v: q.id_ood_pairs(r, v, "cknna", 5),
        lambda r, v: q.id_vs_ood(r, v, "offeq", "cknna", 5),
        lambda r, v: q.id_vs_ood(r, "qm9", v, "cknna", 5),
        lambda r, v: q.information_imbalance_pairs(r, v, 5),
        lambda r, v: q.cknna_vs_idcor(r, v),
        lambda r, v: q.pairwise_null(r, v, "cknna", 5),
        lambda r, v: q.list_trees(r, v),
        lambda r, v: q.tree(r, v),
        lambda r, v: q.tree_for_models(r, v),
        lambda r, v: q.list_samples(r, v),
        lambda r, v: q.matrix_difference(r, v, "offeq", "cknna", 5),
        lambda r, v: q.matrix_difference(r, "qm9", v, "cknna", 5),
    ],
    "metric": [
        lambda r, v: q.k_values(r, "qm9", v),
        lambda r, v: q.matrix(r, "qm9", v),
        lambda r, v: q.family_block_matrix(r, "qm9", v),
        lambda r, v: q.alignment_vs_mae(r, "qm9", v),
        lambda r, v: q.id_ood_pairs(r, "qm9", v),
        lambda r, v: q.id_vs_ood(r, "qm9", "offeq", v),
        lambda r, v: q.id_ood_summary(r, v),
        lambda r, v: q.pairwise_null(r, "qm9", v),
        lambda r, v: q.tree(r, "qm9", v),
        lambda r, v: q.tree_for_models(r, "qm9", v),
        lambda r, v: q.matrix_difference(r, "qm9", "offeq", v),
    ],
    "family": [lambda r, v: q.list_models(r, family=v), lambda r, v: q.list_models(r, family=["MACE", v])],
    "modality": [lambda r, v: q.list_models(r, modality=v), lambda r, v: q.list_families(r, modality=v)],
    "training_set": [lambda r, v: q.list_models(r, training_set=v), lambda r, v: q.list_models(r, training_set=[v])],
    "source": [lambda r, v: q.list_models(r, source=v), lambda r, v: q.list_families(r, source=v)],
    "domain": [lambda r, v: q.list_datasets(r, domain=v)],
    "origin": [lambda r, v: q.list_datasets(r, origin=v)],
    "estimator": [lambda r, v: q.intrinsic_dim(r, "qm9", estimator=v)],
    "method": [lambda r, v: q.tree(r, "qm9", "cknna", 5, v), lambda r, v: q.tree_for_models(r, "qm9", method=v)],
    "order": [
        lambda r, v: q.matrix(r, "qm9", "cknna", order=v),
        lambda r, v: q.matrix_difference(r, "qm9", "offeq", "cknna", order=v),
    ],
}


@pytest.mark.parametrize("what", sorted(CALLS_WITH_NAMES))
def test_unknown_names_are_errors(rel, what):
    for i, call in enumerate(CALLS_WITH_NAMES[what]):
        with pytest.raises(ValueError, match="ghost_name") as e:
            call(rel, "ghost_name")
        assert "ghost_name" in str(e.value), (what, i)


@pytest.mark.parametrize("what", sorted(CALLS_WITH_NAMES))
def test_injection_attempts_refused(rel, tables, what):
    for call in CALLS_WITH_NAMES[what]:
        for bad in INJECTIONS:
            with pytest.raises(ValueError):
                call(rel, bad)
    # nothing was executed: every table is intact
    for name, df in tables.items():
        assert rel.query(f"SELECT count(*) AS n FROM {name}")["n"][0] == len(df)  # noqa: S608 - fixed names


def test_unknown_k_is_error(rel):
    for call in (
        lambda k: q.matrix(rel, "qm9", "cknna", k),
        lambda k: q.family_block_matrix(rel, "qm9", "cknna", k),
        lambda k: q.alignment_vs_mae(rel, "qm9", "cknna", k),
        lambda k: q.id_ood_pairs(rel, "qm9", "cknna", k),
        lambda k: q.id_vs_ood(rel, "qm9", "offeq", "cknna", k),
        lambda k: q.id_ood_summary(rel, "cknna", k),
        lambda k: q.information_imbalance_pairs(rel, "qm9", k),
        lambda k: q.information_imbalance_pairs(rel, "qm9", 5, cknna_k=k),
        lambda k: q.pairwise_null(rel, "qm9", "cknna", k),
        lambda k: q.tree(rel, "qm9", "cknna", k),
        lambda k: q.matrix_difference(rel, "qm9", "offeq", "cknna", k),
    ):
        with pytest.raises(ValueError, match="777"):
            call(777)
    with pytest.raises(ValueError, match="has no k"):
        q.matrix(rel, "qm9", "cka", 5)
    with pytest.raises(ValueError, match="integer"):
        q.matrix(rel, "qm9", "cknna", "5 OR 1=1")
    with pytest.raises(ValueError, match="non-negative"):
        q.list_samples(rel, "qm9", limit="1; DROP TABLE samples")
    for bad in ({"limit": 10**20}, {"offset": 10**20}, {"limit": -1}, {"offset": 2**63}):  # was a DuckDB error
        with pytest.raises(ValueError, match="non-negative integer at most"):
            q.list_samples(rel, "qm9", **bad)
    assert len(q.list_samples(rel, "qm9", limit=2**53, offset=0)) > 0
    with pytest.raises(ValueError):
        q.list_models(rel, family=[1, 2])


# ---------------------------------------------------------------------------------------------------- purity
def test_queries_are_pure_and_thread_safe(rel):
    first = q.matrix(rel, "qm9", "cknna", 10, order="cluster")
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: q.matrix(rel, "qm9", "cknna", 10, order="cluster"), range(8)))
    for r in results:
        assert r.order == first.order
        pd.testing.assert_frame_equal(r.matrix, first.matrix)
        np.testing.assert_array_equal(r.linkage, first.linkage)
    assert hash(rel) == hash(Release.open(rel.path)) and rel == Release.open(rel.path)


def test_backend_imports_no_torch_or_streamlit():
    code = (
        "import sys; import backend, backend.release, backend.queries; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'jax', 'transformers', "
        "'streamlit', 'e3nn', 'mace', 'fairchem', 'orb_models', 'chgnet', 'sevenn', 'torchani', 'ase', 'rdkit'}); "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"backend imported: {out.stdout.strip()} {out.stderr[-2000:]}"


def test_verify_command(release_path, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "backend", str(release_path)], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0 and "verified" in ok.stdout and release_path.name in ok.stdout
    bad = copy_release(release_path, tmp_path)
    (bad / "samples.parquet").write_bytes(b"PAR1")
    out = subprocess.run([sys.executable, "-m", "backend", str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1 and "samples.parquet" in out.stderr
