"""OMat24, sAlex and OMol25 from user-supplied `.aselmdb` files (the format fairchem releases them in).

Each `.aselmdb` file is a single-file LMDB written by `ase_db_backends.aselmdb.LMDBDatabase`; `ase.db.connect`
opens it once `ase-db-backends` and `lmdb` are installed. We open every file read-only (no lock file, so read-only
mounts work), list row ids without decoding rows, draw a seeded permutation over all (file, row) pairs and decode only
the rows asked for.

Sample ids: `<dataset>:<sid>` where the row's data carries the dataset's own `sid`, else
`<dataset>:<file path relative to the root>:<row id>`. Labels: `energy` in eV (the DFT total energy stored with the
row) and `energy_per_atom` in eV/atom. OMol25 rows carry `charge` and `spin` (multiplicity) in their data; they are
copied to `atoms.info` (where fairchem/UMA expect them) and to `meta`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from precompute.datasets.base import DatasetError, Label, Sample

SUFFIX = ".aselmdb"
_RESERVED_KEYS = (b"nextid", b"deleted_ids", b"metadata")  # ase_db_backends' non-row keys
# mm_txnid in an LMDB meta page (64-bit build): page header 16 + magic, version 8 + address, mapsize 16
# + two MDB_db records 96 + mm_last_pg 8.
_META_TXNID_OFFSET = 144


def find_files(path: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[Path, list[Path]]:
    """Resolve a file, a folder (searched recursively), a glob, or a list of these to (root, sorted files)."""
    items = [path] if isinstance(path, str | os.PathLike) else list(path)
    files: set[Path] = set()
    roots: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            files.update(f.resolve() for f in p.rglob(f"*{SUFFIX}"))
            roots.append(p.resolve())
        elif p.is_file():
            files.add(p.resolve())
            roots.append(p.resolve().parent)
        else:
            matched = [Path(m).resolve() for m in glob.glob(str(p), recursive=True)]
            matched = [m for m in matched if m.is_file()]
            if not matched:
                raise DatasetError(f"{item}: no such .aselmdb file or folder")
            files.update(matched)
            roots.extend(m.parent for m in matched)
    if not files:
        raise DatasetError(f"{path}: no {SUFFIX} files found")
    root = Path(os.path.commonpath([str(r) for r in roots]))
    return root, sorted(files)


def _connect(path: Path) -> Any:
    """Open read-only. The file is first checked with plain lmdb so a bad file fails here, naming the file, rather
    than half-constructing an ase database object."""
    import ase.db
    import lmdb

    try:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    except lmdb.Error as exc:
        raise DatasetError(f"{path}: not a readable .aselmdb (LMDB) file ({exc})") from None
    try:
        # LMDB maps the file: a page past the end of a truncated file is a SIGBUS (a crash) or reads as zeros (rows
        # silently missing). LMDB refuses pages past last_pgno, so a file holding every page up to it is safe.
        # Only the meta pages (read by lmdb.open) may be touched before this check.
        psize = int(env.stat()["psize"])
        need = (int(env.info()["last_pgno"]) + 1) * psize
        size = path.stat().st_size
        if size < need:
            raise DatasetError(f"{path}: truncated .aselmdb (LMDB) file ({size} bytes, its pages need {need})")
        _check_meta_pages(path, psize)
        with env.begin() as txn:
            n_reserved = sum(txn.get(k) is not None for k in _RESERVED_KEYS)
        n_records = int(env.stat()["entries"]) - n_reserved
    except lmdb.Error as exc:
        raise DatasetError(f"{path}: not a readable .aselmdb (LMDB) file ({exc})") from None
    finally:
        env.close()
    try:
        db = ase.db.connect(str(path), type="aselmdb", use_lock_file=False, readonly=True)
        n_ids = len(db.ids)
    except Exception as exc:  # lmdb.Error, ValueError, ... : name the file
        raise DatasetError(f"{path}: cannot open as .aselmdb ({type(exc).__name__}: {exc})") from None
    # Row ids come from the stored "nextid" and "deleted_ids", not from the records: a damaged index key would list
    # no rows (or too few) without any error, so it must agree with the number of row records in the file.
    if n_ids != n_records:
        db.close()
        raise DatasetError(
            f"{path}: corrupt .aselmdb index (it lists {n_ids} row ids, the file holds {n_records} rows)"
        )
    return db


def _check_meta_pages(path: Path, psize: int) -> None:
    """LMDB keeps two meta pages and commit N writes meta page N % 2, so their txn ids differ by exactly 1; LMDB
    opens the one with the larger id. A damaged id would silently open the older snapshot (fewer or no rows)."""
    import struct

    with open(path, "rb") as fh:
        ids = []
        for page in (0, 1):
            fh.seek(page * psize + _META_TXNID_OFFSET)
            raw = fh.read(8)
            ids.append(struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1)
    if abs(ids[0] - ids[1]) != 1 or ids[ids[1] > ids[0]] % 2 != int(ids[1] > ids[0]):
        raise DatasetError(f"{path}: corrupt .aselmdb (LMDB) meta pages (transaction ids {ids[0]} and {ids[1]})")


def _row_to_sample(row: Any, dataset_id: str, rel: str, molecular: bool) -> Sample:
    from ase import Atoms

    data = dict(row.get("data") or {})
    sid = data.get("sid")
    sample_id = f"{dataset_id}:{sid}" if sid not in (None, "") else f"{dataset_id}:{rel}:{row.id}"
    try:
        numbers = np.asarray(row.numbers, dtype=int)
        positions = np.asarray(row.positions, dtype=float)
        atoms = Atoms(numbers=numbers, positions=positions, cell=row.get("cell"), pbc=row.get("pbc"))
    except Exception as exc:
        raise DatasetError(f"{sample_id} ({rel}, row {row.id}): bad structure ({exc})") from None
    if len(atoms) == 0 or not np.isfinite(positions).all() or (numbers <= 0).any():
        raise DatasetError(f"{sample_id} ({rel}, row {row.id}): empty structure or non-finite positions")
    labels: dict[str, Label] = {}
    energy = row.get("energy")
    if energy is not None:
        if not np.isfinite(float(energy)):
            raise DatasetError(f"{sample_id} ({rel}, row {row.id}): non-finite energy {energy!r}")
        labels["energy"] = Label(float(energy), "eV")
        labels["energy_per_atom"] = Label(float(energy) / len(atoms), "eV/atom")
    meta: dict[str, Any] = {"source_file": rel, "row_id": int(row.id)}
    for key in ("sid", "data_id", "source"):
        if key in data:
            meta[key] = data[key]
    if molecular:
        for key in ("charge", "spin"):
            if key not in data:
                raise DatasetError(f"{sample_id} ({rel}, row {row.id}): OMol25 row has no {key!r} in its data")
            atoms.info[key] = int(data[key])
            meta[key] = int(data[key])
    return Sample(sample_id=sample_id, atoms=atoms, labels=labels, meta=meta)


def load_aselmdb(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    dataset_id: str,
    n: int | None = None,
    seed: int = 0,
    molecular: bool = False,
    require_energy: bool = True,
) -> list[Sample]:
    """Load n rows (all if None) of the .aselmdb files under `path` as Samples.

    Order: all rows in (file, row id) order for n=None, else the first n of `default_rng(seed).permutation`
    over that list, so a smaller n is a prefix of a larger one. molecular=True (OMol25) requires charge and spin.
    """
    root, files = find_files(path)
    dbs = []
    try:
        for f in files:
            dbs.append(_connect(f))
        return _load_rows(root, files, dbs, dataset_id, n, seed, molecular, require_energy)
    finally:
        for db in dbs:
            db.close()


def _load_rows(
    root: Path,
    files: list[Path],
    dbs: list[Any],
    dataset_id: str,
    n: int | None,
    seed: int,
    molecular: bool,
    require_energy: bool,
) -> list[Sample]:
    index: list[tuple[int, int]] = [(fi, int(i)) for fi, db in enumerate(dbs) for i in db.ids]
    if n is None:
        order = np.arange(len(index))
    elif n < 0 or n > len(index):
        raise DatasetError(f"{dataset_id}: asked for n={n} rows but {root} holds {len(index)}")
    else:
        order = np.random.default_rng(seed).permutation(len(index))[:n]
    samples, seen = [], set()
    for k in order:
        fi, rid = index[int(k)]
        rel = os.path.relpath(files[fi], root)
        try:
            row = dbs[fi].get(id=rid)
        except Exception as exc:
            raise DatasetError(f"{files[fi]}: cannot read row {rid} ({type(exc).__name__}: {exc})") from None
        s = _row_to_sample(row, dataset_id, rel, molecular)
        if require_energy and "energy" not in s.labels:
            raise DatasetError(f"{s.sample_id} ({rel}, row {rid}): no energy stored with the row")
        if s.sample_id in seen:
            raise DatasetError(f"{s.sample_id}: duplicate sample id ({rel}, row {rid})")
        seen.add(s.sample_id)
        s.meta["dataset"] = dataset_id
        samples.append(s)
    return samples


def load_omat24(n: int | None = None, seed: int = 0, path: str | None = None, **kw: Any) -> list[Sample]:
    """OMat24 (periodic inorganic structures; PBE/PBE+U energies in eV)."""
    return load_aselmdb(_need(path, "omat24"), "omat24", n=n, seed=seed, **kw)


def load_salex(n: int | None = None, seed: int = 0, path: str | None = None, **kw: Any) -> list[Sample]:
    """sAlex (subsampled Alexandria, released with OMat24)."""
    return load_aselmdb(_need(path, "salex"), "salex", n=n, seed=seed, **kw)


def load_omol25(n: int | None = None, seed: int = 0, path: str | None = None, **kw: Any) -> list[Sample]:
    """OMol25 (molecules with charge and spin; wB97M-V/def2-TZVPD energies in eV)."""
    return load_aselmdb(_need(path, "omol25"), "omol25", n=n, seed=seed, molecular=True, **kw)


def _need(path: str | None, dataset_id: str) -> str:
    if path is None:
        raise DatasetError(f"{dataset_id}: needs path= (a .aselmdb file, a folder of them, or a glob)")
    return path
