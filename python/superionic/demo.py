"""`superionic demo`: the whole product on the committed LGPS data, end to end.

train a sprinter on data/LGPS/sevennet.extxyz.gz (plus the frames active learning added,
sevennet_learned.extxyz.gz) → export TorchScript → NVT MD in LAMMPS at three temperatures (H5MD
trajectories) → tracer D, σ and Haven ratio per temperature → Arrhenius Ea and 300 K extrapolation →
`validate` against SevenNet-0's own MD at every temperature that has a committed reference run, with
plots and one JSON summary. Budget: about 15 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ase import Atoms
from ase.io import read, write

from superionic.analysis.diffusion import WindowRule
from superionic.analysis.errors import NoDiffusiveRegimeError
from superionic.analysis.report import ArrheniusReport, TransportReport, analyze_trajectory, arrhenius_report
from superionic.export import checkpoint_export_args, export_model
from superionic.md.driver import MdConfig, MdError, run_md
from superionic.train.checkpoint import model_from_checkpoint
from superionic.train.config import config_from_dict
from superionic.train.trainer import Progress, Trainer
from superionic.validation.runner import ValidationRequest, validate, verdict_table

REPO = Path(__file__).resolve().parents[2]
DATA_ENV = "SUPERIONIC_DATA"


def data_dir() -> Path:
    """The committed reference data: ``$SUPERIONIC_DATA``, else ``./data``, else the checkout's ``data/``.

    The data (4.7 MB of labelled frames and reference trajectories) lives in the repository, not in
    the wheel; an installed package finds it through the environment variable or the working
    directory, and says so when it cannot.
    """
    candidates = [Path(os.environ[DATA_ENV])] if os.environ.get(DATA_ENV) else []
    candidates += [Path.cwd() / "data", REPO / "data"]
    for candidate in candidates:
        if (candidate / "LGPS" / "sevennet.extxyz.gz").is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise MdError(
        f"the demo's LGPS data (LGPS/sevennet.extxyz.gz) is not in {tried}; run from a superionic "
        f"checkout or set {DATA_ENV} to its data/ folder"
    )


def lgps_data() -> Path:
    return data_dir() / "LGPS" / "sevennet.extxyz.gz"


def training_files() -> list[Path]:
    """The demo's training data: the 300 planned frames, and the frames `superionic learn` added
    where a committee trained on them disagreed in MD at 1200 and 1500 K (docs/active_learning.md)."""
    learned = lgps_data().parent / "sevennet_learned.extxyz.gz"
    return [lgps_data()] + ([learned] if learned.exists() else [])


def reference_runs(temperatures: Sequence[float]) -> dict[float, Path]:
    """The committed SevenNet-0 reference trajectories at the demo's temperatures."""
    found = {}
    for temperature in temperatures:
        path = lgps_data().parent / f"reference_md_sevennet_{temperature:.0f}K.extxyz.gz"
        if path.exists():
            found[temperature] = path
    return found


@dataclass
class DemoSettings:
    workdir: str = "runs/demo"
    epochs: int = 60
    # 1200 and 1500 K have SevenNet-0 reference runs that turn diffusive within 20 and 10 ps under
    # the window rule (the 900 K one does not in 40 ps), so the model is validated at both; 1050 K
    # adds a third Arrhenius point.
    temperatures_K: Sequence[float] = (1050.0, 1200.0, 1500.0)
    # The labeller reference trajectories' cell (50 atoms, 20 Li, ordering seed 0): the model's D
    # and SevenNet-0's D then differ only by the potential, not by cell size or Li ordering.
    supercell: tuple[int, int, int] = (1, 1, 1)
    # A 20 ps run of 20 Li is noisy: the diffusive window is where the log-log slope stays within
    # 1 ± 0.2 (the library default is ± 0.1), as for the references; recorded in every result.
    slope_tolerance: float = 0.2
    # The reference runs' protocol (2 fs steps, 2 ps of equilibration, a frame every 50 fs, so model
    # and reference are compared at the same lags), but 100 ps of production instead of the
    # teacher's 20: the model's MD costs about a minute here, and at 20 ps its own D scattered by
    # ±30 % from run to run, as much as the difference being judged.
    md_steps: int = 51_000
    eq_steps: int = 1_000
    dump_every: int = 25
    nprocs: int = 1  # a 50-atom cell gains nothing from a domain split ...
    parallel: int = 2  # ... so the two cores run two temperatures side by side
    seed: int = 0
    backend: str = "auto"  # pair_style superionic backend; "torch" times the path before the kernel


def reference_cell(supercell: tuple[int, int, int] = (1, 1, 1)) -> Atoms:
    """The starting cell of the labeller's reference trajectories (``reference_md_start.extxyz``:
    their Li ordering on the ideal sites, as the reference runs began), so the model's D and
    SevenNet-0's D differ only by the potential."""
    atoms = read(lgps_data().parent / "reference_md_start.extxyz", index=0)
    atoms.info.clear()
    return atoms.repeat(supercell)


@dataclass
class DemoSummary:
    validation_force_rmse_eV_per_A: float
    validation_energy_rmse_meV_per_atom: float
    model: str
    transport: list[dict]
    arrhenius: dict
    wall_s: dict[str, float]
    not_diffusive: list[str]
    reference: dict | None  # the labeller's own D at the highest temperature, when committed
    training_files: list[str]
    validation: dict | None  # `validate` against the committed reference runs (validation.json)
    validation_table: list[str]


def reference_comparison(reports: Sequence[TransportReport]) -> dict | None:
    """The demo's D at its highest temperature beside the committed SevenNet-0 reference run at that
    temperature (data/LGPS/reference_md_sevennet_<T>K.json), if there is one."""
    if not reports:
        return None
    hottest = max(reports, key=lambda r: r.temperature_K)
    path = lgps_data().parent / f"reference_md_sevennet_{hottest.temperature_K:.0f}K.json"
    if not path.exists():
        return None
    reference = json.loads(path.read_text())
    if reference.get("D_Li_cm2_per_s") is None:
        return None
    low, high = reference["D_Li_ci95_cm2_per_s"]
    block = reference.get("D_Li_block_average_ci95_cm2_per_s")
    model = hottest.tracer["diffusion_cm2_per_s"]
    return {
        "temperature_K": hottest.temperature_K,
        "model_D_cm2_per_s": model,
        "model_ci95_cm2_per_s": list(hottest.tracer["ci95_cm2_per_s"]),
        "reference_file": str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path),
        "reference_D_cm2_per_s": reference["D_Li_cm2_per_s"],
        "reference_ci95_cm2_per_s": [low, high],
        "reference_block_average_ci95_cm2_per_s": block,
        "inside_reference_ci95": bool(low <= model <= high),
    }


def run_demo(
    settings: DemoSettings,
    on_stage: Callable[[str], None] = lambda stage: None,
    on_train: Callable[[Progress], None] | None = None,
    on_md: Callable[[float, int, int], None] | None = None,
) -> DemoSummary:
    work = Path(settings.workdir)
    work.mkdir(parents=True, exist_ok=True)
    wall: dict[str, float] = {}

    on_stage("train")
    start = time.perf_counter()
    config = config_from_dict(
        {
            "data": {"train": [str(p) for p in training_files()], "val_fraction": 0.1},
            "model": {"kind": "sprinter", "cutoff": 5.0, "l_max": 4},
            "training": {"epochs": settings.epochs, "seed": settings.seed, "batch_size": 4, "lr": 0.003},
            "output": str(work / "train"),
        },
        "demo",
    )
    trained = Trainer(config, overwrite=True).run(on_progress=on_train)
    wall["train_s"] = time.perf_counter() - start

    on_stage("export")
    start = time.perf_counter()
    model, config, payload = model_from_checkpoint(trained.checkpoint)
    model_path = work / "lgps_sprinter.pt"
    export_model(model, model_path, **checkpoint_export_args(payload, config))
    wall["export_s"] = time.perf_counter() - start

    on_stage("md")
    start = time.perf_counter()
    structure = work / "lgps.extxyz"
    write(structure, reference_cell(settings.supercell))
    md = run_md(
        MdConfig(
            structure=str(structure),
            model=str(model_path),
            temperatures=list(settings.temperatures_K),
            steps=settings.md_steps,
            eq_steps=settings.eq_steps,
            dump_every=settings.dump_every,
            restart_every=settings.md_steps // 4,
            nprocs=settings.nprocs,
            parallel=settings.parallel,
            output=str(work / "md"),
            overwrite=True,
            # The labeller's reference runs use this 50-atom cell (8.7 Å wide, less than twice the
            # 5 Å cutoff); the comparison needs the very same cell, finite-size effects included.
            allow_small_cell=True,
            backend=settings.backend,
        ),
        on_step=on_md,
    )
    wall["md_s"] = time.perf_counter() - start

    on_stage("analyze")
    start = time.perf_counter()
    rule = WindowRule(slope_tolerance=settings.slope_tolerance)
    reports: list[TransportReport] = []
    not_diffusive: list[str] = []
    for run in md.runs:
        try:
            reports.append(
                analyze_trajectory(
                    run.trajectory, "Li", work / "analysis" / Path(run.directory).name, rule=rule
                )
            )
        except NoDiffusiveRegimeError as err:
            # Reported and left out of the fit, never patched with a guessed window.
            not_diffusive.append(f"{run.temperature_K:g} K: {err}")
    arrhenius: ArrheniusReport = arrhenius_report(reports, work / "analysis")
    wall["analyze_s"] = time.perf_counter() - start

    on_stage("validate")
    start = time.perf_counter()
    references = reference_runs(settings.temperatures_K)
    validation, table = None, []
    if references:
        trajectories = {r.temperature_K: r.trajectory for r in md.runs if r.temperature_K in references}
        report = validate(
            ValidationRequest(
                model=str(model_path),
                references=[str(path) for path in references.values()],
                model_trajectories=trajectories,
                output=str(work / "validation"),
                slope_tolerance=settings.slope_tolerance,
                overwrite=True,
            )
        )
        validation = asdict(report)
        table = verdict_table(report)
    wall["validate_s"] = time.perf_counter() - start

    m = trained.val_metrics
    summary = DemoSummary(
        validation_force_rmse_eV_per_A=m["force_rmse_eV_per_A"],
        validation_energy_rmse_meV_per_atom=1000 * m["energy_rmse_eV_per_atom"],
        model=str(model_path),
        transport=[asdict(r) for r in reports],
        arrhenius=asdict(arrhenius),
        wall_s=wall,
        not_diffusive=not_diffusive,
        reference=reference_comparison(reports),
        training_files=[str(p) for p in training_files()],
        validation=validation,
        validation_table=table,
    )
    (work / "demo.json").write_text(json.dumps(asdict(summary), indent=2, default=str))
    return summary
