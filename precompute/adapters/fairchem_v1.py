"""EquiformerV2 and eSEN trained on OMat24 / MPtrj / sAlex, through the legacy fairchem-core 1.10 stack.

Own environment: `.venv-fairchem1` (`bash precompute/envs/create_fairchem1.sh`). fairchem-core 2.x has no
EquiformerV2 and no OMat24/MPtrj eSEN; their checkpoints (`EquiformerV2-31M-OMAT24`, ..., `eSEN-30M-OAM`) are listed
only in fairchem-core 1.10's `pretrained_models.json`, whose pins (torch~=2.4, numpy<2) do not fit the project's torch.

Loading (the real legacy path): `fairchem.core.common.relaxation.ase_utils.OCPCalculator(checkpoint_path=..., cpu=...)`
builds the trainer named in the checkpoint's config, the `hydra` model (backbone + heads) and loads the state dict,
the energy normalizer and the per-element energy references from the checkpoint. Before that, fairchem's own
module registration (`setup_imports`, which imports every model file) is replaced by the same walk over the same
files that skips the files needing torch_sparse / torch_cluster (GemNet, DimeNet++, PaiNN): those packages have no
build for torch 2.13, and no EquiformerV2 / eSEN module imports them.

Embedding: the backbone's output `node_embedding` (after the last layer and its final layer norm; shape
(n_atoms, (lmax+1)^2, sphere_channels)), its l=0 coefficient `node_embedding[:, 0, :]` (the rotation-invariant
channels), mean-pooled over the atoms of each structure: `sphere_channels`-d (128 for the 31M/30M models). It is read
with a forward hook on the backbone during the trainer's own forward (`trainer._forward`), which also runs the
heads; the energy of the same pass is denormalised exactly as `OCPTrainer.predict` does (`_denorm_preds`: normaliser,
then element references) and returned in eV (total energy) in `EmbedResult.energies`. For the conservative eSEN
heads this pass includes the autograd forces/stress of the head; `options: {energies: false}` runs the backbone only.

Graphs: `AtomsToGraphs` (the calculator's) + `data_list_collater`, on-the-fly periodic radius graphs
(`radius_graph_pbc`, the checkpoint's cutoff and max_neighbors). Non-periodic graphs would need
`torch_geometric.nn.radius_graph`, i.e. torch_cluster, which cannot be installed for torch 2.13, so a molecule is
put in an orthorhombic periodic box whose vacuum gap is `box_padding` Å (default max(15, cutoff + 1)): wider than the
cutoff, so an atom never sees a periodic image and the embedding does not depend on the box
(tests/fairchem1: identical within float32 noise for gaps of cutoff+0.5 and cutoff+10 Å).

Edge frames: both architectures draw a random roll about each edge (`torch.rand_like` in `init_edge_rot_mat`); the
SO(2) convolutions are equivariant to that roll, so it only moves float rounding. Each forward runs under a forked
RNG seeded with `options.seed` (default 0), so the same batch always gives bitwise the same result.

Loading order (the project's one rule, precompute/adapters/_weights.py): `--checkpoint PATH`;
`<weights root>/<model_id>/<file name of the card's URL>` (e.g. `work-cache/weights/eqv2-31m-omat/eqV2_31M_omat.pt`,
or the only `.pt` file there), weights root `$MATTER_ALIGN_WEIGHTS` or `<repo>/work-cache/weights`; the file in the
Hugging Face cache, where fairchem 1.10's own `model_name_to_local_file` (`hf_hub_download`) puts it, read offline;
the card's checkpoint when it is a local path. Otherwise the error names `<weights root>/<model_id>/<file>`, the URL
(gated repo facebook/OMAT24) and --checkpoint.

Options: {architecture: "equiformer_v2" | "equiformer_v2_dens" | "esen" (checked against the loaded backbone),
pretrained_name: fairchem-1.10 name (used in the missing-checkpoint message), energies: true, box_padding: null,
seed: 0}.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from precompute.adapters._structure import (
    MOLECULE_BOX_PADDING,
    boxed,
    build_inputs,
    check_all,
    elements_outside,
    embed_batches,
    resolve_device,
    segment_mean,
)
from precompute.adapters._weights import (
    MissingCheckpoint,
    card_local_paths,
    find_weights_file,
    hf_url_parts,
    missing_message,
    model_weights_dir,
    url_file_name,
)
from precompute.adapters.base import CannotEmbed, EmbedResult
from precompute.datasets.base import Sample

log = logging.getLogger(__name__)

HF_REPO = "facebook/OMAT24"  # fairchem-core 1.10 pretrained_models.json: every OMat24/MPtrj eqV2 and eSEN lives there

# card option -> backbone class names it may load (the DeNS variants subclass nothing shared, so list them)
ARCHITECTURES = {
    "equiformer_v2": ("EquiformerV2Backbone",),
    "equiformer_v2_dens": ("EqV2DeNSBackbone",),
    "esen": ("eSEN_Backbone", "eSEN_DeNS_Backbone"),
}
# fairchem model files that import packages with no torch 2.13 build; none of them is EquiformerV2 or eSEN
_OPTIONAL_DEPS = {"torch_sparse", "torch_cluster"}


def checkpoint_file_name(card: dict[str, Any]) -> str:
    """The file name of the card's checkpoint (the last path component of its URL or path)."""
    return url_file_name(str(card.get("checkpoint") or ""))


def _hf_cached(url: str) -> Path | None:
    """The file a `https://huggingface.co/.../resolve/...` URL was downloaded to in the Hugging Face cache (fairchem
    1.10's `hf_hub_download`), found without network access; None when absent."""
    parts = hf_url_parts(url)
    if parts is None:
        return None
    repo_id, revision, filename = parts
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - fairchem 1.10 depends on huggingface_hub
        return None
    found = try_to_load_from_cache(repo_id, filename, revision=revision)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def find_checkpoint(card: dict[str, Any], checkpoint: str | None = None) -> Path:
    """The local checkpoint file to load (order in the module docstring), or MissingCheckpoint saying which file to
    put where."""
    mid = str(card.get("model_id", "?"))
    ckpt = str(card.get("checkpoint") or "")
    name = checkpoint_file_name(card) or f"{mid}.pt"
    expected = model_weights_dir(mid) / name
    pretrained = (card.get("options") or {}).get("pretrained_name")
    listed = f"fairchem-core 1.10 pretrained name {pretrained!r}; " if pretrained else ""
    hint = f"({listed}Hugging Face repo {HF_REPO}, gated: accept its licence first.)"
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if path.is_file():
            return path
        raise MissingCheckpoint(
            missing_message("fairchem 1.x", mid, expected, ckpt or name, checkpoint=checkpoint, hint=hint)
        )
    found = find_weights_file(mid, name, suffixes=(".pt",))
    if found is not None:
        return found
    cached = _hf_cached(ckpt)
    if cached is not None:
        return cached
    locals_ = card_local_paths(ckpt)
    for path in locals_:
        if path.is_file():
            return path
    looked = [str(p) for p in locals_]
    if hf_url_parts(ckpt):
        looked.append("the Hugging Face cache (HF_HUB_CACHE, default ~/.cache/huggingface/hub)")
    raise MissingCheckpoint(missing_message("fairchem 1.x", mid, expected, ckpt or name, looked=looked, hint=hint))


def register_fairchem_modules() -> list[str]:
    """fairchem's `setup_imports` (import every trainer/dataset/model/task file so that it registers itself), minus
    the files whose imports cannot be satisfied on torch 2.13 (torch_sparse / torch_cluster); returns those skipped.
    Marks the registry as set up, so OCPCalculator's own call is a no-op."""
    import importlib

    import fairchem.core
    from fairchem.core.common.registry import registry

    if registry.get("imports_setup", no_warning=True):
        return []
    root = Path(fairchem.core.__file__).resolve().parent
    importlib.import_module("fairchem.core.common.logger")
    skipped: list[str] = []
    for key in ("trainers", "datasets", "models", "tasks"):
        for f in sorted((root / key).rglob("*.py")):
            module = ".".join(("fairchem", "core", *f.relative_to(root).with_suffix("").parts))
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name not in _OPTIONAL_DEPS:
                    raise
                skipped.append(module)
    registry.register("imports_setup", True)
    log.debug("fairchem_v1: skipped %d modules that need %s", len(skipped), sorted(_OPTIONAL_DEPS))
    return skipped


def _load_calculator(path: Path, cpu: bool, seed: int):
    """OCPCalculator on a local checkpoint. torch>=2.6 loads weights-only by default; a released fairchem-1.x
    checkpoint that pickles more than tensors and plain containers is then retried the way fairchem 1.10 (torch 2.4)
    always loaded it, with full unpickling of this local file, and a warning."""
    from fairchem.core.common.relaxation.ase_utils import OCPCalculator

    try:
        return OCPCalculator(checkpoint_path=str(path), cpu=cpu, seed=seed)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc):
            raise
        log.warning("fairchem_v1: %s is not weights-only loadable; loading it with full unpickling", path)
    old = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        return OCPCalculator(checkpoint_path=str(path), cpu=cpu, seed=seed)
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = old


class FairChemV1Adapter:
    """Mean-pooled l=0 channels of the last backbone layer of a fairchem-1.x EquiformerV2 / eSEN checkpoint."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import torch

        self.card = card
        self._torch = torch
        opts = card.get("options") or {}
        self.architecture = str(opts.get("architecture", ""))
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"{card.get('model_id')}: options.architecture must be one of {sorted(ARCHITECTURES)}, "
                f"got {self.architecture!r}"
            )
        self.with_energies = bool(opts.get("energies", True))
        self.seed = int(opts.get("seed", 0))
        self.checkpoint_path = find_checkpoint(card, checkpoint)
        self.device = resolve_device(device)
        register_fairchem_modules()
        calc = _load_calculator(self.checkpoint_path, cpu=not self.device.startswith("cuda"), seed=self.seed)
        self.trainer = calc.trainer
        self.a2g = calc.a2g
        if self.trainer.ema is not None:  # as OCPTrainer.predict: inference uses the EMA weights when present
            self.trainer.ema.copy_to()
        self.model = self.trainer._unwrapped_model.eval()
        backbone = self.model.backbone
        kind = type(backbone).__name__
        if kind not in ARCHITECTURES[self.architecture]:
            raise ValueError(
                f"{card.get('model_id')}: the card says architecture {self.architecture!r} "
                f"({ARCHITECTURES[self.architecture]}) but {self.checkpoint_path} holds a {kind}"
            )
        self.backbone = backbone
        self.backbone_kind = kind
        self.cutoff = float(getattr(backbone, "cutoff", None) or backbone.max_radius)
        self.max_num_elements = int(backbone.max_num_elements)
        self.embedding_dim = int(backbone.sphere_channels)
        padding = opts.get("box_padding")
        self.box_padding = float(padding) if padding is not None else max(MOLECULE_BOX_PADDING, self.cutoff + 1.0)
        self._captured: list = []
        backbone.register_forward_hook(self._capture)

    def _capture(self, module, args, output) -> None:
        emb = output["node_embedding"]
        emb = getattr(emb, "embedding", emb)  # EquiformerV2 returns an SO3_Embedding, eSEN a tensor
        self._captured.append(emb[:, 0, :].detach())

    def _graph(self, sample: Sample):
        """The AtomsToGraphs graph of one sample (molecules boxed), or raise CannotEmbed for an element beyond the
        backbone's embedding table."""
        outside = elements_outside(sample.atoms, range(self.max_num_elements))
        if outside:
            raise CannotEmbed(
                f"{self.backbone_kind} embeds atomic numbers < {self.max_num_elements}; structure has Z={max(outside)}"
            )
        return self.a2g.convert(boxed(sample.atoms, self.box_padding))

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        check_all(samples)
        ids, graphs, failures = build_inputs(samples, self._graph, "fairchem AtomsToGraphs failed")
        return embed_batches(
            ids, graphs, failures, self._forward, batch_size, self.embedding_dim, energies=self.with_energies
        )

    def _forward(self, graphs: list) -> tuple[list[np.ndarray], list[float]]:
        """One batch: trainer forward (backbone + heads) or backbone only; l=0 node features mean-pooled per graph."""
        torch = self._torch
        from fairchem.core.datasets import data_list_collater

        batch = data_list_collater(graphs, otf_graph=True).to(self.trainer.device)
        self._captured.clear()
        devices = [batch.pos.device] if batch.pos.is_cuda else []
        with torch.random.fork_rng(devices=devices), contextlib.ExitStack() as stack_:
            torch.manual_seed(self.seed)
            if self.with_energies:
                out = self.trainer._forward(batch)
                energy = self.trainer._denorm_preds("energy", out["energy"], batch).detach().reshape(-1)
            else:
                stack_.enter_context(torch.no_grad())
                self.backbone(batch)
                energy = None
        if len(self._captured) != 1:  # pragma: no cover - the hook fires once per backbone call
            raise RuntimeError(f"fairchem_v1: expected one backbone call per batch, saw {len(self._captured)}")
        pooled = list(segment_mean(self._captured.pop(), batch.batch, len(graphs)))
        return pooled, ([] if energy is None else energy.to(torch.float64).cpu().tolist())
