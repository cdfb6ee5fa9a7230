"""VASP `vasprun.xml` molecular dynamics, streamed.

Each ionic step is one `<calculation>` with `structure/crystal/varray[@name="basis"]` (rows a, b, c,
Å) and `structure/varray[@name="positions"]` (fractional, wrapped into the cell by VASP, so they
are unwrapped by minimum-image jumps in `load_ion_positions`). Elements come from `<atominfo>`.

Frame interval: vasprun.xml holds every ionic step (NBLOCK thins XDATCAR, not vasprun.xml), so it
is POTIM (fs); only in machine-learned prediction runs (ML_MODE = run) does VASP 6.4.3 or later
write every ML_OUTBLOCK-th step. The file is parsed element by element and each step discarded
once read, so a vasprun of 10⁵ steps needs no more memory than one step (ase.io keeps them all).
A killed run's file ends inside a step: the complete steps are used.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from superionic.analysis.reader_base import (
    FRAME_BLOCK,
    Block,
    Reader,
    TrajectoryError,
    TrajectoryHeader,
    check_elements,
)

_CHUNK = 1 << 24


def _count_complete_steps(path: Path) -> int:
    """Closed `<calculation>` elements, by a byte scan (far faster than parsing the XML twice)."""
    count, tail = 0, b""
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            data = tail + chunk
            count += data.count(b"</calculation>")
            # keep a tag's length of overlap, minus one so a tag is never counted twice
            tail = data[-(len(b"</calculation>") - 1) :]
    return count


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


class VasprunReader(Reader):
    def __init__(self, path: Path, timestep_ps: float | None) -> None:
        self.path = path
        if path.stat().st_size == 0:
            raise TrajectoryError(
                f"{path}: empty file; give the vasprun.xml of a finished or running VASP MD"
            )
        incar, parameters, symbols, version = self._scan_header()
        if symbols is None:
            raise TrajectoryError(f"{path}: no <atominfo>; not a vasprun.xml, or cut before its first step")
        notes: list[str] = []
        ibrion = parameters.get("IBRION", incar.get("IBRION"))
        if ibrion is not None and int(float(ibrion)) != 0:
            raise TrajectoryError(
                f"{path}: IBRION = {int(float(ibrion))} is not molecular dynamics; transport needs an MD run "
                "(IBRION = 0)"
            )
        self.dt = self._frame_interval(incar, parameters, version, timestep_ps, notes)
        n_frames = _count_complete_steps(path)
        if n_frames == 0:
            raise TrajectoryError(
                f"{path}: no complete ionic step (<calculation>); the run wrote no frame yet"
            )
        notes.append("fractional positions unwrapped by minimum-image jumps")
        self.header = TrajectoryHeader(
            str(path), "vasprun", n_frames, check_elements(path, symbols, "<atominfo>"), None, notes
        )

    def _scan_header(self) -> tuple[dict[str, str], dict[str, str], list[str] | None, tuple[int, ...]]:
        """INCAR as given, effective parameters, elements and VASP version: everything before step 1."""
        incar: dict[str, str] = {}
        parameters: dict[str, str] = {}
        symbols: list[str] | None = None
        version: tuple[int, ...] = ()
        try:
            for event, elem in ET.iterparse(self.path, events=("start", "end")):
                if event == "start":
                    if elem.tag == "calculation":
                        break
                    continue
                if elem.tag == "generator":
                    for item in elem.iter("i"):
                        if item.get("name") == "version":
                            version = _version(item.text or "")
                elif elem.tag in ("incar", "parameters"):
                    target = incar if elem.tag == "incar" else parameters
                    for item in elem.iter("i"):
                        if item.get("name"):
                            target[item.get("name")] = (item.text or "").strip()
                elif elem.tag == "atominfo":
                    rows = elem.findall("array[@name='atoms']/set/rc")
                    symbols = [rc[0].text.strip() for rc in rows if len(rc) and rc[0].text]
        except ET.ParseError as err:
            if symbols is not None:  # cut (or still running) after the header: judged by its steps
                return incar, parameters, symbols, version
            raise TrajectoryError(
                f"{self.path}: not valid XML before the first ionic step ({err}); "
                "not a vasprun.xml, or truncated"
            ) from err
        return incar, parameters, symbols, version

    def _frame_interval(
        self,
        incar: dict[str, str],
        parameters: dict[str, str],
        version: tuple[int, ...],
        timestep_ps: float | None,
        notes: list[str],
    ) -> float:
        potim = parameters.get("POTIM", incar.get("POTIM"))
        if potim is None:
            if timestep_ps is None:
                raise TrajectoryError(
                    f"{self.path}: no POTIM in the file; pass --timestep-ps, the time between stored steps"
                )
            return timestep_ps
        try:
            potim_fs = float(potim)
        except ValueError as err:
            raise TrajectoryError(f"{self.path}: POTIM = '{potim}' is not a number; fix the file") from err
        stride = 1
        mode = parameters.get("ML_MODE", incar.get("ML_MODE", "")).strip().lower()
        outblock = int(float(parameters.get("ML_OUTBLOCK", incar.get("ML_OUTBLOCK", "1"))))
        if mode == "run" and outblock > 1:
            if version >= (6, 4, 3):
                stride = outblock
                notes.append(f"ML_OUTBLOCK = {outblock}: every {outblock}th step stored")
            else:
                notes.append(f"VASP {'.'.join(map(str, version))} stores every step despite ML_OUTBLOCK")
        dt = potim_fs * stride * 1e-3
        if timestep_ps is not None and not np.isclose(timestep_ps, dt, rtol=1e-9, atol=0):
            raise TrajectoryError(
                f"{self.path}: POTIM gives {dt:g} ps between stored steps, "
                f"--timestep-ps says {timestep_ps:g}; "
                "drop --timestep-ps or make them agree"
            )
        return dt

    def blocks(self, size: int = FRAME_BLOCK) -> Iterator[Block]:
        n_atoms, n_frames = len(self.header.symbols), self.header.n_frames
        frames: list[np.ndarray] = []
        cells: list[np.ndarray] = []
        done = 0
        root = None
        try:
            for event, elem in ET.iterparse(self.path, events=("start", "end")):
                if root is None:
                    root = elem
                if event != "end" or elem.tag != "calculation":
                    continue
                basis = elem.find("structure/crystal/varray[@name='basis']")
                positions = elem.find("structure/varray[@name='positions']")
                if basis is None or positions is None:
                    raise TrajectoryError(
                        f"{self.path}: ionic step {done + 1} has no structure; the file is damaged"
                    )
                cell = _rows(self.path, basis, 3, done)
                frac = _rows(self.path, positions, n_atoms, done)
                frames.append(frac @ cell)
                cells.append(cell)
                root.clear()  # the header was read already; keep memory at one step
                done += 1
                if len(frames) == size or done == n_frames:
                    start = done - len(frames)
                    yield Block(np.arange(start, done) * self.dt, np.array(frames), None, np.array(cells))
                    frames, cells = [], []
                if done == n_frames:
                    return
        except ET.ParseError as err:
            raise TrajectoryError(
                f"{self.path}: XML damaged after ionic step {done} ({err}); cut the file there"
            ) from err


def _rows(path: Path, varray: ET.Element, expected: int, step: int) -> np.ndarray:
    try:
        out = np.array([[float(x) for x in (v.text or "").split()] for v in varray.findall("v")])
    except ValueError as err:
        raise TrajectoryError(
            f"{path}: ionic step {step + 1}: '{varray.get('name')}' holds a non-number; the file is damaged"
        ) from err
    if out.shape != (expected, 3):
        raise TrajectoryError(
            f"{path}: ionic step {step + 1}: '{varray.get('name')}' has shape {out.shape}, "
            f"expected ({expected}, 3)"
        )
    return out
