"""The voxel 3D-CNN of "Beyond Atoms" (a 3D ResNet over voxelised molecules).

"Beyond Atoms" compares a 3D-CNN's inputs — atom-type occupancies, the electron density, its
gradient magnitude and a van der Waals shape — on the same network; EDG Table 4 uses a 3D
ResNet as its voxel model. Neither published code. The network here is the 3D ResNet of Hara,
Kataoka and Satoh ("Can Spatiotemporal 3D CNNs Retrace the History of 2D CNNs and ImageNet?",
CVPR 2018) with isotropic strides (a molecule's grid has no time axis): 7³ convolution with
stride 2 – BatchNorm – ReLU – 3³ max pool with stride 2 – four stages of 3D basic blocks
(3³ convolutions; ``width``, 2·, 4·, 8· ``width`` channels; stride 2 at the first block of
stages 2–4) – global average pool – linear head. ``depth`` 10, 18 or 34 sets the blocks per
stage as Hara et al. (1-1-1-1, 2-2-2-2, 3-4-6-3). A 48³ grid (rhoflow's default 24 Å box at
0.5 Å) is 24³ after the stem, 12³ after the pool and 2³ before the pool of the last stage.
Trained from scratch (no 3D pretrained weights).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

BLOCKS: dict[int, tuple[int, int, int, int]] = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
}
"""Basic blocks per stage of each depth (Hara et al. 2018)."""


class BasicBlock3D(nn.Module):
    """Two 3³ convolutions with BatchNorm and a residual connection (a 1³ convolution +
    BatchNorm on the shortcut when the stride or the channels change).

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels of both convolutions and of the output.
        stride (int): stride of the first convolution. Default 1.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C_in, D, D, D] -> [B, C_out, D / stride, D / stride, D / stride]."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class VoxelResNet3D(nn.Module):
    """3D ResNet regressor over voxel grids (module docstring).

    Args:
        in_channels (int): voxel channels the model sees (the input mode's). Required.
        n_outputs (int): values predicted per molecule. Default 1.
        depth (int): 10, 18 or 34 (:data:`BLOCKS`). Default 18.
        width (int): channels of the first stage (64 in Hara et al.). Default 64.
    """

    def __init__(self, in_channels: int, n_outputs: int = 1, depth: int = 18, width: int = 64):
        super().__init__()
        if depth not in BLOCKS:
            raise ValueError(f"depth must be one of {sorted(BLOCKS)}, got {depth}")
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, width, 7, 2, 3, bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(3, 2, 1),
        )
        stages, channels = [], width
        for k, n_blocks in enumerate(BLOCKS[depth]):
            out = width * 2**k
            blocks = [BasicBlock3D(channels, out, 1 if k == 0 else 2)]
            blocks += [BasicBlock3D(out, out) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(channels, n_outputs)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, D, D, D] (float; the stored channels of the mode) -> [B, n_outputs]."""
        h = self.stages(self.stem(x))  # h: [B, 8 * width, D / 32, D / 32, D / 32]
        return self.head(torch.flatten(h.mean(dim=(2, 3, 4)), 1))  # [B, n_outputs]
