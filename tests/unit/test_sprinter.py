"""The sprinter's descriptors and core repulsion against brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre

from superionic.data.dataset import collate
from superionic.models.sprinter import Sprinter, real_harmonics
from superionic.train.initialise import initialise_sprinter, shortest_pair_distances
from tests.unit.test_training import labelled_frames


def test_harmonics_satisfy_the_addition_theorem() -> None:
    rng = np.random.default_rng(3)
    u, v = (rng.normal(size=(40, 3)) for _ in range(2))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for order, (yu, yv) in enumerate(
        zip(real_harmonics(torch.tensor(u), 4), real_harmonics(torch.tensor(v), 4), strict=True), start=1
    ):
        assert yu.shape[1] == 2 * order + 1
        expected = legendre.legval((u * v).sum(1), [0] * order + [1])
        np.testing.assert_allclose((yu * yv).sum(1).numpy(), expected, atol=1e-13)


def test_angular_descriptors_equal_the_explicit_three_body_sum() -> None:
    """qˡ_i = Σ_{j,k} h_j h_k P_l(cos θ_jik), summed over neighbour pairs the slow way."""
    frame = labelled_frames(1)[0]
    model = Sprinter(["Li", "Ge", "P", "S"], radial_channels=2, angular_channels=2, l_max=4)
    batch = collate([f for f in _frames(frame)], torch.float64)
    q = model.descriptors(batch.edge_vec, batch.edge_src, batch.edge_dst, batch.species).detach().numpy()
    vec, src = batch.edge_vec, batch.edge_src
    r = vec.norm(dim=1)
    basis = (
        torch.cos((r / model.cutoff)[:, None] * model.basis_freq)
        * (1 - (r / model.cutoff) ** 2).clamp(min=0)[:, None] ** 3
    )
    h = (model.angular_coeff[batch.species[src], batch.species[batch.edge_dst]] * basis[:, None, :]).sum(-1)
    h, unit, src = h.detach().numpy(), (vec / r[:, None]).numpy(), src.numpy()
    for atom in (0, 7):
        mine = src == atom
        cos = unit[mine] @ unit[mine].T
        for order in range(1, 5):
            p_l = legendre.legval(cos, [0] * order + [1])
            explicit = np.einsum("jc,kc,jk->c", h[mine], h[mine], p_l)
            start = 2 + 2 * (order - 1)  # 2 radial channels, then 2 channels per order
            np.testing.assert_allclose(q[atom, start : start + 2], explicit, rtol=1e-10)


def _frames(frame):
    from superionic.data.dataset import to_frame

    return [to_frame(frame, 5.0, ["Li", "Ge", "P", "S"], "test")]


def test_core_repulsion_is_zero_on_training_data_and_repels_below_it() -> None:
    frames = [f for atoms in labelled_frames(6) for f in _frames(atoms)]
    model = Sprinter(["Li", "Ge", "P", "S"])
    initialise_sprinter(model, frames)
    shortest = shortest_pair_distances(frames, 4)
    assert np.all(shortest > 0.5) and np.allclose(model.core_radius_sq.numpy(), shortest**2)
    batch = collate(frames, torch.float64)
    with_core = model.node_energy(batch.edge_vec, batch.edge_src, batch.edge_dst, batch.species)
    model.core_radius_sq.zero_()
    without = model.node_energy(batch.edge_vec, batch.edge_src, batch.edge_dst, batch.species)
    assert torch.equal(with_core, without), "the wall must not touch any training geometry"
    # Two Li atoms pushed to 60 % of the shortest Li-Li distance seen: a strong, rising wall.
    model.core_radius_sq.copy_(torch.tensor(shortest**2))
    d_min = shortest[0, 0]
    energies = []
    for fraction in (0.9, 0.75, 0.6):
        vec = torch.tensor([[fraction * d_min, 0.0, 0.0], [-fraction * d_min, 0.0, 0.0]])
        e = model.node_energy(vec, torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([0, 0]))
        e0 = model.node_energy(vec * 3, torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([0, 0]))
        energies.append(float((e - e0).sum()))
    assert energies[0] < energies[1] < energies[2] and energies[2] > 1.0, energies


@pytest.mark.slow
def test_sprinter_exports_to_pt2(tmp_path) -> None:
    from superionic.export import export_model

    export_model(Sprinter(["Li", "Ge", "P", "S"], hidden=(8, 8)), tmp_path / "s.pt2")  # verified on write
