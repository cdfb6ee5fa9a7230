"""Committee models in Python: the exported manifest, the force deviation, and LAMMPS's devi file.

The force deviation is DeePMD's model_devi, the same definition ``pair_style superionic committee``
uses: with F_i^k the force of member k on atom i,

    sigma_i = sqrt( (1/K) sum_k |F_i^k - mean_k F_i^k|^2 )

and the frame's max, mean and min of sigma_i over atoms; devi_e = std_k(E^k) / N (population std of
the total energy over members, eV/atom). ``force_deviation`` is the independent reference the
LAMMPS committee is tested against.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from ase import Atoms

from superionic.calculator import LoadedModel, load_model, run_contract
from superionic.data.graph import build_graph
from superionic.export import COMMITTEE_NAME, read_metadata
from superionic.md.driver import MdError
from superionic.modelfile import ModelFileError

DEVI_COLUMNS = ("step", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e")
# Fields the members must share so that one neighbour list and one type map serve all of them.
SHARED = ("species", "cutoff", "receptive_field")
EXPORT_HINT = "export the committee again with `superionic export OUTPUT/committee.json -o DIR`"


def read_committee(path: str | Path) -> list[Path]:
    """The member files of an exported ``committee.json`` (or a directory holding one), member 0 first.

    Member 0 is the one that drives the dynamics (``driving_member`` in the manifest, 0 when absent).
    """
    manifest = Path(path)
    if manifest.is_dir():
        manifest = manifest / COMMITTEE_NAME
        if not manifest.exists():
            raise ModelFileError(f"{path}: no {COMMITTEE_NAME} inside this directory; {EXPORT_HINT}")
    if not manifest.exists():
        raise ModelFileError(f"{manifest}: no such committee manifest; {EXPORT_HINT}")
    try:
        body = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{manifest}: not a JSON committee manifest ({err}); {EXPORT_HINT}") from err
    members = body.get("members") if isinstance(body, dict) else None
    if isinstance(members, int) and "checkpoints" in body:
        raise ModelFileError(
            f"{manifest}: a training committee (checkpoints), not an exported one; export it first: "
            f"superionic export {manifest} -o DIR, then give DIR/{COMMITTEE_NAME}"
        )
    if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
        raise ModelFileError(
            f"{manifest}: field 'members' must list the member model files (member_0.pt, ...); {EXPORT_HINT}"
        )
    if len(members) < 2:
        raise ModelFileError(
            f"{manifest}: field 'members' lists {len(members)} model; a committee needs >= 2 members"
        )
    paths = [(manifest.parent / m).resolve() for m in members]
    for k, member in enumerate(paths):
        if not member.exists():
            raise ModelFileError(
                f"{manifest}: members[{k}] = {members[k]}: no such file ({member}); {EXPORT_HINT}"
            )
    driving = body.get("driving_member", 0)
    if not isinstance(driving, int) or not 0 <= driving < len(paths):
        raise ModelFileError(
            f"{manifest}: field 'driving_member' = {driving!r} is not a member index 0..{len(paths) - 1}; "
            "e.g. driving_member: 0"
        )
    return [paths[driving], *paths[:driving], *paths[driving + 1 :]]


def check_members(paths: Sequence[str | Path]) -> None:
    """All members share species, cutoff and receptive field, or one MdError naming both files."""
    metas = [read_metadata(p) for p in paths]
    for k in range(1, len(metas)):
        for name in SHARED:
            mine, first = getattr(metas[k], name), getattr(metas[0], name)
            if mine != first:
                raise MdError(
                    f"committee member {paths[k]} has {name} {mine} but member 0 {paths[0]} has {first}; "
                    "a committee's members must share it: export them from one committee training"
                )


@dataclass(frozen=True)
class Deviation:
    per_atom: np.ndarray  # [N] sigma_i, eV/Å
    max: float
    mean: float
    min: float
    devi_e: float  # eV/atom
    forces: np.ndarray  # [K, N, 3] eV/Å, member by member
    energies: np.ndarray  # [K] eV


def load_members(paths: Sequence[str | Path]) -> list[LoadedModel]:
    """Members loaded once, for evaluating many frames."""
    if len(paths) < 2:
        raise MdError(f"a committee needs >= 2 members, got {len(paths)}: {', '.join(map(str, paths))}")
    return [load_model(p) for p in paths]


def deviation_of(forces: np.ndarray, energies: np.ndarray) -> Deviation:
    """The deviation of member forces [K, N, 3] and total energies [K]."""
    spread = forces - forces.mean(axis=0)
    per_atom = np.sqrt((spread**2).sum(axis=-1).mean(axis=0))
    n = forces.shape[1]
    return Deviation(
        per_atom=per_atom,
        max=float(per_atom.max()),
        mean=float(per_atom.mean()),
        min=float(per_atom.min()),
        devi_e=float(np.std(energies) / n),
        forces=forces,
        energies=energies,
    )


def force_deviation(members: Sequence[str | Path | LoadedModel], atoms: Atoms) -> Deviation:
    """Evaluate every member on ``atoms`` (periodic as its cell says) and return the deviation."""
    loaded = [m if isinstance(m, LoadedModel) else load_model(m) for m in members]
    if len(loaded) < 2:
        raise MdError(f"a committee needs >= 2 members, got {len(loaded)}")
    forces, energies = [], []
    for model in loaded:
        graph = build_graph(atoms, model.cutoff, model.species)
        result = run_contract(model.forward, graph, model.dtype)
        forces.append(result.forces[: len(atoms)])
        energies.append(result.energy)
    return deviation_of(np.stack(forces), np.asarray(energies))


@dataclass(frozen=True)
class DeviSeries:
    """The deviation steps of a devi file, one row per step (the last line of a repeated step wins)."""

    step: np.ndarray  # int64
    max_devi_f: np.ndarray  # eV/Å
    min_devi_f: np.ndarray  # eV/Å
    avg_devi_f: np.ndarray  # eV/Å
    devi_e: np.ndarray  # eV/atom

    def __len__(self) -> int:
        return len(self.step)

    def fraction_above(self, threshold: float | None) -> float | None:
        if threshold is None or not len(self):
            return None
        return float(np.mean(self.max_devi_f > threshold))

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(DEVI_COLUMNS)
            for k in range(len(self)):
                writer.writerow(
                    [int(self.step[k])] + [repr(float(getattr(self, c)[k])) for c in DEVI_COLUMNS[1:]]
                )
        return path


def _parse_rows(text: str, source: str) -> dict[int, tuple[float, ...]]:
    rows: dict[int, tuple[float, ...]] = {}
    lines = text.split("\n")
    # A last line without its newline is being written right now (or was cut by a kill): not yet a row.
    for number, line in enumerate(lines[:-1], start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        try:
            if len(words) != 5:
                raise ValueError
            step = int(words[0])
            values = tuple(float(w) for w in words[1:])
        except ValueError:
            raise MdError(
                f"{source}:{number}: expected 5 columns '{' '.join(DEVI_COLUMNS)}', got {line.strip()!r}; "
                "the deviation file is damaged: delete that line, or rerun with --overwrite"
            ) from None
        rows[step] = values
    return rows


def _series(rows: dict[int, tuple[float, ...]]) -> DeviSeries:
    steps = np.array(sorted(rows), dtype=np.int64)
    table = np.array([rows[int(s)] for s in steps], dtype=np.float64).reshape(len(steps), 4)
    return DeviSeries(steps, table[:, 0], table[:, 1], table[:, 2], table[:, 3])


def read_devi_file(path: str | Path) -> DeviSeries:
    """``model_devi.out`` as pair_style superionic writes it (header ``# step max_devi_f ...``)."""
    source = Path(path)
    if not source.exists():
        raise MdError(
            f"{source}: no such deviation file; run MD with a committee (superionic md --committee)"
        )
    return _series(_parse_rows(source.read_text(), str(source)))


class DeviFollower:
    """Reads a devi file while LAMMPS appends to it: the newest max deviation and the fraction above."""

    def __init__(self, path: str | Path, threshold: float | None) -> None:
        self.path = Path(path)
        self.threshold = threshold
        self.offset = 0
        self.maxima: dict[int, float] = {}
        self.latest: float | None = None
        self.latest_step: int | None = None

    def update(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data.rfind(b"\n") + 1
        if not complete:
            return
        try:
            rows = _parse_rows(data[:complete].decode(), str(self.path))
        except (MdError, UnicodeDecodeError):
            return  # the final read (read_devi_file) reports a damaged file
        self.offset += complete
        for step, values in rows.items():
            self.maxima[step] = values[0]
            self.latest, self.latest_step = values[0], step

    @property
    def fraction_above(self) -> float | None:
        if self.threshold is None or not self.maxima:
            return None
        return sum(v > self.threshold for v in self.maxima.values()) / len(self.maxima)


def summary(
    series: DeviSeries, threshold: float | None, production_from: int | None = None
) -> dict[str, object]:
    """The statistics each temperature's JSON reports: over every deviation step, and under
    ``production`` over the steps from ``production_from`` on (the trajectory's part; equilibration
    starts from the unrelaxed structure and can hold the run's largest deviations)."""

    def stats(rows: DeviSeries) -> dict[str, float | int | None]:
        finite = rows.max_devi_f[np.isfinite(rows.max_devi_f)]
        return {
            "deviation_steps": len(rows),
            "max_devi_f_max": float(finite.max()) if len(finite) else None,
            "max_devi_f_mean": float(finite.mean()) if len(finite) else None,
            "fraction_above_threshold": rows.fraction_above(threshold),
        }

    block: dict[str, object] = dict(stats(series))
    if production_from is not None:
        keep = series.step >= production_from
        part = DeviSeries(*(getattr(series, f.name)[keep] for f in fields(DeviSeries)))
        block["production"] = {"from_step": int(production_from), **stats(part)}
    return block


__all__ = [
    "DEVI_COLUMNS",
    "DeviFollower",
    "DeviSeries",
    "Deviation",
    "check_members",
    "deviation_of",
    "force_deviation",
    "load_members",
    "read_committee",
    "read_devi_file",
    "summary",
]
