"""Partial radial distribution functions g_ab(r) of periodic (orthorhombic or triclinic) cells.

Definition, for species a around species b in a cell of volume V (rows of the cell matrix are the
lattice vectors, docs/conventions.md):

    g_ab(r) = ⟨ V / (N_a · N_b') · Σ_{i∈a} Σ_{j∈b} Σ_n δ(r − |r_j − r_i + n·C|) / (4π r²) ⟩_frames

with n running over every lattice translation, so r may exceed half the cell (small cells need that:
the 50-atom LGPS cell is 8.7 Å across). An atom's own periodic images (i = j, n ≠ 0) are left out:
their distances are lattice lengths fixed by the cell, not by the physics, and counting them would
put spikes into an ideal gas. Hence N_b' = N_b − 1 when a = b (the number of other atoms whose images
surround i), N_b otherwise; with this normalisation an ideal gas gives g = 1 at every r.
Histogram counts over shells [r_k, r_{k+1}) are divided by the shell volume 4π (r_{k+1}³ − r_k³) / 3,
each frame with its own volume (NPT-safe), then averaged over frames. Within the minimum-image
radius (half the smallest perpendicular width of the cell) this is MDAnalysis's ``InterRDF``
(``exclusion_block=(1, 1)`` for a = b), which the tests compare to.

The coordination number n_ab(r_c) = 4π ρ_b' ∫_0^{r_c} g_ab(r) r² dr, ρ_b' = N_b' / V, counts b
neighbours of an a atom within r_c. Uncertainties come from consecutive time blocks (one g per block).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from superionic.analysis._checks import check_positions
from superionic.analysis.errors import AnalysisError, EmptySelectionError, TrajectoryTooShortError

# Bound on the temporary distance arrays of one chunk of a atoms (float64 elements).
_CHUNK_ELEMENTS = 8_000_000


@dataclass(frozen=True)
class RdfResult:
    """g_ab(r) on bin centres ``r_A`` (Å); ``block_g`` [n_blocks, bins] for uncertainties (may be empty)."""

    pair: tuple[str, str]
    r_A: np.ndarray
    edges_A: np.ndarray
    g: np.ndarray
    block_g: np.ndarray
    n_frames: int
    n_a: int
    n_b: int
    mean_volume_A3: float

    @property
    def pair_density_per_A3(self) -> float:
        """ρ_b' = N_b' / V: the density of b atoms seen from an a atom (N_b − 1 when a = b)."""
        same = self.pair[0] == self.pair[1]
        return (self.n_b - 1 if same else self.n_b) / self.mean_volume_A3

    def coordination(self, r_cut_A: float, g: np.ndarray | None = None) -> float:
        """n_ab(r_cut): b neighbours of an a atom within ``r_cut_A`` (whole bins plus the partial one)."""
        values = self.g if g is None else g
        shells = 4.0 / 3.0 * np.pi * np.diff(self.edges_A**3)
        inner = np.clip((r_cut_A**3 - self.edges_A[:-1] ** 3) / np.diff(self.edges_A**3), 0.0, 1.0)
        return float(self.pair_density_per_A3 * np.sum(values * shells * inner))

    def first_peak(self, g: np.ndarray | None = None) -> tuple[float, float]:
        """(position Å, height) of the global maximum, refined by a parabola through the top three bins."""
        values = self.g if g is None else g
        k = int(np.argmax(values))
        if 0 < k < values.shape[0] - 1:
            left, top, right = values[k - 1 : k + 2]
            curvature = left - 2.0 * top + right
            if curvature < 0:
                shift = 0.5 * (left - right) / curvature
                width = self.edges_A[1] - self.edges_A[0]
                return float(self.r_A[k] + shift * width), float(top - 0.25 * (left - right) * shift)
        return float(self.r_A[k]), float(values[k])

    def first_minimum_after_peak(self) -> float:
        """r (Å) of the lowest g between the first peak and 1.6× its position (the first shell's edge)."""
        peak, _ = self.first_peak()
        inside = np.flatnonzero((self.r_A > peak) & (self.r_A <= 1.6 * peak))
        if inside.size == 0:
            return float(self.r_A[-1])
        return float(self.r_A[inside[np.argmin(self.g[inside])]])

    def block_stat(self, statistic: str, r_cut_A: float | None = None) -> tuple[float, float, int]:
        """(value on the whole run, block standard error, blocks) of 'peak_position', 'peak_height' or
        'coordination' (needs ``r_cut_A``)."""

        def of(g: np.ndarray | None) -> float:
            if statistic == "coordination":
                if r_cut_A is None:
                    raise AnalysisError("coordination needs r_cut_A: pass the shell radius in Å")
                return self.coordination(r_cut_A, g)
            position, height = self.first_peak(g)
            if statistic == "peak_position":
                return position
            if statistic == "peak_height":
                return height
            raise AnalysisError(f"statistic = {statistic!r}: use peak_position, peak_height or coordination")

        value = of(None)
        n_blocks = self.block_g.shape[0]
        if n_blocks < 2:
            return value, float("nan"), n_blocks
        per_block = np.array([of(g) for g in self.block_g])
        return value, float(per_block.std(ddof=1) / np.sqrt(n_blocks)), n_blocks

    def to_dict(self) -> dict[str, Any]:
        return {
            "pair": list(self.pair),
            "r_A": self.r_A.tolist(),
            "g": self.g.tolist(),
            "n_frames": self.n_frames,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "n_blocks": int(self.block_g.shape[0]),
            "mean_volume_A3": self.mean_volume_A3,
        }


def _cells(cells: np.ndarray, n_frames: int) -> np.ndarray:
    array = np.asarray(cells, dtype=np.float64)
    if array.shape == (3, 3):
        array = np.broadcast_to(array, (n_frames, 3, 3))
    if array.shape != (n_frames, 3, 3):
        raise AnalysisError(
            f"cells has shape {array.shape}: pass one 3×3 cell (rows a, b, c) or one per frame "
            f"[{n_frames}, 3, 3]"
        )
    if not np.isfinite(array).all():
        raise AnalysisError("cells contain NaN or inf: pass the simulation box in Å")
    volumes = np.abs(np.linalg.det(array))
    if (volumes < 1e-9).any():
        raise AnalysisError("a cell is singular (zero volume): pass the three lattice vectors as rows")
    return array


def perpendicular_widths(cell: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of the cell (Å): V / |b × c|, V / |c × a|, V / |a × b|."""
    a, b, c = np.asarray(cell, dtype=np.float64)
    volume = abs(np.linalg.det(np.asarray(cell, dtype=np.float64)))
    return volume / np.array(
        [np.linalg.norm(np.cross(b, c)), np.linalg.norm(np.cross(c, a)), np.linalg.norm(np.cross(a, b))]
    )


def _frame_histogram(
    a_pos: np.ndarray, b_pos: np.ndarray, cell: np.ndarray, edges: np.ndarray, same: bool
) -> np.ndarray:
    """Pair counts per shell for one frame, all lattice images within the last edge."""
    r_max = edges[-1]
    inverse = np.linalg.inv(cell)
    # Minimum-image fractional differences lie in [−½, ½]; translations up to ⌈r_max/w + ½⌉ cells
    # along each axis then reach every image within r_max.
    reach = np.ceil(r_max / perpendicular_widths(cell) + 0.5).astype(int)
    shifts = np.array(list(itertools.product(*(range(-k, k + 1) for k in reach))), dtype=np.float64)
    translations = shifts @ cell  # [S, 3]
    counts = np.zeros(edges.shape[0] - 1)
    n_b = b_pos.shape[0]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_b * translations.shape[0] * 3))
    for start in range(0, a_pos.shape[0], chunk):
        block = a_pos[start : start + chunk]
        fractional = (b_pos[None, :, :] - block[:, None, :]) @ inverse  # [A, B, 3]
        fractional -= np.round(fractional)
        delta = fractional @ cell  # [A, B, 3] minimum image
        vectors = delta[:, :, None, :] + translations[None, None, :, :]  # [A, B, S, 3]
        distances = np.sqrt(np.einsum("absk,absk->abs", vectors, vectors))
        if same:
            # i = j: drop every translation (the atom itself and its own images), see the docstring.
            rows = np.arange(block.shape[0])
            distances[rows, start + rows, :] = np.inf
        counts += np.histogram(distances[distances < r_max], bins=edges)[0]
    return counts


def partial_rdf(
    positions: np.ndarray,
    symbols: np.ndarray | list[str],
    cells: np.ndarray,
    pair: tuple[str, str],
    *,
    r_max_A: float = 6.0,
    bin_width_A: float = 0.05,
    n_blocks: int = 5,
    stride: int = 1,
) -> RdfResult:
    """g_ab(r) (see the module docstring) of the atoms in ``positions`` [T, N, 3] (Å, wrapped or not).

    ``symbols`` [N] names each atom; ``pair`` = (a, b). ``cells`` is one 3×3 cell or [T, 3, 3] (rows are
    lattice vectors). Every ``stride``-th frame is used; the used frames are also split into
    ``n_blocks`` consecutive blocks (one g each) for uncertainties (``n_blocks`` = 1: no blocks).
    """
    array = check_positions(positions, min_frames=1)
    n_frames, n_atoms, _ = array.shape
    names = np.asarray(symbols)
    if names.shape != (n_atoms,):
        raise AnalysisError(f"symbols has {names.shape[0]} entries for {n_atoms} atoms: pass one per atom")
    all_cells = _cells(cells, n_frames)
    if not (np.isfinite(r_max_A) and r_max_A > 0 and np.isfinite(bin_width_A) and 0 < bin_width_A < r_max_A):
        raise AnalysisError(
            f"r_max_A = {r_max_A!r}, bin_width_A = {bin_width_A!r}: pass 0 < bin width < r_max (Å)"
        )
    if stride < 1:
        raise AnalysisError(f"stride = {stride}: use every frame (1) or every k-th frame (k > 1)")
    a, b = pair
    a_index = np.flatnonzero(names == a)
    b_index = np.flatnonzero(names == b)
    present = ", ".join(sorted(set(names.tolist())))
    for name, index in ((a, a_index), (b, b_index)):
        if index.size == 0:
            raise EmptySelectionError(f"no {name} atoms for the {a}–{b} RDF; the frames hold {present}")
    same = a == b
    if same and a_index.size < 2:
        raise EmptySelectionError(f"a {a}–{a} RDF needs at least two {a} atoms, the frames hold one")
    frames = np.arange(0, n_frames, stride)
    blocks = max(1, int(n_blocks))
    if blocks > frames.size:
        raise TrajectoryTooShortError(
            f"{frames.size} frames (stride {stride}) cannot make {blocks} blocks: use fewer blocks or "
            "more frames"
        )
    edges = np.arange(0.0, r_max_A + 0.5 * bin_width_A, bin_width_A)
    edges = edges[edges <= r_max_A + 1e-12]
    shells = 4.0 / 3.0 * np.pi * np.diff(edges**3)
    partners = b_index.size - 1 if same else b_index.size
    per_frame = np.empty((frames.size, edges.size - 1))
    volumes = np.empty(frames.size)
    for row, frame in enumerate(frames):
        cell = all_cells[frame]
        volumes[row] = abs(np.linalg.det(cell))
        counts = _frame_histogram(
            np.asarray(array[frame, a_index], dtype=np.float64),
            np.asarray(array[frame, b_index], dtype=np.float64),
            cell,
            edges,
            same,
        )
        per_frame[row] = counts * volumes[row] / (a_index.size * partners * shells)
    g = per_frame.mean(axis=0)
    if blocks >= 2:
        length = frames.size // blocks
        block_g = np.stack([per_frame[k * length : (k + 1) * length].mean(axis=0) for k in range(blocks)])
    else:
        block_g = np.empty((0, g.shape[0]))
    return RdfResult(
        pair=(a, b),
        r_A=0.5 * (edges[1:] + edges[:-1]),
        edges_A=edges,
        g=g,
        block_g=block_g,
        n_frames=int(frames.size),
        n_a=int(a_index.size),
        n_b=int(b_index.size),
        mean_volume_A3=float(volumes.mean()),
    )


__all__ = ["RdfResult", "partial_rdf", "perpendicular_widths"]
