"""Progress of long commands: a live display on a terminal, plain timestamped lines everywhere else.

Every command of the command line makes its progress display through :func:`progress_display`,
which takes the arguments of ``rich.progress.Progress``. On a terminal it is that live display.
When standard output is not a terminal (``nohup``, a batch scheduler, ``> log.txt``) it is
:class:`PlainProgress`: one line when a task starts, a line every ``PLAIN_INTERVAL_S`` seconds or
``PLAIN_STEP`` of its total (whichever comes first) with the elapsed time and an ETA, and one line
when it ends; each line begins with the UTC time. ``--log FILE`` also writes those lines to FILE
(with a terminal display on screen); ``--quiet`` leaves only results and errors.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

PLAIN_INTERVAL_S = 30.0
PLAIN_STEP = 0.05
MIN_GAP_S = 5.0


@dataclass
class Settings:
    quiet: bool = False
    log: Path | None = None
    force_plain: bool = False  # tests: plain lines even on a terminal


SETTINGS = Settings()


def configure(quiet: bool = False, log: str | Path | None = None) -> None:
    """Set once by the command line before a verb runs."""
    SETTINGS.quiet = quiet
    SETTINGS.log = Path(log) if log else None


def _clock() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    status: str = ""
    started: float | None = None
    last_line: float = 0.0
    last_fraction: float = 0.0
    finished: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


class PlainProgress:
    """The part of ``rich.progress.Progress``'s interface the commands use, as plain lines."""

    def __init__(self, streams: list[TextIO], interval_s: float = PLAIN_INTERVAL_S, step: float = PLAIN_STEP):
        self.streams = streams
        self.interval_s, self.step = interval_s, step
        self.tasks: dict[int, _Task] = {}
        self._next_id = 0

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for task_id, task in self.tasks.items():
            if task.started is not None and not task.finished and exc[0] is None:
                self._finish(task_id)

    def _say(self, text: str) -> None:
        for stream in self.streams:
            print(f"[{_clock()}] {text}", file=stream, flush=True)

    def add_task(
        self, description: str, total: float | None = None, start: bool = True, **fields: Any
    ) -> int:
        task_id = self._next_id
        self._next_id += 1
        self.tasks[task_id] = _Task(
            description.strip(), total, status=str(fields.pop("status", "")), fields=fields
        )
        if start:
            self.start_task(task_id)
        return task_id

    def start_task(self, task_id: int) -> None:
        task = self.tasks[task_id]
        if task.started is None:
            task.started = task.last_line = time.monotonic()
            self._say(f"{task.description}: started")

    def stop_task(self, task_id: int) -> None:
        task = self.tasks[task_id]
        if task.started is not None and not task.finished:
            self._finish(task_id)

    def remove_task(self, task_id: int) -> None:
        self.stop_task(task_id)
        del self.tasks[task_id]

    def advance(self, task_id: int, advance: float = 1.0) -> None:
        self.update(task_id, completed=self.tasks[task_id].completed + advance)

    def update(
        self,
        task_id: int,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        task = self.tasks[task_id]
        if description is not None:
            task.description = description.strip()
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if "status" in fields:
            task.status = str(fields.pop("status"))
        task.fields.update(fields)
        if task.started is None:
            self.start_task(task_id)
        self._maybe_report(task_id)

    def _fraction(self, task: _Task) -> float | None:
        return min(1.0, task.completed / task.total) if task.total else None

    def _maybe_report(self, task_id: int) -> None:
        task = self.tasks[task_id]
        now = time.monotonic()
        fraction = self._fraction(task)
        if fraction is not None and fraction >= 1.0 and task.total and task.total > 1:
            return  # the end line comes from stop_task or the end of the display
        # Every interval, or every step of the total but not more often than every
        # MIN_GAP_S: a short task gives a few lines, a long one a line per 5 %.
        since = now - task.last_line
        due = since >= self.interval_s
        if fraction is not None and fraction - task.last_fraction >= self.step and since >= MIN_GAP_S:
            due = True
        if not due:
            return
        task.last_line, task.last_fraction = now, fraction or 0.0
        elapsed = now - (task.started or now)
        text = f"{task.description}:"
        if fraction is not None:
            text += f" {100 * fraction:.0f} % ({task.completed:g}/{task.total:g})"
        text += f" elapsed {_duration(elapsed)}"
        if fraction:
            text += f", ETA {_duration(elapsed * (1 - fraction) / fraction)}"
        extra = " ".join(str(v) for v in task.fields.values() if str(v))
        if task.status or extra:
            text += f"; {task.status or extra}"
        self._say(text)

    def _finish(self, task_id: int) -> None:
        task = self.tasks[task_id]
        task.finished = True
        elapsed = time.monotonic() - (task.started or time.monotonic())
        status = f"; {task.status}" if task.status else ""
        self._say(f"{task.description}: done in {_duration(elapsed)}{status}")


class _Both:
    """A live display on the terminal and plain lines in the --log file."""

    def __init__(self, live: Any, plain: PlainProgress) -> None:
        self.live, self.plain = live, plain

    def __enter__(self) -> _Both:
        self.live.__enter__()
        self.plain.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.plain.__exit__(*exc)
        self.live.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        live, plain = getattr(self.live, name), getattr(self.plain, name)

        def both(*args: Any, **kwargs: Any) -> Any:
            result = live(*args, **kwargs)
            plain(*args, **kwargs)
            return result

        return both


class _Silent(PlainProgress):
    def __init__(self) -> None:
        super().__init__([])


def progress_display(*columns: Any, stream: TextIO | None = None, **kwargs: Any) -> Any:
    """A progress display for a command (the arguments of ``rich.progress.Progress``)."""
    from rich.progress import Progress

    out = stream or sys.stdout
    log = open(SETTINGS.log, "a", encoding="utf-8") if SETTINGS.log else None
    streams = [log] if log else []
    if SETTINGS.quiet:
        return PlainProgress(streams) if streams else _Silent()
    if out.isatty() and not SETTINGS.force_plain:
        live = Progress(*columns, **kwargs)
        return _Both(live, PlainProgress(streams)) if streams else live
    return PlainProgress([out, *streams])


def note(text: str) -> None:
    """A plain timestamped line outside a display (a stage boundary), unless --quiet."""
    if SETTINGS.quiet:
        return
    line = f"[{_clock()}] {text}"
    print(line, flush=True)
    if SETTINGS.log:
        with open(SETTINGS.log, "a", encoding="utf-8") as handle:
            print(line, file=handle)
