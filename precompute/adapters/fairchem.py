"""fairchem-core 2.x: UMA (uma-s-1p1, uma-m-1p1) and the eSEN models trained on OMol25 (esen-sm-conserving-all-omol,
esen-sm-direct-all-omol, esen-md-direct-all-omol). Environment: `.venv-mlip`.

fairchem 2.24 asks for e3nn >= 0.5 while mace-torch pins e3nn == 0.4.4; `.venv-mlip` overrides e3nn to 0.4.4. The
released UMA/eSEN backbones (`act_type: gate`, `ff_type: spectral`) never call e3nn, and fairchem's only e3nn uses
(S2 grids, `o3` in dropout) gave identical numbers under both versions (docs/adapters/fairchem.md).

What is computed. The structures of a batch go through fairchem's own predict unit, `MLIPPredictUnit.predict`, the
pass `FAIRChemCalculator` makes. A forward hook on the backbone (`eSCNMDBackbone` / `eSCNMDMoeBackbone`) captures
its output `node_embedding`, shape (n_atoms, (lmax+1)^2, sphere_channels): the node features after the LAST
message-passing layer and the final norm. The embedding is `node_embedding[:, 0, :]`, the l=0 channels (rotation and
translation invariant scalars), mean-pooled over the atoms of each structure: `sphere_channels` numbers (128 for
UMA-S). The same pass gives the total energy in eV (energy head, normalizer and element references undone, as the
calculator reports it), which fills `EmbedResult.energies`. For a conservative model that pass also computes forces
and stress by autograd (discarded here): the price of taking the energy from the same pass, about 2x the
backbone-only time on CPU.

Task (card option `task_name`). UMA has one output head and one embedding of the dataset per task; eSEN-OMol has
only "omol". `task_name: {molecules: omol, materials: omat}` picks the task per sample: a structure without
periodic boundary conditions is a molecule, a fully periodic one a material. A plain string applies to every sample.
A task the checkpoint lacks is refused when the adapter is built.

Charge and spin. Every task embeds the total charge and the spin multiplicity. They are read from the sample, first
match wins: `atoms.info["charge"/"spin"]` (the OMol25 loader puts them there), `sample.meta`, `sample.labels`
(values). Otherwise fairchem's own defaults apply: charge 0, and spin 1 (singlet) for "omol", 0 for the other tasks.
QM9 molecules are neutral closed-shell, so charge 0 / spin 1 is their true state. fairchem's
`validate_atoms_data` then checks them (integers within range); a bad value makes that sample a failure.

Inference settings (card option `inference_settings`, default "batch"). "batch" is fairchem's preset for many
heterogeneous structures: MoLE experts NOT merged (merged weights are valid for one composition only) and no
torch.compile. Presets that merge or compile are refused. Activation checkpointing (on in the preset) is turned off
(option `activation_checkpointing`, default false): it only trades speed for memory on systems of ~10k atoms, gives
the same numbers, and was 1.7x slower here.

Determinism. eSCN-MD rotates every edge to a local frame with a RANDOM roll angle (`torch.rand` in
`axis_angle_wigner_hybrid`); the network is exactly invariant to it, but float32 rounding is not (~5e-7 on the
embedding). Each batch runs with torch's generator seeded (option `seed`, default 0; the caller's generator state
is restored), so the same batch gives the same numbers on every call. Batched and one-by-one results agree to ~1e-6.

Loading. An `MLIPInferenceCheckpoint` file, loaded with `fairchem.core.units.mlip_unit.load_predict_unit` (full
unpickling: only load files you trust). Where it is looked for, in order (the project's one rule,
precompute/adapters/_weights.py): `--checkpoint PATH` (a file, or a fairchem model name);
`<weights root>/<model_id>/<hub file name>` (e.g. `work-cache/weights/uma-s-1p1/uma-s-1p1.pt`, or the only `.pt`
file there), weights root `$MATTER_ALIGN_WEIGHTS` or `<repo>/work-cache/weights`; the card's `checkpoint` as a
fairchem model name (e.g. "uma-s-1p1"), resolved by `fairchem.core.calculate.pretrained_mlip.resolve_checkpoint`,
i.e. fairchem's Hugging Face cache, or a download from the gated repos facebook/UMA and facebook/OMol25 for a user
with internet, licence accepted and `huggingface-cli login` done (that route also loads the isolated-atom and
formation references, which only single-atom systems and formation energies use: neither reaches this adapter);
the card's `checkpoint` if it is a local file. When none works the error names `<weights root>/<model_id>/<file>`,
the hub file to download and `--checkpoint`.

Failures (recorded, not fatal): an element outside the model's embedding table, an isolated single atom without
periodic boundary conditions (fairchem's predict unit answers those with a DFT lookup table, not the network), a
charge or spin fairchem refuses, an unknown task.

Random weights (card option `random_init: {seed: 0}`): the UMA-S 1.1 architecture (`UMA_S_BACKBONE`, from the
fairchem repository's configs/uma/training_release/backbone/K4L2.yaml and uma_sm_*.yaml: 32 MoLE experts, 4 layers,
128 channels, lmax = mmax = 2, cutoff 6 Å; 146,566,817 parameters) instantiated by hydra from fairchem's own classes,
with weights drawn from torch's generator seeded with `seed`, zero element references, written as an
`MLIPInferenceCheckpoint` to a temporary file (~590 MB, deleted after loading) and loaded through the same
`load_predict_unit`. `random_init: {seed: 0, backbone: {...}}` overrides architecture fields (tests use a tiny
one). A control, never a pretrained model: such cards have `source: random_init`.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from importlib import resources
from pathlib import Path
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
from precompute.adapters._weights import (
    MissingCheckpoint,
    card_local_paths,
    find_weights_file,
    missing_message,
    model_weights_dir,
    url_file_name,
)
from precompute.adapters.base import CannotEmbed, EmbedResult
from precompute.datasets.base import Sample

DEFAULT_TASKS = {"molecules": "omol", "materials": "omat"}
UMA_DATASETS = ["oc20", "omol", "omat", "odac", "omc"]
# UMA-S 1.1 backbone hyper-parameters (fairchem repo, configs/uma/training_release/backbone/K4L2.yaml with
# num_moe_experts 32, cutoff_radius 6 and max_neighbors 300 from uma_sm_direct_pretrain / uma_sm_conserve_finetune).
UMA_S_BACKBONE: dict[str, Any] = {
    "model": "fairchem.core.models.uma.escn_moe.eSCNMDMoeBackbone",
    "model_version": 1.1,
    "num_experts": 32,
    "moe_dropout": 0.05,
    "use_composition_embedding": True,
    "use_global_embedding": False,
    "max_num_elements": 100,
    "sphere_channels": 128,
    "lmax": 2,
    "mmax": 2,
    "otf_graph": True,
    "max_neighbors": 300,
    "cutoff": 6.0,
    "edge_channels": 128,
    "distance_function": "gaussian",
    "num_distance_basis": 64,
    "regress_forces": True,
    "regress_stress": True,
    "direct_forces": False,
    "num_layers": 4,
    "hidden_channels": 128,
    "norm_type": "rms_norm_sh",
    "act_type": "gate",
    "ff_type": "spectral",
    "chg_spin_emb_type": "rand_emb",
    "cs_emb_grad": True,
    "dataset_list": UMA_DATASETS,
}
NORMALIZER_RMSD = 1.423  # the UMA training configs' energy/force normalizer
_CHECKPOINTS_JSON = "pretrained_models.json"  # fairchem.core.calculate's list of model names -> hub files


def _import_fairchem():
    """Import torch and fairchem; e3nn 0.4.4 torch.load()s its constants without weights_only (slice is its one
    global), so it is allow-listed before fairchem imports e3nn."""
    import torch

    torch.serialization.add_safe_globals([slice])
    import fairchem.core  # noqa: F401

    return torch


def hub_file(name: str) -> dict[str, str] | None:
    """{repo_id, path, filename} of a fairchem model name, from fairchem's own pretrained_models.json (None if the
    name is unknown or fairchem is not installed)."""
    try:
        _import_fairchem()
        text = (resources.files("fairchem.core.calculate") / _CHECKPOINTS_JSON).read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    entry = json.loads(text).get(name)
    if not entry:
        return None
    path = "/".join(p for p in (entry.get("subfolder"), entry["filename"]) if p)
    return {"repo_id": entry["repo_id"], "path": path, "filename": entry["filename"]}


def _missing(model_id: str, name: str, checkpoint: str | None = None, detail: str = "") -> MissingCheckpoint:
    hub = hub_file(name)
    file_name = hub["filename"] if hub else (url_file_name(name) if name.endswith(".pt") else f"{name or model_id}.pt")
    expected = model_weights_dir(model_id) / file_name
    if hub is None:
        download = f"the fairchem checkpoint {name!r}"
        hint = ""
    else:
        download = f"{hub['filename']} (https://huggingface.co/{hub['repo_id']}, file {hub['path']})"
        hint = (
            f"The repo is gated: accept its licence on the page, `huggingface-cli login`, then "
            f"`huggingface-cli download {hub['repo_id']} {hub['path']} --local-dir DIR` and move DIR/{hub['path']} "
            f"to {expected}, or let fairchem fetch it into its cache (HF_HOME, default ~/.cache/huggingface) by "
            f"running once with internet."
        )
    if detail:
        hint = f"({detail}) {hint}".strip()
    return MissingCheckpoint(
        missing_message("fairchem", model_id, expected, download, checkpoint=checkpoint, hint=hint)
    )


def resolve_checkpoint_file(card: dict[str, Any], checkpoint: str | None) -> tuple[str, dict | None, dict | None]:
    """(path, atom_refs, form_elem_refs) of the card's checkpoint (search order in the module docstring); raises
    MissingCheckpoint. The references come with fairchem model names resolved by fairchem only."""
    _import_fairchem()
    from fairchem.core.calculate import pretrained_mlip

    model_id = str(card.get("model_id", "?"))
    name = str(card.get("checkpoint") or "")
    if checkpoint:
        path = str(local_checkpoint(checkpoint))
        if Path(path).expanduser().is_file():
            return str(Path(path).expanduser()), None, None
        if path not in pretrained_mlip.available_models:
            raise _missing(model_id, name or path, checkpoint=checkpoint)
        name = path  # --checkpoint names a fairchem model: only fairchem's resolver below
    else:
        hub = hub_file(name)
        found = find_weights_file(model_id, hub["filename"] if hub else url_file_name(name), suffixes=(".pt",))
        if found is not None:
            return str(found), None, None
    detail = f"{name!r} is neither a file nor a fairchem model name"
    if name in pretrained_mlip.available_models:
        try:
            resolved = pretrained_mlip.resolve_checkpoint(name)
        except Exception as exc:  # offline, gated, not cached: huggingface_hub raises several types
            detail = f"fairchem could not fetch {name!r}: {type(exc).__name__}"
        else:
            return resolved.path, resolved.atom_refs, resolved.form_elem_refs
    for path in [] if checkpoint else card_local_paths(name):
        if path.is_file():
            return str(path), None, None
    raise _missing(model_id, name, detail=detail)


def _task_config(name: str, dataset: str, prop: str) -> dict[str, Any]:
    level, dim = {"energy": ("system", [1]), "forces": ("atom", [3])}[prop]
    cfg: dict[str, Any] = {
        "_target_": "fairchem.core.units.mlip_unit.mlip_unit.Task",
        "name": name,
        "level": level,
        "property": prop,
        "out_spec": {"dim": dim, "dtype": "float32"},
        "normalizer": {
            "_target_": "fairchem.core.modules.normalization.normalizer.Normalizer",
            "mean": 0.0,
            "rmsd": NORMALIZER_RMSD,
        },
        "datasets": [dataset],
    }
    if prop == "energy":  # zero references: a random control has no fitted per-element energies
        cfg["element_references"] = {
            "_target_": "fairchem.core.modules.normalization.element_references.ElementReferences",
            "element_references": {"_target_": "torch.DoubleTensor", "_args_": [[0.0] * 100]},
        }
    return cfg


def random_model_config(backbone: dict[str, Any] | None = None) -> dict[str, Any]:
    """The hydra config of a UMA-S 1.1 `HydraModel` (fields in `backbone` override `UMA_S_BACKBONE`): the backbone
    and one conservative energy/force/stress head (`MLP_EFS_Head`) shared by the datasets, as UMA-S 1.1 has."""
    bb = {**UMA_S_BACKBONE, **(backbone or {})}
    if bb.get("direct_forces"):
        raise ValueError("fairchem random_init: only the conservative (direct_forces: false) UMA-S head is built")
    heads = {
        "energyandforcehead": {
            "module": "fairchem.core.models.uma.escn_moe.DatasetSpecificSingleHeadWrapper",
            "head_cls": "fairchem.core.models.uma.escn_md.MLP_EFS_Head",
            "head_kwargs": {"wrap_property": False},
            "dataset_names": list(bb["dataset_list"]),
        }
    }
    return {
        "_target_": "fairchem.core.models.base.HydraModel",
        "backbone": bb,
        "heads": heads,
        "pass_through_head_outputs": True,
        "otf_graph": True,
    }


def write_random_checkpoint(path: str | os.PathLike, seed: int = 0, backbone: dict[str, Any] | None = None) -> int:
    """Write an `MLIPInferenceCheckpoint` of `random_model_config(backbone)` with random weights from torch's
    generator seeded with `seed` (the caller's generator state is restored). Returns the number of parameters."""
    torch = _import_fairchem()
    import hydra
    from fairchem.core.units.mlip_unit.api.inference import MLIPInferenceCheckpoint

    config = random_model_config(backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = hydra.utils.instantiate(config)
    state = model.state_dict()
    # AveragedModel's layout ("module." + key, n_averaged) sharing the same tensors: torch.save stores them once.
    ema = {f"module.{k}": v for k, v in state.items()}
    ema["n_averaged"] = torch.tensor(1)
    datasets = config["backbone"]["dataset_list"]
    tasks = [_task_config(f"{d}_{p}", d, p) for d in datasets for p in ("energy", "forces")]
    torch.save(MLIPInferenceCheckpoint(config, state, ema, tasks), str(path))
    return int(sum(p.numel() for p in model.parameters()))


def _settings(opts: dict[str, Any]):
    from fairchem.core.units.mlip_unit.api.inference import NAME_TO_INFERENCE_SETTING

    name = str(opts.get("inference_settings", "batch"))
    if name not in NAME_TO_INFERENCE_SETTING:
        raise ValueError(
            f"fairchem: unknown inference_settings {name!r}; choose one of {list(NAME_TO_INFERENCE_SETTING)}"
        )
    settings = copy.deepcopy(NAME_TO_INFERENCE_SETTING[name])
    if settings.merge_mole or settings.compile or settings.nitro:
        raise ValueError(
            f"fairchem: inference_settings {name!r} merges MoLE experts or compiles, which is valid for one fixed "
            "composition only; use 'batch' for many different structures"
        )
    ac = opts.get("activation_checkpointing", False)
    if not isinstance(ac, bool):
        raise ValueError(f"fairchem option activation_checkpointing must be true or false, got {ac!r}")
    settings.activation_checkpointing = ac
    return name, settings


def _sample_value(sample: Sample, key: str):
    """charge / spin of a sample: atoms.info, then meta, then labels; None when absent."""
    if sample.atoms is not None and key in sample.atoms.info:
        return sample.atoms.info[key]
    if sample.meta and key in sample.meta:
        return sample.meta[key]
    if sample.labels and key in sample.labels:
        return sample.labels[key].value
    return None


def _as_int(value: Any) -> Any:
    """Integral floats (e.g. a label value 0.0) -> int; anything else unchanged for fairchem to judge."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value


class FairChemAdapter:
    """Mean-pooled l=0 channels of the last backbone layer of a fairchem 2.x UMA / eSEN model, plus its energy."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        torch = _import_fairchem()
        from fairchem.core.units.mlip_unit import load_predict_unit

        self.card = card
        self._torch = torch
        opts = dict(card.get("options") or {})
        tasks = opts.get("task_name", DEFAULT_TASKS)
        self.tasks = {"molecules": tasks, "materials": tasks} if isinstance(tasks, str) else dict(tasks)
        if set(self.tasks) != {"molecules", "materials"}:
            raise ValueError(f"fairchem option task_name must be a string or {{molecules, materials}}, got {tasks!r}")
        self.seed = int(opts.get("seed", 0))
        self.settings_name, settings = _settings(opts)
        self.device = resolve_device(device)
        fc_device = "cpu"
        if self.device.startswith("cuda"):  # fairchem takes "cuda" and uses the current CUDA device
            if ":" in self.device:
                torch.cuda.set_device(int(self.device.split(":", 1)[1]))
            fc_device = "cuda"
        self._fc_device = fc_device
        random_init = opts.get("random_init")
        if random_init is not None:
            if not isinstance(random_init, dict):
                raise ValueError(
                    f"fairchem option random_init must be a mapping such as {{seed: 0}}, got {random_init!r}"
                )
            if checkpoint:
                raise ValueError(f"fairchem {card.get('model_id')}: a random_init card loads no checkpoint")
            with tempfile.TemporaryDirectory(prefix="fairchem-random-") as tmp:
                path = Path(tmp) / "random_init.pt"
                write_random_checkpoint(
                    path, seed=int(random_init.get("seed", 0)), backbone=random_init.get("backbone")
                )
                self.predict_unit = load_predict_unit(str(path), inference_settings=settings, device=fc_device)
            self.checkpoint_path = None
        else:
            path, atom_refs, form_refs = resolve_checkpoint_file(card, checkpoint)
            self.checkpoint_path = path
            self.predict_unit = load_predict_unit(
                path, settings, None, fc_device, atom_refs=atom_refs, form_elem_refs=form_refs
            )
        valid = sorted(self.predict_unit.dataset_to_tasks)
        unknown = sorted({t for t in self.tasks.values() if t not in valid})
        if unknown:
            raise ValueError(
                f"fairchem {card.get('model_id')}: task(s) {unknown} not in this checkpoint; valid: {valid}"
            )
        self.params = int(sum(p.numel() for p in self.predict_unit.model.module.parameters()))
        self.backbone = self.predict_unit.model.module.backbone
        self.embedding_dim = int(self.backbone.sphere_channels)
        self.max_z = int(self.backbone.max_num_elements) - 1
        self.cutoff = float(self.backbone.cutoff)
        self._captured: list = []
        self.backbone.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self._captured.append((output["node_embedding"][:, 0, :].detach(), output["batch"].detach()))

    def _atomic_data(self, sample: Sample):
        """fairchem's AtomicData for one sample (as FAIRChemCalculator builds it), or raise CannotEmbed(reason)."""
        from ase import Atoms
        from fairchem.core.datasets.atomic_data import AtomicData

        name = f"fairchem {self.card.get('model_id')}"
        src = sample.atoms
        periodic = bool(np.asarray(src.pbc).any())
        task = self.tasks["materials" if periodic else "molecules"]
        z = np.asarray(src.numbers)
        outside = elements_outside(src, range(self.max_z + 1))
        if outside:
            raise CannotEmbed(f"{name}: element Z={outside} is beyond this model's Z<={self.max_z}")
        if len(src) == 1 and not periodic:
            raise CannotEmbed(
                f"{name}: an isolated single atom: fairchem answers it from a DFT lookup table, not the network"
            )
        # A fresh Atoms: only numbers, positions, cell, pbc, charge and spin (no calculator results or extra info,
        # which AtomicData.from_ase would read as labels and which would make batches heterogeneous).
        atoms = Atoms(numbers=z, positions=src.get_positions(), cell=src.cell.array, pbc=src.pbc)
        for key in ("charge", "spin"):
            value = _sample_value(sample, key)
            if value is not None:
                atoms.info[key] = _as_int(value)
        try:
            self.predict_unit.validate_atoms_data(atoms, task)  # fills fairchem's defaults, checks the ranges
        except (TypeError, ValueError) as exc:
            raise CannotEmbed(f"{name}: task {task}: {exc}") from None
        return AtomicData.from_ase(
            atoms, task_name=task, r_edges=False, r_data_keys=["spin", "charge"], radius=self.cutoff, max_neigh=None
        )

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        check_all(samples)
        name = f"fairchem {self.card.get('model_id')}"
        ids, datas, failures = build_inputs(samples, self._atomic_data, name, catch=ValueError)
        return embed_batches(ids, datas, failures, self._forward, batch_size, self.embedding_dim)

    def _forward(self, datas: list) -> tuple[list[np.ndarray], list[float]]:
        torch = self._torch
        from fairchem.core.datasets.atomic_data import atomicdata_list_to_batch

        batch = atomicdata_list_to_batch(datas)
        devices = [torch.cuda.current_device()] if self._fc_device == "cuda" else []
        self._captured.clear()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)  # the random edge roll angles: same batch, same numbers
            pred = self.predict_unit.predict(batch)
        if len(self._captured) != 1:  # pragma: no cover - one backbone pass per predict
            raise RuntimeError(f"fairchem: expected one backbone pass, saw {len(self._captured)}")
        x, owner = self._captured.pop()
        n = len(datas)
        pooled = segment_mean(x, owner, n)
        energy = pred["energy"].detach().to(torch.float64).cpu().numpy().reshape(-1)
        if energy.shape[0] != n:  # pragma: no cover - the predict unit returns one energy per structure
            raise RuntimeError(f"fairchem: {energy.shape[0]} energies for {n} structures")
        return list(pooled), [float(e) for e in energy]
