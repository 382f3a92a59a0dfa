"""Frame2seq models 1-3: structure-conditioned masked language models for inverse folding (frame2seq 0.0.8 wheel).

| card        | weights inside the wheel        | IPA blocks x width | transition factor | parameters |
|-------------|---------------------------------|--------------------|-------------------|------------|
| frame2seq-1 | trained_models/model1.ckpt      | 8 x 128            | 1                 | 3,078,037  |
| frame2seq-2 | trained_models/model2.ckpt      | 8 x 128            | 4                 | 10,045,333 |
| frame2seq-3 | trained_models/model3.ckpt      | 8 x 128            | 4                 | 10,045,333 |

(parameters: sum of the checkpoint's state_dict; the configs are its `hyper_parameters`.) The package's own design
and score functions average the three models' logits; here each model is a card of its own.

Licence: the wheel's LICENSE file is EMPTY (0 bytes); its metadata carries the "OSI Approved :: MIT License"
classifier. The cards say both. Training set: CATH 4.2 (the preprint; the checkpoints' `len_train_size` is 18,024,
the size of the CATH 4.2 training split of Ingraham et al.).

Input: `Sample.meta["structure_path"]` (PDB; `.gz` decompressed and mmCIF converted for that chain by the same helper
as the ProteinMPNN adapter) and `meta["chain_id"]` (`meta["original_chain_id"]` when the loader renamed a blank id).
The chain is read by the package's own `get_inference_inputs` (Biopython; residues it cannot name are dropped;
residues missing N, CA or C are masked; CB and O are placed at ideal positions; coordinates rounded to 1e-4 Å).
The coordinates stay in float64, as the package passes them to its model: cast to float32 they moved the logits by
up to 0.22 and the embedding by up to 0.08 on 1I8N:A (measured), while float64 reproduces the package exactly.
The sequence input is fully masked (every position "unknown"), as the package's `design` and `score` do, so the
model sees the backbone only.

Embedding: the per-residue single representation `s` after the LAST (8th) IPA block and its transition, i.e. the input
of `single_to_sequence` (128-d), captured by a forward pre-hook on that layer during the package's own `forward`;
mean over the residues the model keeps (its `seq_mask`). The same pass gives the logits (`predict`), from which the
test computes sequence recovery. Each chain runs alone (batch 1): no padding. IPA and the distance/dihedral
features are invariant to rotating and translating the chain (tested).

Loading: `--checkpoint` > `<weights root>/<model_id>/model<i>.ckpt` > the card's `pkg://frame2seq/...` checkpoint
> the wheel's `model<i>.ckpt`; always `torch.load(weights_only=True)` (the Lightning checkpoint holds only tensors
and plain config values), then `frame2seq(config)` with a strict `load_state_dict`.

Memory (option `lean_pairs`, default true): the package builds its pair features, L x L x 449, in float64 with a
(4L x 4L x 24) RBF intermediate: 10 GB RSS for a 1,058-residue chain. The adapter swaps in, for its own forward call
only, a block-wise construction of the same values that keeps only the float32 result (tested equal to the package).

Insertion codes: the package's parser refuses them, so a chain that has any is read from a copy renumbered 1..n in
file order (`renumber_insertions`; the model uses array positions, never residue numbers). Samples that cannot be
embedded (no structure path, unreadable file, chain not in the file, fewer than two residues, no residue with N, CA
and C, non-finite output) go to `failures` with the reason.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from precompute.adapters.base import CannotEmbed, EmbedResult
from precompute.datasets.base import Sample

MODELS = (1, 2, 3)
LEAN_BLOCK_PAIRS = 65536  # residue pairs per block of the lean pair features (~0.2 GB of float64 RBFs)
HIDDEN = 128


def resolve_weights(card: dict[str, Any], checkpoint: str | None = None) -> Path:
    """The `.ckpt` to load (module docstring, "Loading"); FileNotFoundError names the file looked for."""
    from precompute.adapters._weights import find_weights_file
    from precompute.registry import resolve_checkpoint

    index = int((card.get("options") or {}).get("model", 1))
    if index not in MODELS:
        raise ValueError(f"{card.get('model_id')}: Frame2seq model {index} not in {MODELS}")
    name = f"model{index}.ckpt"
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{card.get('model_id')}: --checkpoint {checkpoint} does not exist")
        return path
    found = find_weights_file(str(card.get("model_id", "")), name, suffixes=(".ckpt",))
    if found is not None:
        return found
    ref = card.get("checkpoint") or f"pkg://frame2seq/trained_models/{name}"
    path = Path(str(resolve_checkpoint({**card, "checkpoint": ref})))
    if not path.is_file():
        raise FileNotFoundError(f"{card.get('model_id')}: Frame2seq weights {path} not found (pip install frame2seq)")
    return path


@dataclass
class ChainInput:
    """One chain as the package's `get_inference_inputs` returns it: X (1, L, 5, 3) float64 N/CA/C/CB/O in Å, seq_mask (1, L)
    bool, aatype (1, L) long (the native residues, 0-19 in the package's order ACDEFGHIKLMNPQRSTVWY)."""

    X: Any
    seq_mask: Any
    aatype: Any


class Frame2seqAdapter:
    """Mean over residues of Frame2seq's last-layer single representation (the input of its sequence head)."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import torch
        from frame2seq.model.Frame2seq import frame2seq

        from precompute.adapters import resolve_device

        self.card = card
        self.weights = resolve_weights(card, checkpoint)
        self.device = resolve_device(device)
        self._torch = torch
        ck = torch.load(self.weights, map_location="cpu", weights_only=True)
        model = frame2seq(ck["hyper_parameters"]["config"])
        model.load_state_dict(ck["state_dict"])  # strict: every weight of the architecture must be there
        self.model = model.to(self.device).eval()
        self.embedding_dim = int(self.model.single_to_sequence.in_features)
        self.lean_pairs = bool((card.get("options") or {}).get("lean_pairs", True))
        self.last_timing: dict[str, float] = {}

    def featurize(self, sample: Sample) -> ChainInput:
        """The chain through the package's parser; raises CannotEmbed with the reason."""
        from frame2seq.utils.pdb2input import get_inference_inputs

        from precompute.adapters.mpnn import _as_pdb, _chain_char, _chains_in

        meta = sample.meta or {}
        if not meta.get("structure_path"):
            raise CannotEmbed("no meta['structure_path'] for this protein chain")
        path = Path(str(meta["structure_path"]))
        if not path.is_file():
            raise CannotEmbed(f"structure file {path} does not exist")
        chain = _chain_char(meta.get("original_chain_id", meta.get("chain_id")))
        with tempfile.TemporaryDirectory(prefix="frame2seq_") as tmp:
            pdb_path, chain = _as_pdb(path, chain, Path(tmp))
            if chain not in _chains_in(pdb_path) and _chains_in(pdb_path) == [" "]:
                chain = " "  # a single-chain file with a blank id that the loader named "A"
            if chain not in _chains_in(pdb_path):
                raise CannotEmbed(f"{path}: no ATOM records for chain {chain!r} (chains: {_chains_in(pdb_path)})")
            pdb_path = renumber_insertions(pdb_path, chain, Path(tmp))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torch.cross without dim, inside the package's O placement
                    seq_mask, aatype, X = get_inference_inputs(str(pdb_path), chain)
            except AssertionError as exc:  # the package asserts more than one residue
                raise CannotEmbed(f"{path}: chain {chain!r} has fewer than two residues the parser reads") from exc
            except (ValueError, KeyError, IndexError) as exc:
                raise CannotEmbed(f"{path}: chain {chain!r}: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if X.shape[1] == 0 or int(seq_mask.sum()) == 0:
            raise CannotEmbed(f"{path}: no residue of chain {chain!r} with N, CA and C (chains: {_chains_in(path)})")
        return ChainInput(X=X, seq_mask=seq_mask, aatype=aatype)  # float64, as the package passes it (docstring)

    def _lean_z_init(self, model: Any, X: Any) -> Any:
        """The package's `make_z_init` built in blocks of residue rows: the same float64 distances, RBFs and
        relative-position one-hots, cast to float32 block by block. The package materialises the (4L, 4L, 24) RBF
        tensor and the (L, L, 449) pair features in float64 (~10 GB RSS for 1,058 residues); this keeps only the
        float32 result (2 GB there). Equal to the package's z within float32 rounding (tested)."""
        torch = self._torch
        from einops import rearrange

        B, L = X.shape[0], X.shape[1]
        k = model.relpos_k
        x_bb = rearrange(X[:, :, :4], "b n c d -> b (n c) d", c=4)
        d_max, n_bins = model.dist_bins * model.dist_bin_width, model.dist_bins
        mu = torch.linspace(0.0, d_max, n_bins, device=X.device).view(1, 1, 1, -1)
        sigma = d_max / n_bins
        idx = torch.arange(L, dtype=torch.long, device=X.device)
        z = torch.empty((B, L, L, 16 * n_bins + 2 * k + 1), dtype=torch.float32, device=X.device)
        step = max(1, LEAN_BLOCK_PAIRS // max(1, L))
        for i0 in range(0, L, step):
            i1 = min(L, i0 + step)
            dist = torch.cdist(x_bb[:, 4 * i0 : 4 * i1], x_bb)  # (B, 4b, 4L)
            rbf = torch.exp(-(((dist.unsqueeze(-1) - mu) / sigma) ** 2))
            rbf = rearrange(rbf, "b (n1 c1) (n2 c2) d -> b n1 n2 (c1 c2 d)", c1=4, c2=4)
            rel = (idx[i0:i1, None] - idx[None, :]).clamp(-k, k) + k
            rel = torch.nn.functional.one_hot(rel, 2 * k + 1).to(rbf.dtype).unsqueeze(0).expand(B, -1, -1, -1)
            z[:, i0:i1] = torch.cat([rbf, rel], dim=-1).float()
        return z

    def forward(self, ci: ChainInput) -> tuple[np.ndarray, np.ndarray]:
        """(s, logits) of one chain: (L, 128) last-layer single representation and (L, 21) sequence logits, float32,
        all residue rows (mask with `ci.seq_mask`)."""
        torch = self._torch
        captured: dict[str, Any] = {}
        hook = self.model.single_to_sequence.register_forward_pre_hook(lambda _m, args: captured.update(s=args[0]))
        inp = torch.zeros((1, ci.X.shape[1], 21), device=self.device)
        inp[:, :, 20] = 1.0  # every position masked ("unknown"), as the package's design/score
        import frame2seq.model.Frame2seq as package_model

        package_z_init = package_model.make_z_init
        if self.lean_pairs:  # swapped in for this call only: the package's own runner stays untouched
            package_model.make_z_init = self._lean_z_init
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.utils.checkpoint's use_reentrant notice (no gradients here)
                logits = self.model(ci.X.to(self.device), ci.seq_mask.to(self.device), inp)
        finally:
            package_model.make_z_init = package_z_init
            hook.remove()
        return captured["s"][0].float().cpu().numpy(), logits[0].float().cpu().numpy()

    def predict(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """(logits (n, 21), native aatype (n,)) over the residues the model keeps: for sequence recovery."""
        ci = self.featurize(sample)
        _, logits = self.forward(ci)
        m = ci.seq_mask[0].numpy().astype(bool)
        return logits[m], ci.aatype[0].numpy()[m]

    def embed(self, samples: list[Sample], batch_size: int = 1) -> EmbedResult:
        t0 = time.perf_counter()
        ids: list[str] = []
        rows: list[np.ndarray] = []
        failures: dict[str, str] = {}
        name = self.card.get("model_id", "frame2seq")
        for s in samples:
            try:
                ci = self.featurize(s)
                h, _ = self.forward(ci)
            except CannotEmbed as exc:
                failures[s.sample_id] = f"{name}: {exc}"
                continue
            m = ci.seq_mask[0].numpy().astype(bool)
            row = h[m].astype(np.float64).mean(axis=0)
            if not np.isfinite(row).all():
                failures[s.sample_id] = f"{name}: non-finite features for {s.meta.get('structure_path')}"
                continue
            ids.append(s.sample_id)
            rows.append(row.astype(np.float32))
        emb = np.stack(rows) if rows else np.zeros((0, self.embedding_dim), dtype=np.float32)
        self.last_timing = {"forward_s": time.perf_counter() - t0}
        return EmbedResult(ids=ids, embeddings=emb, failures=failures)


def renumber_insertions(pdb_path: Path, chain: str, tmp: Path) -> Path:
    """`pdb_path` itself when `chain` has no insertion code; else a copy in `tmp` whose records of that chain are
    renumbered 1, 2, ... in file order with the insertion codes blanked. The package's parser refuses insertion codes,
    and the model never reads residue numbers (its positions are array indices), so this changes nothing else."""
    lines = pdb_path.read_text(errors="replace").splitlines(keepends=True)
    mine = [i for i, ln in enumerate(lines) if ln.startswith(("ATOM", "HETATM")) and ln[21:22] == chain]
    if all(len(lines[i]) < 27 or lines[i][26] == " " for i in mine):
        return pdb_path
    new_number: dict[str, int] = {}
    for i in mine:
        ln = lines[i]
        key = ln[22:27]  # residue number + insertion code
        if key not in new_number:
            new_number[key] = len(new_number) + 1
        lines[i] = f"{ln[:22]}{new_number[key]:>4} {ln[27:]}"
    out = tmp / f"renumbered_{pdb_path.name}"
    out.write_text("".join(lines))
    return out
