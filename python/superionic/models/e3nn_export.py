"""Rewrite e3nn's generated code into operations ``torch.export`` traces correctly through a gradient.

Every contract model takes its gradient inside ``forward`` (``torch.autograd.grad``). In torch 2.13,
``torch.export`` traces at the pre-dispatch level: a *composite* operation (one that torch
implements by calling other operations, such as ``einsum``, ``tensordot`` or ``linear``) is
recorded as one node and then run, so the tensors its internal steps create are never seen by the
tracer. When autograd saved one of those internal tensors for the backward (``einsum`` saves the
permuted, reshaped operands of its ``bmm``), the backward traced by ``autograd.grad`` reads a
tensor the tracer does not know, which it lifts as a constant without a value: the export fails
with "We found a fake tensor in the exported program constant's list ... lifted_tensor_0".

e3nn's tensor products and linear layers are ``torch.fx`` graphs of ``einsum`` and, after
opt_einsum's path optimisation, ``tensordot``. ``traceable_copy`` returns a copy of a module in
which each such call is replaced by the same contraction written with ``permute``, ``reshape``,
``sum`` and ``bmm``, which are not composite (or, for ``reshape``, save nothing): every tensor the
backward reads is then one the tracer recorded. The arithmetic is the same contraction, so the
copy agrees with the original to round-off; ``superionic.export`` checks every artefact against
the eager model anyway.
"""

from __future__ import annotations

import copy
import math
import string

import torch
from torch import Tensor, fx

_EINSUM = (torch.einsum, torch.functional.einsum)
_TENSORDOT = (torch.tensordot, torch.functional.tensordot)


class UntraceableModuleError(RuntimeError):
    """A module holds compiled code that cannot be rewritten (a TorchScript submodule)."""


def _size(value: int | torch.SymInt, other: int | torch.SymInt) -> int | torch.SymInt:
    # Sizes of a label shared by two operands: equal, or one of them a (static) 1 that broadcasts.
    # Symbolic sizes are taken as equal (e3nn expands its operands to one batch size first);
    # comparing them would add a guard that contradicts the declared dynamic range.
    if isinstance(value, int) and isinstance(other, int) and value != other:
        if 1 not in (value, other):
            raise ValueError(f"einsum operands disagree on a dimension: {value} vs {other}")
        return max(value, other)
    return value


def _prod(sizes: list) -> int | torch.SymInt:
    return math.prod(sizes) if sizes else 1


def _sum_unneeded(x: Tensor, labels: str, keep: set[str]) -> tuple[Tensor, str]:
    drop = [i for i, c in enumerate(labels) if c not in keep]
    if drop:
        x = x.sum(dim=drop)
        labels = "".join(c for c in labels if c in keep)
    return x, labels


def _contract_pair(a: Tensor, la: str, b: Tensor, lb: str, needed: set[str]) -> tuple[Tensor, str]:
    a, la = _sum_unneeded(a, la, needed | set(lb))
    b, lb = _sum_unneeded(b, lb, needed | set(la))
    batch = [c for c in la if c in lb and c in needed]
    contracted = [c for c in la if c in lb and c not in needed]
    left = [c for c in la if c not in lb]
    right = [c for c in lb if c not in la]
    size = {c: a.shape[la.index(c)] for c in la}
    size.update({c: b.shape[lb.index(c)] for c in lb if c not in la})
    for c in batch + contracted:
        size[c] = _size(a.shape[la.index(c)], b.shape[lb.index(c)])
    a = a.permute([la.index(c) for c in batch + left + contracted])
    b = b.permute([lb.index(c) for c in batch + contracted + right])
    a = a.expand([size[c] for c in batch + left + contracted])
    b = b.expand([size[c] for c in batch + contracted + right])
    sizes = [size[c] for c in batch], [size[c] for c in left], [size[c] for c in contracted]
    n_batch, n_left, n_contracted = (_prod(s) for s in sizes)
    n_right = _prod([size[c] for c in right])
    product = torch.bmm(a.reshape(n_batch, n_left, n_contracted), b.reshape(n_batch, n_contracted, n_right))
    shape = sizes[0] + sizes[1] + [size[c] for c in right]
    return product.reshape(shape), "".join(batch + left + right)


def traceable_einsum(equation: str, *operands: Tensor) -> Tensor:
    """``torch.einsum(equation, *operands)`` as pairwise ``bmm`` contractions, left to right.

    Supports what e3nn generates: explicit output (``->``), no ellipsis, no label repeated
    within one operand.
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    equation = equation.replace(" ", "")
    if "->" not in equation or "." in equation:
        raise ValueError(f"einsum '{equation}': only explicit outputs without ellipsis are supported")
    lhs, out = equation.split("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum '{equation}' names {len(terms)} operands, got {len(operands)}")
    for term in terms:
        if len(set(term)) != len(term):
            raise ValueError(f"einsum '{equation}': a label repeated within one operand is not supported")
    current, labels = _sum_unneeded(operands[0], terms[0], set(out) | set("".join(terms[1:])))
    for k in range(1, len(terms)):
        needed = set(out) | set("".join(terms[k + 1 :]))
        current, labels = _contract_pair(current, labels, operands[k], terms[k], needed)
    current, labels = _sum_unneeded(current, labels, set(out))
    return current.permute([labels.index(c) for c in out])


def traceable_tensordot(a: Tensor, b: Tensor, dims=2, out: Tensor | None = None) -> Tensor:
    """``torch.tensordot`` through ``traceable_einsum``."""
    if out is not None:
        raise ValueError("tensordot with out= is not supported")
    if isinstance(dims, int):
        dims_a, dims_b = list(range(a.dim() - dims, a.dim())), list(range(dims))
    else:
        dims_a, dims_b = ([d] if isinstance(d, int) else list(d) for d in dims)
    dims_a = [d % a.dim() for d in dims_a]
    dims_b = [d % b.dim() for d in dims_b]
    letters = iter(string.ascii_letters)
    la = [next(letters) for _ in range(a.dim())]
    lb = [next(letters) for _ in range(b.dim())]
    for da, db in zip(dims_a, dims_b, strict=True):
        lb[db] = la[da]
    out_labels = [c for i, c in enumerate(la) if i not in dims_a] + [
        c for i, c in enumerate(lb) if i not in dims_b
    ]
    return traceable_einsum(f"{''.join(la)},{''.join(lb)}->{''.join(out_labels)}", a, b)


def rewrite_graph_module(module: fx.GraphModule) -> int:
    """Point every einsum/tensordot call of ``module``'s graph at the traceable versions, in place;
    the number of calls rewritten."""
    count = 0
    for node in module.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target in _EINSUM:
            node.target = traceable_einsum
            count += 1
        elif node.target in _TENSORDOT:
            node.target = traceable_tensordot
            count += 1
    if count:
        module.recompile()
    return count


def traceable_copy(model: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """A deep copy of ``model`` whose e3nn fx code uses only traceable contractions; the number of
    calls rewritten."""
    clone = copy.deepcopy(model)
    count = 0
    for name, module in clone.named_modules():
        if isinstance(module, torch.jit.ScriptModule):
            raise UntraceableModuleError(
                f"submodule '{name}' is TorchScript; build the model with e3nn's jit_mode 'eager' "
                "(e3nn.set_optimization_defaults(jit_mode='eager'), the default with torch >= 2.10)"
            )
        if isinstance(module, fx.GraphModule):
            count += rewrite_graph_module(module)
    return clone, count
