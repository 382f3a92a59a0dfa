"""Run `extract` and `analyze` on a Dask cluster: a local one, an existing scheduler, or Slurm through dask-jobqueue.

    --cluster local:N          a distributed.LocalCluster of N worker processes (one thread each), on this machine
    --cluster tcp://HOST:PORT  an existing Dask scheduler (its workers started by you)
    --cluster slurm            a dask_jobqueue.SLURMCluster built from the --slurm-* options or the config file
    --cluster-config FILE      the same settings as TOML or YAML (command-line options win), e.g.

        cluster = "slurm"
        [slurm]
        partition = "gpu"
        account = "chem42"
        walltime = "04:00:00"
        cores = 8
        memory = "64GB"
        gpus = 1                      # per job: #SBATCH --gres=gpu:1, and the worker advertises resources GPU=1
        min_jobs = 0
        max_jobs = 20                 # adaptive between min_jobs and max_jobs
        setup = ["module load cuda/12.4", "source /shared/matter-align/.venv/bin/activate"]
        [slurm.environments]          # one setup line per family environment (run before the worker starts)
        mlip = "export MATTER_ALIGN_PY_MLIP=/shared/matter-align/.venv-mlip/bin/python"

Every worker reads inputs from and writes results to the work folder (analysis) or the embedding store
(extraction), so that folder must be on a filesystem all workers share. `DaskSession.check_shared` verifies this at
start-up: the client writes a token file there and every worker must read it back (the error names the worker that
cannot). Nothing here imports dask at module level: `matter-align --help` stays light.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import secrets
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TOKEN_PREFIX = ".cluster-token-"


@dataclass
class SlurmOptions:
    """What a SLURMCluster is built from; `slurm_kwargs` maps it onto dask-jobqueue's arguments."""

    partition: str | None = None
    account: str | None = None
    walltime: str = "04:00:00"
    cores: int = 8
    memory: str = "32GB"
    gpus: int = 0
    processes: int = 1
    min_jobs: int = 0
    max_jobs: int = 4
    setup: list[str] = field(default_factory=list)
    environments: dict[str, str] = field(default_factory=dict)
    job_extra: list[str] = field(default_factory=list)
    log_directory: str | None = None
    interface: str | None = None


@dataclass
class ClusterSpec:
    kind: str  # local | tcp | slurm
    n_workers: int | None = None
    address: str | None = None
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    retries: int = 2  # reruns of a task that raised (a task whose worker died is rescheduled regardless)
    start_timeout: float = 600.0  # seconds to wait for a first worker (a Slurm queue may hold the jobs)


# -------------------------------------------------------------------------------------------------- parsing options
def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster (docs/CLUSTER.md)")
    g.add_argument(
        "--cluster", default=None, metavar="SPEC", help="local:N | tcp://HOST:PORT | slurm (default: local run)"
    )
    g.add_argument("--cluster-config", default=None, metavar="FILE", help="cluster settings as TOML or YAML")
    g.add_argument("--slurm-partition", default=None)
    g.add_argument("--slurm-account", default=None)
    g.add_argument("--slurm-walltime", default=None, help="per job, e.g. 04:00:00")
    g.add_argument("--slurm-cores", type=int, default=None, help="cores per job")
    g.add_argument("--slurm-memory", default=None, help="memory per job, e.g. 64GB")
    g.add_argument("--slurm-gpus", type=int, default=None, help="GPUs per job (--gres=gpu:N)")
    g.add_argument("--slurm-min-jobs", type=int, default=None, help="adaptive scaling: fewest jobs")
    g.add_argument("--slurm-max-jobs", type=int, default=None, help="adaptive scaling: most jobs")
    g.add_argument(
        "--slurm-setup",
        action="append",
        default=None,
        metavar="LINE",
        help="shell line run before each worker (repeatable)",
    )
    g.add_argument("--slurm-env-setup", action="append", default=None, metavar="ENV=LINE",
                   help="setup line of one family environment, e.g. mlip='export MATTER_ALIGN_PY_MLIP=...'")  # fmt: skip


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML (.toml) or YAML (.yaml/.yml) file of cluster settings."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        data = tomllib.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        raise ValueError(f"{path}: cluster config must be .toml, .yaml or .yml")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table of settings at the top level")
    return data


def parse_spec(value: str | None, config: dict[str, Any] | None = None) -> ClusterSpec | None:
    """`--cluster` (or the config's `cluster`) -> a ClusterSpec; None means today's local run."""
    config = dict(config or {})
    value = value or config.get("cluster")
    if value is None:
        return None
    known = {f for f in SlurmOptions.__dataclass_fields__}
    raw = dict(config.get("slurm") or {})
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown slurm settings {unknown} (known: {sorted(known)})")
    spec = ClusterSpec(kind="", slurm=SlurmOptions(**raw), retries=int(config.get("retries", 2)),
                       start_timeout=float(config.get("start_timeout", 600)))  # fmt: skip
    value = str(value).strip()
    if value.startswith("local:") or value == "local":
        n = value.partition(":")[2] or str(os.cpu_count() or 1)
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--cluster {value!r}: expected local:N with N >= 1")
        spec.kind, spec.n_workers = "local", int(n)
    elif value.startswith("tcp://") or value.startswith("tls://"):
        spec.kind, spec.address = "tcp", value
    elif value == "slurm":
        spec.kind = "slurm"
    else:
        raise ValueError(f"--cluster {value!r}: expected local:N, tcp://HOST:PORT or slurm")
    return spec


def spec_from_args(args: argparse.Namespace) -> ClusterSpec | None:
    """The cluster spec of a command line (config file first, then the --slurm-* options on top)."""
    config = load_config(args.cluster_config) if getattr(args, "cluster_config", None) else {}
    spec = parse_spec(getattr(args, "cluster", None), config)
    if spec is None:
        return None
    s = spec.slurm
    for name in ("partition", "account", "walltime", "cores", "memory", "gpus", "min_jobs", "max_jobs"):
        v = getattr(args, f"slurm_{name}", None)
        if v is not None:
            setattr(s, name, v)
    if getattr(args, "slurm_setup", None):
        s.setup = list(args.slurm_setup)
    for item in getattr(args, "slurm_env_setup", None) or []:
        env, sep, line = item.partition("=")
        if not sep or not env or not line:
            raise ValueError(f"--slurm-env-setup {item!r}: expected ENV=LINE")
        s.environments[env] = line
    return spec


def slurm_kwargs(opts: SlurmOptions) -> dict[str, Any]:
    """dask_jobqueue.SLURMCluster keyword arguments for these options (GPUs: a gres directive per job, and each
    worker advertises its share as the resource `GPU`, which GPU tasks request)."""
    if opts.min_jobs < 0 or opts.max_jobs < max(1, opts.min_jobs):
        raise ValueError(
            f"slurm: need 0 <= min_jobs <= max_jobs and max_jobs >= 1, got {opts.min_jobs}, {opts.max_jobs}"
        )
    extra = list(opts.job_extra)
    worker_args: list[str] = []
    if opts.gpus > 0:
        extra.append(f"--gres=gpu:{opts.gpus}")
        share = opts.gpus // max(1, opts.processes)
        if share < 1:
            raise ValueError(f"slurm: {opts.gpus} GPU(s) per job cannot be shared by {opts.processes} worker processes")
        worker_args = ["--resources", f"GPU={share}"]
    prologue = list(opts.setup) + [opts.environments[e] for e in sorted(opts.environments)]
    kw: dict[str, Any] = {"queue": opts.partition, "account": opts.account, "walltime": opts.walltime,
                          "cores": opts.cores, "memory": opts.memory, "processes": opts.processes,
                          "job_extra_directives": extra, "job_script_prologue": prologue,
                          "worker_extra_args": worker_args}  # fmt: skip
    if opts.log_directory:
        kw["log_directory"] = opts.log_directory
    if opts.interface:
        kw["interface"] = opts.interface
    return kw


# -------------------------------------------------------------------------------------------------- worker-side checks
def read_token(path: str, token: str) -> str:
    """On a worker: the token file must exist and hold the client's token. Returns this host's name."""
    host = socket.gethostname()
    try:
        got = Path(path).read_text()
    except OSError as exc:
        raise FileNotFoundError(f"worker on {host} cannot read {path} ({exc}): the folder is not shared") from exc
    if got != token:
        raise RuntimeError(f"worker on {host} reads another token at {path}: a different folder of the same name")
    return host


def guarded(check: tuple[str, str] | None, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Runs a task after checking its worker sees the shared folder (a worker that joins an adaptive cluster late
    was not there for the start-up check)."""
    if check is not None:
        try:
            read_token(*check)
        except (OSError, RuntimeError) as exc:
            from distributed import get_worker

            raise RuntimeError(f"worker {get_worker().address}: {exc}") from exc
    return fn(*args, **kwargs)


# -------------------------------------------------------------------------------------------------- the session
class DaskExecutor(cf.Executor):
    """A `concurrent.futures.Executor` on a Dask client (for precompute.analyze.executor.run_tasks).

    A task whose keyword `device` names a CUDA device requests the resource GPU=1 when the cluster has GPU workers
    (`gpu`); others run anywhere. Failures are retried `retries` times; a task whose worker dies is rescheduled by
    the scheduler (distributed.scheduler.allowed-failures)."""

    def __init__(self, client: Any, *, gpu: bool = False, retries: int = 2, check: tuple[str, str] | None = None):
        self._cpu = client.get_executor(pure=False, retries=retries)
        self._gpu = client.get_executor(pure=False, retries=retries, resources={"GPU": 1}) if gpu else self._cpu
        self.check = check

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        wants_gpu = str(kwargs.get("device", "")).startswith("cuda")
        ex = self._gpu if wants_gpu else self._cpu
        return ex.submit(guarded, self.check, fn, args, kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._cpu.shutdown(wait=wait)
        if self._gpu is not self._cpu:
            self._gpu.shutdown(wait=wait)


class DaskSession:
    """Starts (or connects to) the cluster, prints the dashboard address, checks the shared folder; a context
    manager that closes what it started and removes its token file."""

    def __init__(self, spec: ClusterSpec, *, out: Any = None):
        self.spec, self.out = spec, out or sys.stderr
        self.cluster: Any = None
        self.client: Any = None
        self.check: tuple[str, str] | None = None

    def __enter__(self) -> DaskSession:
        import logging

        from distributed import Client, LocalCluster

        s = self.spec
        if s.kind == "local":
            self.cluster = LocalCluster(n_workers=s.n_workers, processes=True, threads_per_worker=1,
                                        dashboard_address=":0", silence_logs=logging.ERROR)  # fmt: skip
            self.client = Client(self.cluster)
        elif s.kind == "tcp":
            self.client = Client(s.address, timeout="30s")
        elif s.kind == "slurm":
            from dask_jobqueue import SLURMCluster

            self.cluster = SLURMCluster(**slurm_kwargs(s.slurm))
            self.cluster.adapt(minimum_jobs=s.slurm.min_jobs, maximum_jobs=s.slurm.max_jobs)
            self.client = Client(self.cluster)
        else:
            raise ValueError(f"unknown cluster kind {s.kind!r}")
        self._print(f"dask: {describe(s)}; dashboard {self.client.dashboard_link}{_dashboard_note()}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.check is not None:
            Path(self.check[0]).unlink(missing_ok=True)
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @property
    def has_gpus(self) -> bool:
        """Whether GPU tasks can be tagged: Slurm jobs with GPUs, or connected workers advertising GPU."""
        if self.spec.kind == "slurm":
            return self.spec.slurm.gpus > 0
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {}).values()
        return any(w.get("resources", {}).get("GPU", 0) > 0 for w in workers)

    def check_shared(self, folder: str | os.PathLike[str]) -> list[str]:
        """Write a token into `folder`; every worker must read it. Waits for a first worker (adaptive clusters
        start empty). Raises RuntimeError naming each worker that cannot; returns the workers' host names."""
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(16)
        path = folder / f"{TOKEN_PREFIX}{token[:12]}"
        path.write_text(token)
        self.check = (str(path), token)
        try:
            self.client.wait_for_workers(1, timeout=self.spec.start_timeout)
        except TimeoutError as exc:
            raise RuntimeError(f"no Dask worker started within {self.spec.start_timeout:.0f} s ({describe(self.spec)}); "
                               "check the job queue and the worker logs") from exc  # fmt: skip
        res = self.client.run(read_token, str(path), token, on_error="return")
        bad = {w: r for w, r in res.items() if isinstance(r, BaseException)}
        if bad:
            lines = "\n".join(f"  {w}: {r}" for w, r in sorted(bad.items()))
            raise RuntimeError(f"{len(bad)} of {len(res)} Dask worker(s) cannot see {folder}; it must be on a "
                               f"filesystem every worker shares (docs/CLUSTER.md):\n{lines}")  # fmt: skip
        self._print(f"dask: {len(res)} worker(s) see {folder}")
        return sorted(set(res.values()))

    def executor(self) -> DaskExecutor:
        return DaskExecutor(self.client, gpu=self.has_gpus, retries=self.spec.retries, check=self.check)

    def submit(self, fn: Callable[..., Any], *args: Any, gpu: bool = False, key: str | None = None, **kwargs: Any):
        """A Dask future of fn(*args, **kwargs), guarded by the shared-folder check, GPU-tagged when asked."""
        opts: dict[str, Any] = {"pure": False, "retries": self.spec.retries}
        if gpu:
            opts["resources"] = {"GPU": 1}
        if key:
            opts["key"] = f"{key}-{secrets.token_hex(4)}"
        return self.client.submit(guarded, self.check, fn, args, kwargs, **opts)


def describe(spec: ClusterSpec) -> str:
    if spec.kind == "local":
        return f"LocalCluster of {spec.n_workers} worker process(es)"
    if spec.kind == "tcp":
        return f"scheduler {spec.address}"
    opts = {k: v for k, v in asdict(spec.slurm).items() if v not in (None, [], {})}
    return f"SLURMCluster {json.dumps(opts, sort_keys=True)}"


def _dashboard_note() -> str:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return " (served only when bokeh>=3.1 is installed)"
    return ""
