"""Helpers for tests/test_cluster.py that Dask workers and shard subprocesses import by name.

- ``KillOnceAdapter``: the counting test adapter, except that its first ``embed`` call anywhere (marked by the file
  ``$MATTER_ALIGN_TEST_KILL_MARKER``) SIGKILLs the Dask worker process that started the shard (its parent), as an
  out-of-memory killer or a pre-empted node would.
- ``kill_once``: an analysis task wrapper that SIGKILLs its own Dask worker the first time (marked by a file).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests._helpers_extract import CountingAdapter


def _first_time(marker: str) -> bool:
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # atomic: exactly one caller wins
    except FileExistsError:
        return False
    os.close(fd)
    return True


class KillOnceAdapter(CountingAdapter):
    def embed(self, samples, batch_size: int = 32):
        marker = os.environ.get("MATTER_ALIGN_TEST_KILL_MARKER")
        if marker and _first_time(marker):
            os.kill(os.getppid(), signal.SIGKILL)  # the Dask worker; this process follows (PR_SET_PDEATHSIG)
            time.sleep(30)
        return super().embed(samples, batch_size)


def kill_once(marker: str, fn: Any, **kwargs: Any) -> Any:
    if _first_time(marker):
        Path(marker).with_suffix(".pid").write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return fn(**kwargs)
