"""A corpus of bad inputs across every verb and the pair style: each fails in one clear line.

Every case asserts the exit status (2 for a user error), that nothing printed a traceback or reached
the internal-error guard, the key words of the message, and that the files already written (a
checkpoint, labelled data, a trajectory, a finished MD run) are byte for byte what they were.
Most cases call ``superionic.cli.main`` in this process (the torch import is paid once); a few run
the installed ``superionic`` and the real ``lmp`` as subprocesses, where a traceback could not hide.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase.io import read, write

from superionic import cli
from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import run_lammps
from superionic.models import ReferencePotential
from tests.analysis._h5md import write_h5md

FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_format1"
ARGYRODITE = Path(__file__).resolve().parents[2] / "data" / "examples" / "Li6PS5Cl.cif"
SPECIES = ["Li", "Ge", "P", "S"]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class World:
    """Files a user already has (their bytes must survive every case) and the bad ones."""

    root: Path

    def __getattr__(self, name: str) -> str:  # world.model -> "<root>/model.pt" etc.
        return str(self.root / FILES[name])


FILES = {
    "model": "ref.pt",
    "ckpt": "run/last.ckpt",
    "data": "data.extxyz",
    "config": "config.yaml",
    "structure": "structure.extxyz",
    "traj": "traj.extxyz",
    "finished": "md",
    "random": "random.pt",
    "empty": "empty.pt",
    "text": "notes.pt",
    "h5": "frames.h5",
    "weights": "weights.pt",
    "lightning": "lightning.ckpt",
    "nequip": "model.nequip.zip",
    "bare": "bare.pt",
    "misnamed": "ts_named.pt2",
    "evil": "evil.ckpt",
    "truncated": "truncated.ckpt",
    "folder": "folder",
    # files others damaged or named wrongly (issue 25): compression, truncation, format, labels
    "corruptgz": "corrupt.extxyz.gz",
    "truncgz": "truncated.extxyz.gz",
    "binxyz": "junk.extxyz",
    "trunch5": "cut.h5",
    "gzh5": "packed.h5",
    "macexyz": "mace.extxyz",
    "corruptcif": "argyrodite.cif.gz",
    "trunccif": "cut.cif",
    "overfilled": "overfilled.cif",
    "overfilled_bare": "overfilled_bare.cif",
    "mixed": "mixed_valence.cif",
    "textfile": "notes.txt",
    "timed": "timed.extxyz",
}


class Evil:
    """Unpickling this calls os.system: what a checkpoint from a stranger could carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("corpus")
    shutil.copytree(FIXTURE, root, dirs_exist_ok=True)  # config.yaml, data.extxyz, run/last.ckpt
    reference = ReferencePotential(SPECIES)
    export_model(reference, root / FILES["model"])
    atoms = jittered_lattice((3, 3, 3), seed=0)
    write(root / FILES["structure"], atoms)
    frames = [jittered_lattice((2, 2, 2), jitter=0.1, seed=s) for s in range(5)]
    write(root / FILES["traj"], frames)
    finished = root / FILES["finished"] / "T600K"
    finished.mkdir(parents=True)
    (finished / "traj.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    (finished / "restart.final.lammps").write_bytes(b"restart")
    rng = np.random.default_rng(15)
    (root / FILES["random"]).write_bytes(rng.bytes(5000))
    (root / FILES["empty"]).write_bytes(b"")
    (root / FILES["text"]).write_text("pair_coeff * * model.pt Li\n")
    import h5py

    with h5py.File(root / FILES["h5"], "w") as handle:
        handle["particles/all/position/value"] = np.zeros((2, 3, 3))
    torch.save({"weight": torch.zeros(3)}, root / FILES["weights"])
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.4.0"}, root / FILES["lightning"])
    with torch.package.PackageExporter(str(root / FILES["nequip"])) as package:
        package.save_text("model", "package_metadata.txt", "package_version_id: 1\n")
    torch.jit.save(torch.jit.script(reference.eval()), str(root / FILES["bare"]))
    shutil.copy(root / FILES["model"], root / FILES["misnamed"])
    payload = torch.load(root / FILES["ckpt"], weights_only=True)
    payload["state"] = Evil(root.parent / f"{root.name}_PWNED")
    torch.save(payload, root / FILES["evil"])
    whole = (root / FILES["ckpt"]).read_bytes()
    (root / FILES["truncated"]).write_bytes(whole[: len(whole) // 2])
    (root / FILES["folder"]).mkdir()
    _damaged_files(root, frames)
    return World(root)


def _flip(data: bytes, start: int, stop: int) -> bytes:
    """``data`` with the bytes from ``start`` to ``stop`` damaged, as a bad sector or copy does."""
    return data[:start] + bytes(b ^ 0x5A for b in data[start:stop]) + data[stop:]


def _damaged_files(root: Path, frames: list) -> None:
    """Damaged and misnamed copies of real files, as a full disk, a cut copy or a wrong name leaves them."""
    labelled = (root / FILES["data"]).read_bytes()
    packed = gzip.compress(labelled)
    (root / FILES["corruptgz"]).write_bytes(
        packed[:100] + bytes(b ^ 0x5A for b in packed[100:300]) + packed[300:]
    )
    (root / FILES["truncgz"]).write_bytes(packed[: len(packed) // 2])
    (root / FILES["binxyz"]).write_bytes(np.random.default_rng(3).bytes(3000))
    positions = np.array([f.positions for f in frames])
    whole = write_h5md(
        root / "whole.h5", positions, frames[0].cell.array, frames[0].get_chemical_symbols(), 0.1
    )
    data = whole.read_bytes()
    whole.unlink()
    (root / FILES["trunch5"]).write_bytes(data[: len(data) // 2])
    (root / FILES["gzh5"]).write_bytes(gzip.compress(data))
    renamed = []
    for atoms in read(root / FILES["data"], ":"):
        copy = atoms.copy()
        copy.info["REF_energy"] = atoms.get_potential_energy()
        copy.arrays["REF_forces"] = atoms.get_forces()
        renamed.append(copy)
    write(root / FILES["macexyz"], renamed)
    cif = ARGYRODITE.read_text()
    (root / FILES["corruptcif"]).write_bytes(_flip(gzip.compress(cif.encode()), 120, 260))
    lines = cif.splitlines()
    (root / FILES["trunccif"]).write_text(
        "\n".join(lines[: next(i for i, x in enumerate(lines) if "Li1 Li" in x) - 3])
    )
    overfilled = cif.replace(
        "  Li1 Li 48 h 0.1800 0.1800 0.9800 0.5", "  Li1 Li 48 h 0.1800 0.1800 0.9800 0.9"
    )
    (root / FILES["overfilled"]).write_text(overfilled)
    (root / FILES["overfilled_bare"]).write_text(
        "\n".join(x for x in overfilled.splitlines() if not x.startswith("_chemical_formula_sum"))
    )
    charges = {"Li": "Li1+", "P": "P5+", "S": "S2-", "Cl": "Cl1-"}
    charged = []
    for line in cif.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[1] in charges:
            parts[1] = "S1-" if parts[0] == "S3" else charges[parts[1]]  # S both -2 and -1
            line = "  " + " ".join(parts)
        charged.append(line)
    text = "\n".join(charged) + "\n"
    (root / FILES["mixed"]).write_text(text)
    (root / FILES["textfile"]).write_text("run 1000\n")
    timed = [jittered_lattice((4, 4, 4), jitter=0.1, seed=s) for s in range(10)]
    for k, atoms in enumerate(timed):
        atoms.info["time_ps"] = 0.1 * k
    write(root / FILES["timed"], timed)


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_config(directory: Path, world: World, edit: dict | None = None, text: str | None = None) -> str:
    """The fixture's valid config with one fault: a changed key, or raw text."""
    path = directory / "bad.yaml"
    if text is not None:
        path.write_text(text)
        return str(path)
    config = yaml.safe_load(Path(world.config).read_text())
    config["data"]["train"] = [world.data]
    config["output"] = str(directory / "run")
    for dotted, value in (edit or {}).items():
        section, key = dotted.split(".")
        config[section][key] = value
    path.write_text(yaml.safe_dump(config))
    return str(path)


# (id, argv with {world.attr} and {tmp} placeholders, words the one line must contain)
CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    # export-reference
    ("xref-suffix", ["export-reference", "-o", "{tmp}/m.onnx"], ("--output", "unknown model suffix", ".pt2")),
    ("xref-element", ["export-reference", "-o", "{tmp}/m.pt", "--species", "Li", "Xx"], ("Xx", "element")),
    ("xref-repeat", ["export-reference", "-o", "{tmp}/m.pt", "--species", "Li", "Li"], ("repeated",)),
    # train: files and config values
    ("train-missing", ["train", "{tmp}/none.yaml"], ("none.yaml", "no such file")),
    ("train-dir", ["train", "{world.folder}"], ("is a directory",)),
    ("train-binary", ["train", "{world.random}"], ("random.pt", "not a text file")),
    (
        "train-epochs",
        ["train", "config:training.epochs=-3"],
        ("training.epochs", "-3", ">= 1", "epochs: 200"),
    ),
    ("train-lr", ["train", "config:training.lr=0"], ("training.lr", "> 0")),
    ("train-batch", ["train", "config:training.batch_size=2.5"], ("training.batch_size", "2.5", "integer")),
    ("train-cutoff", ["train", "config:model.cutoff=-1"], ("model.cutoff", "-1", "> 0")),
    ("train-fraction", ["train", "config:data.val_fraction=1.5"], ("data.val_fraction", "1.5")),
    ("train-species", ["train", "config:model.species=[Li,Qq]"], ("model.species", "Qq", "element")),
    ("train-ema", ["train", "config:training.ema_decay=1"], ("training.ema_decay", "[0, 1)")),
    ("train-weights", ["train", "config:weights=0"], ("all 0", "nothing to fit")),
    ("train-typo", ["train", "config:training.epoch=3"], ("unknown key 'epoch'", "did you mean 'epochs'")),
    (
        "train-yaml",
        ["train", "yaml:data:\n  train: [a.xyz\nmodel: {}\n"],
        ("bad.yaml:3:6", "YAML syntax error"),
    ),
    ("train-tab", ["train", "yaml:data:\n\ttrain: [a.xyz]\n"], ("bad.yaml:2:1", "tab", "spaces")),
    ("train-resume", ["train", "config:", "--resume"], ("nothing to resume", "--resume")),
    # evaluate: model files of every wrong kind, data files
    ("eval-random", ["evaluate", "{world.random}", "{world.data}"], ("not a superionic model", "not a zip")),
    ("eval-empty", ["evaluate", "{world.empty}", "{world.data}"], ("empty.pt", "it is empty")),
    ("eval-text", ["evaluate", "{world.text}", "{world.data}"], ("notes.pt", "text file")),
    ("eval-hdf5", ["evaluate", "{world.h5}", "{world.data}"], ("frames.h5", "HDF5 file")),
    ("eval-missing", ["evaluate", "{tmp}/gone.pt", "{world.data}"], ("gone.pt", "no such file")),
    ("eval-weights", ["evaluate", "{world.weights}", "{world.data}"], ("torch.save file",)),
    ("eval-lightning", ["evaluate", "{world.lightning}", "{world.data}"], ("PyTorch Lightning checkpoint",)),
    ("eval-nequip", ["evaluate", "{world.nequip}", "{world.data}"], ("nequip package",)),
    (
        "eval-bare",
        ["evaluate", "{world.bare}", "{world.data}"],
        ("without superionic.json", "superionic export"),
    ),
    (
        "eval-misnamed",
        ["evaluate", "{world.misnamed}", "{world.data}"],
        ("TorchScript", "rename it to ts_named.pt"),
    ),
    ("eval-evil", ["evaluate", "{world.evil}", "{world.data}"], ("evil.ckpt", "refused", "posix.system")),
    ("eval-no-data", ["evaluate", "{world.model}", "{tmp}/none.extxyz"], ("none.extxyz", "no such file")),
    ("eval-empty-data", ["evaluate", "{world.model}", "{world.empty}"], ("empty.pt", "empty")),
    # export
    (
        "export-exported",
        ["export", "{world.model}", "-o", "{tmp}/m.pt"],
        ("not a superionic checkpoint", "already"),
    ),
    ("export-suffix", ["export", "{world.ckpt}", "-o", "{tmp}/m.onnx"], ("unknown model suffix",)),
    ("export-device", ["export", "{world.ckpt}", "-o", "{tmp}/m.pt", "--device", "tpu"], ("--device", "tpu")),
    (
        "export-evil",
        ["export", "{world.evil}", "-o", "{tmp}/m.pt"],
        ("refused", "posix.system", "could run code"),
    ),
    (
        "export-truncated",
        ["export", "{world.truncated}", "-o", "{tmp}/m.pt"],
        ("not a superionic checkpoint",),
    ),
    (
        "export-random",
        ["export", "{world.random}", "-o", "{tmp}/m.pt"],
        ("not a superionic checkpoint", "not a zip"),
    ),
    # md: ranges, consistency and files, all before LAMMPS starts
    (
        "md-negative-T",
        ["md", "{world.structure}", "{world.model}", "-T", "-100"],
        ("--temperatures -100", "> 0"),
    ),
    ("md-zero-T", ["md", "{world.structure}", "{world.model}", "-T", "600", "0"], ("--temperatures 0",)),
    ("md-twice-T", ["md", "{world.structure}", "{world.model}", "-T", "600", "600"], ("600 is given twice",)),
    (
        "md-eq",
        ["md", "{world.structure}", "{world.model}", "-T", "600", "--steps", "100", "--eq-steps", "200"],
        ("--steps 100 must exceed --eq-steps 200",),
    ),
    (
        "md-steps",
        ["md", "{world.structure}", "{world.model}", "-T", "600", "--steps", "0"],
        ("--steps 0", ">= 1"),
    ),
    ("md-dt", ["md", "{world.structure}", "{world.model}", "-T", "600", "--dt", "0"], ("--dt 0",)),
    (
        "md-dt-large",
        ["md", "{world.structure}", "{world.model}", "-T", "600", "--dt", "0.5"],
        ("--dt 0.5", "0.01"),
    ),
    (
        "md-np",
        ["md", "{world.structure}", "{world.model}", "-T", "600", "--np", "0"],
        ("--np 0", "MPI ranks"),
    ),
    (
        "md-parallel",
        ["md", "{world.structure}", "{world.model}", "-T", "600", "--parallel", "0"],
        ("--parallel 0",),
    ),
    ("md-seed", ["md", "{world.structure}", "{world.model}", "-T", "600", "--seed", "0"], ("--seed 0",)),
    (
        "md-group",
        ["md", "{world.structure}", "{world.model}", "-T", "600", "--group", "Li ions"],
        ("--group",),
    ),
    (
        "md-dump",
        ["md", "{world.structure}", "{world.model}", "-T", "600", "--dump-every", "0"],
        ("--dump-every 0",),
    ),
    (
        "md-ckpt",
        ["md", "{world.structure}", "{world.ckpt}", "-T", "600"],
        ("training checkpoint", "superionic export"),
    ),
    ("md-random-model", ["md", "{world.structure}", "{world.random}", "-T", "600"], ("not a zip archive",)),
    ("md-no-structure", ["md", "{tmp}/none.cif", "{world.model}", "-T", "600"], ("none.cif", "no such file")),
    ("md-bad-structure", ["md", "{world.random}", "{world.model}", "-T", "600"], ("ASE cannot read",)),
    (
        "md-output-file",
        ["md", "{world.structure}", "{world.model}", "-T", "600", "-o", "{world.data}"],
        ("--output", "is a file"),
    ),
    (
        "md-finished",
        # --allow-small-cell: the corpus cell (7.8 Å) is refused for its width before the output is seen.
        [
            "md",
            "{world.structure}",
            "{world.model}",
            "-T",
            "600",
            "--allow-small-cell",
            "-o",
            "{world.finished}",
        ],
        ("finished run", "--overwrite"),
    ),
    # analyze / arrhenius
    ("analyze-missing", ["analyze", "{tmp}/none.h5"], ("none.h5", "no such file")),
    ("analyze-empty", ["analyze", "{world.empty}"], ("empty",)),
    ("analyze-T", ["analyze", "{world.traj}", "--temperature", "-5"], ("--temperature -5", "> 0")),
    ("analyze-slope", ["analyze", "{world.traj}", "--slope-tolerance", "2"], ("--slope-tolerance 2",)),
    ("analyze-dt", ["analyze", "{world.traj}", "--timestep-ps", "0"], ("--timestep-ps 0",)),
    ("analyze-ion", ["analyze", "{world.traj}", "--ion", "Lithium"], ("--ion Lithium", "element")),
    ("analyze-charge", ["analyze", "{world.traj}", "--charge", "0"], ("--charge 0",)),
    ("arrhenius-one", ["arrhenius", "{world.traj}"], ("two or more temperatures",)),
    ("arrhenius-twice", ["arrhenius", "{world.traj}", "{world.traj}"], ("given twice",)),
    (
        "arrhenius-count",
        ["arrhenius", "{world.traj}", "{world.structure}", "--temperatures", "900"],
        ("--temperatures gives 1 values for 2 files",),
    ),
    (
        "arrhenius-T",
        ["arrhenius", "{world.traj}", "{world.structure}", "--temperatures", "-900", "900"],
        ("--temperatures -900",),
    ),
    # study, demo, argument syntax
    ("study-sizes", ["study", "data-size", "{world.config}", "--sizes", "0", "100"], ("--sizes 0",)),
    ("study-config", ["study", "data-size", "{tmp}/none.yaml"], ("none.yaml", "no such file")),
    (
        "study-size-reference",
        ["study", "data-size", "{world.config}", "--reference", "{tmp}/none.extxyz"],
        ("--reference", "none.extxyz", "no such file"),
    ),
    (
        "study-quality-reference",
        ["study", "data-quality", "{world.config}", "--reference", "{tmp}/none.extxyz"],
        ("--reference", "none.extxyz", "no such file"),
    ),
    (
        "study-architecture-reference",
        ["study", "architecture", "{world.config}", "{world.config}", "--reference", "{tmp}/none.extxyz"],
        ("--reference", "none.extxyz", "no such file"),
    ),
    (
        "arrhenius-target",
        ["arrhenius", "{world.traj}", "{world.structure}", "--target-ea", "0"],
        ("--target-ea 0", "> 0 eV"),
    ),
    ("demo-epochs", ["demo", "--epochs", "0", "--workdir", "{tmp}/demo"], ("--epochs 0",)),
    (
        "demo-budget",
        ["demo", "--max-md-ns", "0", "--workdir", "{tmp}/demo"],
        ("--max-md-ns 0", "> 0 ns"),
    ),
    ("demo-np", ["demo", "--np", "0", "--workdir", "{tmp}/demo"], ("--np 0",)),
    (
        "syntax-float",
        ["md", "{world.structure}", "{world.model}", "-T", "hot"],
        ("invalid float value", "--help"),
    ),
    ("syntax-verb", ["simulate"], ("invalid choice", "--help")),
    # damaged, truncated and misnamed files (issue 25): each reader names the file and the fault
    (
        "analyze-corrupt-gzip",
        ["analyze", "{world.corruptgz}", "--timestep-ps", "0.1", "--temperature", "600"],
        ("corrupt.extxyz.gz", "the gzip data is damaged", "copy it again"),
    ),
    (
        "analyze-truncated-gzip",
        ["analyze", "{world.truncgz}", "--timestep-ps", "0.1", "--temperature", "600"],
        ("truncated.extxyz.gz", "gzip stream ends before its end marker", "truncated"),
    ),
    (
        "analyze-binary-extxyz",
        ["analyze", "{world.binxyz}", "--timestep-ps", "0.1", "--temperature", "600"],
        ("junk.extxyz", "binary data, not text"),
    ),
    (
        "analyze-truncated-h5md",
        ["analyze", "{world.trunch5}", "--temperature", "600"],
        ("cut.h5", "the HDF5 file is truncated", "bytes are there"),
    ),
    (
        "analyze-gzipped-h5md",
        ["analyze", "{world.gzh5}", "--temperature", "600"],
        ("packed.h5", "not an HDF5 file: it is gzip-compressed"),
    ),
    (
        "analyze-wrong-format",
        ["analyze", "{world.traj}", "--format", "h5md", "--temperature", "600"],
        ("traj.extxyz", "not an HDF5 file (no HDF5 signature)"),
    ),
    (
        "analyze-unknown-format",
        ["analyze", "{world.textfile}", "--temperature", "600"],
        ("notes.txt", "unknown trajectory format", "--format"),
    ),
    ("analyze-not-h5md", ["analyze", "{world.h5}", "--temperature", "600"], ("frames.h5", "not an H5MD")),
    (
        "arrhenius-corrupt-gzip",
        [
            "arrhenius",
            "{world.corruptgz}",
            "{world.traj}",
            "--temperatures",
            "600",
            "900",
            "--timestep-ps",
            "0.1",
        ],
        ("corrupt.extxyz.gz", "the gzip data is damaged"),
    ),
    (
        "arrhenius-truncated-h5md",
        [
            "arrhenius",
            "{world.trunch5}",
            "{world.traj}",
            "--temperatures",
            "600",
            "900",
            "--timestep-ps",
            "0.1",
        ],
        ("cut.h5", "the HDF5 file is truncated"),
    ),
    (
        "train-corrupt-gzip",
        ["train", "config:data.train=corruptgz"],
        ("corrupt.extxyz.gz", "gzip data is damaged"),
    ),
    (
        "train-truncated-gzip",
        ["train", "config:data.train=truncgz"],
        ("truncated.extxyz.gz", "the file is truncated"),
    ),
    ("train-binary-data", ["train", "config:data.train=binxyz"], ("junk.extxyz", "binary data, not text")),
    (
        "train-val-corrupt",
        ["train", "config:data.val=corruptgz"],
        ("corrupt.extxyz.gz", "gzip data is damaged"),
    ),
    (
        "train-mace-keys",
        ["train", "config:data.train=macexyz"],
        ("mace.extxyz: frame 0: no energy under 'energy'", "'REF_energy'", "data.energy_key"),
    ),
    (
        "train-mace-force-key",
        ["train", "config:data.train=macexyz;data.energy_key=REF_energy"],
        ("no forces under 'forces'", "'REF_forces'", "data.forces_key"),
    ),
    (
        "train-key-syntax",
        ["train", "config:data.energy_key=REF energy"],
        ("data.energy_key", "e.g. energy_key"),
    ),
    (
        "eval-corrupt-gzip",
        ["evaluate", "{world.model}", "{world.corruptgz}"],
        ("corrupt.extxyz.gz", "gzip data is damaged"),
    ),
    (
        "eval-truncated-gzip",
        ["evaluate", "{world.model}", "{world.truncgz}"],
        ("truncated.extxyz.gz", "the file is truncated"),
    ),
    (
        "eval-binary-data",
        ["evaluate", "{world.model}", "{world.binxyz}"],
        ("junk.extxyz", "binary data, not text"),
    ),
    (
        "eval-mace-keys",
        ["evaluate", "{world.model}", "{world.macexyz}"],
        ("no energy under 'energy'", "'REF_energy'", "--energy-key"),
    ),
    (
        "eval-key-syntax",
        ["evaluate", "{world.model}", "{world.data}", "--energy-key", "a b"],
        ("--energy-key", "REF_energy"),
    ),
    (
        "md-corrupt-cif",
        ["md", "{world.corruptcif}", "{world.model}", "-T", "600"],
        ("argyrodite.cif.gz", "the gzip data is damaged"),
    ),
    (
        "md-truncated-cif",
        ["md", "{world.trunccif}", "{world.model}", "-T", "600"],
        ("cut.cif", "not a readable CIF"),
    ),
    (
        "md-binary-structure",
        ["md", "{world.binxyz}", "{world.model}", "-T", "600"],
        ("junk.extxyz", "binary data, not text"),
    ),
    (
        "md-overfilled-cif",
        ["md", "{world.overfilled}", "{world.model}", "-T", "600", "--supercell", "1x1x2"],
        ("overfilled.cif", "43.2 Li where it says 24", "_chemical_formula_sum"),
    ),
    (
        "md-truncated-gzip-structure",
        ["md", "{world.truncgz}", "{world.model}", "-T", "600"],
        ("truncated.extxyz.gz", "the file is truncated"),
    ),
    ("export-hdf5", ["export", "{world.h5}", "-o", "{tmp}/m.pt"], ("not a superionic checkpoint", "HDF5")),
    (
        "validate-truncated-model-trajectory",
        [
            "validate",
            "{world.model}",
            "--reference",
            "{world.timed}@600",
            "--model-trajectory",
            "600={world.trunch5}",
        ],
        ("cut.h5", "the HDF5 file is truncated"),
    ),
    (
        "conductivity-overfilled-cif",
        [
            "conductivity",
            "{world.overfilled}",
            "-T",
            "700",
            "800",
            "--supercell",
            "1x1x2",
            "--workdir",
            "{tmp}/c",
        ],
        ("overfilled.cif", "43.2 Li where it says 24"),
    ),
    (
        "conductivity-corrupt-cif",
        ["conductivity", "{world.corruptcif}", "-T", "700", "800", "--workdir", "{tmp}/c"],
        ("argyrodite.cif.gz", "the gzip data is damaged"),
    ),
    ("learn-missing", ["learn", "{tmp}/none.yaml"], ("none.yaml", "no such config file")),
]

DATA_CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    ("data-frames", ["data", "generate", "LGPS", "--frames", "0", "-o", "{tmp}/g.extxyz.gz"], ("--frames",)),
    ("data-structure", ["data", "generate", "{tmp}/none.cif", "-o", "{tmp}/g.extxyz.gz"], ("none.cif",)),
    (
        "data-overfilled-cif",
        ["data", "generate", "{world.overfilled}", "--supercell", "1x1x2", "-o", "{tmp}/g.extxyz.gz"],
        ("overfilled.cif", "43.2 Li where it says 24", "occupancies of Li"),
    ),
    (
        "data-guessed-state-zero",
        ["data", "generate", "{world.overfilled_bare}", "--supercell", "1x1x2", "-o", "{tmp}/g.extxyz.gz"],
        ("give P the state 0", "--oxidation-states Li=1,P=?,S=-2,Cl=-1"),
    ),
    (
        "data-mixed-valence",
        ["data", "generate", "{world.mixed}", "--supercell", "1x1x2", "-o", "{tmp}/g.extxyz.gz"],
        ("gives S the states -2 and -1",),
    ),
    (
        "data-corrupt-cif",
        ["data", "generate", "{world.corruptcif}", "-o", "{tmp}/g.extxyz.gz"],
        ("argyrodite.cif.gz", "the gzip data is damaged"),
    ),
    (
        "data-truncated-cif",
        ["data", "generate", "{world.trunccif}", "-o", "{tmp}/g.extxyz.gz"],
        ("cut.cif", "not a readable CIF"),
    ),
    (
        "data-oxidation-states-missing",
        [
            "data",
            "generate",
            "{world.overfilled_bare}",
            "--supercell",
            "1x1x2",
            "--oxidation-states",
            "Li=1,P=5",
            "-o",
            "{tmp}/g.extxyz.gz",
        ],
        ("--oxidation-states: no value for S, Cl",),
    ),
    (
        "data-oxidation-states-cannot-neutralise",
        [
            "data",
            "generate",
            "{world.overfilled_bare}",
            "--supercell",
            "1x1x2",
            "--oxidation-states",
            "Li=1,P=5,S=-2,Cl=-1",
            "-o",
            "{tmp}/g.extxyz.gz",
        ],
        ("make no neutral compound", "occupancies of Li"),
    ),
    (
        "data-reference-overfilled-cif",
        [
            "data",
            "reference-md",
            "{world.overfilled}",
            "--supercell",
            "1x1x2",
            "--temperature",
            "600",
            "--steps",
            "500",
            "-o",
            "{tmp}/r.extxyz.gz",
        ],
        ("43.2 Li where it says 24",),
    ),
    (
        "data-reference-T",
        ["data", "reference-md", "LGPS", "--temperature", "-100", "--steps", "10", "-o", "{tmp}/r.extxyz.gz"],
        ("--temperature",),
    ),
]


def expand(argv: list[str], world: World, tmp: Path) -> list[str]:
    out = []
    for arg in argv:
        if arg.startswith("config:"):
            edit = arg.removeprefix("config:")
            if edit == "weights=0":
                changes = {f"training.{k}_weight": 0 for k in ("energy", "force", "stress")}
            elif edit:  # key=value[;key=value]: a value naming a world file puts that file in the list
                changes = {}
                for item in edit.split(";"):
                    key, value = item.split("=", 1)
                    if key in ("data.train", "data.val") and value in FILES:
                        changes[key] = [getattr(world, value)]
                    else:
                        changes[key] = value if " " in value else yaml.safe_load(value)
            else:
                changes = {}
            out.append(write_config(tmp, world, changes))
        elif arg.startswith("yaml:"):
            out.append(write_config(tmp, world, text=arg.removeprefix("yaml:")))
        else:
            for name in FILES:
                arg = arg.replace(f"{{world.{name}}}", getattr(world, name))
            out.append(arg.replace("{tmp}", str(tmp)))
    return out


def assert_one_clear_line(code: int, out: str, err: str, words: tuple[str, ...]) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in out + err, err
    assert "internal error" not in err, f"reached the internal-error guard: {err}"
    assert code == 2, f"exit status {code}: {err}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    missing = [w for w in words if w not in lines[0]]
    assert not missing, f"message lacks {missing}: {lines[0]}"
    return lines[0]


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse
        code = int(stop.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("name", "argv", "words"), CASES, ids=[c[0] for c in CASES])
def test_cli_case(
    name: str, argv: list[str], words: tuple[str, ...], world: World, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # default outputs (runs/...) would land here
    before = snapshot(world.root)
    code, out, err = run_in_process(expand(argv, world, tmp_path), capsys)
    assert_one_clear_line(code, out, err, words)
    assert snapshot(world.root) == before, "a file already written changed"
    assert not (tmp_path / "runs").exists(), "a refused command created its output directory"


@pytest.mark.parametrize(("name", "argv", "words"), DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_data_case(
    name: str, argv: list[str], words: tuple[str, ...], world: World, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = snapshot(world.root)
    code, out, err = run_in_process(expand(argv, world, tmp_path), capsys)
    assert "Traceback" not in out + err
    assert snapshot(world.root) == before
    assert_one_clear_line(code, out, err, words)


def test_malicious_checkpoint_runs_nothing(world: World, tmp_path: Path, capsys) -> None:
    """Loading with weights_only=False would have run `touch` on unpickling; it is refused first."""
    marker = world.root.parent / f"{world.root.name}_PWNED"
    for argv in (
        ["evaluate", world.evil, world.data, "-o", str(tmp_path)],
        ["export", world.evil, "-o", "x.pt"],
    ):
        code, out, err = run_in_process(argv, capsys)
        assert_one_clear_line(code, out, err, ("refused", "posix.system"))
    from superionic.train.checkpoint import CheckpointError, load_checkpoint

    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(world.evil)
    assert not marker.exists(), "the pickled callable ran"


# --- as subprocesses: the installed command and the real lmp ---------------------------------

SUBPROCESS_CASES = [
    ("evaluate-random", ["evaluate", "{world.random}", "{world.data}"], ("not a superionic model",)),
    ("md-negative-T", ["md", "{world.structure}", "{world.model}", "-T", "-100"], ("--temperatures -100",)),
    ("train-epochs", ["train", "config:training.epochs=-3"], ("training.epochs", "-3")),
    ("export-evil", ["export", "{world.evil}", "-o", "{tmp}/m.pt"], ("refused",)),
    (
        "analyze-corrupt-gzip",
        ["analyze", "{world.corruptgz}", "--timestep-ps", "0.1", "--temperature", "600"],
        ("the gzip data is damaged",),
    ),
    (
        "data-overfilled-cif",
        ["data", "generate", "{world.overfilled}", "--supercell", "1x1x2", "-o", "{tmp}/g.extxyz.gz"],
        ("43.2 Li where it says 24",),
    ),
]


@pytest.mark.parametrize(("name", "argv", "words"), SUBPROCESS_CASES, ids=[c[0] for c in SUBPROCESS_CASES])
def test_installed_command(
    name: str, argv: list[str], words: tuple[str, ...], world: World, tmp_path: Path
) -> None:
    before = snapshot(world.root)
    run = subprocess.run(
        [str(BIN / "superionic"), *expand(argv, world, tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert_one_clear_line(run.returncode, run.stdout, run.stderr, words)
    assert snapshot(world.root) == before


LAMMPS_CASES = [
    ("random", "random", ("random.pt is not a superionic model", "not a zip archive", "superionic export")),
    ("empty", "empty", ("it is empty",)),
    ("checkpoint", "ckpt", ("superionic training checkpoint", "superionic export")),
    ("weights", "weights", ("torch.save file",)),
    ("nequip", "nequip", ("nequip package",)),
    ("misnamed", "misnamed", ("TorchScript", "rename it to ts_named.pt")),
    ("truncated", "truncated", ("truncated or damaged zip archive",)),
]


@pytest.mark.parametrize(("name", "attr", "words"), LAMMPS_CASES, ids=[c[0] for c in LAMMPS_CASES])
def test_pair_style_case(name: str, attr: str, words: tuple[str, ...], world: World, tmp_path: Path) -> None:
    write_lammps_data(tmp_path / "d.data", jittered_lattice((3, 3, 3), spacing=2.6, seed=0), SPECIES)
    deck = tmp_path / "in.lmp"
    deck.write_text(
        "units metal\natom_style atomic\nread_data d.data\npair_style superionic\n"
        f"pair_coeff * * {getattr(world, attr)} {' '.join(SPECIES)}\nrun 0\n"
    )
    before = snapshot(world.root)
    run = run_lammps(deck, tmp_path, nprocs=1, timeout=120, check=False)
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR")]
    assert run.returncode != 0 and len(errors) == 1, run.output[-2000:]
    missing = [w for w in words if w not in errors[0]]
    assert not missing, f"ERROR line lacks {missing}: {errors[0]}"
    assert snapshot(world.root) == before


# fix superionic/h5md given a file it cannot continue or a place it cannot write: (id, file, keyword, words)
H5MD_CASES = [
    ("append-truncated", "{world.trunch5}", "append", ("cannot append to", "the file is truncated")),
    ("append-gzip", "{world.gzh5}", "append", ("cannot append to", "it is not an HDF5 file")),
    ("append-text", "{world.textfile}", "append", ("cannot append to", "it is not an HDF5 file")),
    (
        "create-no-directory",
        "{tmp}/no/such/dir/t.h5",
        "overwrite",
        ("cannot create", "No such file or directory"),
    ),
]


@pytest.mark.parametrize(("name", "target", "mode", "words"), H5MD_CASES, ids=[c[0] for c in H5MD_CASES])
def test_trajectory_fix_case(
    name: str, target: str, mode: str, words: tuple[str, ...], world: World, tmp_path: Path
) -> None:
    write_lammps_data(tmp_path / "d.data", jittered_lattice((3, 3, 3), spacing=2.6, seed=0), SPECIES)
    path = expand([target], world, tmp_path)[0]
    deck = tmp_path / "in.lmp"
    deck.write_text(
        "units metal\natom_style atomic\nread_data d.data\npair_style superionic\n"
        f"pair_coeff * * {world.model} {' '.join(SPECIES)}\n"
        f"fix traj all superionic/h5md 10 {path} {mode} yes\nrun 0\n"
    )
    before = snapshot(world.root)
    run = run_lammps(deck, tmp_path, nprocs=1, timeout=120, check=False)
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR")]
    assert run.returncode != 0 and len(errors) == 1, run.output[-2000:]
    assert Path(path).name in errors[0], errors[0]
    missing = [w for w in words if w not in errors[0]]
    assert not missing, f"ERROR line lacks {missing}: {errors[0]}"
    assert snapshot(world.root) == before


def test_python_and_lammps_say_the_same(world: World) -> None:
    """cpp/model_file.cpp and superionic.modelfile describe each file with the same words."""
    from superionic.modelfile import ModelFileError, require_exported

    core = pytest.importorskip("superionic._core")
    for name in (
        "random",
        "empty",
        "text",
        "h5",
        "weights",
        "lightning",
        "nequip",
        "bare",
        "misnamed",
        "ckpt",
    ):
        path = getattr(world, name)
        with pytest.raises(ModelFileError) as python_side:
            require_exported(path)
        with pytest.raises(RuntimeError) as cpp_side:
            core.Model(path, "cpu")
        assert str(python_side.value) == str(cpp_side.value), name


# --- the guard itself -----------------------------------------------------------------------

RAISE = (
    "import sys, superionic.cli as c\n"
    "def broken(args):\n"
    "    raise ZeroDivisionError('division by zero in a verb')\n"
    "c.cmd_export_reference = broken\n"
    "sys.exit(c.main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("debug", [False, True])
def test_internal_error_is_one_line_unless_debug(debug: bool, tmp_path: Path) -> None:
    argv = ["export-reference", "-o", str(tmp_path / "m.pt"), *(["--debug"] if debug else [])]
    run = subprocess.run([sys.executable, "-c", RAISE, *argv], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("superionic: internal error: ZeroDivisionError: division by zero in a verb")
    if debug:
        assert "Traceback (most recent call last)" in run.stderr and "in broken" in run.stderr
    else:
        assert run.stderr.strip() == last and "rerun with --debug" in last


def test_corpus_size() -> None:
    """Issue 25 asks for at least 120 bad inputs across every verb and lmp (issue 10 asked for 40)."""
    total = len(CASES) + len(DATA_CASES) + len(SUBPROCESS_CASES) + len(LAMMPS_CASES) + len(H5MD_CASES)
    assert total >= 120, total
    verbs = {argv[0] for _, argv, _ in CASES} | {argv[0] for _, argv, _ in DATA_CASES}
    assert {
        "export-reference",
        "train",
        "evaluate",
        "export",
        "md",
        "analyze",
        "arrhenius",
        "study",
        "demo",
        "data",
        "validate",
        "conductivity",
        "learn",
    } <= verbs
