"""Write a versioned, checksummed release: `<releases_root>/<release-id>/*.parquet + manifest.json`.

A release is written into a temporary folder inside `releases_root` and renamed into place, so a reader never sees
a half-written release; an existing release id is never overwritten. `releases_root/latest` is a small text file
holding the id of the newest release (not a symlink: git and Windows mangle those), replaced atomically.

Release id: `YYYY.MM.DD-<hash8>`: the UTC date of writing and the first 8 hex digits of a SHA-256 over the
tables' Parquet checksums and the manifest's inputs and settings. The same results written on the same day get the
same id (and the second write is refused); any change of a number, an input or a setting gives a new id.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from .schema import FORMAT_VERSION, TABLES, metric_definitions_table
from .validation import validate_release_tables

RELEASE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RESERVED_MANIFEST_KEYS = ("release_id", "format_version", "created", "files", "tables")
LATEST = "latest"


class ReleaseExistsError(FileExistsError):
    """The release id is already taken in releases_root."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def code_version() -> str:
    """The checkout's code version (`precompute.version.code_version`: git commit, `+dirty` if modified)."""
    from precompute.version import code_version as _code_version

    return _code_version()


def _check_manifest_extra(extra: dict) -> dict:
    if not isinstance(extra, dict):
        raise ValueError(f"manifest_extra must be a dict, got {type(extra).__name__}")
    reserved = [k for k in RESERVED_MANIFEST_KEYS if k in extra]
    if reserved:
        raise ValueError(f"manifest_extra may not set {reserved}: the writer fills these in")
    if not isinstance(extra.get("settings"), dict):
        raise ValueError("manifest_extra['settings'] is required: a dict (k list, preprocessing, seeds, ...)")
    inputs = extra.get("inputs")
    if not isinstance(inputs, list):
        raise ValueError("manifest_extra['inputs'] is required: a list of {name, sha256 and/or recipe, ...}")
    for i, item in enumerate(inputs):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"manifest_extra['inputs'][{i}] must be a dict with a 'name'")
        if not (item.get("sha256") or item.get("recipe")):
            raise ValueError(f"manifest_extra['inputs'][{i}] ({item['name']!r}) needs a 'sha256' or a 'recipe'")
    try:
        json.dumps(extra, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"manifest_extra must be JSON-serialisable without NaN: {e}") from e
    return extra


def make_release_id(file_hashes: dict[str, str], manifest_extra: dict, when: _dt.datetime) -> str:
    """`YYYY.MM.DD-<hash8>` from the UTC date and a SHA-256 over file checksums, inputs and settings."""
    payload = json.dumps(
        {
            "files": file_hashes,
            "inputs": manifest_extra.get("inputs"),
            "settings": manifest_extra.get("settings"),
        },
        sort_keys=True,
    )
    return f"{when:%Y.%m.%d}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_latest(releases_root: Path, release_id: str) -> Path:
    """Atomically replace `releases_root/latest` with a text file holding `release_id`."""
    releases_root = Path(releases_root)
    if not (releases_root / release_id / "manifest.json").is_file():
        raise FileNotFoundError(
            f"cannot point 'latest' at {release_id!r}: {releases_root / release_id} has no manifest"
        )
    tmp = releases_root / f".latest.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(release_id + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, releases_root / LATEST)
    _fsync_dir(releases_root)
    return releases_root / LATEST


def write_release(
    tables: dict[str, pd.DataFrame],
    manifest_extra: dict,
    releases_root: Path,
    release_id: str | None = None,
    *,
    update_latest: bool = True,
) -> Path:
    """Validate `tables`, write them as Parquet with a manifest, and return the new release folder.

    tables: name -> DataFrame for at least models, datasets, pairwise, intrinsic_dim, energy, trees (schemas in
        `precompute.release.schema.TABLES`); optional pairwise_null, samples, metric_definitions (the latter is
        filled from `schema.METRICS` when absent).
    manifest_extra: {"inputs": [{name, sha256 and/or recipe, ...}], "settings": {...}, ...}; may add keys such as
        "code_version" (else `precompute.version.code_version()`), "notes"; may not set release_id, format_version, created, files, tables.
    releases_root: the folder holding releases (data/releases for the shipped one).
    release_id: None for `YYYY.MM.DD-<hash8>` (see module docstring), or an explicit id (letters, digits, . _ -).
    update_latest: replace `releases_root/latest` with the new id (atomically).

    Raises SchemaError (a ValueError naming table, column and row) on invalid tables, ValueError on a bad manifest
    or id, ReleaseExistsError if the id is taken. Nothing is left behind on failure.
    """
    extra = _check_manifest_extra(manifest_extra)
    tables = dict(tables)
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; known: {sorted(TABLES)}")
    tables.setdefault("metric_definitions", metric_definitions_table())
    arrow = validate_release_tables(tables)

    if release_id is not None and (not RELEASE_ID_RE.match(release_id) or release_id == LATEST):
        raise ValueError(f"invalid release id {release_id!r}: letters, digits, '.', '_', '-' only, not 'latest'")
    releases_root = Path(releases_root)
    releases_root.mkdir(parents=True, exist_ok=True)
    if release_id is not None and (releases_root / release_id).exists():
        raise ReleaseExistsError(f"release {release_id!r} already exists in {releases_root}; never overwritten")

    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
    tmp = releases_root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        files: dict[str, dict] = {}
        for name in sorted(arrow):
            fname = f"{name}.parquet"
            path = tmp / fname
            pq.write_table(arrow[name], path, compression="zstd")
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
            files[fname] = {
                "table": name,
                "sha256": _sha256_file(path),
                "rows": arrow[name].num_rows,
                "bytes": path.stat().st_size,
                "columns": arrow[name].schema.names,
            }
        rid = release_id or make_release_id({k: v["sha256"] for k, v in files.items()}, extra, now)
        manifest = {
            "release_id": rid,
            "format_version": FORMAT_VERSION,
            "created": now.isoformat().replace("+00:00", "Z"),
            "code_version": extra.get("code_version") or code_version(),
            **{k: v for k, v in extra.items() if k != "code_version"},
            "tables": sorted(arrow),
            "files": files,
        }
        with open(tmp / "manifest.json", "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        final = releases_root / rid
        if final.exists():
            raise ReleaseExistsError(f"release {rid!r} already exists in {releases_root}; never overwritten")
        try:
            os.rename(tmp, final)  # fails on a non-empty existing folder: never overwrites a release
        except OSError as e:
            raise ReleaseExistsError(f"release {rid!r} could not be moved into place: {e}") from e
        _fsync_dir(releases_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if update_latest:
        write_latest(releases_root, rid)
    return final
