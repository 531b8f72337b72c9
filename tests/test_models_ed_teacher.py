"""EDG's ED-aware teacher: ResNet18 size and shapes, the view-wise mean, the predictor's
structure, determinism and batch independence, a short fit, and the image normalisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rhoflow.models.ed_teacher import EDPredictor, EDTeacher, ResNet18, normalize
from rhoflow.models.imageed import IMAGENET_MEAN, IMAGENET_STD

FEATURE_DIM = 16


def structured_images(n: int, views: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 [n, views, 3, size, size]: a few coloured discs ("atoms") on a white background."""
    g = torch.Generator().manual_seed(seed)
    images = torch.full((n, views, 3, size, size), 255, dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for b in range(n):
        for v in range(views):
            for _ in range(3):
                cy, cx = torch.randint(4, size - 4, (2,), generator=g)
                r = torch.randint(2, 6, (1,), generator=g)
                colour = torch.randint(0, 256, (3,), generator=g, dtype=torch.uint8)
                disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2  # [size, size]
                images[b, v][:, disc] = colour[:, None]
    return images


@pytest.fixture(scope="module")
def teacher() -> EDTeacher:
    torch.manual_seed(0)
    model = EDTeacher(FEATURE_DIM).eval()
    # Zero-init residual branches make blocks the identity; perturb the BN gammas so the
    # eval-mode tests exercise the whole network.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
    return model


def test_resnet18_parameter_count_and_shapes() -> None:
    model = ResNet18().eval()
    assert sum(p.numel() for p in model.parameters()) == 11_176_512
    with torch.no_grad():
        for size in (64, 32):
            assert model(torch.randn(2, 3, size, size)).shape == (2, 512)


def test_teacher_shapes(teacher: EDTeacher) -> None:
    images = structured_images(2)
    with torch.no_grad():
        assert teacher.embed(images).shape == (2, 512)
        assert teacher(images).shape == (2, FEATURE_DIM)
        assert teacher(images[:, :1]).shape == (2, FEATURE_DIM)  # a single view
    with pytest.raises(ValueError):
        teacher(images[0])


def test_view_wise_mean(teacher: EDTeacher) -> None:
    images = structured_images(2, seed=1)
    with torch.no_grad():
        h = teacher.embed(images)
        permuted = teacher.embed(images[:, [2, 0, 3, 1]])
        per_view = torch.stack(
            [teacher.backbone(normalize(images[:, v])) for v in range(4)], dim=1
        )  # [B, V, 512]
    torch.testing.assert_close(permuted, h, atol=1e-5, rtol=0)
    torch.testing.assert_close(per_view.mean(dim=1), h, atol=1e-5, rtol=0)


def test_predictor_structure() -> None:
    predictor = EDPredictor(512, 256, out_dim=FEATURE_DIM)
    layers = list(predictor.net)
    assert [type(m) for m in layers] == [nn.Linear, nn.Softplus, nn.Linear]
    assert (layers[0].in_features, layers[0].out_features) == (512, 256)
    assert (layers[2].in_features, layers[2].out_features) == (256, FEATURE_DIM)
    assert predictor(torch.randn(3, 512)).shape == (3, FEATURE_DIM)
    teacher_predictor = EDTeacher(7).predictor.net
    assert (teacher_predictor[0].in_features, teacher_predictor[2].out_features) == (512, 7)


def test_deterministic_and_batch_independent(teacher: EDTeacher) -> None:
    images = structured_images(3, seed=2)
    with torch.no_grad():
        out = teacher(images)
        torch.testing.assert_close(teacher(images), out, atol=0, rtol=0)
        alone = torch.cat([teacher(images[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(alone, out, atol=1e-5, rtol=0)


def test_training_decreases_l1() -> None:
    torch.manual_seed(0)
    model = EDTeacher(FEATURE_DIM).train()
    images = structured_images(4, seed=3)
    targets = torch.randn(4, FEATURE_DIM)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss = (model(images) - targets).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


def test_normalize_extremes() -> None:
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    for value, expected in ((0, -mean / std), (255, (1 - mean) / std)):
        images = torch.full((2, 4, 3, 5, 5), value, dtype=torch.uint8)
        x = normalize(images)
        assert x.dtype == torch.float32 and x.shape == images.shape
        torch.testing.assert_close(x, expected[:, None, None].expand_as(x), atol=1e-6, rtol=0)
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
