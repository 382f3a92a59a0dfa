"""Protein chains from a folder of PDB or mmCIF files (RCSB downloads, PISCES culls, or the offline set).

One Sample per protein chain of the first model: `sequence` (one-letter, from the residues that have coordinates),
`atoms` (heavy atoms of those residues, Å, no pbc), `meta["structure_path"]` (absolute file path), `meta["chain_id"]`,
`meta["source"]`. Why per chain: sequence models (ESM2) and structure models (ProteinMPNN) then see the same
residues, so their embeddings are paired sample by sample.

Rules, stated once:
- residues: standard amino acids from ATOM records; modified amino acids (HETATM such as MSE) are kept with their
  parent's one-letter code where Biopython knows it, else "X", and listed in `meta["nonstandard_residues"]`; waters,
  ligands and nucleotides are ignored;
- a chain with a blank id (ASTRAL/SCOP files) becomes "A" (`meta["original_chain_id"]` keeps the blank);
- chains with no amino-acid residue (water, ligand or DNA chains) are skipped and reported in `skipped`;
- a file that cannot be parsed, or has no atoms at all, raises DatasetError naming the file.

Subsampling: files are sorted, then (for n given) visited in `default_rng(seed).permutation` order and parsed until n
chains are collected, so the same (n, seed) gives the same ids in the same order and a smaller n is a prefix. Only
as many files as needed are parsed.

Offline set: `load_dataset("pdb")` without a path reads `$MATTER_ALIGN_PDB_DIR` (e.g. the 52 single-chain DSSP
structures of the mdanalysistests sdist, see `extract_mdanalysis_dssp`), else the Debian pymol-data / theseus-examples
folders when installed.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from precompute.datasets.base import DatasetError, Sample

PDB_SUFFIXES = (".pdb", ".ent", ".pdb.gz", ".ent.gz")
CIF_SUFFIXES = (".cif", ".mmcif", ".cif.gz", ".mmcif.gz")
ENV_VAR = "MATTER_ALIGN_PDB_DIR"
# Debian folders with real protein structures (pymol-data, theseus-examples); used only when they exist.
DEBIAN_DIRS = ("/usr/share/pymol/data/demo", "/usr/share/pymol/data/tut", "/usr/share/doc/theseus/examples")
_PDB_ID = re.compile(r"^(?:pdb)?([0-9][a-z0-9]{3})", re.IGNORECASE)


def _is_structure_file(p: Path) -> bool:
    name = p.name.lower()
    return p.is_file() and name.endswith(PDB_SUFFIXES + CIF_SUFFIXES)


def find_structure_files(path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """PDB/mmCIF files (optionally gzipped) of a file, a folder (recursive) or a list of them, sorted."""
    items = [path] if isinstance(path, str | os.PathLike) else list(path)
    files: set[Path] = set()
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            files.update(f.resolve() for f in p.rglob("*") if _is_structure_file(f))
        elif p.is_file():
            files.add(p.resolve())
        else:
            raise DatasetError(f"{item}: no such PDB/mmCIF file or folder")
    if not files:
        raise DatasetError(f"{path}: no PDB or mmCIF files found (suffixes {PDB_SUFFIXES + CIF_SUFFIXES})")
    return sorted(files)


def default_pdb_dirs() -> list[Path]:
    """The offline PDB set: $MATTER_ALIGN_PDB_DIR if set, else the Debian pymol/theseus folders that exist."""
    env = os.environ.get(ENV_VAR)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path(d) for d in DEBIAN_DIRS if Path(d).is_dir()]


def _stem(p: Path) -> str:
    name = p.name
    for suf in sorted(PDB_SUFFIXES + CIF_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return p.stem


def pdb_id_of(path: Path) -> str | None:
    """The 4-character PDB id a file name starts with ("1ubq.pdb", "pdb1ubq.ent.gz", "1ahsA.pdb.gz"), else None."""
    m = _PDB_ID.match(_stem(path))
    return m.group(1).lower() if m else None


def _parse(path: Path) -> Any:
    from Bio.PDB import MMCIFParser, PDBParser
    from Bio.PDB.PDBExceptions import PDBConstructionException

    name = path.name.lower()
    is_cif = name.endswith(CIF_SUFFIXES)
    try:
        raw = gzip.open(path, "rt") if name.endswith(".gz") else open(path)  # noqa: SIM115
        with raw as fh:
            text = fh.read()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:  # zlib.error: a damaged .gz stream
        raise DatasetError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    if not is_cif:
        _check_coordinate_columns(text, path)
    parser = MMCIFParser(QUIET=True) if is_cif else PDBParser(QUIET=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = parser.get_structure(_stem(path), io.StringIO(text))
    except (PDBConstructionException, ValueError, KeyError, IndexError) as exc:
        raise DatasetError(
            f"{path}: malformed {'mmCIF' if is_cif else 'PDB'} file ({type(exc).__name__}: {exc})"
        ) from None
    bad_elements = _bad_element_atoms(text, is_cif, path)
    models = list(structure)
    if not models or not any(True for _ in models[0].get_atoms()):
        raise DatasetError(f"{path}: no atoms with coordinates (empty or not a {'mmCIF' if is_cif else 'PDB'} file)")
    model = models[0]
    model.xtra["bad_elements"] = bad_elements
    return model


def _check_coordinate_columns(text: str, path: Path) -> None:
    """An atom record must reach column 54 (the end of z): a file cut inside a coordinate ("  -6.5" of "  -6.504")
    would otherwise give a wrong atom position without an error."""
    for k, line in enumerate(text.splitlines(), 1):
        if line.startswith(("ATOM  ", "HETATM")) and len(line.rstrip()) < 54:
            raise DatasetError(
                f"{path}: line {k}: atom record {line[6:11].strip() or '?'} ends at column {len(line.rstrip())}, "
                "before the end of its coordinates (column 54); truncated or malformed file"
            )


def _check_model_blocks(model_nums: list[str], path: Path) -> None:
    """The atoms of each model form one block. A damaged model number (1 -> 9 on one atom) would otherwise start
    a new model there, and the first model, the one we read, would silently end at that atom."""
    seen: set[str] = set()
    prev = None
    for k, m in enumerate(model_nums):
        if m != prev:
            if m in seen:
                raise DatasetError(
                    f"{path}: the atoms of model {m} are not one block (atom site {k + 1}); damaged model numbers"
                )
            seen.add(m)
            prev = m


def _valid_element(el: str) -> bool:
    from ase.data import chemical_symbols

    return el.capitalize() in chemical_symbols[1:]


def _bad_element_atoms(text: str, is_cif: bool, path: Path) -> dict[str, str]:
    """{chain id: first atom whose element field is blank or not an element}. We never use Biopython's guess
    from the atom name (it turns CA into Ca, CD into Cd): such a chain is a per-sample failure."""
    bad: dict[str, str] = {}
    if is_cif:
        from Bio.PDB.MMCIF2Dict import MMCIF2Dict

        try:
            d = MMCIF2Dict(io.StringIO(text))
        except Exception as exc:
            raise DatasetError(f"{path}: malformed mmCIF file ({type(exc).__name__}: {exc})") from None
        els = d.get("_atom_site.type_symbol") or []
        chains = d.get("_atom_site.auth_asym_id") or d.get("_atom_site.label_asym_id") or [""] * len(els)
        names = d.get("_atom_site.label_atom_id") or [""] * len(els)
        _check_model_blocks(d.get("_atom_site.pdbx_PDB_model_num") or [], path)
        for el, ch, nm in zip(els, chains, names, strict=False):
            if not _valid_element(el.strip()):
                bad.setdefault(ch, f"atom {nm!r} has element {el!r}")
        return bad
    for line in text.splitlines():
        if line.startswith(("ATOM  ", "HETATM")):
            el = line[76:78].strip()
            name = line[12:16]
            if not el and len(name) == 4 and (name[0] == " " or name[0].isdigit()) and name[1] in "CNOSPH":
                # PDB rule: a one-letter element is right-justified in columns 13-14, so " CA " is carbon and
                # "1HB " hydrogen; this is the only case we derive (Biopython applies the same rule here).
                el = name[1]
            if not _valid_element(el):
                bad.setdefault(
                    line[21:22].strip(),
                    f"atom {line[12:16].strip()!r} (serial {line[6:11].strip()}) has element column {line[76:78]!r}",
                )
    return bad


def _one_letter(resname: str) -> tuple[str, bool]:
    """(one-letter code, is_standard)."""
    from Bio.Data.PDBData import protein_letters_3to1, protein_letters_3to1_extended

    name = resname.strip().upper()
    std = protein_letters_3to1.get(name.capitalize()) or protein_letters_3to1.get(name)
    if std:
        return std, True
    ext = protein_letters_3to1_extended.get(name.capitalize()) or protein_letters_3to1_extended.get(name)
    return (ext if ext and len(ext) == 1 else "X"), False


def _chain_samples(path: Path, model: Any, source: str, skipped: dict[str, str]) -> list[Sample]:
    from ase import Atoms
    from Bio.PDB.Polypeptide import is_aa

    stem = _stem(path).lower()
    out: list[Sample] = []
    chain_ids = [c.id for c in model]
    for chain in model:
        original = chain.id
        cid = "A" if original in ("", " ", None) else str(original)
        sid = f"pdb:{stem}:{cid}"
        seq, symbols, coords, nonstd = [], [], [], []
        for res in chain:
            hetflag = res.id[0]
            if hetflag == "W" or not is_aa(res, standard=False):
                continue
            letter, standard = _one_letter(res.get_resname())
            if not standard or hetflag.startswith("H_"):
                nonstd.append(f"{res.get_resname()}{res.id[1]}")
            heavy = [a for a in res if (a.element or "").upper() not in ("H", "D")]
            if not heavy:
                continue
            seq.append(letter)
            for a in heavy:
                el = (a.element or "").strip().capitalize()
                symbols.append(el)
                coords.append(a.coord)
        bad_el = model.xtra.get("bad_elements", {}).get(str(original).strip())
        if seq and bad_el:
            skipped[sid] = f"{path.name} chain {original!r}: {bad_el}; blank or invalid element (not guessed)"
            continue
        xyz = np.asarray(coords, dtype=float)
        if seq and not np.isfinite(xyz).all():
            skipped[sid] = f"{path.name} chain {original!r}: non-finite atom coordinates"
            continue
        if seq and len(xyz) > 1 and not np.abs(xyz).any():
            skipped[sid] = f"{path.name} chain {original!r}: all atoms at the origin"
            continue
        if not seq:
            skipped[f"pdb:{stem}:{original}"] = (
                f"{path.name} chain {original!r}: no amino-acid residues with coordinates"
            )
            continue
        if cid != original and "A" in chain_ids:
            raise DatasetError(f"{path}: a protein chain with a blank id cannot be renamed to 'A' (chain 'A' exists)")
        try:
            atoms = Atoms(symbols=symbols, positions=np.asarray(coords, dtype=float), pbc=False)
        except (KeyError, ValueError) as exc:
            raise DatasetError(f"{sid} ({path}): unknown element in an atom record ({exc})") from None
        meta = {
            "structure_path": str(path),
            "chain_id": cid,
            "source": source,
            "pdb_id": pdb_id_of(path),
            "n_residues": len(seq),
            "nonstandard_residues": nonstd,
        }
        if cid != original:
            meta["original_chain_id"] = original
        out.append(Sample(sample_id=sid, atoms=atoms, sequence="".join(seq), meta=meta))
    return out


def read_pisces(path: str | os.PathLike) -> set[tuple[str, str]]:
    """(pdb id, chain id) pairs of a PISCES list file ("1ABC_A ..." or the older "1ABCA ..." first column)."""
    pairs = set()
    for line in Path(path).read_text().splitlines():
        tok = line.split()[0] if line.strip() else ""
        if not tok or tok.upper().startswith(("IDS", "PDBCHAIN", "#")):
            continue
        if "_" in tok:
            pid, chain = tok.split("_", 1)
        else:
            pid, chain = tok[:4], tok[4:]
        if len(pid) != 4 or not chain:
            raise DatasetError(f"{path}: cannot read PISCES entry {tok!r}")
        pairs.add((pid.lower(), chain))
    return pairs


def load_pdb(
    n: int | None = None,
    seed: int = 0,
    path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    pisces: str | os.PathLike | None = None,
    min_length: int = 1,
    max_length: int | None = None,
    skipped: dict[str, str] | None = None,
    source: str | None = None,
) -> list[Sample]:
    """Load protein chains as Samples (see the module docstring for the rules).

    pisces: optional PISCES list; only chains listed there are kept (matched on PDB id and chain id).
    min_length / max_length: residue-count filter (the paper's PISCES cull used 40-1000).
    skipped: optional dict filled with {sample id: reason} for chains that were not returned.
    """
    if path is None:
        dirs = default_pdb_dirs()
        if not dirs:
            raise DatasetError(
                f"pdb: no path given and no offline set found: set {ENV_VAR} to a folder of PDB files "
                "(e.g. extract_mdanalysis_dssp) or install Debian pymol-data"
            )
        path, source = [str(d) for d in dirs], source or "offline"
    files = find_structure_files(path)
    keep = read_pisces(pisces) if pisces is not None else None
    report = skipped if skipped is not None else {}
    order = np.arange(len(files)) if n is None else np.random.default_rng(seed).permutation(len(files))
    if n is not None and n < 0:
        raise DatasetError(f"pdb: n must be >= 0, got {n}")
    samples: list[Sample] = []
    owner: dict[str, Path] = {}
    for k in order:
        if n is not None and len(samples) >= n:
            break
        f = files[int(k)]
        for s in _chain_samples(f, _parse(f), source or "pdb-folder", report):
            if keep is not None and (s.meta["pdb_id"], s.meta["chain_id"]) not in keep:
                report[s.sample_id] = "not in the PISCES list"
                continue
            length = s.meta["n_residues"]
            if length < min_length or (max_length is not None and length > max_length):
                report[s.sample_id] = f"length {length} outside [{min_length}, {max_length}]"
                continue
            if s.sample_id in owner:
                raise DatasetError(f"{s.sample_id}: duplicate chain id from {owner[s.sample_id]} and {f}")
            owner[s.sample_id] = f
            samples.append(s)
            if n is not None and len(samples) >= n:
                break
    if n is not None and len(samples) < n:
        raise DatasetError(f"pdb: asked for n={n} chains but {path} holds only {len(samples)} usable chains")
    return samples


def extract_mdanalysis_dssp(sdist: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract the single-chain DSSP test structures (MDAnalysisTests/data/dssp/*.pdb.gz) of a downloaded
    `mdanalysistests` sdist (`pip download --no-deps mdanalysistests`) into `dest`; returns the files written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if "/MDAnalysisTests/data/dssp/" in name and name.endswith(".pdb.gz") and member.isfile():
                target = dest / Path(name).name
                with tar.extractfile(member) as src:  # type: ignore[union-attr]
                    target.write_bytes(src.read())
                written.append(target)
    if not written:
        raise DatasetError(f"{sdist}: no MDAnalysisTests/data/dssp/*.pdb.gz members")
    return sorted(written)
