"""A cheap, deterministic test adapter for the extraction tests (no model library).

Card options: ``dim`` (default 8), ``fail_every`` (samples whose trailing number is divisible by it go to
``failures``; 0 = none), ``drop_every`` (samples silently left out, to test that the worker records them), ``raise_every`` (``embed``
raises ValueError when given such a sample), ``sleep`` (seconds per call), ``noisy`` (prints to stdout, as model
libraries do).

Environment variables (read at every ``embed`` call):
- ``MATTER_ALIGN_TEST_COUNTER``: a file; each call appends one JSON line with the ids it was given.
- ``MATTER_ALIGN_TEST_DIE_ON_CALL``: N; the N-th call of this process dies at once with ``os._exit(137)``, like a
  killed process (no cleanup, no finally blocks).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any

import numpy as np

from precompute.adapters.base import EmbedResult


def _number(sample_id: str) -> int:
    m = re.search(r"(\d+)\D*$", sample_id)
    return int(m.group(1)) if m else 0


def fake_embedding(sample_id: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(sample_id.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class CountingAdapter:
    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        self.card = card
        opts = card.get("options") or {}
        self.dim = int(opts.get("dim", 8))
        self.fail_every = int(opts.get("fail_every", 0))
        self.drop_every = int(opts.get("drop_every", 0))
        self.raise_every = int(opts.get("raise_every", 0))
        self.sleep = float(opts.get("sleep", 0))
        self.noisy = bool(opts.get("noisy", False))
        self.energy = bool(opts.get("energy", False))  # predict an energy: -1.5 * sample number (eV)
        self.nan_energy_every = int(opts.get("nan_energy_every", 0))
        self.checkpoint = checkpoint
        if self.noisy:
            print("CountingAdapter initialised (noise on stdout)")
        self.calls = 0

    def embed(self, samples, batch_size: int = 32) -> EmbedResult:
        self.calls += 1
        die_on = os.environ.get("MATTER_ALIGN_TEST_DIE_ON_CALL")
        if die_on and self.calls >= int(die_on):
            os._exit(137)
        counter = os.environ.get("MATTER_ALIGN_TEST_COUNTER")
        if counter:
            with open(counter, "a") as f:
                f.write(json.dumps([s.sample_id for s in samples]) + "\n")
        if self.noisy:
            print(f"embedding {len(samples)} samples")
        if self.sleep:
            time.sleep(self.sleep)
        if self.raise_every and any(_number(s.sample_id) % self.raise_every == 0 for s in samples):
            raise ValueError(f"test adapter raises for numbers divisible by {self.raise_every}")
        ids, rows, failures = [], [], {}
        for s in samples:
            k = _number(s.sample_id)
            if self.fail_every and k % self.fail_every == 0:
                failures[s.sample_id] = (
                    f"test adapter cannot embed {s.sample_id} (number divisible by {self.fail_every})"
                )
            elif self.drop_every and k % self.drop_every == 0:
                continue
            else:
                ids.append(s.sample_id)
                rows.append(fake_embedding(s.sample_id, self.dim))
        emb = np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)
        energies = None
        if self.energy:
            nan_every = self.nan_energy_every
            energies = np.array([np.nan if nan_every and _number(s) % nan_every == 0 else -1.5 * _number(s)
                                 for s in ids], dtype=np.float64)  # fmt: skip
        return EmbedResult(ids=ids, embeddings=emb, failures=failures, energies=energies)


def read_counter(path) -> list[list[str]]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def make_card(model_id: str = "test-counting", **options: Any) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "display_name": "Counting test adapter",
        "family": "test",
        "environment": "zoo",
        "adapter": "tests._helpers_extract:CountingAdapter",
        "source": "descriptor",
        "options": options,
    }
