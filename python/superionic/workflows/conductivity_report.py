"""Stage 7 of `superionic conductivity`: one JSON with every number and the verdict in words.

The verdict is "trusted" only when the teacher check agrees at 95 % (D and MSD; RDFs do not
disagree), no temperature's committee deviation puts more than the target fraction of deviation
steps above the uncertainty line, no run was stopped, and at least two temperatures are diffusive so
that Ea and σ(300 K) exist. A disagreement makes it "not trusted", naming the quantity; a verdict
the statistics cannot settle makes it "undetermined", saying what budget to raise and by how much.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import superionic
from superionic.analysis.diffusion import WindowRule
from superionic.validation.experiments import matching
from superionic.workflows.conductivity import ConductivityError, Job
from superionic.workflows.conductivity_stages import band_of
from superionic.workflows.conductivity_state import write_json_atomic
from superionic.workflows.precision_run import GUARD_MARGIN

REPORT_JSON = "conductivity.json"
REPORT_PNG = "conductivity.png"
# Verdicts of the teacher check that decide trust; RDF verdicts are named "RDF <pair> <statistic>".
DECISIVE = ("D_", "MSD_", "RDF ")


def read_report(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConductivityError(f"{path}: cannot read the report ({err}); rerun the command") from err


def _load(job: Job, relative: str | None) -> dict[str, Any] | None:
    return json.loads(job.path(relative).read_text()) if relative else None


def _temperature_rows(job: Job) -> list[dict[str, Any]]:
    analysis = job.state.outputs("analysis")
    runs = {f"{r['temperature_K']:g}": r for r in job.state.outputs("md")["runs"]}
    rows = []
    for key, run in runs.items():
        row: dict[str, Any] = {"temperature_K": float(key), "trajectory": run["trajectory"]}
        transport = _load(job, analysis["transport"].get(key))
        if transport is not None:
            d, ne = transport["tracer"], transport["nernst_einstein"]
            row.update(
                diffusive=True,
                D_cm2_per_s=d["diffusion_cm2_per_s"],
                D_stderr_cm2_per_s=d["stderr_cm2_per_s"],
                D_ci95_cm2_per_s=list(d["ci95_cm2_per_s"]),
                fit_window_ps=list(d["window_ps"]),
                sigma_NE_S_per_cm=ne["conductivity_S_per_cm"],
                sigma_NE_ci95_S_per_cm=list(ne["ci95_S_per_cm"]),
                sigma_NE_stderr_S_per_cm=ne["stderr_S_per_cm"],
                n_ions=transport["n_ions"],
                volume_A3=transport["volume_A3"],
                charge_e=transport["charge_e"],
                duration_ps=transport["duration_ps"],
                transport_json=analysis["transport"][key],
                integrity=transport.get("integrity"),
            )
        else:
            row.update(
                diffusive=False,
                not_diffusive=analysis["not_diffusive"].get(key),
                integrity=analysis.get("framework", {}).get(key),
            )
        row["msd_curve"] = analysis["msd_curves"].get(key)
        row["committee"] = run.get("committee")
        row["deviation"] = run.get("deviation")
        rows.append(row)
    return rows


def _deviation(job: Job, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per temperature: production deviation statistics (as active learning counts them)."""
    request = job.request
    per_t = {f"{r['temperature_K']:g}": r["deviation"] for r in rows if r.get("deviation")}
    fractions = [d["uncertain_fraction"] for d in per_t.values() if d.get("uncertain_fraction") is not None]
    largest = [d["max_devi_f_max"] for d in per_t.values() if d.get("max_devi_f_max") is not None]
    band = band_of(job)
    return {
        "threshold_eV_per_A": band.lo,
        "band_eV_per_A": [band.lo, band.hi],
        "band_calibrated": request.devi_lo is None,
        "target_fraction": request.target_fraction,
        "definition": "production deviation steps (step >= --md-eq-steps) with max_devi_f above the "
        "threshold, every --devi-every steps; member 0 drives the dynamics",
        "recorded": bool(per_t),
        "per_temperature": per_t,
        "max_uncertain_fraction": max(fractions) if fractions else None,
        "max_devi_f_max_eV_per_A": max(largest) if largest else None,
    }


_RUN_KEYS = ("D_cm2_per_s", "D_ci95_cm2_per_s", "duration_ps", "D_not_determined", "n_atoms")


def _teacher(job: Job) -> dict[str, Any]:
    """The teacher checks: per temperature the model's and the teacher's D on the teacher's cell
    and the verdicts, and Ea of both over those temperatures (not the production Ea)."""
    outputs = job.state.outputs("teacher")
    validation = _load(job, outputs["validation"])
    assert validation is not None
    checks = []
    for t in validation["temperatures"]:
        checks.append(
            {
                "temperature_K": t["temperature_K"],
                "model": {k: t["model"].get(k) for k in _RUN_KEYS},
                "reference_run": {k: t["reference"].get(k) for k in _RUN_KEYS},
                "verdicts": [v for v in validation["verdicts"] if v["temperature_K"] == t["temperature_K"]],
                "msd_curve": outputs["msd_curves"].get(f"{t['temperature_K']:g}"),
                "notes": t.get("notes", []),
            }
        )
    ea = validation["activation_energy"]
    return {
        "temperatures_K": [c["temperature_K"] for c in checks],
        "checks": checks,
        "single_reason": outputs.get("single_reason"),
        "references": outputs["references"],
        "validation": outputs["validation"],
        # Ea of the model and of the teacher over the teacher-checked temperatures only.
        "ea_over_checked": {
            k: ea.get(k)
            for k in (
                "temperatures_K",
                "model_Ea_eV",
                "model_Ea_ci95_eV",
                "reference_Ea_eV",
                "reference_Ea_ci95_eV",
            )
        }
        | {"verdict": ea["verdict"]["label"]},
        "notes": validation.get("notes", []),
    }


def _frames_factor(message: str, frames: int) -> float:
    """How many times more frames a run needs whose window could not hold the rule's minimum lags
    (the window ends at ``end_fraction`` of the run and needs ``min_points`` lags); 1 otherwise."""
    if "min_points" not in message:
        return 1.0
    rule = WindowRule()
    # frames − 1 intervals; the window's last lag is end_fraction of them and must reach min_points.
    return math.ceil(rule.min_points / rule.end_fraction) / max(frames - 1, 1)


def _undetermined_reason(verdict: dict[str, Any], teacher: dict[str, Any], job: Job) -> str:
    """An undetermined teacher verdict in words, with the budget to raise and by how much
    (``teacher`` is one teacher check)."""
    request = job.request
    t = teacher["temperature_K"]
    quantity = verdict["quantity"]
    factor = verdict.get("run_longer_factor")
    factor = factor if factor is not None and math.isfinite(factor) else None
    stuck = []  # (who, option, new value)
    message = teacher["reference_run"].get("D_not_determined")
    if message:
        frames = request.teacher_steps // request.teacher_write_every + 1
        k = max(factor or 1.0, _frames_factor(message, frames))
        stuck.append(("teacher", k, f"--teacher-steps {math.ceil(k * request.teacher_steps)}"))
    message = teacher["model"].get("D_not_determined")
    if message:
        # The model's run on the teacher's cell follows the teacher's protocol and length.
        frames = request.teacher_steps // request.teacher_write_every + 1
        k = max(factor or 1.0, _frames_factor(message, frames))
        stuck.append(("model", k, f"--teacher-steps {math.ceil(k * request.teacher_steps)}"))
    runs = " and ".join(f"{who} run" for who, _, _ in stuck)
    if stuck and max(k for _, k, _ in stuck) > 1.0:
        longest = max(k for _, k, _ in stuck)
        # Both runs follow the teacher's protocol: one length serves both.
        budget = f"--teacher-steps {math.ceil(longest * request.teacher_steps)}"
        return f"{quantity} at {t:g} K undetermined: {runs} not diffusive, run {longest:.2g}× longer " + (
            f"({budget})"
        )
    if stuck:
        advice = verdict["label"].removeprefix("undetermined: ")
        return f"{quantity} at {t:g} K undetermined: {runs} not diffusive ({advice})"
    return f"{quantity} at {t:g} K against the teacher {verdict['label']}"


def _name(quantity: str) -> str:
    """D_Li -> D, MSD_Li -> MSD, "RDF Li-S" -> Li-S RDF."""
    if quantity.startswith("RDF "):
        return f"{quantity[4:]} RDF"
    return quantity.split("_")[0]


def _why(v: dict[str, Any]) -> str:
    """The numbers of a verdict in a few words: the ratio and its interval, else the first clause."""
    found = re.search(r"model/reference = [^;)]*\)", v["detail"])
    if found:
        return found.group(0).replace("reference", "teacher")
    return v["detail"].split(";")[0]


def verdict(
    job: Job,
    rows: list[dict[str, Any]],
    deviation: dict[str, Any],
    teacher: dict[str, Any],
    arrhenius: dict[str, Any] | None,
) -> dict[str, Any]:
    """trusted / not trusted / undetermined, with every reason in words."""
    request = job.request
    bad: list[str] = []
    open_: list[str] = []
    good: list[str] = []
    for check in teacher["checks"]:
        t = check["temperature_K"]
        for v in check["verdicts"]:
            if not v["quantity"].startswith(DECISIVE):
                continue
            if v["outcome"] == "disagree":
                bad.append(
                    f"the model's {_name(v['quantity'])} at {t:g} K disagrees with the teacher ({_why(v)})"
                )
            elif v["outcome"] == "undetermined" and not v["quantity"].startswith("RDF "):
                open_.append(_undetermined_reason(v, check, job))
            elif v["outcome"] == "agree" and v["quantity"].startswith("D_"):
                good.append(f"D at {t:g} K agrees with the teacher ({v['statistic']})")
    if len(teacher["checks"]) < 2:
        open_.append(
            "the teacher was checked at one temperature only; trust needs two"
            + (f" ({teacher['single_reason']})" if teacher.get("single_reason") else "")
        )
    precision = job.state.outputs("md")["targets"]
    if precision.get("framework_broke_above"):
        bad.append(
            f"the framework broke in the pilot at {GUARD_MARGIN:g} × the highest temperature "
            "(docs/guard.md): the model is at the edge of its data there"
        )
    for r in rows:
        integrity = r.get("integrity") or {}
        if integrity and not integrity.get("intact", True):
            bad.append(f"the framework broke at {r['temperature_K']:g} K: {integrity.get('summary')}")
    for key, d in deviation["per_temperature"].items():
        fraction = d.get("uncertain_fraction")
        if fraction is not None and fraction > request.target_fraction:
            bad.append(
                f"the committee is uncertain at {key} K: {100 * fraction:.3g} % of production deviation "
                f"steps above {deviation['threshold_eV_per_A']:.3g} eV/Å (target ≤ "
                f"{100 * request.target_fraction:g} %): the MD left the data"
            )
    for r in rows:
        stopped = (r.get("committee") or {}).get("stopped_at_step")
        if stopped is not None:
            bad.append(
                f"MD at {r['temperature_K']:g} K was stopped by the committee deviation at step {stopped}"
            )
    if not deviation["recorded"]:
        bad.append("no committee deviation was recorded, so nothing says the MD stayed where the data are")
    diffusive = [r for r in rows if r["diffusive"]]
    if arrhenius is None:
        open_.append(
            f"only {len(diffusive)} of {len(rows)} temperatures diffusive: Ea and σ(300 K) need two; "
            f"raise --max-md-ns (now {request.max_md_ns:g}) or the temperatures"
        )
    for r in rows:
        if not r["diffusive"] and arrhenius is not None:
            good.append(f"{r['temperature_K']:g} K not diffusive, left out of the Arrhenius fit")
    if bad:
        status = "not trusted"
        reasons = bad + open_
    elif open_:
        status = "undetermined"
        reasons = open_
    else:
        status = "trusted"
        reasons = good
    text = f"{status}: " + "; ".join(reasons) if reasons else status
    return {
        "status": status,
        "trusted": status == "trusted",
        "text": text,
        "reasons": reasons,
        "notes": good if status != "trusted" else [],
    }


def report(job: Job) -> dict[str, Any]:
    from superionic.workflows.conductivity_plot import plot_report

    request = job.request
    label = job.state.outputs("label")
    train = job.state.outputs("train")
    rows = _temperature_rows(job)
    deviation = _deviation(job, rows)
    teacher = _teacher(job)
    analysis = job.state.outputs("analysis")
    md = job.state.outputs("md")
    arrhenius = _load(job, analysis.get("arrhenius"))
    formula = _load(job, label["summary"]).get("formula") or label["formula"]
    measured = matching(formula)
    summary = {
        "structure": request.structure,
        "formula": formula,
        # Measured values for this composition, shown beside the prediction: experiment, not a check.
        "experiment": [m.to_dict() for m in measured],
        "atoms": label["atoms"],
        "ion": request.ion,
        "labeller": request.labeller,
        "temperatures_K": sorted(md["plan"]["temperatures_K"]),
        "production_atoms": md["atoms"],
        "precision": md["targets"]
        | {"plan": md["plan"], "finite_size": md.get("finite_size"), "notes": md.get("notes", [])},
        "conductivity_300K_S_per_cm": arrhenius["conductivity_300K_S_per_cm"] if arrhenius else None,
        "conductivity_300K_ci95_S_per_cm": list(arrhenius["conductivity_300K_ci95_S_per_cm"])
        if arrhenius
        else None,
        "activation_energy_eV": arrhenius["activation_energy_eV"] if arrhenius else None,
        "activation_energy_stderr_eV": arrhenius["activation_energy_stderr_eV"] if arrhenius else None,
        "activation_energy_ci95_eV": list(arrhenius["activation_energy_ci95_eV"]) if arrhenius else None,
        "diffusion_300K_cm2_per_s": arrhenius["diffusion_300K_cm2_per_s"] if arrhenius else None,
        "diffusion_300K_ci95_cm2_per_s": list(arrhenius["diffusion_300K_ci95_cm2_per_s"])
        if arrhenius
        else None,
        "conductivity_source": arrhenius["conductivity_source"] if arrhenius else None,
        "arrhenius_note": analysis.get("arrhenius_note"),
        "temperatures": rows,
        "deviation": deviation,
        "teacher": teacher,
        "verdict": verdict(job, rows, deviation, teacher, arrhenius),
        "model": {
            "committee": train["committee"],
            "members": len(train["val_force_rmse_eV_per_A"]),
            "driving_member": 0,
            "val_force_rmse_eV_per_A": train["val_force_rmse_eV_per_A"],
            "learn": job.state.outputs("learn"),
        },
        "window_rule": {"slope_tolerance": request.slope_tolerance},
        "units": {"D": "cm2/s", "sigma": "S/cm", "Ea": "eV", "deviation": "eV/Å"},
        "request": job.state.request,
        "superionic_version": superionic.__version__,
    }
    png = plot_report(job, summary, job.path(REPORT_PNG))
    summary["figure"] = REPORT_PNG
    write_json_atomic(job.path(REPORT_JSON), summary)
    return {
        "files": [REPORT_JSON, REPORT_PNG],
        "json": REPORT_JSON,
        "png": job.relative(png),
        "line": summary["verdict"]["text"],
    }
