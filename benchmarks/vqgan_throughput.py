"""3DGrid-VQGAN training throughput (molecules/s) and peak memory at 32³ and 48³ (issue 18).

Runs the real :class:`rhoflow.vqgan.tasks.VQGANTask` training step (generator and, past
``disc_start_step`` = 0 here, the slice discriminator: the costlier phase) through a Lightning
trainer on log(1 + ρ) grids: real pyscf box grids when ``--store`` is given (resampled
trilinearly to each size: the cost does not depend on the values), else smooth random volumes.
Times ``--steps`` steps after two warm-up steps; peak memory is the process's peak RSS on CPU
(``ru_maxrss``: model, activations, data and Python) or ``torch.cuda.max_memory_allocated``.

    python benchmarks/vqgan_throughput.py \
        --store ../vqgan_pcqm/results/density/pyscf/pcqm-00000.zarr
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rhoflow.config import section_settings
from rhoflow.models.vqgan3d import VQGAN3D, SliceDiscriminator
from rhoflow.vqgan.tasks import VQGANTask


class Volumes(Dataset):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x  # x: [M, 1, n, n, n]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "index": i}


class Clock(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.steps = warmup, 0.0, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            self.steps += 1


def volumes(store: str | None, n: int, count: int) -> torch.Tensor:
    if store is None:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(count, 1, 8, 8, 8, generator=g) * 5
    else:
        from rhoflow.store import open_store

        s = open_store(store)
        x = torch.stack([torch.from_numpy(np.log1p(np.maximum(s.values(i), 0)))[None]
                         for i in range(min(count, len(s)))])  # fmt: skip
    return torch.nn.functional.interpolate(x, size=(n, n, n), mode="trilinear")


def measure(n: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model = VQGAN3D(**section_settings("vqgan.model", json.loads(args.model)))
    discriminator = SliceDiscriminator(**section_settings("vqgan.discriminator", {}))
    settings = section_settings("vqgan.trainer", {"batch_size": args.batch_size})
    losses = section_settings("vqgan.losses", {"disc_start_step": 0})
    task = VQGANTask(model, discriminator, settings, losses, 6.0, 1.0)
    data = Volumes(volumes(args.store, n, args.batch_size * (args.steps + 2)))
    clock = Clock(warmup=2)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=args.steps + 2, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock])  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(task, DataLoader(data, batch_size=args.batch_size, shuffle=False))
    elapsed = time.perf_counter() - clock.start
    if torch.cuda.is_available():
        memory, kind = torch.cuda.max_memory_allocated() / 2**20, "cuda_allocated"
    else:
        memory, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_rss"
    return {"points": n, "batch_size": args.batch_size, "steps": clock.steps,
            "molecules_per_s": clock.steps * args.batch_size / elapsed,
            "peak_memory_mb": memory, "memory": kind,
            "params": sum(p.numel() for p in model.parameters()),
            "device": "cuda" if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="a density shard store of box grids (optional)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 48])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--model", default='{"channels": 16, "embed_dim": 64, "n_codes": 1024}',
                        help="vqgan.model as JSON")  # fmt: skip
    args = parser.parse_args()
    for n in args.sizes:  # peak RSS only grows: sizes in increasing order
        print(json.dumps(measure(n, args)), flush=True)


if __name__ == "__main__":
    main()
