"""The figures are written as PNG files (Agg canvas, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from superionic.analysis import fit_arrhenius, msd_fft, tracer_diffusion
from superionic.analysis.plots import plot_arrhenius, plot_msd

from ._synthetic import random_walk, times

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_msd_plot_with_components(tmp_path: Path) -> None:
    walk = random_walk(np.random.default_rng(1), 32, 300, 0.1, (0.02, 0.05, 0.2))
    result = tracer_diffusion(walk, times(301, 0.1), n_bootstrap=100)
    path = plot_msd(
        np.arange(301) * 0.1, msd_fft(walk), result, tmp_path / "figs" / "msd.png", components=True
    )
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_arrhenius_plot(tmp_path: Path) -> None:
    temperatures = np.array([500.0, 600.0, 700.0, 800.0])
    values = 1e-3 * np.exp(-0.25 / (8.617e-5 * temperatures))
    result = fit_arrhenius(temperatures, values, 0.1 * values)
    path = plot_arrhenius(temperatures, values, 0.1 * values, result, tmp_path / "arrhenius.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
