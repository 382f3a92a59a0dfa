"""Versioned, checksummed Parquet releases (see docs/RELEASE_FORMAT.md)."""

from .schema import METRICS, REQUIRED_TABLES, TABLES
from .tables import datasets_table, models_table
from .validation import SchemaError, validate_release_tables, validate_table
from .writer import ReleaseExistsError, write_latest, write_release

__all__ = [
    "METRICS",
    "REQUIRED_TABLES",
    "TABLES",
    "ReleaseExistsError",
    "SchemaError",
    "datasets_table",
    "models_table",
    "validate_release_tables",
    "validate_table",
    "write_latest",
    "write_release",
]
