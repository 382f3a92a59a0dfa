"""Dataset options: extra loader keywords (e.g. the PDB length filter) given on the command line as KEY=VALUE.

    matter-align extract --dataset pdb --path DIR --dataset-option min_length=40 --dataset-option max_length=1000

Each KEY must be a keyword parameter of the dataset's loader (its signature is the contract), taking a scalar:
int, float, bool or str, optionally None (written ``none``). The parsed options are part of the store's dataset
key (precompute/extract/store.py), so embeddings of a filtered and an unfiltered set never share a folder, and they
are recorded with every entry, analysis and release. Parameters that are file paths (e.g. ``pisces``), outputs
(``skipped``) or collections are refused: the key would record a name, not the content.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from precompute.datasets.base import DatasetError

# loader parameters that the dataset key already carries (or that only change how, not what, is loaded)
_RESERVED = ("n", "seed", "path")
_SCALARS = (bool, int, float, str)


def _loader(dataset_id: str):
    from precompute.datasets import _LOADERS, _check_id

    _check_id(dataset_id)
    module_name, func_name = _LOADERS[dataset_id][0].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _scalar_types(hint: Any) -> tuple[set[type], bool] | None:
    """(scalar types, accepts None) of a parameter's annotation; None when it is not scalar-only."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    allow_none = type(None) in args
    kinds = {a for a in args if a is not type(None)}
    if not kinds or not kinds <= set(_SCALARS):
        return None
    return kinds, allow_none


def option_types(dataset_id: str) -> dict[str, tuple[set[type], bool]]:
    """The loader keywords settable as dataset options: name -> (scalar types, accepts None)."""
    fn = _loader(dataset_id)
    hints = typing.get_type_hints(fn)
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in _RESERVED or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        kinds = _scalar_types(hints.get(name, type(p.default) if p.default is not p.empty else Any))
        if kinds is not None:
            out[name] = kinds
    return out


def _convert(dataset_id: str, name: str, raw: Any, kinds: set[type], allow_none: bool) -> Any:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "null")):
        if allow_none:
            return None
        raise DatasetError(f"{dataset_id}: dataset option {name}={raw!r}: None is not allowed")
    if not isinstance(raw, str):  # from a stored key or a Python caller: check the type, do not coerce
        if type(raw) in kinds or (type(raw) is int and float in kinds):
            return raw
        raise DatasetError(f"{dataset_id}: dataset option {name}={raw!r} is a {type(raw).__name__}, expected "
                           f"{' or '.join(sorted(k.__name__ for k in kinds))}")  # fmt: skip
    text = raw.strip()
    for kind in _SCALARS:  # bool before int before float before str: the strictest reading wins
        if kind not in kinds:
            continue
        if kind is bool and text.lower() in ("true", "false", "1", "0", "yes", "no"):
            return text.lower() in ("true", "1", "yes")
        if kind is int:
            try:
                return int(text)
            except ValueError:
                continue
        if kind is float:
            try:
                return float(text)
            except ValueError:
                continue
        if kind is str:
            return raw
    expected = " or ".join(sorted(k.__name__ for k in kinds)) + (" or none" if allow_none else "")
    raise DatasetError(f"{dataset_id}: dataset option {name}={raw!r} is not a valid {expected}")


def parse_dataset_options(dataset_id: str, values: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """KEY=VALUE strings (or a mapping) -> validated loader keywords, sorted by name. Raises DatasetError naming the
    key for an unknown key, a repeated key, a malformed item or a value of the wrong type."""
    if not values:
        return {}
    if isinstance(values, Mapping):
        items = list(values.items())
    else:
        items = []
        for v in values:
            name, sep, raw = str(v).partition("=")
            if not sep or not name.strip():
                raise DatasetError(f"{dataset_id}: dataset option {v!r} is not KEY=VALUE")
            items.append((name.strip(), raw))
    allowed = option_types(dataset_id)
    out: dict[str, Any] = {}
    for name, raw in items:
        if name in out:
            raise DatasetError(f"{dataset_id}: dataset option {name!r} given twice")
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            why = " (n, seed and path have their own flags)" if name in _RESERVED else ""
            if not why and name in inspect.signature(_loader(dataset_id)).parameters:
                why = " (a file, output or collection parameter of the loader; not settable as a dataset option)"
            raise DatasetError(f"{dataset_id}: unknown dataset option {name!r}{why}; options of this loader: {known}")
        out[name] = _convert(dataset_id, name, raw, *allowed[name])
    return dict(sorted(out.items()))


def option_args(options: Mapping[str, Any]) -> list[str]:
    """Parsed options back to ``--dataset-option KEY=VALUE`` arguments (for the worker subprocesses)."""
    out: list[str] = []
    for name, v in options.items():
        text = "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        out += ["--dataset-option", f"{name}={text}"]
    return out


def add_option_argument(p: Any) -> None:
    """The repeatable ``--dataset-option KEY=VALUE`` flag of extract, analyze and the extraction workers."""
    p.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="dataset_options",
        help="extra keyword of the dataset's loader, repeatable (e.g. min_length=40 for pdb); part of the dataset key",
    )
