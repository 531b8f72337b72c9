"""ImageED pre-training and the ED-aware teacher: their tasks, training runs, model files and
per-molecule features.

A **model file** (``results/edg/imageed/model.pt``, ``results/edg/teacher/model.pt``) is a plain
dict saved with ``torch.save`` and read with ``torch.load(weights_only=True)``: ``model``
(``imageed`` or ``ed_teacher``), ``kwargs`` (constructor arguments), ``state_dict`` (the
best-validation weights) and ``summary`` (best epoch and losses). Beside it, the run directory
of :func:`rhoflow.train.run.fit`: config.json, checkpoints, metrics.csv (per epoch; the test row
last).

Logged per epoch: ImageED ``train_loss``, ``val_loss``, ``val_l_mp``, ``val_l_rp`` (MSE of
normalised pixels; validation masks are drawn from a fixed seed per batch, so epochs compare);
the teacher ``train_loss``, ``val_loss`` (L1 to the ImageED features) and ``val_mean_l1`` (L1 of
predicting the train molecules' mean feature: the baseline).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from rhoflow.edg.data import ImageDataModule
from rhoflow.edg.features import write_features
from rhoflow.io import atomic_path
from rhoflow.train.run import fit
from rhoflow.train.task import EpochTask

log = logging.getLogger(__name__)

VAL_SEED = 1_000_003
"""Seed of the validation and test masks of batch k: ``VAL_SEED * (k + 1)``."""


class ImageEDTask(EpochTask):
    """ImageED's masked-autoencoder pre-training (EDG §3.3): loss λ_MP·L_MP + λ_RP·L_RP.

    Args:
        model: :class:`rhoflow.models.imageed.ImageED`.
        settings: the trainer settings (``edg.imageed.trainer``).
    """

    monitor = "val_loss"
    PARTS = ("loss", "l_mp", "l_rp")

    def __init__(self, model: nn.Module, settings: dict) -> None:
        super().__init__(settings)
        self.model = model
        self.metrics = nn.ModuleDict(
            {f"{stage}_{p}": MeanMetric() for stage in ("train", "val", "test") for p in self.PARTS}
        )

    def _update(self, stage: str, out: dict[str, Tensor], n: int) -> None:
        for p in self.PARTS:
            self.metrics[f"{stage}_{p}"].update(out[p].detach(), weight=n)

    def _fixed_masks(self, images: Tensor, batch_idx: int) -> dict[str, Tensor]:
        generator = torch.Generator(device=images.device).manual_seed(VAL_SEED * (batch_idx + 1))
        return self.model(images, generator=generator)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        out = self.model(batch["images"])  # images: [B, 6, 4, S, S] uint8
        self._update("train", out, len(batch["images"]))
        return out["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._update("val", self._fixed_masks(batch["images"], batch_idx), len(batch["images"]))

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._update("test", self._fixed_masks(batch["images"], batch_idx), len(batch["images"]))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            for p in self.PARTS:
                self.metrics[f"val_{p}"].reset()
            return
        val_loss = self.metrics["val_loss"].compute()
        for name in ("train_loss", "val_loss", "val_l_mp", "val_l_rp"):
            self.log(name, self.metrics[name])
        self.log("lr", self.optimizers().param_groups[0]["lr"], sync_dist=True)
        self._step_scheduler(val_loss)

    def on_test_epoch_end(self) -> None:
        for p in self.PARTS:
            self.log(f"test_{p}", self.metrics[f"test_{p}"])


class TeacherTask(EpochTask):
    """The ED-aware teacher (EDG §3.5): L1 between ``EDP(teacher(S))`` and the frozen ImageED
    features of the same molecules.

    Args:
        model: :class:`rhoflow.models.ed_teacher.EDTeacher`.
        settings: the trainer settings (``edg.teacher.trainer``).
        mean_feature: the train molecules' mean ImageED feature [F] (the baseline).
    """

    monitor = "val_loss"

    def __init__(self, model: nn.Module, settings: dict, mean_feature: Tensor) -> None:
        super().__init__(settings)
        self.model = model
        self.register_buffer("mean_feature", mean_feature.float())
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{what}": MeanMetric()
                for stage in ("train", "val", "test")
                for what in ("loss", "mean_l1")
            }
        )

    def _step(self, stage: str, batch: dict[str, Any]) -> Tensor:
        target = batch["features"]  # target: [B, F]
        loss = nn.functional.l1_loss(self.model(batch["images"]), target)
        baseline = (target - self.mean_feature).abs().mean()
        self.metrics[f"{stage}_loss"].update(loss.detach(), weight=len(target))
        self.metrics[f"{stage}_mean_l1"].update(baseline, weight=len(target))
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step("train", batch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step("val", batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step("test", batch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            for name in ("val_loss", "val_mean_l1"):
                self.metrics[name].reset()
            return
        val_loss = self.metrics["val_loss"].compute()
        for name in ("train_loss", "val_loss", "val_mean_l1"):
            self.log(name, self.metrics[name])
        self.log("lr", self.optimizers().param_groups[0]["lr"], sync_dist=True)
        self._step_scheduler(val_loss)

    def on_test_epoch_end(self) -> None:
        for name in ("test_loss", "test_mean_l1"):
            self.log(name, self.metrics[name])


# --- model files ---------------------------------------------------------------------------


def model_classes() -> dict[str, type[nn.Module]]:
    """Model file ``model`` names → classes."""
    from rhoflow.models.ed_teacher import EDTeacher
    from rhoflow.models.imageed import ImageED

    return {"imageed": ImageED, "ed_teacher": EDTeacher}


def save_model(
    path: str | Path, name: str, kwargs: dict[str, Any], model: nn.Module, summary: dict
) -> None:
    """Write a model file (module docstring), atomically."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"model": name, "kwargs": kwargs, "state_dict": state, "summary": summary}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network of a model file in eval mode, and the file's dict (without weights)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    classes = model_classes()
    if payload.get("model") not in classes:
        raise ValueError(f"{path}: not an EDG model file (model {payload.get('model')!r})")
    network = classes[payload["model"]](**payload["kwargs"])
    network.load_state_dict(payload["state_dict"])
    network.eval()
    return network, {k: v for k, v in payload.items() if k != "state_dict"}


# --- training runs -------------------------------------------------------------------------


def _fit_and_test(
    run_dir: Path, task: EpochTask, data: ImageDataModule, trainer_settings: dict, config: dict
) -> dict[str, Any]:
    """Fit (resumable), test the best checkpoint; the summary of the run."""
    trainer = fit(run_dir, task, data, trainer_settings, config)
    best = run_dir / "checkpoints" / "best.ckpt"
    (tested,) = trainer.test(
        task, datamodule=data, ckpt_path=best, verbose=False, weights_only=True
    )
    from rhoflow.train.run import merge_metrics

    if trainer.is_global_zero:
        merge_metrics(run_dir)
    state = torch.load(best, map_location="cpu", weights_only=True)
    score = state["callbacks"][trainer.checkpoint_callback.state_key]["best_model_score"]
    return {
        "best_epoch": int(state["epoch"]),
        task.monitor: float(score),
        **{k: float(v) for k, v in tested.items()},
        "sizes": {name: len(d) for name, d in data.datasets.items()},
    }


def _pretrain(
    run_dir: str | Path,
    name: str,
    section: str,
    settings: dict[str, Any] | None,
    data_args: tuple,
    build: Callable[[dict[str, Any], ImageDataModule], tuple[dict[str, Any], EpochTask]],
) -> dict[str, Any]:
    """One pre-training run: settings of ``section`` filled, the images of ``data_args``
    (:class:`ImageDataModule` arguments up to ``features``), ``build(settings, data)`` →
    (model kwargs, task), fit and test, and ``run_dir/model.pt`` (model ``name``)."""
    from rhoflow.config import section_settings

    s = section_settings(section, settings)
    t = s["trainer"]
    run_dir = Path(run_dir)
    L.seed_everything(t["seed"], workers=True)
    data = ImageDataModule(*data_args, t["batch_size"], t["num_workers"], t["seed"])
    data.setup("fit")
    kwargs, task = build(s, data)
    config = {
        "settings": s,
        "model": {"name": name, "kwargs": kwargs},
        "train": t,
        "data": data.describe(),
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
    }
    summary = _fit_and_test(run_dir, task, data, t, config)
    save_model(run_dir / "model.pt", name, kwargs, task.model, summary)
    log.info("%s: %s", name, summary)
    return summary


def train_imageed(
    run_dir: str | Path,
    groups: Sequence[str | Path],
    split: str | Path,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pre-train ImageED on the density images of ``groups`` (train molecules of ``split``;
    val selects the checkpoint, test is reported) and write ``run_dir/model.pt``.

    Args:
        run_dir: the run directory (resumed from its last.ckpt).
        groups: image groups of the render stage.
        split: the pre-training source's split file.
        settings: the ``edg.imageed`` config section.
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
    return _pretrain(run_dir, "imageed", "edg.imageed", settings, data_args, build)


def train_teacher(
    run_dir: str | Path,
    groups: Sequence[str | Path],
    split: str | Path,
    features: str | Path,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the ED-aware teacher on the structure images of ``groups`` to predict the ImageED
    ``features`` of the same molecules (train molecules of ``split``; val selects, test is
    reported beside the mean-feature baseline) and write ``run_dir/model.pt``.

    Args:
        run_dir: the run directory (resumed from its last.ckpt).
        groups: image groups with ``structure_images`` (the render stage's).
        split: the pre-training source's split file.
        features: ImageED's features group (``imageed_features``).
        settings: the ``edg.teacher`` config section.
    """
    from rhoflow.models.ed_teacher import EDTeacher

    def build(s: dict[str, Any], data: ImageDataModule) -> tuple[dict[str, Any], EpochTask]:
        train = data.datasets["train"].features  # train: [M, F]
        kwargs = {"feature_dim": int(train.shape[1])}
        mean = torch.from_numpy(train.mean(axis=0))
        return kwargs, TeacherTask(EDTeacher(**kwargs), s["trainer"], mean)

    data_args = (groups, "structure_images", split, features)
    return _pretrain(run_dir, "ed_teacher", "edg.teacher", settings, data_args, build)


# --- features ------------------------------------------------------------------------------


@torch.no_grad()
def compute_features(
    network: Callable[[Tensor], Tensor],
    groups: Sequence[str | Path],
    array: str,
    batch_size: int = 32,
) -> tuple[list[str], np.ndarray]:
    """``network(images)`` [B, F] of every molecule of the image ``groups`` (array ``array``),
    in group order: ids and float32 [M, F]."""
    from tqdm import tqdm

    from rhoflow.render import open_images

    images = open_images([Path(g) for g in groups])
    ids = list(images.ids)
    rows = []
    for lo in tqdm(range(0, len(ids), batch_size), desc=f"features of {array}", unit="batch"):
        batch = np.stack([images.read(i, array) for i in ids[lo : lo + batch_size]])
        rows.append(network(torch.from_numpy(batch)).float().numpy())
    width = rows[0].shape[1] if rows else 0
    return ids, np.concatenate(rows) if rows else np.zeros((0, width), np.float32)


def write_model_features(
    model_file: str | Path, groups: Sequence[str | Path], out: str | Path, batch_size: int = 32
) -> int:
    """The features group ``out`` of every molecule of ``groups``: ImageED's ED feature (mean
    encoder token, unmasked) of the density images, or the teacher's EDP(teacher(S)) of the
    structure images, by the model file's kind. Returns the number of molecules."""
    network, meta = load_model(model_file)
    if meta["model"] == "imageed":
        ids, features = compute_features(network.features, groups, "density_images", batch_size)
    else:
        ids, features = compute_features(network, groups, "structure_images", batch_size)
    attributes = {
        "model": str(model_file),
        "kind": meta["model"],
        "groups": [str(g) for g in groups],
    }
    write_features(out, ids, features, attributes)
    return len(ids)


def contact_sheet(
    model_file: str | Path,
    groups: Sequence[str | Path],
    split: str | Path,
    out_png: str | Path,
    n_molecules: int = 4,
) -> list[str]:
    """A PNG of ImageED at work on held-out (``test``) molecules: per molecule three rows,
    the input, the masked input (masked patches black) and the reconstruction (predicted
    patches pasted into the visible input), each the six views' RGB then their depth (grey),
    112 px per tile. Masks from :data:`VAL_SEED`. Returns the molecules shown."""
    from PIL import Image, ImageDraw

    from rhoflow.models.imageed import denormalize
    from rhoflow.render import open_images
    from rhoflow.splits import read_splits

    network, _ = load_model(model_file)
    images = open_images([Path(g) for g in groups])
    split_of = read_splits(split)["split"]
    ids = [i for i in split_of.index[split_of == "test"] if i in images][:n_molecules]
    x = torch.from_numpy(np.stack([images.read(i, "density_images") for i in ids]))
    masked, recon = network.reconstruct(x, torch.Generator().manual_seed(VAL_SEED))
    rows = {"input": x, "masked": denormalize(masked), "reconstruction": denormalize(recon)}
    tile, label = 112, 120
    n_views = x.shape[1]
    sheet = Image.new("RGB", (label + 2 * n_views * tile, 3 * len(ids) * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for m, mol_id in enumerate(ids):
        for r, (name, batch) in enumerate(rows.items()):
            y = (3 * m + r) * tile
            draw.text((4, y + 4), f"{mol_id}\n{name}" if r == 0 else name, fill="black")
            for v in range(n_views):
                view = batch[m, v].numpy()  # view: [4, S, S] uint8
                rgb = Image.fromarray(np.ascontiguousarray(view[:3].transpose(1, 2, 0)))
                depth = Image.fromarray(np.ascontiguousarray(view[3])).convert("RGB")
                sheet.paste(rgb.resize((tile, tile)), (label + v * tile, y))
                sheet.paste(depth.resize((tile, tile)), (label + (n_views + v) * tile, y))
    with atomic_path(out_png) as tmp:
        sheet.save(tmp, format="PNG")
    return ids
