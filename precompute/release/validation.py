"""Validation of release tables against their schemas (precompute/release/schema.py): types, nullability,
allowed values, finiteness, keys and cross-table references; every error names the table, the column and the row.

Imports only numpy, pandas and pyarrow: the backend (no torch) uses it too.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa

from .schema import _ARROW, METRICS, REQUIRED_TABLES, TABLES, Column, TableSchema


class SchemaError(ValueError):
    """A table does not match its schema; the message names the table, the column and the row."""

    def __init__(self, table: str, column: str | None, row: int | None, problem: str):
        self.table, self.column, self.row, self.problem = table, column, row, problem
        where = f"table {table!r}"
        if column is not None:
            where += f", column {column!r}"
        if row is not None:
            where += f", row {row}"
        super().__init__(f"{where}: {problem}")


def _is_null(v) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _coerce_value(table: str, col: Column, row: int, v):
    """Return v converted to the column's Python type, or raise SchemaError."""
    if col.dtype == "string":
        if not isinstance(v, str):
            raise SchemaError(table, col.name, row, f"expected a string, got {type(v).__name__} {v!r}")
        return v
    if col.dtype == "bool":
        if isinstance(v, bool | np.bool_):
            return bool(v)
        raise SchemaError(table, col.name, row, f"expected a bool, got {type(v).__name__} {v!r}")
    if col.dtype == "int64":
        if isinstance(v, bool | np.bool_):
            raise SchemaError(table, col.name, row, f"expected an integer, got bool {v!r}")
        if isinstance(v, int | np.integer):
            return int(v)
        if isinstance(v, float | np.floating) and math.isfinite(v) and float(v).is_integer():
            return int(v)
        raise SchemaError(table, col.name, row, f"expected an integer, got {type(v).__name__} {v!r}")
    if col.dtype in ("float64", "float32"):
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
            raise SchemaError(table, col.name, row, f"expected a number, got {type(v).__name__} {v!r}")
        f = float(v)
        if col.finite and not math.isfinite(f):
            raise SchemaError(table, col.name, row, f"value must be finite, got {f!r}")
        return f
    if col.dtype == "list<string>":
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if not isinstance(v, list | tuple):
            raise SchemaError(table, col.name, row, f"expected a list of strings, got {type(v).__name__} {v!r}")
        for item in v:
            if not isinstance(item, str):
                raise SchemaError(table, col.name, row, f"expected a list of strings, found item {item!r}")
        return list(v)
    raise AssertionError(col.dtype)  # pragma: no cover


def _key_repr(df: pd.DataFrame, schema: TableSchema, row: int) -> str:
    parts = [f"{k}={df.iloc[row][k]!r}" for k in schema.key if k in df.columns]
    return ", ".join(parts)


def validate_table(name: str, df: pd.DataFrame) -> pa.Table:
    """Check `df` against TABLES[name] and return it as a pyarrow Table with the exact schema.

    Checks: the set of columns (missing or unknown columns are errors), dtypes, nulls where a value is required
    (NaN counts as null; in a nullable float column NaN is stored as null), enums, finiteness of floats, bounds,
    and uniqueness of the table key. Raises SchemaError naming table, column and row (the row's position in df).
    """
    if name not in TABLES:
        raise SchemaError(name, None, None, f"unknown table; known tables: {sorted(TABLES)}")
    schema = TABLES[name]
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(name, None, None, f"expected a pandas DataFrame, got {type(df).__name__}")
    absent_optional = [c.name for c in schema.columns if c.optional and c.name not in df.columns]
    if absent_optional:
        df = df.assign(**{c: [None] * len(df) for c in absent_optional})
    missing = [c for c in schema.column_names if c not in df.columns]
    if missing:
        raise SchemaError(name, missing[0], None, f"missing column(s) {missing}")
    unknown = [c for c in df.columns if c not in schema.column_names]
    if unknown:
        raise SchemaError(name, str(unknown[0]), None, f"unknown column(s) {unknown}; expected {schema.column_names}")
    if df.columns.duplicated().any():
        raise SchemaError(name, str(df.columns[df.columns.duplicated()][0]), None, "duplicate column name")

    arrays = []
    for col in schema.columns:
        values = df[col.name].tolist()
        out = []
        for i, v in enumerate(values):
            if not isinstance(v, list | tuple | np.ndarray) and _is_null(v):
                if not col.nullable:
                    raise SchemaError(
                        name, col.name, i, f"null/NaN where a value is required ({_key_repr(df, schema, i)})"
                    )
                out.append(None)
                continue
            x = _coerce_value(name, col, i, v)
            if col.enum is not None and x not in col.enum:
                raise SchemaError(name, col.name, i, f"{x!r} is not one of {list(col.enum)}")
            if col.min is not None and x < col.min:
                raise SchemaError(name, col.name, i, f"{x!r} is below the minimum {col.min}")
            if col.max is not None and x > col.max:
                raise SchemaError(name, col.name, i, f"{x!r} is above the maximum {col.max}")
            out.append(x)
        arrays.append(pa.array(out, type=_ARROW[col.dtype]))
    table = pa.Table.from_arrays(arrays, schema=schema.arrow_schema())

    key_df = df[list(schema.key)].astype(object).where(df[list(schema.key)].notna(), None)
    dup = key_df.duplicated(keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise SchemaError(name, ",".join(schema.key), i, f"duplicate key ({_key_repr(df, schema, i)})")
    _table_rules(name, df)
    return table


def _table_rules(name: str, df: pd.DataFrame) -> None:
    """Rules within one table beyond per-column checks."""
    if name in ("pairwise", "trees", "pairwise_null", "pairwise_calibration"):
        for i, (metric, k) in enumerate(zip(df["metric"].tolist(), df["k"].tolist(), strict=True)):
            has_k = not _is_null(k)
            if METRICS[metric].has_k != has_k:
                need = "requires k" if METRICS[metric].has_k else "must have k null"
                raise SchemaError(name, "k", i, f"metric {metric!r} {need}, got k={k!r}")
    if name in ("pairwise", "intrinsic_dim"):
        # The point estimate need not lie inside a bootstrap percentile interval, so only low <= high is checked.
        lo, hi = df["ci_low"].tolist(), df["ci_high"].tolist()
        for i in range(len(df)):
            if _is_null(lo[i]) != _is_null(hi[i]):
                raise SchemaError(name, "ci_low", i, "ci_low and ci_high must both be given or both be null")
            if not _is_null(lo[i]) and lo[i] > hi[i]:
                raise SchemaError(name, "ci_low", i, f"ci_low {lo[i]!r} > ci_high {hi[i]!r}")


def validate_release_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pa.Table]:
    """Validate every table and the references between them; return the Arrow tables."""
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise SchemaError(missing[0], None, None, f"required table(s) missing: {missing}")
    out = {name: validate_table(name, df) for name, df in tables.items()}
    model_ids = set(tables["models"]["model_id"])
    dataset_ids = set(tables["datasets"]["dataset_id"])

    def refs(table: str, column: str, allowed: set[str], what: str) -> None:
        if table not in tables:
            return
        for i, v in enumerate(tables[table][column].tolist()):
            if v not in allowed:
                raise SchemaError(table, column, i, f"unknown {what} {v!r} (not in the {what}s table)")

    for t in ("pairwise", "pairwise_null", "pairwise_calibration"):
        refs(t, "model_a", model_ids, "model")
        refs(t, "model_b", model_ids, "model")
    per_model = ("intrinsic_dim", "energy", "neighbours", "neighbour_similarity", "neighbours_euclidean",
                 "neighbours_deep", "neighbours_euclidean_deep")  # fmt: skip
    for t in per_model:
        refs(t, "model_id", model_ids, "model")
    for t in ("pairwise", "pairwise_null", "pairwise_calibration", "trees", "samples", "sample_structures", *per_model):
        refs(t, "dataset_id", dataset_ids, "dataset")
    if "samples" in tables:
        s = tables["samples"].reset_index(drop=True)
        for ds, grp in s.groupby("dataset_id", sort=False):
            ids = grp["sample_id"]
            if ids.duplicated().any():
                i = int(grp.index[ids.duplicated()].tolist()[0])
                raise SchemaError("samples", "sample_id", i, f"duplicate sample id in dataset {ds!r}")
    return out
