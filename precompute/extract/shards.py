"""Sharded extraction on a Dask cluster: one task per (model, shard), then one merge per model into the store.

A shard is a contiguous range of the store's chunks (chunk i = samples [i * chunk_size, (i + 1) * chunk_size) of the
dataset as loaded), so shard s of S holds chunks [floor(s * C / S), floor((s + 1) * C / S)) of the C chunks. Each
shard runs in the model family's environment, as the local worker does (``python -m precompute.extract.shards``, the
worker's own embed_chunk / build_adapter), and writes one file atomically::

    <store>/<dataset slug>/.shards/<model_id>/shard-0003-of-0008.npz

holding, per chunk, the embedded ids, embeddings, failures, seconds and predicted energies, and the identity of the
run (dataset key, sample ids' sha256, chunk size, card hash, checkpoint, dataset content sha256). A shard file whose
identity matches is skipped on rerun; a killed shard leaves at most a hidden temp file, removed before its rerun.
The merge replays every chunk through the store's own ChunkRun.write_chunk and finalize, so the entry is the one a
local run writes: same chunking, same arrays, same sha256 (tests/test_cluster.py checks it); the shards are then
removed. Nothing here imports dask at module level (the shard runner runs in family environments without it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from precompute.extract.store import (
    FORMAT,
    DatasetKey,
    EmbeddingStore,
    atomic_write_npz,
    load_npz,
    sha256_array,
    sha256_ids,
)


def shard_chunks(n_chunks: int, shard: int, shards: int) -> range:
    """The chunks of shard `shard` of `shards`: contiguous, covering 0..n_chunks-1 once."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    return range(shard * n_chunks // shards, (shard + 1) * n_chunks // shards)


def shards_dir(store: EmbeddingStore, key: DatasetKey, model_id: str) -> Path:
    return store.folder(key) / ".shards" / model_id


def shard_path(store: EmbeddingStore, key: DatasetKey, model_id: str, shard: int, shards: int) -> Path:
    return shards_dir(store, key, model_id) / f"shard-{shard:04d}-of-{shards:04d}.npz"


def run_identity(
    key: DatasetKey, model_id: str, sample_ids: list[str], chunk_size: int, run_info: dict, shards: int
) -> dict[str, Any]:
    """What a shard was computed for; the merge refuses shards of different identities."""
    return json.loads(json.dumps({"format": FORMAT, "model_id": model_id, "dataset_key": key.identity(),
                                  "sample_ids_sha256": sha256_ids(sample_ids), "n_total": len(sample_ids),
                                  "chunk_size": chunk_size, "run_info": run_info, "shards": shards}))  # fmt: skip


# --------------------------------------------------------------------------------------------------- shard files
def write_shard(path: Path, identity: dict, shard: int, chunks: list[dict], info: dict) -> Path:
    """One atomic file for the shard's chunks (each: index, requested ids, ids, embeddings, failures, seconds,
    energies or None)."""
    dims = {c["embeddings"].shape[1] for c in chunks if c["embeddings"].shape[0]}
    if len(dims) > 1:
        raise RuntimeError(f"shard {shard}: chunks have different embedding sizes {sorted(dims)}")
    dim = dims.pop() if dims else 0
    emb = [c["embeddings"].reshape(-1, dim) for c in chunks if c["embeddings"].shape[0]]
    emb_all = np.ascontiguousarray(np.concatenate(emb) if emb else np.zeros((0, dim), np.float32), dtype=np.float32)
    en = [c["energies"] for c in chunks if c["energies"] is not None]
    f_ids = [s for c in chunks for s in c["failures"]]
    arrays = {
        "identity": np.array(json.dumps(identity, sort_keys=True)),
        "shard": np.array(shard),
        "chunk_index": np.array([c["index"] for c in chunks], dtype=np.int64),
        "requested": np.array([s for c in chunks for s in c["requested"]], dtype=str),
        "n_requested": np.array([len(c["requested"]) for c in chunks], dtype=np.int64),
        "ids": np.array([s for c in chunks for s in c["ids"]], dtype=str),
        "n_ok": np.array([len(c["ids"]) for c in chunks], dtype=np.int64),
        "embeddings": emb_all,
        "sha256": np.array(sha256_array(emb_all)),
        "failure_ids": np.array(f_ids, dtype=str),
        "failure_reasons": np.array([c["failures"][s] for c in chunks for s in c["failures"]], dtype=str),
        "n_failed": np.array([len(c["failures"]) for c in chunks], dtype=np.int64),
        "seconds": np.array([c["seconds"] for c in chunks], dtype=np.float64),
        "has_energies": np.array([c["energies"] is not None for c in chunks], dtype=bool),
        "energies": np.concatenate(en).astype(np.float64) if en else np.zeros(0, np.float64),
        "info": np.array(json.dumps(info, sort_keys=True)),
    }
    return atomic_write_npz(path, **arrays)


def read_shard(path: Path, identity: dict | None = None) -> dict[str, Any] | None:
    """A shard file's chunks and identity, or None when absent, damaged or (given `identity`) of another run."""
    try:
        a = load_npz(path)
        ident = json.loads(str(a["identity"]))
        if identity is not None and ident != identity:
            return None
        if sha256_array(a["embeddings"]) != str(a["sha256"]):
            return None
        cut = lambda counts: np.concatenate([[0], np.cumsum(counts)]).astype(int)  # noqa: E731
        r, o, f = cut(a["n_requested"]), cut(a["n_ok"]), cut(a["n_failed"])
        e = cut(np.where(a["has_energies"], a["n_ok"], 0))
        chunks = []
        for j, i in enumerate(a["chunk_index"].tolist()):
            chunks.append({"index": int(i), "requested": a["requested"][r[j] : r[j + 1]].tolist(),
                           "ids": a["ids"][o[j] : o[j + 1]].tolist(), "embeddings": a["embeddings"][o[j] : o[j + 1]],
                           "failures": dict(zip(a["failure_ids"][f[j] : f[j + 1]].tolist(),
                                                a["failure_reasons"][f[j] : f[j + 1]].tolist(), strict=True)),
                           "seconds": float(a["seconds"][j]),
                           "energies": a["energies"][e[j] : e[j + 1]] if a["has_energies"][j] else None})  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - unreadable or damaged (BadZipFile, KeyError, ...): recompute it
        if not isinstance(exc, FileNotFoundError):
            Path(path).unlink(missing_ok=True)
        return None
    return {"identity": ident, "chunks": chunks, "info": json.loads(str(a["info"]))}


# --------------------------------------------------------------------------------------------------- in the family env
def compute_shard(args: argparse.Namespace, report: Callable[..., None]) -> int:
    """Embed the chunks of one shard (the worker's chunk loop, without the store's ChunkRun)."""
    from precompute.datasets import load_dataset
    from precompute.extract.cards import card_hash, load_card
    from precompute.extract.store import checkpoint_fingerprint, sha256_samples
    from precompute.extract.worker import _code_version, build_adapter, dataset_key, embed_chunk, resolve_device

    t_start = time.perf_counter()
    card = load_card(args.model, args.card)
    model_id = card["model_id"]
    key = dataset_key(args)
    store = EmbeddingStore(args.store)
    t0 = time.perf_counter()
    samples = load_dataset(args.dataset, n=key.n, seed=key.seed, path=key.path, **key.options_dict)
    dataset_seconds = time.perf_counter() - t0
    if not samples:
        raise ValueError(f"dataset {args.dataset!r} (n={key.n}, seed={key.seed}) yielded no samples")
    ids = [s.sample_id for s in samples]
    run_info = {"dataset_sha256": sha256_samples(samples), "card_hash": card_hash(card),  # as in worker.run
                "checkpoint_override": args.checkpoint,
                "checkpoint_fingerprint": checkpoint_fingerprint(model_id, card.get("checkpoint"), args.checkpoint),
                "checkpoint": args.checkpoint or card.get("checkpoint")}  # fmt: skip
    identity = run_identity(key, model_id, ids, args.chunk_size, run_info, args.shards)
    n_chunks = -(-len(ids) // args.chunk_size)
    todo = shard_chunks(n_chunks, args.shard, args.shards)
    n_shard = sum(len(ids[i * args.chunk_size : (i + 1) * args.chunk_size]) for i in todo)
    path = shard_path(store, key, model_id, args.shard, args.shards)
    common = {"model_id": model_id, "shard": args.shard, "n_total": len(ids), "n_shard": n_shard}
    if read_shard(path, identity) is not None:
        report("done", **common, path=str(path), skipped=True)
        return 0
    device, device_name, model_seconds, adapter = args.device, None, 0.0, None
    if len(todo):
        device, device_name = resolve_device(args.device)
        t0 = time.perf_counter()
        adapter = build_adapter(card, device, args.checkpoint)
        model_seconds = time.perf_counter() - t0
    by_id = {s.sample_id: s for s in samples}
    chunks = []
    for i in todo:
        requested = ids[i * args.chunk_size : (i + 1) * args.chunk_size]
        t0 = time.perf_counter()
        got, emb, failures, energies = embed_chunk(adapter, [by_id[s] for s in requested], args.batch_size)
        chunks.append({"index": i, "requested": requested, "ids": got, "embeddings": emb, "failures": failures,
                       "seconds": time.perf_counter() - t0, "energies": energies})  # fmt: skip
        report("chunk", **common, chunk=i)
    info = {"code_version": _code_version(), "device": device, "device_name": device_name, "python": sys.executable,
            "dataset_load_seconds": round(dataset_seconds, 4), "model_load_seconds": round(model_seconds, 4),
            "wall_seconds": round(time.perf_counter() - t_start, 4)}  # fmt: skip
    write_shard(path, identity, args.shard, chunks, info)
    report("done", **common, path=str(path), skipped=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    from precompute.extract.worker import Reporter, _protocol_stream, build_parser

    report = Reporter(_protocol_stream())
    p = build_parser()
    p.prog = "python -m precompute.extract.shards"
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--shards", type=int, required=True)
    args = p.parse_args(argv)
    try:
        return compute_shard(args, report)
    except Exception as e:  # noqa: BLE001 - reported to the task, full traceback on stderr
        import traceback

        traceback.print_exc()
        report("error", type=type(e).__name__, message=str(e) or type(e).__name__)
        return 1


# --------------------------------------------------------------------------------------------------- on a Dask worker
def _die_with_parent() -> Callable[[], None] | None:
    """For the shard subprocess: SIGKILL it when the Dask worker that started it dies (no orphan keeps computing).
    Linux prctl(PR_SET_PDEATHSIG); resolved here, in the parent, so the forked child runs no import."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the shard may outlive a killed worker, its write is still atomic
        return None
    return lambda: prctl(1, signal.SIGKILL)


def run_shard_task(environment: str, argv: list[str], shard_file: str, log_file: str) -> dict[str, Any]:
    """Run one shard in its family environment (python resolved on this worker: MATTER_ALIGN_PY_<ENV> or the
    repository's venv). A model error is returned (no retry: it would fail again); a killed or crashed process
    raises, so that Dask runs the shard again."""
    from precompute.cli_extract import REPO_ROOT, env_python

    python = env_python(environment)
    if not python.exists():
        return {"error": f"environment {environment!r} is missing on this worker ({python} not found)"}
    shard = Path(shard_file)
    for tmp in shard.parent.glob(f".{shard.name}.*.tmp"):  # left by a killed attempt of this shard
        tmp.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [str(python), "-m", "precompute.extract.shards", *argv]
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    last: dict[str, Any] = {}
    with open(log_file, "a") as log:
        log.write(f"\n=== {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, text=True,
                                preexec_fn=_die_with_parent())  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                ev = json.loads(line)
                if isinstance(ev, dict) and ev.get("event") in ("done", "error"):
                    last = ev
        rc = proc.wait()
    if rc == 0 and last.get("event") == "done":
        return last
    if last.get("event") == "error":
        return {"error": f"{last.get('type')}: {last.get('message')} (log: {log_file})"}
    raise RuntimeError(f"shard process {'killed by signal ' + str(-rc) if rc < 0 else 'exited ' + str(rc)} "
                       f"(log: {log_file}); Dask runs it again")  # fmt: skip


def merge_shards(store_root: str, key_dict: dict, model_id: str, shards: int, meta: dict, *results: dict) -> dict:
    """Replay every shard's chunks through the store's ChunkRun and finalize: the one entry, as a local run writes
    it. `results` (the shard tasks' outcomes) make Dask run this after them."""
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(errors[0])
    store, key = EmbeddingStore(store_root), DatasetKey.from_dict(key_dict)
    parts = []
    for s in range(shards):
        part = read_shard(shard_path(store, key, model_id, s, shards))
        if part is None:
            raise RuntimeError(f"shard {s} of {shards} of {model_id} on {key.slug} is missing or damaged; rerun")
        parts.append(part)
    identity = parts[0]["identity"]
    if any(p["identity"] != identity for p in parts):
        raise RuntimeError(f"{model_id}: the shards were computed for different runs; rerun with --force")
    chunks = [c for p in parts for c in p["chunks"]]
    sample_ids = [s for c in chunks for s in c["requested"]]
    if [c["index"] for c in chunks] != list(range(len(chunks))) or sha256_ids(sample_ids) != identity[
        "sample_ids_sha256"
    ]:
        raise RuntimeError(f"{model_id}: the shards do not cover the dataset's chunks in order; rerun with --force")
    info = [p["info"] for p in parts]
    src = next((p["info"] for p in parts if p["chunks"]), info[0])  # the device of a shard that embedded something
    full = dict(meta)
    full.update({k: src[k] for k in ("code_version", "device", "device_name", "python")})
    full["sample_ids_sha256"] = identity["sample_ids_sha256"]
    full["timing"] = {"dataset_load_seconds": max(i["dataset_load_seconds"] for i in info),
                      "model_load_seconds": max(i["model_load_seconds"] for i in info), "resumed": False,
                      "wall_seconds_last_run": max(i["wall_seconds"] for i in info), "shards": shards}  # fmt: skip
    with store.open_run(key, model_id, sample_ids, chunk_size=identity["chunk_size"],
                        run_info=identity["run_info"]) as run:  # fmt: skip
        for c in chunks:
            run.write_chunk(c["index"], c["ids"], c["embeddings"], c["failures"], c["seconds"], c["energies"])
        path = run.finalize(full)
    shutil.rmtree(shards_dir(store, key, model_id), ignore_errors=True)
    with contextlib.suppress(OSError):
        shards_dir(store, key, model_id).parent.rmdir()  # .shards, when empty
    final = store.read_meta(key, model_id)
    return {"path": str(path), "n_ok": final["n_ok"], "n_failed": final["n_failed"],
            "seconds": final["timing"]["seconds"], "samples_per_s": final["timing"]["samples_per_s"]}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
