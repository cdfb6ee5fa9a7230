"""Transport analysis: pure functions on unwrapped, drift-corrected positions, and result objects.

Split as kinisi does (design.md §4 item 6): a reader (elsewhere) yields positions [T, N, 3] in Å and
times in ps; the functions here compute MSDs (``msd``), D with uncertainties (``diffusion``), σ and
the Haven ratio (``conductivity``) and Arrhenius fits (``arrhenius``); results are frozen dataclasses
whose field names carry their units (D in cm²/s, σ in S/cm, Ea in eV, T in K, V in Å³, charges in e).
"""

from __future__ import annotations

from superionic.analysis.arrhenius import ArrheniusResult, Extrapolation, fit_arrhenius
from superionic.analysis.conductivity import (
    ConductivityResult,
    HavenRatioResult,
    haven_ratio,
    ionic_conductivity,
    nernst_einstein_conductivity,
    nernst_einstein_conductivity_S_per_cm,
)
from superionic.analysis.diffusion import (
    DiffusionResult,
    WindowRule,
    local_loglog_slope,
    select_diffusive_window,
    tracer_diffusion,
)
from superionic.analysis.errors import (
    AnalysisError,
    EmptySelectionError,
    NoDiffusiveRegimeError,
    NonFiniteInputError,
    NonUniformTimeError,
    TrajectoryTooShortError,
)
from superionic.analysis.msd import (
    collective_msd_fft,
    msd_fft,
    msd_per_atom_components_fft,
    msd_per_atom_fft,
    msd_single_origin,
)
from superionic.analysis.trajectory import remove_drift, unwrap

__all__ = [
    "AnalysisError",
    "ArrheniusResult",
    "ConductivityResult",
    "DiffusionResult",
    "EmptySelectionError",
    "Extrapolation",
    "HavenRatioResult",
    "NoDiffusiveRegimeError",
    "NonFiniteInputError",
    "NonUniformTimeError",
    "TrajectoryTooShortError",
    "WindowRule",
    "collective_msd_fft",
    "fit_arrhenius",
    "haven_ratio",
    "ionic_conductivity",
    "local_loglog_slope",
    "msd_fft",
    "msd_per_atom_components_fft",
    "msd_per_atom_fft",
    "msd_single_origin",
    "nernst_einstein_conductivity",
    "nernst_einstein_conductivity_S_per_cm",
    "remove_drift",
    "select_diffusive_window",
    "tracer_diffusion",
    "unwrap",
]
