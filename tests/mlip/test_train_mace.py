"""precompute.train.mace_qm9: one tiny real training run (40 molecules, 1 epoch, 8x0e) with mace's own trainer.

Checks the files, that mace's MACECalculator reads the model and reproduces the manifest's validation MAE, that
the release's evaluation molecules never reach the training/validation files, the manifest, and that a finished run
is never overwritten.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from precompute.train import mace_qm9

N_TRAIN, N_VALID = 40, 10


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "mace-qm9-tiny"
    argv = ["--n-train", str(N_TRAIN), "--n-valid", str(N_VALID), "--channels", "8", "--epochs", "1"]
    argv += ["--seed", "0", "--out", str(out)]
    assert mace_qm9.main(argv) == 0
    return out, argv


@pytest.fixture(scope="module")
def excluded():
    return set(mace_qm9.excluded_ids())


def test_run_writes_its_files_atomically(run):
    out, _ = run
    for name in ("model.model", "train_manifest.json", "train.xyz", "valid.xyz", "mace_log.txt"):
        assert (out / name).is_file(), name
    assert not (out.parent / f".{out.name}.partial").exists()
    assert not (out / "checkpoints").exists()


def test_model_loads_with_mace_calculator_and_matches_the_manifest(run):
    import torch
    from ase.io import read
    from mace.calculators import MACECalculator

    out, _ = run
    m = json.loads((out / "train_manifest.json").read_text())
    dtype = torch.get_default_dtype()
    try:
        calc = MACECalculator(model_paths=str(out / "model.model"), device="cpu", default_dtype="float32")
        frames = read(str(out / "valid.xyz"), index=":")
        err = []
        for a in frames:
            ref = a.info["U0_eV"]
            a.calc = calc
            err.append((a.get_potential_energy() - ref) / len(a))
    finally:
        torch.set_default_dtype(dtype)
    mae = float(np.mean(np.abs(err)) * 1000)
    assert mae == pytest.approx(m["valid_mae_meV_per_atom"], rel=1e-4)
    assert calc.models[0].__class__.__name__ == "ScaleShiftMACE"
    assert float(calc.models[0].r_max) == 5.0
    assert sum(p.numel() for p in calc.models[0].parameters()) == m["n_params"]


def test_excluded_ids_never_reach_the_training_files(run, excluded):
    from ase.io import read

    out, _ = run
    m = json.loads((out / "train_manifest.json").read_text())
    assert len(excluded) == 10_000
    train = [a.info["sample_id"] for a in read(str(out / "train.xyz"), index=":")]
    valid = [a.info["sample_id"] for a in read(str(out / "valid.xyz"), index=":")]
    assert len(train) == N_TRAIN and len(valid) == N_VALID
    assert not (set(train) | set(valid)) & excluded
    assert not set(train) & set(valid)
    # the filter was exercised: the unfiltered pool prefix held evaluation molecules
    assert m["exclusion"]["skipped_in_pool"] > 0
    assert m["exclusion"]["ids_sha256"] == mace_qm9.ids_sha256(sorted(excluded))
    assert m["train_ids_sha256"] == mace_qm9.ids_sha256(train)


def test_energies_are_qm9_u0_in_ev(run):
    from ase.io import read
    from ase.units import Hartree

    from precompute.datasets import load_dataset

    out, _ = run
    a = read(str(out / "train.xyz"), index=0)
    sid = a.info["sample_id"]
    ref = next(s for s in load_dataset("qm9", n=200, seed=mace_qm9.POOL_SEED_BASE) if s.sample_id == sid)
    assert a.info["U0_eV"] == pytest.approx(ref.labels["energy_U0"].value * Hartree, abs=1e-6)
    assert np.allclose(a.positions, ref.atoms.positions, atol=1e-6)


def test_manifest_fields(run):
    out, _ = run
    m = json.loads((out / "train_manifest.json").read_text())
    assert (m["n_train"], m["n_valid"], m["channels"], m["seed"], m["epochs"]) == (N_TRAIN, N_VALID, 8, 0, 1)
    assert m["hidden_irreps"] == "8x0e" and m["dtype"] == "float32"
    assert m["versions"]["mace-torch"] == "0.3.16"
    assert m["model_sha256"] == mace_qm9.sha256_file(out / "model.model")
    assert m["wall_time_s"] >= m["cpu_time_s"] / 2 > 0  # one thread: CPU time cannot exceed wall time much
    assert m["valid_mae_meV_per_molecule"] > m["valid_mae_meV_per_atom"] > 0
    assert (m["exclusion"]["n"], m["exclusion"]["seed"], m["exclusion"]["count"]) == (10_000, 0, 10_000)
    assert "--forces_weight=0.0" in m["mace_arguments"] and "--E0s=average" in m["mace_arguments"]
    assert not any("/" in a and "<run>" not in a for a in m["mace_arguments"])  # no temp paths recorded


def test_a_finished_run_is_never_overwritten(run, capsys):
    out, argv = run
    before = (out / "model.model").stat().st_mtime_ns
    assert mace_qm9.main(argv) == 2
    assert "finished run" in capsys.readouterr().err
    assert (out / "model.model").stat().st_mtime_ns == before
    with pytest.raises(mace_qm9.TrainError, match="refusing to overwrite"):
        mace_qm9.train(mace_qm9.parse_args(argv))


def test_split_is_nested_and_shares_the_validation_set(excluded):
    small_train, small_valid, _ = mace_qm9.split_samples(20, 10, 0, excluded)
    big_train, big_valid, _ = mace_qm9.split_samples(60, 10, 0, excluded)
    assert [s.sample_id for s in small_valid] == [s.sample_id for s in big_valid]
    assert [s.sample_id for s in small_train] == [s.sample_id for s in big_train[:20]]
    other_train, _, _ = mace_qm9.split_samples(20, 10, 1, excluded)
    assert {s.sample_id for s in other_train} != {s.sample_id for s in small_train}


def test_a_partial_run_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "mace-qm9-x"
    partial = tmp_path / ".mace-qm9-x.partial"
    partial.mkdir()
    (partial / "run_config.json").write_text(json.dumps({"n_train": 999}))
    ns = mace_qm9.parse_args(["--n-train", "40", "--channels", "8", "--out", str(out)])
    with pytest.raises(mace_qm9.TrainError, match="another config"):
        mace_qm9.train(ns)
    assert not out.exists() and json.loads((partial / "run_config.json").read_text()) == {"n_train": 999}
