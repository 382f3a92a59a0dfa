"""Reading a user's embedding file: formats without pickle, checked against the release's samples.

Accepted: `.npy` (one 2-D array), `.npz` (one 2-D array, or `embeddings` plus an optional `sample_id` string array),
`.parquet` / `.csv` (numeric feature columns, plus an optional `sample_id` column). Without sample ids the rows must
be in the release's sample order (`samples.position`); with them, rows are put into that order and every id must be
one of the dataset's, each exactly once. Every problem is a `ScoringInputError` that names the file and the row or
sample; nothing is guessed, nothing is written.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

FORMATS = (".npy", ".npz", ".parquet", ".csv")
MAX_UPLOAD_BYTES = 200 * 2**20  # the dashboard's limit; the CLI reads any size


class ScoringInputError(ValueError):
    """A user's embeddings cannot be scored; the message names the file and the row or sample."""


def _table_to_arrays(df: pd.DataFrame, name: str) -> tuple[np.ndarray, list[str] | None]:
    ids = None
    if "sample_id" in df.columns:
        ids = [str(v) for v in df.pop("sample_id").tolist()]
    if df.shape[1] == 0:
        raise ScoringInputError(f"{name}: no feature columns (only 'sample_id')")
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])]
    if bad:
        col = bad[0]
        not_number = pd.to_numeric(df[col], errors="coerce").isna().to_numpy()
        row = int(np.flatnonzero(not_number)[0]) if not_number.any() else 0
        raise ScoringInputError(
            f"{name}: column {col!r} is not numeric (row {row}: {df[col].iloc[row]!r}); every column but "
            "'sample_id' must be a feature"
        )
    return df.to_numpy(dtype=np.float64), ids


def read_embeddings(source: str | Path | bytes, name: str | None = None) -> tuple[np.ndarray, list[str] | None]:
    """(X, sample_ids or None) from a path, or from bytes with `name` giving the file name (for its extension)."""
    if isinstance(source, bytes | bytearray):
        if not name:
            raise ScoringInputError("embeddings given as bytes need a file name (for the format)")
        data, label = bytes(source), name
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise ScoringInputError(f"{label}: file not found")
        data = path.read_bytes()
    ext = next((e for e in FORMATS if label.lower().endswith(e)), None)
    if ext is None:
        raise ScoringInputError(f"{label}: unsupported format; use one of {', '.join(FORMATS)} (no pickle)")
    if not data:
        raise ScoringInputError(f"{label}: the file is empty")
    try:
        if ext == ".npy":
            return _as_matrix(np.load(io.BytesIO(data), allow_pickle=False), label), None
        if ext == ".npz":
            return _read_npz(data, label)
        if ext == ".parquet":
            return _table_to_arrays(pd.read_parquet(io.BytesIO(data)), label)
        return _table_to_arrays(pd.read_csv(io.BytesIO(data)), label)
    except ScoringInputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ScoringInputError(f"{label}: not a readable {ext} file: {e}") from e
    except Exception as e:  # noqa: BLE001 - pyarrow raises its own types for corrupt files
        raise ScoringInputError(f"{label}: not a readable {ext} file: {type(e).__name__}: {e}") from e


def _read_npz(data: bytes, label: str) -> tuple[np.ndarray, list[str] | None]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        keys = list(z.files)
        if "embeddings" in keys:
            X = z["embeddings"]
        elif len([k for k in keys if k != "sample_id"]) == 1:
            X = z[next(k for k in keys if k != "sample_id")]
        else:
            raise ScoringInputError(f"{label}: holds arrays {keys}; name the embedding array 'embeddings'")
        ids = [str(v) for v in z["sample_id"].tolist()] if "sample_id" in keys else None
    return _as_matrix(X, label), ids


def _as_matrix(X: np.ndarray, label: str) -> np.ndarray:
    if X.dtype == object or not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ScoringInputError(f"{label}: array of dtype {X.dtype}; expected numbers")
    if X.ndim != 2:
        raise ScoringInputError(f"{label}: array of shape {X.shape}; expected (samples, features)")
    return np.asarray(X, dtype=np.float64)


def align_to_samples(
    X: np.ndarray, ids: Sequence[str] | None, sample_ids: Sequence[str], label: str, dataset: str
) -> np.ndarray:
    """X with its rows in the release's sample order, checked: row count, ids, finiteness, not constant."""
    n = len(sample_ids)
    if ids is None:
        if X.shape[0] != n:
            raise ScoringInputError(
                f"{label}: {X.shape[0]} rows, but dataset {dataset!r} has {n} samples; give one row per sample in "
                "the release's order (see its sample download) or a 'sample_id' column"
            )
        out = X
    else:
        if len(ids) != X.shape[0]:
            raise ScoringInputError(f"{label}: {len(ids)} sample ids for {X.shape[0]} rows")
        where = {s: i for i, s in enumerate(sample_ids)}
        seen: dict[str, int] = {}
        order = np.empty(n, dtype=np.int64)
        for row, s in enumerate(ids):
            if s not in where:
                raise ScoringInputError(f"{label}: row {row}: sample id {s!r} is not a sample of dataset {dataset!r}")
            if s in seen:
                raise ScoringInputError(f"{label}: rows {seen[s]} and {row} both give sample {s!r}")
            seen[s] = row
            order[where[s]] = row
        if len(seen) != n:
            missing = [s for s in sample_ids if s not in seen]
            raise ScoringInputError(
                f"{label}: {len(missing)} of the {n} samples of {dataset!r} are missing, e.g. {missing[0]!r}; "
                "every sample must be embedded"
            )
        out = X[order]
    bad = ~np.isfinite(out)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ScoringInputError(
            f"{label}: sample {sample_ids[r]!r} (position {r}), feature {c}: value {out[r, c]!r}; values must be finite"
        )
    if X.shape[1] == 0:
        raise ScoringInputError(f"{label}: no features")
    if np.all(out == out[0]):
        raise ScoringInputError(f"{label}: every row is identical; a constant embedding has no neighbours")
    return out


def duplicate_rows(X: np.ndarray) -> int:
    """How many rows repeat an earlier row (kept, as the analysis keeps them: ties go to the lower position)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    # equal rows have equal projections (the same arithmetic); only rows sharing a projection are compared exactly
    h = X @ np.random.default_rng(0).standard_normal(X.shape[1])
    order = np.argsort(h, kind="stable")
    hs = h[order]
    same = np.flatnonzero(hs[1:] == hs[:-1])
    if not same.size:
        return 0
    _, first = np.unique(X[np.unique(np.r_[order[same], order[same + 1]])], axis=0, return_index=True)
    return int(np.unique(np.r_[order[same], order[same + 1]]).size - first.size)
