"""ESM-2 protein language models (transformers EsmModel) on chain sequences, and an ESM-2-sized random-init control.

Cards: esm2-8m ... esm2-15b (`source: pretrained`, checkpoint `facebook/esm2_t<L>_<size>_UR50D`) and
esm2-35m-random-init (`source: random_init`: the 35M architecture with seeded random weights, NOT the pretrained
model; its card's checkpoint names the weights it does not use).

Input: `Sample.sequence` (one-letter codes of the chain). It is upper-cased; the letters of the ESM-2 alphabet (the
20 standard amino acids and X, B, U, Z, O, which ESM-2 has tokens for) are kept, and any other character (J, '*',
'-', '.', digits, a modified residue the loader wrote as '?') becomes X, the unknown-residue token; the number of
replacements per sample is in `last_x_counts`. A sample with no sequence, or longer than `max_residues` (default
1022: ESM-2 was trained on crops of 1024 tokens including <cls>/<eos>), goes to `failures`; nothing is cropped.

Embedding: the last hidden layer (`last_hidden_state`, after ESM-2's final layer norm), mean over the residues:
<cls>, <eos> and padding are excluded, so the row is the per-residue mean. Each chain is tokenised alone
(`<cls> residues <eos>`, one token per residue, checked), batches are right-padded with the attention mask set; ESM-2
uses rotary positions, so padding does not change a row (checked to 1e-5 in tests/test_adapters_hf.py).

Loading: the pretrained cards use hf_chem's `resolve_model_dir`, the project's one rule (precompute/adapters/_weights.py):
a `--checkpoint` folder, else `<weights root>/<model_id>/` (e.g. `work-cache/weights/esm2-650m/`, holding the hub
repository's files), else the hub id in the local Hugging Face cache, else an error naming that folder, the hub id,
the files and --checkpoint; then AutoTokenizer/AutoModel.from_pretrained(local_files_only=True); the pooler and contact head, absent from or unused in the checkpoints, are
not part of the embedding. The random-init card builds EsmModel from an EsmConfig with the published hyper-parameters
of its size (ESM2_SIZES) under `torch.manual_seed(seed)`, and an EsmTokenizer from the 33-token ESM-2 vocabulary
(ESM2_VOCAB) written to a temporary vocab.txt.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from precompute.adapters import resolve_device
from precompute.adapters._hf import MaskedMeanEmbed, hf_offline
from precompute.adapters.hf_chem import load_pretrained, resolve_model_dir
from precompute.datasets.base import Sample

# The ESM-2 alphabet in token-id order: 4 specials, the 25 residue letters by frequency, gap/insert, null, mask.
ESM2_VOCAB: tuple[str, ...] = (
    ("<cls>", "<pad>", "<eos>", "<unk>") + tuple("LAGVSERTIDPKQNFYMHWCXBUZO") + (".", "-", "<null_1>", "<mask>")
)
RESIDUES = frozenset("LAGVSERTIDPKQNFYMHWCXBUZO")  # letters ESM-2 has a token for; anything else -> X

# Published ESM-2 hyper-parameters (facebook/esm2_t*_UR50D config.json): layers, hidden, heads, FFN width.
ESM2_SIZES: dict[str, dict[str, int]] = {
    "8m": {"num_hidden_layers": 6, "hidden_size": 320, "num_attention_heads": 20, "intermediate_size": 1280},
    "35m": {"num_hidden_layers": 12, "hidden_size": 480, "num_attention_heads": 20, "intermediate_size": 1920},
    "150m": {"num_hidden_layers": 30, "hidden_size": 640, "num_attention_heads": 20, "intermediate_size": 2560},
    "650m": {"num_hidden_layers": 33, "hidden_size": 1280, "num_attention_heads": 20, "intermediate_size": 5120},
    "3b": {"num_hidden_layers": 36, "hidden_size": 2560, "num_attention_heads": 40, "intermediate_size": 10240},
    "15b": {"num_hidden_layers": 48, "hidden_size": 5120, "num_attention_heads": 40, "intermediate_size": 20480},
}
# Settings shared by every ESM-2 size (same config.json files).
ESM2_COMMON: dict[str, Any] = {
    "vocab_size": len(ESM2_VOCAB),
    "pad_token_id": 1,
    "mask_token_id": 32,
    "max_position_embeddings": 1026,
    "position_embedding_type": "rotary",
    "token_dropout": True,
    "emb_layer_norm_before": False,
    "layer_norm_eps": 1e-5,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
}
ESM_EXPECTED_FILES = (
    "config.json, the weights (model.safetensors or pytorch_model.bin), vocab.txt, tokenizer_config.json and "
    "special_tokens_map.json"
)


def esm2_config(size: str, **overrides: Any):
    """EsmConfig of a published ESM-2 size ("8m" ... "15b"), with optional overrides (tests use tiny widths)."""
    from transformers import EsmConfig

    if size not in ESM2_SIZES:
        raise ValueError(f"unknown ESM-2 size {size!r}; choose one of {sorted(ESM2_SIZES)}")
    return EsmConfig(**{**ESM2_COMMON, **ESM2_SIZES[size], **overrides})


def esm2_tokenizer():
    """EsmTokenizer from ESM2_VOCAB (written to a temporary vocab.txt, read at construction)."""
    from transformers import EsmTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.txt"
        vocab.write_text("\n".join(ESM2_VOCAB) + "\n", encoding="utf-8")
        return EsmTokenizer(str(vocab))


def clean_sequence(sequence: str) -> tuple[str, int]:
    """(upper-cased sequence with every character outside the ESM-2 residue alphabet replaced by X, replacements)."""
    seq = "".join(sequence.split()).upper()
    out = "".join(c if c in RESIDUES else "X" for c in seq)
    return out, sum(1 for a, b in zip(seq, out, strict=True) if a != b)


class ESMAdapter(MaskedMeanEmbed):
    """Per-residue mean of ESM-2's last hidden layer (<cls>/<eos>/padding excluded).

    Card options: `size` (a key of ESM2_SIZES; required for random_init), `seed` (random_init, default 0),
    `max_residues` (default 1022), `dtype` (e.g. "bfloat16" for the 3B/15B models on a GPU; default float32),
    `config_overrides` (random_init only: e.g. tiny widths in tests).
    """

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        hf_offline()
        import torch

        self.card = card
        mid = str(card.get("model_id", "?"))
        opts = dict(card.get("options") or {})
        self.random_init = card.get("source") == "random_init"
        self.max_residues = int(opts.get("max_residues", 1022))
        if self.random_init:
            if checkpoint:
                raise ValueError(f"{mid} is a random_init control: it loads no checkpoint (got {checkpoint!r})")
            from transformers import EsmModel

            self.seed = int(opts.get("seed", 0))
            config = esm2_config(str(opts.get("size", "")), **dict(opts.get("config_overrides") or {}))
            with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG state
                torch.manual_seed(self.seed)
                self.model = EsmModel(config, add_pooling_layer=False)
            self.tokenizer = esm2_tokenizer()
            self.model_dir = None
        else:
            self.model_dir = resolve_model_dir(card, checkpoint, ESM_EXPECTED_FILES)
            self.tokenizer, self.model = load_pretrained(
                self.model_dir, mid, dtype=opts.get("dtype"), expected_files=ESM_EXPECTED_FILES
            )
            if self.model.config.model_type != "esm":
                raise ValueError(f"{mid}: {self.model_dir} holds a {self.model.config.model_type!r} model, not ESM")
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        self.embedding_dim = int(self.model.config.hidden_size)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.last_x_counts: dict[str, int] = {}
        self.last_timing: dict[str, float] = {}

    def encode(self, samples: list[Sample]) -> tuple[list[str], list[list[int]], list[list[int]], dict[str, str]]:
        """(ids of encodable samples, token ids `<cls> residues <eos>`, pooling masks (residues = 1), failures)."""
        ok, token_ids, pools, failures = [], [], [], {}
        self.last_x_counts = {}
        for s in samples:
            if not s.sequence or not isinstance(s.sequence, str) or not s.sequence.strip():
                failures[s.sample_id] = "no sequence for this sample"
                continue
            seq, n_x = clean_sequence(s.sequence)
            if len(seq) > self.max_residues:
                failures[s.sample_id] = f"{len(seq)} residues exceed max_residues={self.max_residues}"
                continue
            enc = self.tokenizer(seq, add_special_tokens=True, truncation=False, return_special_tokens_mask=True)
            ids, special = list(enc["input_ids"]), list(enc["special_tokens_mask"])
            if len(ids) != len(seq) + 2 or sum(special) != 2:  # one token per residue, plus <cls> and <eos>
                failures[s.sample_id] = f"tokeniser gave {len(ids)} tokens for {len(seq)} residues"
                continue
            ok.append(s.sample_id)
            token_ids.append(ids)
            pools.append([1 - m for m in special])
            if n_x:
                self.last_x_counts[s.sample_id] = n_x
        return ok, token_ids, pools, failures
