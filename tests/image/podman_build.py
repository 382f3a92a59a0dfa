"""Build and run the hosted image with podman on a machine that reaches the package registries but no container
registry (this project's machines and CI): a local Debian base, the host's pip configuration, a runc wrapper.

    python3 tests/image/podman_build.py [--tag matter-align] [--run PORT]

- base: `tests/image/make_base.sh` (debootstrap bookworm minbase + python3, cached tarball) -> BASE_IMAGE;
- pip: the host's merged configuration (`pip config list`: files and PIP_* variables) written to one pip.conf and
  mounted read-only at /etc/pip.conf, together with every local path it names (find-links folders, file:// indexes,
  the CA bundle, constraint files), so RUN steps resolve packages exactly as the host does (`--network host`);
- run: `--runtime tests/image/runc-no-rlimits` (the sandbox forbids the rlimits runc would set).
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BASE_IMAGE = "localhost/matter-align-base"
RUNTIME = HERE / "runc-no-rlimits"
# pip config keys whose values name local files or folders that RUN steps must see
_PATH_KEYS = {"cert", "client-cert", "constraint", "requirement", "find-links", "index-url", "extra-index-url"}


def pip_config(python: str = sys.executable) -> dict[tuple[str, str], str]:
    """The host pip's effective configuration, {(section, key): value}, later sources (env) overriding earlier ones."""
    out = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    conf: dict[tuple[str, str], str] = {}
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        if not sep or "." not in name:
            continue
        section, key = name.rsplit(".", 1)
        conf[("global" if section == ":env:" else section, key)] = ast.literal_eval(value)
    return conf


def local_paths(conf: dict[tuple[str, str], str]) -> list[str]:
    """Existing absolute paths named by path-like pip settings (plain paths; file:// indexes: the index's parent)."""
    paths: list[str] = []
    for (_, key), value in conf.items():
        if key not in _PATH_KEYS:
            continue
        for token in value.split():
            p = token.removeprefix("file://").rstrip("/")
            if key.endswith("index-url"):  # a local index links to its files beside it (../../files/...)
                p = os.path.dirname(p)
            if p.startswith("/") and os.path.exists(p) and p not in paths:
                paths.append(p)
    return paths


def pip_mounts(workdir: Path, python: str = sys.executable) -> list[str]:
    """`-v` arguments: the merged pip.conf at /etc/pip.conf and the local paths it names, all read-only."""
    conf = pip_config(python)
    sections: dict[str, list[str]] = {}
    for (section, key), value in conf.items():
        sections.setdefault(section, []).append(f"{key} = {value}")
    pip_conf = workdir / "pip.conf"
    pip_conf.write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items()))
    args = ["-v", f"{pip_conf}:/etc/pip.conf:ro"]
    for p in local_paths(conf):
        args += ["-v", f"{p}:{p}:ro"]
    return args


def make_base(image: str = BASE_IMAGE, timeout: float = 900) -> float:
    """Ensure the local base image exists (tests/image/make_base.sh); returns the seconds it took."""
    t = time.perf_counter()
    subprocess.run(["bash", str(HERE / "make_base.sh"), image], check=True, timeout=timeout)
    return time.perf_counter() - t


def build_command(tag: str, base: str, workdir: Path) -> list[str]:
    """The podman build line: docker format (OCI images drop HEALTHCHECK), host network, pip config mounted."""
    return [
        "podman", "build", "--format", "docker", "--network", "host", "--build-arg", f"BASE={base}",
        *pip_mounts(workdir), "-t", tag, str(ROOT),
    ]  # fmt: skip


def run_command(name: str, tag: str, port: int, container_port: int = 8501) -> list[str]:
    """The podman run line: detached, the runc wrapper, the app's port published on 127.0.0.1:<port>."""
    return [
        "podman", "run", "-d", "--name", name, "--runtime", str(RUNTIME), "-e", f"PORT={container_port}",
        "-p", f"127.0.0.1:{port}:{container_port}", tag,
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tag", default="localhost/matter-align")
    ap.add_argument("--base", default=BASE_IMAGE, help="base image; the default is built by make_base.sh")
    ap.add_argument("--run", type=int, metavar="PORT", help="then serve it on http://127.0.0.1:PORT")
    a = ap.parse_args(argv)
    if shutil.which("podman") is None:
        sys.exit("podman is not installed: make image-tools")
    if a.base == BASE_IMAGE:
        make_base(a.base)

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(build_command(a.tag, a.base, Path(tmp)), check=True)
    if a.run:
        subprocess.run(["podman", "rm", "-f", "matter-align"], capture_output=True)
        subprocess.run(run_command("matter-align", a.tag, a.run), check=True)
        print(f"serving on http://127.0.0.1:{a.run}  (stop: podman rm -f matter-align)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
