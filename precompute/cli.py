"""The ``matter-align`` command line.

Each subcommand is one module ``precompute/cli_<name>.py`` (``cli_extract`` -> ``matter-align extract``) that defines

    HELP: str                                       one line for ``matter-align --help``
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int        the exit status

Subcommand modules are found by name, so adding ``precompute/cli_analyze.py`` adds ``matter-align analyze`` with no
change here. Keep their module-level imports light (no torch, no model library): ``matter-align --help`` imports every
one of them. Heavy imports go inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

import precompute

PREFIX = "cli_"
ORDER = ("extract", "analyze", "release")  # the pipeline's order in --help; others follow alphabetically


def subcommand_modules() -> dict[str, str]:
    """Subcommand name -> module name, for every ``precompute/cli_*.py``."""
    found = {
        m.name[len(PREFIX) :].replace("_", "-"): f"precompute.{m.name}"
        for m in pkgutil.iter_modules(precompute.__path__)
        if m.name.startswith(PREFIX) and not m.ispkg
    }
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(ORDER)), kv[0])))


def build_parser(modules: dict[str, ModuleType] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matter-align",
        description="matter-align: embeddings -> alignment metrics -> a versioned release -> a dashboard.",
    )
    parser.add_argument("--version", action="version", version=_version_string())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if modules is None:
        modules = {}
        for name, mod_name in subcommand_modules().items():
            try:
                modules[name] = importlib.import_module(mod_name)
            except Exception as e:  # noqa: BLE001 - one broken subcommand must not hide the others
                sub.add_parser(name, help=f"(unavailable: {type(e).__name__}: {e})")
    for name, mod in modules.items():
        help_text = getattr(mod, "HELP", "")
        p = sub.add_parser(name, help=help_text, description=getattr(mod, "DESCRIPTION", None) or help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _version_string() -> str:
    from precompute.version import code_version, package_version

    return f"matter-align {package_version()} ({code_version()})"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    modules: dict[str, ModuleType] | None = None
    available = subcommand_modules()
    if argv and argv[0] in available:  # import only the subcommand asked for
        modules = {argv[0]: importlib.import_module(available[argv[0]])}
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
