"""Open a release read-only, verify it, and serve its tables through DuckDB.

`Release.open(path=None)` reads `manifest.json`, reads every file it lists once, checks its byte size, SHA-256 and
row count against the manifest (a corrupt, truncated, partial or mixed release is refused with the file named), checks
that the release id equals the folder name and the id recomputed from the content, loads the verified bytes into an in-memory DuckDB database, one table per release table (`models`, `pairwise`, ...), and verifies every value (`backend.validate`:
NaN/inf, duplicate keys, unknown model/dataset/metric ids, enums, bounds; `ReleaseValueError` names table, column, row).
Serving the very bytes that were verified means a file changed after opening cannot leak into a query. After loading,
DuckDB's file-system access is switched off and the configuration locked, so no query can read or write files.

Queries run on `release.cursor()` (one cursor per query: a DuckDB connection is not thread-safe; cursors are).
No torch, no model library: only duckdb, pyarrow, pandas.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute for the dataset filter
import pyarrow.parquet as pq

from precompute.release.schema import REQUIRED_TABLES, TABLES
from precompute.release.validation import SchemaError
from precompute.release.writer import make_release_id

from .validate import validate_values

DEFAULT_RELEASES_ROOT = Path(__file__).resolve().parents[1] / "data" / "releases"
ENV_RELEASES_ROOT = "MATTER_ALIGN_RELEASES"


class ReleaseError(ValueError):
    """A release folder cannot be trusted; the message names the file and the problem."""


class ReleaseValueError(ReleaseError, SchemaError):
    """A verified file holds a value the schema forbids (NaN/inf, duplicate key, unknown id, enum, bound); the
    message names the table, column and row as `SchemaError` does."""


_DERIVED_ID = re.compile(r"^(\d{4}\.\d{2}\.\d{2})-[0-9a-f]{8}$")


def expected_release_id(manifest: dict) -> str:
    """The id `precompute.release.writer.make_release_id` derives from the manifest (created date, file SHA-256s,
    inputs, settings)."""
    try:
        created = _dt.date.fromisoformat(str(manifest.get("created", ""))[:10])
    except ValueError as e:
        raise ReleaseError(f"manifest 'created' is not an ISO date: {manifest.get('created')!r}") from e
    files = {k: v.get("sha256") for k, v in manifest["files"].items()}
    return make_release_id(files, manifest, created)


def _check_release_id(folder: Path, mpath: Path, manifest: dict) -> None:
    rid = manifest["release_id"]
    if rid != folder.name:
        raise ReleaseError(f"{mpath}: release_id {rid!r} does not match the folder name {folder.name!r}")
    if _DERIVED_ID.match(rid):
        want = expected_release_id(manifest)
        if rid != want:
            raise ReleaseError(
                f"{mpath}: release_id {rid!r} does not match its content (recomputed {want!r} from the created "
                "date, the files' SHA-256, inputs and settings): the release was modified after it was written"
            )


def releases_root() -> Path:
    """$MATTER_ALIGN_RELEASES if set, else `data/releases` of this checkout."""
    env = os.environ.get(ENV_RELEASES_ROOT)
    return Path(env) if env else DEFAULT_RELEASES_ROOT


def resolve_latest(root: Path | None = None) -> Path:
    """The folder named by `<root>/latest` (a text file holding a release id)."""
    root = Path(root) if root is not None else releases_root()
    pointer = root / "latest"
    if not pointer.is_file():
        raise ReleaseError(f"{pointer}: no 'latest' file; pass a release folder explicitly")
    rid = pointer.read_text(encoding="utf-8").strip()
    if not rid or "/" in rid or "\\" in rid or rid in (".", ".."):
        raise ReleaseError(f"{pointer}: does not hold a valid release id ({rid!r})")
    return root / rid


def releases_with_tables(tables: set[str] | list[str], root: Path | None = None) -> list[str]:
    """Release ids under root whose manifest lists every one of `tables` (read from the manifests only: nothing is
    opened or verified); e.g. the releases that carry the scoring data, for the dashboard's hint."""
    root = Path(root) if root is not None else releases_root()
    out = []
    for rid in list_releases(root):
        try:
            have = set(json.loads((root / rid / "manifest.json").read_text(encoding="utf-8")).get("tables", {}))
        except (OSError, ValueError):
            continue
        if set(tables) <= have:
            out.append(rid)
    return out


def list_releases(root: Path | None = None) -> list[str]:
    """Release ids (folders with a manifest.json) under root, sorted."""
    root = Path(root) if root is not None else releases_root()
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").is_file()
    )


@dataclass(eq=False)
class Release:
    """A verified release served by an in-memory DuckDB database. Create with `Release.open`."""

    path: Path
    manifest: dict
    con: duckdb.DuckDBPyConnection = field(repr=False)
    tables: tuple[str, ...] = ()
    _vocab_cache: dict = field(default_factory=dict, repr=False)
    partial: dict | None = None  # {"dataset": ..., "tables": [...]} when opened with only=/dataset= (else None)

    # --------------------------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | Path | None = None, *, only: tuple[str, ...] | None = None, dataset: str | None = None
    ) -> Release:
        """Open and verify a release folder (default: the one named by data/releases/latest).

        only / dataset (a command that needs one dataset's part, e.g. `matter-align score`): every listed file is
        still read and checked against the manifest (size, SHA-256, rows, columns), but only the tables in `only`
        are loaded and value-checked, and with `dataset` only that dataset's rows of tables that have a dataset_id
        (row numbers in value errors then count those rows). A table left out is absent, so a query on it fails
        instead of answering from nothing; `partial` records what was loaded.
        """
        folder = Path(path) if path is not None else resolve_latest()
        if not folder.is_dir():
            raise ReleaseError(f"{folder}: release folder not found")
        mpath = folder / "manifest.json"
        if not mpath.is_file():
            raise ReleaseError(f"{mpath}: manifest.json missing (partial release?)")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ReleaseError(f"{mpath}: unreadable manifest: {e}") from e
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, dict) or not isinstance(manifest.get("release_id"), str):
            raise ReleaseError(f"{mpath}: manifest lacks 'release_id' or 'files'")

        listed_tables = {}
        for fname, meta in files.items():
            table = meta.get("table") if isinstance(meta, dict) else None
            if table not in TABLES or fname != f"{table}.parquet":
                raise ReleaseError(f"{folder / fname}: manifest entry is not a known release table")
            listed_tables[table] = (fname, meta)
        missing = [t for t in REQUIRED_TABLES if t not in listed_tables]
        if missing:
            raise ReleaseError(f"{mpath}: required table(s) {missing} not listed in the manifest")
        _check_release_id(folder, mpath, manifest)
        stray = sorted(p.name for p in folder.glob("*.parquet") if p.name not in files)
        if stray:
            raise ReleaseError(f"{folder / stray[0]}: Parquet file not listed in the manifest (mixed release?)")

        if only is not None and (unknown := sorted(set(only) - set(TABLES))):
            raise ReleaseError(f"{folder}: unknown table(s) {unknown} in only=")
        loaded = tuple(sorted(t for t in listed_tables if only is None or t in only))
        con = duckdb.connect(":memory:")
        try:
            for table, (fname, meta) in sorted(listed_tables.items()):
                if table not in loaded:  # the bytes are still checked: a partial open verifies the whole release
                    _check_bytes(folder / fname, meta)
                    continue
                arrow = _read_verified(folder / fname, meta)
                _check_columns(folder / fname, table, arrow)
                if dataset is not None and "dataset_id" in arrow.schema.names:
                    arrow = arrow.filter(pa.compute.equal(arrow["dataset_id"], dataset))
                con.register("_incoming", arrow)
                con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM _incoming')  # table name from TABLES only
                con.unregister("_incoming")
            for table in TABLES:  # optional tables absent: empty, typed, so queries never fail on their absence
                if table not in listed_tables and (only is None or table in only):
                    con.register("_incoming", TABLES[table].arrow_schema().empty_table())
                    con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM _incoming')
                    con.unregister("_incoming")
            validate_values(con, loaded)
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        partial = None if only is None and dataset is None else {"dataset": dataset, "tables": list(loaded)}
        return cls(path=folder, manifest=manifest, con=con, tables=loaded, partial=partial)

    # --------------------------------------------------------------------------------------------------------
    @property
    def release_id(self) -> str:
        return self.manifest["release_id"]

    @property
    def created(self) -> str:
        return self.manifest.get("created", "")

    @property
    def cache_key(self) -> tuple[str, str]:
        """Hashable identity for caches (e.g. Streamlit's st.cache_data: pass the release as `_release`)."""
        return (str(self.path), self.release_id)

    def __hash__(self) -> int:
        return hash(self.cache_key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Release) and self.cache_key == other.cache_key

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the release database (use one per query/thread)."""
        return self.con.cursor()

    def query(self, sql: str, params: list | tuple = ()):
        """Run fixed SQL with bound parameters on a fresh cursor; returns a pandas DataFrame."""
        cur = self.cursor()
        try:
            df = cur.execute(sql, list(params)).df()
        finally:
            cur.close()
        for c in df.columns:  # text columns: missing values are None (DuckDB may hand back NaN)
            if df[c].dtype == object:
                df[c] = df[c].astype(object).where(df[c].notna(), None)
        return df

    def close(self) -> None:
        self.con.close()


def _check_bytes(path: Path, meta: dict) -> bytes:
    if not path.is_file():
        raise ReleaseError(f"{path}: file listed in the manifest is missing (partial release?)")
    data = path.read_bytes()
    size = meta.get("bytes")
    if size is not None and len(data) != size:
        raise ReleaseError(f"{path}: {len(data)} bytes, manifest says {size} (truncated or modified)")
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta.get("sha256"):
        raise ReleaseError(f"{path}: SHA-256 {digest} does not match the manifest ({meta.get('sha256')})")
    return data


def _read_verified(path: Path, meta: dict) -> pa.Table:
    data = _check_bytes(path, meta)
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as e:  # noqa: BLE001 - any parse failure means an unusable file
        raise ReleaseError(f"{path}: not a readable Parquet file: {e}") from e
    if table.num_rows != meta.get("rows"):
        raise ReleaseError(f"{path}: {table.num_rows} rows, manifest says {meta.get('rows')}")
    return table


def _check_columns(path: Path, table: str, arrow: pa.Table) -> None:
    expected = TABLES[table].arrow_schema()
    if arrow.schema.names != expected.names:
        raise ReleaseError(f"{path}: columns {arrow.schema.names} differ from the schema {expected.names}")
    for f in expected:
        got = arrow.schema.field(f.name).type
        if got != f.type and not (pa.types.is_list(got) and pa.types.is_list(f.type)):
            raise ReleaseError(f"{path}: column {f.name!r} has type {got}, schema says {f.type}")
