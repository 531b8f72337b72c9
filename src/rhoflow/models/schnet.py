"""SchNet (Schütt et al., NeurIPS 2017) from PyG, on rhoflow's radius graph."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import models as pyg_models

from rhoflow.models.radius import radius_graph
from rhoflow.models.readout import check_readout


class RadiusInteractionGraph(torch.nn.Module):
    """SchNet's interaction graph: rhoflow's radius graph and its edge lengths.

    Args:
        cutoff: radius (Å).
        max_num_neighbors: most neighbours per atom (the nearest are kept).
    """

    def __init__(self, cutoff: float, max_num_neighbors: int) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.max_num_neighbors = max_num_neighbors

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        """edge_index [2, E] (j → i) and edge_weight [E], the distances |pos_j - pos_i| (Å)."""
        edge_index = radius_graph(pos, self.cutoff, batch, self.max_num_neighbors)
        j, i = edge_index
        return edge_index, (pos[j] - pos[i]).norm(dim=-1)


class SchNet(pyg_models.SchNet):
    """SchNet from "SchNet: A continuous-filter convolutional neural network for modeling
    quantum interactions" (Schütt, Kindermans, Sauceda, Chmiela, Tkatchenko, Müller;
    NeurIPS 2017).

    PyG's :class:`torch_geometric.nn.models.SchNet` with its ``interaction_graph`` set to
    :class:`RadiusInteractionGraph` (rhoflow's radius graph), predicting one scalar per
    molecule. Target scaling, atom references and the dipole head of PyG's model are left to
    the training task.

    Args:
        hidden_channels: atom feature size, also the embedding size. (default: 128)
        num_filters: size of the continuous filters. (default: 128)
        num_interactions: number of interaction blocks. (default: 6)
        num_gaussians: number of Gaussians expanding the distances on [0, cutoff].
            (default: 50)
        cutoff: interaction radius (Å); also the cosine cutoff of the filters.
            (default: 10.0)
        max_num_neighbors: most neighbours per atom within ``cutoff``, the nearest kept.
            (default: 32)
        readout: pooling of atoms into molecules, ``"sum"`` or ``"mean"``; rhoflow's trainer
            picks it by the target when a run does not name it (sum for extensive energies,
            mean for intensive properties, :func:`rhoflow.train.normalize.default_readout`).
            (default: "sum")
    """

    def __init__(
        self,
        hidden_channels: int = 128,
        num_filters: int = 128,
        num_interactions: int = 6,
        num_gaussians: int = 50,
        cutoff: float = 10.0,
        max_num_neighbors: int = 32,
        readout: str = "sum",
    ) -> None:
        super().__init__(
            hidden_channels=hidden_channels,
            num_filters=num_filters,
            num_interactions=num_interactions,
            num_gaussians=num_gaussians,
            cutoff=cutoff,
            interaction_graph=RadiusInteractionGraph(cutoff, max_num_neighbors),
            max_num_neighbors=max_num_neighbors,
            readout="add" if check_readout(readout) == "sum" else "mean",
        )
        self.max_num_neighbors = max_num_neighbors

    def forward_with_embedding(
        self, z: Tensor, pos: Tensor, batch: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Prediction [B] and embedding [B, hidden_channels] of each molecule.

        The embedding is the atom features after the last interaction block, pooled with
        ``readout``; the prediction pools the output MLP applied to those
        same atom features.

        Args:
            z: [N] atomic numbers.
            pos: [N, 3] coordinates (Å).
            batch: [N] molecule of each atom, sorted.
        """
        h = self.embedding(z)  # h: [N, H]
        edge_index, edge_weight = self.interaction_graph(pos, batch)  # [2, E], [E]
        edge_attr = self.distance_expansion(edge_weight)  # [E, num_gaussians]
        for interaction in self.interactions:
            h = h + interaction(h, edge_index, edge_weight, edge_attr)
        embedding = self.readout(h, batch, dim=0)  # [B, H]
        out = self.lin2(self.act(self.lin1(h)))  # out: [N, 1]
        return self.readout(out, batch, dim=0).squeeze(-1), embedding

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        """Prediction [B] of each molecule from atomic numbers z [N], coordinates pos [N, 3]
        (Å) and the sorted molecule index batch [N]."""
        return self.forward_with_embedding(z, pos, batch)[0]
