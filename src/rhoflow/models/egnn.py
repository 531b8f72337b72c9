"""EGNN (Satorras, Hoogeboom, Welling; ICML 2021), written for rhoflow.

Equation numbers refer to the paper, "E(n) Equivariant Graph Neural Networks". Layer l maps
atom features h [N, H] and coordinates x [N, 3] (Å) over edges j → i:

    m_ij = phi_e(h_i, h_j, |x_i - x_j|²)                    (3)
    x_i  = x_i + 1/(M - 1) sum_j (x_i - x_j) phi_x(m_ij)     (4), optional
    m_i  = sum_j e_ij m_ij                                   (5), e_ij of section 3.3
    h_i  = h_i + phi_h(h_i, m_i)                             (6), residual as in the code

where e_ij = sigmoid(phi_inf(m_ij)) ("inferring the edges", optional, else 1) and the mean over
neighbours stands for the paper's C = 1/(M - 1) (the same on a fully connected graph).

For invariant properties (the paper's QM9 setup) coordinates are not updated, so the model
only sees interatomic distances; attention (the paper's edge inference e_ij) is on, as in the
authors' QM9 runs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rhoflow.models.radius import radius_graph
from rhoflow.models.readout import check_readout


def sum_at(values: Tensor, index: Tensor, num: int) -> Tensor:
    """values [E, F] summed into num rows by index [E]: [num, F]."""
    return values.new_zeros(num, values.size(1)).index_add(0, index, values)


class EGNNLayer(nn.Module):
    """One equivariant graph convolutional layer (E_GCL).

    Args:
        hidden_channels: atom feature size H.
        attention: gate each message by e_ij = sigmoid(phi_inf(m_ij)).
        update_coords: update the coordinates by equation (4).
    """

    def __init__(self, hidden_channels: int, attention: bool, update_coords: bool) -> None:
        super().__init__()
        H = hidden_channels
        self.phi_e = nn.Sequential(nn.Linear(2 * H + 1, H), nn.SiLU(), nn.Linear(H, H), nn.SiLU())
        self.phi_inf = nn.Sequential(nn.Linear(H, 1), nn.Sigmoid()) if attention else None
        self.phi_h = nn.Sequential(nn.Linear(2 * H, H), nn.SiLU(), nn.Linear(H, H))
        self.phi_x = None
        if update_coords:
            last = nn.Linear(H, 1, bias=False)
            nn.init.xavier_uniform_(last.weight, gain=0.001)  # small first steps, as the authors
            self.phi_x = nn.Sequential(nn.Linear(H, H), nn.SiLU(), last)

    def messages(self, h: Tensor, x: Tensor, edge_index: Tensor) -> Tensor:
        """Messages m_ij [E, H] of equation (3), gated by e_ij when attention is on."""
        j, i = edge_index
        sq_dist = (x[i] - x[j]).pow(2).sum(dim=-1, keepdim=True)  # [E, 1] (Å²)
        m = self.phi_e(torch.cat([h[i], h[j], sq_dist], dim=-1))  # m: [E, H]
        return m if self.phi_inf is None else m * self.phi_inf(m)

    def update_coords(self, x: Tensor, m: Tensor, edge_index: Tensor) -> Tensor:
        """Coordinates [N, 3] of equation (4): the mean over neighbours of (x_i - x_j) phi_x."""
        j, i = edge_index
        shift = sum_at((x[i] - x[j]) * self.phi_x(m), i, x.size(0))  # [N, 3]
        n_neighbours = torch.bincount(i, minlength=x.size(0)).clamp(min=1)
        return x + shift / n_neighbours.unsqueeze(-1)

    def update_features(self, h: Tensor, m: Tensor, edge_index: Tensor) -> Tensor:
        """Atom features [N, H] of equations (5)-(6), messages already gated."""
        m_i = sum_at(m, edge_index[1], h.size(0))  # m_i: [N, H]
        return h + self.phi_h(torch.cat([h, m_i], dim=-1))

    def forward(self, h: Tensor, x: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        """Updated atom features h [N, H] and coordinates x [N, 3] (Å)."""
        m = self.messages(h, x, edge_index)
        if self.phi_x is not None:
            x = self.update_coords(x, m, edge_index)
        return self.update_features(h, m, edge_index), x


class EGNN(nn.Module):
    """EGNN from "E(n) Equivariant Graph Neural Networks" (Satorras, Hoogeboom, Welling;
    ICML 2021), predicting one scalar per molecule as in the paper's QM9 experiments.

    Atomic numbers are embedded (equivalent to the paper's linear map of one-hot atom types),
    passed through ``num_layers`` :class:`EGNNLayer`, decoded per atom by an MLP, summed per
    molecule and decoded by a second MLP into the prediction.

    Args:
        hidden_channels: atom feature size, also the embedding size. (default: 128)
        num_layers: number of E_GCL layers. (default: 7)
        attention: gate messages by the paper's edge inference e_ij. (default: True)
        update_coords: update coordinates between layers (equation 4); the paper's QM9 model
            does not, the prediction being invariant either way. (default: False)
        max_z: largest atomic number + 1 (embedding table size). (default: 100)
        cutoff: interaction radius (Å); ``None`` links all atom pairs of a molecule, the
            paper's fully connected graph. (default: None)
        max_num_neighbors: most neighbours per atom, the nearest kept; ``None`` for no limit.
            (default: None)
        readout: pooling of atoms into molecules, ``"sum"`` or ``"mean"``; rhoflow's trainer
            picks it by the target when a run does not name it (sum for extensive energies,
            mean for intensive properties, :func:`rhoflow.train.normalize.default_readout`).
            (default: "sum")
    """

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 7,
        attention: bool = True,
        update_coords: bool = False,
        max_z: int = 100,
        cutoff: float | None = None,
        max_num_neighbors: int | None = None,
        readout: str = "sum",
    ) -> None:
        super().__init__()
        H = hidden_channels
        self.hidden_channels = hidden_channels
        self.cutoff = cutoff
        self.max_num_neighbors = max_num_neighbors
        self.readout = check_readout(readout)
        self.embedding = nn.Embedding(max_z, H)
        self.layers = nn.ModuleList(
            EGNNLayer(H, attention, update_coords) for _ in range(num_layers)
        )
        self.node_decoder = nn.Sequential(nn.Linear(H, H), nn.SiLU(), nn.Linear(H, H))
        self.graph_decoder = nn.Sequential(nn.Linear(H, H), nn.SiLU(), nn.Linear(H, 1))

    def forward_with_embedding(
        self, z: Tensor, pos: Tensor, batch: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Prediction [B] and embedding [B, hidden_channels] of each molecule.

        The embedding is the per-atom decoder's output pooled over the atoms of the molecule
        with ``readout`` (the paper sums), the input of the molecule decoder that gives the
        prediction.

        Args:
            z: [N] atomic numbers.
            pos: [N, 3] coordinates (Å).
            batch: [N] molecule of each atom, sorted.
        """
        edge_index = radius_graph(pos, self.cutoff, batch, self.max_num_neighbors)
        h, x = self.embedding(z), pos  # h: [N, H], x: [N, 3]
        for layer in self.layers:
            h, x = layer(h, x, edge_index)
        num_molecules = int(batch.max()) + 1
        embedding = sum_at(self.node_decoder(h), batch, num_molecules)  # [B, H]
        if self.readout == "mean":
            atoms = torch.bincount(batch, minlength=num_molecules).clamp(min=1)  # [B]
            embedding = embedding / atoms[:, None]
        return self.graph_decoder(embedding).squeeze(-1), embedding

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        """Prediction [B] of each molecule from atomic numbers z [N], coordinates pos [N, 3]
        (Å) and the sorted molecule index batch [N]."""
        return self.forward_with_embedding(z, pos, batch)[0]
