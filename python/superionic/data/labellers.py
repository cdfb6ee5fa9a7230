"""Pretrained universal potentials that label reference data (the "teacher" in place of DFT).

Both ship their weights inside their PyPI wheels, so nothing is downloaded at run time:
SevenNet-0 (``sevenn``) and CHGNet (``chgnet``). Each returns an ASE calculator with energy (eV),
forces (eV/Å) and stress (eV/Å³, ASE sign convention); :class:`Labeller` carries the name and
version string that every generated frame records as provenance.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, chemical_symbols

__all__ = ["LABELLERS", "Labeller", "LabellerError", "make_labeller"]

LABELLERS = ("sevennet", "chgnet")


class LabellerError(ValueError):
    """A labeller that is unknown or cannot be loaded."""


@dataclass(frozen=True)
class Labeller:
    """An ASE calculator plus what it is, for provenance."""

    name: str
    model: str
    package: str
    package_version: str
    calculator: Calculator
    elements: frozenset[str] | None = None  # what the pretrained model was trained on; None: any

    def check_elements(self, symbols: list[str] | set[str], source: str) -> None:
        """One line naming the elements this labeller cannot label, before any work starts."""
        if self.elements is None:
            return
        missing = sorted(set(symbols) - self.elements, key=lambda s: atomic_numbers.get(s, 999))
        if missing:
            raise LabellerError(
                f"{source}: {self.model} does not cover {', '.join(missing)}; use the other labeller "
                f"({', '.join(x for x in LABELLERS if x != self.name)}) or your own DFT labels"
            )

    @property
    def version(self) -> str:
        """E.g. ``"SevenNet-0 (sevenn 0.13.0)"``: model and the wheel its weights came from."""
        return f"{self.model} ({self.package} {self.package_version})"


def _package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError as error:
        raise LabellerError(f"the {package!r} package is not installed; pip install {package}") from error


def _sevennet(device: str) -> Labeller:
    version = _package_version("sevenn")
    from sevenn.calculator import SevenNetCalculator  # heavy import, only when asked for

    # "7net-0" resolves to the checkpoint bundled in the sevenn wheel (no network access).
    calculator = SevenNetCalculator("7net-0", device=device)
    # type_map: atomic number -> model type, one entry per element of its training set.
    elements = frozenset(chemical_symbols[int(z)] for z in calculator.type_map)
    return Labeller("sevennet", "SevenNet-0", "sevenn", version, calculator, elements)


def _chgnet(device: str) -> Labeller:
    version = _package_version("chgnet")
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    # CHGNet.load() reads the weights bundled in the chgnet wheel; its calculator converts the
    # model's GPa stress to eV/Å³ (stress_weight = 1/160.2), which is what ASE expects.
    model = CHGNet.load(use_device=device, verbose=False)
    calculator = CHGNetCalculator(model=model, use_device=device)
    # CHGNet's atom embedding and reference energies span Z = 1..94 (AtomRef, max_num_elements).
    elements = frozenset(chemical_symbols[1:95])
    return Labeller(
        "chgnet", f"CHGNet {model.version or ''}".strip(), "chgnet", version, calculator, elements
    )


def make_labeller(name: str, device: str = "cpu") -> Labeller:
    """The labeller ``name`` ("sevennet" or "chgnet") on ``device`` ("cpu", "cuda", ...)."""
    key = name.strip().lower()
    if key == "sevennet":
        return _sevennet(device)
    if key == "chgnet":
        return _chgnet(device)
    raise LabellerError(f"unknown labeller {name!r}; valid: {', '.join(LABELLERS)}")
