"""Independent tasks run through an executor: a local process pool by default, serial for debugging.

A task is a top-level function, its keyword arguments (plain data and paths) and the file it writes. A task whose
output already exists is skipped, so a killed run resumes where it stopped. Any executor with the
`concurrent.futures.Executor` interface can take the pool's place: `precompute.cluster.DaskExecutor` runs the tasks
on a Dask cluster (`matter-align analyze --cluster ...`), where every task reads and writes the shared work folder;
a task whose worker dies is run again by the scheduler, and its atomic write means no partial file is left.
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Task:
    name: str
    fn: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)
    output: Path | None = None

    def done(self) -> bool:
        return self.output is not None and Path(self.output).exists()


def run_tasks(
    tasks: Iterable[Task], jobs: int = 1, executor: cf.Executor | None = None, progress: bool = True
) -> dict[str, str]:
    """Run every task not yet done; returns {task name: "done" | "skipped" | "failed: ..."}; raises if any failed."""
    tasks = list(tasks)
    status: dict[str, str] = {t.name: "skipped" for t in tasks if t.done()}
    todo = [t for t in tasks if not t.done()]
    bar = _bar(len(todo), progress)
    if executor is None and jobs <= 1:
        for t in todo:
            t.fn(**t.kwargs)
            status[t.name] = "done"
            bar.update(1)
    else:
        own = executor is None
        pool = executor or cf.ProcessPoolExecutor(max_workers=jobs)
        try:
            futures = {pool.submit(t.fn, **t.kwargs): t for t in todo}
            for fut in cf.as_completed(futures):
                t = futures[fut]
                exc = fut.exception()
                status[t.name] = "done" if exc is None else f"failed: {type(exc).__name__}: {exc}"
                bar.update(1)
        finally:
            if own:
                pool.shutdown()
    bar.close()
    failed = {k: v for k, v in status.items() if v.startswith("failed")}
    if failed:
        raise RuntimeError("analysis tasks failed:\n" + "\n".join(f"  {k}: {v}" for k, v in failed.items()))
    return status


def _bar(total: int, enabled: bool):
    try:
        from tqdm import tqdm

        return tqdm(total=total, disable=not enabled, file=sys.stderr, desc="analysis tasks", unit="task")
    except ImportError:  # tqdm is optional for the analysis stage

        class _Null:
            def update(self, _n):
                pass

            def close(self):
                pass

        return _Null()
