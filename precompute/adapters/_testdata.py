"""Small REAL inputs for adapter tests and benchmarks, and the transformations the invariance tests apply.

- `qm9_molecules(n)`: the first n molecules of the seeded QM9 subsample (qm9pack wheel, via precompute.datasets.qm9).
- `crystals()`: five real crystal structures built by ASE from reference lattice constants (Si diamond, NaCl rock
  salt, Cu fcc, Fe bcc, ZnO wurtzite), the Si one as a 2x2x2 supercell.
- `g2_molecule(name, smiles)`: a molecule of ASE's G2 set (real experimental/MP2 geometries), e.g. CH3SH for an
  element outside H, C, N, O.
- `rotated`, `translated`, `with_nan`, `overlapping`: copies of a sample for invariance and malformed-input checks.
- `write_extxyz` / `read_extxyz`: carry samples across environments (the SevenNet test runs in .venv-sevenn).
"""

from __future__ import annotations

import numpy as np

from precompute.datasets.base import Sample


def qm9_molecules(n: int = 5, seed: int = 0) -> list[Sample]:
    from precompute.datasets.qm9 import load_qm9

    return load_qm9(n=n, seed=seed)


def crystals() -> list[Sample]:
    from ase.build import bulk

    structures = {
        "crystal:Si-diamond-2x2x2": bulk("Si", "diamond", a=5.431).repeat((2, 2, 2)),
        "crystal:NaCl-rocksalt": bulk("NaCl", "rocksalt", a=5.640),
        "crystal:Cu-fcc": bulk("Cu", "fcc", a=3.615),
        "crystal:Fe-bcc": bulk("Fe", "bcc", a=2.866),
        "crystal:ZnO-wurtzite": bulk("ZnO", "wurtzite", a=3.250, c=5.207),
    }
    return [Sample(sample_id=k, atoms=v, meta={"source": "ase.build.bulk"}) for k, v in structures.items()]


def g2_molecule(name: str = "CH3SH", smiles: str | None = "CS") -> Sample:
    from ase.build import molecule

    return Sample(sample_id=f"g2:{name}", atoms=molecule(name), smiles=smiles, meta={"source": "ase.collections.g2"})


def random_rotation(seed: int = 0) -> np.ndarray:
    """A proper rotation matrix (det +1) from a seeded QR decomposition."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def rotated(sample: Sample, seed: int = 0) -> Sample:
    """Rotate positions (and the cell of a periodic sample) by a random proper rotation about the origin."""
    rot = random_rotation(seed)
    atoms = sample.atoms.copy()
    atoms.set_positions(atoms.get_positions() @ rot.T)
    if np.asarray(atoms.pbc).any():
        atoms.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    return Sample(sample.sample_id, atoms=atoms, smiles=sample.smiles, labels=sample.labels, meta=sample.meta)


def translated(sample: Sample, shift=(3.7, -11.2, 25.3)) -> Sample:
    atoms = sample.atoms.copy()
    atoms.set_positions(atoms.get_positions() + np.asarray(shift, dtype=np.float64))
    return Sample(sample.sample_id, atoms=atoms, smiles=sample.smiles, labels=sample.labels, meta=sample.meta)


def with_nan(sample: Sample, sample_id: str = "bad:nan") -> Sample:
    atoms = sample.atoms.copy()
    pos = atoms.get_positions()
    pos[0, 1] = np.nan
    atoms.set_positions(pos)
    return Sample(sample_id, atoms=atoms, smiles=sample.smiles)


def overlapping(sample: Sample, sample_id: str = "bad:overlap") -> Sample:
    """Atom 1 moved onto atom 0 (distance 0)."""
    atoms = sample.atoms.copy()
    pos = atoms.get_positions()
    pos[1] = pos[0]
    atoms.set_positions(pos)
    return Sample(sample_id, atoms=atoms, smiles=sample.smiles)


def write_extxyz(path, samples: list[Sample]) -> None:
    """Write samples as extended XYZ; the id (and SMILES) travel in atoms.info."""
    from ase.io import write

    frames = []
    for s in samples:
        a = s.atoms.copy()
        a.info = {"sample_id": s.sample_id}
        if s.smiles:
            a.info["smiles"] = s.smiles
        frames.append(a)
    write(str(path), frames, format="extxyz")


def read_extxyz(path) -> list[Sample]:
    from ase.io import read

    out = []
    for a in read(str(path), index=":", format="extxyz"):
        sid = str(a.info.pop("sample_id"))
        smiles = a.info.pop("smiles", None)
        out.append(Sample(sample_id=sid, atoms=a, smiles=str(smiles) if smiles else None))
    return out
