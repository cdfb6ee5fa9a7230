"""Arrhenius fits: exact recovery, interval coverage for Ea and D(300 K), the σT convention."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from superionic.analysis import fit_arrhenius
from superionic.analysis.units import BOLTZMANN_EV_PER_K

from ._coverage import assert_coverage, assert_width, width_ratio

TEMPERATURES_K = np.array([500.0, 600.0, 700.0, 800.0, 900.0])
EA_EV = 0.25
D0_CM2_PER_S = 1e-3
RELATIVE_NOISE = 0.10
N_TRIALS = 200


def _arrhenius(
    temperatures: np.ndarray, prefactor: float = D0_CM2_PER_S, energy: float = EA_EV
) -> np.ndarray:
    return prefactor * np.exp(-energy / (BOLTZMANN_EV_PER_K * temperatures))


def test_exact_data_recover_the_parameters() -> None:
    # Exact Arrhenius data: a 5-point linear fit in float64 recovers them to ~1e-14; 1e-10 is margin.
    result = fit_arrhenius(TEMPERATURES_K, _arrhenius(TEMPERATURES_K), 0.05 * _arrhenius(TEMPERATURES_K))
    assert result.activation_energy_eV == pytest.approx(EA_EV, rel=1e-10)
    assert result.prefactor == pytest.approx(D0_CM2_PER_S, rel=1e-10)
    assert result.chi2 == pytest.approx(0.0, abs=1e-16) and result.dof == 3
    room = result.extrapolate(300.0)
    assert room.value == pytest.approx(_arrhenius(np.array(300.0)), rel=1e-10)
    assert room.ci95[0] < room.value < room.ci95[1] and room.units == "cm2/s"
    low, high = result.activation_energy_ci95_eV
    assert low < EA_EV < high and high - low == pytest.approx(
        2 * 1.959964 * result.activation_energy_stderr_eV, rel=1e-6
    )


def test_conductivity_convention_fits_sigma_times_T() -> None:
    # σ T = A exp(−Ea / k_B T): σ itself carries an extra 1/T.
    sigma = 50.0 / TEMPERATURES_K * np.exp(-EA_EV / (BOLTZMANN_EV_PER_K * TEMPERATURES_K))
    result = fit_arrhenius(TEMPERATURES_K, sigma, 0.1 * sigma, quantity="conductivity")
    assert result.activation_energy_eV == pytest.approx(EA_EV, rel=1e-10)
    assert result.prefactor == pytest.approx(50.0, rel=1e-10) and result.prefactor_units == "S K/cm"
    room = result.extrapolate(300.0)
    assert room.value == pytest.approx(
        50.0 / 300.0 * np.exp(-EA_EV / (BOLTZMANN_EV_PER_K * 300.0)), rel=1e-10
    )
    assert room.units == "S/cm" and "σT" in result.method
    # Fitting σ as if it were D would find a smaller barrier, by ~k_B T̄ ≈ 0.06 eV at T̄ = 700 K:
    # the convention matters; 0.04 eV is two thirds of that shift.
    assert fit_arrhenius(TEMPERATURES_K, sigma, 0.1 * sigma).activation_energy_eV < EA_EV - 0.04


@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "unweighted"])
def test_interval_covers_true_Ea_and_room_temperature_D(weighted: bool, record_property: Callable) -> None:
    truth_300 = float(_arrhenius(np.array(300.0)))
    hits_ea = hits_300 = 0
    ea, ea_low, ea_high, ln300, ln300_low, ln300_high = ([] for _ in range(6))
    for trial in range(N_TRIALS):
        rng = np.random.default_rng([31, trial])
        # Log-normal noise of 10 %: each D carries a standard error of 10 % of itself, as an MD D would.
        observed = _arrhenius(TEMPERATURES_K) * np.exp(
            rng.normal(scale=RELATIVE_NOISE, size=TEMPERATURES_K.size)
        )
        result = fit_arrhenius(TEMPERATURES_K, observed, RELATIVE_NOISE * observed if weighted else None)
        low, high = result.activation_energy_ci95_eV
        hits_ea += low <= EA_EV <= high
        room = result.extrapolate(300.0)
        hits_300 += room.ci95[0] <= truth_300 <= room.ci95[1]
        ea.append(result.activation_energy_eV)
        ea_low.append(low)
        ea_high.append(high)
        # D(300 K)'s interval is symmetric in ln D: its width is compared there.
        ln300.append(np.log(room.value))
        ln300_low.append(np.log(room.ci95[0]))
        ln300_high.append(np.log(room.ci95[1]))
    # Weighted: the errors are given (normal quantile; the PDG χ² scale only widens it when χ²/ν > 1,
    # which a correct error model does half the time: mean widening ~10 %). Unweighted: the error is
    # estimated from the 5 − 2 = 3 residual degrees of freedom (Student t, ν = 3).
    dof = math.inf if weighted else TEMPERATURES_K.size - 2
    ratio_ea = width_ratio(np.array(ea_low), np.array(ea_high), np.array(ea), dof)
    ratio_300 = width_ratio(np.array(ln300_low), np.array(ln300_high), np.array(ln300), dof)
    coverage_ea, coverage_300 = hits_ea / N_TRIALS, hits_300 / N_TRIALS
    record_property("coverage_ea", coverage_ea)
    record_property("coverage_D300", coverage_300)
    label = "weighted" if weighted else "unweighted"
    print(
        f"\n[coverage] Arrhenius {label}: Ea in 95 % CI {coverage_ea:.0%} (width/true spread "
        f"{ratio_ea:.2f}), D(300 K) in 95 % CI {coverage_300:.0%} (width/true spread {ratio_300:.2f})"
    )
    assert_coverage(hits_ea, N_TRIALS, f"Arrhenius {label}: Ea")
    assert_coverage(hits_300, N_TRIALS, f"Arrhenius {label}: D(300 K)")
    assert_width(np.array(ea_low), np.array(ea_high), np.array(ea), f"Arrhenius {label}: Ea", dof)
    assert_width(
        np.array(ln300_low), np.array(ln300_high), np.array(ln300), f"Arrhenius {label}: ln D(300 K)", dof
    )
    # The truth is known here, so the spread over trials can be checked against it as well: the
    # weighted least-squares standard error of Ea for 10 % log-normal errors (no free scale).
    x = -1.0 / (BOLTZMANN_EV_PER_K * TEMPERATURES_K)
    design = np.stack([np.ones_like(x), x], axis=1) / RELATIVE_NOISE
    analytic = float(np.sqrt(np.linalg.inv(design.T @ design)[1, 1]))
    # std over 200 trials has a relative standard error of 1/√398 = 5 %: ±20 % is 4 of them.
    assert np.std(ea, ddof=1) == pytest.approx(analytic, rel=0.2)


def test_underestimated_errors_are_scaled_by_chi2() -> None:
    rng = np.random.default_rng(5)
    observed = _arrhenius(TEMPERATURES_K) * np.exp(rng.normal(scale=0.2, size=TEMPERATURES_K.size))
    honest = fit_arrhenius(TEMPERATURES_K, observed, 0.2 * observed)
    claimed = fit_arrhenius(TEMPERATURES_K, observed, 0.02 * observed)  # errors claimed 10× too small
    unscaled = fit_arrhenius(TEMPERATURES_K, observed, 0.02 * observed, scale_by_chi2=False)
    assert "PDG" in claimed.method and claimed.chi2 / claimed.dof > 1
    # Errors claimed 10× too small give χ²/ν ~ 100, so the PDG scale √(χ²/ν) restores ~10×; 3× is
    # a lower bound that a missing scale (1×) fails and χ² scatter with ν = 3 does not.
    assert claimed.activation_energy_stderr_eV > 3 * unscaled.activation_energy_stderr_eV
    assert claimed.activation_energy_eV == pytest.approx(honest.activation_energy_eV, rel=1e-10)
