"""`superionic conductivity` end to end on a material that is not LGPS, with the real SevenNet-0.

Li6PS5Cl (argyrodite) from the shipped CIF with its 4a/4d S/Cl exchange set to 0.5/0.5, so that the
1x1x1 cell (52 atoms, 9.85 Å) can be ordered exactly (the shipped 0.6/0.4 needs 1x1x2). Budgets are
tiny (12 frames, K = 2, 3 epochs, one learning round, 2 ps per temperature, 60 teacher steps): the
numbers are not physics, and a 3-epoch committee does not hold the framework. That is what the test
uses: every number in conductivity.json is checked against an independent recomputation from the
stage outputs (the calibrated band from the committee on the held-out frames, the framework breach
from ASE's distances and the model file's floors, the deviation share from LAMMPS's series), the
verdict must say the framework broke, and resuming is checked by what it did not rerun.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read
from scipy import constants

from superionic.analysis.arrhenius import fit_arrhenius
from superionic.cli import main
from superionic.workflows.conductivity_state import JobState, StateError

from ._conductivity_job import MD_EQ_STEPS, SUPERIONIC, job_args, write_job_inputs

SMALL = ["--supercell", "1x1x1", "--draws", "1", "--allow-small-cell"]  # quick to order


def _run(args: list[str], cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(SUPERIONIC), "conductivity", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == expect, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    return result


def _events(workdir: Path) -> list[tuple[str, str]]:
    return [(e["stage"], e["event"]) for e in json.loads((workdir / "state.json").read_text())["log"]]


def _closest(atoms: Atoms, a: str, b: str) -> float:
    symbols = np.array(atoms.get_chemical_symbols())
    d = atoms.get_all_distances(mic=True)
    block = d[np.ix_(symbols == a, symbols == b)]
    return float(block[block > 1e-9].min())


def _check_band(workdir: Path, report: dict) -> None:
    """LO = the 0.99 quantile of the trained committee's max force deviation over the held-out
    calibration frames (none of them trained on), HI = 3 × LO; recomputed here."""
    from superionic.md.committee import force_deviation, load_members, read_committee

    calibration = read(workdir / "train" / "calibration.extxyz", ":")
    training = read(workdir / "train" / "training.extxyz", ":")
    assert len(calibration) == 5 and len(calibration) + len(training) == 12
    members = load_members(read_committee(workdir / "train" / "model" / "committee.json"))
    values = []
    for atoms in calibration:
        bare = atoms.copy()
        bare.calc = None
        values.append(force_deviation(members, bare).max)
    lo = float(np.quantile(values, 0.99))
    deviation = report["deviation"]
    assert deviation["band_calibrated"]
    assert deviation["band_eV_per_A"] == pytest.approx([lo, 3 * lo], rel=1e-9)
    assert deviation["threshold_eV_per_A"] == pytest.approx(lo, rel=1e-9)


def _check_framework(workdir: Path, row: dict, model: Path) -> None:
    """The first breach the report names, and that no frame before it breaks any framework pair,
    from ASE's distances on the trajectory and the floors in the model file's metadata."""
    from superionic.analysis.readers import open_trajectory
    from superionic.export import read_metadata

    integrity = row["integrity"]
    metadata = read_metadata(model)
    closest_pairs = metadata.closest()
    assert closest_pairs is not None  # the model carries its training data's closest distances
    floors = {"-".join(sorted(pair)): 0.85 * closest for pair, closest in closest_pairs.items()}
    reader = open_trajectory(workdir / row["trajectory"])
    symbols = reader.header.symbols
    frames = [
        Atoms(symbols, positions=block.positions[k], cell=block.cells[k], pbc=True)
        for block in reader.blocks()
        for k in range(block.positions.shape[0])
    ]
    assert integrity["n_frames"] == len(frames)
    framework = sorted(p for p in floors if "Li" not in p.split("-"))
    stop = integrity["first_broken_frame"] if not integrity["intact"] else len(frames)
    for atoms in frames[:stop]:
        for pair in framework:
            a, b = pair.split("-")
            if (a == b and symbols.count(a) < 2) or a not in symbols or b not in symbols:
                continue
            assert _closest(atoms, a, b) >= floors[pair] - 1e-9, pair
    if integrity["intact"]:
        return
    breach = integrity["first_breach"]
    a, b = breach["pair"].split("-")
    assert "Li" not in (a, b)  # the mobile ion's contacts are reported, not judged
    assert breach["floor_A"] == pytest.approx(floors[breach["pair"]], rel=1e-9)
    assert breach["distance_A"] == pytest.approx(_closest(frames[stop], a, b), abs=1e-6)
    assert breach["distance_A"] < breach["floor_A"]


def _check_numbers(workdir: Path, report: dict) -> None:
    rows = report["temperatures"]
    assert [r["temperature_K"] for r in rows] == [1000.0, 1400.0]
    model = Path(json.loads((workdir / rows[0]["trajectory"]).with_name("run.json").read_text())["model"])
    for r in rows:
        assert r["integrity"] is not None  # the model carries floors: every run is judged
        _check_framework(workdir, r, model)
        if not r["integrity"]["intact"]:
            # No D from broken frames: either none, or one from the intact prefix only.
            assert not r["diffusive"] or r["duration_ps"] <= r["integrity"]["first_broken_time_ps"] + 1e-9
            assert r["diffusive"] or "framework broken" in r["not_diffusive"]
    diffusive = [r for r in rows if r["diffusive"]]
    for r in diffusive:
        transport = json.loads((workdir / r["transport_json"]).read_text())
        # D from the saved MSD curve: the ordinary least-squares slope over the fit window of the
        # atom-averaged MSD equals the mean of the per-atom slopes the analysis reports (OLS is linear
        # in the data); 1e-6 relative is the CSV's 8 significant digits.
        lag, msd = np.loadtxt(workdir / r["msd_curve"], delimiter=",", skiprows=1, usecols=(0, 4)).T
        lo, hi = r["fit_window_ps"]
        inside = (lag > 0) & (lag >= lo - 1e-9) & (lag <= hi + 1e-9)
        slope = np.polyfit(lag[inside], msd[inside], 1)[0]  # Å²/ps
        assert r["D_cm2_per_s"] == pytest.approx(slope / 6 * 1e-4, rel=1e-6)
        assert r["D_cm2_per_s"] == transport["tracer"]["diffusion_cm2_per_s"]
        # Nernst–Einstein by the formula, SI constants: σ = n q² D / (k_B T), n per cm³.
        n = r["n_ions"] / (r["volume_A3"] * 1e-24)
        sigma = n * (r["charge_e"] * constants.e) ** 2 * r["D_cm2_per_s"] / (constants.k * r["temperature_K"])
        assert r["sigma_NE_S_per_cm"] == pytest.approx(sigma, rel=1e-6)
    if len(diffusive) == 2:
        temps = [r["temperature_K"] for r in diffusive]
        d_fit = fit_arrhenius(temps, [r["D_cm2_per_s"] for r in diffusive],
                              [r["D_stderr_cm2_per_s"] for r in diffusive])  # fmt: skip
        assert report["activation_energy_eV"] == pytest.approx(d_fit.activation_energy_eV, rel=1e-12)
    else:
        assert report["conductivity_300K_S_per_cm"] is None and report["verdict"]["status"] != "trusted"
        assert report["precision"]["ea_met"] is False and report["precision"]["sigma_met"] is False

    # Deviation: the production share above LO, recounted from the LAMMPS series the driver wrote.
    lo = report["deviation"]["threshold_eV_per_A"]
    for r in rows:
        directory = (workdir / r["trajectory"]).parent
        with (directory / "model_devi.csv").open() as handle:
            table = {int(row["step"]): float(row["max_devi_f"]) for row in csv.DictReader(handle)}
        production = [v for step, v in table.items() if step >= MD_EQ_STEPS]
        assert len(production) == r["deviation"]["deviation_steps"] > 0
        fraction = float(np.mean(np.array(production) > lo))
        assert r["deviation"]["uncertain_fraction"] == pytest.approx(fraction, abs=1e-12)
        assert r["deviation"]["max_devi_f_max"] == pytest.approx(max(production), rel=1e-9)

    # The teacher verdicts are validate's, and the overall verdict follows from them.
    validation = json.loads((workdir / report["teacher"]["validation"]).read_text())
    checked = [v for check in report["teacher"]["checks"] for v in check["verdicts"]]
    assert checked == [v for v in validation["verdicts"] if v["temperature_K"] is not None]
    verdict = report["verdict"]
    assert verdict["status"] in ("trusted", "not trusted", "undetermined")
    assert verdict["trusted"] == (verdict["status"] == "trusted")
    for v in checked:
        if v["outcome"] == "disagree" and v["quantity"] in ("D_Li", "MSD_Li"):
            assert verdict["status"] == "not trusted" and "disagrees with the teacher" in verdict["text"]
    for r in rows:
        if not r["integrity"]["intact"]:
            assert verdict["status"] == "not trusted"
            assert f"the framework broke at {r['temperature_K']:g} K" in verdict["text"]
        if r["deviation"]["uncertain_fraction"] > report["deviation"]["target_fraction"]:
            assert verdict["status"] == "not trusted" and "the committee is uncertain" in verdict["text"]
    if len(report["teacher"]["checks"]) < 2:
        assert verdict["status"] != "trusted" and "trust needs two" in verdict["text"]


@pytest.mark.slow
def test_conductivity_li6ps5cl_end_to_end_and_resume(tmp_path: Path) -> None:
    pytest.importorskip("sevenn")
    cif, train_config = write_job_inputs(tmp_path)
    workdir = tmp_path / "job"
    args = job_args(cif, train_config, workdir)
    first = _run(args, tmp_path)
    assert "verdict:" in first.stdout and "precision:" in first.stdout

    report = json.loads((workdir / "conductivity.json").read_text())
    assert report["atoms"] == 52 and report["formula"] == "Li6PS5Cl"
    assert report["production_atoms"] == 52  # 24 Li already >= --min-ions 24
    learned = report["model"]["learn"]
    assert report["model"]["members"] == 2 and learned["rounds"] == 2
    assert learned["frames_added"] == 2 and learned["committee"].startswith("learn/round_001/")
    driving = json.loads(
        (workdir / report["temperatures"][0]["trajectory"]).with_name("run.json").read_text()
    )
    # Production MD runs the committee that learning left, member 0 driving.
    expected = (workdir / learned["committee"]).parent / "member_0.pt"
    assert Path(driving["model"]).resolve() == expected.resolve()
    # The user's temperatures are kept; the planner only checks the framework above them.
    assert report["precision"]["plan"]["temperatures_K"] == [1400.0, 1000.0]
    assert report["precision"]["ea_target_eV"] == 0.03 and report["precision"]["sigma_target"] == 3.0
    _check_band(workdir, report)
    _check_numbers(workdir, report)
    png = (workdir / "conductivity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    stages = ["label", "train", "learn", "md", "analysis", "teacher", "report"]
    assert [s for s, e in _events(workdir) if e == "done"] == stages

    # Resume after deleting only the report: nothing but the report runs again.
    kept = {p: p.stat().st_mtime_ns for p in workdir.glob("md/production/T*K/traj.h5")} | {
        p: p.stat().st_mtime_ns for p in workdir.glob("teacher/*.extxyz.gz")
    }
    assert len(kept) >= 3
    (workdir / "conductivity.json").unlink()
    before = len(_events(workdir))
    _run(args, tmp_path)
    second = _events(workdir)[before:]
    assert [s for s, e in second if e == "skipped"] == stages[:-1]
    assert ("report", "done") in second and not any(e == "started" for s, e in second if s != "report")
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    again = json.loads((workdir / "conductivity.json").read_text())
    assert again["temperatures"] == report["temperatures"]
    assert again["verdict"] == report["verdict"]

    # A kill during production MD after 1000 K finished: 1400 K reruns, 1000 K is kept, and the
    # teacher's own MD (it depends on the cell, not on the model) is not run again.
    state = json.loads((workdir / "state.json").read_text())
    for stage in ("md", "analysis", "teacher", "report"):
        state["stages"][stage]["done"] = False
    (workdir / "state.json").write_text(json.dumps(state))
    for stale in (workdir / "md" / "production" / "T1400K").glob("*"):
        stale.unlink()
    before = len(_events(workdir))
    _run(args, tmp_path)
    third = _events(workdir)[before:]
    assert [s for s, e in third if e == "skipped"] == stages[:3]
    assert [s for s, e in third if e == "done"] == stages[3:]
    low = workdir / "md" / "production" / "T1000K" / "traj.h5"
    high = workdir / "md" / "production" / "T1400K" / "traj.h5"
    assert low.stat().st_mtime_ns == kept[low] and high.stat().st_mtime_ns > kept[high]
    for teacher in workdir.glob("teacher/*.extxyz.gz"):
        assert teacher.stat().st_mtime_ns == kept[teacher]
    _check_numbers(workdir, json.loads((workdir / "conductivity.json").read_text()))

    # Another -T against the same work directory: one line naming the option, nothing touched.
    changed = [a if a != "1400" else "1500" for a in args]
    refused = _run(changed, tmp_path, expect=2)
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "-T = [1000.0, 1400.0]" in lines[0] and "--overwrite" in lines[0]


def test_state_refuses_a_changed_request_and_replaces_an_unstarted_one(tmp_path: Path) -> None:
    state = JobState(tmp_path / "w", "conductivity", {"temperatures": [900.0], "frames": 5})
    state.note("label", "started")
    # Nothing finished yet: a new request replaces the recorded one.
    state = JobState(tmp_path / "w", "conductivity", {"temperatures": [900.0], "frames": 6})
    assert state.request["frames"] == 6
    state.finish("label", {"files": []}, 1.0)
    with pytest.raises(StateError, match=r"with md_steps = null, the command asks for 10"):
        JobState(tmp_path / "w", "conductivity", {"temperatures": [900.0], "frames": 6, "md_steps": 10})
    with pytest.raises(StateError, match=r"with --frames = 6, the command asks for 7"):
        JobState(
            tmp_path / "w", "conductivity", {"temperatures": [900.0], "frames": 7}, flag=lambda f: f"--{f}"
        )
    assert JobState(tmp_path / "w", "conductivity", {"temperatures": [900.0], "frames": 6}).done("label")
    fresh = JobState(tmp_path / "w", "conductivity", {"frames": 7}, overwrite=True)
    assert not fresh.done("label") and not (tmp_path / "w" / "state.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.cif"], "missing.cif: no such structure file"),
        (["LGPS", "-T", "900", "900"], "-T [900.0, 900.0]: a temperature is repeated"),
        (["LGPS", "-T", "900"], "-T 900: Ea and σ(300 K) need at least two temperatures"),
        (["LGPS", "-T", "1400", "1000"], "-T 1400 1000: give the temperatures in ascending order"),
        (["LGPS", "--max-md-ns", "0"], "--max-md-ns 0: must be > 0 ns per temperature"),
        (["LGPS", "--target-ea", "-1"], "--target-ea -1: must be > 0 eV"),
        (["LGPS", "--t-min", "900", "--t-max", "800"], "--t-min 900 --t-max 800: need 0 < t-min < t-max"),
        (["LGPS", "-T", "900", "1000", "--committee", "1"], "--committee 1: the deviation needs at least 2"),
        (
            ["LGPS", "-T", "900", "1000", "--dump-every", "15"],
            "--dump-every 15 must be a multiple of --devi-every 10",
        ),
        (
            ["LGPS", "-T", "900", "1000", "--teacher-steps", "100"],
            "--teacher-steps 100: the teacher run needs",
        ),
        (["LGPS", "-T", "900", "1000", "--ion", "Na", *SMALL], "LGPS: no Na in the structure"),
        (
            ["LGPS", "-T", "900", "1000", "--cutoff", "5", *SMALL[:4]],
            "LGPS: the cell is 8.69 Å wide, less than twice the cutoff 5 Å",
        ),
        (
            ["LGPS", "-T", "900", "1000", "--train-config", "nope.yaml"],
            "--train-config nope.yaml: no such file",
        ),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["conductivity", *args, "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "w" / "state.json").exists()  # a refused request leaves no state behind


def test_undetermined_teacher_verdict_names_the_budget_that_settles_it() -> None:
    from types import SimpleNamespace

    from superionic.workflows.conductivity import ConductivityRequest
    from superionic.workflows.conductivity_report import _undetermined_reason

    request = ConductivityRequest(
        structure="x", temperatures=[1400.0], teacher_steps=60, teacher_write_every=5
    )
    job = SimpleNamespace(request=request)
    short = (
        "13 frames give a window of at most 4 lags (< min_points = 10): run longer or save frames more often"
    )
    teacher = {
        "temperature_K": 1400.0,
        "reference_run": {"D_not_determined": short},
        "model": {"D_not_determined": None},
    }
    verdict = {"quantity": "D_Li", "run_longer_factor": 1.01, "label": "undetermined: run 1× longer"}
    # 13 frames are 12 intervals; the window (a third of the run) must reach 10 lags: 30 intervals,
    # 2.5× the run, 150 steps at 5 steps per frame.
    text = _undetermined_reason(verdict, teacher, job)
    assert (
        text
        == "D_Li at 1400 K undetermined: teacher run not diffusive, run 2.5× longer (--teacher-steps 150)"
    )
    # A run long enough in frames whose MSD is not yet linear: the validator's own estimate is used.
    teacher["reference_run"]["D_not_determined"] = "the log-log slope never stays within 1 ± 0.2"
    verdict["run_longer_factor"] = 3.2
    assert _undetermined_reason(verdict, teacher, job).endswith("run 3.2× longer (--teacher-steps 192)")
