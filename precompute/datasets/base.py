"""The one sample record every dataset loader yields.

Every loader (QM9, OMat24/sAlex/OMol25 .aselmdb, PDB/mmCIF, generated sets) returns `Sample`s, so adapters
never care where a structure came from. Units are explicit in the label names' `Label.unit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ase is a dependency of the extraction environments, not of backend/app
    from ase import Atoms


@dataclass(frozen=True)
class Label:
    """A scalar label with its unit, e.g. Label(-40.47, "hartree")."""

    value: float
    unit: str


@dataclass
class Sample:
    """One input to a model.

    sample_id: stable id within its dataset (e.g. "qm9:000001", "pdb:1ubq:A").
    atoms: ASE Atoms (positions in Å) where the sample has a structure.
    smiles: canonical SMILES where there is one.
    sequence: one-letter amino-acid sequence for protein chains.
    labels: named scalar labels with units (e.g. {"energy_U0": Label(-40.47, "hartree")}).
    meta: free-form provenance (source file, chain id, recipe step, charge, spin, ...).
    """

    sample_id: str
    atoms: Atoms | None = None
    smiles: str | None = None
    sequence: str | None = None
    labels: dict[str, Label] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class DatasetError(ValueError):
    """Bad input data; the message names the sample (id or file) and the problem."""
