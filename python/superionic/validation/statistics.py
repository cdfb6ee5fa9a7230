"""The comparison statistics behind every verdict, and the "how much longer" estimates.

Two independent estimates (model run, reference run) of a positive quantity X (D, or the MSD at one
lag) are compared on the log scale, where their sampling distributions are close to symmetric:

    Δ = ln X_model − ln X_ref,   s = √(s_model² + s_ref²),   z = Δ / s

with s_run = (ln hi − ln lo) / (2 · 1.959964) from the run's 95 % bootstrap interval (the interval's
width on the log scale; the delta method stderr / X where the interval reaches 0 or below). Under
the null hypothesis "same X" z is close to Student t with the Welch–Satterthwaite degrees of freedom
of the two errors (each from a bootstrap over n atoms: n − 1), so |z| > t_{0.975, dof} (2.02 for two
runs of 20 Li; 1.96 for many atoms) has a nominal false-alarm rate of 5 % (Bonferroni-adjusted when
several lags are tested together). The interval on the model/reference ratio is exp(Δ ± 1.96 s).

A non-significant z is called "agree" only when the test could have seen a real difference: the
ratio it detects with 80 % power, R80 = exp((q + 0.8416) · s) with q the threshold, must not exceed
the stated resolution (default 2, the factor the acceptance tests use). Otherwise the verdict is
"undetermined: k× more atoms or runs", k = (s / s_needed)², s_needed = ln(resolution) / (q +
0.8416): the error of D falls as 1/√(number of ions) (the bootstrap is over atoms; independent runs
count alike), but hardly with run length under the window rule, whose window ends at a fixed
fraction of the run, so that a longer run also fits longer lags with no more independent segments
(measured on random walks: scaling the atoms by k resolved 9 of 10 such cases, the length 6 of 10).

Ea and RDF statistics are compared on the linear scale with the same construction (normal quantile
for Ea, whose errors come from the Arrhenius fit; Welch–Satterthwaite t for block averages).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import special

from superionic.analysis.statistics import Z95, t95

Outcome = Literal["agree", "disagree", "undetermined"]

#: One-sided 80 % normal quantile: the power the "agree" verdict requires against the resolution.
Z_POWER80: float = float(special.ndtri(0.80))


@dataclass(frozen=True)
class Verdict:
    """A verdict on one quantity, the statistic behind it and, if undetermined, what to do."""

    quantity: str
    outcome: Outcome
    statistic: str  # e.g. "z = 1.2 on ln D"
    detail: str  # one sentence: numbers, interval of the difference or ratio
    run_longer_factor: float | None = None  # multiply the run length by this (None: not applicable)
    false_alarm_rate: float | None = None  # nominal, of the disagree verdict under equality
    advice: str | None = None  # what settles an undetermined verdict, when it is not running longer
    more_samples_factor: float | None = None  # intervals too wide: this many times more atoms (or runs)

    @property
    def label(self) -> str:
        if self.outcome != "undetermined":
            return self.outcome
        if self.advice:
            return f"undetermined: {self.advice}"
        if self.more_samples_factor is not None and math.isfinite(self.more_samples_factor):
            return f"undetermined: {self.more_samples_factor:.2g}× more atoms or runs"
        if self.run_longer_factor is not None and math.isfinite(self.run_longer_factor):
            return f"undetermined: run {self.run_longer_factor:.2g}× longer"
        return "undetermined: run longer"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def log_sigma(value: float, ci95: tuple[float, float], stderr: float) -> float:
    """Standard error of ln(value) from a 95 % interval (its log width / 3.92), else stderr / value."""
    low, high = ci95
    if low > 0 and high > low:
        return (math.log(high) - math.log(low)) / (2.0 * Z95)
    return stderr / value if value > 0 else math.inf


@dataclass(frozen=True)
class LogComparison:
    ratio: float  # model / reference
    ratio_ci95: tuple[float, float]
    z: float
    sigma: float  # combined standard error of ln ratio
    quantile: float  # the |z| threshold used
    detectable_ratio: float  # R80

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_log(
    model: float, model_sigma: float, reference: float, reference_sigma: float, quantile: float = Z95
) -> LogComparison:
    """z test of ln(model) − ln(reference) with the two log standard errors (see the module docstring)."""
    delta = math.log(model) - math.log(reference)
    sigma = math.hypot(model_sigma, reference_sigma)
    return LogComparison(
        ratio=math.exp(delta),
        ratio_ci95=(math.exp(delta - Z95 * sigma), math.exp(delta + Z95 * sigma)),
        z=delta / sigma,
        sigma=sigma,
        quantile=quantile,
        detectable_ratio=math.exp((quantile + Z_POWER80) * sigma),
    )


def log_verdict(quantity: str, comparison: LogComparison, resolution: float, false_alarm: float) -> Verdict:
    """agree / disagree / undetermined from a ``LogComparison`` and the ratio the test must resolve."""
    c = comparison
    detail = (
        f"model/reference = {c.ratio:.3g} (95 % {c.ratio_ci95[0]:.3g}–{c.ratio_ci95[1]:.3g}); "
        f"a ratio of {c.detectable_ratio:.3g} is detected with 80 % power"
    )
    statistic = f"z = {c.z:+.2f} on the log ratio, threshold |z| > {c.quantile:.2f}"
    if abs(c.z) > c.quantile:
        return Verdict(quantity, "disagree", statistic, detail, None, false_alarm)
    if c.detectable_ratio > resolution:
        needed = math.log(resolution) / (c.quantile + Z_POWER80)
        factor = (c.sigma / needed) ** 2
        return Verdict(
            quantity,
            "undetermined",
            statistic,
            detail + f" (> the resolution {resolution:g}): the intervals are too wide to tell",
            None,
            false_alarm,
            more_samples_factor=factor,
        )
    return Verdict(quantity, "agree", statistic, detail, None, false_alarm)


def linear_verdict(
    quantity: str,
    difference: float,
    sigma: float,
    dof: float,
    quantile_level: float = 0.975,
    resolution: float | None = None,
    units: str = "",
) -> Verdict:
    """agree / disagree (and, with ``resolution``, undetermined) for a difference with its stderr."""
    if not (math.isfinite(sigma) and sigma > 0):
        return Verdict(quantity, "undetermined", "no error estimate", "an uncertainty is missing", None, None)
    quantile = (
        float(special.stdtrit(dof, quantile_level))
        if math.isfinite(dof)
        else float(special.ndtri(quantile_level))
    )
    half = Z95 * sigma if not math.isfinite(dof) else t95(max(1, int(dof))) * sigma
    z = difference / sigma
    false_alarm = 2.0 * (1.0 - quantile_level)
    detail = (
        f"difference {difference:+.3g} {units} (95 % {difference - half:+.3g} to {difference + half:+.3g})"
    )
    statistic = f"{'z' if not math.isfinite(dof) else f't({dof:.1f})'} = {z:+.2f}, threshold {quantile:.2f}"
    if abs(z) > quantile:
        return Verdict(quantity, "disagree", statistic, detail, None, false_alarm)
    if resolution is not None:
        detectable = (quantile + Z_POWER80) * sigma
        if detectable > resolution:
            needed = resolution / (quantile + Z_POWER80)
            return Verdict(
                quantity,
                "undetermined",
                statistic,
                detail + f"; a difference of {detectable:.3g} {units} is detected with 80 % power "
                f"(> the resolution {resolution:g} {units}): the intervals are too wide to tell",
                None,
                false_alarm,
                more_samples_factor=(sigma / needed) ** 2,
            )
    return Verdict(quantity, "agree", statistic, detail, None, false_alarm)


def bonferroni_quantile(n_tests: int, level: float = 0.05, dof: float = math.inf) -> float:
    """|z| (or, with finite ``dof``, Student-t) threshold of ``n_tests`` two-sided tests with a
    family-wise false-alarm rate ``level``."""
    probability = 1.0 - level / (2.0 * max(1, n_tests))
    if math.isfinite(dof):
        return float(special.stdtrit(dof, probability))
    return float(special.ndtri(probability))


def welch_dof(sigma_1: float, n_1: int, sigma_2: float, n_2: int) -> float:
    """Welch–Satterthwaite degrees of freedom of √(σ1² + σ2²) when each σ comes from n atoms.

    A bootstrap over n atoms estimates the standard error of a mean of n per-atom values, itself
    uncertain with n − 1 degrees of freedom; with 20 Li per run the Student-t threshold (≈ 2.02
    instead of 1.96) keeps the false-alarm rate nearer its nominal value.
    """
    numerator = (sigma_1**2 + sigma_2**2) ** 2
    denominator = sigma_1**4 / max(1, n_1 - 1) + sigma_2**4 / max(1, n_2 - 1)
    return numerator / denominator if denominator > 0 else math.inf


def diffusive_onset_estimate(
    lag_ps: np.ndarray,
    msd_A2: np.ndarray,
    slope_tolerance: float,
    persistence_factor: float,
    end_fraction: float,
) -> dict[str, Any]:
    """How long a run must be before the window rule can find a diffusive regime, from its MSD.

    Model: MSD(t) = c + 6 D t at the longest usable lags (the last half of the lags up to
    ``end_fraction`` of the run), fitted by least squares. Its log–log slope is β(t) = 6Dt / (c + 6Dt),
    which reaches 1 − tol at t_on = (1 − tol) c / (tol · 6 D). The rule needs β inside 1 ± tol over
    [t_on, persistence · t_on] inside the window, which ends at end_fraction of the run, so the run
    must last about T = persistence · t_on / end_fraction. Returns t_on, T and the fit; T is None when
    the MSD does not grow (caged: no estimate is possible from this run).
    """
    lags = np.asarray(lag_ps, dtype=np.float64)
    msd = np.asarray(msd_A2, dtype=np.float64)
    end = max(2, int(end_fraction * (lags.shape[0] - 1)))
    first = max(1, end // 2)
    x, y = lags[first : end + 1], msd[first : end + 1]
    slope, intercept = np.polyfit(x, y, 1)
    result: dict[str, Any] = {
        "fit_lags_ps": [float(x[0]), float(x[-1])],
        "late_slope_A2_per_ps": float(slope),
        "late_intercept_A2": float(intercept),
        "onset_ps": None,
        "duration_needed_ps": None,
        "model": "MSD = c + 6 D t at the longest usable lags; β = 6Dt/(c + 6Dt) reaches 1 − tol at "
        "t_on = (1 − tol) c / (tol · 6D); needed run = persistence · t_on / end_fraction",
    }
    if slope <= 0:
        return result
    offset = max(float(intercept), 0.0)
    onset = (1.0 - slope_tolerance) * offset / (slope_tolerance * slope)
    onset = max(onset, float(lags[1]))
    result["onset_ps"] = onset
    result["duration_needed_ps"] = persistence_factor * onset / end_fraction
    return result
