"""Labellers, labelled-frame files, reference MD and the Li tracer diffusivity.

Everything runs on a cheap Lennard-Jones stand-in for the labeller except one smoke test that
drives the real SevenNet-0 for a handful of MD steps on the smallest cell (LYC, 30 atoms).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
from pathlib import Path

import ase
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.io import read

from superionic.data import generate as generate_module
from superionic.data import reference_md as reference_md_module
from superionic.data.commands import add_data_commands
from superionic.data.generate import (
    FrameWriter,
    GenerateConfig,
    GenerationError,
    generate,
    label_frame,
    summary_path,
)
from superionic.data.labellers import LABELLERS, Labeller, LabellerError, make_labeller
from superionic.data.materials import build_structure
from superionic.data.reference_md import (
    ReferenceMDConfig,
    _Unwrapper,
    extend_reference_md,
    finish_partial,
    run_reference_md,
)


def lj_labeller() -> Labeller:
    calc = LennardJones(sigma=2.0, epsilon=0.01, rc=5.0, smooth=True)
    return Labeller("lj", "LennardJones", "ase", ase.__version__, calc)


def test_unknown_labeller_lists_the_valid_ones() -> None:
    with pytest.raises(LabellerError, match="valid: sevennet, chgnet"):
        make_labeller("mace")
    assert LABELLERS == ("sevennet", "chgnet")


def test_summary_path_sits_beside_the_data() -> None:
    assert summary_path(Path("data/LGPS/sevennet.extxyz.gz")) == Path("data/LGPS/sevennet.json")


def test_labelled_frames_round_trip_through_extxyz_gz(tmp_path: Path) -> None:
    labeller = lj_labeller()
    atoms = build_structure("LYC", seed=0)
    atoms.rattle(0.05, seed=1)
    reference = atoms.copy()
    reference.calc = labeller.calculator
    expected = (reference.get_potential_energy(), reference.get_forces(), reference.get_stress())

    output = tmp_path / "frames.extxyz.gz"
    writer = FrameWriter(output)
    for k in range(3):
        writer.add(label_frame(atoms.copy(), labeller, {"material": "LYC", "temperature_K": 300.0, "k": k}))
    writer.finish()
    assert not writer.partial.exists()

    frames = read(output, ":")
    assert len(frames) == 3
    frame = frames[0]
    assert frame.get_potential_energy() == pytest.approx(expected[0], rel=1e-6)
    np.testing.assert_allclose(frame.get_forces(), expected[1], atol=1e-6)
    np.testing.assert_allclose(frame.get_stress(), expected[2], atol=1e-8)
    assert frame.info["material"] == "LYC" and frames[2].info["k"] == 2


def test_transport_summary_recovers_a_known_random_walk_from_the_file(tmp_path: Path) -> None:
    """The reference D goes through the same reader and analysis as users' files: check it end to end."""
    rng = np.random.default_rng(0)
    frames, n_li, n_frame_atoms, dt_ps, D = 300, 96, 32, 0.05, 0.3  # D in Å²/ps
    steps = rng.normal(0.0, np.sqrt(2 * D * dt_ps), size=(frames - 1, n_li, 3))
    li = np.concatenate([np.zeros((1, n_li, 3)), np.cumsum(steps, axis=0)]) + rng.uniform(0, 12, (n_li, 3))
    framework = np.broadcast_to(rng.uniform(0, 12, (n_frame_atoms, 3)), (frames, n_frame_atoms, 3))
    positions = np.concatenate([li, framework], axis=1)
    positions += np.linspace(0.0, 5.0, frames)[:, None, None]  # a uniform drift that must not count
    symbols = ["Li"] * n_li + ["Cl"] * n_frame_atoms
    path = tmp_path / "walk.extxyz.gz"
    trajectory = []
    for k in range(frames):
        atoms = Atoms(symbols, positions=positions[k], cell=[12.0] * 3, pbc=True)
        atoms.info["time_ps"] = k * dt_ps
        trajectory.append(atoms)
    ase.io.write(path, trajectory, format="extxyz")
    fields = reference_md_module.transport_summary(path, n_bootstrap=300)
    low, high = fields["D_Li_ci95_cm2_per_s"]
    assert low < D * 1e-4 < high
    assert fields["D_Li_cm2_per_s"] == pytest.approx(D * 1e-4, rel=0.1)
    assert "bootstrap" in fields["method"] and "centre-of-mass" in fields["method"]
    assert fields["D_Li_block_average_ci95_cm2_per_s"][0] < fields["D_Li_cm2_per_s"]


def test_unwrapper_follows_atoms_across_the_boundary() -> None:
    atoms = Atoms("Li", positions=[[9.9, 5.0, 5.0]], cell=[10.0, 10.0, 10.0], pbc=True)
    unwrap = _Unwrapper(atoms)
    for _ in range(5):
        atoms.positions += [0.3, 0.0, 0.0]
        atoms.wrap()  # whatever the integrator does with images
        unwrap()
    assert unwrap.unwrapped[0, 0] == pytest.approx(11.4)


def lj_reference_config(tmp_path: Path, monkeypatch, **fields) -> ReferenceMDConfig:
    """A short LYC reference run at 600 K with the Lennard-Jones stand-in as its labeller."""
    monkeypatch.setattr(reference_md_module, "make_labeller", lambda name, device="cpu": lj_labeller())
    defaults = {
        "material": "LYC",
        "temperature": 600.0,
        "write_every": 5,
        "output": tmp_path / "ref.extxyz.gz",
    }
    return ReferenceMDConfig(**{**defaults, **fields})


def test_reference_md_writes_unwrapped_frames_and_d(tmp_path: Path, monkeypatch) -> None:
    config = lj_reference_config(tmp_path, monkeypatch, steps=250, equilibration_steps=10, timestep_fs=1.0)
    output = config.output
    result = run_reference_md(config)
    frames = read(output, ":")
    assert len(frames) == 51
    summary = json.loads(result.summary_json.read_text())
    assert summary["frames"] == 51 and summary["production_ps"] == pytest.approx(0.25)
    # 0.25 ps of a Lennard-Jones stand-in never turns diffusive: the summary says so, nothing is lost.
    assert summary["D_Li_cm2_per_s"] is None and "not determined" in summary["D_Li_note"]
    # Unwrapped: no atom ever jumps by a sizeable fraction of the cell between frames.
    positions = np.array([f.positions for f in frames])
    assert np.abs(np.diff(positions, axis=0)).max() < 1.0
    assert frames[3].info["positions"] == "unwrapped"
    assert frames[3].get_forces().shape == (30, 3)


def test_a_stopped_reference_run_is_finished_from_its_partial_file(tmp_path: Path, monkeypatch) -> None:
    config = lj_reference_config(tmp_path, monkeypatch, steps=100, equilibration_steps=0)
    output = config.output
    run_reference_md(config)
    # What a killed run leaves: the plain-text partial file, no .gz and no summary.
    partial = tmp_path / "ref.extxyz.gz.partial"
    with gzip.open(output, "rb") as src:
        partial.write_bytes(src.read())
    output.unlink()
    summary_path(output).unlink()

    longer = dataclasses.replace(config, steps=400)  # the run was meant to go further
    with pytest.raises(GenerationError, match="temperature_K"):
        finish_partial(dataclasses.replace(longer, temperature=900.0))
    result = finish_partial(longer)
    assert not partial.exists() and len(read(output, ":")) == 21
    summary = json.loads(summary_path(output).read_text())
    assert summary["frames"] == 21 and "stopped at production step 100 of 400" in summary["note"]
    assert summary["labeller"] == "lj" and result.summary["production_ps"] == pytest.approx(0.2)
    with pytest.raises(GenerationError, match="no partial trajectory"):
        finish_partial(longer)


def test_a_reference_run_is_extended_without_touching_its_first_part(tmp_path: Path, monkeypatch) -> None:
    config = lj_reference_config(tmp_path, monkeypatch, steps=100, equilibration_steps=0, labeller="lj")
    output = config.output
    run_reference_md(config)
    before = read(output, ":")
    first_wall = json.loads(summary_path(output).read_text())["wall_time_s"]

    for wrong, field in (({"temperature": 900.0}, "temperature_K"), ({"write_every": 10}, "write-every")):
        with pytest.raises(GenerationError, match=field):
            extend_reference_md(dataclasses.replace(config, steps=200, **wrong))
    with pytest.raises(GenerationError, match="already has 100 production steps"):
        extend_reference_md(config)

    result = extend_reference_md(dataclasses.replace(config, steps=200))
    after = read(output, ":")
    assert len(after) == 41 and not FrameWriter.partial_path(output).exists()
    assert [f.info["md_step"] for f in after] == list(range(0, 201, 5))
    for old, new in zip(before, after[:21], strict=True):  # the first part, bit for bit
        np.testing.assert_array_equal(old.positions, new.positions)
        np.testing.assert_array_equal(old.get_forces(), new.get_forces())
    # Continuous across the seam: positions carry on from the last frame, still unwrapped.
    positions = np.array([f.positions for f in after])
    assert np.abs(np.diff(positions, axis=0)).max() < 1.0
    assert after[21].info["time_ps"] == pytest.approx(0.21)  # step 105 at 2 fs
    summary = result.summary
    assert summary["frames"] == 41 and summary["production_ps"] == pytest.approx(0.4)
    assert "extended from production step 100 to 200" in summary["note"]
    assert summary["wall_time_s"] >= first_wall


def test_a_stopped_generation_keeps_its_md_frames_and_adds_strained_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(generate_module, "make_labeller", lambda name, device="cpu": lj_labeller())
    output = tmp_path / "lyc.extxyz.gz"
    config = GenerateConfig(
        material="LYC",
        frames=16,
        temperatures=(300.0, 600.0),
        sample_every=2,
        equilibration_steps=2,
        output=output,
    )
    generate(config)
    # What a run killed in its second temperature leaves: the first MD frames, as plain text.
    md = [f for f in read(output, ":") if f.info["sampling"] == "md"][:8]
    ase.io.write(tmp_path / "lyc.extxyz.gz.partial", md, format="extxyz")
    output.unlink()
    summary_path(output).unlink()

    result = generate_module.finish_partial(config)
    frames = read(output, ":")
    assert [f.info["sampling"] for f in frames].count("md") == 8
    assert result.summary["counts"] == {"md_300K": 6, "md_600K": 2, "strain": 3}  # 8 · 0.25 / 0.75
    np.testing.assert_allclose(frames[0].get_forces(), md[0].get_forces(), atol=1e-8)
    assert "stopped during MD after 8 of 12" in result.summary["note"]
    with pytest.raises(GenerationError, match="no partial file"):
        generate_module.finish_partial(config)


def test_generate_plan_on_a_cheap_labeller(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(generate_module, "make_labeller", lambda name, device="cpu": lj_labeller())
    output = tmp_path / "lyc.extxyz.gz"
    config = GenerateConfig(
        material="LYC",
        frames=8,
        temperatures=(300.0, 600.0),
        strain_fraction=0.25,
        sample_every=2,
        equilibration_steps=2,
        output=output,
    )
    result = generate(config)
    frames = read(output, ":")
    assert len(frames) == 8
    assert result.summary["counts"] == {"md_300K": 3, "md_600K": 3, "strain": 2}
    kinds = [f.info["sampling"] for f in frames]
    assert kinds.count("strain") == 2
    strained = [f for f in frames if f.info["sampling"] == "strain"]
    assert all(not np.allclose(f.cell.array, frames[0].cell.array) for f in strained)
    for key in (
        "material",
        "labeller",
        "labeller_version",
        "temperature_K",
        "seed",
        "source",
        "superionic_version",
    ):
        assert key in frames[0].info
    assert json.loads(summary_path(output).read_text())["frames"] == 8


def test_cli_registers_data_verbs() -> None:
    parser = argparse.ArgumentParser()
    verbs = parser.add_subparsers(dest="verb", required=True)
    add_data_commands(verbs)
    args = parser.parse_args(
        ["data", "generate", "LGPS", "--labeller", "chgnet", "--frames", "12", "-o", "x.gz"]
    )
    assert args.frames == 12 and args.labeller == "chgnet" and args.supercell is None  # None: 1x1x1
    args = parser.parse_args(
        ["data", "reference-md", "LGPS", "--temperature", "900", "--steps", "1000", "--supercell", "2x1x1"]
    )
    assert args.temperature == 900.0 and args.supercell == (2, 1, 1)
    assert callable(args.func)


def test_sevennet_smoke(tmp_path: Path) -> None:
    """The real labeller, five MD steps in all, on the 30-atom LYC cell."""
    pytest.importorskip("sevenn")
    output = tmp_path / "smoke.extxyz.gz"
    config = GenerateConfig(
        material="LYC",
        labeller="sevennet",
        frames=2,
        temperatures=(300.0,),
        strain_fraction=0.5,
        sample_every=3,
        equilibration_steps=2,
        threads=1,
        output=output,
    )
    result = generate(config)
    frames = read(output, ":")
    assert len(frames) == 2
    assert frames[0].info["labeller_version"].startswith("SevenNet-0 (sevenn ")
    energy = frames[0].get_potential_energy() / len(frames[0])
    assert -6.0 < energy < -3.0  # eV/atom: a bound chloride, not garbage
    assert np.abs(frames[1].get_stress()).max() < 0.1
    assert result.summary["frames"] == 2


def test_cli_commands_run_end_to_end(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(generate_module, "make_labeller", lambda name, device="cpu": lj_labeller())
    monkeypatch.setattr(reference_md_module, "make_labeller", lambda name, device="cpu": lj_labeller())
    parser = argparse.ArgumentParser()
    add_data_commands(parser.add_subparsers(dest="verb", required=True))
    out = tmp_path / "gen.extxyz.gz"
    argv = "data generate LYC --frames 4 --temperatures 300 --sample-every 2 --equilibration-steps 2 -o"
    args = parser.parse_args([*argv.split(), str(out)])
    assert args.func(args) == 0
    assert len(read(out, ":")) == 4
    ref = tmp_path / "ref.extxyz.gz"
    argv = "data reference-md LYC --temperature 300 --steps 100 --write-every 2 --equilibration-steps 2 -o"
    args = parser.parse_args([*argv.split(), str(ref)])
    assert args.func(args) == 0
    assert "D_Li_cm2_per_s" in capsys.readouterr().out
    assert json.loads(summary_path(ref).read_text())["frames"] == 51
