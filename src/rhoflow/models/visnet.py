"""ViSNet (Wang et al., Nat. Commun. 2024) from PyG, on rhoflow's radius graph."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import models as pyg_models
from torch_geometric.utils import scatter

from rhoflow.models.radius import radius_graph
from rhoflow.models.readout import check_readout


class RadiusDistance(torch.nn.Module):
    """ViSNet's edges on rhoflow's radius graph: PyG's ``visnet.Distance`` with self-loops.

    Args:
        cutoff: radius (Å).
        max_num_neighbors: most neighbours per atom, its self-loop included (the nearest are
            kept).
    """

    def __init__(self, cutoff: float, max_num_neighbors: int) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.max_num_neighbors = max_num_neighbors

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """edge_index [2, E] (j → i, self-loops included), edge_weight [E] = |edge_vec| (Å,
        0 on self-loops) and edge_vec [E, 3] = pos_j - pos_i (Å)."""
        edge_index = radius_graph(pos, self.cutoff, batch, self.max_num_neighbors, loop=True)
        j, i = edge_index
        edge_vec = pos[j] - pos[i]
        not_loop = j != i
        # The norm of a zero vector has no gradient: self-loops keep a constant 0.
        edge_weight = torch.zeros_like(edge_vec[:, 0])
        edge_weight[not_loop] = edge_vec[not_loop].norm(dim=-1)
        return edge_index, edge_weight, edge_vec


class ViSNet(pyg_models.ViSNet):
    """ViSNet from "Enhancing geometric representations for molecules with equivariant
    vector-scalar interactive message passing" (Wang et al., Nature Communications 15, 313,
    2024; arXiv:2210.16518).

    PyG's :class:`torch_geometric.nn.models.ViSNet` with the ``distance`` module of its
    representation model replaced by :class:`RadiusDistance` (rhoflow's radius graph),
    predicting one scalar per molecule. PyG's learnable per-element offset (``prior_model``,
    zero at start) is kept; target scaling and forces are left to the training task.

    Args:
        lmax: highest degree of the spherical harmonics of the edge directions. (default: 1)
        vecnorm_type: normalisation of the vector features (``None``, ``"max_min"``).
            (default: None)
        trainable_vecnorm: learn the vector normalisation weights. (default: False)
        num_heads: attention heads; must divide ``hidden_channels``. (default: 8)
        num_layers: number of message-passing layers. (default: 6)
        hidden_channels: scalar feature size, also the embedding size. (default: 128)
        num_rbf: number of radial basis functions. (default: 32)
        trainable_rbf: learn the radial basis functions. (default: False)
        max_z: largest atomic number + 1 (embedding table size). (default: 100)
        cutoff: interaction radius (Å); the messages vanish smoothly there. (default: 5.0)
        max_num_neighbors: most neighbours per atom within ``cutoff``, its self-loop
            included, the nearest kept. (default: 32)
        vertex: use the vertex-geometric variant of the message passing. (default: False)
        readout: pooling of atoms into molecules, ``"sum"`` or ``"mean"``; rhoflow's trainer
            picks it by the target when a run does not name it (sum for extensive energies,
            mean for intensive properties, :func:`rhoflow.train.normalize.default_readout`).
            (default: "sum")
    """

    def __init__(
        self,
        lmax: int = 1,
        vecnorm_type: str | None = None,
        trainable_vecnorm: bool = False,
        num_heads: int = 8,
        num_layers: int = 6,
        hidden_channels: int = 128,
        num_rbf: int = 32,
        trainable_rbf: bool = False,
        max_z: int = 100,
        cutoff: float = 5.0,
        max_num_neighbors: int = 32,
        vertex: bool = False,
        readout: str = "sum",
    ) -> None:
        super().__init__(
            lmax=lmax,
            vecnorm_type=vecnorm_type,
            trainable_vecnorm=trainable_vecnorm,
            num_heads=num_heads,
            num_layers=num_layers,
            hidden_channels=hidden_channels,
            num_rbf=num_rbf,
            trainable_rbf=trainable_rbf,
            max_z=max_z,
            cutoff=cutoff,
            max_num_neighbors=max_num_neighbors,
            vertex=vertex,
            reduce_op=check_readout(readout),
        )
        self.representation_model.distance = RadiusDistance(cutoff, max_num_neighbors)
        self.hidden_channels = hidden_channels

    def forward_with_embedding(
        self, z: Tensor, pos: Tensor, batch: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Prediction [B] and embedding [B, hidden_channels] of each molecule.

        The embedding is the scalar atom features x returned by the representation model
        (after its final layer norm), pooled with ``readout``; the
        prediction pools the gated equivariant output head applied to x and the vector
        features.

        Args:
            z: [N] atomic numbers.
            pos: [N, 3] coordinates (Å).
            batch: [N] molecule of each atom, sorted.
        """
        x, vec = self.representation_model(z, pos, batch)  # x: [N, H], vec: [N, L, H]
        embedding = scatter(x, batch, dim=0, reduce=self.reduce_op)  # [B, H]
        out = self.prior_model(self.output_model.pre_reduce(x, vec), z)  # out: [N, 1]
        return scatter(out, batch, dim=0, reduce=self.reduce_op).squeeze(-1), embedding

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        """Prediction [B] of each molecule from atomic numbers z [N], coordinates pos [N, 3]
        (Å) and the sorted molecule index batch [N]."""
        return self.forward_with_embedding(z, pos, batch)[0]
