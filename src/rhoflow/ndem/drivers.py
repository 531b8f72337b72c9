"""The NDeM training rule's driver: one energy + force run on one trajectory."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch

from rhoflow.io import atomic_path
from rhoflow.models.force_field import ForceField
from rhoflow.ndem.data import FrameDataModule
from rhoflow.ndem.tasks import ForceTask
from rhoflow.train import fit_and_test

log = logging.getLogger(__name__)

SUMMARY = "summary.json"


def loss_settings(variant: str, ndem: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~rhoflow.ndem.tasks.ForceTask` loss of ``variant`` from the completed
    ``ndem`` section (its ``loss``, ``noise``, ``dens`` and ``edg``)."""
    dens = ndem["dens"]
    out = {"variant": variant, **ndem["loss"], **ndem["noise"],
           "dens_probability": dens["probability"]}  # fmt: skip
    if variant == "dens":
        return {**out, "weight": dens["weight"], "mask_ratio": dens["mask_ratio"],
                "sigma_min": dens["sigma"], "sigma_max": dens["sigma"]}  # fmt: skip
    if variant == "edg":
        return {**out, "weight": ndem["edg"]["weight"]}
    return out


def train_forces(
    run_dir: str | Path,
    store: str | Path,
    trajectory: str,
    split: str | Path,
    model_kwargs: dict[str, Any],
    loss: dict[str, Any],
    settings: dict[str, Any],
    teacher: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a force field on one trajectory's frames by ``split`` with ``loss`` (its
    ``variant`` and weights, :class:`~rhoflow.ndem.tasks.ForceTask`); val_loss selects the best
    checkpoint, which is tested. Resumes from the run's last.ckpt. Writes ``summary.json``:
    the test energy MAE (kcal/mol) and force MAE (kcal/mol/Å), the train-mean baseline's on the
    same test frames, the best epoch, epochs run, wall time (s) and training frames/s.
    Variant ``edg`` takes ``teacher``: ``predictor`` (the teacher's EDPredictor module),
    ``features`` (the teacher's features group of the frames) and ``model`` (its file, recorded).
    """
    L.seed_everything(settings["seed"], workers=True)
    teacher = teacher or {}
    data = FrameDataModule(store, trajectory, split, settings["batch_size"],
                           settings["num_workers"], settings["seed"],
                           teacher.get("features"))  # fmt: skip
    data.setup("fit")
    normalisation = data.normalisation()
    variant = loss["variant"]
    model = ForceField(**model_kwargs, vector_head=variant != "baseline",
                       force_encoder=variant == "dens")  # fmt: skip
    params = sum(p.numel() for p in model.parameters())
    config = {
        "train": settings,
        "model": {"kwargs": model_kwargs, "params": params},
        "loss": loss,
        "normalisation": normalisation,
        "data": data.describe(),
        **({"edg": {"teacher": str(teacher["model"])}} if teacher else {}),
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
    }
    task = ForceTask(model, settings, normalisation, loss, teacher.get("predictor"))
    summary = fit_and_test(run_dir, task, data, settings, config)
    metrics = pd.read_csv(Path(run_dir) / "metrics.csv")
    epochs = metrics.dropna(subset=["epoch_time_s"]) if "epoch_time_s" in metrics else metrics
    train, test = data.datasets["train"], data.datasets["test"]
    summary.update(
        trajectory=trajectory,
        variant=variant,
        weight=loss["weight"],
        sigma_max=loss["sigma_max"],
        seed=settings["seed"],
        params=params,
        frames={name: len(d) for name, d in data.datasets.items()},
        epochs=len(epochs),
        wall_s=float(epochs["epoch_time_s"].sum()) if len(epochs) else 0.0,
        frames_per_s=float(epochs["molecules_per_s"].mean()) if len(epochs) else 0.0,
        baseline_energy_mae=float(np.abs(test.energy - train.energy.mean()).mean()),
        baseline_force_mae=float(np.abs(test.forces - train.forces.mean(0)).mean()),
    )
    with atomic_path(Path(run_dir) / SUMMARY) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info("ndem: %s", summary)
    return summary
