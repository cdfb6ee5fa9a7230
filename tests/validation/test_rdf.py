"""Partial RDFs: an ideal gas gives g = 1 (analytic), and MDAnalysis's InterRDF on the same frames."""

from __future__ import annotations

import numpy as np
import pytest

from superionic.analysis.errors import AnalysisError, EmptySelectionError
from superionic.analysis.rdf import partial_rdf, perpendicular_widths

# A triclinic cell in LAMMPS/MDAnalysis orientation (a along x, b in xy): tilted in all three planes.
TRICLINIC = np.array([[9.0, 0.0, 0.0], [2.5, 8.0, 0.0], [-1.5, 1.8, 10.0]])


def ideal_gas(rng: np.random.Generator, n_frames: int, n_atoms: int, cell: np.ndarray) -> np.ndarray:
    return rng.uniform(size=(n_frames, n_atoms, 3)) @ cell


@pytest.mark.parametrize("pair", [("Li", "S"), ("Li", "Li")])
def test_ideal_gas_is_one_beyond_half_the_cell(pair: tuple[str, str]) -> None:
    rng = np.random.default_rng(7)
    symbols = np.array(["Li"] * 30 + ["S"] * 20)
    positions = ideal_gas(rng, 100, 50, TRICLINIC)
    # r_max 1.2× the smallest perpendicular width: many images of every atom are counted.
    r_max = 1.2 * perpendicular_widths(TRICLINIC).min()
    result = partial_rdf(positions, symbols, TRICLINIC, pair, r_max_A=r_max, bin_width_A=0.5, n_blocks=1)
    outer = result.r_A > 2.0
    shells = 4 / 3 * np.pi * np.diff(result.edges_A**3)[outer]
    expected_counts = result.n_a * result.pair_density_per_A3 * shells * result.n_frames
    # Poisson counting error per bin (pairs are close to independent in an ideal gas); 5σ bound so the
    # seeded test is not a coin toss, and the mean over bins must be within 5σ of its own error.
    sigma = 1.0 / np.sqrt(expected_counts)
    assert np.all(np.abs(result.g[outer] - 1.0) < 5 * sigma)
    mean_sigma = np.sqrt(np.sum(sigma**2)) / sigma.size
    assert abs(result.g[outer].mean() - 1.0) < 5 * mean_sigma


def test_coordination_of_ideal_gas_is_density_times_volume() -> None:
    rng = np.random.default_rng(8)
    symbols = np.array(["Li"] * 25 + ["S"] * 25)
    positions = ideal_gas(rng, 100, 50, TRICLINIC)
    result = partial_rdf(positions, symbols, TRICLINIC, ("Li", "S"), r_max_A=5.0, bin_width_A=0.1, n_blocks=5)
    expected = 25 / abs(np.linalg.det(TRICLINIC)) * 4 / 3 * np.pi * 4.0**3
    value, stderr, blocks = result.block_stat("coordination", r_cut_A=4.0)
    # Counting error of the mean neighbour count: Poisson over 25 × 100 centres, √(n / 2500) ≈ 0.05.
    assert blocks == 5 and stderr > 0
    assert abs(value - expected) < 5 * np.sqrt(expected / 2500)


def _mdanalysis_rdf(positions, symbols, cell, pair, r_max, nbins):
    mda = pytest.importorskip("MDAnalysis")
    from MDAnalysis.analysis.rdf import InterRDF
    from MDAnalysis.coordinates.memory import MemoryReader
    from MDAnalysis.lib.mdamath import triclinic_box

    universe = mda.Universe.empty(positions.shape[1], trajectory=True)
    universe.add_TopologyAttr("name", list(symbols))
    dimensions = np.tile(triclinic_box(*cell), (positions.shape[0], 1))
    universe.load_new(positions.astype(np.float32), format=MemoryReader, dimensions=dimensions)
    a = universe.select_atoms(f"name {pair[0]}")
    b = universe.select_atoms(f"name {pair[1]}")
    exclusion = (1, 1) if pair[0] == pair[1] else None
    return InterRDF(a, b, nbins=nbins, range=(0.0, r_max), exclusion_block=exclusion).run()


@pytest.mark.parametrize("pair", [("Li", "S"), ("Li", "Li")])
def test_matches_mdanalysis_interrdf_within_minimum_image(pair: tuple[str, str]) -> None:
    rng = np.random.default_rng(9)
    # A liquid-like structure, not an ideal gas: atoms jittered about a lattice, so g has peaks.
    lattice = np.stack(np.meshgrid(*(np.arange(3),) * 3, indexing="ij"), -1).reshape(-1, 3) / 3.0
    base = (lattice + 1 / 6) @ TRICLINIC
    symbols = np.array(["Li", "S"] * 13 + ["Li"])[: base.shape[0]]
    positions = base[None] + rng.normal(scale=0.35, size=(40, base.shape[0], 3))
    r_max = 0.5 * perpendicular_widths(TRICLINIC).min()  # InterRDF uses the minimum image only
    ours = partial_rdf(positions, symbols, TRICLINIC, pair, r_max_A=r_max, bin_width_A=r_max / 60, n_blocks=1)
    theirs = _mdanalysis_rdf(positions, symbols, TRICLINIC, pair, r_max, nbins=ours.g.shape[0])
    np.testing.assert_allclose(theirs.results.bins, ours.r_A, rtol=1e-6)
    # MDAnalysis computes distances from float32 coordinates: a pair within ~1e-6 Å of a bin edge can
    # land in the neighbouring bin. Expect equality bin by bin except for such rare moves.
    assert ours.g.max() > 1.3  # the structure has peaks: the comparison is not between two flat lines
    np.testing.assert_allclose(ours.g, theirs.results.rdf, rtol=1e-4, atol=2e-3)


def test_bad_input_is_one_clear_error() -> None:
    positions = np.zeros((3, 2, 3))
    with pytest.raises(EmptySelectionError, match="no Cl atoms"):
        partial_rdf(positions, ["Li", "S"], np.eye(3) * 5, ("Li", "Cl"))
    with pytest.raises(AnalysisError, match="bin width"):
        partial_rdf(positions, ["Li", "S"], np.eye(3) * 5, ("Li", "S"), r_max_A=1.0, bin_width_A=2.0)
    with pytest.raises(AnalysisError, match="singular"):
        partial_rdf(positions, ["Li", "S"], np.zeros((3, 3)), ("Li", "S"))


def test_unwrapped_positions_give_the_same_rdf() -> None:
    # Reference trajectories store unwrapped positions: whole-cell shifts of any atom change nothing.
    rng = np.random.default_rng(10)
    symbols = np.array(["Li"] * 10 + ["S"] * 10)
    wrapped = ideal_gas(rng, 5, 20, TRICLINIC)
    shifted = wrapped + rng.integers(-3, 4, size=(5, 20, 3)) @ TRICLINIC
    for pair in (("Li", "S"), ("Li", "Li")):
        a = partial_rdf(wrapped, symbols, TRICLINIC, pair, r_max_A=9.0, n_blocks=1)
        b = partial_rdf(shifted, symbols, TRICLINIC, pair, r_max_A=9.0, n_blocks=1)
        # Same pair distances up to rounding of the shifted coordinates (~1e-14 Å): identical bins.
        np.testing.assert_array_equal(a.g, b.g)
