"""DimeNet++ (Gasteiger et al. 2020) from PyG, on rhoflow's radius graph."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch_geometric.nn import models as pyg_models
from torch_geometric.nn.models.dimenet import OutputPPBlock
from torch_geometric.utils import scatter

from rhoflow.models.radius import radius_graph
from rhoflow.models.readout import check_readout


def triplets(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, ...]:
    """The triplets k → j → i (k != i) of a graph, as PyG's ``dimenet.triplets``.

    PyG builds them with torch-sparse; this does the same with plain tensor ops.

    Args:
        edge_index: [2, E] edges j → i (``edge_index[0]`` = j, ``edge_index[1]`` = i).
        num_nodes: number of atoms N.

    Returns:
        i [E], j [E] (centre and neighbour of each edge), then for each triplet idx_i, idx_j,
        idx_k [T] (atoms) and idx_kj, idx_ji [T] (edges k → j and j → i).
    """
    j, i = edge_index
    by_centre = torch.argsort(i, stable=True)  # edges grouped by centre
    in_degree = torch.bincount(i, minlength=num_nodes)  # [N]
    first_in = torch.cumsum(in_degree, 0) - in_degree  # [N]
    # Each edge j → i pairs with every edge k → j ending at its neighbour j.
    n_pairs = in_degree[j]  # [E]
    idx_ji = torch.repeat_interleave(n_pairs)  # [T']
    start = torch.cumsum(n_pairs, 0) - n_pairs
    offset = torch.arange(idx_ji.numel(), device=j.device) - start[idx_ji]
    idx_kj = by_centre[first_in[j[idx_ji]] + offset]  # [T']
    idx_i, idx_j, idx_k = i[idx_ji], j[idx_ji], j[idx_kj]
    keep = idx_i != idx_k
    return i, j, idx_i[keep], idx_j[keep], idx_k[keep], idx_kj[keep], idx_ji[keep]


class DimeNetPlusPlus(pyg_models.DimeNetPlusPlus):
    """DimeNet++ from "Fast and uncertainty-aware directional message passing for
    non-equilibrium molecules" (Gasteiger, Giri, Margraf, Günnemann; NeurIPS 2020 ML4Molecules
    workshop, arXiv:2011.14115).

    PyG's :class:`torch_geometric.nn.models.DimeNetPlusPlus` (its blocks and parameters) with
    the forward pass rewritten on rhoflow's radius graph and triplets, predicting one scalar per
    molecule. Defaults are the paper's QM9 setting (those of PyG's ``from_qm9_pretrained``).

    Args:
        hidden_channels: edge message size, also the embedding size. (default: 128)
        num_blocks: number of interaction blocks. (default: 4)
        int_emb_size: message size inside the interaction blocks. (default: 64)
        basis_emb_size: size of the basis embedding in the interaction blocks. (default: 8)
        out_emb_channels: feature size in the output blocks. (default: 256)
        num_spherical: number of spherical harmonics. (default: 7)
        num_radial: number of radial basis functions. (default: 6)
        cutoff: interaction radius (Å); the bases vanish smoothly there. (default: 5.0)
        max_num_neighbors: most neighbours per atom within ``cutoff``, the nearest kept.
            (default: 32)
        envelope_exponent: shape of the smooth cutoff envelope. (default: 5)
        num_before_skip: residual layers before the skip connection. (default: 1)
        num_after_skip: residual layers after the skip connection. (default: 2)
        num_output_layers: linear layers in each output block. (default: 3)
        act: activation, a name or a callable. (default: "swish")
        output_initializer: initialisation of the output layers, ``"zeros"`` or
            ``"glorot_orthogonal"``. (default: "zeros")
        readout: pooling of atoms into molecules, ``"sum"`` or ``"mean"``; rhoflow's trainer
            picks it by the target when a run does not name it (sum for extensive energies,
            mean for intensive properties, :func:`rhoflow.train.normalize.default_readout`).
            (default: "sum")
    """

    def __init__(
        self,
        hidden_channels: int = 128,
        num_blocks: int = 4,
        int_emb_size: int = 64,
        basis_emb_size: int = 8,
        out_emb_channels: int = 256,
        num_spherical: int = 7,
        num_radial: int = 6,
        cutoff: float = 5.0,
        max_num_neighbors: int = 32,
        envelope_exponent: int = 5,
        num_before_skip: int = 1,
        num_after_skip: int = 2,
        num_output_layers: int = 3,
        act: str | Callable = "swish",
        output_initializer: str = "zeros",
        readout: str = "sum",
    ) -> None:
        super().__init__(
            hidden_channels=hidden_channels,
            out_channels=1,
            num_blocks=num_blocks,
            int_emb_size=int_emb_size,
            basis_emb_size=basis_emb_size,
            out_emb_channels=out_emb_channels,
            num_spherical=num_spherical,
            num_radial=num_radial,
            cutoff=cutoff,
            max_num_neighbors=max_num_neighbors,
            envelope_exponent=envelope_exponent,
            num_before_skip=num_before_skip,
            num_after_skip=num_after_skip,
            num_output_layers=num_output_layers,
            act=act,
            output_initializer=output_initializer,
        )
        self.hidden_channels = hidden_channels
        self.readout = check_readout(readout)

    @staticmethod
    def angles(pos: Tensor, idx_i: Tensor, idx_j: Tensor, idx_k: Tensor) -> Tensor:
        """Angle [T] (rad) between the bonds k → j and j → i of each triplet, as in PyG."""
        pos_jk = pos[idx_j] - pos[idx_k]  # [T, 3]
        pos_ij = pos[idx_i] - pos[idx_j]  # [T, 3]
        a = (pos_ij * pos_jk).sum(dim=-1)
        b = torch.cross(pos_ij, pos_jk, dim=1).norm(dim=-1)
        return torch.atan2(b, a)

    @staticmethod
    def output_block(
        block: OutputPPBlock, x: Tensor, rbf: Tensor, i: Tensor, num_nodes: int
    ) -> tuple[Tensor, Tensor]:
        """PyG's ``OutputPPBlock.forward``, also returning the atom features it reads.

        Returns:
            the atom outputs [N, 1] and the atom features [N, H]: the messages x [E, H] gated
            by the radial basis and summed onto their centre atoms.
        """
        t = scatter(block.lin_rbf(rbf) * x, i, dim=0, dim_size=num_nodes, reduce="sum")
        h = block.lin_up(t)  # h: [N, out_emb_channels]
        for lin in block.lins:
            h = block.act(lin(h))
        return block.lin(h), t

    def forward_with_embedding(
        self, z: Tensor, pos: Tensor, batch: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Prediction [B] and embedding [B, hidden_channels] of each molecule.

        The embedding is the sum over the output blocks, pooled over the atoms of the molecule
        with ``readout``, of the atom features each output block reads (the rbf-gated messages
        summed per atom, before the block's up-projection); the prediction pools the output
        blocks' summed atom outputs the same way.

        Args:
            z: [N] atomic numbers.
            pos: [N, 3] coordinates (Å).
            batch: [N] molecule of each atom, sorted.
        """
        num_nodes = z.size(0)
        edge_index = radius_graph(pos, self.cutoff, batch, self.max_num_neighbors)
        i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, num_nodes)
        dist = (pos[i] - pos[j]).pow(2).sum(dim=-1).sqrt()  # dist: [E]
        rbf = self.rbf(dist)  # [E, num_radial]
        sbf = self.sbf(dist, self.angles(pos, idx_i, idx_j, idx_k), idx_kj)  # [T, S * R]

        x = self.emb(z, rbf, i, j)  # x: [E, H]
        P, t = self.output_block(self.output_blocks[0], x, rbf, i, num_nodes)
        for interaction_block, block in zip(
            self.interaction_blocks, self.output_blocks[1:], strict=True
        ):
            x = interaction_block(x, rbf, sbf, idx_kj, idx_ji)
            P_block, t_block = self.output_block(block, x, rbf, i, num_nodes)
            P, t = P + P_block, t + t_block  # P: [N, 1], t: [N, H]
        embedding = scatter(t, batch, dim=0, reduce=self.readout)  # [B, H]
        return scatter(P, batch, dim=0, reduce=self.readout).squeeze(-1), embedding

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        """Prediction [B] of each molecule from atomic numbers z [N], coordinates pos [N, 3]
        (Å) and the sorted molecule index batch [N]."""
        return self.forward_with_embedding(z, pos, batch)[0]
