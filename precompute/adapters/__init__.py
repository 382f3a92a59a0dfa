"""Family adapters: model card -> embeddings. See `precompute/adapters/base.py` for the interface.

Importing this package imports no model library: `build_adapter` imports the card's adapter module lazily, so the
orchestrator (and the backend, and the app) can resolve names without torch, and each family's module is imported
only inside the environment that has its library.
"""

from __future__ import annotations

import importlib
from typing import Any

from precompute.adapters.base import Adapter, CannotEmbed, EmbedResult

__all__ = ["Adapter", "CannotEmbed", "EmbedResult", "build_adapter", "resolve_adapter_class", "resolve_device"]

_PACKAGE = "precompute.adapters"


def resolve_adapter_class(spec: str) -> type:
    """Import "module:Class" (module relative to precompute.adapters, e.g. "chgnet:CHGNetAdapter"; a fully
    qualified "precompute.adapters.chgnet:CHGNetAdapter" is accepted too) and return the class."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"adapter must be 'module:Class', got {spec!r}")
    module_name, class_name = (part.strip() for part in spec.split(":"))
    if not module_name or not class_name:
        raise ValueError(f"adapter must be 'module:Class', got {spec!r}")
    if not module_name.startswith(_PACKAGE + "."):
        module_name = f"{_PACKAGE}.{module_name}"
    module = importlib.import_module(module_name)
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ValueError(f"adapter {spec!r}: module {module_name} has no class {class_name}") from None


def resolve_device(device: str | None = "auto") -> str:
    """'auto' or None -> 'cuda' if torch sees a GPU else 'cpu'; other values pass through. Imports torch only for
    'auto'."""
    from precompute.adapters._structure import resolve_device as _resolve

    return _resolve(device)


def build_adapter(card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None) -> Adapter:
    """Instantiate the adapter named by `card["adapter"]` with the card, a device ("cpu", "cuda", "auto") and an
    optional checkpoint path that overrides the card's default weights."""
    if "adapter" not in card:
        raise ValueError(f"model card {card.get('model_id', '?')!r} has no 'adapter' field")
    cls = resolve_adapter_class(card["adapter"])
    return cls(card, device=resolve_device(device), checkpoint=checkpoint)
