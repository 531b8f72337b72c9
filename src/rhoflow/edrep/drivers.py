"""The edrep driver: one run of a representation's model on one or more targets, through the
shared trainer (:func:`rhoflow.train.fit.fit_and_test`). Settings arrive completed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from rhoflow.edrep.data import RepresentationDataModule
from rhoflow.edrep.tasks import RepresentationTask, standardise
from rhoflow.train.fit import fit_and_test

log = logging.getLogger(__name__)

AUGMENT = {"voxels": "cube", "pointclouds": "rotation", "images": None, "features": None}
"""The training-time augmentation of each representation (:mod:`rhoflow.edrep.augment`);
the six image views are fixed by the render stage and are not augmented, nor are features."""


def build_network(representation: str, sample: Any, n_outputs: int, kwargs: dict) -> nn.Module:
    """The representation's model (voxels: :class:`~rhoflow.models.voxel_cnn.VoxelResNet3D`,
    pointclouds: :class:`~rhoflow.models.pointnet.PointNet`, images:
    :class:`~rhoflow.models.multiview_cnn.MultiViewResNet18`, features:
    :class:`~rhoflow.models.mlp.MLP`), sized from one item's ``x``."""
    from rhoflow.models.mlp import MLP
    from rhoflow.models.multiview_cnn import MultiViewResNet18
    from rhoflow.models.pointnet import PointNet
    from rhoflow.models.voxel_cnn import VoxelResNet3D

    if representation == "voxels":  # sample: [C, D, D, D]
        return VoxelResNet3D(in_channels=sample.shape[0], n_outputs=n_outputs, **kwargs)
    if representation == "pointclouds":  # sample: [P, F]
        return PointNet(in_features=sample.shape[-1], n_outputs=n_outputs, **kwargs)
    if representation == "features":  # sample: [F]
        return MLP(in_features=sample.shape[0], n_outputs=n_outputs, **kwargs)
    return MultiViewResNet18(in_channels=sample.shape[1], n_outputs=n_outputs, **kwargs)


def train_representation(
    run_dir: str | Path,
    representation: str,
    groups: Sequence[str | Path],
    labels: str | Path,
    split: str | Path,
    targets: Sequence[str],
    model_kwargs: dict[str, Any] | None,
    settings: dict[str, Any],
    loss: str,
    mode: str | None = None,
    train_fraction: float = 1.0,
) -> dict[str, Any]:
    """Train the representation's model on ``targets`` of ``labels`` by ``split`` (val selects
    on ``val_nmae``, the best checkpoint is tested); resumes from the run's last.ckpt.

    Args:
        run_dir: the run directory (created).
        representation: ``voxels``, ``pointclouds``, ``images`` or ``features``.
        groups: the representation's shard groups.
        labels: typed labels table; split: the dataset's split file.
        targets: labels columns learnt together (standardised on the train split).
        model_kwargs: the model's arguments beyond its input and output sizes.
        settings: the completed trainer settings.
        loss: ``l1`` or ``mse`` on the standardised targets.
        mode: voxels only, the input mode (:data:`rhoflow.edrep.data.MODES`).
        train_fraction: the nested fraction of the train molecules learnt from.

    Returns:
        The summary (:meth:`rhoflow.edrep.tasks.RepresentationTask.finish_test`).
    """
    model_kwargs = dict(model_kwargs or {})
    L.seed_everything(settings["seed"], workers=True)
    data = RepresentationDataModule(
        representation, groups, labels, split, list(targets),
        batch_size=settings["batch_size"], num_workers=settings["num_workers"],
        seed=settings["seed"], mode=mode, train_fraction=train_fraction,
    )  # fmt: skip
    data.setup("fit")
    train = data.datasets["train"]
    mean, std = standardise(train.y)
    network = build_network(representation, train[0]["x"], len(targets), model_kwargs)
    params = sum(p.numel() for p in network.parameters())
    config = {
        "train": settings,
        "model": {"representation": representation, "kwargs": model_kwargs, "params": params},
        "targets": {"columns": list(targets), "units": data.unit},
        "loss": loss,
        "data": data.describe(),
        "normalization": {"mean": mean.tolist(), "std": std.tolist()},
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
    }
    task = RepresentationTask(
        network, list(targets), data.unit, mean, std, settings, loss, AUGMENT[representation]
    )
    summary = fit_and_test(run_dir, task, data, settings, config)
    log.info("%s %s: %s", representation, mode or "", summary)
    return summary
