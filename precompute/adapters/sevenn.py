"""SevenNet (sevenn 0.13.0 wheel; real pretrained checkpoints ship inside the wheel). Own environment: `.venv-sevenn`.

SevenNet needs e3nn >= 0.5 (it refuses 0.4.4 with a hard error), mace-torch pins e3nn == 0.4.4, so SevenNet runs in
its own environment, created by `bash precompute/envs/create_sevenn.sh`, as a subprocess worker.

Models (card option `model`, sevenn's own names): "7net-0" (= 7net-0_11Jul2024), "7net-0_22May2024", "7net-l3i5",
"7net-mf-0". All use a 5 Å cutoff. Loaded with `sevenn.util.load_checkpoint(name).build_model()`; `checkpoint` may
name a `.pth` file in SevenNet's checkpoint format instead.

Embedding: the node features entering `reduce_input_to_hidden` (the linear layer that starts the energy readout),
i.e. the output of the last interaction block's gate: 128x0e, invariant scalars, captured with a forward pre-hook
and mean-pooled over atoms. For 7net-mf-0 the modality one-hot (2x0e) is concatenated INSIDE that layer's forward,
after the pre-hook, so the captured features are the 128 scalars without it; the modality still shapes them through
the earlier layers, so it is an option: {modality: "PBE" | "R2SCAN"}, default "PBE". The model's modules run in
order up to (not including) `force_output`, so the predicted total energy (eV) comes from the same pass and forces
(which would need autograd) are never computed.

Graphs: `sevenn.train.dataload.unlabeled_atoms_to_graph` (molecules without pbc need no box: SevenNet builds
non-periodic graphs), `AtomGraphData.from_numpy_dict`, batched with torch_geometric `Batch.from_data_list` and
`model.set_is_batch_data(True)`.
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

MODELS = ("7net-0", "7net-0_11Jul2024", "7net-0_22May2024", "7net-l3i5", "7net-mf-0")
HOOK_MODULE = "reduce_input_to_hidden"


FORCE_MODULE = "force_output"  # the autograd force/stress head: skipped, energies need only the modules before it


class SevenNetAdapter:
    """Mean-pooled last hidden layer (input of reduce_input_to_hidden) of a pretrained SevenNet."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import sevenn._keys as KEY  # noqa: N812 - sevenn's own spelling
            from sevenn.util import load_checkpoint

        self.card = card
        self._torch = torch
        self._key = KEY
        opts = card.get("options") or {}
        self.model_name = str(opts.get("model", "7net-0"))
        if not checkpoint and self.model_name not in MODELS:
            raise ValueError(f"SevenNet: unknown model {self.model_name!r}; choose one of {MODELS}")
        self.device = resolve_device(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cp = load_checkpoint(local_checkpoint(checkpoint) or self.model_name)
            model = cp.build_model()
        self.cutoff = float(cp.config[KEY.CUTOFF])
        self.type_map = {int(z) for z in cp.config[KEY.TYPE_MAP]}
        self.modal_map = dict(model.modal_map) if model.modal_map else None
        self.modality = None
        if self.modal_map:
            self.modality = str(opts.get("modality", "PBE"))
            if self.modality not in self.modal_map:
                raise ValueError(
                    f"SevenNet {self.model_name}: modality {self.modality!r} not in {list(self.modal_map)}"
                )
        model.set_is_batch_data(True)
        self.model = model.to(self.device).eval()
        hook_mod = self.model._modules[HOOK_MODULE]
        self.embedding_dim = int(hook_mod._irreps_in_wo_modal.dim)
        self._captured: list = []
        hook_mod.register_forward_pre_hook(lambda module, args: self._captured.append(args[0]["x"].detach()))
        names = list(self.model._modules)
        if FORCE_MODULE not in names or names[-1] != FORCE_MODULE:
            raise RuntimeError(f"SevenNet {self.model_name}: expected {FORCE_MODULE!r} last, found modules {names}")

    def _graph(self, sample: Sample):
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        outside = elements_outside(sample.atoms, self.type_map)
        if outside:
            raise CannotEmbed(f"SevenNet {self.model_name} has no type for Z={outside}")
        d = unlabeled_atoms_to_graph(sample.atoms, self.cutoff)
        if self.modality is not None:
            d[self._key.DATA_MODALITY] = self.modality
        return AtomGraphData.from_numpy_dict(d)

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        check_all(samples)
        what = f"SevenNet {self.model_name} cannot build a graph"
        ids, graphs, failures = build_inputs(samples, self._graph, what)
        return embed_batches(ids, graphs, failures, self._forward, batch_size, self.embedding_dim)

    def _forward(self, graphs: list) -> tuple[list[np.ndarray], list[float]]:
        """Pooled last hidden layer and predicted total energy (eV) of each graph, from one pass without forces."""
        torch = self._torch
        from torch_geometric.data import Batch

        batch = Batch.from_data_list(graphs).to(self.device)
        owner = batch[self._key.BATCH]
        self._captured.clear()
        with torch.no_grad():
            data = self.model._preprocess(batch)
            for name, module in self.model._modules.items():
                if name == FORCE_MODULE:
                    break
                data = module(data)
        if len(self._captured) != 1:  # pragma: no cover - the hook fires once per pass
            raise RuntimeError(f"SevenNet: the pre-hook on {HOOK_MODULE} fired {len(self._captured)} times")
        x = self._captured.pop()[:, : self.embedding_dim]
        n = len(graphs)
        pooled = segment_mean(x, owner, n)
        energy = data[self._key.PRED_TOTAL_ENERGY].reshape(-1).to(torch.float64)
        if energy.shape[0] != n:
            raise RuntimeError(f"SevenNet: {energy.shape[0]} total energies for {n} graphs")
        return list(pooled), energy.cpu().tolist()
