"""Training-time augmentation of density representations, drawn from a torch generator.

Voxels: a random symmetry of the cube per molecule — one of the 48 (6 axis permutations × 8
axis flips) that map rhoflow's voxel lattice onto itself. The box is centred on the molecule
(:mod:`rhoflow.voxels`), so each is a 90° rotation or a reflection of the molecule about its
centroid; values are moved, never resampled, so every channel keeps its exact sum and no
interpolation blurs the density. (The representation stage's seeded arbitrary rotations would
resample the native density grid per epoch: a density-store read and a voxelisation per
molecule and epoch, i.e. rebuilding the voxels at train time.) Reflections are kept: energies
and gaps of a molecule and of its mirror image are equal.

Points: a uniformly random rotation of each cloud's coordinates about its centroid (per-point
features unchanged).
"""

from __future__ import annotations

import torch
from torch import Tensor


def cube_symmetries(x: Tensor, generator: torch.Generator) -> Tensor:
    """x [B, C, D, D, D] -> each molecule under its own random symmetry of the cube."""
    out = torch.empty_like(x)
    for b in range(len(x)):
        perm = torch.randperm(3, generator=generator).tolist()
        flips = torch.randint(0, 2, (3,), generator=generator).tolist()
        y = x[b].permute(0, *(1 + p for p in perm))  # y: [C, D, D, D]
        dims = [1 + axis for axis in range(3) if flips[axis]]
        out[b] = y.flip(dims) if dims else y
    return out


def random_rotations(points: Tensor, generator: torch.Generator) -> Tensor:
    """points [B, P, F] (x, y, z first) -> each cloud rotated about its centroid by a uniformly
    random rotation (QR of a Gaussian matrix, signs fixed, determinant +1)."""
    g = torch.randn(len(points), 3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)  # Haar-uniform O(3)
    q[torch.linalg.det(q) < 0, :, 0] *= -1  # proper rotations only
    xyz = points[..., :3]
    centre = xyz.mean(dim=1, keepdim=True)
    rotated = torch.bmm(xyz - centre, q.to(points.dtype).to(points.device)) + centre
    return torch.cat([rotated, points[..., 3:]], dim=2)
