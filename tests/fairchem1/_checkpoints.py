"""Tiny RANDOM-weight EquiformerV2 / EquiformerV2-DeNS / eSEN checkpoints in fairchem-1.x's own checkpoint format.

Each is written by fairchem's own trainer (`BaseTrainer.save(training_state=False)`: state_dict, normalizers,
elementrefs, config), built from a config shaped like the released OMat24 ones (configs/omat24/all/eqV2_31M.yml:
hydra model, use_pbc + use_pbc_single, direct energy/force/rank-2 stress heads; eSEN: conservative MLP_EFS head with
stress), only much smaller. An energy normaliser and element references are attached so that the denormalised energy
path is exercised. Random weights: for testing the loading and embedding code, never presented as pretrained.
"""

from __future__ import annotations

import copy
from pathlib import Path

CUTOFF = 5.0

_EQV2_BACKBONE = {
    "use_pbc": True,
    "use_pbc_single": True,
    "otf_graph": True,
    "enforce_max_neighbors_strictly": False,
    "max_neighbors": 20,
    "max_radius": CUTOFF,
    "max_num_elements": 96,
    "avg_num_nodes": 31.17,
    "avg_degree": 61.95,
    "num_layers": 2,
    "sphere_channels": 16,
    "attn_hidden_channels": 16,
    "num_heads": 2,
    "attn_alpha_channels": 8,
    "attn_value_channels": 4,
    "ffn_hidden_channels": 16,
    "norm_type": "layer_norm_sh",
    "lmax_list": [2],
    "mmax_list": [1],
    "grid_resolution": 12,
    "num_sphere_samples": 32,
    "edge_channels": 16,
    "use_atom_edge_embedding": True,
    "share_atom_edge_embedding": False,
    "use_m_share_rad": False,
    "distance_function": "gaussian",
    "num_distance_basis": 32,
    "attn_activation": "silu",
    "use_s2_act_attn": False,
    "use_attn_renorm": True,
    "ffn_activation": "silu",
    "use_gate_act": False,
    "use_grid_mlp": True,
    "use_sep_s2_act": True,
    "alpha_drop": 0.1,
    "drop_path_rate": 0.1,
    "proj_drop": 0.0,
    "weight_init": "uniform",
}

MODELS = {
    "equiformer_v2": {
        "trainer": "equiformerv2_forces",
        "backbone": {"model": "equiformer_v2_backbone", **_EQV2_BACKBONE},
        "heads": {
            "energy": {"module": "equiformer_v2_energy_head"},
            "forces": {"module": "equiformer_v2_force_head"},
            "stress": {
                "module": "rank2_symmetric_head",
                "output_name": "stress",
                "use_source_target_embedding": True,
                "decompose": True,
            },
        },
    },
    "equiformer_v2_dens": {
        "trainer": "equiformerv2_forces",
        "backbone": {
            "model": "fairchem.core.models.equiformer_v2.equiformer_v2_dens.EqV2DeNSBackbone",
            **_EQV2_BACKBONE,
            "use_force_encoding": True,
            "use_noise_schedule_sigma_encoding": False,
        },
        "heads": {
            "energy": {
                "module": "fairchem.core.models.equiformer_v2.equiformer_v2_dens.DeNSScalarHead",
                "use_denoising": True,
            },
            "forces": {"module": "fairchem.core.models.equiformer_v2.equiformer_v2_dens.DeNSVectorHead"},
            "stress": {
                "module": "fairchem.core.models.equiformer_v2.equiformer_v2_dens.DeNSRank2Head",
                "output_name": "stress",
                "use_source_target_embedding": True,
                "decompose": True,
                "use_denoising": False,
            },
        },
    },
    "esen": {
        "trainer": "mlip_trainer",
        "backbone": {
            "model": "esen_backbone",
            "max_num_elements": 100,
            "sphere_channels": 16,
            "lmax": 2,
            "mmax": 2,
            "otf_graph": True,
            "max_neighbors": 30,
            "use_pbc": True,
            "use_pbc_single": True,
            "cutoff": CUTOFF,
            "edge_channels": 16,
            "distance_function": "gaussian",
            "num_distance_basis": 32,
            "direct_forces": False,
            "regress_forces": True,
            "regress_stress": True,
            "num_layers": 2,
            "hidden_channels": 16,
            "norm_type": "rms_norm_sh",
            "act_type": "gate",
            "mlp_type": "spectral",
        },
        "heads": {"efs": {"module": "esen_mlp_efs_head"}},
    },
}

OUTPUTS = {
    "energy": {"level": "system", "property": "energy"},
    "forces": {"level": "atom", "property": "forces", "train_on_free_atoms": True, "eval_on_free_atoms": True},
    "stress": {
        "level": "system",
        "property": "stress",
        "decomposition": {"stress_isotropic": {"irrep_dim": 0}, "stress_anisotropic": {"irrep_dim": 2}},
    },
}
OUTPUTS_ESEN = {
    "energy": {"level": "system", "property": "energy"},
    "forces": {"level": "atom", "property": "forces"},
    "stress": {"level": "system", "property": "stress"},
}
LOSS = [{"energy": {"fn": "per_atom_mae", "coefficient": 2.5}}, {"forces": {"fn": "l2mae", "coefficient": 20}}]
OPTIM = {
    "batch_size": 8,
    "eval_batch_size": 8,
    "lr_initial": 1e-4,
    "optimizer": "AdamW",
    "scheduler": "LambdaLR",
    "scheduler_params": {"lambda_type": "cosine", "warmup_factor": 0.2, "warmup_epochs": 0.01, "lr_min_factor": 0.01},
    "max_epochs": 1,
    "ema_decay": 0.999,
}
ENERGY_RMSD = 2.0
ELEMENT_REFS = {1: -3.0, 6: -8.0, 7: -7.0, 8: -5.0, 9: -2.0}  # eV; other elements 0


def write_checkpoint(arch: str, directory: Path, seed: int = 0) -> Path:
    """Build the tiny `arch` model with random weights (seeded) through fairchem's trainer and save it as
    <directory>/<arch>_tiny.pt; returns the path."""
    import torch
    from fairchem.core.common.registry import registry
    from fairchem.core.modules.normalization.element_references import LinearReferences
    from fairchem.core.modules.normalization.normalizer import Normalizer

    from precompute.adapters.fairchem_v1 import register_fairchem_modules

    register_fairchem_modules()
    spec = MODELS[arch]
    model = {"name": "hydra", "pass_through_head_outputs": True, "otf_graph": True}
    model.update(backbone=copy.deepcopy(spec["backbone"]), heads=copy.deepcopy(spec["heads"]))
    torch.manual_seed(seed)
    trainer = registry.get_trainer_class(spec["trainer"])(
        task={},
        model=model,
        outputs=copy.deepcopy(OUTPUTS_ESEN if arch == "esen" else OUTPUTS),
        dataset=[{"format": "ase_db", "src": "/nonexistent/train"}],
        optimizer=copy.deepcopy(OPTIM),
        loss_functions=copy.deepcopy(LOSS),
        evaluation_metrics={"primary_metric": "energy_mae", "metrics": {"energy": ["mae"]}},
        identifier=f"{arch}-tiny",
        local_rank=0,
        is_debug=True,
        cpu=True,
        seed=seed,
        logger="tensorboard",
        name=spec["trainer"],
        run_dir=str(directory),
        inference_only=True,
    )
    refs = torch.zeros(118)
    for z, e in ELEMENT_REFS.items():
        refs[z] = e
    trainer.normalizers["energy"] = Normalizer(mean=0.0, rmsd=ENERGY_RMSD)
    trainer.elementrefs["energy"] = LinearReferences(element_references=refs)
    trainer.is_debug = False  # BaseTrainer.save writes nothing in debug mode
    trainer.config["cmd"]["checkpoint_dir"] = str(directory)
    return Path(trainer.save(checkpoint_file=f"{arch}_tiny.pt", training_state=False))
