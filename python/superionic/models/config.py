"""The model section of a training config: what ``build_model`` needs to construct a model.

It lives in the models layer because models are built from it; ``superionic.train.config``
re-exports it as part of the whole training configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    kind: str = "sprinter"
    cutoff: float = 5.0
    n_basis: int = 8
    radial_channels: int = 8
    angular_channels: int = 4
    l_max: int = 4
    hidden: list[int] = field(default_factory=lambda: [32, 32])
    dtype: str = "float64"
    species: list[str] | None = None
