"""The FFT MSDs against the O(T²) definition, and the single-origin and collective variants."""

from __future__ import annotations

import numpy as np
import pytest

from superionic.analysis import (
    collective_msd_fft,
    msd_fft,
    msd_per_atom_components_fft,
    msd_per_atom_fft,
    msd_single_origin,
)

from ._synthetic import direct_windowed_msd, random_walk


@pytest.fixture
def small_walk() -> np.ndarray:
    # Offset far from the origin: the FFT route must not lose digits to large coordinates.
    return (
        random_walk(
            np.random.default_rng(7), n_walkers=5, n_steps=59, timestep_ps=0.1, diffusion_A2_per_ps=0.3
        )
        + 80.0
    )


def test_msd_fft_equals_direct_windowed_msd(small_walk: np.ndarray) -> None:
    np.testing.assert_allclose(msd_fft(small_walk), direct_windowed_msd(small_walk), rtol=1e-10, atol=1e-10)


def test_per_atom_msd_equals_direct_for_each_atom(small_walk: np.ndarray) -> None:
    per_atom = msd_per_atom_components_fft(small_walk)
    for atom in range(small_walk.shape[1]):
        direct = direct_windowed_msd(small_walk[:, atom : atom + 1])
        np.testing.assert_allclose(per_atom[atom], direct, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(msd_per_atom_fft(small_walk), per_atom.sum(axis=-1), rtol=1e-12)
    np.testing.assert_allclose(per_atom.mean(axis=0), msd_fft(small_walk), rtol=1e-12, atol=1e-12)


def test_chunking_and_max_lag_do_not_change_the_result(small_walk: np.ndarray) -> None:
    tiny_chunks = msd_fft(small_walk, chunk_bytes=1)  # one atom per chunk
    np.testing.assert_allclose(tiny_chunks, msd_fft(small_walk), rtol=1e-12, atol=1e-12)
    truncated = msd_per_atom_components_fft(small_walk, max_lag=10, chunk_bytes=1)
    assert truncated.shape == (5, 11, 3)
    np.testing.assert_allclose(
        truncated, msd_per_atom_components_fft(small_walk)[:, :11], rtol=1e-12, atol=1e-12
    )


def test_single_origin_msd_is_displacement_from_frame_zero() -> None:
    positions = np.zeros((4, 2, 3))
    positions[:, 0, 0] = [0.0, 1.0, 2.0, 3.0]  # atom 0 moves 1 Å per frame along x
    positions[:, 1, 2] = [0.0, -2.0, -2.0, 0.0]  # atom 1 goes out along −z and back
    expected = np.zeros((4, 3))
    expected[:, 0] = np.array([0.0, 1.0, 4.0, 9.0]) / 2
    expected[:, 2] = np.array([0.0, 4.0, 4.0, 0.0]) / 2
    np.testing.assert_allclose(msd_single_origin(positions + 5.0), expected, atol=1e-12)


def test_collective_msd_equals_direct_msd_of_the_charge_dipole(small_walk: np.ndarray) -> None:
    charges = np.array([1.0, 1.0, -2.0, 0.5, 3.0])
    dipole = np.einsum("tni,n->ti", small_walk, charges)[:, None, :]
    np.testing.assert_allclose(
        collective_msd_fft(small_walk, charges), direct_windowed_msd(dipole), rtol=1e-10, atol=1e-8
    )


def test_collective_msd_of_one_unit_charge_is_its_tracer_msd(small_walk: np.ndarray) -> None:
    one = small_walk[:, :1]
    np.testing.assert_allclose(collective_msd_fft(one, 1.0), msd_fft(one), rtol=1e-10, atol=1e-10)
