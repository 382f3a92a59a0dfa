"""Generated sets, labelled origin "generated", made once and cached with their recipe and seed.

- `crystals` (OMat24-like, in distribution for MPtrj/OMat24-trained models): real seed structures (Debian
  libavogadro-data CIFs, pymatgen's AFLOW prototypes, `ase.build.bulk` elements), each sample a seed that is strained
  (symmetric strain, entries up to +-5%) and rattled (Gaussian, sigma drawn from 0.05-0.3 A), and for a fraction a
  short Langevin MD at 1000 K or 3000 K with the real pretrained CHGNet 0.3.0 potential (the way OMat24 perturbs
  Alexandria with rattling and AIMD). MD samples carry `energy_chgnet` (eV), a model energy, never a DFT label.
- `offeq-molecules` (OMol25-like stand-in): MOSES SMILES (molsets 0.3.1, MIT) -> RDKit ETKDGv3 conformer + MMFF
  relaxation -> 10 steps of GFN2-xTB Langevin MD at 600 K (tblite) -> the last frame with its GFN2-xTB `energy` (eV).
  If tblite cannot be imported or fails on a molecule, that sample is the MMFF conformer rattled by 0.05 A with its
  MMFF energy as `energy_mmff` (kcal/mol) and `meta["energy_method"]` says so.

Determinism: sample i depends only on (seed, i) (`np.random.default_rng([seed, i])`), never on n or the number of
worker processes, so a smaller n is a prefix of a larger n, and a cache can be extended. Floating-point results of MD
can differ in the last bits across CPUs and thread counts; the recipe records library versions.

Cache: `<cache root>/generated/<dataset>-<recipe hash>/` with `structures.extxyz` (positions, cell, pbc, sample id),
`samples.jsonl` (labels and meta, same order) and `recipe.json` (all parameters, seed, seed-pool fingerprint,
library versions, n generated, timing). Cache root: `path=` argument, else $MATTER_ALIGN_CACHE, else
~/.cache/matter-align. Writes are atomic and locked, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import gzip
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from precompute.datasets.base import DatasetError, Label, Sample

GENERATOR_VERSION = 1
AVOGADRO_DIR = "/usr/share/avogadro2/crystals"
ENV_CACHE = "MATTER_ALIGN_CACHE"
ENV_MOSES = "MATTER_ALIGN_MOSES"

CRYSTAL_RECIPE: dict[str, Any] = {
    "n_default": 3000,
    "sources": ["avogadro", "aflow", "ase-bulk"],
    "max_atoms": 64,
    "max_atomic_number": 94,
    "min_atoms": 8,
    "strain_max": 0.05,
    "sigma_range_A": [0.05, 0.3],
    "min_distance_A": 0.6,
    "md_fraction": 0.2,
    "md_model": "chgnet-0.3.0",
    "md_temperatures_K": [1000, 3000],
    "md_steps": 10,
    "md_timestep_fs": 1.0,
    "md_friction": 0.02,
}
MOLECULE_RECIPE: dict[str, Any] = {
    "n_default": 2000,
    "smiles_source": "MOSES train.csv.gz (molsets 0.3.1)",
    "candidates_per_sample": 4,
    "max_heavy_atoms": 40,
    "conformer": "RDKit ETKDGv3 + MMFF94 (200 iterations)",
    "md_method": "GFN2-xTB",
    "md_temperature_K": 600,
    "md_steps": 10,
    "md_timestep_fs": 1.0,
    "md_friction": 0.02,
    "fallback_rattle_A": 0.05,
    "use_tblite": True,
}


# ---------------------------------------------------------------- cache


def cache_root(path: str | os.PathLike | None = None) -> Path:
    """Root folder of generated-set caches."""
    if path is not None:
        return Path(path).expanduser()
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "matter-align").expanduser()


def recipe_key(recipe: dict[str, Any]) -> str:
    """12-hex id of a recipe (parameters, seed and seed-pool fingerprint; not n, and not the library versions).

    The versions of the libraries that generated a set are provenance (recorded in its recipe.json), not part of its
    identity: every environment must read the same cached set (a model environment without CHGNet or tblite reads
    the set they generated), never generate a different one under the same sample ids."""

    def strip(d: Any) -> Any:
        return {k: strip(v) for k, v in d.items() if k != "versions"} if isinstance(d, dict) else d

    canon = json.dumps(strip(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _read_cache(folder: Path) -> tuple[dict[str, Any] | None, list[Sample]]:
    recipe_path = folder / "recipe.json"
    if not recipe_path.is_file():
        return None, []
    import ase.io

    try:
        state = json.loads(recipe_path.read_text())
        k = int(state["n_generated"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{recipe_path}: unreadable generated-set recipe ({type(exc).__name__}: {exc})") from None
    if k == 0:
        return state, []
    try:
        frames = ase.io.read(folder / "structures.extxyz", index=f":{k}", format="extxyz")
        rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()[:k]]
    except Exception as exc:
        raise DatasetError(f"{folder}: unreadable generated-set cache ({type(exc).__name__}: {exc})") from None
    if len(frames) != k or len(rows) != k:
        raise DatasetError(f"{folder}: cache holds {len(frames)} structures / {len(rows)} rows, recipe says {k}")
    samples = []
    for j, (atoms, row) in enumerate(zip(frames, rows, strict=True)):
        try:
            sid = row["sample_id"]
            labels = {name: Label(float(v), str(u)) for name, (v, u) in row["labels"].items()}
            meta = dict(row["meta"])
            smiles = row.get("smiles")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{folder / 'samples.jsonl'}: malformed row {j + 1} ({type(exc).__name__}: {exc})"
            ) from None
        if atoms.info.get("sample_id") != sid:
            raise DatasetError(f"{folder}: structure/row order mismatch at {sid}")
        where = f"{sid} ({folder / 'structures.extxyz'})"
        if len(atoms) == 0 or not np.isfinite(atoms.positions).all() or (atoms.numbers <= 0).any():
            raise DatasetError(f"{where}: empty structure, non-finite positions or unknown element in the cache")
        if not np.isfinite(atoms.cell.array).all():
            raise DatasetError(f"{where}: non-finite cell in the cache")
        bad = [name for name, lab in labels.items() if not np.isfinite(lab.value)]
        if bad:
            raise DatasetError(f"{sid} ({folder / 'samples.jsonl'}): non-finite label {bad[0]} in the cache")
        atoms.info.pop("sample_id", None)
        atoms.calc = None
        samples.append(Sample(sid, atoms=atoms, smiles=smiles, labels=labels, meta=meta))
    return state, samples


def _write_cache(folder: Path, state: dict[str, Any], samples: list[Sample]) -> None:
    import ase.io

    frames = []
    for s in samples:
        a = s.atoms.copy()
        a.info = {"sample_id": s.sample_id}
        frames.append(a)

    def rows() -> str:
        out = []
        for s in samples:
            labels = {k: [v.value, v.unit] for k, v in s.labels.items()}
            out.append(json.dumps({"sample_id": s.sample_id, "smiles": s.smiles, "labels": labels, "meta": s.meta}))
        return "\n".join(out) + ("\n" if out else "")

    _atomic_write(folder / "structures.extxyz", lambda p: ase.io.write(p, frames, format="extxyz"))
    _atomic_write(folder / "samples.jsonl", lambda p: p.write_text(rows()))
    state = {**state, "n_generated": len(samples)}
    _atomic_write(folder / "recipe.json", lambda p: p.write_text(json.dumps(state, indent=2, sort_keys=True)))


def _generate_cached(
    dataset_id: str,
    recipe: dict[str, Any],
    n: int,
    path: str | os.PathLike | None,
    make: Callable[[list[int]], Iterator[Sample]],
    checkpoint_every: int = 200,
) -> list[Sample]:
    import multiprocessing as mp

    if getattr(mp.current_process(), "_inheriting", False):
        # A spawned worker re-running the caller's script: waiting for the parent's lock would deadlock.
        raise DatasetError(
            f"{dataset_id}: generation with workers > 1 must be started under `if __name__ == '__main__':`"
        )
    folder = cache_root(path) / "generated" / f"{dataset_id}-{recipe_key(recipe)}"
    with _locked(folder):
        state, samples = _read_cache(folder)
        if state is None:
            state = {"dataset_id": dataset_id, "recipe": recipe, "generation_seconds": 0.0, "created": time.time()}
        if len(samples) < n:
            t0 = time.perf_counter()
            todo = list(range(len(samples), n))
            for s in make(todo):
                samples.append(s)
                if len(samples) % checkpoint_every == 0:
                    state["generation_seconds"] += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    _write_cache(folder, state, samples)
            state["generation_seconds"] += time.perf_counter() - t0
            _write_cache(folder, state, samples)
            # return what the cache holds (extxyz rounds positions), so a first and a later call agree exactly
            state, samples = _read_cache(folder)
    out = samples[:n]
    for s in out:
        s.meta["recipe_path"] = str(folder / "recipe.json")
    return out


def _versions(*names: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _run_parallel(
    fn: Callable[[int], Sample], init: Callable[..., None], init_args: tuple, todo: list[int], workers: int
):
    """Yield fn(i) for i in todo, in order, in this process or a spawn pool (model libraries load per worker)."""
    if workers <= 1:
        init(*init_args)
        for i in todo:
            yield fn(i)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init, initargs=init_args) as pool:
            yield from pool.map(fn, todo, chunksize=4)
    except BrokenProcessPool as exc:
        raise DatasetError(
            f"generation workers died ({exc}); with workers > 1 the calling script must run under "
            "`if __name__ == '__main__':`"
        ) from None


# ---------------------------------------------------------------- crystals


def crystal_seed_pool(sources: list[str], max_atoms: int, max_z: int = 94) -> list[tuple[str, str, Any]]:
    """Real seed structures as (source, name, Atoms), sorted, each with at most max_atoms atoms and no element
    heavier than max_z (CHGNet's composition model covers Z = 1-94)."""
    import ase.io
    from ase.build import bulk
    from ase.data import chemical_symbols, reference_states

    pool: list[tuple[str, str, Any]] = []
    if "avogadro" in sources:
        for f in sorted(glob.glob(f"{AVOGADRO_DIR}/**/*.cif", recursive=True)):
            try:
                a = ase.io.read(f, format="cif")
            except Exception:
                continue  # ~22 of the 510 CIFs do not parse with ASE; the pool fingerprint records what was used
            if 0 < len(a) <= max_atoms and a.pbc.all():
                pool.append(("avogadro", os.path.relpath(f, AVOGADRO_DIR), a))
    if "aflow" in sources:
        import pymatgen.analysis.prototypes as protos
        from pymatgen.core import Structure
        from pymatgen.io.ase import AseAtomsAdaptor

        with gzip.open(Path(protos.__file__).parent / "aflow_prototypes.json.gz", "rt") as fh:
            entries = json.load(fh)
        for e in entries:
            snl = {k: v for k, v in e["snl"].items() if k not in ("about", "@module", "@class")}
            s = Structure.from_dict(snl)
            if len(s) <= max_atoms:
                tag = (e.get("tags") or {}).get("aflow") or s.composition.reduced_formula
                pool.append(("aflow", str(tag), AseAtomsAdaptor.get_atoms(s)))
    if "ase-bulk" in sources:
        for z, sym in enumerate(chemical_symbols):
            ref = reference_states[z] if z < len(reference_states) else None
            if not ref or ref.get("symmetry") not in ("fcc", "bcc", "hcp", "diamond", "sc"):
                continue
            try:
                pool.append(("ase-bulk", sym, bulk(sym)))
            except Exception:
                continue
    pool = [t for t in pool if int(t[2].numbers.max()) <= max_z]
    for _, _, a in pool:
        a.info = {}
        a.calc = None
    pool.sort(key=lambda t: (t[0], t[1]))
    return pool


def seed_sources_fingerprint(sources: list[str]) -> dict[str, Any]:
    """A cheap fingerprint of the seed inputs (file names and sizes, package versions), computed without parsing,
    so reading a cached set never re-parses 500 CIFs. It is part of the cache key."""
    h = hashlib.sha256()
    n_files = 0
    if "avogadro" in sources:
        for f in sorted(glob.glob(f"{AVOGADRO_DIR}/**/*.cif", recursive=True)):
            h.update(f"{os.path.relpath(f, AVOGADRO_DIR)}|{os.path.getsize(f)};".encode())
            n_files += 1
    # the packages that ship seed structures (AFLOW prototypes, ASE bulk): provenance, not part of the cache key
    return {"avogadro_cif_files": n_files, "fingerprint": h.hexdigest()[:16],
            "versions": _versions("pymatgen", "pymatgen-core", "ase")}  # fmt: skip


_W: dict[str, Any] = {}  # per-process worker state (seed pool, models)


def _crystal_init(pool: list, recipe: dict[str, Any], seed: int) -> None:
    _W.clear()
    _W.update(pool=pool, recipe=recipe, seed=seed, perm=np.random.default_rng(seed).permutation(len(pool)))


def _chgnet_calc() -> Any:
    if "chgnet" not in _W:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        model = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
        _W["chgnet"] = CHGNetCalculator(model=model, use_device="cpu")
    return _W["chgnet"]


def _too_close(atoms: Any, dmin: float) -> bool:
    from ase.neighborlist import neighbor_list

    return len(neighbor_list("i", atoms, dmin)) > 0


def _make_crystal(i: int) -> Sample:
    try:
        return _make_crystal_unchecked(i)
    except DatasetError:
        raise
    except Exception as exc:
        src, name, _ = _W["pool"][int(_W["perm"][i % len(_W["pool"])])]
        raise DatasetError(f"crystals:{i:06d} (seed {src}:{name}): {type(exc).__name__}: {exc}") from exc


def _make_crystal_unchecked(i: int) -> Sample:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    r, seed, pool = _W["recipe"], _W["seed"], _W["pool"]
    rng = np.random.default_rng([seed, i])
    src, name, base = pool[int(_W["perm"][i % len(pool)])]
    atoms = base.copy()
    reps = 1
    while len(atoms) * (reps + 1) ** 3 <= r["max_atoms"] and len(atoms) * reps**3 < r["min_atoms"]:
        reps += 1
    if reps > 1:
        atoms = atoms.repeat((reps, reps, reps))
    eps = rng.uniform(-r["strain_max"], r["strain_max"], (3, 3))
    eps = (eps + eps.T) / 2
    atoms.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    sigma = float(rng.uniform(*r["sigma_range_A"]))
    disp = rng.normal(0.0, sigma, (len(atoms), 3))
    start = atoms.get_positions()
    shrink = 0
    atoms.set_positions(start + disp)
    while _too_close(atoms, r["min_distance_A"]) and shrink < 4:
        shrink += 1
        atoms.set_positions(start + disp * 0.5**shrink)
    meta: dict[str, Any] = {
        "origin": "generated",
        "seed_source": src,
        "seed_name": name,
        "supercell": reps,
        "strain_max_abs": float(np.abs(eps).max()),
        "rattle_sigma_A": sigma * 0.5**shrink,
        "md": False,
    }
    labels: dict[str, Label] = {}
    if rng.random() < r["md_fraction"]:
        temp = float(rng.choice(r["md_temperatures_K"]))
        atoms.calc = _chgnet_calc()
        MaxwellBoltzmannDistribution(atoms, temperature_K=temp, rng=rng)
        dyn = Langevin(
            atoms, r["md_timestep_fs"] * units.fs, temperature_K=temp, friction=r["md_friction"], fixcm=False, rng=rng
        )
        dyn.run(r["md_steps"])
        energy = float(atoms.get_potential_energy())
        labels["energy_chgnet"] = Label(energy, "eV")
        meta.update(md=True, md_temperature_K=temp, md_steps=r["md_steps"], energy_method="CHGNet 0.3.0 (model)")
        atoms.calc = None
        atoms.set_velocities(np.zeros((len(atoms), 3)))
    atoms.info = {}
    return Sample(f"crystals:{i:06d}", atoms=atoms, labels=labels, meta=meta)


def load_crystals(
    n: int | None = None, seed: int = 0, path: str | None = None, workers: int = 1, **overrides: Any
) -> list[Sample]:
    """The generated `crystals` set (see module docstring); generated on first use, then read from the cache.

    n=None gives the recipe default (3,000). `overrides` change recipe parameters (e.g. md_fraction=0) and
    therefore the cache key. workers > 1 spreads generation over processes (same samples either way).
    """
    recipe = {**CRYSTAL_RECIPE, **overrides}
    n = int(recipe["n_default"]) if n is None else n
    if n < 0:
        raise DatasetError(f"crystals: n must be >= 0, got {n}")
    pool_cache: list = []

    def pool() -> list:
        if not pool_cache:
            pool_cache.extend(
                crystal_seed_pool(list(recipe["sources"]), int(recipe["max_atoms"]), int(recipe["max_atomic_number"]))
            )
            if not pool_cache:
                raise DatasetError(f"crystals: no seed structures found for sources {recipe['sources']}")
        return pool_cache

    full = {
        **recipe,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "seed_inputs": seed_sources_fingerprint(list(recipe["sources"])),
        "versions": _versions("ase", "pymatgen", "chgnet", "numpy", "torch"),
    }

    def make(todo: list[int]) -> Iterator[Sample]:
        return _run_parallel(_make_crystal, _crystal_init, (pool(), recipe, seed), todo, workers)

    out = _generate_cached("crystals", full, n, path, make)
    for s in out:
        s.meta["seed"] = seed
    return out


# ---------------------------------------------------------------- off-equilibrium molecules


def moses_smiles(source: str | os.PathLike | None = None) -> list[str]:
    """MOSES training SMILES from `source` (a molsets wheel/zip, a .csv or .csv.gz with a SMILES column), else
    $MATTER_ALIGN_MOSES, else an installed molsets package (`moses/dataset/data/train.csv.gz`)."""
    import importlib.util

    import pandas as pd

    src = source or os.environ.get(ENV_MOSES)
    if src is None:
        spec = importlib.util.find_spec("moses")
        if spec is None or not spec.submodule_search_locations:
            raise DatasetError(
                "offeq-molecules: no MOSES SMILES: pass smiles_source= (the molsets wheel from "
                f"`pip download --no-deps molsets==0.3.1`, or a CSV), set {ENV_MOSES}, or pip install --no-deps molsets"
            )
        src = Path(next(iter(spec.submodule_search_locations))) / "dataset" / "data" / "train.csv.gz"
    p = Path(src)
    try:
        if p.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(p) as z:
                df = pd.read_csv(io.BytesIO(z.read("moses/dataset/data/train.csv.gz")), compression="gzip")
        else:
            df = pd.read_csv(p)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{p}: cannot read MOSES SMILES ({type(exc).__name__}: {exc})") from None
    if "SMILES" not in df.columns:
        raise DatasetError(f"{p}: no SMILES column")
    return df["SMILES"].astype(str).tolist()


def _molecule_init(smiles: list[str], recipe: dict[str, Any], seed: int) -> None:
    _W.clear()
    _W.update(smiles=smiles, recipe=recipe, seed=seed, perm=np.random.default_rng(seed).permutation(len(smiles)))
    if not recipe.get("use_tblite", True):
        _W.update(tblite=False, tblite_error="tblite disabled by the recipe (use_tblite=False)")
        return
    try:
        from tblite.ase import TBLite  # noqa: F401
    except ImportError as exc:  # the recipe says GFN2-xTB: generating something else under its key would be a lie
        raise DatasetError(
            f"offeq-molecules: the recipe runs GFN2-xTB MD but tblite is not importable here ({exc}); generate the set "
            "in the main environment (make env), or read the cached set from there ($MATTER_ALIGN_CACHE)"
        ) from exc
    _W["tblite"] = True


def _embed(smi: str, rng: np.random.Generator, max_heavy: int) -> tuple[Any, Any] | None:
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smi)
    if mol is None or mol.GetNumHeavyAtoms() > max_heavy:
        return None
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(rng.integers(1, 2**31 - 1))
    if AllChem.EmbedMolecule(mol, params) != 0:
        return None
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=200)
    else:
        return None
    atoms = Atoms([a.GetSymbol() for a in mol.GetAtoms()], positions=mol.GetConformer().GetPositions(), pbc=False)
    return mol, atoms


def _mmff_energy(mol: Any, positions: np.ndarray) -> float:
    from rdkit.Chem import AllChem

    conf = mol.GetConformer()
    for k, xyz in enumerate(positions):
        conf.SetAtomPosition(k, [float(x) for x in xyz])
    props = AllChem.MMFFGetMoleculeProperties(mol)
    return float(AllChem.MMFFGetMoleculeForceField(mol, props).CalcEnergy())


def _make_molecule(i: int) -> Sample:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    r, seed, smiles, perm = _W["recipe"], _W["seed"], _W["smiles"], _W["perm"]
    rng = np.random.default_rng([seed, i])
    k = int(r["candidates_per_sample"])
    got = None
    for j in range(k):
        pos = (i * k + j) % len(smiles)
        smi = smiles[int(perm[pos])]
        got = _embed(smi, rng, int(r["max_heavy_atoms"]))
        if got is not None:
            break
    if got is None:
        raise DatasetError(f"offeq-molecules:{i:06d}: none of {k} candidate SMILES could be embedded")
    mol, atoms = got
    meta: dict[str, Any] = {"origin": "generated", "moses_index": int(perm[pos]), "input_smiles": smi}
    labels: dict[str, Label] = {}
    error = _W.get("tblite_error")
    if _W.get("tblite"):
        try:
            from tblite.ase import TBLite

            atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
            temp = float(r["md_temperature_K"])
            MaxwellBoltzmannDistribution(atoms, temperature_K=temp, rng=rng)
            dyn = Langevin(
                atoms,
                r["md_timestep_fs"] * units.fs,
                temperature_K=temp,
                friction=r["md_friction"],
                fixcm=False,
                rng=rng,
            )
            dyn.run(int(r["md_steps"]))
            energy = float(atoms.get_potential_energy())
            labels["energy"] = Label(energy, "eV")
            labels["energy_per_atom"] = Label(energy / len(atoms), "eV/atom")
            meta.update(energy_method="GFN2-xTB (tblite)", md_temperature_K=temp, md_steps=int(r["md_steps"]))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            atoms.calc = None
    if "energy" not in labels:
        rattled = atoms.get_positions() + rng.normal(0.0, r["fallback_rattle_A"], (len(atoms), 3))
        atoms.set_positions(rattled)
        labels["energy_mmff"] = Label(_mmff_energy(mol, rattled), "kcal/mol")
        meta.update(energy_method="MMFF94 (RDKit; no GFN2-xTB)", tblite_error=error)
    atoms.calc = None
    atoms.set_velocities(np.zeros((len(atoms), 3)))
    atoms.info = {}
    smiles_out = Chem.MolToSmiles(Chem.RemoveHs(mol))
    return Sample(f"offeq-molecules:{i:06d}", atoms=atoms, smiles=smiles_out, labels=labels, meta=meta)


def load_offeq_molecules(
    n: int | None = None,
    seed: int = 0,
    path: str | None = None,
    workers: int = 1,
    smiles_source: str | None = None,
    **overrides: Any,
) -> list[Sample]:
    """The generated `offeq-molecules` set (see module docstring); generated on first use, then cached.

    smiles_source: the molsets wheel or a SMILES CSV (default: $MATTER_ALIGN_MOSES or an installed molsets).
    """
    recipe = {**MOLECULE_RECIPE, **overrides}
    n = int(recipe["n_default"]) if n is None else n
    if n < 0:
        raise DatasetError(f"offeq-molecules: n must be >= 0, got {n}")
    smiles = moses_smiles(smiles_source)
    fingerprint = hashlib.sha256("\n".join(smiles).encode()).hexdigest()[:16]
    full = {
        **recipe,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "smiles_pool": {"size": len(smiles), "fingerprint": fingerprint},
        "versions": _versions("rdkit", "tblite", "ase", "numpy"),
    }

    def make(todo: list[int]) -> Iterator[Sample]:
        return _run_parallel(_make_molecule, _molecule_init, (smiles, recipe, seed), todo, workers)

    out = _generate_cached("offeq-molecules", full, n, path, make)
    for s in out:
        s.meta["seed"] = seed
    return out
