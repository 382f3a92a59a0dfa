"""Hub chemical/protein language models (ChemBERTa, MolFormer, ChemGPT, ESM-2) through their adapters' REAL loading
path, on real inputs: 5 QM9 SMILES and 3 PDB chains.

No hub can be reached, so each architecture is built here with RANDOM weights from transformers' own classes (tiny
widths), saved as the hub repository would be (the *ForMaskedLM / *ForCausalLM checkpoint class, tokenizer files),
and loaded by the adapter with from_pretrained(local_files_only=True), either from a --checkpoint folder or by hub
id from a local Hugging Face cache laid out as `hf download` leaves it. Tokenizers are built locally: a byte-level
BPE trained on the test SMILES (saved as RoBERTa's vocab.json + merges.txt), a BPE on SELFIES symbols wrapped in
PreTrainedTokenizerFast (GPT-Neo), and the EsmTokenizer of the 33-token ESM-2 vocabulary.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from precompute.datasets.base import Sample

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from precompute.adapters import build_adapter  # noqa: E402
from precompute.adapters.hf_chem import CheckpointNotFound, ChemLMAdapter  # noqa: E402
from precompute.adapters.hf_protein import (  # noqa: E402
    ESM2_SIZES,
    ESM2_VOCAB,
    ESMAdapter,
    clean_sequence,
    esm2_config,
    esm2_tokenizer,
)
from precompute.registry import load_card  # noqa: E402

DATA = Path(__file__).parent / "data"
TOL = 1e-5  # batched vs one by one, and vs the hand-computed mean (float32 sums in a different order)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """2 shared cores: one intra-op thread; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


# ---------------------------------------------------------------- real inputs


@pytest.fixture(scope="module")
def qm9() -> list[Sample]:
    from precompute.adapters._testdata import qm9_molecules

    return qm9_molecules(5)


@pytest.fixture(scope="module")
def chains() -> list[Sample]:
    """1I8N:A (89 residues), 2XCJ:A (84) and the 13-residue peptide pept:E, via the project's PDB loader."""
    from precompute.datasets import load_dataset

    by_id = {s.sample_id: s for s in load_dataset("pdb", path=str(DATA / "pdb"))}
    return [by_id["pdb:1i8na:A"], by_id["pdb:2xcja:A"], by_id["pdb:pept:E"]]


# ---------------------------------------------------------------- tiny random checkpoints, saved like the hub's

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4 (pad = 1)


def _roberta_tokenizer_files(folder: Path, texts: list[str]) -> None:
    """vocab.json + merges.txt of a byte-level BPE trained on `texts`, and a tokenizer_config naming RobertaTokenizer:
    the layout of the ChemBERTa repositories."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    tok.model.save(str(folder))
    cfg = {"tokenizer_class": "RobertaTokenizer", "model_max_length": 64}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))


def _selfies_tokenizer(texts: list[str]):
    """PreTrainedTokenizerFast: BPE over SELFIES symbols (split on brackets), eos only, no pad token (as decoders)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\[[^\]]*\]|\."), behavior="isolated")
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=200, special_tokens=["[UNK]", "[EOS]"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]")


def _save(model, folder: Path) -> Path:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory, qm9) -> Path:
    from transformers import AutoConfig, RobertaForMaskedLM

    folder = tmp_path_factory.mktemp("chemberta")
    _roberta_tokenizer_files(folder, [s.smiles for s in qm9])
    vocab = len(json.loads((folder / "vocab.json").read_text()))
    cfg = AutoConfig.for_model(
        "roberta",
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=66,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
    )
    torch.manual_seed(0)
    return _save(RobertaForMaskedLM(cfg), folder)  # the MLM checkpoint class of ChemBERTa-77M-MLM


@pytest.fixture(scope="module")
def gpt_neo_dir(tmp_path_factory, qm9) -> Path:
    import selfies
    from transformers import AutoConfig, GPTNeoForCausalLM

    folder = tmp_path_factory.mktemp("chemgpt")
    tok = _selfies_tokenizer([selfies.encoder(s.smiles) for s in qm9])
    cfg = AutoConfig.for_model(
        "gpt_neo",
        vocab_size=len(tok),
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        attention_types=[[["global", "local"], 1]],
        window_size=8,  # shorter than the molecules, so the local layer really is local
        max_position_embeddings=64,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    tok.save_pretrained(str(folder))
    return _save(GPTNeoForCausalLM(cfg), folder)


@pytest.fixture(scope="module")
def esm_dir(tmp_path_factory) -> Path:
    from transformers import EsmForMaskedLM

    folder = tmp_path_factory.mktemp("esm2")
    cfg = esm2_config("8m", num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64)
    torch.manual_seed(0)
    esm2_tokenizer().save_pretrained(str(folder))
    return _save(EsmForMaskedLM(cfg), folder)  # the hub's ESM-2 checkpoints are EsmForMaskedLM


def _hub_cache(root: Path, hub_id: str, folder: Path) -> Path:
    """A Hugging Face cache holding `folder` as the snapshot of `hub_id` (models--org--name/{refs/main,snapshots/})."""
    repo = root / ("models--" + hub_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return root


# ---------------------------------------------------------------- checks shared by the architectures


def _check_rows(adapter, samples: list[Sample], dim: int) -> np.ndarray:
    """Shapes, finiteness, distinct rows, determinism, batched == one by one; returns the rows."""
    r = adapter.embed(samples, batch_size=len(samples))
    assert r.ids == [s.sample_id for s in samples] and not r.failures
    assert r.embeddings.shape == (len(samples), dim) and r.embeddings.dtype == np.float32
    assert np.isfinite(r.embeddings).all()
    assert len({row.tobytes() for row in r.embeddings}) == len(samples)
    np.testing.assert_array_equal(adapter.embed(samples, batch_size=len(samples)).embeddings, r.embeddings)
    one_by_one = np.concatenate([adapter.embed([s], batch_size=1).embeddings for s in samples])
    assert np.abs(one_by_one - r.embeddings).max() <= TOL  # padding changes nothing
    two = adapter.embed(samples, batch_size=2).embeddings
    assert np.abs(two - r.embeddings).max() <= TOL
    return r.embeddings


def _hand_mean(model, ids: list[int], keep: slice) -> np.ndarray:
    with torch.inference_mode():
        x = torch.tensor([ids])
        h = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[0]
    return h[keep].mean(0).numpy()


# ---------------------------------------------------------------- ChemBERTa (RoBERTa)


def test_chemberta_card_loads_by_hub_id_from_the_local_cache(roberta_dir, qm9, tmp_path, monkeypatch):
    card = load_card("chemberta-77m-mlm")
    monkeypatch.setenv("HF_HUB_CACHE", str(_hub_cache(tmp_path, card["checkpoint"], roberta_dir)))
    ad = build_adapter(card, device="cpu")
    assert isinstance(ad, ChemLMAdapter) and type(ad.model).__name__ == "RobertaModel"
    assert ad.model_dir.parts[-3] == "models--DeepChem--ChemBERTa-77M-MLM"
    assert type(ad.tokenizer).__name__.startswith("RobertaTokenizer")
    rows = _check_rows(ad, qm9, 32)
    # masked mean by hand: <s> ... </s> around the SMILES tokens; the mean is over the SMILES tokens only
    ids = ad.tokenizer(qm9[2].smiles)["input_ids"]
    assert ids[0] == ad.tokenizer.bos_token_id and ids[-1] == ad.tokenizer.eos_token_id
    assert np.abs(rows[2] - _hand_mean(ad.model, ids, slice(1, -1))).max() <= TOL
    assert np.abs(rows[2] - _hand_mean(ad.model, ids, slice(None))).max() > 1e-3
    # the weights are the saved ones (not re-initialised): same rows from the --checkpoint folder
    by_folder = ChemLMAdapter(card, checkpoint=str(roberta_dir))
    np.testing.assert_array_equal(by_folder.embed(qm9).embeddings, rows)


def test_chemberta_include_special_tokens_option(roberta_dir, qm9):
    card = {"model_id": "t", "checkpoint": str(roberta_dir), "options": {"arch": "roberta"}}
    ad = ChemLMAdapter({**card, "options": {"arch": "roberta", "include_special_tokens": True}})
    ids = ad.tokenizer(qm9[0].smiles)["input_ids"]
    assert np.abs(ad.embed(qm9[:1]).embeddings[0] - _hand_mean(ad.model, ids, slice(None))).max() <= TOL


def test_malformed_smiles_go_to_failures_naming_the_sample(roberta_dir, qm9):
    ad = ChemLMAdapter({"model_id": "t", "checkpoint": str(roberta_dir), "options": {"arch": "roberta"}})
    bad = [
        Sample(sample_id="bad:ring", smiles="C1CC("),
        Sample(sample_id="bad:none", smiles=None),
        Sample(sample_id="bad:long", smiles="C" * 400),  # > 64 positions: not truncated
    ]
    r = ad.embed([qm9[0], *bad])
    assert r.ids == [qm9[0].sample_id] and r.embeddings.shape == (1, 32)
    assert set(r.failures) == {"bad:ring", "bad:none", "bad:long"}
    assert "C1CC(" in r.failures["bad:ring"] and "no SMILES" in r.failures["bad:none"]
    assert "tokens exceed the model's 64 positions" in r.failures["bad:long"]


def test_wrong_architecture_in_the_folder_is_an_error(gpt_neo_dir):
    with pytest.raises(ValueError, match="holds a 'gpt_neo' model"):
        ChemLMAdapter({"model_id": "t", "checkpoint": str(gpt_neo_dir), "options": {"arch": "roberta"}})


def test_missing_encoder_weights_are_an_error_not_random(roberta_dir, tmp_path):
    """A checkpoint of another width would leave the encoder random: refused."""
    folder = tmp_path / "bad"
    shutil.copytree(roberta_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["num_hidden_layers"] = 3  # layer 2 is not in the weights file
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match="lacks weights of the encoder"):
        ChemLMAdapter({"model_id": "t", "checkpoint": str(folder), "options": {"arch": "roberta"}})


# ---------------------------------------------------------------- ChemGPT (GPT-Neo on SELFIES)


def test_chemgpt_card_on_selfies(gpt_neo_dir, qm9, tmp_path, monkeypatch):
    import selfies

    card = load_card("chemgpt-4.7m")
    monkeypatch.setenv("HF_HUB_CACHE", str(_hub_cache(tmp_path, card["checkpoint"], gpt_neo_dir)))
    ad = build_adapter(card, device="cpu")
    assert type(ad.model).__name__ == "GPTNeoModel"
    assert ad.tokenizer.pad_token == "[EOS]"  # no pad token in the checkpoint: eos pads (masked out)
    rows = _check_rows(ad, qm9, 32)
    assert ad.last_unk_counts == {}
    for s in qm9:
        assert ad.last_inputs[s.sample_id] == selfies.encoder(s.smiles)
    # masked mean by hand: the tokenizer adds no special token, so every SELFIES token is averaged
    enc = ad.tokenizer(selfies.encoder(qm9[1].smiles), return_special_tokens_mask=True)
    assert not any(enc["special_tokens_mask"])
    tokens = ad.tokenizer.convert_ids_to_tokens(enc["input_ids"])
    assert tokens == list(selfies.split_selfies(selfies.encoder(qm9[1].smiles)))  # one token per SELFIES symbol
    assert np.abs(rows[1] - _hand_mean(ad.model, enc["input_ids"], slice(None))).max() <= TOL


def test_chemgpt_unconvertible_smiles_fail_naming_the_sample(gpt_neo_dir, qm9):
    card = {"model_id": "t", "checkpoint": str(gpt_neo_dir), "options": {"arch": "gpt_neo", "input": "selfies"}}
    ad = ChemLMAdapter(card)
    bad = [Sample(sample_id="bad:wildcard", smiles="*C"), Sample(sample_id="bad:ring", smiles="C1CC(")]
    r = ad.embed([*bad, qm9[0]])  # RDKit accepts "*C"; SELFIES has no symbol for the wildcard atom
    assert r.ids == [qm9[0].sample_id]
    assert "'*C' cannot be converted to SELFIES" in r.failures["bad:wildcard"]
    assert "RDKit cannot parse" in r.failures["bad:ring"]
    raw = ChemLMAdapter({**card, "options": {**card["options"], "validate_smiles": False}})
    r = raw.embed([Sample(sample_id="bad:valence", smiles="C(C)(C)(C)(C)C")])
    assert "cannot be converted to SELFIES" in r.failures["bad:valence"] and "5 bond" in r.failures["bad:valence"]


# ---------------------------------------------------------------- MolFormer (remote code)


def test_molformer_without_its_code_is_a_clear_error(roberta_dir, tmp_path, monkeypatch):
    card = load_card("molformer-xl-both-10pct")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(CheckpointNotFound) as exc:
        build_adapter(card, device="cpu")
    msg = str(exc.value)
    for part in ("ibm/MoLFormer-XL-both-10pct", "--checkpoint", "modeling_molformer.py", "config.json"):
        assert part in msg
    assert str(tmp_path / "weights" / "molformer-xl-both-10pct") + "/" in msg
    # a folder whose config names the remote code without holding it
    folder = tmp_path / "molformer"
    shutil.copytree(roberta_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {
        "AutoConfig": "configuration_molformer.MolformerConfig",
        "AutoModel": "modeling_molformer.MolformerModel",
    }
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointNotFound, match=r"configuration_molformer.py', 'modeling_molformer.py'\] missing"):
        build_adapter(card, device="cpu", checkpoint=str(folder))


REMOTE_CONFIG = """
from transformers import PretrainedConfig


class TinyEncConfig(PretrainedConfig):
    model_type = "tinyenc"

    def __init__(self, vocab_size=300, hidden_size=16, pad_token_id=1, **kwargs):
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        super().__init__(pad_token_id=pad_token_id, **kwargs)
"""
REMOTE_MODEL = '''
import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from .configuration_tinyenc import TinyEncConfig


class TinyEncModel(PreTrainedModel):
    """Written for this test: token embedding + a masked mean-context mix; not MolFormer."""

    config_class = TinyEncConfig
    base_model_prefix = "tinyenc"

    def __init__(self, config):
        super().__init__(config)
        self.emb = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.mix = torch.nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        x = self.emb(input_ids)
        m = attention_mask.unsqueeze(-1).to(x.dtype)
        ctx = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
        return BaseModelOutput(last_hidden_state=torch.tanh(self.mix(torch.cat([x, ctx.expand_as(x)], -1))))
'''


def test_remote_code_path_loads_a_local_custom_model(roberta_dir, qm9, tmp_path, monkeypatch):
    """The MolFormer path (trust_remote_code from the local folder, offline) with a tiny model written here."""
    import transformers.dynamic_module_utils as dmu

    monkeypatch.setattr(dmu, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    folder = tmp_path / "tinyenc_ckpt"
    folder.mkdir()
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(roberta_dir / f, folder / f)
    (folder / "configuration_tinyenc.py").write_text(textwrap.dedent(REMOTE_CONFIG))
    (folder / "modeling_tinyenc.py").write_text(textwrap.dedent(REMOTE_MODEL))
    cfg = {
        "model_type": "tinyenc",
        "vocab_size": len(json.loads((folder / "vocab.json").read_text())),
        "auto_map": {"AutoConfig": "configuration_tinyenc.TinyEncConfig", "AutoModel": "modeling_tinyenc.TinyEncModel"},
    }
    (folder / "config.json").write_text(json.dumps(cfg))
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=True, local_files_only=True)
    torch.manual_seed(0)
    _save(AutoModel.from_config(config, trust_remote_code=True), folder)
    card = load_card("molformer-xl-both-10pct")
    ad = build_adapter({**card, "options": {"arch": "molformer", "trust_remote_code": True}}, checkpoint=str(folder))
    assert type(ad.model).__name__ == "TinyEncModel" and ad.model.config.model_type == "tinyenc"
    rows = _check_rows(ad, qm9, 16)
    ids = ad.tokenizer(qm9[3].smiles)["input_ids"]
    assert np.abs(rows[3] - _hand_mean(ad.model, ids, slice(1, -1))).max() <= TOL


# ---------------------------------------------------------------- ESM-2


def test_esm2_vocabulary_matches_the_config_and_tokenizer():
    tok = esm2_tokenizer()
    assert len(ESM2_VOCAB) == len(tok) == 33
    assert [tok.cls_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    cfg = esm2_config("650m")
    assert tok.mask_token_id == cfg.mask_token_id == 32 and tok.pad_token_id == cfg.pad_token_id
    assert tok("LAGVX")["input_ids"] == [0, 4, 5, 6, 7, 24, 2]
    assert clean_sequence("mk?jU-o") == ("MKXXUXO", 3)


def test_esm2_card_loads_by_hub_id_and_pools_over_residues(esm_dir, chains, tmp_path, monkeypatch):
    card = load_card("esm2-8m")
    monkeypatch.setenv("HF_HUB_CACHE", str(_hub_cache(tmp_path, card["checkpoint"], esm_dir)))
    ad = build_adapter(card, device="cpu")
    assert isinstance(ad, ESMAdapter) and type(ad.model).__name__ == "EsmModel"
    rows = _check_rows(ad, chains, 32)
    # per-residue mean by hand: <cls> residues <eos>, both ends excluded
    ids = ad.tokenizer(chains[2].sequence)["input_ids"]
    assert len(ids) == len(chains[2].sequence) + 2 == 15
    assert np.abs(rows[2] - _hand_mean(ad.model, ids, slice(1, -1))).max() <= TOL
    assert np.abs(rows[2] - _hand_mean(ad.model, ids, slice(None))).max() > 1e-3
    np.testing.assert_array_equal(ESMAdapter(card, checkpoint=str(esm_dir)).embed(chains).embeddings, rows)


def test_esm2_nonstandard_residues_become_x_and_bad_chains_fail(esm_dir, chains):
    ad = ESMAdapter({"model_id": "t", "checkpoint": str(esm_dir)})
    seq = chains[2].sequence
    odd = Sample(sample_id="odd", sequence=seq[:5].lower() + "J*" + seq[5:])
    as_x = Sample(sample_id="as_x", sequence=seq[:5] + "XX" + seq[5:])
    r = ad.embed([odd, as_x])
    assert ad.last_x_counts == {"odd": 2}  # J and * (lower case is only upper-cased)
    np.testing.assert_array_equal(r.embeddings[0], r.embeddings[1])
    short = ESMAdapter({"model_id": "t", "checkpoint": str(esm_dir), "options": {"max_residues": 50}})
    r = short.embed([*chains, Sample(sample_id="empty", sequence=None)])
    assert r.ids == [chains[2].sample_id]
    assert "89 residues exceed max_residues=50" in r.failures[chains[0].sample_id]
    assert "no sequence" in r.failures["empty"]


def test_esm2_missing_checkpoint_names_hub_id_files_and_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(CheckpointNotFound) as exc:
        build_adapter(load_card("esm2-650m"), device="cpu")
    msg = str(exc.value)
    for part in ("facebook/esm2_t33_650M_UR50D", "--checkpoint", "config.json", "vocab.txt", "empty-cache"):
        assert part in msg
    assert f"folder {tmp_path / 'weights' / 'esm2-650m'}/" in msg  # where the rule says to put the files
    with pytest.raises(CheckpointNotFound, match="no config.json") as exc:
        build_adapter(load_card("esm2-650m"), device="cpu", checkpoint=str(tmp_path))
    assert str(tmp_path / "weights" / "esm2-650m") in str(exc.value)


def test_weights_root_folder_is_found_and_loaded(esm_dir, roberta_dir, chains, qm9, tmp_path, monkeypatch):
    """`$MATTER_ALIGN_WEIGHTS/<model_id>/` holding the hub repository's files is loaded without --checkpoint and
    before the Hugging Face cache (ESM-2 and ChemBERTa); --checkpoint still wins."""
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "esm2-650m").symlink_to(esm_dir, target_is_directory=True)
    card = load_card("esm2-650m")
    # a different model in the Hugging Face cache under the card's hub id: the weights root must come first
    monkeypatch.setenv("HF_HUB_CACHE", str(_hub_cache(tmp_path, card["checkpoint"], roberta_dir)))
    ad = build_adapter(card, device="cpu")
    assert ad.model_dir == tmp_path / "weights" / "esm2-650m" and type(ad.model).__name__ == "EsmModel"
    by_flag = ESMAdapter({"model_id": "t", "checkpoint": str(esm_dir)})
    np.testing.assert_array_equal(ad.embed(chains).embeddings, by_flag.embed(chains).embeddings)
    (tmp_path / "weights" / "chemberta-77m-mlm").symlink_to(roberta_dir, target_is_directory=True)
    chem = build_adapter(load_card("chemberta-77m-mlm"), device="cpu")
    assert chem.model_dir == tmp_path / "weights" / "chemberta-77m-mlm"
    ref = ChemLMAdapter({"model_id": "t", "checkpoint": str(roberta_dir), "options": {"arch": "roberta"}})
    np.testing.assert_array_equal(chem.embed(qm9).embeddings, ref.embed(qm9).embeddings)
    with pytest.raises(ValueError, match="holds a 'esm' model"):  # --checkpoint wins over the weights root
        ChemLMAdapter(load_card("chemberta-77m-mlm"), checkpoint=str(tmp_path / "weights" / "esm2-650m"))


def test_esm2_random_init_control_card(chains):
    """The registry's random-init control: ESM-2 35M hyper-parameters, seeded random weights, never pretrained."""
    card = load_card("esm2-35m-random-init")
    assert card["source"] == "random_init" and card["training_sets"] == []
    ad = build_adapter(card, device="cpu")
    cfg = ad.model.config
    for key, value in ESM2_SIZES["35m"].items():
        assert getattr(cfg, key) == value
    assert ad.embedding_dim == card["embedding_dim"] == 480
    assert sum(p.numel() for p in ad.model.parameters()) == card["params"]
    std = ad.model.embeddings.word_embeddings.weight.std().item()
    assert abs(std - cfg.initializer_range) < 0.002  # initialised (N(0, 0.02)), not left empty
    rows = ad.embed(chains, batch_size=3).embeddings
    assert rows.shape == (3, 480) and np.isfinite(rows).all()
    again = build_adapter(card, device="cpu").embed(chains, batch_size=3).embeddings  # same seed -> same weights
    np.testing.assert_array_equal(again, rows)
    other = build_adapter({**card, "options": {**card["options"], "seed": 1}}, device="cpu")
    assert np.abs(other.embed(chains, batch_size=3).embeddings - rows).max() > 1e-3
    with pytest.raises(ValueError, match="loads no checkpoint"):
        ESMAdapter(card, checkpoint="/some/folder")


def test_random_init_tiny_batched_equals_one_by_one(chains):
    card = {
        "model_id": "t",
        "source": "random_init",
        "options": {"size": "8m", "config_overrides": {"num_hidden_layers": 2}},
    }
    _check_rows(ESMAdapter(card), chains, 320)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_rows_equal_cpu_rows(esm_dir, roberta_dir, chains, qm9):
    for cls, folder, samples, opts in (
        (ESMAdapter, esm_dir, chains, {}),
        (ChemLMAdapter, roberta_dir, qm9, {"arch": "roberta"}),
    ):
        card = {"model_id": "t", "checkpoint": str(folder), "options": opts}
        cpu = cls(card).embed(samples).embeddings
        assert np.abs(cls(card, device="cuda").embed(samples).embeddings - cpu).max() <= 1e-4
