"""A dataset's samples as files to embed, in release order: extended XYZ (structures, `sample_id` in each frame),
CSV (id + SMILES + SELFIES, or the sample list), FASTA (protein chains, the PDB chain id as the record id)."""

from __future__ import annotations

import io

import pandas as pd

from backend.release import Release

SAMPLE_FORMATS = {"extxyz": ".extxyz", "csv": ".csv", "fasta": ".fasta"}


def _structures(release: Release, dataset: str) -> pd.DataFrame:
    return release.query(
        "SELECT position, sample_id, extxyz, smiles, selfies, sequence FROM sample_structures WHERE dataset_id = ? "
        "ORDER BY position",
        [dataset],
    )


def sample_formats(release: Release, dataset: str) -> list[str]:
    """The formats this release can write for `dataset` ('csv' always: at least the ordered sample list)."""
    s = _structures(release, dataset)
    out = []
    if len(s) and s["extxyz"].notna().all():
        out.append("extxyz")
    out.append("csv")
    if len(s) and s["sequence"].notna().all():
        out.append("fasta")
    return out


def samples_file(release: Release, dataset: str, fmt: str) -> bytes:
    """The file's bytes; ValueError when the release holds nothing for that format."""
    if fmt not in SAMPLE_FORMATS:
        raise ValueError(f"unknown sample format {fmt!r}; use one of {list(SAMPLE_FORMATS)}")
    s = _structures(release, dataset)
    if fmt == "csv":
        if len(s):
            cols = ["position", "sample_id"] + [c for c in ("smiles", "selfies") if s[c].notna().any()]
            df = s[cols]
        else:
            df = release.query(
                "SELECT position, sample_id, smiles, formula FROM samples WHERE dataset_id = ? ORDER BY position",
                [dataset],
            )
        if not len(df):
            raise ValueError(f"release {release.release_id} lists no samples for dataset {dataset!r}")
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        return buf.getvalue().encode()
    if fmt not in sample_formats(release, dataset):
        raise ValueError(
            f"release {release.release_id} holds no {fmt} for every sample of {dataset!r} (its sample_structures "
            "table is absent or incomplete; a release written before that table has only the CSV sample list)"
        )
    if fmt == "extxyz":
        return "".join(s["extxyz"]).encode()
    return "".join(f">{sid}\n{seq}\n" for sid, seq in zip(s["sample_id"], s["sequence"], strict=True)).encode()
