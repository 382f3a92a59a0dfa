"""Geom2Vec (Pengmei et al., arXiv:2409.19838): NOT AVAILABLE in this project's environments; the adapter says why.

Geom2Vec is a GitHub-only package (https://github.com/zpengmei/geom2vec, MIT): `pip download --no-deps geom2vec`
finds no distribution on PyPI, and no environment here can reach GitHub. Its pretrained checkpoints are files in
that repository, not in any wheel: `checkpoints/visnet_l6_h64_rbf64_r75.pth` (ViSNet, 6 layers, 64 channels, cutoff
7.5 Å), `checkpoints/tensornet_l3_h64_rbf32_r5.pth` (TensorNet) and `geom2vec/checkpoints/et_l6_r64_c75_64_denali.pth`
(TorchMD-ET), pretrained by coordinate denoising on molecular conformations (the repository's pretraining code reads
OrbNet Denali and PCQM4Mv2). It also needs PyTorch Geometric, and ViSNet's radius graph needs torch-cluster or
pyg-lib, neither of which has a wheel for torch 2.13 on PyPI.

So `Geom2VecAdapter(...)` raises `Geom2VecUnavailable` naming what is missing and how a user with internet would
install it. No embedding is ever produced here, and nothing is faked: the card `geom2vec` stays in the registry so
the catalogue is complete, and its extraction fails with this message. If the package is installed, the adapter
still refuses: no code path against geom2vec's API was run in this project, so none is shipped.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from precompute.adapters.base import EmbedResult
from precompute.datasets.base import Sample

REPO = "https://github.com/zpengmei/geom2vec"
CHECKPOINTS = {
    "visnet": "checkpoints/visnet_l6_h64_rbf64_r75.pth",
    "tensornet": "checkpoints/tensornet_l3_h64_rbf32_r5.pth",
    "et": "geom2vec/checkpoints/et_l6_r64_c75_64_denali.pth",
}
INSTALL = (
    f"git clone {REPO} && pip install -e ./geom2vec (not on PyPI), plus torch-geometric and, for ViSNet, "
    "torch-cluster built against the installed torch"
)


class Geom2VecUnavailable(RuntimeError):
    """Geom2Vec cannot run here: the message names the missing package, its checkpoint and the install steps."""


def unavailable_reason(backbone: str = "visnet") -> str:
    """Why the Geom2Vec card cannot be extracted in this environment, and what a user would install."""
    ckpt = CHECKPOINTS.get(backbone, CHECKPOINTS["visnet"])
    installed = importlib.util.find_spec("geom2vec") is not None
    if installed:
        state = (
            "the geom2vec package is importable, but this project ships no adapter code for it: it could not be "
            "installed in any project environment (GitHub is unreachable there), so no code path was tested"
        )
    else:
        state = (
            "the geom2vec package is not installed (it is not on PyPI: `pip download --no-deps geom2vec` finds none)"
        )
    return (
        f"Geom2Vec ({backbone}) is unavailable: {state}. Needed: the package ({INSTALL}) and its pretrained "
        f"checkpoint {ckpt} from {REPO}."
    )


class Geom2VecAdapter:
    """Placeholder for the Geom2Vec card: construction raises Geom2VecUnavailable with the reason."""

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        self.card = card
        backbone = str((card.get("options") or {}).get("backbone", "visnet"))
        raise Geom2VecUnavailable(unavailable_reason(backbone))

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult:  # pragma: no cover - never built
        raise Geom2VecUnavailable(unavailable_reason())
