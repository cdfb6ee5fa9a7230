"""The one validation figure: Arrhenius axes, MSD overlay, and the RDFs, model against reference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from superionic.validation.compare import TemperatureComparison
from superionic.validation.transport import RunTransport

_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")


def _errorbar(ax, t: float, summary: dict, colour: str, marker: str, label: str | None) -> None:
    if summary["D_cm2_per_s"] is None:
        # No D: say so at the temperature's position, never plot a guessed value.
        ax.annotate(
            f"{label}: not diffusive",
            (1000 / t, 0.97 if marker == "o" else 0.80),
            xycoords=("data", "axes fraction"),
            fontsize="x-small",
            color=colour,
            ha="center",
            va="top",
        )
        return
    value = summary["D_cm2_per_s"]
    low, high = summary["D_ci95_cm2_per_s"]
    ax.errorbar(
        [1000 / t],
        [value],
        yerr=[[value - low], [high - value]],
        fmt=marker,
        color=colour,
        mfc="white" if marker == "s" else colour,
        capsize=3,
        label=label,
    )


def _plot_framework(ax, comparisons: Sequence[TemperatureComparison]) -> None:
    """Closest approach of every pair, model over reference, per temperature; below the floor
    line (the integrity factor) the model's framework broke."""
    pairs = sorted({p for c in comparisons for p in c.framework.get("closest", {})})
    factor = None
    for k, c in enumerate(comparisons):
        closest = c.framework.get("closest", {})
        ratios = [
            (closest[p]["model_A"] / closest[p]["reference_A"])
            if p in closest and closest[p]["model_A"] and closest[p]["reference_A"]
            else np.nan
            for p in pairs
        ]
        ax.plot(
            range(len(pairs)), ratios, "o", color=_COLOURS[k % len(_COLOURS)], label=f"{c.temperature_K:g} K"
        )
        integrity = c.framework.get("integrity")
        if integrity:
            factor = integrity["floors"]["factor"]
    if factor is not None:
        ax.axhline(factor, color="tab:red", lw=1.0, ls="--", label=f"floor ({factor:g} × reference)")
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_xticks(range(len(pairs)), pairs, rotation=60, fontsize="x-small")
    ax.set_ylabel("closest approach, model / reference")
    ax.set_title("framework: closest approach per pair")
    ax.legend(fontsize="x-small")


def plot_validation(
    comparisons: Sequence[TemperatureComparison],
    models: Sequence[RunTransport],
    references: Sequence[RunTransport],
    ea: dict,
    path: str | Path,
    title: str | None = None,
) -> Path:
    """One PNG: (a) D on Arrhenius axes with 95 % intervals and the fitted lines, (b) MSD overlay,
    (c, d) the ion–anion and ion–ion RDFs, (e) the framework: each pair's closest approach in the
    model's run over the reference's, with the floor. Solid: model; dashed / open: reference."""
    rdf_names = list(comparisons[0].rdf) if comparisons else []
    framework = bool(comparisons and comparisons[0].framework.get("closest"))
    panels = 2 + len(rdf_names) + int(framework)
    figure = Figure(figsize=(4.2 * panels, 3.8), layout="constrained")
    axes = figure.subplots(1, panels)
    ax = axes[0]
    labelled: set[str] = set()
    for c in comparisons:
        for who, colour, marker in (("model", "black", "o"), ("reference", "tab:orange", "s")):
            summary = getattr(c, who)
            label = who if (who not in labelled or summary["D_cm2_per_s"] is None) else None
            if summary["D_cm2_per_s"] is not None:
                labelled.add(who)
            _errorbar(ax, c.temperature_K, summary, colour, marker, label)
    if "model_Ea_eV" in ea:
        temps = np.array(ea["temperatures_K"])
        grid = np.linspace(temps.min(), temps.max(), 20)
        kb = 8.617333262e-5
        for key, colour, style in (("model", "black", "-"), ("reference", "tab:orange", "--")):
            line = np.exp(ea[f"{key}_fit"]["ln_prefactor"] - ea[f"{key}_Ea_eV"] / (kb * grid))
            ax.plot(
                1000 / grid,
                line,
                style,
                color=colour,
                # Over the validated temperatures only: not a production Ea, and the label says so.
                label=f"Ea {key} over {'/'.join(f'{t:g}' for t in sorted(temps))} K: "
                f"{ea[f'{key}_Ea_eV']:.2f} ± {ea[f'{key}_Ea_stderr_eV']:.2f} eV (s.e.)",
            )
    inverse = [1000 / c.temperature_K for c in comparisons]
    if inverse:
        pad = 0.25 * max(max(inverse) - min(inverse), 0.1)
        ax.set_xlim(min(inverse) - pad, max(inverse) + pad)  # room for the "not diffusive" notes
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(f"D_{references[0].ion if references else ''} (cm²/s)")
    ax.set_title("tracer D, 95 % intervals")
    ax.legend(fontsize="x-small")

    ax = axes[1]
    for k, (m, r) in enumerate(zip(models, references, strict=True)):
        colour = _COLOURS[k % len(_COLOURS)]
        for run, style, who in ((m, "-", "model"), (r, "--", "reference")):
            lags, msd = run.times_ps[1:], run.msd_A2[1:]
            ax.loglog(lags, msd, style, color=colour, lw=1.2, label=f"{r.temperature_K:g} K {who}")
        rows = comparisons[k].msd_lags
        for row in rows:
            for who, marker in (("model", "o"), ("reference", "s")):
                value = row[who]["msd_A2"]
                low, high = row[who]["ci95_A2"]
                ax.errorbar(
                    [row["lag_ps"]],
                    [value],
                    yerr=[[value - low], [high - value]],
                    fmt=marker,
                    color=colour,
                    mfc="white" if marker == "s" else colour,
                    ms=3,
                    capsize=2,
                )
    ax.set_xlabel("lag (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax.set_title("MSD; markers: compared lags (95 %)")
    ax.legend(fontsize="x-small")

    for p, name in enumerate(rdf_names):
        ax = axes[2 + p]
        for k, c in enumerate(comparisons):
            curves = c.rdf[name]["curves"]
            colour = _COLOURS[k % len(_COLOURS)]
            ax.plot(
                curves["r_A"],
                curves["model_g"],
                "-",
                color=colour,
                lw=1.2,
                label=f"{c.temperature_K:g} K model",
            )
            ax.plot(
                curves["r_A"],
                curves["reference_g"],
                "--",
                color=colour,
                lw=1.2,
                label=f"{c.temperature_K:g} K reference",
            )
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.set_xlabel("r (Å)")
        ax.set_ylabel(f"g(r) {name}")
        ax.set_title(f"RDF {name}")
        ax.legend(fontsize="x-small")
    if framework:
        _plot_framework(axes[-1], comparisons)
    if title:
        figure.suptitle(title)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(target, dpi=130)
    return target
