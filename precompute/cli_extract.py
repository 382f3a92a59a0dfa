"""``matter-align extract``: embed one dataset with several models, each in its own environment.

    matter-align extract --dataset qm9 --n 10000 --seed 0 --models chgnet-0.3.0,ani1x --device auto

For each model the orchestrator reads the card, picks the python of the card's ``environment``, and runs
``python -m precompute.extract.worker`` in it as a subprocess; progress comes back as JSON lines and is shown as a
progress bar. Pairs already complete in the store are skipped; a failing model does not stop the others; the summary
lists done / skipped / failed with reasons, and the exit status is 1 if any failed.

This module imports no model library, no torch and nothing from ``precompute.adapters`` (a test checks
``sys.modules``), so it runs in the light base environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from precompute.extract.cards import card_hash, is_card_file, load_card
from precompute.extract.store import (
    DEFAULT_CHUNK_SIZE,
    DatasetKey,
    EmbeddingStore,
    check_model_id,
    checkpoint_fingerprint,
    default_root,
    utcnow,
)

HELP = "embed a dataset with models (each in its own environment) into the embedding store"
REPO_ROOT = Path(__file__).resolve().parent.parent

# card["environment"] -> virtual environment folder under the repository root
ENVIRONMENTS: dict[str, str] = {
    "zoo": ".venv",
    "sevenn": ".venv-sevenn",
    "mlip": ".venv-mlip",
    "fairchem1": ".venv-fairchem1",
}


def env_python(environment: str) -> Path:
    """The python of an environment: ``$MATTER_ALIGN_PY_<ENV>`` (e.g. MATTER_ALIGN_PY_SEVENN) or
    ``<repo>/<venv>/bin/python``. Raises KeyError for an unknown environment name."""
    override = os.environ.get(f"MATTER_ALIGN_PY_{environment.upper().replace('-', '_')}")
    if override:
        return Path(override)
    return REPO_ROOT / ENVIRONMENTS[environment] / "bin" / "python"


def create_command(environment: str) -> str:
    """The one command that creates an environment."""
    if environment == "zoo":
        return "make env"
    script = Path("precompute") / "envs" / f"create_{environment}.sh"
    if (REPO_ROOT / script).exists():
        return f"bash {script}"
    return f"make env-{environment}"


# --------------------------------------------------------------------------------------------------------------------
# progress display


class Progress:
    """One progress bar per model (tqdm on a terminal), or one line per chunk (logs), or nothing."""

    def __init__(self, mode: str):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode
        self._lock = threading.Lock()
        self._free_slots: list[int] = []
        self._next_slot = 0

    def slot(self) -> int:
        with self._lock:
            if self._free_slots:
                return self._free_slots.pop(0)
            self._next_slot += 1
            return self._next_slot - 1

    def release(self, slot: int) -> None:
        with self._lock:
            self._free_slots.append(slot)
            self._free_slots.sort()

    def tracker(self, label: str, slot: int) -> Callable[[dict[str, Any]], None]:
        state: dict[str, Any] = {"bar": None}

        def on_event(ev: dict[str, Any]) -> None:
            kind = ev.get("event")
            if self.mode == "none":
                return
            if self.mode == "lines":
                if kind == "stage":
                    self._line(f"[{label}] {ev.get('stage')}")
                elif kind == "start":
                    self._line(
                        f"[{label}] {ev.get('n_done')}/{ev.get('n_total')} samples done before this run "
                        f"({ev.get('chunks_done')}/{ev.get('chunks_total')} chunks), device {ev.get('device')}"
                    )
                elif kind == "chunk":
                    self._line(
                        f"[{label}] chunk {ev.get('chunk')}: {ev.get('n_done')}/{ev.get('n_total')} "
                        f"(ok {ev.get('n_ok')}, failed {ev.get('n_failed')}, {ev.get('seconds')} s)"
                    )
                return
            from tqdm import tqdm

            bar = state["bar"]
            if kind == "stage" and bar is None:
                with self._lock:
                    tqdm.write(f"[{label}] {ev.get('stage')}", file=sys.stderr)
            elif kind == "start":
                bar = state["bar"] = tqdm(
                    total=ev.get("n_total"),
                    initial=ev.get("n_done") or 0,
                    desc=label,
                    unit="sample",
                    position=slot,
                    leave=True,
                    dynamic_ncols=True,
                )
                bar.set_postfix_str(str(ev.get("device")))
            elif kind == "chunk" and bar is not None:
                bar.update(int(ev["n_done"]) - bar.n)
            elif kind in ("done", "error", "closed") and bar is not None:
                bar.close()
                state["bar"] = None

        return on_event

    def note(self, text: str) -> None:
        if self.mode != "none":
            self._line(text)

    def _line(self, text: str) -> None:
        with self._lock:
            print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------------------
# one model


@dataclass
class Outcome:
    model: str
    status: str  # done | skipped | failed | planned (--dry-run)
    reason: str = ""
    n_ok: int | None = None
    n_failed: int | None = None
    seconds: float | None = None
    samples_per_s: float | None = None
    path: str | None = None


@dataclass
class Job:
    spec: str  # model id or card file
    model_id: str
    card: dict[str, Any] | None
    checkpoint: str | None


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def prepare_job(
    job: Job, args: argparse.Namespace, key: DatasetKey, store: EmbeddingStore, progress: Progress
) -> str | Outcome:
    """The model's card and environment name, or the Outcome that settles it (bad card, complete in the store)."""
    if job.card is None:
        try:
            from_file = is_card_file(job.spec)
            job.card = load_card(None if from_file else job.spec, job.spec if from_file else None)
            job.model_id = check_model_id(str(job.card["model_id"]))
        except Exception as e:  # noqa: BLE001 - a bad card fails this model only
            return Outcome(job.model_id, "failed", f"model card: {type(e).__name__}: {e}")
    card = job.card
    try:
        chash = card_hash(card)
        ckpt_fp = checkpoint_fingerprint(job.model_id, card.get("checkpoint"), job.checkpoint)
    except Exception as e:  # noqa: BLE001
        return Outcome(job.model_id, "failed", f"{type(e).__name__}: {e}")
    if not args.force:
        st = store.status(key, job.model_id, card_hash=chash, checkpoint_override=job.checkpoint,
                          checkpoint_fingerprint=ckpt_fp)  # fmt: skip
        if st.complete:
            m = st.meta or {}
            return Outcome(job.model_id, "skipped", "complete in the store", m.get("n_ok"), m.get("n_failed"),
                           path=str(store.npz_path(key, job.model_id)))  # fmt: skip
        if st.state in ("stale", "corrupt"):
            progress.note(f"[{job.model_id}] stored entry is {st.state} ({st.reason}); recomputing")
    environment = str(card.get("environment") or "zoo")
    try:
        env_python(environment)
    except KeyError:
        return Outcome(
            job.model_id, "failed", f"card names unknown environment {environment!r} (known: {', '.join(ENVIRONMENTS)})"
        )
    return environment


def worker_args(job: Job, args: argparse.Namespace, key: DatasetKey, store: EmbeddingStore) -> list[str]:
    """The worker's command-line arguments for one model (also those of a shard, plus --shard/--shards)."""
    cmd = ["--dataset", key.dataset_id, "--seed", str(key.seed)]
    if key.n is not None:
        cmd += ["--n", str(key.n)]
    if key.path is not None:
        cmd += ["--path", key.path]
    if key.options:
        from precompute.datasets.options import option_args

        cmd += option_args(key.options_dict)
    cmd += ["--card", str(Path(job.spec).resolve())] if is_card_file(job.spec) else ["--model", job.model_id]
    if job.checkpoint:
        cmd += ["--checkpoint", job.checkpoint]
    cmd += ["--device", args.device, "--store", str(store.root.resolve()), "--chunk-size", str(args.chunk_size)]
    cmd += ["--batch-size", str(args.batch_size)]
    if args.force:
        cmd.append("--force")
    return cmd


def run_one(job: Job, args: argparse.Namespace, key: DatasetKey, store: EmbeddingStore, progress: Progress) -> Outcome:
    """Skip, or run the worker for one model in its environment; never raises for a model's failure."""
    environment = prepare_job(job, args, key, store, progress)
    if isinstance(environment, Outcome):
        return environment
    python = env_python(environment)
    if args.dry_run:
        state = "exists" if python.exists() else f"MISSING, create it with: {create_command(environment)}"
        return Outcome(job.model_id, "planned", f"would run in environment {environment!r}: {python} ({state})")
    if not python.exists():
        return Outcome(
            job.model_id,
            "failed",
            f"environment {environment!r} is missing ({python} not found); create it with: {create_command(environment)}"
            f" (or point MATTER_ALIGN_PY_{environment.upper()} at its python)",
        )

    cmd = [str(python), "-m", "precompute.extract.worker", *worker_args(job, args, key, store)]

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    log_path = store.log_path(key, job.model_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    slot = progress.slot()
    on_event = progress.tracker(job.model_id, slot)
    last: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        with open(log_path, "a") as log:
            log.write(f"\n=== {utcnow()} {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, text=True, bufsize=1)
            _RUNNING.add(proc)
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        log.write(f"[stdout] {line}")
                        continue
                    if not isinstance(ev, dict):
                        continue
                    if ev.get("event") in ("done", "error"):
                        last = ev
                    on_event(ev)
                rc = proc.wait()
            finally:
                _RUNNING.discard(proc)
    finally:
        on_event({"event": "closed"})
        progress.release(slot)
    wall = time.perf_counter() - t0
    if rc == 0 and last.get("event") == "done":
        status = "skipped" if last.get("skipped") else "done"
        return Outcome(
            job.model_id,
            status,
            "complete in the store" if status == "skipped" else "",
            last.get("n_ok"),
            last.get("n_failed"),
            last.get("seconds", wall),
            last.get("samples_per_s"),
            last.get("path"),
        )
    if last.get("event") == "error":
        reason = f"{last.get('type')}: {last.get('message')}"
    elif rc < 0:
        reason = f"worker killed by signal {-rc}"
    else:
        reason = f"worker exited with status {rc}"
    tail = _tail(log_path)
    return Outcome(job.model_id, "failed", f"{reason} (log: {log_path})" + (f"\n{_indent(tail)}" if tail else ""))


_RUNNING: set[subprocess.Popen] = set()


def _indent(text: str, prefix: str = "      | ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


# --------------------------------------------------------------------------------------------------------------------
# the subcommand


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset id: qm9, omat24, salex, omol25, pdb, crystals, ...")
    p.add_argument("--n", type=int, default=None, help="number of samples (seeded subsample; default: all)")
    p.add_argument("--seed", type=int, default=0, help="subsampling seed (default 0)")
    p.add_argument("--path", default=None, help="dataset file or folder (needed by omat24, salex, omol25)")
    from precompute.datasets.options import add_option_argument

    add_option_argument(p)
    p.add_argument(
        "--models",
        required=True,
        help="comma-separated model ids (cards in precompute/registry/cards) or card files (.yaml/.json)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when the worker's torch sees a GPU) | cpu | cuda:N")
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="[MODEL=]PATH",
        help="load this checkpoint instead of the card's; MODEL=PATH (repeatable) when several models are given",
    )
    p.add_argument("--store", default=None, help="store root (default $MATTER_ALIGN_STORE or work-cache/embeddings)")
    p.add_argument("--jobs", type=int, default=1, help="models extracted at the same time (default 1)")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="samples per resumable chunk")
    p.add_argument("--batch-size", type=int, default=32, help="batch size passed to each adapter")
    p.add_argument("--force", action="store_true", help="recompute entries that are already complete")
    p.add_argument(
        "--progress", choices=("auto", "bar", "lines", "none"), default="auto", help="bars on a terminal, else lines"
    )
    p.add_argument("--dry-run", action="store_true", help="show what would be skipped or run, and where; run nothing")
    p.add_argument("--summary-json", default=None, metavar="PATH", help="also write the summary as JSON to PATH")
    p.add_argument("--shards", type=int, default=8, help="with --cluster: shards per model (contiguous chunk ranges)")
    from precompute.cluster import add_cluster_arguments

    add_cluster_arguments(p)


def _checkpoints(values: list[str], specs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        model, sep, path = v.partition("=")
        if sep and model in specs:
            out[model] = path
        elif len(specs) == 1:
            out[specs[0]] = v
        else:
            raise SystemExit(f"matter-align extract: --checkpoint {v!r}: with several models write MODEL=PATH")
    return out


def run(args: argparse.Namespace) -> int:
    specs = list(dict.fromkeys(s.strip() for s in args.models.split(",") if s.strip()))
    if not specs:
        print("matter-align extract: --models is empty", file=sys.stderr)
        return 2
    if args.jobs < 1 or args.chunk_size < 1 or args.batch_size < 1:
        print("matter-align extract: --jobs, --chunk-size and --batch-size must be positive", file=sys.stderr)
        return 2
    ckpts = _checkpoints(args.checkpoint, specs)
    from precompute.datasets import DatasetError
    from precompute.datasets.options import parse_dataset_options

    try:
        options = parse_dataset_options(args.dataset, getattr(args, "dataset_options", None))
        key = DatasetKey.build(args.dataset, args.n, args.seed, args.path, options)
    except (FileNotFoundError, DatasetError) as e:
        print(f"matter-align extract: {e}", file=sys.stderr)
        return 2
    store = EmbeddingStore(args.store if args.store is not None else default_root())
    jobs = []
    for spec in specs:
        ck = ckpts.get(spec)
        jobs.append(
            Job(spec, Path(spec).stem if is_card_file(spec) else spec, None, str(Path(ck).resolve()) if ck else None)
        )
    progress = Progress(args.progress)
    opts = "".join(f", {k}={v}" for k, v in key.options)
    print(
        f"extract {key.dataset_id} (n={key.n or 'all'}, seed={key.seed}{opts}) -> {store.folder(key)}", file=sys.stderr
    )

    outcomes: list[Outcome] = []
    if getattr(args, "cluster", None) or getattr(args, "cluster_config", None):
        if not args.dry_run:
            return _finish(run_on_cluster(jobs, args, key, store, progress), args, key, store)
    try:
        if args.jobs == 1:
            outcomes = [run_one(j, args, key, store, progress) for j in jobs]
        else:
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                outcomes = list(pool.map(lambda j: run_one(j, args, key, store, progress), jobs))
    except KeyboardInterrupt:
        for proc in list(_RUNNING):
            with contextlib.suppress(OSError):
                proc.terminate()
        print("\nmatter-align extract: interrupted; finished chunks are kept, rerun to resume", file=sys.stderr)
        return 130
    return _finish(outcomes, args, key, store)


def _finish(outcomes: list[Outcome] | int, args: argparse.Namespace, key: DatasetKey, store: EmbeddingStore) -> int:
    if isinstance(outcomes, int):
        return outcomes
    print_summary(outcomes, key)
    if args.summary_json:
        from dataclasses import asdict

        from precompute.extract.store import atomic_write_json

        atomic_write_json(
            args.summary_json,
            {"dataset_key": key.to_dict(), "store": str(store.root.resolve()), "models": [asdict(o) for o in outcomes]},
        )
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def run_on_cluster(jobs: list[Job], args: argparse.Namespace, key: DatasetKey, store: EmbeddingStore,
                   progress: Progress) -> list[Outcome] | int:  # fmt: skip
    """Every (model, shard) as a Dask task in the model's environment, then one merge task per model
    (precompute/extract/shards.py). GPU shards request the resource GPU=1 when the cluster has GPU workers."""
    from distributed import as_completed

    from precompute.cluster import DaskSession, spec_from_args
    from precompute.extract import shards as sh

    if args.shards < 1:
        print("matter-align extract: --shards must be positive", file=sys.stderr)
        return 2
    try:
        spec = spec_from_args(args)
    except (OSError, ValueError) as e:
        print(f"matter-align extract: {e}", file=sys.stderr)
        return 2
    if spec is None:
        print(
            "matter-align extract: --cluster-config names no cluster; add cluster = ... or --cluster", file=sys.stderr
        )
        return 2
    outcomes: dict[str, Outcome] = {}
    todo: list[tuple[Job, str]] = []
    for job in jobs:  # cards and the store first: a run with nothing to do starts no cluster
        environment = prepare_job(job, args, key, store, progress)
        if isinstance(environment, Outcome):
            outcomes[job.model_id] = environment
        else:
            todo.append((job, environment))
    if not todo:
        return [outcomes[j.model_id] for j in jobs]
    with DaskSession(spec) as session:
        try:
            session.check_shared(store.root)
        except (RuntimeError, OSError) as e:
            print(f"matter-align extract: {e}", file=sys.stderr)
            return 2
        gpu_ok = session.has_gpus and args.device != "cpu"
        merges, shard_of, trackers, done_n, pending = {}, {}, {}, {}, []
        for job, environment in todo:
            if args.force:
                store.remove(key, job.model_id)
                shutil.rmtree(sh.shards_dir(store, key, job.model_id), ignore_errors=True)
            card, argv = job.card or {}, worker_args(job, args, key, store)
            gpu = gpu_ok and card.get("source") != "descriptor"  # descriptors never use a GPU
            futures = []
            for s in range(args.shards):
                path = sh.shard_path(store, key, job.model_id, s, args.shards)
                log = store.log_path(key, job.model_id).with_suffix(f".shard-{s:04d}.log")
                fut = session.submit(sh.run_shard_task, environment,
                                     [*argv, "--shard", str(s), "--shards", str(args.shards)], str(path), str(log),
                                     gpu=gpu, key=f"shard-{job.model_id}-{s}")  # fmt: skip
                shard_of[fut.key] = job.model_id
                futures.append(fut)
            pending += futures
            meta = {k: card.get(k) for k in ("display_name", "family", "environment", "source", "layer", "pooling")}
            merges[job.model_id] = session.submit(sh.merge_shards, str(store.root.resolve()), key.to_dict(),
                                                  job.model_id, args.shards, meta, *futures,
                                                  key=f"merge-{job.model_id}")  # fmt: skip
            trackers[job.model_id] = progress.tracker(job.model_id, progress.slot())
            done_n[job.model_id] = 0
        model_of = {f.key: m for m, f in merges.items()}
        for fut in as_completed(pending + list(merges.values())):
            m = shard_of.get(fut.key) or model_of[fut.key]
            if fut.status != "finished":
                if fut.key in model_of:  # the merge carries the first shard failure
                    exc = fut.exception()
                    trackers[m]({"event": "error"})
                    outcomes[m] = Outcome(m, "failed", f"{type(exc).__name__}: {exc}")
                continue
            res = fut.result()
            if fut.key in model_of:
                trackers[m]({"event": "done"})
                outcomes[m] = Outcome(m, "done", "", res["n_ok"], res["n_failed"], res["seconds"],
                                      res["samples_per_s"], res["path"])  # fmt: skip
            elif "n_total" in res:  # a shard finished: the bar moves by its samples (lines: one line per shard)
                done_n[m] += res["n_shard"]
                if progress.mode == "bar":
                    if done_n[m] == res["n_shard"]:
                        trackers[m]({"event": "start", "n_total": res["n_total"], "n_done": 0, "device": "dask"})
                    trackers[m]({"event": "chunk", "n_done": done_n[m]})
                else:
                    progress.note(f"[{m}] shard {res['shard']} {'skipped (done before)' if res.get('skipped') else 'done'}"
                                  f": {done_n[m]}/{res['n_total']} samples")  # fmt: skip
    return [outcomes[j.model_id] for j in jobs if j.model_id in outcomes]


def print_summary(outcomes: list[Outcome], key: DatasetKey) -> None:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "planned")}
    head = f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
    if counts["planned"]:
        head += f", {counts['planned']} to run (dry run)"
    print(f"\nextract {key.slug}: {head}", flush=True)
    width = max(len(o.model) for o in outcomes) if outcomes else 10
    for o in outcomes:
        if o.status in ("failed", "planned"):
            detail = o.reason
        else:
            detail = f"{o.n_ok} embedded, {o.n_failed} failed samples"
            if o.status == "done" and o.seconds is not None:
                rate = f", {o.samples_per_s:.1f} samples/s" if o.samples_per_s else ""
                detail += f", {o.seconds:.1f} s{rate}"
            if o.status == "skipped":
                detail = f"{o.reason} ({detail})"
        print(f"  {o.status:<8} {o.model:<{width}}  {detail}", flush=True)
