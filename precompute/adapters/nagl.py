"""OpenFF NAGL AM1-BCC charge GNN (modality `graph`), rebuilt in plain torch from the tensors in `openff-nagl-models`.

The wheel `openff-nagl-models` 2025.9.0 (CC-BY-4.0) ships the trained models as torch pickles that reference
`openff.nagl` classes (`ActivationFunction`, lookup-table entries) and pytorch-lightning's `AttributeDict`; the
`openff-nagl` code is not on PyPI. `read_checkpoint` therefore reads each file with `torch.load` and an Unpickler
whose `find_class` admits only an allow-list: `collections.OrderedDict`, torch's tensor-rebuild function and float
storage, `set`, numpy's scalar/dtype reconstruction, `_codecs.encode`, and inert stand-ins (plain dict / records)
for the three openff/lightning names and the two `torch.nn` activation classes (the stand-in records only the class
name). No pickled class is imported or executed; anything else raises `UnpicklingError` naming it.

Network (read from the checkpoint's own `hyperparameters.config`):
  x_i = [one-hot element (10: C O H N S F Br Cl I P), one-hot connectivity (number of bonded atoms, 1-4 or 1-6),
         average formal charge over resonance forms, in ring of size 3, 4, 5, 6]          (19-22 features)
  6 SAGEConv layers (mean aggregator, as DGL's SAGEConv): h_i' = ReLU(W_self h_i + b + W_neigh mean_{j~i} h_j),
  512 wide; readout per atom: Linear(512, 128) -> Sigmoid -> Linear(128, k) -> charges by charge equilibration:
  with electronegativity e_i and hardness s_i (and, for k = 3, a prior charge q0_i),
      q_i = q0_i - e_i / s_i + (1 / s_i) * (Q - sum_j q0_j + sum_j e_j / s_j) / (sum_j 1 / s_j),
  the minimum of sum_i [e_i (q_i - q0_i) + s_i (q_i - q0_i)^2 / 2] subject to sum_i q_i = Q (Q: the total formal
  charge), q0 = 0 for k = 2 (`compute_partial_charges`) and the first column for k = 3
  (`regularized_compute_partial_charges`).
Molecules are RDKit molecules from the SMILES with explicit hydrogens (Chem.AddHs); atom order = RDKit's (heavy
atoms in SMILES order, then hydrogens), as openff's `Molecule.from_smiles` gives.

Average formal charge: the mean of each atom's formal charge over RDKit's `ResonanceMolSupplier` forms (NAGL uses
openff's resonance enumerator; both give the formal charges themselves for molecules without charged resonance, e.g.
all neutral QM9 molecules without zwitterionic forms). The lookup table of rc.3 and 1.0.0 (13,944 molecules with
stored OpenEye AM1-BCC ELF10 charges, which NAGL returns instead of the network's) is readable with `lookup_charges`
but not used: the embedding is the network's.

Checked (tests/test_adapter_nagl.py): the package's own ethanol test charges are reproduced to 1e-6 by the rebuilt
network for alpha.1, rc.1 and rc.2; rc.3 and 1.0.0 give rc.2's network charges (their GNN weights are rc.2's) and
their expected ethanol values are the lookup table's entry (to 1e-5).

Embedding: the output of the last (6th) SAGEConv layer, 512-d per atom, mean over all atoms (hydrogens included).
`charges(smiles)` returns the network's AM1-BCC charges (e) for the reference check.
Inputs: `Sample.smiles`; an element outside the model's ten, more bonded neighbours than its connectivity classes,
or an unparsable SMILES goes to `failures` with the reason.
"""

from __future__ import annotations

import collections
import pickle
import types
from pathlib import Path
from typing import Any

import numpy as np

from precompute.adapters._structure import stack
from precompute.adapters.base import CannotEmbed, EmbedResult
from precompute.datasets.base import DatasetError, Sample

CHECKPOINT = "pkg://openff/nagl_models/models/am1bcc/openff-gnn-am1bcc-1.0.0.pt"


# ---------------------------------------------------------------- reading the pickle without its classes


class _Record:
    """Inert stand-in for a pickled class: keeps constructor arguments and state, runs nothing."""

    cls_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.cls_name}>"


def _record(name: str) -> type:
    return type(name, (_Record,), {"cls_name": name})


class _AttributeDict(dict):
    """pytorch_lightning's AttributeDict is a dict; the plain dict is all that is needed."""


def _allowed() -> dict[tuple[str, str], Any]:
    import codecs

    import torch

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch", "FloatStorage"): torch.FloatStorage,
        ("__builtin__", "set"): set,
        ("builtins", "set"): set,
        ("_codecs", "encode"): codecs.encode,
        ("pytorch_lightning.utilities.parsing", "AttributeDict"): _AttributeDict,
        ("openff.nagl.nn.activation", "ActivationFunction"): _record("ActivationFunction"),
        ("openff.nagl.lookups", "AtomPropertiesLookupTableEntry"): _record("AtomPropertiesLookupTableEntry"),
        ("openff.nagl.lookups", "PropertyProvenance"): _record("PropertyProvenance"),
        ("torch.nn.modules.activation", "ReLU"): _record("ReLU"),
        ("torch.nn.modules.activation", "Sigmoid"): _record("Sigmoid"),
    }
    from numpy._core import multiarray  # numpy >= 2; pickles written by numpy 1 name numpy.core.multiarray

    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "scalar")] = multiarray.scalar
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hyperparameters, state_dict) of a NAGL `.pt` file, read with the allow-list Unpickler (module docstring).
    hyperparameters holds `config` (features, layers, readout), `chemical_domain` and, from rc.3 on,
    `lookup_tables` (see `lookup_charges`)."""
    import torch

    allowed = _allowed()

    class Restricted(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            obj = allowed.get((module, name))
            if obj is None:
                raise pickle.UnpicklingError(f"{path}: refusing to load pickled global {module}.{name}")
            return obj

    safe = types.SimpleNamespace(Unpickler=Restricted, load=pickle.load, __name__="nagl_restricted_pickle")
    data = torch.load(str(path), map_location="cpu", pickle_module=safe, weights_only=False)
    try:
        hparams, state = dict(data["hyperparameters"]), dict(data["state_dict"])
        hparams["config"]["atom_features"]
    except (KeyError, TypeError):
        raise ValueError(f"{path}: not a NAGL model file (no hyperparameters.config / state_dict)") from None
    return hparams, state


def lookup_charges(hparams: dict[str, Any]) -> dict[str, tuple[str, tuple[float, ...]]]:
    """The model's AM1-BCC lookup table (rc.3 and 1.0.0; OpenEye AM1-BCC ELF10 charges that NAGL returns instead of
    the network's for listed molecules): InChI -> (mapped SMILES, charges in map-number order). {} when absent."""
    table = ((hparams.get("lookup_tables") or {}).get("am1bcc_charges") or {}).get("properties") or {}
    out = {}
    for inchi, entry in table.items():
        fields = (entry.state or {}).get("__dict__", {})
        out[inchi] = (str(fields["mapped_smiles"]), tuple(float(v) for v in fields["property_value"]))
    return out


# ---------------------------------------------------------------- features and network


def _resonance_average_charges(mol: Any) -> np.ndarray:
    from rdkit import Chem

    charges = np.array([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=np.float64)
    if not charges.any():
        return charges
    forms = [m for m in Chem.ResonanceMolSupplier(mol) if m is not None]
    if not forms:
        return charges
    return np.mean([[a.GetFormalCharge() for a in m.GetAtoms()] for m in forms], axis=0)


def featurize(mol: Any, config: dict[str, Any]) -> np.ndarray:
    """(n_atoms, n_features) float32 atom features in the checkpoint's order (see the module docstring)."""
    avg_q = None
    cols: list[np.ndarray] = []
    atoms = list(mol.GetAtoms())
    for feat in config["atom_features"]:
        name = feat["name"]
        if name == "atomic_element":
            cats = list(feat["categories"])
            sym = [a.GetSymbol() for a in atoms]
            bad = sorted(set(sym) - set(cats))
            if bad:
                raise CannotEmbed(f"elements {bad} outside the NAGL model's {cats}")
            cols.append(np.array([[s == c for c in cats] for s in sym], dtype=np.float32))
        elif name == "atom_connectivity":
            cats = list(feat["categories"])
            deg = [a.GetDegree() for a in atoms]
            if any(d not in cats for d in deg):
                raise CannotEmbed(f"an atom with {max(deg)} bonded neighbours; the model knows {cats}")
            cols.append(np.array([[d == c for c in cats] for d in deg], dtype=np.float32))
        elif name == "atom_average_formal_charge":
            avg_q = _resonance_average_charges(mol) if avg_q is None else avg_q
            cols.append(avg_q[:, None].astype(np.float32))
        elif name == "atom_in_ring_of_size":
            k = int(feat["ring_size"])
            cols.append(np.array([[a.IsInRingSize(k)] for a in atoms], dtype=np.float32))
        else:
            raise ValueError(f"NAGL atom feature {name!r} is not implemented here")
    return np.concatenate(cols, axis=1)


class NaglNet:
    """The SAGEConv stack and charge readout of one NAGL checkpoint, as plain torch tensors."""

    def __init__(self, config: dict[str, Any], state: dict[str, Any]):
        conv = config["convolution"]
        if conv["architecture"] != "SAGEConv" or any(layer["aggregator_type"] != "mean" for layer in conv["layers"]):
            raise ValueError(f"only SAGEConv with mean aggregation is rebuilt here, got {conv}")
        self.config = config
        self.layers = []
        for i in range(len(conv["layers"])):
            p = f"convolution_module.gcn_layers.{i}."
            self.layers.append((state[p + "fc_self.weight"], state[p + "fc_self.bias"], state[p + "fc_neigh.weight"]))
        r = "readout_modules.am1bcc_charges.readout_layers."
        self.readout = (state[r + "0.weight"], state[r + "0.bias"], state[r + "3.weight"], state[r + "3.bias"])
        self.n_out = int(self.readout[2].shape[0])
        if self.n_out not in (2, 3):
            raise ValueError(f"charge readout with {self.n_out} outputs is not implemented")
        self.width = int(self.layers[-1][0].shape[0])
        self.n_params = int(sum(t.numel() for t in state.values()))

    def hidden(self, x: Any, edges: np.ndarray) -> Any:
        """Per-atom features after the last SAGEConv layer (ReLU after every layer, as the config says)."""
        import torch

        n = x.shape[0]
        src = torch.as_tensor(edges[0], dtype=torch.long)
        dst = torch.as_tensor(edges[1], dtype=torch.long)
        deg = torch.zeros(n, dtype=x.dtype).index_add_(0, dst, torch.ones(len(dst), dtype=x.dtype)).clamp_min(1.0)
        h = x
        for w_self, b, w_neigh in self.layers:
            agg = torch.zeros((n, h.shape[1]), dtype=h.dtype).index_add_(0, dst, h[src]) / deg[:, None]
            h = torch.relu(h @ w_self.T + b + agg @ w_neigh.T)
        return h

    def charges(self, h: Any, total_charge: float) -> Any:
        import torch

        w0, b0, w1, b1 = self.readout
        out = torch.sigmoid(h @ w0.T + b0) @ w1.T + b1
        if self.n_out == 3:
            q0, e, s = out[:, 0], out[:, 1], out[:, 2]
        else:
            q0, e, s = torch.zeros_like(out[:, 0]), out[:, 0], out[:, 1]
        inv_s = 1.0 / s
        mu = (total_charge - q0.sum() + (e * inv_s).sum()) / inv_s.sum()
        return q0 - e * inv_s + inv_s * mu


def _mol_graph(smiles: str) -> tuple[Any, np.ndarray]:
    """RDKit molecule with explicit hydrogens and its directed edge list (both directions of every bond). A mapped
    SMILES with explicit [H:n] atoms keeps its hydrogens and is reordered by map number."""
    from rdkit import Chem

    params = Chem.SmilesParserParams()
    params.removeHs = False
    mol = Chem.MolFromSmiles(smiles, params)
    if mol is None:
        raise CannotEmbed(f"RDKit cannot parse SMILES {smiles!r}")
    maps = [a.GetAtomMapNum() for a in mol.GetAtoms()]
    if all(maps) and len(set(maps)) == len(maps):
        mol = Chem.RenumberAtoms(mol, [int(i) for i in np.argsort(maps)])
    mol = Chem.AddHs(mol)
    pairs = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    edges = np.array([[i for i, j in pairs] + [j for i, j in pairs], [j for i, j in pairs] + [i for i, j in pairs]])
    return mol, edges.reshape(2, -1)


class NaglAdapter:
    """Mean over atoms of the last SAGEConv layer of an OpenFF NAGL AM1-BCC model (512-d)."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        from precompute.registry import resolve_checkpoint

        self.card = card
        path = checkpoint or resolve_checkpoint({**card, "checkpoint": card.get("checkpoint") or CHECKPOINT})
        if not path or not Path(path).is_file():
            raise FileNotFoundError(f"{card.get('model_id')}: NAGL model file {path!r} not found")
        self.path = str(path)
        self.hparams, state = read_checkpoint(self.path)
        self.config = self.hparams["config"]
        self.net = NaglNet(self.config, state)
        self.embedding_dim = self.net.width
        self.device = "cpu"  # a few hundred thousand multiply-adds per molecule: CPU only

    def _forward(self, smiles: str) -> tuple[Any, Any, Any]:
        import torch

        mol, edges = _mol_graph(smiles)
        x = torch.as_tensor(featurize(mol, self.config))
        with torch.no_grad():
            h = self.net.hidden(x, edges)
        return mol, h, x

    def charges(self, smiles: str) -> np.ndarray:
        """The network's AM1-BCC partial charges (e) for the molecule's atoms (RDKit order, hydrogens last)."""
        import torch

        mol, h, _ = self._forward(smiles)
        total = float(sum(a.GetFormalCharge() for a in mol.GetAtoms()))
        with torch.no_grad():
            return self.net.charges(h, total).numpy().astype(np.float64)

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        from rdkit import RDLogger

        seen: set[str] = set()
        ids, rows, failures = [], [], {}
        RDLogger.DisableLog("rdApp.*")
        try:
            for s in samples:
                if s.sample_id in seen:
                    raise DatasetError(f"{s.sample_id}: duplicate sample id in one embed() call")
                seen.add(s.sample_id)
                if not s.smiles:
                    failures[s.sample_id] = "no SMILES for this sample"
                    continue
                try:
                    _, h, _ = self._forward(s.smiles)
                except CannotEmbed as exc:
                    failures[s.sample_id] = str(exc)
                    continue
                row = h.mean(0).numpy().astype(np.float32)
                if not np.isfinite(row).all():
                    failures[s.sample_id] = "NAGL output has non-finite values"
                    continue
                ids.append(s.sample_id)
                rows.append(row)
        finally:
            RDLogger.EnableLog("rdApp.*")
        return EmbedResult(ids=ids, embeddings=stack(rows, self.embedding_dim), failures=failures)
