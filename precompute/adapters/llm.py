"""General-purpose LLMs given a SMILES inside a text prompt: GPT-OSS-20B, Qwen3-30B-A3B (Thinking), DeepSeek-R1-Distill-
Llama-8B, run with plain transformers (`AutoTokenizer` + `AutoModel`).

Prompt: the card's `options.prompt_template` with exactly one `{smiles}` placeholder, default
"The molecule with SMILES {smiles} is". With `options.chat_template: true` the prompt is first wrapped as one user
message by the tokenizer's own chat template (`options.chat_template_kwargs` are passed to it); off by default.

Embedding: the last hidden layer, `last_hidden_state` of the base model (LlamaModel, Qwen3MoeModel, GptOssModel in
transformers 5.24: the output of the final RMSNorm, which is also `hidden_states[-1]`), MASKED MEAN over the tokens
of the SMILES only: template tokens, special tokens (BOS, chat markup) and padding are excluded. The SMILES tokens
are found from the tokenizer's offset mapping on the formatted prompt: a token belongs to the SMILES when its
character span overlaps the SMILES's span (so a byte-level token " C" that carries the preceding space counts; a
token that straddles the boundary carries SMILES characters and is kept too). The mean is accumulated in float32.

Batching: prompts are sorted by length inside a call, padded (options.padding_side "right", default, or "left") with
the pad token (eos when the tokenizer has none); position ids are recomputed from the attention mask, so each
prompt sees positions 0..n-1 whichever side is padded, and batched rows equal one-by-one rows to float precision.

Loading: float32 on CPU; on CUDA `options.dtype` (default bfloat16) with `device_map="auto"` (accelerate spreads the
layers over the visible GPUs, then CPU). A checkpoint quantised with MXFP4 (GPT-OSS) is dequantised to that dtype at
load (`Mxfp4Config(dequantize=True)`), so the result does not depend on whether the optional MXFP4 kernels exist.
The folder is, first match wins (the project's one rule, precompute/adapters/_weights.py): the `checkpoint` argument
(CLI --checkpoint), `<weights root>/<model_id>/` (weights root `$MATTER_ALIGN_WEIGHTS` or `<repo>/work-cache/weights`,
e.g. `work-cache/weights/gpt-oss-20b/`), the card's hub id already in the Hugging Face cache, the card's checkpoint
as a local folder. Nothing is downloaded (HF_HUB_OFFLINE=1, local_files_only=True).

Inputs: `Sample.smiles`. A sample without SMILES, a SMILES RDKit cannot parse (`options.validate_smiles`, default
true), a prompt with no SMILES token, or one longer than `options.max_tokens` (default: the model's positions)
goes to `failures` with the reason.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from precompute.adapters import resolve_device
from precompute.adapters._hf import embed_in_batches, hf_offline, quiet_transformers, smiles_samples
from precompute.adapters._weights import (
    MissingCheckpoint,
    card_local_paths,
    find_hf_folder,
    missing_message,
    model_weights_dir,
)
from precompute.adapters.base import EmbedResult
from precompute.datasets.base import Sample

log = logging.getLogger(__name__)

PLACEHOLDER = "{smiles}"
DEFAULT_TEMPLATE = "The molecule with SMILES {smiles} is"
PADDING_SIDES = ("right", "left")


def missing_checkpoint_message(card: dict[str, Any], expected: Path, checkpoint: str | None = None) -> str:
    mid = str(card.get("model_id", "?"))
    hub = str(card.get("checkpoint") or "?")
    hint = (
        f"The folder holds config.json, the tokenizer (tokenizer.json) and *.safetensors: e.g. `hf download {hub} "
        f"--local-dir {expected}`. A Hugging Face cache holding {hub} (HF_HOME) is used too."
    )
    return missing_message("LLM", mid, expected, hub, checkpoint=checkpoint, folder=True, hint=hint)


def resolve_source(card: dict[str, Any], checkpoint: str | None = None) -> str:
    """The folder (or cached hub id) to load, first match wins; see the module docstring. Raises MissingCheckpoint
    naming `<weights root>/<model_id>/`, the hub id and --checkpoint."""
    expected = model_weights_dir(str(card.get("model_id", "model")))
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not (path / "config.json").is_file():
            raise MissingCheckpoint(
                missing_checkpoint_message(card, expected, checkpoint) + f" ({path}: no config.json)"
            )
        return str(path)
    found = find_hf_folder(str(card.get("model_id", "model")))
    if found is not None:
        return str(found)
    hub = str(card.get("checkpoint") or "")
    if hub and _in_hf_cache(hub):
        return hub
    for path in card_local_paths(hub):
        if (path / "config.json").is_file():
            return str(path)
    raise MissingCheckpoint(missing_checkpoint_message(card, expected))


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # a malformed id is simply not cached
        return False


def split_template(template: str) -> tuple[str, str]:
    """(text before, text after) the single {smiles} placeholder."""
    if template.count(PLACEHOLDER) != 1:
        raise ValueError(f"prompt_template must contain {PLACEHOLDER} exactly once, got {template!r}")
    prefix, suffix = template.split(PLACEHOLDER)
    return prefix, suffix


def smiles_token_mask(offsets: list[tuple[int, int]], start: int, end: int) -> list[bool]:
    """True for the tokens whose character span [s, e) overlaps the SMILES span [start, end). Zero-width spans
    (special tokens such as BOS) never overlap."""
    return [e > s and s < end and e > start for s, e in offsets]


class LLMAdapter:
    """Masked mean of the last hidden layer (after the final norm) over the SMILES tokens of a text prompt.

    Card options: `prompt_template` (str with one {smiles}), `chat_template` (bool), `chat_template_kwargs` (dict),
    `padding_side` ("right" | "left"), `dtype` (GPU dtype, default "bfloat16"), `device_map` (GPU, default "auto"),
    `max_tokens` (int), `validate_smiles` (bool).
    """

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        hf_offline()
        self._configure(card)
        self.source = resolve_source(card, checkpoint)
        device = resolve_device(device)
        tokenizer, model = self._load(self.source, device)
        self._attach(model, tokenizer, device)

    @classmethod
    def from_model(cls, card: dict[str, Any], model: Any, tokenizer: Any, device: str) -> LLMAdapter:
        """An adapter around a model and tokenizer already in memory (bench/llm_gpu.py builds real-size random-weight
        models this way); `model` is a transformers base model whose output has `last_hidden_state`."""
        self = cls.__new__(cls)
        self._configure(card)
        self.source = "<in memory>"
        self._attach(model, tokenizer, device)
        return self

    # ------------------------------------------------------------------ set-up
    def _configure(self, card: dict[str, Any]) -> None:
        self.card = card
        opts = dict(card.get("options") or {})
        self.template = str(opts.get("prompt_template", DEFAULT_TEMPLATE))
        self.prefix, self.suffix = split_template(self.template)
        self.use_chat_template = bool(opts.get("chat_template", False))
        self.chat_template_kwargs = dict(opts.get("chat_template_kwargs") or {})
        self.padding_side = str(opts.get("padding_side", "right"))
        if self.padding_side not in PADDING_SIDES:
            raise ValueError(f"{card.get('model_id')}: padding_side {self.padding_side!r} not in {PADDING_SIDES}")
        self.gpu_dtype = str(opts.get("dtype", "bfloat16"))
        self.device_map = opts.get("device_map", "auto")
        self.max_tokens = opts.get("max_tokens")
        self.validate_smiles = bool(opts.get("validate_smiles", True))
        self.last_timing: dict[str, float] = {}
        self.last_token_counts: dict[str, tuple[int, int]] = {}  # sample_id -> (prompt tokens, SMILES tokens)

    def _load(self, source: str, device: str):
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        config = AutoConfig.from_pretrained(source, local_files_only=True)
        kwargs: dict[str, Any] = {"local_files_only": True, "output_loading_info": True}
        if device.startswith("cuda"):
            dtype = getattr(torch, self.gpu_dtype)
            kwargs["dtype"] = dtype
            # "cuda" -> accelerate's placement over all visible GPUs; "cuda:N" -> everything on that GPU
            kwargs["device_map"] = self.device_map if device == "cuda" else {"": device}
        else:
            kwargs["dtype"] = torch.float32  # bf16 matmuls on CPU are slow and lose precision
        if _quant_method(config) == "mxfp4":
            from transformers import Mxfp4Config

            kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
        with quiet_transformers():  # the load report lists lm_head.weight as unused: expected, see below
            # The base model (no LM head): its last_hidden_state is the embedding, and the head's vocab x hidden
            # matrix (0.3 to 0.6 B parameters here) is never loaded.
            model, info = AutoModel.from_pretrained(source, **kwargs)
        missing = sorted(info.get("missing_keys") or [])
        mismatched = list(info.get("mismatched_keys") or [])
        if missing or mismatched:  # would silently leave random weights in the body
            raise RuntimeError(
                f"{self.card.get('model_id')}: {source} lacks base-model weights "
                f"(missing {missing[:5]}, mismatched {mismatched[:5]})"
            )
        self.unused_checkpoint_keys = sorted(info.get("unexpected_keys") or [])
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        if not getattr(tokenizer, "is_fast", True):
            raise RuntimeError(f"{self.card.get('model_id')}: {source} needs a fast tokenizer (tokenizer.json)")
        if not device.startswith("cuda"):
            model.to(device)
        return tokenizer, model

    def _attach(self, model: Any, tokenizer: Any, device: str) -> None:
        import torch

        self._torch = torch
        self.model = model.eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:  # decoder tokenizers often have none; padding is masked out anyway
            tokenizer.pad_token = tokenizer.eos_token
        # any id inside the embedding table will do (padding is masked); never one the table lacks
        n_vocab = model.get_input_embeddings().weight.shape[0]
        candidates = (tokenizer.pad_token_id, tokenizer.eos_token_id, 0)
        self.pad_id = next(int(i) for i in candidates if i is not None and 0 <= int(i) < n_vocab)
        self.device = device
        # inputs go where the embedding table lives (the first shard under a device_map)
        self.input_device = model.get_input_embeddings().weight.device
        cfg = model.config
        self.embedding_dim = int(cfg.hidden_size)
        limit = self.max_tokens or getattr(cfg, "max_position_embeddings", None)
        self.max_tokens = int(limit) if limit else None
        self.dtype = str(next(model.parameters()).dtype).replace("torch.", "")

    # ------------------------------------------------------------------ prompts
    def format_prompt(self, smiles: str) -> tuple[str, int, int, bool]:
        """(text to tokenise, SMILES start, SMILES end, add the tokenizer's special tokens)."""
        prompt = self.prefix + smiles + self.suffix
        if not self.use_chat_template:
            return prompt, len(self.prefix), len(self.prefix) + len(smiles), True
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True,
            **self.chat_template_kwargs,
        )  # fmt: skip
        at = text.rfind(prompt)  # the user message is the last place the prompt appears
        if at < 0:
            raise ValueError("the chat template does not reproduce the prompt verbatim")
        start = at + len(self.prefix)
        return text, start, start + len(smiles), False  # the chat template writes its own BOS

    def encode(self, smiles: str) -> tuple[list[int], list[bool]]:
        """Token ids of the formatted prompt and the mask of its SMILES tokens."""
        text, start, end, special = self.format_prompt(smiles)
        enc = self.tokenizer(text, add_special_tokens=special, return_offsets_mapping=True, truncation=False)
        ids = list(enc["input_ids"])
        mask = smiles_token_mask([tuple(o) for o in enc["offset_mapping"]], start, end)
        return ids, mask

    def _encode_all(self, samples: list[Sample]):
        ok_ids: list[str] = []
        encoded: list[tuple[list[int], list[bool]]] = []
        failures: dict[str, str] = {}
        self.last_token_counts = {}
        for s, smi in smiles_samples(samples, self.validate_smiles, failures):
            try:
                ids, mask = self.encode(smi)
            except ValueError as exc:
                failures[s.sample_id] = f"cannot build the prompt for SMILES {smi!r}: {exc}"
                continue
            if not any(mask):
                failures[s.sample_id] = f"no token of the prompt covers SMILES {smi!r}"
                continue
            if self.max_tokens and len(ids) > self.max_tokens:
                failures[s.sample_id] = f"{len(ids)} prompt tokens exceed the limit of {self.max_tokens}"
                continue
            ok_ids.append(s.sample_id)
            encoded.append((ids, mask))
            self.last_token_counts[s.sample_id] = (len(ids), int(sum(mask)))
        return ok_ids, encoded, failures

    # ------------------------------------------------------------------ embedding
    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        t0 = time.perf_counter()
        ok_ids, encoded, failures = self._encode_all(samples)
        t1 = time.perf_counter()
        out = embed_in_batches(
            lambda idx: self._forward([encoded[i] for i in idx]),
            [len(ids) for ids, _ in encoded],
            self.embedding_dim,
            batch_size,
        )
        self.last_timing = {"tokenize_s": t1 - t0, "forward_s": time.perf_counter() - t1}
        return EmbedResult(ids=ok_ids, embeddings=out, failures=failures)

    def _forward(self, batch: list[tuple[list[int], list[bool]]]) -> np.ndarray:
        torch = self._torch
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        span = torch.zeros((len(batch), width), dtype=torch.bool)
        for i, (toks, mask) in enumerate(batch):
            at = width - len(toks) if self.padding_side == "left" else 0
            ids[i, at : at + len(toks)] = torch.tensor(toks, dtype=torch.long)
            attn[i, at : at + len(toks)] = 1
            span[i, at : at + len(toks)] = torch.tensor(mask, dtype=torch.bool)
        # positions 0..n-1 over the real tokens, so left padding does not shift a prompt's positions
        positions = (attn.cumsum(1) - 1).clamp_min(0)
        dev = self.input_device
        with torch.inference_mode():
            h = self.model(
                input_ids=ids.to(dev), attention_mask=attn.to(dev), position_ids=positions.to(dev), use_cache=False
            ).last_hidden_state
            m = span.to(h.device).unsqueeze(-1)
            # masked_fill, not a product: states at padded positions may be NaN (fully masked attention rows)
            total = h.float().masked_fill(~m, 0.0).sum(1)
            mean = total / m.sum(1).to(total.dtype)
        return mean.cpu().numpy()


def _quant_method(config: Any) -> str | None:
    q = getattr(config, "quantization_config", None)
    if q is None:
        return None
    return q.get("quant_method") if isinstance(q, dict) else getattr(q, "quant_method", None)
