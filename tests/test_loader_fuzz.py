"""Loader fuzz suite (issue 12): seeded corruptions of small real inputs, for every input format.

Property, for each format: loading a corrupted input either returns correct samples (every sample the corruption
did not touch is equal to the uncorrupted one, every value is finite, no sample is missing) or raises the loader's
own error (`DatasetError`, `StoreError`) whose message names the file; never another exception type, never NaN
coordinates or energies, never fewer samples silently. Corruptions: truncation at random byte offsets, random byte
flips, NaN/inf/garbage tokens inserted or put in place of a number, an empty file, binary junk, removed and
duplicated columns. Every case is drawn from a fixed seed, so a failure is reproducible from its printed label.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import shutil
import struct
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from precompute.datasets import DatasetError, load_dataset
from precompute.datasets.base import Label, Sample

pytestmark = pytest.mark.filterwarnings("ignore::precompute.datasets.qm9.QM9ManifestWarning")
SEED = 20261203
PDB_DIR = Path(__file__).parent / "data" / "pdb"
TOKENS = [b"nan", b"NaN", b"inf", b"-inf", b"1e999", b"garbage", b"\x00", b'"', b",", b"\n", b" ", b"\xff\xfe"]
_NUMBER = re.compile(rb"-?\d+\.\d*(?:[eE*^]+-?\d+)?|-?\d+")


# ---------------------------------------------------------------------------------------------------- corruptions


class Case:
    """One corrupted input: `data` replaces the file; `span` is the byte range of the original that was damaged
    (None: the whole file); `cut` is the truncation offset for kind "truncate"."""

    def __init__(self, label: str, data: bytes, span: tuple[int, int] | None, cut: int | None = None):
        self.label, self.data, self.span, self.cut = label, data, span, cut

    def __repr__(self) -> str:
        return self.label


def byte_cases(data: bytes, rng: np.random.Generator, n: int, text: bool = True) -> list[Case]:
    """n seeded corruptions of `data` (plus an empty file and binary junk). text=False: no token insertions."""
    out = [Case("empty", b"", None), Case("junk", rng.bytes(max(64, len(data) // 3)), None)]
    kinds = ("truncate", "flip", "insert", "number") if text else ("truncate", "flip")
    numbers = list(_NUMBER.finditer(data)) if text else []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "truncate":
            cut = int(rng.integers(1, len(data)))
            out.append(Case(f"truncate@{cut}", data[:cut], (cut, len(data)), cut))
        elif kind == "flip":
            pos, bit = int(rng.integers(0, len(data))), int(rng.integers(0, 8))
            b = bytearray(data)
            b[pos] ^= 1 << bit
            out.append(Case(f"flip@{pos}^{1 << bit}", bytes(b), (pos, pos + 1)))
        elif kind == "insert":
            pos, tok = int(rng.integers(0, len(data))), TOKENS[int(rng.integers(0, len(TOKENS)))]
            out.append(Case(f"insert@{pos}:{tok!r}", data[:pos] + tok + data[pos:], (pos, pos + 1)))
        elif numbers:
            m = numbers[int(rng.integers(0, len(numbers)))]
            tok = TOKENS[int(rng.integers(0, 6))]
            out.append(Case(f"number@{m.start()}:{tok!r}", data[: m.start()] + tok + data[m.end() :], m.span()))
    return out


def _line_of(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, min(pos, len(data)))


def touched_lines(data: bytes, case: Case) -> set[int] | None:
    """Line numbers (0-based) of the original that the damage overlaps; None for a whole-file corruption."""
    if case.span is None:
        return None
    lo, hi = case.span
    return set(range(_line_of(data, lo), _line_of(data, max(lo, hi - 1)) + 1))


# ---------------------------------------------------------------------------------------------------- checks


def same_sample(a: Sample, b: Sample) -> bool:
    if (a.sample_id, a.sequence, a.smiles, a.labels) != (b.sample_id, b.sequence, b.smiles, b.labels):
        return False
    if (a.atoms is None) != (b.atoms is None):
        return False
    return a.atoms is None or (
        a.atoms.get_chemical_symbols() == b.atoms.get_chemical_symbols()
        and np.array_equal(a.atoms.positions, b.atoms.positions)
        and np.array_equal(a.atoms.cell.array, b.atoms.cell.array)
        and np.array_equal(a.atoms.pbc, b.atoms.pbc)
    )


def assert_sane(s: Sample, where: str) -> None:
    """Whatever a loader returns is a usable sample: atoms with known elements, finite positions, cell, labels."""
    assert s.atoms is not None and len(s.atoms) > 0, where
    assert (s.atoms.numbers > 0).all(), f"{where}: {s.sample_id} has an unknown element"
    assert np.isfinite(s.atoms.positions).all(), f"{where}: {s.sample_id} has non-finite positions"
    assert np.isfinite(s.atoms.cell.array).all(), f"{where}: {s.sample_id} has a non-finite cell"
    for name, lab in s.labels.items():
        assert isinstance(lab, Label) and np.isfinite(lab.value), f"{where}: {s.sample_id} label {name}={lab}"


def load_or_error(load: Callable[[], list[Sample]], names: list[str], where: str) -> list[Sample] | None:
    """The samples, or None when the loader raised its own error naming one of `names` (a file or a sample id).
    Any other exception type fails the test (pytest reports it with its traceback)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load()
    except DatasetError as exc:
        assert any(n in str(exc) for n in names), f"{where}: the error does not name the file: {exc}"
        return None


def check_result(got: list[Sample] | None, ref: list[Sample], untouched: set[str], where: str) -> None:
    """Untouched samples equal the reference, no sample missing, everything returned sane."""
    if got is None:
        return
    for s in got:
        assert_sane(s, where)
    by_id = {s.sample_id: s for s in got}
    assert len(by_id) == len(got), f"{where}: duplicate ids returned"
    assert len(got) == len(ref), f"{where}: {len(got)} samples returned for {len(ref)} (silently lost or made up)"
    for r in ref:
        if r.sample_id in untouched:
            assert r.sample_id in by_id and same_sample(by_id[r.sample_id], r), f"{where}: {r.sample_id} changed"


# ---------------------------------------------------------------------------------------------------- QM9 CSV parts


def _wheel_lines(part: str, n: int) -> list[bytes]:
    from precompute.datasets.qm9 import qm9pack_data_dir

    with open(qm9pack_data_dir() / part, "rb") as fh:
        return [next(fh) for _ in range(n + 1)]  # header + n rows (qm9pack rows never span lines)


@pytest.fixture(scope="module")
def qm9_parts() -> dict[str, bytes]:
    """Two real part files: the first 6 molecules of qm9pack's part 1 and the first 4 of its part 2."""
    return {"qm9_part1.csv": b"".join(_wheel_lines("qm9_part1.csv", 6)),
            "qm9_part2.csv": b"".join(_wheel_lines("qm9_part2.csv", 4))}  # fmt: skip


def _write_parts(folder: Path, parts: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in parts.items():
        (folder / name).write_bytes(data)
    return folder


def _qm9(folder: Path) -> list[Sample]:
    return load_dataset("qm9", path=str(folder))


def _qm9_row_ids(data: bytes) -> list[str]:
    return [f"qm9:{int(row[1]):06d}" for row in list(csv.reader(io.StringIO(data.decode())))[1:]]


def _csv_columns(data: bytes, edit: Callable[[list[list[str]]], list[list[str]]]) -> bytes:
    rows = list(csv.reader(io.StringIO(data.decode())))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(edit(rows))
    return buf.getvalue().encode()


def qm9_cases(data: bytes, rng: np.random.Generator, n: int) -> list[Case]:
    """Byte-level cases plus column edits: a column removed, a column duplicated, one field removed from one row."""
    out = byte_cases(data, rng, n)
    width = len(next(csv.reader([data.split(b"\n", 1)[0].decode()])))
    for j in (1, 4, 8, 13, 20, width - 1):
        out.append(Case(f"drop-column-{j}", _csv_columns(data, lambda rs, j=j: [r[:j] + r[j + 1 :] for r in rs]), None))
        out.append(Case(f"dup-column-{j}", _csv_columns(data, lambda rs, j=j: [r + [r[j]] for r in rs]), None))
    for j in (2, 8, 13, width - 1):  # a short row: the later fields would shift into the wrong columns
        k = int(rng.integers(1, data.count(b"\n")))
        lo = sum(len(x) for x in data.splitlines(keepends=True)[:k])
        edited = _csv_columns(
            data, lambda rs, j=j, k=k: [r[:j] + r[j + 1 :] if i == k else r for i, r in enumerate(rs)]
        )
        out.append(Case(f"short-row-{k}-field-{j}", edited, (lo, lo + 1)))
    return out


def test_qm9_parts_fuzz(tmp_path, qm9_parts):
    """Every corruption of a part file is refused naming the file, or leaves the other molecules exactly as they
    were; a part cut exactly at a row boundary is the one corruption a folder without a manifest cannot see."""
    from precompute.datasets.qm9 import QM9ManifestWarning

    ref = _qm9(_write_parts(tmp_path / "ref", qm9_parts))
    assert len(ref) == 10
    rng = np.random.default_rng(SEED)
    n_refused = n_loaded = 0
    for target, data in qm9_parts.items():
        row_ids = _qm9_row_ids(data)
        for k, case in enumerate(qm9_cases(data, rng, 56)):
            folder = _write_parts(tmp_path / f"{target}-{k}", {**qm9_parts, target: case.data})
            where = f"{target} {case}"
            lines = touched_lines(data, case)
            touched = set(row_ids) if lines is None or 0 in lines else {row_ids[i - 1] for i in lines if i > 0}
            at_row_boundary = case.cut is not None and data[case.cut - 1 : case.cut] == b"\n"
            if at_row_boundary:
                with pytest.warns(QM9ManifestWarning, match="no qm9_manifest.json"):
                    got = _qm9(folder)
                kept = set(_qm9_row_ids(case.data))
                assert {s.sample_id for s in got} == {s.sample_id for s in ref} - (set(row_ids) - kept), where
                continue
            got = load_or_error(lambda folder=folder: _qm9(folder), [target], where)
            untouched = {s.sample_id for s in ref} - touched
            check_result(got, ref, untouched, where)
            n_refused += got is None
            n_loaded += got is not None
    assert n_refused > 40 and n_loaded > 10  # the cases exercise both outcomes


def test_qm9_parts_fuzz_with_manifest_refuses_every_change(tmp_path, qm9_parts):
    """With a qm9_manifest.json (rows and sha256 of each part), every corruption, including a cut at a row
    boundary, is refused naming the file."""
    from precompute.datasets.qm9 import write_qm9_manifest

    ref_dir = _write_parts(tmp_path / "ref", qm9_parts)
    manifest = write_qm9_manifest(ref_dir).read_bytes()
    rng = np.random.default_rng(SEED + 1)
    data = qm9_parts["qm9_part1.csv"]
    for k, case in enumerate(qm9_cases(data, rng, 24)):
        if case.data == data:
            continue
        folder = _write_parts(tmp_path / f"m{k}", {**qm9_parts, "qm9_part1.csv": case.data})
        (folder / "qm9_manifest.json").write_bytes(manifest)
        with pytest.raises(DatasetError, match="qm9_part1.csv"):
            _qm9(folder)


def test_qm9_custom_folder_cut_at_a_row_boundary_is_refused_with_a_manifest(tmp_path, qm9_parts):
    from precompute.datasets.qm9 import QM9ManifestWarning, write_qm9_manifest

    folder = _write_parts(tmp_path / "f", qm9_parts)
    with pytest.warns(QM9ManifestWarning, match=str(folder)):
        assert len(_qm9(folder)) == 10
    write_qm9_manifest(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning once the folder has a manifest
        assert [s.sample_id for s in _qm9(folder)] == [s.sample_id for s in _qm9(tmp_path / "f")]
    lines = qm9_parts["qm9_part1.csv"].splitlines(keepends=True)
    (folder / "qm9_part1.csv").write_bytes(b"".join(lines[:-2]))  # two whole rows gone: still a valid CSV
    with pytest.raises(DatasetError, match="qm9_part1.csv.*sha256"):
        _qm9(folder)


def test_qm9_manifest_rows_and_parts_must_match(tmp_path, qm9_parts):
    import json

    from precompute.datasets.qm9 import write_qm9_manifest

    folder = _write_parts(tmp_path / "f", qm9_parts)
    doc = json.loads(write_qm9_manifest(folder).read_text())
    assert doc["parts"]["qm9_part1.csv"]["rows"] == 6 and doc["parts"]["qm9_part2.csv"]["rows"] == 4
    doc["parts"]["qm9_part1.csv"]["rows"] = 7  # a manifest that disagrees with its own sha256-checked part
    (folder / "qm9_manifest.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="qm9_part1.csv: 6 rows, qm9_manifest.json has 7"):
        _qm9(folder)
    doc["parts"]["qm9_part1.csv"]["rows"] = 6
    (folder / "qm9_manifest.json").write_text(json.dumps(doc))
    (folder / "qm9_part2.csv").unlink()
    with pytest.raises(DatasetError, match="missing or extra part"):
        _qm9(folder)
    (folder / "qm9_manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="qm9_manifest.json: malformed"):
        _qm9(folder)


def test_qm9_short_row_is_refused_not_shifted(tmp_path, qm9_parts):
    """A row missing its Mulliken_pop field would read RotC as Dipole and Dipole as HOMO: refused."""
    data = qm9_parts["qm9_part1.csv"]
    short = _csv_columns(data, lambda rs: [r[:8] + r[9:] if i == 2 else r for i, r in enumerate(rs)])
    folder = _write_parts(tmp_path / "f", {"qm9_part1.csv": short})
    with pytest.raises(DatasetError, match="qm9_part1.csv.*missing fields"):
        _qm9(folder)


def test_qm9_duplicate_column_is_refused(tmp_path, qm9_parts):
    data = qm9_parts["qm9_part1.csv"]
    dup = _csv_columns(data, lambda rs: [r + [r[20]] for r in rs])  # a second InternalEnergy_0K_au column
    with pytest.raises(DatasetError, match="qm9_part1.csv.*duplicate columns.*InternalEnergy_0K_au"):
        _qm9(_write_parts(tmp_path / "f", {"qm9_part1.csv": dup}))


def test_qm9_non_finite_label_is_refused_not_dropped(tmp_path, qm9_parts):
    data = qm9_parts["qm9_part1.csv"]
    inf = _csv_columns(data, lambda rs: [r[:15] + ["inf"] + r[16:] if i == 3 else r for i, r in enumerate(rs)])
    with pytest.raises(DatasetError, match=r"qm9:000003: non-finite HOMO_au.*qm9_part1.csv"):
        _qm9(_write_parts(tmp_path / "f", {"qm9_part1.csv": inf}))


def test_qm9_bad_row_error_names_the_part_file(tmp_path, qm9_parts):
    data = qm9_parts["qm9_part2.csv"]
    bad = _csv_columns(data, lambda rs: [r[:6] + ["['C','X']"] + r[7:] if i == 1 else r for i, r in enumerate(rs)])
    with pytest.raises(DatasetError, match=r"qm9:\d{6}: .*\(in .*qm9_part2.csv\)"):
        _qm9(_write_parts(tmp_path / "f", {**qm9_parts, "qm9_part2.csv": bad}))


# ---------------------------------------------------------------------------------------------------- PDB / mmCIF


def _pdb_atom_lines(name: str) -> list[str]:
    p = PDB_DIR / name
    text = gzip.open(p, "rt").read() if name.endswith(".gz") else p.read_text()
    return [ln for ln in text.splitlines() if ln.startswith(("ATOM  ", "HETATM"))]


@pytest.fixture(scope="module")
def two_chain_pdb() -> bytes:
    """Chain A of 2XDG (MDAnalysis' DSSP test file) and chain E of pymol's pept.pdb (with its waters) in one file."""
    lines = _pdb_atom_lines("2xdgA.pdb.gz") + ["TER"] + _pdb_atom_lines("pept.pdb") + ["END"]
    return ("\n".join(lines) + "\n").encode()


def _pdb(path: Path) -> tuple[list[Sample], dict[str, str]]:
    skipped: dict[str, str] = {}
    return load_dataset("pdb", path=str(path), skipped=skipped), skipped


def _pdb_chain_of_lines(data: bytes, cif: bool) -> list[str | None]:
    """Chain id of each line of the original (None for lines that are not atom records)."""
    out: list[str | None] = []
    for ln in data.decode(errors="replace").split("\n"):
        if not ln.startswith(("ATOM", "HETATM")):
            out.append(None)
        elif cif:
            out.append((ln.split() or ["", ""])[-2:][0])  # MMCIFIO writes auth_asym_id second to last
        else:
            out.append(ln[21:22])
    return out


def _pdb_fuzz(tmp_path: Path, data: bytes, suffix: str, n: int, seed: int) -> tuple[int, int]:
    cif = suffix == ".cif"
    (tmp_path / "ref").mkdir(parents=True)
    (tmp_path / "ref" / f"two{suffix}").write_bytes(data)
    ref, _ = _pdb(tmp_path / "ref" / f"two{suffix}")
    assert sorted(s.sample_id for s in ref) == ["pdb:two:A", "pdb:two:E"]
    chain_of = _pdb_chain_of_lines(data, cif)
    rng = np.random.default_rng(seed)
    n_refused = n_loaded = 0
    for k, case in enumerate(byte_cases(data, rng, n)):
        path = tmp_path / f"c{k}" / f"two{suffix}"
        path.parent.mkdir()
        path.write_bytes(case.data)
        where = f"{suffix} {case}"
        lines = touched_lines(data, case)
        if lines is None or (cif and any(chain_of[i] is None for i in lines)):
            touched = {"A", "E"}  # a damaged mmCIF header or loop definition can shift every value
        else:  # the chain of each damaged line, before and after (a flipped chain id moves the atom)
            near = lines | {i + 1 for i in lines}
            after = _pdb_chain_of_lines(case.data, cif) if case.cut is None else []
            touched = {c[i] for c in (chain_of, after) for i in near if i < len(c) and c[i]}
        got = load_or_error(lambda path=path: _pdb(path)[0], [path.name], where)
        if got is None:
            n_refused += 1
            continue
        n_loaded += 1
        by_id = {s.sample_id: s for s in got}
        for s in got:
            assert_sane(s, where)
            assert s.sequence and len(s.sequence) == s.meta["n_residues"], where
        if case.cut is not None:  # a text file has no atom count: a cut keeps a prefix of the atoms, never altered
            for s in got:
                r = next((r for r in ref if r.sample_id == s.sample_id), None)
                if r is not None:
                    m = len(s.atoms)
                    assert m <= len(r.atoms) and np.array_equal(s.atoms.positions, r.atoms.positions[:m]), where
                    assert r.sequence.startswith(s.sequence[:-1]), where
        for r in ref:
            if r.meta["chain_id"] not in touched:
                assert r.sample_id in by_id and same_sample(by_id[r.sample_id], r), f"{where}: {r.sample_id} changed"
    return n_refused, n_loaded


def test_pdb_fuzz(tmp_path, two_chain_pdb):
    """A corrupted PDB file is refused naming the file, or the chain it did not touch is returned exactly; the
    touched chain, if returned, is sane (known elements, finite non-origin coordinates) and a cut keeps a prefix."""
    n_refused, n_loaded = _pdb_fuzz(tmp_path, two_chain_pdb, ".pdb", 60, SEED)
    assert n_refused > 3 and n_loaded > 20


def test_mmcif_fuzz(tmp_path, two_chain_pdb):
    from Bio.PDB import MMCIFIO, PDBParser

    (tmp_path / "two.pdb").write_bytes(two_chain_pdb)
    io_ = MMCIFIO()
    io_.set_structure(PDBParser(QUIET=True).get_structure("two", str(tmp_path / "two.pdb")))
    io_.save(str(tmp_path / "two.cif"))
    n_refused, n_loaded = _pdb_fuzz(tmp_path / "fz", (tmp_path / "two.cif").read_bytes(), ".cif", 60, SEED + 2)
    assert n_refused > 3 and n_loaded > 10


def test_pdb_gz_corruption_is_refused(tmp_path):
    """gzip carries a CRC and a length: every truncation or flipped byte of a .pdb.gz is refused naming the file."""
    data = (PDB_DIR / "1i8nA.pdb.gz").read_bytes()
    ref, _ = _pdb(PDB_DIR / "1i8nA.pdb.gz")
    rng = np.random.default_rng(SEED + 3)
    n_refused = 0
    for k, case in enumerate(byte_cases(data, rng, 16, text=False)):
        path = tmp_path / f"c{k}" / "1i8nA.pdb.gz"
        path.parent.mkdir()
        path.write_bytes(case.data)
        got = load_or_error(lambda path=path: _pdb(path)[0], ["1i8nA.pdb.gz"], str(case))
        n_refused += got is None
        if got is not None:  # a flip in the gzip header's mtime or OS byte leaves the content intact
            assert len(got) == 1 and same_sample(got[0], ref[0]), str(case)
    assert n_refused >= 14


def test_pdb_line_cut_inside_the_coordinates_is_refused(tmp_path, two_chain_pdb):
    """A file cut in the middle of a z coordinate ("  -6.5" of "  -6.504") would give a wrong atom: refused."""
    text = two_chain_pdb.decode()
    first = text.index("\n", text.index("ATOM")) + 1  # end of the first atom line
    second_end = text.index("\n", first)
    cut = first + 50  # inside columns 47-54 (z) of the second atom line
    assert cut < second_end
    (tmp_path / "cut.pdb").write_text(text[:cut])
    with pytest.raises(DatasetError, match="cut.pdb.*coordinate"):
        _pdb(tmp_path / "cut.pdb")


def test_mmcif_damaged_model_number_is_refused(tmp_path, two_chain_pdb):
    """One atom's pdbx_PDB_model_num 1 -> 9 used to start a second model there: the first model (the one read)
    silently ended at that atom, dropping the rest of chain A and all of chain E."""
    from Bio.PDB import MMCIFIO, PDBParser

    (tmp_path / "two.pdb").write_bytes(two_chain_pdb)
    io_ = MMCIFIO()
    io_.set_structure(PDBParser(QUIET=True).get_structure("two", str(tmp_path / "two.pdb")))
    io_.save(str(tmp_path / "two.cif"))
    lines = (tmp_path / "two.cif").read_text().split("\n")
    k = next(i for i, ln in enumerate(lines) if ln.startswith("ATOM 31 "))
    assert lines[k].rstrip().endswith(" 1")
    lines[k] = lines[k].rstrip()[:-1] + "9"
    (tmp_path / "bad.cif").write_text("\n".join(lines))
    with pytest.raises(DatasetError, match="bad.cif.*model 1 are not one block"):
        _pdb(tmp_path / "bad.cif")


# ---------------------------------------------------------------------------------------------------- generated set


GEN_KW = {"n": 4, "seed": 2, "md_fraction": 0.0, "sources": ["ase-bulk"]}


@pytest.fixture(scope="module")
def gen_cache(tmp_path_factory) -> tuple[Path, dict[str, bytes], list[Sample]]:
    """A real crystals cache (4 strained and rattled ase-bulk seeds), rewritten with a model energy on each sample
    (as MD samples carry), so that labels are fuzzed too. Returns (cache root, file bytes, samples)."""
    from precompute.datasets import generated

    root = tmp_path_factory.mktemp("gen")
    samples = load_dataset("crystals", path=str(root), **GEN_KW)
    (folder,) = (root / "generated").iterdir()
    state, _ = generated._read_cache(folder)
    for k, s in enumerate(samples):
        s.labels = {"energy_chgnet": Label(-5.25 * len(s.atoms) - 0.125 * k, "eV")}
        s.meta.pop("recipe_path", None)
    generated._write_cache(folder, {k: v for k, v in state.items() if k != "n_generated"}, samples)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in {".extxyz", ".jsonl", ".json"}}
    return root, files, load_dataset("crystals", path=str(root), **GEN_KW)


def _frame_of_lines(extxyz: bytes) -> list[int]:
    out, lines, k, i = [], extxyz.decode().split("\n"), 0, 0
    while i < len(lines) and lines[i].strip():
        n = int(lines[i])
        out += [k] * (n + 2)
        i, k = i + n + 2, k + 1
    return out + [k] * (len(lines) - len(out))


def test_generated_cache_fuzz(tmp_path, gen_cache):
    """A damaged structures.extxyz or samples.jsonl is refused naming the cache, or leaves the other samples
    exactly as cached; never a NaN position, cell or energy."""
    root, files, ref = gen_cache
    (folder_name,) = [p.name for p in (root / "generated").iterdir()]
    rng = np.random.default_rng(SEED + 4)
    n_refused = n_loaded = 0
    for target in ("structures.extxyz", "samples.jsonl"):
        data = files[target]
        owner = _frame_of_lines(data) if target.endswith("extxyz") else list(range(len(ref))) + [len(ref)]
        for k, case in enumerate(byte_cases(data, rng, 48)):
            case_root = tmp_path / f"{target}-{k}"
            folder = case_root / "generated" / folder_name
            folder.mkdir(parents=True)
            for name, content in files.items():
                (folder / name).write_bytes(case.data if name == target else content)
            where = f"{target} {case}"
            lines = touched_lines(data, case)
            hit = set(range(len(ref))) if lines is None else {owner[min(i, len(owner) - 1)] for i in lines}
            untouched = {r.sample_id for j, r in enumerate(ref) if j not in hit}
            try:
                got = load_or_error(lambda r=case_root: load_dataset("crystals", path=str(r), **GEN_KW),
                                    [folder_name], where)  # fmt: skip
            finally:
                shutil.rmtree(case_root / "generated", ignore_errors=True)
            for s in got or []:
                s.meta.pop("recipe_path", None)
            check_result(got, [_no_recipe_path(r) for r in ref], untouched, where)
            n_refused += got is None
            n_loaded += got is not None
    assert n_refused > 20 and n_loaded > 5


def _no_recipe_path(s: Sample) -> Sample:
    return Sample(s.sample_id, s.atoms, s.smiles, s.sequence, s.labels, {k: v for k, v in s.meta.items()
                                                                          if k != "recipe_path"})  # fmt: skip


@pytest.mark.parametrize("what", ["positions", "cell", "energy"])
def test_generated_extxyz_cache_nan_positions_are_refused(tmp_path, gen_cache, what):
    """NaN in a cached structure's positions or cell, or in a cached energy, is refused naming the sample."""
    root, files, ref = gen_cache
    (folder_name,) = [p.name for p in (root / "generated").iterdir()]
    folder = tmp_path / "generated" / folder_name
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    xyz, rows = files["structures.extxyz"].decode(), files["samples.jsonl"].decode()
    if what == "positions":
        lines = xyz.split("\n")
        lines[2] = re.sub(r"(\s)(-?\d+\.\d+)", r"\1nan", lines[2], count=1)
        (folder / "structures.extxyz").write_text("\n".join(lines))
    elif what == "cell":
        (folder / "structures.extxyz").write_text(re.sub(r'Lattice="(-?\d+\.\d+)', 'Lattice="nan', xyz, count=1))
    else:
        (folder / "samples.jsonl").write_text(re.sub(r"\[-?\d+\.\d+, \"eV\"\]", '[NaN, "eV"]', rows, count=1))
    with pytest.raises(DatasetError, match=rf"{ref[0].sample_id}.*{folder_name}"):
        load_dataset("crystals", path=str(tmp_path), **GEN_KW)


def test_generated_cache_malformed_row_is_refused(tmp_path, gen_cache):
    """A samples.jsonl row without its "sample_id" key used to raise a bare KeyError."""
    root, files, _ = gen_cache
    (folder_name,) = [p.name for p in (root / "generated").iterdir()]
    folder = tmp_path / "generated" / folder_name
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    rows = files["samples.jsonl"].decode().replace('"sample_id"', '"sample_ie"', 1)
    (folder / "samples.jsonl").write_text(rows)
    with pytest.raises(DatasetError, match="samples.jsonl: malformed row 1"):
        load_dataset("crystals", path=str(tmp_path), **GEN_KW)


# ---------------------------------------------------------------------------------------------------- .aselmdb


@pytest.fixture(scope="module")
def aselmdb_file(tmp_path_factory) -> tuple[bytes, list[Sample]]:
    """A real .aselmdb (ase_db_backends' LMDB format) of five Cu supercells with energies, written one row per
    transaction as `ase.db` does."""
    import ase.db
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    path = tmp_path_factory.mktemp("lmdb") / "cu.aselmdb"
    db = ase.db.connect(str(path))
    for k in range(5):
        atoms = bulk("Cu", "fcc", a=3.6).repeat((1, 1, k + 1))
        atoms.rattle(0.01, seed=k)
        atoms.calc = SinglePointCalculator(atoms, energy=-3.7 * (k + 1), forces=np.zeros((len(atoms), 3)))
        db.write(atoms, data={"sid": f"cu-{k}"})
    db.close()
    return path.read_bytes(), load_dataset("omat24", path=str(path))


def _lmdb_live_page(data: bytes, psize: int) -> int:
    """Byte offset of the main database's root page of the current meta page (the only leaf of a small file;
    older copies of the rows stay behind in freed pages)."""
    txnid = [struct.unpack_from("<Q", data, page * psize + 144)[0] for page in (0, 1)]
    meta = int(txnid[1] > txnid[0]) * psize
    return struct.unpack_from("<Q", data, meta + 128)[0] * psize  # MAIN_DBI md_root


def _lmdb_safe_spans(data: bytes, path: Path) -> list[tuple[int, int]]:
    """Byte ranges whose damage LMDB itself survives: the two meta pages, and every live key and stored value.
    LMDB trusts its page-internal offsets (no checksum), so a flip there can make it read past the mapped file
    (a SIGBUS); that limit is documented in docs/DATASETS.md."""
    import lmdb

    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    psize, depth = env.stat()["psize"], env.stat()["depth"]
    assert depth == 1  # one leaf page holds every row
    leaf = _lmdb_live_page(data, psize)
    spans = [(0, 2 * psize)]
    with env.begin() as txn:
        for key, value in txn.cursor():
            for blob in (key, bytes(value)):
                at = data.find(blob, leaf, leaf + psize)
                assert at >= 0
                spans.append((at, at + len(blob)))
    env.close()
    return spans


def test_aselmdb_fuzz(tmp_path, aselmdb_file):
    """Truncation anywhere, damage to the meta pages, the keys or the stored rows, an empty file or junk: refused
    naming the file, or the rows come back exactly (a flip in unused bytes of a page)."""
    data, ref = aselmdb_file
    (tmp_path / "ref.aselmdb").write_bytes(data)
    spans = _lmdb_safe_spans(data, tmp_path / "ref.aselmdb")
    rng = np.random.default_rng(SEED + 5)
    cases = [Case("empty", b"", None), Case("junk", rng.bytes(3 * 4096), None)]
    for _ in range(20):
        cut = int(rng.integers(1, len(data)))
        cases.append(Case(f"truncate@{cut}", data[:cut], (cut, len(data)), cut))
    for _ in range(100):
        lo, hi = spans[int(rng.integers(0, len(spans)))]
        pos, bit = int(rng.integers(lo, hi)), int(rng.integers(0, 8))
        b = bytearray(data)
        b[pos] ^= 1 << bit
        cases.append(Case(f"flip@{pos}^{1 << bit}", bytes(b), (pos, pos + 1)))
    n_refused = 0
    for k, case in enumerate(cases):
        path = tmp_path / f"c{k}" / "cu.aselmdb"
        path.parent.mkdir()
        path.write_bytes(case.data)
        got = load_or_error(lambda path=path: load_dataset("omat24", path=str(path)), [str(path)], str(case))
        n_refused += got is None
        if got is not None:
            # no way to tell which row a flipped byte belonged to: each returned row is either exact or refused
            assert len(got) == len(ref), f"{case}: {len(got)} rows for {len(ref)}"
            for s in got:
                assert_sane(s, str(case))
            assert sum(not same_sample(a, b) for a, b in zip(got, ref, strict=True)) == 0, str(case)
    assert n_refused > 25


def test_aselmdb_truncated_file_is_refused_not_a_crash(tmp_path, aselmdb_file):
    """A cut .aselmdb used to crash the process (SIGBUS reading a page past the end of the mapped file) or read
    as an empty database; it is refused naming the file. Run in a child process so a crash fails cleanly."""
    import subprocess
    import sys

    data, _ = aselmdb_file
    for cut in (len(data) - 4096, len(data) - 100):
        path = tmp_path / f"cut{cut}.aselmdb"
        path.write_bytes(data[:cut])
        code = (
            "import sys\nfrom precompute.datasets import DatasetError, load_dataset\n"
            f"try:\n    print(len(load_dataset('omat24', path={str(path)!r})))\n"
            "except DatasetError as e:\n    print('DatasetError', e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"cut at {cut}: the reader crashed (rc {out.returncode})"
        assert out.stdout.startswith("DatasetError") and path.name in out.stdout and "truncated" in out.stdout


def test_aselmdb_damaged_meta_page_or_index_is_refused(tmp_path, aselmdb_file):
    """A flipped transaction id makes LMDB open the older meta page (an empty database here), a flipped "nextid"
    key lists no row ids: both used to return 0 rows without an error."""
    data, _ = aselmdb_file
    b = bytearray(data)
    b[144] ^= 8  # mm_txnid of meta page 0
    (tmp_path / "meta.aselmdb").write_bytes(bytes(b))
    with pytest.raises(DatasetError, match="meta.aselmdb.*meta pages"):
        load_dataset("omat24", path=str(tmp_path / "meta.aselmdb"))
    leaf = _lmdb_live_page(data, 4096)
    at = data.find(b"nextid", leaf, leaf + 4096)
    assert at > 0
    (tmp_path / "index.aselmdb").write_bytes(data[:at] + b"nextie" + data[at + 6 :])
    with pytest.raises(DatasetError, match="index.aselmdb.*corrupt .aselmdb index.*lists 0 row ids"):
        load_dataset("omat24", path=str(tmp_path / "index.aselmdb"))


# ---------------------------------------------------------------------------------------------------- embedding store


@pytest.fixture(scope="module")
def store_entry(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    from precompute.extract.store import DatasetKey, EmbeddingStore

    root = tmp_path_factory.mktemp("store")
    ids = [f"toy:{i:04d}" for i in range(10)]
    st = EmbeddingStore(root)
    with st.open_run(DatasetKey("toy", 10, 0), "m1", ids, chunk_size=4) as run:
        for i in run.pending_chunks():
            chunk = [s for s in run.chunk_ids(i) if s != "toy:0003"]
            emb = np.array([[int(s[-4:]) + 0.25 * j for j in range(4)] for s in chunk], dtype=np.float32)
            fail = {"toy:0003": "cannot embed"} if "toy:0003" in run.chunk_ids(i) else {}
            run.write_chunk(i, chunk, emb, fail, seconds=0.5, energies=-1.5 * np.arange(1, len(chunk) + 1))
        run.finalize({"code_version": "test"})
    folder = root / "toy_n10_seed0"
    return folder, {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _store_read(root: Path) -> Iterator[object]:
    from precompute.extract.store import DatasetKey, EmbeddingStore

    st = EmbeddingStore(root)
    yield st.status(DatasetKey("toy", 10, 0), "m1")
    yield st.read(DatasetKey("toy", 10, 0), "m1")


@pytest.mark.parametrize("target", ["m1.json", "m1.npz"])
def test_store_fuzz(tmp_path, store_entry, target):
    """A damaged .json or .npz: `status` says corrupt/stale (never raises) and `read` raises StoreError naming
    the file, or returns exactly the stored ids, embeddings and energies."""
    from precompute.extract.store import StoreError

    folder, files = store_entry
    ref = list(_store_read(folder.parent))[1]
    rng = np.random.default_rng(SEED + 6 + (target == "m1.npz"))
    n_refused = 0
    for k, case in enumerate(byte_cases(files[target], rng, 80, text=target.endswith(".json"))):
        case_dir = tmp_path / f"c{k}" / folder.name
        case_dir.mkdir(parents=True)
        for name, content in files.items():
            (case_dir / name).write_bytes(case.data if name == target else content)
        status_and_read = _store_read(case_dir.parent)
        status = next(status_and_read)
        try:
            emb = next(status_and_read)
        except StoreError as exc:
            assert target in str(exc) or "m1" in str(exc), f"{case}: {exc}"
            assert not status.complete, f"{case}: status says complete but read refuses: {exc}"
            n_refused += 1
            continue
        assert status.complete, f"{case}: read succeeds but status says {status.state}: {status.reason}"
        assert emb.ids == ref.ids and np.array_equal(emb.embeddings, ref.embeddings), str(case)
        assert np.array_equal(emb.energies, ref.energies), str(case)
        assert emb.meta["n_ok"] == len(emb.ids), str(case)
    assert n_refused > 40


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda m: m.pop("n_ok"), "n_ok=None is missing"),
        (lambda m: m.update(n_failed=-1), "n_failed=-1"),
        (lambda m: m.update(failures=["toy:0003"]), "'failures' is missing or not a mapping"),
        (lambda m: m.update(dataset_key="toy"), "malformed dataset_key"),
        (lambda m: m["dataset_key"].update(seed=None), "malformed dataset_key"),
    ],
    ids=["no-n_ok", "negative-n_failed", "failures-list", "dataset_key-str", "dataset_key-seed-None"],
)
def test_store_metadata_without_counts_or_with_a_bad_dataset_key_is_refused(tmp_path, store_entry, edit, match):
    """A removed n_ok used to skip the count check; a non-dict dataset_key raised AttributeError from read()."""
    import json

    from precompute.extract.store import DatasetKey, EmbeddingStore, StoreError

    folder, files = store_entry
    case_dir = tmp_path / folder.name
    case_dir.mkdir()
    for name, content in files.items():
        (case_dir / name).write_bytes(content)
    meta = json.loads(files["m1.json"])
    edit(meta)
    (case_dir / "m1.json").write_text(json.dumps(meta))
    st = EmbeddingStore(tmp_path)
    with pytest.raises(StoreError, match=match):
        st.read(DatasetKey("toy", 10, 0), "m1")
    assert not st.status(DatasetKey("toy", 10, 0), "m1").complete
