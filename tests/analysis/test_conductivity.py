"""Charge MSD, collective σ with block averaging, Nernst–Einstein and the Haven ratio."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import constants

from superionic.analysis import (
    AnalysisError,
    DiffusionResult,
    collective_msd_fft,
    haven_ratio,
    ionic_conductivity,
    nernst_einstein_conductivity,
    nernst_einstein_conductivity_S_per_cm,
    tracer_diffusion,
)
from superionic.analysis.units import (
    BOLTZMANN_EV_PER_K,
    conductivity_S_per_cm_from_charge_msd_slope,
    nernst_einstein_factor_S_s_per_cm3,
)

from ._coverage import assert_coverage, assert_width, width_ratio
from ._synthetic import random_walk, times

TIMESTEP_PS = 0.1
D_A2_PER_PS = 0.1
VOLUME_A3 = 2000.0
TEMPERATURE_K = 600.0


def test_charge_msd_of_independent_walkers_matches_sum_q2_6Dt() -> None:
    # E[windowed ⟨|Σ q_i Δr_i(t)|²⟩] = Σ q_i² · 2 D t per component for independent walkers, at every lag.
    charges = np.array([1.0, 1.0, 1.0, -2.0, 0.5, 3.0])
    n_realisations, n_steps = 400, 200
    curves = np.stack(
        [
            collective_msd_fft(
                random_walk(np.random.default_rng([7, r]), 6, n_steps, TIMESTEP_PS, D_A2_PER_PS), charges
            )
            for r in range(n_realisations)
        ]
    ).sum(axis=2)  # [R, T] total over components
    lags = np.arange(n_steps + 1) * TIMESTEP_PS
    expected = np.sum(charges**2) * 6 * D_A2_PER_PS * lags
    for lag in (1, 10, 30, 66):
        mean = curves[:, lag].mean()
        sem = curves[:, lag].std(ddof=1) / np.sqrt(n_realisations)
        # The realisations are i.i.d., so the mean is normal to a good approximation (CLT, R = 400):
        # 4 standard errors leave a false-alarm rate ~1e-4 per lag.
        assert abs(mean - expected[lag]) < 4 * sem, (lag, mean, expected[lag], sem)
        assert sem < 0.1 * expected[lag]  # and the check is tight: 4 sem is < 40 % of the value


def test_nernst_einstein_factor_matches_faraday_form() -> None:
    # σ = z² F² c D / (R T), c in mol/m³: an independent route through F and R (CODATA).
    n_ions, volume, temperature, charge, diffusion = 20, 870.0, 500.0, 1.0, 3e-6
    concentration = n_ions / (volume * 1e-30) / constants.Avogadro
    faraday = charge**2 * constants.physical_constants["Faraday constant"][0] ** 2
    expected_S_per_m = faraday * concentration * diffusion * 1e-4 / (constants.R * temperature)
    value = nernst_einstein_conductivity_S_per_cm(diffusion, n_ions, volume, temperature, charge)
    # Two routes through exact SI constants (CODATA 2018: e, k_B, N_A exact): round-off only; 1e-9
    # also admits a library that carries k_B in eV/K to its 10 printed digits.
    assert value == pytest.approx(expected_S_per_m / 100, rel=1e-9)
    # By hand: 20 / 870e-30 m⁻³ · (1.602176634e-19 C)² · 3e-10 m²/s / (1.380649e-23 J/K · 500 K) = 25.64 S/m.
    assert value == pytest.approx(0.2564481, rel=1e-6)  # the 7 digits worked by hand
    assert BOLTZMANN_EV_PER_K == pytest.approx(8.617333262e-5, rel=1e-9)


def test_collective_formula_equals_nernst_einstein_for_uncorrelated_ions() -> None:
    # If the charge MSD slope is exactly N q² · 6 D (no cross terms) both routes must agree.
    n_ions, charge = 24, 2.0
    slope = n_ions * charge**2 * 6 * D_A2_PER_PS
    # The same algebra by two routes: float64 round-off (1e-12) only.
    collective = conductivity_S_per_cm_from_charge_msd_slope(slope, VOLUME_A3, TEMPERATURE_K)
    per_axis = conductivity_S_per_cm_from_charge_msd_slope(slope / 3, VOLUME_A3, TEMPERATURE_K, dimensions=1)
    ne = nernst_einstein_conductivity_S_per_cm(D_A2_PER_PS * 1e-4, n_ions, VOLUME_A3, TEMPERATURE_K, charge)
    assert collective == pytest.approx(ne, rel=1e-12)
    assert per_axis == pytest.approx(ne, rel=1e-12)


def test_block_interval_covers_true_conductivity(record_property: Callable) -> None:
    n_ions, n_steps, n_trials, n_blocks = 16, 2000, 100, 10
    true = nernst_einstein_conductivity_S_per_cm(D_A2_PER_PS * 1e-4, n_ions, VOLUME_A3, TEMPERATURE_K)
    hits = 0
    estimates, lows, highs = [], [], []
    for trial in range(n_trials):
        walk = random_walk(np.random.default_rng([99, trial]), n_ions, n_steps, TIMESTEP_PS, D_A2_PER_PS)
        result = ionic_conductivity(
            walk, 1.0, times(n_steps + 1, TIMESTEP_PS), VOLUME_A3, TEMPERATURE_K, n_blocks=n_blocks
        )
        hits += result.ci95_S_per_cm[0] <= true <= result.ci95_S_per_cm[1]
        estimates.append(result.conductivity_S_per_cm)
        lows.append(result.ci95_S_per_cm[0])
        highs.append(result.ci95_S_per_cm[1])
        assert result.dof == n_blocks - 1
    coverage = hits / n_trials
    # Student t over the blocks (ν = 9): a correct interval is 2 · t₉ · c4(9) = 4.40 σ wide on average.
    ratio = width_ratio(np.array(lows), np.array(highs), np.array(estimates), n_blocks - 1)
    record_property("coverage_conductivity", coverage)
    print(f"\n[coverage] collective σ, 10 blocks: σ in 95 % CI {coverage:.0%}, width/true spread {ratio:.2f}")
    assert_coverage(hits, n_trials, "collective σ")
    assert_width(np.array(lows), np.array(highs), np.array(estimates), "collective σ", n_blocks - 1)


def test_haven_ratio_of_independent_walkers_is_one(record_property: Callable) -> None:
    # 10 blocks of 10 ps: the single-curve charge MSD is too noisy for the automatic window in so
    # short a block, so both fits use the same explicit window, as the docstring advises.
    n_ions, n_steps, n_trials, window = 32, 1000, 100, (0.1, 3.0)
    hits = 0
    estimates, lows, highs, dofs = [], [], [], []
    for trial in range(n_trials):
        walk = random_walk(np.random.default_rng([55, trial]), n_ions, n_steps, TIMESTEP_PS, D_A2_PER_PS)
        t = times(n_steps + 1, TIMESTEP_PS)
        tracer = tracer_diffusion(walk, t, window_ps=window, n_bootstrap=200, seed=trial)
        sigma = ionic_conductivity(walk, 1.0, t, VOLUME_A3, TEMPERATURE_K, window_ps=window, n_blocks=10)
        result = haven_ratio(tracer, sigma, n_ions)
        hits += result.ci95[0] <= 1.0 <= result.ci95[1]
        # The interval is symmetric in ln H_R: compared there.
        estimates.append(np.log(result.haven_ratio))
        lows.append(np.log(result.ci95[0]))
        highs.append(np.log(result.ci95[1]))
        dofs.append(result.dof)
    coverage = hits / n_trials
    # The σ block error dominates, so the degrees of freedom are near 9 (Welch–Satterthwaite).
    dof = float(np.median(dofs))
    ratio = width_ratio(np.array(lows), np.array(highs), np.array(estimates), dof)
    record_property("coverage_haven", coverage)
    print(
        f"\n[coverage] Haven ratio: H_R = 1 in 95 % CI {coverage:.0%}, ν ≈ {dof:.1f}, "
        f"width/true spread {ratio:.2f}"
    )
    assert_coverage(hits, n_trials, "Haven ratio")
    assert_width(np.array(lows), np.array(highs), np.array(estimates), "ln Haven ratio", dof)


def _fake_diffusion(value: float, stderr: float) -> DiffusionResult:
    return DiffusionResult(
        diffusion_cm2_per_s=value,
        stderr_cm2_per_s=stderr,
        ci95_cm2_per_s=(value - 2 * stderr, value + 2 * stderr),
        components_cm2_per_s=(value, value, value),
        components_stderr_cm2_per_s=(stderr, stderr, stderr),
        components_ci95_cm2_per_s=((value - 2 * stderr, value + 2 * stderr),) * 3,
        intercept_A2=0.0,
        components_intercept_A2=(0.0, 0.0, 0.0),
        window_ps=(1.0, 10.0),
        n_lags_in_window=91,
        timestep_ps=0.1,
        duration_ps=30.0,
        n_atoms=10,
        n_samples=100,
        dof=math.inf,
        method="test",
        window_rule=None,
    )


def test_nernst_einstein_and_haven_propagate_errors() -> None:
    tracer = _fake_diffusion(2e-5, 2e-6)  # 10 % relative error
    factor = nernst_einstein_factor_S_s_per_cm3(10, VOLUME_A3, TEMPERATURE_K)
    ne = nernst_einstein_conductivity(tracer, 10, VOLUME_A3, TEMPERATURE_K)
    assert ne.conductivity_S_per_cm == pytest.approx(factor * 2e-5)
    assert ne.stderr_S_per_cm == pytest.approx(factor * 2e-6)
    assert ne.ci95_S_per_cm == pytest.approx((factor * 1.6e-5, factor * 2.4e-5))
    assert ne.conductivity_mS_per_cm == pytest.approx(1e3 * ne.conductivity_S_per_cm)
    # A collective σ twice σ_NE with 5 % error: D_σ = 2 D, H_R = 0.5 ± 0.5 · √(0.1² + 0.05²).
    collective = ne.__class__(
        **{
            **ne.to_dict(),
            "conductivity_S_per_cm": 2 * ne.conductivity_S_per_cm,
            "stderr_S_per_cm": 0.1 * ne.conductivity_S_per_cm,
        }
    )
    result = haven_ratio(tracer, collective, 10)
    assert result.haven_ratio == pytest.approx(0.5)
    assert result.stderr == pytest.approx(0.5 * np.hypot(0.1, 0.05))
    assert result.charge_diffusion_cm2_per_s == pytest.approx(4e-5)
    assert result.dof == math.inf  # both inputs are bootstrap-like (ν = ∞): normal quantile
    assert result.ci95 == pytest.approx(
        tuple(0.5 * np.exp(s * 1.959964 * np.hypot(0.1, 0.05)) for s in (-1, 1))
    )
    # A block-averaged σ (5 blocks, ν = 4) dominating the error widens the interval to Student t.
    blocked = collective.__class__(**{**collective.to_dict(), "dof": 4.0})
    assert haven_ratio(tracer, blocked, 10).ci95[1] > result.ci95[1]
    with pytest.raises(AnalysisError, match="positive"):
        haven_ratio(tracer, ne.__class__(**{**ne.to_dict(), "conductivity_S_per_cm": -1.0}), 10)


def test_conductivity_components_of_an_anisotropic_conductor() -> None:
    # D_zz / D_xx = 15 (LGPS-like: fast along c), so σ_zz / σ_xx = 15 for independent ions.
    # 4000 ps, fitted to 5 ps: over 20 seeds the ratio scattered by 5.8 % (one standard deviation),
    # so ±20 % is ~3.4 σ; a factor-2 error in either component, or swapped axes, fails it.
    n_ions, n_steps, diffusion = 32, 40_000, (0.02, 0.02, 0.3)
    walk = random_walk(np.random.default_rng(8), n_ions, n_steps, TIMESTEP_PS, diffusion)
    result = ionic_conductivity(
        walk, 1.0, times(n_steps + 1, TIMESTEP_PS), VOLUME_A3, TEMPERATURE_K, window_ps=(0.5, 5.0)
    )
    sigma_xx, sigma_yy, sigma_zz = result.components_S_per_cm
    assert sigma_zz / sigma_xx == pytest.approx(15.0, rel=0.2)
    assert sigma_zz / sigma_yy == pytest.approx(15.0, rel=0.2)
    # Each component against its own Nernst–Einstein value (no cross terms for independent walkers):
    # one component's slope scatters by ~4 %, so ±20 % is ~5 σ.
    for axis, sigma in enumerate(result.components_S_per_cm):
        truth = nernst_einstein_conductivity_S_per_cm(
            diffusion[axis] * 1e-4, n_ions, VOLUME_A3, TEMPERATURE_K
        )
        assert sigma == pytest.approx(truth, rel=0.2), axis
    # The mean of three components is their sum / 3 exactly (float64 round-off).
    assert result.conductivity_S_per_cm == pytest.approx(np.mean(result.components_S_per_cm), rel=1e-12)
    assert result.window_ps == pytest.approx((0.5, 5.0))
