"""Train one small MACE on QM9 total energies with mace-torch's own training entry point (run in .venv-mlip).

    python -m precompute.train.mace_qm9 --n-train N --channels C --seed S --out work-cache/trained/<name>

What is fitted
  * Target: QM9 U0 (label ``energy_U0``, hartree) converted to eV with ``ase.units.Hartree``; energy only. QM9 holds
    equilibrium geometries and no forces, so the loss is mace's ``weighted`` loss with ``forces_weight 0`` (mace
    0.3.16 has no energy-only loss; forces are still computed, as -dE/dx, because that loss reads them).
  * E0s: ``--E0s average``, i.e. mace's least-squares fit of one reference energy per element on the training set.
  * Model: ScaleShiftMACE (``std_scaling``: the scale is the std of the per-atom interaction energy of the training
    set), hidden irreps ``{C}x0e`` (``--max-L 1``: ``{C}x0e+{C}x1o``), 2 interactions, r_max 5 A, max_ell 2,
    correlation 2; float32 (about twice as fast as float64 on CPU), CPU, Adam (amsgrad) with EMA 0.99, a fixed epoch
    budget; the model kept is mace's: the epoch with the lowest validation loss.

Data split (``split_samples``)
  The release analyses ``load_dataset("qm9", n=10000, seed=0)``; those molecules are excluded from training and
  validation so that no analysed molecule was seen in training. The remaining molecules are taken in the order of
  the seeded permutation ``load_dataset("qm9", n=..., seed=POOL_SEED_BASE + seed)``: the first ``n_valid``
  non-excluded molecules are the validation set, the next ``n_train`` the training set. So for one seed every
  run shares one validation set and a larger ``n_train`` contains the smaller ones.

Output (written atomically: everything is built in ``.<name>.partial`` next to ``--out`` and renamed at the end)
  ``model.model`` (``torch.save`` of the model, as mace writes it; any MACE loader reads it), ``train_manifest.json``,
  ``train.xyz`` / ``valid.xyz`` (extended XYZ, energies in eV under ``U0_eV``, ids under ``sample_id``),
  ``mace_log.txt`` and ``mace_epochs.txt`` (mace's log and per-epoch validation metrics). A finished run is never
  overwritten; an interrupted one resumes from mace's last checkpoint when the same command is run again.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from precompute.datasets import Sample, load_dataset

EVAL_N = 10_000  # the release's QM9 subsample: load_dataset("qm9", n=10000, seed=0)
EVAL_SEED = 0
POOL_SEED_BASE = 1000  # the training pool's permutation seed is POOL_SEED_BASE + seed (never the release's seed 0)
ENERGY_KEY = "U0_eV"
MACE_NAME = "mace_qm9"
MANIFEST = "train_manifest.json"
MODEL_FILE = "model.model"


class TrainError(RuntimeError):
    """A training run cannot start or failed; the message says why and what to do."""


def excluded_ids(n: int = EVAL_N, seed: int = EVAL_SEED) -> list[str]:
    """Ids of the QM9 molecules the release analyses (never trained or validated on), in subsample order."""
    return [s.sample_id for s in load_dataset("qm9", n=n, seed=seed)]


def ids_sha256(ids: list[str]) -> str:
    """sha256 of the sorted ids joined by newlines (order-free fingerprint of a set of molecules)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def split_samples(n_train: int, n_valid: int, seed: int, excluded: set[str]) -> tuple[list[Sample], list[Sample], int]:
    """(train, valid, n_skipped): the first n_valid then the next n_train non-excluded molecules of the seeded pool.

    n_skipped counts the excluded molecules met in that prefix of the pool (the filter at work).
    """
    need = n_train + n_valid
    from precompute.datasets.qm9 import N_QM9PACK

    if need > N_QM9PACK - len(excluded):
        raise TrainError(f"n_train + n_valid = {need} exceeds the {N_QM9PACK - len(excluded)} non-excluded molecules")
    k = min(N_QM9PACK, int(need * 1.15) + 200)
    while True:
        pool = load_dataset("qm9", n=k, seed=POOL_SEED_BASE + seed)
        kept: list[Sample] = []
        skipped = 0
        for s in pool:
            if s.sample_id in excluded:
                skipped += 1
                continue
            kept.append(s)
            if len(kept) == need:
                return kept[n_valid:], kept[:n_valid], skipped
        k = min(N_QM9PACK, 2 * k)  # a prefix property: a longer pool keeps the same order


def write_xyz(path: Path, samples: list[Sample]) -> None:
    """Extended XYZ with the total energy in eV (from hartree via ase.units.Hartree) and the sample id."""
    from ase.io import write
    from ase.units import Hartree

    frames = []
    for s in samples:
        label = s.labels["energy_U0"]
        if label.unit != "hartree":
            raise TrainError(f"{s.sample_id}: energy_U0 in {label.unit!r}, expected hartree")
        a = s.atoms.copy()
        a.info = {ENERGY_KEY: label.value * Hartree, "sample_id": s.sample_id}
        frames.append(a)
    write(str(path), frames, format="extxyz")


def hidden_irreps(channels: int, max_L: int) -> str:
    """mace hidden irreps: C scalars, plus C vectors when max_L is 1."""
    return f"{channels}x0e" if max_L == 0 else f"{channels}x0e+{channels}x1o"


def mace_arguments(cfg: dict[str, Any], work: Path, resume: bool) -> list[str]:
    """Command-line arguments of mace.cli.run_train for one run (cfg as built by `run_config`)."""
    args = {
        "name": MACE_NAME,
        "seed": cfg["seed"],
        "work_dir": work,
        "model_dir": work,
        "log_dir": work / "logs",
        "checkpoints_dir": work / "checkpoints",
        "results_dir": work / "results",
        "train_file": work / "train.xyz",
        "valid_file": work / "valid.xyz",
        "energy_key": ENERGY_KEY,
        "E0s": "average",
        "model": "ScaleShiftMACE",
        "scaling": "std_scaling",
        "hidden_irreps": cfg["hidden_irreps"],
        "num_interactions": 2,
        "r_max": 5.0,
        "max_ell": 2,
        "correlation": 2,
        "loss": "weighted",
        "energy_weight": 1.0,
        "forces_weight": 0.0,
        "compute_forces": True,  # the weighted loss reads pred["forces"]; its weight is 0
        "batch_size": cfg["batch_size"],
        "valid_batch_size": 50,
        "lr": cfg["lr"],
        "max_num_epochs": cfg["epochs"],
        "patience": 10_000,  # a fixed epoch budget: no early stop
        "device": "cpu",
        "default_dtype": cfg["dtype"],
        "error_table": "PerAtomMAE",
        "skip_evaluate_heads": "Default",  # mace's final train/valid table; we evaluate model.model ourselves
        "ema_decay": 0.99,
    }
    argv = [f"--{k}={v}" for k, v in args.items()]
    argv += ["--ema", "--save_cpu"] + (["--restart_latest"] if resume else [])
    return argv


def run_config(ns: argparse.Namespace) -> dict[str, Any]:
    """Everything that defines a run; a partial run is resumed only under the same config."""
    return {
        "n_train": ns.n_train,
        "n_valid": ns.n_valid,
        "channels": ns.channels,
        "max_L": ns.max_L,
        "hidden_irreps": hidden_irreps(ns.channels, ns.max_L),
        "seed": ns.seed,
        "epochs": ns.epochs,
        "batch_size": ns.batch_size,
        "lr": ns.lr,
        "dtype": "float32",
        "exclude_n": ns.exclude_n,
        "exclude_seed": ns.exclude_seed,
    }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def evaluate(model_path: Path, samples: list[Sample]) -> dict[str, float]:
    """Energy errors of a saved model on samples, read back with mace's MACECalculator (total energies in eV)."""
    import torch
    from ase.units import Hartree
    from mace.calculators import MACECalculator

    dtype = torch.get_default_dtype()  # MACECalculator may change the global default; restore it
    try:
        calc = MACECalculator(model_paths=str(model_path), device="cpu", default_dtype="float32")
        err, n_atoms = [], []
        for s in samples:
            a = s.atoms.copy()
            a.calc = calc
            err.append(a.get_potential_energy() - s.labels["energy_U0"].value * Hartree)
            n_atoms.append(len(a))
    finally:
        torch.set_default_dtype(dtype)
    e, n = np.asarray(err), np.asarray(n_atoms)
    return {
        "mae_meV_per_atom": float(np.mean(np.abs(e / n)) * 1000),
        "mae_meV_per_molecule": float(np.mean(np.abs(e)) * 1000),
        "rmse_meV_per_molecule": float(np.sqrt(np.mean(e**2)) * 1000),
        "n_params": int(sum(p.numel() for p in calc.models[0].parameters())),
    }


def _mace_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")) if p
    )
    return env


def _children_cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {pkg: version(pkg) for pkg in ("mace-torch", "torch", "e3nn", "ase")}


def train(ns: argparse.Namespace) -> dict[str, Any]:
    """Run one training (see the module docstring); returns the manifest written to <out>/train_manifest.json."""
    out = Path(ns.out).resolve()
    if (out / MANIFEST).exists():
        raise TrainError(
            f"{out} is a finished run ({MANIFEST} exists); refusing to overwrite it (delete it to retrain)"
        )
    if out.exists():
        raise TrainError(f"{out} exists but is not a finished run; refusing to overwrite it (move or delete it)")
    cfg = run_config(ns)
    work = out.parent / f".{out.name}.partial"
    work.mkdir(parents=True, exist_ok=True)
    lock = open(work / ".lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise TrainError(f"another process is training into {work}") from None
    cfg_path = work / "run_config.json"
    resume = cfg_path.exists() and any((work / "checkpoints").glob("*.pt"))
    if cfg_path.exists() and json.loads(cfg_path.read_text()) != cfg:
        raise TrainError(f"{work} holds a partial run with another config; delete it to start this one")
    cfg_path.write_text(json.dumps(cfg, indent=1))

    t0 = time.time()
    excluded = excluded_ids(ns.exclude_n, ns.exclude_seed)
    train_set, valid_set, skipped = split_samples(ns.n_train, ns.n_valid, ns.seed, set(excluded))
    write_xyz(work / "train.xyz", train_set)
    write_xyz(work / "valid.xyz", valid_set)

    argv = mace_arguments(cfg, work, resume)
    cpu0 = _children_cpu_s()
    with open(work / "mace_stdout.txt", "a") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "mace.cli.run_train", *argv], stdout=log, stderr=subprocess.STDOUT, env=_mace_env()
        )
    if proc.returncode != 0:
        tail = (work / "mace_stdout.txt").read_text()[-3000:]
        raise TrainError(f"mace training failed (exit {proc.returncode}); partial run kept in {work}\n{tail}")
    train_wall, train_cpu = time.time() - t0, _children_cpu_s() - cpu0

    os.replace(work / f"{MACE_NAME}.model", work / MODEL_FILE)
    tag = f"{MACE_NAME}_run-{cfg['seed']}"  # mace's tools.get_tag
    for src, dst in ((f"logs/{tag}.log", "mace_log.txt"), (f"results/{tag}_train.txt", "mace_epochs.txt")):
        if (work / src).is_file():
            shutil.copyfile(work / src, work / dst)
    for junk in ("checkpoints", "logs", "results", f"{MACE_NAME}_compiled.model", "mace_stdout.txt", ".lock"):
        p = work / junk
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)

    metrics = evaluate(work / MODEL_FILE, valid_set)
    from ase.units import Hartree

    manifest = {
        "name": out.name,
        **cfg,
        "n_train": len(train_set),
        "n_valid": len(valid_set),
        "model_file": MODEL_FILE,
        "model_sha256": sha256_file(work / MODEL_FILE),
        "n_params": metrics.pop("n_params"),
        "valid_mae_meV_per_atom": metrics["mae_meV_per_atom"],
        "valid_mae_meV_per_molecule": metrics["mae_meV_per_molecule"],
        "valid_rmse_meV_per_molecule": metrics["rmse_meV_per_molecule"],
        "wall_time_s": round(train_wall, 1),
        "cpu_time_s": round(train_cpu, 1),  # user + system time of mace's training process
        "resumed": resume,
        "energy": f"QM9 U0 (energy_U0, hartree) x ase.units.Hartree = {Hartree!r} eV/hartree; total energy in eV",
        "E0s": "average (mace least-squares fit of per-element energies on the training set)",
        "loss": "mace weighted loss, energy_weight 1, forces_weight 0 (energy only)",
        "mace_arguments": [a.replace(str(work), "<run>") for a in argv],
        "pool": f"load_dataset('qm9', n=..., seed={POOL_SEED_BASE + ns.seed}) minus the excluded ids; valid first",
        "exclusion": {
            "why": "the release analyses these molecules; no model trained here saw them in training or validation",
            "dataset": "qm9",
            "n": ns.exclude_n,
            "seed": ns.exclude_seed,
            "count": len(excluded),
            "ids_sha256": ids_sha256(excluded),
            "skipped_in_pool": skipped,
        },
        "train_ids_sha256": ids_sha256([s.sample_id for s in train_set]),
        "valid_ids_sha256": ids_sha256([s.sample_id for s in valid_set]),
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    lock.close()
    os.rename(work, out)  # atomic: <out> appears only complete
    return manifest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m precompute.train.mace_qm9", description=__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, required=True, help="training molecules")
    p.add_argument("--channels", type=int, required=True, help="hidden channels C (hidden irreps {C}x0e)")
    p.add_argument("--seed", type=int, default=0, help="data-pool and mace seed")
    p.add_argument("--out", required=True, help="output folder, e.g. work-cache/trained/mace-qm9-n500-c16")
    p.add_argument("--epochs", type=int, default=6, help="fixed epoch budget")
    p.add_argument("--n-valid", type=int, default=300, help="validation molecules (shared by all runs of a seed)")
    p.add_argument("--max-L", dest="max_L", type=int, choices=(0, 1), default=0, help="1 adds {C}x1o")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--exclude-n", type=int, default=EVAL_N, help="size of the release's QM9 subsample to exclude")
    p.add_argument("--exclude-seed", type=int, default=EVAL_SEED, help="seed of the release's QM9 subsample")
    ns = p.parse_args(argv)
    if min(ns.n_train, ns.n_valid, ns.channels, ns.epochs, ns.batch_size) < 1:
        p.error("--n-train, --n-valid, --channels, --epochs and --batch-size must be >= 1")
    return ns


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    try:
        m = train(ns)
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{m['name']}: valid MAE {m['valid_mae_meV_per_atom']:.2f} meV/atom, "
        f"{m['valid_mae_meV_per_molecule']:.1f} meV/molecule; {m['wall_time_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
