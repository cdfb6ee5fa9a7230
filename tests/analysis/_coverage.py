"""Two-sided checks of a 95 % interval over seeded trials: coverage and width.

Coverage is checked on both sides: an interval far too wide covers 100 % of the time and would pass
a one-sided "≥ 90 %" check. The number of hits in n independent trials of a correct 95 % interval
is Binomial(n, 0.95); the accepted band leaves at most 0.6 % in each tail (the binomial is discrete:
with 100 trials, 100 hits alone has probability 0.95¹⁰⁰ = 0.59 %), so a correct interval fails it
with probability ≤ 1.2 %. For 100 trials the band is 89–99 hits, for 200 trials 182–197.

Width: a correct 95 % interval of a nearly normal estimator is 2 · 1.96 standard deviations of the
estimator's sampling distribution wide; a Student-t interval from ν degrees of freedom is on average
2 · t_ν · c4(ν) standard deviations wide (c4(ν) = E[s]/σ for a standard deviation s with ν degrees of
freedom). That spread is measured directly as the standard deviation of the estimates over the same
trials; with n = 100 trials its relative standard error is
1/√(2(n−1)) ≈ 7 %, so a factor of 1.3 either way is ~4 standard errors: an interval of the right
width passes, one 3× too wide or too narrow does not.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln
from scipy.stats import binom, t

NOMINAL = 0.95
TAIL = 0.006
Z95 = 1.959964
WIDTH_FACTOR = 1.3


def coverage_band(n_trials: int) -> tuple[int, int]:
    """Hits [low, high] a correct 95 % interval lands in, except with probability ≤ 2 · TAIL."""
    return int(binom.ppf(TAIL, n_trials, NOMINAL)), int(binom.isf(TAIL, n_trials, NOMINAL))


def assert_coverage(hits: int, n_trials: int, what: str) -> None:
    low, high = coverage_band(n_trials)
    assert low <= hits <= high, (
        f"{what}: {hits} of {n_trials} intervals cover the truth; a correct 95 % interval gives "
        f"{low}–{high} (binomial band, ≤ {2 * TAIL:.1%} false alarms)"
    )


def expected_half_width(dof: float) -> float:
    """Mean half-width of a correct 95 % interval in units of the estimator's standard deviation."""
    if math.isinf(dof):
        return Z95
    c4 = math.sqrt(2 / dof) * math.exp(gammaln((dof + 1) / 2) - gammaln(dof / 2))
    return float(t.ppf(0.975, dof)) * c4


def width_ratio(lows: np.ndarray, highs: np.ndarray, estimates: np.ndarray, dof: float = math.inf) -> float:
    """Mean interval width over the width a correct interval has, from the estimates' spread."""
    spread = float(np.std(estimates, ddof=1))
    return float(np.mean(np.asarray(highs) - np.asarray(lows))) / (2 * expected_half_width(dof) * spread)


def assert_width(
    lows: np.ndarray,
    highs: np.ndarray,
    estimates: np.ndarray,
    what: str,
    dof: float = math.inf,
    factor: float = WIDTH_FACTOR,
) -> float:
    ratio = width_ratio(lows, highs, estimates, dof)
    assert 1 / factor <= ratio <= factor, (
        f"{what}: mean 95 % interval width is {ratio:.2f} × the width a correct interval has "
        f"(from the estimates' spread over trials); it must be 1 within a factor {factor}"
    )
    return ratio
