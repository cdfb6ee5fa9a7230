"""Resumable stages of `superionic learn`: a state file per round whose stage markers are atomic.

A stage's marker is written only after everything the stage produced is on disk (each file itself
written to a temporary name and renamed), so after a kill at any point a stage either has its
marker, and is skipped on the rerun, or has none, and runs again from whatever it left (the stages
themselves resume: training from its last checkpoint, MD from its newest restart file, labelling
from the frames already written).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("trained", "exported", "md", "analysed", "selected", "labelled")


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class RoundState:
    """Which stages of one round are finished, and what each recorded."""

    path: Path
    round: int
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path, round_index: int) -> RoundState:
        path = directory / "state.json"
        if path.exists():
            raw = json.loads(path.read_text())
            return cls(path, int(raw["round"]), dict(raw.get("stages", {})))
        return cls(path, round_index)

    def done(self, stage: str) -> bool:
        return stage in self.stages

    def result(self, stage: str) -> dict[str, Any]:
        return self.stages[stage]

    def mark(self, stage: str, result: dict[str, Any]) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage}")
        self.stages[stage] = {**result, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_json_atomic(self.path, {"round": self.round, "stages": self.stages})


class EventLog:
    """One JSON line per stage started, finished or skipped (``events.jsonl``): what each process
    did, so a resumed run shows which stages it skipped and which it ran again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run = f"{os.getpid()}-{time.time_ns()}"  # one id per invocation, even within one process

    def add(self, round_index: int, stage: str, event: str, **extra: Any) -> None:
        line = {"round": round_index, "stage": stage, "event": event, "run": self.run, "time": time.time()}
        with self.path.open("a") as handle:
            handle.write(json.dumps({**line, **extra}) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
