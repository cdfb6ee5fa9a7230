"""The native sprinter kernel (cpp/sprinter_kernel.cpp) equals the torch model it was read from.

The reference is the exported TorchScript file run by libtorch (`Model.compute`) and the eager
Python module: two independent evaluations (autograd) of the same weights. The kernel differs only
in summation order and its cos/sin recurrence, so float64 agreement is at round-off, and 1e-10
(relative to the largest component) is the bar the issue sets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from superionic._core import Model, ModelError

from superionic.data.examples import jittered_lattice
from superionic.data.graph import build_graph
from superionic.export import export_model
from superionic.models.reference import ReferencePotential
from superionic.models.sprinter import Sprinter

SPECIES = ["Li", "Ge", "P", "S"]
TOL = 1e-10  # float64 round-off of ~1e3 operations per edge, far below any physical scale


def random_sprinter(
    l_max: int, n_species: int, seed: int = 0, dtype: torch.dtype = torch.float64
) -> Sprinter:
    """A sprinter whose every buffer is non-trivial, the core repulsion included."""
    model = Sprinter(
        SPECIES[:n_species],
        cutoff=4.5,
        n_basis=7,
        radial_channels=5,
        angular_channels=3,
        l_max=l_max,
        hidden=(12, 10),
        seed=seed,
        dtype=dtype,
    )
    gen = torch.Generator().manual_seed(seed + 100)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, dtype=torch.float64).to(dtype)

    with torch.no_grad():
        d = model.descriptor_mean.shape[0]
        model.descriptor_mean.copy_(0.5 * rand(d))
        model.descriptor_std.copy_(0.5 + rand(d))
        model.energy_shift.copy_(-3.0 + rand(n_species))
        model.energy_scale.fill_(0.7)
        for layer in model.layers:
            layer.bias.copy_(0.2 * (rand(*layer.bias.shape) - 0.5))
        # Onsets between 2.0 and 2.6 A: the jittered 2.6 A lattice puts a fraction of its edges inside.
        onset = 2.0 + 0.6 * rand(n_species, n_species)
        model.core_radius_sq.copy_((0.5 * (onset + onset.T)) ** 2)
        model.core_strength.fill_(0.8)
    return model


def lattice(n_species: int, seed: int = 3):
    return jittered_lattice(
        (4, 4, 4), jitter=0.25, tilt=(0.7, -0.4, 0.3), species=SPECIES[:n_species], seed=seed
    )


def no_edges(species: np.ndarray) -> tuple:
    return np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64), species, len(species)


def graph_arrays(model: Sprinter, n_species: int):
    g = build_graph(lattice(n_species), model.cutoff, model.species_names)
    return g.edge_vec, g.edge_src, g.edge_dst, g.species, g.n_local


def eager(model: Sprinter, vec, src, dst, species, n_local):
    inputs = (
        torch.tensor(vec, dtype=model.descriptor_mean.dtype),
        torch.tensor(src),
        torch.tensor(dst),
        torch.tensor(species),
        torch.tensor(n_local),
    )
    energy, grad = model(*inputs)
    return energy.detach().double().numpy(), grad.detach().double().numpy()


def assert_close(got, ref, tol: float = TOL) -> None:
    for name, a, b in zip(("atom_energy", "edge_grad"), got, ref, strict=True):
        assert a.shape == b.shape, name
        scale = max(1.0, float(np.abs(b).max(initial=0.0)))
        err = float(np.abs(a - b).max(initial=0.0))
        assert err <= tol * scale, f"{name}: max |difference| {err:.3g} > {tol:g} x {scale:.3g}"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("native")
    cache: dict[tuple[int, int], tuple[Sprinter, Model]] = {}

    def get(l_max: int, n_species: int) -> tuple[Sprinter, Model]:
        key = (l_max, n_species)
        if key not in cache:
            model = random_sprinter(l_max, n_species, seed=l_max + 10 * n_species)
            path = root / f"sprinter-l{l_max}-s{n_species}.pt"
            export_model(model, path)
            cache[key] = (model, Model(str(path)))
        return cache[key]

    return get


@pytest.mark.parametrize("n_species", [1, 2, 3, 4])
@pytest.mark.parametrize("l_max", [0, 1, 2, 3, 4])
def test_kernel_equals_torch(exported, l_max: int, n_species: int) -> None:
    model, loaded = exported(l_max, n_species)
    assert loaded.has_native_kernel, loaded.native_unavailable_reason
    args = graph_arrays(model, n_species)
    vec = args[0]
    r = np.linalg.norm(vec, axis=1)
    onset = np.sqrt(model.core_radius_sq.numpy())[args[3][args[1]], args[3][args[2]]]
    assert 0 < np.count_nonzero(r < onset) < len(r) // 4, "the core repulsion must act on some edges"
    torch_path = loaded.compute(*args)
    native = loaded.compute_native(*args)
    assert_close(native, torch_path)
    assert_close(native, eager(model, *args))
    assert loaded.compute_native(*args, threads=2)[1].tobytes() == native[1].tobytes()


def test_any_edge_order_and_ghost_sources(exported) -> None:
    """Shuffled edges, ghost atoms, and edges leaving ghosts (which carry no owned energy)."""
    model, loaded = exported(4, 4)
    vec, src, dst, species, n_local = graph_arrays(model, 4)
    n_owned = n_local - 20  # the last 20 atoms play ghosts
    perm = np.random.default_rng(0).permutation(len(src))
    args = (vec[perm], src[perm], dst[perm], species, n_owned)
    assert np.any(args[1] >= n_owned)
    native = loaded.compute_native(*args)
    assert_close(native, loaded.compute(*args))
    assert np.all(native[1][args[1] >= n_owned] == 0.0)


def test_isolated_atoms_and_no_edges(exported) -> None:
    _, loaded = exported(2, 3)
    species = np.array([0, 1, 2, 1], dtype=np.int64)
    empty = no_edges(species)
    assert_close(loaded.compute_native(*empty), loaded.compute(*empty))


def test_forces_match_finite_differences(exported) -> None:
    """dE/d(edge_vec) against central differences of the kernel's own energy (independent of torch)."""
    model, loaded = exported(3, 2)
    vec, src, dst, species, n_local = graph_arrays(model, 2)
    _, grad = loaded.compute_native(vec, src, dst, species, n_local)
    h = 1e-5
    for e in (0, 17, len(src) // 2):
        for a in range(3):
            plus, minus = vec.copy(), vec.copy()
            plus[e, a] += h
            minus[e, a] -= h
            ep = loaded.compute_native(plus, src, dst, species, n_local)[0].sum()
            em = loaded.compute_native(minus, src, dst, species, n_local)[0].sum()
            # central difference error ~h^2 * third derivative, ~1e-9 here
            assert (ep - em) / (2 * h) == pytest.approx(grad[e, a], abs=1e-7)


def test_float32_kernel_error(exported) -> None:
    """float32 arithmetic, float64 energy sums: force error stated against float64."""
    model, loaded = exported(4, 4)
    args = graph_arrays(model, 4)
    e64, g64 = loaded.compute_native(*args, precision="float64")
    e32, g32 = loaded.compute_native(*args, precision="float32")
    rel = np.abs(g32 - g64).max() / np.abs(g64).max()
    # ~1e3 float32 operations per edge at eps 6e-8: a few 1e-6 relative at most
    assert rel < 2e-5
    assert np.abs(e32 - e64).max() < 1e-4 * max(1.0, np.abs(e64).max())


def test_float32_model_runs_in_float32(tmp_path: Path) -> None:
    model = random_sprinter(2, 4, dtype=torch.float32)
    export_model(model, tmp_path / "f32.pt")
    loaded = Model(str(tmp_path / "f32.pt"))
    assert "float32" in loaded.native_description
    args = graph_arrays(model, 4)
    assert_close(loaded.compute_native(*args), loaded.compute(*args), tol=1e-4)


def test_other_models_have_no_native_kernel(tmp_path: Path) -> None:
    export_model(ReferencePotential(SPECIES), tmp_path / "ref.pt")
    loaded = Model(str(tmp_path / "ref.pt"))
    assert not loaded.has_native_kernel
    assert "sprinter" in loaded.native_unavailable_reason
    with pytest.raises(ModelError, match="no native kernel"):
        loaded.compute_native(*no_edges(np.zeros(1, np.int64)))


def test_bad_species_is_an_error(exported) -> None:
    _, loaded = exported(1, 2)
    with pytest.raises(ModelError, match="outside the model's 2 species"):
        loaded.compute_native(*no_edges(np.array([0, 5])))


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_trainer_defaults_take_the_unrolled_path(tmp_path: Path, precision: str) -> None:
    """The trainer's default hyperparameters (4 angular channels, 8 basis functions, l_max 4) run a
    compile-time specialised copy of the kernel; it must equal torch like the generic one."""
    from superionic.models.build import build_model
    from superionic.models.config import ModelConfig

    model = build_model(ModelConfig(), SPECIES, seed=5)
    assert (model.angular_channels, model.basis_freq.shape[0], model.l_max) == (4, 8, 4)
    with torch.no_grad():
        model.core_radius_sq.fill_(2.3**2)
        model.descriptor_std.uniform_(0.5, 2.0)
    export_model(model, tmp_path / "defaults.pt")
    loaded = Model(str(tmp_path / "defaults.pt"))
    g = build_graph(lattice(4), model.cutoff, SPECIES)
    args = (g.edge_vec, g.edge_src, g.edge_dst, g.species, g.n_local)
    # float32: ~1e3 single-precision operations per edge, relative eps 6e-8
    assert_close(loaded.compute_native(*args, precision=precision), loaded.compute(*args),
                 tol=TOL if precision == "float64" else 2e-5)  # fmt: skip
