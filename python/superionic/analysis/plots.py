"""Figures for transport results: MSD log–log with the fit window, and Arrhenius plots.

Uses matplotlib's object interface with the Agg canvas directly (no pyplot): no global backend is
switched and no figure state leaks between calls, so this is safe on headless machines and in tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from superionic.analysis.arrhenius import ArrheniusResult
from superionic.analysis.diffusion import DiffusionResult
from superionic.analysis.errors import AnalysisError
from superionic.analysis.units import CM2_PER_S_PER_A2_PER_PS

_COMPONENT_COLOURS = ("tab:red", "tab:green", "tab:purple")


def _save(figure: Figure, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(target, dpi=150)
    return target


def plot_msd(
    lag_ps: np.ndarray,
    msd_A2: np.ndarray,
    result: DiffusionResult,
    path: str | Path,
    *,
    components: bool = False,
    title: str | None = None,
) -> Path:
    """Log–log MSD (Å²) vs lag (ps) with the fit window shaded and the fitted 6 D t + c; returns the PNG path.

    ``msd_A2`` is [T, 3] per component (as from ``msd_fft``) or [T] total. ``components=True`` adds
    MSD_α with 2 D_α t + c_α (needs the per-component array).
    """
    lags = np.asarray(lag_ps, dtype=np.float64)
    msd = np.asarray(msd_A2, dtype=np.float64)
    if msd.shape[0] != lags.shape[0] or msd.ndim not in (1, 2):
        raise AnalysisError(f"msd_A2 {msd.shape} does not match lag_ps {lags.shape}: pass msd_fft's output")
    if components and msd.ndim != 2:
        raise AnalysisError("components=True needs the per-component MSD [T, 3]: pass msd_fft's output")
    total = msd.sum(axis=1) if msd.ndim == 2 else msd
    positive = lags > 0

    figure = Figure(figsize=(5.5, 4.0), layout="constrained")
    ax = figure.add_subplot()
    ax.loglog(lags[positive], total[positive], color="black", lw=1.5, label="MSD")
    start, end = result.window_ps
    ax.axvspan(start, end, color="tab:blue", alpha=0.12, label="fit window")
    fit_lags = lags[(lags >= start) & (lags <= end)]
    slope = 6.0 * result.diffusion_cm2_per_s / CM2_PER_S_PER_A2_PER_PS
    ax.loglog(
        fit_lags,
        slope * fit_lags + result.intercept_A2,
        "--",
        color="tab:blue",
        lw=2,
        label=f"6Dt + c, D = {result.diffusion_cm2_per_s:.3g} cm²/s",
    )
    if components:
        for axis, (name, colour) in enumerate(zip("xyz", _COMPONENT_COLOURS, strict=True)):
            d_axis = result.components_cm2_per_s[axis] / CM2_PER_S_PER_A2_PER_PS
            ax.loglog(lags[positive], msd[positive, axis], color=colour, lw=1, alpha=0.8, label=f"MSD_{name}")
            ax.loglog(
                fit_lags,
                2 * d_axis * fit_lags + result.components_intercept_A2[axis],
                ":",
                color=colour,
                lw=1.5,
            )
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("MSD (Å²)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return _save(figure, path)


def plot_arrhenius(
    temperatures_K: np.ndarray,
    values: np.ndarray,
    stderr: np.ndarray | None,
    result: ArrheniusResult,
    path: str | Path,
    *,
    extrapolate_to_K: float | None = 300.0,
    title: str | None = None,
) -> Path:
    """log₁₀ D (or σ) vs 1000/T with error bars, the fit and its 95 % band; returns the PNG path.

    The fitted curve comes from ``result.extrapolate``, so for conductivity it is σ = A/T · exp(−Ea/k_B T).
    ``extrapolate_to_K`` extends the fit and marks the extrapolated value with its interval.
    """
    temperatures = np.asarray(temperatures_K, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    lowest = min(temperatures.min(), extrapolate_to_K or np.inf)
    grid = np.linspace(lowest, temperatures.max(), 100)
    fits = [result.extrapolate(t) for t in grid]
    units = fits[0].units
    label = "D (cm²/s)" if result.quantity == "diffusion" else "σ (S/cm)"

    figure = Figure(figsize=(5.5, 4.0), layout="constrained")
    ax = figure.add_subplot()
    ax.errorbar(1000 / temperatures, y, yerr=stderr, fmt="o", color="black", capsize=3, label="MD")
    ax.plot(
        1000 / grid,
        [f.value for f in fits],
        color="tab:blue",
        # The same numbers, in the same form, as every report prints: the value and its 95 % interval.
        label=f"Ea = {result.activation_energy_eV:.3f} eV (95 % {result.activation_energy_ci95_eV[0]:.3f}–"
        f"{result.activation_energy_ci95_eV[1]:.3f})",
    )
    ax.fill_between(
        1000 / grid,
        [f.ci95[0] for f in fits],
        [f.ci95[1] for f in fits],
        color="tab:blue",
        alpha=0.15,
        label="95 %",
    )
    if extrapolate_to_K is not None:
        point = result.extrapolate(extrapolate_to_K)
        ax.errorbar(
            [1000 / extrapolate_to_K],
            [point.value],
            yerr=[[point.value - point.ci95[0]], [point.ci95[1] - point.value]],
            fmt="s",
            color="tab:orange",
            capsize=3,
            label=f"{extrapolate_to_K:g} K: {point.value:.3g} {units} "
            f"(95 % {point.ci95[0]:.2g}–{point.ci95[1]:.2g})",
        )
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(label)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return _save(figure, path)
