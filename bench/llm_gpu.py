"""LLM adapter on a GPU at REAL size with RANDOM weights: peak GPU memory and SMILES/s for GPT-OSS-20B,
Qwen3-30B-A3B and DeepSeek-R1-Distill-Llama-8B (Llama-3.1-8B), through `precompute.adapters.llm.LLMAdapter`.

    .venv/bin/python bench/llm_gpu.py [--models gpt-oss-20b,qwen3-30b-a3b-thinking,deepseek-r1-distill-llama-8b]
        [--n 1000] [--batch-size 64] [--dtype bfloat16] [--smiles-file FILE] [--via-disk DIR] [--params-only]

For a lent GPU only; never run by the tests (they check only that it refuses to start on CPU). Nothing is downloaded:
each architecture is built by transformers from the hyper-parameters in REAL_CONFIGS (the published config.json of
each checkpoint, transcribed below with its source), with random weights, in bf16 directly on the GPU. These
numbers measure cost (memory, speed), never the quality of the real weights.

Tokenizer: the real tokenizers cannot be fetched either, so a byte-level BPE (the kind all three models use) is
trained on the input SMILES and the prompt template, with `--vocab` entries (default 1000, inside every model's
vocabulary). Token counts per prompt therefore differ from the real tokenizers; the script prints the mean prompt
and SMILES token counts so that the throughput can be rescaled.

By default the model is handed to `LLMAdapter.from_model` in memory (a 30B model would need ~61 GB of disk to go
through a folder). `--via-disk DIR` instead saves the random model to DIR/<model_id> and loads it through the
adapter's own loading path (AutoModel.from_pretrained with bf16 and device_map="auto"): use it for the 8B model or on
a machine with the disk for it. `--params-only` prints the parameter counts (built on the meta device; runs on CPU).

Input: the first n molecules of the seeded QM9 subsample (qm9pack wheel), or one SMILES per line of --smiles-file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Published config.json values of each checkpoint on the Hugging Face hub (transcribed: the hub cannot be reached
# here). Cross-checked: GPT-OSS-20B against the gpt-oss model card (arXiv:2508.10925: 24 layers, 32 experts, top-4,
# 20.9B total parameters); Qwen3-30B-A3B against its model card (48 layers, 32 Q / 4 KV heads, 128 experts, top-8,
# 30.5B total); DeepSeek-R1-Distill-Llama-8B is Llama-3.1-8B (32 layers, hidden 4096, 8 KV heads, 8.0B).
REAL_CONFIGS: dict[str, dict] = {
    "gpt-oss-20b": {
        "source": "openai/gpt-oss-20b config.json",
        "model_type": "gpt_oss",
        "config": {
            "vocab_size": 201088,
            "hidden_size": 2880,
            "intermediate_size": 2880,
            "num_hidden_layers": 24,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "num_local_experts": 32,
            "num_experts_per_tok": 4,
            "sliding_window": 128,
            "layer_types": ["sliding_attention", "full_attention"] * 12,
            "max_position_embeddings": 131072,
            "rms_norm_eps": 1e-5,
            "attention_bias": True,
            "swiglu_limit": 7.0,
            "tie_word_embeddings": False,
            "rope_parameters": {
                "rope_type": "yarn",
                "rope_theta": 150000.0,
                "factor": 32.0,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "truncate": False,
                "original_max_position_embeddings": 4096,
            },
            "eos_token_id": 200002,
            "pad_token_id": 199999,
        },
    },
    "qwen3-30b-a3b-thinking": {
        "source": "Qwen/Qwen3-30B-A3B-Thinking-2507 config.json",
        "model_type": "qwen3_moe",
        "config": {
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "moe_intermediate_size": 768,
            "num_hidden_layers": 48,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
            "head_dim": 128,
            "num_experts": 128,
            "num_experts_per_tok": 8,
            "norm_topk_prob": True,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": False,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0},
            "bos_token_id": 151643,
            "eos_token_id": 151645,
        },
    },
    "deepseek-r1-distill-llama-8b": {
        "source": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B config.json (Llama-3.1-8B architecture)",
        "model_type": "llama",
        "config": {
            "vocab_size": 128256,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 131072,
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": False,
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
            "bos_token_id": 128000,
            "eos_token_id": 128001,
        },
    },
}


def build_config(model_id: str):
    from transformers import AutoConfig

    spec = REAL_CONFIGS[model_id]
    return AutoConfig.for_model(spec["model_type"], **spec["config"])


def parameter_counts(model_id: str) -> dict[str, int]:
    """Parameters of the causal LM (what the checkpoint holds) and of the base model the adapter loads (no LM head),
    counted on the meta device (no memory, no GPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(build_config(model_id))
    total = sum(p.numel() for p in lm.parameters())
    base = sum(p.numel() for p in lm.model.parameters())
    return {"causal_lm": int(total), "base_model": int(base)}


def train_tokenizer(texts: list[str], vocab: int, out_dir: Path | None = None):
    """A byte-level BPE trained on `texts`, wrapped as a fast transformers tokenizer (offsets included)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def load_smiles(n: int, smiles_file: str | None) -> list[str]:
    if smiles_file:
        lines = [s.strip() for s in Path(smiles_file).read_text().splitlines() if s.strip()]
        return lines[:n]
    sys.path.insert(0, str(REPO))
    from precompute.adapters._testdata import qm9_molecules

    return [s.smiles for s in qm9_molecules(n)]


def bench_model(model_id: str, smiles: list[str], args, device: str = "cuda") -> dict:
    """Build `model_id` at the size in REAL_CONFIGS with random weights on `device`, embed `smiles` through
    LLMAdapter, and return memory and speed. (`device` other than CUDA only for smoke tests with small configs.)"""
    import numpy as np
    import torch
    from transformers import AutoModel

    from precompute.adapters.llm import LLMAdapter
    from precompute.datasets.base import Sample
    from precompute.registry import load_card

    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def reset_peak() -> None:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def gib(value: int) -> float | None:
        return round(value / 2**30, 2) if cuda else None

    card = load_card(model_id)
    card = {**card, "options": {**(card.get("options") or {}), "dtype": args.dtype, "validate_smiles": False}}
    template = card["options"].get("prompt_template", "The molecule with SMILES {smiles} is")
    tokenizer = train_tokenizer(smiles + [template.replace("{smiles}", "")], args.vocab)
    reset_peak()
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):  # random init directly on the GPU, in the target dtype
        model = AutoModel.from_config(build_config(model_id), dtype=getattr(torch, args.dtype))
    if args.via_disk:
        folder = Path(args.via_disk) / model_id
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        del model
        model = None
        reset_peak()
        t0 = time.perf_counter()
        adapter = LLMAdapter(card, device=device, checkpoint=str(folder))
    else:
        adapter = LLMAdapter.from_model(card, model, tokenizer, device=device)
    sync()
    build_s = time.perf_counter() - t0
    weights = gib(torch.cuda.memory_allocated()) if cuda else None
    n_params = sum(p.numel() for p in adapter.model.parameters())

    samples = [Sample(sample_id=f"s{i}", smiles=s) for i, s in enumerate(smiles)]
    adapter.embed(samples[: args.batch_size], batch_size=args.batch_size)  # warm-up (kernels, allocator)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t1 = time.perf_counter()
    res = adapter.embed(samples, batch_size=args.batch_size)
    sync()
    dt = time.perf_counter() - t1
    counts = list(adapter.last_token_counts.values())
    out = {
        "model_id": model_id,
        "config_source": REAL_CONFIGS[model_id]["source"],
        "params_loaded": int(n_params),
        "dtype": adapter.dtype,
        "device": device,
        "build_s": round(build_s, 1),
        "weights_gib": weights,
        "peak_gib_during_embed": gib(torch.cuda.max_memory_allocated()) if cuda else None,
        "n": len(res.ids),
        "failures": len(res.failures),
        "embedding_shape": list(res.embeddings.shape),
        "finite": bool(np.isfinite(res.embeddings).all()),
        "seconds": round(dt, 2),
        "smiles_per_s": round(len(res.ids) / dt, 1),
        "mean_prompt_tokens": round(sum(c[0] for c in counts) / max(1, len(counts)), 1),
        "mean_smiles_tokens": round(sum(c[1] for c in counts) / max(1, len(counts)), 1),
        "batch_size": args.batch_size,
        "via_disk": bool(args.via_disk),
    }
    del adapter, model
    reset_peak()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(REAL_CONFIGS))
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--vocab", type=int, default=1000, help="BPE vocabulary trained on the inputs")
    p.add_argument("--smiles-file", default=None, help="one SMILES per line instead of QM9")
    p.add_argument("--via-disk", default=None, help="save each random model here and load it through the adapter")
    p.add_argument("--params-only", action="store_true", help="print parameter counts (meta device) and exit")
    p.add_argument("--json", default=None, help="write the results here as JSON")
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in REAL_CONFIGS]
    if unknown:
        raise SystemExit(f"bench/llm_gpu.py: unknown model(s) {unknown}; choose from {list(REAL_CONFIGS)}")

    sys.path.insert(0, str(REPO))
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.params_only:
        for m in models:
            print(json.dumps({"model_id": m, **parameter_counts(m)}))
        return
    if not torch.cuda.is_available():
        raise SystemExit(
            "bench/llm_gpu.py needs a CUDA GPU (it builds 8B to 30B-parameter models in bf16: ~15, ~40 and ~61 GB); "
            "torch sees none here. Run it on a GPU machine, or use --params-only for the parameter counts."
        )
    print(f"GPU: {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
    smiles = load_smiles(args.n, args.smiles_file)
    results = []
    for m in models:
        try:
            r = bench_model(m, smiles, args)
        except torch.cuda.OutOfMemoryError as exc:
            r = {"model_id": m, "error": f"CUDA out of memory: {exc}"[:300]}
            torch.cuda.empty_cache()
        print(json.dumps(r), flush=True)
        results.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
