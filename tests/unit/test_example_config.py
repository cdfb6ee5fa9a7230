"""The commented example config stays valid and documents every option."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from superionic.train.config import SECTIONS, load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "train_example.yaml"


def test_example_config_loads_and_documents_every_option() -> None:
    config = load_config(EXAMPLE)
    assert config.data.train[0].endswith("data/LGPS/sevennet.extxyz.gz")
    text = EXAMPLE.read_text()
    for cls in SECTIONS.values():
        for option in fields(cls):
            line = next((ln for ln in text.splitlines() if ln.strip().startswith(f"{option.name}:")), None)
            assert line is not None and "#" in line, f"option {option.name} is not documented"


def test_run_directory_is_relative_to_the_config_file_not_the_working_directory(
    tmp_path: Path, monkeypatch
) -> None:
    # The example says "paths are relative to this file": `../runs/lgps_sprinter` must land in the
    # repository's runs/ whichever directory the command is started from.
    for cwd in (ROOT, tmp_path):
        monkeypatch.chdir(cwd)
        config = load_config(EXAMPLE.relative_to(ROOT) if cwd == ROOT else EXAMPLE)
        assert Path(config.output) == ROOT / "runs" / "lgps_sprinter"
        assert Path(config.data.train[0]) == ROOT / "data" / "LGPS" / "sevennet.extxyz.gz"
