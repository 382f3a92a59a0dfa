"""Extraction: one embedding file per (dataset, model).

- ``store``: the embedding store (atomic, resumable, checksummed; no pickle).
- ``worker``: ``python -m precompute.extract.worker``, runs inside a model family's environment.
- ``precompute.cli_extract``: the orchestrator behind ``matter-align extract`` (imports no model library).

Importing this package imports nothing heavy; read embeddings with::

    from precompute.extract.store import EmbeddingStore, DatasetKey
    emb = EmbeddingStore("work-cache/embeddings").read(DatasetKey("qm9", 1000, 0), "chgnet-0.3.0")
    emb.ids, emb.embeddings, emb.failures, emb.meta
"""
