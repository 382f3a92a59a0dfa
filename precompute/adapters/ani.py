"""ANI-1x (torchani 2.2.4 wheel; the real 8-member ANI-1x ensemble ships as NeuroChem files).

The wheel's `*.info` files are empty placeholders, so `torchani.models.ANI1x()` would try to download; we build the
model from the shipped files instead: `neurochem.Constants(rHCNO-5.2R_16-3.5A_a4-8.params)` -> `AEVComputer`,
`neurochem.load_model_ensemble(species, ani-1x_8x/train, 8)`.

Embedding: the last hidden layer of each element network (`net[:-1]`, i.e. after the third CELU; 96-d for H, C, N
and O: widths H 160-128-96, C 144-112-96, N/O 128-112-96), computed on each atom's AEV and mean-pooled over the atoms
of the molecule. Options: {member: null} = the mean over the 8 members of the per-member pooled vectors;
{member: 0..7} = one member only (a seed-variation control: same data, same architecture, different training seed).

ANI-1x knows only H, C, N and O: any other element goes to `failures` with the reason. Molecules (no pbc) are
batched by padding with species -1 (torchani's convention, masked out of the AEV); periodic samples are run one at a
time with their cell. `checkpoint` may name a folder laid out like `torchani/resources/ani-1x_8x`.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from ase.units import Hartree as HARTREE_EV  # the same conversion the datasets use for hartree labels

from precompute.adapters._structure import check_all, local_checkpoint, resolve_device, stack
from precompute.adapters.base import EmbedResult
from precompute.datasets.base import Sample

N_MEMBERS = 8
CONSTANTS_FILE = "rHCNO-5.2R_16-3.5A_a4-8.params"


def _import_torchani():
    with warnings.catch_warnings():  # "cuaev not installed", pkg_resources deprecation, torchani.data unavailable
        warnings.simplefilter("ignore")
        import torchani
        from torchani import neurochem
    return torchani, neurochem


def default_resource_dir() -> Path:
    torchani, _ = _import_torchani()
    return Path(torchani.__file__).parent / "resources" / "ani-1x_8x"


@functools.lru_cache(maxsize=4)
def _load_files(res: str, device: str):
    """Parse the NeuroChem files once per process (about 3 s for the 8 members); the modules are shared read-only
    by every ANIAdapter on that device (e.g. the ensemble and the 8 single-member models)."""
    _, neurochem = _import_torchani()
    consts_path = Path(res) / CONSTANTS_FILE
    if not consts_path.is_file() or os.path.getsize(consts_path) == 0:
        raise FileNotFoundError(f"ANI-1x: {consts_path} is missing or empty")
    consts = neurochem.Constants(str(consts_path))
    ensemble = neurochem.load_model_ensemble(consts.species, str(Path(res) / "train"), N_MEMBERS)
    ensemble = ensemble.to(device).eval()
    for p in ensemble.parameters():
        p.requires_grad_(False)
    sae = neurochem.load_sae(str(Path(res) / "sae_linfit.dat"))
    return consts, ensemble, sae


class ANIAdapter:
    """Mean-pooled last hidden layer of the ANI-1x element networks (ensemble mean or one member)."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        import torch

        torchani, _ = _import_torchani()
        self.card = card
        self._torch = torch
        opts = card.get("options") or {}
        member = opts.get("member")
        if member is not None and (not isinstance(member, int) or not 0 <= member < N_MEMBERS):
            raise ValueError(f"ANI-1x: option member must be null or an int in 0..{N_MEMBERS - 1}, got {member!r}")
        self.member = member
        self.device = resolve_device(device)
        checkpoint = local_checkpoint(checkpoint)
        res = Path(checkpoint) if checkpoint else default_resource_dir()
        consts, ensemble, self._sae = _load_files(str(res.resolve()), self.device)
        self.species: list[str] = list(consts.species)  # ['H', 'C', 'N', 'O']
        self.aev = torchani.AEVComputer(**consts).to(self.device).eval()
        members = range(N_MEMBERS) if member is None else [member]
        # hidden[m][i]: member m, species i -> element network without its final Linear(96 -> 1)
        self.hidden = [[ensemble[m][sp][:-1] for sp in self.species] for m in members]
        self.networks = [ensemble[m] for m in members]  # full ANIModels, for energies
        # output[m][i]: the final Linear(96 -> 1) giving the atomic energy (hartree) from the last hidden layer
        self.output = [[ensemble[m][sp][-1] for sp in self.species] for m in members]
        self._self_energies = self._sae.self_energies.double().to(self.device)
        dims = {net[-2].out_features for nets in self.hidden for net in nets}
        if len(dims) != 1:
            raise RuntimeError(f"ANI-1x: element networks have different last hidden widths {sorted(dims)}")
        self.embedding_dim = dims.pop()
        from ase.data import atomic_numbers

        self._z_to_index = {atomic_numbers[s]: i for i, s in enumerate(self.species)}

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:
        check_all(samples)
        failures: dict[str, str] = {}
        ok: list[tuple[Sample, np.ndarray]] = []
        for s in samples:
            z = s.atoms.numbers
            outside = sorted({int(x) for x in z} - set(self._z_to_index))
            if outside:
                from ase.data import chemical_symbols

                names = ", ".join(chemical_symbols[x] for x in outside)
                failures[s.sample_id] = f"ANI-1x supports only {', '.join(self.species)}; sample has {names}"
                continue
            ok.append((s, np.array([self._z_to_index[int(x)] for x in z], dtype=np.int64)))
        rows: dict[str, np.ndarray] = {}
        energy: dict[str, float] = {}
        molecules = [(s, sp) for s, sp in ok if not np.asarray(s.atoms.pbc).any()]
        periodic = [(s, sp) for s, sp in ok if np.asarray(s.atoms.pbc).any()]
        step = max(1, batch_size)
        for start in range(0, len(molecules), step):
            chunk = molecules[start : start + step]
            vecs, e = self._forward([sp for _, sp in chunk], [s.atoms.get_positions() for s, _ in chunk])
            rows.update({s.sample_id: v for (s, _), v in zip(chunk, vecs, strict=True)})
            energy.update({s.sample_id: x for (s, _), x in zip(chunk, e, strict=True)})
        for s, sp in periodic:
            cell, pbc = np.asarray(s.atoms.cell.array), np.asarray(s.atoms.pbc, dtype=bool)
            vecs, e = self._forward([sp], [s.atoms.get_positions()], cell=cell, pbc=pbc)
            rows[s.sample_id], energy[s.sample_id] = vecs[0], e[0]
        ids = [s.sample_id for s, _ in ok]
        return EmbedResult(ids=ids, embeddings=stack([rows[i] for i in ids], self.embedding_dim), failures=failures,
                           energies=np.array([energy[i] for i in ids], dtype=np.float64) * HARTREE_EV)  # fmt: skip

    def predict_energy(self, samples: list[Sample]) -> dict[str, float]:
        """ANI-1x total energy in hartree (wB97x/6-31G(d)) per molecule, mean over the selected members, with the
        self-atomic energies added back; a sanity check that the real weights are loaded. Non-HCNO samples and
        periodic samples are left out."""
        torch = self._torch
        check_all(samples)
        out: dict[str, float] = {}
        for s in samples:
            z = [int(x) for x in s.atoms.numbers]
            if np.asarray(s.atoms.pbc).any() or any(x not in self._z_to_index for x in z):
                continue
            sp = torch.tensor([[self._z_to_index[x] for x in z]], device=self.device)
            xyz = torch.tensor(s.atoms.get_positions()[None], dtype=torch.float32, device=self.device)
            with torch.no_grad():
                _, aev = self.aev((sp, xyz))
                e = sum(float(net((sp, aev)).energies[0]) for net in self.networks) / len(self.networks)
            out[s.sample_id] = e + float(self._sae.sae(sp.cpu())[0])
        return out

    def _forward(
        self, species: list[np.ndarray], positions: list[np.ndarray], cell=None, pbc=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pooled embeddings (B, D) of a padded batch, and each molecule's total energy in hartree (mean over the
        selected members, self-atomic energies added back); padding atoms carry species -1 and are masked out."""
        torch = self._torch
        n_max = max(len(s) for s in species)
        sp = np.full((len(species), n_max), -1, dtype=np.int64)
        xyz = np.zeros((len(species), n_max, 3), dtype=np.float32)
        for b, (s, p) in enumerate(zip(species, positions, strict=True)):
            sp[b, : len(s)] = s
            xyz[b, : len(s)] = p
        sp_t = torch.from_numpy(sp).to(self.device)
        xyz_t = torch.from_numpy(xyz).to(self.device)
        kwargs = {}
        if cell is not None:
            kwargs = {
                "cell": torch.as_tensor(cell, dtype=torch.float32, device=self.device),
                "pbc": torch.as_tensor(pbc, dtype=torch.bool, device=self.device),
            }
        with torch.no_grad():
            _, aev = self.aev((sp_t, xyz_t), **kwargs)
            flat_sp = sp_t.flatten()
            flat_aev = aev.flatten(0, 1)
            counts = (sp_t >= 0).sum(dim=1).to(torch.float64)
            # atom index lists per species, shared by all members
            index = [(i, (flat_sp == i).nonzero().flatten()) for i in range(len(self.species))]
            index = [(i, idx, flat_aev.index_select(0, idx)) for i, idx in index if idx.numel()]
            total = torch.zeros(len(species), self.embedding_dim, dtype=torch.float64, device=self.device)
            atomic = torch.zeros(flat_sp.shape[0], dtype=torch.float64, device=self.device)
            for nets, outs in zip(self.hidden, self.output, strict=True):
                feats = torch.zeros(flat_sp.shape[0], self.embedding_dim, dtype=torch.float32, device=self.device)
                for i, idx, x in index:
                    feats[idx] = nets[i](x)
                    atomic[idx] += outs[i](feats[idx]).reshape(-1).double()
                # padding atoms keep zero features, so the sum over the padded axis is the sum over real atoms
                total += feats.view(len(species), n_max, -1).sum(dim=1, dtype=torch.float64) / counts[:, None]
            total /= len(self.hidden)
            energy = atomic.view(len(species), n_max).sum(dim=1) / len(self.hidden)
            real = sp_t >= 0
            energy += torch.where(real, self._self_energies[sp_t.clamp(min=0)], 0.0).sum(dim=1)
        return total.cpu().numpy(), energy.cpu().numpy()
