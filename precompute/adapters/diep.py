"""DIEP (diep 2.0.0 wheel; the pretrained `diep_fold1`, trained on MatPES r2SCAN, ships inside it). Environment:
`.venv-sevenn` (PyG, which SevenNet already brings).

DIEP is an M3GNet-style PyG model (a matgl derivative without DGL): bond features from a direct integration of the
electron-ion potential, three-body interactions, 3 graph-convolution blocks of 64 units, a per-atom energy readout
summed per structure, scaled and shifted by isolated-atom element references (`diep.apps.pes.Potential`).

Embedding: the node features output by the last graph-convolution block (`model.graph_layers[-1]`, 64 invariant
channels: the model sees only distances and angles), captured with a forward hook and mean-pooled over atoms.
The predicted total energy (eV) comes from the same pass, with forces and stresses switched off (no autograd).

Graphs: `diep.ext.ase.Atoms2Graph` at the model's cutoff (5 Å), exactly as its ASE calculator builds them (positions
wrapped into the cell first, as `DIEPCalculator` does; molecules without pbc get an identity lattice), batched with
PyG's `Batch.from_data_list` and the lattices stacked. Weights: `diep.pretrained.load_potential`, which checks the
model folder and loads every tensor strictly (`model.pt`/`state.pt` read by torch.load, weights only by default on
torch 2.13); `checkpoint` may name another exported DIEP model folder.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from precompute.adapters._structure import (
    build_inputs,
    check_all,
    elements_outside,
    embed_batches,
    local_checkpoint,
    resolve_device,
    segment_mean,
)
from precompute.adapters.base import CannotEmbed, EmbedResult
from precompute.datasets.base import Sample

MODELS = ("diep_fold1",)


class DIEPAdapter:
    """Mean-pooled node features of the last graph-convolution block of the pretrained DIEP (diep_fold1)."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import torch
        from ase.data import atomic_numbers

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from diep.ext.ase import Atoms2Graph
            from diep.pretrained import load_potential

        self.card = card
        self._torch = torch
        opts = card.get("options") or {}
        self.model_name = str(opts.get("model", "diep_fold1"))
        if not checkpoint and self.model_name not in MODELS:
            raise ValueError(f"DIEP: unknown model {self.model_name!r}; choose one of {MODELS}")
        self.device = resolve_device(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            potential = load_potential(local_checkpoint(checkpoint), device=self.device, stress=False)
        potential.calc_forces = False  # energies only: no autograd pass
        self.potential = potential.eval()
        model = potential.model
        self.cutoff = float(model.cutoff)
        self.known_z = {atomic_numbers[s] for s in model.element_types}
        self._converter = Atoms2Graph(model.element_types, model.cutoff)
        last = model.graph_layers[-1]
        self._captured: list = []
        # a graph layer returns (edge_feat, node_feat, state_feat)
        last.register_forward_hook(lambda module, args, out: self._captured.append(out[1]))
        self.embedding_dim = self._probe_dim()

    def _probe_dim(self) -> int:
        """Width of the last block's node features, read from one pass on a 2-atom molecule."""
        from ase import Atoms

        probe = Sample(sample_id="probe:H2", atoms=Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]))
        rows, _ = self._forward([self._graph(probe)])
        return int(rows[0].shape[0])

    def _graph(self, sample: Sample) -> tuple[Any, Any, Any]:
        outside = elements_outside(sample.atoms, self.known_z)
        if outside:
            raise CannotEmbed(f"DIEP {self.model_name} has no type for Z={outside}")
        atoms = sample.atoms.copy()
        atoms.wrap()  # as DIEPCalculator: exact under pbc, leaves non-periodic axes alone
        g, lat, state = self._converter.get_graph(atoms)
        return g, lat, self._torch.as_tensor(np.asarray(state))

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        check_all(samples)
        what = f"DIEP {self.model_name} cannot build a graph"
        ids, graphs, failures = build_inputs(samples, self._graph, what)
        return embed_batches(ids, graphs, failures, self._forward, batch_size, self.embedding_dim)

    def _forward(self, items: list) -> tuple[list[np.ndarray], list[float]]:
        """Pooled last-block node features and predicted total energy (eV) of each graph, one pass, no forces."""
        torch = self._torch
        from torch_geometric.data import Batch

        batch = Batch.from_data_list([g for g, _, _ in items]).to(self.device)
        lattice = torch.cat([lat.reshape(1, 3, 3) for _, lat, _ in items]).to(self.device)
        state = torch.stack([s for _, _, s in items]).to(self.device)
        self._captured.clear()
        with torch.no_grad():
            energy = self.potential(batch, lattice, state)[0]
        if len(self._captured) != 1:  # pragma: no cover - the hook fires once per pass
            raise RuntimeError(f"DIEP: the hook on the last graph layer fired {len(self._captured)} times")
        n = len(items)
        pooled = segment_mean(self._captured.pop(), batch.batch, n)
        energy = energy.reshape(-1).to(torch.float64)
        if energy.shape[0] != n:
            raise RuntimeError(f"DIEP: {energy.shape[0]} total energies for {n} graphs")
        return list(pooled), energy.cpu().tolist()
