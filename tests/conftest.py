"""Shared fixtures: the reference models, exported once per session, and the test structures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.models import ContractModel, ReferenceMessagePassing, ReferencePotential

SPECIES = ["Li", "Ge", "P", "S"]


def make_model(kind: str, dtype: torch.dtype = torch.float64) -> ContractModel:
    if kind == "local":
        return ReferencePotential(SPECIES, dtype=dtype)
    return ReferenceMessagePassing(SPECIES, dtype=dtype)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


class ExportedModels:
    """Exports on first use: .pt2 compiles take tens of seconds, so only tests that need them pay."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, kind: str, suffix: str = ".pt", dtype: torch.dtype = torch.float64) -> Path:
        name = f"{kind}_{str(dtype).removeprefix('torch.')}{suffix}"
        target = self.directory / name
        if not target.exists():
            export_model(make_model(kind, dtype), target)
        return target


@pytest.fixture(scope="session")
def exported(model_dir: Path) -> ExportedModels:
    return ExportedModels(model_dir)


def structure(name: str) -> Atoms:
    """The structures every parity test runs on."""
    if name == "orthorhombic":  # 216 atoms, 4 species
        return jittered_lattice((6, 6, 6), seed=1)
    if name == "triclinic":  # 216 atoms, tilted in all three planes
        return jittered_lattice((6, 6, 6), tilt=(2.1, -1.4, 0.9), seed=2)
    if name == "small":  # 7.8 x 7.8 x 5.2 A: below twice any cutoff, atoms see many of their own images
        return jittered_lattice((3, 3, 2), tilt=(0.7, 0.0, -0.4), seed=3)
    if name == "isolated":
        return Atoms("Ge", positions=[[0.0, 0.0, 0.0]], pbc=False)
    if name == "slab":  # atoms fill only the lower half of x: a 2-rank x-split leaves a rank empty
        atoms = jittered_lattice((3, 4, 4), seed=4)
        cell = atoms.cell.array.copy()
        cell[0] *= 2.0
        atoms.set_cell(cell, scale_atoms=False)
        return atoms
    raise KeyError(name)


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
