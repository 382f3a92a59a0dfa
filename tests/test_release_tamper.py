"""Tampered copies of the shipped release are refused (issue 12, points 2 and 5).

Byte-level tampers (a file changed without re-signing, a missing file, an extra file) fail the checksums. For the
value-level tampers the manifest is fully re-signed (SHA-256, bytes, rows, release id and folder name recomputed like
the writer does), so only the value check of `backend.validate` can catch them; the message must name table, column
and row. Each test fails on code that verifies bytes only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.__main__ import main as backend_main
from backend.release import Release, ReleaseError, ReleaseValueError, expected_release_id

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_ROOT = ROOT / "data" / "releases"
SHIPPED = SHIPPED_ROOT / (SHIPPED_ROOT / "latest").read_text(encoding="utf-8").strip()
SMALL = [p.name for p in SHIPPED.iterdir() if p.name != "neighbours.parquet"]  # the 6 MB table is left out of copies


def _copy(tmp_path: Path, with_neighbours: bool = False) -> Path:
    dst = tmp_path / "releases" / SHIPPED.name
    dst.mkdir(parents=True)
    for name in SMALL + (["neighbours.parquet"] if with_neighbours else []):
        shutil.copy2(SHIPPED / name, dst / name)
    if not with_neighbours:  # optional table: drop it from the manifest and re-sign
        m = json.loads((dst / "manifest.json").read_text())
        del m["files"]["neighbours.parquet"]
        m["tables"] = [t for t in m["tables"] if t != "neighbours"]
        (dst / "manifest.json").write_text(json.dumps(m, indent=2))
        dst = _resign(dst)
    return dst


def _resign(folder: Path, recompute_id: bool = True) -> Path:
    """Recompute every file's sha256/bytes/rows in the manifest, and (by default) the release id and folder name."""
    mpath = folder / "manifest.json"
    m = json.loads(mpath.read_text())
    for fname, meta in m["files"].items():
        data = (folder / fname).read_bytes()
        meta["sha256"] = hashlib.sha256(data).hexdigest()
        meta["bytes"] = len(data)
        meta["rows"] = pq.read_table(folder / fname).num_rows
    if recompute_id:
        m["release_id"] = expected_release_id(m)
    mpath.write_text(json.dumps(m, indent=2))
    if recompute_id and m["release_id"] != folder.name:
        new = folder.with_name(m["release_id"])
        folder.rename(new)
        folder = new
    (folder.parent / "latest").write_text(folder.name + "\n")
    return folder


def _edit(folder: Path, table: str, fn) -> Path:
    tbl = pq.read_table(folder / f"{table}.parquet")
    rows = fn(tbl.to_pylist())  # plain Python rows: NaN stays NaN (pandas would turn it into null)
    pq.write_table(pa.Table.from_pylist(rows, schema=tbl.schema), folder / f"{table}.parquet")
    return _resign(folder)


def _set(col: str, row: int, value):
    def fn(rows):
        rows[row][col] = value
        return rows

    return fn


def _refused(folder: Path, *needles: str, exc=ReleaseValueError) -> str:
    with pytest.raises(exc) as ei:
        Release.open(folder)
    msg = str(ei.value)
    for n in needles:
        assert n in msg, (n, msg)
    assert backend_main([str(folder)]) == 1
    return msg


# ---------------------------------------------------------------------------------------------------- baseline
def test_untampered_copy_opens(tmp_path):
    folder = _copy(tmp_path)
    r = Release.open(folder)
    assert r.release_id == folder.name
    r.close()
    assert backend_main([str(folder)]) == 0


# ---------------------------------------------------------------------------------------------------- byte level
def test_changed_file_without_resigning(tmp_path):
    folder = _copy(tmp_path)
    df = pq.read_table(folder / "pairwise.parquet")
    pq.write_table(df.slice(1), folder / "pairwise.parquet")
    _refused(folder, "pairwise.parquet", exc=ReleaseError)


def test_missing_file(tmp_path):
    folder = _copy(tmp_path)
    (folder / "energy.parquet").unlink()
    _refused(folder, "energy.parquet", "missing", exc=ReleaseError)


def test_extra_file(tmp_path):
    folder = _copy(tmp_path)
    shutil.copy2(folder / "energy.parquet", folder / "energy2.parquet")
    _refused(folder, "energy2.parquet", exc=ReleaseError)


# ---------------------------------------------------------------------------------------------------- value level
def test_nan_value(tmp_path):
    folder = _edit(_copy(tmp_path), "pairwise", _set("value", 3, float("nan")))
    _refused(folder, "'pairwise'", "'value'", "row 3", "finite")


def test_inf_value(tmp_path):
    folder = _edit(_copy(tmp_path), "intrinsic_dim", _set("value", 5, float("inf")))
    _refused(folder, "'intrinsic_dim'", "'value'", "row 5", "inf")


def test_duplicate_pairwise_key(tmp_path):
    def dup(rows):
        return rows + [{**rows[7], "value": 0.123}]

    folder = _edit(_copy(tmp_path), "pairwise", dup)
    n = pq.read_table(folder / "pairwise.parquet").num_rows
    _refused(folder, "'pairwise'", "model_a", f"row {n - 1}", "duplicate key")


def test_unknown_model_in_pairwise(tmp_path):
    folder = _edit(_copy(tmp_path), "pairwise", _set("model_a", 11, "no-such-model"))
    _refused(folder, "'pairwise'", "'model_a'", "row 11", "no-such-model")


def test_unknown_dataset(tmp_path):
    folder = _edit(_copy(tmp_path), "intrinsic_dim", _set("dataset_id", 2, "no-such-dataset"))
    _refused(folder, "'intrinsic_dim'", "'dataset_id'", "row 2", "no-such-dataset")


def test_unknown_metric(tmp_path):
    folder = _edit(_copy(tmp_path), "pairwise", _set("metric", 4, "no_such_metric"))
    _refused(folder, "'pairwise'", "'metric'", "row 4", "no_such_metric")


def test_bad_enum_models_source(tmp_path):
    folder = _edit(_copy(tmp_path), "models", _set("source", 1, "stolen"))
    _refused(folder, "'models'", "'source'", "row 1", "stolen")


def test_bad_enum_datasets_origin(tmp_path):
    folder = _edit(_copy(tmp_path), "datasets", _set("origin", 0, "imagined"))
    _refused(folder, "'datasets'", "'origin'", "row 0", "imagined")


def test_release_id_not_matching_folder(tmp_path):
    folder = _copy(tmp_path)
    renamed = folder.with_name("2026.01.01-00000000")
    folder.rename(renamed)
    _refused(renamed, "does not match the folder name", exc=ReleaseError)


def test_release_id_not_matching_content(tmp_path):
    folder = _copy(tmp_path)
    df = pq.read_table(folder / "energy.parquet")
    pq.write_table(df, folder / "energy.parquet", compression="snappy")  # same values, new bytes
    folder = _resign(folder, recompute_id=False)  # checksums re-signed, id kept
    _refused(folder, "does not match its content", exc=ReleaseError)


# ---------------------------------------------------------------------------------------------------- app
def test_app_shows_error_for_tampered_release(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    folder = _edit(_copy(tmp_path), "pairwise", _set("model_b", 0, "ghost-model"))
    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(folder.parent))
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60).run()
    assert not at.exception
    assert at.error and "cannot be opened" in at.error[0].value and "ghost-model" in at.error[0].value
    at.switch_page("pages_/heatmap.py").run()
    assert not at.exception
    assert at.error and "ghost-model" in at.error[0].value
