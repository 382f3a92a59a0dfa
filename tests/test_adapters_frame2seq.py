"""Frame2seq models 1-3 (frame2seq 0.0.8 wheel weights) on the real chains of tests/data/pdb.

References: the package's own `Frame2seqRunner.score` (its three models loaded its own way, ensemble negative
pseudo-log-likelihood of the native sequence, written to its CSV), and sequence recovery of the argmax design against
the native chain, which for a working inverse-folding model is far above the 5 % of a uniform guess (measured on
1I8N:A: 55 % / 64 % / 63 % for models 1 / 2 / 3).
"""

from __future__ import annotations

import gzip
import importlib
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if os.environ.get("CI"):  # CI builds the main environment (`make env`): a missing package fails there
    importlib.import_module("frame2seq")
else:
    pytest.importorskip("frame2seq")
f2s = pytest.importorskip("precompute.adapters.frame2seq")

from precompute.datasets import load_dataset  # noqa: E402
from precompute.datasets.base import Sample  # noqa: E402

DATA = Path(__file__).parent / "data" / "pdb"
_ADAPTERS: dict[int, object] = {}


def adapter(i: int):
    if i not in _ADAPTERS:
        _ADAPTERS[i] = f2s.Frame2seqAdapter({"model_id": f"frame2seq-{i}", "options": {"model": i}})
    return _ADAPTERS[i]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def chains() -> list[Sample]:
    """1I8N:A (89), 2XCJ:A (84), 2XDG:A (89 residues) and a 13-residue peptide, from the project's PDB loader."""
    return load_dataset("pdb", path=str(DATA))


@pytest.mark.parametrize("i", [1, 2, 3])
def test_frame2seq_real_chains_and_recovery(i, chains):
    ad = adapter(i)
    res = ad.embed(chains)
    assert res.ids == [s.sample_id for s in chains] and res.failures == {}
    assert res.embeddings.shape == (4, 128) and res.embeddings.dtype == np.float32
    assert np.isfinite(res.embeddings).all() and np.abs(res.embeddings - res.embeddings[0]).max() > 1e-2
    for s in chains[:3]:
        logits, native = ad.predict(s)
        assert logits.shape == (s.meta["n_residues"], 21)
        recovery = float((logits[:, :20].argmax(-1) == native).mean())
        assert recovery > 0.3, (s.sample_id, recovery)  # uniform guessing: 0.05
    # the embedding is the input of the sequence head: the head applied to it gives the model's logits
    ci = ad.featurize(chains[0])
    s_rows, logits = ad.forward(ci)
    with torch.no_grad():
        head = ad.model.single_to_sequence(torch.from_numpy(s_rows)).numpy()
    np.testing.assert_allclose(head, logits, rtol=0, atol=1e-5)
    np.testing.assert_allclose(res.embeddings[0], s_rows.mean(0), rtol=0, atol=1e-6)


def test_three_models_differ(chains):
    embs = [adapter(i).embed(chains[:2]).embeddings for i in (1, 2, 3)]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(embs[a] - embs[b]).max() > 1e-2


def test_ensemble_equals_the_packages_own_score(chains, tmp_path, monkeypatch):
    """Frame2seqRunner.score writes the ensemble's average negative pseudo-log-likelihood of the native sequence;
    our three adapters' logits averaged the same way give the same number."""
    import pandas as pd
    from frame2seq import Frame2seqRunner

    monkeypatch.chdir(tmp_path)  # the runner writes ./frame2seq_outputs
    pdb = tmp_path / "1i8nA.pdb"
    pdb.write_bytes(gzip.decompress((DATA / "1i8nA.pdb.gz").read_bytes()))
    runner = Frame2seqRunner()
    assert len(runner.models) == 3
    runner.score(str(pdb), "A", verbose=False)
    csvs = list((tmp_path / "frame2seq_outputs").rglob("*.csv"))
    assert csvs, list((tmp_path / "frame2seq_outputs").rglob("*"))
    theirs = pd.read_csv(csvs[0])
    col = "Average negative pseudo-log-likelihood"
    sample = next(s for s in chains if s.sample_id == "pdb:1i8na:A")
    preds = [adapter(i).predict(sample) for i in (1, 2, 3)]
    native = preds[0][1]
    probs = torch.softmax(torch.from_numpy(sum(p[0] for p in preds) / 3), dim=-1).numpy()
    ours = float(-np.log(probs[np.arange(len(native)), native]).mean())
    assert abs(ours - float(theirs[col].iloc[0])) < 1e-4, (ours, theirs[col].iloc[0])
    assert theirs["Scored sequence"].iloc[0] == sample.sequence  # the package scored the same native chain


def test_rotation_and_translation_invariance(chains):
    ad = adapter(1)
    ci = ad.featurize(chains[1])
    base, _ = ad.forward(ci)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    q = q * np.sign(np.linalg.det(q))  # a proper rotation
    moved = f2s.ChainInput(
        X=ci.X @ torch.from_numpy(q).T + torch.tensor([30.0, -12.0, 7.0], dtype=torch.float64),
        seq_mask=ci.seq_mask,
        aatype=ci.aatype,
    )
    rot, _ = ad.forward(moved)
    assert ci.X.dtype == torch.float64
    assert np.abs(rot.mean(0) - base.mean(0)).max() < 1e-4


def test_unreadable_inputs_go_to_failures(tmp_path, chains):
    ad = adapter(1)
    lines = gzip.decompress((DATA / "1i8nA.pdb.gz").read_bytes()).decode().splitlines()
    atoms = [ln for ln in lines if ln.startswith("ATOM")]
    res10 = atoms[0][22:26]
    ins = [ln[:26] + "A" + ln[27:] if ln[22:26] == res10 else ln for ln in atoms]  # an insertion code
    (tmp_path / "ins.pdb").write_text("\n".join(ins) + "\nEND\n")
    samples = [
        Sample(sample_id="nopath", meta={"chain_id": "A"}),
        Sample(sample_id="missing", meta={"structure_path": str(tmp_path / "absent.pdb"), "chain_id": "A"}),
        Sample(sample_id="wrongchain", meta={"structure_path": chains[3].meta["structure_path"], "chain_id": "Q"}),
        Sample(sample_id="insertion", meta={"structure_path": str(tmp_path / "ins.pdb"), "chain_id": "A"}),
        chains[3],
    ]
    res = ad.embed(samples)
    assert res.ids == ["insertion", chains[3].sample_id]
    assert set(res.failures) == {"nopath", "missing", "wrongchain"}
    assert "structure_path" in res.failures["nopath"] and "does not exist" in res.failures["missing"]
    assert "'Q'" in res.failures["wrongchain"]
    # the chain with an insertion code is read renumbered: the same residues in the same order as the original
    np.testing.assert_allclose(res.embeddings[0], ad.embed(chains[:1]).embeddings[0], rtol=0, atol=1e-6)
    assert all(v.startswith("frame2seq-1: ") for v in res.failures.values())


def test_cards_match_the_wheel():
    from precompute.registry import load_card

    for i in (1, 2, 3):
        card = load_card(f"frame2seq-{i}")
        path = f2s.resolve_weights(card)
        assert path.name == f"model{i}.ckpt" and "frame2seq" in path.parts
        ck = torch.load(path, map_location="cpu", weights_only=True)
        assert sum(v.numel() for v in ck["state_dict"].values()) == card["params"]
        assert ck["hyper_parameters"]["config"]["single_dim"] == card["embedding_dim"]
        assert "LICENSE file is empty" in card["license"] and card["training_sets"] == ["cath"]
    with pytest.raises(ValueError, match="not in"):
        f2s.resolve_weights({"model_id": "x", "options": {"model": 4}})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        f2s.resolve_weights({"model_id": "x", "options": {"model": 1}}, checkpoint="/nonexistent/model1.ckpt")


def test_weights_root_folder_wins_over_the_wheel(tmp_path, monkeypatch):
    wheel = f2s.resolve_weights({"model_id": "frame2seq-2", "options": {"model": 2}})
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path))
    (tmp_path / "frame2seq-2").mkdir()
    (tmp_path / "frame2seq-2" / "model2.ckpt").symlink_to(wheel)
    got = f2s.resolve_weights({"model_id": "frame2seq-2", "options": {"model": 2}})
    assert got == tmp_path / "frame2seq-2" / "model2.ckpt"
    assert f2s.resolve_weights({"model_id": "frame2seq-3", "options": {"model": 3}}).name == "model3.ckpt"


def test_lean_pair_features_equal_the_packages(chains, monkeypatch):
    """The block-wise pair features equal the package's make_z_init (small blocks, so several are used), the
    embedding with and without them is the same, and the package's function is restored after the call."""
    import frame2seq.model.Frame2seq as package_model
    from frame2seq.utils.featurize import make_z_init

    monkeypatch.setattr(f2s, "LEAN_BLOCK_PAIRS", 500)
    ad = adapter(2)
    ci = ad.featurize(chains[0])
    z_pkg, z_lean = make_z_init(ad.model, ci.X), ad._lean_z_init(ad.model, ci.X)
    assert z_lean.dtype == z_pkg.dtype == torch.float32 and z_lean.shape == z_pkg.shape
    assert (z_lean - z_pkg).abs().max().item() <= 1e-6
    plain = f2s.Frame2seqAdapter({"model_id": "frame2seq-2", "options": {"model": 2, "lean_pairs": False}})
    np.testing.assert_allclose(ad.embed(chains[:2]).embeddings, plain.embed(chains[:2]).embeddings, rtol=0, atol=1e-6)
    assert package_model.make_z_init is make_z_init
