"""The marathon's `.pt2` path: e3nn's einsum/tensordot rewritten as bmm contractions
(models/e3nn_export.py) give the same numbers and gradients, and torch.export traces the rewritten
model through its inner gradient to the eager model's energies and edge gradients.

The AOTInductor compile itself (a minute) runs once, in tests/lammps/test_marathon_parity.py."""

from __future__ import annotations

import pytest
import torch
from torch import fx

from superionic.export import probe_inputs
from superionic.models.e3nn_export import traceable_einsum, traceable_tensordot
from superionic.models.marathon import Marathon

SPECIES = ["Li", "Ge", "P", "S"]

# Equations of the kinds e3nn 0.6 generates for the marathon's tensor products and linears (with
# and without a per-edge weight index z), plus a size-1 broadcast and a label summed on one side.
EQUATIONS = [
    ("zuv,zu,zv->zu", [(7, 4, 1), (7, 4), (7, 1)]),
    ("zuv,ijk,zuvij->zuk", [(7, 4, 1), (3, 3, 5), (7, 4, 1, 3, 3)]),
    ("zui,zvj->zuvij", [(7, 4, 3), (7, 1, 3)]),
    ("uvw,zui,zvi->zw", [(4, 2, 5), (7, 4, 3), (7, 2, 3)]),
    ("uw,zui->zwi", [(4, 6), (7, 4, 3)]),
    ("zuv,zui,zv->zui", [(1, 4, 2), (7, 4, 3), (7, 2)]),
    ("ab,bc->a", [(3, 4), (4, 5)]),
]


def _operands(shapes, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(s, dtype=torch.float64, generator=generator, requires_grad=True) for s in shapes]


@pytest.mark.parametrize(("equation", "shapes"), EQUATIONS)
def test_traceable_einsum_equals_torch_einsum_with_gradients(equation: str, shapes) -> None:
    ops = _operands(shapes, seed=len(equation))
    ref = torch.einsum(equation, *ops)
    got = traceable_einsum(equation, *ops)
    assert got.shape == ref.shape
    # The same products summed in another order: equal to float64 round-off.
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    cotangent = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref_grads = torch.autograd.grad(ref, ops, cotangent)
    got_grads = torch.autograd.grad(got, ops, cotangent)
    for r, g in zip(ref_grads, got_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dims", [1, 2, ([0, 2], [1, 0]), ([2], [0])])
def test_traceable_tensordot_equals_torch_tensordot(dims) -> None:
    a, b = _operands([(3, 4, 5), (5, 3, 4)] if dims != 2 else [(3, 4, 5), (4, 5, 2)], seed=3)
    if dims == 1:
        b = b.detach().reshape(5, 12)
    torch.testing.assert_close(
        traceable_tensordot(a, b, dims), torch.tensordot(a, b, dims), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("equation", ["ii->i", "...i,...i->...", "ij,jk"])
def test_forms_e3nn_does_not_generate_are_refused(equation: str) -> None:
    x = torch.ones(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="einsum"):
        traceable_einsum(equation, *[x] * (equation.count(",") + 1))


def _marathon(l_max: int) -> Marathon:
    model = Marathon(SPECIES, cutoff=4.0, channels=4, l_max=l_max, n_layers=2, radial_hidden=8, seed=5)
    with torch.no_grad():
        # Untrained energies are tiny; scale them so the comparison is of order-1 forces.
        model.energy_scale.fill_(300.0)
        model.core_radius_sq.fill_(2.0**2)
    return model.eval()


def _contractions(model: torch.nn.Module) -> int:
    targets = {torch.einsum, torch.functional.einsum, torch.tensordot, torch.functional.tensordot}
    return sum(
        node.op == "call_function" and node.target in targets
        for module in model.modules()
        if isinstance(module, fx.GraphModule)
        for node in module.graph.nodes
    )


def test_the_copy_is_rewritten_and_the_model_is_not() -> None:
    model = _marathon(l_max=1)
    before = _contractions(model)
    copy = model.for_torch_export()
    assert before > 10 and _contractions(model) == before  # e3nn's code, untouched in the original
    assert _contractions(copy) == 0


@pytest.mark.slow  # one torch.export trace, ~40 s here
def test_torch_export_of_the_marathon_reproduces_the_eager_model() -> None:
    """l_max 2 has every path kind of l_max 1 and the l = 2 ones; the AOTInductor export of an l_max 1
    marathon is checked in tests/lammps/test_marathon_parity.py."""
    from torch.export import Dim

    model = _marathon(l_max=2)
    edges, atoms = Dim("n_edges", min=0), Dim("n_atoms", min=0)
    program = torch.export.export(
        model.for_torch_export(),
        probe_inputs(len(SPECIES), model.cutoff, torch.float64, "cpu"),
        dynamic_shapes=({0: edges}, {0: edges}, {0: edges}, {0: atoms}, None),
        strict=False,
    )
    # Another graph than the one traced (seed 1): the dynamic shapes are real.
    probe = probe_inputs(len(SPECIES), model.cutoff, torch.float64, "cpu", seed=1)
    ref_energy, ref_grad = model(*probe)
    energy, grad = (out.detach() for out in program.module()(*probe))
    assert float(ref_grad.abs().max()) > 0.1  # a comparison of zeros would prove nothing
    # export.py's own tolerance for float64 artefacts: 1e-10 relative to the largest value.
    for ref, got in ((ref_energy, energy), (ref_grad, grad)):
        assert float((got - ref).abs().max()) <= 1e-10 * max(float(ref.abs().max()), 1.0)


def test_compiled_e3nn_code_is_refused_in_one_line(tmp_path) -> None:
    """e3nn's jit_mode 'script' (the default before torch 2.10) leaves TorchScript, not fx, to rewrite."""
    from superionic.export import ExportError, export_model

    model = _marathon(l_max=1)
    model.blocks[0].add_module("compiled", torch.jit.script(torch.nn.Identity()))
    with pytest.raises(
        ExportError, match=r"m\.pt2: cannot export to \.pt2: submodule 'blocks\.0\.compiled' is TorchScript"
    ):
        export_model(model, tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists()
