"""Training-step speed of the two equivariant backbones for energy + force training.

TorchMD-NET's Equivariant Transformer (torchmd-net 3.1, :mod:`rhoflow.models.force_field`) against
PyG's ViSNet (:mod:`rhoflow.models.visnet`), same width, depth and cutoff, on MD17 ethanol
frames (``../shared/data/md17``; random ethanol-sized frames when absent): one step = energy,
forces −∂E/∂x with ``create_graph``, an L2 force loss, backward. Prints frames/s per model and
size. Usage: ``.venv/bin/python benchmarks/force_backbones.py [--threads 2]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from rhoflow.models.force_field import ForceField
from rhoflow.models.visnet import ViSNet

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "md17"


def frames(batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    path = DATA / "ethanol_md17_2000frames.extxyz"
    if path.exists():
        from rhoflow.md import read_extxyz

        t = read_extxyz(path, "ethanol")
        z = torch.from_numpy(t.atomic_numbers).repeat(batch)
        pos = torch.from_numpy(t.positions[:batch].reshape(-1, 3)).float()
    else:
        z = torch.tensor([6, 6, 8, 1, 1, 1, 1, 1, 1]).repeat(batch)
        pos = torch.randn(len(z), 3) * 1.5
    return z, pos, torch.arange(batch).repeat_interleave(len(z) // batch)


def step_time(model: torch.nn.Module, z: torch.Tensor, pos: torch.Tensor, b: torch.Tensor,
              repeats: int) -> float:  # fmt: skip
    def step() -> None:
        p = pos.clone().requires_grad_(True)
        energy = model(z, p, b)
        (grad,) = torch.autograd.grad(energy.sum(), p, create_graph=True)
        (energy.pow(2).mean() + grad.pow(2).mean()).backward()

    step()  # warm-up (Warp compiles its neighbour kernel here)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    z, pos, b = frames(args.batch)
    print(f"{args.batch} ethanol frames per step, {args.threads} threads")
    print("| backbone | hidden | layers | params | ms/step | frames/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for hidden, layers in ((128, 6), (64, 4), (32, 3)):
        heads = 8 if hidden >= 64 else 4
        for name, model in (
            ("TorchMD-NET ET", ForceField(hidden, layers, 32, heads, cutoff=5.0)),
            ("PyG ViSNet", ViSNet(num_heads=heads, num_layers=layers, hidden_channels=hidden,
                                  num_rbf=32, cutoff=5.0)),
        ):  # fmt: skip
            dt = step_time(model, z, pos, b, args.repeats)
            params = sum(p.numel() for p in model.parameters())
            print(f"| {name} | {hidden} | {layers} | {params:,} | {dt * 1000:.0f} | "
                  f"{args.batch / dt:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
