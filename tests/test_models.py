"""Models: rhoflow's radius graph against brute force; each model's shapes, invariances,
training and forces on a few small molecules."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from rhoflow.elements import ATOMIC_NUMBERS
from rhoflow.models import MODELS, build_model
from rhoflow.models.dimenet import triplets
from rhoflow.models.radius import radius_graph

# Water, methane, ammonia, formaldehyde and a lone neon atom: element and x, y, z (Å).
MOLECULES = [
    """O 0 0 0.1173
       H 0 0.7572 -0.4692
       H 0 -0.7572 -0.4692""",
    """C 0 0 0
       H 0.6291 0.6291 0.6291
       H -0.6291 -0.6291 0.6291
       H -0.6291 0.6291 -0.6291
       H 0.6291 -0.6291 -0.6291""",
    """N 0 0 0.1162
       H 0 0.9377 -0.2711
       H 0.8121 -0.4689 -0.2711
       H -0.8121 -0.4689 -0.2711""",
    """C 0 0 -0.5297
       O 0 0 0.6742
       H 0 0.9347 -1.1137
       H 0 -0.9347 -1.1137""",
    "Ne 0 0 0",
]
TARGETS = [0.8, -1.2, 0.3, 1.5, -0.4]  # fake, roughly standardised

TINY = {
    "schnet": dict(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=16),
    "dimenet++": dict(
        hidden_channels=16,
        num_blocks=1,
        int_emb_size=8,
        basis_emb_size=4,
        out_emb_channels=16,
        num_spherical=3,
        num_radial=4,
        output_initializer="glorot_orthogonal",  # zeros would make the first forces vanish
    ),
    "visnet": dict(hidden_channels=16, num_heads=4, num_layers=2, num_rbf=16),
    "egnn": dict(hidden_channels=16, num_layers=2),
}


def molecule_batch(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """z [N], pos [N, 3] (Å), batch [N] and targets [B] of MOLECULES."""
    atoms = [(m, line.split()) for m, xyz in enumerate(MOLECULES) for line in xyz.splitlines()]
    z = torch.tensor([ATOMIC_NUMBERS[fields[0]] for _, fields in atoms])
    pos = torch.tensor([[float(x) for x in fields[1:]] for _, fields in atoms], dtype=dtype)
    batch = torch.tensor([m for m, _ in atoms])
    return z, pos, batch, torch.tensor(TARGETS, dtype=dtype)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: OpenMP hand-offs between threads would cost more than the arithmetic
    (tens of ms per op on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _tiny_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, **TINY[name])


def tiny_model(name: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A fresh copy of a tiny model (DimeNet++ takes seconds to build its bases)."""
    return copy.deepcopy(_tiny_model(name)).to(dtype)


def random_rotation(generator: torch.Generator) -> torch.Tensor:
    """A proper rotation [3, 3] (float64), from the QR decomposition of a Gaussian matrix."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


# --- radius graph -----------------------------------------------------------------------


def brute_force(pos, cutoff, batch, max_num_neighbors=None, loop=False) -> torch.Tensor:
    """All pairs checked one by one; the nearest neighbours kept (self first, ties by index)."""
    edges = []
    for i in range(len(pos)):
        candidates = []
        for j in range(len(pos)):
            if batch[j] != batch[i] or (j == i and not loop):
                continue
            sq_dist = (pos[j] - pos[i]).pow(2).sum()
            if cutoff is None or sq_dist < cutoff**2:
                candidates.append((-1.0 if j == i else float(sq_dist), j))
        kept = sorted(candidates)[:max_num_neighbors]
        edges += [(j, i) for j in sorted(j for _, j in kept)]
    return torch.tensor(edges, dtype=torch.long).reshape(-1, 2).T


def random_clouds(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """pos [N, 3] on a 0.25 Å grid (so pairs lie exactly 1.5 Å apart) and sorted batch [N]
    of 1–12 atoms per molecule, one molecule of a single atom."""
    g = torch.Generator().manual_seed(seed)
    sizes = [int(n) for n in torch.randint(2, 13, (6,), generator=g)] + [1]
    pos = torch.randint(0, 7, (sum(sizes), 3), generator=g).float() * 0.25
    return pos, torch.repeat_interleave(torch.tensor(sizes))


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_radius_graph_equals_brute_force(seed, loop):
    pos, batch = random_clouds(seed)
    sq_dist = (pos[:, None] - pos[None, :]).pow(2).sum(-1)
    assert ((sq_dist == 1.5**2) & (batch[:, None] == batch[None, :])).any()  # on the boundary
    for cutoff in (1.5, 1.1, None):
        expected = brute_force(pos, cutoff, batch, loop=loop)
        got = radius_graph(pos, cutoff, batch, max_num_neighbors=None, loop=loop)
        assert torch.equal(got, expected)


def test_radius_graph_boundary_is_exclusive_and_lone_atom_has_no_edge():
    pos = torch.tensor([[0.0, 0, 0], [1.5, 0, 0], [0.75, 0.5, 0], [0, -1.4999, 0], [5.0, 5, 5]])
    batch = torch.tensor([0, 0, 0, 0, 1])
    edges = set(map(tuple, radius_graph(pos, 1.5, batch).T.tolist()))
    # 0–1 exactly 1.5 Å apart: no edge; 0–3 1.4999 Å apart: an edge; 4 alone: none.
    assert edges == {(2, 0), (0, 2), (2, 1), (1, 2), (3, 0), (0, 3)}
    with_loops = set(map(tuple, radius_graph(pos, 1.5, batch, loop=True).T.tolist()))
    assert with_loops == edges | {(k, k) for k in range(5)}


@pytest.mark.parametrize("loop", [False, True])
def test_radius_graph_keeps_nearest_neighbours(loop):
    pos, batch = random_clouds(3)
    pos = pos + 0.01 * torch.randn(pos.shape, generator=torch.Generator().manual_seed(3))
    expected = brute_force(pos, 1.2, batch, max_num_neighbors=3, loop=loop)
    got = radius_graph(pos, 1.2, batch, max_num_neighbors=3, loop=loop)
    assert torch.equal(got, expected)
    assert torch.bincount(got[1]).max() == 3
    # Ties (the 0.25 Å grid) are broken by the lower index.
    grid, grid_batch = random_clouds(4)
    got = radius_graph(grid, 1.2, grid_batch, max_num_neighbors=2, loop=loop)
    assert torch.equal(got, brute_force(grid, 1.2, grid_batch, max_num_neighbors=2, loop=loop))


def test_radius_graph_needs_sorted_batch():
    with pytest.raises(ValueError, match="sorted"):
        radius_graph(torch.zeros(3, 3), 1.0, torch.tensor([0, 1, 0]))


def test_triplets_equal_brute_force():
    pos, batch = random_clouds(5)
    edge_index = radius_graph(pos, 1.0, batch)
    i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, pos.size(0))
    assert torch.equal(j, edge_index[0]) and torch.equal(i, edge_index[1])
    edges = edge_index.T.tolist()
    expected = sorted(
        (kj, ji) for ji, (e_j, e_i) in enumerate(edges)
        for kj, (k, j2) in enumerate(edges) if j2 == e_j and k != e_i
    )  # fmt: skip
    assert sorted(zip(idx_kj.tolist(), idx_ji.tolist(), strict=True)) == expected
    assert torch.equal(idx_i, i[idx_ji]) and torch.equal(idx_j, j[idx_ji])
    assert torch.equal(idx_k, j[idx_kj]) and torch.equal(idx_j, i[idx_kj])


# --- models -----------------------------------------------------------------------------


def test_registry():
    assert set(MODELS) == {"schnet", "dimenet++", "visnet", "egnn"}
    with pytest.raises(ValueError, match="unknown model"):
        build_model("transformer")


@pytest.mark.parametrize("name", sorted(TINY))
def test_shapes(name):
    model = tiny_model(name)
    z, pos, batch, _ = molecule_batch()
    prediction, embedding = model.forward_with_embedding(z, pos, batch)
    assert prediction.shape == (len(MOLECULES),)
    assert model.hidden_channels == 16
    assert embedding.shape == (len(MOLECULES), model.hidden_channels)
    assert torch.equal(model(z, pos, batch), prediction)
    assert torch.isfinite(prediction).all() and torch.isfinite(embedding).all()


@pytest.mark.parametrize("name", sorted(TINY))
def test_invariant_to_rotation_translation_and_atom_order(name):
    model = tiny_model(name, torch.float64)
    z, pos, batch, _ = molecule_batch(torch.float64)
    prediction, embedding = model.forward_with_embedding(z, pos, batch)
    g = torch.Generator().manual_seed(0)
    moved = pos @ random_rotation(g).T + torch.randn(3, generator=g, dtype=torch.float64) * 3
    moved_prediction, moved_embedding = model.forward_with_embedding(z, moved, batch)
    torch.testing.assert_close(moved_prediction, prediction, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(moved_embedding, embedding, rtol=1e-9, atol=1e-9)
    # Reverse the atoms of each molecule (batch stays sorted).
    order = torch.cat([torch.nonzero(batch == b).flatten().flip(0) for b in batch.unique()])
    permuted = model(z[order], pos[order], batch[order])
    torch.testing.assert_close(permuted, prediction, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(TINY))
def test_training_decreases_loss(name):
    model = tiny_model(name)
    z, pos, batch, target = molecule_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(z, pos, batch), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("name", sorted(TINY))
def test_forces_exist_and_train(name):
    model = tiny_model(name)
    z, pos, batch, _ = molecule_batch()
    pos = pos.clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(z, pos, batch).sum(), pos)
    forces = -grad  # [N, 3]
    assert forces.shape == pos.shape and torch.isfinite(forces).all()
    assert forces.abs().sum() > 0
    # The forces of each molecule sum to zero; the lone neon atom feels none.
    sums = torch.zeros(len(MOLECULES), 3).index_add(0, batch, forces)
    torch.testing.assert_close(sums, torch.zeros_like(sums), atol=1e-5, rtol=0)
    assert forces[-1].abs().max() < 1e-7
    # A force loss trains the parameters (create_graph). Without the lone atom: PyG's ViSNet
    # has NaN second derivatives at an atom whose vector features are exactly zero.
    several = batch < len(MOLECULES) - 1
    z, pos, batch = z[several], pos[several], batch[several]
    (grad,) = torch.autograd.grad(model(z, pos, batch).sum(), pos, create_graph=True)
    grad.pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", sorted(TINY))
def test_mean_readout_divides_the_sum_by_the_atoms(name):
    z, pos, batch, _ = molecule_batch()
    atoms = torch.bincount(batch).float()  # [B]
    out = {}
    for readout in ("sum", "mean"):
        torch.manual_seed(0)  # the same weights: the readout has no parameters
        model = build_model(name, **TINY[name], readout=readout).eval()
        with torch.no_grad():
            out[readout] = model.forward_with_embedding(z, pos, batch)
    (y_sum, h_sum), (y_mean, h_mean) = out["sum"], out["mean"]
    torch.testing.assert_close(h_mean * atoms[:, None], h_sum, rtol=1e-5, atol=1e-5)
    if name != "egnn":  # EGNN's prediction is a network of its pooled embedding
        torch.testing.assert_close(y_mean * atoms, y_sum, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="readout 'add'"):
        build_model(name, **TINY[name], readout="add")


def test_default_readout_by_the_targets_kind():
    from rhoflow.train.normalize import default_readout

    for intensive in ("source_gap_hartree", "gap_hartree", "source_homo_hartree",
                      "lumo_hartree", "source_mu_debye", "source_homo_lumo_gap_ev",
                      "source_gasteiger_dipole_debye"):  # fmt: skip
        assert default_readout(intensive) == "mean", intensive
    for extensive in ("source_u0_hartree", "final_energy_hartree", "source_alpha_bohr3",
                      "source_mmff94_energy_kcal_per_mol", "source_zpve_hartree"):  # fmt: skip
        assert default_readout(extensive) == "sum", extensive
