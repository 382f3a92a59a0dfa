"""Analysis settings: every choice that changes a number, recorded in the release manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class AnalysisSettings:
    """Defaults follow the seed paper and its reference code where known.

    ks_knn: k swept for CKNNA and mutual kNN (one cosine cache per model at max(ks_knn)).
    ks_ii: k for the information imbalance (Euclidean, both directions).
    clip_quantile: the Platonic-representation pipeline clips |x| at the 0.95 quantile before L2 normalisation.
    idcor_n / idcor_permutations: IDCor costs O(N²·D) per permutation, so it runs on a seeded subsample
        (the reference used N = 30,000 and 2 permutations); p-values cannot go below 1 / (P + 1).
    null_ks / null_permutations: permutation nulls (rows of B permuted, seeded per pair) for CKNNA (both orders) and
        mutual kNN at each of null_ks (default every swept k; re-indexed caches, O(N·k) each), CKA biased and
        unbiased (feature space), information imbalance both directions at every ks_ii (one pass over B for all
        permutations). IDCor's null is its own idcor_permutations. 0 switches the nulls and calibration off.
    cka_null: "moments" (default): CKA's null from its exact permutation mean and variance with a fitted Pearson III
        for the quantiles, p-value and critical value (metrics/cka_moments.py; recorded with n_permutations = 0);
        "permutations": null_permutations permuted cross products, O(N·Da·Db) each.
    calibration_alpha: level of the calibrated score's critical value (Gröger et al. 2026, Algorithm 1).
    resamples / resample_fraction: half-sampling confidence intervals (subsets without replacement, seeded per
        dataset, shared by every pair) for CKNNA, mutual kNN, information imbalance and IDCor (subsets of its own
        subsample); CKA's intervals are a delete-a-group jackknife over `resamples` seeded row groups
        (metrics/cka_jackknife.py); 0 switches them off. The cosine and Euclidean caches then keep
        resampling.subsample_list_length(max k) neighbours so subsample lists are exact and cheap.
    ci_level: coverage of those intervals.
    bootstrap: replicates for the TwoNN / GRIDE confidence intervals (resampling the per-point ratios mu_i).
    gride_n1: GRIDE scale (neighbours n1 and 2·n1).
    energy_train_fraction: share of the samples used to fit per-element reference energies.
    """

    ks_knn: tuple[int, ...] = (5, 10, 25, 50, 100)
    ks_ii: tuple[int, ...] = (1, 5, 25)
    clip_quantile: float | None = 0.95
    normalize: bool = True
    idcor_n: int = 2000
    idcor_permutations: int = 100
    null_ks: tuple[int, ...] = (5, 10, 25, 50, 100)
    null_permutations: int = 100
    cka_null: str = "moments"
    calibration_alpha: float = 0.05
    resamples: int = 50
    resample_fraction: float = 0.5
    ci_level: float = 0.95
    bootstrap: int = 200
    gride_n1: int = 8
    energy_train_fraction: float = 0.5
    tree_k: int = 25
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cka_null not in ("moments", "permutations"):
            raise ValueError(f"cka_null must be 'moments' or 'permutations', got {self.cka_null!r}")

    def as_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> AnalysisSettings:
        d = dict(d)
        for key in ("ks_knn", "ks_ii", "null_ks"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def clipped_to(self, n: int) -> AnalysisSettings:
        """Settings valid for N samples: k values with N > k + 1 only; null and tree k taken from the swept k."""
        d = self.as_dict()
        for key in ("ks_knn", "ks_ii", "null_ks"):
            d[key] = [k for k in d[key] if n > k + 1]
        d["null_ks"] = [k for k in d["null_ks"] if k in d["ks_knn"]]  # the null reuses the swept caches
        if d["ks_knn"] and self.tree_k not in d["ks_knn"]:
            d["tree_k"] = (
                max(k for k in d["ks_knn"] if k <= self.tree_k) if min(d["ks_knn"]) <= self.tree_k else min(d["ks_knn"])
            )
        return AnalysisSettings.from_dict(d)
