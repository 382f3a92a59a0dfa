"""The embedding store: atomic writes, resumable chunks, checksums, failures, dataset keys, no pickle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from precompute.extract import store as store_mod
from precompute.extract.store import (
    DatasetKey,
    Embeddings,
    EmbeddingStore,
    StoreChecksumError,
    StoreError,
    StoreLockedError,
    align,
    atomic_write,
    atomic_write_npz,
    path_fingerprint,
    read_embeddings,
)
from precompute.version import code_version

REPO = Path(__file__).resolve().parent.parent
IDS = [f"toy:{i:04d}" for i in range(10)]
KEY = DatasetKey("toy", 10, 0)


def _rows(ids: list[str], dim: int = 4) -> np.ndarray:
    return np.array([[int(s[-4:]) + 0.25 * j for j in range(dim)] for s in ids], dtype=np.float32)


def _fill(run, failing: set[str] = frozenset()) -> None:
    for i in run.pending_chunks():
        chunk = run.chunk_ids(i)
        ok = [s for s in chunk if s not in failing]
        run.write_chunk(i, ok, _rows(ok), {s: f"cannot embed {s}" for s in chunk if s in failing}, seconds=0.5)


def _write_entry(store: EmbeddingStore, key: DatasetKey = KEY, model: str = "m1", **run_info) -> Path:
    with store.open_run(key, model, IDS, chunk_size=4, run_info=run_info) as run:
        _fill(run, failing={"toy:0003", "toy:0007"})
        return run.finalize({"code_version": "test"})


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


# ---------------------------------------------------------------------------------------------------------------------


def test_roundtrip_metadata_and_parts_removed(tmp_path):
    st = EmbeddingStore(tmp_path)
    path = _write_entry(st, card_hash="abc", checkpoint_override=None)
    assert path == tmp_path / "toy_n10_seed0" / "m1.npz"
    emb = st.read(KEY, "m1")
    ok = [s for s in IDS if s not in {"toy:0003", "toy:0007"}]
    assert emb.ids == ok
    np.testing.assert_array_equal(emb.embeddings, _rows(ok))
    assert emb.embeddings.dtype == np.float32
    m = emb.meta
    assert m["shape"] == [8, 4] and m["dtype"] == "float32" and m["n_total"] == 10 and m["n_ok"] == 8
    assert m["failures"] == {"toy:0003": "cannot embed toy:0003", "toy:0007": "cannot embed toy:0007"}
    assert m["n_failed"] == 2 and emb.failures == m["failures"]
    assert m["timing"]["seconds"] == pytest.approx(1.5) and m["timing"]["samples_per_s"] == pytest.approx(
        10 / 1.5, abs=1e-3
    )
    assert m["card_hash"] == "abc" and m["code_version"] == "test" and len(m["sha256"]) == 64
    assert m["dataset_key"] == {"dataset_id": "toy", "n": 10, "seed": 0, "path": None, "path_fingerprint": None,
                                "slug": "toy_n10_seed0"}  # fmt: skip
    # the JSON sidecar is the metadata; parts and lock are gone
    assert json.loads((tmp_path / "toy_n10_seed0" / "m1.json").read_text()) == m
    assert _visible(tmp_path) == ["m1.json", "m1.npz"]
    assert not (tmp_path / "toy_n10_seed0" / ".parts").exists()
    assert st.status(KEY, "m1", card_hash="abc").complete
    assert [(k.slug, mid) for k, mid, _ in st.entries()] == [("toy_n10_seed0", "m1")]


def test_resume_keeps_finished_chunks(tmp_path):
    st = EmbeddingStore(tmp_path)
    with st.open_run(KEY, "m1", IDS, chunk_size=4) as run:
        assert run.n_chunks == 3 and run.pending_chunks() == [0, 1, 2]
        run.write_chunk(0, IDS[:4], _rows(IDS[:4]), {}, 1.0)
    # a new process would see chunk 0 done and recompute only 1 and 2
    with st.open_run(KEY, "m1", IDS, chunk_size=4) as run:
        assert run.discarded_reason is None
        assert run.pending_chunks() == [1, 2]
        _fill(run)
        run.finalize()
    assert st.read(KEY, "m1").ids == IDS


def test_damaged_part_is_recomputed(tmp_path):
    st = EmbeddingStore(tmp_path)
    with st.open_run(KEY, "m1", IDS, chunk_size=4) as run:
        _fill(run)
        run.part_path(1).write_bytes(b"not an npz")
    with st.open_run(KEY, "m1", IDS, chunk_size=4) as run:
        assert run.pending_chunks() == []  # existence only
        assert run.pending_chunks(verify=True) == [1]
        assert not run.part_path(1).exists()


def test_parts_from_a_different_run_are_discarded(tmp_path):
    st = EmbeddingStore(tmp_path)
    with st.open_run(KEY, "m1", IDS, chunk_size=4, run_info={"card_hash": "old"}) as run:
        run.write_chunk(0, IDS[:4], _rows(IDS[:4]), {}, 1.0)
    with st.open_run(KEY, "m1", IDS, chunk_size=4, run_info={"card_hash": "new"}) as run:
        assert run.pending_chunks() == [0, 1, 2]
        assert "run_info" in run.discarded_reason
    with st.open_run(KEY, "m1", IDS, chunk_size=5, run_info={"card_hash": "new"}) as run:
        assert "chunk_size" in run.discarded_reason
    with st.open_run(KEY, "m1", IDS[::-1], chunk_size=5, run_info={"card_hash": "new"}) as run:
        assert "sample_ids_sha256" in run.discarded_reason


def test_atomic_write_exception_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "x.npz"

    def boom(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(store_mod.os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_npz(target, a=np.arange(5))
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp file

    monkeypatch.undo()

    def half(f):
        f.write(b"partial")
        raise RuntimeError("crash mid-write")

    atomic_write(target, lambda f: f.write(b"old complete content"))
    with pytest.raises(RuntimeError):
        atomic_write(target, half)
    assert target.read_bytes() == b"old complete content"
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]


_CRASH = """
import os, sys
import numpy as np
from precompute.extract.store import atomic_write
def w(f):
    np.save(f, np.arange(1000))
    f.flush()
    os._exit(137)   # killed mid-write: no cleanup runs
atomic_write(sys.argv[1], w)
"""


def test_hard_crash_mid_write_leaves_no_visible_partial_file(tmp_path):
    target = tmp_path / "chunk.npz"
    r = subprocess.run([sys.executable, "-c", _CRASH, str(target)], cwd=REPO, capture_output=True)
    assert r.returncode == 137
    assert not target.exists()
    assert _visible(tmp_path) == []  # only a hidden .chunk.npz.*.tmp remains


def test_killed_writer_temp_files_are_cleaned_on_resume(tmp_path):
    st = EmbeddingStore(tmp_path)
    with st.open_run(KEY, "m1", IDS, chunk_size=4) as run:
        run.write_chunk(0, IDS[:4], _rows(IDS[:4]), {}, 1.0)
        (run.dir / ".chunk-000001.npz.abc.tmp").write_bytes(b"partial")
    with st.open_run(KEY, "m1", IDS, chunk_size=4) as run:
        assert not list(run.dir.glob(".*.tmp"))
        assert run.pending_chunks() == [1, 2]


def test_checksum_mismatch_is_detected(tmp_path):
    st = EmbeddingStore(tmp_path)
    path = _write_entry(st)
    good = np.load(path, allow_pickle=False)
    ids, emb = good["ids"], good["embeddings"].copy()
    emb[0, 0] += 1.0  # same shape and dtype, different bytes
    np.savez(path, ids=ids, embeddings=emb)
    with pytest.raises(StoreChecksumError, match=r"m1\.npz: sha256 of the embeddings"):
        st.read(KEY, "m1")
    assert st.status(KEY, "m1").state == "corrupt"
    # a flipped byte inside the file fails the zip CRC: also a checksum error, never silently wrong numbers
    _write_entry(st)
    raw = bytearray(path.read_bytes())
    pos = raw.find(np.float32(_rows(["toy:0009"])[0, 1]).tobytes())
    assert pos > 0
    raw[pos] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreChecksumError):
        st.read(KEY, "m1")
    assert not st.status(KEY, "m1").complete


def test_missing_metadata_or_file_is_a_clear_error(tmp_path):
    st = EmbeddingStore(tmp_path)
    with pytest.raises(StoreError, match="no embeddings for model 'm1'"):
        st.read_meta(KEY, "m1")
    path = _write_entry(st)
    path.with_suffix(".json").unlink()
    with pytest.raises(StoreError, match="metadata missing"):
        read_embeddings(path)
    assert st.status(KEY, "m1").state == "missing"


def test_failures_must_cover_every_sample(tmp_path):
    st = EmbeddingStore(tmp_path)
    with st.open_run(KEY, "m1", IDS, chunk_size=4) as run:
        with pytest.raises(ValueError, match="partition"):  # toy:0002 neither embedded nor failed
            run.write_chunk(0, IDS[:2], _rows(IDS[:2]), {"toy:0003": "x"}, 0.1)
        with pytest.raises(ValueError, match="shape"):
            run.write_chunk(0, IDS[:4], _rows(IDS[:3]), {}, 0.1)
        # out of order input is stored in dataset order
        run.write_chunk(0, IDS[:4][::-1], _rows(IDS[:4][::-1]), {}, 0.1)
        assert run.read_part(0)["ids"] == IDS[:4]
        np.testing.assert_array_equal(run.read_part(0)["embeddings"], _rows(IDS[:4]))


def test_all_failed_writes_nothing(tmp_path):
    st = EmbeddingStore(tmp_path)
    with st.open_run(KEY, "m1", IDS, chunk_size=4) as run:
        _fill(run, failing=set(IDS))
        with pytest.raises(StoreError, match="embedded none of the 10 samples"):
            run.finalize()
    assert st.status(KEY, "m1").state == "missing"


def test_stale_dataset_key_is_not_reused(tmp_path):
    st = EmbeddingStore(tmp_path)
    _write_entry(st)
    for other in (DatasetKey("toy", 12, 0), DatasetKey("toy", 10, 1), DatasetKey("toy2", 10, 0), DatasetKey("toy")):
        assert st.folder(other) != st.folder(KEY)
        assert st.status(other, "m1").state == "missing"
    # an entry copied under another key's folder is recognised as computed on a different key
    other = DatasetKey("toy", 12, 0)
    st.folder(other).mkdir(parents=True)
    for suffix in (".npz", ".json"):
        (st.folder(other) / f"m1{suffix}").write_bytes((st.folder(KEY) / f"m1{suffix}").read_bytes())
    assert st.status(other, "m1").state == "stale"
    with pytest.raises(StoreError, match="was computed on"):
        st.read(other, "m1")
    # card or checkpoint changes make the entry stale, too
    assert st.status(KEY, "m1", card_hash="different").state == "stale"
    assert st.status(KEY, "m1", checkpoint_override="/some/ckpt.pt").state == "stale"


def test_dataset_path_fingerprint(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.aselmdb").write_bytes(b"x" * 100)
    (data / "b.aselmdb").write_bytes(b"y" * 100)
    fp = path_fingerprint(data)
    moved = tmp_path / "moved"
    data.rename(moved)
    assert path_fingerprint(moved) == fp  # where the data sits does not matter
    (moved / "b.aselmdb").write_bytes(b"z" * 100)
    assert path_fingerprint(moved) != fp  # what it contains does
    k1 = DatasetKey.build("omat24", 5, 0, str(moved))
    assert k1.slug.startswith("omat24_n5_seed0_path-") and k1.path == str(moved.resolve())
    with pytest.raises(FileNotFoundError):
        DatasetKey.build("omat24", 5, 0, str(tmp_path / "nope"))
    assert DatasetKey.build("qm9", 0, 3).slug == "qm9_nall_seed3"


def test_concurrent_writers_are_refused(tmp_path):
    st = EmbeddingStore(tmp_path)
    with st.open_run(KEY, "m1", IDS, chunk_size=4):
        with pytest.raises(StoreLockedError, match="another process"):
            with st.open_run(KEY, "m1", IDS, chunk_size=4):
                pass


def test_no_pickle(tmp_path):
    with pytest.raises(TypeError, match="never pickles"):
        atomic_write_npz(tmp_path / "x.npz", a=np.array([{"a": 1}], dtype=object))
    path = _write_entry(EmbeddingStore(tmp_path))
    with np.load(path, allow_pickle=False) as z:  # every array loads without pickle
        assert {k: z[k].dtype.kind for k in z.files} == {"ids": "U", "embeddings": "f"}
    source = Path(store_mod.__file__).read_text()
    assert "import pickle" not in source and "allow_pickle=True" not in source
    # a file that would need pickle is refused with a StoreError
    bad = tmp_path / "bad.npz"
    np.savez(bad, ids=np.array(["a"], dtype=object), embeddings=np.zeros((1, 2), np.float32))
    bad.with_suffix(".json").write_text("{}")
    with pytest.raises(StoreError, match="unreadable"):
        read_embeddings(bad)


def test_model_ids_must_be_file_names(tmp_path):
    with pytest.raises(ValueError, match="safe file name"):
        EmbeddingStore(tmp_path).npz_path(KEY, "../escape")


def test_align():
    a = Embeddings(["x", "y", "z"], np.arange(6, dtype=np.float32).reshape(3, 2))
    b = Embeddings(["z", "x"], np.array([[9, 9], [1, 1]], dtype=np.float32))
    ids, ea, eb = align(a, b)
    assert ids == ["x", "z"]
    np.testing.assert_array_equal(ea, [[0, 1], [4, 5]])
    np.testing.assert_array_equal(eb, [[1, 1], [9, 9]])


def test_code_version(tmp_path, monkeypatch):
    v = code_version()
    assert v and (v.startswith("matter-align") or len(v.split("+")[0]) == 12)
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    clean = code_version(str(repo))
    assert len(clean) == 12 and "+" not in clean
    (repo / "f.txt").write_text("2")
    code_version.cache_clear()
    assert code_version(str(repo)) == clean + "+dirty"
    assert code_version(str(tmp_path)).startswith("matter-align ")  # not a git checkout
    monkeypatch.setenv("MATTER_ALIGN_CODE_VERSION", "v9")
    code_version.cache_clear()
    assert code_version() == "v9"
    code_version.cache_clear()


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MATTER_ALIGN_STORE", raising=False)
    assert EmbeddingStore().root == Path("work-cache/embeddings")
    monkeypatch.setenv("MATTER_ALIGN_STORE", str(tmp_path))
    assert EmbeddingStore().root == tmp_path
    assert os.fspath(EmbeddingStore(tmp_path / "x").root).endswith("x")


def test_energies_roundtrip_checksum_and_mixed_chunks(tmp_path):
    st = EmbeddingStore(tmp_path)
    failing = {"toy:0003"}
    with st.open_run(KEY, "m1", IDS, chunk_size=4) as run:
        for i in run.pending_chunks():
            ok = [s for s in run.chunk_ids(i) if s not in failing][::-1]  # any order: stored in dataset order
            run.write_chunk(i, ok, _rows(ok), {s: "no" for s in run.chunk_ids(i) if s in failing}, 0.1,
                            energies=[-2.0 * int(s[-4:]) for s in ok])  # fmt: skip
        npz = run.finalize({})
    e = st.read(KEY, "m1")
    np.testing.assert_array_equal(e.energies, [-2.0 * int(s[-4:]) for s in e.ids])
    assert e.meta["energies"]["unit"] == "eV"
    arrays = dict(np.load(npz, allow_pickle=False))
    arrays["energies"] = arrays["energies"] + 1e-9
    atomic_write_npz(npz, **arrays)
    with pytest.raises(StoreChecksumError, match="energies"):
        st.read(KEY, "m1")
    with st.open_run(KEY, "m2", IDS, chunk_size=4) as run:
        with pytest.raises(ValueError, match="toy:0001.*not finite"):
            run.write_chunk(0, IDS[:4], _rows(IDS[:4]), {}, 0.1, energies=[1.0, np.nan, 2.0, 3.0])
        with pytest.raises(ValueError, match="3 energies for 4"):
            run.write_chunk(0, IDS[:4], _rows(IDS[:4]), {}, 0.1, energies=[1.0, 2.0, 3.0])
        for i in run.pending_chunks():
            ids = run.chunk_ids(i)
            run.write_chunk(i, ids, _rows(ids), {}, 0.1, energies=[0.0] * len(ids) if i == 0 else None)
        with pytest.raises(StoreError, match="some chunks have predicted energies"):
            run.finalize({})
    assert _write_entry(st, model="plain") and st.read(KEY, "plain").energies is None


def test_edited_n_ok_in_metadata_is_refused(tmp_path):
    st = EmbeddingStore(tmp_path)
    path = _write_entry(st)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    assert meta["n_ok"] == 8
    for field, value in (("n_ok", 7), ("n_ok", "8"), ("n_failed", 3), ("n_total", 11)):
        bad = dict(meta, **{field: value})
        meta_path.write_text(json.dumps(bad))
        with pytest.raises(StoreError, match=field):
            st.read(KEY, "m1")
    meta_path.write_text(json.dumps(meta))
    assert len(st.read(KEY, "m1").ids) == 8
