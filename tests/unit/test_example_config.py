"""The commented example config stays valid and documents every option."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from superionic.train.config import SECTIONS, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "train_example.yaml"


def test_example_config_loads_and_documents_every_option() -> None:
    config = load_config(EXAMPLE)
    assert config.data.train[0].endswith("data/LGPS/sevennet.extxyz.gz")
    text = EXAMPLE.read_text()
    for cls in SECTIONS.values():
        for option in fields(cls):
            line = next((ln for ln in text.splitlines() if ln.strip().startswith(f"{option.name}:")), None)
            assert line is not None and "#" in line, f"option {option.name} is not documented"
