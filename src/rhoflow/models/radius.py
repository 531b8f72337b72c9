"""Radius graphs of batched molecules, exact and in plain torch.

PyG's ``radius_graph`` needs the compiled pyg-lib (or torch-cluster), which is not installable
everywhere; molecules are small (≤ ~100 atoms), so the all-pairs distances of each molecule are
cheap. Atoms are padded per molecule to ``[B, Nmax, 3]`` and all pairs compared at once.

Semantics are those of torch-cluster and pyg-lib (CPU and CUDA kernels compare squared
distances with ``<``), except that a node with too many neighbours keeps its nearest ones
rather than an arbitrary subset.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pad_by_molecule(pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Atoms of each molecule as one row of a padded tensor.

    Args:
        pos: [N, 3] coordinates (Å).
        batch: [N] molecule of each atom, sorted (molecule blocks are contiguous).

    Returns:
        padded [B, Nmax, 3] coordinates (zeros at padding), mask [B, Nmax] (True at real
        atoms) and ptr [B] (index of each molecule's first atom).
    """
    if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted: the atoms of a molecule must be contiguous")
    counts = torch.bincount(batch)  # counts: [B]
    ptr = torch.cumsum(counts, 0) - counts  # ptr: [B]
    local = torch.arange(batch.numel(), device=batch.device) - ptr[batch]  # local: [N]
    n_max = int(counts.max())
    padded = pos.new_zeros(counts.numel(), n_max, 3)
    padded[batch, local] = pos
    mask = torch.zeros(counts.numel(), n_max, dtype=torch.bool, device=pos.device)
    mask[batch, local] = True
    return padded, mask, ptr


@torch.no_grad()
def radius_graph(
    pos: Tensor,
    cutoff: float | None,
    batch: Tensor,
    max_num_neighbors: int | None = 32,
    loop: bool = False,
) -> Tensor:
    """Edges between atoms of the same molecule closer than ``cutoff``.

    An edge j → i exists when j and i are in the same molecule, ``|pos_j - pos_i|² < cutoff²``
    (the boundary is exclusive, as in torch-cluster and pyg-lib; compared in the dtype of
    ``pos``) and j != i (unless ``loop``). A centre i with more than ``max_num_neighbors``
    neighbours keeps the nearest ones, ties broken by lower index; with ``loop`` its self-loop
    counts as its nearest neighbour, as in PyG. The graph carries no gradient: models
    recompute distances from ``pos``.

    Args:
        pos: [N, 3] coordinates (Å).
        cutoff: radius (Å); ``None`` links all pairs of a molecule.
        batch: [N] molecule of each atom, sorted (molecule blocks are contiguous).
        max_num_neighbors: most neighbours per centre; ``None`` for no limit.
        loop: add the self-loops i → i.

    Returns:
        edge_index [2, E], PyG's ``flow="source_to_target"`` convention: ``edge_index[0]`` the
        neighbour j, ``edge_index[1]`` the centre i. Edges are sorted by centre, then neighbour.
    """
    padded, mask, ptr = pad_by_molecule(pos, batch)
    # Differences, not torch.cdist: its matrix-product formula is inexact at the boundary.
    sq_dist = (padded[:, :, None, :] - padded[:, None, :, :]).pow(2).sum(-1)  # [B, Nmax, Nmax]
    n_max = padded.size(1)
    self_pair = torch.eye(n_max, dtype=torch.bool, device=pos.device)  # [Nmax, Nmax]
    keep = mask[:, :, None] & mask[:, None, :]  # keep[b, i, j]: [B, Nmax, Nmax]
    if cutoff is not None:
        keep &= sq_dist < cutoff**2
    if not loop:
        keep &= ~self_pair
    if max_num_neighbors is not None and max_num_neighbors < n_max:
        # Rank the neighbours of each centre by distance, self first, dropped pairs last.
        key = sq_dist.masked_fill(self_pair, -1.0).masked_fill(~keep, float("inf"))
        order = key.argsort(dim=-1, stable=True)
        rank = torch.empty_like(order).scatter_(
            -1, order, torch.arange(n_max, device=pos.device).expand_as(order)
        )
        keep &= rank < max_num_neighbors
    b, i, j = keep.nonzero(as_tuple=True)  # sorted by (molecule, centre, neighbour)
    return torch.stack([ptr[b] + j, ptr[b] + i])
