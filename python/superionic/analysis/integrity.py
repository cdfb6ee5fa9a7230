"""Is the framework intact? Per species pair, the closest approach in each frame against a floor.

A model that lets two framework atoms come closer than its teacher ever put them is making bonds
the teacher never makes: its diffusion numbers then describe another material. The floor of a
species pair is ``factor`` × the closest distance of that pair in what the model was taught (the
model file's metadata, written at export) or in a reference trajectory (the teacher's own MD, for
a file that did not come from a model with floors). A frame with any pair below its floor is
broken; transport is computed only from the intact frames before the first broken one
(docs/guard.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import vesin

from superionic.analysis.errors import AnalysisError
from superionic.analysis.reader_base import Block, Reader, TrajectoryHeader
from superionic.export import FLOOR_FACTOR, ExportError, read_metadata

# A reference that never brings a pair within this distance gives it the floor factor × this.
REFERENCE_SEARCH_A = 6.0


class BrokenDynamicsError(AnalysisError):
    """A trajectory whose framework broke before any usable stretch of intact frames."""


def pair_key(a: str, b: str) -> str:
    """One name per unordered pair, elements in alphabetical order: 'Ge-S', 'Li-Li'."""
    return "-".join(sorted((a, b)))


@dataclass(frozen=True)
class Floors:
    """The floor of each unordered element pair (Å), the closest distance it derives from, and where
    that distance was measured."""

    floor_A: dict[str, float]
    closest_A: dict[str, float]
    factor: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def floors_from_model(path: str | Path) -> Floors | None:
    """The floors an exported model carries; None for a model exported before floors existed."""
    meta = read_metadata(path)
    floors, closest = meta.floors(), meta.closest()
    if floors is None or closest is None or meta.floor_factor is None:
        return None
    return Floors(
        floor_A={pair_key(*k): v for k, v in floors.items()},
        closest_A={pair_key(*k): v for k, v in closest.items()},
        factor=float(meta.floor_factor),
        source=f"model {path} (its training data)",
    )


def floors_from_trajectories(readers: Sequence[Reader], factor: float = FLOOR_FACTOR) -> Floors:
    """Floors from the closest approach of each pair over every frame of the given trajectories
    (the teacher's own MD or labelled frames); a pair never within REFERENCE_SEARCH_A gets
    ``factor`` × that distance."""
    closest: dict[str, float] = {}
    elements: set[str] = set()
    for reader in readers:
        elements |= set(reader.header.symbols)
        scan = PairScan(reader.header.symbols, REFERENCE_SEARCH_A)
        for block in reader.blocks():
            for pair, value in scan.closest_over(block).items():
                closest[pair] = min(closest.get(pair, math.inf), value)
    ordered = sorted(elements)
    every = {pair_key(a, b) for i, a in enumerate(ordered) for b in ordered[i:]}
    closest = {p: min(closest.get(p, REFERENCE_SEARCH_A), REFERENCE_SEARCH_A) for p in sorted(every)}
    return Floors(
        floor_A={p: factor * d for p, d in closest.items()},
        closest_A=closest,
        factor=factor,
        source="reference " + ", ".join(r.header.path for r in readers),
    )


def model_of_run(trajectory: Path) -> Path | None:
    """The model file `superionic md` recorded beside a trajectory (run.json), if it still exists."""
    info = trajectory.parent / "run.json"
    if not info.is_file():
        return None
    model = json.loads(info.read_text()).get("model")
    return Path(model) if model and Path(model).is_file() else None


def floors_for(trajectory: Path, given: str | Path | None = None) -> Floors | None:
    """The floors that judge ``trajectory``: from ``given`` (a model file, or a reference trajectory
    or labelled frames), else from the model that `superionic md` ran it with; None if neither
    says (the caller reports that the framework was not checked)."""
    from superionic.analysis.readers import open_trajectory

    if given is not None:
        source = Path(given)
        if not source.is_file():
            raise AnalysisError(
                f"--floors {source}: no such file; give a model (.pt/.pt2) or a reference trajectory"
            )
        if source.suffix in (".pt", ".pt2"):
            try:
                floors = floors_from_model(source)
            except ExportError as err:
                raise AnalysisError(f"--floors {source}: {err}") from err
            if floors is None:
                raise AnalysisError(
                    f"--floors {source}: the model carries no distance floors (exported before they "
                    "existed); re-export it from its checkpoint with superionic export, or give its "
                    "training data"
                )
            return floors
        return floors_from_trajectories([open_trajectory(source, timestep_ps=1.0)])
    model = model_of_run(trajectory)
    if model is None:
        return None
    try:
        return floors_from_model(model)
    except ExportError:
        return None


class PairScan:
    """Closest distance of every element pair in a frame, through one neighbour list per frame."""

    def __init__(self, symbols: Sequence[str], r_max: float) -> None:
        elements = sorted(set(symbols))
        self.index = np.array([elements.index(s) for s in symbols])
        self.pairs = [pair_key(a, b) for i, a in enumerate(elements) for b in elements[i:]]
        n = len(elements)
        self.pair_of = np.zeros((n, n), dtype=np.int64)
        for i, a in enumerate(elements):
            for j, b in enumerate(elements):
                self.pair_of[i, j] = self.pairs.index(pair_key(a, b))
        self.r_max = float(r_max)
        self.neighbours = vesin.NeighborList(cutoff=self.r_max, full_list=False)

    def frame_minima(self, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """[P] closest distance of each pair in one frame (inf: none within r_max)."""
        wrapped = positions @ np.linalg.inv(cell)
        wrapped = (wrapped - np.floor(wrapped)) @ cell
        i, j, d = self.neighbours.compute(
            points=np.ascontiguousarray(wrapped, dtype=np.float64),
            box=np.ascontiguousarray(cell, dtype=np.float64),
            periodic=True,
            quantities="ijd",
        )
        minima = np.full(len(self.pairs), np.inf)
        np.minimum.at(minima, self.pair_of[self.index[i], self.index[j]], d)
        return minima

    def block_minima(self, block: Block) -> np.ndarray:
        """[F, P] for every frame of a block."""
        frames = range(len(block.times_ps))
        return np.array([self.frame_minima(block.positions[k], block.cells[k]) for k in frames])

    def closest_over(self, block: Block) -> dict[str, float]:
        minima = self.block_minima(block).min(axis=0)
        return {p: float(v) for p, v in zip(self.pairs, minima, strict=True) if np.isfinite(v)}


@dataclass
class IntegrityReport:
    """Which frames of a trajectory keep every pair above its floor."""

    floors: Floors
    n_frames: int
    broken_frames: int
    first_broken_frame: int | None
    first_broken_time_ps: float | None  # from the first frame
    duration_ps: float
    closest_A: dict[str, float]  # per pair, over the whole trajectory
    first_breach: dict[str, Any] | None  # pair, distance, floor at the first broken frame
    breaches_by_pair: dict[str, int] = field(default_factory=dict)  # broken frames per pair

    @property
    def intact(self) -> bool:
        return self.broken_frames == 0

    @property
    def broken_fraction(self) -> float:
        return self.broken_frames / self.n_frames if self.n_frames else 0.0

    def summary(self) -> str:
        """One line for a report."""
        if self.intact:
            return (
                f"framework intact: no pair below its floor in {self.n_frames} frames ({self.floors.source})"
            )
        b = self.first_breach or {}
        return (
            f"framework broken in {self.broken_frames} of {self.n_frames} frames "
            f"({100 * self.broken_fraction:.1f} %), first at {self.first_broken_time_ps:.3g} ps: "
            f"{b.get('pair')} {b.get('distance_A', math.nan):.2f} Å "
            f"< floor {b.get('floor_A', math.nan):.2f} Å "
            f"({self.floors.factor:g} × {b.get('closest_A', math.nan):.2f} Å, {self.floors.source})"
        )

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["intact"] = self.intact
        body["broken_fraction"] = self.broken_fraction
        body["summary"] = self.summary()
        return body


def check_integrity(reader: Reader, floors: Floors, ion: str | None = None) -> IntegrityReport:
    """Every frame of ``reader`` against ``floors``; pairs the floors do not name are not judged,
    nor, given the mobile ``ion``, pairs with it: the ion's contacts come from its hops, and a run
    longer than the teacher's samples their tail further (its closest approach shrinks with run
    length in a sound model), while an intact framework has no such tail. Their closest approach
    is still reported."""
    symbols = reader.header.symbols
    scan = PairScan(symbols, max(floors.floor_A.values(), default=0.0) + 1e-9)
    judged = np.array([p in floors.floor_A and (ion is None or ion not in p.split("-")) for p in scan.pairs])
    floor = np.array([floors.floor_A.get(p, 0.0) for p in scan.pairs])
    closest = np.full(len(scan.pairs), np.inf)
    per_pair = np.zeros(len(scan.pairs), dtype=np.int64)
    broken = 0
    first_frame: int | None = None
    first_time: float | None = None
    first_breach: dict[str, Any] | None = None
    start = end = None
    frame = 0
    for block in reader.blocks():
        minima = scan.block_minima(block)
        below = (minima < floor) & judged  # [F, P]
        closest = np.minimum(closest, minima.min(axis=0))
        per_pair += below.sum(axis=0)
        bad = below.any(axis=1)
        broken += int(bad.sum())
        if start is None:
            start = float(block.times_ps[0])
        end = float(block.times_ps[-1])
        if first_frame is None and bad.any():
            k = int(np.argmax(bad))
            ratio = np.where(below[k], minima[k] / np.where(floor > 0, floor, 1.0), np.inf)
            p = int(np.argmin(ratio))
            first_frame = frame + k
            first_time = float(block.times_ps[k]) - start
            first_breach = {
                "pair": scan.pairs[p],
                "distance_A": float(minima[k, p]),
                "floor_A": float(floor[p]),
                "closest_A": floors.closest_A[scan.pairs[p]],
                "time_ps": first_time,
                "frame": first_frame,
            }
        frame += len(block.times_ps)
    return IntegrityReport(
        floors=floors,
        n_frames=frame,
        broken_frames=broken,
        first_broken_frame=first_frame,
        first_broken_time_ps=first_time,
        duration_ps=(end - start) if start is not None and end is not None else 0.0,
        closest_A={p: float(v) for p, v in zip(scan.pairs, closest, strict=True) if np.isfinite(v)},
        first_breach=first_breach,
        breaches_by_pair={p: int(n) for p, n in zip(scan.pairs, per_pair, strict=True) if n},
    )


class PrefixReader(Reader):
    """The first ``n_frames`` frames of another reader: the intact part of a broken trajectory."""

    def __init__(self, reader: Reader, n_frames: int) -> None:
        self.reader = reader
        h = reader.header
        n = min(n_frames, h.n_frames)
        self.header = TrajectoryHeader(h.path, h.format, n, h.symbols, h.charges, h.notes)

    def blocks(self, size: int = 256) -> Iterable[Block]:  # type: ignore[override]
        left = self.header.n_frames
        for block in self.reader.blocks(size):
            if left <= 0:
                return
            n = min(left, len(block.times_ps))
            yield Block(
                times_ps=block.times_ps[:n],
                positions=block.positions[:n],
                images=None if block.images is None else block.images[:n],
                cells=block.cells[:n],
            )
            left -= n
