"""FairChemV1Adapter on tiny RANDOM-weight EquiformerV2, EquiformerV2-DeNS and eSEN checkpoints written in fairchem
1.x's own format (tests/fairchem1/_checkpoints.py) and loaded through the adapter's real path (OCPCalculator), on 5
real QM9 molecules and 5 ASE crystals. Runs in .venv-fairchem1 (see conftest.py)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from precompute.adapters import _testdata as td
from precompute.datasets.base import Sample
from tests.fairchem1._checkpoints import CUTOFF, ELEMENT_REFS, ENERGY_RMSD, write_checkpoint

ARCHS = ("equiformer_v2", "equiformer_v2_dens", "esen")
DIM = 16  # sphere_channels of the tiny models
# Measured on this CPU (float32): batched vs one-by-one <= 5e-7, rotation+translation <= 6e-6 (crystals); the S2-grid
# activations of EquiformerV2 are only approximately equivariant, which is why crystals are not at 1e-7.
TOL_BATCH = 1e-5
TOL_INVARIANCE = 1e-4


def _card(arch: str, **options) -> dict:
    return {
        "model_id": f"tiny-{arch}",
        "checkpoint": f"{arch}_tiny.pt",
        "options": {"architecture": arch, **options},
    }


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fairchem1_ckpts")


@pytest.fixture(scope="module")
def checkpoints(ckpt_dir) -> dict[str, Path]:
    return {arch: write_checkpoint(arch, ckpt_dir) for arch in ARCHS}


@pytest.fixture(scope="module")
def adapters(checkpoints) -> dict:
    from precompute.adapters.fairchem_v1 import FairChemV1Adapter

    return {arch: FairChemV1Adapter(_card(arch), "cpu", str(p)) for arch, p in checkpoints.items()}


@pytest.fixture(scope="module")
def molecules() -> list[Sample]:
    return td.qm9_molecules(5)


@pytest.fixture(scope="module")
def crystals() -> list[Sample]:
    return td.crystals()


@pytest.fixture(scope="module")
def results(adapters, molecules, crystals) -> dict:
    return {arch: ad.embed(molecules + crystals) for arch, ad in adapters.items()}


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_ids_energies(arch, adapters, results, molecules, crystals):
    res = results[arch]
    samples = molecules + crystals
    assert res.ids == [s.sample_id for s in samples]
    assert res.failures == {}
    assert res.embeddings.shape == (10, DIM) and res.embeddings.dtype == np.float32
    assert np.isfinite(res.embeddings).all()
    assert np.abs(res.embeddings).max() > 1e-3  # not a dead (all-zero) readout
    assert len({tuple(np.round(r, 5)) for r in res.embeddings}) == 10  # every structure gets its own vector
    assert res.energies is not None and res.energies.shape == (10,) and np.isfinite(res.energies).all()
    assert adapters[arch].embedding_dim == DIM and adapters[arch].cutoff == CUTOFF


@pytest.mark.parametrize("arch", ARCHS)
def test_embedding_is_the_mean_of_l0_backbone_features(arch, adapters, molecules, crystals):
    """Independent readout: call the backbone directly on one graph and pool node_embedding[:, 0, :] by hand."""
    import torch
    from fairchem.core.datasets import data_list_collater

    from precompute.adapters._structure import boxed

    ad = adapters[arch]
    for s in (molecules[2], crystals[0]):
        batch = data_list_collater([ad.a2g.convert(boxed(s.atoms, ad.box_padding))], otf_graph=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ad.seed)
            emb = ad.backbone(batch)["node_embedding"]
        emb = getattr(emb, "embedding", emb)
        assert emb.shape[1] == 9 and emb.shape[2] == DIM  # (lmax+1)^2 coefficients for lmax 2
        want = emb[:, 0, :].detach().double().mean(0).numpy()
        got = ad.embed([s]).embeddings[0]
        assert np.abs(got - want).max() <= 1e-6


@pytest.mark.parametrize("arch", ARCHS)
def test_energies_equal_the_legacy_calculator(arch, checkpoints, adapters, results, molecules, crystals):
    """EmbedResult.energies is what fairchem's own OCPCalculator reports (normaliser + element references, eV)."""
    from fairchem.core.common.relaxation.ase_utils import OCPCalculator

    from precompute.adapters._structure import boxed

    calc = OCPCalculator(checkpoint_path=str(checkpoints[arch]), cpu=True, seed=0)
    picks = [0, 3, 5, 9]  # two molecules, Si supercell, ZnO
    samples = molecules + crystals
    for i in picks:
        atoms = boxed(samples[i].atoms, adapters[arch].box_padding)
        atoms.calc = calc
        assert results[arch].energies[i] == pytest.approx(atoms.get_potential_energy(), rel=1e-5, abs=1e-4)
    # the checkpoint's normaliser and element references are really applied: E = rmsd * raw head output + sum(refs)
    import torch
    from fairchem.core.datasets import data_list_collater

    ad = adapters[arch]
    mol = molecules[0].atoms
    batch = data_list_collater([ad.a2g.convert(boxed(mol, ad.box_padding))], otf_graph=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ad.seed)
        raw = float(ad.trainer._forward(batch)["energy"].detach().reshape(-1)[0])
    ref = sum(ELEMENT_REFS.get(int(z), 0.0) for z in mol.numbers)
    assert ref < -10.0
    assert results[arch].energies[0] == pytest.approx(ENERGY_RMSD * raw + ref, rel=1e-5, abs=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_deterministic_across_calls_and_instances(arch, checkpoints, adapters, results, molecules, crystals):
    from precompute.adapters.fairchem_v1 import FairChemV1Adapter

    again = adapters[arch].embed(molecules + crystals)
    np.testing.assert_array_equal(again.embeddings, results[arch].embeddings)
    fresh = FairChemV1Adapter(_card(arch), "cpu", str(checkpoints[arch])).embed(molecules + crystals)
    np.testing.assert_array_equal(fresh.embeddings, results[arch].embeddings)
    np.testing.assert_array_equal(fresh.energies, results[arch].energies)


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_equals_one_by_one(arch, adapters, results, molecules, crystals):
    single = adapters[arch].embed(molecules + crystals, batch_size=1)
    assert single.ids == results[arch].ids
    assert np.abs(single.embeddings - results[arch].embeddings).max() <= TOL_BATCH
    assert np.abs(single.energies - results[arch].energies).max() <= 1e-4
    three = adapters[arch].embed(molecules + crystals, batch_size=3)
    assert np.abs(three.embeddings - results[arch].embeddings).max() <= TOL_BATCH


@pytest.mark.parametrize("arch", ARCHS)
def test_rotation_and_translation_invariance(arch, adapters, results, molecules, crystals):
    moved = [td.translated(td.rotated(s, seed=7)) for s in molecules]
    moved += [td.translated(td.rotated(s, seed=7), shift=(0.37, -1.12, 2.53)) for s in crystals]
    res = adapters[arch].embed(moved)
    err = np.abs(res.embeddings - results[arch].embeddings).max()
    assert err <= TOL_INVARIANCE, err
    assert np.abs(res.energies - results[arch].energies).max() <= 1e-3


def test_molecule_box_does_not_matter_beyond_the_cutoff(checkpoints, molecules):
    """Molecules go in a periodic box; with a vacuum gap wider than the cutoff no periodic image is a neighbour, so
    the embedding is the isolated molecule's. A gap narrower than the cutoff must change it (the check can fail)."""
    from precompute.adapters.fairchem_v1 import FairChemV1Adapter

    def run(padding):
        ad = FairChemV1Adapter(_card("equiformer_v2", box_padding=padding), "cpu", str(checkpoints["equiformer_v2"]))
        return ad.embed(molecules)

    near, far, default = run(CUTOFF + 0.5), run(CUTOFF + 10.0), run(None)
    assert np.abs(near.embeddings - far.embeddings).max() <= 1e-5
    assert np.abs(default.embeddings - far.embeddings).max() <= 1e-5
    assert np.abs(near.energies - far.energies).max() <= 1e-4
    too_small = run(2.0)
    assert np.abs(too_small.embeddings - far.embeddings).max() > 1e-3


def test_backbone_only_mode_same_embedding_no_energies(checkpoints, results, molecules, crystals):
    from precompute.adapters.fairchem_v1 import FairChemV1Adapter

    ad = FairChemV1Adapter(_card("esen", energies=False), "cpu", str(checkpoints["esen"]))
    res = ad.embed(molecules + crystals)
    assert res.energies is None
    assert np.abs(res.embeddings - results["esen"].embeddings).max() <= 1e-6


@pytest.mark.parametrize("make_bad", [td.with_nan, td.overlapping])
def test_malformed_input_names_the_sample(make_bad, adapters, molecules):
    from precompute.adapters._structure import MalformedStructure

    bad = make_bad(molecules[1], sample_id="qm9:broken-42")
    with pytest.raises(MalformedStructure, match="qm9:broken-42"):
        adapters["equiformer_v2"].embed([molecules[0], bad])


def test_element_outside_the_embedding_table_is_a_recorded_failure(adapters, molecules):
    from ase import Atoms

    heavy = Sample("odd:Cm2", atoms=Atoms("Cm2", positions=[[0, 0, 0], [0, 0, 2.6]]))
    res = adapters["equiformer_v2"].embed([molecules[0], heavy, molecules[1]])  # max_num_elements 96: Cm is Z=96
    assert res.ids == [molecules[0].sample_id, molecules[1].sample_id]
    assert "Z=96" in res.failures["odd:Cm2"]
    assert res.embeddings.shape == (2, DIM) and res.energies.shape == (2,)


def test_missing_checkpoint_names_file_place_and_flag(tmp_path, monkeypatch):
    from precompute.adapters import fairchem_v1
    from precompute.registry import load_card

    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty Hugging Face cache
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))  # env var read at import
    card = load_card("eqv2-31m-omat")
    with pytest.raises(fairchem_v1.MissingCheckpoint) as err:
        fairchem_v1.FairChemV1Adapter(card, "cpu")
    msg = str(err.value)
    for part in ("eqv2-31m-omat", card["checkpoint"], "EquiformerV2-31M-OMAT24", "facebook/OMAT24", "--checkpoint"):
        assert part in msg, (part, msg)
    assert str(tmp_path / "weights" / "eqv2-31m-omat" / "eqV2_31M_omat.pt") in msg
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError, match="no-such.pt") as err:
        fairchem_v1.FairChemV1Adapter(card, "cpu", checkpoint=str(tmp_path / "no-such.pt"))
    assert str(tmp_path / "weights" / "eqv2-31m-omat" / "eqV2_31M_omat.pt") in str(err.value)


def test_checkpoint_found_in_the_weights_root(tmp_path, monkeypatch, checkpoints, results, molecules, crystals):
    """A file put where the message says (`$MATTER_ALIGN_WEIGHTS/<model_id>/<URL file name>`) is found and loaded
    without --checkpoint; a renamed file too when it is the only .pt there; --checkpoint still wins."""
    from precompute.adapters import fairchem_v1

    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path))
    card = {
        "model_id": "tiny-esen",
        "checkpoint": "https://huggingface.co/facebook/OMAT24/resolve/main/esen_tiny.pt",
        "options": {"architecture": "esen"},
    }
    (tmp_path / "tiny-esen").mkdir()
    (tmp_path / "tiny-esen" / "renamed.pt").symlink_to(checkpoints["esen"])
    assert fairchem_v1.find_checkpoint(card) == tmp_path / "tiny-esen" / "renamed.pt"
    (tmp_path / "tiny-esen" / "esen_tiny.pt").symlink_to(checkpoints["esen"])
    assert fairchem_v1.find_checkpoint(card) == tmp_path / "tiny-esen" / "esen_tiny.pt"
    got = fairchem_v1.FairChemV1Adapter(card, "cpu").embed(molecules + crystals)
    np.testing.assert_array_equal(got.embeddings, results["esen"].embeddings)
    np.testing.assert_array_equal(got.energies, results["esen"].energies)
    assert fairchem_v1.find_checkpoint(card, str(checkpoints["equiformer_v2"])) == checkpoints["equiformer_v2"]


def test_checkpoint_found_in_the_hugging_face_cache(tmp_path, monkeypatch, checkpoints):
    """Where fairchem 1.10's hf_hub_download keeps the file (the Hugging Face cache layout), read offline."""
    from precompute.adapters import fairchem_v1

    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--facebook--OMAT24"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    (repo / "snapshots" / "0123abcd" / "esen_tiny.pt").symlink_to(checkpoints["esen"])
    card = {
        "model_id": "tiny-esen",
        "checkpoint": "https://huggingface.co/facebook/OMAT24/resolve/main/esen_tiny.pt",
        "options": {"architecture": "esen"},
    }
    assert fairchem_v1.find_checkpoint(card) == repo / "snapshots" / "0123abcd" / "esen_tiny.pt"


def test_architecture_mismatch_is_rejected(checkpoints):
    from precompute.adapters.fairchem_v1 import FairChemV1Adapter

    with pytest.raises(ValueError, match="EquiformerV2Backbone"):
        FairChemV1Adapter(_card("esen"), "cpu", str(checkpoints["equiformer_v2"]))
    with pytest.raises(ValueError, match="architecture"):
        FairChemV1Adapter(_card("painn"), "cpu", str(checkpoints["equiformer_v2"]))


def test_checkpoint_with_extra_pickled_objects_still_loads(tmp_path, checkpoints, results, molecules, crystals, caplog):
    """Released fairchem-1.x checkpoints were written for torch 2.4 (full unpickling); torch 2.13 defaults to
    weights-only loading. A checkpoint that pickles a non-tensor object is retried with full unpickling."""
    import torch

    from precompute.adapters.fairchem_v1 import FairChemV1Adapter

    ck = torch.load(checkpoints["esen"], map_location="cpu", weights_only=True)
    ck["val_metrics"] = argparse.Namespace(energy_mae=0.1)  # not on torch's weights-only allow-list
    path = tmp_path / "esen_pickled.pt"
    torch.save(ck, path)
    with pytest.raises(Exception, match="weights_only"):
        torch.load(path, map_location="cpu")
    with caplog.at_level(logging.WARNING, logger="precompute.adapters.fairchem_v1"):
        ad = FairChemV1Adapter(_card("esen"), "cpu", str(path))
    assert "full unpickling" in caplog.text
    np.testing.assert_array_equal(ad.embed(molecules + crystals).embeddings, results["esen"].embeddings)


def test_cards_match_fairchem_1_10_pretrained_list():
    """Every eqv2-* / esen-30m-* card names a checkpoint fairchem-core 1.10 lists, with the same file and repo."""
    import fairchem.core.models as fcm

    from precompute.adapters.fairchem_v1 import ARCHITECTURES, HF_REPO, checkpoint_file_name
    from precompute.registry import load_cards

    listed = json.loads((Path(fcm.__file__).parent / "pretrained_models.json").read_text())
    cards = {k: v for k, v in load_cards().items() if k.startswith(("eqv2-", "esen-30m-"))}
    assert len(cards) == 13
    for mid, card in cards.items():
        opts = card["options"]
        entry = listed[opts["pretrained_name"]]
        assert entry["repo_id"] == HF_REPO, mid
        assert entry["filename"] == checkpoint_file_name(card), mid
        assert opts["architecture"] in ARCHITECTURES, mid
        assert (
            card["adapter"] == "precompute.adapters.fairchem_v1:FairChemV1Adapter"
            and card["environment"] == "fairchem1"
        )
        want = {"EquiformerV2": ("equiformer_v2", "equiformer_v2_dens"), "eSEN": ("esen",)}[card["family"]]
        assert opts["architecture"] in want, mid
        assert ("DeNS" in opts["pretrained_name"]) == (opts["architecture"] == "equiformer_v2_dens"), mid
