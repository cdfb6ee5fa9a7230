"""Tracer D from synthetic random walks with known D: recovery, interval coverage, window rule."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from superionic.analysis import (
    NoDiffusiveRegimeError,
    TrajectoryTooShortError,
    WindowRule,
    local_loglog_slope,
    msd_per_atom_components_fft,
    remove_drift,
    select_diffusive_window,
    tracer_diffusion,
    unwrap,
)
from superionic.analysis.units import CM2_PER_S_PER_A2_PER_PS

from ._coverage import assert_coverage, assert_width, width_ratio
from ._synthetic import random_walk, times

TIMESTEP_PS = 0.1
# The bootstrap's percentile interval is a large-N approximation: per-atom D estimates are skewed
# (skewness ~1.5 for one component), so its real coverage is ~93.5 % for 128 atoms and ~94.5 % for
# 256 (measured over 1000 trials). With 256 walkers a correct interval lands inside the binomial band
# of _coverage.py (89–99 of 100 trials) except with probability ~1–2 % per scenario.
N_WALKERS = 256
N_STEPS = 200
N_TRIALS = 100
N_BOOTSTRAP = 300
LI_MASS = 6.94
FRAMEWORK_MASS = 32.06
TRICLINIC = np.array([[9.0, 0.0, 0.0], [2.0, 8.5, 0.0], [-1.5, 1.0, 9.5]])


@dataclass(frozen=True)
class Scenario:
    name: str
    diffusion_A2_per_ps: tuple[float, float, float]
    prepare: Callable[[np.random.Generator, np.ndarray], np.ndarray]  # walk -> positions to analyse


def _as_given(rng: np.random.Generator, walk: np.ndarray) -> np.ndarray:
    return walk


def _drifting_system(rng: np.random.Generator, walk: np.ndarray) -> np.ndarray:
    """Walkers (Li) inside a vibrating heavy framework, the whole system drifting; drift then removed."""
    n_frames = walk.shape[0]
    framework = rng.uniform(0.0, 10.0, size=(1, 3 * N_WALKERS, 3)) + rng.normal(
        scale=0.05, size=(n_frames, 3 * N_WALKERS, 3)
    )
    system = np.concatenate([walk, framework], axis=1)
    # A steady flow plus a random wander of the whole box (a thermostat's momentum kicks).
    drift = np.linspace(0.0, 1.0, n_frames)[:, None] * np.array([6.0, -3.0, 2.0]) + np.cumsum(
        rng.normal(scale=0.05, size=(n_frames, 3)), axis=0
    )
    masses = np.concatenate([np.full(N_WALKERS, LI_MASS), np.full(3 * N_WALKERS, FRAMEWORK_MASS)])
    return remove_drift(system + drift[:, None, :], masses)[:, :N_WALKERS]


def _wrapped_cubic(rng: np.random.Generator, walk: np.ndarray) -> np.ndarray:
    box = 8.0
    return unwrap(np.mod(walk, box), [box, box, box])


def _drifting_wrapped_triclinic(rng: np.random.Generator, walk: np.ndarray) -> np.ndarray:
    fractional = _drifting_system(rng, walk) @ np.linalg.inv(TRICLINIC)
    wrapped = (fractional - np.floor(fractional)) @ TRICLINIC
    return unwrap(wrapped, TRICLINIC)


SCENARIOS = [
    Scenario("isotropic", (0.1, 0.1, 0.1), _as_given),
    Scenario("anisotropic", (0.02, 0.05, 0.2), _as_given),  # LGPS-like: fast along c
    Scenario("isotropic_drift_removed", (0.1, 0.1, 0.1), _drifting_system),
    Scenario("isotropic_wrapped_unwrapped", (0.1, 0.1, 0.1), _wrapped_cubic),
    Scenario("anisotropic_drift_wrapped_triclinic", (0.02, 0.05, 0.2), _drifting_wrapped_triclinic),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_bootstrap_interval_covers_true_D(scenario: Scenario, record_property: Callable) -> None:
    true_components = np.array(scenario.diffusion_A2_per_ps) * CM2_PER_S_PER_A2_PER_PS
    true_total = true_components.mean()
    hits_total = 0
    hits_components = np.zeros(3, dtype=int)
    estimates, lows, highs = [], [], []
    component_estimates, component_lows, component_highs = [], [], []
    for trial in range(N_TRIALS):
        # Each scenario draws its own walks, so the five coverages are independent measurements.
        rng = np.random.default_rng([2024, SCENARIOS.index(scenario), trial])
        walk = random_walk(rng, N_WALKERS, N_STEPS, TIMESTEP_PS, scenario.diffusion_A2_per_ps)
        result = tracer_diffusion(
            scenario.prepare(rng, walk), times(N_STEPS + 1, TIMESTEP_PS), n_bootstrap=N_BOOTSTRAP, seed=trial
        )
        low, high = result.ci95_cm2_per_s
        hits_total += low <= true_total <= high
        estimates.append(result.diffusion_cm2_per_s)
        lows.append(low)
        highs.append(high)
        for axis, (lo, hi) in enumerate(result.components_ci95_cm2_per_s):
            hits_components[axis] += lo <= true_components[axis] <= hi
        component_estimates.append(result.components_cm2_per_s)
        component_lows.append([lo for lo, _ in result.components_ci95_cm2_per_s])
        component_highs.append([hi for _, hi in result.components_ci95_cm2_per_s])
    estimates = np.array(estimates)
    coverage = hits_total / N_TRIALS
    component_coverage = hits_components / N_TRIALS
    ratio = width_ratio(np.array(lows), np.array(highs), estimates)
    component_ratios = [
        width_ratio(
            np.array(component_lows)[:, a],
            np.array(component_highs)[:, a],
            np.array(component_estimates)[:, a],
        )
        for a in range(3)
    ]
    record_property("coverage_total", coverage)
    record_property("coverage_components", component_coverage.tolist())
    record_property("width_ratio", ratio)
    print(
        f"\n[coverage] {scenario.name}: D in 95 % CI {coverage:.0%}, "
        f"components {component_coverage.tolist()}, width/true spread {ratio:.2f} "
        f"(components {np.round(component_ratios, 2).tolist()}), "
        f"mean relative error {np.mean(estimates / true_total - 1.0):+.3%}"
    )
    assert_coverage(hits_total, N_TRIALS, f"{scenario.name}: D")
    # Components pooled (300 checks, independent Gaussian axes): one component alone scatters more.
    assert_coverage(int(hits_components.sum()), 3 * N_TRIALS, f"{scenario.name}: D components")
    assert_width(np.array(lows), np.array(highs), estimates, f"{scenario.name}: D")
    for a in range(3):
        assert_width(
            np.array(component_lows)[:, a],
            np.array(component_highs)[:, a],
            np.array(component_estimates)[:, a],
            f"{scenario.name}: D component {a}",
        )
    # The estimator is unbiased: the mean error over trials is within ~3 standard errors of the mean.
    relative_errors = estimates / true_total - 1.0
    assert abs(np.mean(relative_errors)) < 3 * np.std(relative_errors) / np.sqrt(N_TRIALS)


def test_drift_that_is_not_removed_inflates_D() -> None:
    rng = np.random.default_rng(11)
    walk = random_walk(rng, 32, 300, TIMESTEP_PS, 0.1) + np.linspace(0, 10.0, 301)[:, None, None]
    biased = tracer_diffusion(walk, times(301, TIMESTEP_PS), window_ps=(1.0, 10.0), n_bootstrap=100)
    # 10 Å in 30 ps along each axis (v = 1/3 Å/ps) adds v²t² to each MSD component: its OLS slope over
    # 1–10 ps is v² · 11 ps ≈ 1.2 Å²/ps against 2D = 0.2 Å²/ps, so the fitted D is ~7× the truth;
    # even the interval's lower end must sit above twice it.
    assert biased.ci95_cm2_per_s[0] > 2 * 0.1 * CM2_PER_S_PER_A2_PER_PS


def test_result_fields_units_and_determinism() -> None:
    walk = random_walk(np.random.default_rng(12), 40, 300, TIMESTEP_PS, (0.05, 0.1, 0.15))
    first = tracer_diffusion(walk, times(301, TIMESTEP_PS) + 50.0, n_bootstrap=200, seed=3)
    again = tracer_diffusion(walk, times(301, TIMESTEP_PS) + 50.0, n_bootstrap=200, seed=3)
    assert first == again
    assert first.n_atoms == 40 and first.n_samples == 200 and first.window_rule == WindowRule()
    assert first.window_ps == pytest.approx((0.1, 10.0))  # a pure random walk is diffusive from lag 1 to T/3
    assert first.duration_ps == pytest.approx(30.0) and first.timestep_ps == pytest.approx(0.1)
    # D is the mean of its components by definition: float64 round-off only.
    assert first.diffusion_cm2_per_s == pytest.approx(np.mean(first.components_cm2_per_s), rel=1e-12)
    assert first.diffusion_A2_per_ps == pytest.approx(first.diffusion_cm2_per_s * 1e4)
    assert first.ci95_cm2_per_s[0] < first.diffusion_cm2_per_s < first.ci95_cm2_per_s[1]
    assert "D = " in first.summary() and first.to_dict()["n_atoms"] == 40


def test_explicit_window_and_block_average() -> None:
    walk = random_walk(np.random.default_rng(13), 16, 3000, TIMESTEP_PS, 0.1)
    explicit = tracer_diffusion(walk, times(3001, TIMESTEP_PS), window_ps=(1.0, 20.0), n_bootstrap=200)
    assert explicit.window_ps == pytest.approx((1.0, 20.0)) and explicit.window_rule is None
    blocks = tracer_diffusion(walk, times(3001, TIMESTEP_PS), uncertainty="block_average", n_blocks=6)
    assert blocks.n_samples == 6 and "block average" in blocks.method
    for result in (explicit, blocks):
        # One seeded draw: within 4 of its own standard errors (false alarm ~6e-5 for a normal estimate).
        assert abs(result.diffusion_cm2_per_s - 1e-5) < 4 * result.stderr_cm2_per_s


def _langevin_msd(lag_ps: np.ndarray, tau_ps: float) -> np.ndarray:
    """Ornstein–Uhlenbeck velocity (Langevin) MSD: ballistic (slope 2) below τ, diffusive above."""
    return 6 * 0.1 * (lag_ps - tau_ps * (1 - np.exp(-lag_ps / tau_ps)))


def test_window_rule_skips_the_ballistic_regime() -> None:
    lags = np.arange(3001) * 0.01
    start, end = select_diffusive_window(lags, _langevin_msd(lags, tau_ps=0.5))
    assert end == pytest.approx(10.0)
    beta = local_loglog_slope(lags, _langevin_msd(lags, tau_ps=0.5))
    index = round(start / 0.01)
    assert abs(beta[index] - 1) <= 0.1 and (np.abs(beta[1:index] - 1) > 0.1).all()
    assert 5 * 0.5 < start < 12 * 0.5


def test_window_rule_is_not_fooled_by_the_ballistic_to_cage_crossing() -> None:
    lags = np.arange(30001) * 0.01
    # Ballistic rise (slope 2) into a cage plateau (slope → 0), then diffusion: the slope passes
    # through 1 on the way down at ~0.1 ps, which must not start the window.
    msd = 1.5 * (1 - np.exp(-((lags / 0.1) ** 2))) + 0.6 * lags
    beta = local_loglog_slope(lags, msd)
    crossing = int(np.flatnonzero(np.abs(beta[1:] - 1) <= 0.1)[0]) + 1
    start, _ = select_diffusive_window(lags, msd)
    assert lags[crossing] < 0.2 and start > 10.0
    assert (np.abs(beta[round(start / 0.01) : 5000] - 1) <= 0.1).all()


def test_window_rule_errors_name_the_fix() -> None:
    lags = np.arange(301) * 0.1
    with pytest.raises(NoDiffusiveRegimeError, match="run longer"):
        select_diffusive_window(lags, 6 * np.sqrt(lags))  # subdiffusive everywhere
    with pytest.raises(TrajectoryTooShortError, match="run longer"):
        select_diffusive_window(lags[:25], 0.6 * lags[:25])
    assert select_diffusive_window(lags[:25], 0.6 * lags[:25], WindowRule(min_points=5)) == pytest.approx(
        (0.1, 0.8)
    )


@pytest.mark.slow  # 400 analyses of 128 walkers: ~30 s of CPU
def test_gls_interval_shrinks_with_run_length_where_ols_does_not() -> None:
    """An OLS fit up to a fixed fraction of the run leans on its longest lags, which have few
    independent time origins at any run length: its D scatters as much after 80 ps as after 20.
    GLS with the Brownian MSD covariance weights the better-sampled short lags and narrows as
    1/√T (a factor 2 for 4× the run). The window starts at 1 ps, as a cage exit would make it."""
    timestep, diffusion, n_walkers, n_trials = 0.05, 0.01, 128, 100
    spread: dict[tuple[str, int], float] = {}
    for n_frames in (400, 1600):
        window = (1.0, (n_frames - 1) * timestep / 3)
        found = {fit: ([], [], []) for fit in ("ols", "gls")}
        rng = np.random.default_rng(2024 + n_frames)
        for trial in range(n_trials):
            walk = random_walk(rng, n_walkers, n_frames - 1, timestep, diffusion)
            for fit, (estimates, lows, highs) in found.items():
                result = tracer_diffusion(
                    walk, times(n_frames, timestep), window_ps=window, n_bootstrap=200, seed=trial, fit=fit
                )
                estimates.append(result.diffusion_A2_per_ps)
                low, high = result.ci95_cm2_per_s
                lows.append(low / CM2_PER_S_PER_A2_PER_PS)
                highs.append(high / CM2_PER_S_PER_A2_PER_PS)
        for fit, (estimates, lows, highs) in found.items():
            values = np.array(estimates)
            spread[fit, n_frames] = float(values.std(ddof=1)) / diffusion
            # Unbiased to 3 standard errors of the mean over trials.
            assert abs(values.mean() - diffusion) < 3 * values.std(ddof=1) / np.sqrt(n_trials), fit
            if fit == "gls":
                hits = int(np.sum((np.array(lows) <= diffusion) & (diffusion <= np.array(highs))))
                assert_coverage(hits, n_trials, f"GLS D, {n_frames} frames")
                assert_width(np.array(lows), np.array(highs), values, f"GLS D, {n_frames} frames")
    print(f"\n[gls] relative spread of D over {n_trials} runs: {spread}")
    # Measured (seeded): OLS 0.042 → 0.042, GLS 0.022 → 0.013. The bounds leave room for the ±10 %
    # uncertainty of a standard deviation from 100 trials.
    assert spread["ols", 400] / spread["ols", 1600] < 1.35
    assert spread["gls", 400] / spread["gls", 1600] > 1.6
    assert spread["gls", 400] < 0.7 * spread["ols", 400]


def test_line_weights_gls_is_exact_on_a_line_and_ols_without_covariance() -> None:
    from superionic.analysis.statistics import brownian_msd_covariance, fit_line, line_weights

    x = np.linspace(0.5, 20.0, 300)
    slope, intercept = fit_line(x, 0.7 + 0.06 * x, brownian_msd_covariance(x))
    assert slope == pytest.approx(0.06, rel=1e-9) and intercept == pytest.approx(0.7, rel=1e-9)
    # With Σ = identity, GLS is OLS.
    gls = line_weights(x, np.eye(x.shape[0]))
    ols = line_weights(x)
    np.testing.assert_allclose(gls[0], ols[0], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(gls[1], ols[1], rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize(
    "lags",
    [np.arange(3, 30) * 0.05, np.array([0.3, 0.5, 1.0, 2.2, 2.3, 5.0]), np.linspace(1.0, 7.0, 40)],
    ids=["uniform", "uneven", "window"],
)
def test_brownian_line_weights_equal_a_50_digit_gls(lags: np.ndarray) -> None:
    """The O(K) Kalman-filter GLS against (Xᵀ Σ⁻¹ X)⁻¹ Xᵀ Σ⁻¹ in 50-digit arithmetic (mpmath), with
    Σ_ij = min² (3 max − min): the float64 filter is exact to round-off (~1e-15 measured), where
    the dense Cholesky solve of the same ill-conditioned Σ loses ~8 digits."""
    import mpmath

    from superionic.analysis.statistics import brownian_line_weights, line_weights

    mpmath.mp.dps = 50
    n = lags.shape[0]
    t = [mpmath.mpf(float(v)) for v in lags]
    sigma = mpmath.matrix(n, n)
    for i in range(n):
        for j in range(n):
            short, long = min(t[i], t[j]), max(t[i], t[j])
            sigma[i, j] = short**2 * (3 * long - short)
    design = mpmath.matrix([[t[i], 1] for i in range(n)])
    inverse = sigma**-1
    exact = (design.T * inverse * design) ** -1 * design.T * inverse
    reference = np.array([[float(exact[r, c]) for c in range(n)] for r in range(2)])
    slope, intercept = brownian_line_weights(lags)
    np.testing.assert_allclose(slope, reference[0], rtol=0, atol=1e-12 * np.abs(reference[0]).max())
    np.testing.assert_allclose(intercept, reference[1], rtol=0, atol=1e-12 * np.abs(reference[1]).max())
    np.testing.assert_array_equal(line_weights(lags, "brownian")[0], slope)


def test_gls_of_a_long_run_is_fast_and_equals_the_dense_solve() -> None:
    from superionic.analysis.statistics import brownian_msd_covariance, fit_line

    walk = random_walk(np.random.default_rng(21), 8, 1200, 0.05, 0.5)
    result = tracer_diffusion(walk, times(1201, 0.05), fit="gls", window_ps=(1.0, 20.0), n_bootstrap=50)
    lags = np.arange(1201) * 0.05
    per_atom = msd_per_atom_components_fft(walk)[:, 20:401, :]
    dense, _ = fit_line(lags[20:401], np.moveaxis(per_atom, 1, 0), brownian_msd_covariance(lags[20:401]))
    # The dense solve (jitter 1e-12 on an ill-conditioned Σ) is good to ~1e-6 relative here.
    assert result.diffusion_A2_per_ps == pytest.approx(dense.sum(axis=1).mean() / 6, rel=1e-5)
    # 1 ns at 50 fs frames: ~6700 lags in the window. The dense K × K solve took ~60 s; the filter ~0.1 s.
    import time

    began = time.perf_counter()
    slope, _ = fit_line(np.arange(20, 6667) * 0.05, np.arange(20, 6667) * 0.05 * 3.0 + 1.0, "brownian")
    assert time.perf_counter() - began < 5.0
    assert float(slope) == pytest.approx(3.0, rel=1e-9)


def test_expanded_interval_covers_with_20_atoms(record_property: Callable) -> None:
    """20 walkers (a 50-atom LGPS cell's Li) over 20 ps at 50 fs, 200 seeded trials. The plain
    percentile interval covers 89.5 % here (the bench's gaussian:20:20 row); the expanded one must
    cover at 95 % (binomial band 182–197 of 200) and be wider by the factor its percentiles imply for
    a near-normal bootstrap distribution, √(20/19) · t₁₉ / 1.96 = 1.0956 (per trial ±2 %: the
    replicate quantiles at 1.6 % and 2.5 % of 1000 resamples differ in their tails' noise)."""
    from scipy import special, stats

    from superionic.analysis.statistics import expanded_percentile

    factor = math.sqrt(20 / 19) * stats.t.ppf(0.975, 19) / 1.959964
    assert expanded_percentile(20) == pytest.approx(100 * special.ndtr(-factor * 1.959964), rel=1e-12)
    assert factor == pytest.approx(1.0956, abs=1e-4)
    hits, ratios = 0, []
    for trial in range(200):
        walk = random_walk(np.random.default_rng([77, trial]), 20, 400, 0.05, 0.5)
        expanded = tracer_diffusion(walk, times(401, 0.05), seed=trial, bootstrap_interval="expanded")
        plain = tracer_diffusion(walk, times(401, 0.05), seed=trial)
        low, high = expanded.ci95_cm2_per_s
        hits += low <= 0.5 * CM2_PER_S_PER_A2_PER_PS <= high
        ratios.append((high - low) / (plain.ci95_cm2_per_s[1] - plain.ci95_cm2_per_s[0]))
        assert expanded.dof == 19 and math.isinf(plain.dof)
        assert expanded.stderr_cm2_per_s == pytest.approx(plain.stderr_cm2_per_s * math.sqrt(20 / 19))
    record_property("coverage_expanded_20_atoms", hits / 200)
    print(
        f"\n[coverage] 20 walkers, expanded percentile: {hits / 200:.1%}, width ratio {np.mean(ratios):.3f}"
    )
    assert_coverage(hits, 200, "expanded percentile interval, 20 atoms")
    assert float(np.mean(ratios)) == pytest.approx(factor, rel=0.02)


def _caged_walk(rng: np.random.Generator, n_atoms: int, n_frames: int) -> np.ndarray:
    """A Gaussian walk (D = 0.5 Å²/ps) plus a bounded Ornstein–Uhlenbeck excursion (rms 0.8 Å per
    component, relaxation 2 ps): MSD = 6 D t + 6 · 0.64 (1 − e^(−t/2)), still bending at 0.5 ps, where
    its local slope is 6 D + 1.92 e^(−0.25) ≈ 1.5 × 6 D."""
    walk = random_walk(rng, n_atoms, n_frames - 1, 0.05, 0.5)
    keep = math.exp(-0.05 / 2.0)
    excursion = np.empty_like(walk)
    excursion[0] = rng.normal(scale=0.8, size=(n_atoms, 3))
    kicks = rng.normal(scale=0.8 * math.sqrt(1 - keep**2), size=walk.shape)
    for k in range(1, n_frames):
        excursion[k] = keep * excursion[k - 1] + kicks[k]
    return walk + excursion


def test_fit_difference_flags_an_msd_that_still_bends_in_the_window() -> None:
    """GLS weights the window's first lags and OLS its last: on a straight MSD their difference is
    noise (|z| > 1.96 in 5 % of trials: band 1–10 of 100), on one that still bends at the window's
    start GLS is higher by far more than its error (z > 3 in every one of 20 trials of 200 atoms)."""
    straight = 0
    for trial in range(100):
        walk = random_walk(np.random.default_rng([78, trial]), 64, 400, 0.05, 0.5)
        result = tracer_diffusion(walk, times(401, 0.05), seed=trial, n_bootstrap=400)
        straight += abs(result.fit_difference_z) > 1.959964
        assert np.isfinite(result.other_fit_cm2_per_s)
    assert 1 <= straight <= 10, straight
    for trial in range(20):
        positions = _caged_walk(np.random.default_rng([79, trial]), 200, 801)
        bent = tracer_diffusion(
            positions, times(801, 0.05), window_ps=(0.5, 13.3), seed=trial, n_bootstrap=400
        )
        assert bent.fit_difference_z > 3, bent.fit_difference_z
        assert bent.other_fit_cm2_per_s > bent.diffusion_cm2_per_s
        blocks = tracer_diffusion(
            positions, times(801, 0.05), window_ps=(0.5, 2.6), uncertainty="block_average"
        )
        assert blocks.fit_difference_z > 0


def test_unknown_fit_is_refused() -> None:
    walk = random_walk(np.random.default_rng(3), 8, 100, TIMESTEP_PS, 0.1)
    from superionic.analysis.errors import AnalysisError

    with pytest.raises(AnalysisError, match="fit = 'wls': use 'ols' or 'gls'"):
        tracer_diffusion(walk, times(101, TIMESTEP_PS), fit="wls")  # type: ignore[arg-type]
