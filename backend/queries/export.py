"""CSV export: bytes of a table and a file name that keeps its context."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd


def to_csv(df: pd.DataFrame) -> bytes:
    """UTF-8 CSV bytes of df without the index; list cells are joined with ';'."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object and any(isinstance(v, list | tuple | np.ndarray) for v in out[c]):
            out[c] = [";".join(map(str, v)) if isinstance(v, list | tuple | np.ndarray) else v for v in out[c]]
    return out.to_csv(index=False, lineterminator="\n").encode("utf-8")


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def csv_filename(
    release_id: str,
    dataset: str | None = None,
    metric: str | None = None,
    k: int | None = None,
    kind: str | None = None,
) -> str:
    """`matter-align_<release>[_<kind>][_<dataset>][_<metric>][_k<k>].csv`, every part reduced to [A-Za-z0-9._-]."""
    parts = ["matter-align", release_id, kind, dataset, metric, None if k is None else f"k{int(k)}"]
    clean = [_SAFE.sub("-", str(p)).strip("-.") for p in parts if p not in (None, "")]
    return "_".join(p for p in clean if p) + ".csv"
