"""Descriptor baselines (source: descriptor): no learned weights, a fixed function of the input.

- MorganAdapter: RDKit Morgan (ECFP-like) bit fingerprint of the SMILES, as float32 0/1.
  Options: {radius: 2, n_bits: 2048}.
- CoulombSpectrumAdapter: eigenvalues of the Coulomb matrix (Rupp et al., PRL 108, 058301, 2012) in atomic units,
  C_ii = 0.5 Z_i^2.4, C_ij = Z_i Z_j / |R_i - R_j| (distances in bohr), sorted by decreasing absolute value and
  zero-padded to `size` (e.g. 29 for QM9, the largest molecule). Options: {size: 29}. Molecules only; a periodic
  sample or a molecule with more than `size` atoms goes to failures.
- SOAPAdapter: dscribe SOAP power spectrum averaged over atoms. Options: {species: [...] (null: H, C, N, O, F), r_cut: 5.0,
  n_max: 6, l_max: 4, sigma: 0.5, average: "outer"}. "outer" = the mean of the per-atom power spectra (the
  "averaged over atoms" descriptor); "inner" = the power spectrum of the atom-averaged expansion coefficients.
  Periodic samples use a periodic SOAP. A sample with an element outside `species` goes to failures.

All three are invariant to rotations, translations and atom permutations by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from precompute.adapters._structure import check_structure, stack
from precompute.adapters.base import EmbedResult
from precompute.datasets.base import DatasetError, Sample

BOHR_PER_ANGSTROM = 1.0 / 0.529177210903
# SOAP species when the card gives none (null): QM9's elements. Fixed, so every chunk of a run has the same columns.
DEFAULT_SOAP_SPECIES = ("H", "C", "N", "O", "F")


def _unique_ids(samples: list[Sample]) -> None:
    seen: set[str] = set()
    for s in samples:
        if s.sample_id in seen:
            raise DatasetError(f"{s.sample_id}: duplicate sample id in one embed() call")
        seen.add(s.sample_id)


class MorganAdapter:
    """RDKit Morgan bit fingerprint (radius 2, 2048 bits by default) of each sample's SMILES."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        from rdkit.Chem import rdFingerprintGenerator

        self.card = card
        opts = card.get("options") or {}
        self.radius = int(opts.get("radius", 2))
        self.n_bits = int(opts.get("n_bits", 2048))
        self.embedding_dim = self.n_bits
        self._gen = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.n_bits)

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        from rdkit import Chem, RDLogger

        _unique_ids(samples)
        RDLogger.DisableLog("rdApp.*")
        try:
            ids, rows, failures = [], [], {}
            for s in samples:
                if not s.smiles:
                    failures[s.sample_id] = "Morgan fingerprint needs a SMILES; sample has none"
                    continue
                mol = Chem.MolFromSmiles(s.smiles)
                if mol is None:
                    failures[s.sample_id] = f"RDKit cannot parse SMILES {s.smiles!r}"
                    continue
                rows.append(self._gen.GetFingerprintAsNumPy(mol).astype(np.float32))
                ids.append(s.sample_id)
        finally:
            RDLogger.EnableLog("rdApp.*")
        return EmbedResult(ids=ids, embeddings=stack(rows, self.n_bits), failures=failures)


def coulomb_spectrum(numbers: np.ndarray, positions_angstrom: np.ndarray, size: int) -> np.ndarray:
    """Sorted (|eigenvalue| descending) Coulomb-matrix eigenvalues in hartree-like atomic units, zero-padded."""
    z = np.asarray(numbers, dtype=np.float64)
    r = np.asarray(positions_angstrom, dtype=np.float64) * BOHR_PER_ANGSTROM
    d = np.linalg.norm(r[:, None, :] - r[None, :, :], axis=-1)
    np.fill_diagonal(d, 1.0)
    c = np.outer(z, z) / d
    np.fill_diagonal(c, 0.5 * z**2.4)
    ev = np.linalg.eigvalsh(c)
    ev = ev[np.argsort(-np.abs(ev), kind="stable")]
    out = np.zeros(size, dtype=np.float64)
    out[: len(ev)] = ev
    return out


class CoulombSpectrumAdapter:
    """Sorted eigenvalues of the Coulomb matrix, padded to a fixed size (card option `size`)."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        self.card = card
        opts = card.get("options") or {}
        if "size" not in opts:
            raise ValueError("CoulombSpectrumAdapter needs options.size (the padded length, e.g. 29 for QM9)")
        self.size = int(opts["size"])
        self.embedding_dim = self.size

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        _unique_ids(samples)
        ids, rows, failures = [], [], {}
        for s in samples:
            atoms = check_structure(s)
            if np.asarray(atoms.pbc).any():
                failures[s.sample_id] = (
                    "Coulomb-matrix spectrum is defined here for molecules only (sample is periodic)"
                )
                continue
            if len(atoms) > self.size:
                failures[s.sample_id] = f"{len(atoms)} atoms exceed the padded size {self.size}"
                continue
            rows.append(coulomb_spectrum(atoms.numbers, atoms.get_positions(), self.size))
            ids.append(s.sample_id)
        return EmbedResult(ids=ids, embeddings=stack(rows, self.size), failures=failures)


class SOAPAdapter:
    """dscribe SOAP averaged over atoms (species, r_cut, n_max, l_max, sigma from the card options)."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        from dscribe.descriptors import SOAP

        self.card = card
        opts = card.get("options") or {}
        species = opts.get("species") or DEFAULT_SOAP_SPECIES
        self.species = [str(x) for x in species]
        params = {
            "species": self.species,
            "r_cut": float(opts.get("r_cut", 5.0)),
            "n_max": int(opts.get("n_max", 6)),
            "l_max": int(opts.get("l_max", 4)),
            "sigma": float(opts.get("sigma", 0.5)),
            "average": str(opts.get("average", "outer")),
            "sparse": False,
        }
        self._soap = {pbc: SOAP(periodic=pbc, **params) for pbc in (False, True)}
        self.embedding_dim = int(self._soap[False].get_number_of_features())

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        _unique_ids(samples)
        known = set(self.species)
        ids, todo, failures = [], [], {}
        for s in samples:
            atoms = check_structure(s)
            outside = sorted(set(atoms.get_chemical_symbols()) - known)
            if outside:
                failures[s.sample_id] = f"SOAP species {self.species} do not include {', '.join(outside)}"
                continue
            ids.append(s.sample_id)
            todo.append(atoms)
        rows: list[np.ndarray] = []
        for atoms in todo:  # dscribe's own loop over systems; one call per sample keeps memory flat
            soap = self._soap[bool(np.asarray(atoms.pbc).any())]
            rows.append(np.asarray(soap.create(atoms, n_jobs=1), dtype=np.float64).reshape(-1))
        return EmbedResult(ids=ids, embeddings=stack(rows, self.embedding_dim), failures=failures)
