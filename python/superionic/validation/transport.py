"""What one trajectory contributes to a validation: ion MSD (per atom), D or why not, and RDFs.

Files are read with the analysis layer's readers (unwrapping, whole-system centre-of-mass drift
removed), so model and reference are measured identically; arrays (synthetic tests) take the same
path from ``RunTransport.from_arrays`` on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from superionic.analysis.diffusion import DiffusionResult, WindowRule, tracer_diffusion
from superionic.analysis.errors import NoDiffusiveRegimeError, TrajectoryTooShortError
from superionic.analysis.integrity import Floors, IntegrityReport, PrefixReader, check_integrity
from superionic.analysis.msd import msd_per_atom_components_fft
from superionic.analysis.rdf import RdfResult, partial_rdf
from superionic.analysis.readers import load_ion_positions, open_trajectory
from superionic.validation.errors import ValidationError
from superionic.validation.statistics import diffusive_onset_estimate

# RDFs use at most this many frames (evenly strided): enough for smooth shells, cheap on long runs.
RDF_MAX_FRAMES = 400


# Elements taken as the anion of the ion–anion RDF when none is given (the most abundant one present).
ANIONS = ("S", "O", "Se", "Te", "N", "F", "Cl", "Br", "I", "P")


def pick_anion(composition: dict[str, int], ion: str) -> str | None:
    candidates = [s for s in composition if s in ANIONS and s != ion]
    if not candidates:
        return None
    return max(candidates, key=lambda s: (composition[s], -ANIONS.index(s)))


@dataclass
class RdfSettings:
    """The ion–anion and ion–ion RDFs (``anion`` None picks the most abundant of ``ANIONS``), then,
    with ``framework``, every other pair of elements: the framework the ion moves through."""

    ion: str = "Li"
    anion: str | None = None
    r_max_A: float = 6.0
    bin_width_A: float = 0.05
    n_blocks: int = 5
    framework: bool = True

    def ion_pairs(self, composition: dict[str, int]) -> list[tuple[str, str]]:
        anion = self.anion or pick_anion(composition, self.ion)
        return ([(self.ion, anion)] if anion else []) + [(self.ion, self.ion)]

    def pairs(self, composition: dict[str, int]) -> list[tuple[str, str]]:
        pairs = self.ion_pairs(composition)
        if self.framework:
            others = sorted(s for s in composition if s != self.ion)
            pairs += [(a, b) for i, a in enumerate(others) for b in others[i:]]
        return pairs


@dataclass
class RunTransport:
    """One run's ion transport (and structure): everything the comparison needs, nothing more."""

    label: str  # "model" or "reference"
    source: str
    temperature_K: float
    ion: str
    times_ps: np.ndarray  # [T], starting at 0
    per_atom_msd_A2: np.ndarray  # [N_ion, T, 3]
    diffusion: DiffusionResult | None
    not_diffusive: str | None  # the analysis' message when D is not determined
    onset: dict[str, Any] | None  # diffusive_onset_estimate, when not diffusive
    rule: WindowRule
    rdfs: dict[str, RdfResult] = field(default_factory=dict)
    n_atoms: int = 0
    volume_A3: float = float("nan")
    composition: dict[str, int] = field(default_factory=dict)
    # The framework check against the reference's floors (model runs), and the closest approach of
    # every element pair over the whole file (analysis.integrity; names as pair_key gives them).
    integrity: IntegrityReport | None = None
    closest_A: dict[str, float] = field(default_factory=dict)

    @property
    def duration_ps(self) -> float:
        return float(self.times_ps[-1] - self.times_ps[0])

    @property
    def msd_A2(self) -> np.ndarray:
        """Atom-averaged 3D MSD [T]."""
        return self.per_atom_msd_A2.sum(axis=2).mean(axis=0)

    @classmethod
    def from_arrays(
        cls,
        label: str,
        positions: np.ndarray,
        times_ps: np.ndarray,
        temperature_K: float,
        *,
        ion: str = "Li",
        rule: WindowRule | None = None,
        n_bootstrap: int = 1000,
        seed: int = 0,
        source: str = "<arrays>",
    ) -> RunTransport:
        """From unwrapped, drift-corrected ion positions [T, N, 3] (Å) and times (ps)."""
        rule = rule or WindowRule()
        times = np.asarray(times_ps, dtype=np.float64)
        per_atom = msd_per_atom_components_fft(positions)
        diffusion = None
        message = None
        onset = None
        try:
            diffusion = tracer_diffusion(positions, times, rule=rule, n_bootstrap=n_bootstrap, seed=seed)
        except (NoDiffusiveRegimeError, TrajectoryTooShortError) as err:
            # Reported, never patched: no guessed window, no looser rule behind the user's back.
            message = str(err)
            onset = diffusive_onset_estimate(
                times - times[0],
                per_atom.sum(axis=2).mean(axis=0),
                rule.slope_tolerance,
                rule.persistence_factor,
                rule.end_fraction,
            )
        return cls(
            label=label,
            source=source,
            temperature_K=float(temperature_K),
            ion=ion,
            times_ps=times - times[0],
            per_atom_msd_A2=per_atom,
            diffusion=diffusion,
            not_diffusive=message,
            onset=onset,
            rule=rule,
            n_atoms=int(np.asarray(positions).shape[1]),
        )

    @classmethod
    def from_file(
        cls,
        label: str,
        path: str | Path,
        temperature_K: float,
        *,
        ion: str = "Li",
        rule: WindowRule | None = None,
        rdf: RdfSettings | None = None,
        n_bootstrap: int = 1000,
        seed: int = 0,
        type_names: Sequence[str] | None = None,
        timestep_ps: float | None = None,
        floors: Floors | None = None,
    ) -> RunTransport:
        """From any trajectory the analysis readers take (H5MD, LAMMPS dump, extxyz, XDATCAR).

        With ``floors`` (the reference's, for a model run) the framework is checked first and a
        broken run is measured on its intact frames only, as `superionic analyze` does."""
        reader = open_trajectory(path, type_names=type_names, timestep_ps=timestep_ps)
        integrity = None
        if floors is not None:
            integrity = check_integrity(reader, floors, ion)
            if not integrity.intact:
                first = integrity.first_broken_frame or 0
                if first < 2:
                    return cls._broken_at_once(label, path, temperature_K, ion, rule, reader, integrity)
                reader = PrefixReader(reader, first)
        ions = load_ion_positions(reader, ion)
        try:
            run = cls.from_arrays(
                label,
                np.asarray(ions.positions, dtype=np.float64),
                ions.times_ps,
                temperature_K,
                ion=ion,
                rule=rule,
                n_bootstrap=n_bootstrap,
                seed=seed,
                source=str(path),
            )
            run.volume_A3 = ions.mean_volume_A3
            run.n_atoms = ions.n_atoms_total
        finally:
            ions.close()
        symbols = np.array(reader.header.symbols)
        run.composition = {s: int((symbols == s).sum()) for s in sorted(set(symbols.tolist()))}
        run.integrity = integrity
        if integrity is not None:
            run.closest_A = dict(integrity.closest_A)
        if rdf is not None:
            run.rdfs = _rdfs(reader, rdf)  # a second pass over the same reader: all atoms, strided
        return run

    @classmethod
    def _broken_at_once(
        cls,
        label: str,
        path: str | Path,
        temperature_K: float,
        ion: str,
        rule: WindowRule | None,
        reader,
        integrity: IntegrityReport,
    ) -> RunTransport:
        """A run whose framework is broken in its first frames: nothing of it is measured (a D or an
        RDF of a melted framework means nothing); the comparison reports the breach alone."""
        symbols = np.array(reader.header.symbols)
        n_ion = int((symbols == ion).sum())
        return cls(
            label=label,
            source=str(path),
            temperature_K=float(temperature_K),
            ion=ion,
            times_ps=np.zeros(1),
            per_atom_msd_A2=np.zeros((n_ion, 1, 3)),
            diffusion=None,
            not_diffusive=_no_transport_note(integrity),
            onset=None,
            rule=rule or WindowRule(),
            n_atoms=len(symbols),
            composition={s: int((symbols == s).sum()) for s in sorted(set(symbols.tolist()))},
            integrity=integrity,
            closest_A=dict(integrity.closest_A),
        )

    @property
    def broken_at_once(self) -> bool:
        return self.integrity is not None and not self.integrity.intact and self.times_ps.size < 2


def _no_transport_note(integrity: IntegrityReport) -> str:
    return f"{integrity.summary()}; no intact frames: the model left its training data at once"


def _rdfs(reader, settings: RdfSettings) -> dict[str, RdfResult]:
    """Partial RDFs over at most RDF_MAX_FRAMES evenly strided frames of the whole trajectory."""
    symbols = np.array(reader.header.symbols)
    stride = max(1, -(-reader.header.n_frames // RDF_MAX_FRAMES))
    positions, cells = [], []
    frame = 0
    for block in reader.blocks():
        for k in range(block.positions.shape[0]):
            if frame % stride == 0:
                positions.append(block.positions[k])
                cells.append(block.cells[k])
            frame += 1
    array, cell_array = np.array(positions), np.array(cells)
    out = {}
    composition = {s: int((symbols == s).sum()) for s in set(symbols.tolist())}
    for a, b in settings.pairs(composition):
        missing = [s for s in (a, b) if s not in symbols]
        if missing:
            raise ValidationError(
                f"{reader.header.path}: no {missing[0]} atoms for the {a}–{b} RDF; the trajectory holds "
                f"{', '.join(sorted(set(symbols.tolist())))}: pass --anion with one of them"
            )
        out[f"{a}-{b}"] = partial_rdf(
            array,
            symbols,
            cell_array,
            (a, b),
            r_max_A=settings.r_max_A,
            bin_width_A=settings.bin_width_A,
            n_blocks=min(settings.n_blocks, array.shape[0]),
        )
    return out
