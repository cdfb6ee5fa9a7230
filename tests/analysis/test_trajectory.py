"""Unwrapping by minimum-image jumps and centre-of-mass drift removal."""

from __future__ import annotations

import numpy as np
import pytest

from superionic.analysis import AnalysisError, remove_drift, unwrap

from ._synthetic import random_walk


def _wrap(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    fractional = positions @ np.linalg.inv(cell)
    return (fractional - np.floor(fractional)) @ cell


@pytest.mark.parametrize(
    "cell",
    [
        np.diag([6.0, 7.0, 8.0]),
        np.array([[6.0, 0.0, 0.0], [1.5, 6.5, 0.0], [-1.0, 2.0, 7.5]]),  # triclinic, rows a, b, c
    ],
    ids=["orthorhombic", "triclinic"],
)
def test_unwrap_recovers_the_unwrapped_trajectory(cell: np.ndarray) -> None:
    # 0.5 Å steps in a ~6 Å cell: many boundary crossings, each step well below half the cell.
    truth = random_walk(np.random.default_rng(3), 20, 500, 0.1, 1.25)
    wrapped = _wrap(truth, cell)
    assert np.abs(wrapped - truth).max() > 5.0  # the walk really crossed the boundaries
    unwrapped = unwrap(wrapped, cell)
    # Frame 0 is kept as given (wrapped); thereafter displacements are exact.
    np.testing.assert_allclose(unwrapped - unwrapped[0], truth - truth[0], atol=1e-10)


def test_unwrap_accepts_box_lengths_and_a_constant_cell_per_frame() -> None:
    truth = random_walk(np.random.default_rng(4), 3, 50, 0.1, 0.5)
    wrapped = _wrap(truth, np.diag([5.0, 5.0, 5.0]))
    expected = unwrap(wrapped, np.diag([5.0, 5.0, 5.0]))
    np.testing.assert_allclose(unwrap(wrapped, [5.0, 5.0, 5.0]), expected, atol=1e-12)
    np.testing.assert_allclose(
        unwrap(wrapped, np.tile(np.diag([5.0, 5.0, 5.0]), (51, 1, 1))), expected, atol=1e-12
    )


def test_unwrap_refuses_a_changing_cell_and_warns_on_large_jumps() -> None:
    cells = np.tile(np.eye(3) * 5.0, (3, 1, 1))
    cells[2] *= 1.01
    with pytest.raises(AnalysisError, match="image flags"):
        unwrap(np.zeros((3, 1, 3)), cells)
    jumpy = np.zeros((2, 1, 3))
    jumpy[1, 0, 0] = 2.4  # 0.48 of a 5 Å cell between two frames
    with pytest.warns(RuntimeWarning, match="half a cell"):
        unwrap(jumpy, [5.0, 5.0, 5.0])


def test_remove_drift_removes_a_common_translation_exactly() -> None:
    rng = np.random.default_rng(5)
    still = random_walk(rng, 8, 30, 0.1, 0.2)
    masses = rng.uniform(1.0, 100.0, size=8)
    centre = np.einsum("tni,n->ti", still, masses / masses.sum())
    still = still - (centre - centre[0])[:, None, :]  # zero centre-of-mass displacement
    drift = np.cumsum(rng.normal(size=(31, 1, 3)), axis=0) + np.linspace(0.0, 9.0, 31)[:, None, None]
    np.testing.assert_allclose(remove_drift(still + drift, masses), still + drift[0], atol=1e-10)


def test_remove_drift_with_equal_weights_zeroes_the_mean_displacement() -> None:
    positions = random_walk(np.random.default_rng(6), 10, 20, 0.1, 0.2) + np.arange(21)[:, None, None] * 0.3
    corrected = remove_drift(positions)
    np.testing.assert_allclose((corrected - corrected[0]).mean(axis=1), 0.0, atol=1e-12)
