"""Torch (CPU or CUDA) versions of the per-pair O(N·k) kernels in hsic.py / cknna.py / mutual_knn.py.

The same formulas, on tensors, for all-pairs runs where the neighbour caches are large (N ~ 10^5, k up to 100)
and a GPU is present. Sums run in float64; on CUDA, scatter-add order is not fixed, so results can differ from
the NumPy path in the last bits (tests hold them to 1e-12).
"""

from __future__ import annotations

import numpy as np


def _t(a, device):
    import torch

    return torch.as_tensor(np.ascontiguousarray(a), device=device)


def sparse_hsic_unbiased_torch(rows, cols, x, y, n: int) -> float:
    import torch

    key = rows * n + cols
    key_sorted, order = torch.sort(key)
    key_t = cols * n + rows
    pos = torch.searchsorted(key_sorted, key_t).clamp_(max=max(key_sorted.numel() - 1, 0))
    hit = key_sorted[pos] == key_t if key_sorted.numel() else torch.zeros(0, dtype=torch.bool, device=key.device)
    trace_xy = torch.dot(x[hit], y[order][pos[hit]]).item() if hit.any() else 0.0
    sum_x, sum_y = x.sum().item(), y.sum().item()
    colsum_x = torch.zeros(n, dtype=torch.float64, device=x.device).index_add_(0, cols, x)
    rowsum_y = torch.zeros(n, dtype=torch.float64, device=x.device).index_add_(0, rows, y)
    one_xy_one = torch.dot(colsum_x, rowsum_y).item()
    return (trace_xy + sum_x * sum_y / ((n - 1) * (n - 2)) - 2.0 * one_xy_one / (n - 2)) / (n * (n - 3))


class TorchPairKernels:
    """Neighbour lists of every model moved to the device once, then O(N·k) pair kernels on tensors."""

    def __init__(self, caches: dict, device: str):
        import torch

        self.torch = torch
        self.device = device
        first = next(iter(caches.values()))
        self.n = first.n
        self.idx = {m: _t(c.indices, device) for m, c in caches.items()}
        self.val = {m: _t(c.scores, device).to(torch.float64) for m, c in caches.items()}

    def _rows(self, k: int):
        return self.torch.arange(self.n, device=self.device).repeat_interleave(k)

    def self_hsic(self, m: str, k: int) -> float:
        v = self.val[m][:, :k].reshape(-1)
        return sparse_hsic_unbiased_torch(self._rows(k), self.idx[m][:, :k].reshape(-1), v, v, self.n)

    def masked(self, a: str, b: str, k: int):
        n = self.n
        rows = self._rows(k)
        key_a = rows * n + self.idx[a][:, :k].reshape(-1)
        key_b = rows * n + self.idx[b][:, :k].reshape(-1)
        sa, oa = self.torch.sort(key_a)
        pos = self.torch.searchsorted(sa, key_b).clamp_(max=sa.numel() - 1)
        hit = sa[pos] == key_b
        common = key_b[hit]
        x = self.val[a][:, :k].reshape(-1)[oa[pos[hit]]]
        y = self.val[b][:, :k].reshape(-1)[hit]
        return common // n, common % n, x, y

    def pair(self, a: str, b: str, k: int) -> tuple[float, float, float]:
        """(HSIC_u(M∘K, M∘L), HSIC_u(M∘L, M∘K), shared-neighbour count) for the pair's mask M."""
        rows, cols, x, y = self.masked(a, b, k)
        return (
            sparse_hsic_unbiased_torch(rows, cols, x, y, self.n),
            sparse_hsic_unbiased_torch(rows, cols, y, x, self.n),
            int(rows.numel()),
        )
