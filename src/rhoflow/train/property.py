"""Property regression: one model learns one per-molecule target of one split.

:class:`PropertyTask` wraps a plain model (``model(z, pos, batch) -> [B]``, built elsewhere)
and holds the L1 loss, the MAE metrics, optimiser and schedule. The model learns the
normalised target (:class:`rhoflow.train.normalize.TargetScaler`, fitted on the train split);
metrics and predictions are in the label's unit. One model per target, as EDG and Geom3D train
QM9. Logged per epoch: ``train_loss`` (mean L1 on normalised targets), ``val_mae`` (label
unit); ``test_mae`` (label unit) when testing.

:func:`train_property` is a run: a DataModule, a model (a name of :data:`rhoflow.models.MODELS`
or a callable) and a task factory (default :class:`PropertyTask`; a method passes its own, as
EDG's students do), through :func:`rhoflow.train.fit.fit_and_test`. :func:`train_geometry`
builds the geometry DataModule from molecule tables, labels and a split file first.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyarrow as pa
import torch
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanMetric

from rhoflow.io import write_parquet
from rhoflow.train.data import GeometryDataModule, SplitDataModule
from rhoflow.train.fit import fit_and_test
from rhoflow.train.normalize import TargetScaler, default_readout, is_extensive
from rhoflow.train.task import EpochTask
from rhoflow.units import display_unit

log = logging.getLogger(__name__)

PREDICTIONS_KEY = b"rhoflow.predictions"


class PropertyTask(EpochTask):
    """L1 regression of one per-molecule property.

    Args:
        model: ``model(z [N], pos [N, 3] Å, batch [N]) -> [B]``.
        scaler: target normalisation fitted on the train split.
        target: the labels column (recorded in the checkpoint's hyperparameters).
        unit: the target's unit (recorded too).
        settings: the completed trainer settings (lr, weight_decay, scheduler, lr_factor,
            lr_patience, lr_min, max_epochs are used here).
    """

    def __init__(
        self, model: nn.Module, scaler: TargetScaler, target: str, unit: str, settings: dict
    ) -> None:
        super().__init__(settings)
        self.save_hyperparameters({"target": target, "unit": unit, "settings": settings})
        self.model, self.scaler = model, scaler
        self.target, self.unit = target, unit
        self.metrics["train_loss"] = MeanMetric()
        self.metrics["val_mae"] = MeanAbsoluteError().set_dtype(torch.float64)
        self.metrics["test_mae"] = MeanAbsoluteError().set_dtype(torch.float64)
        self.test_outputs: list[tuple[Tensor, Tensor, Tensor]] = []
        self.test_predictions: dict[str, np.ndarray] | None = None

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        """Predictions [B] in the label's unit (float64)."""
        return self.scaler.denormalize(self.model(z, pos, batch), z, batch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        out = self.model(batch["z"], batch["pos"], batch["batch"]).float()  # out: [B]
        target = self.scaler.normalize(batch["y"], batch["z"], batch["batch"]).float()
        loss = torch.nn.functional.l1_loss(out, target)
        self.metrics["train_loss"].update(loss.detach(), weight=len(target))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.metrics["val_mae"].update(self(batch["z"], batch["pos"], batch["batch"]), batch["y"])

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        prediction = self(batch["z"], batch["pos"], batch["batch"])
        self.metrics["test_mae"].update(prediction, batch["y"])
        self.test_outputs.append((batch["index"], batch["y"], prediction))

    def format_metric(self, name: str, value: float) -> str:
        """MAEs in the tables' unit (meV for Hartree and eV labels)."""
        if not name.endswith("_mae"):
            return super().format_metric(name, value)
        unit, factor = display_unit(self.unit)
        return f"{name} {value * factor:.4g} {unit}"

    def on_test_epoch_start(self) -> None:
        self.test_outputs, self.test_predictions = [], None

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        index, truth, prediction = self.gather_test_outputs(self.test_outputs)
        self.test_predictions = {"index": index, "truth": truth, "prediction": prediction}
        self.test_outputs = []

    def finish_test(
        self, run_dir: Path, data: SplitDataModule, summary: dict[str, Any]
    ) -> dict[str, Any]:
        """The test MAE over every test molecule once (DDP padding repeats removed), and
        ``test_predictions.parquet`` (id, truth, prediction, unit; the summary in its schema
        metadata)."""
        p = self.test_predictions
        summary = {
            "target": self.target,
            "unit": self.unit,
            **summary,
            "test_mae": float(np.abs(p["prediction"] - p["truth"]).mean()),
        }
        if self.trainer.is_global_zero:
            ids = data.datasets["test"].ids[p["index"]]
            write_predictions(
                run_dir / "test_predictions.parquet",
                ids,
                p["truth"],
                p["prediction"],
                self.unit,
                summary,
            )
        return summary


def write_predictions(
    path: str | Path,
    ids: Sequence[str],
    truth: np.ndarray,
    prediction: np.ndarray,
    unit: str,
    metadata: dict[str, Any],
) -> None:
    """Test predictions (id, truth, prediction, unit) atomically; ``metadata`` in the schema
    (``rhoflow.predictions``)."""
    table = pa.table(
        {
            "id": pa.array(list(ids), pa.string()),
            "truth": pa.array(truth, pa.float64()),
            "prediction": pa.array(prediction, pa.float64()),
            "unit": pa.array([unit] * len(ids), pa.string()),
        }
    )
    table = table.replace_schema_metadata({PREDICTIONS_KEY: json.dumps(metadata, sort_keys=True)})
    write_parquet(path, table, ["unit"])


def fit_scaler(data: SplitDataModule, atomref: bool | None) -> TargetScaler:
    """The target normalisation of ``data``'s train split; with atomrefs when ``atomref`` (None:
    when the target is an extensive energy, :func:`is_extensive`), from the datasets'
    ``element_counts()``."""
    train = data.datasets["train"]
    if atomref is None:
        atomref = is_extensive(data.target)
    if not atomref:
        return TargetScaler.fit(train.y)
    counts, elements = train.element_counts()
    scaler = TargetScaler.fit(train.y, counts, elements)
    for name in ("val", "test"):
        unseen = set(data.datasets[name].element_counts()[1]) - set(elements)
        if unseen:
            log.warning(
                "%s molecules have elements absent from train (atomref 0): %s",
                name,
                sorted(int(z) for z in unseen),
            )
    return scaler


TaskFactory = Callable[[nn.Module, TargetScaler, str, str, dict], PropertyTask]
"""Builds a run's task from (network, scaler, target, unit, trainer settings)."""


def train_property(
    run_dir: str | Path,
    data: SplitDataModule,
    model: str | Callable[..., nn.Module],
    model_kwargs: dict[str, Any] | None,
    settings: dict[str, Any],
    task: TaskFactory = PropertyTask,
    record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``data``'s target, select on val_mae, test the best checkpoint;
    resume when the run directory has a ``checkpoints/last.ckpt``. Returns the run's summary
    (target, unit, best_epoch, val_mae, test_mae).

    A model that takes a ``readout`` and is not given one pools its atoms as the target's kind
    asks (:func:`rhoflow.train.normalize.default_readout`: sum for energies, mean for HOMO,
    LUMO, gap, dipole); the choice is recorded with the model's arguments in config.json.

    Args:
        run_dir: the run directory (created).
        data: the DataModule (e.g. :class:`GeometryDataModule`); its batch size, workers and
            seed should be those of ``settings``.
        model: a name of :data:`rhoflow.models.MODELS` or a callable building the model.
        model_kwargs: the model's arguments.
        settings: the completed ``train.trainer`` settings.
        task: builds the task from (network, scaler, target, unit, settings), after the
            network (so a method's own modules draw their initial weights after it).
        record: what the task adds to the run (recorded in config.json, checked on resume).
    """
    model_kwargs = dict(model_kwargs or {})
    L.seed_everything(settings["seed"], workers=True)
    data.setup("fit")
    scaler = fit_scaler(data, settings["atomref"])
    if isinstance(model, str):
        from rhoflow.models import model_class

        name, builder = model, model_class(model)
    else:
        name, builder = f"{model.__module__}.{model.__qualname__}", model
    if "readout" not in model_kwargs and "readout" in inspect.signature(builder).parameters:
        model_kwargs["readout"] = default_readout(data.target)
    network = builder(**model_kwargs)
    config = {
        "train": settings,
        "model": {"name": name, "kwargs": model_kwargs},
        "target": {"column": data.target, "unit": data.unit},
        "data": data.describe(),
        "normalization": scaler.summary(),
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
        **(record or {}),
    }
    built = task(network, scaler, data.target, data.unit, settings)
    return fit_and_test(run_dir, built, data, settings, config)


def geometry_data(
    tables: Sequence[str | Path],
    labels: str | Path,
    split: str | Path,
    target: str,
    settings: dict[str, Any],
    module: Callable[..., GeometryDataModule] = GeometryDataModule,
) -> GeometryDataModule:
    """The geometry DataModule of molecule ``tables``, a ``labels`` table and a ``split`` file
    for the labels column ``target``, batched as the trainer ``settings`` say (``module``: a
    subclass taking the same arguments)."""
    return module(
        tables,
        labels,
        split,
        target,
        batch_size=settings["batch_size"],
        num_workers=settings["num_workers"],
        seed=settings["seed"],
    )


def train_geometry(
    run_dir: str | Path,
    tables: Sequence[str | Path],
    labels: str | Path,
    split: str | Path,
    target: str,
    model: str | Callable[..., nn.Module],
    model_kwargs: dict[str, Any] | None,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """:func:`train_property` on geometry data: molecule ``tables``, a ``labels`` table and a
    ``split`` file, learning the labels column ``target`` (completed ``settings``)."""
    data = geometry_data(tables, labels, split, target, settings)
    return train_property(run_dir, data, model, model_kwargs, settings)

