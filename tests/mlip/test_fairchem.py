"""fairchem 2.x adapter (precompute/adapters/fairchem.py) and the Geom2Vec placeholder, run inside .venv-mlip.

No UMA or eSEN weights can be downloaded here (gated Hugging Face repos), so the tests build SMALL checkpoints of
the real architectures with RANDOM weights from fairchem's own classes (hydra-instantiated `HydraModel`s, written
as `MLIPInferenceCheckpoint` files with torch.save, the format of the released files) and load them through the
adapter's real loading path (`load_predict_unit`):

- UMA-style: `eSCNMDMoeBackbone` with 4 MoLE experts, tasks omat + omol, one conservative `MLP_EFS_Head`;
- eSEN-style conserving: the same backbone class with `num_experts=0` (no experts), task omol only;
- eSEN-style direct: `num_experts=0`, `MLP_Energy_Head` + `Linear_Force_Head` (direct forces).

Inputs: the 5 real QM9 molecules and the 5 crystals of precompute/adapters/_testdata.py.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from precompute.adapters import _testdata as td
from precompute.adapters._structure import MalformedStructure
from precompute.datasets.base import Label, Sample

torch = pytest.importorskip("torch")
pytest.importorskip("fairchem.core")

from precompute.adapters import fairchem as fc  # noqa: E402 - after the skip checks
from precompute.adapters import geom2vec as g2v  # noqa: E402
from precompute.registry import load_card  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-4  # invariance: float32 network (measured ~1e-6, see test_rotation_translation_invariance)
BATCH_TOL = 1e-5  # batched vs one by one: random edge roll angles differ with the batch (measured ~5e-7)
ENERGY_ATOL = 1e-4  # eV vs FAIRChemCalculator, |E| up to 220 eV: float32, roll angles (measured 8.5e-8)
DIM = 16
TINY = {
    "sphere_channels": DIM,
    "edge_channels": DIM,
    "hidden_channels": DIM,
    "num_distance_basis": 16,
    "num_layers": 2,
    "lmax": 2,
    "mmax": 2,
}


def _task(name: str, dataset: str, prop: str) -> dict:
    level, dim = {"energy": ("system", [1]), "forces": ("atom", [3])}[prop]
    cfg = {
        "_target_": "fairchem.core.units.mlip_unit.mlip_unit.Task",
        "name": name,
        "level": level,
        "property": prop,
        "out_spec": {"dim": dim, "dtype": "float32"},
        "normalizer": {
            "_target_": "fairchem.core.modules.normalization.normalizer.Normalizer",
            "mean": 0.0,
            "rmsd": 2.0,
        },
        "datasets": [dataset],
    }
    if prop == "energy":  # non-zero element references: the total energy must include them
        refs = [0.0] + [-1.5 * z for z in range(1, 100)]
        cfg["element_references"] = {
            "_target_": "fairchem.core.modules.normalization.element_references.ElementReferences",
            "element_references": {"_target_": "torch.DoubleTensor", "_args_": [refs]},
        }
    return cfg


def _write_checkpoint(path: Path, num_experts: int, datasets: list[str], direct: bool, seed: int = 0) -> Path:
    """A tiny fairchem HydraModel with random weights, saved as fairchem's MLIPInferenceCheckpoint."""
    import hydra
    from fairchem.core.units.mlip_unit.api.inference import MLIPInferenceCheckpoint

    backbone = {
        "model": "fairchem.core.models.uma.escn_moe.eSCNMDMoeBackbone",
        "num_experts": num_experts,
        "use_composition_embedding": num_experts > 0,
        "max_num_elements": 100,
        "otf_graph": True,
        "max_neighbors": 300,
        "cutoff": 6.0,
        "regress_forces": True,
        "regress_stress": not direct,
        "direct_forces": direct,
        "norm_type": "rms_norm_sh",
        "act_type": "gate",
        "ff_type": "spectral",
        "chg_spin_emb_type": "rand_emb",
        "dataset_list": datasets,
        **TINY,
    }
    if num_experts > 0:
        backbone["model_version"] = 1.1  # fairchem refuses untagged UMA (MoLE) checkpoints
    if direct:
        heads = {f"{d}_energy": {"module": "fairchem.core.models.uma.escn_md.MLP_Energy_Head"} for d in datasets}
        heads.update(
            {f"{d}_forces": {"module": "fairchem.core.models.uma.escn_md.Linear_Force_Head"} for d in datasets}
        )
        model_cfg = {"_target_": "fairchem.core.models.base.HydraModel", "backbone": backbone, "heads": heads}
    else:
        heads = {
            "efs": {
                "module": "fairchem.core.models.uma.escn_moe.DatasetSpecificSingleHeadWrapper",
                "head_cls": "fairchem.core.models.uma.escn_md.MLP_EFS_Head",
                "head_kwargs": {"wrap_property": False},
                "dataset_names": datasets,
            }
        }
        model_cfg = {
            "_target_": "fairchem.core.models.base.HydraModel",
            "backbone": backbone,
            "heads": heads,
            "pass_through_head_outputs": True,
        }
    torch.manual_seed(seed)
    model = hydra.utils.instantiate(model_cfg)
    ema = torch.optim.swa_utils.AveragedModel(model).state_dict()
    tasks = [_task(f"{d}_{p}", d, p) for d in datasets for p in ("energy", "forces")]
    torch.save(MLIPInferenceCheckpoint(model_cfg, model.state_dict(), ema, tasks), path)
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("fairchem")
    return {
        "uma": _write_checkpoint(root / "uma-s-1p1.pt", 4, ["omat", "omol"], direct=False),
        "esen": _write_checkpoint(root / "esen_sm_conserving_all.pt", 0, ["omol"], direct=False),
        "esen_direct": _write_checkpoint(root / "esen_sm_direct_all.pt", 0, ["omol"], direct=True),
    }


@pytest.fixture(scope="module")
def molecules():
    return td.qm9_molecules(5)


@pytest.fixture(scope="module")
def crystals():
    return td.crystals()


@pytest.fixture(scope="module")
def uma(ckpts):
    return fc.FairChemAdapter(load_card("uma-s-1p1"), checkpoint=str(ckpts["uma"]))


@pytest.fixture(scope="module")
def uma_result(uma, molecules, crystals):
    return uma.embed(molecules + crystals)


def _calculator_energies(path: Path, samples: list[Sample], tasks: list[str]) -> np.ndarray:
    from fairchem.core import FAIRChemCalculator
    from fairchem.core.calculate.pretrained_mlip import get_predict_unit

    unit = get_predict_unit(str(path), inference_settings="batch", device="cpu")
    out = []
    for s, task in zip(samples, tasks, strict=True):
        atoms = s.atoms.copy()
        atoms.info = {}
        atoms.calc = FAIRChemCalculator(unit, task_name=task)
        out.append(atoms.get_potential_energy())
    return np.asarray(out)


# --------------------------------------------------------------------------------------------------------------------
# shapes, energies, determinism, invariance, batching


def test_shapes_and_energies_match_fairchem_calculator(uma, uma_result, molecules, crystals, ckpts):
    samples = molecules + crystals
    r = uma_result
    assert r.ids == [s.sample_id for s in samples] and not r.failures
    assert r.embeddings.shape == (10, DIM) and r.embeddings.dtype == np.float32
    assert np.isfinite(r.embeddings).all() and np.abs(r.embeddings).max() > 1e-3
    assert uma.embedding_dim == DIM and uma.params > 0
    assert r.energies is not None and r.energies.shape == (10,) and r.energies.dtype == np.float64
    assert np.isfinite(r.energies).all()
    # the calculator with the same checkpoint: omol for the molecules, omat for the crystals (charge 0, spin 1 / 0)
    want = _calculator_energies(ckpts["uma"], samples, ["omol"] * 5 + ["omat"] * 5)
    np.testing.assert_allclose(r.energies, want, rtol=0, atol=ENERGY_ATOL)
    # the element references (-1.5 eV per unit of Z) are part of the total energy
    assert r.energies[0] < -1.0 * int(molecules[0].atoms.numbers.sum())


def test_embedding_is_the_pooled_l0_backbone_output(uma, molecules):
    """The vector equals the mean over atoms of node_embedding[:, 0, :] of a plain backbone call."""
    from fairchem.core.datasets.atomic_data import atomicdata_list_to_batch

    s = molecules[1]
    got = uma.embed([s]).embeddings[0]
    data = atomicdata_list_to_batch([uma._atomic_data(s)])
    hooks = uma.backbone._forward_hooks
    saved = dict(hooks)
    hooks.clear()  # a plain call, without the adapter's capture
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(uma.seed)
            out = uma.backbone(data)
    finally:
        hooks.update(saved)
    ne = out["node_embedding"].detach()
    assert ne.shape == (len(s.atoms), 9, DIM)  # (lmax+1)^2 = 9
    np.testing.assert_allclose(got, ne[:, 0, :].mean(0).numpy(), atol=1e-5, rtol=0)


def test_deterministic(uma, uma_result, molecules, crystals, ckpts):
    again = uma.embed(molecules + crystals)
    np.testing.assert_array_equal(again.embeddings, uma_result.embeddings)
    np.testing.assert_array_equal(again.energies, uma_result.energies)
    torch.manual_seed(999)  # the caller's generator does not change the result
    fresh = fc.FairChemAdapter(load_card("uma-s-1p1"), checkpoint=str(ckpts["uma"])).embed(molecules + crystals)
    np.testing.assert_array_equal(fresh.embeddings, uma_result.embeddings)


def test_rotation_translation_invariance(uma, uma_result, molecules, crystals):
    moved = [td.translated(td.rotated(s, seed=3)) for s in molecules]
    moved += [td.translated(td.rotated(s, seed=4), shift=(0.37, -1.1, 2.9)) for s in crystals]
    r = uma.embed(moved)
    emb_err = float(np.abs(r.embeddings - uma_result.embeddings).max())
    energy_err = float(np.abs(r.energies - uma_result.energies).max())
    print(f"invariance: embedding max abs diff {emb_err:.2e}, energy {energy_err:.2e} eV")
    assert emb_err <= TOL
    assert energy_err <= 1e-3


def test_batched_equals_one_by_one(uma, uma_result, molecules, crystals):
    singles = uma.embed(molecules + crystals, batch_size=1)
    assert singles.ids == uma_result.ids
    np.testing.assert_allclose(singles.embeddings, uma_result.embeddings, atol=BATCH_TOL, rtol=0)
    np.testing.assert_allclose(singles.energies, uma_result.energies, atol=ENERGY_ATOL, rtol=0)
    threes = uma.embed(molecules + crystals, batch_size=3)  # mixed omol/omat batches
    np.testing.assert_allclose(threes.embeddings, uma_result.embeddings, atol=BATCH_TOL, rtol=0)


# --------------------------------------------------------------------------------------------------------------------
# tasks, charge and spin


def test_task_is_chosen_per_sample(ckpts, uma_result, molecules):
    card = copy.deepcopy(load_card("uma-s-1p1"))
    card["options"]["task_name"] = "omat"  # molecules through the materials task
    r = fc.FairChemAdapter(card, checkpoint=str(ckpts["uma"])).embed(molecules)
    assert np.abs(r.embeddings - uma_result.embeddings[:5]).max() > 1e-3
    card["options"]["task_name"] = {"molecules": "oc20", "materials": "omat"}
    with pytest.raises(ValueError, match=r"oc20.*not in this checkpoint"):
        fc.FairChemAdapter(card, checkpoint=str(ckpts["uma"]))


def test_charge_and_spin_come_from_the_sample(uma, uma_result, molecules):
    base = molecules[0]
    charged = copy.deepcopy(base)
    charged.sample_id = "ion:info"
    charged.atoms.info.update(charge=1, spin=2)
    via_meta = Sample("ion:meta", atoms=base.atoms.copy(), meta={"charge": 1, "spin": 2})
    via_labels = Sample(
        "ion:labels", atoms=base.atoms.copy(), labels={"charge": Label(1.0, "e"), "spin": Label(2.0, "1")}
    )
    neutral = Sample("neutral:explicit", atoms=base.atoms.copy(), meta={"charge": 0, "spin": 1})
    bad = Sample("bad:spin", atoms=base.atoms.copy(), meta={"charge": 0, "spin": 1.5})
    r = uma.embed([charged, via_meta, via_labels, neutral, bad])
    assert r.ids == ["ion:info", "ion:meta", "ion:labels", "neutral:explicit"]
    assert "bad:spin" in r.failures and "spin" in r.failures["bad:spin"].lower()
    # the same structure at another place in the batch draws other edge roll angles: equal up to float32 rounding
    np.testing.assert_allclose(r.embeddings[0], r.embeddings[1], atol=BATCH_TOL, rtol=0)
    np.testing.assert_allclose(r.embeddings[0], r.embeddings[2], atol=BATCH_TOL, rtol=0)
    assert np.abs(r.embeddings[0] - r.embeddings[3]).max() > 1e-4  # charge/spin change the embedding
    np.testing.assert_allclose(r.embeddings[3], uma_result.embeddings[0], atol=BATCH_TOL, rtol=0)  # default 0 / 1


# --------------------------------------------------------------------------------------------------------------------
# eSEN-style checkpoints (no experts): conserving and direct


@pytest.mark.parametrize(
    "kind,model_id", [("esen", "esen-sm-conserving-all-omol"), ("esen_direct", "esen-sm-direct-all-omol")]
)
def test_esen_style_checkpoints(kind, model_id, ckpts, molecules, crystals):
    a = fc.FairChemAdapter(load_card(model_id), checkpoint=str(ckpts[kind]))
    assert a.backbone.num_experts == 0
    samples = molecules + crystals  # the card sends crystals through omol too
    r = a.embed(samples)
    assert r.ids == [s.sample_id for s in samples] and r.embeddings.shape == (10, DIM)
    assert np.isfinite(r.embeddings).all() and np.isfinite(r.energies).all()
    np.testing.assert_allclose(r.energies, _calculator_energies(ckpts[kind], samples, ["omol"] * 10), atol=ENERGY_ATOL)
    moved = a.embed([td.translated(td.rotated(s, seed=5)) for s in molecules])
    assert np.abs(moved.embeddings - r.embeddings[:5]).max() <= TOL
    singles = a.embed(molecules, batch_size=1)
    np.testing.assert_allclose(singles.embeddings, r.embeddings[:5], atol=BATCH_TOL, rtol=0)


# --------------------------------------------------------------------------------------------------------------------
# bad input, failures, settings, missing checkpoints


def test_malformed_input_raises_naming_the_sample(uma, molecules):
    with pytest.raises(MalformedStructure, match="bad:nan"):
        uma.embed([molecules[0], td.with_nan(molecules[1], "bad:nan")])
    with pytest.raises(MalformedStructure, match="bad:overlap"):
        uma.embed([td.overlapping(molecules[2], "bad:overlap")])
    with pytest.raises(MalformedStructure, match="no structure"):
        uma.embed([Sample("bad:none", smiles="C")])


def test_unsupported_samples_are_failures_with_reasons(uma, molecules):
    from ase import Atoms

    lone = Sample("lone:H", atoms=Atoms("H", positions=[[0, 0, 0]]))
    heavy = Sample("heavy:Fm", atoms=Atoms("FmH", positions=[[0, 0, 0], [0, 0, 2.0]]))  # Z=100
    r = uma.embed([lone, molecules[0], heavy])
    assert r.ids == [molecules[0].sample_id] and r.embeddings.shape == (1, DIM) and r.energies.shape == (1,)
    assert "single atom" in r.failures["lone:H"]
    assert "Z=[100]" in r.failures["heavy:Fm"]


def test_inference_settings_that_merge_or_compile_are_refused(ckpts):
    card = copy.deepcopy(load_card("uma-s-1p1"))
    card["options"]["inference_settings"] = "default"
    with pytest.raises(ValueError, match="merges MoLE experts or compiles"):
        fc.FairChemAdapter(card, checkpoint=str(ckpts["uma"]))
    card["options"]["inference_settings"] = "no-such-mode"
    with pytest.raises(ValueError, match="unknown inference_settings"):
        fc.FairChemAdapter(card, checkpoint=str(ckpts["uma"]))


def test_missing_checkpoint_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path / "weights"))
    card = load_card("uma-s-1p1")
    expected = tmp_path / "weights" / "uma-s-1p1" / "uma-s-1p1.pt"
    with pytest.raises(fc.MissingCheckpoint) as err:
        fc.FairChemAdapter(card, checkpoint=str(tmp_path / "nowhere" / "uma-s-1p1.pt"))
    msg = str(err.value)
    for part in ("nowhere/uma-s-1p1.pt", "does not exist", "facebook/UMA", "checkpoints/uma-s-1p1.pt", "--checkpoint"):
        assert part in msg, (part, msg)
    assert str(expected) in msg
    with pytest.raises(fc.MissingCheckpoint) as err:  # no --checkpoint: the hub name cannot be fetched offline
        fc.FairChemAdapter(load_card("esen-sm-conserving-all-omol"))
    msg = str(err.value)
    for part in ("esen_sm_conserving_all.pt", "facebook/OMol25", "huggingface-cli", "--checkpoint"):
        assert part in msg, (part, msg)
    assert str(tmp_path / "weights" / "esen-sm-conserving-all-omol" / "esen_sm_conserving_all.pt") in msg


def test_weights_root_file_is_found_and_loaded(tmp_path, monkeypatch, ckpts, uma, uma_result, molecules, crystals):
    """`$MATTER_ALIGN_WEIGHTS/<model_id>/<hub file name>` is loaded without --checkpoint and before fairchem's own
    resolver (which, offline and with an empty cache, would fail); --checkpoint still wins."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path / "weights"))
    folder = tmp_path / "weights" / "uma-s-1p1"
    folder.mkdir(parents=True)
    (folder / "uma-s-1p1.pt").symlink_to(ckpts["uma"])
    (folder / "notes.txt").write_text("not a checkpoint")
    path, atom_refs, _ = fc.resolve_checkpoint_file(load_card("uma-s-1p1"), None)
    assert path == str(folder / "uma-s-1p1.pt") and atom_refs is None
    a = fc.FairChemAdapter(load_card("uma-s-1p1"))
    assert a.checkpoint_path == str(folder / "uma-s-1p1.pt")
    r = a.embed(molecules + crystals)
    np.testing.assert_array_equal(r.embeddings, uma_result.embeddings)
    np.testing.assert_array_equal(r.energies, uma_result.energies)
    assert fc.resolve_checkpoint_file(load_card("uma-s-1p1"), str(ckpts["esen"]))[0] == str(ckpts["esen"])


def test_cards_point_at_this_adapter():
    for mid in ("uma-s-1p1", "uma-m-1p1", "uma-s-1p1-random-init"):
        card = load_card(mid)
        assert card["environment"] == "mlip" and card["adapter"].endswith("fairchem:FairChemAdapter")
        assert card["options"]["task_name"] == {"molecules": "omol", "materials": "omat"}
        assert card["equivariance"] == "invariant" and card["force_head"] == "conservative"
    for mid, head in [
        ("esen-sm-conserving-all-omol", "conservative"),
        ("esen-sm-direct-all-omol", "direct"),
        ("esen-md-direct-all-omol", "direct"),
    ]:
        card = load_card(mid)
        assert card["force_head"] == head and card["training_sets"] == ["omol25"]
        assert card["options"]["task_name"] == "omol" and fc.hub_file(card["checkpoint"]) is not None
    assert load_card("uma-s-1p1-random-init")["source"] == "random_init"
    assert load_card("uma-s-1p1")["source"] == "pretrained"


# --------------------------------------------------------------------------------------------------------------------
# random-weight control


def test_random_init_card(molecules, crystals):
    card = copy.deepcopy(load_card("uma-s-1p1-random-init"))
    card["options"]["random_init"]["backbone"] = {**TINY, "num_experts": 4}  # tiny: the full size is checked below
    a = fc.FairChemAdapter(card)
    assert a.checkpoint_path is None and a.backbone.num_experts == 4
    first = a.embed(molecules[:2] + crystals[:1])
    assert first.embeddings.shape == (3, DIM) and np.isfinite(first.energies).all()
    torch.manual_seed(12345)  # the global generator does not leak into the build
    second = fc.FairChemAdapter(card).embed(molecules[:2] + crystals[:1])
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    other = copy.deepcopy(card)
    other["options"]["random_init"]["seed"] = 1
    assert np.abs(fc.FairChemAdapter(other).embed(molecules[:2]).embeddings - first.embeddings[:2]).max() > 1e-3
    with pytest.raises(ValueError, match="loads no checkpoint"):
        fc.FairChemAdapter(card, checkpoint="/some/file.pt")


def test_random_init_full_size_is_the_uma_s_architecture():
    """The card's full-size build: UMA-S 1.1 widths, 32 experts, the parameter count the card records."""
    import hydra

    card = load_card("uma-s-1p1-random-init")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = hydra.utils.instantiate(fc.random_model_config())
    n = sum(p.numel() for p in model.parameters())
    assert n == card["params"] == 146_566_817  # UMA-S: ~150M parameters in all (UMA paper)
    assert model.backbone.num_experts == 32 and model.backbone.sphere_channels == card["embedding_dim"] == 128
    assert model.backbone.num_layers == 4 and model.backbone.lmax == 2


# --------------------------------------------------------------------------------------------------------------------
# end to end through the CLI, and Geom2Vec

MATTER_ALIGN = ROOT / ".venv" / "bin" / "matter-align"


@pytest.mark.skipif(not MATTER_ALIGN.exists(), reason=f"{MATTER_ALIGN} missing: the base environment is not built")
def test_matter_align_extract_with_a_checkpoint(tmp_path, ckpts):
    """`matter-align extract --models uma-s-1p1 --checkpoint PATH` from the base environment (worker in .venv-mlip)."""
    from precompute.datasets import load_dataset
    from precompute.extract.store import DatasetKey, EmbeddingStore

    store = tmp_path / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [str(MATTER_ALIGN), "extract", "--dataset", "qm9", "--n", "5", "--seed", "0", "--models", "uma-s-1p1"]
    cmd += ["--checkpoint", str(ckpts["uma"]), "--store", str(store), "--device", "cpu", "--progress", "none"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    stored = EmbeddingStore(store).read(DatasetKey.build("qm9", 5, 0), "uma-s-1p1")
    mols = load_dataset("qm9", n=5, seed=0)
    direct = fc.FairChemAdapter(load_card("uma-s-1p1"), checkpoint=str(ckpts["uma"])).embed(mols)
    assert list(stored.ids) == [s.sample_id for s in mols] and stored.embeddings.shape == (5, DIM)
    np.testing.assert_allclose(stored.embeddings, direct.embeddings, atol=BATCH_TOL, rtol=0)
    np.testing.assert_allclose(stored.energies, direct.energies, atol=ENERGY_ATOL, rtol=0)


def test_geom2vec_explains_what_is_missing():
    card = load_card("geom2vec")
    with pytest.raises(g2v.Geom2VecUnavailable) as err:
        g2v.Geom2VecAdapter(card)
    msg = str(err.value)
    for part in ("not on PyPI", "github.com/zpengmei/geom2vec", "pip install -e", "visnet_l6_h64_rbf64_r75.pth"):
        assert part in msg, (part, msg)
    assert card["source"] == "pretrained" and card["checkpoint"].endswith("visnet_l6_h64_rbf64_r75.pth")
