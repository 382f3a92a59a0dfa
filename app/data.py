"""Where the app gets its data: the release (cached as a resource) and every query (cached as data).

All numbers come from `backend.queries`; this module only resolves which release to open and caches calls on
`release.cache_key` + the call's arguments. No torch, no model library, no SQL here.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import threading
import zipfile
from pathlib import Path

import streamlit as st

import backend
from backend import Release, ReleaseError, queries

SOURCE_LABELS = {
    "pretrained": "pretrained weights",
    "random_init": "random initialisation of the real architecture (NOT the pretrained model)",
    "trained_here": "trained here by us",
    "descriptor": "fixed descriptor (no training)",
    "user": "a user's uploaded embedding (a release derived by `matter-align score --derive`)",
}
SOURCE_TAGS = {"random_init": " [random init]", "trained_here": " [trained here]", "user": " [user upload]"}
# a card's display name may already end in "(random init)" / "(trained here)": the tag replaces it, never doubles it
_SOURCE_SUFFIX = re.compile(r"\s*\((random[ _-]?init|trained here)\)\s*$", re.IGNORECASE)


class NoRelease(Exception):
    """No release could be opened; the message says why and what to do."""


def release_option(argv: list[str] | None = None) -> str | None:
    """`streamlit run app/main.py -- --release <folder>`: a release folder or a releases root holding `latest`."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--release", default=None)
    args, _ = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    return args.release


def releases_root() -> Path:
    opt = release_option()
    if opt and not (Path(opt) / "manifest.json").is_file():
        return Path(opt)
    return backend.releases_root()


def available_releases() -> list[str]:
    """Release ids under the releases root (for the release picker and the `release` URL parameter)."""
    return backend.list_releases(releases_root())


def scoring_releases() -> list[str]:
    """Releases under the releases root that carry the full scoring data (CKNNA's similarities, the Euclidean
    lists, the samples): the score page points to them when the chosen release lacks it."""
    return backend.releases_with_tables({"neighbour_similarity", "neighbours_euclidean", "samples"}, releases_root())


def default_release_path() -> Path:
    opt = release_option()
    if opt and (Path(opt) / "manifest.json").is_file():
        return Path(opt)
    root = releases_root()
    try:
        return backend.resolve_latest(root)
    except ReleaseError as e:
        found = backend.list_releases(root)
        if found:  # no `latest` pointer, but releases exist: the newest by id
            return root / found[-1]
        raise NoRelease(
            f"No release found under `{root}` ({e}).\n\n"
            "A release is produced by the offline pipeline (`precompute.release.write_release`) into "
            "`data/releases/<release-id>/` with a `latest` file naming it. To browse another release, start the app "
            "with `MATTER_ALIGN_RELEASES=<releases folder>` or `streamlit run app/main.py -- --release <folder>`."
        ) from None


@st.cache_resource(show_spinner="Opening and verifying the release…")
def _open(path: str) -> Release:
    return Release.open(path)


@st.cache_resource(show_spinner=False)
def _warm_scoring(_release: Release, key: tuple) -> dict:
    """Read the release's scoring lists once per release in a background thread, so the first upload on the
    "Score your model" page scores warm (~1 s of list reading on QM9-size data) and no page waits for it."""
    state: dict = {"done": [], "error": None}

    def run() -> None:
        try:
            from backend import scoring  # imported here: the page that started the thread does not wait for it

            state["done"] = scoring.warm(_release)
        except Exception as e:  # noqa: BLE001 - the score page reads the lists again and shows the error itself
            state["error"] = f"{type(e).__name__}: {e}"

    state["thread"] = threading.Thread(target=run, name=f"warm-scoring-{key[1]}", daemon=True)
    state["thread"].start()
    return state


def warm_scoring(release: Release) -> dict:
    """Start (once per release and server process) the background read of the scoring lists; returns its state."""
    return _warm_scoring(release, release.cache_key)


def open_release(release_id: str | None = None) -> Release:
    """The default release, or `release_id` under the releases root. Raises NoRelease with a readable reason."""
    path = releases_root() / release_id if release_id else default_release_path()
    try:
        return _open(str(Path(path).resolve()))
    except ReleaseError as e:
        raise NoRelease(f"The release at `{path}` cannot be opened: {e}") from None


def _freeze(v):
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    return v


@st.cache_data(show_spinner=False, max_entries=1000)
def _run(_release: Release, cache_key: tuple, name: str, args: tuple, kwargs: tuple):
    fn = getattr(queries, name)
    thaw = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    return fn(_release, *[thaw(a) for a in args], **{k: thaw(v) for k, v in kwargs})


def q(release: Release, name: str, *args, **kwargs):
    """`backend.queries.<name>(release, *args, **kwargs)`, cached on release.cache_key and the arguments."""
    return _run(
        release,
        release.cache_key,
        name,
        tuple(_freeze(a) for a in args),
        tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())),
    )


def labels(release: Release) -> dict[str, str]:
    """model_id -> label shown in figures: display name, tagged when the weights are not the published ones."""
    m = q(release, "list_models")
    out = {}
    for mid, name, src in zip(m["model_id"], m["display_name"], m["source"], strict=True):
        tag = SOURCE_TAGS.get(src, "")
        out[mid] = f"{_SOURCE_SUFFIX.sub('', name) if tag else name}{tag}"
    # display names may repeat: disambiguate with the id so categorical axes never merge two models
    seen: dict[str, int] = {}
    for v in out.values():
        seen[v] = seen.get(v, 0) + 1
    return {mid: (v if seen[v] == 1 else f"{v} ({mid})") for mid, v in out.items()}


def short_labels(release: Release) -> dict[str, str]:
    """model_id -> the id itself, tagged like `labels` when the weights are not the published ones (unless the id
    already says "random-init"): compact text for crowded scatter plots."""
    m = q(release, "list_models")
    out = {}
    for mid, src in zip(m["model_id"], m["source"], strict=True):
        tag = SOURCE_TAGS.get(src, "")
        out[mid] = mid if not tag or (src == "random_init" and "random-init" in mid) else f"{mid}{tag}"
    return out


def family_colours(release: Release) -> dict[str, str]:
    """family -> colour, from the release's whole (sorted) family list: the same colour on every page and view."""
    from .figures import family_colours as fc

    return fc(q(release, "filter_options")["family"])


@st.cache_data(show_spinner="Packing the release…", max_entries=2)
def _zip(path: str, cache_key: tuple) -> bytes:
    buf = io.BytesIO()
    root = Path(path)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:  # Parquet is compressed already
        for p in sorted(root.rglob("*")):
            if p.is_file():
                z.write(p, Path(root.name) / p.relative_to(root))
    return buf.getvalue()


def release_zip(release: Release):
    """A callable for st.download_button: the release folder as one zip (built on click, then cached)."""
    return lambda: _zip(str(release.path), release.cache_key)
