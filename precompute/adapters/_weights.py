"""Where a user puts model weights that cannot ship with the project: one rule for every adapter.

The rule. Weights for the card `<model_id>` go in the folder

    <weights root>/<model_id>/

with weights root `$MATTER_ALIGN_WEIGHTS`, default `<repository>/work-cache/weights` (git-ignored with the rest of
work-cache). A single-file checkpoint (MACE `.model`, Orb `.ckpt`, fairchem `.pt`) is kept under the file name of the
card's URL (e.g. `work-cache/weights/orb-v2/orb-v2-20241011.ckpt`); any other name works when it is the only
checkpoint file in the folder. A Hugging Face model (ESM-2, ChemBERTa, an LLM) is the folder itself, holding the hub
repository's files (config.json, weights, tokenizer).

Lookup order, the same in every adapter (first match wins):

1. `--checkpoint PATH` (always wins; an absent PATH is an error, never a silent fall-through);
2. `<weights root>/<model_id>/`;
3. the model family's own download cache (mace's ~/.cache/mace, orb's cached_path cache, fairchem's or the Hugging
   Face cache), read without network access;
4. the card's `checkpoint` when it is a local path (as given, else relative to the repository) or `pkg://`;
5. an error (`MissingCheckpoint`) naming `<weights root>/<model_id>/<file>`, the URL or hub id to download and
   `--checkpoint`.

This module holds only the paths, the lookup in step 2 and the shared error text; each adapter does the steps that
need its own library. It imports no model library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from precompute.weights import (
    DEFAULT_WEIGHTS_ROOT,
    REPO_ROOT,
    WEIGHTS_ENV,
    local_paths,
    model_weights_dir,
    weights_root,
)

__all__ = ["DEFAULT_WEIGHTS_ROOT", "REPO_ROOT", "WEIGHTS_ENV", "model_weights_dir", "weights_root"]
# Suffixes that make a file count as a checkpoint when the folder holds no file named like the card's URL.
CHECKPOINT_SUFFIXES = (".model", ".ckpt", ".pt", ".pth")
_HF_URL = re.compile(r"^https?://huggingface\.co/([^/]+/[^/]+)/resolve/([^/]+)/(.+?)(?:\?.*)?$")


class MissingCheckpoint(FileNotFoundError):
    """The weights of a pretrained card are not on this machine; the message says what to put where."""


class AmbiguousWeights(ValueError):
    """`<weights root>/<model_id>/` holds several checkpoint files and none has the expected name."""


def url_file_name(ref: str) -> str:
    """The last path component of a URL or path, without a query string ('' for an empty reference)."""
    return str(ref or "").split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def hf_url_parts(url: str) -> tuple[str, str, str] | None:
    """(repo_id, revision, file path) of a `https://huggingface.co/<org>/<name>/resolve/<rev>/<path>` URL, else None."""
    m = _HF_URL.match(str(url or ""))
    return (m.group(1), m.group(2), m.group(3)) if m else None


def find_weights_file(model_id: str, expected_name: str, suffixes: Iterable[str] = CHECKPOINT_SUFFIXES) -> Path | None:
    """Step 2 for single-file checkpoints: `<root>/<model_id>/<expected_name>` if it is a file, else the one file with
    a checkpoint suffix in that folder; None when there is none. Several candidates and none named `expected_name`
    raise AmbiguousWeights (picking one silently could load the wrong model)."""
    folder = model_weights_dir(model_id)
    if expected_name and (folder / expected_name).is_file():
        return folder / expected_name
    if not folder.is_dir():
        return None
    wanted = tuple(s.lower() for s in suffixes)
    found = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in wanted
    )
    if len(found) > 1:
        raise AmbiguousWeights(
            f"{model_id}: {folder} holds several checkpoint files ({', '.join(p.name for p in found)}) and none is "
            f"named {expected_name!r}: rename the one to use to {expected_name}, or pass --checkpoint PATH"
        )
    return found[0] if found else None


def find_hf_folder(model_id: str) -> Path | None:
    """Step 2 for Hugging Face models: `<root>/<model_id>/` when it holds config.json, else None."""
    folder = model_weights_dir(model_id)
    return folder if (folder / "config.json").is_file() else None


def card_local_paths(ref: str) -> list[Path]:
    """Step 4: where a card `checkpoint` that is a local path may be: `pkg://<package>/<path>` resolved against the
    installed package; a plain path as given and relative to the repository root. URLs (and an uninstalled pkg://
    package) give []. Existence is not checked."""
    ref = str(ref or "")
    if not ref:
        return []
    if ref.startswith("pkg://"):
        from precompute.adapters._structure import local_checkpoint

        try:
            return [Path(str(local_checkpoint(ref)))]
        except FileNotFoundError:
            return []
    return local_paths(ref)


def missing_message(
    family: str,
    model_id: str,
    expected: Path,
    download: str,
    *,
    checkpoint: str | None = None,
    folder: bool = False,
    looked: Iterable[str] = (),
    hint: str = "",
) -> str:
    """The one missing-checkpoint message: what was not found, the exact place `expected` to put the file (or the
    folder's files), what to download (`download`: URL or hub id), `--checkpoint`, and where else it looked."""
    head = f"{family} {model_id}".strip() + ": "
    if checkpoint:
        head += f"--checkpoint {checkpoint} does not exist{' or is not a model folder' if folder else ''}. "
    else:
        head += "no local weights. "
    if folder:
        put = f"put the files of the hub repository {download} in the folder {expected}/"
    else:
        put = f"download {download} and put it at {expected}"
    where = f"weights root ${WEIGHTS_ENV}, default {DEFAULT_WEIGHTS_ROOT}"
    msg = (
        f"{head}Nothing is downloaded here. On a machine with internet, {put} ({where}), or pass --checkpoint PATH "
        f"(with several models: --checkpoint {model_id}=PATH)."
    )
    places = [p for p in looked if p]
    if places:
        msg += f" Also looked in: {'; '.join(places)}."
    if hint:
        msg += f" {hint}"
    return msg
