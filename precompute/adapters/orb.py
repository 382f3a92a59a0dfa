"""Orb (orb-models 0.5.5): orb-v2 and the orb-v3 direct / conservative force fields. Environment: `.venv-mlip`.

Embedding: the `node_features` the MoleculeGNS backbone (`model.model`) returns after ALL its message-passing steps
(15 for v2, 5 for v3), i.e. the last hidden layer the energy/force heads read, 256-d, mean-pooled over the atoms of
each structure (`batch.n_node`). Graphs come from orb's own `ase_atoms_to_atom_graphs` with the model's
`system_config` (6 Å radius; at most 20 neighbours for v2 and the `-20` models, 120 for the `-inf` models) and are
batched with orb's `batch_graphs`. Molecules need no box: orb builds non-periodic graphs when pbc is off.

Conservative v3 models: their regressor recomputes the edge vectors from the positions with
`batch.compute_differentiable_edge_vectors()` before the backbone runs (`conservative_regressor.py`), so this adapter
does the same and the backbone sees exactly the vectors it saw in training. No gradient is taken.

Energies: from the same forward pass, `heads["energy"].predict(node_features)` (denormalised, with orb's linear
per-element reference energy) plus the ZBL pair repulsion where the model has it: the total energy in eV that orb's
own `predict` returns (checked in tests/mlip/test_orb.py). Cheap: one small MLP on the pooled features.

Orb is NOT rotation-equivariant by construction: the edge features use raw direction vectors / spherical harmonics
of them and it learns approximate invariance from rotation augmentation in training. The embedding of a rotated
structure therefore differs slightly; the tests measure by how much rather than asserting a bound.

Loading (card options): `loader` names the loader in `orb_models.forcefield.pretrained` (e.g. `orb_v2`,
`orb_v3_conservative_inf_omat`). The weights must be a local file (nothing is downloaded), found by the project's one
rule (precompute/adapters/_weights.py, docs/EXTRACTION.md "Weights you provide"): `--checkpoint PATH`; else
`<weights root>/<model_id>/<file name of the card's URL>` (or the only `.ckpt`/`.pt` file there), weights root
`$MATTER_ALIGN_WEIGHTS` or `<repo>/work-cache/weights`; else the file orb's own `cached_path` downloaded the URL to
(`$CACHED_PATH_CACHE_ROOT` or ~/.cache/cached_path); else the card's checkpoint when it is a local path. It is passed
to the real loader as `weights_path=` (orb's `cached_path` returns a local file unchanged; the loader then
`torch.load(..., weights_only=True)` and loads the state dict strictly). `compile` is forced off on CPU. `precision`
(default "float32-highest": no TF32 on GPU, so GPU and CPU embeddings agree) is orb's own precision setting.

Other options: `architecture: {num_message_passing_steps: 2, ...}` builds the loader's architecture with these
keyword overrides and loads the weights with orb's `load_model` (the function every loader calls): small models for
tests. `random_init: {seed: 0}` builds the loader's architecture with seeded random weights and loads nothing (a
`source: random_init` control, never a pretrained model).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from precompute.adapters._structure import (
    build_inputs,
    check_all,
    embed_batches,
    local_checkpoint,
    resolve_device,
    segment_mean,
)
from precompute.adapters._weights import (
    MissingCheckpoint,
    card_local_paths,
    find_weights_file,
    missing_message,
    model_weights_dir,
    url_file_name,
)
from precompute.adapters.base import EmbedResult
from precompute.datasets.base import Sample

# loader in orb_models.forcefield.pretrained -> (architecture function it builds, graph radius Å, max neighbours).
# Mirrors what each loader passes (orb-models 0.5.5); tests/mlip/test_orb.py checks it against the real loaders.
# The OMol25 loaders are left out: they need per-structure charge and spin, which the Sample record does not carry.
LOADERS: dict[str, tuple[str, float, int]] = {
    "orb_v2": ("orb_v2_architecture", 6.0, 20),
    "orb_mptraj_only_v2": ("orb_v2_architecture", 6.0, 20),
    "orb_v3_conservative_inf_omat": ("orb_v3_conservative_architecture", 6.0, 120),
    "orb_v3_conservative_inf_mpa": ("orb_v3_conservative_architecture", 6.0, 120),
    "orb_v3_conservative_20_omat": ("orb_v3_conservative_architecture", 6.0, 20),
    "orb_v3_conservative_20_mpa": ("orb_v3_conservative_architecture", 6.0, 20),
    "orb_v3_direct_20_omat": ("orb_v3_direct_architecture", 6.0, 20),
    "orb_v3_direct_20_mpa": ("orb_v3_direct_architecture", 6.0, 20),
    "orb_v3_direct_inf_omat": ("orb_v3_direct_architecture", 6.0, 120),
    "orb_v3_direct_inf_mpa": ("orb_v3_direct_architecture", 6.0, 120),
}
PRECISIONS = ("float32-highest", "float32-high", "float64")


def _orb_cached(url: str) -> Path | None:
    """The file orb's `cached_path(url)` downloaded earlier (newest), found without network access; else None."""
    if "://" not in url or url.startswith("pkg://"):
        return None
    try:
        from cached_path import find_latest_cached
    except ImportError:  # orb-models not installed: no native cache to read
        return None
    path = find_latest_cached(url)
    return path if path is not None and path.is_file() else None


def _orb_cache_dir() -> str:
    try:
        from cached_path import get_cache_dir
    except ImportError:
        return "$CACHED_PATH_CACHE_ROOT (default ~/.cache/cached_path)"
    return str(get_cache_dir())


def weights_file(card: dict[str, Any], checkpoint: str | None = None) -> str:
    """The local weights file for `card`, by the order of precompute/adapters/_weights.py (see the module docstring).

    Raises MissingCheckpoint naming `<weights root>/<model_id>/<URL file name>`, the URL and --checkpoint.
    """
    model_id = str(card.get("model_id", "orb"))
    url = str(card.get("checkpoint") or "")
    name = url_file_name(url) or f"{model_id}.ckpt"
    expected = model_weights_dir(model_id) / name
    if checkpoint:
        path = Path(str(local_checkpoint(checkpoint))).expanduser()
        if path.is_file():
            return str(path)
        raise MissingCheckpoint(missing_message("Orb", model_id, expected, url or name, checkpoint=checkpoint))
    found = find_weights_file(model_id, name)
    if found is not None:
        return str(found)
    cached = _orb_cached(url)
    if cached is not None:
        return str(cached)
    locals_ = card_local_paths(url)
    for path in locals_:
        if path.is_file():
            return str(path)
    looked = [str(p) for p in locals_]
    if "://" in url:
        looked.append(f"orb's download cache {_orb_cache_dir()}")
    raise MissingCheckpoint(missing_message("Orb", model_id, expected, url or name, looked=looked))


class OrbAdapter:
    """Mean-pooled last hidden layer (backbone node_features after the last message-passing step) of an Orb model."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import torch

        self.card = card
        self._torch = torch
        opts = card.get("options") or {}
        self.loader = str(opts.get("loader", ""))
        if self.loader not in LOADERS:
            raise ValueError(
                f"Orb {card.get('model_id')}: unknown loader {self.loader!r}; choose one of {list(LOADERS)}"
            )
        self.precision = str(opts.get("precision", "float32-highest"))
        if self.precision not in PRECISIONS:
            raise ValueError(f"Orb: unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        self.device = resolve_device(device)
        # torch.compile is slow to warm up and unsupported for dynamic shapes on many CPU setups: never on CPU
        self.compile = bool(opts.get("compile", False)) and torch.device(self.device).type != "cpu"
        arch_overrides = dict(opts.get("architecture") or {})
        random_init = opts.get("random_init")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # orb warns about setting the global default dtype on every load
            if random_init is not None:
                model = self._random_model(dict(random_init), arch_overrides)
            elif arch_overrides:
                model = self._load_with_overrides(weights_file(card, checkpoint), arch_overrides)
            else:
                from orb_models.forcefield import pretrained

                model = getattr(pretrained, self.loader)(
                    weights_path=weights_file(card, checkpoint),
                    device=self.device,
                    precision=self.precision,
                    compile=self.compile,
                )
        if model.model.conditioner is not None:
            raise NotImplementedError(f"Orb {self.loader}: charge/spin-conditioned models are not supported")
        self.model = model.eval()
        self.system_config = model.system_config
        self.conservative = hasattr(model, "grad_forces_name")  # ConservativeForcefieldRegressor
        # the latent width (256 for every released Orb) = the input width of the energy head's first linear layer
        first = next(m for m in model.heads["energy"].mlp.modules() if isinstance(m, torch.nn.Linear))
        self.embedding_dim = int(first.in_features)

    def _architecture(self, overrides: dict[str, Any]):
        from orb_models.forcefield import pretrained
        from orb_models.forcefield.atomic_system import SystemConfig

        arch_name, radius, max_neighbours = LOADERS[self.loader]
        config = SystemConfig(radius=radius, max_num_neighbors=max_neighbours)
        return getattr(pretrained, arch_name)(device="cpu", system_config=config, **overrides)

    def _load_with_overrides(self, weights: str, overrides: dict[str, Any]):
        from orb_models.forcefield import pretrained

        model = self._architecture(overrides)
        return pretrained.load_model(model, weights, self.device, precision=self.precision, compile=self.compile)

    def _random_model(self, spec: dict[str, Any], overrides: dict[str, Any]):
        """The loader's architecture with weights from torch's default initialisation under a fixed seed."""
        torch = self._torch
        from orb_models.utils import set_torch_precision

        dtype = set_torch_precision(self.precision)
        with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
            torch.manual_seed(int(spec.get("seed", 0)))
            model = self._architecture(overrides)
        model = model.to(dtype).to(self.device)
        for p in model.parameters():
            p.requires_grad = False
        if self.compile:
            model.compile(mode="default", dynamic=True)
        return model

    def _graph(self, sample: Sample):
        from ase import Atoms
        from orb_models.forcefield.atomic_system import ase_atoms_to_atom_graphs

        a = sample.atoms
        periodic = bool(np.asarray(a.pbc).any())
        # a clean copy: orb reads charge/spin and extra features from atoms.info, which dataset metadata must not feed
        clean = Atoms(numbers=a.numbers, positions=a.positions, cell=a.cell if periodic else None, pbc=a.pbc)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # ase's cell_to_cellpar on a torch tensor, per call
            # built on the CPU (orb's scipy KD-tree) whatever the model's device: the same graph on CPU and GPU runs,
            # and orb's batch_graphs expects CPU tensors; forward() moves the batch to the device
            return ase_atoms_to_atom_graphs(clean, self.system_config, device="cpu")

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        check_all(samples)
        ids, graphs, failures = build_inputs(samples, self._graph, f"Orb {self.loader} cannot build a graph")
        return embed_batches(ids, graphs, failures, self.forward, batch_size, self.embedding_dim)

    def forward(self, graphs: list) -> tuple[np.ndarray, np.ndarray]:
        """(pooled last-layer node features (n, 256) float64, total energies (n,) eV) for a list of orb graphs."""
        torch = self._torch
        from orb_models.forcefield.base import batch_graphs

        batch = batch_graphs(graphs).to(self.device)
        with torch.no_grad():
            if self.conservative:
                vectors, _, _ = batch.compute_differentiable_edge_vectors()
                batch.edge_features["vectors"] = vectors
            nodes = self.model.model(batch)["node_features"]
            energy = self.model.heads["energy"].predict(nodes, batch)
            if self.model.pair_repulsion:
                energy = energy + self.model.pair_repulsion_fn(batch)["energy"]
        n_node = batch.n_node.to(nodes.device)
        owner = torch.repeat_interleave(torch.arange(len(n_node), device=nodes.device), n_node)
        pooled = segment_mean(nodes, owner, len(n_node))
        return pooled, energy.detach().to(torch.float64).cpu().numpy().reshape(-1)
