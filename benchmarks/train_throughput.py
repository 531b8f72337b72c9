"""SchNet training throughput: rhoflow's Lightning trainer vs a minimal plain-PyTorch loop.

Both train the same SchNet (same initial weights) on the same batches (the
:class:`rhoflow.train.GeometryDataModule` of a dataset's conformer tables, labels table and split
file, shuffled with the same seed) with the same optimiser (AdamW, the trainer's lr), for
``--epochs`` epochs with one validation pass per epoch (after one untimed warm-up epoch); the
plain loop writes no checkpoints and logs nothing. Throughput is train molecules per second of
training-loop wall time (model building and data set-up excluded). A third pass iterates the
train DataLoader alone (collate, no model) to give the data-loading share of a training step.

    .venv/bin/python benchmarks/train_throughput.py --workdir /tmp/qm9 \\
        --target source_gap_hartree --epochs 5

``--workdir`` is a workflow directory with ``results/conformers/<source>-*.parquet``,
``results/labels/<source>.parquet`` and ``results/splits/<source>.parquet`` (e.g. the micro_qm9
run of the closing notes).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from rhoflow.config import section_settings
from rhoflow.models import build_model
from rhoflow.train import GeometryDataModule, PropertyTask, build_trainer
from rhoflow.train.property import fit_scaler


class FitTimer(L.Callback):
    """Wall time from the first to the last training epoch (fit set-up excluded)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.start


def plain_loop(model, scaler, data, settings, epochs: int) -> float:
    """Seconds of ``epochs`` epochs of forward / L1 / backward / AdamW + a validation pass."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"]
    )
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for b in data.train_dataloader():
            out = model(b["z"], b["pos"], b["batch"]).float()
            loss = torch.nn.functional.l1_loss(
                out, scaler.normalize(b["y"], b["z"], b["batch"]).float()
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for b in data.val_dataloader():
                scaler.denormalize(model(b["z"], b["pos"], b["batch"]), b["z"], b["batch"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--source", default="qm9")
    parser.add_argument("--target", default="source_gap_hartree")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = args.workdir / "results"
    settings = section_settings(
        "train.trainer", {"max_epochs": args.epochs, "scheduler": "none", "progress_bar": False}
    )
    data = GeometryDataModule(
        sorted((results / "conformers").glob(f"{args.source}-*.parquet")),
        results / "labels" / f"{args.source}.parquet",
        results / "splits" / f"{args.source}.parquet",
        args.target,
        batch_size=settings["batch_size"],
        seed=settings["seed"],
    )
    L.seed_everything(0, workers=True)
    data.setup("fit")
    scaler = fit_scaler(data, settings["atomref"])
    n_train = len(data.datasets["train"])
    model = build_model("schnet")
    initial = copy.deepcopy(model.state_dict())

    start = time.perf_counter()
    n_batches = sum(1 for _ in data.train_dataloader())
    load_s = time.perf_counter() - start

    plain_loop(copy.deepcopy(model), scaler, data, settings, 1)  # warm-up, not timed
    L.seed_everything(0, workers=True)
    plain_s = plain_loop(model, scaler, data, settings, args.epochs)

    model.load_state_dict(initial)
    L.seed_everything(0, workers=True)
    task = PropertyTask(model, scaler, data.target, data.unit, settings)
    timer = FitTimer()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(settings, tmp)
        trainer.callbacks.append(timer)
        trainer.fit(task, datamodule=data)
    rhoflow_s = timer.seconds

    plain_rate = n_train * args.epochs / plain_s
    rhoflow_rate = n_train * args.epochs / rhoflow_s
    step_s = plain_s / (args.epochs * n_batches)
    print(
        f"SchNet (PyG defaults: hidden 128, 6 interactions, cutoff 10 Å), {n_train} train "
        f"molecules, batch {settings['batch_size']}, {args.epochs} epochs, "
        f"{args.threads} thread(s)"
    )
    print(f"plain PyTorch loop : {plain_rate:8.1f} train molecules/s ({plain_s:.1f} s)")
    print(
        f"rhoflow trainer    : {rhoflow_rate:8.1f} train molecules/s ({rhoflow_s:.1f} s; "
        "checkpoints last + best, CSV log, validation metric)"
    )
    print(f"ratio              : {rhoflow_rate / plain_rate:.3f}")
    print(
        f"data loading       : {1e3 * load_s / n_batches:.2f} ms per batch = "
        f"{100 * load_s / n_batches / step_s:.1f} % of a plain training step "
        f"({1e3 * step_s:.1f} ms, validation included)"
    )


if __name__ == "__main__":
    main()
