"""Tracer diffusion coefficient from the windowed MSD, with an uncertainty that respects correlations.

Model, in the diffusive regime only: MSD(t) = 6 D t + c in 3D, MSD_α(t) = 2 D_α t + c_α per Cartesian
component (so D = (D_x + D_y + D_z) / 3; anisotropic conductors such as LGPS have D_z ≫ D_x).
The intercept c absorbs the short-time (ballistic, vibrational) offset.

Window (the stated rule, ``WindowRule``): the local log–log slope β(t) = d ln MSD / d ln t is
estimated at each lag t as the least-squares slope of ln MSD against ln t over the lags in
[t, span · t]. The window starts at the first lag t at which β stays within 1 ± tolerance for all
lags in [t, persistence · t] (so a passage through β = 1 on the way from the ballistic β = 2 down to a
caged β < 1 does not count), and ends at ``end_fraction`` of the trajectory length (default 1/3),
where every lag still has at least 2/3 of the frames as time origins.

Uncertainty. The MSD at neighbouring lags is strongly correlated, so the OLS standard error of the
slope is far too small. Default: bootstrap over atoms (Efron & Tibshirani 1993) — resample the atoms
with replacement, recompute the atom-averaged MSD and its fit, and report the standard deviation of
the replicates and their 2.5/97.5 % percentiles; atoms are treated as independent (exact for a
tracer D in the dilute limit, approximate when ions hop collectively). The window is held fixed
across replicates. ``bootstrap_interval="expanded"``: the expanded percentile interval (Hesterberg,
Am. Stat. 69, 371 (2015): the percentiles at Φ(−√(N/(N−1)) t_{0.975,N−1}) instead of 2.5 %, 1.6 %
for 20 atoms; the standard error × √(N/(N−1)), with N − 1 degrees of freedom), which covers at the
nominal rate for small N where the plain one does not (below). Alternative: block averaging over
time (Flyvbjerg & Petersen 1989), one fit per block, a Student-t interval.

Which fit. ``fit="ols"`` (default) weights every lag of the window alike. ``fit="gls"`` weights them
by generalised least squares with the MSD covariance of a Brownian walk (``brownian_msd_covariance``,
solved in O(K) by ``statistics.brownian_line_weights``), the point estimate of kinisi's approach,
which models the covariance matrix and samples D (Bayesian) (McCluskey, Coles, Morgan, "Accurate
estimation of diffusion coefficients and their uncertainties from computer simulation", J. Chem.
Theory Comput. 21, 79 (2025), doi:10.1021/acs.jctc.4c01249). That covariance is the one of
integrated Brownian motion, under which the MSD's slope at the window's first lags carries nearly all
the information: the GLS weights are a few large ± values on the first 3–5 lags and ~0 beyond. On a
Brownian walk that is the efficient estimator (its interval narrows as 1/√(run length), 6–50× narrower
than OLS's); on an MSD that still bends where the window starts (cage exits, back-jumps: the window
rule accepts a log–log slope within 1 ± tolerance, not a straight line) it returns that local slope.
Measured (bench/estimator_coverage.py, docs/results/estimator_coverage.md, 200 seeded trials each,
20–160 ions, 20–1000 ps): on Gaussian walks OLS covers 89.5–94.5 % and GLS 89–96 % with a 6–50×
narrower interval; on caged ions that hop with back-jumps OLS covers 91.5–94.5 % (bias +0.1 to
+6 %), GLS 19–84 % (bias +14 to +38 %), kinisi 4 % and 85.5 % (+13 %). Hence OLS is the default.
``fit_difference_z`` in every result is (D_GLS − D_OLS) over its standard error from the same
resamples (or blocks): |z| > 3 says the MSD still bends in the window, so that D depends on where the
window starts (move it later). It was > 3 in 0–1.5 % of the Gaussian runs and 2.5–70 % of the
bent ones: a small |z| proves nothing with few ions.

Measured coverage on Gaussian walks with the default rule: plain percentile 89.5 % with 20 atoms
(20 ps), 92 % with 64, 94 % with 128, 94.5 % with 256; expanded percentile 94 % with 20 atoms. Per-atom
D estimates are skewed (few independent long-lag origins per atom), so the plain interval is narrow
for small N; a BCa interval gained nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from superionic.analysis._checks import check_positions, check_times
from superionic.analysis.errors import AnalysisError, NoDiffusiveRegimeError, TrajectoryTooShortError
from superionic.analysis.msd import msd_fft, msd_per_atom_components_fft
from superionic.analysis.statistics import (
    Covariance,
    block_mean_interval,
    bootstrap_mean_interval,
    fit_line,
    line_weights,
)
from superionic.analysis.units import CM2_PER_S_PER_A2_PER_PS

Uncertainty = Literal["bootstrap_atoms", "block_average"]
Fit = Literal["ols", "gls"]
BootstrapInterval = Literal["expanded", "percentile"]

# Trajectories up to this size keep all per-atom MSD curves in memory (same size as the positions).
_SINGLE_PASS_BYTES = 256 * 2**20


@dataclass(frozen=True)
class WindowRule:
    """The rule that picks the diffusive fit window (see the module docstring).

    slope_tolerance: β must lie within 1 ± this (default 0.1).
    span_factor: β(t) is the log–log slope fitted over lags [t, span_factor · t] (default 2).
    persistence_factor: β must stay in tolerance over [t, persistence_factor · t] (default 4).
    end_fraction: the window ends at this fraction of the trajectory (or block) length (default 1/3).
    min_points: the window must hold at least this many lags (default 10).
    """

    slope_tolerance: float = 0.1
    span_factor: float = 2.0
    persistence_factor: float = 4.0
    end_fraction: float = 1.0 / 3.0
    min_points: int = 10


@dataclass(frozen=True)
class DiffusionResult:
    """A diffusion coefficient with its uncertainty; D in cm²/s, times in ps, MSD intercepts in Å².

    ``components_*`` are (x, y, z); ``ci95_*`` are 95 % intervals (low, high). ``method`` says how the
    uncertainty was obtained; ``n_samples`` is the number of bootstrap replicates or of blocks, and
    ``dof`` the degrees of freedom of the interval (inf for the bootstrap's percentile interval, N − 1
    for its expanded one, n_blocks − 1 for blocks), used when errors are combined.
    """

    diffusion_cm2_per_s: float
    stderr_cm2_per_s: float
    ci95_cm2_per_s: tuple[float, float]
    components_cm2_per_s: tuple[float, float, float]
    components_stderr_cm2_per_s: tuple[float, float, float]
    components_ci95_cm2_per_s: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    intercept_A2: float
    components_intercept_A2: tuple[float, float, float]
    window_ps: tuple[float, float]
    n_lags_in_window: int
    timestep_ps: float
    duration_ps: float
    n_atoms: int
    n_samples: int
    dof: float  # degrees of freedom behind the interval: inf (bootstrap) or n_blocks − 1 (Student t)
    method: str
    window_rule: WindowRule | None  # None when the window was given explicitly
    # D by the other fit over the same window (GLS when ``method`` is OLS, OLS when GLS), and
    # (D_GLS − D_OLS) over its standard error from the same resamples or blocks: |z| ≳ 3 says the
    # MSD still bends inside the window (module docstring, "Which fit").
    other_fit_cm2_per_s: float = math.nan
    fit_difference_z: float = math.nan

    @property
    def diffusion_A2_per_ps(self) -> float:
        """D in Å²/ps (LAMMPS metal units)."""
        return self.diffusion_cm2_per_s / CM2_PER_S_PER_A2_PER_PS

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python fields for JSON reports."""
        return asdict(self)

    def summary(self) -> str:
        """One line: D ± stderr [95 % interval] cm²/s and the window."""
        low, high = self.ci95_cm2_per_s
        return (
            f"D = {self.diffusion_cm2_per_s:.4g} ± {self.stderr_cm2_per_s:.2g} cm²/s "
            f"(95 % [{low:.4g}, {high:.4g}]), window {self.window_ps[0]:.4g}–{self.window_ps[1]:.4g} ps, "
            f"{self.method}"
        )


def local_loglog_slope(lag_ps: np.ndarray, msd_A2: np.ndarray, span_factor: float = 2.0) -> np.ndarray:
    """β(t_m) = least-squares slope of ln MSD vs ln t over the lags [t_m, span_factor · t_m].

    ``msd_A2`` is the 3D MSD [T] (or [T, 3], summed). Entry 0 (t = 0) and lags whose span runs past
    the last lag are NaN. Prefix sums make this O(T).
    """
    lags = np.asarray(lag_ps, dtype=np.float64)
    msd = np.asarray(msd_A2, dtype=np.float64)
    if msd.ndim == 2:
        msd = msd.sum(axis=1)
    n = lags.shape[0]
    beta = np.full(n, np.nan)
    if n < 3:
        return beta
    if (msd[1:] <= 0).any():
        raise AnalysisError("the MSD is zero at a non-zero lag (atoms do not move): check the ion selection")
    x = np.log(lags[1:])
    y = np.log(msd[1:])
    # Index j into x/y is lag j + 1; the span of lag m (index m − 1) ends at lag floor(span · m).
    m = np.arange(1, n)
    last = np.maximum(np.floor(span_factor * m + 1e-9).astype(int), m + 1)
    valid = last <= n - 1
    start, stop = m[valid] - 1, last[valid]  # x/y slice [start, stop) — stop = last lag's index + 1

    def window_sum(values: np.ndarray) -> np.ndarray:
        cumulative = np.concatenate([[0.0], np.cumsum(values)])
        return cumulative[stop] - cumulative[start]

    count = (stop - start).astype(np.float64)
    sx, sy, sxx, sxy = window_sum(x), window_sum(y), window_sum(x * x), window_sum(x * y)
    beta[m[valid]] = (count * sxy - sx * sy) / (count * sxx - sx * sx)
    return beta


def select_diffusive_window(
    lag_ps: np.ndarray, msd_A2: np.ndarray, rule: WindowRule | None = None
) -> tuple[float, float]:
    """The fit window (start, end) in ps chosen by ``rule`` (see the module docstring for the rule).

    Raises ``TrajectoryTooShortError`` if the end lag leaves fewer than ``rule.min_points`` lags and
    ``NoDiffusiveRegimeError`` if β never settles within tolerance of 1 before the end.
    """
    rule = rule or WindowRule()
    lags = np.asarray(lag_ps, dtype=np.float64)
    n = lags.shape[0]
    end = int(np.floor(rule.end_fraction * (n - 1) + 1e-9))
    if end < rule.min_points:
        raise TrajectoryTooShortError(
            f"{n} frames give a window of at most {end} lags (< min_points = {rule.min_points}): run "
            "longer or save frames more often"
        )
    beta = local_loglog_slope(lags[: end + 1], np.asarray(msd_A2)[: end + 1], rule.span_factor)
    # ok[m] for lags 1 … end; NaN (span past the end) counts as neither good nor bad: stop checking there.
    defined = ~np.isnan(beta)
    good = defined & (np.abs(beta - 1.0) <= rule.slope_tolerance)
    last_defined = int(np.flatnonzero(defined)[-1]) if defined.any() else 0
    next_bad = np.full(end + 2, end + 1)  # next_bad[m]: first lag ≥ m with β defined and out of tolerance
    for m in range(end, 0, -1):
        next_bad[m] = m if (defined[m] and not good[m]) else next_bad[m + 1]
    for m in range(1, end - rule.min_points + 2):
        if not good[m]:
            continue
        horizon = min(int(np.floor(rule.persistence_factor * m + 1e-9)), last_defined)
        if next_bad[m] > horizon:
            return float(lags[m]), float(lags[end])
    raise NoDiffusiveRegimeError(
        f"the log–log MSD slope never stays within 1 ± {rule.slope_tolerance} before "
        f"{lags[end]:.4g} ps: run longer, loosen WindowRule.slope_tolerance, or pass window_ps explicitly"
    )


def window_indices(lag_ps: np.ndarray, window_ps: tuple[float, float]) -> tuple[int, int]:
    """First and last lag index (inclusive) inside ``window_ps``; at least 3 lags are required."""
    lags = np.asarray(lag_ps, dtype=np.float64)
    start_ps, end_ps = (float(v) for v in window_ps)
    tolerance = 1e-6 * (lags[1] - lags[0]) if lags.shape[0] > 1 else 0.0
    inside = np.flatnonzero((lags >= start_ps - tolerance) & (lags <= end_ps + tolerance) & (lags > 0))
    if inside.size < 3:
        raise TrajectoryTooShortError(
            f"window {start_ps:.4g}–{end_ps:.4g} ps holds {inside.size} non-zero lags (< 3) of the "
            f"available 0–{lags[-1]:.4g} ps: widen the window"
        )
    return int(inside[0]), int(inside[-1])


def resolve_window_indices(
    lag_ps: np.ndarray, msd_A2: np.ndarray, window_ps: tuple[float, float] | None, rule: WindowRule
) -> tuple[int, int]:
    """Lag indices (first, last) of ``window_ps`` if given, else of the window ``rule`` picks on the MSD."""
    window = window_ps if window_ps is not None else select_diffusive_window(lag_ps, msd_A2, rule)
    return window_indices(lag_ps, window)


def block_msd_curves(
    positions: np.ndarray, n_blocks: int, msd_function: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``msd_function`` applied to each of ``n_blocks`` consecutive, non-overlapping time blocks.

    Returns [n_blocks, L, 3], L = T // n_blocks frames per block (trailing frames dropped).
    """
    if n_blocks < 2:
        raise AnalysisError(f"n_blocks = {n_blocks}: block averaging needs at least 2 blocks")
    length = positions.shape[0] // n_blocks
    if length < 2:
        raise TrajectoryTooShortError(
            f"{positions.shape[0]} frames cannot make {n_blocks} blocks: use fewer blocks or a longer run"
        )
    return np.stack([msd_function(positions[b * length : (b + 1) * length]) for b in range(n_blocks)])


def _checked_msd(msd_A2: np.ndarray, n_frames: int) -> np.ndarray:
    msd = np.asarray(msd_A2, dtype=np.float64)
    if msd.shape != (n_frames, 3):
        raise AnalysisError(
            f"mean_msd_A2 has shape {msd.shape}, expected ({n_frames}, 3): pass msd_fft(positions)"
        )
    return msd


def check_fit(fit: str) -> None:
    if fit not in ("ols", "gls"):
        raise AnalysisError(f"fit = {fit!r}: use 'ols' or 'gls'")


def window_covariance(fit: str, lags: np.ndarray, first: int, last: int) -> Covariance:
    """The covariance shape a fit over lags first…last assumes: none for OLS, a Brownian walk's for GLS
    ("brownian": ``brownian_msd_covariance`` of those lags, solved in O(K) by ``fit_line``)."""
    return "brownian" if fit == "gls" else None


_FITS: tuple[Fit, Fit] = ("ols", "gls")


def _both_fits(x: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Slopes of ``curves`` [..., K, 3] over the lags ``x`` [K] by OLS and by GLS: [2, ..., 3]."""
    moved = np.moveaxis(curves, -2, 0)
    weights = [line_weights(x, "brownian" if fit == "gls" else None)[0] for fit in _FITS]
    return np.stack([np.tensordot(w, moved, axes=(0, 0)) for w in weights])


def _per_atom_slopes(
    array: np.ndarray, lags: np.ndarray, first: int, last: int, covariance: Covariance = None
) -> np.ndarray:
    """OLS slope of each atom's windowed MSD over lags first…last, [N, 3]; one chunk of atoms at a
    time, so memory stays O(chunk × T) instead of the N × last × 3 of all per-atom curves."""
    n_atoms = array.shape[1]
    slopes = np.empty((n_atoms, 3))
    step = max(1, _SINGLE_PASS_BYTES // max(1, 3 * 8 * (last + 1)) // 4)
    for start in range(0, n_atoms, step):
        curves = msd_per_atom_components_fft(array[:, start : start + step], max_lag=last)
        slopes[start : start + step], _ = fit_line(
            lags[first : last + 1], np.moveaxis(curves[:, first : last + 1, :], 1, 0), covariance
        )
    return slopes


def _per_atom_slopes_both(array: np.ndarray, lags: np.ndarray, first: int, last: int) -> np.ndarray:
    """``_per_atom_slopes`` by OLS and GLS from one FFT pass: [2, N, 3]."""
    n_atoms = array.shape[1]
    slopes = np.empty((2, n_atoms, 3))
    step = max(1, _SINGLE_PASS_BYTES // max(1, 3 * 8 * (last + 1)) // 4)
    for start in range(0, n_atoms, step):
        curves = msd_per_atom_components_fft(array[:, start : start + step], max_lag=last)
        slopes[:, start : start + step] = _both_fits(lags[first : last + 1], curves[:, first : last + 1, :])
    return slopes


def _tracer_samples_A2_per_ps(slopes: np.ndarray) -> np.ndarray:
    """[..., 4] = (D, D_x, D_y, D_z) in Å²/ps from MSD slopes [..., 3]: D = Σ slope / 6, D_α = slope_α / 2."""
    return np.concatenate([slopes.sum(axis=-1, keepdims=True) / 6.0, slopes / 2.0], axis=-1)


def tracer_diffusion(
    positions: np.ndarray,
    times_ps: np.ndarray,
    *,
    window_ps: tuple[float, float] | None = None,
    rule: WindowRule | None = None,
    uncertainty: Uncertainty = "bootstrap_atoms",
    n_bootstrap: int = 1000,
    n_blocks: int = 5,
    seed: int | np.random.Generator = 0,
    mean_msd_A2: np.ndarray | None = None,
    fit: Fit = "ols",
    bootstrap_interval: BootstrapInterval = "percentile",
) -> DiffusionResult:
    """Tracer D (cm²/s) of the atoms in ``positions`` [T, N, 3] (Å, unwrapped, drift removed).

    ``times_ps`` [T] must be equally spaced. The window is ``window_ps`` if given, otherwise chosen by
    ``rule`` on the atom-averaged MSD (of the whole trajectory, or the mean over blocks). Fit:
    OLS of MSD_α = 2 D_α t + c_α over the window, D = mean of D_α (equivalently MSD = 6 D t + c).
    ``uncertainty``: "bootstrap_atoms" (``n_bootstrap`` replicates, percentile interval, seeded
    by ``seed``) or "block_average" (``n_blocks`` time blocks, Student-t interval).
    ``mean_msd_A2``: ``msd_fft(positions)`` if the caller already has it (saves an FFT pass over a
    large trajectory).
    ``fit``: "ols" (ordinary least squares over the window, every lag weighted alike) or "gls"
    (generalised least squares with the Brownian covariance of the windowed MSD, see the module
    docstring, "Which fit"): OLS leans on the long lags, whose few independent time origins keep its
    uncertainty from shrinking as the run grows; GLS leans on the first lags of the window, so its
    interval narrows as 1/√(run length) when the MSD is straight there, and it is biased when the
    MSD still bends there. The other fit's D and the z of their difference are in every result.
    ``bootstrap_interval``: "percentile" (default) or "expanded" (better for small N, see the module
    docstring).
    """
    check_fit(fit)
    array = check_positions(positions)
    timestep = check_times(times_ps, array.shape[0])
    rule = rule or WindowRule()
    n_frames, n_atoms, _ = array.shape

    if uncertainty == "bootstrap_atoms":
        if n_atoms < 2:
            raise AnalysisError(
                "a bootstrap over atoms needs at least 2 atoms: use uncertainty='block_average' for one atom"
            )
        if n_bootstrap < 2:
            raise AnalysisError(f"n_bootstrap = {n_bootstrap}: use at least a few hundred replicates")
        lags = np.arange(n_frames) * timestep
        if array.nbytes <= _SINGLE_PASS_BYTES:
            # Small enough to keep every atom's full curve: one FFT pass instead of two.
            per_atom_full = msd_per_atom_components_fft(array)
            mean_msd = per_atom_full.mean(axis=0)
            first, last = resolve_window_indices(lags, mean_msd, window_ps, rule)
            both = _both_fits(lags[first : last + 1], per_atom_full[:, first : last + 1, :])  # [2, N, 3]
        else:
            mean_msd = msd_fft(array) if mean_msd_A2 is None else _checked_msd(mean_msd_A2, n_frames)
            first, last = resolve_window_indices(lags, mean_msd, window_ps, rule)
            both = _per_atom_slopes_both(array, lags, first, last)
        chosen = _FITS.index(fit)
        samples = _tracer_samples_A2_per_ps(both[chosen])  # [N, 4]
        other = _tracer_samples_A2_per_ps(both[1 - chosen])
        if bootstrap_interval not in ("expanded", "percentile"):
            raise AnalysisError(
                f"bootstrap_interval = {bootstrap_interval!r}: use 'expanded' or 'percentile'"
            )
        expanded = bootstrap_interval == "expanded"
        rng = np.random.default_rng(seed)
        # The other fit's D rides along in the same resamples (columns 4…7), for the GLS − OLS check.
        replicates, stderr, interval = bootstrap_mean_interval(
            np.concatenate([samples, other], axis=1), n_bootstrap, rng, expanded=expanded
        )
        stderr, interval = stderr[:4], interval[:, :4]
        value = samples.mean(axis=0)  # equals the fit of the atom-averaged MSD (the slope is linear)
        other_value = float(other[:, 0].mean())
        difference = (replicates[:, 4] - replicates[:, 0]) * (1.0 if fit == "ols" else -1.0)  # GLS − OLS
        difference_stderr = float(difference.std(ddof=1)) * (
            math.sqrt(n_atoms / (n_atoms - 1)) if expanded else 1
        )
        method = (
            f"{fit.upper()} on windowed MSD; bootstrap over {n_atoms} atoms ({n_bootstrap} resamples, "
            + (f"expanded percentile 95 %, N − 1 = {n_atoms - 1} dof)" if expanded else "percentile 95 %)")
        )
        n_samples, dof = n_bootstrap, float(n_atoms - 1) if expanded else math.inf
    elif uncertainty == "block_average":
        curves = block_msd_curves(array, n_blocks, msd_fft)  # [n_blocks, L, 3]
        mean_msd = curves.mean(axis=0)
        lags = np.arange(mean_msd.shape[0]) * timestep
        first, last = resolve_window_indices(lags, mean_msd, window_ps, rule)
        both = _tracer_samples_A2_per_ps(_both_fits(lags[first : last + 1], curves[:, first : last + 1]))
        chosen = _FITS.index(fit)
        value, stderr, interval = block_mean_interval(both[chosen])
        other_value = float(both[1 - chosen][:, 0].mean())
        difference_stderr = float(np.std(both[1][:, 0] - both[0][:, 0], ddof=1) / math.sqrt(n_blocks))
        method = f"{fit.upper()} on windowed MSD; block average over {n_blocks} time blocks (Student-t 95 %)"
        n_samples, dof = n_blocks, float(n_blocks - 1)
    else:
        raise AnalysisError(f"uncertainty = {uncertainty!r}: use 'bootstrap_atoms' or 'block_average'")

    _, intercepts = fit_line(
        lags[first : last + 1], mean_msd[first : last + 1], window_covariance(fit, lags, first, last)
    )
    scale = CM2_PER_S_PER_A2_PER_PS
    return DiffusionResult(
        diffusion_cm2_per_s=float(value[0] * scale),
        stderr_cm2_per_s=float(stderr[0] * scale),
        ci95_cm2_per_s=(float(interval[0, 0] * scale), float(interval[1, 0] * scale)),
        components_cm2_per_s=tuple(float(v * scale) for v in value[1:]),
        components_stderr_cm2_per_s=tuple(float(v * scale) for v in stderr[1:]),
        components_ci95_cm2_per_s=tuple(
            (float(interval[0, k] * scale), float(interval[1, k] * scale)) for k in (1, 2, 3)
        ),
        intercept_A2=float(intercepts.sum()),
        components_intercept_A2=tuple(float(c) for c in intercepts),
        window_ps=(float(lags[first]), float(lags[last])),
        n_lags_in_window=last - first + 1,
        timestep_ps=timestep,
        duration_ps=timestep * (n_frames - 1),
        n_atoms=n_atoms,
        n_samples=n_samples,
        dof=dof,
        method=method,
        window_rule=None if window_ps is not None else rule,
        other_fit_cm2_per_s=other_value * scale,
        fit_difference_z=_fit_difference_z(fit, float(value[0]), other_value, difference_stderr),
    )


def _fit_difference_z(fit: str, value: float, other: float, stderr: float) -> float:
    """(D_GLS − D_OLS) / its standard error; 0 when the two fits agree exactly."""
    difference = (other - value) if fit == "ols" else (value - other)
    if stderr > 0:
        return difference / stderr
    return 0.0 if difference == 0 else math.copysign(math.inf, difference)
