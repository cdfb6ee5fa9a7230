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
Each extrapolation says how far it reaches: its distance outside the fitted 1/T range in units of
that range (300 K from a 500–900 K fit is 1.5 ranges out).

Coverage, measured (tests/analysis/test_arrhenius.py, 2000 seeded trials of 5 temperatures with
known, unequal log errors): the interval of Ea covers the truth in 94.8 % of trials without the χ²
scale; with it (the default) 96.35 %, against 96.26 %, its exact rate for correct errors at 3 dof (the
scale only widens); it keeps more of its coverage when the errors are too small (errors 1.5× too
small: 90 % with the scale at 3 dof, 81 % without, computed).

Curvature test (a straight line in 1/T is a hypothesis, not a given). The line is set against every
one-parameter bend of it: a quadratic term in 1/T (smooth non-Arrhenius behaviour) and, with ≥ 4
temperatures, a hinge (a kink, Ea changing at one temperature) at each interior temperature. The
statistic is the largest drop of χ² among them, divided by max(1, χ²/dof of that bent fit) when the
errors are given (so errors that under-describe the scatter do not make a kink) and by χ²/dof itself
when they are not (an F ratio). Its null distribution, a maximum over correlated alternatives, is
simulated: the same statistic for ``curvature_simulations`` straight lines with the same temperatures
and errors (seeded, so a fit is reproducible); the p-value is the fraction at least as large. The
line is rejected at p < ``curvature_alpha`` (default 0.05), so the false-alarm rate on a straight
line with correct errors is 5 % by construction (measured: 5.0 % of 2000 straight lines with errors,
4.6 % of 1000 without). Power: a kink of 0.2 eV at 700 K among 6 temperatures 500–1000 K with 10 %
errors is detected in 97.6 % of 500 trials.

A detected bend splits the temperatures at the hinge that fits best: each segment (the hinge
temperature in both, ≥ 2 temperatures each) gets its own fit, and an extrapolation below the hinge
uses the low-temperature segment, above it the high-temperature one, and says so; the fit over all
temperatures (``activation_energy_eV``) is kept as the average barrier over the range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    fitted_range_K: tuple[float, float] = (math.nan, math.nan)  # of the fit used
    # Distance outside the fitted 1/T range in units of that range (0 inside it).
    distance_in_fitted_ranges: float = math.nan
    fit_used: str = "all temperatures"  # or "low-temperature segment" / "high-temperature segment"
    note: str = ""


@dataclass(frozen=True)
class CurvatureTest:
    """Is ln y linear in 1/T? The largest χ² drop of a one-parameter bend against simulated lines.

    ``shape`` is the bend that fits best: "quadratic" or "kink"; ``kink_temperature_K`` is the best
    hinge's temperature (where a detected bend splits the fit; the middle temperature for 3 points).
    ``quadratic_z`` is the quadratic coefficient over its standard error: negative when the apparent
    Ea grows on cooling. ``p_value`` comes from ``n_simulations`` straight lines with the same
    temperatures and errors; ``detected`` is p < ``alpha``, the false-alarm rate on a straight line.
    """

    statistic: float
    p_value: float
    alpha: float
    detected: bool
    shape: str
    kink_temperature_K: float
    quadratic_z: float
    n_simulations: int
    method: str


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
    # The fitted range: (T_min, T_max) in K and (1000/T_max, 1000/T_min) in 1/kK.
    temperature_range_K: tuple[float, float] = (math.nan, math.nan)
    inverse_temperature_range_per_kK: tuple[float, float] = (math.nan, math.nan)
    curvature: CurvatureTest | None = None  # None: not tested (too few temperatures)
    # Fits of the temperatures at and below / at and above the hinge, when a bend was detected.
    low_temperature_segment: ArrheniusResult | None = None
    high_temperature_segment: ArrheniusResult | None = None
    notes: tuple[str, ...] = ()

    @property
    def prefactor(self) -> float:
        """A, in ``prefactor_units``."""
        return float(np.exp(self.ln_prefactor))

    @property
    def prefactor_units(self) -> str:
        """cm2/s for diffusion, S K/cm for conductivity (σT)."""
        return _PREFACTOR_UNITS[self.quantity]

    def distance_in_fitted_ranges(self, temperature_K: float) -> float:
        """How far ``temperature_K`` lies outside the fitted 1/T range, in units of that range (0 inside)."""
        low, high = self.temperature_range_K
        inverse, span = 1.0 / float(temperature_K), 1.0 / low - 1.0 / high
        outside = max(inverse - 1.0 / low, 1.0 / high - inverse, 0.0)
        return outside / span if span > 0 else math.inf

    def extrapolate(self, temperature_K: float) -> Extrapolation:
        """D (cm²/s) or σ (S/cm) at ``temperature_K`` with a 95 % interval from the fit covariance.

        When the curvature test detected a bend, the segment on ``temperature_K``'s side of the hinge
        is used (never the line across the bend), and ``fit_used`` and ``note`` say so.
        """
        temperature = float(temperature_K)
        if not np.isfinite(temperature) or temperature <= 0:
            raise AnalysisError(f"temperature_K = {temperature_K!r}: pass a positive temperature in K")
        fit, used, note = self, "all temperatures", ""
        bend = self.curvature
        if bend is not None and bend.detected:
            below = temperature <= bend.kink_temperature_K
            side = "low" if below else "high"
            segment = self.low_temperature_segment if below else self.high_temperature_segment
            header = f"ln y is not linear in 1/T ({bend.shape}, p = {bend.p_value:.2g} < {bend.alpha:g})"
            if segment is not None:
                fit, used = segment, f"{side}-temperature segment"
                low, high = segment.temperature_range_K
                note = (
                    f"{header}: from the {used} {low:g}–{high:g} K ({len(segment.temperatures_K)} points, "
                    f"Ea = {segment.activation_energy_eV:.3g} eV), not the line across the bend at "
                    f"{bend.kink_temperature_K:g} K"
                )
            else:
                note = (
                    f"{header}, but the {side}-temperature side of {bend.kink_temperature_K:g} K has too few "
                    "temperatures for a fit of its own: this is the line over all temperatures, across the "
                    "bend (run MD at more temperatures on that side)"
                )
        return fit._extrapolate_line(temperature, used, note)

    def _extrapolate_line(self, temperature: float, used: str, note: str) -> Extrapolation:
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
            fitted_range_K=self.temperature_range_K,
            distance_in_fitted_ranges=self.distance_in_fitted_ranges(temperature),
            fit_used=used,
            note=note,
        )


def fit_arrhenius(
    temperatures_K: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    stderr: Sequence[float] | np.ndarray | None = None,
    *,
    quantity: Quantity = "diffusion",
    scale_by_chi2: bool = True,
    curvature_alpha: float = 0.05,
    curvature_simulations: int = 4000,
) -> ArrheniusResult:
    """Arrhenius fit of D (cm²/s) or σ (S/cm) at several temperatures; see the module docstring.

    ``stderr`` are the standard errors of ``values`` (same units); ``scale_by_chi2`` applies the
    PDG scale factor max(1, χ²/dof) to the covariance of a weighted fit. The curvature test runs
    with ≥ 3 temperatures and errors, or ≥ 4 without; ``curvature_alpha`` is its false-alarm rate
    (0 turns it off) and ``curvature_simulations`` the number of simulated straight lines behind
    its p-value.
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
    errors = None
    if stderr is not None:
        errors = np.asarray(stderr, dtype=np.float64).ravel()
        if errors.shape != (k,) or not np.isfinite(errors).all() or (errors <= 0).any():
            raise AnalysisError(
                "stderr must hold one positive finite error per temperature: pass the fit errors"
            )
    if not 0.0 <= curvature_alpha < 1.0:
        raise AnalysisError(f"curvature_alpha = {curvature_alpha!r}: pass a false-alarm rate in [0, 1)")

    result = _line_fit(temperatures, y_values, errors, quantity, scale_by_chi2)
    # σ T for conductivity (see the module docstring); relative errors are unchanged by the exact T.
    y = np.log(y_values * temperatures if quantity == "conductivity" else y_values)
    sigma_y = None if errors is None else errors / y_values
    n_distinct = np.unique(temperatures).shape[0]
    if curvature_alpha == 0.0:
        return replace(result, notes=("curvature not tested (curvature_alpha = 0)",))
    if n_distinct < (3 if errors is not None else 4):
        return replace(
            result,
            notes=(
                f"curvature not tested: {n_distinct} temperatures (a bend needs ≥ 3 with errors, "
                "≥ 4 without)",
            ),
        )
    bend = curvature_test(temperatures, y, sigma_y, curvature_alpha, curvature_simulations)
    if not bend.detected:
        return replace(result, curvature=bend)
    low = temperatures <= bend.kink_temperature_K
    high = temperatures >= bend.kink_temperature_K
    segments = [
        _line_fit(
            temperatures[m], y_values[m], None if errors is None else errors[m], quantity, scale_by_chi2
        )
        if np.unique(temperatures[m]).shape[0] >= 2
        and (errors is not None or np.unique(temperatures[m]).shape[0] >= 3)
        else None
        for m in (low, high)
    ]
    note = (
        f"ln y is not linear in 1/T ({bend.shape}, p = {bend.p_value:.2g} < {curvature_alpha:g}); "
        f"extrapolations use the segment on their side of {bend.kink_temperature_K:g} K"
        + "".join(
            f"; {side} segment Ea = {seg.activation_energy_eV:.3g} ± {seg.activation_energy_stderr_eV:.2g} eV"
            for side, seg in zip(("low-T", "high-T"), segments, strict=True)
            if seg is not None
        )
    )
    return replace(
        result,
        curvature=bend,
        low_temperature_segment=segments[0],
        high_temperature_segment=segments[1],
        method=result.method + f"; curvature detected ({bend.shape}, p = {bend.p_value:.2g})",
        notes=(note,),
    )


def _line_fit(
    temperatures: np.ndarray,
    y_values: np.ndarray,
    errors: np.ndarray | None,
    quantity: Quantity,
    scale_by_chi2: bool,
) -> ArrheniusResult:
    """The straight-line fit of ln y against −1/(k_B T) (module docstring), with no curvature test."""
    k = temperatures.shape[0]
    fitted = y_values * temperatures if quantity == "conductivity" else y_values
    y = np.log(fitted)
    design = np.column_stack([np.ones(k), -1.0 / (BOLTZMANN_EV_PER_K * temperatures)])
    dof = k - 2
    if errors is not None:
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
    t_min, t_max = float(temperatures.min()), float(temperatures.max())
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
        temperature_range_K=(t_min, t_max),
        inverse_temperature_range_per_kK=(1000.0 / t_max, 1000.0 / t_min),
    )


def curvature_test(
    temperatures_K: np.ndarray,
    ln_values: np.ndarray,
    ln_stderr: np.ndarray | None,
    alpha: float = 0.05,
    n_simulations: int = 4000,
    seed: int = 0,
) -> CurvatureTest:
    """Test ln y = a − Ea/(k_B T) against its one-parameter bends (module docstring, "Curvature test").

    ``ln_stderr`` are the standard errors of ``ln_values`` (None: unknown, a common scale is fitted).
    Needs ≥ 3 distinct temperatures with errors, ≥ 4 without. The simulated null is seeded by
    ``seed``: the same data give the same p-value.
    """
    temperatures = np.asarray(temperatures_K, dtype=np.float64)
    known = ln_stderr is not None
    sigma = np.asarray(ln_stderr, dtype=np.float64) if known else np.ones_like(temperatures)
    distinct = np.unique(temperatures)
    if distinct.shape[0] < (3 if known else 4):
        raise AnalysisError("a curvature test needs ≥ 3 temperatures with errors, ≥ 4 without")
    u = 1.0 / (BOLTZMANN_EV_PER_K * temperatures)
    k = u.shape[0]
    design = np.column_stack([np.ones(k), -u]) / sigma[:, None]
    basis, _ = np.linalg.qr(design)
    residual_maker = np.eye(k) - basis @ basis.T
    weights = 1.0 / sigma**2
    centre = float(np.sum(weights * u) / np.sum(weights))
    # Alternatives: a quadratic in 1/T, and a hinge (slope change) at each interior temperature.
    knots = distinct[1:-1] if distinct.shape[0] >= 4 else distinct[1:2]
    knot_u = 1.0 / (BOLTZMANN_EV_PER_K * knots)
    bends = np.column_stack([(u - centre) ** 2, np.maximum(0.0, u[:, None] - knot_u[None, :])])
    bends = residual_maker @ (bends / sigma[:, None])  # the part of each bend a line cannot absorb
    norms = np.einsum("ij,ij->j", bends, bends)
    usable = norms > 1e-12 * np.max(norms)
    hinge_columns = np.arange(1, bends.shape[1]) if distinct.shape[0] >= 4 else np.array([], dtype=int)
    columns = np.concatenate([[0], hinge_columns])
    columns = columns[usable[columns]]
    extra_dof = k - 3

    def statistic(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[n] statistic and [n] index (into ``columns``) of the best bend, residuals [n, k]."""
        drops = (residuals @ bends[:, columns]) ** 2 / norms[columns]  # χ² drop of each bend
        best = np.argmax(drops, axis=1)
        drop = drops[np.arange(drops.shape[0]), best]
        remaining = np.einsum("ij,ij->i", residuals, residuals) - drop
        if known:
            scale = np.maximum(1.0, remaining / extra_dof) if extra_dof > 0 else np.ones_like(drop)
        else:
            scale = np.maximum(remaining, 1e-300) / extra_dof
        return drop / scale, best

    observed_residual = residual_maker @ (np.asarray(ln_values, dtype=np.float64) / sigma)
    value, best = statistic(observed_residual[None, :])
    noise = np.random.default_rng(seed).standard_normal((n_simulations, k)) @ residual_maker
    simulated, _ = statistic(noise)
    p_value = float((1 + np.sum(simulated >= value[0])) / (n_simulations + 1))
    best_column = int(columns[best[0]])
    # The quadratic coefficient over its standard error (errors scaled as in the statistic).
    along = float(observed_residual @ bends[:, 0]) / math.sqrt(norms[0])
    rest = float(observed_residual @ observed_residual) - along**2
    if extra_dof > 0:
        along /= math.sqrt(max(1.0, rest / extra_dof) if known else max(rest, 1e-300) / extra_dof)
    quadratic_z = along
    # Where a detected bend splits the fit: the best hinge (its drop, whether or not the quadratic won).
    if distinct.shape[0] >= 4:
        hinge_drops = (observed_residual @ bends[:, 1:]) ** 2 / np.maximum(norms[1:], 1e-300)
        kink = float(knots[int(np.argmax(hinge_drops))])
    else:
        kink = float(knots[0])
    scale_text = "max(1, χ²/dof)" if known else "χ²/dof (F ratio, errors not given)"
    return CurvatureTest(
        statistic=float(value[0]),
        p_value=p_value,
        alpha=alpha,
        detected=p_value < alpha,
        shape="quadratic" if best_column == 0 else "kink",
        kink_temperature_K=kink,
        quadratic_z=quadratic_z,
        n_simulations=n_simulations,
        method=(
            f"largest χ² drop of a quadratic in 1/T or a hinge at {hinge_columns.shape[0]} interior "
            f"temperatures, over {scale_text}; p from {n_simulations} simulated straight lines"
        ),
    )
