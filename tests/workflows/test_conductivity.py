"""`superionic conductivity` end to end on a material that is not LGPS, with the real SevenNet-0.

Li6PS5Cl (argyrodite) from the shipped CIF with its 4a/4d S/Cl exchange set to 0.5/0.5, so that the
1x1x1 cell (52 atoms, 9.85 Å) can be ordered exactly (the shipped 0.6/0.4 needs 1x1x2). Budgets are
tiny (5 frames, K = 2, 3 epochs, one learning round, 1 000 MD steps, 100 teacher steps): the numbers
are not physics, but every number in conductivity.json is checked against an independent
recomputation from the stage outputs, and resuming is checked by what it did not rerun.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import constants

from superionic.analysis.arrhenius import fit_arrhenius
from superionic.cli import main
from superionic.workflows.conductivity_state import JobState, StateError

ROOT = Path(__file__).resolve().parents[2]
CIF = ROOT / "data" / "examples" / "Li6PS5Cl.cif"
SUPERIONIC = Path(sys.executable).with_name("superionic")
EXCHANGE = {
    "  Cl1 Cl 4 a 0.0000 0.0000 0.0000 0.6": "  Cl1 Cl 4 a 0.0000 0.0000 0.0000 0.5",
    "  S2  S  4 a 0.0000 0.0000 0.0000 0.4": "  S2  S  4 a 0.0000 0.0000 0.0000 0.5",
    "  S3  S  4 d 0.7500 0.7500 0.7500 0.6": "  S3  S  4 d 0.7500 0.7500 0.7500 0.5",
    "  Cl2 Cl 4 d 0.7500 0.7500 0.7500 0.4": "  Cl2 Cl 4 d 0.7500 0.7500 0.7500 0.5",
}
TINY_MODEL = (
    "model: {kind: sprinter, n_basis: 6, radial_channels: 4, angular_channels: 2, l_max: 2, hidden: [16]}\n"
    "training: {batch_size: 2}\n"
)
MD_EQ_STEPS = 100
SMALL = ["--supercell", "1x1x1", "--draws", "1", "--allow-small-cell"]  # quick to order
DEVI_LO = 0.05


def budgets(train_config: Path) -> list[str]:
    return [
        "--draws", "1", "--cutoff", "4.5", "--label-temperatures", "1400",
        "--frames", "5", "--sample-every", "2", "--label-eq-steps", "2",
        "--committee", "2", "--epochs", "3", "--val-fraction", "0.25", "--train-config", str(train_config),
        "--learn-rounds", "1", "--learn-frames", "2", "--learn-steps", "300", "--learn-eq-steps", "100",
        "--learn-epochs", "2",
        "--md-steps", "1000", "--md-eq-steps", str(MD_EQ_STEPS), "--dump-every", "10", "--devi-every", "10",
        # A committee of 3-epoch models deviates by several eV/Å: a wide band so that learning has
        # frames to label (a real run keeps the default 0.05–0.30).
        "--devi-band", str(DEVI_LO), "50",
        "--teacher-steps", "60", "--teacher-eq-steps", "10", "--teacher-write-every", "5",
        # 1 ps of a 24-Li cell is far from diffusive under the default rule (slope within 1 ± 0.2);
        # a loose rule lets the tiny run produce D at both temperatures, so Ea and σ(300 K) exist.
        "--slope-tolerance", "0.9", "--threads", "1",
    ]  # fmt: skip


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


def _check_numbers(workdir: Path, report: dict) -> None:
    rows = report["temperatures"]
    assert [r["temperature_K"] for r in rows] == [1000.0, 1400.0]
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
        assert r["sigma_NE_S_per_cm"] == pytest.approx(sigma, rel=1e-6)  # CODATA vs the package's constants
        assert r["n_ions"] == 24 and r["charge_e"] == 1.0
        lo, hi = r["D_ci95_cm2_per_s"]
        assert lo < r["D_cm2_per_s"] < hi
    if len(diffusive) == 2:
        # σ(300 K) and Ea recomputed from the per-temperature results by the Arrhenius fit itself.
        temps = [r["temperature_K"] for r in diffusive]
        s_fit = fit_arrhenius(
            temps,
            [r["sigma_NE_S_per_cm"] for r in diffusive],
            [json.loads((workdir / r["transport_json"]).read_text())["nernst_einstein"]["stderr_S_per_cm"]
             for r in diffusive],
            quantity="conductivity",
        )  # fmt: skip
        d_fit = fit_arrhenius(temps, [r["D_cm2_per_s"] for r in diffusive],
                              [r["D_stderr_cm2_per_s"] for r in diffusive])  # fmt: skip
        s300 = s_fit.extrapolate(300.0)
        assert report["conductivity_300K_S_per_cm"] == pytest.approx(s300.value, rel=1e-12)
        assert report["conductivity_300K_ci95_S_per_cm"] == pytest.approx(list(s300.ci95), rel=1e-12)
        assert report["activation_energy_eV"] == pytest.approx(d_fit.activation_energy_eV, rel=1e-12)
        # Two points: Ea is the slope through them, exactly.
        k_b = constants.k / constants.e
        ea = (
            -k_b
            * np.log(diffusive[1]["D_cm2_per_s"] / diffusive[0]["D_cm2_per_s"])
            / (1 / temps[1] - 1 / temps[0])
        )
        assert report["activation_energy_eV"] == pytest.approx(ea, rel=1e-6)
    else:
        assert report["conductivity_300K_S_per_cm"] is None and report["verdict"]["status"] != "trusted"

    # Deviation: the production share above LO, recounted from the LAMMPS series the driver wrote.
    for r in rows:
        directory = (workdir / r["trajectory"]).parent
        with (directory / "model_devi.csv").open() as handle:
            table = {int(row["step"]): float(row["max_devi_f"]) for row in csv.DictReader(handle)}
        production = [v for step, v in table.items() if step >= MD_EQ_STEPS]
        assert len(production) == (1000 - MD_EQ_STEPS) // 10 + 1  # every 10 steps, both ends included
        fraction = float(np.mean(np.array(production) > DEVI_LO))
        assert r["deviation"]["uncertain_fraction"] == pytest.approx(fraction, abs=1e-12)
        assert r["deviation"]["max_devi_f_max"] == pytest.approx(max(production), rel=1e-9)

    # The teacher verdicts are validate's, and the overall verdict follows from them.
    validation = json.loads((workdir / report["teacher"]["validation"]).read_text())
    assert report["teacher"]["verdicts"] == [
        v for v in validation["verdicts"] if v["temperature_K"] is not None
    ]
    outcomes = {v["quantity"]: v["outcome"] for v in report["teacher"]["verdicts"]}
    verdict = report["verdict"]
    assert verdict["status"] in ("trusted", "not trusted", "undetermined")
    assert verdict["trusted"] == (verdict["status"] == "trusted")
    if "disagree" in (outcomes["D_Li"], outcomes["MSD_Li"]):
        assert verdict["status"] == "not trusted" and "disagrees with the teacher" in verdict["text"]
    uncertain = [r["deviation"]["uncertain_fraction"] > report["deviation"]["target_fraction"] for r in rows]
    if any(uncertain):
        assert verdict["status"] == "not trusted" and "the committee is uncertain" in verdict["text"]
    if verdict["status"] == "trusted":
        assert outcomes["D_Li"] == "agree" and not any(uncertain)
    if "min_points" in (report["teacher"]["reference_run"]["D_not_determined"] or ""):
        # 13 teacher frames; the window rule needs 30 intervals: 2.5× the 60 steps.
        assert "teacher run not diffusive, run 2.5× longer (--teacher-steps 150)" in verdict["text"]


@pytest.mark.slow
def test_conductivity_li6ps5cl_end_to_end_and_resume(tmp_path: Path) -> None:
    pytest.importorskip("sevenn")
    text = CIF.read_text()
    for old, new in EXCHANGE.items():
        assert old in text
        text = text.replace(old, new)
    cif = tmp_path / "Li6PS5Cl_55.cif"
    cif.write_text(text)
    train_config = tmp_path / "tiny.yaml"
    train_config.write_text(TINY_MODEL)
    workdir = tmp_path / "job"
    args = [
        str(cif),
        "--labeller",
        "sevennet",
        "-T",
        "1000",
        "1400",
        "--workdir",
        str(workdir),
        *budgets(train_config),
    ]
    first = _run(args, tmp_path)
    assert "verdict:" in first.stdout

    report = json.loads((workdir / "conductivity.json").read_text())
    assert report["atoms"] == 52 and report["formula"] == "Li6PS5Cl"
    learned = report["model"]["learn"]
    assert report["model"]["members"] == 2 and learned["rounds"] == 2
    assert learned["frames_added"] == 2 and learned["committee"].startswith("learn/round_001/")
    driving = json.loads((workdir / "md" / "T1000K" / "run.json").read_text())["model"]
    # Production MD runs the committee that learning left, member 0 driving.
    assert Path(driving).resolve() == ((workdir / learned["committee"]).parent / "member_0.pt").resolve()
    assert report["deviation"]["recorded"]
    _check_numbers(workdir, report)
    png = (workdir / "conductivity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1320  # 11 in × 120 dpi
    stages = ["label", "train", "learn", "md", "analysis", "teacher", "report"]
    assert [s for s, e in _events(workdir) if e == "done"] == stages

    # Resume after deleting only the report: nothing but the report runs again.
    kept = {p: p.stat().st_mtime_ns for p in workdir.glob("md/T*K/traj.h5")} | {
        p: p.stat().st_mtime_ns for p in workdir.glob("teacher/*.extxyz.gz")
    }
    assert len(kept) == 3
    (workdir / "conductivity.json").unlink()
    before = len(_events(workdir))
    _run(args, tmp_path)
    second = _events(workdir)[before:]
    assert [s for s, e in second if e == "skipped"] == stages[:-1]
    assert ("report", "done") in second and not any(e == "started" for s, e in second if s != "report")
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    again = json.loads((workdir / "conductivity.json").read_text())
    assert again["conductivity_300K_S_per_cm"] == report["conductivity_300K_S_per_cm"]
    assert again["verdict"] == report["verdict"]

    # A kill during production MD after 1000 K finished: 1400 K reruns from scratch, 1000 K is kept, and
    # the teacher's own MD (it depends on the cell, not on the model) is not run again.
    state = json.loads((workdir / "state.json").read_text())
    state["stages"]["md"]["done"] = False
    (workdir / "state.json").write_text(json.dumps(state))
    for stale in (workdir / "md" / "T1400K").glob("*"):
        stale.unlink()
    before = len(_events(workdir))
    _run(args, tmp_path)
    third = _events(workdir)[before:]
    assert [s for s, e in third if e == "skipped"] == stages[:3]
    assert [s for s, e in third if e == "done"] == stages[3:]
    low, high = sorted(workdir.glob("md/T*K/traj.h5"))
    assert low.stat().st_mtime_ns == kept[low] and high.stat().st_mtime_ns > kept[high]
    teacher = next(workdir.glob("teacher/*.extxyz.gz"))
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
        (["missing.cif", "-T", "900"], "missing.cif: no such structure file"),
        (["LGPS", "-T", "900", "900"], "-T [900.0, 900.0]: a temperature is repeated"),
        (["LGPS", "-T", "900", "--committee", "1"], "--committee 1: the deviation needs at least 2 members"),
        (["LGPS", "-T", "900", "--md-steps", "100", "--md-eq-steps", "200"], "--md-steps 100 must exceed"),
        (
            ["LGPS", "-T", "900", "--dump-every", "15"],
            "--dump-every 15 must be a multiple of --devi-every 10",
        ),
        (["LGPS", "-T", "900", "--teacher-steps", "100"], "--teacher-steps 100: the teacher run needs"),
        (["LGPS", "-T", "900", "--ion", "Na", *SMALL], "LGPS: no Na in the structure"),
        (
            ["LGPS", "-T", "900", "--cutoff", "5", *SMALL[:4]],
            "LGPS: the cell is 8.69 Å wide, less than twice the cutoff 5 Å",
        ),
        (["LGPS", "-T", "900", "--train-config", "nope.yaml"], "--train-config nope.yaml: no such file"),
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
