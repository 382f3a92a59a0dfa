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
    """ids[i] <-> embeddings[i]; samples the model cannot embed are listed in `failures` with the reason."""

    ids: list[str]
    embeddings: np.ndarray  # (n_ok, D) float32
    failures: dict[str, str] = field(default_factory=dict)  # sample_id -> reason


class Adapter(Protocol):
    """Built from a model card (a dict validated by the registry schema)."""

    card: dict[str, Any]

    def embed(self, samples: list[Sample], batch_size: int = 32) -> EmbedResult: ...


class CannotEmbed(Exception):
    """Raised by an adapter for one sample it cannot embed (e.g. ANI outside H, C, N, O); recorded, not fatal."""
