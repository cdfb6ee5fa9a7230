"""Stages 5 and 6 of `superionic conductivity`: transport analysis, and the teacher check.

Analysis: each production trajectory through ``analysis.report.analyze_trajectory`` (tracer D with
its bootstrap interval, Nernst–Einstein σ, the window rule recorded), its MSD curve saved as CSV for
the report's overlay, and, with two or more diffusive temperatures, ``arrhenius_report`` (Ea, D and
σ at 300 K with 95 % intervals). A run that never turns diffusive is recorded with the analysis'
reason and left out of the fit, never patched.

Teacher: the labeller's own Nosé–Hoover MD on the same cell at the highest temperature
(``data.reference_md``, relaxation time 100 steps as in lammps_inputs/nvt.in), then
``validation.validate`` with the production trajectory at that temperature as the model's run: the
verdicts are about the very D that the report gives.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from superionic.analysis.diffusion import WindowRule
from superionic.analysis.errors import NoDiffusiveRegimeError, TrajectoryTooShortError
from superionic.analysis.integrity import BrokenDynamicsError, check_integrity, floors_for
from superionic.analysis.msd import msd_fft
from superionic.analysis.readers import load_ion_positions, open_trajectory
from superionic.analysis.report import analyze_trajectory, arrhenius_report
from superionic.data.reference_md import ReferenceMDConfig, run_reference_md
from superionic.validation.compare import ValidationSettings
from superionic.validation.runner import ValidationRequest, validate
from superionic.workflows.conductivity import Job
from superionic.workflows.conductivity_stages import STRUCTURE
from superionic.workflows.precision import guess_from_pilots, onset_ps

# The thermostat relaxation time of lammps_inputs/nvt.in, in steps: the teacher uses the same.
TDAMP_STEPS = 100


def write_msd_csv(trajectory: Path, ion: str, target: Path) -> Path:
    """lag_ps, msd_x, msd_y, msd_z, msd (Å²) of ``ion`` in ``trajectory`` (drift removed, all origins)."""
    ions = load_ion_positions(open_trajectory(trajectory), ion)
    try:
        msd = msd_fft(ions.positions)
        lags = ions.times_ps - ions.times_ps[0]
    finally:
        ions.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with tmp.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["lag_ps", "msd_x_A2", "msd_y_A2", "msd_z_A2", "msd_A2"])
        for lag, row in zip(lags, msd, strict=True):
            out.writerow([f"{lag:.6g}", *(f"{v:.8g}" for v in row), f"{row.sum():.8g}"])
    tmp.replace(target)
    return target


def read_msd_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return data[:, 0], data[:, 4]


def _framework_check(trajectory: Path, ion: str) -> dict[str, Any] | None:
    """The framework check of a run the analysis refused, for the report (None: no floors known)."""
    floors = floors_for(trajectory)
    if floors is None:
        return None
    return check_integrity(open_trajectory(trajectory), floors, ion).to_dict()


def analysis(job: Job) -> dict[str, Any]:
    request = job.request
    rule = WindowRule(slope_tolerance=request.slope_tolerance)
    reports, transport, not_diffusive, curves = [], {}, {}, {}
    framework: dict[str, dict[str, Any] | None] = {}  # the framework check of each run (docs/guard.md)
    files: list[str] = []
    for run in job.state.outputs("md")["runs"]:
        temperature = float(run["temperature_K"])
        key = f"{temperature:g}"
        trajectory = job.path(run["trajectory"])
        out = job.path("analysis") / f"T{key}K"
        curves[key] = job.relative(write_msd_csv(trajectory, request.ion, out / f"msd_{request.ion}.csv"))
        files.append(curves[key])
        try:
            report = analyze_trajectory(trajectory, request.ion, out, temperature_K=temperature, rule=rule)
        except (NoDiffusiveRegimeError, TrajectoryTooShortError, BrokenDynamicsError) as err:
            not_diffusive[key] = str(err)
            framework[key] = _framework_check(trajectory, request.ion)
            continue
        framework[key] = report.integrity
        reports.append(report)
        transport[key] = job.relative(out / f"transport_{request.ion}.json")
        files.append(transport[key])
    arrhenius = None
    arrhenius_note = None
    if len(reports) >= 2:
        result = arrhenius_report(reports, job.path("analysis"))
        arrhenius = job.relative(job.path("analysis") / f"arrhenius_{result.ion}.json")
        files.append(arrhenius)
        line = (
            f"Ea = {result.activation_energy_eV:.3f} ± {result.activation_energy_stderr_eV:.3f} eV, "
            f"σ(300 K) = {1e3 * result.conductivity_300K_S_per_cm:.3g} mS/cm"
        )
    else:
        arrhenius_note = (
            f"{len(reports)} of {len(job.state.outputs('md')['runs'])} temperatures diffusive: an Arrhenius "
            "fit needs two; raise --max-md-ns or the temperatures"
        )
        line = arrhenius_note
    return {
        "files": files,
        "transport": transport,
        "not_diffusive": not_diffusive,
        "framework": framework,
        "msd_curves": curves,
        "arrhenius": arrhenius,
        "arrhenius_note": arrhenius_note,
        "slope_tolerance": request.slope_tolerance,
        "line": line,
    }


def teacher_temperatures(job: Job) -> tuple[list[float], str | None]:
    """The highest production temperature and the lowest one at which the teacher's run should turn
    diffusive within --teacher-steps (the pilots' Arrhenius guess, with a margin of 1.5 on the
    onset); only the highest, with the reason, when no lower one is expected to."""
    request = job.request
    md = job.state.outputs("md")
    temperatures = sorted(md["plan"]["temperatures_K"])
    highest = temperatures[-1]
    found = [p for p in md["pilots"] if p.get("D_cm2_per_s")]
    budget_ps = request.teacher_steps * request.timestep_fs / 1000.0
    if len(found) >= 2:
        guess = guess_from_pilots(
            [p["temperature_K"] for p in found],
            [p["D_cm2_per_s"] for p in found],
            min(p["cage_msd_A2"] for p in found),
        )
        for t in temperatures[:-1]:
            if 1.5 * onset_ps(guess, t) <= budget_ps:
                return [t, highest], None
    return [highest], (
        f"no production temperature below {highest:g} K is expected to turn diffusive within the "
        f"teacher's {budget_ps:g} ps: raise --teacher-steps for a second teacher check"
    )


def teacher(job: Job) -> dict[str, Any]:
    """The teacher's own MD on the labelled cell at two temperatures (teacher_temperatures), and
    the model's MD on that cell with the teacher's protocol, judged against it (validation)."""
    request = job.request
    temperatures, why_one = teacher_temperatures(job)
    directory = job.path("teacher")
    recorded = job.state.outputs("teacher")
    references = []
    for temperature in temperatures:
        reference = directory / f"reference_md_{request.labeller}_{temperature:g}K.extxyz.gz"
        summary = reference.with_name(reference.name.removesuffix(".extxyz.gz") + ".json")
        key = f"reference_done_{temperature:g}"
        if not (recorded.get(key) and reference.exists() and summary.exists()):
            config = ReferenceMDConfig(
                material=str(job.path(STRUCTURE)),
                temperature=temperature,
                steps=request.teacher_steps,
                labeller=request.labeller,
                timestep_fs=request.timestep_fs,
                write_every=request.teacher_write_every,
                equilibration_steps=request.teacher_eq_steps,
                thermostat="nose-hoover",
                tdamp_fs=TDAMP_STEPS * request.timestep_fs,
                seed=request.seed,
                ion=request.ion,
                device=request.device,
                threads=request.threads,
                output=reference,
            )

            def show(done: int, of: int | None, temperature: float = temperature) -> None:
                job.progress("teacher", done, of, f"{request.labeller} MD {temperature:g} K")

            if Path(f"{reference}.partial").exists():
                job.note(
                    "teacher", f"{request.labeller} MD at {temperature:g} K resumes from its partial file"
                )
            run_reference_md(config, on_progress=show)
            job.state.record("teacher", key, True)
        references.append((temperature, reference, summary))
    job.progress("teacher", None, None, "the model's MD on the teacher's cell, judged against the teacher")
    members = job.state.outputs("md")["members"]
    report = validate(
        ValidationRequest(
            model=members[0],
            references=[str(r) for _, r, _ in references],
            ion=request.ion,
            output=str(directory / "validation"),
            slope_tolerance=request.slope_tolerance,
            settings=ValidationSettings(resolution=request.resolution),
            parallel=request.parallel,
        )
    )
    validation_json = directory / "validation" / "validation.json"
    curves = {}
    for temperature, reference, _ in references:
        copy = directory / "validation" / "references" / reference.name.removesuffix(".gz")
        curves[f"{temperature:g}"] = job.relative(
            write_msd_csv(
                copy if copy.exists() else reference,
                request.ion,
                directory / f"msd_{request.ion}_{temperature:g}K.csv",
            )
        )
    labels = [
        f"{v['temperature_K']:g} K {v['label']}"
        for v in report.verdicts
        if v["quantity"] == f"D_{request.ion}"
    ]
    return {
        "files": [job.relative(r) for _, r, _ in references]
        + [job.relative(s) for _, _, s in references]
        + [job.relative(validation_json), *curves.values()],
        "temperatures_K": temperatures,
        "single_reason": why_one,
        "msd_curves": curves,
        "references": [job.relative(r) for _, r, _ in references],
        "validation": job.relative(validation_json),
        "figure": job.relative(report.figure),
        "line": f"D against {request.labeller}: {'; '.join(labels)}",
        **{f"reference_done_{t:g}": True for t in temperatures},
    }
