"""The interface every family adapter implements.

An adapter is imported only inside its family's environment (by the extraction worker), never by the
orchestrator, the backend or the app. It turns samples into one embedding row per sample: the last hidden
layer, mean-pooled over atoms, tokens or residues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from precompute.datasets.base import Sample


@dataclass
class EmbedResult:
    """ids[i] <-> embeddings[i] (<-> energies[i]); samples the model cannot embed are listed in `failures` with the
    reason. `energies` is the model's own predicted total energy in eV for each embedded sample, from the same
    forward pass, for models with an energy head (None otherwise): the analysis turns it into an energy MAE against
    the dataset's labels, the x-axis of the seed paper's alignment-against-accuracy plot."""

    ids: list[str]
    embeddings: np.ndarray  # (n_ok, D) float32
    failures: dict[str, str] = field(default_factory=dict)  # sample_id -> reason
    energies: np.ndarray | None = None  # (n_ok,) float64, eV, total energy of the structure; None: no energy head


class Adapter(Protocol):
    """Built from a model card (a dict validated by the registry schema)."""

    card: dict[str, Any]

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult: ...


class CannotEmbed(Exception):
    """Raised by an adapter for one sample it cannot embed (e.g. ANI outside H, C, N, O); recorded, not fatal."""
