"""The image model of EDG Table 4: ResNet18 over the six RGB-D density views of a molecule.

EDG (Xiang et al., "Electron Density-enhanced Molecular Geometry Learning") compares point
clouds, voxels and images as density representations and finds the images best. The model is
the ResNet18 written for EDG's teacher (:class:`rhoflow.models.ed_teacher.ResNet18`, from
scratch: no ImageNet weights can be downloaded here) with a 4-channel stem: each view
(uint8 RGB + depth, rhoflow's render stage) is scaled to [-1, 1] (x / 127.5 − 1), embedded,
the V view embeddings are averaged, and a linear head maps the mean to the outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rhoflow.models.ed_teacher import ResNet18


class MultiViewResNet18(nn.Module):
    """ResNet18 per view, view-wise mean pooling, linear head.

    Args:
        in_channels (int): channels per view (4: RGB-D). Default 4.
        n_outputs (int): values predicted per molecule. Default 1.
        width (int): ResNet18's first-stage channels (64 in the paper). Default 64.
    """

    def __init__(self, in_channels: int = 4, n_outputs: int = 1, width: int = 64) -> None:
        super().__init__()
        self.backbone = ResNet18(in_channels=in_channels, width=width)
        self.head = nn.Linear(self.backbone.embedding_dim, n_outputs)

    def forward(self, images: Tensor) -> Tensor:
        """uint8 images [B, V, C, H, W] -> [B, n_outputs]."""
        B, V = images.shape[:2]
        x = images.flatten(0, 1).to(torch.float32) / 127.5 - 1.0  # x: [B * V, C, H, W]
        h = self.backbone(x).view(B, V, -1)  # h: [B, V, 8 width]
        return self.head(h.mean(dim=1))  # [B, n_outputs]
