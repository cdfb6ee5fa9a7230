"""`superionic conductivity`: one command from a structure to a conductivity and whether to trust it.

Seven stages, each recorded in ``WORKDIR/state.json`` when it finishes (``workflows.conductivity_state``),
so a killed job rerun with the same command resumes at the stage it reached (and inside it where
the lower layer can: training members, MD restart files):

1. ``label``    order the structure, labeller MD + strained cells, labelled (``data.generate``)
2. ``train``    a committee of K sprinters (``train.committee``), exported (``export_committee``)
3. ``learn``    active learning where the committee disagrees (``workflows.learn``)
4. ``md``       production NVT MD in LAMMPS at every temperature, member 0 driving, committee
                deviation recorded (``md.driver``)
5. ``analysis`` D(T) with 95 % intervals, Nernst–Einstein σ, Arrhenius Ea and σ(300 K)
                (``analysis.report``)
6. ``teacher``  the labeller's own MD at the highest temperature (``data.reference_md``) and the
                model's production run there judged against it (``validation``)
7. ``report``   ``conductivity.json`` and ``conductivity.png``, with the verdict in words

One ordered cell serves every stage (the labeller's MD, the model's MD and the teacher run), so the
teacher comparison is like for like. A stage reruns when its outputs went missing, and every stage
after one that ran is rerun from scratch (its inputs changed).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from superionic.validation.errors import ValidationError
from superionic.workflows.conductivity_state import JobState, StateError
from superionic.workflows.precision import PrecisionError, Targets, spaced_in_inverse
from superionic.workflows.precision_run import GUARD_MARGIN

STAGES = ("label", "train", "learn", "md", "analysis", "teacher", "report")
# The labeller's MD reaches this factor above the highest production temperature (docs/guard.md).
LABEL_MARGIN = 1.2
KIND = "conductivity"
# Fields that change how fast a job runs, not what it computes: a resumed job may change them.
RESOURCES = ("workdir", "nprocs", "parallel", "threads", "device", "overwrite")


class ConductivityError(ValidationError):
    """A conductivity request that cannot run; the message names the option or file and the fix."""


@dataclass
class ConductivityRequest:
    """Everything `superionic conductivity` is asked; every budget has a default fit for a real run."""

    structure: str
    # Production temperatures; None: the precision planner chooses >= 5 in [t_min, t_max].
    temperatures: list[float] | None = None
    labeller: str = "sevennet"
    workdir: str = "runs/conductivity"
    ion: str = "Li"
    seed: int = 0  # ordering of partial occupancies (seed × 1000, as data generate), velocities
    # The one cell of every stage.
    supercell: tuple[int, int, int] | None = None
    min_width: float | None = None  # Å; None with no supercell: twice the model cutoff
    draws: int = 10
    oxidation_states: dict[str, int] | None = None
    min_distance: float | None = None
    allow_small_cell: bool = False
    # The production cell: the labelled cell repeated until it holds this many mobile ions.
    min_ions: int = 100
    # Planning (docs/precision.md): the range the planner picks temperatures in when -T is not
    # given, the targets and the budgets.
    t_min: float = 500.0
    t_max: float = 1200.0
    target_ea: float = 0.03  # eV: 95 % half-width of Ea
    target_sigma: float = 3.0  # upper / lower of the 95 % interval of σ(300 K)
    max_md_ns: float = 2.0  # per temperature
    max_hours: float | None = None
    pilot_ps: float = 40.0
    # 1. label
    frames: int = 300
    # None: evenly in 1/T from the lowest production temperature (or t_min, or half t_max) up to
    # 1.2 × the highest, so the data reach past every temperature the student will see.
    label_temperatures: list[float] | None = None
    strain_fraction: float = 0.25
    sample_every: int = 10
    label_eq_steps: int = 200
    # 2. train
    committee: int = 4
    epochs: int | None = None  # None: the train config's, else 100
    train_minutes: float | None = None  # wall-clock cap per member
    cutoff: float | None = None  # Å; None: the train config's, else 5.0
    val_fraction: float = 0.1
    train_config: str | None = None  # YAML whose model: and training: sections are used
    # 3. learn
    learn_rounds: int = 3
    learn_frames: int = 20  # labelled per round, all temperatures together
    learn_steps: int = 20_000  # committee MD per temperature and round, equilibration included
    learn_eq_steps: int = 2_000  # a multiple of 5 × devi_every (learning saves frames at that interval)
    learn_epochs: int = 40  # fine-tuning epochs of each later round (warm start)
    # eV/Å: the band of frames worth labelling, and the "uncertain" line; None: calibrated on the
    # held-out labelled frames after training (docs/active_learning.md, "Calibrated band").
    devi_lo: float | None = None
    devi_hi: float | None = None
    target_fraction: float = 0.05  # learning stops when fewer frames than this are uncertain
    # 4. md (lengths come from the precision plan)
    md_eq_steps: int = 5_000
    timestep_fs: float = 2.0
    dump_every: int = 100
    devi_every: int = 10
    # 6. teacher: its own MD at the highest production temperature and at one lower one
    teacher_steps: int = 10_000  # production steps of each
    teacher_eq_steps: int = 1_000
    teacher_write_every: int = 25
    # 5./6. analysis and verdicts
    slope_tolerance: float = 0.2
    resolution: float = 2.0
    # Resources: they change how fast, not what; a resumed job may change them.
    nprocs: int = 1
    parallel: int = 1
    threads: int | None = None
    device: str = "cpu"
    overwrite: bool = False

    def check(self) -> None:
        """One line per bad value, naming the option and a valid value."""
        positive_ints = {
            "frames": self.frames,
            "committee": self.committee,
            "dump_every": self.dump_every,
            "min_ions": self.min_ions,
            "devi_every": self.devi_every,
            "teacher_steps": self.teacher_steps,
            "teacher_write_every": self.teacher_write_every,
            "sample_every": self.sample_every,
            "learn_frames": self.learn_frames,
            "learn_steps": self.learn_steps,
            "learn_epochs": self.learn_epochs,
            "nprocs": self.nprocs,
            "parallel": self.parallel,
            "draws": self.draws,
        }
        for name, value in positive_ints.items():
            if value < 1:
                raise ConductivityError(f"--{_flag(name)} {value}: must be >= 1, e.g. --{_flag(name)} 4")
        if self.temperatures is not None:
            given = list(self.temperatures)
            if not given or min(given) <= 0:
                raise ConductivityError(f"-T {given}: give temperatures in K, e.g. -T 700 800 900 1000 1100")
            if len(given) < 2:
                raise ConductivityError(
                    f"-T {given[0]:g}: Ea and σ(300 K) need at least two temperatures (five for the "
                    "precision targets), e.g. -T 700 800 900 1000 1100; or leave -T out to have them planned"
                )
            if len(set(given)) != len(given):
                raise ConductivityError(f"-T {given}: a temperature is repeated; give each once")
            if given != sorted(given):
                raise ConductivityError(
                    f"-T {' '.join(f'{t:g}' for t in given)}: give the temperatures in ascending order "
                    f"(-T {' '.join(f'{t:g}' for t in sorted(given))}), so a typo is not taken for a plan"
                )
        if not 0 < self.t_min < self.t_max:
            raise ConductivityError(
                f"--t-min {self.t_min:g} --t-max {self.t_max:g}: need 0 < t-min < t-max (K)"
            )
        try:
            Targets(self.target_ea, self.target_sigma, self.max_md_ns, self.max_hours).check()
        except PrecisionError as err:
            raise ConductivityError(str(err)) from err
        if self.pilot_ps <= 0:
            raise ConductivityError(f"--pilot-ps {self.pilot_ps:g}: must be > 0 ps, e.g. 40")
        if self.committee < 2:
            raise ConductivityError(
                f"--committee {self.committee}: the deviation needs at least 2 members, e.g. --committee 4"
            )
        if self.md_eq_steps < 0 or self.teacher_eq_steps < 0 or self.label_eq_steps < 0:
            raise ConductivityError("equilibration steps must be >= 0")
        if self.learn_rounds < 0:
            raise ConductivityError(f"--learn-rounds {self.learn_rounds}: must be >= 0 (0 skips learning)")
        if self.learn_steps <= self.learn_eq_steps and self.learn_rounds > 0:
            raise ConductivityError(
                f"--learn-steps {self.learn_steps} must exceed --learn-eq-steps {self.learn_eq_steps}"
            )
        if self.learn_rounds > 0 and self.learn_eq_steps % (5 * self.devi_every):
            raise ConductivityError(
                f"--learn-eq-steps {self.learn_eq_steps} must be a multiple of 5 × --devi-every "
                f"({5 * self.devi_every}): learning saves a frame every {5 * self.devi_every} steps"
            )
        if self.dump_every % self.devi_every:
            raise ConductivityError(
                f"--dump-every {self.dump_every} must be a multiple of --devi-every {self.devi_every}, so "
                "that every saved frame has a deviation"
            )
        if (self.devi_lo is None) != (self.devi_hi is None):
            raise ConductivityError("--devi-band needs both LO and HI, or neither (calibrated)")
        if self.devi_lo is not None and self.devi_hi is not None and not 0 < self.devi_lo < self.devi_hi:
            raise ConductivityError(
                f"--devi-band {self.devi_lo} {self.devi_hi}: need 0 < lo < hi (eV/Å), e.g. 0.05 0.30"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ConductivityError(f"--val-fraction {self.val_fraction}: must be in (0, 1), e.g. 0.1")
        if self.teacher_steps < 10 * self.teacher_write_every:
            raise ConductivityError(
                f"--teacher-steps {self.teacher_steps}: the teacher run needs at least 10 frames; give >= "
                f"{10 * self.teacher_write_every} (or a smaller --teacher-write-every)"
            )
        if self.resolution <= 1.0:
            raise ConductivityError(f"--resolution {self.resolution}: a ratio > 1, e.g. 2")
        if self.train_config is not None and not Path(self.train_config).is_file():
            raise ConductivityError(f"--train-config {self.train_config}: no such file")

    def fingerprint(self) -> dict[str, Any]:
        """The fields that decide the results, as recorded in state.json (files by their content)."""
        body = {k: v for k, v in asdict(self).items() if k not in RESOURCES}
        source = Path(self.structure)
        if source.is_file():
            body["structure"] = str(source.resolve())
            body["structure_sha256"] = _sha256(source)
        if self.train_config is not None:
            body["train_config"] = str(Path(self.train_config).resolve())
            body["train_config_sha256"] = _sha256(Path(self.train_config))
        return body

    @property
    def targets(self) -> Targets:
        return Targets(self.target_ea, self.target_sigma, self.max_md_ns, self.max_hours)

    def label_plan(self) -> list[float]:
        """The labeller's MD temperatures: given, or 4 evenly in 1/T up to 1.2 × the highest."""
        if self.label_temperatures:
            return list(self.label_temperatures)
        high = max(self.temperatures) if self.temperatures else self.t_max
        low = min(self.temperatures) if self.temperatures else max(self.t_min, 0.5 * self.t_max)
        return sorted(spaced_in_inverse(low, LABEL_MARGIN * high, 4))

    def learn_plan(self) -> list[float]:
        """Active learning's committee MD: 3 temperatures evenly in 1/T up to 1.1 × the highest."""
        high = max(self.temperatures) if self.temperatures else self.t_max
        low = min(self.temperatures) if self.temperatures else max(self.t_min, 0.6 * self.t_max)
        return sorted(spaced_in_inverse(low, GUARD_MARGIN * high, 3))


def _flag(name: str) -> str:
    return name.replace("_", "-")


# Request fields whose command-line option is not --<field with dashes>.
OPTIONS = {
    "temperatures": "-T",
    "devi_lo": "--devi-band (lo)",
    "devi_hi": "--devi-band (hi)",
    "timestep_fs": "--timestep",
    "structure": "STRUCTURE",
    "structure_sha256": "the content of STRUCTURE",
    "train_config_sha256": "the content of --train-config",
}


def option(field: str) -> str:
    """The command-line option that sets a request field, for messages."""
    return OPTIONS.get(field, f"--{_flag(field)}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class StageEvent:
    """What the progress display shows: a stage started, reports progress, finished or was skipped."""

    stage: str
    event: str  # "start", "progress", "done", "skipped"
    completed: float | None = None
    total: float | None = None
    status: str = ""


Listener = Callable[[StageEvent], None]


@dataclass
class ConductivityResult:
    workdir: Path
    report_json: Path
    report_png: Path
    report: dict[str, Any]
    ran: list[str]  # stages run by this call (the others were done before)


class Job:
    """One job in its work directory: the request, the state file and the progress listener."""

    def __init__(self, request: ConductivityRequest, state: JobState, listener: Listener) -> None:
        self.request = request
        self.state = state
        self.workdir = state.workdir
        self.listener = listener
        self.cache: dict[str, Any] = {}  # what stages of one call share (the ordered cell)

    def path(self, relative: str | Path) -> Path:
        return self.workdir / relative

    def relative(self, path: str | Path) -> str:
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.workdir.resolve()))
        except ValueError:
            return str(path)

    def progress(self, stage: str, completed: float | None, total: float | None, status: str = "") -> None:
        self.listener(StageEvent(stage, "progress", completed, total, status))

    def note(self, stage: str, text: str) -> None:
        """A line the user (or the log of a batch run) should see once: a resume, a decision."""
        self.listener(StageEvent(stage, "note", status=text))


def _outputs_present(job: Job, stage: str) -> bool:
    files = job.state.outputs(stage).get("files", [])
    return all(job.path(f).exists() for f in files)


# What a stage keeps when only later inputs changed: the teacher's MD depends on the cell alone
# (stage label), not on the model, so a rerun of training or MD reruns only its validation.
KEEP_UNLESS = {"teacher": ("label", "validation")}


def _clear(job: Job, stage: str, ran: list[str]) -> None:
    directory = job.path(stage)
    if not directory.is_dir():
        return
    if stage in KEEP_UNLESS and KEEP_UNLESS[stage][0] not in ran:
        target = directory / KEEP_UNLESS[stage][1]
        if target.is_dir():
            shutil.rmtree(target)
        return
    shutil.rmtree(directory)
    job.state.forget(stage)


def open_job(request: ConductivityRequest, listener: Listener = lambda event: None) -> Job:
    """Check the request against itself, the work directory and the structure, before any work.

    Raises ConductivityError (and the structure readers' errors) with one-line messages.
    """
    from superionic.workflows import conductivity_stages

    request.check()
    try:
        state = JobState(
            Path(request.workdir), KIND, request.fingerprint(), overwrite=request.overwrite, flag=option
        )
    except StateError as err:
        raise ConductivityError(str(err)) from err
    job = Job(request, state, listener)
    if not state.done("label"):
        conductivity_stages.preflight(job)
    return job


def run_job(job: Job) -> ConductivityResult:
    """Run (or resume) every stage of an opened job; returns the report."""
    from superionic.workflows import conductivity_checks, conductivity_report, conductivity_stages

    state = job.state
    runners: dict[str, Callable[[Job], dict[str, Any]]] = {
        "label": conductivity_stages.label,
        "train": conductivity_stages.train,
        "learn": conductivity_stages.learn,
        "md": conductivity_stages.production_md,
        "analysis": conductivity_checks.analysis,
        "teacher": conductivity_checks.teacher,
        "report": conductivity_report.report,
    }
    ran: list[str] = []
    for stage in STAGES:
        if not ran and state.done(stage) and _outputs_present(job, stage):
            state.note(stage, "skipped")
            job.listener(
                StageEvent(stage, "skipped", status=state.outputs(stage).get("line", "done earlier"))
            )
            continue
        if ran:
            # An earlier stage ran in this call: whatever this stage holds was made from older inputs.
            _clear(job, stage, ran)
            state.reopen(stage)
        job.listener(StageEvent(stage, "start"))
        state.note(stage, "started")
        start = time.perf_counter()
        outputs = runners[stage](job)
        state.finish(stage, outputs, time.perf_counter() - start)
        ran.append(stage)
        job.listener(StageEvent(stage, "done", status=outputs.get("line", "")))
    body = state.outputs("report")
    return ConductivityResult(
        workdir=job.workdir,
        report_json=job.path(body["json"]),
        report_png=job.path(body["png"]),
        report=conductivity_report.read_report(job.path(body["json"])),
        ran=ran,
    )


def run_conductivity(
    request: ConductivityRequest, listener: Listener = lambda event: None
) -> ConductivityResult:
    """:func:`open_job` then :func:`run_job`: the whole job, resumed where a previous call stopped."""
    return run_job(open_job(request, listener))
