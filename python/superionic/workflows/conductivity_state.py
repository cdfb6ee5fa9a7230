"""The work directory of a multi-stage job: what was asked, which stages are done, written atomically.

``state.json`` holds the request (the fields that decide the results), one marker per finished stage
with what it wrote, and a log of stage events. Every write goes to a temporary file first and is
renamed over the old one, so a job killed at any instant leaves either the previous state or the
new one, never half of each. A request that differs from the recorded one is refused with the name
of the first differing field: resuming a job with other settings would mix two jobs' outputs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

STATE_NAME = "state.json"
STATE_FORMAT = 1


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None: strict JSON that every reader accepts."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: Path, body: Any) -> Path:
    text = json.dumps(finite(body), indent=2, allow_nan=False) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def first_difference(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> str | None:
    """The first field (in ``wanted``'s order) whose value differs, or that one side lacks."""
    for key in [*wanted, *(k for k in recorded if k not in wanted)]:
        if key not in recorded or key not in wanted or recorded[key] != wanted[key]:
            return key
    return None


class StateError(RuntimeError):
    """The work directory holds another job, or a state file that cannot be read."""


class JobState:
    """``WORKDIR/state.json``: the request, stage markers and the stage log."""

    def __init__(
        self,
        workdir: Path,
        kind: str,
        request: Mapping[str, Any],
        overwrite: bool = False,
        flag: Callable[[str], str] = lambda field: field,
    ) -> None:
        self.workdir = Path(workdir)
        self.path = self.workdir / STATE_NAME
        self.kind = kind
        self.request = json.loads(json.dumps(dict(request)))  # plain JSON types, as read back
        if self.path.exists() and overwrite:
            shutil.rmtree(self.workdir)
        if self.path.exists():
            self.body = self._read()
            recorded = self.body.get("request", {})
            field = first_difference(recorded, self.request)
            if field is not None and not any(s.get("done") for s in self.body["stages"].values()):
                # Nothing finished under the old request (e.g. it failed in its first stage): nothing
                # to protect, the new request replaces it.
                self.body["request"] = self.request
                self.body["log"].append(
                    {"stage": "-", "event": f"request replaced ({field})", "time": time.time()}
                )
            elif field is not None:
                raise StateError(
                    f"{self.path}: this work directory holds a {kind} job with {flag(field)} = "
                    f"{json.dumps(recorded.get(field))}, the command asks for "
                    f"{json.dumps(self.request.get(field))}; "
                    "rerun with the original settings to resume, pass --overwrite to start afresh, "
                    "or choose another --workdir"
                )
        else:
            if self.workdir.exists() and any(self.workdir.iterdir()):
                raise StateError(
                    f"{self.workdir}: not empty and holds no {STATE_NAME}; choose another --workdir "
                    "or empty it"
                )
            # Written with the first event: a request refused before any work leaves no state behind.
            self.body = {
                "format": STATE_FORMAT,
                "kind": kind,
                "request": self.request,
                "stages": {},
                "log": [],
            }

    def _read(self) -> dict[str, Any]:
        try:
            body = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StateError(
                f"{self.path}: not readable JSON ({err}); pass --overwrite to start afresh"
            ) from err
        if not isinstance(body, dict) or body.get("kind") != self.kind:
            raise StateError(
                f"{self.path}: field 'kind' is {body.get('kind') if isinstance(body, dict) else None!r}, "
                f"not {self.kind!r}; choose another --workdir"
            )
        if body.get("format", 0) > STATE_FORMAT:
            raise StateError(
                f"{self.path}: field 'format' = {body['format']} is newer than this superionic "
                f"({STATE_FORMAT}); upgrade superionic"
            )
        return body

    def _write(self) -> None:
        write_json_atomic(self.path, self.body)

    def done(self, stage: str) -> bool:
        return bool(self.body["stages"].get(stage, {}).get("done"))

    def outputs(self, stage: str) -> dict[str, Any]:
        return dict(self.body["stages"].get(stage, {}).get("outputs", {}))

    def note(self, stage: str, event: str, **extra: Any) -> None:
        self.body["log"].append({"stage": stage, "event": event, "time": time.time(), **extra})
        self._write()

    def record(self, stage: str, key: str, value: Any) -> None:
        """A partial result of an unfinished stage (e.g. one of its sub-steps is done)."""
        entry = self.body["stages"].setdefault(stage, {"done": False, "outputs": {}})
        entry.setdefault("outputs", {})[key] = value
        self._write()

    def finish(self, stage: str, outputs: Mapping[str, Any], wall_s: float) -> None:
        entry = self.body["stages"].setdefault(stage, {"outputs": {}})
        entry.update({"done": True, "wall_s": round(wall_s, 3), "finished": time.time()})
        entry["outputs"] = {**entry.get("outputs", {}), **json.loads(json.dumps(dict(outputs)))}
        self.body["log"].append({"stage": stage, "event": "done", "time": entry["finished"]})
        self._write()

    def reopen(self, stage: str) -> None:
        """Mark a stage as not done (its outputs went missing), so it runs again."""
        if stage in self.body["stages"]:
            self.body["stages"][stage]["done"] = False
            self.note(stage, "reopened")

    def forget(self, stage: str) -> None:
        """Drop a stage's marker and partial results (its files were removed)."""
        if self.body["stages"].pop(stage, None) is not None:
            self.note(stage, "cleared")

    def events(self, stage: str) -> list[str]:
        return [e["event"] for e in self.body["log"] if e["stage"] == stage]
