"""Model construction from a configuration, and from a checkpoint."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from superionic.models.config import ModelConfig
from superionic.models.contract import ContractModel
from superionic.models.marathon import Marathon
from superionic.models.sprinter import Sprinter

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_model(config: ModelConfig, species: Sequence[str], seed: int) -> ContractModel:
    if config.kind == "sprinter":
        return Sprinter(
            species,
            cutoff=config.cutoff,
            n_basis=config.n_basis,
            radial_channels=config.radial_channels,
            angular_channels=config.angular_channels,
            l_max=config.l_max,
            hidden=config.hidden,
            seed=seed,
            dtype=DTYPES[config.dtype],
        )
    if config.kind == "marathon":
        return Marathon(
            species,
            cutoff=config.cutoff,
            n_basis=config.n_basis,
            channels=config.channels,
            l_max=config.l_max,
            n_layers=config.n_layers,
            radial_hidden=config.radial_hidden,
            seed=seed,
            dtype=DTYPES[config.dtype],
        )
    raise ValueError(f"unknown model kind '{config.kind}'; available: sprinter, marathon")
