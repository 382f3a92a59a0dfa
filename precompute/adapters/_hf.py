"""Helpers shared by the transformers adapters (hf_smiles, hf_chem, hf_protein, llm).

Offline mode, a quiet `from_pretrained`, the SMILES checks every SMILES adapter makes before tokenising, and the
right-padded batches with a masked mean over the last hidden layer. torch, transformers and RDKit are imported
inside the functions only, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from precompute.adapters.base import EmbedResult
from precompute.datasets.base import Sample

log = logging.getLogger(__name__)


def hf_offline() -> None:
    """Never let transformers / huggingface_hub reach the network (unless the caller already set these)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' logging at ERROR and its progress bars off inside the block (the load report lists the unused
    head keys, which each adapter checks itself); both restored afterwards."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def rdkit_chem():
    """RDKit's Chem module with its logging off, or None when RDKit is not installed (validation is optional)."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        log.warning("RDKit not installed: SMILES are not validated")
        return None
    RDLogger.DisableLog("rdApp.*")
    return Chem


def smiles_samples(samples: list[Sample], validate: bool, failures: dict[str, str]) -> Iterator[tuple[Sample, str]]:
    """(sample, SMILES) of each sample that has a SMILES RDKit parses (`validate`; skipped when RDKit is not
    installed); the others are recorded in `failures` with the reason."""
    chem = rdkit_chem() if validate else None
    for s in samples:
        smi = s.smiles
        if not smi or not isinstance(smi, str):
            failures[s.sample_id] = "no SMILES for this sample"
        elif chem is not None and chem.MolFromSmiles(smi) is None:
            failures[s.sample_id] = f"RDKit cannot parse SMILES {smi!r}"
        else:
            yield s, smi


def pad_batch(batch: list[list[int]], pool: list[list[int]], pad_id: int):
    """Right-pad token ids -> (input_ids, attention_mask, pooling_mask) as torch tensors."""
    import torch

    width = max(len(b) for b in batch)
    ids = torch.full((len(batch), width), int(pad_id), dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    keep = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (b, p) in enumerate(zip(batch, pool, strict=True)):
        ids[i, : len(b)] = torch.tensor(b, dtype=torch.long)
        attn[i, : len(b)] = 1
        keep[i, : len(b)] = torch.tensor(p, dtype=torch.long)
    return ids, attn, keep


def masked_mean(hidden, keep):
    """Mean of hidden (B, T, D) over the positions where keep (B, T) is 1, in float32 -> (B, D)."""
    w = keep.to(device=hidden.device, dtype=hidden.dtype).unsqueeze(-1)
    return ((hidden * w).sum(1) / w.sum(1).clamp_min(1.0)).float()


def embed_in_batches(forward: Callable[[list[int]], np.ndarray], lengths: list[int], dim: int, batch_size: int):
    """Rows of `forward(list of indices)` in input order, as a float32 (n, dim) array; the indices are batched by
    sorted `lengths` (token counts), so each batch pads little."""
    out = np.zeros((len(lengths), dim), dtype=np.float32)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    step = max(1, int(batch_size))
    for start in range(0, len(order), step):
        idx = order[start : start + step]
        out[idx] = forward(idx)
    return out


def masked_mean_embed(
    model: Any,
    device: str,
    token_ids: list[list[int]],
    pools: list[list[int]],
    pad_id: int,
    dim: int,
    batch_size: int,
    token_type_ids: bool = False,
) -> np.ndarray:
    """Masked mean of `model`'s last hidden layer over the tokens whose pooling mask is 1, one float32 row per
    sequence in input order. Batches are right-padded (`pad_batch`, attention mask set, padding never pooled);
    `token_type_ids=True` passes all-zero segment ids (the single-segment BERT/ALBERT input)."""
    import torch

    def forward(idx: list[int]) -> np.ndarray:
        ids, attn, keep = pad_batch([token_ids[i] for i in idx], [pools[i] for i in idx], pad_id)
        extra = {"token_type_ids": torch.zeros_like(ids).to(device)} if token_type_ids else {}
        with torch.inference_mode():
            h = model(input_ids=ids.to(device), attention_mask=attn.to(device), **extra).last_hidden_state
            return masked_mean(h, keep).cpu().numpy()

    return embed_in_batches(forward, [len(t) for t in token_ids], dim, batch_size)


class MaskedMeanEmbed:
    """`embed()` of the adapters that return the masked mean of a transformers model's last hidden layer.

    The adapter sets `model`, `device`, `pad_id` and `embedding_dim`, and `pooled_inputs(samples)` gives (ids of the
    encodable samples, their token ids, their pooling masks (1 = averaged), failures); by default its `encode`.
    `token_type_ids = True` passes all-zero segment ids. The tokenisation and forward times go to `last_timing`.
    """

    token_type_ids = False

    def pooled_inputs(self, samples: list[Sample]) -> tuple[list[str], list[list[int]], list[list[int]], dict]:
        return self.encode(samples)

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        t0 = time.perf_counter()
        ok, token_ids, pools, failures = self.pooled_inputs(samples)
        t1 = time.perf_counter()
        out = masked_mean_embed(
            self.model, self.device, token_ids, pools, self.pad_id, self.embedding_dim, batch_size,
            token_type_ids=self.token_type_ids,
        )  # fmt: skip
        self.last_timing = {"tokenize_s": t1 - t0, "forward_s": time.perf_counter() - t1}
        return EmbedResult(ids=ok, embeddings=out, failures=failures)
