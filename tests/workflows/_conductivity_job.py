"""The tiny `superionic conductivity` job the end-to-end and kill-resume tests share.

Li6PS5Cl (argyrodite) from the shipped CIF with its 4a/4d S/Cl exchange set to 0.5/0.5, so that the
1x1x1 cell (52 atoms, 9.85 Å) can be ordered exactly; budgets that run the whole chain in about a
minute here.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CIF = ROOT / "data" / "examples" / "Li6PS5Cl.cif"
SUPERIONIC = Path(sys.executable).with_name("superionic")
EXCHANGE = {
    "  Cl1 Cl 4 a 0.0000 0.0000 0.0000 0.6": "  Cl1 Cl 4 a 0.0000 0.0000 0.0000 0.5",
    "  S2  S  4 a 0.0000 0.0000 0.0000 0.4": "  S2  S  4 a 0.0000 0.0000 0.0000 0.5",
    "  S3  S  4 d 0.7500 0.7500 0.7500 0.6": "  S3  S  4 d 0.7500 0.7500 0.7500 0.5",
    "  Cl2 Cl 4 d 0.7500 0.7500 0.7500 0.4": "  Cl2 Cl 4 d 0.7500 0.7500 0.7500 0.5",
}
TINY_MODEL = (
    "model: {kind: sprinter, n_basis: 6, radial_channels: 4, angular_channels: 2, l_max: 2, hidden: [16]}\n"
    "training: {batch_size: 2}\n"
)
MD_EQ_STEPS = 100
SMALL = ["--supercell", "1x1x1", "--draws", "1", "--allow-small-cell"]  # quick to order


def budgets(train_config: Path) -> list[str]:
    return [
        "--draws", "1", "--cutoff", "4.5", "--label-temperatures", "1400",
        "--frames", "12", "--sample-every", "2", "--label-eq-steps", "2",
        "--committee", "2", "--epochs", "3", "--val-fraction", "0.25", "--train-config", str(train_config),
        "--learn-rounds", "1", "--learn-frames", "2", "--learn-steps", "300", "--learn-eq-steps", "100",
        "--learn-epochs", "2",
        # 2 ps per temperature, 1 ps pilots, the 24 Li of the 52-atom cell as the production cell.
        "--max-md-ns", "0.002", "--pilot-ps", "1", "--min-ions", "24",
        "--md-eq-steps", str(MD_EQ_STEPS), "--dump-every", "10", "--devi-every", "10",
        "--teacher-steps", "60", "--teacher-eq-steps", "10", "--teacher-write-every", "5",
        # 1 ps of a 24-Li cell is far from diffusive under the default rule (slope within 1 ± 0.2).
        "--slope-tolerance", "0.9", "--threads", "1",
    ]  # fmt: skip


def write_job_inputs(directory: Path) -> tuple[Path, Path]:
    """The exchanged CIF and the tiny training config, written into ``directory``."""
    text = CIF.read_text()
    for old, new in EXCHANGE.items():
        assert old in text
        text = text.replace(old, new)
    cif = directory / "Li6PS5Cl_55.cif"
    cif.write_text(text)
    train_config = directory / "tiny.yaml"
    train_config.write_text(TINY_MODEL)
    return cif, train_config


def job_args(cif: Path, train_config: Path, workdir: Path) -> list[str]:
    args = [str(cif), "--labeller", "sevennet", "-T", "1000", "1400", "--workdir", str(workdir)]
    return args + budgets(train_config)
