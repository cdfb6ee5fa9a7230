"""The precision planner's arithmetic (workflows.precision) against direct computation and simulation.

- the per-point error it asks for gives, through an independent weighted least-squares fit of
  simulated Arrhenius data, the targeted Ea half-width or σ(300 K) factor (whichever binds) — and the
  simulated fits' 95 % intervals of Ea cover the true Ea at the nominal rate (2000 seeded trials);
- the lowest diffusive temperature is where the onset rule crosses the budget;
- run lengths follow s² ∝ 1 / (D t), so a plan built from a measured run predicts its own precision;
- bad targets are one line each.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from superionic.analysis.arrhenius import fit_arrhenius
from superionic.analysis.units import BOLTZMANN_EV_PER_K
from superionic.workflows.precision import (
    ArrheniusGuess,
    PrecisionError,
    Targets,
    inverse_kT,
    length_for,
    lowest_diffusive,
    make_plan,
    needed_log_error,
    onset_ps,
    predicted_precision,
    spaced_in_inverse,
)

TEMPERATURES = [1100.0, 950.0, 830.0, 740.0, 660.0]
EA = 0.30


def test_the_needed_error_meets_the_binding_target_exactly():
    targets = Targets(ea_half_width_eV=0.03, sigma_factor=3.0)
    s = needed_log_error(TEMPERATURES, targets)
    ea_half, factor = predicted_precision(TEMPERATURES, [s] * len(TEMPERATURES))
    assert ea_half <= 0.03 + 1e-12 and factor <= 3.0 + 1e-9
    assert math.isclose(ea_half, 0.03, rel_tol=1e-9) or math.isclose(factor, 3.0, rel_tol=1e-9)


def test_simulated_fits_cover_the_true_ea_at_the_nominal_rate():
    """Each trial draws ln D_i = ln D0 − Ea x_i + N(0, s²) with the planner's s and fits it with the
    analysis' weighted Arrhenius fit: the 95 % intervals hold Ea in at least 95 % − 1.6 % of 2000
    trials (the binomial 99.9 % band), at most 98 %: the fit widens its interval by √(χ²/dof) when the
    scatter exceeds the stated errors and never narrows it, so it covers a little more than nominal
    (measured 96.6 % with this seed); their median half-width is the planner's prediction."""
    targets = Targets(ea_half_width_eV=0.03, sigma_factor=3.0)
    s = needed_log_error(TEMPERATURES, targets)
    predicted, _ = predicted_precision(TEMPERATURES, [s] * len(TEMPERATURES))
    rng = np.random.default_rng(7)
    x = inverse_kT(TEMPERATURES)
    hits, widths = 0, []
    for _ in range(2000):
        d = np.exp(-9.0 - EA * x + rng.normal(0.0, s, len(x)))
        fit = fit_arrhenius(TEMPERATURES, d, s * d, quantity="diffusion")
        lo, hi = fit.activation_energy_ci95_eV
        hits += lo <= EA <= hi
        widths.append(0.5 * (hi - lo))
    assert 0.95 - 0.016 <= hits / 2000 <= 0.98
    assert np.median(widths) == pytest.approx(predicted, rel=0.15)


def test_lowest_diffusive_is_where_the_onset_crosses_the_budget():
    guess = ArrheniusGuess(ln_d0=math.log(1e-3), ea_eV=EA, cage_msd_A2=1.5)
    budget = 2000.0
    low = lowest_diffusive(guess, 1200.0, 300.0, budget)
    assert onset_ps(guess, low) <= budget < onset_ps(guess, low - 2.0)
    # A floor above the crossing is returned as it is; a budget too small even at the top is refused.
    assert lowest_diffusive(guess, 1200.0, 900.0, budget) == 900.0
    with pytest.raises(PrecisionError, match="raise --max-md-ns to at least"):
        lowest_diffusive(guess, 500.0, 300.0, 10.0)


def test_a_plan_predicts_the_precision_its_lengths_give():
    guess = ArrheniusGuess(ln_d0=math.log(1e-3), ea_eV=EA, cage_msd_A2=1.0)
    # A measured run: log error 0.08 after 100 ps at 1100 K.
    reference = (0.08, 100.0, guess.diffusion_cm2_per_s(1100.0))
    plan = make_plan(guess, 1100.0, 500.0, Targets(max_md_ns=50.0), reference)
    assert len(plan.temperatures_K) == 5 and plan.temperatures_K == sorted(plan.temperatures_K, reverse=True)
    assert np.allclose(
        np.diff(1.0 / np.array(plan.temperatures_K)),
        np.diff(1.0 / np.array(plan.temperatures_K))[0],
        rtol=0.02,
    )
    assert not plan.capped
    assert plan.predicted_ea_half_width_eV <= 0.03 * 1.0001 and plan.predicted_sigma_factor <= 3.0 * 1.0001
    # The length rule inverted: a run of the planned length at T has the needed error.
    t, length = plan.temperatures_K[2], plan.lengths_ps[2]
    d = guess.diffusion_cm2_per_s(t)
    if length > 50.0 and length > onset_ps(guess, t):
        assert reference[0] * math.sqrt(reference[1] * reference[2] / (length * d)) == pytest.approx(
            plan.needed_log_error
        )
    assert length_for(0.04, 0.08, 100.0, 1e-5, 1e-5) == pytest.approx(400.0)


def test_spacing_and_bad_targets():
    assert (
        spaced_in_inverse(600.0, 1200.0, 5)[0] == 1200.0 and spaced_in_inverse(600.0, 1200.0, 5)[-1] == 600.0
    )
    for targets, flag in [
        (Targets(ea_half_width_eV=0.0), "--target-ea"),
        (Targets(sigma_factor=1.0), "--target-sigma"),
        (Targets(max_md_ns=-1.0), "--max-md-ns"),
    ]:
        with pytest.raises(PrecisionError, match=flag):
            targets.check()
    assert BOLTZMANN_EV_PER_K > 0
