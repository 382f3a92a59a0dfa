"""MACE (mace-torch 0.3.16): MACE-MP-0 small/medium/large and MACE-OFF23 small/medium/large. Environment: `.venv-mlip`.

mace-torch pins e3nn == 0.4.4 on purpose: e3nn 0.5 changed the Clebsch-Gordan phase convention, and the released
MACE weights are only correct with the convention they were trained with. `.venv-mlip` (created by
`bash precompute/envs/create_mlip.sh`) overrides e3nn to 0.4.4 for every library in it.

What is computed. One forward pass of the model (`model(batch, compute_force=False)`, no autograd) returns
`node_feats`: the outputs of every interaction layer (interaction + product basis) concatenated per atom, layer 1
first. Each layer's block is laid out as that layer's irreps (`model.products[i].linear.irreps_out`), e.g. for
MACE-MP-0 medium `128x0e+128x1o` (512 numbers) then `128x0e` (128 numbers). The same pass gives the total energy
(eV), which fills `EmbedResult.energies`. Two card options choose the features, with the meaning of mace's own
`MACECalculator.get_descriptors(invariants_only, num_layers)`:

- `invariants_only: true, last_layer_only: true` (the "-inv" cards): the l=0 (0e) channels of the LAST interaction
  layer. Rotation and translation invariant.
- `invariants_only: false, last_layer_only: false` (the "-eqv" cards): the full `node_feats`, every irrep of every
  interaction layer (= `get_descriptors(invariants_only=False)`).

Why the "-eqv" cards take every layer: in every released MACE-MP-0 and MACE-OFF23 model the LAST interaction layer
is scalar-only (mace builds it with `hidden_irreps[0]`, i.e. `128x0e`, unless `keep_last_layer_irreps=True`, which
these models predate). Their "equivariant last-layer features" are therefore identical to the invariant ones; the
l>0 channels exist only in the earlier layer(s). `invariants_only: false, last_layer_only: true` is still supported
for a model whose last layer keeps l>0 irreps, and is refused with that explanation for one whose last layer is
scalar-only. Small models (L=0) have no l>0 channels at all, hence no "-eqv" card.

Pooling: mean over the atoms of each structure, component by component. For an l>0 channel this is the mean of its
2l+1 components (for l=1, the mean of a vector over atoms). Under a rotation R of the structure each l block of
every atom transforms by the Wigner matrix D^l(R), and so does their mean: the pooled l>0 part is EQUIVARIANT, not
invariant (it rotates with the structure), while the pooled l=0 part and the norm of each pooled (channel, l) block
are invariant. We keep the raw components (what `get_descriptors(invariants_only=False)` gives and what the seed
paper compares as "equivariant features"), so similarities computed on the "-eqv" embedding depend on the
orientation of each input; the l=0 part alone is the invariant one. The mean of an l=1 channel over a
centrosymmetric crystal is ~0 by symmetry.

Loading. A `.model` file, i.e. a whole pickled mace module, as mace's own `MACECalculator` loads it (`torch.load`,
full unpickling: only load files you trust). Where it is looked for, in order (the project's one rule,
precompute/adapters/_weights.py): `--checkpoint PATH`; `<weights root>/<model_id>/<file name of the card's URL>` (or
the only `.model` file there), weights root `$MATTER_ALIGN_WEIGHTS` or `<repo>/work-cache/weights`; for a card URL,
the file that mace's `mace_mp()` / `mace_off()` would have downloaded it to (`$XDG_CACHE_HOME/mace/` or
`~/.cache/mace/`); the card's `checkpoint` if it is a local path (as given, else relative to the repository root:
models trained here). Nothing is downloaded; when no file is found the error names the URL,
`<weights root>/<model_id>/<file>` and --checkpoint.

Random weights (card option `random_init: {seed: 0, size: medium}`): the MACE-MP-0 architecture of that size built
from mace's own `ScaleShiftMACE` with the MACE-MP-0 hyper-parameters (`MP_HYPERPARAMETERS`; the medium one has
4,688,656 parameters, the count Matbench Discovery lists for MACE-MP-0 medium), weights drawn from torch's
generator seeded with `seed`, zero atomic reference energies, scale 1 and shift 0. A control, never a pretrained
model: such cards have `source: random_init`.

Other options: `dtype: float64 | float32` (default float64; the model and the graphs are cast to it), `head`
(multi-head models: which head; default the only head or the one named "default").
"""

from __future__ import annotations

import os
import re
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

DTYPES = ("float64", "float32")

# MACE-MP-0 (Batatia et al., arXiv:2401.00096): sizes differ only in hidden irreps. The shared values reproduce the
# medium model's published parameter count exactly (4,688,656; tests/mlip/test_mace.py checks it).
MP_SIZES = {"small": "128x0e", "medium": "128x0e+128x1o", "large": "128x0e+128x1o+128x2e"}
MP_HYPERPARAMETERS: dict[str, Any] = {
    "r_max": 6.0,
    "num_bessel": 10,
    "num_polynomial_cutoff": 5,
    "max_ell": 3,
    "num_interactions": 2,
    "correlation": 3,
    "MLP_irreps": "16x0e",
    "radial_MLP": [64, 64, 64],
    "atomic_numbers": list(range(1, 90)),  # 89 elements, H..Ac
    "interaction": "RealAgnosticResidualInteractionBlock",
    # Normalises the sum over neighbours. The released checkpoints store their own value (a dataset statistic); a
    # random control only needs a fixed, plausible one for crystals at a 6 Å cutoff.
    "avg_num_neighbors": 40.0,
}


def _import_mace():
    """Import torch and mace; e3nn 0.4.4 torch.load()s its constants without weights_only (slice is its one global)."""
    import torch

    torch.serialization.add_safe_globals([slice])
    import mace.data  # noqa: F401 - imported here so that e3nn sees the allow-list above
    import mace.modules  # noqa: F401

    return torch


def mace_cache_path(url: str) -> Path:
    """Where mace's own `mace_mp()` / `mace_off()` cache the file downloaded from `url`."""
    from mace.tools.utils import get_cache_dir

    name = os.path.basename(url).split("?")[0]
    if "/ACEsuit/mace-mp/" in url:  # download_mace_mp_checkpoint keeps only [A-Za-z0-9_] of the file name
        name = re.sub(r"[^A-Za-z0-9_]", "", name)
    return Path(get_cache_dir()) / name


def resolve_model_file(card: dict[str, Any], checkpoint: str | None) -> str:
    """The local `.model` file for a card (see the module docstring for the search order); raises MissingCheckpoint."""
    model_id = str(card.get("model_id", "?"))
    url = str(card.get("checkpoint") or "")
    name = url_file_name(url) or f"{model_id}.model"
    expected = model_weights_dir(model_id) / name
    download = url if "://" in url else f"a MACE .model file like {url or 'the card names'}"
    if checkpoint:
        path = Path(str(local_checkpoint(checkpoint))).expanduser()
        if path.is_file():
            return str(path)
        raise MissingCheckpoint(missing_message("MACE", model_id, expected, download, checkpoint=checkpoint))
    found = find_weights_file(model_id, name, suffixes=(".model",))
    if found is not None:
        return str(found)
    cached = mace_cache_path(url) if url.startswith("http") else None
    if cached is not None and cached.is_file():
        return str(cached)
    locals_ = card_local_paths(url)
    for path in locals_:
        if path.is_file():
            return str(path)
    looked = [str(p) for p in ([cached] if cached else []) + locals_]
    hint = "A card with a local path is a model trained here: docs/TRAINING.md makes it." if locals_ else ""
    raise MissingCheckpoint(missing_message("MACE", model_id, expected, download, looked=looked, hint=hint))


def build_mace_mp(size: str, seed: int):
    """A MACE-MP-0 `ScaleShiftMACE` of the given size (small | medium | large) with random weights, seeded.

    Built in float64 on the CPU from torch's generator seeded with `seed` (the global generator is restored
    afterwards), so the weights are the same on every machine for one seed.
    """
    torch = _import_mace()
    from e3nn import o3
    from mace import modules

    if size not in MP_SIZES:
        raise ValueError(f"MACE random_init: unknown size {size!r}; choose one of {sorted(MP_SIZES)}")
    hp = MP_HYPERPARAMETERS
    block = modules.interaction_classes[hp["interaction"]]
    n_el = len(hp["atomic_numbers"])
    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        torch.set_default_dtype(torch.float64)
        try:
            model = modules.ScaleShiftMACE(
                r_max=hp["r_max"],
                num_bessel=hp["num_bessel"],
                num_polynomial_cutoff=hp["num_polynomial_cutoff"],
                max_ell=hp["max_ell"],
                interaction_cls=block,
                interaction_cls_first=block,
                num_interactions=hp["num_interactions"],
                num_elements=n_el,
                hidden_irreps=o3.Irreps(MP_SIZES[size]),
                MLP_irreps=o3.Irreps(hp["MLP_irreps"]),
                atomic_energies=np.zeros(n_el),
                avg_num_neighbors=hp["avg_num_neighbors"],
                atomic_numbers=hp["atomic_numbers"],
                correlation=hp["correlation"],
                gate=torch.nn.functional.silu,
                radial_MLP=hp["radial_MLP"],
                atomic_inter_scale=1.0,
                atomic_inter_shift=0.0,
            )
        finally:
            torch.set_default_dtype(previous)
    return model


def layer_irreps(model) -> list:
    """The e3nn irreps of each interaction layer's output, in the order they are concatenated in `node_feats`."""
    from e3nn import o3

    return [o3.Irreps(str(p.linear.irreps_out)) for p in model.products]


def feature_columns(irreps_per_layer: list, invariants_only: bool, last_layer_only: bool) -> np.ndarray:
    """Indices into `node_feats` of the features the two options select (see the module docstring)."""
    starts = np.cumsum([0] + [ir.dim for ir in irreps_per_layer])
    last = irreps_per_layer[-1]
    if last_layer_only and not invariants_only and all(ir.l == 0 for _, ir in last):
        raise ValueError(
            f"the last interaction layer is scalar-only ({last}), so its equivariant features equal the invariant "
            "ones; use last_layer_only: false for the l>0 channels of the earlier layers"
        )
    layers = [len(irreps_per_layer) - 1] if last_layer_only else range(len(irreps_per_layer))
    cols: list[int] = []
    for k in layers:
        irreps = irreps_per_layer[k]
        for (_, ir), sl in zip(irreps, irreps.slices(), strict=True):
            if not invariants_only or (ir.l == 0 and ir.p == 1):
                cols.extend(range(starts[k] + sl.start, starts[k] + sl.stop))
    return np.asarray(cols, dtype=np.int64)


def _flag(opts: dict[str, Any], name: str) -> bool:
    value = opts.get(name, True)
    if not isinstance(value, bool):
        raise ValueError(f"MACE option {name} must be true or false, got {value!r}")
    return value


class MACEAdapter:
    """Mean-pooled interaction-layer node features of a MACE model (see the module docstring), plus its energy."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        torch = _import_mace()

        self.card = card
        self._torch = torch
        opts = dict(card.get("options") or {})
        self.invariants_only = _flag(opts, "invariants_only")
        self.last_layer_only = _flag(opts, "last_layer_only")
        self.dtype_name = str(opts.get("dtype", "float64"))
        if self.dtype_name not in DTYPES:
            raise ValueError(f"MACE option dtype must be one of {DTYPES}, got {self.dtype_name!r}")
        self.dtype = getattr(torch, self.dtype_name)
        self.device = resolve_device(device)
        random_init = opts.get("random_init")
        if random_init:
            if checkpoint:
                raise ValueError(f"MACE {card.get('model_id')}: a random_init card takes no checkpoint")
            if not isinstance(random_init, dict):
                raise ValueError("MACE option random_init must be a mapping {seed: int, size: small|medium|large}")
            model = build_mace_mp(str(random_init.get("size", "medium")), int(random_init.get("seed", 0)))
            self.model_file = None
        else:
            self.model_file = resolve_model_file(card, checkpoint)
            # a .model file is a whole pickled module (mace's format): full unpickling, as MACECalculator does
            model = torch.load(self.model_file, map_location="cpu", weights_only=False)
        if not hasattr(model, "products") or not hasattr(model, "atomic_numbers"):
            raise ValueError(f"MACE {card.get('model_id')}: {type(model).__name__} is not a MACE model")
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.r_max = float(self.model.r_max)
        self.z_list = [int(z) for z in self.model.atomic_numbers]
        self.heads = list(getattr(self.model, "heads", None) or ["Default"])
        self.head = self._pick_head(opts.get("head"))
        self.layer_irreps = layer_irreps(self.model)
        try:
            self.columns = feature_columns(self.layer_irreps, self.invariants_only, self.last_layer_only)
        except ValueError as exc:
            raise ValueError(f"MACE {card.get('model_id')}: {exc}") from None
        self.embedding_dim = len(self.columns)

    def _pick_head(self, wanted: Any) -> str:
        if wanted is not None:
            if str(wanted) not in self.heads:
                raise ValueError(f"MACE head {wanted!r} not in the model's heads {self.heads}")
            return str(wanted)
        if len(self.heads) == 1:
            return self.heads[0]
        default = [h for h in self.heads if h.lower() == "default"]
        if not default:
            raise ValueError(f"MACE model has heads {self.heads}: choose one with the card option head")
        return default[0]

    def _graph(self, sample: Sample):
        from mace import data as mace_data
        from mace.tools import torch_tools

        outside = elements_outside(sample.atoms, self.z_list)
        if outside:
            raise CannotEmbed(f"MACE model has no element Z={outside} (it covers {len(set(self.z_list))} elements)")
        # graphs carry no labels: empty key specification (no charges, spins or fields read from atoms.info)
        keyspec = mace_data.KeySpecification(info_keys={}, arrays_keys={})
        with torch_tools.default_dtype(self.dtype_name):
            config = mace_data.config_from_atoms(sample.atoms, key_specification=keyspec, head_name=self.head)
            return mace_data.AtomicData.from_config(config, z_table=self._z_table, cutoff=self.r_max, heads=self.heads)

    @property
    def _z_table(self):
        from mace.tools.utils import AtomicNumberTable

        return AtomicNumberTable(self.z_list)

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        check_all(samples)
        ids, graphs, failures = build_inputs(samples, self._graph, "MACE cannot build a graph")
        return embed_batches(ids, graphs, failures, self._forward, batch_size, self.embedding_dim)

    def _forward(self, graphs: list) -> tuple[list[np.ndarray], list[float]]:
        """One batched forward pass: mean-pooled selected node features and total energies (eV)."""
        torch = self._torch
        from mace.tools import torch_geometric

        batch = torch_geometric.Batch.from_data_list(graphs).to(self.device)
        with torch.no_grad():
            out = self.model(batch.to_dict(), training=False, compute_force=False)
        feats = out["node_feats"]
        total = sum(ir.dim for ir in self.layer_irreps)
        if feats.shape[1] != total:
            raise RuntimeError(f"MACE node_feats has {feats.shape[1]} columns, the layer irreps say {total}")
        x = feats[:, torch.as_tensor(self.columns, device=feats.device)]
        n = len(graphs)
        pooled = segment_mean(x, batch["batch"], n)
        energy = out["energy"].detach().to(torch.float64).reshape(n).cpu().numpy()
        return list(pooled), [float(v) for v in energy]
