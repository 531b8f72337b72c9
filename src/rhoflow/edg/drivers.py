"""EDG's drivers: each builds its DataModule and task and hands them to the one trainer
(:func:`rhoflow.train.fit.fit_and_test`, through :func:`rhoflow.train.property.train_property`
for the students). Settings arrive completed (the CLI fills them from the schema once).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from rhoflow.edg.data import EDGDataModule, ImageDataModule
from rhoflow.edg.modelfile import load_predictor, save_model
from rhoflow.edg.tasks import DistillationTask, ImageEDTask, TeacherTask
from rhoflow.train.fit import fit_and_test
from rhoflow.train.normalize import TargetScaler
from rhoflow.train.property import geometry_data, train_property
from rhoflow.train.task import EpochTask

log = logging.getLogger(__name__)


def _pretrain(
    run_dir: str | Path,
    name: str,
    settings: dict[str, Any],
    data_args: tuple,
    build: Callable[[dict[str, Any], ImageDataModule], tuple[dict[str, Any], EpochTask]],
) -> dict[str, Any]:
    """One pre-training run: the images of ``data_args`` (:class:`ImageDataModule` arguments
    up to ``features``), ``build(settings, data)`` → (model kwargs, task), fit and test, and
    ``run_dir/model.pt`` (model ``name``)."""
    t = settings["trainer"]
    run_dir = Path(run_dir)
    L.seed_everything(t["seed"], workers=True)
    data = ImageDataModule(*data_args, t["batch_size"], t["num_workers"], t["seed"])
    data.setup("fit")
    kwargs, task = build(settings, data)
    config = {
        "settings": {k: v for k, v in settings.items() if k != "trainer"},
        "model": {"name": name, "kwargs": kwargs},
        "train": t,
        "data": data.describe(),
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
    }
    summary = fit_and_test(run_dir, task, data, t, config)
    save_model(run_dir / "model.pt", name, kwargs, task.model, summary)
    log.info("%s: %s", name, summary)
    return summary


def train_imageed(
    run_dir: str | Path,
    groups: Sequence[str | Path],
    split: str | Path,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Pre-train ImageED on the density images of ``groups`` (train molecules of ``split``;
    val selects the checkpoint, test is reported) and write ``run_dir/model.pt``.

    Args:
        run_dir: the run directory (resumed from its last.ckpt).
        groups: image groups of the render stage.
        split: the pre-training source's split file.
        settings: the completed ``edg.imageed`` config section.
    """
    from rhoflow.models.imageed import SIZES, ImageED

    def build(s: dict[str, Any], data: ImageDataModule) -> tuple[dict[str, Any], EpochTask]:
        kwargs = {
            **SIZES[s["size"]],
            "img_size": int(data.datasets["train"][0]["images"].shape[-1]),
            "mask_ratio": s["mask_ratio"],
            "lambda_mp": s["lambda_mp"],
            "lambda_rp": s["lambda_rp"],
        }
        return kwargs, ImageEDTask(ImageED(**kwargs), s["trainer"])

    data_args = (groups, "density_images", split, None)
    return _pretrain(run_dir, "imageed", settings, data_args, build)


def train_teacher(
    run_dir: str | Path,
    groups: Sequence[str | Path],
    split: str | Path,
    features: str | Path,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Train the ED-aware teacher on the structure images of ``groups`` to predict the ImageED
    ``features`` of the same molecules (train molecules of ``split``; val selects, test is
    reported beside the mean-feature baseline) and write ``run_dir/model.pt``.

    Args:
        run_dir: the run directory (resumed from its last.ckpt).
        groups: image groups with ``structure_images`` (the render stage's).
        split: the pre-training source's split file.
        features: ImageED's features group (``imageed_features``).
        settings: the completed ``edg.teacher`` config section.
    """
    from rhoflow.models.ed_teacher import EDTeacher

    def build(s: dict[str, Any], data: ImageDataModule) -> tuple[dict[str, Any], EpochTask]:
        train = data.datasets["train"].features  # train: [M, F]
        kwargs = {"feature_dim": int(train.shape[1])}
        mean = torch.from_numpy(train.mean(axis=0))
        return kwargs, TeacherTask(EDTeacher(**kwargs), s["trainer"], mean)

    data_args = (groups, "structure_images", split, features)
    return _pretrain(run_dir, "ed_teacher", settings, data_args, build)


def train_student(
    run_dir: str | Path,
    tables: Sequence[str | Path],
    labels: str | Path,
    split: str | Path,
    target: str,
    model: str | Callable[..., nn.Module],
    model_kwargs: dict[str, Any] | None,
    settings: dict[str, Any],
    teacher: str | Path,
    features: str | Path,
    lam: float,
) -> dict[str, Any]:
    """A student: ``model`` learns ``target`` as :func:`rhoflow.train.train_geometry` does,
    plus λ · the distillation term through the ``teacher`` model file's frozen EDPredictor to
    the dataset's teacher ``features`` group (:class:`rhoflow.edg.tasks.DistillationTask`).
    The run directory is a property run's; its config.json adds ``edg`` (teacher, λ)."""
    data = geometry_data(
        tables, labels, split, target, settings, functools.partial(EDGDataModule, features)
    )

    def task(
        network: nn.Module, scaler: TargetScaler, target: str, unit: str, s: dict
    ) -> DistillationTask:
        return DistillationTask(network, scaler, target, unit, s, load_predictor(teacher), lam)

    record = {"edg": {"teacher": str(teacher), "lambda": float(lam)}}
    return train_property(run_dir, data, model, model_kwargs, settings, task, record)
