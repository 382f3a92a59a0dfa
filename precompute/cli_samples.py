"""`matter-align samples`: write a release dataset's samples, in release order, for embedding with your own model.

    matter-align samples --release latest --dataset qm9 --format extxyz --out qm9.extxyz
    matter-align samples --dataset pdb --format fasta --out chains.fasta

Formats: extxyz (structures; `sample_id` in each frame's comment line), csv (id + SMILES + SELFIES, or the sample
list), fasta (protein chains). Then `matter-align score` (docs/SCORING.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "write a release dataset's samples (extxyz / csv / fasta) to embed with your own model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--release", default="latest", help="release folder, a release id, or 'latest'")
    p.add_argument("--dataset", required=True)
    p.add_argument("--format", required=True, choices=["extxyz", "csv", "fasta"])
    p.add_argument("--out", required=True, help="file to write (written atomically)")


def run(args: argparse.Namespace) -> int:
    from backend import Release
    from backend.scoring import samples_file
    from precompute.cli_score import resolve_release

    try:
        release = Release.open(resolve_release(args.release))
        data = samples_file(release, args.dataset, args.format)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    print(f"{out}: {args.dataset} samples of release {release.release_id} as {args.format} ({len(data):,} bytes)")
    return 0
