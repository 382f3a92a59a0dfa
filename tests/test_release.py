"""The release writer and the table schemas (precompute.release): a small release built in tmp_path."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from precompute.release.schema import METRICS, REQUIRED_TABLES, TABLES
from precompute.release.validation import SchemaError, validate_table
from precompute.release.writer import ReleaseExistsError, write_release
from tests._release_fixture import MANIFEST_EXTRA, build_tables


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    from precompute.release.schema import metric_definitions_table

    return {**build_tables(deep=True), "metric_definitions": metric_definitions_table()}


def fresh(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {k: v.copy(deep=True) for k, v in tables.items()}


# ---------------------------------------------------------------------------------------------------- writing
def test_write_release_layout_and_manifest(tables, tmp_path):
    path = write_release(fresh(tables), MANIFEST_EXTRA, tmp_path)
    rid = path.name
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}-[0-9a-f]{8}", rid)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["release_id"] == rid
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", manifest["created"])
    assert rid.startswith(manifest["created"][:10].replace("-", "."))
    assert manifest["code_version"] == "test"
    assert manifest["inputs"] == MANIFEST_EXTRA["inputs"]
    assert manifest["settings"] == MANIFEST_EXTRA["settings"]
    assert set(REQUIRED_TABLES) <= set(manifest["tables"])
    assert "metric_definitions" in manifest["tables"]  # filled in by the writer
    on_disk = sorted(p.name for p in path.iterdir())
    assert on_disk == sorted([*manifest["files"], "manifest.json"])
    for fname, meta in manifest["files"].items():
        data = (path / fname).read_bytes()
        assert hashlib.sha256(data).hexdigest() == meta["sha256"]
        assert len(data) == meta["bytes"]
        t = pq.read_table(path / fname)
        assert t.num_rows == meta["rows"]
        name = meta["table"]
        assert t.schema.equals(TABLES[name].arrow_schema(), check_metadata=False), name
        if name in tables:
            assert t.num_rows == len(tables[name])
    # latest: a plain text file (not a symlink) holding the id
    latest = tmp_path / "latest"
    assert latest.is_file() and not latest.is_symlink()
    assert latest.read_text().strip() == rid
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_values_round_trip(tables, tmp_path):
    path = write_release(fresh(tables), MANIFEST_EXTRA, tmp_path)
    back = pd.read_parquet(path / "pairwise.parquet")
    src = tables["pairwise"]
    np.testing.assert_array_equal(back["value"].to_numpy(), src["value"].to_numpy())
    assert back["k"].isna().sum() == src["k"].isna().sum()
    models = pd.read_parquet(path / "models.parquet")
    assert [list(x) for x in models["training_sets"]] == list(tables["models"]["training_sets"])
    ds = pd.read_parquet(path / "datasets.parquet")
    assert [list(x) for x in ds["in_distribution_for"]] == list(tables["datasets"]["in_distribution_for"])


def test_existing_release_never_overwritten(tables, tmp_path):
    p1 = write_release(fresh(tables), MANIFEST_EXTRA, tmp_path, release_id="r1")
    before = {f.name: f.read_bytes() for f in p1.iterdir()}
    with pytest.raises(ReleaseExistsError, match="r1"):
        write_release(fresh(tables), {**MANIFEST_EXTRA, "notes": "other"}, tmp_path, release_id="r1")
    assert {f.name: f.read_bytes() for f in p1.iterdir()} == before
    # the automatic id is a content hash: the same content on the same day is refused too
    write_release(fresh(tables), MANIFEST_EXTRA, tmp_path)
    with pytest.raises(ReleaseExistsError):
        write_release(fresh(tables), MANIFEST_EXTRA, tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_latest_pointer_updates(tables, tmp_path):
    write_release(fresh(tables), MANIFEST_EXTRA, tmp_path, release_id="a")
    assert (tmp_path / "latest").read_text().strip() == "a"
    t2 = fresh(tables)
    t2["energy"].loc[0, "mae_per_atom"] += 0.001
    p2 = write_release(t2, MANIFEST_EXTRA, tmp_path)
    assert (tmp_path / "latest").read_text().strip() == p2.name
    write_release(fresh(tables), MANIFEST_EXTRA, tmp_path, release_id="c", update_latest=False)
    assert (tmp_path / "latest").read_text().strip() == p2.name


def test_release_id_depends_on_content(tables, tmp_path):
    p1 = write_release(fresh(tables), MANIFEST_EXTRA, tmp_path / "x")
    t2 = fresh(tables)
    t2["pairwise"].loc[0, "value"] += 1e-9
    p2 = write_release(t2, MANIFEST_EXTRA, tmp_path / "y")
    p3 = write_release(fresh(tables), {**MANIFEST_EXTRA, "settings": {"k": [1]}}, tmp_path / "z")
    assert len({p1.name, p2.name, p3.name}) == 3


@pytest.mark.parametrize("rid", ["latest", "../evil", "a/b", "", ".hidden", "x" * 65, "a b"])
def test_bad_release_id(tables, tmp_path, rid):
    with pytest.raises(ValueError, match="release id"):
        write_release(fresh(tables), MANIFEST_EXTRA, tmp_path, release_id=rid)
    assert not list(tmp_path.iterdir()) or not [p for p in tmp_path.iterdir() if p.name != "latest"]


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"inputs": []}, "settings"),
        ({"settings": {}}, "inputs"),
        ({"settings": {}, "inputs": [{"name": "x"}]}, "sha256"),
        ({"settings": {}, "inputs": [{"sha256": "ab"}]}, "name"),
        ({"settings": {}, "inputs": [], "release_id": "x"}, "release_id"),
        ({"settings": {}, "inputs": [], "files": {}}, "files"),
        ({"settings": {"x": float("nan")}, "inputs": []}, "JSON"),
        ("not a dict", "dict"),
    ],
)
def test_bad_manifest_extra(tables, tmp_path, extra, match):
    with pytest.raises(ValueError, match=match):
        write_release(fresh(tables), extra, tmp_path)
    assert not (tmp_path / "latest").exists()


def test_schema_error_leaves_nothing(tables, tmp_path):
    t = fresh(tables)
    t["pairwise"].loc[3, "value"] = float("nan")
    with pytest.raises(SchemaError):
        write_release(t, MANIFEST_EXTRA, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_required_table(tables, tmp_path):
    for name in REQUIRED_TABLES:
        t = fresh(tables)
        del t[name]
        with pytest.raises(SchemaError, match=name):
            write_release(t, MANIFEST_EXTRA, tmp_path)


def test_unknown_table(tables, tmp_path):
    t = fresh(tables)
    t["extra_stuff"] = pd.DataFrame({"a": [1]})
    with pytest.raises(ValueError, match="extra_stuff"):
        write_release(t, MANIFEST_EXTRA, tmp_path)


# ---------------------------------------------------------------------------------------------------- schemas
def test_every_table_valid(tables):
    assert set(tables) == set(TABLES)  # the fixture covers every table of the format
    for name, df in tables.items():
        t = validate_table(name, df)
        assert t.num_rows == len(df)
        assert t.schema.names == TABLES[name].column_names


def test_every_schema_documented():
    text = (Path(__file__).resolve().parents[1] / "docs" / "RELEASE_FORMAT.md").read_text()
    for name, schema in TABLES.items():
        assert f"`{name}`" in text, name
        for col in schema.column_names:
            assert f"`{col}`" in text, (name, col)
    for metric in METRICS:
        assert f"`{metric}`" in text, metric


def _expect(table, column, row, fn, tables):
    t = fresh(tables)
    fn(t)
    with pytest.raises(SchemaError) as e:
        validate_table(table, t[table])
    assert e.value.table == table and e.value.column == column and e.value.row == row, str(e.value)
    msg = str(e.value)
    assert repr(table) in msg and repr(column) in msg and (row is None or f"row {row}" in msg)


def _set(table, row, col, value):
    def f(t):
        t[table][col] = t[table][col].astype(object)
        t[table].at[row, col] = value

    return f


BAD_CELLS = [
    # (table, column, row, bad value)
    ("models", "source", 2, "finetuned"),
    ("models", "modality", 0, "image"),
    ("models", "input_kind", 1, "graph"),
    ("models", "equivariance", 1, "maybe"),
    ("models", "force_head", 0, "both"),
    ("models", "family", 3, None),
    ("models", "model_id", 4, 17),
    ("models", "training_sets", 1, "mptrj"),
    ("models", "training_sets", 2, ["mptrj", 3]),
    ("models", "params", 0, 1.5),
    ("models", "params", 0, -1),
    ("models", "embedding_dim", 1, "big"),
    ("datasets", "origin", 1, "synthetic"),
    ("datasets", "domain", 0, "crystals"),
    ("datasets", "n_samples", 0, 0),
    ("datasets", "in_distribution_for", 1, None),
    ("pairwise", "value", 5, float("nan")),
    ("pairwise", "value", 6, float("inf")),
    ("pairwise", "value", 7, -float("inf")),
    ("pairwise", "value", 8, None),
    ("pairwise", "value", 9, "0.5"),
    ("pairwise", "metric", 4, "cosine"),
    ("pairwise", "p_value", 3, 1.5),
    ("pairwise", "n", 2, 0),
    ("pairwise", "n", 2, True),
    ("pairwise", "k", 0, 0),
    ("pairwise", "model_a", 1, None),
    ("intrinsic_dim", "estimator", 0, "pca"),
    ("intrinsic_dim", "value", 1, float("nan")),
    ("intrinsic_dim", "value", 1, -2.0),
    ("energy", "mae_per_atom", 0, float("inf")),
    ("energy", "n_test", 1, None),
    ("trees", "method", 0, "ml"),
    ("trees", "newick", 1, None),
    ("samples", "sample_id", 3, None),
    ("pairwise_null", "null_std", 0, -0.1),
    ("pairwise_null", "metric", 1, "cknna; DROP TABLE models"),
    ("samples", "position", 0, -1),
    ("metric_definitions", "metric", 0, "cosine"),
    ("metric_definitions", "has_k", 1, "yes"),
    ("metric_definitions", "value_max", 2, float("nan")),
]


@pytest.mark.parametrize("table, column, row, value", BAD_CELLS)
def test_bad_cell_named(tables, table, column, row, value):
    _expect(table, column, row, _set(table, row, column, value), tables)


def test_missing_and_unknown_columns(tables):
    for name, df in tables.items():
        col = [c.name for c in TABLES[name].columns if not c.optional][-1]
        with pytest.raises(SchemaError, match=f"table '{name}', column '{col}'.*missing"):
            validate_table(name, df.drop(columns=[col]))
        with pytest.raises(SchemaError, match="unknown column"):
            validate_table(name, df.assign(surprise=1))


def test_duplicate_key(tables):
    for name, df in tables.items():
        dup = pd.concat([df, df.iloc[[0]]], ignore_index=True)
        with pytest.raises(SchemaError, match="duplicate key") as e:
            validate_table(name, dup)
        assert e.value.row == len(df)


def test_k_rules(tables):
    t = fresh(tables)
    p = t["pairwise"]
    i = int(np.flatnonzero(p["metric"].to_numpy() == "cknna")[0])
    _expect("pairwise", "k", i, _set("pairwise", i, "k", None), tables)
    j = int(np.flatnonzero(p["metric"].to_numpy() == "cka")[0])
    _expect("pairwise", "k", j, _set("pairwise", j, "k", 10), tables)


def test_ci_rules(tables):
    _expect("intrinsic_dim", "ci_low", 2, _set("intrinsic_dim", 2, "ci_high", None), tables)

    def swap(t):
        t["intrinsic_dim"].loc[1, "ci_low"] = t["intrinsic_dim"].loc[1, "ci_high"] + 1

    _expect("intrinsic_dim", "ci_low", 1, swap, tables)


def test_nan_in_nullable_float_becomes_null(tables):
    t = fresh(tables)
    assert t["pairwise"]["ci_low"].isna().all()
    arrow = validate_table("pairwise", t["pairwise"].assign(ci_low=np.nan, ci_high=np.nan))
    assert arrow.column("ci_low").null_count == len(t["pairwise"])
    assert all(math.isfinite(v) for v in arrow.column("value").to_pylist())


@pytest.mark.parametrize(
    "table, column",
    [("pairwise", "model_a"), ("pairwise", "model_b"), ("energy", "model_id"), ("intrinsic_dim", "model_id")],
)
def test_unknown_model_reference(tables, tmp_path, table, column):
    t = fresh(tables)
    t[table].loc[2, column] = "ghost_model"
    with pytest.raises(SchemaError, match="ghost_model") as e:
        write_release(t, MANIFEST_EXTRA, tmp_path)
    assert (e.value.table, e.value.column, e.value.row) == (table, column, 2)


@pytest.mark.parametrize("table", ["pairwise", "energy", "trees", "intrinsic_dim", "samples"])
def test_unknown_dataset_reference(tables, tmp_path, table):
    t = fresh(tables)
    t[table].loc[1, "dataset_id"] = "ghost_set"
    with pytest.raises(SchemaError, match="ghost_set") as e:
        write_release(t, MANIFEST_EXTRA, tmp_path)
    assert (e.value.table, e.value.column, e.value.row) == (table, "dataset_id", 1)


def test_metric_definitions_match_metrics(tables, tmp_path):
    path = write_release(fresh(tables), MANIFEST_EXTRA, tmp_path)
    md = pd.read_parquet(path / "metric_definitions.parquet")
    assert list(md["metric"]) == list(METRICS)
    assert dict(zip(md["metric"], md["has_k"], strict=True)) == {m: d.has_k for m, d in METRICS.items()}


def test_optional_columns_filled_with_null(tables):
    arrow = validate_table("models", tables["models"])
    assert arrow.column("license").null_count == len(tables["models"])
    assert "license" not in tables["models"].columns


def test_tables_from_real_cards(tables, tmp_path):
    """models/datasets tables built from the registry's model cards and the dataset cards validate."""
    from precompute.datasets import dataset_card
    from precompute.registry import card_hash, load_cards
    from precompute.release.tables import datasets_table, models_table

    cards = load_cards()
    models = models_table(cards, card_hash=card_hash)
    arrow = validate_table("models", models)
    assert arrow.num_rows == len(cards) and arrow.column("card_hash").null_count == 0
    assert sorted(models["model_id"]) == sorted(cards)
    ds = datasets_table([dataset_card("qm9")], {"qm9": 100})
    validate_table("datasets", ds)
    assert ds["in_distribution_for"][0] == ["qm9"]
    with pytest.raises(ValueError, match="qm9"):
        datasets_table([dataset_card("qm9")], {})


def test_fixture_numbers_agree_with_the_metric_engine():
    """The fixture's dense restatements give the metric engine's numbers (so the test release is honest)."""
    metrics = pytest.importorskip("precompute.metrics")
    from tests import _release_fixture as fx

    E = fx.embeddings()["qm9"]
    A, B = E["mace_a"], E["bert_a"]
    assert fx.cknna(A, B, 5) == pytest.approx(metrics.cknna(A, B, k=5), abs=1e-9)
    assert fx.mutual_knn(A, B, 10) == pytest.approx(metrics.mutual_knn(A, B, k=10), abs=1e-9)
    assert fx.cka(A, B) == pytest.approx(metrics.cka(A, B), abs=1e-9)
    assert fx.twonn(A) == pytest.approx(metrics.twonn_id(A), abs=1e-9)
    assert fx.info_imbalance(A, B, 5) == pytest.approx(metrics.information_imbalance(A, B, k=5), abs=1e-9)
    assert fx.idcor(A, B, 9, 0) == pytest.approx(metrics.idcor(A, B, permutations=9, seed=0), abs=1e-9)


def test_code_version_recorded(tables, tmp_path):
    extra = {k: v for k, v in MANIFEST_EXTRA.items() if k != "code_version"}
    path = write_release(fresh(tables), extra, tmp_path)
    from precompute.version import code_version

    assert json.loads((path / "manifest.json").read_text())["code_version"] == code_version()


def test_calibrated_effect_sizes_above_one_are_valid_and_negative_scores_are_not():
    """IDCor's calibrated score is the effect size s - tau (no attainable maximum; its null sits below 0): the QM9
    analysis of 2026-12-04 gave 1.15 for rxnfp-bert-pretrained ~ rxnmapper. Valid; a negative score is not."""
    row = {"dataset_id": "qm9", "metric": "idcor", "k": None, "model_a": "a", "model_b": "b", "calibrated": 1.1497,
           "tau": -0.196, "alpha": 0.05, "null_q99": -0.177, "p_value": 0.0099, "closed_form_mean": None,
           "n_permutations": 100, "seed": 1}  # fmt: skip
    validate_table("pairwise_calibration", pd.DataFrame([row]).astype({"k": "Int64", "closed_form_mean": float}))
    with pytest.raises(SchemaError, match="below the minimum"):
        validate_table("pairwise_calibration",
                       pd.DataFrame([{**row, "calibrated": -0.1}]).astype({"k": "Int64", "closed_form_mean": float}))  # fmt: skip
