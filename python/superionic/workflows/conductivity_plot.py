"""The one-page figure of `superionic conductivity`: Arrhenius with the teacher point, MSD overlay,
committee deviation per temperature, and the numbers with the verdict.

matplotlib's object interface on the Agg canvas (no pyplot), as ``analysis.plots``.
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from superionic.analysis.arrhenius import fit_arrhenius
from superionic.workflows.conductivity import Job
from superionic.workflows.conductivity_checks import read_msd_csv


def _errors(value: float, ci95: list[float]) -> list[list[float]]:
    return [[value - ci95[0]], [ci95[1] - value]]


def _arrhenius(ax, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """D(T) of the production runs with the fit the report's Ea comes from, and the teacher checks
    (teacher and model on the teacher's cell)."""
    diffusive = [r for r in rows if r["diffusive"]]
    for r in diffusive:
        ax.errorbar(
            [1000 / r["temperature_K"]],
            [r["D_cm2_per_s"]],
            yerr=_errors(r["D_cm2_per_s"], r["D_ci95_cm2_per_s"]),
            fmt="o",
            color="black",
            capsize=3,
        )
    if len(diffusive) >= 2:
        temps = np.array([r["temperature_K"] for r in diffusive])
        fit = fit_arrhenius(
            temps,
            [r["D_cm2_per_s"] for r in diffusive],
            [r["D_stderr_cm2_per_s"] for r in diffusive],
            quantity="diffusion",
        )
        grid = np.linspace(temps.min(), temps.max(), 50)
        lines = [fit.extrapolate(t) for t in grid]
        ax.plot(
            1000 / grid,
            [p.value for p in lines],
            color="tab:blue",
            label=f"model, Ea {summary['activation_energy_eV']:.3f} eV",
        )
        ax.fill_between(
            1000 / grid, [p.ci95[0] for p in lines], [p.ci95[1] for p in lines], color="tab:blue", alpha=0.15
        )
    teacher = summary["teacher"]
    for k, check in enumerate(teacher["checks"]):
        t = check["temperature_K"]
        for who, marker, colour, label in (
            ("reference_run", "s", "tab:red", f"teacher ({summary['labeller']}), teacher's cell"),
            ("model", "D", "tab:blue", "model, teacher's cell"),
        ):
            run = check[who]
            if run.get("D_cm2_per_s"):
                d = run["D_cm2_per_s"]
                ax.errorbar(
                    [1000 / t], [d], yerr=_errors(d, run["D_ci95_cm2_per_s"]),
                    fmt=marker, color=colour, mfc="white", capsize=3, label=label if k == 0 else None,
                )  # fmt: skip
    ea = teacher["ea_over_checked"]
    if ea.get("model_Ea_eV") is not None and ea.get("reference_Ea_eV") is not None:
        ax.text(
            0.02, 0.03,
            f"Ea over the teacher-checked temperatures: model {ea['model_Ea_eV']:.2f}, teacher "
            f"{ea['reference_Ea_eV']:.2f} eV",
            transform=ax.transAxes, fontsize=7,
        )  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(f"D_{summary['ion']} (cm²/s)")
    ax.set_title("tracer D, 95 % intervals")
    ax.legend(fontsize=7)


def _conductivity(ax, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """σ(T) (Nernst–Einstein) extrapolated to 300 K with its 95 % band: the report's σ(300 K); the
    measured value, where one is known, as a star labelled experiment."""
    diffusive = [r for r in rows if r["diffusive"]]
    for r in diffusive:
        value = 1e3 * r["sigma_NE_S_per_cm"]
        lo, hi = (1e3 * v for v in r["sigma_NE_ci95_S_per_cm"])
        ax.errorbar(
            [1000 / r["temperature_K"]],
            [value],
            yerr=[[value - lo], [hi - value]],
            fmt="o",
            color="black",
            capsize=3,
        )
    if summary["conductivity_300K_S_per_cm"] is not None and len(diffusive) >= 2:
        temps = np.array([r["temperature_K"] for r in diffusive])
        fit = fit_arrhenius(
            temps,
            [r["sigma_NE_S_per_cm"] for r in diffusive],
            [r["sigma_NE_stderr_S_per_cm"] for r in diffusive],
            quantity="conductivity",
        )
        grid = np.linspace(300.0, temps.max(), 100)
        points = [fit.extrapolate(t) for t in grid]
        ax.plot(1000 / grid, [1e3 * p.value for p in points], color="tab:blue")
        ax.fill_between(
            1000 / grid,
            [1e3 * p.ci95[0] for p in points],
            [1e3 * p.ci95[1] for p in points],
            color="tab:blue",
            alpha=0.15,
        )
        lo, hi = summary["conductivity_300K_ci95_S_per_cm"]
        value = 1e3 * summary["conductivity_300K_S_per_cm"]
        ax.errorbar(
            [1000 / 300.0], [value], yerr=[[value - 1e3 * lo], [1e3 * hi - value]], fmt="o", color="tab:blue",
            capsize=4, label=f"model σ(300 K) = {value:.3g} mS/cm",
        )  # fmt: skip
    for m in summary.get("experiment", []):
        ax.plot(
            [1000 / m["temperature_K"]], [m["sigma_mS_per_cm"]], "*", ms=12, color="tab:green",
            label=f"experiment {m['sigma_mS_per_cm']:g} mS/cm (doi {m['doi']})",
        )  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("σ (mS/cm)")
    ax.set_title("conductivity, extrapolated to 300 K (95 %)")
    ax.legend(fontsize=7)


def _msd(ax, job: Job, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    for r in rows:
        if r.get("msd_curve"):
            lag, msd = read_msd_csv(job.path(r["msd_curve"]))
            ax.loglog(lag[1:], msd[1:], label=f"model {r['temperature_K']:g} K")
    for check in summary["teacher"]["checks"]:
        if check.get("msd_curve"):
            lag, msd = read_msd_csv(job.path(check["msd_curve"]))
            ax.loglog(lag[1:], msd[1:], "--", color="tab:red", label=f"teacher {check['temperature_K']:g} K")
    ax.set_xlabel("lag (ps)")
    ax.set_ylabel(f"MSD {summary['ion']} (Å²)")
    ax.set_title("mean squared displacement")
    ax.legend(fontsize=7, ncol=2)


def _deviation(ax, job: Job, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    drawn = False
    for r in rows:
        committee = r.get("committee") or {}
        series = committee.get("series")
        if not series:
            continue
        path = job.path(Path(r["trajectory"]).parent / series)
        if not path.exists():
            continue
        with path.open() as handle:
            table = list(csv.DictReader(handle))
        if table:
            steps = np.array([float(t["step"]) for t in table])
            ax.plot(steps, [float(t["max_devi_f"]) for t in table], lw=0.8, label=f"{r['temperature_K']:g} K")
            drawn = True
    threshold = summary["deviation"]["threshold_eV_per_A"]
    if drawn:
        ax.axhline(threshold, color="grey", ls=":", label=f"uncertain > {threshold:g}")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no committee deviation recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("MD step")
    ax.set_ylabel("max force deviation (eV/Å)")
    ax.set_title("committee deviation (member 0 drives)")


def numbers_text(summary: dict[str, Any]) -> str:
    """The report's numbers in words, wrapped for the full width of the page."""
    lines = [
        f"{summary['formula']}: {summary['production_atoms']} atoms in production "
        f"({summary['atoms']} labelled), ion {summary['ion']}, teacher {summary['labeller']}"
    ]
    if summary["conductivity_300K_S_per_cm"] is not None:
        lo, hi = summary["conductivity_300K_ci95_S_per_cm"]
        elo, ehi = summary["activation_energy_ci95_eV"]
        p = summary["precision"]
        lines.append(
            f"σ(300 K) = {1e3 * summary['conductivity_300K_S_per_cm']:.3g} mS/cm "
            f"(95 % {1e3 * lo:.2g}–{1e3 * hi:.2g}, factor {hi / lo:.2g}, target {p['sigma_target']:g}: "
            f"{'met' if p['sigma_met'] else 'not met'}); "
            f"Ea = {summary['activation_energy_eV']:.3f} eV (95 % {elo:.3f}–{ehi:.3f}, target ± "
            f"{p['ea_target_eV']:g}: {'met' if p['ea_met'] else 'not met'})"
        )
        if p.get("advice"):
            lines.append(f"to reach the targets: {p['advice']}")
    else:
        lines.append(f"σ(300 K), Ea: not determined ({summary['arrhenius_note']})")
    for m in summary.get("experiment", []):
        ea = f", Ea {m['ea_eV']:g} eV" if m.get("ea_eV") is not None else ""
        lines.append(
            f"experiment (not a check of the model): {m['sigma_mS_per_cm']:g} mS/cm{ea}, doi {m['doi']}"
        )
    shown = []
    for r in summary["temperatures"]:
        shown.append(
            f"{r['temperature_K']:g} K {r['D_cm2_per_s']:.3g}"
            if r["diffusive"]
            else f"{r['temperature_K']:g} K n/d"
        )
    lines.append("D (cm²/s): " + ", ".join(shown))
    lines += textwrap.wrap("verdict: " + summary["verdict"]["text"], 150)
    return "\n".join(lines)


def plot_report(job: Job, summary: dict[str, Any], path: Path) -> Path:
    rows = summary["temperatures"]
    figure = Figure(figsize=(14.0, 10.0), layout="constrained")
    grid = figure.add_gridspec(3, 2, height_ratios=[1.0, 1.0, 0.45])
    _arrhenius(figure.add_subplot(grid[0, 0]), rows, summary)
    _conductivity(figure.add_subplot(grid[0, 1]), rows, summary)
    _msd(figure.add_subplot(grid[1, 0]), job, rows, summary)
    _deviation(figure.add_subplot(grid[1, 1]), job, rows, summary)
    box = figure.add_subplot(grid[2, :])
    box.axis("off")
    colour = {"trusted": "tab:green", "not trusted": "tab:red"}.get(
        summary["verdict"]["status"], "tab:orange"
    )
    box.text(
        0.0, 1.0, numbers_text(summary), va="top", ha="left", fontsize=8.5, wrap=True,
        transform=box.transAxes,
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": colour, "lw": 2},
    )  # fmt: skip
    figure.suptitle(f"superionic conductivity: {summary['formula']}, verdict: {summary['verdict']['status']}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    FigureCanvasAgg(figure)
    figure.savefig(tmp, dpi=110)
    tmp.replace(path)
    return path
