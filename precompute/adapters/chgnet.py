"""CHGNet (chgnet 0.4.2 wheel; real pretrained weights 0.2.0, 0.3.0 and r2scan ship inside the wheel).

Embedding: the atom features after the LAST atom-convolution layer (and CHGNet's `readout_norm`, a per-atom
LayerNorm in 0.3.0/r2scan, none in 0.2.0), mean-pooled over the atoms of each structure. 64-d for all versions.

How it is read out: `CHGNet.forward(..., return_crystal_feas=True)` returns `crystal_fea = self.pooling(atom_feas)`
of exactly those features. In all three released versions `mlp_first=True`, so `self.pooling` is
`GraphPooling(average=False)`, a SUM over atoms; the mean is therefore `crystal_fea / n_atoms`. Checked with a
forward hook on `readout_norm` (0.3.0, r2scan) and on `atom_conv_layers[-1]` (0.2.0): the hooked per-atom features
sum exactly to `crystal_fea` (tests/test_adapters_structure.py::test_chgnet_mean_equals_hooked_last_layer).
Note that `return_atom_feas=True` gives the features BEFORE the last conv layer (model.py:478), not the last layer.

Molecules are put in an orthorhombic periodic box (cell = extent + 15 Å per axis; CHGNet's cutoff is 5-6 Å, so a
molecule never sees its images). Options: {version: "0.2.0" | "0.3.0" | "r2scan", graph_workers: 0}.
`checkpoint` may name a `.pth.tar` file in CHGNet's format to load instead of the wheel's weights for that version.

Graph conversion (pymatgen neighbour list + CHGNet's C graph code) is per structure and cannot be batched; on a GPU it
is most of the batched time. `graph_workers: k > 1` converts in k spawned worker processes (a pool kept for the
adapter's lifetime); the graphs, and so the embeddings, are identical to in-process conversion.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from precompute.adapters._structure import boxed, check_all, embed_batches, local_checkpoint, resolve_device
from precompute.adapters.base import EmbedResult
from precompute.datasets.base import Sample

log = logging.getLogger(__name__)

VERSIONS = ("0.2.0", "0.3.0", "r2scan")
MAX_Z = 94  # CHGNet's atom embedding covers H..Pu


_WORKER_CONVERTER = None


def _structure_graph(converter, sample_id: str, atoms):
    """CHGNet crystal graph of one structure (molecules boxed); raises on what CHGNet cannot convert."""
    from pymatgen.io.ase import AseAtomsAdaptor

    if int(atoms.numbers.max()) > MAX_Z:
        raise ValueError(f"element Z={int(atoms.numbers.max())} outside CHGNet's range (Z <= {MAX_Z})")
    structure = AseAtomsAdaptor.get_structure(boxed(atoms))
    return converter(structure, graph_id=sample_id)


def _init_graph_worker(settings: dict) -> None:
    global _WORKER_CONVERTER
    import torch
    from chgnet.graph import CrystalGraphConverter

    torch.set_num_threads(1)
    _WORKER_CONVERTER = CrystalGraphConverter(**settings)


def _graph_in_worker(item):
    sample_id, atoms = item
    try:
        return sample_id, _structure_graph(_WORKER_CONVERTER, sample_id, atoms), None
    except Exception as exc:
        return sample_id, None, str(exc)


class CHGNetAdapter:
    """Mean-pooled last-layer atom features of a pretrained CHGNet."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import torch
        from chgnet.model import CHGNet
        from chgnet.model.layers import GraphPooling

        self.card = card
        opts = card.get("options") or {}
        self.version = str(opts.get("version", "0.3.0"))
        if self.version not in VERSIONS:
            raise ValueError(f"CHGNet: unknown version {self.version!r}; choose one of {VERSIONS}")
        self.device = resolve_device(device)
        checkpoint = local_checkpoint(checkpoint)
        if checkpoint:
            model = CHGNet.from_file(checkpoint, mlp_out_bias=self.version == "0.2.0", version=self.version)
        else:
            model = CHGNet.load(model_name=self.version, use_device="cpu", verbose=False)
        self.model = model.to(self.device).eval()
        pool = self.model.pooling
        if not isinstance(pool, GraphPooling):
            raise NotImplementedError(f"CHGNet {self.version}: readout {type(pool).__name__} is not a plain pooling")
        # sum pooling (mlp_first=True, every released version) -> divide by the atom count; average -> use as is
        self._divide_by_n = not pool.average
        self.embedding_dim = int(self.model.atom_embedding.embedding.embedding_dim)
        self._torch = torch
        self.graph_workers = int(opts.get("graph_workers") or 0)
        self._pool = None

    def _graph_pool(self):
        if self._pool is None:
            import multiprocessing
            import weakref
            from concurrent.futures import ProcessPoolExecutor

            conv = self.model.graph_converter
            settings = {
                "atom_graph_cutoff": conv.atom_graph_cutoff,
                "bond_graph_cutoff": conv.bond_graph_cutoff,
                "algorithm": conv.algorithm,
                "on_isolated_atoms": conv.on_isolated_atoms,
            }
            self._pool = ProcessPoolExecutor(
                self.graph_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_graph_worker,
                initargs=(settings,),
            )
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def close(self) -> None:
        """Stop the graph worker processes, if any."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _graphs(self, samples: list[Sample]) -> list[tuple[str, Any, str | None]]:
        """(sample_id, graph or None, error or None) for each sample, in order."""
        if self.graph_workers > 1 and len(samples) > 1:
            items = [(s.sample_id, s.atoms) for s in samples]
            chunk = max(1, len(items) // (4 * self.graph_workers))
            return list(self._graph_pool().map(_graph_in_worker, items, chunksize=chunk))
        out = []
        for s in samples:
            try:
                out.append((s.sample_id, self.graph(s), None))
            except Exception as exc:
                out.append((s.sample_id, None, str(exc)))
        return out

    def graph(self, sample: Sample):
        """CHGNet crystal graph of one sample (molecules boxed); raises on what CHGNet cannot convert."""
        return _structure_graph(self.model.graph_converter, sample.sample_id, sample.atoms)

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        check_all(samples)
        ids: list[str] = []
        graphs = []
        failures: dict[str, str] = {}
        for sid, g, err in self._graphs(samples):
            if g is None:  # isolated atoms, unsupported elements: recorded with the reason
                failures[sid] = f"CHGNet {self.version} cannot build a graph: {err}"
            else:
                graphs.append(g)
                ids.append(sid)
        return embed_batches(ids, graphs, failures, self._forward, batch_size, self.embedding_dim)

    def predict_energy(self, samples: list[Sample], batch_size: int = 32) -> dict[str, float]:
        """CHGNet's predicted total energy in eV per structure (molecules boxed); a sanity check that the real
        pretrained weights are loaded, and the input of energy-error analyses. Unconvertible samples are left out."""
        check_all(samples)
        out: dict[str, float] = {}
        for start in range(0, len(samples), max(1, batch_size)):
            chunk = samples[start : start + max(1, batch_size)]
            with self._torch.no_grad():
                pred = self.model([self.graph(s).to(self.device) for s in chunk], task="e")
            # pred["e"] is per atom (is_intensive); report the total
            for s, e in zip(chunk, pred["e"].double().cpu().numpy(), strict=True):
                out[s.sample_id] = float(e) * len(s.atoms)
        return out

    def _forward(self, graphs: list) -> tuple[list[np.ndarray], list[float]]:
        """Pooled last-layer features and the predicted total energy (eV) of each graph, from one forward pass."""
        torch = self._torch
        with torch.no_grad():
            pred = self.model([g.to(self.device) for g in graphs], task="e", return_crystal_feas=True)
        fea = pred["crystal_fea"].double()
        n_atoms = pred["atoms_per_graph"].to(fea.dtype)
        if self._divide_by_n:
            fea = fea / n_atoms[:, None]
        # pred["e"] is per atom (CHGNet's energy is intensive); the total is what the labels are
        total = pred["e"].double().reshape(-1) * n_atoms
        return list(fea.cpu().numpy()), total.cpu().tolist()
