"""A multilayer perceptron head on per-molecule vectors (the 3DGrid-VQGAN's fine-tuning head).

``Linear – SiLU – Dropout`` per hidden layer, then a linear output: [B, F] -> [B, T].
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """Args:
    in_features (int): F, the input vector's size.
    n_outputs (int): T, targets predicted together.
    hidden (list[int]): hidden layer widths. Default [256, 256] (two hidden layers).
    dropout (float): dropout after each hidden layer. Default 0.1.
    """

    def __init__(
        self,
        in_features: int,
        n_outputs: int = 1,
        hidden: Sequence[int] = (256, 256),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.SiLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, F] -> [B, T]."""
        return self.net(x)
