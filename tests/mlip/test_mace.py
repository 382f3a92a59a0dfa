"""MACE adapter (precompute/adapters/mace.py), run inside .venv-mlip.

No MACE weights can be downloaded here, so the tests build real MACE architectures with RANDOM weights from mace's
own modules, save them as `.model` files (torch.save of the module, mace's format) and load them through the
adapter's real loading path: a tiny ScaleShiftMACE (8 channels, L=1, elements H..Zn) for most checks, and the full
MACE-MP-0 medium architecture for the random-init card and the end-to-end `matter-align extract` run. Inputs: 5 real
QM9 molecules and the 5 crystals of precompute/adapters/_testdata.py.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from precompute.adapters import _testdata as td
from precompute.adapters._structure import MalformedStructure
from precompute.adapters._weights import REPO_ROOT
from precompute.datasets.base import Sample

torch = pytest.importorskip("torch")
pytest.importorskip("mace")

from precompute.adapters import mace as mace_adapter  # noqa: E402 - after the skip checks
from precompute.registry import load_card  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Computed in float64, stored as float32: measured max |diff| after rotation+translation is 0.0 on the tiny model (its
# features are ~4e-3, so 1 float32 ulp is ~4e-10); 1e-6 leaves room for other BLAS builds and still fails for any
# real symmetry break (the l=1 features of the equivariant variant move by ~6e-3).
TOL = 1e-6
TINY_ELEMENTS = list(range(1, 31))  # H..Zn: every QM9 and test-crystal element; Au (79) is outside


def _tiny_mace(hidden: str = "8x0e+8x1o", keep_last_layer_irreps: bool = False, seed: int = 0):
    from e3nn import o3
    from mace import modules

    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    n = len(TINY_ELEMENTS)
    torch.manual_seed(seed)
    return modules.ScaleShiftMACE(
        r_max=5.0,
        num_bessel=4,
        num_polynomial_cutoff=5,
        max_ell=2,
        interaction_cls=block,
        interaction_cls_first=block,
        num_interactions=2,
        num_elements=n,
        hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps("4x0e"),
        atomic_energies=np.linspace(-1.0, -5.0, n),  # non-zero E0s, so the total energy includes them
        avg_num_neighbors=8.0,
        atomic_numbers=TINY_ELEMENTS,
        correlation=2,
        gate=torch.nn.functional.silu,
        radial_MLP=[8, 8],
        atomic_inter_scale=1.3,
        atomic_inter_shift=0.1,
        keep_last_layer_irreps=keep_last_layer_irreps,
    )


def _card(invariants_only: bool, last_layer_only: bool, **extra) -> dict:
    card = copy.deepcopy(load_card("mace-mp-0-medium-inv"))
    card["options"] = {"invariants_only": invariants_only, "last_layer_only": last_layer_only, **extra}
    return card


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("mace") / "tiny.model"
    torch.save(_tiny_mace(), path)
    return str(path)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return td.qm9_molecules(5) + td.crystals()


@pytest.fixture(scope="module")
def inv(tiny_file):
    return mace_adapter.MACEAdapter(_card(True, True), device="cpu", checkpoint=tiny_file)


@pytest.fixture(scope="module")
def eqv(tiny_file):
    return mace_adapter.MACEAdapter(_card(False, False), device="cpu", checkpoint=tiny_file)


@pytest.fixture(scope="module")
def inv_result(inv, samples):
    return inv.embed(samples)


@pytest.fixture(scope="module")
def eqv_result(eqv, samples):
    return eqv.embed(samples)


def _moved(samples: list[Sample], seed: int = 3) -> list[Sample]:
    return [td.translated(td.rotated(s, seed=seed)) for s in samples]


def test_shapes_ids_and_energies(inv, eqv, inv_result, eqv_result, samples):
    ids = [s.sample_id for s in samples]
    # tiny model: layer 1 = 8x0e+8x1o (32 numbers), layer 2 (last) = 8x0e
    assert [str(ir) for ir in inv.layer_irreps] == ["8x0e+8x1o", "8x0e"]
    assert inv.embedding_dim == 8 and eqv.embedding_dim == 40
    assert inv_result.ids == ids and eqv_result.ids == ids and not inv_result.failures
    assert inv_result.embeddings.shape == (10, 8) and inv_result.embeddings.dtype == np.float32
    assert eqv_result.embeddings.shape == (10, 40)
    # the invariant variant is the last 8 columns of the full node_feats (last layer, scalar-only)
    np.testing.assert_array_equal(inv_result.embeddings, eqv_result.embeddings[:, 32:])
    assert np.isfinite(inv_result.embeddings).all() and inv_result.embeddings.std(axis=0).min() > 0
    assert inv_result.energies.shape == (10,) and np.isfinite(inv_result.energies).all()
    np.testing.assert_array_equal(inv_result.energies, eqv_result.energies)


def test_deterministic_across_calls_and_loads(inv, inv_result, samples, tiny_file):
    again = inv.embed(samples)
    np.testing.assert_array_equal(again.embeddings, inv_result.embeddings)
    reloaded = mace_adapter.MACEAdapter(_card(True, True), checkpoint=tiny_file).embed(samples)
    np.testing.assert_array_equal(reloaded.embeddings, inv_result.embeddings)
    np.testing.assert_array_equal(reloaded.energies, inv_result.energies)


def test_invariant_variant_is_rotation_and_translation_invariant(inv, inv_result, samples):
    moved = inv.embed(_moved(samples))
    diff = np.abs(moved.embeddings - inv_result.embeddings).max()
    assert diff <= TOL, diff
    assert np.abs(moved.energies - inv_result.energies).max() <= 1e-6


def test_equivariant_variant_rotates_with_the_structure(eqv, eqv_result, samples):
    """Not invariant; its l=0 part is; each pooled (channel, l) block rotates by D^l(R), so its norm is invariant."""
    from e3nn import o3

    rot = td.random_rotation(3)
    moved = eqv.embed(_moved(samples, seed=3)).embeddings.astype(np.float64)
    base = eqv_result.embeddings.astype(np.float64)
    irreps = o3.Irreps("+".join(str(ir) for ir in eqv.layer_irreps))
    blocks = list(zip(irreps, irreps.slices(), strict=True))
    scalar = np.concatenate([np.arange(sl.start, sl.stop) for (_, ir), sl in blocks if ir.l == 0])
    vector = np.setdiff1d(np.arange(irreps.dim), scalar)
    molecules = slice(0, 5)
    assert np.abs(moved[molecules][:, vector] - base[molecules][:, vector]).max() > 1e-3  # NOT invariant
    assert np.abs(moved[:, scalar] - base[:, scalar]).max() <= TOL
    d = irreps.D_from_matrix(torch.as_tensor(rot, dtype=torch.float64)).numpy()
    assert np.abs(moved - base @ d.T).max() <= TOL  # equivariant: f(Rx) = D(R) f(x), crystals included
    for (mul, ir), sl in blocks:
        a = base[:, sl].reshape(len(base), mul, ir.dim)
        b = moved[:, sl].reshape(len(base), mul, ir.dim)
        assert np.abs(np.linalg.norm(a, axis=2) - np.linalg.norm(b, axis=2)).max() <= TOL


def test_batched_equals_one_by_one(inv, eqv, inv_result, eqv_result, samples):
    for adapter, full in ((inv, inv_result), (eqv, eqv_result)):
        rows = [adapter.embed([s], batch_size=1) for s in samples]
        np.testing.assert_allclose(np.concatenate([r.embeddings for r in rows]), full.embeddings, atol=1e-6, rtol=0)
        np.testing.assert_allclose(np.concatenate([r.energies for r in rows]), full.energies, atol=1e-8, rtol=0)
    odd = inv.embed(samples, batch_size=3)
    np.testing.assert_allclose(odd.embeddings, inv_result.embeddings, atol=1e-6, rtol=0)


def test_embeddings_and_energies_equal_mace_calculator(inv_result, eqv_result, samples, tiny_file):
    """mace's own ASE calculator as the oracle: its total energy, and the per-atom mean of its descriptors
    (get_descriptors: invariants_only=False -> the full node_feats; True -> l=0 of each layer, the last block last)."""
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=tiny_file, device="cpu", default_dtype="float64")
    energies, full, last_scalars = [], [], []
    for s in samples:
        atoms = s.atoms.copy()
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
        full.append(calc.get_descriptors(atoms, invariants_only=False).mean(axis=0))
        last_scalars.append(calc.get_descriptors(atoms, invariants_only=True)[:, -8:].mean(axis=0))
    np.testing.assert_allclose(inv_result.energies, energies, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(eqv_result.embeddings, np.stack(full), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(inv_result.embeddings, np.stack(last_scalars), rtol=1e-6, atol=1e-9)


def test_float32_option_agrees_with_float64(inv_result, samples, tiny_file):
    f32 = mace_adapter.MACEAdapter(_card(True, True, dtype="float32"), checkpoint=tiny_file)
    assert next(f32.model.parameters()).dtype == torch.float32
    res = f32.embed(samples)
    np.testing.assert_allclose(res.embeddings, inv_result.embeddings, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="dtype"):
        mace_adapter.MACEAdapter(_card(True, True, dtype="float16"), checkpoint=tiny_file)


def test_malformed_input_names_the_sample(inv, samples):
    mol = samples[0]
    with pytest.raises(MalformedStructure, match="bad:overlap"):
        inv.embed([samples[1], td.overlapping(mol)])
    with pytest.raises(MalformedStructure, match="bad:nan"):
        inv.embed([td.with_nan(mol)])
    with pytest.raises(MalformedStructure, match="bad:overlap-crystal"):
        inv.embed([td.overlapping(samples[5], sample_id="bad:overlap-crystal")])


def test_element_outside_the_model_is_a_recorded_failure(inv, samples):
    from ase.build import bulk

    gold = Sample("crystal:Au-fcc", atoms=bulk("Au", "fcc", a=4.08))
    res = inv.embed([samples[0], gold, samples[5]])
    assert res.ids == [samples[0].sample_id, samples[5].sample_id]
    assert "Z=[79]" in res.failures["crystal:Au-fcc"]
    assert res.embeddings.shape == (2, 8) and res.energies.shape == (2,)


def test_missing_checkpoint_names_the_url_and_the_flag(tmp_path, monkeypatch, tiny_file):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path / "weights"))
    card = load_card("mace-mp-0-medium-inv")
    url = card["checkpoint"]
    expected = tmp_path / "weights" / "mace-mp-0-medium-inv" / "2023-12-03-mace-128-L1_epoch-199.model"
    with pytest.raises(mace_adapter.MissingCheckpoint) as err:
        mace_adapter.MACEAdapter(card)
    msg = str(err.value)
    assert url in msg and "--checkpoint" in msg and "mace-mp-0-medium-inv" in msg
    assert str(expected) in msg  # the one place the rule says to put it
    assert str(tmp_path / "cache" / "mace") in msg  # where mace's own mace_mp() would cache it
    with pytest.raises(mace_adapter.MissingCheckpoint, match="no-such.model") as err:
        mace_adapter.MACEAdapter(card, checkpoint=str(tmp_path / "no-such.model"))
    assert url in str(err.value) and str(expected) in str(err.value)
    # a file where mace_mp() caches the download is found without --checkpoint
    cached = mace_adapter.mace_cache_path(url)
    assert cached.name == "20231203mace128L1_epoch199model"  # mace keeps [A-Za-z0-9_] of an MP file name
    cached.parent.mkdir(parents=True)
    shutil.copy(tiny_file, cached)
    assert mace_adapter.MACEAdapter(card).model_file == str(cached)
    off = load_card("mace-off23-medium-inv")
    assert mace_adapter.mace_cache_path(off["checkpoint"]).name == "MACE-OFF23_medium.model"


def test_weights_root_file_is_found_and_loaded(tmp_path, monkeypatch, tiny_file, inv, samples):
    """`$MATTER_ALIGN_WEIGHTS/<model_id>/<URL file name>` is loaded without --checkpoint, before mace's cache; a
    renamed file is found when it is the only .model file there; --checkpoint still wins."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path / "weights"))
    card = _card(True, True)  # the mace-mp-0-medium-inv card
    folder = tmp_path / "weights" / card["model_id"]
    folder.mkdir(parents=True)
    (folder / "my-copy.model").symlink_to(tiny_file)
    a = mace_adapter.MACEAdapter(card)
    assert a.model_file == str(folder / "my-copy.model")
    shutil.copy(tiny_file, folder / "2023-12-03-mace-128-L1_epoch-199.model")
    other = tmp_path / "other.model"
    torch.save(_tiny_mace(seed=1), other)
    cached = mace_adapter.mace_cache_path(card["checkpoint"])
    cached.parent.mkdir(parents=True)
    shutil.copy(other, cached)  # mace's own cache comes after the weights root
    a = mace_adapter.MACEAdapter(card)
    assert a.model_file == str(folder / "2023-12-03-mace-128-L1_epoch-199.model")
    np.testing.assert_array_equal(a.embed(samples).embeddings, inv.embed(samples).embeddings)
    b = mace_adapter.MACEAdapter(card, checkpoint=str(other))
    assert b.model_file == str(other)
    assert np.abs(b.embed(samples[:2]).embeddings - a.embed(samples[:2]).embeddings).max() > 1e-6


def test_card_with_a_local_model_file(tmp_path, monkeypatch, tiny_file):
    """A card whose checkpoint is a local path (a model trained here): found as given or relative to the repo."""
    card = _card(True, True)
    card["checkpoint"] = tiny_file
    assert mace_adapter.MACEAdapter(card).model_file == tiny_file
    monkeypatch.chdir(tmp_path)  # relative paths are tried against the repository root too
    card["checkpoint"] = "precompute/adapters/no-such-trained.model"
    with pytest.raises(mace_adapter.MissingCheckpoint, match="no-such-trained.model") as err:
        mace_adapter.MACEAdapter(card)
    assert str(REPO_ROOT) in str(err.value) and "--checkpoint" in str(err.value)


def test_equivariant_last_layer_only(tmp_path, samples, tiny_file):
    with pytest.raises(ValueError, match="scalar-only"):
        mace_adapter.MACEAdapter(_card(False, True), checkpoint=tiny_file)
    path = tmp_path / "keep.model"
    torch.save(_tiny_mace(keep_last_layer_irreps=True), path)
    a = mace_adapter.MACEAdapter(_card(False, True), checkpoint=str(path))
    assert [str(ir) for ir in a.layer_irreps] == ["8x0e+8x1o", "8x0e+8x1o"] and a.embedding_dim == 32
    b = mace_adapter.MACEAdapter(_card(True, True), checkpoint=str(path))
    assert b.embedding_dim == 8
    mols = samples[:2]
    full, scal = a.embed(mols).embeddings, b.embed(mols).embeddings
    np.testing.assert_array_equal(full[:, :8], scal)  # 0e channels come first in 8x0e+8x1o


def test_card_options_and_dims_match_the_mp_architectures():
    """Every MACE-MP-0 card's options select features of the size its embedding_dim states (random weights)."""
    for size in ("small", "medium", "large"):
        model = mace_adapter.build_mace_mp(size, seed=0)
        irreps = mace_adapter.layer_irreps(model)
        assert [str(ir) for ir in irreps] == [mace_adapter.MP_SIZES[size], "128x0e"]  # the last layer: scalars
        for variant in ("inv", "eqv"):
            mid = f"mace-mp-0-{size}-{variant}"
            if size == "small" and variant == "eqv":
                continue  # L=0: no l>0 channel anywhere
            card = load_card(mid)
            opts = card["options"]
            cols = mace_adapter.feature_columns(irreps, opts["invariants_only"], opts["last_layer_only"])
            assert len(cols) == card["embedding_dim"], mid
        if size == "medium":
            assert sum(p.numel() for p in model.parameters()) == load_card("mace-mp-0-medium-inv")["params"]


def test_random_init_card_builds_the_medium_architecture_deterministically(samples):
    card = load_card("mace-mp-0-medium-random-init")
    assert card["source"] == "random_init"
    a = mace_adapter.MACEAdapter(card)
    assert a.model_file is None and a.embedding_dim == card["embedding_dim"] == 128
    assert [str(ir) for ir in a.layer_irreps] == ["128x0e+128x1o", "128x0e"]
    assert sum(p.numel() for p in a.model.parameters()) == card["params"] == 4_688_656
    mols = samples[:2]
    first = a.embed(mols)
    torch.manual_seed(12345)  # the global generator does not leak into the build
    second = mace_adapter.MACEAdapter(card).embed(mols)
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    np.testing.assert_array_equal(first.energies, second.energies)
    other = copy.deepcopy(card)
    other["options"]["random_init"] = {"seed": 1, "size": "medium"}
    assert np.abs(mace_adapter.MACEAdapter(other).embed(mols).embeddings - first.embeddings).max() > 1e-3
    with pytest.raises(ValueError, match="takes no checkpoint"):
        mace_adapter.MACEAdapter(card, checkpoint="/some/file.model")


MATTER_ALIGN = ROOT / ".venv" / "bin" / "matter-align"


@pytest.mark.skipif(not MATTER_ALIGN.exists(), reason=f"{MATTER_ALIGN} missing: the base environment is not built")
def test_matter_align_extract_with_a_checkpoint(tmp_path):
    """`matter-align extract --models mace-mp-0-medium-inv --checkpoint PATH` from the base environment, with a
    full-size MACE-MP-0 medium `.model` (random weights) standing in for the downloaded file."""
    from precompute.datasets import load_dataset
    from precompute.extract.store import DatasetKey, EmbeddingStore

    model_file = tmp_path / "2023-12-03-mace-128-L1_epoch-199.model"
    torch.save(mace_adapter.build_mace_mp("medium", seed=7), model_file)
    store = tmp_path / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cmd = [str(MATTER_ALIGN), "extract", "--dataset", "qm9", "--n", "5", "--seed", "0"]
    cmd += ["--models", "mace-mp-0-medium-inv", "--checkpoint", str(model_file), "--store", str(store)]
    cmd += ["--device", "cpu", "--progress", "none"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "1 done" in proc.stdout, proc.stdout
    stored = EmbeddingStore(store).read(DatasetKey.build("qm9", 5, 0), "mace-mp-0-medium-inv")
    molecules = load_dataset("qm9", n=5, seed=0)
    assert list(stored.ids) == [s.sample_id for s in molecules]
    direct = mace_adapter.MACEAdapter(load_card("mace-mp-0-medium-inv"), checkpoint=str(model_file)).embed(molecules)
    assert stored.embeddings.shape == (5, 128)
    np.testing.assert_allclose(stored.embeddings, direct.embeddings, atol=1e-6, rtol=0)
    assert stored.energies is not None and stored.energies.shape == (5,)  # the predicted energies travel too
    np.testing.assert_allclose(stored.energies, direct.energies, rtol=1e-9)
