"""Progress without a terminal (superionic.progress): plain UTC-stamped lines at a steady rate."""

from __future__ import annotations

import io
import re

import pytest

from superionic import progress
from superionic.progress import PlainProgress, progress_display

LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] ")


def test_plain_lines_start_steadily_and_end(monkeypatch: pytest.MonkeyPatch):
    """A 1000-step task updated every simulated second: a line every 5 % (at most every 5 s) with
    elapsed time and ETA, one line to start, one to end."""
    clock = iter(float(t) for t in range(100_000))
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    with PlainProgress([out]) as display:
        task = display.add_task("MD 900 K", total=1000, status="")
        for step in range(0, 1001, 10):
            display.update(task, completed=step)
    lines = out.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines)
    assert lines[0].endswith("MD 900 K: started") and "MD 900 K: done in" in lines[-1]
    middle = lines[1:-1]
    assert 15 <= len(middle) <= 21  # 5 % of 1000 steps = every 50 steps = every 5 s here
    assert all("elapsed" in line for line in middle) and all("ETA" in line for line in middle[1:])


def test_a_slow_task_reports_every_30_seconds(monkeypatch: pytest.MonkeyPatch):
    clock = iter(float(t) for t in range(0, 100_000, 7))
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    with PlainProgress([out]) as display:
        task = display.add_task("label", total=10_000)
        for step in range(20):  # 0.2 % of the total: only the 30 s rule reports
            display.update(task, completed=step)
    middle = out.getvalue().splitlines()[1:-1]
    assert 3 <= len(middle) <= 5  # 20 updates x 7 s = 140 s


def test_display_is_plain_when_stdout_is_not_a_terminal_and_quiet_is_silent(tmp_path):
    out = io.StringIO()
    display = progress_display(stream=out)
    assert isinstance(display, PlainProgress)
    progress.configure(quiet=True, log=tmp_path / "run.log")
    try:
        with progress_display(stream=out) as quiet:
            quiet.update(quiet.add_task("train", total=2), completed=2)
        assert out.getvalue() == ""
        assert "train: started" in (tmp_path / "run.log").read_text()
    finally:
        progress.configure()
