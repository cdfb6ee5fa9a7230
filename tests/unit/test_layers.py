"""Imports run one way: data → models → train → export → md → analysis → validation/studies → workflows → cli.

Every module of the package is parsed (not imported: a module that fails to import must not hide
its imports), and each ``import superionic...`` / ``from superionic... import`` in it, including
imports inside functions, must name a module of the same layer or a lower one. A module that no
layer claims fails too, so a new top-level module gets a place in the order when it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "superionic"

# Lowest first. Prefixes match a module and everything below it ("superionic.data" claims
# "superionic.data.graph"); the longest matching prefix decides.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # The package root (version, plugin directory) and the file-type sniffer, which by design imports
    # nothing from superionic, serve every layer.
    ("base", ("superionic", "superionic.modelfile")),
    ("data", ("superionic.data",)),
    # models/assemble.py turns contract outputs (atom energies, edge gradients) into forces and stress.
    ("models", ("superionic.models",)),
    ("train", ("superionic.train",)),
    # calculator.py evaluates exported files (and checkpoints) in Python, nequip_export.py writes
    # pair_allegro packages: the export layer.
    ("export", ("superionic.export", "superionic.nequip_export", "superionic.calculator")),
    ("md", ("superionic.md",)),
    ("analysis", ("superionic.analysis",)),
    # validation/metrics.py scores a model on labelled data (metrics + parity plot): a validation job.
    ("validation", ("superionic.validation", "superionic.studies")),
    # Multi-stage jobs (active learning, structure to conductivity) that call every layer below.
    ("workflows", ("superionic.workflows",)),
    ("top", ("superionic.cli", "superionic.cli_checks", "superionic.demo")),
]

# Upward imports that exist today, each with the reason and the fix; the test fails when one of
# them disappears too, so this list cannot go stale.
KNOWN_UPWARD: dict[tuple[str, str], str] = {
    # The labeller's reference MD reports its own D: the D code is analysis. Fix: move the transport
    # summary of reference_md into validation (or pass D in from there).
    ("superionic.data.reference_md", "superionic.analysis"): "reference MD computes its D with analysis",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> tuple[int, str, str] | None:
    best = None
    for rank, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[2])
            ):
                best = (rank, name, prefix)
    return best


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "superionic")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "superionic":
                found.add(target)
    return found


def _edges() -> list[tuple[str, str]]:
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        edges.extend((module, target) for target in sorted(_imports(path, module)))
    return edges


def _known(source: str, target: str) -> tuple[str, str] | None:
    for src, dst in KNOWN_UPWARD:
        if source == src and (target == dst or target.startswith(dst + ".")):
            return (src, dst)
    return None


def test_every_module_has_a_layer():
    unclaimed = sorted(m for m in map(_module_name, PACKAGE.rglob("*.py")) if _layer(m) is None)
    assert not unclaimed, f"give these modules a layer in tests/unit/test_layers.py: {unclaimed}"


def test_no_import_runs_upward():
    upward, used = [], set()
    for source, target in _edges():
        src, dst = _layer(source), _layer(target)
        if src is None or dst is None or dst[0] <= src[0]:
            continue
        known = _known(source, target)
        if known:
            used.add(known)
            continue
        upward.append(f"{source} ({src[1]}) imports {target} ({dst[1]})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)
    stale = sorted(set(KNOWN_UPWARD) - used)
    assert not stale, f"these upward imports are gone; remove them from KNOWN_UPWARD: {stale}"


@pytest.mark.parametrize(
    ("source", "target", "upward"),
    [
        ("superionic.models.build", "superionic.train.config", True),
        ("superionic.train.config", "superionic.models.config", False),
        ("superionic.studies.locality", "superionic.calculator", False),
        ("superionic.md.driver", "superionic.analysis.readers", True),
        ("superionic.cli", "superionic.demo", False),
        ("superionic.workflows.learn", "superionic.validation.compare", False),
        ("superionic.workflows.learn", "superionic.cli", True),
    ],
)
def test_layer_order_itself(source, target, upward):
    # The checker's own verdicts on pairs whose answer the layer order fixes.
    assert (_layer(target)[0] > _layer(source)[0]) is upward


def test_relative_imports_resolve(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    source = package / "mod.py"
    source.write_text("from . import x\nfrom ..train import config\nimport superionic.md\n")
    assert _imports(source, "superionic.analysis.mod") == {
        "superionic.analysis",
        "superionic.train",
        "superionic.md",
    }
