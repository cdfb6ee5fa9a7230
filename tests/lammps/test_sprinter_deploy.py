"""A trained sprinter deploys unchanged: ASE calculator (checkpoint and .pt) equals LAMMPS at 1e-8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import write

from superionic.calculator import SuperionicCalculator
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.train.checkpoint import model_from_checkpoint
from superionic.train.config import load_config
from superionic.train.trainer import Trainer
from tests.lammps.singlepoint import single_point
from tests.unit.test_training import labelled_frames


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sprinter")
    write(root / "data.extxyz", labelled_frames(12))
    config = {
        "data": {"train": [str(root / "data.extxyz")], "val_fraction": 0.25},
        "model": {"hidden": [16, 16], "radial_channels": 6, "angular_channels": 3, "l_max": 4},
        "training": {"epochs": 2, "batch_size": 3, "threads": 1},
        "output": str(root / "run"),
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    Trainer(load_config(root / "config.yaml")).run()
    return root / "run" / "best.ckpt"


@pytest.mark.parametrize("nprocs", [1, 2])
def test_checkpoint_calculator_equals_lammps(tmp_path: Path, trained: Path, nprocs: int) -> None:
    model, _, _ = model_from_checkpoint(trained)
    exported = tmp_path / "sprinter.pt"
    export_model(model, exported)
    atoms = jittered_lattice((6, 6, 6), tilt=(1.3, -0.8, 0.5), jitter=0.12, seed=11)
    reference = {}
    for source in (trained, exported):
        atoms.calc = SuperionicCalculator(source)
        reference[source.suffix] = (atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress())
    np.testing.assert_allclose(reference[".pt"][1], reference[".ckpt"][1], rtol=0, atol=1e-12)
    energy, forces, stress = reference[".ckpt"]

    lmp = single_point(tmp_path / "lmp", atoms, exported, type_names=model.species_names, nprocs=nprocs)
    assert lmp.energy == pytest.approx(energy, rel=1e-8)
    np.testing.assert_allclose(lmp.forces, forces, rtol=0, atol=1e-8 * np.abs(forces).max())
    # ASE stress (xx yy zz yz xz xy, tensile positive) is −W/V
    virial = -stress * atoms.cell.volume
    lammps_order = virial[[0, 1, 2, 5, 4, 3]]
    np.testing.assert_allclose(lmp.virial, lammps_order, rtol=0, atol=1e-8 * np.abs(virial).max())


def test_lgps_model_ase_equals_lammps(tmp_path: Path) -> None:
    """The committed LGPS data → a briefly trained sprinter → the same energy in ASE and in LAMMPS."""
    from superionic.data.materials import build_structure

    data = Path(__file__).resolve().parents[2] / "data" / "LGPS" / "sevennet.extxyz.gz"
    config = {
        "data": {"train": [str(data)], "val_fraction": 0.1, "max_frames": 24},
        "model": {"hidden": [16, 16], "l_max": 4},
        "training": {"epochs": 2, "batch_size": 4, "threads": 1},
        "output": str(tmp_path / "run"),
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = Trainer(load_config(tmp_path / "config.yaml")).run()
    model, _, _ = model_from_checkpoint(result.checkpoint)
    export_model(model, tmp_path / "lgps.pt")
    atoms = build_structure("LGPS", seed=1, supercell=(1, 1, 2))
    atoms.calc = SuperionicCalculator(tmp_path / "lgps.pt")
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    lmp = single_point(
        tmp_path / "lmp", atoms, tmp_path / "lgps.pt", type_names=model.species_names, nprocs=2
    )
    assert lmp.energy == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(lmp.forces, forces, rtol=0, atol=1e-8 * np.abs(forces).max())
