"""Model cards for extraction: from the registry by model id, or from a card file (a user's own adapter, tests)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CARD_SUFFIXES = (".yaml", ".yml", ".json")


def is_card_file(spec: str) -> bool:
    """True when a ``--models`` entry names a card file rather than a registry model id."""
    return spec.endswith(CARD_SUFFIXES) and Path(spec).is_file()


def load_card_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A model card from a YAML or JSON file. Needs at least ``model_id``, ``adapter`` and ``environment``."""
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        card = json.loads(text)
    else:
        import yaml

        card = yaml.safe_load(text)
    if not isinstance(card, dict) or not {"model_id", "adapter"} <= set(card):
        raise ValueError(f"{path}: a model card needs at least 'model_id' and 'adapter'")
    return card


def load_card(model_id: str | None = None, card_path: str | None = None) -> dict[str, Any]:
    """``precompute.registry.load_card(model_id)``, or the card in ``card_path``."""
    if card_path:
        return load_card_file(card_path)
    from precompute.registry import load_card as registry_load_card

    return registry_load_card(model_id)


def card_hash(card: dict[str, Any]) -> str:
    """``precompute.registry.card_hash``; sha256 of the canonical JSON while the registry has none."""
    try:
        from precompute.registry import card_hash as registry_card_hash
    except ImportError:
        registry_card_hash = None
    if registry_card_hash is not None:
        return registry_card_hash(card)
    return hashlib.sha256(json.dumps(card, sort_keys=True, default=str).encode()).hexdigest()
