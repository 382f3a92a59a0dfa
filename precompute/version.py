"""The code version recorded next to every artefact the pipeline writes (embeddings, metrics, releases)."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


@functools.lru_cache(maxsize=8)
def code_version(repo: str | os.PathLike[str] | None = None) -> str:
    """The git commit of the checkout this code runs from, e.g. ``"3f1fa0c2b9d1"`` or ``"3f1fa0c2b9d1+dirty"``.

    ``+dirty`` means tracked files differ from the commit (untracked files do not count). Outside a git checkout
    (an installed wheel, a Docker image without .git) it is ``"matter-align <package version>"``. The environment
    variable ``MATTER_ALIGN_CODE_VERSION`` overrides both (for builds that know their commit but carry no .git).
    """
    override = os.environ.get("MATTER_ALIGN_CODE_VERSION")
    if override:
        return override
    root = Path(repo) if repo is not None else REPO_ROOT
    if (root / ".git").exists():
        commit = _git(["rev-parse", "--short=12", "HEAD"], root)
        if commit:
            dirty = _git(["status", "--porcelain", "--untracked-files=no"], root)
            return commit + ("+dirty" if dirty else "")
    return f"matter-align {package_version()}"


def package_version() -> str:
    """The installed distribution's version, else pyproject.toml's ``version`` next to this package, or "unknown"."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return "unknown"
    try:
        return version("matter-align")
    except PackageNotFoundError:
        pass
    try:  # a source tree that is not installed (e.g. copied to a GPU machine): read pyproject.toml
        import tomllib

        return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, ValueError):
        return "unknown"
