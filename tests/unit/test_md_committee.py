"""superionic.md.committee: the force deviation against answers known in closed form, the exported
manifest's checks, and the devi file reader (last line of a step wins, a line being written is not
yet a row)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from superionic.calculator import evaluate
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.committee import (
    DeviFollower,
    check_members,
    force_deviation,
    read_committee,
    read_devi_file,
)
from superionic.md.driver import MdError
from superionic.modelfile import ModelFileError
from superionic.models import ReferencePotential

SPECIES = ["Li", "Ge", "P", "S"]


def scaled(model: ReferencePotential, factor: float) -> ReferencePotential:
    """The same potential times ``factor``: E is linear in eps, lam and e0, so E' = f E, F' = f F."""
    with torch.no_grad():
        for name in ("eps", "lam", "e0"):
            getattr(model, name).mul_(factor)
    return model


@pytest.fixture(scope="module")
def atoms():
    return jittered_lattice((4, 4, 4), jitter=0.15, seed=3)


def test_two_members_a_factor_apart(tmp_path: Path, atoms) -> None:
    factor = 1.5
    base = ReferencePotential(SPECIES)
    export_model(base, tmp_path / "a.pt")
    export_model(scaled(ReferencePotential(SPECIES), factor), tmp_path / "b.pt")
    reference = evaluate(base, atoms, base.cutoff, SPECIES)
    # F_b = f F_a: both members sit |1 - f|/2 |F_a| from their mean, so sigma_i = |1 - f|/2 |F_a,i|,
    # and the energies' population std is |1 - f|/2 |E_a|.
    expected = abs(1 - factor) / 2 * np.linalg.norm(reference.forces, axis=1)
    got = force_deviation([tmp_path / "a.pt", tmp_path / "b.pt"], atoms)
    # float64 throughout, forces of order 1 eV/Å: agreement to round-off.
    np.testing.assert_allclose(got.per_atom, expected, rtol=1e-10, atol=1e-12)
    assert got.max == pytest.approx(expected.max(), rel=1e-10)
    assert got.min == pytest.approx(expected.min(), rel=1e-10)
    assert got.mean == pytest.approx(expected.mean(), rel=1e-10)
    assert got.devi_e == pytest.approx(abs(1 - factor) / 2 * abs(reference.energy) / len(atoms), rel=1e-10)
    assert got.max > 0.01  # the case is not trivially zero


def test_three_members_against_a_direct_loop(tmp_path: Path, atoms) -> None:
    models = [ReferencePotential(SPECIES, seed=seed) for seed in range(3)]
    paths = []
    for k, model in enumerate(models):
        paths.append(tmp_path / f"m{k}.pt")
        export_model(model, paths[-1])
    results = [evaluate(m, atoms, m.cutoff, SPECIES) for m in models]
    sigma = []
    for i in range(len(atoms)):
        forces = [r.forces[i] for r in results]
        mean = sum(forces) / 3
        sigma.append(np.sqrt(sum(float(np.dot(f - mean, f - mean)) for f in forces) / 3))
    energies = [r.energy for r in results]
    mean_e = sum(energies) / 3
    devi_e = np.sqrt(sum((e - mean_e) ** 2 for e in energies) / 3) / len(atoms)
    got = force_deviation(paths, atoms)
    np.testing.assert_allclose(got.per_atom, sigma, rtol=1e-10, atol=1e-12)
    assert got.devi_e == pytest.approx(devi_e, rel=1e-10)
    assert got.forces.shape == (3, len(atoms), 3)


def test_exported_manifest_is_checked(tmp_path: Path) -> None:
    for k in range(2):
        export_model(ReferencePotential(SPECIES, seed=k), tmp_path / f"member_{k}.pt")
    manifest = tmp_path / "committee.json"
    manifest.write_text(json.dumps({"members": ["member_0.pt", "member_1.pt"], "driving_member": 1}))
    # The driving member comes first: it is member 0 of pair_coeff.
    assert read_committee(tmp_path) == [tmp_path / "member_1.pt", tmp_path / "member_0.pt"]

    manifest.write_text(json.dumps({"members": ["member_0.pt", "member_9.pt"]}))
    with pytest.raises(ModelFileError, match=r"committee\.json: members\[1\] = member_9\.pt: no such file"):
        read_committee(manifest)
    manifest.write_text(json.dumps({"members": ["member_0.pt"]}))
    with pytest.raises(ModelFileError, match=r"field 'members' lists 1 model; a committee needs >= 2"):
        read_committee(manifest)
    manifest.write_text(json.dumps({"members": 2, "checkpoints": ["member_0/best.ckpt"]}))
    with pytest.raises(ModelFileError, match=r"a training committee .* export it first"):
        read_committee(manifest)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match=r"empty: no committee\.json inside"):
        read_committee(tmp_path / "empty")

    export_model(ReferencePotential(["Li", "P", "S", "Ge"]), tmp_path / "other.pt")
    with pytest.raises(
        MdError, match=r"member .*other\.pt has species \['Li', 'P', 'S', 'Ge'\] but member 0"
    ):
        check_members([tmp_path / "member_0.pt", tmp_path / "other.pt"])
    check_members([tmp_path / "member_0.pt", tmp_path / "member_1.pt"])


def test_devi_file_reader(tmp_path: Path) -> None:
    path = tmp_path / "model_devi.out"
    path.write_text(
        "# step max_devi_f min_devi_f avg_devi_f devi_e\n"
        "0 0.1 0.01 0.05 0.001\n"
        "10 0.2 0.02 0.06 0.002\n"
        "20 0.3 0.03 0.07 0.003\n"
        # a resumed run repeats step 20 with what it computed this time: the last line wins
        "20 0.35 0.035 0.075 0.0035\n"
        "30 0.4 0.04 0.08 0.004\n"
        "40 0.5"  # being written
    )
    series = read_devi_file(path)
    assert series.step.tolist() == [0, 10, 20, 30]
    assert series.max_devi_f.tolist() == [0.1, 0.2, 0.35, 0.4]
    assert series.devi_e.tolist() == [0.001, 0.002, 0.0035, 0.004]
    assert series.fraction_above(0.25) == 0.5 and series.fraction_above(None) is None

    follower = DeviFollower(path, threshold=0.25)
    follower.update()
    assert follower.latest == 0.4 and follower.latest_step == 30 and follower.fraction_above == 0.5
    with path.open("a") as handle:
        handle.write(" 0.05 0.09 0.005\n")
    follower.update()
    assert follower.latest_step == 40 and follower.fraction_above == 0.6

    csv = series.write_csv(tmp_path / "model_devi.csv")
    rows = np.genfromtxt(csv, delimiter=",", names=True)
    assert rows.dtype.names == ("step", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e")
    np.testing.assert_array_equal(rows["max_devi_f"], series.max_devi_f)

    path.write_text("# step max_devi_f min_devi_f avg_devi_f devi_e\n0 0.1 0.01\n10 0.2 0.02 0.06 0.002\n")
    with pytest.raises(MdError, match=r"model_devi\.out:2: expected 5 columns"):
        read_devi_file(path)
