"""Resumable, chunked computation of one (dataset, model) store entry: atomic part files, merged on finalize.

Split out of store.py (which re-exports `ChunkRun`); see store.py's docstring for the on-disk layout.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .store import (
    FORMAT,
    StoreError,
    StoreLockedError,
    atomic_write_json,
    atomic_write_npz,
    check_model_id,
    load_npz,
    sha256_array,
    sha256_ids,
    utcnow,
)

if TYPE_CHECKING:
    from .store import DatasetKey, EmbeddingStore


class ChunkRun:
    """A resumable, chunked computation of one (dataset, model) entry.

    Chunk ``i`` holds samples ``[i * chunk_size, (i + 1) * chunk_size)`` of ``sample_ids``. Each finished chunk is an
    atomic part file; ``run.json`` in the parts folder records what the parts were computed for (dataset key, the
    sample ids' sha256, chunk size and ``run_info`` such as the card hash and checkpoint). Parts from a run with any
    different field are discarded, never merged. :meth:`finalize` merges the parts into the entry and removes them.
    """

    def __init__(
        self,
        store: EmbeddingStore,
        key: DatasetKey,
        model_id: str,
        sample_ids: list[str],
        chunk_size: int,
        run_info: dict[str, Any],
    ):
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        if len(set(sample_ids)) != len(sample_ids):
            raise ValueError("sample ids are not unique")
        self.store, self.key, self.model_id = store, key, check_model_id(model_id)
        self.sample_ids, self.chunk_size = sample_ids, chunk_size
        self.dir = store.parts_dir(key, model_id)
        self.identity = {
            "format": FORMAT,
            "model_id": model_id,
            "dataset_key": key.identity(),
            "sample_ids_sha256": sha256_ids(sample_ids),
            "n_total": len(sample_ids),
            "chunk_size": chunk_size,
            "run_info": run_info,
        }
        self.discarded_reason: str | None = None
        self._lock_fd: int | None = None

    # lock + setup
    def __enter__(self) -> ChunkRun:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        self._prepare()
        return self

    def __exit__(self, *exc: object) -> None:
        self._unlock()

    def _lock(self) -> None:
        import fcntl

        lock_path = self.lock_path
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise StoreLockedError(
                f"another process is computing {self.model_id} on {self.key.slug} ({lock_path})"
            ) from e
        self._lock_fd = fd

    @property
    def lock_path(self) -> Path:
        return self.dir.parent / f"{self.model_id}.lock"

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _prepare(self) -> None:
        run_json = self.dir / "run.json"
        if run_json.exists():
            try:
                old = json.loads(run_json.read_text())
            except ValueError:
                old = None
            if old != json.loads(json.dumps(self.identity)):
                diff = sorted(
                    k for k in self.identity if (old or {}).get(k) != json.loads(json.dumps(self.identity[k]))
                )
                self.discarded_reason = f"parts were computed for a different {', '.join(diff) or 'run'}"
                for p in self.dir.iterdir():
                    if p.is_file():
                        p.unlink()
        for p in self.dir.glob(".*.tmp"):  # temp files of a killed writer
            p.unlink(missing_ok=True)
        if not run_json.exists():
            atomic_write_json(run_json, self.identity)

    # chunks
    @property
    def n_chunks(self) -> int:
        return -(-len(self.sample_ids) // self.chunk_size)

    def chunk_ids(self, i: int) -> list[str]:
        return self.sample_ids[i * self.chunk_size : (i + 1) * self.chunk_size]

    def part_path(self, i: int) -> Path:
        return self.dir / f"chunk-{i:06d}.npz"

    def read_part(self, i: int) -> dict[str, Any] | None:
        """A finished chunk (ids, embeddings, failures, seconds) or None if absent/unusable."""
        p = self.part_path(i)
        if not p.exists():
            return None
        try:
            a = load_npz(p)
            ids = [str(s) for s in a["ids"].tolist()]
            emb = a["embeddings"]
            failures = dict(zip(a["failure_ids"].tolist(), a["failure_reasons"].tolist(), strict=True))
            ok = sha256_array(emb) == str(a["sha256"]) and set(ids) | set(failures) == set(self.chunk_ids(i))
            energies = a.get("energies")
            if energies is not None:
                ok = ok and energies.shape == (len(ids),) and sha256_array(energies) == str(a["energies_sha256"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            ok = False
        if not ok:
            p.unlink(missing_ok=True)
            return None
        return {"ids": ids, "embeddings": emb, "failures": failures, "seconds": float(a["seconds"]),
                "energies": energies}  # fmt: skip

    def done_chunks(self, verify: bool = False) -> list[int]:
        """Chunks with a part file; with ``verify``, only parts that load and match (a damaged part is deleted)."""
        if verify:
            return [i for i in range(self.n_chunks) if self.read_part(i) is not None]
        return [i for i in range(self.n_chunks) if self.part_path(i).exists()]

    def pending_chunks(self, verify: bool = False) -> list[int]:
        """Chunks still to compute (see :meth:`done_chunks` for ``verify``)."""
        done = set(self.done_chunks(verify))
        return [i for i in range(self.n_chunks) if i not in done]

    def write_chunk(
        self,
        i: int,
        ids: Sequence[str],
        embeddings: np.ndarray,
        failures: dict[str, str],
        seconds: float,
        energies: np.ndarray | None = None,
    ) -> Path:
        """Atomically record chunk ``i``. Every id of the chunk must be either embedded or a failure; ``energies``
        (predicted total energy in eV, one per embedded id, finite) are stored alongside when given."""
        expected = self.chunk_ids(i)
        ids = [str(s) for s in ids]
        emb = np.asarray(embeddings, dtype=np.float32)
        if not ids and emb.size == 0:
            emb = emb.reshape(0, emb.shape[-1] if emb.ndim == 2 else 0)
        if emb.ndim != 2 or emb.shape[0] != len(ids):
            raise ValueError(f"chunk {i}: embeddings of shape {emb.shape} for {len(ids)} ids")
        covered = set(ids) | set(failures)
        if len(ids) != len(set(ids)) or set(ids) & set(failures) or covered != set(expected):
            raise ValueError(f"chunk {i}: embedded ids and failures must partition the chunk's {len(expected)} ids")
        order = {s: k for k, s in enumerate(expected)}
        perm = sorted(range(len(ids)), key=lambda k: order[ids[k]])
        ids = [ids[k] for k in perm]
        emb = np.ascontiguousarray(emb[perm])
        f_ids = sorted(failures, key=order.__getitem__)
        extra: dict[str, np.ndarray] = {}
        if energies is not None:
            e = np.asarray(energies, dtype=np.float64).reshape(-1)
            if e.shape != (len(ids),):
                raise ValueError(f"chunk {i}: {e.shape[0]} energies for {len(ids)} embedded ids")
            if not np.isfinite(e).all():
                bad = ids[perm.index(int(np.flatnonzero(~np.isfinite(e))[0]))]
                raise ValueError(f"chunk {i}: predicted energy of sample {bad} is not finite")
            e = np.ascontiguousarray(e[perm])
            extra = {"energies": e, "energies_sha256": np.array(sha256_array(e))}
        return atomic_write_npz(
            self.part_path(i),
            **extra,
            ids=np.array(ids, dtype=str),
            embeddings=emb,
            failure_ids=np.array(f_ids, dtype=str),
            failure_reasons=np.array([str(failures[s]) for s in f_ids], dtype=str),
            seconds=np.array(float(seconds)),
            sha256=np.array(sha256_array(emb)),
        )

    def finalize(self, meta: dict[str, Any] | None = None) -> Path:
        """Merge all chunks into ``<model_id>.npz`` + ``.json`` (atomically, .json last) and remove the parts.

        Raises StoreError if a chunk is missing or if no sample was embedded (nothing is written then).
        """
        parts = []
        for i in range(self.n_chunks):
            part = self.read_part(i)
            if part is None:
                raise StoreError(f"chunk {i} of {self.model_id} on {self.key.slug} is missing; cannot merge")
            parts.append(part)
        dims = {p["embeddings"].shape[1] for p in parts if p["embeddings"].shape[0]}
        failures: dict[str, str] = {}
        for p in parts:
            failures.update(p["failures"])
        if not dims:
            reasons = sorted(set(failures.values()))
            raise StoreError(
                f"{self.model_id} embedded none of the {len(self.sample_ids)} samples of {self.key.slug}; "
                f"reasons: {'; '.join(reasons[:3])}"
            )
        if len(dims) > 1:
            raise StoreError(f"{self.model_id}: chunks have different embedding sizes {sorted(dims)}")
        dim = dims.pop()
        with_energy = {p["energies"] is not None for p in parts if p["ids"]}
        if len(with_energy) > 1:
            raise StoreError(
                f"{self.model_id}: some chunks have predicted energies and some do not; rerun with --force"
            )
        energies = None
        if with_energy == {True}:
            energies = np.concatenate([p["energies"] for p in parts if p["ids"]]).astype(np.float64)
        ids = [s for p in parts for s in p["ids"]]
        emb = np.concatenate([p["embeddings"].reshape(-1, dim) for p in parts], axis=0).astype(np.float32, copy=False)
        emb = np.ascontiguousarray(emb)
        seconds = float(sum(p["seconds"] for p in parts))
        n_done = len(self.sample_ids)
        full = dict(meta or {})
        full.update(
            {
                "format": FORMAT,
                "model_id": self.model_id,
                "dataset_key": self.key.to_dict(),
                "sample_ids_sha256": self.identity["sample_ids_sha256"],
                "n_total": n_done,
                "n_ok": len(ids),
                "n_failed": len(failures),
                "dtype": str(emb.dtype),
                "shape": list(emb.shape),
                "embedding_dim": dim,
                "sha256": sha256_array(emb),
                "ids_sha256": sha256_ids(ids),
                "failures": failures,
                "energies": None if energies is None else {"unit": "eV", "sha256": sha256_array(energies)},
                "chunk_size": self.chunk_size,
                "created": utcnow(),
            }
        )
        timing = dict(full.get("timing") or {})
        timing.update(
            {
                "seconds": round(seconds, 6),
                "samples_per_s": round(n_done / seconds, 3) if seconds > 0 else None,
                "chunks": self.n_chunks,
            }
        )
        full["timing"] = timing
        for k, v in self.identity["run_info"].items():
            full.setdefault(k, v)
        npz = self.store.npz_path(self.key, self.model_id)
        extra = {} if energies is None else {"energies": energies}
        atomic_write_npz(npz, ids=np.array(ids, dtype=str), embeddings=emb, **extra)
        atomic_write_json(self.store.meta_path(self.key, self.model_id), full)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.lock_path.unlink(missing_ok=True)  # still held by us until __exit__; nobody waits on it (LOCK_NB)
        with contextlib.suppress(OSError):
            self.dir.parent.rmdir()  # .parts, when empty
        return npz
