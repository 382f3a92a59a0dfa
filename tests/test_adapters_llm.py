"""LLM adapter (GPT-OSS, Qwen3-MoE, Llama) on the REAL transformers architectures with tiny dims and RANDOM weights,
saved to a folder and loaded through the adapter's own path, on 5 real QM9 SMILES. The tokenizers are byte-level
BPEs trained offline on those SMILES and the template words (the real ones cannot be downloaded here)."""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

from precompute.datasets.base import Sample

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
torch.set_num_threads(1)

from precompute.adapters._testdata import qm9_molecules  # noqa: E402
from precompute.adapters.llm import LLMAdapter, smiles_token_mask  # noqa: E402
from precompute.registry import load_card  # noqa: E402

TEMPLATE = "The molecule with SMILES {smiles} is"
CARD_OF = {"llama": "deepseek-r1-distill-llama-8b", "qwen3_moe": "qwen3-30b-a3b-thinking", "gpt_oss": "gpt-oss-20b"}
TINY = {  # hidden 32, 2 layers, 4 heads (2 KV heads), few experts; GPT-OSS alternates sliding (window 4) and full
    "llama": {"intermediate_size": 64},
    "qwen3_moe": {"intermediate_size": 64, "moe_intermediate_size": 16, "num_experts": 4, "num_experts_per_tok": 2},
    "gpt_oss": {
        "intermediate_size": 32,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "sliding_window": 4,
        "layer_types": ["sliding_attention", "full_attention"],
    },
}
# tokenizer_class as written in each hub folder's tokenizer_config.json; transformers 5 rebuilds some classes itself
HUB_TOKENIZER_CLASS = {
    "llama": "LlamaTokenizerFast",
    "qwen3_moe": "Qwen2Tokenizer",
    "gpt_oss": "PreTrainedTokenizerFast",
}
CHAT = "{% for m in messages %}<|bos|>[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]"
ARCHS = list(TINY)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    mols = qm9_molecules(5)
    assert len(mols) == 5 and all(m.smiles for m in mols)
    return [Sample(sample_id=m.sample_id, smiles=m.smiles) for m in mols]


def _tokenizer(texts: list[str], bos: bool):
    """Byte-level BPE like the real three; a BOS post-processor for Llama (Llama-3 adds <|begin_of_text|>)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|bos|>", "<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<|bos|> $A", special_tokens=[("<|bos|>", tok.token_to_id("<|bos|>"))]
        )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>")  # no pad token
    fast.chat_template = CHAT
    return fast


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, samples) -> dict:
    """arch -> folder with config.json, model.safetensors (a causal LM, as the hub folders hold) and tokenizer.json."""
    from transformers import AutoConfig, AutoModelForCausalLM

    texts = [s.smiles for s in samples] + [TEMPLATE.replace("{smiles}", "C"), "The molecule is a SMILES"]
    out = {}
    for arch, extra in TINY.items():
        tok = _tokenizer(texts, bos=arch == "llama")
        cfg = AutoConfig.for_model(
            arch,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            vocab_size=len(tok),
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            **extra,
        )
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(arch)
        AutoModelForCausalLM.from_config(cfg).save_pretrained(str(folder))
        tok.save_pretrained(str(folder))
        tcfg = json.loads((folder / "tokenizer_config.json").read_text())
        tcfg["tokenizer_class"] = HUB_TOKENIZER_CLASS[arch]
        tcfg["pad_token"] = None  # no pad token (Qwen2Tokenizer would otherwise default to <|endoftext|>)
        (folder / "tokenizer_config.json").write_text(json.dumps(tcfg))
        out[arch] = folder
    return out


def _card(arch: str, **options) -> dict:
    card = copy.deepcopy(load_card(CARD_OF[arch]))
    card["options"] = {**card["options"], **options}
    return card


_ADAPTERS: dict[tuple, LLMAdapter] = {}


def adapter(checkpoints, arch: str, **options) -> LLMAdapter:
    key = (arch, tuple(sorted(options.items())))
    if key not in _ADAPTERS:
        _ADAPTERS[key] = LLMAdapter(_card(arch, **options), device="cpu", checkpoint=str(checkpoints[arch]))
    return _ADAPTERS[key]


# ---------------------------------------------------------------- the cards


def test_cards_name_this_adapter_the_zoo_env_and_a_template():
    for mid in CARD_OF.values():
        card = load_card(mid)
        assert card["adapter"] == "precompute.adapters.llm:LLMAdapter"
        assert card["environment"] == "zoo"
        assert card["options"]["prompt_template"].count("{smiles}") == 1
        assert card["options"]["dtype"] == "bfloat16"


def test_card_widths_match_the_real_configs_of_the_benchmark():
    from bench.llm_gpu import REAL_CONFIGS

    for mid, spec in REAL_CONFIGS.items():
        assert load_card(mid)["embedding_dim"] == spec["config"]["hidden_size"], mid
    assert {REAL_CONFIGS[m]["model_type"] for m in CARD_OF.values()} == set(CARD_OF)


# ---------------------------------------------------------------- loading and shapes


@pytest.mark.parametrize("arch", ARCHS)
def test_real_loading_path_shapes_and_determinism(checkpoints, samples, arch):
    a = adapter(checkpoints, arch)
    assert (
        type(a.model).__name__ == {"llama": "LlamaModel", "qwen3_moe": "Qwen3MoeModel", "gpt_oss": "GptOssModel"}[arch]
    )
    assert a.unused_checkpoint_keys == ["lm_head.weight"]  # the base model is loaded, the LM head is not
    assert a.dtype == "float32" and a.embedding_dim == 32 and a.source == str(checkpoints[arch])
    assert type(a.tokenizer).__name__ == {"llama": "TokenizersBackend", "qwen3_moe": "Qwen2Tokenizer"}.get(
        arch, "TokenizersBackend"
    )
    assert a.tokenizer.pad_token == "<|eos|>"  # eos stands in for the missing pad token
    res = a.embed(samples, batch_size=5)
    assert res.ids == [s.sample_id for s in samples] and not res.failures
    assert res.embeddings.shape == (5, 32) and res.embeddings.dtype == np.float32
    assert np.isfinite(res.embeddings).all()
    assert np.linalg.matrix_rank(res.embeddings) == 5  # distinct molecules give distinct rows
    again = LLMAdapter(_card(arch), device="cpu", checkpoint=str(checkpoints[arch])).embed(samples, batch_size=5)
    assert np.array_equal(res.embeddings, again.embeddings)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("side", ["right", "left"])
def test_batched_equals_one_by_one(checkpoints, samples, arch, side):
    a = adapter(checkpoints, arch, padding_side=side)
    lengths = {len(a.encode(s.smiles)[0]) for s in samples}
    assert len(lengths) > 1  # the batch really is padded
    batched = a.embed(samples, batch_size=5).embeddings
    single = np.vstack([a.embed([s]).embeddings for s in samples])
    assert np.abs(batched - single).max() <= 1e-5
    if side == "left":  # left and right padding give the same rows
        right = adapter(checkpoints, arch).embed(samples, batch_size=5).embeddings
        assert np.abs(batched - right).max() <= 1e-5


# ---------------------------------------------------------------- the SMILES span


@pytest.mark.parametrize("arch", ARCHS)
def test_span_mask_selects_exactly_the_smiles_tokens(checkpoints, samples, arch):
    a = adapter(checkpoints, arch)
    tok = a.tokenizer
    for s in samples:
        ids, mask = a.encode(s.smiles)
        sel = [i for i, m in enumerate(mask) if m]
        assert sel == list(range(sel[0], sel[-1] + 1))  # one contiguous run
        assert tok.decode([ids[i] for i in sel]).strip() == s.smiles
        before = tok.decode(ids[: sel[0]], skip_special_tokens=True)
        after = tok.decode(ids[sel[-1] + 1 :], skip_special_tokens=True)
        assert before.strip() == "The molecule with SMILES" and after.strip() == "is"
    ids, mask = a.encode(samples[2].smiles)
    assert (ids[0] == tok.bos_token_id) == (arch == "llama") and not mask[0]  # BOS is never part of the mean


def test_offset_overlap_rule():
    # prompt "AB CCO x": BOS (0,0), "AB" (0,2), " " (2,3), "CC" (3,5), "O x" straddles (5,8); SMILES span [3, 6)
    offsets = [(0, 0), (0, 2), (2, 3), (3, 5), (5, 8)]
    assert smiles_token_mask(offsets, 3, 6) == [False, False, False, True, True]
    assert smiles_token_mask([(2, 5)], 3, 6) == [True]  # a leading-space token " CC" carries SMILES characters
    assert smiles_token_mask([(6, 6), (6, 9)], 3, 6) == [False, False]


@pytest.mark.parametrize("arch", ARCHS)
def test_masked_mean_equals_a_hand_recomputation(checkpoints, samples, arch):
    """Independently: the full causal LM, hidden_states[-1], mean over the SMILES positions by hand."""
    from transformers import AutoModelForCausalLM

    a = adapter(checkpoints, arch)
    lm = AutoModelForCausalLM.from_pretrained(str(checkpoints[arch]), local_files_only=True, dtype=torch.float32)
    row = a.embed(samples, batch_size=5).embeddings[3]
    text = TEMPLATE.replace("{smiles}", samples[3].smiles)
    enc = a.tokenizer(text, return_offsets_mapping=True)
    start = text.index(samples[3].smiles)
    pos = [
        i
        for i, (s, e) in enumerate(enc["offset_mapping"])
        if e > s and s < start + len(samples[3].smiles) and e > start
    ]
    with torch.inference_mode():
        hs = lm(input_ids=torch.tensor([enc["input_ids"]]), output_hidden_states=True).hidden_states[-1][0].numpy()
    assert 0 < len(pos) < len(enc["input_ids"]) - 4
    assert np.abs(hs[pos].mean(0) - row).max() <= 1e-5
    assert np.abs(hs.mean(0) - row).max() > 1e-3  # the template tokens are really left out


@pytest.mark.parametrize("arch", ["llama", "gpt_oss"])
def test_prefix_shapes_the_embedding_suffix_cannot(checkpoints, samples, arch):
    """Causal attention: the SMILES states see the text before them, never after."""
    base = adapter(checkpoints, arch).embed(samples, batch_size=5).embeddings
    suffix = adapter(checkpoints, arch, prompt_template="The molecule with SMILES {smiles} is a molecule").embed(
        samples
    )
    prefix = adapter(checkpoints, arch, prompt_template="SMILES {smiles} is").embed(samples)
    assert np.abs(suffix.embeddings - base).max() <= 1e-5
    assert np.abs(prefix.embeddings - base).max() > 1e-3


def test_chat_template_when_the_card_asks(checkpoints, samples):
    a = adapter(checkpoints, "llama", chat_template=True)
    text, start, end, special = a.format_prompt(samples[0].smiles)
    assert text.startswith("<|bos|>[user] The molecule with SMILES ") and text.endswith("[assistant]")
    assert text[start:end] == samples[0].smiles and special is False
    ids, mask = a.encode(samples[0].smiles)
    assert ids[0] == a.tokenizer.bos_token_id and ids.count(a.tokenizer.bos_token_id) == 1  # no second BOS
    assert a.tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m]).strip() == samples[0].smiles
    chat = a.embed(samples, batch_size=5).embeddings
    plain = adapter(checkpoints, "llama").embed(samples, batch_size=5).embeddings
    assert chat.shape == plain.shape and np.abs(chat - plain).max() > 1e-3


# ---------------------------------------------------------------- GPT-OSS's MXFP4 checkpoint format

FP4_E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def _mxfp4_pack(shape: tuple[int, int, int], gen):
    """Random MXFP4 expert weights in the hub layout: a (E, K, R) float tensor W, exactly representable, and its
    blocks (E, R, K/32, 16) uint8 (two e2m1 codes per byte, low nibble first) and scales (E, R, K/32) uint8 (e8m0,
    bias 127), where W[e, 32 g + j, r] = e2m1[code[e, r, g, j]] * 2 ** (scale[e, r, g] - 127)."""
    n_exp, k, r = shape
    codes = torch.randint(0, 16, (n_exp, r, k // 32, 32), generator=gen)
    scales = torch.randint(127 - 9, 127 - 5, (n_exp, r, k // 32), generator=gen)
    values = torch.tensor(FP4_E2M1)[codes] * torch.pow(2.0, (scales - 127).float()).unsqueeze(-1)
    w = values.reshape(n_exp, r, k).transpose(1, 2).contiguous()
    blocks = (codes[..., 0::2] | (codes[..., 1::2] << 4)).to(torch.uint8)
    return w, blocks, scales.to(torch.uint8)


def test_mxfp4_checkpoint_is_dequantised_exactly(checkpoints, samples, tmp_path):
    """The real gpt-oss-20b folder stores its expert matrices as MXFP4 blocks + scales with a quantization_config;
    loaded through the adapter they must equal the same weights stored unquantised."""
    import shutil

    from safetensors.torch import load_file, save_file

    src = checkpoints["gpt_oss"]
    ref, quant = tmp_path / "ref", tmp_path / "mxfp4"
    shutil.copytree(src, ref)
    shutil.copytree(src, quant)
    state = load_file(str(src / "model.safetensors"))
    qstate = dict(state)
    gen = torch.Generator().manual_seed(1)
    for key in [k for k in state if k.endswith(("experts.gate_up_proj", "experts.down_proj"))]:
        w, blocks, scales = _mxfp4_pack(tuple(state[key].shape), gen)
        state[key] = w
        del qstate[key]
        qstate[key + "_blocks"], qstate[key + "_scales"] = blocks, scales
    assert len(qstate) == len(state) + 4  # 2 layers x (gate_up, down): blocks + scales replace each matrix
    save_file(state, str(ref / "model.safetensors"), metadata={"format": "pt"})
    save_file(qstate, str(quant / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head",
        ],
    }  # as in openai/gpt-oss-20b's config.json
    (quant / "config.json").write_text(json.dumps(config))
    a_ref = LLMAdapter(_card("gpt_oss"), checkpoint=str(ref))
    a_q = LLMAdapter(_card("gpt_oss"), checkpoint=str(quant))
    w_q = dict(a_q.model.named_parameters())
    for key in [k for k in state if k.endswith(("experts.gate_up_proj", "experts.down_proj"))]:
        assert torch.equal(w_q[key.removeprefix("model.")], state[key])
    e_ref, e_q = a_ref.embed(samples).embeddings, a_q.embed(samples).embeddings
    assert np.abs(e_ref - e_q).max() <= 1e-6
    assert np.abs(e_ref - adapter(checkpoints, "gpt_oss").embed(samples).embeddings).max() > 1e-3  # weights differ


# ---------------------------------------------------------------- failures and errors


def test_bad_inputs_go_to_failures_naming_the_sample(checkpoints, samples):
    a = adapter(checkpoints, "qwen3_moe")
    bad = [Sample(sample_id="bad:none", smiles=None), Sample(sample_id="bad:parse", smiles="C1CC(")]
    res = a.embed([samples[0], *bad, samples[1]])
    assert res.ids == [samples[0].sample_id, samples[1].sample_id] and res.embeddings.shape == (2, 32)
    assert set(res.failures) == {"bad:none", "bad:parse"}
    assert "no SMILES" in res.failures["bad:none"] and "C1CC(" in res.failures["bad:parse"]
    too_long = adapter(checkpoints, "qwen3_moe", max_tokens=8).embed(samples[:1])
    assert not too_long.ids and "exceed the limit of 8" in too_long.failures[samples[0].sample_id]


def test_template_must_hold_one_placeholder(checkpoints):
    with pytest.raises(ValueError, match="exactly once"):
        LLMAdapter(_card("llama", prompt_template="no placeholder"), checkpoint=str(checkpoints["llama"]))


def test_missing_checkpoint_names_hub_id_folder_and_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty cache
    card = load_card("gpt-oss-20b")
    expected = tmp_path / "weights" / "gpt-oss-20b"
    with pytest.raises(FileNotFoundError) as err:
        LLMAdapter(card, device="cpu")
    msg = str(err.value)
    assert "openai/gpt-oss-20b" in msg and f"folder {expected}/" in msg and "--checkpoint" in msg
    assert f"--local-dir {expected}" in msg  # the download command fills exactly that folder
    with pytest.raises(FileNotFoundError, match="no config.json") as err:
        LLMAdapter(card, device="cpu", checkpoint=str(tmp_path / "nowhere"))
    assert "openai/gpt-oss-20b" in str(err.value) and str(tmp_path / "nowhere") in str(err.value)
    assert str(expected) in str(err.value)


def test_weights_root_folder_is_found_without_checkpoint(checkpoints, samples, tmp_path, monkeypatch):
    """`$MATTER_ALIGN_WEIGHTS/<model_id>/` is loaded without --checkpoint; --checkpoint still wins."""
    (tmp_path / "deepseek-r1-distill-llama-8b").symlink_to(checkpoints["llama"], target_is_directory=True)
    monkeypatch.setenv("MATTER_ALIGN_WEIGHTS", str(tmp_path))
    a = LLMAdapter(_card("llama"), device="cpu")
    assert a.source == str(tmp_path / "deepseek-r1-distill-llama-8b")
    assert np.array_equal(a.embed(samples[:2]).embeddings, adapter(checkpoints, "llama").embed(samples[:2]).embeddings)
    from precompute.adapters.llm import resolve_source

    assert resolve_source(_card("llama"), str(checkpoints["qwen3_moe"])) == str(checkpoints["qwen3_moe"])
    (tmp_path / "deepseek-r1-distill-llama-8b").unlink()
    (tmp_path / "deepseek-r1-distill-llama-8b").mkdir()  # a folder without config.json does not count
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(FileNotFoundError, match="deepseek-ai/DeepSeek-R1-Distill-Llama-8B"):
        resolve_source(_card("llama"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_benchmark_refuses_to_run_on_cpu():
    from bench.llm_gpu import main

    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        main(["--models", "deepseek-r1-distill-llama-8b"])


def test_gpu_benchmark_logic_on_cpu_with_tiny_configs(samples, monkeypatch, tmp_path):
    """bench/llm_gpu.py's build -> adapter -> embed path, with its real configs shrunk (the real sizes need a GPU)."""
    import argparse

    import bench.llm_gpu as bench

    spec = copy.deepcopy(bench.REAL_CONFIGS["qwen3-30b-a3b-thinking"])
    spec["config"].update(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    spec["config"].update(head_dim=8, vocab_size=400, intermediate_size=32, moe_intermediate_size=16, num_experts=4)
    spec["config"].update(num_experts_per_tok=2, bos_token_id=None, eos_token_id=None)
    monkeypatch.setitem(bench.REAL_CONFIGS, "qwen3-30b-a3b-thinking", spec)
    smiles = [s.smiles for s in samples]
    for via_disk in (None, str(tmp_path)):
        args = argparse.Namespace(dtype="float32", vocab=300, batch_size=2, via_disk=via_disk)
        out = bench.bench_model("qwen3-30b-a3b-thinking", smiles, args, device="cpu")
        assert out["n"] == 5 and out["failures"] == 0 and out["embedding_shape"] == [5, 32] and out["finite"]
        assert out["mean_smiles_tokens"] < out["mean_prompt_tokens"] and out["smiles_per_s"] > 0
    assert (tmp_path / "qwen3-30b-a3b-thinking" / "config.json").is_file()
