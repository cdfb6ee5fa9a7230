"""The locality study on a model whose reach is known analytically.

``ReferencePotential`` is a pair term within ``cutoff`` plus a three-body term built from the
neighbours within ``three_body_cutoff`` (rc3) of each atom. The force on atom c therefore depends
on atoms within max(cutoff, 2 rc3) of c and on nothing further: an atom k enters F_c only through
an atom i that sees both c and k. Displacing atoms that start beyond that reach plus many σ must
leave F_c unchanged, and displacing atoms inside it must change it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.models import ReferencePotential
from superionic.studies.locality import (
    LocalityError,
    LocalitySettings,
    half_width,
    locality_study,
    merge_results,
    read_result,
    repeat_for_radius,
    resolve_model,
    write_outputs,
)

CUTOFF, RC3 = 3.2, 2.8
REACH = max(CUTOFF, 2 * RC3)  # 5.6 Å
SIGMA = 0.05
# Up to 4.5 Å every draw moves an atom F_c depends on; from REACH + 10 σ = 6.1 Å none. Between the
# two, whether some atom sits within rc3 of a neighbour of c depends on the geometry: not asserted.
RADII = (2.0, 3.0, 4.0, 4.5, 6.1, 6.5, 6.9)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> str:
    species = ["Li", "Ge", "P", "S"]
    model = ReferencePotential(species, cutoff=CUTOFF, three_body_cutoff=RC3, dtype=torch.float64)
    path = tmp_path_factory.mktemp("locality") / "reference.pt"
    export_model(model, path)
    return str(path)


@pytest.fixture(scope="module")
def result(exported):
    atoms = jittered_lattice((6, 6, 6), spacing=2.3, jitter=0.15, seed=3)  # 13.8 Å cube, half-width 6.9 Å
    settings = LocalitySettings(radii=RADII, sigma=SIGMA, draws=2, centres_per_species=2, seed=1)
    return locality_study(atoms, [resolve_model(exported)], settings)


def test_force_change_vanishes_beyond_the_analytic_reach(result):
    model = result.models[0]
    assert model.force_range_A == pytest.approx(2 * CUTOFF)  # the bound from the file's metadata
    for curve in model.curves:
        for r, worst in zip(curve.radius_A, curve.max_eV_per_A, strict=True):
            if r >= REACH + 10 * SIGMA:
                # Nothing within the reach moved (10 σ margin: no displaced atom can end up inside);
                # the same float64 arithmetic on the same neighbourhood, up to summation order.
                assert worst < 1e-12, (curve.species, r, worst)
            else:
                # Inside the reach every draw moves some atom that F_c depends on; the smallest change
                # seen (4.5 Å, three-body only) is ~1e-5 eV/Å for σ = 0.05 Å, far above round-off.
                assert curve.p95_eV_per_A[curve.radius_A.index(r)] > 1e-7, (curve.species, r)


def test_three_body_reach_is_seen_beyond_the_pair_cutoff(result):
    # At r = 4.5 Å > cutoff only the three-body term (reach 2 rc3 = 5.6 Å) couples the displaced atoms
    # to F_c: a study that only saw the pair cutoff would report zero here.
    for curve in result.models[0].curves:
        j = curve.radius_A.index(4.5)
        assert curve.mean_eV_per_A[j] > 1e-6
        assert curve.mean_eV_per_A[j] < curve.mean_eV_per_A[0]  # the change decays with r


def test_locality_radius_and_outputs(result, tmp_path):
    model = result.models[0]
    for curve in model.curves:
        assert curve.samples == 2 * 2  # centres × draws
        assert curve.locality_radius_A is not None and curve.locality_radius_A <= REACH + 10 * SIGMA
    assert model.recommended_cutoff_A == pytest.approx(np.ceil(2 * model.locality_radius_A) / 2)
    paths = write_outputs(result, tmp_path)
    loaded = json.loads(paths["json"].read_text())
    assert loaded["models"][0]["curves"][0]["radius_A"] == list(RADII)
    rows = paths["csv"].read_text().splitlines()
    assert len(rows) == 1 + len(model.curves) * len(RADII)
    assert paths["png"].stat().st_size > 10_000


def test_results_read_back_and_merge(result, tmp_path):
    # An expensive labeller run is kept and later set beside a new model: the JSON must round-trip.
    paths = write_outputs(result, tmp_path)
    again = read_result(paths["json"])
    assert again.models[0].curves[0].p95_eV_per_A == result.models[0].curves[0].p95_eV_per_A
    again.models[0].name = "earlier"
    merged = merge_results(result, again, "earlier.json")
    assert [m.name for m in merged.models] == ["earlier", result.models[0].name]
    other = read_result(paths["json"])
    other.settings = {**other.settings, "sigma": 0.1}
    with pytest.raises(LocalityError, match="another structure, settings or seed"):
        merge_results(result, other, "other.json")


def test_radius_must_fit_in_the_cell(exported):
    atoms = jittered_lattice((3, 3, 3), spacing=2.6, seed=0)  # half-width 3.9 Å
    assert half_width(atoms.cell) == pytest.approx(3.9)
    assert repeat_for_radius(atoms, 6.0) == (2, 2, 2)
    with pytest.raises(LocalityError, match=r"--repeat 2 2 2"):
        locality_study(atoms, [resolve_model(exported)], LocalitySettings(radii=(2.0, 6.0)))


def test_perfect_crystal_is_refused(exported):
    atoms = jittered_lattice((5, 5, 5), spacing=2.6, jitter=0.0, seed=0)
    atoms.symbols = "Li" * len(atoms)  # one species on a perfect lattice: every force is zero by symmetry
    with pytest.raises(LocalityError, match="--rattle"):
        locality_study(atoms, [resolve_model(exported)], LocalitySettings(radii=(2.0,)))


def test_unknown_model_is_one_clear_error(tmp_path):
    with pytest.raises(LocalityError, match="neither a labeller"):
        resolve_model(str(tmp_path / "missing.pt"))


def test_command_line_writes_outputs_and_refuses_bad_input(exported, tmp_path, capsys):
    import ase.io

    from superionic.cli import main

    structure = tmp_path / "cell.extxyz"
    ase.io.write(structure, jittered_lattice((6, 6, 6), spacing=2.3, jitter=0.15, seed=3))
    args = ["study", "locality", str(structure), "--model", exported, "--radii", "2", "4.5", "6.5"]
    assert main([*args, "--centres", "1", "--draws", "1", "-o", str(tmp_path / "out")]) == 0
    loaded = json.loads((tmp_path / "out" / "locality.json").read_text())
    assert loaded["structure"]["repeat"] == [1, 1, 1]  # 6.5 Å fits in the 13.8 Å cube
    assert "drops below 1 % of the force RMS at r = " in capsys.readouterr().out
    # A radius beyond half the width of the cell given explicitly: one line, exit status 2.
    assert main([*args[:-1], "7.5", "--repeat", "1", "1", "1", "-o", str(tmp_path / "bad")]) == 2
    assert "--repeat 2 2 2" in capsys.readouterr().err
