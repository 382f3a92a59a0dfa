"""Read-only access to a matter-align release: `Release.open()` and the typed queries in `backend.queries`.

No torch, no model library, no Streamlit.
"""

from .release import Release, ReleaseError, list_releases, releases_root, releases_with_tables, resolve_latest

__all__ = ["Release", "ReleaseError", "list_releases", "releases_root", "releases_with_tables", "resolve_latest"]
