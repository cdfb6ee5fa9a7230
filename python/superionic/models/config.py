"""The model section of a training config: what ``build_model`` needs to construct a model.

It lives in the models layer because models are built from it; ``superionic.train.config``
re-exports it as part of the whole training configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MARATHON_MAX_L = 2  # highest irrep of the marathon's features and spherical harmonics

# Keys that only one kind reads; the others (cutoff, n_basis, l_max, dtype, species) are shared.
KIND_KEYS = {
    "sprinter": ("radial_channels", "angular_channels", "hidden"),
    "marathon": ("channels", "n_layers", "radial_hidden"),
}


@dataclass
class ModelConfig:
    kind: str = "sprinter"
    cutoff: float = 5.0
    n_basis: int = 8
    radial_channels: int = 8
    angular_channels: int = 4
    l_max: int = 4
    hidden: list[int] = field(default_factory=lambda: [32, 32])
    # marathon only (kind: marathon): features per irrep, interaction blocks, radial-MLP width
    channels: int = 16
    n_layers: int = 2
    radial_hidden: int = 16
    dtype: str = "float64"
    species: list[str] | None = None
