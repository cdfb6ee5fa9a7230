"""The marathon (e3nn message passing): E(3) symmetry, forces as energy gradients, its receptive
field, its config keys, and that training lowers its loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase.io import write

from superionic.calculator import evaluate
from superionic.data.examples import jittered_lattice
from superionic.models.build import build_model
from superionic.models.marathon import Marathon
from superionic.train.config import ConfigError, config_from_dict
from superionic.train.trainer import Trainer
from tests.unit.test_training import labelled_frames

SPECIES = ["Li", "Ge", "P", "S"]


def _model(l_max: int, n_layers: int = 2, seed: int = 0) -> Marathon:
    model = Marathon(SPECIES, cutoff=4.0, channels=6, l_max=l_max, n_layers=n_layers, seed=seed)
    with torch.no_grad():
        # An untrained model's energies are tiny; scale them so the checks below compare numbers
        # of order 1 eV/Å rather than round-off.
        model.energy_scale.fill_(500.0)
    return model


def _random_orthogonal(seed: int, proper: bool) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) > 0) != proper:
        q = -q
    return q


@pytest.mark.parametrize("l_max", [1, 2])
@pytest.mark.parametrize("proper", [True, False], ids=["rotation", "rotoinversion"])
def test_energy_invariant_forces_rotate(l_max: int, proper: bool) -> None:
    atoms = jittered_lattice((3, 3, 2), tilt=(0.7, 0.0, -0.4), jitter=0.2, seed=5)
    model = _model(l_max)
    ref = evaluate(model, atoms, model.cutoff, SPECIES)
    q = _random_orthogonal(11 + l_max, proper)
    turned = atoms.copy()
    turned.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    turned.positions = atoms.positions @ q.T
    out = evaluate(model, turned, model.cutoff, SPECIES)
    force_scale = np.abs(ref.forces).max()
    assert force_scale > 0.1, "the test model exerts no forces; the check would be empty"
    # 1e-10: float64 round-off of sums over ~10⁴ edge terms, with margin; a broken equivariance
    # (a wrong irrep parity or coupling) shows up at order 1.
    assert abs(out.energy - ref.energy) <= 1e-10 * max(1.0, abs(ref.energy))
    np.testing.assert_allclose(out.forces, ref.forces @ q.T, rtol=0, atol=1e-10 * force_scale)


def test_forces_are_minus_finite_differences_of_the_energy() -> None:
    atoms = jittered_lattice((3, 3, 2), tilt=(0.7, 0.0, -0.4), jitter=0.2, seed=6)
    model = _model(2)
    forces = evaluate(model, atoms, model.cutoff, SPECIES).forces
    step = 1e-4
    for atom, axis in [(0, 0), (3, 1), (7, 2), (11, 0), (16, 2)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[atom, axis] += sign * step
            energies.append(evaluate(model, moved, model.cutoff, SPECIES).energy)
        numeric = -(energies[0] - energies[1]) / (2 * step)
        # central difference: error ~ step² · |E'''| ~ 1e-8 eV/Å here; 1e-6 leaves margin.
        assert numeric == pytest.approx(forces[atom, axis], abs=1e-6 * max(1.0, np.abs(forces).max()))


def _chain_energy(model: Marathon, far: float) -> float:
    """Energy of atom 0 in a non-periodic chain 0 — 1 — 2 with 3.5 Å bonds (cutoff 4 Å): atom 2
    is a second neighbour, beyond one cutoff of atom 0 but within two."""
    pos = torch.tensor([[0.0, 0.0, 0.0], [3.5, 0.0, 0.0], [3.5 + far, 0.3, 0.0]], dtype=torch.float64)
    vec = pos[None, :, :] - pos[:, None, :]
    dist = vec.norm(dim=-1)
    src, dst = torch.nonzero((dist < model.cutoff) & (dist > 0), as_tuple=True)
    energy, _ = model(vec[src, dst], src, dst, torch.tensor([0, 2, 3]), torch.tensor(3))
    return float(energy[0])


def test_receptive_field_is_layers_times_cutoff() -> None:
    for n_layers in (1, 2, 3):
        assert _model(1, n_layers).receptive_field == n_layers * 4.0
    one, two = _model(1, 1), _model(1, 2)
    # One block sees only the first shell: atom 2 moving changes nothing on atom 0; two blocks see it.
    assert _chain_energy(one, 3.4) == _chain_energy(one, 3.0)
    assert abs(_chain_energy(two, 3.4) - _chain_energy(two, 3.0)) > 1e-6


def test_model_is_reproducible_from_its_seed() -> None:
    a, b, c = _model(1, seed=3), _model(1, seed=3), _model(1, seed=4)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.embedding, c.embedding)


MARATHON = {"kind": "marathon", "cutoff": 4.0, "channels": 4, "l_max": 1, "n_layers": 2, "radial_hidden": 8}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"kind": "sprinter", "channels": 8}, "model.channels applies to kind marathon only, not sprinter"),
        ({"kind": "marathon", "hidden": [8]}, "model.hidden applies to kind sprinter only, not marathon"),
        ({**MARATHON, "l_max": 4}, "model.l_max = 4 is too large for kind marathon"),
        ({**MARATHON, "n_layers": 0}, "model.n_layers = 0 is not valid: it must be an integer from 1 to 6"),
        ({**MARATHON, "channels": 2.5}, "model.channels = 2.5 is not valid"),
        ({**MARATHON, "radial_hiden": 8}, "did you mean 'radial_hidden'?"),
    ],
)
def test_marathon_keys_are_checked(model: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"data": {"train": ["x.extxyz"]}, "model": model}, "cfg.yaml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_config_builds_the_marathon_it_names() -> None:
    config = config_from_dict({"data": {"train": ["x.extxyz"]}, "model": MARATHON}, "cfg.yaml")
    model = build_model(config.model, SPECIES, seed=0)
    assert isinstance(model, Marathon)
    assert (model.cutoff, model.receptive_field, model.channels) == (4.0, 8.0, 4)
    # A checkpoint stores the whole config dict, defaults of the other kind included: it must reload.
    assert config_from_dict(config.to_dict(), "ckpt").model == config.model


def test_short_training_lowers_the_loss(tmp_path: Path) -> None:
    data = tmp_path / "frames.extxyz"
    write(data, labelled_frames(10))
    config_path = tmp_path / "train.yaml"
    config = {
        "data": {"train": [str(data)], "val_fraction": 0.2},
        "model": MARATHON,
        "training": {
            "epochs": 6,
            "batch_size": 2,
            "lr": 0.01,
            "warmup_epochs": 0,
            "ema_decay": 0.0,
            "threads": 1,
        },
        "output": str(tmp_path / "run"),
    }
    config_path.write_text(yaml.safe_dump(config))
    from superionic.train.config import load_config

    trainer = Trainer(load_config(config_path))
    before, _ = trainer.evaluate(trainer.model, trainer.val_frames)
    result = trainer.run()
    # Six epochs on 8 frames (EMA off, so the weights are the trained ones): the validation loss
    # falls from ~1.0 to ~0.55 in this setting; 0.8 × asks for a clear fall, not round-off.
    assert result.best_val_loss < 0.8 * before, (before, result.best_val_loss)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val_metrics"]["force_rmse_eV_per_A"] == pytest.approx(
        result.val_metrics["force_rmse_eV_per_A"]
    )
