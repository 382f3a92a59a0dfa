"""Value-level verification of an opened release, run by `Release.open` after the checksums (issue 12).

Checksums only prove that the bytes are the ones the manifest lists; a manifest re-signed over edited Parquet still
passes them. Here every table is checked against `precompute.release.schema.TABLES` by SQL over the loaded DuckDB
tables (fast enough for millions of rows): required values non-null, floats finite (no NaN/inf), enums in their
vocabulary, numeric bounds, unique table keys, metric/k consistency, and every model/dataset/metric id defined
(`models`, `datasets`, `schema.METRICS`). Rows are numbered from 0 in file order. Failures raise `ReleaseValueError`
(a `ReleaseError`, so a `ValueError`) naming the table, the column and the row.
"""

from __future__ import annotations

import duckdb

from precompute.release.schema import METRICS, TABLES


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _fail(table: str, column: str, row, problem: str):
    from .release import ReleaseValueError

    raise ReleaseValueError(table, column, None if row is None else int(row), problem)


def _first(con: duckdb.DuckDBPyConnection, sql: str, params=()):
    return con.execute(sql, list(params)).fetchone()


def validate_values(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...] | list[str]) -> None:
    """Raise ReleaseValueError for the first bad value in the loaded tables (names: the tables the release has)."""
    for table in tables:
        schema = TABLES[table]
        t = _q(table)
        for col in schema.columns:
            c = _q(col.name)
            if not col.nullable:
                r = _first(con, f"SELECT rowid FROM {t} WHERE {c} IS NULL ORDER BY rowid LIMIT 1")
                if r:
                    _fail(table, col.name, r[0], "null where a value is required")
            if col.dtype in ("float64", "float32") and col.finite:
                r = _first(con, f"SELECT rowid, {c} FROM {t} WHERE isnan({c}) OR isinf({c}) ORDER BY rowid LIMIT 1")
                if r:
                    _fail(table, col.name, r[0], f"value must be finite, got {r[1]!r}")
            if col.enum is not None:
                r = _first(
                    con,
                    f"SELECT rowid, {c} FROM {t} WHERE {c} IS NOT NULL AND NOT list_contains(?, {c}) "
                    "ORDER BY rowid LIMIT 1",
                    [list(col.enum)],
                )
                if r:
                    _fail(table, col.name, r[0], f"{r[1]!r} is not one of {list(col.enum)}")
            if col.min is not None:
                r = _first(con, f"SELECT rowid, {c} FROM {t} WHERE {c} < ? ORDER BY rowid LIMIT 1", [col.min])
                if r:
                    _fail(table, col.name, r[0], f"{r[1]!r} is below the minimum {col.min}")
            if col.max is not None:
                r = _first(con, f"SELECT rowid, {c} FROM {t} WHERE {c} > ? ORDER BY rowid LIMIT 1", [col.max])
                if r:
                    _fail(table, col.name, r[0], f"{r[1]!r} is above the maximum {col.max}")
        key = ", ".join(_q(k) for k in schema.key)
        # a hash aggregate answers "any duplicate?" several times faster than the window over millions of rows
        # (the scoring lists); the window, which names the first duplicated row, runs only when there is one
        dup = _first(con, f"SELECT 1 FROM {t} GROUP BY {key} HAVING count(*) > 1 LIMIT 1")
        r = dup and _first(
            con,
            f"SELECT rowid FROM (SELECT rowid, row_number() OVER (PARTITION BY {key} ORDER BY rowid) AS n FROM {t}) "
            "WHERE n > 1 ORDER BY rowid LIMIT 1",
        )
        if r:
            vals = _first(con, f"SELECT {key} FROM {t} WHERE rowid = ?", [r[0]])
            desc = ", ".join(f"{k}={v!r}" for k, v in zip(schema.key, vals, strict=True))
            _fail(
                table, ",".join(schema.key), r[0], f"duplicate key ({desc}); a later row would override an earlier one"
            )
        names = schema.column_names
        if "metric" in names and "k" in names:
            with_k = [m for m, d in METRICS.items() if d.has_k]
            r = _first(
                con,
                f"SELECT rowid, metric, k FROM {t} WHERE list_contains(?, metric) <> (k IS NOT NULL) "
                "ORDER BY rowid LIMIT 1",
                [with_k],
            )
            if r:
                need = "requires k" if r[1] in with_k else "must have k null"
                _fail(table, "k", r[0], f"metric {r[1]!r} {need}, got k={r[2]!r}")
        if "ci_low" in names and "ci_high" in names:
            r = _first(
                con,
                f"SELECT rowid FROM {t} WHERE (ci_low IS NULL) <> (ci_high IS NULL) OR ci_low > ci_high "
                "ORDER BY rowid LIMIT 1",
            )
            if r:
                _fail(table, "ci_low", r[0], "ci_low and ci_high must both be null, or ci_low <= ci_high")
        refs = [(c, "models", "model_id", "model") for c in ("model_a", "model_b", "model_id") if c in names]
        if table not in ("models", "datasets"):
            refs += [(c, "datasets", "dataset_id", "dataset") for c in ("dataset_id",) if c in names]
        for column, ref_table, ref_col, what in refs:
            if table == ref_table:
                continue
            r = _first(
                con,
                f"SELECT rowid, {_q(column)} FROM {t} WHERE {_q(column)} NOT IN "
                f"(SELECT {_q(ref_col)} FROM {_q(ref_table)}) ORDER BY rowid LIMIT 1",
            )
            if r:
                _fail(table, column, r[0], f"unknown {what} {r[1]!r} (not in the {ref_table!r} table)")
    if "samples" in tables:
        dup = _first(con, "SELECT 1 FROM samples GROUP BY dataset_id, sample_id HAVING count(*) > 1 LIMIT 1")
        r = dup and _first(
            con,
            "SELECT rowid, dataset_id, sample_id FROM (SELECT rowid, dataset_id, sample_id, row_number() OVER "
            "(PARTITION BY dataset_id, sample_id ORDER BY rowid) AS n FROM samples) WHERE n > 1 ORDER BY rowid LIMIT 1",
        )
        if r:
            _fail("samples", "sample_id", r[0], f"duplicate sample id {r[2]!r} in dataset {r[1]!r}")
