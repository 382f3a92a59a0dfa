"""Roost (composition-only, modality `composition`): the two checkpoints shipped in the `mattervial` 0.1.5 wheel.

Roost (Goodall and Lee, Nat. Commun. 11, 6280 (2020)) sees only the stoichiometry: a dense graph whose nodes are the
elements of the formula, each with its matscholar element embedding (200-d, Tshitoyan et al. 2019) and its atomic
fraction. The wheel (MIT) ships two trained models: `mpgap_checkpoint-r0.pth.tar` (task `band_gap`, eV, Materials
Project) and `oqmd_eform_checkpoint-r0.pth.tar` (task `formation_energy_per_atom`, eV/atom, OQMD), both robust
(mean and log-std outputs), 2,302,161 parameters, with the embedding file `matscholar-embedding.json` (103 elements).

Network, rebuilt here in plain torch from the stored tensors (same names as Roost's modules):
  h_i = [Linear(200, 63)(e_i), w_i]                                    element features, w_i the atomic fraction
  3 x message layer: for every ordered pair (i, j) of the formula's elements (self pairs included), f = [h_i, h_j];
      3 heads of weighted attention: a_ij = w_j^p exp(g(f)) / sum_j w_j^p exp(g(f)),  h_i += mean_heads sum_j a_ij m(f)
      (g: 128 -> 256 -> 1, m: 128 -> 256 -> 64, LeakyReLU; p a learned scalar per head)
  crystal pooling: 3 heads of the same weighted attention over the elements (g: 64 -> 256 -> 1, m: 64 -> 256 -> 64),
      averaged -> the 64-d composition vector `material_nn` (THE EMBEDDING)
  trunk: ResidualNetwork 64 -> 1024 -> 512 -> 256, ReLU; output head: ResidualNetwork 256 -> 128 -> 64 -> 2;
  prediction = output[0] * std + mean (the checkpoint's `normalizer_dict`).
The embedding is the output of `material_nn`, what mattervial calls `ROOST_<model>_LayerMaterialPooling_#01..64`:
the composition representation after message passing and attention pooling, before Roost's trunk and output head.

Why not mattervial's code: `import mattervial...` runs the package `__init__`, which imports its TensorFlow/MEGNet
featurisers; its Roost code needs `torch_scatter` and its `CompositionData` indexes a pandas Series by position
(`row[["composition"]][0]`), a KeyError under pandas 3. The rebuilt network needs neither; tests/test_adapter_roost.py
runs mattervial's own `get_RoostFeatures` and Roost `predict` (modules loaded without the package `__init__`) and
compares. The checkpoint is read with `torch.load(weights_only=True)`, allow-listing only numpy's scalar and dtype
reconstruction and `collections.Counter` (the stored `best_val_score` and optimizer state hold them); no class is
executed. Weights: `--checkpoint`, else `<weights root>/<model_id>/<file name>`, else the installed wheel.

Inputs: the composition of `Sample.atoms` (element counts; positions are not used). Samples with the same element
fractions (Fe2O3 and Fe4O6, or two polymorphs) get bit-identical rows: each distinct composition is computed once.
An element outside the embedding's 103, or a sample without atoms, goes to `failures` with the reason. No total
energy is predicted (band gap and formation energy per atom are not the datasets' energy labels): `energies` is None;
`predict()` returns the model's own target. Options: `threads` (torch intra-op threads during the forward pass,
default 1, restored afterwards; 0 = torch's default), `element_embedding` (another element table, pkg:// or a path).
"""

from __future__ import annotations

import collections
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from precompute.adapters._weights import (
    MissingCheckpoint,
    card_local_paths,
    find_weights_file,
    missing_message,
    model_weights_dir,
    url_file_name,
)
from precompute.adapters.base import EmbedResult
from precompute.datasets.base import DatasetError, Sample

PKG_DIR = "pkg://mattervial/featurizers/custom_models/"
EMBEDDING_FILE = "matscholar-embedding.json"
EMBEDDING_DIM = 64
# target -> unit, for the two shipped checkpoints
UNITS = {"band_gap": "eV", "formation_energy_per_atom": "eV/atom"}

Composition = tuple[tuple[str, Fraction], ...]


def safe_globals() -> list[Any]:
    """What torch's weights_only unpickler may build beyond tensors and plain containers: numpy scalars and dtypes
    (the stored best_val_score) and collections.Counter (in the stored optimizer state)."""
    return [
        # numpy 2 moved numpy.core to numpy._core; the pickle names the old path
        ((np._core if hasattr(np, "_core") else np.core).multiarray.scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        collections.Counter,
        *(type(np.dtype(c)) for c in ("f4", "f8", "i4", "i8")),
    ]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, read with weights_only=True and only `safe_globals()` admitted."""
    import torch

    with torch.serialization.safe_globals(safe_globals()):
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("model_params", "state_dict", "normalizer_dict"):
        if key not in ckpt:
            raise ValueError(f"{path}: not a Roost checkpoint (no {key!r}; keys: {sorted(ckpt)})")
    return ckpt


def checkpoint_path(card: dict[str, Any], checkpoint: str | None = None) -> Path:
    """The checkpoint by the rule of precompute/adapters/_weights.py: --checkpoint, weights folder, the wheel."""
    from precompute.adapters._structure import local_checkpoint

    model_id = str(card.get("model_id"))
    ref = str(card.get("checkpoint") or "")
    name = url_file_name(ref)
    expected = model_weights_dir(model_id) / name
    if checkpoint:
        try:
            path = Path(str(local_checkpoint(checkpoint)))
        except FileNotFoundError:
            path = Path(str(checkpoint))
        if path.is_file():
            return path
        raise MissingCheckpoint(missing_message("Roost", model_id, expected, ref, checkpoint=checkpoint))
    found = find_weights_file(model_id, name, suffixes=(".tar", ".pth", ".pt"))
    if found is not None:
        return found
    for path in card_local_paths(ref):
        if path.is_file():
            return path
    hint = "install it with `pip install --no-deps mattervial==0.1.5` (make env)"
    raise MissingCheckpoint(missing_message("Roost", model_id, expected, ref, hint=hint))


def composition_of(sample: Sample) -> Composition:
    """(element, atomic fraction) pairs of the sample's atoms, sorted by element symbol; exact fractions."""
    if sample.atoms is None or len(sample.atoms) == 0:
        raise DatasetError(f"{sample.sample_id}: no atoms, so no composition for a composition-only model")
    counts = collections.Counter(sample.atoms.get_chemical_symbols())
    total = sum(counts.values())
    return tuple(sorted((el, Fraction(n, total)) for el, n in counts.items()))


class RoostNet:
    """Roost's forward pass from a state dict (plain torch, no torch_scatter); see the module docstring."""

    def __init__(self, state: dict[str, Any], params: dict[str, Any], device: str = "cpu"):
        self.p = {k: v.to(device=device, dtype=v.dtype) for k, v in state.items()}
        self.n_graph = int(params["n_graph"])
        self.elem_heads = int(params["elem_heads"])
        self.cry_heads = int(params["cry_heads"])
        self.device = device
        if int(params["elem_fea_len"]) != EMBEDDING_DIM or len(params["trunk_hidden"]) != 2:
            raise ValueError(f"Roost checkpoint with unexpected shape parameters: {params}")

    def _lin(self, x: Any, name: str) -> Any:
        import torch.nn.functional as F

        return F.linear(x, self.p[f"{name}.weight"], self.p.get(f"{name}.bias"))

    def _simple(self, x: Any, name: str) -> Any:
        import torch.nn.functional as F

        return self._lin(F.leaky_relu(self._lin(x, f"{name}.fcs.0")), f"{name}.fc_out")

    def _attention(self, x: Any, index: Any, weights: Any, n_out: int, name: str) -> Any:
        """Roost's WeightedAttentionPooling: softmax over each index group of gate(x), times weights**pow."""
        import torch

        gate = self._simple(x, f"{name}.gate_nn")
        gmax = torch.full((n_out, 1), float("-inf"), dtype=gate.dtype, device=gate.device)
        gmax = gmax.scatter_reduce(0, index[:, None], gate, reduce="amax", include_self=True)
        gate = (weights ** self.p[f"{name}.pow"]) * (gate - gmax[index]).exp()
        norm = torch.zeros((n_out, 1), dtype=gate.dtype, device=gate.device).index_add_(0, index, gate)
        gate = gate / (norm[index] + 1e-10)
        msg = self._simple(x, f"{name}.message_nn")
        out = torch.zeros((n_out, msg.shape[1]), dtype=msg.dtype, device=msg.device)
        return out.index_add_(0, index, gate * msg)

    def _residual(self, x: Any, name: str, n_layers: int) -> Any:
        import torch.nn.functional as F

        for i in range(n_layers):
            res = self._lin(x, f"{name}.res_fcs.{i}") if f"{name}.res_fcs.{i}.weight" in self.p else x
            x = F.relu(self._lin(x, f"{name}.fcs.{i}")) + res
        return self._lin(x, f"{name}.fc_out")

    def forward(self, weights: Any, elem_fea: Any, self_idx: Any, nbr_idx: Any, cry_idx: Any, n_cry: int):
        """(composition embeddings (C, 64), raw outputs (C, 2)) for a batch of C compositions."""
        import torch
        import torch.nn.functional as F

        h = torch.cat([self._lin(elem_fea, "material_nn.embedding"), weights], dim=1)
        for g in range(self.n_graph):
            fea = torch.cat([h[self_idx], h[nbr_idx]], dim=1)
            heads = [
                self._attention(fea, self_idx, weights[nbr_idx], len(h), f"material_nn.graphs.{g}.pooling.{k}")
                for k in range(self.elem_heads)
            ]
            h = torch.stack(heads).mean(0) + h
        heads = [
            self._attention(h, cry_idx, weights, n_cry, f"material_nn.cry_pool.{k}") for k in range(self.cry_heads)
        ]
        emb = torch.stack(heads).mean(0)
        trunk = F.relu(self._residual(emb, "trunk_nn", 2))
        return emb, self._residual(trunk, "output_nns.0", 2)


class RoostAdapter:
    """The 64-d Roost composition vector (`material_nn`) of each sample's formula, and the model's prediction."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import torch

        from precompute.adapters._structure import local_checkpoint, resolve_device

        self.card = card
        self._torch = torch
        self.device = resolve_device(device)
        self.checkpoint = checkpoint_path(card, checkpoint)
        ckpt = load_checkpoint(self.checkpoint)
        params = ckpt["model_params"]
        tasks = list(params["task_dict"])
        if len(tasks) != 1 or params["task_dict"][tasks[0]] != "regression" or not params.get("robust"):
            raise ValueError(f"{self.checkpoint}: expected one robust regression task, got {params['task_dict']}")
        self.target = tasks[0]
        self.unit = UNITS.get(self.target, "")
        norm = ckpt["normalizer_dict"][self.target]
        self._mean, self._std = float(norm["mean"]), float(norm["std"])
        self.net = RoostNet(ckpt["state_dict"], params, self.device)
        opts = card.get("options") or {}
        # the element table: the card option, else the one beside the checkpoint, else the wheel's
        emb_path = self.checkpoint.parent / EMBEDDING_FILE
        if opts.get("element_embedding") or not emb_path.is_file():
            emb_path = Path(str(local_checkpoint(str(opts.get("element_embedding") or PKG_DIR + EMBEDDING_FILE))))
        table = json.loads(Path(emb_path).read_text())
        self.element_table = Path(emb_path).name
        self.elements = {el: np.asarray(v, dtype=np.float32) for el, v in table.items()}
        if {len(v) for v in self.elements.values()} != {int(params["elem_emb_len"])}:
            raise ValueError(f"{emb_path}: element vectors are not {params['elem_emb_len']}-d")
        self.embedding_dim = EMBEDDING_DIM
        # intra-op threads for the forward pass (0: torch's default). The matrices are tiny (one row per element of
        # a batch), so thread hand-offs cost more than they save: 64 formulas took 0.22 s on 1 thread and 3.5 s on
        # 2 threads with the machine's 2 cores shared by other jobs
        self.threads = int(opts.get("threads", 1))

    def _run(self, comps: list[Composition]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (n, 64) and predictions (n,) in the target's unit for distinct compositions."""
        torch = self._torch
        w, fea, s_idx, n_idx, c_idx = [], [], [], [], []
        base = 0
        for c, comp in enumerate(comps):
            k = len(comp)
            w.extend(float(f) for _, f in comp)
            fea.extend(self.elements[el] for el, _ in comp)
            s_idx.extend(base + i for i in range(k) for _ in range(k))
            n_idx.extend(base + j for _ in range(k) for j in range(k))
            c_idx.extend([c] * k)
            base += k
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return self._forward(w, fea, s_idx, n_idx, c_idx, len(comps))
        finally:
            torch.set_num_threads(before)

    def _forward(self, w: list, fea: list, s_idx: list, n_idx: list, c_idx: list, n: int) -> tuple:
        torch, dev = self._torch, self.device
        with torch.no_grad():
            emb, out = self.net.forward(
                torch.tensor(w, dtype=torch.float32, device=dev)[:, None],
                torch.from_numpy(np.stack(fea)).to(dev),
                torch.tensor(s_idx, device=dev),
                torch.tensor(n_idx, device=dev),
                torch.tensor(c_idx, device=dev),
                n,
            )
        pred = out[:, 0].double() * self._std + self._mean
        return emb.float().cpu().numpy(), pred.cpu().numpy()

    def _by_composition(
        self, samples: list[Sample], batch_size: int
    ) -> tuple[list[str], list[Composition], dict[Composition, tuple[np.ndarray, float]], dict[str, str]]:
        seen: set[str] = set()
        ids: list[str] = []
        comps: list[Composition] = []
        failures: dict[str, str] = {}
        for s in samples:
            if s.sample_id in seen:
                raise DatasetError(f"{s.sample_id}: duplicate sample id in one embed() call")
            seen.add(s.sample_id)
            try:
                comp = composition_of(s)
            except DatasetError as exc:
                failures[s.sample_id] = str(exc)
                continue
            unknown = [el for el, _ in comp if el not in self.elements]
            if unknown:
                failures[s.sample_id] = (
                    f"elements {unknown} are not in Roost's element table ({self.element_table}, "
                    f"{len(self.elements)} elements)"
                )
                continue
            ids.append(s.sample_id)
            comps.append(comp)
        distinct = list(dict.fromkeys(comps))
        results: dict[Composition, tuple[np.ndarray, float]] = {}
        step = max(1, int(batch_size))
        for start in range(0, len(distinct), step):
            chunk = distinct[start : start + step]
            emb, pred = self._run(chunk)
            for comp, e, p in zip(chunk, emb, pred, strict=True):
                results[comp] = (e, float(p))
        return ids, comps, results, failures

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        ids, comps, results, failures = self._by_composition(samples, batch_size)
        rows = np.zeros((len(ids), EMBEDDING_DIM), dtype=np.float32)
        for i, comp in enumerate(comps):
            rows[i] = results[comp][0]
        bad = ~np.isfinite(rows).all(axis=1)
        for i in np.flatnonzero(bad):
            failures[ids[i]] = "Roost output has non-finite values"
        ok = [sid for sid, b in zip(ids, bad, strict=True) if not b]
        return EmbedResult(ids=ok, embeddings=np.ascontiguousarray(rows[~bad]), failures=failures)

    def predict(self, samples: list[Sample], batch_size: int = 256) -> dict[str, float]:
        """The model's own prediction per sample in `self.unit` (band gap eV, or formation energy eV/atom)."""
        ids, comps, results, _ = self._by_composition(samples, batch_size)
        return {sid: results[comp][1] for sid, comp in zip(ids, comps, strict=True)}
