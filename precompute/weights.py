"""Where user-provided model weights live: the path rule alone, importable without any adapter or model library
(the orchestrator fingerprints these files to tell whether a stored embedding is stale). The lookup order and the
error text are in `precompute/adapters/_weights.py`; the rule is documented in docs/EXTRACTION.md."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_ENV = "MATTER_ALIGN_WEIGHTS"
DEFAULT_WEIGHTS_ROOT = REPO_ROOT / "work-cache" / "weights"


def weights_root() -> Path:
    """`$MATTER_ALIGN_WEIGHTS` (read at each call, so a changed environment is honoured), else the default root."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else DEFAULT_WEIGHTS_ROOT


def model_weights_dir(model_id: str) -> Path:
    """`<weights root>/<model_id>/`: the folder that holds one model's weights."""
    if not model_id or "/" in model_id or model_id in (".", ".."):
        raise ValueError(f"not a model id: {model_id!r}")
    return weights_root() / model_id


def local_paths(ref: str | None) -> list[Path]:
    """Where a card `checkpoint` that is a plain local path may be: as given, and relative to the repository root.
    URLs, hub ids with a scheme and `pkg://` references give [] (pkg:// is resolved by the adapters). Existence is
    not checked."""
    ref = str(ref or "")
    if not ref or "://" in ref:
        return []
    given = Path(ref).expanduser()
    out = [given]
    if not given.is_absolute() and REPO_ROOT / ref != given.resolve():
        out.append(REPO_ROOT / ref)
    return out
