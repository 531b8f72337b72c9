"""PointNet (Qi, Su, Mo, Guibas, "PointNet: Deep Learning on Point Sets for 3D Classification
and Segmentation", CVPR 2017) as a per-molecule regressor over density point clouds.

EDG Table 4's point-cloud model. A cloud is [B, P, F]: x, y, z in Å and F − 3 per-point
features (rhoflow's point clouds: the density ρ in e/bohr³). The network:

1. coordinates centred on the cloud's centroid (translation invariance), features as
   log(1 + value) (ρ spans 0.05 to ~10² e/bohr³ between the valence and the cores);
2. the input transform: a T-Net predicts a 3×3 matrix (initialised to the identity) that
   multiplies the centred coordinates;
3. a shared MLP (``mlp1``, then ``mlp2``: 1×1 convolutions + BatchNorm + ReLU over points);
4. a max pool over points — the symmetric function that makes the output independent of the
   order of the points;
5. an MLP head (``head``, BatchNorm, ReLU, dropout 0.3 as the paper) to ``n_outputs``.

The paper's second, 64×64 feature transform and its orthogonality regulariser are left out
(Qi et al. report +0.3 % ModelNet40 accuracy from it). Trained from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _shared_mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Per-point layers: x [B, sizes[0], P] -> [B, sizes[-1], P]."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Conv1d(a, b, 1, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _head(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Per-cloud layers [B, sizes[0]] -> [B, sizes[-2]] (BatchNorm, ReLU), then a plain linear
    layer to sizes[-1]."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class TNet(nn.Module):
    """PointNet's transform network: a k×k matrix per cloud from the cloud itself (shared MLP,
    max pool, MLP), starting at the identity (the last layer is zero-initialised).

    Args:
        k (int): size of the points' vectors and of the matrix.
        mlp (Sequence[int]): shared MLP widths after k (paper 64, 128, 1024).
        head (Sequence[int]): MLP widths before k² (paper 512, 256).
    """

    def __init__(self, k: int, mlp: Sequence[int], head: Sequence[int]) -> None:
        super().__init__()
        self.k = k
        self.mlp = _shared_mlp([k, *mlp])
        self.head = _head([mlp[-1], *head, k * k])
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, k, P] -> matrices [B, k, k]."""
        h = self.mlp(x).amax(dim=2)  # h: [B, mlp[-1]]
        eye = torch.eye(self.k, dtype=x.dtype, device=x.device)
        return self.head(h).view(-1, self.k, self.k) + eye


class PointNet(nn.Module):
    """PointNet regressor over point clouds [B, P, F] (module docstring).

    Args:
        in_features (int): values per point, the coordinates (3) first. Default 4 (x, y, z, ρ).
        n_outputs (int): values predicted per molecule. Default 1.
        mlp1 (Sequence[int]): shared MLP before the global features (paper 64, 64).
        mlp2 (Sequence[int]): shared MLP to the global features (paper 64, 128, 1024).
        head (Sequence[int]): hidden widths of the head (paper 512, 256).
        dropout (float): dropout before the head's last layer (paper 0.3).
    """

    def __init__(
        self,
        in_features: int = 4,
        n_outputs: int = 1,
        mlp1: Sequence[int] = (64, 64),
        mlp2: Sequence[int] = (64, 128, 1024),
        head: Sequence[int] = (512, 256),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if in_features < 3:
            raise ValueError(f"in_features must count the 3 coordinates, got {in_features}")
        self.input_transform = TNet(3, mlp2, head)
        self.mlp1 = _shared_mlp([in_features, *mlp1])
        self.mlp2 = _shared_mlp([mlp1[-1], *mlp2])
        self.head = _head([mlp2[-1], *head, n_outputs], dropout)

    def forward(self, points: Tensor) -> Tensor:
        """points [B, P, F] (x, y, z in Å, then features) -> [B, n_outputs]."""
        xyz = points[..., :3] - points[..., :3].mean(dim=1, keepdim=True)  # xyz: [B, P, 3]
        features = torch.log1p(points[..., 3:].clamp_min(0))  # features: [B, P, F - 3]
        transform = self.input_transform(xyz.transpose(1, 2))  # transform: [B, 3, 3]
        xyz = torch.bmm(xyz, transform)  # xyz: [B, P, 3]
        h = torch.cat([xyz, features], dim=2).transpose(1, 2)  # h: [B, F, P]
        h = self.mlp2(self.mlp1(h))  # h: [B, mlp2[-1], P]
        return self.head(h.amax(dim=2))  # [B, n_outputs]
