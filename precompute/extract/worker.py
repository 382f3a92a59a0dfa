"""Extraction worker: embeds one dataset with one model into the store, chunk by chunk.

Runs INSIDE the model family's environment (the orchestrator, ``matter-align extract``, starts it with that
environment's python)::

    python -m precompute.extract.worker --dataset qm9 --n 1000 --seed 0 --model chgnet-0.3.0 \
        --device auto --store work-cache/embeddings [--checkpoint PATH] [--path DATASET_PATH] [--chunk-size 512]

Protocol: stdout carries only JSON lines, one per event, for the orchestrator::

    {"event": "stage", "stage": "loading dataset" | "loading model" | ...}
    {"event": "start", "n_total": N, "n_done": d, "chunks_total": C, "chunks_done": c, "device": "cuda", ...}
    {"event": "chunk", "chunk": i, "n_done": d, "n_total": N, "n_ok": k, "n_failed": f, "seconds": s}
    {"event": "done", "path": "...", "n_ok": k, "n_failed": f, "seconds": s, "samples_per_s": r, "skipped": false}
    {"event": "error", "type": "...", "message": "..."}

Anything a model library prints goes to stderr (the worker moves fd 1 to fd 2 before importing anything heavy).
Exit status: 0 done (or already complete), 1 error, 2 bad arguments, 3 no sample could be embedded.

Samples are never dropped silently: ids the adapter neither embeds nor lists in ``failures`` are recorded as failures
("adapter returned no embedding and no reason"), non-finite rows likewise; if ``embed`` raises for a whole chunk the
chunk is retried one sample at a time and each raising sample is recorded with its exception (the worker gives up
when the first 5 samples all raise: the model, not the data, is broken then).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from typing import IO, Any

import numpy as np

from precompute.extract.cards import card_hash, load_card
from precompute.extract.store import (
    DEFAULT_CHUNK_SIZE,
    DatasetKey,
    EmbeddingStore,
    StoreError,
    checkpoint_fingerprint,
    sha256_ids,
    sha256_samples,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOTHING_EMBEDDED = 0, 1, 2, 3
MAX_LEADING_SAMPLE_ERRORS = 5


class Reporter:
    """Writes one JSON object per line to the protocol stream (flushed at once)."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def __call__(self, event: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        self.stream.flush()


def _protocol_stream() -> IO[str]:
    """A private duplicate of stdout for the JSON lines; fd 1 (and sys.stdout) then point at stderr."""
    try:
        fd = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # pragma: no cover - no real fds (embedded interpreters)
        return sys.stdout
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", buffering=1)


# --------------------------------------------------------------------------------------------------------------------
# cards, adapters, devices


def build_adapter(card: dict[str, Any], device: str, checkpoint: str | None):
    """``precompute.adapters.build_adapter``; a fully qualified ``package.module:Class`` outside precompute is
    imported directly (a user's own adapter, or a test adapter)."""
    spec = str(card["adapter"])
    module, _, cls = spec.partition(":")
    if "." in module and not module.startswith("precompute.") and cls:
        return getattr(importlib.import_module(module), cls)(card, device=device, checkpoint=checkpoint)
    from precompute.adapters import build_adapter as registry_build_adapter

    return registry_build_adapter(card, device, checkpoint)


def resolve_device(device: str) -> tuple[str, str | None]:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'. Returns (device, human-readable device name)."""
    if device not in (None, "auto") and not str(device).startswith("cuda"):
        return str(device), platform.processor() or platform.machine()
    try:
        import torch
    except ImportError:
        if device not in (None, "auto"):
            raise
        return "cpu", platform.processor() or platform.machine()
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda"):
        return str(device), torch.cuda.get_device_name(torch.device(device))
    return str(device), platform.processor() or platform.machine()


# --------------------------------------------------------------------------------------------------------------------
# embedding one chunk


Chunk = tuple[list[str], np.ndarray, dict[str, str], "np.ndarray | None"]


def _embed_checked(adapter: Any, samples: list, batch_size: int) -> Chunk:
    """One adapter call; every requested id comes back either embedded (finite row, and finite predicted energy
    when the model has an energy head) or as a failure. Returns (ids, embeddings, failures, energies or None)."""
    res = adapter.embed(samples, batch_size=batch_size)
    ids = [str(s) for s in res.ids]
    failures = {str(k): str(v) for k, v in (res.failures or {}).items()}
    emb = np.asarray(res.embeddings, dtype=np.float32)
    if emb.ndim == 1 and len(ids) == 0:
        emb = emb.reshape(0, 0)
    if emb.ndim != 2 or emb.shape[0] != len(ids):
        raise RuntimeError(f"adapter returned embeddings of shape {emb.shape} for {len(ids)} ids")
    requested = [s.sample_id for s in samples]
    req_set = set(requested)
    unknown = (set(ids) | set(failures)) - req_set
    if unknown:
        raise RuntimeError(f"adapter returned ids it was not given: {sorted(unknown)[:3]}")
    energies = getattr(res, "energies", None)
    if energies is not None:
        energies = np.asarray(energies, dtype=np.float64).reshape(-1)
        if energies.shape != (len(ids),):
            raise RuntimeError(f"adapter returned {energies.shape[0]} energies for {len(ids)} ids")
    keep = [k for k in range(len(ids)) if ids[k] not in failures]
    finite = np.isfinite(emb).all(axis=1) if emb.size else np.ones(len(ids), dtype=bool)
    out_ids, rows = [], []
    for k in keep:
        if not finite[k]:
            failures[ids[k]] = "non-finite embedding (NaN or inf)"
        elif energies is not None and not np.isfinite(energies[k]):
            failures[ids[k]] = "non-finite predicted energy (NaN or inf)"
        else:
            out_ids.append(ids[k])
            rows.append(k)
    out_set = set(out_ids)
    for sid in requested:
        if sid not in failures and sid not in out_set:
            failures[sid] = "adapter returned no embedding and no reason (adapter bug)"
    dim = emb.shape[1] if emb.ndim == 2 else 0
    out_energies = None if energies is None else energies[np.asarray(rows, dtype=np.intp)]
    return out_ids, emb[rows].reshape(len(rows), dim), failures, out_energies


def embed_chunk(adapter: Any, samples: list, batch_size: int) -> Chunk:
    """Embed a chunk; if the adapter raises for the whole chunk, retry one sample at a time."""
    try:
        return _embed_checked(adapter, samples, batch_size)
    except Exception as chunk_error:  # noqa: BLE001 - isolate the bad samples, below
        chunk_exc = chunk_error
    print(
        f"worker: embed() raised for a chunk of {len(samples)} ({type(chunk_exc).__name__}: {chunk_exc}); "
        "retrying one sample at a time",
        file=sys.stderr,
    )
    ids: list[str] = []
    rows: list[np.ndarray] = []
    energies: list[np.ndarray] = []
    failures: dict[str, str] = {}
    n_ok_calls = 0
    for k, sample in enumerate(samples):
        try:
            i1, e1, f1, en1 = _embed_checked(adapter, [sample], 1)
        except Exception as e:  # noqa: BLE001
            failures[sample.sample_id] = f"{type(e).__name__}: {e}"
            if n_ok_calls == 0 and k + 1 >= MAX_LEADING_SAMPLE_ERRORS:
                raise chunk_exc from e
            continue
        n_ok_calls += 1
        ids += i1
        rows += list(e1)
        failures.update(f1)
        if i1:
            energies.append(en1)
    dims = {r.shape[0] for r in rows}
    if len(dims) > 1:
        raise RuntimeError(f"adapter returned embeddings of different sizes {sorted(dims)}")
    emb = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    if any(e is None for e in energies) and not all(e is None for e in energies):
        raise RuntimeError("adapter returned predicted energies for some samples and not for others")
    out_energies = np.concatenate(energies) if energies and energies[0] is not None else None
    return ids, emb, failures, out_energies


# --------------------------------------------------------------------------------------------------------------------
# the run


def run(args: argparse.Namespace, report: Reporter) -> int:
    t_start = time.perf_counter()
    card = load_card(args.model, args.card)
    model_id = card["model_id"]
    if args.model and args.model != model_id:
        raise ValueError(f"card {args.card or ''} is for {model_id!r}, not {args.model!r}")
    chash = card_hash(card)
    key = dataset_key(args)
    ckpt_fp = checkpoint_fingerprint(model_id, card.get("checkpoint"), args.checkpoint)
    store = EmbeddingStore(args.store)
    common = {"model_id": model_id, "dataset": key.slug}

    if not args.force:
        st = store.status(key, model_id, card_hash=chash, checkpoint_override=args.checkpoint,
                          checkpoint_fingerprint=ckpt_fp)  # fmt: skip
        if st.complete:
            m = st.meta or {}
            report("done", **common, path=str(store.npz_path(key, model_id)), n_ok=m.get("n_ok"),
                   n_failed=m.get("n_failed"), seconds=0.0, samples_per_s=None, skipped=True)  # fmt: skip
            return EXIT_OK
    else:
        store.remove(key, model_id)

    report("stage", **common, stage="loading dataset")
    from precompute.datasets import load_dataset

    t0 = time.perf_counter()
    samples = load_dataset(args.dataset, n=key.n, seed=key.seed, path=key.path, **key.options_dict)
    dataset_seconds = time.perf_counter() - t0
    if not samples:
        raise ValueError(f"dataset {args.dataset!r} (n={key.n}, seed={key.seed}) yielded no samples")
    sample_ids = [s.sample_id for s in samples]
    ids_sha = sha256_ids(sample_ids)

    run_info = {
        "dataset_sha256": sha256_samples(samples),  # content, not just ids: parts of another content are discarded
        "card_hash": chash,
        "checkpoint_override": args.checkpoint,
        "checkpoint_fingerprint": ckpt_fp,
        "checkpoint": args.checkpoint or card.get("checkpoint"),
    }
    with store.open_run(key, model_id, sample_ids, chunk_size=args.chunk_size, run_info=run_info) as chunks:
        if chunks.discarded_reason:
            print(f"worker: discarded old parts: {chunks.discarded_reason}", file=sys.stderr)
        pending = chunks.pending_chunks(verify=True)  # a damaged part is recomputed, not merged
        n_done = sum(len(chunks.chunk_ids(i)) for i in range(chunks.n_chunks) if i not in set(pending))
        device, device_name = args.device, None
        model_seconds = 0.0
        adapter = None
        if pending:
            device, device_name = resolve_device(args.device)
            report("stage", **common, stage="loading model", device=device)
            t0 = time.perf_counter()
            adapter = build_adapter(card, device, args.checkpoint)
            model_seconds = time.perf_counter() - t0
        report("start", **common, n_total=len(samples), n_done=n_done, chunks_total=chunks.n_chunks,
               chunks_done=chunks.n_chunks - len(pending), device=device, device_name=device_name)  # fmt: skip
        resumed = len(pending) < chunks.n_chunks
        by_id = {s.sample_id: s for s in samples}
        for i in pending:
            chunk = [by_id[s] for s in chunks.chunk_ids(i)]
            t0 = time.perf_counter()
            ids, emb, failures, energies = embed_chunk(adapter, chunk, args.batch_size)
            seconds = time.perf_counter() - t0
            chunks.write_chunk(i, ids, emb, failures, seconds, energies=energies)
            n_done += len(chunk)
            report("chunk", **common, chunk=i, n_done=n_done, n_total=len(samples), n_ok=len(ids),
                   n_failed=len(failures), seconds=round(seconds, 4))  # fmt: skip
        meta = {
            "display_name": card.get("display_name"),
            "family": card.get("family"),
            "environment": card.get("environment"),
            "source": card.get("source"),
            "layer": card.get("layer"),
            "pooling": card.get("pooling"),
            "code_version": _code_version(),
            "device": device,
            "device_name": device_name,
            "python": sys.executable,
            "sample_ids_sha256": ids_sha,
            "timing": {
                "dataset_load_seconds": round(dataset_seconds, 4),
                "model_load_seconds": round(model_seconds, 4),
                "resumed": resumed,
                "wall_seconds_last_run": round(time.perf_counter() - t_start, 4),
            },
        }
        try:
            path = chunks.finalize(meta)
        except StoreError as e:
            if "embedded none" in str(e):
                report("error", **common, type="NothingEmbedded", message=str(e))
                return EXIT_NOTHING_EMBEDDED
            raise
    final = store.read_meta(key, model_id)
    report("done", **common, path=str(path), n_ok=final["n_ok"], n_failed=final["n_failed"],
           seconds=final["timing"]["seconds"], samples_per_s=final["timing"]["samples_per_s"], skipped=False)  # fmt: skip
    return EXIT_OK


def _code_version() -> str:
    from precompute.version import code_version

    return code_version()


def dataset_key(args: argparse.Namespace) -> DatasetKey:
    """The dataset key of --dataset/--n/--seed/--path/--dataset-option (options validated against the loader)."""
    from precompute.datasets.options import parse_dataset_options

    options = parse_dataset_options(args.dataset, getattr(args, "dataset_options", None))
    return DatasetKey.build(args.dataset, args.n, args.seed, args.path, options)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m precompute.extract.worker",
        description="Embed one dataset with one model into the embedding store (run inside the model's environment).",
    )
    p.add_argument("--dataset", required=True, help="dataset id (qm9, omat24, salex, omol25, pdb, crystals, ...)")
    p.add_argument("--n", type=int, default=None, help="subsample size (default / 0: all)")
    p.add_argument("--seed", type=int, default=0, help="subsampling seed")
    p.add_argument("--path", default=None, help="dataset file or folder (omat24, salex, omol25, pdb)")
    from precompute.datasets.options import add_option_argument

    add_option_argument(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="model id of a card in precompute/registry/cards")
    g.add_argument("--card", help="a model card file (YAML/JSON) instead of a registry model id")
    p.add_argument("--checkpoint", default=None, help="checkpoint to load instead of the card's")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--store", default=None, help="store root (default $MATTER_ALIGN_STORE or work-cache/embeddings)")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="samples per resumable chunk")
    p.add_argument("--batch-size", type=int, default=32, help="batch size passed to the adapter")
    p.add_argument("--force", action="store_true", help="recompute even if the entry is complete")
    return p


def main(argv: list[str] | None = None) -> int:
    report = Reporter(_protocol_stream())
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if e.code in (0, None) else EXIT_USAGE
    try:
        return run(args, report)
    except Exception as e:  # noqa: BLE001 - reported to the orchestrator, full traceback on stderr
        traceback.print_exc()
        report("error", type=type(e).__name__, message=str(e) or type(e).__name__)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
