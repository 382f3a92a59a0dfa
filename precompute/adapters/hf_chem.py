"""Chemical language models published on the Hugging Face hub, run with plain transformers (main environment).

| family    | cards                                   | class (transformers)           | input   | tokenizer                 |
|-----------|-----------------------------------------|--------------------------------|---------|---------------------------|
| ChemBERTa | chemberta-77m-mlm, chemberta-77m-mtr    | RobertaModel                   | SMILES  | the checkpoint's RoBERTa  |
| MolFormer | molformer-xl-both-10pct                 | remote code (modeling_molformer.py in the checkpoint folder) | SMILES | its own (remote code) |
| ChemGPT   | chemgpt-4.7m, chemgpt-19m, chemgpt-1.2b | GPTNeoModel (decoder-only)     | SELFIES | the checkpoint's          |

Embedding: the last hidden layer (`last_hidden_state`), masked mean over the molecule's tokens. Padding is always
excluded; the special tokens the tokenizer adds (`<s>`/`</s>` of RoBERTa, MolFormer's `<bos>`/`<eos>`, whatever
ChemGPT's tokenizer adds, found with the tokenizer's own `special_tokens_mask`) are excluded too unless the card
sets `include_special_tokens: true`. The same rule holds in hf_protein (ESM-2 drops `<cls>`/`<eos>`).
Each sample is tokenised alone, without truncation; batches are right-padded by us with the attention mask set, so a
row does not depend on its batch (checked to 1e-5 in tests/test_adapters_hf.py). GPT-Neo is causal: with right
padding the real tokens never see the padding.

Inputs: `Sample.smiles`. A missing SMILES, one RDKit cannot parse (option `validate_smiles`, default true), one the
`selfies` package cannot encode (ChemGPT), an empty token list, or more tokens than the model's positions goes to
`failures` with the reason; nothing is truncated. SMILES are used as given (no re-canonicalisation).

Loading (`resolve_model_dir`, the project's one rule, precompute/adapters/_weights.py): a `--checkpoint` folder; else
`<weights root>/<model_id>/` holding config.json (weights root `$MATTER_ALIGN_WEIGHTS` or `<repo>/work-cache/weights`);
else the card's `checkpoint` as a hub id looked up in the local Hugging Face cache only (HF_HUB_OFFLINE,
local_files_only=True: nothing is downloaded); else the card's `checkpoint` as a local folder. When it is nowhere,
`CheckpointNotFound` names `<weights root>/<model_id>/`, the hub id, the files expected and `--checkpoint`. Encoder
weights missing from the checkpoint are an error (they would be random), not a warning.

MolFormer has no transformers class: `trust_remote_code: true` makes AutoModel/AutoTokenizer import the
`modeling_molformer.py`, `configuration_molformer.py` and `tokenization_molformer*.py` files of the checkpoint
folder (listed in its config.json `auto_map`); a folder that lacks them is an error naming them. That code is not on
PyPI (see docs/adapters/hf.md), so here it is tested only up to that point.

The loading helpers (`resolve_model_dir`, `load_pretrained`) are shared with hf_protein.py; the batching and the
masked mean (`masked_mean_embed`) with every transformers adapter (precompute/adapters/_hf.py).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from precompute.adapters import resolve_device
from precompute.adapters._hf import MaskedMeanEmbed, hf_offline, quiet_transformers, smiles_samples
from precompute.adapters._weights import (
    MissingCheckpoint,
    card_local_paths,
    find_hf_folder,
    missing_message,
    model_weights_dir,
)
from precompute.datasets.base import Sample

log = logging.getLogger(__name__)

ARCHES = ("roberta", "molformer", "gpt_neo")
INPUTS = ("smiles", "selfies")
# Keys a base model may lack in a task checkpoint without making the embedding random: heads we do not use.
UNUSED_HEAD_PREFIXES = ("pooler.", "contact_head.")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class CheckpointNotFound(MissingCheckpoint):
    """The card's checkpoint is neither a folder nor in the local Hugging Face cache, or a folder lacks files."""


# ---------------------------------------------------------------------------------------------- loading helpers


def _hf_cache_snapshot(hub_id: str) -> tuple[Path | None, str]:
    """(the hub id's snapshot folder in the local Hugging Face cache, or None; why not), without network access."""
    cache_dir = os.environ.get("HF_HUB_CACHE") or None  # read now, so a changed environment is honoured
    try:
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(hub_id, cache_dir=cache_dir, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, or a malformed id (a path): the same advice applies
        return None, type(exc).__name__
    if (path / "config.json").is_file():
        return path, ""
    return None, "the cached snapshot has no config.json"


def _hf_cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve_model_dir(card: dict[str, Any], checkpoint: str | None = None, expected_files: str = "") -> Path:
    """The checkpoint folder, first match wins:

    1. `checkpoint` (constructor / `--checkpoint`): a folder holding config.json;
    2. `<weights root>/<model_id>/` holding config.json (precompute/adapters/_weights.py);
    3. card `checkpoint` as a hub id ("org/name"): its snapshot in the local Hugging Face cache
       (`HF_HUB_CACHE`, default ~/.cache/huggingface/hub), found without any network access;
    4. card `checkpoint` naming an existing local folder.
    Raises CheckpointNotFound naming `<weights root>/<model_id>/`, the hub id, the files expected (`expected_files`)
    and `--checkpoint`.
    """
    mid = str(card.get("model_id", "?"))
    hub_id = str(card.get("checkpoint") or "")
    family = str(card.get("family") or "")
    expected = model_weights_dir(mid)
    hint = f"The folder must hold: {expected_files}." if expected_files else ""
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if (path / "config.json").is_file():
            return path
        raise CheckpointNotFound(
            missing_message(
                family,
                mid,
                expected,
                hub_id or "?",
                checkpoint=checkpoint,
                folder=True,
                hint=f"({path} has no config.json) {hint}",
            )
        )
    found = find_hf_folder(mid)
    if found is not None:
        return found
    looked = []
    if hub_id:
        snapshot, reason = _hf_cache_snapshot(hub_id)
        if snapshot is not None:
            return snapshot
        looked.append(f"the Hugging Face cache {_hf_cache_dir()} ({reason})")
    for path in card_local_paths(hub_id):
        if (path / "config.json").is_file():
            return path
    raise CheckpointNotFound(
        missing_message(family, mid, expected, hub_id or "?", folder=True, looked=looked, hint=hint)
    )


def chem_expected_files(trust_remote_code: bool) -> str:
    """The folder layout a transformers checkpoint of these models has (for the error messages)."""
    files = "config.json, the weights (model.safetensors or pytorch_model.bin), the tokenizer files "
    files += "(tokenizer_config.json with vocab.json + merges.txt, or tokenizer.json)"
    if trust_remote_code:
        files += ", and the remote code named in config.json auto_map (configuration_molformer.py, "
        files += "modeling_molformer.py, tokenization_molformer.py, tokenization_molformer_fast.py)"
    return files


def remote_code_files(model_dir: Path) -> list[str]:
    """The .py files a folder's config.json / tokenizer_config.json `auto_map` points to."""
    names: set[str] = set()
    for cfg in ("config.json", "tokenizer_config.json"):
        f = model_dir / cfg
        if not f.is_file():
            continue
        auto_map = json.loads(f.read_text()).get("auto_map") or {}
        for ref in auto_map.values():
            for r in ref if isinstance(ref, list) else [ref]:
                if isinstance(r, str) and "." in r:
                    names.add(r.split("--")[-1].rsplit(".", 1)[0] + ".py")
    return sorted(names)


def load_pretrained(
    model_dir: Path,
    model_id: str,
    *,
    trust_remote_code: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    dtype: str | None = None,
    expected_files: str = "",
):
    """(tokenizer, model) from a local folder with AutoTokenizer/AutoModel.from_pretrained(local_files_only=True).

    The model is the bare encoder/decoder (AutoModel). A missing or mismatched weight outside the unused heads
    (pooler, contact head) is an error: it would silently be random.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    if not any((model_dir / w).is_file() for w in WEIGHT_FILES):
        raise CheckpointNotFound(f"{model_id}: {model_dir} has no weights file; the folder must hold: {expected_files}")
    if trust_remote_code:
        missing = [f for f in remote_code_files(model_dir) if not (model_dir / f).is_file()]
        if missing or not remote_code_files(model_dir):
            raise CheckpointNotFound(
                f"{model_id}: {model_dir} needs the model's own code (trust_remote_code): "
                f"{missing or 'config.json has no auto_map'} missing; the folder must hold: {expected_files}"
            )
    kwargs = dict(model_kwargs or {})
    if dtype:
        kwargs["dtype"] = getattr(torch, dtype)
    with quiet_transformers():  # the load report lists unused head keys; we check the missing ones below
        tokenizer = AutoTokenizer.from_pretrained(
            str(model_dir), local_files_only=True, trust_remote_code=trust_remote_code
        )
        model, info = AutoModel.from_pretrained(
            str(model_dir),
            local_files_only=True,
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
            **kwargs,
        )
    missing = sorted(k for k in info.get("missing_keys", []) if not k.startswith(UNUSED_HEAD_PREFIXES))
    mismatched = sorted(str(k) for k in info.get("mismatched_keys", []))
    if missing or mismatched:
        raise RuntimeError(
            f"{model_id}: {model_dir} lacks weights of the encoder (missing {missing[:5]}, mismatched "
            f"{mismatched[:5]}); they would be random"
        )
    return tokenizer, model


# ---------------------------------------------------------------------------------------------- the adapter


class ChemLMAdapter(MaskedMeanEmbed):
    """Masked mean of the last hidden layer of a hub chemical language model (ChemBERTa, MolFormer, ChemGPT).

    Card options: `arch` ("roberta" | "molformer" | "gpt_neo": checked against the loaded config's model_type),
    `input` ("smiles" | "selfies"), `include_special_tokens` (default false), `validate_smiles` (RDKit parse check,
    default true), `trust_remote_code` (MolFormer), `model_kwargs` (passed to from_pretrained, e.g.
    MolFormer's `deterministic_eval: true`), `dtype` (e.g. "bfloat16" for large models on a GPU; default float32),
    `max_tokens` (default: the model's positions).
    """

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        hf_offline()
        self.card = card
        mid = str(card.get("model_id", "?"))
        opts = dict(card.get("options") or {})
        self.arch = str(opts.get("arch", "roberta"))
        self.input = str(opts.get("input", "smiles"))
        if self.arch not in ARCHES:
            raise ValueError(f"{mid}: arch {self.arch!r} not in {ARCHES}")
        if self.input not in INPUTS:
            raise ValueError(f"{mid}: input {self.input!r} not in {INPUTS}")
        self.include_special = bool(opts.get("include_special_tokens", False))
        self.validate_smiles = bool(opts.get("validate_smiles", True))
        trust = bool(opts.get("trust_remote_code", False))
        expected = chem_expected_files(trust)
        self.model_dir = resolve_model_dir(card, checkpoint, expected)
        self.tokenizer, self.model = load_pretrained(
            self.model_dir,
            mid,
            trust_remote_code=trust,
            model_kwargs=opts.get("model_kwargs"),
            dtype=opts.get("dtype"),
            expected_files=expected,
        )
        config = self.model.config
        if self.arch != "molformer" and config.model_type != self.arch:
            raise ValueError(
                f"{mid}: {self.model_dir} holds a {config.model_type!r} model, the card says {self.arch!r}"
            )
        if self.tokenizer.pad_token is None and self.tokenizer.eos_token is not None:
            self.tokenizer.pad_token = self.tokenizer.eos_token  # decoder-only (GPT-Neo): pad with eos, masked anyway
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)  # only fills masked positions
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        self.embedding_dim = int(config.hidden_size)
        positions = int(getattr(config, "max_position_embeddings", 0) or 0) or 10**9
        if config.model_type == "roberta":  # RoBERTa's position ids start after padding_idx
            positions -= int(config.pad_token_id or 0) + 1
        self.max_tokens = int(opts.get("max_tokens") or positions)
        self.last_unk_counts: dict[str, int] = {}
        self.last_inputs: dict[str, str] = {}
        self.last_timing: dict[str, float] = {}

    # ------------------------------------------------------------------ tokenisation
    def model_input(self, smiles: str) -> str:
        """The string the tokenizer sees: the SMILES, or its SELFIES (selfies.encoder) for ChemGPT."""
        if self.input == "selfies":
            import selfies

            return selfies.encoder(smiles)  # raises selfies.EncoderError
        return smiles

    def encode(self, samples: list[Sample]) -> tuple[list[str], list[list[int]], list[list[int]], dict[str, str]]:
        """(ids of encodable samples, their token ids, their pooling masks (1 = averaged), failures)."""
        ok, token_ids, pools, failures = [], [], [], {}
        self.last_unk_counts, self.last_inputs = {}, {}
        unk = self.tokenizer.unk_token_id
        for s, smi in smiles_samples(samples, self.validate_smiles, failures):
            try:
                text = self.model_input(smi)
            except Exception as exc:  # selfies.EncoderError: unsupported atom, valence, syntax
                why = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip() and "SMILES:" not in ln)
                failures[s.sample_id] = f"SMILES {smi!r} cannot be converted to SELFIES: {why or type(exc).__name__}"
                continue
            enc = self.tokenizer(text, add_special_tokens=True, truncation=False, return_special_tokens_mask=True)
            ids = list(enc["input_ids"])
            special = list(enc["special_tokens_mask"])
            pool = [1] * len(ids) if self.include_special else [1 - m for m in special]
            if not any(pool):
                failures[s.sample_id] = f"{text!r} gives no tokens"
                continue
            if len(ids) > self.max_tokens:
                failures[s.sample_id] = f"{len(ids)} tokens exceed the model's {self.max_tokens} positions"
                continue
            ok.append(s.sample_id)
            token_ids.append(ids)
            pools.append(pool)
            self.last_inputs[s.sample_id] = text
            n_unk = sum(1 for i, m in zip(ids, special, strict=True) if i == unk and not m) if unk is not None else 0
            if n_unk:
                self.last_unk_counts[s.sample_id] = n_unk
        if self.last_unk_counts:
            log.warning("%s: %d samples contain unknown tokens", self.card.get("model_id"), len(self.last_unk_counts))
        return ok, token_ids, pools, failures
