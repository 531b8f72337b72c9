"""EDG's electron-density-aware teacher (Xiang et al., "Electron Density-enhanced Molecular
Geometry Learning").

The teacher sees V structural (ball-and-stick) images of a molecule, uint8 [B, V, 3, H, W]
(the paper: V = 4 views (x, 0), (x, 180), (y, 180), (z, 180), H = W = 224), embeds every view
with a ResNet18, averages the V embeddings and maps the mean to the ImageED feature of the same
molecule. It is trained (elsewhere) with an L1 loss to frozen ImageED features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rhoflow.models.imageed import rgb_stats


def normalize(images: Tensor) -> Tensor:
    """uint8 images [..., 3, H, W] as float32 (x / 255 - mean) / std per RGB channel, with
    ImageNet's statistics (:data:`rhoflow.models.imageed.IMAGENET_MEAN`, ``IMAGENET_STD``)."""
    mean, std = rgb_stats(images)
    return (images.to(torch.float32) / 255.0 - mean) / std


class BasicBlock(nn.Module):
    """The two-conv residual block of ResNet18/34 from "Deep Residual Learning for Image
    Recognition" (He, Zhang, Ren, Sun; CVPR 2016), as torchvision's ``BasicBlock``.

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels of both 3×3 convolutions and of the output.
        stride (int): stride of the first 3×3 convolution; when it is not 1 or the channels
            change, the shortcut is a 1×1 convolution (same stride) + BatchNorm. Default 1.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """x [N, C_in, H, W] -> [N, C_out, H / stride, W / stride]."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet18 from "Deep Residual Learning for Image Recognition" (He, Zhang, Ren, Sun;
    CVPR 2016), exactly torchvision's ``resnet18`` without the classification head.

    conv 7×7/2 (64) – BN – ReLU – maxpool 3×3/2 – 4 stages of 2 :class:`BasicBlock` (64, 128,
    256, 512 channels; stride 2 at the first block of stages 2–4) – global average pool, giving
    a 512-d embedding per image. 11,176,512 parameters. Convolutions are Kaiming-normal
    (fan_out, relu) initialised, BatchNorm weight 1 and bias 0, as torchvision.

    The EDG paper starts from ImageNet-pretrained weights; those cannot be downloaded here, so
    this backbone is trained from scratch.

    Args:
        zero_init_residual (bool): zero the last BatchNorm gamma of each residual branch, so
            every block starts as the identity (torchvision's option of the same name).
            Default True.
        in_channels (int): image channels (3: RGB; 4: the RGB-D density views). Default 3.
        width (int): channels of the first stage; the stages have width, 2·, 4·, 8· width and
            the embedding 8 · width (torchvision: 64, a 512-d embedding). Default 64.
    """

    def __init__(self, zero_init_residual: bool = True, in_channels: int = 3, width: int = 64):
        super().__init__()
        w = width
        self.embedding_dim = 8 * w
        self.conv1 = nn.Conv2d(in_channels, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(w, w), BasicBlock(w, w))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w))
        self.layer4 = nn.Sequential(BasicBlock(4 * w, 8 * w, 2), BasicBlock(8 * w, 8 * w))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        """Normalised images x [N, C, H, W] -> embeddings [N, 8 · width] (512 by default)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # x: [N, width, H/4, W/4]
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # x: [N, 8 width, H/32, W/32]
        return torch.flatten(self.avgpool(x), 1)  # [N, 8 width]


class EDPredictor(nn.Module):
    """The ED predictor of EDG (Xiang et al., "Electron Density-enhanced Molecular Geometry
    Learning"): Linear – Softplus – Linear from the teacher's image embedding to the ImageED
    feature of the molecule.

    Args:
        in_dim (int): embedding size (ResNet18's). Default 512.
        hidden_dim (int): hidden layer size. Default 256.
        out_dim (int): output size, ImageED's feature size. Required.
    """

    def __init__(self, in_dim: int = 512, hidden_dim: int = 256, *, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.Softplus(), nn.Linear(hidden_dim, out_dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        """x [B, in_dim] -> [B, out_dim]."""
        return self.net(x)


class EDTeacher(nn.Module):
    """The ED-aware teacher of EDG (Xiang et al., "Electron Density-enhanced Molecular Geometry
    Learning"): a :class:`ResNet18` over each structural image view, the view-wise mean of the
    embeddings, and an :class:`EDPredictor` to the ImageED feature.

    Args:
        feature_dim (int): size of the ImageED feature the teacher predicts. Required.
    """

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.backbone = ResNet18()
        self.predictor = EDPredictor(self.backbone.embedding_dim, 256, out_dim=feature_dim)

    def embed(self, images: Tensor) -> Tensor:
        """uint8 images [B, V, 3, H, W] (any V ≥ 1) -> view-averaged embeddings [B, 512]."""
        if images.dim() != 5 or images.size(2) != 3:
            raise ValueError(f"expected images [B, V, 3, H, W], got {tuple(images.shape)}")
        B, V = images.shape[:2]
        x = normalize(images).flatten(0, 1)  # x: [B * V, 3, H, W]
        h = self.backbone(x).view(B, V, -1)  # h: [B, V, 512]
        return h.mean(dim=1)  # [B, 512]

    def forward(self, images: Tensor) -> Tensor:
        """uint8 images [B, V, 3, H, W] -> predicted ImageED features [B, feature_dim]."""
        return self.predictor(self.embed(images))
