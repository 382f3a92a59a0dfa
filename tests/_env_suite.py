"""Run one folder of tests inside another virtual environment of this repository (tests/test_env_*.py).

Where that environment is missing the calling test SKIPS with the reason, except under CI (env var CI set), where it
FAILS: CI must build every environment it claims to test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def env_python(venv: str, create: str, what: str) -> Path:
    """`<repo>/<venv>/bin/python`; the test skips with the reason where it is missing (fails under CI)."""
    python = ROOT / venv / "bin" / "python"
    if not python.exists():
        msg = f"{python} is missing: create it with `bash {create}`"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the {what} environment is not built. {msg}")
        pytest.skip(msg)
    return python


def run_suite_in(venv: str, folder: str, create: str, what: str, allow_skips: bool = True) -> None:
    """`pytest -q tests/<folder>` with `<repo>/<venv>/bin/python` (one OpenMP thread, offline hub); the test fails
    with the output's tail unless it passes (and, with `allow_skips=False`, skips nothing). `create` is the script
    that builds the environment, `what` its name in the messages."""
    python = env_python(venv, create, what)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", folder],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout, tail
    if not allow_skips:
        assert " skipped" not in proc.stdout, tail
