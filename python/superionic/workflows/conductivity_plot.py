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
        grid = np.linspace(min(temps.min(), 300.0), temps.max(), 100)
        lines = [fit.extrapolate(t) for t in grid]
        ax.plot(1000 / grid, [p.value for p in lines], color="tab:blue", label="model (95 %)")
        ax.fill_between(
            1000 / grid, [p.ci95[0] for p in lines], [p.ci95[1] for p in lines], color="tab:blue", alpha=0.15
        )
    teacher = summary["teacher"]
    ref = teacher["reference_run"]
    if ref.get("D_cm2_per_s"):
        ax.errorbar(
            [1000 / teacher["temperature_K"]],
            [ref["D_cm2_per_s"]],
            yerr=_errors(ref["D_cm2_per_s"], ref["D_ci95_cm2_per_s"]),
            fmt="s",
            color="tab:red",
            capsize=3,
            label=f"teacher ({summary['labeller']})",
        )
    else:
        ax.text(
            0.03, 0.05, f"teacher at {teacher['temperature_K']:g} K: no D (not diffusive)",
            transform=ax.transAxes, fontsize=8, color="tab:red",
        )  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(f"D_{summary['ion']} (cm²/s)")
    ax.set_title("Arrhenius, 95 % intervals")
    ax.legend(fontsize=8)


def _msd(ax, job: Job, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    colours = {}
    for r in rows:
        if r.get("msd_curve"):
            lag, msd = read_msd_csv(job.path(r["msd_curve"]))
            (line,) = ax.plot(lag, msd, label=f"model {r['temperature_K']:g} K")
            colours[r["temperature_K"]] = line.get_color()
    teacher = summary["teacher"]
    if teacher.get("msd_curve"):
        lag, msd = read_msd_csv(job.path(teacher["msd_curve"]))
        ax.plot(
            lag, msd, "--", color=colours.get(teacher["temperature_K"], "tab:red"),
            label=f"teacher {teacher['temperature_K']:g} K",
        )  # fmt: skip
    ax.set_xlabel("lag (ps)")
    ax.set_ylabel(f"MSD {summary['ion']} (Å²)")
    ax.set_title("mean squared displacement")
    ax.legend(fontsize=8)


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
    lines = [
        f"{summary['formula']} ({summary['atoms']} atoms), {summary['ion']}, labeller {summary['labeller']}"
    ]
    if summary["conductivity_300K_S_per_cm"] is not None:
        lo, hi = summary["conductivity_300K_ci95_S_per_cm"]
        elo, ehi = summary["activation_energy_ci95_eV"]
        lines += [
            f"σ(300 K) = {1e3 * summary['conductivity_300K_S_per_cm']:.3g} mS/cm "
            f"(95 % {1e3 * lo:.2g}–{1e3 * hi:.2g})",
            f"Ea = {summary['activation_energy_eV']:.3f} eV (95 % {elo:.3f}–{ehi:.3f})",
        ]
    else:
        lines.append(f"σ(300 K), Ea: not determined ({summary['arrhenius_note']})")
    for r in summary["temperatures"]:
        if r["diffusive"]:
            lo, hi = r["D_ci95_cm2_per_s"]
            lines.append(
                f"{r['temperature_K']:g} K: D = {r['D_cm2_per_s']:.3g} cm²/s (95 % {lo:.2g}–{hi:.2g})"
            )
        else:
            lines.append(f"{r['temperature_K']:g} K: not diffusive")
    ref = summary["teacher"]["reference_run"]
    if ref.get("D_cm2_per_s"):
        lo, hi = ref["D_ci95_cm2_per_s"]
        lines.append(
            f"teacher {summary['teacher']['temperature_K']:g} K: D = {ref['D_cm2_per_s']:.3g} "
            f"(95 % {lo:.2g}–{hi:.2g})"
        )
    deviation = summary["deviation"]
    for key, d in deviation["per_temperature"].items():
        if d.get("uncertain_fraction") is not None:
            lines.append(
                f"{key} K: {100 * d['uncertain_fraction']:.3g} % of steps max_devi_f > "
                f"{deviation['threshold_eV_per_A']:g} eV/Å (largest {d['max_devi_f_max']:.3g})"
            )
    lines.append("")
    lines += textwrap.wrap(summary["verdict"]["text"], 70)
    return "\n".join(lines)


def plot_report(job: Job, summary: dict[str, Any], path: Path) -> Path:
    rows = summary["temperatures"]
    figure = Figure(figsize=(11.0, 8.5), layout="constrained")
    axes = figure.subplots(2, 2)
    _arrhenius(axes[0, 0], rows, summary)
    _msd(axes[0, 1], job, rows, summary)
    _deviation(axes[1, 0], job, rows, summary)
    box = axes[1, 1]
    box.axis("off")
    colour = {"trusted": "tab:green", "not trusted": "tab:red"}.get(
        summary["verdict"]["status"], "tab:orange"
    )
    box.text(
        0.0, 1.0, numbers_text(summary), va="top", ha="left", family="monospace", fontsize=8,
        transform=box.transAxes,
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": colour, "lw": 2},
    )  # fmt: skip
    figure.suptitle(f"superionic conductivity: {summary['formula']}, verdict: {summary['verdict']['status']}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    FigureCanvasAgg(figure)
    figure.savefig(tmp, dpi=120)
    tmp.replace(path)
    return path
