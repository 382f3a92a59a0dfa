"""Build the offline protein set: every real PDB chain that ships offline and parses.

Sources: the `mdanalysistests` sdist from PyPI (its data/*.pdb[.gz] files: the 52 single-chain DSSP structures and
other test proteins; LGPLv3+) and, when installed, Debian `pymol-data` demo/tutorial files. A file that does not
parse, or holds no protein chain, is moved aside and listed with its reason in `rejected.tsv`: nothing is dropped
silently. Usage:

    python -m precompute.datasets.offline_pdb --out work-cache/pdb/offline [--sdist PATH]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PYMOL_DIRS = ("/usr/share/pymol/data/demo", "/usr/share/pymol/data/tut")
SUFFIXES = (".pdb", ".pdb.gz", ".ent.gz")


def fetch_sdist(dest: Path) -> Path:
    """`pip download --no-deps mdanalysistests` (a PyPI package; no other network access)."""
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob("mdanalysistests-*.tar.gz"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "mdanalysistests", "-d", str(dest)],
                       check=True)  # fmt: skip
        found = sorted(dest.glob("mdanalysistests-*.tar.gz"))
    return found[-1]


def build(out: Path, sdist: Path) -> tuple[int, list[tuple[str, str]]]:
    from precompute.datasets import load_dataset

    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile() and "/data/" in m.name and m.name.lower().endswith(SUFFIXES):
                (out / Path(m.name).name).write_bytes(tar.extractfile(m).read())  # type: ignore[union-attr]
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
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"{out} exists; remove it to rebuild")
        return 0
    sdist = Path(args.sdist) if args.sdist else fetch_sdist(Path("work-cache/src"))
    n, rejected = build(out, sdist)
    print(f"{n} protein chains in {out}; {len(rejected)} files rejected (see {out.name}-rejected.tsv)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
