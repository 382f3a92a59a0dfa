"""`crystals-real`: real, ordered crystal structures shipped by packages, deduplicated by structure matching.

Sources (origin "real"; each sample's licence and source are in its `meta`):

| source | where | what | licence |
|---|---|---|---|
| `cod`   | Debian `libavogadro-data`, `/usr/share/avogadro2/crystals/<class>/*.cif` (not `zeolites/`) | experimental structures from the Crystallography Open Database (some via the AMCSD) | public domain (COD header, `meta["license_statement"]`) |
| `iza`   | same package, `zeolites/*.cif` | IZA-SC zeolite frameworks, DLS76-optimised as pure SiO2 | public domain, citation requested (IZA-SC header) |
| `dcdft` | `ase.collections.dcdft` (ase wheel) | the 71 elemental crystals of the Delta codes-DFT benchmark | ASE: LGPL-2.1-or-later |
| `aflow` | `pymatgen/analysis/prototypes/aflow_prototypes.json.gz` (pymatgen wheel) | 288 AFLOW Library prototypes with their reference lattices | pymatgen: MIT; AFLOW Library (Mehl et al. 2017) |

Rules, in order, per structure (a skipped one is recorded with its id and reason in `skipped=` and in the cache):
1. parse: CIFs with pymatgen `CifParser(...).parse_structures(primitive=False, on_error="raise")` (the cell as
   written in the file, symmetry expanded); a CIF that does not parse is skipped (`unreadable: ...`);
2. partial occupancy (`not Structure.is_ordered`) is skipped (`disordered: ...`);
3. more than `max_atoms` atoms in that cell (default 200) is skipped (`too large: ...`);
4. two sites closer than 0.5 A (overlapping sites, i.e. disorder written with full occupancies) is skipped;
5. deduplication: structures (as plain elements: oxidation states and site labels of the CIF dropped) are bucketed by (reduced formula, number of sites of the primitive cell) and, within a
   bucket, compared with pymatgen `StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5, primitive_cell=False,
   scale=True)` on their primitive cells (`get_primitive_structure()`), so a match ignores the cell setting and the
   volume (the same structure type measured at another temperature is a duplicate). Sources are visited in the
   order cod, iza, dcdft, aflow and ids in sorted order; the first of a match group is kept, the others are skipped
   as `duplicate of <id>`.

Ids: `crystals-real:<source>:<name>`: `cod:<class>/<file stem>`, `iza:<framework code>`, `dcdft:<element>`,
`aflow:<AFLOW label>` (a repeated label gets `~2`, `~3` in file order). `atoms` is the cell as read (positions in A,
pbc), no labels (these are structures without energies). Sampling: a `np.random.default_rng(seed).permutation` of
the kept structures sorted by id; `n=None` gives them all in id order.

Parsing and matching take about 30 s; the result is cached as one JSON file in
`<cache root>/real/crystals-real-<key>.json` (root: `path=`, else $MATTER_ALIGN_CACHE, else ~/.cache/matter-align),
keyed by the input files (names and sizes), the package versions and the settings, so a later load takes a second.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import re
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from precompute.datasets.base import DatasetError, Sample

RULES_VERSION = 2
AVOGADRO_DIR = "/usr/share/avogadro2/crystals"
SOURCES = ("cod", "iza", "dcdft", "aflow")
DEFAULTS: dict[str, Any] = {
    "max_atoms": 200,
    "min_distance_A": 0.5,
    "matcher": {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0, "scale": True},
}
LICENSES = {
    "cod": "public domain (Crystallography Open Database)",
    "iza": "public domain (IZA-SC Database of Zeolite Structures; citation requested)",
    "dcdft": "ASE, LGPL-2.1-or-later",
    "aflow": "pymatgen, MIT (AFLOW Library of Crystallographic Prototypes)",
}
CITATIONS = {
    "cod": "Grazulis et al., Crystallography Open Database, J. Appl. Cryst. 42, 726-729 (2009)",
    "iza": "Baerlocher and McCusker, Database of Zeolite Structures, http://www.iza-structure.org/databases/",
    "dcdft": "Lejaeghere et al., Reproducibility in density functional theory calculations of solids, "
    "Science 351, aad3000 (2016)",
    "aflow": "Mehl et al., The AFLOW Library of Crystallographic Prototypes: Part 1, Comput. Mater. Sci. 136, "
    "S1-S828 (2017)",
}


# ---------------------------------------------------------------- reading the sources


def _cif_files(source: str) -> list[Path]:
    root = Path(AVOGADRO_DIR)
    files = sorted(root.glob("**/*.cif"))
    return [f for f in files if (f.parent.name == "zeolites") == (source == "iza")]


def _header_license(text: str) -> str:
    """The file's own licence sentence where it has one (COD and IZA headers say 'placed in the public domain')."""
    m = re.search(r"#[^\n]*placed in the public domain[^\n]*(?:\n#[^\n]*contributors\.)?", text)
    if not m:
        return "no licence statement in the file (libavogadro-data README: public domain, from COD/IZA)"
    return " ".join(line.lstrip("# ").strip() for line in m.group(0).splitlines())


def _cif_entries(source: str, skipped: dict[str, str]) -> list[tuple[str, Any, dict[str, Any]]]:
    from pymatgen.io.cif import CifParser

    out = []
    for f in _cif_files(source):
        rel = f.relative_to(AVOGADRO_DIR).with_suffix("").as_posix()
        name = f.stem if source == "iza" else rel
        sid = f"crystals-real:{source}:" + re.sub(r"\s+", "_", name)
        text = f.read_text(errors="replace")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = CifParser(str(f)).parse_structures(primitive=False, on_error="raise")[0]
        except Exception as exc:
            msg = " ".join(str(exc).split())[:160]
            skipped[sid] = f"unreadable: {type(exc).__name__}: {msg} ({f})"
            continue
        meta: dict[str, Any] = {"source": source, "file": str(f), "license_statement": _header_license(text)}
        if m := re.search(r"_cod_database_code\s+(\d+)", text) or re.search(r"cod/cif/\S*?(\d{7})\.cif", text):
            meta["cod_id"] = m.group(1)
        if m := re.search(r"_database_code_amcsd\s+(\d+)", text):
            meta["amcsd_id"] = m.group(1)
        if m := re.search(r"_chemical_name_mineral\s+'?([^'\n]+)'?", text):
            meta["mineral"] = m.group(1).strip()
        out.append((sid, structure, meta))
    return out


def _dcdft_entries() -> list[tuple[str, Any, dict[str, Any]]]:
    from ase.collections import dcdft
    from pymatgen.io.ase import AseAtomsAdaptor

    out = []
    for name in sorted(dcdft.names):
        atoms = dcdft[name]
        meta = {"source": "dcdft", "file": "ase/collections/dcdft.json", "license_statement": LICENSES["dcdft"]}
        out.append((f"crystals-real:dcdft:{name}", AseAtomsAdaptor.get_structure(atoms), meta))
    return out


def _aflow_entries() -> list[tuple[str, Any, dict[str, Any]]]:
    import pymatgen.analysis.prototypes as protos
    from pymatgen.core import Structure

    path = Path(protos.__file__).parent / "aflow_prototypes.json.gz"
    with gzip.open(path, "rt") as fh:
        entries = json.load(fh)
    out, seen = [], {}
    for e in entries:
        tags = e.get("tags") or {}
        snl = {k: v for k, v in e["snl"].items() if k not in ("about", "@module", "@class")}
        structure = Structure.from_dict(snl)
        label = str(tags.get("aflow") or structure.composition.reduced_formula)
        seen[label] = seen.get(label, 0) + 1
        name = label if seen[label] == 1 else f"{label}~{seen[label]}"
        meta = {"source": "aflow", "file": str(path), "license_statement": LICENSES["aflow"]}
        meta.update({k: str(v) for k, v in tags.items() if v and k in ("pearson", "strukturbericht", "mineral")})
        meta["aflow_label"] = label
        out.append((f"crystals-real:aflow:{name}", structure, meta))
    return out


# ---------------------------------------------------------------- filtering and deduplication


def _min_distance(structure: Any) -> float:
    if len(structure) < 2:
        return float("inf")
    d = structure.distance_matrix
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def build(sources: tuple[str, ...] = SOURCES, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parse, filter and deduplicate the sources (rules in the module docstring) -> the cache payload:
    {"samples": [{sample_id, numbers, positions, cell, meta}], "skipped": {id: reason}, "counts": {...}}."""
    with warnings.catch_warnings():  # pymatgen warns per noble gas (no electronegativity) and per odd CIF line
        warnings.simplefilter("ignore")
        return _build(sources, settings)


def _build(sources: tuple[str, ...], settings: dict[str, Any] | None) -> dict[str, Any]:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    cfg = {**DEFAULTS, **(settings or {})}
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise DatasetError(f"crystals-real: unknown sources {sorted(unknown)}; known: {', '.join(SOURCES)}")
    if {"cod", "iza"} & set(sources) and not Path(AVOGADRO_DIR).is_dir():
        raise DatasetError(
            f"crystals-real: {AVOGADRO_DIR} not found; install the Debian package libavogadro-data "
            "(apt-get install libavogadro-data) or pass sources without cod/iza"
        )
    t0 = time.perf_counter()
    skipped: dict[str, str] = {}
    read: dict[str, int] = {}
    entries: list[tuple[str, Any, dict[str, Any]]] = []
    for src in SOURCES:  # fixed priority order, whatever order `sources` was given in
        if src not in sources:
            continue
        before = len(skipped)
        got = (
            _cif_entries(src, skipped)
            if src in ("cod", "iza")
            else _dcdft_entries()
            if src == "dcdft"
            else _aflow_entries()
        )
        read[src] = len(got) + len(skipped) - before
        entries.extend(sorted(got, key=lambda t: t[0]))

    matcher = StructureMatcher(primitive_cell=False, attempt_supercell=False, **cfg["matcher"])
    kept: list[dict[str, Any]] = []
    buckets: dict[tuple[str, int], list[tuple[str, Any]]] = {}
    for sid, s, meta in entries:
        if not s.is_ordered:
            skipped[sid] = f"disordered: partial occupancy ({s.composition.formula})"
            continue
        if len(s) > cfg["max_atoms"]:
            skipped[sid] = f"too large: {len(s)} atoms in the cell > max_atoms {cfg['max_atoms']}"
            continue
        dmin = _min_distance(s)
        if dmin < cfg["min_distance_A"]:
            skipped[sid] = f"overlapping sites: two atoms {dmin:.3f} A apart (< {cfg['min_distance_A']} A)"
            continue
        # plain elements, no site labels or properties: CIF oxidation states (Al3+) would make the matcher see
        # different species in the same structure
        s = Structure(s.lattice, [site.specie.symbol for site in s], s.frac_coords)
        prim = s.get_primitive_structure()
        # Niggli-reduce once here and skip the matcher's own (identical) reduction: its cache compares structures
        # of one formula by equality, which made the ~200 SiO2 frameworks cost minutes
        red = prim.get_reduced_structure()
        key = (s.composition.reduced_formula, len(prim))
        dup = next(
            (kid for kid, kp in buckets.get(key, []) if matcher.fit(kp, red, skip_structure_reduction=True)), None
        )
        if dup is not None:
            skipped[sid] = f"duplicate of {dup}"
            continue
        buckets.setdefault(key, []).append((sid, red))
        try:
            sg = SpacegroupAnalyzer(s, symprec=0.1).get_space_group_number()
        except Exception:  # spglib gives up on a few distorted cells; the space group is provenance only
            sg = None
        meta = {**meta, "license": LICENSES[meta["source"]], "citation": CITATIONS[meta["source"]],
                "formula": s.composition.reduced_formula, "spacegroup": sg, "n_atoms": len(s),
                "n_atoms_primitive": len(prim)}  # fmt: skip
        kept.append({
            "sample_id": sid,
            "numbers": [int(z) for z in s.atomic_numbers],
            "positions": s.cart_coords.tolist(),
            "cell": s.lattice.matrix.tolist(),
            "meta": meta,
        })  # fmt: skip
    kept.sort(key=lambda r: r["sample_id"])
    n_dup = sum(1 for r in skipped.values() if r.startswith("duplicate of"))
    counts = {"read": read, "entries": sum(read.values()), "kept": len(kept), "duplicates": n_dup,
              "skipped_other": len(skipped) - n_dup, "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    return {"samples": kept, "skipped": dict(sorted(skipped.items())), "counts": counts}


# ---------------------------------------------------------------- cache and loader


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cache_key(sources: tuple[str, ...], settings: dict[str, Any]) -> str:
    """sha256 (first 12 hex) of the input file names and sizes, package versions, settings and rules version."""
    h = hashlib.sha256()
    h.update(json.dumps([RULES_VERSION, sorted(sources), settings], sort_keys=True).encode())
    for f in sorted(glob.glob(f"{AVOGADRO_DIR}/**/*.cif", recursive=True)) if {"cod", "iza"} & set(sources) else []:
        h.update(f"{os.path.relpath(f, AVOGADRO_DIR)}|{os.path.getsize(f)};".encode())
    for pkg in ("pymatgen", "pymatgen-core", "ase"):  # the Debian CIFs enter by name and size above
        h.update(f"{pkg}={_version(pkg)};".encode())
    return h.hexdigest()[:12]


def load_payload(sources: tuple[str, ...] = SOURCES, path: str | os.PathLike | None = None, **settings: Any) -> dict:
    """The built set (see `build`), from the cache when its key matches, else built and cached atomically."""
    from precompute.datasets.generated import _atomic_write, _locked, cache_root

    cfg = {**DEFAULTS, **settings}
    folder = cache_root(path) / "real"
    target = folder / f"crystals-real-{cache_key(tuple(sources), cfg)}.json"
    with _locked(folder):
        if target.is_file():
            try:
                return json.loads(target.read_text())
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{target}: unreadable crystals-real cache ({exc}); delete it to rebuild") from None
        payload = build(tuple(sources), cfg)
        payload["provenance"] = {"settings": cfg, "sources": list(sources), "rules_version": RULES_VERSION,
                                 "versions": {p: _version(p) for p in ("pymatgen-core", "pymatgen", "ase")}}  # fmt: skip
        _atomic_write(target, lambda p: p.write_text(json.dumps(payload)))
        return payload


def _to_sample(row: dict[str, Any]) -> Sample:
    from ase import Atoms

    pos = np.asarray(row["positions"], dtype=np.float64)
    cell = np.asarray(row["cell"], dtype=np.float64)
    if not len(pos) or not np.isfinite(pos).all() or not np.isfinite(cell).all() or abs(np.linalg.det(cell)) < 1e-6:
        raise DatasetError(f"{row['sample_id']}: empty structure, non-finite coordinates or a degenerate cell")
    atoms = Atoms(numbers=row["numbers"], positions=pos, cell=cell, pbc=True)
    return Sample(row["sample_id"], atoms=atoms, meta=dict(row["meta"]))


def load_crystals_real(
    n: int | None = None,
    seed: int = 0,
    path: str | os.PathLike | None = None,
    sources: list[str] | tuple[str, ...] = SOURCES,
    skipped: dict[str, str] | None = None,
    **settings: Any,
) -> list[Sample]:
    """`n` kept structures (all if None, in id order), a seeded permutation prefix otherwise.

    sources: a subset of SOURCES; skipped: a dict that receives {id: reason} for every structure not returned;
    settings: `max_atoms`, `min_distance_A`, `matcher` overrides (they change the cache key)."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise DatasetError(f"crystals-real: unknown options {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
    payload = load_payload(tuple(sources), path, **settings)
    if skipped is not None:
        skipped.update(payload["skipped"])
    rows = payload["samples"]
    if n is not None:
        if n < 0:
            raise DatasetError(f"crystals-real: n must be >= 0, got {n}")
        if n > len(rows):
            raise DatasetError(f"crystals-real: n={n} > the {len(rows)} structures kept")
        rows = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))[:n]]
    return [_to_sample(r) for r in rows]
