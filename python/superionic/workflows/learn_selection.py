"""Which MD frames active learning labels: the deviation band, the spacing rule and the statistics.

A committee's force deviation ``max_devi_f`` (eV/Å, the largest per-atom spread of the members'
forces) sorts every deviation step into three groups, as DP-GEN does:

* below ``lo``: the members agree to within their own noise; the model knows this configuration
  and labelling it adds nothing.
* in the band ``lo <= max_devi_f <= hi``: the members disagree, but not wildly; these are the
  candidates, configurations the data do not cover yet that are still physical.
* above ``hi``: the members disagree so much that the configuration is most likely unphysical
  (atoms too close, a run that is blowing up); labelling it would teach the model an artefact.

An excursion above ``hi`` is not discarded, though: the frames just before its deviation crosses
``hi`` are where the model starts to leave its data, still physical, and labelling them fills the
hole the excursion runs into (otherwise the next round finds it again, docs/guard.md). They are
taken before any other candidate of the run.

The *uncertain fraction* of a run is the fraction of its production deviation steps with
``max_devi_f > threshold``, the threshold being ``lo`` unless stated. It is DP-GEN's convergence
measure (1 − its "accurate ratio"): a step above ``lo`` is one the data do not cover, whether it is
a candidate or beyond ``hi``, so the fraction falls only when the data cover what the MD visits.
Equilibration steps are left out: the trajectory (and so every frame that can be labelled) starts
after them, and their deviations describe the start-up, not the sampling at the temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Band:
    """The deviation band (eV/Å) and the threshold of the uncertain fraction."""

    lo: float
    hi: float
    threshold: float | None = None  # None: lo

    @property
    def uncertain_above(self) -> float:
        return self.lo if self.threshold is None else self.threshold


@dataclass(frozen=True)
class DeviationSeries:
    """One run's deviation steps (ascending, one row per step) and what each step's deviation is."""

    step: np.ndarray  # int64
    max_devi_f: np.ndarray  # eV/Å
    min_devi_f: np.ndarray
    avg_devi_f: np.ndarray
    devi_e: np.ndarray  # eV/atom

    @classmethod
    def from_columns(cls, step, max_devi_f, min_devi_f, avg_devi_f, devi_e) -> DeviationSeries:
        """Rows sorted by step; a step written twice (a resumed run) keeps its last row."""
        step = np.asarray(step, dtype=np.int64)
        columns = [np.asarray(c, dtype=np.float64) for c in (max_devi_f, min_devi_f, avg_devi_f, devi_e)]
        # The last occurrence of each step: unique over the reversed rows finds it first.
        _, first_reversed = np.unique(step[::-1], return_index=True)
        keep = np.sort(len(step) - 1 - first_reversed)
        order = keep[np.argsort(step[keep], kind="stable")]
        return cls(step[order], *(c[order] for c in columns))

    def production(self, eq_steps: int) -> DeviationSeries:
        mask = self.step >= eq_steps
        return DeviationSeries(
            self.step[mask],
            self.max_devi_f[mask],
            self.min_devi_f[mask],
            self.avg_devi_f[mask],
            self.devi_e[mask],
        )

    def __len__(self) -> int:
        return int(self.step.shape[0])

    def row(self, step: int) -> dict[str, float]:
        k = int(np.searchsorted(self.step, step))
        if k >= len(self) or int(self.step[k]) != step:
            raise KeyError(step)
        return {
            "max_devi_f": float(self.max_devi_f[k]),
            "min_devi_f": float(self.min_devi_f[k]),
            "avg_devi_f": float(self.avg_devi_f[k]),
            "devi_e": float(self.devi_e[k]),
        }


@dataclass(frozen=True)
class Candidate:
    temperature_K: float
    step: int
    max_devi_f: float
    onset: bool = False  # one of the last frames before an excursion above hi


def uncertain_fraction(values: np.ndarray, band: Band) -> float:
    """Fraction of deviation steps with max_devi_f > the band's threshold (NaN for no steps)."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.mean(values > band.uncertain_above)) if values.size else float("nan")


def deviation_statistics(series: DeviationSeries, band: Band) -> dict[str, float | int]:
    """Per-run numbers for the round record: counts, mean/max, the fractions below/in/above the band."""
    d = series.max_devi_f
    n = int(d.size)
    if n == 0:
        return {"deviation_steps": 0}
    return {
        "deviation_steps": n,
        "max_devi_f_mean": float(d.mean()),
        "max_devi_f_max": float(d.max()),
        "max_devi_f_median": float(np.median(d)),
        "avg_devi_f_mean": float(series.avg_devi_f.mean()),
        "devi_e_mean": float(series.devi_e.mean()),
        "threshold": band.uncertain_above,
        "uncertain_fraction": uncertain_fraction(d, band),
        "fraction_below_lo": float(np.mean(d < band.lo)),
        "fraction_in_band": float(np.mean((d >= band.lo) & (d <= band.hi))),
        "fraction_above_hi": float(np.mean(d > band.hi)),
    }


def band_candidates(
    series: DeviationSeries, frame_steps: Sequence[int] | np.ndarray, band: Band, temperature_K: float
) -> list[Candidate]:
    """Steps that are both deviation steps and trajectory frames, with lo <= max_devi_f <= hi."""
    frames = np.asarray(frame_steps, dtype=np.int64)
    on_frame = np.isin(series.step, frames)
    in_band = (series.max_devi_f >= band.lo) & (series.max_devi_f <= band.hi)
    picked = np.flatnonzero(on_frame & in_band)
    return [Candidate(temperature_K, int(series.step[k]), float(series.max_devi_f[k])) for k in picked]


def onset_candidates(
    series: DeviationSeries,
    frame_steps: Sequence[int] | np.ndarray,
    band: Band,
    temperature_K: float,
    per_excursion: int = 2,
) -> list[Candidate]:
    """For each excursion (the deviation crossing from <= hi to > hi), the last ``per_excursion``
    trajectory frames before the crossing whose deviation is still <= hi."""
    frames = np.isin(series.step, np.asarray(frame_steps, dtype=np.int64))
    above = series.max_devi_f > band.hi
    crossings = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    out: list[Candidate] = []
    for k in crossings:
        before = [j for j in range(k - 1, -1, -1) if frames[j] and not above[j]][:per_excursion]
        out += [
            Candidate(temperature_K, int(series.step[j]), float(series.max_devi_f[j]), True) for j in before
        ]
    unique = {c.step: c for c in out}
    return sorted(unique.values(), key=lambda c: c.step)


def spaced(candidates: Sequence[Candidate], min_gap_steps: int) -> list[Candidate]:
    """The candidates of one run, onsets of excursions first, then largest deviation first,
    skipping any closer than ``min_gap_steps`` to one already taken: consecutive frames of one run
    are nearly the same configuration, so a second one costs a label and teaches little."""
    taken: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: (not c.onset, -c.max_devi_f, c.step)):
        if all(abs(candidate.step - t.step) >= min_gap_steps for t in taken):
            taken.append(candidate)
    return taken


def select_frames(
    per_temperature: Sequence[Sequence[Candidate]], max_frames: int, min_gap_steps: int
) -> list[Candidate]:
    """At most ``max_frames`` frames over all temperatures: each run's spaced candidates in order of
    deviation, taken one per temperature in turn, so that no temperature's many candidates crowd
    out another's few. Returned in (temperature order, step) order."""
    queues = [spaced(c, min_gap_steps) for c in per_temperature]
    chosen: list[Candidate] = []
    depth = 0
    while len(chosen) < max_frames and any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue) and len(chosen) < max_frames:
                chosen.append(queue[depth])
        depth += 1
    rank = {id(c): (t, 0) for t, q in enumerate(queues) for c in q}
    return sorted(chosen, key=lambda c: (rank[id(c)][0], c.step))
