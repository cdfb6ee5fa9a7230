"""Centre-of-mass drift removal with unequal masses: a heavy framework drifting (a thermostat's
momentum kicks, a flying ice cube) must leave the mobile ion's D exactly as it is.

The trajectory is built in the centre-of-mass frame first: Li random walks, framework atoms that
vibrate about their sites and recoil as a body so that Σ m_i r_i(t) is exactly constant (momentum
conservation). Only then is a large drift of the whole system added. The reader (real H5MD file,
atomic masses from the element names) must hand back the centre-of-mass-frame Li positions to
round-off, whatever the drift, and hence the same D. With equal weights instead of masses the
framework's recoil is mis-weighted (La is 20× heavier than Li) and the Li positions come back
shifted by the Li sublattice's own mean displacement times (1 − m_Li/m_La)·N_Li/N.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.data import atomic_masses, atomic_numbers

from superionic.analysis import tracer_diffusion
from superionic.analysis.readers import load_ion_positions, open_trajectory
from superionic.analysis.units import CM2_PER_S_PER_A2_PER_PS

from ._h5md import write_h5md
from ._synthetic import random_walk, times

TIMESTEP_PS = 0.1
N_STEPS = 400
N_LI = 24
N_LA, N_S = 8, 32  # a heavy and a middling framework species: three unequal masses in all
D_LI = (0.05, 0.05, 0.15)  # Å²/ps
CELL = np.array([[11.0, 0.0, 0.0], [1.5, 10.5, 0.0], [-1.0, 0.8, 12.0]])
SYMBOLS = ["Li"] * N_LI + ["La"] * N_LA + ["S"] * N_S
MASSES = np.array([atomic_masses[atomic_numbers[s]] for s in SYMBOLS])
# Reader output vs construction: both are float64 sums of a few terms of ≤ 100 Å: ≲ 1e-12 Å.
POSITION_TOL = 1e-9  # Å


def centre_of_mass_frame(rng: np.random.Generator) -> np.ndarray:
    """Positions [T, N, 3] whose mass-weighted centre is constant to round-off."""
    li = random_walk(rng, N_LI, N_STEPS, TIMESTEP_PS, D_LI)
    n_frame = N_LA + N_S
    sites = rng.uniform(0.0, 10.0, size=(1, n_frame, 3))
    vibration = rng.normal(scale=0.1, size=(N_STEPS + 1, n_frame, 3))
    framework = sites + vibration
    system = np.concatenate([li, framework], axis=1)
    moved = np.tensordot(MASSES, system - system[:1], axes=(0, 1))  # [T, 3] Σ m Δr
    recoil = -moved / MASSES[N_LI:].sum()  # the framework moves as a body against the Li
    system[:, N_LI:] += recoil[:, None, :]
    com = np.tensordot(MASSES, system, axes=(0, 1)) / MASSES.sum()
    assert np.abs(com - com[0]).max() < 1e-12
    return system


def lab_drift(rng: np.random.Generator) -> np.ndarray:
    """A steady flow of 25 Å over the run (several cell lengths) plus a random wander."""
    steady = np.linspace(0.0, 1.0, N_STEPS + 1)[:, None] * np.array([25.0, -14.0, 9.0])
    return steady + np.cumsum(rng.normal(scale=0.3, size=(N_STEPS + 1, 3)), axis=0)


def test_a_drifting_heavy_framework_leaves_li_D_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(2026)
    still = centre_of_mass_frame(rng)
    drifting = still + lab_drift(rng)[:, None, :]
    # The drift is large against the Li motion itself: without removal D would be wrong by far.
    assert np.linalg.norm(drifting[-1] - still[-1], axis=1).min() > 20.0  # Å, vs √(6Dt) ≈ 4 Å

    results = {}
    for name, positions in [("still", still), ("drifting", drifting)]:
        path = write_h5md(tmp_path / f"{name}.h5", positions, CELL, SYMBOLS, TIMESTEP_PS)
        ions = load_ion_positions(open_trajectory(path), "Li")
        try:
            assert ions.unwrapped_by == "images" and "atomic masses" in ions.drift_removed
            # Displacements come back as constructed in the centre-of-mass frame, drift or not.
            np.testing.assert_allclose(
                ions.positions - ions.positions[:1],
                still[:, :N_LI] - still[:1, :N_LI],
                rtol=0,
                atol=POSITION_TOL,
            )
            results[name] = tracer_diffusion(
                np.array(ions.positions), ions.times_ps, window_ps=(0.5, 10.0), n_bootstrap=200, seed=0
            )
        finally:
            ions.close()

    # Same positions to 1e-9 Å give the same D to ~1e-9 relative (MSD ~ 1 Å²; round-off far below).
    assert results["drifting"].diffusion_cm2_per_s == pytest.approx(
        results["still"].diffusion_cm2_per_s, rel=1e-8
    )
    for a, b in zip(
        results["drifting"].components_cm2_per_s, results["still"].components_cm2_per_s, strict=True
    ):
        assert a == pytest.approx(b, rel=1e-8)
    # And that D is the walk's: 24 Li over 40 ps (a single draw; 4 standard errors, false alarm ~1e-4).
    truth = np.mean(D_LI) * CM2_PER_S_PER_A2_PER_PS
    result = results["drifting"]
    assert abs(result.diffusion_cm2_per_s - truth) < 4 * result.stderr_cm2_per_s


def test_without_removal_the_drift_would_be_seen() -> None:
    """The check above is not vacuous: the same Li positions with the lab drift left in give a D
    many times the truth."""
    rng = np.random.default_rng(2026)
    still = centre_of_mass_frame(rng)
    drifting = still + lab_drift(rng)[:, None, :]
    raw = tracer_diffusion(
        drifting[:, :N_LI], times(N_STEPS + 1, TIMESTEP_PS), window_ps=(0.5, 10.0), n_bootstrap=50
    )
    assert raw.diffusion_cm2_per_s > 3 * np.mean(D_LI) * CM2_PER_S_PER_A2_PER_PS
