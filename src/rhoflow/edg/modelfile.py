"""EDG's model files: ``results/edg/imageed/model.pt`` and ``results/edg/teacher/model.pt``.

A model file is a plain dict saved with ``torch.save`` and read with
``torch.load(weights_only=True)``: ``model`` (``imageed`` or ``ed_teacher``), ``kwargs``
(constructor arguments), ``state_dict`` (the best-validation weights) and ``summary`` (best
epoch and losses). Beside it, the run directory of :func:`rhoflow.train.fit.fit_and_test`:
config.json, checkpoints, metrics.csv (per epoch; the test row last).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from rhoflow.io import atomic_path


def model_classes() -> dict[str, type[nn.Module]]:
    """Model file ``model`` names → classes (EDG's image models; the geometry models are
    :data:`rhoflow.models.MODELS`)."""
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


def load_predictor(teacher: str | Path) -> nn.Module:
    """The EDPredictor of a teacher model file (what the students distil through)."""
    network, meta = load_model(teacher)
    if meta["model"] != "ed_teacher":
        raise ValueError(f"{teacher}: not a teacher model file ({meta['model']})")
    return network.predictor
