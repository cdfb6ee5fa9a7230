"""Lesson 4, locality: how far away can an atom be and still move the force on another?

For every central atom c, one Gaussian displacement field δ (σ per Cartesian component) is drawn
for the whole cell; at each radius r only the atoms whose minimum-image distance from c exceeds r
are displaced by it, and the change |ΔF_c| of the force on c is recorded. The perturbations are
nested (a smaller r displaces a superset of atoms with the same δ), so a curve is a property of the
model rather than of fresh noise at every radius. Every model sees the same centres and the same
draws, so labeller and trained model are compared on identical perturbations.

The curve (mean and 95th percentile of |ΔF_c| over centres and draws, per species) is read against
the force scale of the structure: the RMS of the per-atom force magnitude of the unperturbed cell.
The locality radius is the smallest radius from which the 95th percentile stays below
``threshold`` × F_RMS at every larger radius studied. A strictly local model that sees every atom
within that radius of the central atom can represent everything the reference does beyond the
threshold, so that radius is the recommended cutoff.

The radii must fit in half the narrowest width of the cell (otherwise an atom beyond r would also
have an image within r); :func:`repeat_for_radius` gives the smallest supercell that allows a
radius.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.geometry import get_distances

__all__ = [
    "LocalityCurve",
    "LocalityError",
    "LocalityResult",
    "LocalitySettings",
    "ModelLocality",
    "ModelUnderTest",
    "half_width",
    "load_structure",
    "locality_study",
    "merge_results",
    "read_result",
    "repeat_for_radius",
    "resolve_model",
    "write_outputs",
]

# Below this force RMS (eV/Å) the structure is (close to) a perfect crystal: a threshold relative
# to it would be meaningless. MD frames of these electrolytes at 300-1200 K have ~0.5-1.5 eV/Å.
MIN_FORCE_RMS = 0.02


class LocalityError(ValueError):
    """Settings or input the locality study cannot run; the message names the fix."""


@dataclass(frozen=True)
class LocalitySettings:
    radii: tuple[float, ...]
    sigma: float = 0.05
    draws: int = 2
    centres_per_species: int = 2
    species: tuple[str, ...] | None = None
    threshold: float = 0.01
    rattle: float = 0.0
    seed: int = 0

    def check(self) -> None:
        if not self.radii or any(r <= 0 for r in self.radii):
            raise LocalityError("radii must be positive, e.g. --radii 2 3 4 5 6 7 8")
        if self.sigma <= 0:
            raise LocalityError(f"--sigma {self.sigma}: the displacement must be positive (Å)")
        if self.draws < 1 or self.centres_per_species < 1:
            raise LocalityError("--draws and --centres must be at least 1")
        if not 0 < self.threshold < 1:
            raise LocalityError(f"--threshold {self.threshold}: give a fraction of the force RMS, e.g. 0.01")
        if self.rattle < 0:
            raise LocalityError(f"--rattle {self.rattle}: must be >= 0 (Å)")


@dataclass
class ModelUnderTest:
    """An ASE calculator and what it is; ``force_range`` is where its forces provably stop (Å)."""

    name: str
    description: str
    calculator: Calculator
    force_range: float | None = None


@dataclass(frozen=True)
class LocalityCurve:
    species: str
    radius_A: list[float]
    samples: int
    mean_eV_per_A: list[float]
    p95_eV_per_A: list[float]
    max_eV_per_A: list[float]
    mean_rel: list[float]
    p95_rel: list[float]
    locality_radius_A: float | None


@dataclass
class ModelLocality:
    name: str
    description: str
    force_range_A: float | None
    force_rms_eV_per_A: float
    evaluations: int
    wall_s: float
    curves: list[LocalityCurve]
    locality_radius_A: float | None
    recommended_cutoff_A: float | None


@dataclass
class LocalityResult:
    structure: dict
    settings: dict
    centres: dict[str, list[int]]
    models: list[ModelLocality] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def half_width(cell: np.ndarray) -> float:
    """Half the smallest distance between opposite faces of the cell (Å)."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return 0.5 * min(widths)


def repeat_for_radius(atoms: Atoms, radius: float) -> tuple[int, int, int]:
    """The smallest repetition of ``atoms`` whose half-width is at least ``radius``."""
    cell = np.asarray(atoms.cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return tuple(max(1, math.ceil(2 * radius / w - 1e-9)) for w in widths)  # type: ignore[return-value]


def load_structure(spec: str) -> Atoms:
    """A built-in material name (LGPS, LLZO, LYC), or any ASE-readable file, ``file@index`` for a frame."""
    from superionic.data.materials import MATERIALS, MaterialError, build_structure

    if spec in MATERIALS:
        try:
            return build_structure(spec)
        except MaterialError as err:
            raise LocalityError(str(err)) from err
    import ase.io

    path, index = spec, -1
    if "@" in spec:
        head, tail = spec.rsplit("@", 1)
        try:
            path, index = head, int(tail)
        except ValueError:
            pass
    if not Path(path).exists():
        raise LocalityError(
            f"{path}: no such structure file; give a CIF/POSCAR/extxyz path or one of {', '.join(MATERIALS)}"
        )
    try:
        atoms = ase.io.read(path, index=index)
    except Exception as err:  # ASE raises many types for unreadable files
        raise LocalityError(f"{path}: not a structure ASE can read ({err})") from err
    if not isinstance(atoms, Atoms) or not atoms.pbc.all():
        raise LocalityError(f"{spec}: the locality study needs one periodic structure (pbc in x, y and z)")
    atoms.calc = None
    return atoms


def resolve_model(spec: str, device: str = "cpu") -> ModelUnderTest:
    """A labeller name (sevennet, chgnet) or a model file (.pt, .pt2, .ckpt)."""
    from superionic.data.labellers import LABELLERS, LabellerError, make_labeller

    if spec.strip().lower() in LABELLERS:
        try:
            labeller = make_labeller(spec, device)
        except LabellerError as err:
            raise LocalityError(str(err)) from err
        return ModelUnderTest(labeller.model, labeller.version, labeller.calculator)
    path = Path(spec)
    if not path.exists():
        raise LocalityError(
            f"{spec}: neither a labeller ({', '.join(LABELLERS)}) "
            "nor an existing model file (.pt, .pt2, .ckpt)"
        )
    from superionic.calculator import SuperionicCalculator

    calc = SuperionicCalculator(path, device=device)
    cutoff = calc.loaded.cutoff
    if path.suffix in (".pt", ".pt2"):
        from superionic.export import read_metadata

        receptive = read_metadata(path).receptive_field
    else:  # a checkpoint: the eager model carries the contract's attributes
        receptive = float(calc.loaded.forward.receptive_field)
    # The force on c sums dE_i/dr_c over every atom i that sees c; E_i sees its own receptive field,
    # so atoms up to twice the receptive field from c can move F_c (many-body terms).
    return ModelUnderTest(
        path.stem,
        f"{path.name} (cutoff {cutoff:g} Å, receptive field {receptive:g} Å)",
        calc,
        force_range=2 * receptive,
    )


def _forces(calculator: Calculator, atoms: Atoms, positions: np.ndarray) -> np.ndarray:
    probe = atoms.copy()
    probe.positions = positions
    probe.calc = calculator
    return np.asarray(probe.get_forces(), dtype=float)


def _pick_centres(atoms: Atoms, settings: LocalitySettings) -> dict[str, list[int]]:
    symbols = atoms.get_chemical_symbols()
    present = list(dict.fromkeys(symbols))
    wanted = list(settings.species) if settings.species else present
    missing = [s for s in wanted if s not in present]
    if missing:
        raise LocalityError(
            f"--species {' '.join(missing)}: not in the structure (it holds {', '.join(present)})"
        )
    rng = np.random.default_rng(settings.seed)
    centres = {}
    for element in wanted:
        indices = np.flatnonzero(np.array(symbols) == element)
        take = min(settings.centres_per_species, len(indices))
        centres[element] = sorted(int(i) for i in rng.choice(indices, size=take, replace=False))
    return centres


def _locality_radius(radii: Sequence[float], rel: Sequence[float], threshold: float) -> float | None:
    """Smallest radius from which ``rel`` stays below ``threshold`` at every larger radius."""
    found = None
    for r, value in sorted(zip(radii, rel, strict=True), reverse=True):
        if value >= threshold:
            break
        found = r
    return found


def locality_study(
    atoms: Atoms,
    models: Sequence[ModelUnderTest],
    settings: LocalitySettings,
    on_step: Callable[[str, int, int], None] | None = None,
) -> LocalityResult:
    """Force change on central atoms against the radius beyond which atoms are displaced.

    ``on_step(model name, evaluations done, evaluations in total)`` reports progress.
    """
    settings.check()
    radii = sorted(float(r) for r in settings.radii)
    limit = half_width(atoms.cell)
    if radii[-1] > limit + 1e-9:
        need = repeat_for_radius(atoms, radii[-1])
        raise LocalityError(
            f"radius {radii[-1]:g} Å exceeds half the cell width ({limit:.2f} Å), so atoms beyond it would "
            f"have images within it; use a larger cell (--repeat {' '.join(map(str, need))}) or smaller radii"
        )
    base = atoms.copy()
    base.calc = None
    if settings.rattle > 0:
        rng = np.random.default_rng([settings.seed, 7])
        base.positions = base.positions + rng.normal(0.0, settings.rattle, base.positions.shape)
    centres = _pick_centres(base, settings)
    n = len(base)
    # One displacement field per (centre, draw), shared by every model and every radius.
    fields: dict[tuple[int, int], np.ndarray] = {}
    distances: dict[int, np.ndarray] = {}
    for indices in centres.values():
        for c in indices:
            _, d = get_distances(base.positions[c], base.positions, cell=base.cell, pbc=base.pbc)
            distances[c] = d[0]
            for k in range(settings.draws):
                fields[c, k] = np.random.default_rng([settings.seed, c, k]).normal(
                    0.0, settings.sigma, (n, 3)
                )

    result = LocalityResult(
        structure={
            # The frame's own provenance first (material, labeller, temperature), then the cell studied.
            "formula": base.get_chemical_formula(empirical=True),
            **{k: v for k, v in base.info.items() if isinstance(v, str | int | float | list)},
            "cell_formula": base.get_chemical_formula(),
            "atoms": n,
            "cell_lengths_A": [float(x) for x in base.cell.lengths()],
            "half_width_A": limit,
        },
        settings={**asdict(settings), "radii": radii},
        centres=centres,
    )
    total = 1 + len(fields) * len(radii)
    for model in models:
        start = time.perf_counter()
        reference = _forces(model.calculator, base, base.positions)
        force_rms = float(np.sqrt(np.mean(np.sum(reference**2, axis=1))))
        if force_rms < MIN_FORCE_RMS:
            raise LocalityError(
                f"{model.name}: the force RMS of the structure is {force_rms:.2g} eV/Å (a relaxed or ideal "
                "crystal); give an MD frame (file@index) or displace it first with --rattle 0.1"
            )
        done = 1
        if on_step:
            on_step(model.name, done, total)
        changes: dict[str, list[list[float]]] = {e: [[] for _ in radii] for e in centres}
        for element, indices in centres.items():
            for c in indices:
                for k in range(settings.draws):
                    for j, r in enumerate(radii):
                        moved = (distances[c] > r)[:, None]
                        forces = _forces(model.calculator, base, base.positions + fields[c, k] * moved)
                        changes[element][j].append(float(np.linalg.norm(forces[c] - reference[c])))
                        done += 1
                        if on_step:
                            on_step(model.name, done, total)
        curves = []
        for element, per_radius in changes.items():
            values = [np.asarray(v) for v in per_radius]
            mean = [float(v.mean()) for v in values]
            p95 = [float(np.percentile(v, 95)) for v in values]
            p95_rel = [p / force_rms for p in p95]
            curves.append(
                LocalityCurve(
                    species=element,
                    radius_A=radii,
                    samples=len(values[0]),
                    mean_eV_per_A=mean,
                    p95_eV_per_A=p95,
                    max_eV_per_A=[float(v.max()) for v in values],
                    mean_rel=[m / force_rms for m in mean],
                    p95_rel=p95_rel,
                    locality_radius_A=_locality_radius(radii, p95_rel, settings.threshold),
                )
            )
        per_species = [c.locality_radius_A for c in curves]
        overall = None if any(r is None for r in per_species) else max(per_species)  # type: ignore[type-var]
        result.models.append(
            ModelLocality(
                name=model.name,
                description=model.description,
                force_range_A=model.force_range,
                force_rms_eV_per_A=force_rms,
                evaluations=done,
                wall_s=time.perf_counter() - start,
                curves=curves,
                locality_radius_A=overall,
                # Rounded up to the next 0.5 Å: cutoffs are chosen on that grid in practice.
                recommended_cutoff_A=None if overall is None else math.ceil(2 * overall) / 2,
            )
        )
    return result


def read_result(path: str | Path) -> LocalityResult:
    """A ``locality.json`` written by :func:`write_outputs`, back as a :class:`LocalityResult`."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        models = [
            ModelLocality(**{**m, "curves": [LocalityCurve(**c) for c in m["curves"]]}) for m in raw["models"]
        ]
        return LocalityResult(raw["structure"], raw["settings"], raw["centres"], models)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LocalityError(
            f"{path}: not a locality.json written by superionic study locality ({err})"
        ) from err


def merge_results(result: LocalityResult, earlier: LocalityResult, source: str) -> LocalityResult:
    """``result`` with the models of ``earlier`` first; both must share structure, settings and centres."""

    def key(r: LocalityResult) -> str:
        structure = {k: r.structure.get(k) for k in ("formula", "atoms", "cell_lengths_A")}
        return json.dumps([structure, r.settings, r.centres], sort_keys=True, default=list)

    if key(result) != key(earlier):
        raise LocalityError(
            f"{source}: made with another structure, settings or seed; rerun it with the same "
            "structure, --repeat, --radii, --sigma, --draws, --centres, --species, --rattle and --seed"
        )
    names = {m.name for m in result.models}
    kept = [m for m in earlier.models if m.name not in names]
    return LocalityResult(result.structure, result.settings, result.centres, kept + result.models)


def write_outputs(result: LocalityResult, out: str | Path, stem: str = "locality") -> dict[str, Path]:
    """``stem``.json (everything), ``stem``.csv (one row per model, species, radius), ``stem``.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "csv": out / f"{stem}.csv", "png": out / f"{stem}.png"}
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                *("model", "species", "radius_A", "samples"),
                *("mean_eV_per_A", "p95_eV_per_A", "max_eV_per_A", "mean_rel_force_rms", "p95_rel_force_rms"),
            ]
        )
        for model in result.models:
            for c in model.curves:
                for j, r in enumerate(c.radius_A):
                    writer.writerow(
                        [model.name, c.species, r, c.samples]
                        + [f"{x:.6g}" for x in (c.mean_eV_per_A[j], c.p95_eV_per_A[j], c.max_eV_per_A[j])]
                        + [f"{x:.6g}" for x in (c.mean_rel[j], c.p95_rel[j])]
                    )
    plot_locality(result, paths["png"])
    return paths


# Log axes cannot show an exact zero (a model beyond its force range): such points sit on this floor.
PLOT_FLOOR = 1e-7


def plot_locality(result: LocalityResult, path: Path) -> Path:
    """One panel per model: 95th percentile (solid) and mean (dashed) of |ΔF|/F_RMS against r."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.models)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4), sharey=True, squeeze=False)
    threshold = result.settings["threshold"]
    for ax, model in zip(axes[0], result.models, strict=True):
        for k, c in enumerate(model.curves):
            colour = f"C{k}"
            ax.semilogy(c.radius_A, np.maximum(c.p95_rel, PLOT_FLOOR), "o-", color=colour, label=c.species)
            ax.semilogy(c.radius_A, np.maximum(c.mean_rel, PLOT_FLOOR), "--", color=colour, alpha=0.6)
        ax.axhline(threshold, color="k", lw=0.8, ls=":", label=f"{100 * threshold:g} % of F_RMS")
        if model.locality_radius_A is not None:
            ax.axvline(model.locality_radius_A, color="grey", lw=0.8)
        found = model.locality_radius_A
        radius = f"r* = {found:g} Å" if found is not None else f"r* > {max(result.settings['radii']):g} Å"
        ax.set_title(f"{model.name}: {radius}", fontsize=10)
        ax.set_xlabel("radius beyond which atoms are displaced (Å)")
    axes[0][0].set_ylabel("|ΔF| on the central atom / F_RMS")
    axes[0][0].legend(fontsize=8, title=f"σ = {result.settings['sigma']} Å; solid p95, dashed mean")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_table(result: LocalityResult) -> list[dict]:
    """One row per model and species: where the change falls below the threshold."""
    rows = []
    for model in result.models:
        for c in model.curves:
            rows.append(
                {
                    "model": model.name,
                    "species": c.species,
                    "locality_radius_A": c.locality_radius_A,
                    "p95_rel_at_largest_radius": c.p95_rel[-1],
                    "force_rms_eV_per_A": model.force_rms_eV_per_A,
                }
            )
    return rows


def verdict(result: LocalityResult) -> str:
    """One sentence: the locality radius of each model, or how far it stays above the threshold."""
    threshold = 100 * result.settings["threshold"]
    r_max = result.settings["radii"][-1]
    reached = [f"r = {m.locality_radius_A:g} Å for {m.name}" for m in result.models if m.locality_radius_A]

    def tail(m: ModelLocality) -> str:
        last = [100 * c.p95_rel[-1] for c in m.curves]
        return f"{min(last):.2g}–{max(last):.2g} %"

    above = [
        f"{m.name} stays above it up to {r_max:g} Å ({tail(m)} there, 95th percentile by species)"
        for m in result.models
        if m.locality_radius_A is None
    ]
    text = f"The force change on the central atom drops below {threshold:g} % of the force RMS"
    if reached:
        text += " at " + " and ".join(reached)
        if above:
            text += "; " + "; ".join(above)
    else:
        text += " nowhere within the radii studied: " + "; ".join(above)
    return text + "."
