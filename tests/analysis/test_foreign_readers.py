"""Trajectories that other programs wrote: D from each equals D from the same positions written by
this project's own H5MD writer (fix superionic/h5md, fed the positions by LAMMPS's `rerun`), and
every bad input is refused in one line.

Foreign files are written here by their own libraries: MDAnalysis's H5MDWriter, h5py following the
H5MD 1.1 specification (fixed box, fixed sampling, units), ase.io.Trajectory, and a vasprun.xml laid
out like VASP 6's (checked by ase.io and pymatgen, which both must parse it to the same positions).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from superionic.analysis.diffusion import tracer_diffusion
from superionic.analysis.readers import TrajectoryError, load_ion_positions, open_trajectory
from superionic.cli import main
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps

SYMBOLS = ["Li"] * 8 + ["S"] * 6
# float32-exact edges: MDAnalysis stores boxes and positions in single precision, and the reference
# must hold the very same numbers for a 1e-10 comparison.
ORTHO = np.diag([9.5, 10.25, 11.0])
# LAMMPS's restricted triclinic form: a along x, b in the xy plane.
TRICLINIC = np.array([[9.0, 0.0, 0.0], [1.0, 9.5, 0.0], [-0.5, 0.75, 10.0]])
DT = 0.125  # ps between frames; exact in float32 (MDAnalysis stores times in float32)
N_FRAMES = 120
# The same positions through two paths differ by rounding (~1e-15 Å on Å-sized displacements) and
# by whole lattice vectors per atom (frame 0 wrapped or not), to which the MSD is blind.
SAME_D = 1e-10


def walk(cell: np.ndarray, seed: int = 0, single: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Wrapped positions [F, N, 3] and image flags of atoms random-walking through ``cell``."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 1, (len(SYMBOLS), 3)) @ cell
    steps = rng.normal(0, 0.25, (N_FRAMES, len(SYMBOLS), 3))
    steps[0] = 0
    unwrapped = start + np.cumsum(steps, axis=0)
    frac = unwrapped @ np.linalg.inv(cell)
    images = np.floor(frac)
    wrapped = (frac - images) @ cell
    if single:
        wrapped = wrapped.astype(np.float32).astype(np.float64)
    return wrapped, images.astype(np.int64)


def project_h5md(
    directory: Path, wrapped: np.ndarray, images: np.ndarray, cell: np.ndarray, dt: float
) -> Path:
    """This project's H5MD of exactly these positions: LAMMPS reads them back (rerun) and
    fix superionic/h5md writes them, double precision, with image flags."""
    directory.mkdir(parents=True, exist_ok=True)
    rotation = write_lammps_data(
        directory / "structure.data", Atoms(SYMBOLS, positions=wrapped[0], cell=cell, pbc=True), ["Li", "S"]
    )
    np.testing.assert_allclose(rotation, np.eye(3), atol=1e-14)  # the cell is already in LAMMPS form
    lx, ly, lz = cell[0, 0], cell[1, 1], cell[2, 2]
    xy, xz, yz = cell[1, 0], cell[2, 0], cell[2, 1]
    if xy or xz or yz:  # LAMMPS wants the dump's box style to match the data file's
        box = [
            "ITEM: BOX BOUNDS xy xz yz pp pp pp",
            f"{min(0, xy, xz, xy + xz):.17g} {lx + max(0, xy, xz, xy + xz):.17g} {xy:.17g}",
            f"{min(0, yz):.17g} {ly + max(0, yz):.17g} {xz:.17g}",
            f"0 {lz:.17g} {yz:.17g}",
        ]
    else:
        box = ["ITEM: BOX BOUNDS pp pp pp", f"0 {lx:.17g}", f"0 {ly:.17g}", f"0 {lz:.17g}"]
    lines = []
    for k, (pos, img) in enumerate(zip(wrapped, images, strict=True)):
        lines += ["ITEM: TIMESTEP", str(k), "ITEM: NUMBER OF ATOMS", str(len(SYMBOLS)), *box]
        lines += ["ITEM: ATOMS id type x y z ix iy iz"]
        lines += [
            f"{i + 1} {1 if s == 'Li' else 2} {p[0]:.17g} {p[1]:.17g} {p[2]:.17g} {m[0]} {m[1]} {m[2]}"
            for i, (s, p, m) in enumerate(zip(SYMBOLS, pos, img, strict=True))
        ]
    (directory / "frames.dump").write_text("\n".join(lines) + "\n")
    (directory / "in.lmp").write_text(
        f"""units metal
atom_style atomic
read_data structure.data
pair_style zero 3.0
pair_coeff * *
timestep {dt!r}
fix traj all superionic/h5md 1 ours.h5 positions double types Li S
rerun frames.dump dump x y z ix iy iz box yes
"""
    )
    run_lammps("in.lmp", directory)
    return directory / "ours.h5"


def diffusion(path: Path, **options) -> tuple[float, str]:
    """Tracer D of Li (cm²/s) and how the reader unwrapped the positions."""
    ions = load_ion_positions(open_trajectory(path, **options), "Li")
    try:
        result = tracer_diffusion(ions.positions, ions.times_ps, n_bootstrap=20)
    finally:
        ions.close()
    return result.diffusion_cm2_per_s, ions.unwrapped_by


@pytest.fixture(scope="module")
def ortho(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, float]:
    """Positions in a cuboid box (float32-exact) and D from this project's own H5MD of them."""
    wrapped, images = walk(ORTHO, seed=1, single=True)
    ours = project_h5md(tmp_path_factory.mktemp("ortho"), wrapped, images, ORTHO, DT)
    value, method = diffusion(ours)
    assert method == "images"
    with h5py.File(ours) as f:  # the reference holds the positions it was given
        g = f["particles/all"]
        assert g["position/value"].dtype == np.float64
        unwrapped = g["position/value"][:] + np.einsum("fni,ij->fnj", g["image/value"][:], ORTHO)
    np.testing.assert_allclose(unwrapped, wrapped + images @ ORTHO, rtol=0, atol=1e-12)
    return wrapped, images, value


@pytest.fixture(scope="module")
def triclinic(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, float]:
    wrapped, images = walk(TRICLINIC, seed=2)
    value, method = diffusion(project_h5md(tmp_path_factory.mktemp("tri"), wrapped, images, TRICLINIC, DT))
    assert method == "images"
    return wrapped, images, value


# --- MDAnalysis --------------------------------------------------------------------------------


def write_mdanalysis_h5md(path: Path, wrapped: np.ndarray, cell: np.ndarray, dt: float = DT) -> None:
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    universe = mda.Universe.empty(len(SYMBOLS), trajectory=False)
    dimensions = np.tile(np.r_[np.diag(cell), 90.0, 90.0, 90.0], (len(wrapped), 1)).astype(np.float32)
    universe.load_new(wrapped.astype(np.float32), format=MemoryReader, dimensions=dimensions, dt=dt)
    with mda.Writer(str(path), n_atoms=len(SYMBOLS), lengthunit="Angstrom", timeunit="ps") as writer:
        for _ in universe.trajectory:
            writer.write(universe.atoms)


def test_mdanalysis_h5md_equals_project_h5md(tmp_path: Path, ortho) -> None:
    wrapped, _, reference = ortho
    path = tmp_path / "mda.h5md"
    write_mdanalysis_h5md(path, wrapped, ORTHO)
    with h5py.File(path) as f:  # what MDAnalysis writes: no species, no images, float32
        group = f["particles/trajectory"]
        assert "species" not in group and "image" not in group
        assert group["position/value"].dtype == np.float32
    write(tmp_path / "POSCAR", Atoms(SYMBOLS, positions=wrapped[0], cell=ORTHO, pbc=True), format="vasp")
    value, method = diffusion(path, structure=tmp_path / "POSCAR")
    assert method == "minimum-image jumps"
    assert value == pytest.approx(reference, rel=SAME_D)
    per_atom, _ = diffusion(path, type_names=SYMBOLS)  # --types, one element per atom
    assert per_atom == pytest.approx(reference, rel=SAME_D)


def test_mdanalysis_single_precision_times_are_rebuilt_from_steps(tmp_path: Path, ortho) -> None:
    """MDAnalysis stores times in float32: 2 fs frames drift by 1e-7 relative per frame and would
    fail the even-spacing check; the integer steps give them back."""
    wrapped, _, reference = ortho
    dt = 0.002
    write_mdanalysis_h5md(tmp_path / "fs.h5md", wrapped, ORTHO, dt=dt)
    with h5py.File(tmp_path / "fs.h5md") as f:
        stored = f["particles/trajectory/position/time"][:].astype(np.float64)
    steps = np.diff(stored)
    assert not np.allclose(steps, steps[0], rtol=1e-6, atol=1e-9)  # as stored: uneven to the checker
    ions = load_ion_positions(open_trajectory(tmp_path / "fs.h5md", type_names=SYMBOLS), "Li")
    np.testing.assert_allclose(ions.times_ps, np.arange(N_FRAMES) * dt, rtol=0, atol=1e-12)
    value = tracer_diffusion(ions.positions, ions.times_ps, n_bootstrap=20).diffusion_cm2_per_s
    ions.close()
    # same positions, every time scaled by 0.002 / 0.125: D scales inversely (the window rule works
    # on log-log slopes and a fraction of the run, both blind to the time unit)
    assert value == pytest.approx(reference * DT / dt, rel=SAME_D)


def test_cli_analyze_reads_an_mdanalysis_file_like_its_own(tmp_path: Path, ortho, capsys) -> None:
    import json

    wrapped, images, _ = ortho
    write_mdanalysis_h5md(tmp_path / "mda.h5md", wrapped, ORTHO)
    write(tmp_path / "start.extxyz", Atoms(SYMBOLS, positions=wrapped[0], cell=ORTHO, pbc=True))
    ours = project_h5md(tmp_path / "ours", wrapped, images, ORTHO, DT)
    common = ["--temperature", "600", "--slope-tolerance", "0.3"]
    assert main(["analyze", str(ours), "-o", str(tmp_path / "a"), *common]) == 0
    args = ["analyze", str(tmp_path / "mda.h5md"), "--structure", str(tmp_path / "start.extxyz")]
    assert main([*args, "-o", str(tmp_path / "b"), *common]) == 0
    a = json.loads((tmp_path / "a" / "transport_Li.json").read_text())
    b = json.loads((tmp_path / "b" / "transport_Li.json").read_text())
    d = b["tracer"]["diffusion_cm2_per_s"]
    assert d == pytest.approx(a["tracer"]["diffusion_cm2_per_s"], rel=SAME_D)
    assert b["volume_A3"] == pytest.approx(np.linalg.det(ORTHO), rel=1e-12)
    assert any("start.extxyz" in note for note in b["notes"])
    assert "D =" in capsys.readouterr().out


# --- H5MD by hand (h5py), following the H5MD 1.1 specification ---------------------------------


def write_h5md_by_spec(
    path: Path, wrapped: np.ndarray, images: np.ndarray, cell: np.ndarray, variant: str
) -> None:
    """H5MD 1.1 as another writer may lay it out: a fixed box (a plain `edges` dataset, matrix or
    vector), fixed sampling (scalar `step`/`time` with `offset`), other units, 0-based species."""
    with h5py.File(path, "w") as f:
        f.require_group("h5md").attrs["version"] = np.array([1, 1])
        f["h5md"].require_group("author").attrs["name"] = "test"
        f["h5md"].require_group("creator").attrs.update({"name": "h5py by hand", "version": h5py.__version__})
        group = f.require_group("particles").require_group("electrolyte")
        box = group.require_group("box")
        box.attrs["dimension"] = 3
        box.attrs["boundary"] = np.array([b"periodic"] * 3)
        position = group.require_group("position")
        n = len(wrapped)
        if variant == "fixed matrix box":
            box["edges"] = cell  # time-independent 3×3, box vectors as rows
            position["value"] = wrapped
            position["step"] = np.arange(n) * 10
            position["time"] = np.arange(n) * DT
            position["time"].attrs["unit"] = "ps"
            position["value"].attrs["unit"] = "Angstrom"
            group["species"] = np.array([1 if s == "Li" else 2 for s in SYMBOLS], dtype=np.int32)
        elif variant == "fixed vector box, fixed sampling, nm and fs":
            box["edges"] = np.diag(cell) / 10.0
            box["edges"].attrs["unit"] = "nm"
            position["value"] = wrapped / 10.0
            position["value"].attrs["unit"] = "nm"
            position["step"] = 5  # step[i] = offset + 5 i
            position["step"].attrs["offset"] = 100
            position["time"] = DT * 1000.0
            position["time"].attrs["offset"] = 2000.0  # starts at 2 ps: only lags matter
            position["time"].attrs["unit"] = "fs"
            group["species"] = np.array([0 if s == "Li" else 1 for s in SYMBOLS], dtype=np.int32)
            image = group.require_group("image")
            image["value"] = images.astype(np.int32)
            image["step"], image["time"] = position["step"], position["time"]
        elif variant == "time-dependent vector box":
            edges = box.require_group("edges")
            edges["value"] = np.tile(np.diag(cell), (n, 1))
            edges["step"] = np.arange(n)
            edges["time"] = np.arange(n) * DT
            position["value"] = wrapped
            position["step"], position["time"] = edges["step"], edges["time"]  # hard links, as H5MD suggests
            group["species"] = np.array([1 if s == "Li" else 2 for s in SYMBOLS], dtype=np.int32)
        else:
            raise AssertionError(variant)


@pytest.mark.parametrize(
    ("variant", "cell_name", "method"),
    [
        ("fixed matrix box", "triclinic", "minimum-image jumps"),
        ("fixed vector box, fixed sampling, nm and fs", "ortho", "images"),
        ("time-dependent vector box", "ortho", "minimum-image jumps"),
    ],
)
def test_h5md_written_by_the_specification(
    tmp_path: Path, request: pytest.FixtureRequest, variant: str, cell_name: str, method: str
) -> None:
    wrapped, images, reference = request.getfixturevalue(cell_name)
    cell = TRICLINIC if cell_name == "triclinic" else ORTHO
    path = tmp_path / "spec.h5"
    write_h5md_by_spec(path, wrapped, images, cell, variant)
    value, used = diffusion(path, type_names=["Li", "S"])
    assert used == method
    assert value == pytest.approx(reference, rel=SAME_D)


def test_species_stored_as_element_names(tmp_path: Path, triclinic) -> None:
    wrapped, images, reference = triclinic
    write_h5md_by_spec(tmp_path / "named.h5", wrapped, images, TRICLINIC, "fixed matrix box")
    with h5py.File(tmp_path / "named.h5", "a") as f:
        del f["particles/electrolyte/species"]
        f["particles/electrolyte/species"] = np.array([s.encode() for s in SYMBOLS])
    value, _ = diffusion(tmp_path / "named.h5")
    assert value == pytest.approx(reference, rel=SAME_D)


def test_fixed_box_no_longer_raises_the_old_traceback(tmp_path: Path, triclinic) -> None:
    """The issue's case: `edges["value"]` on a plain dataset raised ValueError from h5py."""
    wrapped, images, _ = triclinic
    write_h5md_by_spec(tmp_path / "fixed.h5", wrapped, images, TRICLINIC, "fixed matrix box")
    reader = open_trajectory(tmp_path / "fixed.h5", type_names=["Li", "S"])
    cells = np.concatenate([b.cells for b in reader.blocks()])
    np.testing.assert_array_equal(cells, np.broadcast_to(TRICLINIC, (N_FRAMES, 3, 3)))


# --- ASE trajectory ----------------------------------------------------------------------------


def test_ase_traj_equals_project_h5md(tmp_path: Path, triclinic) -> None:
    from ase.io.trajectory import Trajectory

    wrapped, images, reference = triclinic
    unwrapped = wrapped + images @ TRICLINIC  # ASE's MD writes positions as integrated, unwrapped
    with Trajectory(tmp_path / "md.traj", "w") as traj:
        for pos in unwrapped:
            traj.write(Atoms(SYMBOLS, positions=pos, cell=TRICLINIC, pbc=True))
    value, _ = diffusion(tmp_path / "md.traj", timestep_ps=DT)
    assert value == pytest.approx(reference, rel=SAME_D)


# --- VASP vasprun.xml --------------------------------------------------------------------------

POTIM_FS = 2.0


def _varray(name: str, rows: np.ndarray, indent: str) -> str:
    body = "\n".join(f"{indent} <v> {' '.join(f'{x:16.8f}' for x in row)} </v>" for row in rows)
    return f'{indent}<varray name="{name}" >\n{body}\n{indent}</varray>'


def _structure(cell: np.ndarray, frac: np.ndarray, name: str | None, indent: str = "  ") -> str:
    label = f' name="{name}" ' if name else ""
    return (
        f"{indent}<structure{label}>\n{indent} <crystal>\n{_varray('basis', cell, indent + '  ')}\n"
        f'{indent}  <i name="volume">{np.linalg.det(cell):16.8f} </i>\n'
        f"{_varray('rec_basis', np.linalg.inv(cell).T, indent + '  ')}\n{indent} </crystal>\n"
        f"{_varray('positions', frac, indent + ' ')}\n{indent}</structure>"
    )


def write_vasprun(
    path: Path, frac: np.ndarray, cell: np.ndarray, ibrion: int = 0, potim: float | None = POTIM_FS
) -> None:
    """A small vasprun.xml with VASP 6's element layout (generator, incar, kpoints, parameters,
    atominfo, initialpos, one <calculation> per ionic step, finalpos) and its 8-decimal numbers."""
    counts = {s: SYMBOLS.count(s) for s in dict.fromkeys(SYMBOLS)}
    masses = {"Li": 6.941, "S": 32.065}
    valence = {"Li": 1.0, "S": 6.0}
    type_rows = "\n".join(
        f"    <rc><c>{n:4d}</c><c>{s:2s}</c><c>{masses[s]:16.8f}</c><c>{valence[s]:16.8f}</c>"
        f"<c>  PAW_PBE {s} 17Jan2003</c></rc>"
        for s, n in counts.items()
    )
    potim_line = f'  <i name="POTIM">{potim:16.8f}</i>\n' if potim is not None else ""
    head = f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<modeling>
 <generator>
  <i name="program" type="string">vasp </i>
  <i name="version" type="string">6.3.2  </i>
  <i name="platform" type="string">LinuxIFC </i>
 </generator>
 <incar>
  <i type="int" name="IBRION">     {ibrion}</i>
  <i type="int" name="NSW">   {len(frac)}</i>
{potim_line}  <i name="TEBEG">    600.00000000</i>
  <i type="int" name="MDALGO">     2</i>
 </incar>
 <kpoints>
  <generation param="Gamma">
   <v type="int" name="divisions">       1        1        1 </v>
  </generation>
  <varray name="kpointlist" >
   <v>       0.00000000       0.00000000       0.00000000 </v>
  </varray>
  <varray name="weights" >
   <v>       1.00000000 </v>
  </varray>
 </kpoints>
 <parameters>
  <separator name="electronic" >
   <i type="string" name="PREC">normal</i>
   <i name="ENMAX">    400.00000000</i>
   <i name="EDIFF">      0.00001000</i>
   <i type="int" name="NELM">    60</i>
   <i type="int" name="ISPIN">     1</i>
  </separator>
  <separator name="ionic" >
   <i type="int" name="NSW">   {len(frac)}</i>
   <i type="int" name="IBRION">     {ibrion}</i>
   <i type="int" name="ISIF">     2</i>
{"   " + potim_line.strip() if potim is not None else ""}
  </separator>
  <separator name="ionic md" >
   <i name="TEBEG">    600.00000000</i>
   <i name="TEEND">    600.00000000</i>
   <i type="int" name="NBLOCK">     1</i>
  </separator>
 </parameters>
 <atominfo>
  <atoms>      {len(SYMBOLS)} </atoms>
  <types>       {len(counts)} </types>
  <array name="atoms" >
   <dimension dim="1">ion</dimension>
   <field type="string">element</field>
   <field type="int">atomtype</field>
   <set>
{chr(10).join(f"    <rc><c>{s:2s}</c><c>   {list(counts).index(s) + 1}</c></rc>" for s in SYMBOLS)}
   </set>
  </array>
  <array name="atomtypes" >
   <dimension dim="1">type</dimension>
   <field type="int">atomspertype</field>
   <field type="string">element</field>
   <field>mass</field>
   <field>valence</field>
   <field type="string">pseudopotential</field>
   <set>
{type_rows}
   </set>
  </array>
 </atominfo>
{_structure(cell, frac[0], "initialpos", " ")}
"""
    rng = np.random.default_rng(5)
    steps = []
    for k, positions in enumerate(frac):
        energy = -50.0 + 0.01 * k
        forces = _varray("forces", rng.normal(0, 0.5, (len(SYMBOLS), 3)), "  ")
        steps.append(
            f""" <calculation>
  <scstep>
   <energy>
    <i name="e_fr_energy">{energy:16.8f} </i>
    <i name="e_wo_entrp">{energy:16.8f} </i>
    <i name="e_0_energy">{energy:16.8f} </i>
   </energy>
  </scstep>
{_structure(cell, positions, None)}
{forces}
{_varray("stress", np.eye(3), "  ")}
  <energy>
   <i name="e_fr_energy">{energy:16.8f} </i>
   <i name="e_wo_entrp">{energy:16.8f} </i>
   <i name="e_0_energy">{energy:16.8f} </i>
   <i name="kinetic">      1.00000000 </i>
   <i name="total">{energy + 1:16.8f} </i>
  </energy>
 </calculation>
"""
        )
    tail = f"{_structure(cell, frac[-1], 'finalpos', ' ')}\n</modeling>\n"
    path.write_text(head + "".join(steps) + tail)


def vasp_positions(cell: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional positions as VASP prints them (wrapped, 8 decimals) and the same as Cartesian
    wrapped positions with image flags (for the reference)."""
    wrapped, images = walk(cell, seed=seed)
    unwrapped_frac = (wrapped + images @ cell) @ np.linalg.inv(cell)
    frac = np.round(unwrapped_frac - np.floor(unwrapped_frac), 8)
    jumps = np.floor(unwrapped_frac)
    return frac, frac @ cell, jumps.astype(np.int64)


def test_vasprun_equals_project_h5md_and_parses_like_ase_and_pymatgen(tmp_path: Path) -> None:
    from ase.io import read
    from pymatgen.io.vasp.outputs import Vasprun

    frac, wrapped, images = vasp_positions(TRICLINIC, seed=3)
    path = tmp_path / "vasprun.xml"
    write_vasprun(path, frac, TRICLINIC)
    frames = read(path, index=":", format="vasp-xml")
    assert len(frames) == N_FRAMES and frames[0].get_chemical_symbols() == SYMBOLS
    np.testing.assert_allclose(frames[7].get_scaled_positions(wrap=False), frac[7], rtol=0, atol=1e-15)
    run = Vasprun(path, parse_dos=False, parse_eigen=False, parse_potcar_file=False)
    assert len(run.structures) == N_FRAMES and run.parameters["POTIM"] == POTIM_FS
    np.testing.assert_allclose(run.structures[-1].frac_coords, frac[-1], rtol=0, atol=1e-15)

    ours = project_h5md(tmp_path / "ours", wrapped, images, TRICLINIC, POTIM_FS * 1e-3)
    reference, _ = diffusion(ours)
    reader = open_trajectory(path)
    assert reader.header.format == "vasprun" and reader.header.n_frames == N_FRAMES
    assert any("not used" in note for note in open_trajectory(path, type_names=["S"]).header.notes)
    value, method = diffusion(path)
    assert method == "minimum-image jumps"
    assert value == pytest.approx(reference, rel=SAME_D)
    ions = load_ion_positions(reader, "Li")
    assert ions.times_ps[1] == pytest.approx(POTIM_FS * 1e-3, rel=1e-15)  # POTIM fs, every step stored
    ions.close()
    # A killed run: the file ends inside a step; the complete steps are analysed.
    text = path.read_text()
    cut = tmp_path / "killed" / "vasprun.xml"
    cut.parent.mkdir()
    cut.write_text(text[: text.index("<calculation>", len(text) // 2) + 300])
    partial = load_ion_positions(open_trajectory(cut), "Li")
    n = partial.positions.shape[0]
    assert 0 < n < N_FRAMES
    full = load_ion_positions(open_trajectory(path), "Li")
    np.testing.assert_array_equal(partial.positions, full.positions[:n])


# --- bad input: one line each, naming the file ---------------------------------------------------


def _bad_inputs(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(case, analyze arguments, expected fragment of the message)."""
    wrapped, images = walk(ORTHO, seed=4, single=True)
    write_mdanalysis_h5md(tmp / "mda.h5md", wrapped, ORTHO)
    data = (tmp / "mda.h5md").read_bytes()
    (tmp / "cut.h5md").write_bytes(data[: len(data) // 2])
    (tmp / "empty.h5").write_bytes(b"")
    (tmp / "notes.bin").write_text("just some text\n")
    (tmp / "empty.traj").write_bytes(b"")
    write_h5md_by_spec(tmp / "spec.h5", wrapped, images, ORTHO, "fixed matrix box")
    with h5py.File(tmp / "furlong.h5", "w") as f:
        g = f.create_group("particles/all")
        g["box/edges"] = np.diag(ORTHO)
        g["box/edges"].attrs["unit"] = "furlong"
        g["position/value"], g["position/step"], g["position/time"] = (
            wrapped,
            np.arange(N_FRAMES),
            np.arange(N_FRAMES),
        )
    with h5py.File(tmp / "open.h5", "w") as f:
        g = f.create_group("particles/all")
        g["box"] = np.zeros(1)
        del g["box"]
        box = g.create_group("box")
        box.attrs["boundary"] = np.array([b"periodic", b"periodic", b"none"])
        box["edges"] = np.diag(ORTHO)
        g["position/value"], g["position/step"], g["position/time"] = (
            wrapped,
            np.arange(N_FRAMES),
            np.arange(N_FRAMES),
        )
    rng = np.random.default_rng(0)
    write_h5md_by_spec(tmp / "jumpy.h5", rng.uniform(0, 9, wrapped.shape), images, ORTHO, "fixed matrix box")
    from ase.io.trajectory import Trajectory

    with Trajectory(tmp / "md.traj", "w") as traj:
        for pos in wrapped[:20]:
            traj.write(Atoms(SYMBOLS, positions=pos, cell=ORTHO, pbc=True))
    blob = (tmp / "md.traj").read_bytes()
    (tmp / "cut.traj").write_bytes(blob[: len(blob) // 2])
    frac, _, _ = vasp_positions(ORTHO, seed=6)
    write_vasprun(tmp / "vasprun.xml", frac[:10], ORTHO)
    write_vasprun(tmp / "relax.xml", frac[:10], ORTHO, ibrion=2)
    text = (tmp / "vasprun.xml").read_text()
    (tmp / "head.xml").write_text(text[: text.index("<calculation>")])
    (tmp / "garbage.xml").write_text("<modeling><incar><i name='POTIM'>2</i></inc></modeling>")
    write(tmp / "five.extxyz", Atoms("Li5", positions=np.zeros((5, 3)) + 1, cell=ORTHO, pbc=True))
    (tmp / "adir").mkdir()
    return [
        ("empty file", ["empty.h5"], "empty file"),
        ("truncated HDF5", ["cut.h5md"], "the HDF5 file is truncated: "),
        ("no species, no --types", ["mda.h5md"], "stores no species; pass a structure file"),
        ("unknown extension", ["notes.bin"], "unknown trajectory format; pass --format"),
        ("not an element", ["spec.h5", "--types", "Li", "Xq"], "'Xq' from --types is not an element"),
        ("too few --types", ["spec.h5", "--types", "Li"], "type 2 has no element among ['Li']"),
        (
            "structure of other size",
            ["mda.h5md", "--structure", "five.extxyz"],
            "has 5 atoms, the trajectory 14",
        ),
        ("missing structure", ["mda.h5md", "--structure", "nope.cif"], "--structure nope.cif does not exist"),
        ("unknown unit", ["furlong.h5", "--types", "Li", "S"], "unit 'furlong'"),
        ("non-periodic box", ["open.h5", "--types", "Li", "S"], "periodic in all three directions"),
        ("frames too far apart", ["jumpy.h5", "--types", "Li", "S"], "or write image flags"),
        ("empty .traj", ["empty.traj", "--timestep-ps", "0.1"], "empty file"),
        ("truncated .traj", ["cut.traj", "--timestep-ps", "0.1"], "ase.io cannot read it"),
        ("relaxation, not MD", ["relax.xml"], "IBRION = 2 is not molecular dynamics"),
        ("vasprun cut before step 1", ["head.xml"], "no complete ionic step"),
        ("damaged XML", ["garbage.xml"], "not valid XML before the first ionic step"),
        ("POTIM against --timestep-ps", ["vasprun.xml", "--timestep-ps", "0.5"], "POTIM gives 0.002 ps"),
        ("wrong --format", ["vasprun.xml", "--format", "h5md"], "not an HDF5 file (no HDF5 signature)"),
        ("a directory", ["adir"], "is a directory"),
        ("no such file", ["nothing.h5"], "no such trajectory file"),
        ("format name unknown", ["notes.bin", "--format", "nonsense"], "unknown --format 'nonsense'"),
    ]


def _options(args: list[str]) -> dict:
    """open_trajectory's keywords for the analyze arguments after the file name."""
    options: dict = {}
    rest = iter(args[1:])
    for flag in rest:
        if flag == "--types":
            options["type_names"] = [t for t in args[args.index("--types") + 1 :] if not t.startswith("--")]
        elif flag == "--structure":
            options["structure"] = next(rest)
        elif flag == "--timestep-ps":
            options["timestep_ps"] = float(next(rest))
        elif flag == "--format":
            options["fmt"] = next(rest)
    return options


def test_bad_inputs_are_one_line_each(tmp_path: Path, capsys, monkeypatch) -> None:
    """The library's message names the file and the fix; `superionic analyze` prints one line and
    exits 2 (its argument checks may catch a case first, with their own one line)."""
    monkeypatch.chdir(tmp_path)
    cases = _bad_inputs(tmp_path)
    assert len(cases) >= 15
    capsys.readouterr()
    for case, args, fragment in cases:
        with pytest.raises(TrajectoryError) as raised:
            load_ion_positions(open_trajectory(args[0], **_options(args)), "Li")
        message = str(raised.value)
        assert "\n" not in message and message.startswith(args[0]) and fragment in message, (case, message)
        status = main(["analyze", *args, "--temperature", "600", "-o", "out"])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        # the file, or the option the argument checks refused
        named = any(a in lines[0] for a in args) if lines else False
        assert status == 2 and len(lines) == 1 and named, (case, captured.err)


def test_library_raises_trajectory_error_not_h5py_errors(tmp_path: Path) -> None:
    wrapped, images = walk(ORTHO, seed=4, single=True)
    write_h5md_by_spec(tmp_path / "spec.h5", wrapped, images, ORTHO, "fixed matrix box")
    with h5py.File(tmp_path / "spec.h5", "a") as f:
        del f["particles/electrolyte/box/edges"]
    with pytest.raises(TrajectoryError, match=r"spec\.h5: box has no edges"):
        open_trajectory(tmp_path / "spec.h5", type_names=["Li", "S"])


def test_a_changing_cell_without_images_unwraps_as_images_would(tmp_path: Path) -> None:
    """NPT (vasprun ISIF = 3, an XDATCAR, an H5MD without images): jumps are taken in fractional
    coordinates and turned back with each frame's cell, which is position + image · C(t)."""
    rng = np.random.default_rng(7)
    n = N_FRAMES
    scale = 1.0 + 0.01 * np.sin(np.arange(n) / 7.0)
    cells = TRICLINIC[None] * scale[:, None, None]
    steps = rng.normal(0, 0.02, (n, len(SYMBOLS), 3))
    steps[0] = 0
    frac = rng.uniform(0, 1, (len(SYMBOLS), 3)) + np.cumsum(steps, axis=0)
    images = np.floor(frac)
    assert not images[0].any()  # atoms start inside the cell, where jump unwrapping starts them too
    wrapped = np.einsum("fni,fij->fnj", frac - images, cells)
    for name, with_images in (("images.h5", True), ("jumps.h5", False)):
        with h5py.File(tmp_path / name, "w") as f:
            group = f.create_group("particles/all")
            edges = group.create_group("box/edges")
            edges["value"], edges["step"], edges["time"] = cells, np.arange(n), np.arange(n) * DT
            group["position/value"] = wrapped
            group["position/step"], group["position/time"] = edges["step"], edges["time"]
            group["species"] = np.array([1 if s == "Li" else 2 for s in SYMBOLS])
            if with_images:
                group["image/value"] = images.astype(np.int32)
    by_images = load_ion_positions(open_trajectory(tmp_path / "images.h5", ["Li", "S"]), "Li")
    by_jumps = load_ion_positions(open_trajectory(tmp_path / "jumps.h5", ["Li", "S"]), "Li")
    assert (by_images.unwrapped_by, by_jumps.unwrapped_by) == ("images", "minimum-image jumps")
    # equal to rounding of a 3×3 inverse and back (1e-12 Å on 10 Å coordinates)
    np.testing.assert_allclose(by_jumps.positions, by_images.positions, rtol=0, atol=1e-10)
    d_images = tracer_diffusion(by_images.positions, by_images.times_ps, n_bootstrap=20).diffusion_cm2_per_s
    d_jumps = tracer_diffusion(by_jumps.positions, by_jumps.times_ps, n_bootstrap=20).diffusion_cm2_per_s
    assert d_jumps == pytest.approx(d_images, rel=SAME_D)


# --- DCD (MDAnalysis) with a topology ------------------------------------------------------------


def test_dcd_with_a_topology_equals_project_h5md(tmp_path: Path, ortho) -> None:
    import warnings

    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    wrapped, _, reference = ortho
    universe = mda.Universe.empty(
        len(SYMBOLS), n_residues=1, atom_resindex=[0] * len(SYMBOLS), trajectory=False
    )
    universe.add_TopologyAttr("names", SYMBOLS)
    universe.add_TopologyAttr("elements", SYMBOLS)
    universe.add_TopologyAttr("resnames", ["LPS"])
    universe.add_TopologyAttr("resids", [1])
    dimensions = np.tile(np.r_[np.diag(ORTHO), 90.0, 90.0, 90.0], (N_FRAMES, 1)).astype(np.float32)
    universe.load_new(wrapped.astype(np.float32), format=MemoryReader, dimensions=dimensions, dt=DT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MDAnalysis warns about PDB fields it fills in
        universe.atoms.write(tmp_path / "topology.pdb")
        with mda.Writer(str(tmp_path / "md.dcd"), n_atoms=len(SYMBOLS)) as writer:
            for _ in universe.trajectory:
                writer.write(universe.atoms)
    value, method = diffusion(tmp_path / "md.dcd", structure=tmp_path / "topology.pdb", timestep_ps=DT)
    assert method == "minimum-image jumps"
    assert value == pytest.approx(reference, rel=SAME_D)
    # a LAMMPS data file as topology: its types, named by --types
    write_lammps_data(
        tmp_path / "start.data", Atoms(SYMBOLS, positions=wrapped[0], cell=ORTHO, pbc=True), ["Li", "S"]
    )
    value, _ = diffusion(
        tmp_path / "md.dcd", structure=tmp_path / "start.data", type_names=["Li", "S"], timestep_ps=DT
    )
    assert value == pytest.approx(reference, rel=SAME_D)
    with pytest.raises(TrajectoryError, match=r"md\.dcd: a DCD file's time step is in its writer's units"):
        open_trajectory(tmp_path / "md.dcd", structure=tmp_path / "topology.pdb")
    with pytest.raises(TrajectoryError, match=r"md\.dcd: a DCD file stores no atoms; pass its topology"):
        open_trajectory(tmp_path / "md.dcd", timestep_ps=DT)


def test_lammps_dump_with_image_flags_equals_project_h5md(tmp_path: Path) -> None:
    """The dump LAMMPS re-read to write the reference is itself a trajectory (x y z ix iy iz)."""
    wrapped, images = walk(TRICLINIC, seed=8)
    reference, _ = diffusion(project_h5md(tmp_path, wrapped, images, TRICLINIC, DT))
    value, method = diffusion(tmp_path / "frames.dump", type_names=["Li", "S"], timestep_ps=DT)
    assert method == "images"
    assert value == pytest.approx(reference, rel=SAME_D)
    by_structure, _ = diffusion(
        tmp_path / "frames.dump", structure=tmp_path / "structure.data", timestep_ps=DT
    )
    assert by_structure == pytest.approx(reference, rel=SAME_D)
