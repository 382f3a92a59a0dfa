"""The `sample_structures` table: every analysed sample in a format a user can embed exactly, in release order.

Per sample: one extended-XYZ frame written by ASE (positions in Å, cell and pbc for crystals, `sample_id` in the
frame's comment line), the SMILES and SELFIES for molecules (SELFIES with the `selfies` package, as ChemGPT reads
them), the one-letter sequence for protein chains. backend.scoring.samples_file turns the table into .extxyz,
.csv or .fasta downloads; the table is checksummed like every other.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pandas as pd


def _extxyz(atoms, sample_id: str) -> str:
    import ase.io

    a = atoms.copy()
    a.info = {"sample_id": sample_id}  # only the id: labels stay out of the file a model reads
    a.arrays = {k: v for k, v in a.arrays.items() if k in ("numbers", "positions")}
    a.calc = None
    buf = io.StringIO()
    ase.io.write(buf, a, format="extxyz")
    return buf.getvalue()


def _selfies(smiles: str | None) -> str | None:
    if not smiles:
        return None
    import selfies

    try:
        return selfies.encoder(smiles)
    except selfies.EncoderError:  # a SMILES SELFIES cannot express: no value, never a guess
        return None


def sample_structures_table(dataset_id: str, samples: Sequence) -> pd.DataFrame:
    """One row per analysed sample (position = row in every embedding matrix)."""
    rows = []
    for pos, s in enumerate(samples):
        rows.append({
            "dataset_id": dataset_id,
            "position": pos,
            "sample_id": s.sample_id,
            "extxyz": _extxyz(s.atoms, s.sample_id) if s.atoms is not None else None,
            "smiles": s.smiles,
            "selfies": _selfies(s.smiles),
            "sequence": s.sequence,
        })  # fmt: skip
    return pd.DataFrame(rows)
