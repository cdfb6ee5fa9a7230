"""Arrhenius fits of D or σ against temperature, with Ea's uncertainty and extrapolation intervals.

Model, linear in the parameters (ln A, Ea):
    diffusion:     ln D      = ln A − Ea / (k_B T)        (A in cm²/s)
    conductivity:  ln (σ T)  = ln A − Ea / (k_B T)        (A in S·K/cm)
The conductivity convention fits σT, not σ, because σ = n q² D / (k_B T) carries a 1/T of its own
beyond the activated D; Ea from σT is then the same barrier as Ea from D when H_R and n do not depend
on T. Both conventions are in use in the literature: compare like with like.

Fit: weighted least squares on y = ln(value) with σ_y = stderr / value (delta method), weights 1/σ_y².
Parameter covariance Cov = (Xᵀ W X)⁻¹, X = [1, −1/(k_B T)]. If the reported errors under-describe the
scatter (χ²/dof > 1), Cov is scaled by χ²/dof (the Particle Data Group's scale factor, never < 1), so
an interval is never narrower than the scatter of the points supports. Intervals use the normal
quantile 1.96. Without errors (``stderr=None``): ordinary least squares, Cov scaled by the residual
variance, Student-t quantile with (k − 2) degrees of freedom.

Extrapolation to T: ln y(T) = ln A − Ea / (k_B T), Var = gᵀ Cov g with g = (1, −1/(k_B T)); the 95 %
interval is exp(ln y ± q √Var): asymmetric in y, symmetric on the log scale where the fit is linear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from superionic.analysis.errors import AnalysisError, EmptySelectionError, NonFiniteInputError
from superionic.analysis.statistics import Z95, t95
from superionic.analysis.units import BOLTZMANN_EV_PER_K

Quantity = Literal["diffusion", "conductivity"]
_VALUE_UNITS = {"diffusion": "cm2/s", "conductivity": "S/cm"}
_PREFACTOR_UNITS = {"diffusion": "cm2/s", "conductivity": "S K/cm"}


@dataclass(frozen=True)
class Extrapolation:
    """A fitted value at one temperature with its 95 % interval; ``units`` are those of the input values."""

    temperature_K: float
    value: float
    ci95: tuple[float, float]
    ln_stderr: float  # standard error of ln(value)
    units: str


@dataclass(frozen=True)
class ArrheniusResult:
    """Fit of value(T) = A exp(−Ea / k_B T) (diffusion) or σ T = A exp(−Ea / k_B T) (conductivity).

    ``covariance`` is the 2×2 covariance of (ln A, Ea / eV) after any χ² scaling; ``quantile`` is the
    multiplier of the standard errors in the 95 % intervals (1.96, or Student-t for unweighted fits).
    """

    activation_energy_eV: float
    activation_energy_stderr_eV: float
    activation_energy_ci95_eV: tuple[float, float]
    ln_prefactor: float
    ln_prefactor_stderr: float
    covariance: tuple[tuple[float, float], tuple[float, float]]
    quantity: Quantity
    temperatures_K: tuple[float, ...]
    chi2: float
    dof: int
    quantile: float
    method: str

    @property
    def prefactor(self) -> float:
        """A, in ``prefactor_units``."""
        return float(np.exp(self.ln_prefactor))

    @property
    def prefactor_units(self) -> str:
        """cm2/s for diffusion, S K/cm for conductivity (σT)."""
        return _PREFACTOR_UNITS[self.quantity]

    def extrapolate(self, temperature_K: float) -> Extrapolation:
        """D (cm²/s) or σ (S/cm) at ``temperature_K`` with a 95 % interval from the fit covariance."""
        temperature = float(temperature_K)
        if not np.isfinite(temperature) or temperature <= 0:
            raise AnalysisError(f"temperature_K = {temperature_K!r}: pass a positive temperature in K")
        gradient = np.array([1.0, -1.0 / (BOLTZMANN_EV_PER_K * temperature)])
        ln_y = self.ln_prefactor + gradient[1] * self.activation_energy_eV
        ln_stderr = float(np.sqrt(gradient @ np.array(self.covariance) @ gradient))
        # σ T was fitted; σ itself is σT / T (T exact, so the log-scale error is unchanged).
        offset = -np.log(temperature) if self.quantity == "conductivity" else 0.0
        centre = ln_y + offset
        return Extrapolation(
            temperature_K=temperature,
            value=float(np.exp(centre)),
            ci95=(
                float(np.exp(centre - self.quantile * ln_stderr)),
                float(np.exp(centre + self.quantile * ln_stderr)),
            ),
            ln_stderr=ln_stderr,
            units=_VALUE_UNITS[self.quantity],
        )


def fit_arrhenius(
    temperatures_K: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    stderr: Sequence[float] | np.ndarray | None = None,
    *,
    quantity: Quantity = "diffusion",
    scale_by_chi2: bool = True,
) -> ArrheniusResult:
    """Arrhenius fit of D (cm²/s) or σ (S/cm) at several temperatures; see the module docstring.

    ``stderr`` are the standard errors of ``values`` (same units); ``scale_by_chi2`` applies the
    PDG scale factor max(1, χ²/dof) to the covariance of a weighted fit.
    """
    if quantity not in _VALUE_UNITS:
        raise AnalysisError(f"quantity = {quantity!r}: use 'diffusion' or 'conductivity'")
    temperatures = np.asarray(temperatures_K, dtype=np.float64).ravel()
    y_values = np.asarray(values, dtype=np.float64).ravel()
    k = temperatures.shape[0]
    if k == 0:
        raise EmptySelectionError("no temperatures given: pass one value per MD temperature")
    if y_values.shape != (k,):
        raise AnalysisError(
            f"{y_values.shape[0]} values for {k} temperatures: pass one value per temperature"
        )
    if not (np.isfinite(temperatures).all() and np.isfinite(y_values).all()):
        raise NonFiniteInputError("temperatures or values contain NaN or inf: drop the failed runs")
    if (temperatures <= 0).any() or (y_values <= 0).any():
        raise AnalysisError(
            "temperatures and values must be positive for a fit of the logarithm: drop failed runs"
        )
    if np.unique(temperatures).shape[0] < 2:
        raise AnalysisError(
            "an Arrhenius fit needs at least 2 distinct temperatures: run MD at more temperatures"
        )

    # σ T for conductivity (see the module docstring); relative errors are unchanged by the exact T.
    fitted = y_values * temperatures if quantity == "conductivity" else y_values
    y = np.log(fitted)
    design = np.column_stack([np.ones(k), -1.0 / (BOLTZMANN_EV_PER_K * temperatures)])
    dof = k - 2
    if stderr is not None:
        errors = np.asarray(stderr, dtype=np.float64).ravel()
        if errors.shape != (k,) or not np.isfinite(errors).all() or (errors <= 0).any():
            raise AnalysisError(
                "stderr must hold one positive finite error per temperature: pass the fit errors"
            )
        weights = (y_values / errors) ** 2  # 1 / σ_y², σ_y = stderr / value
        normal = design.T @ (weights[:, None] * design)
        covariance = np.linalg.inv(normal)
        params = covariance @ design.T @ (weights * y)
        chi2 = float(weights @ (y - design @ params) ** 2)
        scale = max(1.0, chi2 / dof) if (scale_by_chi2 and dof > 0) else 1.0
        covariance = covariance * scale
        quantile = Z95
        method = "weighted least squares on ln y, weights (value/stderr)²" + (
            f", covariance × {scale:.3g} (χ²/dof, PDG)" if scale > 1.0 else ""
        )
    else:
        if dof < 1:
            raise AnalysisError("an unweighted fit needs at least 3 temperatures: add one or pass stderr")
        normal = design.T @ design
        covariance = np.linalg.inv(normal)
        params = covariance @ design.T @ y
        chi2 = float(((y - design @ params) ** 2).sum())  # residual sum of squares (no errors given)
        covariance = covariance * chi2 / dof
        quantile = t95(dof)
        method = f"ordinary least squares on ln y, residual-variance covariance, Student-t ({dof} dof)"

    ln_a, energy = (float(p) for p in params)
    energy_err = float(np.sqrt(covariance[1, 1]))
    return ArrheniusResult(
        activation_energy_eV=energy,
        activation_energy_stderr_eV=energy_err,
        activation_energy_ci95_eV=(energy - quantile * energy_err, energy + quantile * energy_err),
        ln_prefactor=ln_a,
        ln_prefactor_stderr=float(np.sqrt(covariance[0, 0])),
        covariance=tuple(tuple(float(c) for c in row) for row in covariance),
        quantity=quantity,
        temperatures_K=tuple(float(t) for t in temperatures),
        chi2=chi2,
        dof=dof,
        quantile=quantile,
        method=method + (" of σT" if quantity == "conductivity" else " of D"),
    )
