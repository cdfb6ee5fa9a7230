"""Precision targets for Ea and σ(300 K), and the plan of temperatures and run lengths that reaches them.

The targets (docs/precision.md):

- ``ea_half_width_eV``: the 95 % half-width of Ea (default 0.03 eV);
- ``sigma_factor``: upper over lower bound of the 95 % interval of σ(300 K) (default 3).

An Arrhenius fit of ln D on x = 1/(k_B T) with n temperatures, each D with the same standard error s of
ln D, has σ(Ea) = s / √Sxx (Sxx = Σ (x_i − x̄)²) and σ(ln D(T)) = s √(1/n + (x_T − x̄)² / Sxx) at T;
so each target fixes the largest s it tolerates, and the plan asks every temperature for the smaller
of the two (:func:`needed_log_error`). A run's s falls as 1/√(its length) once it is diffusive; it
also falls with D, because the error of a slope of the MSD is set by the number of independent
jumps: s(T, t) = s_ref √(D_ref t_ref / (D(T) t)) (:func:`length_for`), from any measured run.

The lowest temperature of the plan is the lowest at which the model turns diffusive within the
budget: the MSD must reach ``DIFFUSIVE_MSD_FACTOR`` times the cage plateau (the MSD at ``CAGE_PS``,
where a vibrating ion has filled its cage and not yet hopped) before the fit window can begin, and
the window rule needs the run to be ``1/end_fraction`` times longer than that (:func:`onset_ps`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from superionic.analysis.statistics import Z95
from superionic.analysis.units import BOLTZMANN_EV_PER_K

DIFFUSIVE_MSD_FACTOR = 10.0  # the MSD must pass this many cage plateaus before D can be fitted
CAGE_PS = 1.0  # ps: the cage plateau is read at this lag
MIN_TEMPERATURES = 5


class PrecisionError(ValueError):
    """Targets or budgets that cannot be planned for; the message names the option."""


@dataclass(frozen=True)
class Targets:
    ea_half_width_eV: float = 0.03
    sigma_factor: float = 3.0
    max_md_ns: float = 2.0  # per temperature
    wall_hours: float | None = None  # the whole job's MD

    def check(self) -> None:
        if not self.ea_half_width_eV > 0:
            raise PrecisionError(
                f"--target-ea {self.ea_half_width_eV:g}: must be > 0 eV, e.g. --target-ea 0.03"
            )
        if not self.sigma_factor > 1:
            raise PrecisionError(
                f"--target-sigma {self.sigma_factor:g}: the upper/lower ratio of the 95 % interval must "
                "be > 1, e.g. --target-sigma 3"
            )
        if not self.max_md_ns > 0:
            raise PrecisionError(f"--max-md-ns {self.max_md_ns:g}: must be > 0 ns per temperature, e.g. 2")
        if self.wall_hours is not None and not self.wall_hours > 0:
            raise PrecisionError(f"--max-hours {self.wall_hours:g}: must be > 0 hours")


def reached_precision(arrhenius) -> tuple[float, float]:
    """(95 % half-width of Ea in eV, upper/lower factor of σ(300 K)'s 95 % interval) of an
    ``ArrheniusReport``: what the targets are judged on."""
    lo, hi = arrhenius.activation_energy_ci95_eV
    slo, shi = arrhenius.conductivity_300K_ci95_S_per_cm
    return 0.5 * (hi - lo), (shi / slo if slo > 0 else math.inf)


def shortfall(ea_half_width_eV: float, sigma_factor: float, targets: Targets) -> float:
    """By how much the precision misses the targets (≤ 1: both met): errors fall as 1/√(run
    length), so a shortfall f needs f² × the length."""
    return max(
        ea_half_width_eV / targets.ea_half_width_eV,
        math.log(sigma_factor) / math.log(targets.sigma_factor),
    )


def inverse_kT(temperatures_K: Sequence[float]) -> np.ndarray:
    return 1.0 / (BOLTZMANN_EV_PER_K * np.asarray(temperatures_K, dtype=float))


def needed_log_error(temperatures_K: Sequence[float], targets: Targets, at_K: float = 300.0) -> float:
    """The standard error of ln D every temperature needs for both targets (equal errors)."""
    if len(temperatures_K) < 2:
        raise PrecisionError("an Arrhenius fit needs at least two temperatures")
    x = inverse_kT(temperatures_K)
    sxx = float(((x - x.mean()) ** 2).sum())
    from_ea = targets.ea_half_width_eV / Z95 * math.sqrt(sxx)
    lever = math.sqrt(1.0 / len(x) + (float(inverse_kT([at_K])[0]) - x.mean()) ** 2 / sxx)
    from_sigma = math.log(targets.sigma_factor) / (2.0 * Z95) / lever
    return min(from_ea, from_sigma)


def predicted_precision(temperatures_K: Sequence[float], log_errors: Sequence[float], at_K: float = 300.0):
    """(95 % half-width of Ea in eV, upper/lower factor of the 95 % interval at ``at_K``) of a
    weighted Arrhenius fit with these per-point errors of ln D."""
    x = inverse_kT(temperatures_K)
    w = 1.0 / np.asarray(log_errors, dtype=float) ** 2
    design = np.stack([np.ones_like(x), -x], axis=1)
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    g = np.array([1.0, -float(inverse_kT([at_K])[0])])
    return Z95 * math.sqrt(cov[1, 1]), math.exp(2.0 * Z95 * math.sqrt(float(g @ cov @ g)))


def spaced_in_inverse(low_K: float, high_K: float, n: int) -> list[float]:
    """n temperatures from high to low, evenly spaced in 1/T (rounded to 1 K), highest first."""
    inverse = np.linspace(1.0 / high_K, 1.0 / low_K, n)
    return [float(round(1.0 / v)) for v in inverse]


@dataclass(frozen=True)
class ArrheniusGuess:
    """ln D(T) = ln_d0 − ea / (k_B T) from pilot runs, and the cage plateau of the MSD."""

    ln_d0: float  # ln(cm²/s)
    ea_eV: float
    cage_msd_A2: float

    def diffusion_cm2_per_s(self, temperature_K: float) -> float:
        return math.exp(self.ln_d0 - self.ea_eV * float(inverse_kT([temperature_K])[0]))


def guess_from_pilots(
    temperatures_K: Sequence[float], diffusion_cm2_per_s: Sequence[float], cage_msd_A2: float
) -> ArrheniusGuess:
    """A straight line through the pilots' ln D (two or more temperatures)."""
    if len(temperatures_K) < 2:
        raise PrecisionError("the pilot runs gave a D at fewer than two temperatures; raise the highest -T")
    x = inverse_kT(temperatures_K)
    slope, intercept = np.polyfit(x, np.log(diffusion_cm2_per_s), 1)
    return ArrheniusGuess(float(intercept), float(-slope), float(cage_msd_A2))


def onset_ps(guess: ArrheniusGuess, temperature_K: float, end_fraction: float = 0.5) -> float:
    """The run length (ps) the window rule needs at T: the MSD passes DIFFUSIVE_MSD_FACTOR cage
    plateaus (6 D t = factor × plateau), and the window ends at ``end_fraction`` of the run."""
    d_A2_per_ps = guess.diffusion_cm2_per_s(temperature_K) * 1e4  # cm²/s → Å²/ps
    return DIFFUSIVE_MSD_FACTOR * guess.cage_msd_A2 / (6.0 * d_A2_per_ps) / end_fraction


def lowest_diffusive(guess: ArrheniusGuess, high_K: float, floor_K: float, budget_ps: float) -> float:
    """The lowest temperature in [floor_K, high_K] at which the run turns diffusive within the
    budget (1 K resolution); PrecisionError if not even ``high_K`` does."""
    if onset_ps(guess, high_K) > budget_ps:
        raise PrecisionError(
            f"the model needs about {onset_ps(guess, high_K) / 1000:.3g} ns to turn diffusive even at "
            f"{high_K:g} K, more than the budget of {budget_ps / 1000:.3g} ns per temperature; raise "
            f"--max-md-ns to at least {math.ceil(onset_ps(guess, high_K) / 100) / 10:g} or the highest -T"
        )
    low, high = floor_K, high_K
    if onset_ps(guess, low) <= budget_ps:
        return low
    while high - low > 1.0:
        middle = 0.5 * (low + high)
        if onset_ps(guess, middle) <= budget_ps:
            high = middle
        else:
            low = middle
    return float(math.ceil(high))


def length_for(
    needed: float, reference_error: float, reference_ps: float, reference_d: float, d: float
) -> float:
    """Run length (ps) at which a run with diffusion coefficient ``d`` reaches the log error
    ``needed``, scaled from a measured run (its error, length and D): s² ∝ 1 / (D t)."""
    return reference_ps * (reference_error / needed) ** 2 * reference_d / d


@dataclass
class Plan:
    temperatures_K: list[float]
    lengths_ps: list[float]  # production per temperature, capped by the budget
    needed_log_error: float
    predicted_ea_half_width_eV: float
    predicted_sigma_factor: float
    budget_ps: float
    capped: list[float] = field(default_factory=list)  # temperatures whose length hit the budget
    notes: list[str] = field(default_factory=list)


def make_plan(
    guess: ArrheniusGuess,
    high_K: float,
    floor_K: float,
    targets: Targets,
    reference: tuple[float, float, float],
    n: int = MIN_TEMPERATURES,
    min_ps: float = 50.0,
) -> Plan:
    """Temperatures (n, evenly in 1/T from the lowest diffusive one to ``high_K``) and the run length
    each needs. ``reference`` = (log error of D, run length in ps, D in cm²/s) of a measured run."""
    targets.check()
    budget = targets.max_md_ns * 1000.0
    low = lowest_diffusive(guess, high_K, floor_K, budget)
    if high_K / low < 1.15:
        raise PrecisionError(
            f"the model turns diffusive within {targets.max_md_ns:g} ns only between {low:g} and "
            f"{high_K:g} K, too narrow for an Arrhenius fit to reach 300 K; raise --max-md-ns"
        )
    return plan_lengths(spaced_in_inverse(low, high_K, n), guess, targets, reference, min_ps)


def plan_lengths(
    temperatures_K: Sequence[float],
    guess: ArrheniusGuess,
    targets: Targets,
    reference: tuple[float, float, float],
    min_ps: float = 50.0,
) -> Plan:
    """The run length each of ``temperatures_K`` needs for the targets, capped by the budget."""
    budget = targets.max_md_ns * 1000.0
    temperatures = sorted(temperatures_K, reverse=True)
    needed = needed_log_error(temperatures, targets)
    error, length, d_ref = reference
    lengths, capped = [], []
    for t in temperatures:
        precise = length_for(needed, error, length, d_ref, guess.diffusion_cm2_per_s(t))
        want = max(min_ps, precise, onset_ps(guess, t))
        if want > budget:
            capped.append(t)
        lengths.append(min(want, budget))
    errors = [
        error * math.sqrt(length * d_ref / (L * guess.diffusion_cm2_per_s(t)))
        for t, L in zip(temperatures, lengths, strict=True)
    ]
    ea_half, factor = predicted_precision(temperatures, errors)
    return Plan(list(temperatures), lengths, needed, ea_half, factor, budget, capped)
