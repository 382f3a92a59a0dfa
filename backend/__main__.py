"""`python -m backend [RELEASE_DIR]`: verify a release (checksums, row counts, schema, release id, values) and print
its summary.

Exit status 0 when the release opens, 1 with the reason (naming the file, or the table, column and row of a bad
value) when it is refused.
"""

from __future__ import annotations

import sys

from .queries import release_summary
from .release import Release, ReleaseError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 or (argv and argv[0] in ("-h", "--help")):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        release = Release.open(argv[0] if argv else None)
    except ReleaseError as e:
        print(f"refused: {e}", file=sys.stderr)
        return 1
    s = release_summary(release)
    print(f"release {s.release_id} (created {s.created}, code {s.code_version}) at {release.path}: verified")
    print(f"{s.n_models} models, {s.n_datasets} datasets")
    print(s.datasets[["dataset_id", "domain", "origin", "n_samples", "n", "n_models"]].to_string(index=False))
    print(s.model_counts.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
